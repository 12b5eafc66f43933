//! DescribeUserScramCredentials v0 and AlterUserScramCredentials v0: the
//! SCRAM credentials of the metadata image, listed (mechanisms and
//! iterations, never a salt or key) and changed through the controller,
//! with Kafka's checks and words. The admin client salts a new password
//! itself; the controller stores the keys derived from it.

use std::collections::{BTreeMap, BTreeSet};

use auth::scram::{Mechanism, ScramCredential, ITERATIONS_MAX, ITERATIONS_MIN};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::context::ConnContext;
use crate::controller::{Command, ScramChange};
use crate::error::Refusal;
use crate::shard::Shard;
use auth::acl::Operation;

pub fn describe(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeUserScramCredentialsRequest = request.decode_body()?;
    let image = shard.metadata.image();
    if !context.may_on_cluster(&shard.config, &image, Operation::Describe) {
        let response = DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Authorization failed.")));
        return respond(request, &response);
    }
    let info = |user: &str| -> Option<Vec<CredentialInfo>> {
        let of_user = image.scram.get(user)?;
        Some(
            of_user
                .values()
                .map(|c| {
                    CredentialInfo::default()
                        .with_mechanism(c.mechanism.kafka_type())
                        .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
                })
                .collect(),
        )
    };
    let result = |user: &str| DescribeUserScramCredentialsResult::default().with_user(str(user));
    let results = match req.users.filter(|u| !u.is_empty()) {
        // Every user with a credential.
        None => image
            .scram
            .keys()
            .map(|u| result(u).with_credential_infos(info(u).unwrap_or_default()))
            .collect(),
        Some(users) => {
            let mut seen = BTreeMap::<String, usize>::new();
            for u in &users {
                *seen.entry(u.name.to_string()).or_default() += 1;
            }
            users
                .iter()
                .map(|u| u.name.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|u| {
                    let refused = |e: ResponseError, m: &str| {
                        result(&u).with_error_code(e.code()).with_error_message(Some(str(m)))
                    };
                    if seen[&u] > 1 {
                        return refused(
                            ResponseError::DuplicateResource,
                            &format!("Cannot describe SCRAM credentials for the same user twice in a single request: {u}"),
                        );
                    }
                    match info(&u) {
                        Some(infos) => result(&u).with_credential_infos(infos),
                        None => refused(
                            ResponseError::ResourceNotFound,
                            &format!("Attempt to describe a user credential that does not exist: {u}"),
                        ),
                    }
                })
                .collect()
        }
    };
    respond(request, &DescribeUserScramCredentialsResponse::default().with_results(results))
}

pub async fn alter(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: AlterUserScramCredentialsRequest = request.decode_body()?;
    // Kafka's two passes, deletions then upsertions: a user's first
    // refusal sticks; a second alteration of a user accepted so far
    // refuses it as a duplicate. One result per user, in order of mention.
    let mut users: Vec<(String, Result<ScramChange, Refusal>)> = Vec::new();
    // Where each user is in `users`: a request may name many users.
    let mut at = BTreeMap::<String, usize>::new();
    let mut alter = |user: String, change: Result<ScramChange, Refusal>| match at.get(&user) {
        Some(&i) => {
            if users[i].1.is_ok() {
                users[i].1 = Err(Refusal::new(
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request",
                ));
            }
        }
        None => {
            at.insert(user.clone(), users.len());
            users.push((user, change));
        }
    };
    let image = shard.metadata.image();
    for d in &req.deletions {
        let user = d.name.to_string();
        let change = checked(&user, d.mechanism, None).and_then(|mechanism| {
            // The controller checks again against its own image.
            if !image.scram.get(&user).is_some_and(|c| c.contains_key(&mechanism)) {
                return Err(Refusal::new(
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist",
                ));
            }
            Ok(ScramChange::Delete { user: user.clone(), mechanism })
        });
        alter(user, change);
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        let change = checked(&user, u.mechanism, Some(u.iterations)).and_then(|mechanism| {
            Ok(ScramChange::Upsert { user: user.clone(), credential: salted(mechanism, u)? })
        });
        alter(user, change);
    }
    if !context.may_on_cluster(&shard.config, &image, Operation::Alter) {
        for (_, change) in &mut users {
            *change = Err(Refusal::new(
                ResponseError::ClusterAuthorizationFailed,
                "Authorization failed.",
            ));
        }
    }
    let changes: Vec<ScramChange> =
        users.iter().filter_map(|(_, c)| c.as_ref().ok().cloned()).collect();
    let mut outcomes = if changes.is_empty() {
        Outcomes::none()
    } else {
        Outcomes::of_changes(shard.controller.ask(Command::AlterScram { changes }).await)
    };
    let results = users
        .into_iter()
        .map(|(user, change)| {
            let outcome = change.and_then(|_| outcomes.next_outcome());
            let r = AlterUserScramCredentialsResult::default().with_user(str(&user));
            match outcome {
                Ok(()) => r,
                Err(refused) => r
                    .with_error_code(refused.code())
                    .with_error_message(Some(StrBytes::from_string(refused.message))),
            }
        })
        .collect();
    respond(request, &AlterUserScramCredentialsResponse::default().with_results(results))
}

/// The credential an upsertion carries, within bounds: a salted password
/// as long as the mechanism's hash, a salt of at most [`SALT_BYTES_MAX`]
/// (Kafka bounds neither; a record of megabytes would weigh on every
/// image and snapshot).
fn salted(mechanism: Mechanism, u: &ScramCredentialUpsertion) -> Result<ScramCredential, Refusal> {
    let unacceptable = |m: &str| Refusal::new(ResponseError::UnacceptableCredential, m);
    if u.salt.is_empty() || u.salt.len() > SALT_BYTES_MAX {
        return Err(unacceptable("The salt must be 1 to 1024 bytes"));
    }
    if u.salted_password.len() != mechanism.hash_bytes() {
        return Err(unacceptable("The salted password is not as long as the mechanism's hash"));
    }
    ScramCredential::from_salted_password(
        mechanism,
        &u.salt,
        &u.salted_password,
        u.iterations as u32,
    )
    .map_err(|_| unacceptable("Invalid salted password"))
}

/// The longest salt taken in an upsertion.
pub const SALT_BYTES_MAX: usize = 1024;

/// The mechanism of one alteration, after Kafka's checks of the user,
/// the mechanism and (for an upsertion) the iterations.
fn checked(user: &str, mechanism: i8, iterations: Option<i32>) -> Result<Mechanism, Refusal> {
    if user.is_empty() {
        return Err(Refusal::new(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    let m = Mechanism::ALL.into_iter().find(|m| m.kafka_type() == mechanism).ok_or_else(|| {
        Refusal::new(ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism")
    })?;
    match iterations {
        Some(i) if i < ITERATIONS_MIN as i32 => {
            Err(Refusal::new(ResponseError::UnacceptableCredential, "Too few iterations"))
        }
        Some(i) if i > ITERATIONS_MAX as i32 => {
            Err(Refusal::new(ResponseError::UnacceptableCredential, "Too many iterations"))
        }
        _ => Ok(m),
    }
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

//! SCRAM users: DescribeUserScramCredentials (API 50) and
//! AlterUserScramCredentials (API 51), sent to the bootstrap broker as
//! `kafka-configs --entity-type users` sends them (Kafka forwards them to
//! its controller). The password is salted by the caller: only a salt and
//! a salted password travel.
//!
//! Owns the requests and the per-user answers as [`KafkaError`]s; it must
//! not print or decide what an error means to a user.

use anyhow::{Context, Result};
use bytes::Bytes;
use net::kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use net::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use net::kafka_protocol::messages::*;

use crate::cluster::Client;
use crate::conn::str;
use crate::error::{check, KafkaError};

pub const DESCRIBE_USER_SCRAM_CREDENTIALS_VERSION: i16 = 0;
pub const ALTER_USER_SCRAM_CREDENTIALS_VERSION: i16 = 0;

/// A user's credentials: (mechanism, iterations) each, the mechanism as
/// Kafka numbers it (1: SCRAM-SHA-256, 2: SCRAM-SHA-512).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: String,
    pub credentials: Vec<(i8, i32)>,
}

/// Kafka's name of SCRAM mechanism number `m`.
pub fn mechanism_name(m: i8) -> &'static str {
    match m {
        1 => "SCRAM-SHA-256",
        2 => "SCRAM-SHA-512",
        _ => "UNKNOWN",
    }
}

/// The credentials of `users` (every user with one when `None`), each
/// user's or its refusal (RESOURCE_NOT_FOUND for a user without any).
pub fn describe(
    client: &mut Client,
    users: Option<&[String]>,
) -> Result<Vec<(String, Result<UserCredentials, KafkaError>)>> {
    let request = DescribeUserScramCredentialsRequest::default().with_users(
        users.map(|us| us.iter().map(|u| UserName::default().with_name(str(u))).collect()),
    );
    let r: DescribeUserScramCredentialsResponse = client.call_bootstrap(
        ApiKey::DescribeUserScramCredentials,
        DESCRIBE_USER_SCRAM_CREDENTIALS_VERSION,
        &request,
    )?;
    check(r.error_code, r.error_message.as_ref()).context("describing SCRAM users")?;
    Ok(r.results
        .iter()
        .map(|res| {
            let user = res.user.to_string();
            let answer =
                check(res.error_code, res.error_message.as_ref()).map(|()| UserCredentials {
                    user: user.clone(),
                    credentials: res
                        .credential_infos
                        .iter()
                        .map(|c| (c.mechanism, c.iterations))
                        .collect(),
                });
            (user, answer)
        })
        .collect())
}

/// One change of [`alter`].
#[derive(Debug, Clone)]
pub enum UserChange {
    /// Sets `user`'s credential of `mechanism` from a salted password.
    Upsert {
        user: String,
        mechanism: i8,
        iterations: i32,
        salt: Vec<u8>,
        salted: Vec<u8>,
    },
    Delete {
        user: String,
        mechanism: i8,
    },
}

/// Applies `changes` in one request; answers each user's outcome.
pub fn alter(
    client: &mut Client,
    changes: &[UserChange],
) -> Result<Vec<(String, Option<KafkaError>)>> {
    let mut request = AlterUserScramCredentialsRequest::default();
    for c in changes {
        match c {
            UserChange::Upsert { user, mechanism, iterations, salt, salted } => {
                request.upsertions.push(
                    ScramCredentialUpsertion::default()
                        .with_name(str(user))
                        .with_mechanism(*mechanism)
                        .with_iterations(*iterations)
                        .with_salt(Bytes::copy_from_slice(salt))
                        .with_salted_password(Bytes::copy_from_slice(salted)),
                );
            }
            UserChange::Delete { user, mechanism } => request.deletions.push(
                ScramCredentialDeletion::default().with_name(str(user)).with_mechanism(*mechanism),
            ),
        }
    }
    let r: AlterUserScramCredentialsResponse = client.call_bootstrap(
        ApiKey::AlterUserScramCredentials,
        ALTER_USER_SCRAM_CREDENTIALS_VERSION,
        &request,
    )?;
    Ok(r.results
        .iter()
        .map(|res| (res.user.to_string(), check(res.error_code, res.error_message.as_ref()).err()))
        .collect())
}

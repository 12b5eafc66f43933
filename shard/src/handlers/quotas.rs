//! DescribeClientQuotas and AlterClientQuotas v0-1: the client quotas of
//! the metadata image ([`crate::quotas`]), listed by filter and changed
//! through the controller. Listing needs DESCRIBE_CONFIGS on the cluster
//! and changing ALTER_CONFIGS (CLUSTER_AUTHORIZATION_FAILED otherwise),
//! as in Kafka. Each shard enforces what the image holds.

use std::collections::HashSet;

use auth::acl::Operation;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::context::ConnContext;
use crate::controller::{Command, QuotaChange};
use crate::error::Refusal;
use crate::quotas::{EntityName, QuotaEntity, QuotaKind, QuotaValue, CLIENT_ID, USER};
use crate::shard::Shard;

/// DescribeClientQuotas' match types.
const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const ANY: i8 = 2;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(ResponseError::InvalidRequest, message)
}

/// One filter component: the entity type it constrains, and the name it
/// asks for (`None`: any).
type Component = (&'static str, Option<EntityName>);

fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> Result<Component, Refusal> {
    let kind = match entity_type {
        USER => USER,
        CLIENT_ID => CLIENT_ID,
        other => return Err(invalid(format!("Unsupported quota entity type {other:?}"))),
    };
    let name = match (match_type, name) {
        (EXACT, Some(n)) => Some(EntityName::Named(n.to_string())),
        (EXACT, None) => return Err(invalid("An exact match needs a name")),
        (DEFAULT | ANY, Some(_)) => return Err(invalid("Only an exact match takes a name")),
        (DEFAULT, None) => Some(EntityName::Default),
        (ANY, None) => None,
        (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
    };
    Ok((kind, name))
}

fn matches(entity: &QuotaEntity, components: &[Component], strict: bool) -> bool {
    let of = |kind: &str| if kind == USER { &entity.user } else { &entity.client_id };
    let each = components.iter().all(|(kind, wanted)| match (of(kind), wanted) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(have), Some(wanted)) => have == wanted,
    });
    let types = usize::from(entity.user.is_some()) + usize::from(entity.client_id.is_some());
    each && (!strict || types == components.len())
}

pub fn describe(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeClientQuotasRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let refuse = |e: Refusal| {
        let response = DescribeClientQuotasResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(&e.message)))
            .with_entries(None);
        respond(request, &response)
    };
    if !context.may_on_cluster(&shard.config, &image, Operation::DescribeConfigs) {
        return refuse(Refusal::new(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ));
    }
    let mut seen = HashSet::new();
    let mut components = Vec::with_capacity(req.components.len());
    for c in &req.components {
        let parsed = component(&c.entity_type, c.match_type, c._match.as_deref());
        match parsed {
            Ok(c) if seen.insert(c.0) => components.push(c),
            Ok(c) => return refuse(invalid(format!("The entity type {:?} is given twice", c.0))),
            Err(e) => return refuse(e),
        }
    }
    let entries = image
        .quotas
        .iter()
        .filter(|(entity, _)| matches(entity, &components, req.strict))
        .map(|(entity, values)| {
            let entity = entity
                .parts()
                .into_iter()
                .map(|(t, n)| {
                    describe_client_quotas_response::EntityData::default()
                        .with_entity_type(s(t))
                        .with_entity_name(n.map(s))
                })
                .collect();
            let values = values
                .iter()
                .map(|(k, v)| {
                    describe_client_quotas_response::ValueData::default()
                        .with_key(s(k))
                        .with_value(v.0)
                })
                .collect();
            describe_client_quotas_response::EntryData::default()
                .with_entity(entity)
                .with_values(values)
        })
        .collect();
    let response = DescribeClientQuotasResponse::default()
        .with_error_message(None)
        .with_entries(Some(entries));
    respond(request, &response)
}

/// One entry's change, checked: a supported entity, known keys each once,
/// valid values.
fn change(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<QuotaChange, Refusal> {
    let parts = entry.entity.iter().map(|e| (e.entity_type.as_str(), e.entity_name.as_deref()));
    let entity = QuotaEntity::from_parts(parts).map_err(invalid)?;
    let mut keys = HashSet::new();
    let mut ops = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let kind = QuotaKind::of_key(&op.key).ok_or_else(|| {
            invalid(format!("Unknown or unsupported quota key {:?}", op.key.as_str()))
        })?;
        if !keys.insert(kind) {
            return Err(invalid(format!("The quota key {:?} is given twice", kind.key())));
        }
        if !op.remove && !kind.valid(op.value) {
            return Err(invalid(format!("Invalid value {} for {}", op.value, kind.key())));
        }
        ops.push((kind.key().to_string(), (!op.remove).then_some(QuotaValue(op.value))));
    }
    Ok(QuotaChange { entity, ops })
}

pub async fn alter(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: AlterClientQuotasRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let allowed = context.may_on_cluster(&shard.config, &image, Operation::AlterConfigs);
    drop(image);
    let parsed: Vec<Result<QuotaChange, Refusal>> = req
        .entries
        .iter()
        .map(|e| {
            if allowed {
                change(e)
            } else {
                Err(Refusal::new(
                    ResponseError::ClusterAuthorizationFailed,
                    "Cluster authorization failed.",
                ))
            }
        })
        .collect();
    let valid: Vec<QuotaChange> = parsed.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    let mut outcomes = if valid.is_empty() || req.validate_only {
        Outcomes::none()
    } else {
        Outcomes::of_changes(
            shard.controller.ask(Command::AlterClientQuotas { changes: valid }).await,
        )
    };
    let entries = req
        .entries
        .iter()
        .zip(parsed)
        .map(|(entry, parsed)| {
            let outcome = match parsed {
                Ok(_) if req.validate_only => Ok(()),
                Ok(_) => outcomes.next_outcome(),
                Err(e) => Err(e),
            };
            let entity = entry
                .entity
                .iter()
                .map(|e| {
                    alter_client_quotas_response::EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            let entry = alter_client_quotas_response::EntryData::default()
                .with_entity(entity)
                .with_error_message(None);
            match outcome {
                Ok(()) => entry,
                Err(e) => entry.with_error_code(e.code()).with_error_message(Some(s(&e.message))),
            }
        })
        .collect();
    respond(request, &AlterClientQuotasResponse::default().with_entries(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_kafka_describes_them() {
        let entity = |parts: &[(&str, Option<&str>)]| {
            QuotaEntity::from_parts(parts.iter().copied()).unwrap()
        };
        let alice_app = entity(&[("user", Some("alice")), ("client-id", Some("app"))]);
        let alice = entity(&[("user", Some("alice"))]);
        let default_user = entity(&[("user", None)]);
        let user = |m, n| component("user", m, n).unwrap();
        assert!(matches(&alice_app, &[user(EXACT, Some("alice"))], false));
        assert!(!matches(&alice_app, &[user(EXACT, Some("alice"))], true));
        assert!(matches(&alice, &[user(EXACT, Some("alice"))], true));
        assert!(matches(&default_user, &[user(DEFAULT, None)], true));
        assert!(!matches(&alice, &[user(DEFAULT, None)], false));
        assert!(matches(&alice, &[user(ANY, None)], false));
        assert!(!matches(&alice, &[component("client-id", ANY, None).unwrap()], false));
        assert!(matches(&alice, &[], false) && !matches(&alice, &[], true));
        assert!(component("ip", ANY, None).is_err());
        assert!(component("user", EXACT, None).is_err());
        assert!(component("user", 7, None).is_err());
        assert!(component("user", DEFAULT, Some("x")).is_err());
        assert!(component("user", ANY, Some("")).is_err());
    }
}

//! Client quotas: DescribeClientQuotas (API 48) and AlterClientQuotas
//! (API 49), sent to the bootstrap broker as `kafka-configs --entity-type
//! users|clients` sends them.
//!
//! Owns the requests and the per-entity answers as [`KafkaError`]s; it
//! must not print or decide what an error means to a user.

use anyhow::{Context, Result};
use net::kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use net::kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use net::kafka_protocol::messages::*;

use crate::cluster::Client;
use crate::conn::str;
use crate::error::{check, KafkaError};

pub const DESCRIBE_CLIENT_QUOTAS_VERSION: i16 = 1;
pub const ALTER_CLIENT_QUOTAS_VERSION: i16 = 1;

/// An entity: `(type, name)` pairs, type `user` or `client-id`, name
/// `None` for the type's default.
pub type Entity = Vec<(String, Option<String>)>;

/// A quota entity with its values by key.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityQuotas {
    pub entity: Entity,
    pub values: Vec<(String, f64)>,
}

/// How a filter component matches a type's name: DescribeClientQuotas'
/// match types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exactly(String),
    Default,
    Any,
}

/// The quotas of the entities that have every component's type with a
/// matching name (and, `strict`, no other type).
pub fn describe(
    client: &mut Client,
    components: &[(String, Match)],
    strict: bool,
) -> Result<Vec<EntityQuotas>> {
    let components = components
        .iter()
        .map(|(kind, m)| {
            let c = ComponentData::default().with_entity_type(str(kind));
            match m {
                Match::Exactly(name) => c.with_match_type(0).with_match(Some(str(name))),
                Match::Default => c.with_match_type(1).with_match(None),
                Match::Any => c.with_match_type(2).with_match(None),
            }
        })
        .collect();
    let request =
        DescribeClientQuotasRequest::default().with_components(components).with_strict(strict);
    let r: DescribeClientQuotasResponse = client.call_bootstrap(
        ApiKey::DescribeClientQuotas,
        DESCRIBE_CLIENT_QUOTAS_VERSION,
        &request,
    )?;
    check(r.error_code, r.error_message.as_ref()).context("describing client quotas")?;
    Ok(r.entries
        .unwrap_or_default()
        .iter()
        .map(|e| EntityQuotas {
            entity: e
                .entity
                .iter()
                .map(|d| (d.entity_type.to_string(), d.entity_name.as_ref().map(|n| n.to_string())))
                .collect(),
            values: e.values.iter().map(|v| (v.key.to_string(), v.value)).collect(),
        })
        .collect())
}

/// Sets (`Some`) and removes (`None`) quota keys of one entity; answers
/// its outcome.
pub fn alter(
    client: &mut Client,
    entity: &Entity,
    ops: &[(String, Option<f64>)],
    validate_only: bool,
) -> Result<Option<KafkaError>> {
    let entity = entity
        .iter()
        .map(|(kind, name)| {
            EntityData::default()
                .with_entity_type(str(kind))
                .with_entity_name(name.as_deref().map(str))
        })
        .collect();
    let ops = ops
        .iter()
        .map(|(key, value)| {
            OpData::default()
                .with_key(str(key))
                .with_value(value.unwrap_or(0.0))
                .with_remove(value.is_none())
        })
        .collect();
    let request = AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(entity).with_ops(ops)])
        .with_validate_only(validate_only);
    let r: AlterClientQuotasResponse =
        client.call_bootstrap(ApiKey::AlterClientQuotas, ALTER_CLIENT_QUOTAS_VERSION, &request)?;
    let entry = r.entries.first().context("no entry in the AlterClientQuotas response")?;
    Ok(check(entry.error_code, entry.error_message.as_ref()).err())
}

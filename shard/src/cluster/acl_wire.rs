//! ACL commands and answers between controllers, as JSON inside
//! [`super::rpc`]'s frames: bindings as the `acl` records they become
//! (the metadata log's format), filters with `null` for "any" and
//! `pattern` one of `"any"`, `"match"` or a pattern type's code.
//!
//! Pure encoding; used by `rpc` only.

use auth::acl::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};
use serde_json::{json, Value};

use crate::ids::NodeId;
use crate::metadata::MetadataRecord;

pub fn bindings_json(bindings: &[AclBinding]) -> Value {
    bindings.iter().map(|b| MetadataRecord::Acl(b.clone()).to_json()).collect()
}

pub fn bindings_of(v: &Value) -> Result<Vec<AclBinding>, String> {
    v.as_array()
        .ok_or("bindings")?
        .iter()
        .map(|b| match MetadataRecord::from_json(b, NodeId(0))? {
            MetadataRecord::Acl(b) => Ok(b),
            other => Err(format!("an ACL binding as {other:?}")),
        })
        .collect()
}

pub fn filter_json(f: &AclFilter) -> Value {
    json!({
        "resource_type": f.resource_type.map(|t| t.code()),
        "name": f.name,
        "pattern": match f.pattern {
            PatternFilter::Any => json!("any"),
            PatternFilter::Match => json!("match"),
            PatternFilter::Exactly(p) => json!(p.code()),
        },
        "principal": f.principal,
        "host": f.host,
        "operation": f.operation.map(|o| o.code()),
        "permission": f.permission.map(|p| p.code()),
    })
}

pub fn filter_of(v: &Value) -> Result<AclFilter, String> {
    fn code<T>(v: &Value, name: &str, from: impl Fn(i8) -> Option<T>) -> Result<Option<T>, String> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(c) => c
                .as_i64()
                .and_then(|c| i8::try_from(c).ok())
                .and_then(from)
                .map(Some)
                .ok_or_else(|| format!("filter {name} {c}")),
        }
    }
    let text = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let pattern = match v.get("pattern") {
        Some(Value::String(s)) if s == "any" => PatternFilter::Any,
        Some(Value::String(s)) if s == "match" => PatternFilter::Match,
        Some(p) => PatternFilter::Exactly(
            p.as_i64()
                .and_then(|c| i8::try_from(c).ok())
                .and_then(PatternType::from_code)
                .ok_or_else(|| format!("filter pattern {p}"))?,
        ),
        None => return Err("filter without pattern".into()),
    };
    Ok(AclFilter {
        resource_type: code(v, "resource_type", ResourceType::from_code)?,
        name: text("name"),
        pattern,
        principal: text("principal"),
        host: text("host"),
        operation: code(v, "operation", Operation::from_code)?,
        permission: code(v, "permission", Permission::from_code)?,
    })
}

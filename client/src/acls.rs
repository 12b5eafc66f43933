//! ACLs: CreateAcls (API 30), DescribeAcls (29) and DeleteAcls (31), v1,
//! sent to the bootstrap broker as `kafka-acls.sh` sends them. Bindings and
//! filters are Kafka's protocol numbers; naming them is the caller's.
//!
//! Owns the requests and the answers as [`KafkaError`]s; it must not print
//! or decide what an error means to a user.

use anyhow::{Context, Result};
use net::kafka_protocol::messages::create_acls_request::AclCreation;
use net::kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::StrBytes;

use crate::cluster::Client;
use crate::conn::str;
use crate::error::{check, KafkaError};

pub const ACLS_VERSION: i16 = 1;

/// One binding, as the protocol numbers its enums.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: i8,
    pub name: String,
    pub pattern: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// A filter: `None` and the code 1 (ANY) match anything; pattern 2 is
/// MATCH (the patterns that cover the name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub name: Option<String>,
    pub pattern: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

fn opt(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(str)
}

/// Adds `acls` in one request; each one's refusal, if any, in order.
pub fn create(client: &mut Client, acls: &[Acl]) -> Result<Vec<Option<KafkaError>>> {
    let creations = acls
        .iter()
        .map(|a| {
            AclCreation::default()
                .with_resource_type(a.resource_type)
                .with_resource_name(str(&a.name))
                .with_resource_pattern_type(a.pattern)
                .with_principal(str(&a.principal))
                .with_host(str(&a.host))
                .with_operation(a.operation)
                .with_permission_type(a.permission)
        })
        .collect();
    let r: CreateAclsResponse = client.call_bootstrap(
        ApiKey::CreateAcls,
        ACLS_VERSION,
        &CreateAclsRequest::default().with_creations(creations),
    )?;
    Ok(r.results.iter().map(|c| check(c.error_code, c.error_message.as_ref()).err()).collect())
}

/// The bindings `filter` selects.
pub fn describe(client: &mut Client, filter: &AclFilter) -> Result<Vec<Acl>> {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(filter.resource_type)
        .with_resource_name_filter(opt(&filter.name))
        .with_pattern_type_filter(filter.pattern)
        .with_principal_filter(opt(&filter.principal))
        .with_host_filter(opt(&filter.host))
        .with_operation(filter.operation)
        .with_permission_type(filter.permission);
    let r: DescribeAclsResponse =
        client.call_bootstrap(ApiKey::DescribeAcls, ACLS_VERSION, &request)?;
    check(r.error_code, r.error_message.as_ref()).context("describing ACLs")?;
    Ok(r.resources
        .iter()
        .flat_map(|res| {
            res.acls.iter().map(move |a| Acl {
                resource_type: res.resource_type,
                name: res.resource_name.to_string(),
                pattern: res.pattern_type,
                principal: a.principal.to_string(),
                host: a.host.to_string(),
                operation: a.operation,
                permission: a.permission_type,
            })
        })
        .collect())
}

/// Removes what each filter selects; per filter, the bindings removed or
/// its refusal.
pub fn delete(
    client: &mut Client,
    filters: &[AclFilter],
) -> Result<Vec<Result<Vec<Acl>, KafkaError>>> {
    let filters = filters
        .iter()
        .map(|f| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(f.resource_type)
                .with_resource_name_filter(opt(&f.name))
                .with_pattern_type_filter(f.pattern)
                .with_principal_filter(opt(&f.principal))
                .with_host_filter(opt(&f.host))
                .with_operation(f.operation)
                .with_permission_type(f.permission)
        })
        .collect();
    let r: DeleteAclsResponse = client.call_bootstrap(
        ApiKey::DeleteAcls,
        ACLS_VERSION,
        &DeleteAclsRequest::default().with_filters(filters),
    )?;
    Ok(r.filter_results
        .iter()
        .map(|f| {
            check(f.error_code, f.error_message.as_ref()).map(|()| {
                f.matching_acls
                    .iter()
                    .map(|a| Acl {
                        resource_type: a.resource_type,
                        name: a.resource_name.to_string(),
                        pattern: a.pattern_type,
                        principal: a.principal.to_string(),
                        host: a.host.to_string(),
                        operation: a.operation,
                        permission: a.permission_type,
                    })
                    .collect()
            })
        })
        .collect())
}

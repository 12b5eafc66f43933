//! CreateAcls, DescribeAcls and DeleteAcls v1-3: the ACL bindings of the
//! metadata image, listed (grouped by resource pattern, as Kafka answers),
//! added and removed through the controller. With the authorizer off each
//! answers SECURITY_DISABLED, as Kafka without an authorizer does; on,
//! listing needs DESCRIBE on the cluster and changing ALTER
//! (CLUSTER_AUTHORIZATION_FAILED otherwise).

use std::collections::BTreeMap;

use auth::acl::{
    AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult, Outcomes};
use crate::context::ConnContext;
use crate::controller::{Answer, Command};
use crate::error::Refusal;
use crate::shard::Shard;

/// The protocol's ANY in filters, and MATCH for pattern types.
const ANY: i8 = 1;
const MATCH: i8 = 2;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Why the request is refused whole, if it is: no authorizer, or no
/// `operation` on the cluster.
fn refused(shard: &Shard, context: &ConnContext, operation: Operation) -> Option<Refusal> {
    if !shard.config.authorizer {
        return Some(Refusal::new(
            ResponseError::SecurityDisabled,
            "No Authorizer is configured (corelog serve --authorizer on)",
        ));
    }
    let image = shard.metadata.image();
    (!context.may_on_cluster(&shard.config, &image, operation)).then(|| {
        Refusal::new(ResponseError::ClusterAuthorizationFailed, "Cluster authorization failed.")
    })
}

/// A binding from a creation's fields, or Kafka's INVALID_REQUEST words.
fn binding(
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> Result<AclBinding, Refusal> {
    let bad = |what: &str| Refusal::new(ResponseError::InvalidRequest, what);
    Ok(AclBinding {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| bad("Invalid resource type"))?,
        name: name.to_string(),
        pattern: PatternType::from_code(pattern).ok_or_else(|| bad("Invalid pattern type"))?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: Operation::from_code(operation).ok_or_else(|| bad("Invalid operation"))?,
        permission: Permission::from_code(permission)
            .ok_or_else(|| bad("Invalid permission type"))?,
    })
}

pub async fn create(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: CreateAclsRequest = request.decode_body()?;
    let result = |r: Result<(), Refusal>| match r {
        Ok(()) => AclCreationResult::default(),
        Err(e) => AclCreationResult::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(&e.message))),
    };
    if let Some(e) = refused(shard, context, Operation::Alter) {
        let results = req.creations.iter().map(|_| result(Err(e.clone()))).collect();
        return respond(request, &CreateAclsResponse::default().with_results(results));
    }
    let parsed: Vec<Result<AclBinding, Refusal>> = req
        .creations
        .iter()
        .map(|c| {
            binding(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|b| b.as_ref().ok().cloned()).collect();
    let mut outcomes = if valid.is_empty() {
        Outcomes::none()
    } else {
        Outcomes::of_changes(shard.controller.ask(Command::CreateAcls { bindings: valid }).await)
    };
    let results =
        parsed.into_iter().map(|b| result(b.and_then(|_| outcomes.next_outcome()))).collect();
    respond(request, &CreateAclsResponse::default().with_results(results))
}

/// A filter from DescribeAcls' or DeleteAcls' fields (ANY as `None`).
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, Refusal> {
    let bad = |what: &str| Refusal::new(ResponseError::InvalidRequest, what);
    let any_or = |code: i8| (code != ANY).then_some(code);
    Ok(AclFilter {
        resource_type: match any_or(resource_type) {
            None => None,
            Some(c) => {
                Some(ResourceType::from_code(c).ok_or_else(|| bad("Invalid resource type"))?)
            }
        },
        name: name.map(|n| n.to_string()),
        pattern: match pattern {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            c => PatternFilter::Exactly(
                PatternType::from_code(c).ok_or_else(|| bad("Invalid pattern type"))?,
            ),
        },
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: match any_or(operation) {
            None => None,
            Some(c) => Some(Operation::from_code(c).ok_or_else(|| bad("Invalid operation"))?),
        },
        permission: match any_or(permission) {
            None => None,
            Some(c) => {
                Some(Permission::from_code(c).ok_or_else(|| bad("Invalid permission type"))?)
            }
        },
    })
}

pub fn describe(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeAclsRequest = request.decode_body()?;
    let fail = |e: Refusal| {
        respond(
            request,
            &DescribeAclsResponse::default()
                .with_error_code(e.code())
                .with_error_message(Some(s(&e.message))),
        )
    };
    if let Some(e) = refused(shard, context, Operation::Describe) {
        return fail(e);
    }
    let f = match filter(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let image = shard.metadata.image();
    // One entry per resource pattern, its bindings' entries under it.
    let mut resources: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for b in image.acls.iter().filter(|b| f.matches(b)) {
        resources.entry((b.resource_type, b.name.clone(), b.pattern)).or_default().push(
            AclDescription::default()
                .with_principal(s(&b.principal))
                .with_host(s(&b.host))
                .with_operation(b.operation.code())
                .with_permission_type(b.permission.code()),
        );
    }
    let resources = resources
        .into_iter()
        .map(|((t, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(t.code())
                .with_resource_name(s(&name))
                .with_pattern_type(pattern.code())
                .with_acls(acls)
        })
        .collect();
    respond(request, &DescribeAclsResponse::default().with_resources(resources))
}

pub async fn delete(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DeleteAclsRequest = request.decode_body()?;
    let failed = |e: &Refusal| {
        DeleteAclsFilterResult::default()
            .with_error_code(e.code())
            .with_error_message(Some(s(&e.message)))
    };
    if let Some(e) = refused(shard, context, Operation::Alter) {
        let results = req.filters.iter().map(|_| failed(&e)).collect();
        return respond(request, &DeleteAclsResponse::default().with_filter_results(results));
    }
    let parsed: Vec<Result<AclFilter, Refusal>> = req
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
    let mut answers = match shard.controller.ask(Command::DeleteAcls { filters: valid }).await {
        Ok(Answer::Acls(a)) => Ok(a.into_iter()),
        Ok(other) => Err(Refusal::new(ResponseError::UnknownServerError, format!("{other:?}"))),
        Err(e) => Err(e.refusal()),
    };
    let results = parsed
        .into_iter()
        .map(|f| {
            let outcome = f.and_then(|_| match &mut answers {
                Ok(each) => each.next().unwrap_or_else(|| {
                    Err(Refusal::new(ResponseError::UnknownServerError, "no outcome"))
                }),
                Err(e) => Err(e.clone()),
            });
            match outcome {
                Err(e) => failed(&e),
                Ok(removed) => DeleteAclsFilterResult::default().with_matching_acls(
                    removed
                        .iter()
                        .map(|b| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(b.resource_type.code())
                                .with_resource_name(s(&b.name))
                                .with_pattern_type(b.pattern.code())
                                .with_principal(s(&b.principal))
                                .with_host(s(&b.host))
                                .with_operation(b.operation.code())
                                .with_permission_type(b.permission.code())
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    respond(request, &DeleteAclsResponse::default().with_filter_results(results))
}

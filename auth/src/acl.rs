//! ACLs and the decision they make, with the semantics of Kafka's
//! `StandardAuthorizer`: what a principal from a host may do to a resource.
//!
//! - A binding is a resource pattern (type, name, LITERAL or PREFIXED; the
//!   literal name `*` is every resource of the type) and an entry
//!   (principal `User:NAME` or `User:*`, host or `*`, operation, ALLOW or
//!   DENY).
//! - A request is allowed when the principal is a super user, or some
//!   matching binding allows the operation and none denies it: DENY wins.
//!   No matching binding means no (`allow.everyone.if.no.acl.found=false`).
//! - ALL covers every operation, for ALLOW and DENY alike. An ALLOW of
//!   READ, WRITE, DELETE or ALTER also allows DESCRIBE, and one of
//!   ALTER_CONFIGS also allows DESCRIBE_CONFIGS (Kafka's implied
//!   operations); a DENY covers only its own operation (and ALL).
//!
//! Filters ([`AclFilter`]) select bindings as DescribeAcls and DeleteAcls
//! do, with Kafka's ANY and MATCH. Pure data and functions: each shard
//! evaluates its own copy; nothing here does I/O or keeps time.

use std::collections::BTreeSet;

/// The one name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The literal resource name, principal and host that match every one.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// Kafka's resource types (their protocol codes in [`ResourceType::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

impl ResourceType {
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Topic,
        ResourceType::Group,
        ResourceType::Cluster,
        ResourceType::TransactionalId,
        ResourceType::DelegationToken,
        ResourceType::User,
    ];

    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Kafka's name: `TOPIC`, `GROUP`, `CLUSTER`, `TRANSACTIONAL_ID`, ...
    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "TOPIC",
            ResourceType::Group => "GROUP",
            ResourceType::Cluster => "CLUSTER",
            ResourceType::TransactionalId => "TRANSACTIONAL_ID",
            ResourceType::DelegationToken => "DELEGATION_TOKEN",
            ResourceType::User => "USER",
        }
    }
}

/// How a binding's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    /// The name itself, or every name for `*`.
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<PatternType> {
        [PatternType::Literal, PatternType::Prefixed].into_iter().find(|p| p.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        }
    }
}

/// Kafka's ACL operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

impl Operation {
    pub const ALL: [Operation; 13] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
        Operation::CreateTokens,
        Operation::DescribeTokens,
    ];

    pub fn code(self) -> i8 {
        use Operation::*;
        match self {
            All => 2,
            Read => 3,
            Write => 4,
            Create => 5,
            Delete => 6,
            Alter => 7,
            Describe => 8,
            ClusterAction => 9,
            DescribeConfigs => 10,
            AlterConfigs => 11,
            IdempotentWrite => 12,
            CreateTokens => 13,
            DescribeTokens => 14,
        }
    }

    pub fn from_code(code: i8) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The operations a resource type has (Kafka's
    /// `AclEntry.supportedOperations`): what `authorized_operations`
    /// reports on.
    pub fn supported(resource_type: ResourceType) -> &'static [Operation] {
        use Operation::*;
        match resource_type {
            ResourceType::Topic => {
                &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs]
            }
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }

    /// Kafka's name: `READ`, `CLUSTER_ACTION`, ...
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            All => "ALL",
            Read => "READ",
            Write => "WRITE",
            Create => "CREATE",
            Delete => "DELETE",
            Alter => "ALTER",
            Describe => "DESCRIBE",
            ClusterAction => "CLUSTER_ACTION",
            DescribeConfigs => "DESCRIBE_CONFIGS",
            AlterConfigs => "ALTER_CONFIGS",
            IdempotentWrite => "IDEMPOTENT_WRITE",
            CreateTokens => "CREATE_TOKENS",
            DescribeTokens => "DESCRIBE_TOKENS",
        }
    }

    /// By Kafka's name or kafka-acls.sh's (`ClusterAction`), any case.
    pub fn parse(name: &str) -> Option<Operation> {
        let wanted: String = name.chars().filter(|c| *c != '_').collect();
        Operation::ALL.into_iter().find(|o| o.name().replace('_', "").eq_ignore_ascii_case(&wanted))
    }

    /// Whether an ALLOW of `self` allows `wanted`.
    fn allows(self, wanted: Operation) -> bool {
        use Operation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY of `self` denies `wanted`.
    fn denies(self, wanted: Operation) -> bool {
        self == Operation::All || self == wanted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<Permission> {
        [Permission::Deny, Permission::Allow].into_iter().find(|p| p.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::Deny => "DENY",
            Permission::Allow => "ALLOW",
        }
    }
}

/// One ACL: a resource pattern and an entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    /// `User:NAME`, or `User:*` for every user.
    pub principal: String,
    /// An address as Java's `InetAddress.getHostAddress()` spells it
    /// (`0:0:0:0:0:0:0:1`, not `::1`: the callers format it so), or `*`
    /// for every host.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Why Kafka would refuse to create this binding (CreateAcls'
    /// `INVALID_REQUEST` message), if it would.
    pub fn invalid(&self) -> Option<String> {
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Some(format!("The only valid name for the CLUSTER resource is {CLUSTER_NAME}"));
        }
        if self.name.is_empty() {
            return Some("Invalid empty resource name".into());
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Some(format!("principal {:?} is not TYPE:NAME", self.principal)),
        }
        if self.host.is_empty() {
            return Some("a host must not be empty".into());
        }
        None
    }

    /// Whether this binding's pattern covers the resource `name` of
    /// `resource_type`.
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
            }
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }
}

/// The bindings in force and the super users: the whole decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorizer {
    /// Principals (`User:NAME`) allowed everything.
    pub super_users: BTreeSet<String>,
    pub bindings: BTreeSet<AclBinding>,
}

impl Authorizer {
    /// Whether `principal` connected from `host` may do `operation` to
    /// the resource `name` of `resource_type`.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.super_users.contains(principal)
            || decide(&self.bindings, principal, host, operation, resource_type, name)
    }

    /// The bindings `filter` selects (DescribeAcls, DeleteAcls).
    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = &'a AclBinding> {
        self.bindings.iter().filter(move |b| filter.matches(b))
    }
}

/// [`Authorizer::authorize`] without super users: what `bindings` decide.
pub fn decide<'a>(
    bindings: impl IntoIterator<Item = &'a AclBinding>,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let mut allowed = false;
    for b in bindings {
        if !b.covers(resource_type, name) || !b.applies_to(principal, host) {
            continue;
        }
        match b.permission {
            Permission::Deny if b.operation.denies(operation) => return false,
            Permission::Allow if b.operation.allows(operation) => allowed = true,
            _ => {}
        }
    }
    allowed
}

/// How a filter selects patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type; the name, if given, exactly.
    Any,
    /// The patterns that would cover the name (every pattern if none):
    /// the same literal name, the literal `*`, or a prefix of it.
    Match,
    Exactly(PatternType),
}

/// DescribeAcls' and DeleteAcls' selection: `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let name_ok = match (self.pattern, &self.name) {
            (_, None) => true,
            (PatternFilter::Any, Some(n)) => &b.name == n,
            (PatternFilter::Exactly(_), Some(n)) => &b.name == n,
            (PatternFilter::Match, Some(n)) => b.covers(b.resource_type, n),
        };
        let pattern_ok = match self.pattern {
            PatternFilter::Exactly(p) => b.pattern == p,
            PatternFilter::Any | PatternFilter::Match => true,
        };
        self.resource_type.is_none_or(|t| t == b.resource_type)
            && name_ok
            && pattern_ok
            && self.principal.as_ref().is_none_or(|p| p == &b.principal)
            && self.host.as_ref().is_none_or(|h| h == &b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// Whether `bindings` let `principal` from `host` do `operation` to some
/// resource of `resource_type`: Kafka's `authorizeByResourceType`, with
/// which an idempotent producer with WRITE on any topic may get a
/// producer id (KIP-679). Some ALLOW that applies and that no applying
/// DENY of the operation covers: a DENY of `*`, of the same literal name,
/// or of a prefix of the ALLOW's name.
pub fn allows_any<'a>(
    bindings: impl IntoIterator<Item = &'a AclBinding> + Clone,
    principal: &str,
    host: &str,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    let applying = || {
        bindings
            .clone()
            .into_iter()
            .filter(move |b| b.resource_type == resource_type && b.applies_to(principal, host))
    };
    let denies: Vec<&AclBinding> = applying()
        .filter(|b| b.permission == Permission::Deny && b.operation.denies(operation))
        .collect();
    let covered = |allow: &AclBinding| {
        denies.iter().any(|d| match d.pattern {
            PatternType::Literal => {
                d.name == WILDCARD
                    || (allow.pattern == PatternType::Literal && d.name == allow.name)
            }
            PatternType::Prefixed => allow.name.starts_with(&d.name),
        })
    };
    applying()
        .any(|b| b.permission == Permission::Allow && b.operation.allows(operation) && !covered(b))
}

#[cfg(test)]
mod tests;

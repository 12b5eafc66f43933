//! Kafka's authorizer semantics, case by case: patterns, wildcards, deny
//! over allow, implied operations, super users, no ACL meaning no; and
//! DescribeAcls' filters with ANY and MATCH.

use super::*;

fn acl(
    t: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    op: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        resource_type: t,
        name: name.into(),
        pattern,
        principal: principal.into(),
        host: WILDCARD.into(),
        operation: op,
        permission,
    }
}

fn authorizer(bindings: Vec<AclBinding>) -> Authorizer {
    Authorizer { super_users: BTreeSet::new(), bindings: bindings.into_iter().collect() }
}

use Operation::*;
use PatternType::*;
use Permission::*;
use ResourceType::*;

#[test]
fn no_acl_means_no_and_super_users_may_do_anything() {
    let mut a = authorizer(vec![]);
    assert!(!a.authorize("User:alice", "10.0.0.1", Read, Topic, "t"));
    a.super_users.insert("User:admin".into());
    assert!(a.authorize("User:admin", "10.0.0.1", Alter, Cluster, CLUSTER_NAME));
    assert!(!a.authorize("User:alice", "10.0.0.1", Read, Topic, "t"));
}

#[test]
fn literal_wildcard_and_prefixed_patterns_cover_what_kafka_s_do() {
    let a = authorizer(vec![
        acl(Topic, "orders", Literal, "User:alice", Read, Allow),
        acl(Topic, "logs-", Prefixed, "User:alice", Write, Allow),
        acl(Group, WILDCARD, Literal, "User:alice", Read, Allow),
    ]);
    assert!(a.authorize("User:alice", "h", Read, Topic, "orders"));
    assert!(!a.authorize("User:alice", "h", Read, Topic, "orders2"), "literal is exact");
    assert!(a.authorize("User:alice", "h", Write, Topic, "logs-app"));
    assert!(a.authorize("User:alice", "h", Write, Topic, "logs-"));
    assert!(!a.authorize("User:alice", "h", Write, Topic, "logs"), "shorter than the prefix");
    assert!(a.authorize("User:alice", "h", Read, Group, "any-group"));
    assert!(!a.authorize("User:alice", "h", Read, TransactionalId, "orders"), "another type");
    assert!(!a.authorize("User:bob", "h", Read, Topic, "orders"), "another user");
}

#[test]
fn deny_wins_over_allow_whatever_the_patterns() {
    let a = authorizer(vec![
        acl(Topic, WILDCARD, Literal, WILDCARD_PRINCIPAL, All, Allow),
        acl(Topic, "secret-", Prefixed, "User:bob", Read, Deny),
    ]);
    assert!(a.authorize("User:bob", "h", Read, Topic, "public"));
    assert!(!a.authorize("User:bob", "h", Read, Topic, "secret-plans"));
    assert!(a.authorize("User:bob", "h", Write, Topic, "secret-plans"), "only READ is denied");
    assert!(a.authorize("User:carol", "h", Read, Topic, "secret-plans"));
}

#[test]
fn hosts_match_exactly_or_by_wildcard() {
    let mut only_one_host = acl(Topic, "t", Literal, "User:alice", Read, Allow);
    only_one_host.host = "10.0.0.1".into();
    let a = authorizer(vec![only_one_host]);
    assert!(a.authorize("User:alice", "10.0.0.1", Read, Topic, "t"));
    assert!(!a.authorize("User:alice", "10.0.0.2", Read, Topic, "t"));

    // Allowed from everywhere, denied from one host.
    let mut deny_one = acl(Topic, "t", Literal, "User:alice", Read, Deny);
    deny_one.host = "10.0.0.9".into();
    let a = authorizer(vec![acl(Topic, "t", Literal, "User:alice", Read, Allow), deny_one]);
    assert!(a.authorize("User:alice", "10.0.0.1", Read, Topic, "t"));
    assert!(!a.authorize("User:alice", "10.0.0.9", Read, Topic, "t"));
}

#[test]
fn wildcard_denies_reach_everyone_but_super_users() {
    let mut a = authorizer(vec![
        acl(Topic, "t", Literal, "User:alice", All, Allow),
        acl(Topic, "t", Literal, WILDCARD_PRINCIPAL, Write, Deny),
    ]);
    assert!(a.authorize("User:alice", "h", Read, Topic, "t"));
    assert!(!a.authorize("User:alice", "h", Write, Topic, "t"), "User:* denies alice too");
    a.super_users.insert("User:alice".into());
    assert!(a.authorize("User:alice", "h", Write, Topic, "t"), "a super user passes any deny");

    // A DENY of DESCRIBE beats the DESCRIBE that an ALLOW of READ implies.
    let a = authorizer(vec![
        acl(Topic, "t", Literal, "User:u", Read, Allow),
        acl(Topic, "t", Literal, "User:u", Describe, Deny),
    ]);
    assert!(a.authorize("User:u", "h", Read, Topic, "t"));
    assert!(!a.authorize("User:u", "h", Describe, Topic, "t"));
}

#[test]
fn allowed_operations_imply_describe_and_denies_imply_nothing_but_themselves() {
    for op in [Read, Write, Delete, Alter] {
        let a = authorizer(vec![acl(Topic, "t", Literal, "User:u", op, Allow)]);
        assert!(a.authorize("User:u", "h", Describe, Topic, "t"), "{op:?} implies DESCRIBE");
    }
    for op in [Create, ClusterAction, IdempotentWrite, DescribeConfigs] {
        let a = authorizer(vec![acl(Topic, "t", Literal, "User:u", op, Allow)]);
        assert!(!a.authorize("User:u", "h", Describe, Topic, "t"), "{op:?} implies no DESCRIBE");
    }
    let a = authorizer(vec![acl(Topic, "t", Literal, "User:u", AlterConfigs, Allow)]);
    assert!(a.authorize("User:u", "h", DescribeConfigs, Topic, "t"));
    assert!(!a.authorize("User:u", "h", Alter, Topic, "t"));

    // A DENY of READ does not deny DESCRIBE that a WRITE allows; a DENY of
    // ALL denies everything.
    let a = authorizer(vec![
        acl(Topic, "t", Literal, "User:u", Write, Allow),
        acl(Topic, "t", Literal, "User:u", Read, Deny),
    ]);
    assert!(a.authorize("User:u", "h", Describe, Topic, "t"));
    let a = authorizer(vec![
        acl(Topic, "t", Literal, "User:u", All, Allow),
        acl(Topic, "t", Literal, "User:u", All, Deny),
    ]);
    assert!(Operation::ALL.iter().all(|&op| !a.authorize("User:u", "h", op, Topic, "t")));
}

#[test]
fn codes_are_kafka_s_both_ways() {
    assert_eq!((Topic.code(), Cluster.code(), User.code()), (2, 4, 7));
    assert_eq!((Literal.code(), Prefixed.code()), (3, 4));
    assert_eq!(
        (All.code(), Read.code(), IdempotentWrite.code(), DescribeTokens.code()),
        (2, 3, 12, 14)
    );
    assert_eq!((Deny.code(), Allow.code()), (2, 3));
    for op in Operation::ALL {
        assert_eq!(Operation::from_code(op.code()), Some(op));
    }
    for t in ResourceType::ALL {
        assert_eq!(ResourceType::from_code(t.code()), Some(t));
    }
    assert_eq!(
        (Operation::from_code(1), ResourceType::from_code(1), PatternType::from_code(2)),
        (None, None, None)
    );
}

#[test]
fn invalid_bindings_are_named() {
    let ok = acl(Topic, "t", Literal, "User:u", Read, Allow);
    assert_eq!(ok.invalid(), None);
    let cluster = acl(Cluster, "other", Literal, "User:u", Alter, Allow);
    assert!(cluster.invalid().unwrap().contains(CLUSTER_NAME));
    assert!(acl(Cluster, CLUSTER_NAME, Literal, "User:u", Alter, Allow).invalid().is_none());
    for principal in ["alice", "User:", ":alice"] {
        assert!(
            acl(Topic, "t", Literal, principal, Read, Allow).invalid().is_some(),
            "{principal}"
        );
    }
    assert!(acl(Topic, "", Literal, "User:u", Read, Allow).invalid().is_some());
}

#[test]
fn filters_select_as_describe_acls_does() {
    let a = authorizer(vec![
        acl(Topic, "orders", Literal, "User:alice", Read, Allow),
        acl(Topic, WILDCARD, Literal, "User:bob", Read, Allow),
        acl(Topic, "ord", Prefixed, "User:carol", Write, Deny),
        acl(Group, "orders", Literal, "User:alice", Read, Allow),
    ]);
    let all = AclFilter {
        resource_type: None,
        name: None,
        pattern: PatternFilter::Any,
        principal: None,
        host: None,
        operation: None,
        permission: None,
    };
    let names = |f: &AclFilter| {
        a.matching(f)
            .map(|b| format!("{:?}:{}:{}", b.resource_type, b.name, b.principal))
            .collect::<Vec<_>>()
    };
    assert_eq!(a.matching(&all).count(), 4);
    let topics_named_orders =
        AclFilter { resource_type: Some(Topic), name: Some("orders".into()), ..all.clone() };
    assert_eq!(names(&topics_named_orders), ["Topic:orders:User:alice"]);
    let covering_orders =
        AclFilter { pattern: PatternFilter::Match, ..topics_named_orders.clone() };
    assert_eq!(
        names(&covering_orders),
        ["Topic:*:User:bob", "Topic:ord:User:carol", "Topic:orders:User:alice"]
    );
    // MATCH never includes a prefix longer than the name.
    let covering_or = AclFilter { name: Some("or".into()), ..covering_orders.clone() };
    assert_eq!(names(&covering_or), ["Topic:*:User:bob"]);
    // An exact LITERAL filter with a name is that name only, not `*`.
    let literal_orders =
        AclFilter { pattern: PatternFilter::Exactly(Literal), ..topics_named_orders.clone() };
    assert_eq!(names(&literal_orders), ["Topic:orders:User:alice"]);
    let prefixed = AclFilter { pattern: PatternFilter::Exactly(Prefixed), ..all.clone() };
    assert_eq!(names(&prefixed), ["Topic:ord:User:carol"]);
    let denies = AclFilter { permission: Some(Deny), operation: Some(Write), ..all.clone() };
    assert_eq!(names(&denies), ["Topic:ord:User:carol"]);
    let alice = AclFilter { principal: Some("User:alice".into()), ..all };
    assert_eq!(a.matching(&alice).count(), 2);
}

#[test]
fn write_on_any_topic_is_an_allow_somewhere_and_no_deny_everywhere() {
    let any = |bindings: &[AclBinding], who| allows_any(bindings, who, "h", Write, Topic);
    let orders = acl(Topic, "orders-", Prefixed, "User:alice", Write, Allow);
    assert!(any(std::slice::from_ref(&orders), "User:alice"));
    assert!(!any(std::slice::from_ref(&orders), "User:bob"));
    // READ does not imply WRITE; ALL does.
    assert!(!any(&[acl(Topic, "t", Literal, "User:bob", Read, Allow)], "User:bob"));
    assert!(any(&[acl(Topic, "t", Literal, "User:bob", All, Allow)], "User:bob"));
    // A deny on every topic wins; one on some topics does not.
    let everywhere = acl(Topic, WILDCARD, Literal, "User:*", Write, Deny);
    assert!(!any(&[orders.clone(), everywhere], "User:alice"));
    let somewhere = acl(Topic, "orders-x", Literal, "User:alice", Write, Deny);
    assert!(any(&[orders.clone(), somewhere], "User:alice"));
    // A deny covering the allow's own pattern: nothing is left.
    let same = acl(Topic, "t", Literal, "User:bob", Write, Deny);
    assert!(!any(&[acl(Topic, "t", Literal, "User:bob", Write, Allow), same], "User:bob"));
    let prefix = acl(Topic, "orders", Prefixed, "User:alice", Write, Deny);
    assert!(!any(&[orders, prefix], "User:alice"));
    assert!(!any(&[acl(Group, "g", Literal, "User:alice", Write, Allow)], "User:alice"));
}

#[test]
fn operations_parse_by_kafka_s_and_kafka_acls_names() {
    for o in Operation::ALL {
        assert_eq!(Operation::parse(o.name()), Some(o));
        assert_eq!(Operation::from_code(o.code()), Some(o));
    }
    assert_eq!(Operation::parse("ClusterAction"), Some(ClusterAction));
    assert_eq!(Operation::parse("describeconfigs"), Some(DescribeConfigs));
    assert_eq!(Operation::parse("Any"), None);
}

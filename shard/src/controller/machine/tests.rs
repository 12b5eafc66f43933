//! The state machine driven without I/O: placement, refusals, node
//! changes, and seeded random histories that must replay.

use engine::testkit::{seed, Rng};

use super::*;
use crate::ids::{BrokerId, LeaderEpoch, PartitionEpoch};

pub(super) fn limits() -> Limits {
    Limits {
        default_partitions: 3,
        default_replication_factor: 1,
        partitions_max: 120,
        offsets_segment_bytes: 1 << 20,
    }
}

pub(super) fn node(id: i32, shards: u16) -> NodeMeta {
    NodeMeta {
        id: NodeId(id),
        host: "localhost".into(),
        port: 9092,
        listeners: Vec::new(),
        shards,
        rack: format!("node-{id}"),
        fenced: false,
    }
}

pub(super) fn b(id: i32) -> BrokerId {
    BrokerId(id)
}

/// Leader broker ids of a topic's partitions.
pub(super) fn leaders(t: &TopicMeta) -> Vec<i32> {
    t.partitions.iter().map(|p| p.leader.map_or(-1, |l| l.0)).collect()
}

/// Ids 1, 2, 3, ...: deterministic.
pub(super) fn ids() -> impl FnMut() -> [u8; 16] {
    let mut n = 0u64;
    move || {
        n += 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&n.to_be_bytes());
        id
    }
}

pub(super) fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignments: Vec::new(),
    }
}

fn grow(name: &str, count: i32) -> PartitionsSpec {
    PartitionsSpec { name: name.into(), count, assignments: None }
}

/// Proposes and folds the records, as the driver does after a commit.
pub(super) fn run(
    image: &mut MetadataImage,
    command: Command,
    ids: &mut dyn FnMut() -> [u8; 16],
) -> Answer {
    let p = propose(image, &limits(), command, ids);
    for r in &p.records {
        *image = image.apply(r);
    }
    p.answer
}

/// A single node of two shards, bootstrapped.
fn bootstrapped() -> MetadataImage {
    cluster(&[(0, 2)])
}

/// Nodes (id, shards) registered in order, then bootstrapped.
pub(super) fn cluster(nodes: &[(i32, u16)]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for &(id, shards) in nodes {
        run(&mut image, Command::RegisterNode(node(id, shards)), &mut ids());
    }
    run(&mut image, Command::Bootstrap { cluster_id: "c".into(), scram: vec![] }, &mut ids());
    image
}

pub(super) fn code(e: ResponseError) -> i16 {
    e.code()
}

#[test]
fn bootstrap_writes_what_is_missing_once() {
    let image = bootstrapped();
    assert_eq!(image.cluster_id, "c");
    let offsets = &image.topics[OFFSETS_TOPIC];
    assert_eq!(offsets.partitions.len(), OFFSETS_TOPIC_PARTITIONS as usize);
    assert_eq!(&leaders(offsets)[..4], &[0, 1, 0, 1]);
    let again = propose(
        &image,
        &limits(),
        Command::Bootstrap { cluster_id: "d".into(), scram: vec![] },
        &mut ids(),
    );
    assert!(again.records.is_empty());
}

#[test]
fn scram_seeds_go_into_a_new_log_only_and_changes_replay_from_records() {
    use auth::scram::{Mechanism, ScramCredential, ITERATIONS_MIN};
    let credential = |m| ScramCredential::derive(m, b"pw", b"salt", ITERATIONS_MIN).unwrap();
    let seed = ("alice".to_string(), credential(Mechanism::ScramSha256));
    let mut image = MetadataImage::default();
    let bootstrap = |s: Vec<_>| Command::Bootstrap { cluster_id: "c".into(), scram: s };
    run(&mut image, bootstrap(vec![seed.clone()]), &mut ids());
    assert_eq!(image.scram["alice"][&Mechanism::ScramSha256], seed.1);
    let later = ("bob".to_string(), credential(Mechanism::ScramSha256));
    assert!(propose(&image, &limits(), bootstrap(vec![later]), &mut ids()).records.is_empty());

    let changes = vec![
        ScramChange::Upsert {
            user: "alice".into(),
            credential: credential(Mechanism::ScramSha512),
        },
        ScramChange::Delete { user: "carol".into(), mechanism: Mechanism::ScramSha256 },
        ScramChange::Delete { user: "alice".into(), mechanism: Mechanism::ScramSha256 },
    ];
    let answer = run(&mut image, Command::AlterScram { changes }, &mut ids());
    let Answer::Outcomes(o) = answer else { panic!("{answer:?}") };
    assert_eq!(o[0], Ok(()));
    assert_eq!(o[1].as_ref().unwrap_err().code(), code(ResponseError::ResourceNotFound));
    assert_eq!(o[2], Ok(()));
    assert_eq!(image.scram["alice"].keys().collect::<Vec<_>>(), [&Mechanism::ScramSha512]);
    // A snapshot's records rebuild the same credentials.
    let rebuilt = MetadataImage::default().applied(&image.to_records());
    assert_eq!(rebuilt.scram, image.scram);
    let last = ScramChange::Delete { user: "alice".into(), mechanism: Mechanism::ScramSha512 };
    run(&mut image, Command::AlterScram { changes: vec![last] }, &mut ids());
    assert!(image.scram.is_empty(), "a user without credentials is gone");
}

#[test]
fn acls_are_added_checked_and_removed_by_the_filters_that_match_them() {
    use auth::acl::ResourceType::{Cluster, Topic};
    use auth::acl::{AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission};
    let acl = |resource_type, name: &str, principal: &str, permission| AclBinding {
        resource_type,
        name: name.into(),
        pattern: PatternType::Literal,
        principal: principal.into(),
        host: "*".into(),
        operation: Operation::Read,
        permission,
    };
    let alice = acl(Topic, "orders", "User:alice", Permission::Allow);
    let bob = acl(Topic, "orders", "User:bob", Permission::Deny);
    let mut image = MetadataImage::default();
    let bindings =
        vec![alice.clone(), bob.clone(), acl(Cluster, "other", "User:x", Permission::Allow)];
    let answer = run(&mut image, Command::CreateAcls { bindings }, &mut ids());
    let Answer::Outcomes(o) = answer else { panic!("{answer:?}") };
    assert_eq!(o[..2], [Ok(()), Ok(())]);
    assert_eq!(o[2].as_ref().unwrap_err().code(), code(ResponseError::InvalidRequest));
    assert_eq!(image.acls.len(), 2);
    // Adding one in force again makes no record.
    let again = Command::CreateAcls { bindings: vec![alice.clone()] };
    assert!(propose(&image, &limits(), again, &mut ids()).records.is_empty());

    let any = AclFilter {
        resource_type: Some(Topic),
        name: Some("orders".into()),
        pattern: PatternFilter::Any,
        principal: None,
        host: None,
        operation: None,
        permission: None,
    };
    let denies = AclFilter { permission: Some(Permission::Deny), ..any.clone() };
    let nothing = AclFilter { name: Some("payments".into()), ..any.clone() };
    let answer =
        run(&mut image, Command::DeleteAcls { filters: vec![denies, nothing, any] }, &mut ids());
    let Answer::Acls(o) = answer else { panic!("{answer:?}") };
    assert_eq!(o, vec![Ok(vec![bob.clone()]), Ok(vec![]), Ok(vec![alice, bob])]);
    assert!(image.acls.is_empty());
}

#[test]
fn the_transaction_topic_is_made_once_on_demand_and_stays() {
    let mut image = bootstrapped();
    assert!(!image.topics.contains_key(crate::txns::TRANSACTION_TOPIC));
    run(&mut image, Command::CreateTransactionTopic, &mut ids());
    let txns = &image.topics[crate::txns::TRANSACTION_TOPIC];
    assert_eq!(txns.partitions.len(), 50);
    assert_eq!(txns.configs.get("cleanup.policy").map(String::as_str), Some("compact"));
    let again = propose(&image, &limits(), Command::CreateTransactionTopic, &mut ids());
    assert!(again.records.is_empty());
    let name = crate::txns::TRANSACTION_TOPIC.to_string();
    let delete =
        propose(&image, &limits(), Command::DeleteTopics { names: vec![name] }, &mut ids());
    assert!(delete.records.is_empty(), "internal: never deleted");
}

#[test]
fn topics_are_placed_round_robin_and_checked_in_request_order() {
    let mut image = bootstrapped();
    let command = Command::CreateTopics {
        topics: vec![spec("a", 3), spec("a", 1), spec("b", -1), spec("__x", 1), spec("c", 0)],
        validate_only: false,
    };
    let Answer::Topics(out) = run(&mut image, command, &mut ids()) else { panic!() };
    // One topic existed (offsets): "a" starts on shard 1, "b" on shard 0.
    assert_eq!(leaders(out[0].as_ref().unwrap()), vec![1, 0, 1]);
    assert_eq!(out[1].as_ref().unwrap_err().code(), code(ResponseError::TopicAlreadyExists));
    assert_eq!(leaders(out[2].as_ref().unwrap()), vec![0, 1, 0], "default partition count");
    assert_eq!(out[3].as_ref().unwrap_err().code(), code(ResponseError::InvalidTopicException));
    assert_eq!(out[4].as_ref().unwrap_err().code(), code(ResponseError::InvalidPartitions));
    assert_eq!(image.topics.len(), 3);
}

#[test]
fn validate_only_and_refusals_write_nothing() {
    let image = bootstrapped();
    let only = Command::CreateTopics { topics: vec![spec("a", 1)], validate_only: true };
    let p = propose(&image, &limits(), only, &mut ids());
    assert!(p.records.is_empty());
    assert!(matches!(&p.answer, Answer::Topics(t) if t[0].is_ok()));
    // 50 offsets partitions + 70 = the budget of 120; one more is refused.
    let mut image = image;
    let fits = Command::CreateTopics { topics: vec![spec("a", 70)], validate_only: false };
    assert!(matches!(run(&mut image, fits, &mut ids()), Answer::Topics(t) if t[0].is_ok()));
    let over = Command::CreateTopics { topics: vec![spec("b", 1)], validate_only: false };
    let p = propose(&image, &limits(), over, &mut ids());
    assert!(p.records.is_empty());
    assert!(
        matches!(&p.answer, Answer::Topics(t) if t[0].as_ref().unwrap_err().code() == code(ResponseError::InvalidPartitions))
    );
    let more = Command::CreatePartitions { topics: vec![grow("a", 71)], validate_only: false };
    assert!(propose(&image, &limits(), more, &mut ids()).records.is_empty());
}

#[test]
fn deletes_partitions_and_configs() {
    let mut image = bootstrapped();
    run(
        &mut image,
        Command::CreateTopics { topics: vec![spec("a", 2)], validate_only: false },
        &mut ids(),
    );
    let Answer::Outcomes(out) = run(
        &mut image,
        Command::CreatePartitions {
            topics: vec![grow("a", 5), grow("a", 6)],
            validate_only: false,
        },
        &mut ids(),
    ) else {
        panic!()
    };
    assert!(out[0].is_ok());
    assert_eq!(out[1].as_ref().unwrap_err().code(), code(ResponseError::InvalidRequest));
    assert_eq!(leaders(&image.topics["a"]), vec![1, 0, 1, 0, 1]);
    let set = |v: &str| ConfigChange {
        name: "retention.ms".into(),
        op: ConfigOp::Set,
        value: Some(v.into()),
    };
    let Answer::Outcomes(out) = run(
        &mut image,
        Command::AlterConfigs {
            topics: vec![("a".into(), vec![set("bad")]), ("a".into(), vec![set("5")])],
            validate_only: false,
        },
        &mut ids(),
    ) else {
        panic!()
    };
    assert_eq!(out[0].as_ref().unwrap_err().code(), code(ResponseError::InvalidConfig));
    assert_eq!(
        out[1].as_ref().unwrap_err().code(),
        code(ResponseError::InvalidRequest),
        "named twice"
    );
    assert!(image.topics["a"].configs.is_empty());
    let Answer::Outcomes(out) = run(
        &mut image,
        Command::DeleteTopics {
            names: vec!["a".into(), "a".into(), OFFSETS_TOPIC.into(), "z".into()],
        },
        &mut ids(),
    ) else {
        panic!()
    };
    assert!(out[0].is_ok());
    assert_eq!(out[1].as_ref().unwrap_err().code(), code(ResponseError::UnknownTopicOrPartition));
    assert_eq!(out[2].as_ref().unwrap_err().code(), code(ResponseError::InvalidTopicException));
    assert_eq!(out[3].as_ref().unwrap_err().code(), code(ResponseError::UnknownTopicOrPartition));
    assert!(!image.topics.contains_key("a"));
}

#[test]
fn a_failed_commit_turns_every_acceptance_into_the_error() {
    let no = Refusal::new(ResponseError::InvalidRequest, "no");
    let disk = Refusal::new(ResponseError::KafkaStorageError, "disk");
    let answer = Answer::Outcomes(vec![Ok(()), Err(no.clone())]);
    let failed = answer.failed(ResponseError::KafkaStorageError, "disk").unwrap();
    assert_eq!(failed, Answer::Outcomes(vec![Err(disk), Err(no)]));
    let ids = Answer::ProducerIds { start: 0, end: 1 };
    assert!(ids.failed(ResponseError::KafkaStorageError, "disk").is_err());
}

#[test]
fn replicas_go_to_distinct_nodes_and_leaders_to_every_shard() {
    let mut image = cluster(&[(1, 2), (2, 2), (3, 2)]);
    let mut three = spec("t", 6);
    three.replication_factor = 3;
    let Answer::Topics(out) = run(
        &mut image,
        Command::CreateTopics { topics: vec![three], validate_only: false },
        &mut ids(),
    ) else {
        panic!()
    };
    let t = out[0].as_ref().unwrap();
    // One topic existed: the leaders start at the second broker of the
    // order 1000, 2000, 3000, 1001, 2001, 3001.
    assert_eq!(leaders(t), vec![2000, 3000, 1001, 2001, 3001, 1000]);
    for p in &t.partitions {
        let mut nodes: Vec<_> = p.replicas.iter().map(|b| b.node()).collect();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), 3, "{p:?}");
        assert_eq!(p.isr, p.replicas, "every replica starts in the ISR, empty as its leader");
    }
    let mut four = spec("u", 1);
    four.replication_factor = 4;
    let mut zero = spec("v", 1);
    zero.replication_factor = 0;
    let p = propose(
        &image,
        &limits(),
        Command::CreateTopics { topics: vec![four, zero], validate_only: false },
        &mut ids(),
    );
    let Answer::Topics(out) = p.answer else { panic!() };
    for o in out {
        assert_eq!(o.unwrap_err().code(), code(ResponseError::InvalidReplicationFactor));
    }
    // New partitions keep the replication factor and continue the order.
    run(
        &mut image,
        Command::CreatePartitions { topics: vec![grow("t", 8)], validate_only: false },
        &mut ids(),
    );
    let t = &image.topics["t"];
    assert_eq!(&leaders(t)[6..], &[2000, 3000]);
    assert!(t.partitions.iter().all(|p| p.replicas.len() == 3));
}

#[test]
fn assignments_by_hand_are_honoured_or_refused_with_the_reason() {
    let mut image = cluster(&[(1, 2), (2, 1)]);
    let assigned = |name: &str, lists: Vec<(i32, Vec<i32>)>| TopicSpec {
        name: name.into(),
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignments: lists,
    };
    let command = Command::CreateTopics {
        topics: vec![
            assigned("ok", vec![(1, vec![2000, 1001]), (0, vec![1001, 2000])]),
            assigned("gap", vec![(0, vec![1000]), (2, vec![1000])]),
            assigned("twice", vec![(0, vec![1000, 1000])]),
            assigned("unknown", vec![(0, vec![1002])]),
            assigned("uneven", vec![(0, vec![1000]), (1, vec![1000, 2000])]),
            assigned("empty", vec![(0, vec![])]),
            TopicSpec { partitions: 1, ..assigned("both", vec![(0, vec![1000])]) },
        ],
        validate_only: false,
    };
    let Answer::Topics(out) = run(&mut image, command, &mut ids()) else { panic!() };
    let ok = out[0].as_ref().unwrap();
    assert_eq!(ok.partitions[0].replicas, vec![b(1001), b(2000)]);
    assert_eq!(leaders(ok), vec![1001, 2000]);
    let refused = code(ResponseError::InvalidReplicaAssignment);
    for o in &out[1..6] {
        assert_eq!(o.as_ref().unwrap_err().code(), refused, "{o:?}");
    }
    assert_eq!(out[6].as_ref().unwrap_err().code(), code(ResponseError::InvalidRequest));
    // CreatePartitions: as many lists as new partitions, the topic's factor.
    let more = |lists: Vec<Vec<i32>>| Command::CreatePartitions {
        topics: vec![PartitionsSpec { name: "ok".into(), count: 3, assignments: Some(lists) }],
        validate_only: false,
    };
    for bad in [vec![vec![1000]], vec![vec![1000, 2000], vec![1001, 2000]]] {
        let Answer::Outcomes(out) = run(&mut image, more(bad), &mut ids()) else { panic!() };
        assert_eq!(out[0].as_ref().unwrap_err().code(), refused);
    }
    run(&mut image, more(vec![vec![2000, 1000]]), &mut ids());
    assert_eq!(leaders(&image.topics["ok"]), vec![1001, 2000, 2000]);
    // A partition whose every replica is fenced has no leader to start with.
    run(&mut image, Command::FenceNode(NodeId(2)), &mut ids());
    let Answer::Topics(out) = run(
        &mut image,
        Command::CreateTopics {
            topics: vec![assigned("dark", vec![(0, vec![2000])])],
            validate_only: false,
        },
        &mut ids(),
    ) else {
        panic!()
    };
    assert_eq!(out[0].as_ref().unwrap_err().code(), refused);
}

#[test]
fn a_fenced_node_leads_nothing_until_it_is_back() {
    let mut image = cluster(&[(1, 1), (2, 1)]);
    let mut two = spec("t", 2);
    two.replication_factor = 2;
    run(&mut image, Command::CreateTopics { topics: vec![two], validate_only: false }, &mut ids());
    // Partition 0's follower fell behind: its leader alone is in its ISR.
    shrink_to_leader(&mut image, "t", 0);
    let before = image.topics["t"].clone();
    assert_eq!(leaders(&before), vec![2000, 1000]);
    run(&mut image, Command::FenceNode(NodeId(2)), &mut ids());
    assert!(image.nodes[&NodeId(2)].fenced);
    let t = &image.topics["t"];
    assert_eq!(leaders(t), vec![-1, 1000], "its only ISR member is fenced: offline");
    assert_eq!(t.partitions[0].isr, vec![b(2000)], "the last ISR member stays in it");
    assert_eq!(t.partitions[0].leader_epoch, before.partitions[0].leader_epoch.next());
    let p1 = &t.partitions[1];
    assert_eq!(p1.isr, vec![b(1000)], "a fenced follower leaves the ISR");
    assert_eq!(p1.leader_epoch, before.partitions[1].leader_epoch, "same leader, same epoch");
    assert!(propose(&image, &limits(), Command::FenceNode(NodeId(2)), &mut ids())
        .records
        .is_empty());
    run(&mut image, Command::UnfenceNode(NodeId(2)), &mut ids());
    let t = &image.topics["t"];
    assert_eq!(leaders(t), vec![2000, 1000]);
    assert_eq!(t.partitions[0].leader_epoch.0, 2);
    assert_eq!(t.partitions[0].partition_epoch.0, 3);
    // A registration that changes nothing writes nothing; a clean stop
    // fences, then removes the node.
    assert!(propose(&image, &limits(), Command::RegisterNode(node(1, 1)), &mut ids())
        .records
        .is_empty());
    run(&mut image, Command::UnregisterNode(NodeId(1)), &mut ids());
    assert!(!image.nodes.contains_key(&NodeId(1)));
    assert_eq!(leaders(&image.topics["t"]), vec![2000, -1]);
    run(&mut image, Command::RegisterNode(node(1, 1)), &mut ids());
    assert_eq!(leaders(&image.topics["t"]), vec![2000, 1000]);
}

/// Nodes come and go at random while topics are made: every partition's
/// leader is a live ISR member or there is none, the ISR is a non-empty
/// part of the replicas, replicas sit on distinct nodes, and leader
/// epochs never go back.
#[test]
fn random_node_changes_keep_the_partitions_consistent() {
    let seed = seed("random_node_changes_keep_the_partitions_consistent");
    let mut rng = Rng::new(seed);
    let mut image = cluster(&[(1, 2), (2, 1), (3, 2)]);
    let mut next_id = ids();
    for step in 0..400 {
        let node_id = NodeId(1 + rng.below(3) as i32);
        let command = match rng.below(7) {
            // A leader's ISR change: a random set of its replicas with the
            // leader, under the current epochs or stale ones.
            6 => {
                let partitions: Vec<_> = image
                    .topics
                    .values()
                    .flat_map(|t| t.partitions.iter().enumerate().map(move |(i, p)| (t, i, p)))
                    .filter(|(_, _, p)| p.leader.is_some())
                    .collect();
                if partitions.is_empty() {
                    continue;
                }
                let (t, i, p) = partitions[rng.below(partitions.len() as u64) as usize];
                let leader = p.leader.expect("filtered");
                let mut isr: Vec<BrokerId> =
                    p.replicas.iter().copied().filter(|r| *r == leader || rng.chance(50)).collect();
                let turn = rng.below(isr.len() as u64) as usize;
                isr.rotate_left(turn);
                let stale = rng.chance(20);
                Command::AlterPartitions {
                    changes: vec![super::isr::IsrChange {
                        topic: t.name.clone(),
                        partition: i as i32,
                        leader,
                        leader_epoch: p.leader_epoch,
                        partition_epoch: PartitionEpoch(p.partition_epoch.0 - i32::from(stale)),
                        isr,
                    }],
                }
            }
            0 => Command::FenceNode(node_id),
            1 => Command::UnfenceNode(node_id),
            2 => Command::UnregisterNode(node_id),
            3 => Command::RegisterNode(node(node_id.0, 1 + (node_id.0 % 2) as u16)),
            4 => Command::CreatePartitions {
                topics: vec![grow(&format!("t{}", rng.below(4)), 1 + rng.below(8) as i32)],
                validate_only: false,
            },
            _ => {
                let mut t = spec(&format!("t{}", rng.below(4)), 1 + rng.below(4) as i32);
                t.replication_factor = 1 + rng.below(3) as i16;
                Command::CreateTopics { topics: vec![t], validate_only: false }
            }
        };
        let before = image.clone();
        run(&mut image, command.clone(), &mut next_id);
        let why = format!("seed {seed}, step {step}, {command:?}");
        for t in image.topics.values() {
            for (i, p) in t.partitions.iter().enumerate() {
                assert!(
                    !p.isr.is_empty() && p.isr.iter().all(|m| p.replicas.contains(m)),
                    "{why}: {p:?}"
                );
                if let Some(l) = p.leader {
                    assert!(p.isr.contains(&l) && image.is_live(l), "{why}: {p:?}");
                }
                let mut nodes: Vec<_> = p.replicas.iter().map(|r| r.node()).collect();
                nodes.sort();
                nodes.dedup();
                assert_eq!(nodes.len(), p.replicas.len(), "{why}: {p:?}");
                if let Some(old) = before.topics.get(&t.name).and_then(|o| o.partitions.get(i)) {
                    assert!(p.leader_epoch >= old.leader_epoch, "{why}");
                    assert!(p.partition_epoch >= old.partition_epoch, "{why}");
                }
            }
        }
    }
}

/// Random commands from a seed: the same seed gives the same records;
/// folding every record from an empty image gives the image (what a
/// restart or a follower sees); no topic is placed off the shards and
/// the budget holds; producer id blocks never overlap.
#[test]
fn random_commands_replay_to_the_same_image() {
    let seed = seed("random_commands_replay_to_the_same_image");
    let history = |seed: u64| {
        let mut rng = Rng::new(seed);
        let mut image = bootstrapped();
        let mut records = Vec::new();
        let mut next_id = ids();
        let mut last_end = 0;
        let name = |rng: &mut Rng| format!("t{}", rng.below(6));
        for _ in 0..300 {
            let command = match rng.below(5) {
                0 => Command::CreateTopics {
                    topics: (0..1 + rng.below(3))
                        .map(|_| spec(&name(&mut rng), rng.below(12) as i32))
                        .collect(),
                    validate_only: rng.chance(10),
                },
                1 => Command::DeleteTopics { names: vec![name(&mut rng)] },
                2 => Command::CreatePartitions {
                    topics: vec![grow(&name(&mut rng), rng.below(20) as i32)],
                    validate_only: false,
                },
                3 => Command::AlterConfigs {
                    topics: vec![(
                        name(&mut rng),
                        vec![ConfigChange {
                            name: "cleanup.policy".into(),
                            op: if rng.chance(50) { ConfigOp::Append } else { ConfigOp::Subtract },
                            value: Some("compact".into()),
                        }],
                    )],
                    validate_only: false,
                },
                _ => Command::AllocateProducerIds,
            };
            let p = propose(&image, &limits(), command, &mut next_id);
            if let Answer::ProducerIds { start, end } = p.answer {
                assert!(start >= last_end && end == start + PRODUCER_ID_BLOCK, "seed {seed}");
                last_end = end;
            }
            for r in &p.records {
                image = image.apply(r);
            }
            records.extend(p.records);
            let partitions: usize = image.topics.values().map(|t| t.partitions.len()).sum();
            assert!(partitions <= limits().partitions_max, "seed {seed}");
            assert!(
                image.topics.values().flat_map(|t| &t.partitions).all(|p| p.replicas[0].0 < 2),
                "seed {seed}"
            );
        }
        (image, records)
    };
    let (image, records) = history(seed);
    assert_eq!(history(seed).1, records, "seed {seed}: not deterministic");
    let mut replayed = bootstrapped();
    for r in &records {
        replayed = replayed.apply(r);
    }
    assert_eq!(replayed, image, "seed {seed}");
}

/// AlterPartition as KRaft validates it: only the current leader, under
/// the current epochs, with live replicas that include itself; each change
/// bumps the partition epoch, and an unchanged ISR writes nothing.
#[test]
fn isr_changes_come_from_the_current_leader_under_the_current_epochs() {
    use super::isr::IsrChange;
    let mut image = cluster(&[(1, 1), (2, 1), (3, 1)]);
    let mut t = spec("t", 1);
    t.replication_factor = 3;
    run(&mut image, Command::CreateTopics { topics: vec![t], validate_only: false }, &mut ids());
    shrink_to_leader(&mut image, "t", 0);
    let p = image.partition("t", 0).unwrap().clone();
    let leader = p.leader.unwrap();
    let others: Vec<BrokerId> = p.replicas.iter().copied().filter(|b| *b != leader).collect();
    let change = |isr: Vec<BrokerId>| IsrChange {
        topic: "t".into(),
        partition: 0,
        leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        isr,
    };
    let alter = |image: &mut MetadataImage, changes: Vec<IsrChange>| -> Vec<i16> {
        let Answer::Partitions(out) = run(image, Command::AlterPartitions { changes }, &mut ids())
        else {
            panic!()
        };
        out.iter().map(|o| o.as_ref().map_or_else(|e| e.code(), |_| 0)).collect()
    };
    let code = |e: ResponseError| e.code();
    let mut stale_leader = change(p.replicas.clone());
    stale_leader.leader_epoch = LeaderEpoch(p.leader_epoch.0 - 1);
    let mut ahead = change(p.replicas.clone());
    ahead.partition_epoch = p.partition_epoch.next();
    let mut not_leader = change(p.replicas.clone());
    not_leader.leader = others[0];
    let mut unknown = change(vec![leader]);
    unknown.partition = 9;
    let refused = alter(
        &mut image,
        vec![
            stale_leader,
            ahead,
            not_leader,
            unknown,
            change(vec![leader, leader]),
            change(vec![leader, b(7000)]),
            change(others.clone()),
        ],
    );
    assert_eq!(
        refused,
        [
            code(ResponseError::FencedLeaderEpoch),
            code(ResponseError::NotController),
            code(ResponseError::InvalidRequest),
            code(ResponseError::UnknownTopicOrPartition),
            code(ResponseError::InvalidRequest),
            code(ResponseError::InvalidRequest),
            code(ResponseError::InvalidRequest),
        ]
    );
    assert_eq!(image.partition("t", 0), Some(&p), "nothing changed");

    // The ISR grows to every replica: one record, the next partition epoch.
    assert_eq!(alter(&mut image, vec![change(p.replicas.clone())]), [0]);
    let grown = image.partition("t", 0).unwrap().clone();
    assert_eq!((grown.isr.len(), grown.partition_epoch), (3, p.partition_epoch.next()));
    assert_eq!(grown.leader_epoch, p.leader_epoch);
    // The old partition epoch is now stale; the same ISR again writes nothing.
    assert_eq!(
        alter(&mut image, vec![change(vec![leader])]),
        [code(ResponseError::InvalidUpdateVersion)]
    );
    let same = IsrChange { partition_epoch: grown.partition_epoch, ..change(grown.isr.clone()) };
    let proposal =
        propose(&image, &limits(), Command::AlterPartitions { changes: vec![same] }, &mut ids());
    assert!(proposal.records.is_empty());
    // A fenced replica cannot join.
    let shrunk = IsrChange { partition_epoch: grown.partition_epoch, ..change(vec![leader]) };
    assert_eq!(alter(&mut image, vec![shrunk]), [0]);
    run(&mut image, Command::FenceNode(others[0].node()), &mut ids());
    let now = image.partition("t", 0).unwrap().clone();
    let rejoin = IsrChange {
        partition_epoch: now.partition_epoch,
        leader_epoch: now.leader_epoch,
        ..change(vec![leader, others[0]])
    };
    assert_eq!(alter(&mut image, vec![rejoin]), [code(ResponseError::IneligibleReplica)]);
}

/// Two changes of one partition in one command: each accepted state is a
/// record of its own, so every partition epoch an outcome names is committed.
#[test]
fn successive_isr_changes_in_one_command_are_each_committed() {
    use super::isr::IsrChange;
    let mut image = cluster(&[(1, 1), (2, 1)]);
    let mut t = spec("t", 1);
    t.replication_factor = 2;
    run(&mut image, Command::CreateTopics { topics: vec![t], validate_only: false }, &mut ids());
    shrink_to_leader(&mut image, "t", 0);
    let p = image.partition("t", 0).unwrap().clone();
    let leader = p.leader.unwrap();
    let change = |epoch: PartitionEpoch, isr: Vec<BrokerId>| IsrChange {
        topic: "t".into(),
        partition: 0,
        leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: epoch,
        isr,
    };
    let grown = change(p.partition_epoch, p.replicas.clone());
    let shrunk = change(p.partition_epoch.next(), vec![leader]);
    let proposal = propose(
        &image,
        &limits(),
        Command::AlterPartitions { changes: vec![grown, shrunk] },
        &mut ids(),
    );
    let Answer::Partitions(out) = &proposal.answer else { panic!() };
    let epochs: Vec<_> = out.iter().map(|o| o.as_ref().unwrap().partition_epoch).collect();
    assert_eq!(epochs, [p.partition_epoch.next(), p.partition_epoch.next().next()]);
    assert_eq!(proposal.records.len(), 2);
    for r in &proposal.records {
        image = image.apply(r);
    }
    assert_eq!(image.partition("t", 0).unwrap().isr, vec![leader]);
}

/// Takes every follower of `topic`-`partition` out of its ISR, as its
/// leader does when they fall behind.
pub(super) fn shrink_to_leader(image: &mut MetadataImage, topic: &str, partition: i32) {
    let p = image.partition(topic, partition).unwrap().clone();
    let leader = p.leader.unwrap();
    let change = super::isr::IsrChange {
        topic: topic.into(),
        partition,
        leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        isr: vec![leader],
    };
    let Answer::Partitions(out) =
        run(image, Command::AlterPartitions { changes: vec![change] }, &mut ids())
    else {
        panic!()
    };
    assert!(out[0].is_ok(), "{out:?}");
}

#[test]
fn client_quotas_are_set_and_removed_one_outcome_per_entity() {
    use crate::quotas::{QuotaEntity, QuotaValue};
    let alice = QuotaEntity::from_parts([("user", Some("alice"))]).unwrap();
    let clients = QuotaEntity::from_parts([("client-id", None)]).unwrap();
    let change = |entity: &QuotaEntity, ops: Vec<(&str, Option<f64>)>| QuotaChange {
        entity: entity.clone(),
        ops: ops.into_iter().map(|(k, v)| (k.to_string(), v.map(QuotaValue))).collect(),
    };
    let mut image = MetadataImage::default();
    let changes = vec![
        change(&alice, vec![("producer_byte_rate", Some(1e6)), ("consumer_byte_rate", Some(2e6))]),
        change(&clients, vec![("request_percentage", Some(25.0))]),
    ];
    let answer = run(&mut image, Command::AlterClientQuotas { changes }, &mut ids());
    assert_eq!(answer, Answer::Outcomes(vec![Ok(()), Ok(())]));
    assert_eq!(image.quotas[&alice].len(), 2);
    assert_eq!(image.quotas[&clients]["request_percentage"], QuotaValue(25.0));
    let changes = vec![change(&clients, vec![("request_percentage", None)])];
    run(&mut image, Command::AlterClientQuotas { changes }, &mut ids());
    assert!(!image.quotas.contains_key(&clients));
}

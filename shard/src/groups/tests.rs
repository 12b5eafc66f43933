//! The coordinator's state machine driven without a network: joins, syncs,
//! rebalances, static members, errors, and commits acknowledged out of order.

use super::*;
use crate::ids::{LeaderEpoch, Offset};

const NONE: i16 = 0;

fn join_req(member_id: &str, instance_id: Option<&str>) -> JoinRequest {
    JoinRequest {
        group: "g".into(),
        member_id: member_id.into(),
        instance_id: instance_id.map(Into::into),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 60_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: true,
    }
}

fn now<T: std::fmt::Debug>(p: Pending<T>) -> T {
    match p {
        Pending::Now(a) => a,
        Pending::Later(rx) => rx.try_recv().expect("answered already"),
    }
}

fn waiting<T>(p: Pending<T>) -> flume::Receiver<T> {
    match p {
        Pending::Later(rx) => {
            assert!(rx.is_empty(), "answered too early");
            rx
        }
        Pending::Now(_) => panic!("answered at once"),
    }
}

/// A member through MEMBER_ID_REQUIRED, join and (as leader) sync.
fn first_member(c: &Coordinator) -> String {
    let a = now(c.join(join_req("", None)));
    assert_eq!(a.error, ResponseError::MemberIdRequired.code());
    let id = a.member_id;
    let a = now(c.join(join_req(&id, None)));
    assert_eq!((a.error, a.generation, a.leader.as_str()), (NONE, 1, id.as_str()));
    assert_eq!(a.members.len(), 1);
    let s = now(c.sync("g", 1, &id, None, None, None, vec![(id.clone(), "A".into())]));
    assert_eq!((s.error, &s.assignment[..]), (NONE, &b"A"[..]));
    id
}

#[test]
fn members_join_sync_and_rebalance_through_the_state_machine() {
    let c = Coordinator::default();
    let a = first_member(&c);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    assert_eq!(c.heartbeat("g", 1, &a, None), NONE);

    // A second member: the group rebalances; `a` learns it by heartbeat.
    let b = now(c.join(join_req("", None))).member_id;
    let b_join = waiting(c.join(join_req(&b, None)));
    assert_eq!(c.describe("g").unwrap().state, GroupState::PreparingRebalance);
    assert_eq!(c.heartbeat("g", 1, &a, None), ResponseError::RebalanceInProgress.code());
    assert_eq!(
        now(c.sync("g", 1, &a, None, None, None, vec![])).error,
        ResponseError::RebalanceInProgress.code()
    );
    let a_join = now(c.join(join_req(&a, None)));
    let b_join = b_join.try_recv().unwrap();
    assert_eq!((a_join.generation, b_join.generation), (2, 2));
    assert_eq!((a_join.leader.as_str(), a_join.members.len()), (a.as_str(), 2));
    assert!(b_join.members.is_empty(), "only the leader gets the members");

    // The follower's sync waits for the leader's assignment.
    let b_sync = waiting(c.sync("g", 2, &b, None, None, None, vec![]));
    // Until the leader's assignment a plain commit waits for it; a
    // transaction's commit goes ahead, as in Kafka.
    assert_eq!(c.describe("g").unwrap().state, GroupState::CompletingRebalance);
    assert_eq!(c.check_commit("g", 2, &a), Err(ResponseError::RebalanceInProgress.code()));
    assert_eq!(c.check_txn_commit("g", 2, &a, None), Ok(()));
    assert_eq!(c.heartbeat("g", 2, &b, None), NONE, "heartbeats go on meanwhile");
    let assignments = vec![(a.clone(), "A".into()), (b.clone(), "B".into())];
    assert_eq!(&now(c.sync("g", 2, &a, None, None, None, assignments)).assignment[..], b"A");
    assert_eq!(&b_sync.try_recv().unwrap().assignment[..], b"B");

    // Stale generation, unknown member, mismatched protocol.
    assert_eq!(c.heartbeat("g", 1, &a, None), ResponseError::IllegalGeneration.code());
    assert_eq!(c.heartbeat("g", 2, "who", None), ResponseError::UnknownMemberId.code());
    assert_eq!(
        now(c.sync("g", 2, &a, None, Some("consumer"), Some("roundrobin"), vec![])).error,
        ResponseError::InconsistentGroupProtocol.code()
    );
    assert_eq!(c.check_commit("g", 2, &a), Ok(()));
    assert_eq!(c.check_commit("g", 1, &a), Err(ResponseError::IllegalGeneration.code()));
    assert_eq!(c.check_commit("g", -1, ""), Err(ResponseError::UnknownMemberId.code()));
    // A transaction's commit: the member and generation when given.
    assert_eq!(c.check_txn_commit("g", 2, &a, None), Ok(()));
    assert_eq!(c.check_txn_commit("g", -1, "", None), Ok(()));
    let stale = Err(ResponseError::IllegalGeneration.code());
    assert_eq!(c.check_txn_commit("g", 1, &a, None), stale);
    let unknown = Err(ResponseError::UnknownMemberId.code());
    assert_eq!(c.check_txn_commit("g", 2, "who", None), unknown);

    // `b` leaves: `a` rejoins alone into generation 3.
    assert_eq!(c.leave("g", &[(b.clone(), None)]).unwrap(), vec![NONE]);
    assert_eq!(c.heartbeat("g", 2, &a, None), ResponseError::RebalanceInProgress.code());
    let again = now(c.join(join_req(&a, None)));
    assert_eq!((again.generation, again.members.len()), (3, 1));
    assert_eq!(c.leave("g", &[(b, None)]).unwrap(), vec![ResponseError::UnknownMemberId.code()]);

    // The last member leaves: the group is empty and takes simple commits.
    assert_eq!(c.leave("g", &[(a, None)]).unwrap(), vec![NONE]);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
    assert_eq!(c.check_commit("g", -1, ""), Ok(()));
}

#[test]
fn a_member_id_handed_out_survives_the_tick_until_the_member_rejoins() {
    let c = Coordinator::default();
    let a = now(c.join(join_req("", None)));
    assert_eq!(a.error, ResponseError::MemberIdRequired.code());
    // The group has no member yet, no offsets: only the pending id.
    c.tick();
    let joined = now(c.join(join_req(&a.member_id, None)));
    assert_eq!((joined.error, joined.generation), (NONE, 1));
}

#[test]
fn bad_joins_get_kafka_errors() {
    let c = Coordinator::default();
    let mut short = join_req("", None);
    short.session_timeout_ms = SESSION_TIMEOUT_MIN_MS - 1;
    assert_eq!(now(c.join(short)).error, ResponseError::InvalidSessionTimeout.code());
    assert_eq!(now(c.join(join_req("nobody", None))).error, ResponseError::UnknownMemberId.code());
    first_member(&c);
    let mut other = join_req("", None);
    other.require_known_member_id = false;
    other.protocols = vec![("roundrobin".into(), Bytes::new())];
    assert_eq!(now(c.join(other)).error, ResponseError::InconsistentGroupProtocol.code());
    let mut other = join_req("", None);
    other.protocol_type = "connect".into();
    assert_eq!(now(c.join(other)).error, ResponseError::InconsistentGroupProtocol.code());
    assert_eq!(check_group_id(""), Err(ResponseError::InvalidGroupId.code()));
}

#[test]
fn a_static_member_returns_without_a_rebalance_and_fences_its_old_id() {
    let c = Coordinator::default();
    let a = now(c.join(join_req("", Some("i1"))));
    assert_eq!((a.error, a.generation), (NONE, 1), "static members skip MEMBER_ID_REQUIRED");
    let old = a.member_id;
    now(c.sync("g", 1, &old, Some("i1"), None, None, vec![(old.clone(), "A".into())]));
    // Restarted with the same instance id: same generation, same assignment.
    let back = now(c.join(join_req("", Some("i1"))));
    assert_eq!((back.error, back.generation), (NONE, 1));
    assert_ne!(back.member_id, old);
    let s = now(c.sync("g", 1, &back.member_id, Some("i1"), None, None, vec![]));
    assert_eq!(&s.assignment[..], b"A");
    assert_eq!(c.heartbeat("g", 1, &old, Some("i1")), ResponseError::FencedInstanceId.code());
}

#[test]
fn a_slower_acknowledgment_never_overwrites_a_newer_commit() {
    let c = Coordinator::default();
    let at = |offset| Committed {
        offset: Offset(offset),
        leader_epoch: LeaderEpoch(-1),
        metadata: String::new(),
        commit_timestamp: 0,
    };
    c.apply("g", ("t".into(), 0), Some(at(20)), 11);
    c.apply("g", ("t".into(), 0), Some(at(10)), 10);
    assert_eq!(c.committed("g", "t", 0).unwrap().offset, Offset(20));
    c.apply("g", ("t".into(), 0), None, 12);
    assert!(c.committed("g", "t", 0).is_none());
    assert!(c.describe("g").is_none(), "a group with nothing left is forgotten");
}

/// A failed write to `__consumer_offsets` reaches a group client as
/// Kafka's coordinator answers it: never NOT_LEADER_OR_FOLLOWER or
/// KAFKA_STORAGE_ERROR, which group APIs do not have.
#[test]
fn coordinator_write_failures_get_group_errors() {
    use engine::AppendError;
    let cases = [
        (AppendError::Fenced("deposed".into()), ResponseError::NotCoordinator),
        (AppendError::Closed, ResponseError::NotCoordinator),
        (AppendError::NoSpace, ResponseError::NotCoordinator),
        (
            AppendError::Batch(engine::batch::BatchError::TooLarge {
                batch_bytes: 2,
                max_bytes: 1,
            }),
            ResponseError::UnknownServerError,
        ),
    ];
    for (e, want) in cases {
        assert_eq!(write_error_code(&e), want.code(), "{e:?}");
    }
    // An offsets commit too large is the client's: it is told so.
    let large = ResponseError::MessageTooLarge.code();
    assert_eq!(commit_error_code(large), ResponseError::InvalidCommitOffsetSize.code());
}

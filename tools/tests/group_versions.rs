//! Every advertised version of the group and offset APIs, end to end
//! against a real `corelog serve` process over TCP: round `i` speaks
//! version `i` of each API (clamped to its advertised range), so every
//! version of every group API runs at least once, with Kafka's answers
//! checked (generations, leaders, assignments, committed offsets, error
//! codes). Requests are encoded with the `kafka-protocol` crate, the same
//! codec clients of that crate use; the broker's own encoder is not
//! trusted for the requests.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{create_topic, s, start, v, Client};
use net::kafka_protocol::messages::*;

/// A consumer protocol subscription (v0) to `topic`.
fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1);
    b.freeze()
}

const NONE: i16 = 0;
const ILLEGAL_GENERATION: i16 = 22;
const MEMBER_ID_REQUIRED: i16 = 79;

#[test]
fn every_group_api_version_works_end_to_end() {
    let broker = start();
    let topic = "ladder";
    let mut shard0 = Client::connect(broker.port);
    assert_eq!(create_topic(&mut shard0, topic, 2), NONE);

    for i in 0..=9i16 {
        let group = format!("ladder-{i}");
        // FindCoordinator: which shard coordinates the group.
        let fv = v(ApiKey::FindCoordinator, i);
        let mut find = FindCoordinatorRequest::default().with_key_type(0);
        if fv >= 4 {
            find.coordinator_keys = vec![s(&group)];
        } else {
            find.key = s(&group);
        }
        let found: FindCoordinatorResponse = shard0.call(ApiKey::FindCoordinator, fv, &find);
        let (error, port) = if fv >= 4 {
            (found.coordinators[0].error_code, found.coordinators[0].port)
        } else {
            (found.error_code, found.port)
        };
        assert_eq!(error, NONE, "FindCoordinator v{fv}");
        let mut c = Client::connect(port as u16);

        // JoinGroup: from v4 a new member first gets its id.
        let jv = v(ApiKey::JoinGroup, i);
        let join = |member: &str| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(if jv >= 1 { 10_000 } else { -1 })
                .with_member_id(s(member))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(subscription(topic))])
        };
        let mut joined: JoinGroupResponse = c.call(ApiKey::JoinGroup, jv, &join(""));
        if jv >= 4 {
            assert_eq!(joined.error_code, MEMBER_ID_REQUIRED, "JoinGroup v{jv}");
            let id = joined.member_id.to_string();
            joined = c.call(ApiKey::JoinGroup, jv, &join(&id));
        }
        assert_eq!(joined.error_code, NONE, "JoinGroup v{jv}");
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader, joined.member_id);
        assert_eq!(joined.members.len(), 1);
        assert_eq!(joined.members[0].metadata, subscription(topic));
        if jv >= 7 {
            assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
        }
        assert_eq!(joined.protocol_name.as_deref(), Some("range"));
        let member = joined.member_id.to_string();

        // SyncGroup: the leader's assignment comes back.
        let sv = v(ApiKey::SyncGroup, i);
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(1)
            .with_member_id(s(&member))
            .with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"the assignment"))]);
        if sv >= 5 {
            sync.protocol_type = Some(s("consumer"));
            sync.protocol_name = Some(s("range"));
        }
        let synced: SyncGroupResponse = c.call(ApiKey::SyncGroup, sv, &sync);
        assert_eq!(synced.error_code, NONE, "SyncGroup v{sv}");
        assert_eq!(&synced.assignment[..], b"the assignment");

        // Heartbeat: current generation fine, an old one refused.
        let hv = v(ApiKey::Heartbeat, i);
        let beat = |generation| {
            HeartbeatRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(generation)
                .with_member_id(s(&member))
        };
        let hb: HeartbeatResponse = c.call(ApiKey::Heartbeat, hv, &beat(1));
        assert_eq!(hb.error_code, NONE, "Heartbeat v{hv}");
        let hb: HeartbeatResponse = c.call(ApiKey::Heartbeat, hv, &beat(0));
        assert_eq!(hb.error_code, ILLEGAL_GENERATION, "Heartbeat v{hv}");

        // DescribeGroups and ListGroups see it stable.
        let dv = v(ApiKey::DescribeGroups, i);
        let described: DescribeGroupsResponse = c.call(
            ApiKey::DescribeGroups,
            dv,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]),
        );
        let g = &described.groups[0];
        assert_eq!(
            (g.error_code, g.group_state.as_str()),
            (NONE, "Stable"),
            "DescribeGroups v{dv}"
        );
        assert_eq!((g.protocol_type.as_str(), g.protocol_data.as_str()), ("consumer", "range"));
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.members[0].client_id.as_str(), "ladder");
        assert_eq!(&g.members[0].member_assignment[..], b"the assignment");
        let lv = v(ApiKey::ListGroups, i);
        let listed: ListGroupsResponse =
            c.call(ApiKey::ListGroups, lv, &ListGroupsRequest::default());
        assert_eq!(listed.error_code, NONE, "ListGroups v{lv}");
        let mine = listed.groups.iter().find(|l| l.group_id.as_str() == group).expect("listed");
        assert_eq!(mine.protocol_type.as_str(), "consumer");
        if lv >= 4 {
            assert_eq!(mine.group_state.as_str(), "Stable");
        }

        // OffsetCommit as the member, then OffsetFetch.
        let offset = 40 + i as i64;
        let cv = v(ApiKey::OffsetCommit, i);
        let committed: OffsetCommitResponse = c.call(
            ApiKey::OffsetCommit,
            cv,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id_or_member_epoch(1)
                .with_member_id(s(&member))
                .with_retention_time_ms(-1)
                .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(
                        (0..2)
                            .map(|p| {
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_metadata(Some(s("meta")))
                            })
                            .collect(),
                    )]),
        );
        assert_eq!(committed.topics[0].partitions[0].error_code, NONE, "OffsetCommit v{cv}");
        assert_eq!(fetch_offset(&mut c, &group, topic, i), (offset, "meta".to_string()));

        // LeaveGroup empties the group; its offsets stay.
        let leave_v = v(ApiKey::LeaveGroup, i);
        let mut leave = LeaveGroupRequest::default().with_group_id(GroupId(s(&group)));
        if leave_v >= 3 {
            leave.members =
                vec![leave_group_request::MemberIdentity::default().with_member_id(s(&member))];
        } else {
            leave.member_id = s(&member);
        }
        let left: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, leave_v, &leave);
        assert_eq!(left.error_code, NONE, "LeaveGroup v{leave_v}");
        if leave_v >= 3 {
            assert_eq!(left.members[0].error_code, NONE);
        }
        assert_eq!(fetch_offset(&mut c, &group, topic, i).0, offset);

        // OffsetDelete of partition 0, then DeleteGroups (which removes
        // partition 1's offset): the offsets and the group are gone.
        let deleted: OffsetDeleteResponse = c.call(
            ApiKey::OffsetDelete,
            0,
            &OffsetDeleteRequest::default().with_group_id(GroupId(s(&group))).with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ]),
        );
        assert_eq!(deleted.error_code, NONE);
        assert_eq!(deleted.topics[0].partitions[0].error_code, NONE);
        assert_eq!(fetch_offset(&mut c, &group, topic, i).0, -1);
        let gv = v(ApiKey::DeleteGroups, i);
        let gone: DeleteGroupsResponse = c.call(
            ApiKey::DeleteGroups,
            gv,
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]),
        );
        assert_eq!(gone.results[0].error_code, NONE, "DeleteGroups v{gv}");
        let described: DescribeGroupsResponse = c.call(
            ApiKey::DescribeGroups,
            dv,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]),
        );
        assert_eq!(described.groups[0].group_state.as_str(), "Dead");
    }
}

/// The committed offset and metadata of partition 0, via OffsetFetch
/// version `i` (clamped); -1 if none.
fn fetch_offset(c: &mut Client, group: &str, topic: &str, i: i16) -> (i64, String) {
    let fv = v(ApiKey::OffsetFetch, i);
    let mut req = OffsetFetchRequest::default();
    if fv >= 8 {
        req.groups = vec![offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0])]))];
    } else {
        req.group_id = GroupId(s(group));
        req.topics = Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0])]);
    }
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, fv, &req);
    let (error, offset, metadata) = if fv >= 8 {
        let g = &resp.groups[0];
        assert_eq!(g.error_code, NONE, "OffsetFetch v{fv}");
        let p = &g.topics[0].partitions[0];
        (p.error_code, p.committed_offset, p.metadata.clone())
    } else {
        if fv >= 2 {
            assert_eq!(resp.error_code, NONE, "OffsetFetch v{fv}");
        }
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.committed_offset, p.metadata.clone())
    };
    assert_eq!(error, NONE, "OffsetFetch v{fv}");
    (offset, metadata.map(|m| m.to_string()).unwrap_or_default())
}

//! Old layouts written by hand from Kafka's schemas, against the codec's
//! reading of the rewritten bodies, and the codec's responses rewritten
//! back and read by hand.

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::*;

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn i8(mut self, v: i8) -> Self {
        self.0.push(v as u8);
        self
    }
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn s(self, v: &str) -> Self {
        let mut w = self.i16(v.len() as i16);
        w.0.extend_from_slice(v.as_bytes());
        w
    }
}

fn decoded<T: Decodable>(api: ApiKey, version: i16, body: &[u8]) -> T {
    let to = upgraded_version(api, version).unwrap();
    T::decode(&mut upgrade(api, version, body).unwrap(), to).unwrap()
}

fn downgraded<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Vec<u8> {
    let mut modern = BytesMut::new();
    body.encode(&mut modern, upgraded_version(api, version).unwrap()).unwrap();
    downgrade(api, version, &modern).unwrap()
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[test]
fn produce_v0_to_v2_gain_a_null_transactional_id_and_answer_in_their_layout() {
    let body = W::default().i16(1).i32(5000).i32(1).s("t").i32(1).i32(0).i32(3).0;
    let mut body = body;
    body.extend_from_slice(b"abc");
    let req: ProduceRequest = decoded(ApiKey::Produce, 2, &body);
    assert_eq!((req.transactional_id, req.acks, req.timeout_ms), (None, 1, 5000));
    let p = &req.topic_data[0].partition_data[0];
    assert_eq!(p.records.as_deref(), Some(&b"abc"[..]));

    let partition = produce_response::PartitionProduceResponse::default()
        .with_index(0)
        .with_error_code(0)
        .with_base_offset(42)
        .with_log_append_time_ms(-1);
    let response = ProduceResponse::default().with_throttle_time_ms(7).with_responses(vec![
        produce_response::TopicProduceResponse::default()
            .with_name(TopicName(name("t")))
            .with_partition_responses(vec![partition]),
    ]);
    let head = W::default().i32(1).s("t").i32(1).i32(0).i16(0).i64(42).0;
    let mut v2 = head.clone();
    v2.extend_from_slice(&W::default().i64(-1).i32(7).0);
    assert_eq!(downgraded(ApiKey::Produce, 2, &response), v2);
    let mut v1 = head.clone();
    v1.extend_from_slice(&7i32.to_be_bytes());
    assert_eq!(downgraded(ApiKey::Produce, 1, &response), v1);
    assert_eq!(downgraded(ApiKey::Produce, 0, &response), head);
}

#[test]
fn fetch_v0_to_v3_read_uncommitted_without_or_with_max_bytes() {
    let partitions = W::default().i32(1).s("t").i32(1).i32(2).i64(10).i32(4096).0;
    for version in 0..=3 {
        let mut body = W::default().i32(-1).i32(500).i32(1).0;
        if version == 3 {
            body.extend_from_slice(&1000i32.to_be_bytes());
        }
        body.extend_from_slice(&partitions);
        let req: FetchRequest = decoded(ApiKey::Fetch, version, &body);
        assert_eq!((req.max_wait_ms, req.min_bytes, req.isolation_level), (500, 1, 0));
        assert_eq!(req.max_bytes, if version == 3 { 1000 } else { i32::MAX });
        let p = &req.topics[0].partitions[0];
        assert_eq!((p.partition, p.fetch_offset, p.partition_max_bytes), (2, 10, 4096));
    }
    let partition = fetch_response::PartitionData::default()
        .with_partition_index(2)
        .with_high_watermark(11)
        .with_last_stable_offset(11)
        .with_aborted_transactions(Some(vec![fetch_response::AbortedTransaction::default()]))
        .with_records(Some(bytes::Bytes::from_static(b"set")));
    let response = FetchResponse::default().with_throttle_time_ms(3).with_responses(vec![
        fetch_response::FetchableTopicResponse::default()
            .with_topic(TopicName(name("t")))
            .with_partitions(vec![partition]),
    ]);
    let mut tail = W::default().i32(1).s("t").i32(1).i32(2).i16(0).i64(11).i32(3).0;
    tail.extend_from_slice(b"set");
    assert_eq!(downgraded(ApiKey::Fetch, 0, &response), tail);
    let mut v1 = 3i32.to_be_bytes().to_vec();
    v1.extend_from_slice(&tail);
    assert_eq!(downgraded(ApiKey::Fetch, 3, &response), v1);
}

#[test]
fn list_offsets_v0_asks_for_a_count_and_gets_a_list() {
    let body = W::default().i32(-1).i32(1).s("t").i32(1).i32(0).i64(-1).i32(5).0;
    let req: ListOffsetsRequest = decoded(ApiKey::ListOffsets, 0, &body);
    let p = &req.topics[0].partitions[0];
    assert_eq!((req.replica_id.0, p.partition_index, p.timestamp), (-1, 0, -1));
    let answer = |offset| {
        ListOffsetsResponse::default().with_topics(vec![
            list_offsets_response::ListOffsetsTopicResponse::default()
                .with_name(TopicName(name("t")))
                .with_partitions(vec![
                    list_offsets_response::ListOffsetsPartitionResponse::default()
                        .with_offset(offset),
                ]),
        ])
    };
    let found = W::default().i32(1).s("t").i32(1).i32(0).i16(0).i32(1).i64(9).0;
    assert_eq!(downgraded(ApiKey::ListOffsets, 0, &answer(9)), found);
    let none = W::default().i32(1).s("t").i32(1).i32(0).i16(0).i32(0).0;
    assert_eq!(downgraded(ApiKey::ListOffsets, 0, &answer(-1)), none);
}

#[test]
fn offset_commit_v0_and_v1_become_v2() {
    let v0 = W::default().s("g").i32(1).s("t").i32(1).i32(3).i64(77).s("meta").0;
    let req: OffsetCommitRequest = decoded(ApiKey::OffsetCommit, 0, &v0);
    assert_eq!((req.group_id.0.as_str(), req.generation_id_or_member_epoch), ("g", -1));
    let v1 =
        W::default().s("g").i32(4).s("m").i32(1).s("t").i32(1).i32(3).i64(77).i64(123).s("meta");
    let req: OffsetCommitRequest = decoded(ApiKey::OffsetCommit, 1, &v1.0);
    assert_eq!((req.generation_id_or_member_epoch, req.member_id.as_str()), (4, "m"));
    let p = &req.topics[0].partitions[0];
    assert_eq!((p.partition_index, p.committed_offset), (3, 77));
    assert_eq!(p.committed_metadata.as_deref(), Some("meta"));
}

#[test]
fn admin_requests_gain_their_defaults_and_answer_without_newer_fields() {
    let v0 = W::default().i32(1).s("t").i32(2).i16(1).i32(0).i32(0).i32(5000).0;
    let req: CreateTopicsRequest = decoded(ApiKey::CreateTopics, 0, &v0);
    assert_eq!((req.topics[0].num_partitions, req.validate_only), (2, false));
    let response = CreateTopicsResponse::default().with_topics(vec![
        create_topics_response::CreatableTopicResult::default()
            .with_name(TopicName(name("t")))
            .with_error_code(36)
            .with_error_message(Some(name("exists"))),
    ]);
    let v0 = W::default().i32(1).s("t").i16(36).0;
    assert_eq!(downgraded(ApiKey::CreateTopics, 0, &response), v0);
    let v1 = W::default().i32(1).s("t").i16(36).s("exists").0;
    assert_eq!(downgraded(ApiKey::CreateTopics, 1, &response), v1);

    let body = W::default().i32(1).i8(2).s("t").i32(-1).0;
    let req: DescribeConfigsRequest = decoded(ApiKey::DescribeConfigs, 0, &body);
    assert_eq!((req.resources[0].resource_type, req.include_synonyms), (2, false));
    let config = |source| {
        describe_configs_response::DescribeConfigsResourceResult::default()
            .with_name(name("retention.ms"))
            .with_value(Some(name("1")))
            .with_config_source(source)
            .with_synonyms(vec![describe_configs_response::DescribeConfigsSynonym::default()])
    };
    let response = DescribeConfigsResponse::default().with_results(vec![
        describe_configs_response::DescribeConfigsResult::default()
            .with_resource_type(2)
            .with_resource_name(name("t"))
            .with_configs(vec![config(5), config(1)]),
    ]);
    let entry = |is_default| W::default().s("retention.ms").s("1").i8(0).i8(is_default).i8(0).0;
    let mut v0 = W::default().i32(0).i32(1).i16(0).s("").i8(2).s("t").i32(2).0;
    v0.extend_from_slice(&entry(1));
    v0.extend_from_slice(&entry(0));
    assert_eq!(downgraded(ApiKey::DescribeConfigs, 0, &response), v0);

    let body = W::default().i32(1).s("t").i32(1).i32(0).i32(5).0;
    let req: OffsetForLeaderEpochRequest = decoded(ApiKey::OffsetForLeaderEpoch, 0, &body);
    let p = &req.topics[0].partitions[0];
    assert_eq!((p.current_leader_epoch, p.leader_epoch), (-1, 5));
}

#[test]
fn truncated_or_lying_bodies_are_errors() {
    assert!(upgrade(ApiKey::Fetch, 0, &[0; 11]).is_err());
    let lying = W::default().i32(-1).i32(i32::MAX).0;
    assert!(upgrade(ApiKey::ListOffsets, 0, &lying).is_err());
    assert!(downgrade(ApiKey::Produce, 0, &[0, 0, 0, 1]).is_err());
}

#[test]
fn write_txn_markers_v0_is_v1_without_compact_lengths_or_tags() {
    // Two markers, the first over two topics, as a v0 coordinator sends them.
    let v0 = W::default()
        .i32(2)
        .i64(7)
        .i16(3)
        .i8(1)
        .i32(2)
        .s("a")
        .i32(2)
        .i32(0)
        .i32(1)
        .s("bb")
        .i32(0)
        .i32(9)
        .i64(8)
        .i16(0)
        .i8(0)
        .i32(0)
        .i32(4)
        .0;
    let req: WriteTxnMarkersRequest = decoded(ApiKey::WriteTxnMarkers, 0, &v0);
    let m = &req.markers;
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].producer_id.0, m[0].producer_epoch, m[0].transaction_result), (7, 3, true));
    assert_eq!(
        (m[0].topics[0].name.0.as_str(), &m[0].topics[0].partition_indexes[..]),
        ("a", &[0, 1][..])
    );
    assert_eq!((m[0].topics[1].name.0.as_str(), m[0].topics[1].partition_indexes.len()), ("bb", 0));
    assert_eq!(
        (m[0].coordinator_epoch, m[1].producer_id.0, m[1].transaction_result),
        (9, 8, false)
    );
    assert_eq!((m[1].topics.len(), m[1].coordinator_epoch), (0, 4));

    use write_txn_markers_response::*;
    let partition = |i, e| {
        WritableTxnMarkerPartitionResult::default().with_partition_index(i).with_error_code(e)
    };
    let response = WriteTxnMarkersResponse::default().with_markers(vec![
        WritableTxnMarkerResult::default().with_producer_id(7.into()).with_topics(vec![
            WritableTxnMarkerTopicResult::default()
                .with_name(TopicName(name("a")))
                .with_partitions(vec![partition(0, 0), partition(1, 6)]),
        ]),
        WritableTxnMarkerResult::default().with_producer_id(8.into()),
    ]);
    let expected =
        W::default().i32(2).i64(7).i32(1).s("a").i32(2).i32(0).i16(0).i32(1).i16(6).i64(8).i32(0).0;
    assert_eq!(downgraded(ApiKey::WriteTxnMarkers, 0, &response), expected);
    assert_eq!(header_versions(ApiKey::WriteTxnMarkers, 0), Some((1, 0)));
    assert_eq!(header_versions(ApiKey::WriteTxnMarkers, 1), None);

    // A lying count or a truncated marker is an error, not a panic.
    assert!(upgrade(ApiKey::WriteTxnMarkers, 0, &W::default().i32(i32::MAX).0).is_err());
    assert!(upgrade(ApiKey::WriteTxnMarkers, 0, &v0[..v0.len() - 1]).is_err());
}

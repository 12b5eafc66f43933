//! Every Fetch version the codec encodes (v4 on; v0-v3 are rewritten by
//! the broker and tested with old clients) against a real broker: topics by name
//! before v13 and by id from v13 (the id Metadata reports), the stored
//! batch returned byte for byte with the high watermark, and an unknown
//! topic id answered with `UNKNOWN_TOPIC_ID`.

mod common;

use common::{codec_range, create_topic, produce_batch, s, start, v, Client};
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::StrBytes;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn fetch(c: &mut Client, version: i16, name: &str, id: uuid::Uuid) -> FetchResponse {
    let mut topic = fetch_request::FetchTopic::default().with_partitions(vec![
        fetch_request::FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20),
    ]);
    if version >= 13 {
        topic.topic_id = id;
    } else {
        topic.topic = TopicName(StrBytes::from_string(name.to_string()));
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![topic]);
    if version < 15 {
        req.replica_id = BrokerId(-1);
    }
    c.call(ApiKey::Fetch, version, &req)
}

#[test]
fn every_fetch_version_returns_the_stored_batch() {
    let mut broker = start();
    let mut c = Client::connect(broker.port);
    let topic = "fetch-ladder";
    assert_eq!(create_topic(&mut c, topic, 1), NONE);
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s(topic))))])),
    );
    let id = md.topics[0].topic_id;
    assert!(!id.is_nil(), "Metadata v12 reports the topic id");
    let leader = md.topics[0].partitions[0].leader_id.0;
    let mut c = Client::connect(broker.port + (leader % 1000) as u16);

    let values: Vec<Vec<u8>> = (0..3).map(|i| format!("v{i}").into_bytes()).collect();
    let kv: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
    let batch = engine::batch::build(&kv, 1_700_000_000_000);
    assert_eq!(produce_batch(&mut c, topic, batch.clone()).0, NONE);

    // Hot (the batch cache), then cold after a restart: spliced from the
    // segment file (the broker's default), then copied and CRC-checked.
    check_every_version(&mut c, topic, id, &batch, "hot");
    broker.restart_with(&[]);
    let mut c = Client::connect(broker.port + (leader % 1000) as u16);
    check_every_version(&mut c, topic, id, &batch, "cold, spliced");
    broker.restart_with(&["--zero-copy-fetch", "false"]);
    let mut c = Client::connect(broker.port + (leader % 1000) as u16);
    check_every_version(&mut c, topic, id, &batch, "cold, copied");
}

fn check_every_version(c: &mut Client, topic: &str, id: uuid::Uuid, batch: &[u8], path: &str) {
    let (min, max) = codec_range(ApiKey::Fetch);
    for version in min..=max {
        let r = fetch(c, v(ApiKey::Fetch, version), topic, id);
        let t = &r.responses[0];
        if version >= 13 {
            assert_eq!(t.topic_id, id, "v{version} {path}");
        } else {
            assert_eq!(t.topic.as_str(), topic, "v{version} {path}");
        }
        let p = &t.partitions[0];
        assert_eq!((p.error_code, p.high_watermark), (NONE, 3), "v{version} {path}");
        // The stored batch: the request's, with baseOffset 0 and the
        // partition leader epoch stamped (neither is covered by the CRC).
        let records = p.records.as_ref().expect("records");
        assert_eq!(records.len(), batch.len(), "v{version} {path}");
        assert_eq!(&records[16..], &batch[16..], "v{version} {path}");
        if version >= 13 {
            let unknown = fetch(c, version, topic, uuid::Uuid::from_u128(42));
            assert_eq!(unknown.responses[0].partitions[0].error_code, UNKNOWN_TOPIC_ID);
        }
    }
}

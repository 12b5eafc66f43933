//! Cold fetches spliced to a slow reader: a client pipelines far more
//! response bytes than the socket holds and reads them in small pieces, so
//! the broker's sends wait for the socket in the middle of spliced
//! responses. Every response must arrive
//! whole: the stored batches, valid CRCs, contiguous offsets.

mod common;

use std::io::{Read, Write};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{leader_port_of_new_topic, produce_batch, s, start, Client, TIMEOUT};
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const TOPIC: &str = "slow-reader";
const BATCHES: usize = 40;
const RECORDS_PER_BATCH: usize = 1000;
const VALUE_BYTES: usize = 200;
/// Pipelined fetches, each answered with the whole partition (~8 MB):
/// 24 MB against socket buffers of at most 4 + 6 MB.
const FETCHES: i32 = 3;
const FETCH_BYTES: i32 = 16 << 20;
const SLOW_READ_BYTES: usize = 1024;

#[test]
fn a_slow_reader_gets_every_spliced_byte() {
    let mut broker = start();
    let leader_port = leader_port_of_new_topic(broker.port, TOPIC);
    let mut c = Client::connect(leader_port);
    for b in 0..BATCHES {
        let values: Vec<Vec<u8>> =
            (0..RECORDS_PER_BATCH).map(|r| vec![(b * 7 + r) as u8; VALUE_BYTES]).collect();
        let kv: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let batch = engine::batch::build(&kv, 1_700_000_000_000);
        assert_eq!(produce_batch(&mut c, TOPIC, batch).0, 0);
    }
    broker.restart_with(&[]); // every read is cold now: spliced

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", leader_port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    for correlation in 1..=FETCHES {
        stream.write_all(&fetch_frame(correlation)).unwrap();
    }
    let mut first: Option<Bytes> = None;
    for correlation in 1..=FETCHES {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).unwrap();
        // Read in small pieces: slower than the broker sends, so its
        // socket fills and it waits in the middle of spliced responses.
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        for piece in body.chunks_mut(SLOW_READ_BYTES) {
            stream.read_exact(piece).unwrap();
        }
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, 1).unwrap();
        assert_eq!(header.correlation_id, correlation);
        let r = FetchResponse::decode(&mut body, 12).unwrap();
        assert!(!body.has_remaining(), "response {correlation}: trailing bytes");
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let records = p.records.clone().expect("records");
        check_batches(&records);
        match &first {
            None => first = Some(records),
            Some(f) => assert_eq!(f, &records, "response {correlation} differs"),
        }
    }
}

fn fetch_frame(correlation: i32) -> Vec<u8> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(TOPIC)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(FETCH_BYTES)])]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(12)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("slow")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, ApiKey::Fetch.request_header_version(12)).unwrap();
    request.encode(&mut buf, 12).unwrap();
    let mut frame = Vec::with_capacity(buf.len() + 4);
    frame.put_i32(buf.len() as i32);
    frame.extend_from_slice(&buf);
    frame
}

/// Every stored batch, whole, CRC-valid, with offsets from 0 on.
fn check_batches(records: &[u8]) {
    let (mut at, mut next) = (0usize, 0i64);
    while at < records.len() {
        let h = engine::batch::validate_one(&records[at..]).expect("a valid batch");
        assert_eq!(h.base_offset, next);
        next = h.last_offset() + 1;
        at += h.size;
    }
    assert_eq!(next, (BATCHES * RECORDS_PER_BATCH) as i64, "the whole partition");
}

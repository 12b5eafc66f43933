//! Idempotent producers end to end against a real broker: InitProducerId in
//! every advertised version hands out distinct ids; the same batch sent
//! twice is stored once and answered with its first offset, also after a
//! SIGKILL of the broker; a sequence gap gets `OUT_OF_ORDER_SEQUENCE_NUMBER`
//! and an old epoch `INVALID_PRODUCER_EPOCH`. A transactional batch is
//! refused (`INVALID_TXN_STATE`) while no coordinator could end it.

mod common;

use common::{leader_port_of_new_topic, produce_batch, start, Client};
use net::kafka_protocol::messages::*;

const NONE: i16 = 0;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;

fn init_producer_id(c: &mut Client, version: i16) -> (i64, i16) {
    let r: InitProducerIdResponse = c.call(
        ApiKey::InitProducerId,
        version,
        &InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(r.error_code, NONE, "InitProducerId v{version}");
    (r.producer_id.0, r.producer_epoch)
}

/// Produces one batch of `records` records; returns (error, base offset).
fn produce(
    c: &mut Client,
    topic: &str,
    pid: i64,
    epoch: i16,
    seq: i32,
    records: usize,
) -> (i16, i64) {
    let values: Vec<Vec<u8>> =
        (0..records).map(|i| format!("{pid}-{seq}-{i}").into_bytes()).collect();
    let kv: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
    let mut batch = engine::batch::build(&kv, 1_700_000_000_000);
    engine::batch::set_producer(&mut batch, pid, epoch, seq);
    produce_batch(c, topic, batch)
}

#[test]
fn duplicates_are_stored_once_and_sequence_errors_are_refused() {
    let mut broker = start();
    let mut c = Client::connect(broker.port);
    let mut ids: Vec<i64> = (0..=4).map(|version| init_producer_id(&mut c, version).0).collect();
    let (pid, epoch) = init_producer_id(&mut c, 4);
    assert_eq!(epoch, 0);
    ids.push(pid);

    let topic = "idem";
    let mut p = Client::connect(leader_port_of_new_topic(broker.port, topic));
    assert_eq!(produce(&mut p, topic, pid, 0, 0, 3), (NONE, 0));
    assert_eq!(produce(&mut p, topic, pid, 0, 0, 3), (NONE, 0), "a retry gets its first offset");
    assert_eq!(produce(&mut p, topic, pid, 0, 3, 2), (NONE, 3), "nothing was appended twice");
    assert_eq!(produce(&mut p, topic, pid, 0, 9, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(produce(&mut p, topic, pid, 0, 3, 2), (NONE, 3));

    // After a SIGKILL the state comes back from the log.
    broker.kill_and_restart();
    let mut p = Client::connect(leader_port_of_new_topic(broker.port, topic));
    assert_eq!(produce(&mut p, topic, pid, 0, 3, 2), (NONE, 3), "still a duplicate");
    assert_eq!(produce(&mut p, topic, pid, 0, 5, 1), (NONE, 5));
    // A new epoch starts at sequence 0; the old one is fenced.
    assert_eq!(produce(&mut p, topic, pid, 1, 0, 1), (NONE, 6));
    assert_eq!(produce(&mut p, topic, pid, 0, 6, 1).0, INVALID_PRODUCER_EPOCH);
    // A transaction no coordinator would end never opens: nothing is
    // appended, and the producer goes on where it was.
    let mut batch = engine::batch::build(&[(None, Some(&b"t"[..]))], 1_700_000_000_000);
    batch[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    engine::batch::set_producer(&mut batch, pid, 1, 1);
    assert_eq!(produce_batch(&mut p, topic, batch).0, INVALID_TXN_STATE);
    assert_eq!(produce(&mut p, topic, pid, 1, 1, 1), (NONE, 7));

    // Producer ids are never handed out twice, even across the SIGKILL.
    let mut c = Client::connect(broker.port);
    ids.push(init_producer_id(&mut c, 4).0);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "distinct: {ids:?}");
}

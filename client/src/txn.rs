//! A producer's identity and a transaction's control calls, as Kafka's
//! producers make them: InitProducerId (idempotent, or with a
//! `transactional.id` at its coordinator), AddPartitionsToTxn before a
//! transaction's first produce to a partition, EndTxn to commit or abort.
//!
//! Owns the coordinator's connection and the bounded retries of answers
//! that mean "not yet": finding and initialising at the coordinator while
//! it loads or moves, and CONCURRENT_TRANSACTIONS (the previous
//! transaction's markers still being written) for InitProducerId,
//! AddPartitionsToTxn and EndTxn. A coordinator that moves mid-transaction
//! fails the call: the caller starts again. It must not build or send
//! the records: the caller stamps its batches with [`ProducerIdentity`]
//! and sends them to the partitions' leaders itself.

use std::time::Instant;

use anyhow::{Context, Result};
use net::kafka_protocol::error::ResponseError;
use net::kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use net::kafka_protocol::messages::*;

use crate::cluster::{retriable, Client, COORDINATOR_TRANSACTION, RETRY_BACKOFF, RETRY_FOR};
use crate::conn::{name, str, Conn};
use crate::error::{check, KafkaError};
use crate::security::Security;

/// Versions served by Kafka 3.x/4.x and Corelog. AddPartitionsToTxn v3 is
/// the last form a producer sends (v4+ is the brokers' batched one).
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;
pub const ADD_PARTITIONS_TO_TXN_VERSION: i16 = 3;
pub const END_TXN_VERSION: i16 = 3;

/// How long to wait before asking again after CONCURRENT_TRANSACTIONS
/// (the previous transaction still writing its markers): short, as
/// Kafka's producer shortens its backoff for exactly this answer.
pub const CONCURRENT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(2);

/// What a producer stamps on its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub id: i64,
    pub epoch: i16,
}

/// An idempotent producer's identity, asked of the broker behind `conn`.
pub fn init_idempotent(conn: &mut Conn) -> Result<ProducerIdentity> {
    let r: InitProducerIdResponse = conn.call(
        ApiKey::InitProducerId,
        INIT_PRODUCER_ID_VERSION,
        &InitProducerIdRequest::default().with_producer_id((-1).into()).with_producer_epoch(-1),
    )?;
    check(r.error_code, None).context("InitProducerId")?;
    Ok(ProducerIdentity { id: r.producer_id.0, epoch: r.producer_epoch })
}

/// One `transactional.id`'s producer: its coordinator's connection and
/// its identity (the epoch fences every earlier instance of the id).
pub struct Transactions {
    tid: String,
    coordinator: Conn,
    pub producer: ProducerIdentity,
    /// CONCURRENT_TRANSACTIONS answers retried so far.
    pub concurrent_retries: u64,
}

impl Transactions {
    /// Finds `tid`'s coordinator through `bootstrap` and initialises the
    /// producer (aborting the id's open transaction, if any).
    pub fn init(
        bootstrap: &str,
        security: &Security,
        tid: &str,
        timeout_ms: i32,
    ) -> Result<Transactions> {
        let deadline = Instant::now() + RETRY_FOR;
        let mut client = Client::with_security(bootstrap, security.clone());
        loop {
            let addr = client.find_coordinator(tid, COORDINATOR_TRANSACTION)?;
            let mut conn = Conn::connect_with(&addr, security)?;
            let r: InitProducerIdResponse = conn.call(
                ApiKey::InitProducerId,
                INIT_PRODUCER_ID_VERSION,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(str(tid).into()))
                    .with_transaction_timeout_ms(timeout_ms)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            )?;
            match check(r.error_code, None) {
                Ok(()) => {
                    return Ok(Transactions {
                        tid: tid.to_string(),
                        coordinator: conn,
                        producer: ProducerIdentity { id: r.producer_id.0, epoch: r.producer_epoch },
                        concurrent_retries: 0,
                    })
                }
                Err(e) if again(&e) && Instant::now() < deadline => {
                    std::thread::sleep(RETRY_BACKOFF)
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("InitProducerId for {tid:?} at {addr}"))
                }
            }
        }
    }

    /// Adds `partitions` of `topic` to the open transaction (starting one
    /// if none is open), retrying while the previous one completes.
    pub fn add_partitions(&mut self, topic: &str, partitions: &[i32]) -> Result<()> {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(str(&self.tid).into())
            .with_v3_and_below_producer_id(self.producer.id.into())
            .with_v3_and_below_producer_epoch(self.producer.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(partitions.to_vec())]);
        self.until_not_concurrent("AddPartitionsToTxn", |coordinator| {
            let r: AddPartitionsToTxnResponse = coordinator.call(
                ApiKey::AddPartitionsToTxn,
                ADD_PARTITIONS_TO_TXN_VERSION,
                &request,
            )?;
            // The cause, not the partitions left OPERATION_NOT_ATTEMPTED
            // because of it.
            let codes: Vec<i16> = r
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .map(|p| p.partition_error_code)
                .filter(|&c| c != 0)
                .collect();
            let not_attempted = ResponseError::OperationNotAttempted.code();
            let code = codes.iter().copied().find(|&c| c != not_attempted);
            Ok(code.or(codes.first().copied()).unwrap_or(0))
        })
    }

    /// Commits (or aborts) the open transaction. The answer comes once
    /// the outcome is decided; its markers may still be on their way.
    pub fn end(&mut self, commit: bool) -> Result<()> {
        let request = EndTxnRequest::default()
            .with_transactional_id(str(&self.tid).into())
            .with_producer_id(self.producer.id.into())
            .with_producer_epoch(self.producer.epoch)
            .with_committed(commit);
        self.until_not_concurrent("EndTxn", |coordinator| {
            let r: EndTxnResponse = coordinator.call(ApiKey::EndTxn, END_TXN_VERSION, &request)?;
            Ok(r.error_code)
        })
    }

    /// Makes `call` (one request to the coordinator, answering its error
    /// code) until it is answered with anything but
    /// CONCURRENT_TRANSACTIONS, within [`RETRY_FOR`].
    fn until_not_concurrent(
        &mut self,
        what: &str,
        mut call: impl FnMut(&mut Conn) -> Result<i16>,
    ) -> Result<()> {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            match check(call(&mut self.coordinator)?, None) {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.is(ResponseError::ConcurrentTransactions) && Instant::now() < deadline =>
                {
                    self.concurrent_retries += 1;
                    std::thread::sleep(CONCURRENT_BACKOFF)
                }
                Err(e) => return Err(e).with_context(|| format!("{what} for {:?}", self.tid)),
            }
        }
    }
}

/// Answers to InitProducerId that mean "ask again": the coordinator
/// loading or elsewhere, or the id's previous transaction completing.
fn again(e: &KafkaError) -> bool {
    retriable(e) || e.is(ResponseError::ConcurrentTransactions)
}

//! The transaction coordinator described (KIP-664, `kafka-transactions.sh
//! list | describe | find-hanging`): DescribeTransactions v0 answers each
//! transactional id this shard coordinates with its stored state;
//! ListTransactions v0-v1 lists every id this shard coordinates, filtered
//! by state, producer id and (v1, KIP-994) how long the transaction has
//! run. v2's regular expression filter (KIP-1152, Kafka 4.1) is not
//! served: it would bring a regex engine for one admin filter.
//!
//! On the shard's own executor, reading [`crate::txns::Transactions`]
//! only: what was made durable, never a write on its way. Must not write.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as Described,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::txn::locate;
use super::{respond, HandlerResult};
use crate::context::ConnContext;
use crate::shard::Shard;
use crate::txns::records::{TxnRecord, TxnStatus};
use auth::acl::{Operation, ResourceType};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn now_ms() -> i64 {
    engine::Clock::now_ms(&engine::SystemClock)
}

/// DescribeTransactions: per id, its state as stored, or
/// `NOT_COORDINATOR` / `COORDINATOR_LOAD_IN_PROGRESS` /
/// `TRANSACTIONAL_ID_NOT_FOUND` (also for a `Dead` id, as Kafka).
/// DESCRIBE on each transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
pub fn describe_transactions(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    let req: DescribeTransactionsRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let out = Described::default().with_transactional_id(id.clone());
            // An id no producer could have (empty, too long) is not found.
            let not_found = ResponseError::TransactionalIdNotFound.code();
            let invalid = ResponseError::InvalidRequest.code();
            let op = Operation::Describe;
            if !context.may(&shard.config, &image, op, ResourceType::TransactionalId, id) {
                let denied = ResponseError::TransactionalIdAuthorizationFailed.code();
                return out.with_error_code(denied);
            }
            let located = locate(shard, id).map_err(|c| if c == invalid { not_found } else { c });
            let found = located.and_then(|_| {
                shard.txns.stored(id).filter(|r| r.status != TxnStatus::Dead).ok_or(not_found)
            });
            match found {
                Err(code) => out.with_error_code(code),
                Ok(r) => described(out, &r),
            }
        })
        .collect();
    respond(request, &DescribeTransactionsResponse::default().with_transaction_states(states))
}

fn described(out: Described, r: &TxnRecord) -> Described {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, p) in &r.partitions {
        topics.entry(topic).or_default().push(*p);
    }
    out.with_transaction_state(s(r.status.name()))
        .with_transaction_timeout_ms(r.timeout_ms)
        .with_transaction_start_time_ms(r.start_ms)
        .with_producer_id(ProducerId(r.producer_id))
        .with_producer_epoch(r.epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| TopicData::default().with_topic(TopicName(s(t))).with_partitions(ps))
                .collect(),
        )
}

/// ListTransactions: the ids this shard coordinates that pass every
/// filter given, Kafka's way: state names it does not know come back in
/// `unknown_state_filters` (and match nothing); `Dead` ids are never
/// listed; the duration filter keeps transactions started more than that
/// many milliseconds ago. `COORDINATOR_LOAD_IN_PROGRESS` while a
/// partition of this shard is being loaded.
/// The transactions whose ids the client may describe (Kafka's filter).
pub fn list_transactions(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: ListTransactionsRequest = request.decode_body()?;
    let image = shard.metadata.image();
    let visible = |id: &str| {
        context.may(&shard.config, &image, Operation::Describe, ResourceType::TransactionalId, id)
    };
    let mut response = ListTransactionsResponse::default();
    if shard.txns.is_loading() {
        response.error_code = ResponseError::CoordinatorLoadInProgress.code();
        return respond(request, &response);
    }
    let mut states = Vec::new();
    for name in &req.state_filters {
        match TxnStatus::from_name(name) {
            Some(state) => states.push(state),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    let filter = Filter {
        by_state: !req.state_filters.is_empty(),
        states,
        producer_ids: req.producer_id_filters.iter().map(|p| p.0).collect(),
        duration_ms: req.duration_filter,
        now: now_ms(),
    };
    let mut listed: Vec<(String, TxnRecord)> =
        shard.txns.list().into_iter().filter(|(id, r)| filter.keeps(r) && visible(id)).collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    response.transaction_states = listed
        .into_iter()
        .map(|(id, r)| {
            Listed::default()
                .with_transactional_id(s(&id).into())
                .with_producer_id(ProducerId(r.producer_id))
                .with_transaction_state(s(r.status.name()))
        })
        .collect();
    respond(request, &response)
}

/// ListTransactions' filters (Kafka's `TransactionStateManager`).
struct Filter {
    /// State filters were given (all unknown ones then match nothing).
    by_state: bool,
    states: Vec<TxnStatus>,
    producer_ids: Vec<i64>,
    /// Negative: no filter.
    duration_ms: i64,
    now: i64,
}

impl Filter {
    fn keeps(&self, r: &TxnRecord) -> bool {
        r.status != TxnStatus::Dead
            && (self.producer_ids.is_empty() || self.producer_ids.contains(&r.producer_id))
            && (!self.by_state || self.states.contains(&r.status))
            && (self.duration_ms < 0 || self.now.saturating_sub(r.start_ms) > self.duration_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: TxnStatus, producer_id: i64, start_ms: i64) -> TxnRecord {
        TxnRecord {
            producer_id,
            epoch: 0,
            timeout_ms: 60_000,
            status,
            partitions: Default::default(),
            last_update_ms: start_ms,
            start_ms,
        }
    }

    #[test]
    fn list_filters_as_kafka() {
        let all = Filter {
            by_state: false,
            states: vec![],
            producer_ids: vec![],
            duration_ms: -1,
            now: 10_000,
        };
        assert!(all.keeps(&record(TxnStatus::Ongoing, 1, 9_000)));
        assert!(all.keeps(&record(TxnStatus::Empty, 1, -1)));
        assert!(!all.keeps(&record(TxnStatus::Dead, 1, 9_000)));

        let ongoing = Filter { by_state: true, states: vec![TxnStatus::Ongoing], ..all };
        assert!(ongoing.keeps(&record(TxnStatus::Ongoing, 1, 9_000)));
        assert!(!ongoing.keeps(&record(TxnStatus::CompleteCommit, 1, 9_000)));
        // Only unknown state names given: nothing matches.
        let unknown = Filter { by_state: true, states: vec![], ..ongoing };
        assert!(!unknown.keeps(&record(TxnStatus::Ongoing, 1, 9_000)));

        let producer = Filter { by_state: false, producer_ids: vec![7], ..unknown };
        assert!(producer.keeps(&record(TxnStatus::Ongoing, 7, 9_000)));
        assert!(!producer.keeps(&record(TxnStatus::Ongoing, 8, 9_000)));

        // Running longer than 1000 ms: started before now - 1000.
        let long = Filter { producer_ids: vec![], duration_ms: 1_000, ..producer };
        assert!(long.keeps(&record(TxnStatus::Ongoing, 1, 8_999)));
        assert!(!long.keeps(&record(TxnStatus::Ongoing, 1, 9_000)));
    }

    #[test]
    fn state_names_round_trip() {
        for name in ["Empty", "Ongoing", "PrepareCommit", "CompleteAbort", "PrepareEpochFence"] {
            assert_eq!(TxnStatus::from_name(name).map(TxnStatus::name), Some(name));
        }
        assert_eq!(TxnStatus::from_name("ongoing"), None);
    }
}

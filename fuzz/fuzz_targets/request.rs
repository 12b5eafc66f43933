//! A request frame body (what `net::codec::decode_request` gets after the
//! 4-byte size): api key, version, the rest of the header, the body.
//!
//! The first two bytes pick the API: a served key is kept, any other value
//! picks one of `net::versions::SUPPORTED` by index (so every API is
//! reached, not only the few keys random bytes hit); a version outside the
//! API's served range is mapped into it. The raw, unmapped frame is decoded
//! too, for the refusals. On success the body is decoded as the handler of
//! that API decodes it (shard/src/handlers), and a Produce request's
//! records go through the engine's append validation.
//!
//! Nothing may panic, abort or allocate past libFuzzer's -malloc_limit_mb.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use net::codec::{decode_request, DecodeError, Request};
use net::kafka_protocol::messages::*;
use net::versions::{range, supports, SUPPORTED};

/// Decodes the body with the request type the shard's handler for the API
/// uses; what Produce carries is validated as the log's append would.
fn decode_body(req: &Request) -> Result<(), DecodeError> {
    // ApiVersions newer than served: answered in v0, the body is not read.
    if req.unsupported_api_versions {
        return Ok(());
    }
    match req.api {
        ApiKey::Produce => produce(req.decode_body::<ProduceRequest>()?, req.version),
        ApiKey::Fetch => drop(req.decode_body::<FetchRequest>()?),
        ApiKey::ListOffsets => drop(req.decode_body::<ListOffsetsRequest>()?),
        ApiKey::Metadata => {
            let m = req.decode_body::<MetadataRequest>()?;
            for t in m.topics.iter().flatten() {
                if let Some(name) = &t.name {
                    let _ = shard::metadata::validate_topic_name(name.0.as_str());
                }
            }
        }
        ApiKey::ApiVersions => drop(req.decode_body::<ApiVersionsRequest>()?),
        ApiKey::CreateTopics => drop(req.decode_body::<CreateTopicsRequest>()?),
        ApiKey::DeleteTopics => drop(req.decode_body::<DeleteTopicsRequest>()?),
        ApiKey::CreatePartitions => drop(req.decode_body::<CreatePartitionsRequest>()?),
        ApiKey::DescribeConfigs => drop(req.decode_body::<DescribeConfigsRequest>()?),
        ApiKey::IncrementalAlterConfigs => {
            drop(req.decode_body::<IncrementalAlterConfigsRequest>()?)
        }
        ApiKey::DescribeCluster => drop(req.decode_body::<DescribeClusterRequest>()?),
        ApiKey::DescribeQuorum => drop(req.decode_body::<DescribeQuorumRequest>()?),
        ApiKey::FindCoordinator => drop(req.decode_body::<FindCoordinatorRequest>()?),
        ApiKey::JoinGroup => drop(req.decode_body::<JoinGroupRequest>()?),
        ApiKey::SyncGroup => drop(req.decode_body::<SyncGroupRequest>()?),
        ApiKey::Heartbeat => drop(req.decode_body::<HeartbeatRequest>()?),
        ApiKey::LeaveGroup => drop(req.decode_body::<LeaveGroupRequest>()?),
        ApiKey::OffsetCommit => drop(req.decode_body::<OffsetCommitRequest>()?),
        ApiKey::OffsetFetch => drop(req.decode_body::<OffsetFetchRequest>()?),
        ApiKey::OffsetDelete => drop(req.decode_body::<OffsetDeleteRequest>()?),
        ApiKey::DescribeGroups => drop(req.decode_body::<DescribeGroupsRequest>()?),
        ApiKey::ListGroups => drop(req.decode_body::<ListGroupsRequest>()?),
        ApiKey::DeleteGroups => drop(req.decode_body::<DeleteGroupsRequest>()?),
        ApiKey::InitProducerId => drop(req.decode_body::<InitProducerIdRequest>()?),
        ApiKey::OffsetForLeaderEpoch => drop(req.decode_body::<OffsetForLeaderEpochRequest>()?),
        ApiKey::ElectLeaders => drop(req.decode_body::<ElectLeadersRequest>()?),
        ApiKey::DeleteRecords => drop(req.decode_body::<DeleteRecordsRequest>()?),
        ApiKey::DescribeLogDirs => drop(req.decode_body::<DescribeLogDirsRequest>()?),
        ApiKey::DescribeProducers => drop(req.decode_body::<DescribeProducersRequest>()?),
        ApiKey::AlterConfigs => drop(req.decode_body::<AlterConfigsRequest>()?),
        ApiKey::AddPartitionsToTxn => drop(req.decode_body::<AddPartitionsToTxnRequest>()?),
        ApiKey::EndTxn => drop(req.decode_body::<EndTxnRequest>()?),
        ApiKey::WriteTxnMarkers => drop(req.decode_body::<WriteTxnMarkersRequest>()?),
        ApiKey::AddOffsetsToTxn => drop(req.decode_body::<AddOffsetsToTxnRequest>()?),
        ApiKey::TxnOffsetCommit => drop(req.decode_body::<TxnOffsetCommitRequest>()?),
        ApiKey::DescribeTransactions => drop(req.decode_body::<DescribeTransactionsRequest>()?),
        ApiKey::ListTransactions => drop(req.decode_body::<ListTransactionsRequest>()?),
        ApiKey::SaslHandshake => drop(req.decode_body::<SaslHandshakeRequest>()?),
        ApiKey::SaslAuthenticate => drop(req.decode_body::<SaslAuthenticateRequest>()?),
        ApiKey::DescribeAcls => drop(req.decode_body::<DescribeAclsRequest>()?),
        ApiKey::CreateAcls => drop(req.decode_body::<CreateAclsRequest>()?),
        ApiKey::DeleteAcls => drop(req.decode_body::<DeleteAclsRequest>()?),
        ApiKey::DescribeClientQuotas => drop(req.decode_body::<DescribeClientQuotasRequest>()?),
        ApiKey::AlterClientQuotas => drop(req.decode_body::<AlterClientQuotasRequest>()?),
        ApiKey::DescribeUserScramCredentials => {
            drop(req.decode_body::<DescribeUserScramCredentialsRequest>()?)
        }
        ApiKey::AlterUserScramCredentials => {
            drop(req.decode_body::<AlterUserScramCredentialsRequest>()?)
        }
        // decode_request refuses every API that is not served.
        other => panic!("decode_request accepted {other:?}, which is not served"),
    }
    Ok(())
}

/// What the Produce handler does with each partition's records before any
/// offset is assigned: v0-v2's message formats converted to a batch, then
/// the engine's validation, under default topic configs.
fn produce(req: ProduceRequest, version: i16) {
    let rules = engine::LogConfig::default().validation_rules(1_700_000_000_000);
    for topic in &req.topic_data {
        let _ = shard::metadata::validate_topic_name(topic.name.0.as_str());
        for p in &topic.partition_data {
            if let Some(records) = &p.records {
                let records = if version < 3 && engine::legacy::is_legacy(records) {
                    match engine::legacy::upconvert(records, rules.max_batch_bytes) {
                        Ok(batch) => Bytes::from(batch),
                        Err(e) => {
                            let _ = e.to_string();
                            continue;
                        }
                    }
                } else {
                    records.clone()
                };
                let mut batches = BytesMut::from(&records[..]);
                if let Err(e) = engine::validate::validate_for_append(&mut batches, &rules) {
                    let e = engine::AppendError::Batch(e);
                    let _ = (net::errors::append_error_code(&e), e.to_string());
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        let _ = decode_request(Bytes::copy_from_slice(data));
        return;
    }
    let key = i16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    let served = ApiKey::try_from(key).ok().and_then(|api| range(api).map(|r| (api, r)));
    let (api, (min, max)) = served.unwrap_or_else(|| {
        let (api, min, max) = SUPPORTED[key as u16 as usize % SUPPORTED.len()];
        (api, (min, max))
    });
    // ApiVersions newer than served is accepted (KIP-511): kept as is.
    let version_ok = supports(api, version) || (api == ApiKey::ApiVersions && version > max);
    let frame = if served.is_some() && version_ok {
        Bytes::copy_from_slice(data)
    } else {
        // The refusal of the raw frame first (unknown API, unsupported version).
        if let Err(e) = decode_request(Bytes::copy_from_slice(data)) {
            let _ = e.to_string();
        }
        let version = if version_ok {
            version
        } else {
            min + (version as u16 % (max - min + 1) as u16) as i16
        };
        let mut f = BytesMut::from(data);
        f[0..2].copy_from_slice(&(api as i16).to_be_bytes());
        f[2..4].copy_from_slice(&version.to_be_bytes());
        f.freeze()
    };
    match decode_request(frame) {
        Ok(req) => {
            assert_eq!(req.api, api);
            if let Err(e) = decode_body(&req) {
                let _ = e.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

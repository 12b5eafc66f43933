//! The APIs and versions Corelog serves: the single source of truth for
//! ApiVersions and for refusing anything else. An API is listed here only
//! once it works end to end for every version in its range.

use kafka_protocol::messages::ApiKey;

/// (API, lowest version, highest version) served.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 9),
    (ApiKey::Fetch, 0, 16),
    (ApiKey::ListOffsets, 0, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 1),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 8),
    (ApiKey::OffsetFetch, 0, 8),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 0, 4),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::WriteTxnMarkers, 0, 1),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// The served range of `api`, if it is served at all.
pub fn range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == api).map(|&(_, min, max)| (min, max))
}

/// Whether `version` of `api` is served.
pub fn supports(api: ApiKey, version: i16) -> bool {
    range(api).is_some_and(|(min, max)| (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;

    /// Every served version is one the codec decodes, or one rewritten
    /// into the oldest it does ([`crate::legacy`]).
    #[test]
    fn advertised_versions_are_decodable() {
        use kafka_protocol::messages::*;
        fn within<M: Message>(api: ApiKey) {
            let (min, max) = range(api).unwrap();
            for v in min..=max {
                let body_version = crate::legacy::upgraded_version(api, v).unwrap_or(v);
                let known = M::VERSIONS.min <= body_version && body_version <= M::VERSIONS.max;
                assert!(known, "{api:?} v{v}");
            }
        }
        within::<ProduceRequest>(ApiKey::Produce);
        within::<FetchRequest>(ApiKey::Fetch);
        within::<ListOffsetsRequest>(ApiKey::ListOffsets);
        within::<MetadataRequest>(ApiKey::Metadata);
        within::<ApiVersionsRequest>(ApiKey::ApiVersions);
        within::<CreateTopicsRequest>(ApiKey::CreateTopics);
        within::<DescribeConfigsRequest>(ApiKey::DescribeConfigs);
        within::<IncrementalAlterConfigsRequest>(ApiKey::IncrementalAlterConfigs);
        within::<DeleteTopicsRequest>(ApiKey::DeleteTopics);
        within::<CreatePartitionsRequest>(ApiKey::CreatePartitions);
        within::<DescribeClusterRequest>(ApiKey::DescribeCluster);
        within::<DescribeQuorumRequest>(ApiKey::DescribeQuorum);
        within::<FindCoordinatorRequest>(ApiKey::FindCoordinator);
        within::<JoinGroupRequest>(ApiKey::JoinGroup);
        within::<SyncGroupRequest>(ApiKey::SyncGroup);
        within::<HeartbeatRequest>(ApiKey::Heartbeat);
        within::<LeaveGroupRequest>(ApiKey::LeaveGroup);
        within::<OffsetCommitRequest>(ApiKey::OffsetCommit);
        within::<OffsetFetchRequest>(ApiKey::OffsetFetch);
        within::<OffsetDeleteRequest>(ApiKey::OffsetDelete);
        within::<DescribeGroupsRequest>(ApiKey::DescribeGroups);
        within::<ListGroupsRequest>(ApiKey::ListGroups);
        within::<DeleteGroupsRequest>(ApiKey::DeleteGroups);
        within::<InitProducerIdRequest>(ApiKey::InitProducerId);
        within::<OffsetForLeaderEpochRequest>(ApiKey::OffsetForLeaderEpoch);
        within::<ElectLeadersRequest>(ApiKey::ElectLeaders);
        within::<DeleteRecordsRequest>(ApiKey::DeleteRecords);
        within::<DescribeLogDirsRequest>(ApiKey::DescribeLogDirs);
        within::<DescribeProducersRequest>(ApiKey::DescribeProducers);
        within::<AlterConfigsRequest>(ApiKey::AlterConfigs);
        within::<AddPartitionsToTxnRequest>(ApiKey::AddPartitionsToTxn);
        within::<EndTxnRequest>(ApiKey::EndTxn);
        within::<WriteTxnMarkersRequest>(ApiKey::WriteTxnMarkers);
        within::<DescribeUserScramCredentialsRequest>(ApiKey::DescribeUserScramCredentials);
        within::<AlterUserScramCredentialsRequest>(ApiKey::AlterUserScramCredentials);
        within::<AddOffsetsToTxnRequest>(ApiKey::AddOffsetsToTxn);
        within::<TxnOffsetCommitRequest>(ApiKey::TxnOffsetCommit);
        within::<DescribeTransactionsRequest>(ApiKey::DescribeTransactions);
        within::<ListTransactionsRequest>(ApiKey::ListTransactions);
        within::<SaslHandshakeRequest>(ApiKey::SaslHandshake);
        within::<SaslAuthenticateRequest>(ApiKey::SaslAuthenticate);
        within::<DescribeAclsRequest>(ApiKey::DescribeAcls);
        within::<CreateAclsRequest>(ApiKey::CreateAcls);
        within::<DeleteAclsRequest>(ApiKey::DeleteAcls);
        within::<DescribeClientQuotasRequest>(ApiKey::DescribeClientQuotas);
        within::<AlterClientQuotasRequest>(ApiKey::AlterClientQuotas);
        assert!(supports(ApiKey::Fetch, 0) && !supports(ApiKey::Fetch, 17));
        assert!(!supports(ApiKey::ListTransactions, 2));
        assert!(supports(ApiKey::WriteTxnMarkers, 0) && !supports(ApiKey::WriteTxnMarkers, 2));
    }
}

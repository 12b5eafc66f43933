//! A minimal consumer group member (the classic protocol): JoinGroup with
//! protocol type "consumer" and the "range" assignor, SyncGroup (as the
//! leader it computes every member's assignment), Heartbeat, committed
//! offsets, LeaveGroup. A rebalance answer means: join again.
//!
//! Owns the member's identity (member id, generation) and its assignment;
//! it must not fetch records or decide where to start reading (the
//! consumer does). Main types: [`Member`], and [`range_assign`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use net::kafka_protocol::error::ResponseError;
use net::kafka_protocol::messages::*;

use crate::cluster::{Client, RETRY_BACKOFF};
use crate::conn::str;
use crate::error::{check, has_code, KafkaError};
use crate::groups::{self, with_coordinator, TopicPartitions};

pub const JOIN_GROUP_VERSION: i16 = 7;
pub const SYNC_GROUP_VERSION: i16 = 3;
pub const HEARTBEAT_VERSION: i16 = 3;
pub const LEAVE_GROUP_VERSION: i16 = 3;

/// The broker drops a member it has not heard from for this long (Kafka's
/// consumer default is 45 s; shorter here, so a killed CLI frees its
/// partitions sooner).
pub const SESSION_TIMEOUT_MS: i32 = 10_000;
/// How long the broker waits for every member to rejoin; below
/// [`crate::conn::RESPONSE_TIMEOUT`], so a JoinGroup always gets its answer.
pub const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// Heartbeats at a third of the session timeout, as Kafka's consumer does.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(SESSION_TIMEOUT_MS as u64 / 3);
/// Longest a join (JoinGroup and SyncGroup, retried on rebalances) may take.
pub const JOIN_FOR: Duration = Duration::from_secs(90);

const _: () =
    assert!((REBALANCE_TIMEOUT_MS as u64) < crate::conn::RESPONSE_TIMEOUT.as_secs() * 1000);

pub const PROTOCOL_TYPE: &str = "consumer";
pub const RANGE: &str = "range";

/// Whether `e` means the member must join again (a rebalance started, or
/// the coordinator no longer knows this generation or member).
pub fn needs_rejoin(e: &anyhow::Error) -> bool {
    has_code(e, ResponseError::RebalanceInProgress)
        || has_code(e, ResponseError::IllegalGeneration)
        || has_code(e, ResponseError::UnknownMemberId)
}

/// Kafka's RangeAssignor: per topic, partitions in order are cut into
/// contiguous ranges, one per subscribed member in member-id order, the
/// first `partitions % members` members getting one more.
/// `subscriptions` is member id → topics; `partitions` topic → count.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out: BTreeMap<String, TopicPartitions> =
        subscriptions.keys().map(|m| (m.clone(), TopicPartitions::new())).collect();
    for (topic, &count) in partitions {
        let members: Vec<&String> =
            subscriptions.iter().filter(|(_, ts)| ts.contains(topic)).map(|(m, _)| m).collect();
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, m) in members.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0 {
                out.get_mut(*m)
                    .expect("every member has an entry")
                    .insert(topic.clone(), (start..start + len).collect());
            }
        }
    }
    out
}

/// One member of a consumer group, joined and assigned.
#[derive(Debug)]
pub struct Member {
    pub group: String,
    pub topics: Vec<String>,
    pub member_id: String,
    pub generation: i32,
    /// What the leader gave this member in the current generation.
    pub assignment: TopicPartitions,
    last_heartbeat: Instant,
}

impl Member {
    /// Joins `group` subscribed to `topics` and waits for an assignment.
    pub fn join(client: &mut Client, group: &str, topics: &[String]) -> Result<Member> {
        let mut m = Member {
            group: group.to_string(),
            topics: topics.to_vec(),
            member_id: String::new(),
            generation: -1,
            assignment: TopicPartitions::new(),
            last_heartbeat: Instant::now(),
        };
        m.rejoin(client)?;
        Ok(m)
    }

    /// JoinGroup and SyncGroup until an assignment arrives, at most [`JOIN_FOR`].
    pub fn rejoin(&mut self, client: &mut Client) -> Result<()> {
        let deadline = Instant::now() + JOIN_FOR;
        loop {
            match self.join_once(client) {
                Ok(()) => {
                    self.last_heartbeat = Instant::now();
                    return Ok(());
                }
                // KIP-394: join again at once with the member id the broker
                // named (a pending id expires with the session timeout).
                Err(e)
                    if has_code(&e, ResponseError::MemberIdRequired)
                        && Instant::now() < deadline => {}
                Err(e) if Instant::now() < deadline && needs_rejoin(&e) => {
                    if has_code(&e, ResponseError::UnknownMemberId) {
                        self.member_id.clear();
                    }
                    std::thread::sleep(RETRY_BACKOFF);
                }
                Err(e) => return Err(e.context(format!("joining group {}", self.group))),
            }
        }
    }

    fn join_once(&mut self, client: &mut Client) -> Result<()> {
        let group = self.group.clone();
        let metadata = groups::encode_subscription(&self.topics)?;
        let join = with_coordinator(client, &group, |client, addr| {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(str(&group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(str(&self.member_id))
                .with_protocol_type(str(PROTOCOL_TYPE))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(str(RANGE))
                    .with_metadata(metadata.clone())]);
            let r: JoinGroupResponse =
                client.call(addr, ApiKey::JoinGroup, JOIN_GROUP_VERSION, &request)?;
            if r.error_code == ResponseError::MemberIdRequired.code() {
                // KIP-394: the broker names the member id to join with.
                self.member_id = r.member_id.to_string();
            }
            check(r.error_code, None).context("JoinGroup")?;
            Ok((r, addr.to_string()))
        });
        let (r, coordinator) = join?;
        self.member_id = r.member_id.to_string();
        self.generation = r.generation_id;
        let protocol = r.protocol_name.as_ref().map(|p| p.to_string()).unwrap_or_default();
        if protocol != RANGE {
            bail!("the group chose protocol {protocol:?}, not {RANGE:?}");
        }
        let assignments =
            if r.leader == r.member_id { self.assign(client, &r)? } else { Vec::new() };
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(str(&group)))
            .with_generation_id(self.generation)
            .with_member_id(str(&self.member_id))
            .with_assignments(assignments);
        let s: SyncGroupResponse =
            client.call(&coordinator, ApiKey::SyncGroup, SYNC_GROUP_VERSION, &request)?;
        check(s.error_code, None).context("SyncGroup")?;
        self.assignment = groups::decode_assignment(&s.assignment)
            .context("the leader's assignment does not decode")?;
        Ok(())
    }

    /// As the leader: every member's partitions by the range assignor.
    fn assign(
        &self,
        client: &mut Client,
        join: &JoinGroupResponse,
    ) -> Result<Vec<sync_group_request::SyncGroupRequestAssignment>> {
        let mut subscriptions = BTreeMap::new();
        for m in &join.members {
            let topics = groups::decode_subscription(&m.metadata)
                .with_context(|| format!("the subscription of member {}", m.member_id))?;
            subscriptions.insert(m.member_id.to_string(), topics);
        }
        let mut all: Vec<&str> =
            subscriptions.values().flatten().map(String::as_str).collect::<Vec<_>>();
        all.sort_unstable();
        all.dedup();
        let md = client.metadata(Some(&all))?;
        let counts: BTreeMap<String, i32> = md
            .topics
            .iter()
            .filter(|t| t.error.is_none())
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        range_assign(&subscriptions, &counts)
            .into_iter()
            .map(|(member, a)| {
                Ok(sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(str(&member))
                    .with_assignment(groups::encode_assignment(&a)?))
            })
            .collect()
    }

    /// Heartbeats when one is due. An error that [`needs_rejoin`] means the
    /// group is rebalancing: call [`Member::rejoin`].
    pub fn heartbeat_if_due(&mut self, client: &mut Client) -> Result<()> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(());
        }
        let group = self.group.clone();
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(str(&group)))
            .with_generation_id(self.generation)
            .with_member_id(str(&self.member_id));
        with_coordinator(client, &group, |client, addr| {
            let r: HeartbeatResponse =
                client.call(addr, ApiKey::Heartbeat, HEARTBEAT_VERSION, &request)?;
            check(r.error_code, None).map_err(anyhow::Error::new)
        })?;
        self.last_heartbeat = Instant::now();
        Ok(())
    }

    /// The committed offsets of this member's partitions.
    pub fn committed(&self, client: &mut Client) -> Result<BTreeMap<(String, i32), i64>> {
        groups::committed(client, &self.group, Some(&self.assignment))
    }

    /// Commits `offsets` in this member's generation.
    pub fn commit(
        &self,
        client: &mut Client,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<()> {
        groups::commit(client, &self.group, self.generation, &self.member_id, offsets)
    }

    /// Leaves the group, so that its partitions go to others at once.
    pub fn leave(&self, client: &mut Client) -> Result<()> {
        let request = LeaveGroupRequest::default()
            .with_group_id(GroupId(str(&self.group)))
            .with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(str(&self.member_id))
            ]);
        with_coordinator(client, &self.group, |client, addr| {
            let r: LeaveGroupResponse =
                client.call(addr, ApiKey::LeaveGroup, LEAVE_GROUP_VERSION, &request)?;
            check(r.error_code, None)?;
            for m in &r.members {
                check(m.error_code, None)?;
            }
            Ok(())
        })
        .with_context(|| format!("leaving group {}", self.group))
    }
}

/// A [`KafkaError`] from a join, for callers that match on it.
pub fn join_error(e: &anyhow::Error) -> Option<&KafkaError> {
    e.chain().find_map(|c| c.downcast_ref::<KafkaError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn range_gives_contiguous_ranges_the_first_members_one_more() {
        let counts: BTreeMap<String, i32> = [("t".to_string(), 7), ("u".to_string(), 2)].into();
        let a = range_assign(
            &subs(&[("m1", &["t", "u"]), ("m2", &["t"]), ("m3", &["t", "u"])]),
            &counts,
        );
        assert_eq!(a["m1"]["t"], vec![0, 1, 2]);
        assert_eq!(a["m2"]["t"], vec![3, 4]);
        assert_eq!(a["m3"]["t"], vec![5, 6]);
        // "u" is split between its two subscribers only.
        assert_eq!(a["m1"]["u"], vec![0]);
        assert_eq!(a["m3"]["u"], vec![1]);
        assert!(!a["m2"].contains_key("u"));
    }

    #[test]
    fn range_with_more_members_than_partitions_leaves_some_idle() {
        let counts: BTreeMap<String, i32> = [("t".to_string(), 2)].into();
        let a = range_assign(&subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]), &counts);
        assert_eq!(a["a"]["t"], vec![0]);
        assert_eq!(a["b"]["t"], vec![1]);
        assert!(a["c"].is_empty());
        let one = range_assign(&subs(&[("a", &["t"])]), &counts);
        assert_eq!(one["a"]["t"], vec![0, 1]);
    }
}

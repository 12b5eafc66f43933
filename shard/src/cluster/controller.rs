//! A controller of the quorum, on shard 0 of a node named in
//! `--controller-quorum`: one Raft voter, its durable log, its TCP links
//! to the other controllers, and — while it leads — the active
//! controller's work.
//!
//! One task owns it all and takes [`Event`]s one at a time: ticks, Raft
//! messages from peers, and requests from nodes (registration, heartbeats,
//! metadata fetches, commands). After each, it carries out the voter's
//! `Output`: writes fdatasynced to the Raft log, then messages to peers,
//! then committed entries folded into the image (each entry is one
//! command's metadata records, one JSON record per line).
//!
//! The leader proposes one command at a time, from the committed image,
//! and only once everything committed before its term is applied: so a
//! proposal never contradicts an earlier one. It fences nodes not heard
//! from for its session timeout ([`super::SESSION_TIMEOUT`] by default) and bootstraps the cluster id and
//! `__consumer_offsets` once every controller's node has registered.
//! Its port speaks TLS when the inter-broker listener does and takes a
//! login first when nodes have a credential ([`super::login`]).
//! Never serves Kafka clients; never blocks its shard beyond an fsync.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::disk::DmaDisk;
use glommio::net::{TcpListener, TcpStream};
use log::{info, warn};
use quorum::voter::committed_entries;
use quorum::wire::{decode_message, encode_message};
use quorum::{ElectionTimeout, Entry, Message, MessageType, Proposed, Voter};

use super::frame::{read_frame, write_frame, Kind};
use super::login::{check, log_in, PortLogin, FAILED_LOGIN_DELAY, LOGIN_TIMEOUT};
use super::raft_log::{RaftLogFile, RAFT_LOG_DIR};
use super::rpc::{Fetched, Request, Response, FETCH_WAIT};
use super::{node_of_raft_id, QuorumConfig, QuorumVoter, TICK};
use crate::admission::within;
use crate::controller::machine::{self, Limits};
use crate::controller::{Answer, Command, QuorumState};
use crate::groups::OFFSETS_TOPIC;
use crate::ids::{random_bytes, random_id, NodeId};
use crate::log_limit::LogLimit;
use crate::metadata::{MetadataImage, MetadataRecord};
use crate::peer_auth::Peers;
use crate::peer_stream::PeerStream;
use crate::shard::Shard;

/// Events queued for the controller at most: ticks are skipped and peers'
/// readers wait beyond it.
pub const EVENTS_MAX: usize = 4096;

/// Raft messages queued per peer while it is unreachable or slow; beyond
/// it they are dropped (Raft sends again).
pub const PEER_QUEUE_MAX: usize = 1024;

/// Requests waiting for the leader's turn (commands, registrations).
pub const COMMANDS_QUEUED_MAX: usize = 1024;

enum Event {
    Tick,
    Raft(Message),
    Request(Request, flume::Sender<Response>),
}

/// What a proposal answers once committed: a node's request, or nobody
/// (the controller's own fencing and bootstrap).
type Asker = Option<flume::Sender<Response>>;

struct State {
    me: NodeId,
    quorum: Rc<QuorumConfig>,
    voter: Voter,
    file: RaftLogFile<DmaDisk>,
    peers: BTreeMap<u64, flume::Sender<Vec<u8>>>,
    limits: Limits,
    /// `--scram-credential` seeds for the bootstrap of a new log.
    scram_seeds: Vec<(String, auth::ScramCredential)>,
    /// Entries applied between two snapshots (`--metadata-snapshot-entries`).
    snapshot_entries: u64,
    /// A node not heard from for this long is fenced
    /// (`--broker-session-timeout-ms`).
    session_timeout: Duration,
    image: Arc<MetadataImage>,
    /// Log index of the last entry applied to `image`.
    applied: u64,
    /// While leading: the index of this term's first entry.
    term_start: Option<u64>,
    in_flight: Option<(Proposed, Answer, Asker)>,
    queue: VecDeque<(Command, Asker)>,
    fetches: Vec<(u64, flume::Sender<Response>, Instant)>,
    heard: BTreeMap<NodeId, Instant>,
    /// This node asked to leave (a clean stop): once its unregistration is
    /// committed, leadership goes to the most caught-up other voter, and
    /// only then (or after [`HANDOVER_WAIT`]) is the node answered, so it
    /// does not stop in the middle of the handover.
    leave: Option<(flume::Sender<Response>, Option<Instant>)>,
}

/// How long a leaving leader waits for its handover to complete.
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs this node's controller until the process ends. A failure to open
/// the Raft log or to listen ends the process: without it the quorum
/// would count a voter that cannot vote.
pub async fn run(shard: Rc<Shard>, quorum: Rc<QuorumConfig>) {
    let me = NodeId(shard.config.node_id);
    let fatal = |e: String| -> ! {
        eprintln!("fatal: controller: {e}");
        std::process::exit(1);
    };
    let Some(mine) = quorum.voter(me).cloned() else { return };
    let voters = quorum.raft_ids();
    // Closed with the shard's logs at shutdown.
    let log = shard.partitions.open_system_log(RAFT_LOG_DIR, RaftLogFile::<DmaDisk>::log_config());
    let log = log.await.unwrap_or_else(|e| fatal(format!("raft log {RAFT_LOG_DIR}: {e}")));
    let (file, store) = RaftLogFile::open(log, &voters).await.unwrap_or_else(|e| fatal(e));
    let mut image = image_of_snapshot(&store.snapshot_ref().data).unwrap_or_else(|e| fatal(e));
    for e in committed_entries(&store) {
        image = apply_entry(&image, e).unwrap_or_else(|e| fatal(e));
    }
    let applied = store.hard_state().commit.max(store.snapshot_ref().get_metadata().index);
    let voter = Voter::new(mine.raft_id(), store, applied, ElectionTimeout::default())
        .unwrap_or_else(|e| fatal(e.to_string()));
    let (listener, claim) = crate::bind::listen(&mine.host, mine.port)
        .await
        .unwrap_or_else(|e| fatal(format!("cannot listen on {}: {e}", mine.addr())));
    // The controller listens until the process ends, and so holds its port.
    std::mem::forget(claim);
    let credential = shard.config.inter_broker_credential.as_ref();
    let port = Rc::new(Port {
        peer_auth: shard.peers.clone(),
        login: credential.map(|c| PortLogin::new(c).unwrap_or_else(|e| fatal(e))),
        refusals: LogLimit::default(),
    });
    let (events, inbox) = flume::bounded(EVENTS_MAX);
    glommio::spawn_local(accept(listener, events.clone(), port)).detach();
    let ticks = events.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(TICK).await;
            let _ = ticks.try_send(Event::Tick);
        }
    })
    .detach();
    let mut peers = BTreeMap::new();
    for v in quorum.voters.iter().filter(|v| v.node != me) {
        let (tx, rx) = flume::bounded(PEER_QUEUE_MAX);
        glommio::spawn_local(send_to_peer(v.clone(), rx, shard.peers.clone())).detach();
        peers.insert(v.raft_id(), tx);
    }
    let limits = Limits::of(&shard.config);
    info!(
        "controller {me}: voter of {} at {}, metadata at index {applied} (epoch {})",
        quorum.voters.len(),
        mine.addr(),
        image.epoch
    );
    let mut state = State {
        me,
        quorum,
        voter,
        file,
        peers,
        limits,
        scram_seeds: shard.config.scram_credentials.clone(),
        snapshot_entries: shard.config.metadata_snapshot_entries,
        session_timeout: Duration::from_millis(shard.config.broker_session_timeout_ms),
        image: Arc::new(image),
        applied,
        term_start: None,
        in_flight: None,
        queue: VecDeque::new(),
        fetches: Vec::new(),
        heard: BTreeMap::new(),
        leave: None,
    };
    while let Ok(event) = inbox.recv_async().await {
        // The Raft log closes with the shard's logs: a stopping node's
        // voter goes quiet, as a stopped one would.
        if shard.stopping() {
            return;
        }
        match event {
            Event::Tick => {
                state.voter.tick();
                state.leader_duties();
            }
            Event::Raft(m) => {
                if let Err(e) = state.voter.step(m) {
                    log::debug!("controller {me}: {e}");
                }
            }
            Event::Request(r, reply) => state.request(r, reply),
        }
        if let Err(e) = state.drive().await {
            if shard.stopping() {
                return;
            }
            // The Raft log cannot be written: this voter must not vote or
            // acknowledge again.
            fatal(e);
        }
    }
}

impl State {
    fn leading(&self) -> bool {
        self.voter.is_leader()
    }

    /// Leading, with everything committed before this term applied.
    fn ready_to_propose(&self) -> bool {
        self.leading() && self.term_start.is_some_and(|start| self.applied >= start)
    }

    fn leader(&self) -> Option<NodeId> {
        self.voter.leader().map(node_of_raft_id)
    }

    fn request(&mut self, request: Request, reply: flume::Sender<Response>) {
        if !self.ready_to_propose() {
            let _ = reply.send(Response::NotLeader { leader: self.leader() });
            return;
        }
        match request {
            Request::Register(node) => {
                self.heard.insert(node.id, Instant::now());
                self.enqueue(Command::RegisterNode(node), Some(reply));
            }
            Request::Heartbeat(node) => match self.image.nodes.get(&node) {
                None => {
                    let _ = reply.send(Response::UnknownNode);
                }
                Some(n) => {
                    self.heard.insert(node, Instant::now());
                    if n.fenced
                        && !self.queued(&|c| matches!(c, Command::UnfenceNode(x) if *x == node))
                    {
                        info!("controller {}: node {node} is back", self.me);
                        self.enqueue(Command::UnfenceNode(node), None);
                    }
                    let _ = reply.send(Response::Ok);
                }
            },
            Request::Unregister(node) if node == self.me => {
                self.heard.remove(&node);
                self.leave = Some((reply, None));
                self.enqueue(Command::UnregisterNode(node), None);
            }
            Request::Unregister(node) => {
                self.heard.remove(&node);
                self.enqueue(Command::UnregisterNode(node), Some(reply));
            }
            Request::Fetch { from } => {
                if from < self.applied {
                    let _ = reply.send(Response::Fetched(self.fetched(from)));
                } else {
                    self.fetches.push((from, reply, Instant::now()));
                }
            }
            Request::Command(command) => self.enqueue(command, Some(reply)),
            Request::Quorum => {
                let progress = self.voter.progress().unwrap_or_default();
                let _ = reply.send(Response::Quorum(QuorumState {
                    leader: self.me,
                    epoch: self.voter.term(),
                    high_watermark: self.applied,
                    voters: progress.into_iter().map(|(id, m)| (node_of_raft_id(id), m)).collect(),
                }));
            }
        }
    }

    fn queued(&self, f: &dyn Fn(&Command) -> bool) -> bool {
        self.queue.iter().any(|(c, _)| f(c))
    }

    fn enqueue(&mut self, command: Command, asker: Asker) {
        if self.queue.len() >= COMMANDS_QUEUED_MAX {
            if let Some(a) = asker {
                let _ = a.send(Response::NotLeader { leader: None });
            }
            return;
        }
        self.queue.push_back((command, asker));
    }

    /// The committed metadata after index `from`: a snapshot of the image
    /// when the log no longer holds what follows `from`.
    fn fetched(&self, from: u64) -> Fetched {
        let store = self.voter.store();
        let snapshot_index = store.snapshot_ref().get_metadata().index;
        let (snapshot, from) = if from < snapshot_index {
            (Some(self.image.to_records()), self.applied)
        } else {
            (None, from)
        };
        let entries = committed_entries(store)
            .filter(|e| e.index > from && e.index <= self.applied)
            .filter_map(|e| Some((e.index, records_of_entry(e).ok()?)))
            .collect();
        Fetched { index: self.applied, snapshot, entries }
    }

    fn leader_duties(&mut self) {
        let now = Instant::now();
        let expired: Vec<_> = self
            .fetches
            .iter()
            .enumerate()
            .filter(|(_, (_, _, at))| now.duration_since(*at) >= FETCH_WAIT)
            .map(|(i, _)| i)
            .rev()
            .collect();
        for i in expired {
            let (from, reply, _) = self.fetches.swap_remove(i);
            let _ = reply.send(Response::Fetched(Fetched { index: from, ..Default::default() }));
        }
        self.hand_over();
        if !self.ready_to_propose() {
            return;
        }
        // This node is alive: it is running this.
        self.heard.insert(self.me, now);
        let late: Vec<NodeId> = self
            .image
            .live_nodes()
            .map(|n| n.id)
            .filter(|n| {
                self.heard.get(n).is_none_or(|at| now.duration_since(*at) > self.session_timeout)
            })
            .collect();
        for node in late {
            if !self.queued(&|c| matches!(c, Command::FenceNode(x) if *x == node)) {
                warn!(
                    "controller {}: node {node} missed its heartbeats for {} ms: fencing it",
                    self.me,
                    self.session_timeout.as_millis()
                );
                self.enqueue(Command::FenceNode(node), None);
            }
        }
        let every_controller_registered = self
            .quorum
            .voters
            .iter()
            .all(|v| self.image.nodes.get(&v.node).is_some_and(|n| !n.fenced));
        // The cluster id and `__consumer_offsets` once every controller's
        // node is there: the offsets partitions then spread over all of them.
        let bootstrap = every_controller_registered
            && (self.image.cluster_id.is_empty() || !self.image.topics.contains_key(OFFSETS_TOPIC));
        if bootstrap && !self.queued(&|c| matches!(c, Command::Bootstrap { .. })) {
            let scram = self.scram_seeds.clone();
            self.enqueue(Command::Bootstrap { cluster_id: random_id(), scram }, None);
        }
    }

    /// Proposes what waits, carries out the voter's outputs, answers what
    /// they commit; until nothing is left to do.
    async fn drive(&mut self) -> Result<(), String> {
        loop {
            self.notice_leadership();
            self.propose_next();
            let out = self.voter.ready();
            if out.writes.is_empty() && out.messages.is_empty() && out.committed.is_empty() {
                break;
            }
            self.file.persist(&out.writes, self.voter.store()).await?;
            for m in out.messages {
                self.send(m);
            }
            if let Some(s) = &out.snapshot {
                self.image = Arc::new(image_of_snapshot(&s.data)?);
                self.applied = s.get_metadata().index;
                info!(
                    "controller {}: installed the leader's snapshot of the metadata at index {} (epoch {})",
                    self.me, self.applied, self.image.epoch
                );
            }
            for e in &out.committed {
                self.apply(e)?;
            }
            // Empty entries (a new leader's) are applied too, with nothing to fold.
            self.applied = self.applied.max(self.voter.applied_index());
            self.answer_fetches();
            self.compact().await?;
            self.hand_over();
        }
        Ok(())
    }

    /// Once this leaving node's unregistration is committed, leadership
    /// goes to the voter with the longest log; the node is answered when
    /// leadership has moved, or after [`HANDOVER_WAIT`].
    fn hand_over(&mut self) {
        let Some((_, started)) = &self.leave else { return };
        let unregistered = !self.image.nodes.contains_key(&self.me);
        let moved = !self.leading();
        let expired = started.is_some_and(|at| at.elapsed() >= HANDOVER_WAIT);
        if unregistered && (moved || expired) {
            let (reply, _) = self.leave.take().expect("checked");
            let _ = reply.send(Response::Committed { index: self.applied, answer: Answer::Done });
            return;
        }
        if !unregistered || started.is_some() || self.in_flight.is_some() {
            return;
        }
        let me = self.voter.id();
        let best = self
            .voter
            .progress()
            .unwrap_or_default()
            .into_iter()
            .filter(|&(id, _)| id != me)
            .max_by_key(|&(_, matched)| matched);
        if let Some((to, _)) = best {
            info!("controller {}: leaving; handing leadership to {}", self.me, node_of_raft_id(to));
            self.voter.transfer_leadership(to);
        }
        if let Some((_, started)) = &mut self.leave {
            *started = Some(Instant::now());
        }
    }

    fn notice_leadership(&mut self) {
        match (self.leading(), self.term_start) {
            (true, None) => {
                let start = self.voter.last_index();
                info!(
                    "controller {}: leader of term {} (from index {start})",
                    self.me,
                    self.voter.term()
                );
                self.term_start = Some(start);
                // Every registered node gets a full session from now.
                let now = Instant::now();
                self.heard = self.image.nodes.keys().map(|&n| (n, now)).collect();
            }
            (false, Some(_)) => {
                self.term_start = None;
                let leader = self.leader();
                // A leave not yet committed goes to the new leader.
                if self.image.nodes.contains_key(&self.me) {
                    if let Some((a, _)) = self.leave.take() {
                        let _ = a.send(Response::NotLeader { leader });
                    }
                }
                if let Some((_, _, Some(a))) = self.in_flight.take() {
                    let _ = a.send(Response::NotLeader { leader });
                }
                for (_, a) in self.queue.drain(..) {
                    if let Some(a) = a {
                        let _ = a.send(Response::NotLeader { leader });
                    }
                }
                for (_, a, _) in self.fetches.drain(..) {
                    let _ = a.send(Response::NotLeader { leader });
                }
            }
            _ => {}
        }
    }

    fn propose_next(&mut self) {
        while self.in_flight.is_none() && self.ready_to_propose() {
            let Some((command, asker)) = self.queue.pop_front() else { return };
            if asker.is_none()
                || matches!(command, Command::RegisterNode(_) | Command::UnregisterNode(_))
            {
                info!("controller {}: proposing {command:?}", self.me);
            }
            let proposal = machine::propose(&self.image, &self.limits, command, &mut random_bytes);
            if proposal.records.is_empty() {
                if let Some(a) = asker {
                    let _ = a
                        .send(Response::Committed { index: self.applied, answer: proposal.answer });
                }
                continue;
            }
            match self.voter.propose(entry_data(&proposal.records)) {
                Ok(at) => self.in_flight = Some((at, proposal.answer, asker)),
                Err(e) => {
                    warn!("controller {}: proposal refused: {e}", self.me);
                    if let Some(a) = asker {
                        let _ = a.send(Response::NotLeader { leader: self.leader() });
                    }
                }
            }
        }
    }

    fn apply(&mut self, e: &Entry) -> Result<(), String> {
        self.image = Arc::new(apply_entry(&self.image, e)?);
        self.applied = e.index;
        if let Some((at, _, _)) = &self.in_flight {
            if at.index == e.index {
                let (at, answer, asker) = self.in_flight.take().expect("checked");
                let response = if at.term == e.term {
                    Response::Committed { index: e.index, answer }
                } else {
                    Response::NotLeader { leader: self.leader() }
                };
                if let Some(a) = asker {
                    let _ = a.send(response);
                }
            }
        }
        Ok(())
    }

    fn answer_fetches(&mut self) {
        let applied = self.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            self.fetches.drain(..).partition(|(from, _, _)| *from < applied);
        self.fetches = waiting;
        for (from, reply, _) in ready {
            let _ = reply.send(Response::Fetched(self.fetched(from)));
        }
    }

    async fn compact(&mut self) -> Result<(), String> {
        let snapshot_index = self.voter.store().snapshot_ref().get_metadata().index;
        if self.applied < snapshot_index + self.snapshot_entries {
            return Ok(());
        }
        let data = snapshot_data(&self.image);
        if let Some(w) = self.voter.compact(self.applied, data) {
            self.file.persist(&[w], self.voter.store()).await?;
        }
        Ok(())
    }

    fn send(&mut self, m: Message) {
        let to = m.to;
        let snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
        let sent = self.peers.get(&to).is_some_and(|p| p.try_send(encode_message(&m)).is_ok());
        if snapshot {
            self.voter.report_snapshot(to, sent);
        }
    }
}

/// An entry's data: its records, one JSON object per line.
fn entry_data(records: &[MetadataRecord]) -> Vec<u8> {
    let lines: Vec<Vec<u8>> = records.iter().map(MetadataRecord::encode).collect();
    lines.join(&b'\n')
}

fn records_of_entry(e: &Entry) -> Result<Vec<MetadataRecord>, String> {
    e.data
        .split(|&b| b == b'\n')
        .map(|line| MetadataRecord::decode(line, NodeId(0)))
        .collect::<Result<_, _>>()
        .map_err(|err| format!("metadata entry {}: {err}", e.index))
}

fn apply_entry(image: &MetadataImage, e: &Entry) -> Result<MetadataImage, String> {
    Ok(image.applied(&records_of_entry(e)?))
}

/// A snapshot's data: the image's records, one per line; empty for none.
fn snapshot_data(image: &MetadataImage) -> Vec<u8> {
    entry_data(&image.to_records())
}

fn image_of_snapshot(data: &[u8]) -> Result<MetadataImage, String> {
    if data.is_empty() {
        return Ok(MetadataImage::default());
    }
    let mut image = MetadataImage::default();
    for line in data.split(|&b| b == b'\n') {
        image.apply_mut(&MetadataRecord::decode(line, NodeId(0))?);
    }
    Ok(image)
}

/// What the controller's port asks of a connection before serving it.
struct Port {
    /// TLS when the inter-broker listener is TLS.
    peer_auth: Rc<Peers>,
    /// The login, when nodes have a credential.
    login: Option<PortLogin>,
    /// Refused connections are logged at most every ten seconds.
    refusals: LogLimit,
}

impl Port {
    fn refused(&self, peer: &str, why: &str) {
        if let Some(more) = self.refusals.admit(Instant::now()) {
            warn!("controller: refused the connection from {peer}: {why} ({more} more refusals not logged)");
        }
    }
}

/// Accepts connections from peers and nodes; each is served by its own
/// task, after its TLS handshake when the inter-broker listener is TLS
/// and its login when nodes have a credential.
async fn accept(listener: TcpListener, events: flume::Sender<Event>, port: Rc<Port>) {
    loop {
        match listener.accept().await {
            Ok(tcp) => {
                let events = events.clone();
                let port = port.clone();
                glommio::spawn_local(async move {
                    let peer = tcp.peer_addr().map(|a| a.to_string());
                    let peer = peer.unwrap_or_else(|_| "?".into());
                    let _ = tcp.set_nodelay(true);
                    let handshake = within(LOGIN_TIMEOUT, port.peer_auth.accept(tcp)).await;
                    let mut stream =
                        match handshake.unwrap_or(Err("TLS handshake timed out".into())) {
                            Ok(stream) => stream,
                            Err(e) => return port.refused(&peer, &e),
                        };
                    if let Some(login) = &port.login {
                        if let Err(e) = check(&mut stream, login).await {
                            port.refused(&peer, &e);
                            glommio::timer::sleep(FAILED_LOGIN_DELAY).await;
                            return;
                        }
                    }
                    serve(stream, events, port.login.is_some()).await
                })
                .detach();
            }
            Err(e) => {
                warn!("controller: accept: {e}");
                glommio::timer::sleep(TICK).await;
            }
        }
    }
}

/// One connection (after its login, if `logged_in`): Raft messages go to
/// the voter; each request waits for its answer before the next frame is
/// read.
async fn serve(mut stream: PeerStream, events: flume::Sender<Event>, logged_in: bool) {
    loop {
        let (kind, payload) = match read_frame(&mut stream).await {
            Ok(f) => f,
            Err(_) => return,
        };
        match kind {
            Kind::Raft => match decode_message(&payload) {
                Ok(m) => {
                    if events.send_async(Event::Raft(m)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    warn!("controller: a peer sent {e}; closing its connection");
                    return;
                }
            },
            Kind::Request => {
                let request = match Request::decode(&payload) {
                    Ok(r) => r,
                    Err(e) => {
                        warn!("controller: a node sent {e}; closing its connection");
                        return;
                    }
                };
                let (reply, answer) = flume::bounded(1);
                if events.send_async(Event::Request(request, reply)).await.is_err() {
                    return;
                }
                let Ok(response) = answer.recv_async().await else { return };
                if write_frame(&mut stream, Kind::Response, &response.encode()).await.is_err() {
                    return;
                }
            }
            Kind::Response | Kind::LoginAnswer => return,
            Kind::Login if logged_in => {
                warn!("controller: a second login on one connection; closing it");
                return;
            }
            Kind::Login => {
                warn!("controller: a node tried to log in, but this node has no --inter-broker-credential; closing its connection");
                return;
            }
        }
    }
}

/// Keeps a connection to one peer and writes the Raft messages queued for
/// it; reconnects after a failure, dropping what could not be sent. Opens
/// it as `peer_auth` says (TLS, the login); a failed login is logged when
/// its reason changes, a connection that fails afterwards at most every ten
/// seconds (under TLS 1.3 the peer's refusal of this node's certificate
/// arrives then: the handshake had returned before the peer checked it).
async fn send_to_peer(to: QuorumVoter, queue: flume::Receiver<Vec<u8>>, peer_auth: Rc<Peers>) {
    let addr = to.addr();
    let mut stream: Option<PeerStream> = None;
    let mut keys = None;
    let mut last_error = String::new();
    let failures = LogLimit::default();
    while let Ok(message) = queue.recv_async().await {
        if stream.is_none() {
            let connect = async {
                let s = within(TICK * 5, TcpStream::connect(addr.as_str()));
                let tcp = s.await.ok_or("connect timed out")?.map_err(|e| e.to_string())?;
                let _ = tcp.set_nodelay(true);
                let opened = async {
                    let handshake = within(LOGIN_TIMEOUT, peer_auth.connect(&to.host, tcp));
                    let mut s = handshake.await.unwrap_or(Err("TLS handshake timed out".into()))?;
                    if let Some(c) = &peer_auth.credential {
                        log_in(&mut s, c, &mut keys).await?;
                    }
                    Ok::<_, String>(s)
                };
                opened.await.inspect_err(|e| {
                    if *e != last_error {
                        warn!("controller: logging in to {addr}: {e}");
                        last_error = e.clone();
                    }
                })
            };
            // `log_in` is bounded by its own timeout.
            match connect.await {
                Ok(s) => {
                    last_error.clear();
                    stream = Some(s);
                }
                _ => {
                    // Unreachable: what is queued is stale by the next try.
                    while queue.try_recv().is_ok() {}
                    glommio::timer::sleep(TICK).await;
                    continue;
                }
            }
        }
        let s = stream.as_mut().expect("connected");
        if let Err(e) = write_frame(s, Kind::Raft, &message).await {
            if let Some(more) = failures.admit(Instant::now()) {
                warn!("controller: the connection to {addr} failed: {e} ({more} more failures not logged)");
            }
            stream = None;
        }
    }
}

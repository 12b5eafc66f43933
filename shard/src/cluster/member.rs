//! This node's link to the active controller, on shard 0 of every node of
//! a cluster (controllers' nodes too: they reach their own controller over
//! loopback like any other).
//!
//! Three tasks, each with its own connection: one registers the node and
//! heartbeats every [`super::HEARTBEAT_INTERVAL`]; one fetches the
//! committed metadata, folds it into images and hands each to every shard
//! of the node (the first only once the node's own registration and the
//! cluster id are in it); one forwards the shards' controller commands and answers each once
//! this node's shards have the image that holds its records. A connection
//! asks any controller and follows `not_leader` answers to the leader;
//! it speaks TLS when the inter-broker listener does, and logs in when the
//! node has a credential. Never serves clients; every wait is bounded.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::sync::Notify;
use glommio::net::TcpStream;
use log::{info, warn};

use super::frame::{read_frame, write_frame, Kind};
use super::rpc::{Fetched, Request, Response, FETCH_WAIT};
use super::{QuorumConfig, COMMAND_TIMEOUT, HEARTBEAT_INTERVAL, TICK};
use crate::admission::within;
use crate::controller::{local_node, Answer, ControllerMsg};
use crate::error::ControllerError;
use crate::ids::NodeId;
use crate::metadata::{MetadataImage, NodeMeta};
use crate::peer_auth::Peers;
use crate::peer_stream::PeerStream;
use crate::shard::{Shard, ShardMsg};

/// How long connecting to a controller may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a controller may take to answer a request (a fetch waits
/// [`FETCH_WAIT`] for news; a command waits for its commit).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a clean stop waits for the node's unregistration.
pub const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(10);

struct Member {
    me: NodeMeta,
    quorum: Rc<QuorumConfig>,
    /// The controller last known to lead.
    leader: Cell<Option<NodeId>>,
    /// The next controller to try when no leader is known.
    next: Cell<usize>,
    /// The metadata log index of the image the shards have.
    index: Cell<u64>,
    advanced: Notify,
    /// The log index of this node's registration, once committed.
    registered: Cell<Option<u64>>,
    registered_now: Notify,
    stopping: Cell<bool>,
    peers: Vec<flume::Sender<ShardMsg>>,
    /// TLS to controllers' ports when the inter-broker listener is TLS,
    /// and the credential of the login on them ([`super::login`]), if any.
    peer_auth: Rc<Peers>,
    /// Salted passwords by controller (each controller has its own salt).
    keys: std::cell::RefCell<std::collections::HashMap<NodeId, auth::SaltedKeys>>,
    /// The last failed login's reason, logged once.
    login_error: std::cell::RefCell<String>,
}

/// A connection to one controller.
#[derive(Default)]
struct Link {
    to: Option<NodeId>,
    stream: Option<PeerStream>,
}

/// Runs the member tasks until the process ends; `stop` asks for the
/// node's unregistration (a clean stop) and is answered once it is done.
pub async fn run(
    shard: Rc<Shard>,
    quorum: Rc<QuorumConfig>,
    inbox: flume::Receiver<ControllerMsg>,
    peers: Vec<flume::Sender<ShardMsg>>,
    stop: flume::Receiver<flume::Sender<()>>,
) {
    let member = Rc::new(Member {
        me: local_node(&shard.config),
        quorum,
        leader: Cell::new(None),
        next: Cell::new(0),
        index: Cell::new(0),
        advanced: Notify::default(),
        registered: Cell::new(None),
        registered_now: Notify::default(),
        stopping: Cell::new(false),
        peers,
        peer_auth: shard.peers.clone(),
        keys: Default::default(),
        login_error: Default::default(),
    });
    glommio::spawn_local(heartbeat(member.clone())).detach();
    glommio::spawn_local(follow(member.clone())).detach();
    glommio::spawn_local(forward(member.clone(), inbox)).detach();
    if let Ok(done) = stop.recv_async().await {
        member.stopping.set(true);
        let mut link = Link::default();
        let deadline = Instant::now() + UNREGISTER_TIMEOUT;
        match member.call(&mut link, &Request::Unregister(member.me.id), deadline).await {
            Ok(_) => info!("node {}: unregistered from the cluster", member.me.id),
            Err(e) => warn!("node {}: could not unregister: {e}", member.me.id),
        }
        let _ = done.send(());
    }
}

impl Member {
    /// Sends `request` to the active controller and returns its answer,
    /// following `not_leader` answers and retrying other controllers
    /// until `deadline`.
    async fn call(
        &self,
        link: &mut Link,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, String> {
        let body = request.encode();
        let mut last_error = String::from("no controller tried");
        while Instant::now() < deadline {
            let to = self.leader.get().unwrap_or_else(|| {
                let i = self.next.get();
                self.next.set(i + 1);
                self.quorum.voters[i % self.quorum.voters.len()].node
            });
            if link.to != Some(to) {
                *link = Link { to: Some(to), stream: None };
            }
            let left = deadline.saturating_duration_since(Instant::now()).min(ANSWER_TIMEOUT);
            match self.exchange(link, &body, left).await {
                Ok(Response::NotLeader { leader }) => {
                    last_error = format!("controller {to} does not lead");
                    // A leader outside this node's quorum list (lists that
                    // differ between nodes) is not followed.
                    let known = |l: &NodeId| *l != to && self.quorum.voter(*l).is_some();
                    self.leader.set(leader.filter(known));
                    if leader.is_none() || leader == Some(to) {
                        glommio::timer::sleep(TICK).await;
                    }
                }
                Ok(response) => {
                    self.leader.set(Some(to));
                    return Ok(response);
                }
                Err(e) => {
                    last_error = format!("controller {to}: {e}");
                    link.stream = None;
                    // Another task may have found the leader meanwhile.
                    if self.leader.get() == Some(to) {
                        self.leader.set(None);
                    }
                    glommio::timer::sleep(TICK).await;
                }
            }
        }
        Err(format!("no active controller answered: {last_error}"))
    }

    /// TLS (when the inter-broker listener is) and the login (when this
    /// node has a credential) on a new connection to controller `to`.
    async fn open(&self, to: NodeId, host: &str, tcp: TcpStream) -> Result<PeerStream, String> {
        let mut stream = self.peer_auth.connect(host, tcp).await?;
        if let Some(credential) = &self.peer_auth.credential {
            let mut keys = self.keys.borrow_mut().remove(&to);
            let logged_in = super::login::log_in(&mut stream, credential, &mut keys).await;
            if let Some(keys) = keys {
                self.keys.borrow_mut().insert(to, keys);
            }
            logged_in?;
        }
        Ok(stream)
    }

    /// Logs why a new connection to controller `to` failed, once per
    /// reason: the tasks retry every tick.
    fn refused(&self, to: NodeId, why: &str) {
        if *self.login_error.borrow() != why {
            warn!("node {}: logging in to controller {to}: {why}", self.me.id);
            *self.login_error.borrow_mut() = why.to_string();
        }
    }

    /// One request and its answer on `link`, within `limit`.
    async fn exchange(
        &self,
        link: &mut Link,
        body: &[u8],
        limit: Duration,
    ) -> Result<Response, String> {
        let to = link.to.ok_or("no controller chosen")?;
        let fresh = link.stream.is_none();
        if fresh {
            let voter = self.quorum.voter(to).ok_or("not a controller of the quorum list")?;
            let tcp = within(CONNECT_TIMEOUT.min(limit), TcpStream::connect(voter.addr().as_str()))
                .await
                .ok_or("connect timed out")?
                .map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let opened = within(limit, self.open(to, &voter.host, tcp));
            match opened.await.unwrap_or(Err("the TLS handshake or the login timed out".into())) {
                Ok(stream) => link.stream = Some(stream),
                Err(e) => {
                    self.refused(to, &e);
                    return Err(e);
                }
            }
        }
        let stream = link.stream.as_mut().expect("connected");
        let answered = within(limit, async {
            write_frame(stream, Kind::Request, body).await?;
            read_frame(stream).await
        })
        .await
        .ok_or("no answer in time")?;
        let answered = match answered {
            // Under TLS 1.3 a controller checks this node's certificate
            // after the handshake returned here: its refusal arrives now.
            Err(e) if fresh => {
                let e = format!("it closed a new connection at its first request: {e}");
                self.refused(to, &e);
                return Err(e);
            }
            Err(e) => return Err(e.to_string()),
            Ok(answered) => answered,
        };
        if fresh {
            self.login_error.borrow_mut().clear();
        }
        match answered {
            (Kind::Response, payload) => Response::decode(&payload),
            (kind, _) => Err(format!("a {kind:?} frame instead of a response")),
        }
    }

    /// Hands `image` to every shard of this node and waits until each has
    /// applied it.
    async fn publish(&self, image: Arc<MetadataImage>) {
        let mut waits = Vec::new();
        for peer in &self.peers {
            let (done, wait) = flume::bounded(1);
            let msg = ShardMsg::Image { image: image.clone(), controller: self.leader.get(), done };
            if peer.send_async(msg).await.is_ok() {
                waits.push(wait);
            }
        }
        for w in waits {
            let _ = w.recv_async().await;
        }
    }
}

/// Registers the node, then heartbeats; registers again when the
/// controller no longer knows it.
async fn heartbeat(member: Rc<Member>) {
    let mut link = Link::default();
    while !member.stopping.get() {
        let forever = Instant::now() + Duration::from_secs(3600);
        match member.call(&mut link, &Request::Register(member.me.clone()), forever).await {
            Ok(Response::Committed { index, .. }) => {
                if member.registered.get().is_none() {
                    info!(
                        "node {}: registered with controller {:?}",
                        member.me.id,
                        member.leader.get()
                    );
                }
                member.registered.set(Some(index));
                member.registered_now.notify();
            }
            other => {
                warn!("node {}: registration: {other:?}", member.me.id);
                glommio::timer::sleep(TICK).await;
                continue;
            }
        }
        while !member.stopping.get() {
            glommio::timer::sleep(HEARTBEAT_INTERVAL).await;
            if member.stopping.get() {
                return;
            }
            let deadline = Instant::now() + HEARTBEAT_INTERVAL;
            match member.call(&mut link, &Request::Heartbeat(member.me.id), deadline).await {
                Ok(Response::UnknownNode) => break,
                Ok(_) => {}
                Err(e) => warn!("node {}: heartbeat: {e}", member.me.id),
            }
        }
    }
}

/// Follows the committed metadata and publishes each new image.
async fn follow(member: Rc<Member>) {
    let mut link = Link::default();
    let registered = loop {
        let now = member.registered_now.notified();
        if let Some(index) = member.registered.get() {
            break index;
        }
        now.await;
    };
    let mut image = MetadataImage::default();
    let mut index = 0;
    let mut published = false;
    // The active controller the shards were last told of: tools find it
    // in Metadata, so a new one is published even without new records.
    let mut told = None;
    loop {
        let deadline = Instant::now() + FETCH_WAIT + ANSWER_TIMEOUT;
        let fetched = match member.call(&mut link, &Request::Fetch { from: index }, deadline).await
        {
            Ok(Response::Fetched(f)) => f,
            Ok(other) => {
                warn!("node {}: fetch answered {other:?}", member.me.id);
                glommio::timer::sleep(TICK).await;
                continue;
            }
            Err(e) => {
                warn!("node {}: fetching metadata: {e}", member.me.id);
                continue;
            }
        };
        let Fetched { index: to, snapshot, entries } = fetched;
        let mut changed = false;
        if let Some(records) = snapshot {
            image = MetadataImage::default().applied(&records);
            changed = true;
            info!("node {}: metadata from a snapshot up to index {to}", member.me.id);
        }
        for (_, records) in entries.iter().filter(|(i, _)| *i > index) {
            for r in records {
                image.apply_mut(r);
            }
            changed = true;
        }
        index = index.max(to);
        // The shards serve once the cluster has formed: the node is
        // registered and the cluster has its id.
        let formed = index >= registered && !image.cluster_id.is_empty();
        let new_controller = member.leader.get().is_some_and(|l| told != Some(l));
        if formed && (changed || !published || new_controller) {
            told = member.leader.get().or(told);
            member.publish(Arc::new(image.clone())).await;
            published = true;
        }
        if published {
            member.index.set(index);
            member.advanced.notify();
        }
    }
}

/// Forwards the shards' commands, one at a time.
async fn forward(member: Rc<Member>, inbox: flume::Receiver<ControllerMsg>) {
    let mut link = Link::default();
    while let Ok(msg) = inbox.recv_async().await {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let (command, reply) = match msg {
            ControllerMsg::Command { command, reply } => (command, reply),
            ControllerMsg::DescribeQuorum { reply } => {
                let state = match member.call(&mut link, &Request::Quorum, deadline).await {
                    Ok(Response::Quorum(q)) => Ok(q),
                    Ok(other) => Err(ControllerError::Unexpected(format!("{other:?}"))),
                    Err(e) => Err(ControllerError::Unreachable(e)),
                };
                let _ = reply.send(state);
                continue;
            }
        };
        let answer: Result<Answer, ControllerError> =
            match member.call(&mut link, &Request::Command(command), deadline).await {
                Ok(Response::Committed { index, answer }) => {
                    // Answer once this node's shards have the records: a
                    // client that created a topic can produce to it at once.
                    let caught_up =
                        within(deadline.saturating_duration_since(Instant::now()), async {
                            while member.index.get() < index {
                                member.advanced.notified().await;
                            }
                        })
                        .await;
                    match caught_up {
                        Some(()) => Ok(answer),
                        None => Err(ControllerError::Unreachable(format!(
                            "committed at {index}, not yet seen on this node"
                        ))),
                    }
                }
                Ok(other) => Err(ControllerError::Unexpected(format!("{other:?}"))),
                Err(e) => Err(ControllerError::Unreachable(e)),
            };
        let _ = reply.send(answer);
    }
}

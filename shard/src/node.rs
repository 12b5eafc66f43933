//! Starting and stopping one node: its shards (one glommio executor per
//! core), the channels between them, the data directory lock, and the
//! signals that stop it.
//!
//! Runs on the process's main thread, which only starts shards and waits;
//! it never serves a request.

use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::disk::DmaDisk;
use engine::{Flush, Flusher};
use glommio::{LocalExecutorBuilder, Placement};
use log::{error, info, warn};

use crate::admission::{ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};
use crate::config::{partitions_allowed, NodeConfig};
use crate::controller::client::ControllerClient;
use crate::controller::{self, ControllerMsg};
use crate::ids::ShardId;
use crate::listener::SecurityProtocol;
use crate::local::{LocalCall, LocalCalls, LOCAL_CALLS_QUEUED_MAX};
use crate::metrics::MetricsRequest;
use crate::partitions::Partitions;
use crate::shard::{Shard, ShardMsg};

/// Controller requests queued at most; shards wait beyond (bounded memory).
pub const CONTROLLER_QUEUE_MAX: usize = 1024;

/// Metrics requests queued per shard: scrapes are served one at a time, so
/// one is waiting at most; a full queue means a stuck shard (reported down).
pub const METRICS_QUEUE_MAX: usize = 2;

/// How long startup may take before the node gives up (replaying metadata
/// and opening every partition's log).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a node until SIGTERM or SIGINT. Prints `ready` on stdout once every
/// shard listens. Returns an error message for the operator on any startup
/// failure.
pub fn run(config: NodeConfig) -> Result<(), String> {
    let mut config = config;
    let files = raise_open_files_limit();
    let partitions_max = *config.partitions_max.get_or_insert(partitions_allowed(files));
    let config = Arc::new(config);
    if !(1..=crate::ids::SHARDS_PER_NODE_MAX).contains(&config.shards) {
        return Err(format!(
            "--shards must be 1 to {} (broker ids are node id * 1000 + shard)",
            crate::ids::SHARDS_PER_NODE_MAX
        ));
    }
    crate::listener::check(&config.listeners(), config.shards)?;
    let tls_listener = config.listeners().into_iter().find(|l| l.protocol.is_tls());
    match (&tls_listener, &config.tls) {
        (Some(l), None) => {
            return Err(format!("listener {l} needs --ssl-certificate and --ssl-key"));
        }
        (None, Some(_)) => {
            return Err("--ssl-* is given but no listener is SSL or SASL_SSL".into());
        }
        (Some(_), Some(settings)) => {
            crate::tls::load(settings).map_err(|e| format!("TLS: {e}"))?;
            if crate::tls::kernel_tls_available() {
                info!("TLS: encryption in user space (rustls); cold fetches to TLS clients are copied, not spliced (kernel TLS is not used yet)");
            } else {
                info!("TLS: encryption in user space (rustls); cold fetches to TLS clients are copied, not spliced (this kernel has no kernel TLS: CONFIG_TLS)");
            }
        }
        (None, None) => {}
    }
    check_inter_broker(&config)?;
    let oauth_served = config.sasl_mechanisms.contains(&auth::SaslMechanism::OAuthBearer);
    match (&config.oauth, oauth_served) {
        (None, true) => return Err("--sasl-mechanisms OAUTHBEARER needs --oauthbearer-jwks".into()),
        (Some(_), false) => {
            return Err("--oauthbearer-* is given but --sasl-mechanisms has no OAUTHBEARER".into())
        }
        (Some(o), true) => {
            crate::oauth::OAuthKeys::load(o, Instant::now())
                .map_err(|e| format!("OAUTHBEARER: {e}"))?;
        }
        (None, false) => {}
    }
    for (what, port) in [("ports", Some(config.port)), ("advertised ports", config.advertised_port)]
    {
        let Some(port) = port else { continue };
        if port as u32 + config.shards as u32 > 65536 {
            return Err(format!(
                "{what} {port}..{} exceed 65535",
                port as u32 + config.shards as u32
            ));
        }
    }
    if !(0..=crate::ids::NODE_ID_MAX).contains(&config.node_id) {
        return Err(format!(
            "--node-id {} is outside 0..={}",
            config.node_id,
            crate::ids::NODE_ID_MAX
        ));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
    let _lock = lock_data_dir(&config)?;
    check_ports(&config)?;
    check_metadata_kind(&config)?;
    check_io_uring()?;
    check_memlock();
    let metrics_listener = match config.metrics_port {
        Some(port) => Some(std::net::TcpListener::bind((config.host.as_str(), port)).map_err(
            |e| {
                format!(
                    "cannot listen for metrics on {}:{port}: {e} (choose another --metrics-port, or 0 for none)",
                    config.host
                )
            },
        )?),
        None => None,
    };

    // Block the stop signals in every thread (the shards inherit the mask);
    // the main thread waits for them with sigwait.
    let signals = stop_signals();
    exit_on_panic();

    let (controller_tx, controller_rx) = flume::bounded::<ControllerMsg>(CONTROLLER_QUEUE_MAX);
    // A clean stop asks the member (shard 0, in a cluster) to unregister.
    let (unregister_tx, unregister_rx) = flume::bounded::<flume::Sender<()>>(1);
    let inboxes: Vec<_> = (0..config.shards).map(|_| flume::unbounded::<ShardMsg>()).collect();
    // Calls between shards of this node (crate::local).
    let local_fetches: Vec<LocalCalls> =
        (0..config.shards).map(|_| flume::bounded(LOCAL_CALLS_QUEUED_MAX)).collect();
    let local_senders: Vec<_> = local_fetches.iter().map(|(tx, _)| tx.clone()).collect();
    let peers: Vec<_> = inboxes.iter().map(|(tx, _)| tx.clone()).collect();
    let metrics: Vec<_> =
        (0..config.shards).map(|_| flume::bounded::<MetricsRequest>(METRICS_QUEUE_MAX)).collect();
    let metrics_senders: Vec<_> = metrics.iter().map(|(tx, _)| tx.clone()).collect();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<ShardId, String>>();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut handles = Vec::new();
    let shard_inboxes = inboxes.into_iter().zip(metrics).zip(local_fetches);
    for (id, (((_, inbox), (_, metrics_inbox)), (_, local_inbox))) in shard_inboxes.enumerate() {
        let id = ShardId(id as u16);
        let config = config.clone();
        let controller_tx = controller_tx.clone();
        let controller_rx = (id.0 == 0).then(|| controller_rx.clone());
        let peers = (id.0 == 0).then(|| peers.clone());
        let unregister = (id.0 == 0).then(|| unregister_rx.clone());
        let ready = ready_tx.clone();
        let local_senders = local_senders.clone();
        let builder = LocalExecutorBuilder::new(Placement::Fixed(id.0 as usize % cpus))
            .name(&format!("shard-{id}"));
        let handle = builder
            .spawn(move || async move {
                let channels = Channels {
                    inbox,
                    metrics: metrics_inbox,
                    controller_tx,
                    controller_rx,
                    peers,
                    unregister,
                    local_inbox,
                    local_senders,
                };
                shard_main(id, config, channels, ready).await;
            })
            .map_err(|e| {
                format!(
                    "cannot start shard {id} (an io_uring executor): {e}. io_uring may be unavailable: \
                     check that the kernel is 5.8 or newer and that no seccomp profile (Docker's \
                     default) blocks io_uring_setup"
                )
            })?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..config.shards {
        match ready_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a shard failed to start (see the log above)".into()),
        }
    }
    let metrics_addr = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            let node_id = config.node_id;
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || crate::metrics::http::serve(listener, metrics_senders, node_id))
                .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
            format!("http://{addr}/metrics")
        }
        None => "off".into(),
    };
    let last_shard = ShardId(config.shards - 1);
    let listening: Vec<String> = config
        .listeners()
        .iter()
        .map(|l| format!("{}://{}:{}..={}", l.protocol, l.host, l.port, l.port_of(last_shard)))
        .collect();
    info!(
        "corelog {} node {} serving {} shards on {} (brokers {}..={}), data {}, flush {:?}, zero-copy fetch {}, metrics {}, partitions at most {}",
        env!("CARGO_PKG_VERSION"),
        config.node_id,
        config.shards,
        listening.join(", "),
        config.broker(ShardId(0)),
        config.broker(last_shard),
        config.data_dir.display(),
        config.flush,
        if config.zero_copy_fetch { "on" } else { "off" },
        metrics_addr,
        partitions_max
    );
    println!("ready");
    let _ = std::io::stdout().flush();

    let signal = wait_for_signal(&signals);
    info!("received {signal}, stopping: finishing in-flight requests and closing logs");
    if config.controller_quorum.is_some() {
        // Leave the cluster first: the controller moves this node's
        // leaderships while its shards still answer.
        let (done, wait) = flume::bounded(1);
        if unregister_tx.send(done).is_ok() {
            let _ = wait.recv_timeout(crate::cluster::member::UNREGISTER_TIMEOUT);
        }
    }
    let deadline = std::time::Instant::now() + SHUTDOWN_TIMEOUT;
    let mut waits = Vec::new();
    for peer in &peers {
        let (done, wait) = flume::bounded(1);
        if peer.send(ShardMsg::Shutdown { done }).is_ok() {
            waits.push(wait);
        }
    }
    for (shard, w) in waits.into_iter().enumerate() {
        if w.recv_deadline(deadline).is_err() {
            // Acknowledged data is durable already (group commit); what is
            // lost is the clean-shutdown marker, so the next start scans.
            error!(
                "shard {shard} did not stop within {} s; exiting without a clean shutdown",
                SHUTDOWN_TIMEOUT.as_secs()
            );
            std::process::exit(EXIT_UNCLEAN_STOP);
        }
    }
    for h in handles {
        let _ = h.join();
    }
    info!("stopped cleanly");
    Ok(())
}

/// How long a clean stop may take before the node exits anyway. systemd's
/// default `TimeoutStopSec` is 90 s and the unit in docs/OPERATIONS.md sets
/// 60; a stop of 18,000 partitions takes a few seconds.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(45);

/// Exit status when a shard panicked (a bug): sysexits' EX_SOFTWARE.
pub const EXIT_SHARD_PANIC: i32 = 70;

/// Exit status when a shard did not stop within [`SHUTDOWN_TIMEOUT`].
pub const EXIT_UNCLEAN_STOP: i32 = 75;

/// A panic anywhere in a serving node ends the process at once, with the
/// thread (`shard-N`), the message and a backtrace in the log. A shard that
/// died while the others went on would leave its port accepting
/// connections it never answers and a stop that never completes; a
/// supervisor restarting the whole node is the safe outcome (acknowledged
/// data is durable: recovery after this is the same as after a SIGKILL).
fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let backtrace = std::backtrace::Backtrace::force_capture();
        error!("thread {name} panicked: {info}; exiting (status {EXIT_SHARD_PANIC})\n{backtrace}");
        log::logger().flush();
        // SAFETY: _exit ends the process without running destructors or
        // atexit handlers, which other threads may be inside of.
        unsafe { libc::_exit(EXIT_SHARD_PANIC) };
    }));
}

/// A shard's ends of the node's channels.
struct Channels {
    inbox: flume::Receiver<ShardMsg>,
    metrics: flume::Receiver<MetricsRequest>,
    controller_tx: flume::Sender<ControllerMsg>,
    /// The controller's inbox and every shard's, on shard 0 only.
    controller_rx: Option<flume::Receiver<ControllerMsg>>,
    peers: Option<Vec<flume::Sender<ShardMsg>>>,
    unregister: Option<flume::Receiver<flume::Sender<()>>>,
    /// This shard's inbox of local calls, and every shard's sender.
    local_inbox: flume::Receiver<LocalCall>,
    local_senders: Vec<flume::Sender<LocalCall>>,
}

async fn shard_main(
    id: ShardId,
    config: Arc<NodeConfig>,
    channels: Channels,
    ready: std::sync::mpsc::Sender<Result<ShardId, String>>,
) {
    let Channels {
        inbox,
        metrics,
        controller_tx,
        controller_rx,
        peers,
        unregister,
        local_inbox,
        local_senders,
    } = channels;
    let disk = match DmaDisk::new(&config.data_dir).await {
        Ok(d) => Rc::new(d),
        Err(e) => {
            let _ = ready.send(Err(format!(
                "data dir {} does not support direct I/O or is not writable: {e}",
                config.data_dir.display()
            )));
            return;
        }
    };
    let flusher = Flusher::new(config.flush);
    let runner = flusher.clone();
    let flusher_task = glommio::spawn_local(async move { runner.run().await });
    if let Flush::Interval { ms } = config.flush {
        let ticker = flusher.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(ms)).await;
                ticker.request_sync();
            }
        })
        .detach();
    }
    let partitions = Partitions::new(id, config.data_dir.clone(), disk, flusher.clone());
    let controller = ControllerClient::new(controller_tx);
    let splicer = start_splicer(id, config.zero_copy_fetch);
    let tls = match &config.tls {
        None => None,
        Some(settings) => match crate::tls::Certificates::new(settings.clone(), Instant::now()) {
            Ok(certificates) => Some(certificates),
            Err(e) => {
                let _ = ready.send(Err(format!("TLS: {e}")));
                return;
            }
        },
    };
    let oauth = match &config.oauth {
        None => None,
        Some(o) => match crate::oauth::OAuthKeys::load(o, Instant::now()) {
            Ok(keys) => Some(Rc::new(keys)),
            Err(e) => {
                let _ = ready.send(Err(format!("OAUTHBEARER: {e}")));
                return;
            }
        },
    };
    let mut shard =
        Shard::new(id, config.clone(), partitions, controller, splicer, local_senders, tls);
    shard.oauth = oauth;
    let shard = Rc::new(shard);
    glommio::spawn_local(crate::local::serve(shard.clone(), local_inbox)).detach();
    if let (Some(rx), Some(peers), Some(unregister)) = (controller_rx, peers, unregister) {
        match config.controller_quorum.clone() {
            None => {
                glommio::spawn_local(crate::cluster::local::run(shard.clone(), rx, peers)).detach();
            }
            Some(quorum) => {
                let quorum = Rc::new(quorum);
                if quorum.voter(crate::ids::NodeId(config.node_id)).is_some() {
                    let voter = crate::cluster::controller::run(shard.clone(), quorum.clone());
                    glommio::spawn_local(voter).detach();
                }
                let member =
                    crate::cluster::member::run(shard.clone(), quorum, rx, peers, unregister);
                glommio::spawn_local(member).detach();
            }
        }
    }
    // The first image, before serving anything.
    match inbox.recv_async().await {
        Ok(ShardMsg::Image { image, controller, done }) => {
            shard.apply_image(image, controller).await;
            let _ = done.send(());
        }
        _ => return,
    }
    let mut sockets = Vec::new();
    // The ports' claims, held until the shard stops.
    let mut claims = Vec::new();
    for l in config.listeners() {
        let port = l.port_of(id);
        match crate::bind::listen(&l.host, port).await {
            Ok((socket, claim)) => {
                sockets.push((socket, l.protocol));
                claims.push(claim);
            }
            Err(e) => {
                let _ = ready.send(Err(format!(
                    "shard {id} cannot listen on {}:{port} ({}): {e}",
                    l.host, l.protocol
                )));
                return;
            }
        }
    }
    let maintaining = shard.clone();
    glommio::spawn_local(async move {
        let every = Duration::from_millis(maintaining.config.maintenance_interval_ms);
        while !maintaining.stopping() {
            glommio::timer::sleep(every).await;
            let pace = maintaining.config.compaction_bytes_per_sec;
            maintaining.partitions.maintain(pace, || maintaining.stopping()).await;
        }
    })
    .detach();
    let ticking = shard.clone();
    glommio::spawn_local(async move {
        while !ticking.stopping() {
            glommio::timer::sleep(crate::groups::TICK).await;
            ticking.groups.tick();
            ticking.groups.persist(&ticking.partitions, &ticking.metadata.image()).await;
        }
    })
    .detach();
    let coordinating = shard.clone();
    glommio::spawn_local(async move {
        while !coordinating.stopping() {
            glommio::timer::sleep(crate::txns::TICK).await;
            crate::handlers::txn::tick(&coordinating).await;
        }
    })
    .detach();
    let isr = shard.clone();
    glommio::spawn_local(async move {
        crate::replica::run_isr(&isr.replicas, &isr.controller, || isr.stopping()).await
    })
    .detach();
    let exporting = shard.clone();
    glommio::spawn_local(async move {
        while let Ok(reply) = metrics.recv_async().await {
            let _ = reply.send(exporting.metrics_snapshot());
        }
    })
    .detach();
    let _ = ready.send(Ok(id));
    let acceptors: Vec<_> = sockets
        .into_iter()
        .map(|(socket, protocol)| glommio::spawn_local(accept(shard.clone(), socket, protocol)))
        .collect();
    // Images keep being applied while shutting down: a request in flight may
    // wait for the controller, which waits for every shard's acknowledgment.
    let (stop_tx, stop_rx) = flume::bounded::<flume::Sender<()>>(1);
    let applying = shard.clone();
    glommio::spawn_local(async move {
        while let Ok(msg) = inbox.recv_async().await {
            match msg {
                ShardMsg::Image { image, controller, done } => {
                    applying.apply_image(image, controller).await;
                    let _ = done.send(());
                }
                ShardMsg::Shutdown { done } => {
                    let _ = stop_tx.send_async(done).await;
                }
            }
        }
    })
    .detach();
    let Ok(done) = stop_rx.recv_async().await else { return };
    for acceptor in acceptors {
        acceptor.cancel().await;
    }
    shard.shutdown().await;
    flusher.stop();
    flusher_task.await;
    drop(claims);
    let _ = done.send(());
}

/// Accepts the connections of one listener of this shard, for ever.
async fn accept(shard: Rc<Shard>, socket: glommio::net::TcpListener, protocol: SecurityProtocol) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut refused = 0u64;
    loop {
        match socket.accept().await {
            Ok(stream) => {
                backoff = ACCEPT_BACKOFF_MIN;
                let ip = stream.peer_addr().ok().map(|a| a.ip());
                let Some(why) = shard.connections.refusal(ip) else {
                    glommio::spawn_local(crate::conn::serve(shard.clone(), stream, protocol))
                        .detach();
                    continue;
                };
                // Closed at once: the client sees the refusal instead of
                // waiting in the backlog. Logged once per 1,000.
                if refused.is_multiple_of(1000) {
                    warn!(
                        "shard {}: refusing a connection: {why} ({} refused so far)",
                        shard.id,
                        refused + 1
                    );
                }
                refused += 1;
                drop(stream);
            }
            Err(e) => {
                // Out of descriptors (or buffers): pause, doubling, so the
                // connections already open keep being served.
                if backoff == ACCEPT_BACKOFF_MIN {
                    warn!("shard {}: accept failed: {e}; retrying with backoff", shard.id);
                }
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

/// Takes an exclusive lock on `<data>/.lock` for the life of the process, so
/// a second node on the same directory fails at once.
/// A data directory holds a single node's metadata log or a voter's Raft
/// log, never both: a node does not move between the two.
fn check_metadata_kind(config: &NodeConfig) -> Result<(), String> {
    let single = config.data_dir.join(format!("{}-0", controller::METADATA_TOPIC));
    let raft = config.data_dir.join(crate::cluster::raft_log::RAFT_LOG_DIR);
    match &config.controller_quorum {
        Some(_) if single.exists() => Err(format!(
            "{} holds a single node's metadata ({}); a node joins a cluster with an empty data directory",
            config.data_dir.display(),
            single.display()
        )),
        None if raft.exists() => Err(format!(
            "{} belongs to a cluster ({}); start it with --controller-quorum",
            config.data_dir.display(),
            raft.display()
        )),
        _ => Ok(()),
    }
}

/// Brokers reach each other on the first listener, in its protocol: a
/// SASL one needs this node's credential in a mechanism the listeners
/// serve, a TLS one the CA the peers' certificates chain to. (The
/// credential also guards the controllers' ports, whatever the listener.)
/// Warns when the authorizer would refuse the principal replication
/// needs (ClusterAction) unless an ACL allows it.
fn check_inter_broker(config: &NodeConfig) -> Result<(), String> {
    let protocol = config.protocol;
    let credential = config.inter_broker_credential.as_ref();
    if let Some(c) = credential.filter(|_| protocol.is_sasl()) {
        if !config.sasl_mechanisms.contains(&c.mechanism) {
            return Err(format!(
                "--inter-broker-credential uses {}, which --sasl-mechanisms does not serve",
                c.mechanism.name()
            ));
        }
    }
    if config.controller_quorum.is_none() {
        return Ok(());
    }
    if protocol.is_sasl() && credential.is_none() {
        return Err(format!(
            "the first --listener ({protocol}) carries traffic between brokers: give --inter-broker-credential USER:MECHANISM:PASSWORD"
        ));
    }
    let tls = config.tls.as_ref();
    if protocol.is_tls() && tls.is_none_or(|t| t.client_ca.is_none()) {
        return Err(format!(
            "the first --listener ({protocol}) carries traffic between brokers: give --ssl-client-ca, the CA their certificates chain to"
        ));
    }
    if config.authorizer {
        let principal = match (credential, tls) {
            (Some(c), _) if protocol.is_sasl() => Some(c.principal()),
            // Peers see the certificate only when they ask for one.
            (_, Some(t)) if protocol.is_tls() && t.client_auth != crate::tls::ClientAuth::None => {
                crate::tls::own_principal(t)
            }
            _ => Some("User:ANONYMOUS".to_string()),
        };
        if let Some(p) = principal.filter(|p| !config.super_users.contains(p)) {
            warn!("brokers log in to each other as {p}, which is not in --super-users: replication and transactions need an ACL allowing it ClusterAction on the cluster");
        }
    }
    Ok(())
}

fn lock_data_dir(config: &NodeConfig) -> Result<std::fs::File, String> {
    use std::os::unix::io::AsRawFd;
    let path = config.data_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("data dir {} is not writable: {e}", config.data_dir.display()))?;
    // SAFETY: a valid open descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "data dir {} is in use by another corelog process (lock {} is held)",
            config.data_dir.display(),
            path.display()
        ));
    }
    Ok(file)
}

/// How long startup waits for a port to be released: after a SIGKILL the
/// kernel tears down the dead process's io_uring (and its listening
/// sockets) asynchronously, so a restart can briefly find them.
pub const PORT_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// glommio binds with SO_REUSEPORT, so a second process could silently share
/// a port with a running broker: connect to every port first and fail
/// clearly if anything keeps answering, waiting out a killed process's
/// listener. (A test bind would also trip over the previous run's closing
/// connections, which hold the port for a while after a restart.) The
/// shards then claim each port ([`crate::bind::listen`]), which also
/// refuses a Corelog process that started at the same moment.
fn check_ports(config: &NodeConfig) -> Result<(), String> {
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match ports_in_use(config) {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn ports_in_use(config: &NodeConfig) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    for l in config.listeners() {
        for shard in 0..config.shards {
            let port = l.port_of(ShardId(shard));
            let addr = (l.host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {}: {e}", l.host))?
                .next()
                .ok_or_else(|| format!("{} has no address", l.host))?;
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Err(format!(
                    "cannot listen on {}:{port} (shard {shard}, {}): the port is in use by another process",
                    l.host, l.protocol
                ));
            }
        }
    }
    Ok(())
}

/// Sets up (and closes) a one-entry io_uring, so that a kernel or sandbox
/// without io_uring gets a clear error here rather than a panic inside
/// glommio's executor.
fn check_io_uring() -> Result<(), String> {
    // struct io_uring_params is 120 bytes; zeroed means default settings.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(entries, params) with a valid, writable
    // params buffer of the kernel's struct size.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "io_uring is unavailable ({e}): Corelog needs Linux 5.8 or newer with io_uring              enabled (sysctl kernel.io_uring_disabled=0) and not blocked by a seccomp profile              (Docker's default blocks io_uring_setup: run with --security-opt seccomp=unconfined              or a profile that allows io_uring_setup, io_uring_enter and io_uring_register)"
        ));
    }
    // SAFETY: `fd` is the ring just created and owned here.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// io_uring's registered buffers need locked memory; glommio falls back to
/// ordinary buffers when the limit is low. Say so, and how to raise it.
fn check_memlock() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0
        && lim.rlim_cur != libc::RLIM_INFINITY
    {
        let mib = lim.rlim_cur / (1024 * 1024);
        if mib < 512 {
            warn!(
                "memlock limit is {mib} MiB: io_uring buffer registration may be disabled (slower I/O). \
                 Raise it with `ulimit -l unlimited` or LimitMEMLOCK=infinity in the systemd unit"
            );
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every partition
/// holds its segment files open and every connection a socket, and the
/// usual soft limit of 1,024 runs out at a few hundred partitions.
/// Returns the limit in force.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain libc calls with a valid out-pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok {
        return 1024;
    }
    let soft = limit.rlim_cur;
    if soft < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            limit.rlim_cur = soft;
        }
    }
    if limit.rlim_cur < 10_000 {
        warn!(
            "open files limit is {}: partitions and connections beyond it are refused. Raise it with \
             `ulimit -n 1048576` or LimitNOFILE=1048576 in the systemd unit",
            limit.rlim_cur
        );
    } else {
        log::debug!("open files limit {}", limit.rlim_cur);
    }
    limit.rlim_cur
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on a local sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> &'static str {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` holds blocked signals; `sig` is a valid out-pointer.
    unsafe { libc::sigwait(set, &mut sig) };
    if sig == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// The shard's side ring for zero-copy fetches, when asked for and possible.
fn start_splicer(shard: ShardId, wanted: bool) -> Option<Rc<crate::splice::Splicer>> {
    if !wanted {
        return None;
    }
    match crate::splice::Splicer::start() {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("shard {shard}: zero-copy fetch unavailable ({e}); cold fetches copy instead");
            None
        }
    }
}

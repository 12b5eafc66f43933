//! One client connection, on the shard that accepted it: frames in,
//! responses out, in request order, with requests pipelined.
//!
//! Two tasks share the socket. The reader takes frames in order and runs
//! each request's in-order phase (`handlers::handle`: decoding, and for
//! Produce the appends that assign offsets), queueing the reply; the writer
//! awaits queued replies in order (acknowledgments, fetch long polls) and
//! writes them. So a client's next produce is appended while the previous
//! one waits for its fdatasync. At most [`PIPELINED_REQUESTS_MAX`] replies
//! wait per connection; the reader stops reading beyond that.
//!
//! A response in parts (a fetch with cold data) goes through this
//! connection's pipe, file ranges spliced, by the shard's
//! [`crate::splice::Splicer`]; responses still leave in order, each whole
//! before the next starts.
//!
//! On an SSL or SASL_SSL listener the connection is TLS (rustls, in user
//! space) from its first byte: the handshake is bounded by
//! `request_arrival_timeout`, a client certificate names the principal
//! ([`crate::tls`]), and cold fetch data is read and encrypted rather
//! than spliced.
//!
//! A client over one of its quotas ([`crate::quotas`]) is muted: the
//! reader takes no new request until its throttle time is out (KIP-219);
//! replies already queued still go out. The reader also counts each
//! request's in-order time against the client's `request_percentage`.
//!
//! A connection that sends garbage, a frame above the size limit, an API or
//! version we do not serve, or a body that does not decode is closed (after
//! the replies to its earlier requests) with a log line; other connections
//! are not affected. So is one idle for `connections_max_idle` or whose
//! request does not arrive whole within `request_arrival_timeout` (both in
//! [`crate::NodeConfig`], defaults in [`crate::admission`]). A
//! request's bytes are admitted into the shard's budget
//! ([`crate::admission::RequestBytes`]) before they are read and released
//! when its reply is written.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use engine::sync::Notify;
use futures_lite::io::BufReader;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use log::{debug, info, warn};
use net::codec::decode_request;
use net::frame::{read_frame_body, read_frame_size_from, REQUEST_BYTES_MIN};
use net::kafka_protocol::messages::ApiKey;

use crate::admission::{within, BytesPermit};
use crate::context::ConnContext;
use crate::handlers;
use crate::listener::SecurityProtocol;
use crate::quotas::QuotaKind;
use crate::response::{Out, Part, Reply};
use crate::sasl::{Session, Verdict};
use crate::shard::{RequestGuard, Shard};
use crate::splice::{Pipe, Splicer};

/// Read buffer per connection: a few small requests per system call.
pub const CONNECTION_READ_BUFFER_BYTES: usize = 64 * 1024;

/// Replies waiting per connection. Kafka clients keep up to 5 requests in
/// flight per connection by default; this leaves room without letting one
/// connection hold unbounded request memory.
pub const PIPELINED_REQUESTS_MAX: usize = 16;

enum Item {
    /// A reply, with its request's API, when it was decoded (latency), and
    /// the request's bytes in the shard's budget, held until it is written.
    Reply(Reply, RequestGuard, ApiKey, Instant, BytesPermit),
    Close,
}

#[derive(Default)]
struct Pipeline {
    queue: RefCell<VecDeque<Item>>,
    changed: Notify,
    /// The writer has stopped; the reader stops too.
    writer_done: Cell<bool>,
}

pub async fn serve(shard: Rc<Shard>, stream: TcpStream, protocol: SecurityProtocol) {
    let mut context = ConnContext::new(stream.peer_addr().ok(), protocol);
    let peer = context.peer_name();
    let _ = stream.set_nodelay(true);
    let socket = stream.as_raw_fd();
    debug!("shard {}: connection from {peer}", shard.id);
    let _open = OpenConnection::new(shard.clone(), context.peer.map(|a| a.ip()));
    if !protocol.is_tls() {
        return serve_stream(shard, stream, socket, context).await;
    }
    let Some(certificates) = &shard.tls else {
        warn!("shard {}: closing connection from {peer}: no TLS configuration", shard.id);
        return;
    };
    let config = certificates.borrow_mut().current(Instant::now());
    // The handshake is bounded as a request's arrival is: a client that
    // connects and stalls holds nothing for long.
    let arrival = shard.config.request_arrival_timeout;
    let handshake = futures_rustls::TlsAcceptor::from(config).accept(stream);
    let stream = match within(arrival, handshake).await {
        Some(Ok(stream)) => stream,
        failed => {
            let why = match failed {
                Some(Err(e)) => e.to_string(),
                _ => format!("not done within {arrival:?}"),
            };
            // Kafka's level and count for a failed SSL handshake: a
            // client's failed authentication.
            info!(
                "shard {}: closing connection from {peer}: TLS handshake failed: {why}",
                shard.id
            );
            shard.metrics.authentication_failed();
            return;
        }
    };
    match crate::tls::principal(stream.get_ref().1.peer_certificates()) {
        Some(Ok(principal)) => context.principal = principal,
        Some(Err(e)) => {
            warn!("shard {}: closing connection from {peer}: {e}", shard.id);
            shard.metrics.authentication_failed();
            return;
        }
        None => {}
    }
    // Encrypted in user space: cold fetch data is read and copied, never
    // spliced past the encryption.
    context.zero_copy = false;
    serve_stream(shard, stream, socket, context).await
}

/// Serves requests on a connection's byte stream (the socket, or TLS over
/// it); `socket` is the descriptor zero-copy sends go to when
/// `context.zero_copy` allows them.
async fn serve_stream<S>(shard: Rc<Shard>, stream: S, socket: RawFd, mut context: ConnContext)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let protocol = context.protocol;
    let peer = context.peer_name();
    let config = &shard.config;
    let mut session = Session::new(
        protocol,
        &config.sasl_mechanisms,
        config.connections_max_reauth,
        shard.plain_budget.clone(),
    )
    .with_oauth(shard.oauth.clone());
    let (read_half, mut write_half) = futures_lite::io::split(stream);
    let mut reader = BufReader::with_capacity(CONNECTION_READ_BUFFER_BYTES, read_half);
    let pipeline = Rc::new(Pipeline::default());

    let writer_pipeline = pipeline.clone();
    let writer_peer = peer.clone();
    let shard_id = shard.id;
    let splicer = shard.splicer.clone();
    // Never a splice past TLS: its bytes would reach the client in clear.
    let zero_copy = context.zero_copy;
    let writer_shard = shard.clone();
    let writer = glommio::spawn_local(async move {
        let p = writer_pipeline;
        let mut pipe = None;
        loop {
            let notified = p.changed.notified();
            let Some(item) = p.queue.borrow_mut().pop_front() else {
                notified.await;
                continue;
            };
            p.changed.notify(); // room for the reader
            let (reply, guard, api, started, permit) = match item {
                Item::Close => break,
                Item::Reply(reply, guard, api, started, permit) => {
                    (reply, guard, api, started, permit)
                }
            };
            let result = match reply {
                Reply::Now(r) => r,
                Reply::Later(f) => f.await,
            };
            drop(guard);
            let written = match result {
                // Flushed: TLS may hold the end of a frame in its buffer.
                Ok(Some(Out::Frame(bytes))) => match write_all(&mut write_half, &bytes).await {
                    Ok(()) => true,
                    Err(e) => {
                        debug!("shard {shard_id}: connection from {writer_peer} lost: {e}");
                        false
                    }
                },
                Ok(Some(Out::Parts(parts))) => {
                    let splicer = splicer.as_deref().filter(|_| zero_copy);
                    let sent = send_parts(parts, splicer, &mut pipe, socket).await;
                    if let Err(e) = &sent {
                        warn!("shard {shard_id}: closing connection from {writer_peer}: {e}");
                    }
                    sent.is_ok()
                }
                Ok(None) => true,
                Err(e) => {
                    warn!("shard {shard_id}: closing connection from {writer_peer}: {e}");
                    writer_shard.metrics.protocol_error();
                    false
                }
            };
            drop(permit);
            if !written {
                break;
            }
            writer_shard.metrics.request_done(api, started.elapsed());
        }
        p.writer_done.set(true);
        p.changed.notify();
        // Dropping the unsent replies releases their request guards.
        p.queue.borrow_mut().clear();
        let _ = write_half.close().await;
    });

    loop {
        let notified = pipeline.changed.notified();
        if pipeline.writer_done.get() || shard.stopping() {
            break;
        }
        if pipeline.queue.borrow().len() >= PIPELINED_REQUESTS_MAX {
            notified.await;
            continue;
        }
        let now = Instant::now();
        if let Some(until) = context.mute.muted_at(now) {
            // Over a quota: no request is read until the throttle time is
            // out (KIP-219's mute), or the shard stops.
            let sleep =
                futures_lite::future::or(glommio::timer::sleep(until - now), shard.stopped());
            futures_lite::future::or(sleep, notified).await;
            continue;
        }
        let idle = shard.config.connections_max_idle;
        let min = if session.expects_raw_token() { 0 } else { REQUEST_BYTES_MIN };
        let size = match within(idle, read_frame_size_from(&mut reader, min)).await {
            None => {
                debug!("shard {}: closing connection from {peer}: idle", shard.id);
                break;
            }
            Some(Ok(Some(n))) if n > session.request_bytes_max(Instant::now()).unwrap_or(n) => {
                warn!(
                    "shard {}: closing connection from {peer}: a {n}-byte request before authentication",
                    shard.id
                );
                shard.metrics.protocol_error();
                break;
            }
            Some(Ok(Some(n))) => n,
            Some(Ok(None)) => break,
            Some(Err(e)) => {
                warn!("shard {}: closing connection from {peer}: {e}", shard.id);
                shard.metrics.protocol_error();
                break;
            }
        };
        // Room in the shard's budget before any byte of the body is read:
        // a connection waiting here reads nothing more (backpressure).
        let permit = shard.request_bytes.acquire(size).await;
        let arrival = shard.config.request_arrival_timeout;
        let frame = match within(arrival, read_frame_body(&mut reader, size)).await {
            Some(Ok(f)) => f,
            None => {
                warn!(
                    "shard {}: closing connection from {peer}: a {size}-byte request did not arrive within {arrival:?}",
                    shard.id,
                );
                shard.metrics.protocol_error();
                break;
            }
            Some(Err(e)) => {
                warn!("shard {}: closing connection from {peer}: {e}", shard.id);
                shard.metrics.protocol_error();
                break;
            }
        };
        let started = Instant::now();
        if session.expects_raw_token() {
            let verdict = session.raw_token(&frame, &shard.metadata.image(), started);
            if protocol.is_sasl() {
                context.principal = session.principal();
            }
            let (reply, close) = sasl_reply(&shard, &peer, verdict);
            let guard = shard.start_request();
            let item = Item::Reply(reply, guard, ApiKey::SaslAuthenticate, started, permit);
            pipeline.queue.borrow_mut().push_back(item);
            pipeline.changed.notify();
            if close {
                break;
            }
            continue;
        }
        let request = match decode_request(frame) {
            Ok(r) => r,
            Err(e) => {
                warn!("shard {}: closing connection from {peer}: {e}", shard.id);
                shard.metrics.protocol_error();
                break;
            }
        };
        let sasl_api = matches!(request.api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        // The request's time on the core, measured only when some quota is
        // set (request_percentage needs it; two clock reads a poll).
        let mut on_core = (!shard.metadata.image().quotas.is_empty()).then_some(Duration::ZERO);
        let guard = shard.start_request();
        let (reply, close) = if sasl_api || !session.authenticated(started) {
            let verdict = session.admit(&request, &shard.metadata.image(), started);
            if protocol.is_sasl() {
                context.principal = session.principal();
            }
            shard.metrics.reauthenticated(session.take_reauthentications());
            match verdict {
                Verdict::Serve => {
                    let handled = handlers::handle(&shard, &request, &context);
                    (timed(handled, on_core.as_mut()).await, false)
                }
                other => sasl_reply(&shard, &peer, other),
            }
        } else {
            let handled = handlers::handle(&shard, &request, &context);
            (timed(handled, on_core.as_mut()).await, false)
        };
        // request_percentage: the time this request's in-order phase spent
        // on the shard's core (not its waits), as a percentage of a second.
        let client_id = request.header.client_id.as_deref().unwrap_or("");
        let quota = on_core.and_then(|used| {
            Some((shard.quota_of(QuotaKind::Request, &context, client_id)?, used))
        });
        if let Some((quota, used)) = quota {
            shard.throttle(&quota, used.as_nanos() as f64 * 100.0 / 1e9, &context.mute);
        }
        // Never a SASL body in the log: it holds a password or a proof.
        if let (Reply::Now(Err(e)), false) = (&reply, sasl_api) {
            debug!(
                "shard {}: request {:?} v{} failed: {e}; body {:02x?}",
                shard.id,
                request.api,
                request.version,
                &request.body[..request.body.len().min(256)]
            );
        }
        pipeline.queue.borrow_mut().push_back(Item::Reply(
            reply,
            guard,
            request.api,
            started,
            permit,
        ));
        pipeline.changed.notify();
        if close {
            break;
        }
    }
    pipeline.queue.borrow_mut().push_back(Item::Close);
    pipeline.changed.notify();
    writer.await;
}

/// Runs `f`, adding the time spent in its polls to `spent` when given:
/// the time it held the core, not the time it waited.
async fn timed<F: std::future::Future>(f: F, spent: Option<&mut Duration>) -> F::Output {
    let Some(spent) = spent else { return f.await };
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| {
        let start = Instant::now();
        let polled = f.as_mut().poll(cx);
        *spent += start.elapsed();
        polled
    })
    .await
}

/// Writes a whole frame and flushes it.
async fn write_all<W: futures_lite::AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// The reply to a request the SASL session answered, and whether the
/// connection closes after it (logged here, with the client's address).
fn sasl_reply(shard: &Shard, peer: &str, verdict: Verdict) -> (Reply, bool) {
    match verdict {
        // A raw token is never served as a request: nothing to send.
        Verdict::Serve => (Reply::Now(Ok(None)), false),
        Verdict::Answer(answer) => (Reply::Now(answer), false),
        Verdict::Close { answer, delay, why } => {
            let reply = if delay.is_zero() {
                warn!("shard {}: closing connection from {peer}: {why}", shard.id);
                shard.metrics.protocol_error();
                Reply::Now(answer)
            } else {
                // Kafka's level for a failed login: a client's error.
                info!("shard {}: closing connection from {peer}: {why}", shard.id);
                shard.metrics.authentication_failed();
                Reply::Later(Box::pin(async move {
                    glommio::timer::sleep(delay).await;
                    answer
                }))
            };
            (reply, true)
        }
    }
}

/// Counts a connection in `corelog_connections_active` while alive, also
/// when its task is dropped (shutdown).
/// Also counts it against the shard's connection limits
/// (`crate::admission`), per shard and per client address.
struct OpenConnection(Rc<Shard>, Option<std::net::IpAddr>);

impl OpenConnection {
    fn new(shard: Rc<Shard>, ip: Option<std::net::IpAddr>) -> OpenConnection {
        shard.metrics.connection_opened();
        shard.connections.opened(ip);
        OpenConnection(shard, ip)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
        self.0.connections.closed(self.1);
    }
}

/// Writes a response given in parts, through the shard's splicer and this
/// connection's pipe. Any error leaves the frame half sent: the caller
/// closes the connection.
async fn send_parts(
    parts: Vec<Part>,
    splicer: Option<&Splicer>,
    pipe: &mut Option<Pipe>,
    socket: RawFd,
) -> std::io::Result<()> {
    let splicer =
        splicer.ok_or_else(|| std::io::Error::other("no zero-copy path to this socket"))?;
    if pipe.is_none() {
        *pipe = Some(Pipe::new()?);
    }
    splicer.send_parts(pipe.as_ref().expect("created above"), parts, socket).await
}

//! The node's metrics endpoint: a plain HTTP/1.1 server on its own thread
//! (`corelog serve --metrics-port`, path `/metrics`), answering one scrape
//! at a time with the Prometheus text format.
//!
//! Runs on the `metrics` thread, never on a shard: a scrape costs the
//! shards one channel message each and the copy of their counters
//! ([`super::snapshot`]); rendering and the socket are this thread's. It
//! must not touch shard state directly. Every read, write and wait is
//! bounded, so a stuck scraper or shard delays the next scrape at most
//! that long.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use log::debug;

use super::{render, MetricsRequest, Snapshot};
use crate::ids::ShardId;

/// Longest a scrape waits for the shards' snapshots; a shard that has not
/// answered by then is reported with `corelog_shard_up 0`.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest a client may take to send its whole request head, and (per
/// write) to read the answer.
pub const HTTP_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head read (request line and headers); scrapers send a
/// few hundred bytes.
pub const HTTP_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Serves scrapes until the process ends.
pub fn serve(listener: TcpListener, shards: Vec<flume::Sender<MetricsRequest>>, node_id: i32) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if let Err(e) = answer(&mut stream, &shards, node_id) {
            debug!("metrics: scrape from {:?} failed: {e}", stream.peer_addr());
        }
    }
}

fn answer(
    stream: &mut TcpStream,
    shards: &[flume::Sender<MetricsRequest>],
    node_id: i32,
) -> std::io::Result<()> {
    stream.set_write_timeout(Some(HTTP_IO_TIMEOUT))?;
    let head = match read_head(stream)? {
        Some(h) => h,
        None => {
            return respond_with(
                stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
                true,
            )
        }
    };
    let line = head.lines().next().unwrap_or_default();
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    // No body for HEAD, on every status.
    let head_only = method == "HEAD";
    if !words.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return respond_with(
            stream,
            "400 Bad Request",
            "text/plain",
            b"expected an HTTP/1.x request\n",
            !head_only,
        );
    }
    if method != "GET" && !head_only {
        return respond_with(
            stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD\n",
            true,
        );
    }
    let path = target.split('?').next().unwrap_or_default();
    match path {
        "/metrics" => {
            let (snapshots, missing) = gather(shards);
            let text = render(&snapshots, &missing, node_id);
            respond_with(
                stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                text.as_bytes(),
                !head_only,
            )
        }
        "/" => respond_with(
            stream,
            "200 OK",
            "text/plain",
            b"corelog metrics: GET /metrics\n",
            !head_only,
        ),
        _ => respond_with(
            stream,
            "404 Not Found",
            "text/plain",
            b"not found: the metrics are at /metrics\n",
            !head_only,
        ),
    }
}

/// The request head (up to the blank line), or `None` if it is too large.
fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let deadline = Instant::now() + HTTP_IO_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        // One deadline for the whole head: a client trickling bytes cannot
        // hold the endpoint longer.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "request head too slow"));
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if head.len() > HTTP_REQUEST_BYTES_MAX {
            return Ok(None);
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// Asks every shard for its snapshot, all at once, then waits for each
/// until [`SCRAPE_TIMEOUT`] from the start.
fn gather(shards: &[flume::Sender<MetricsRequest>]) -> (Vec<Snapshot>, Vec<ShardId>) {
    let deadline = Instant::now() + SCRAPE_TIMEOUT;
    let asked: Vec<(ShardId, Option<flume::Receiver<Snapshot>>)> = shards
        .iter()
        .enumerate()
        .map(|(id, shard)| {
            let (reply, answer) = flume::bounded(1);
            (ShardId(id as u16), shard.try_send(reply).is_ok().then_some(answer))
        })
        .collect();
    let mut snapshots = Vec::with_capacity(asked.len());
    let mut missing = Vec::new();
    for (id, answer) in asked {
        match answer.and_then(|a| a.recv_deadline(deadline).ok()) {
            Some(s) => snapshots.push(s),
            None => missing.push(id),
        }
    }
    (snapshots, missing)
}

fn respond_with(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body)?;
    }
    stream.flush()
}

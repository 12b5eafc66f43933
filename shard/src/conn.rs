//! One client connection, on the shard that accepted it: frames in,
//! responses out, in request order.
//!
//! A connection that sends garbage, a frame above the size limit, an API or
//! version we do not serve, or a body that does not decode is closed with a
//! log line; other connections are not affected. Requests are handled one at
//! a time per connection (in order, as Kafka requires); pipelining several
//! requests of one connection is future work.

use std::rc::Rc;

use futures_lite::io::BufReader;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use log::{debug, warn};
use net::codec::decode_request;
use net::frame::read_frame;

use crate::handlers;
use crate::shard::Shard;

/// Read buffer per connection: a few small requests per system call.
pub const CONNECTION_READ_BUFFER_BYTES: usize = 64 * 1024;

pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::with_capacity(CONNECTION_READ_BUFFER_BYTES, stream);
    debug!("shard {}: connection from {peer}", shard.id);
    loop {
        if shard.stopping.get() {
            break;
        }
        let frame = match read_frame(&mut stream).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                warn!("shard {}: closing connection from {peer}: {e}", shard.id);
                break;
            }
        };
        let request = match decode_request(frame) {
            Ok(r) => r,
            Err(e) => {
                warn!("shard {}: closing connection from {peer}: {e}", shard.id);
                break;
            }
        };
        let guard = shard.start_request();
        let response = handlers::handle(&shard, &request).await;
        drop(guard);
        if let Err(e) = &response {
            debug!(
                "shard {}: request {:?} v{} body {:02x?}: {e}",
                shard.id,
                request.api,
                request.version,
                &request.body[..request.body.len().min(256)]
            );
        }
        match response {
            Ok(Some(bytes)) => {
                if let Err(e) = stream.get_mut().write_all(&bytes).await {
                    debug!("shard {}: connection from {peer} lost: {e}", shard.id);
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!("shard {}: closing connection from {peer}: {e}", shard.id);
                break;
            }
        }
    }
}

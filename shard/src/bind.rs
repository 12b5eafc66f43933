//! Listening ports held by one process at a time.
//!
//! Called at startup by each shard for its client ports and by shard 0 for
//! a voter's controller port; nothing here runs once the node serves.
//!
//! glommio binds with SO_REUSEPORT, which lets a restarted node bind while
//! the previous run's connections linger, but also lets a second process
//! bind the same port silently and take a share of its connections: a
//! broker's port and another node's controller port picked alike and
//! started together each answered part of the other's clients. The
//! startup probe (`node::check_ports`) cannot see a process starting at
//! the same moment. So every listening port is also claimed through an
//! abstract Unix socket named after its number, which the kernel gives to
//! one socket at a time (per network namespace, as ports are) and frees
//! when the process ends, however it ends. One Corelog listener per port
//! number per network namespace, whatever the address.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::time::{Duration, Instant};

use crate::node::PORT_RELEASE_WAIT;

/// How often a port still claimed is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// A port's claim: held as long as its listener is.
pub struct PortClaim(#[allow(dead_code)] UnixListener);

/// The name a port is claimed under.
fn claim_name(port: u16) -> String {
    format!("corelog-port-{port}")
}

/// Claims `port`, then binds `host:port` for listening. A port claimed by
/// another listener (of this process or another) is tried again for up to
/// [`PORT_RELEASE_WAIT`], the time a killed process's sockets may take to
/// go, then refused.
pub async fn listen(host: &str, port: u16) -> io::Result<(glommio::net::TcpListener, PortClaim)> {
    let claim = claim(port).await?;
    let socket = glommio::net::TcpListener::bind((host, port))?;
    Ok((socket, claim))
}

async fn claim(port: u16) -> io::Result<PortClaim> {
    let addr = SocketAddr::from_abstract_name(claim_name(port).as_bytes())?;
    let deadline = Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match UnixListener::bind_addr(&addr) {
            Ok(held) => return Ok(PortClaim(held)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                glommio::timer::sleep(RETRY_EVERY).await;
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("port {port} is held by another corelog listener"),
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

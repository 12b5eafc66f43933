//! A connection's context: who is at the other end. Handlers that answer
//! differently per client take it (JoinGroup records the member's host);
//! the authenticated principal joins it with security.
//!
//! Pure values, built by [`crate::conn`] once per connection on its shard.

use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct ConnContext {
    /// The client's address, if the socket still knows it.
    pub peer: Option<SocketAddr>,
}

impl ConnContext {
    /// `ip:port` of the client, or `?`.
    pub fn peer_name(&self) -> String {
        self.peer.map_or_else(|| "?".to_string(), |a| a.to_string())
    }
}

//! A connection's context: who is at the other end, and on which
//! listener. Handlers that answer differently per client take it
//! (JoinGroup records the member's host; Metadata and FindCoordinator
//! answer endpoints of the listener the request came in on).
//!
//! Pure values, built by [`crate::conn`] once per connection on its shard;
//! the principal changes when the client authenticates.

use std::net::SocketAddr;

use crate::listener::SecurityProtocol;

#[derive(Debug, Clone)]
pub struct ConnContext {
    /// The client's address, if the socket still knows it.
    pub peer: Option<SocketAddr>,
    /// The protocol of the listener the connection came in on.
    pub protocol: SecurityProtocol,
    /// Kafka's principal: `User:NAME` once SASL authenticated the client,
    /// `User:ANONYMOUS` on a PLAINTEXT listener.
    pub principal: String,
}

/// Kafka's principal of an unauthenticated connection.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

impl ConnContext {
    /// `ip:port` of the client, or `?`.
    pub fn peer_name(&self) -> String {
        self.peer.map_or_else(|| "?".to_string(), |a| a.to_string())
    }
}

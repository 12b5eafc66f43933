//! How this node proves itself to the other nodes of its cluster
//! (Kafka's `sasl.mechanism.inter.broker.protocol` and inter-broker
//! JAAS login, in one flag): the `--inter-broker-credential` it logs in
//! with on another broker's SASL inter-broker listener and on the
//! controllers' ports, the TLS client configuration for a TLS
//! inter-broker listener, and the salted password kept between logins.
//!
//! One [`Peers`] per shard, read by the connections the shard opens to
//! other nodes ([`crate::replica::wire`], the member and the voters of
//! [`crate::cluster`]) and by the controller's port, which speaks TLS
//! when the inter-broker listener does. It opens no socket and no file
//! (the certificates are [`crate::tls`]'s); it runs TLS handshakes on
//! sockets it is given, in the caller's task.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use auth::{Credential, SaltedKeys};
use glommio::net::TcpStream;

use crate::listener::SecurityProtocol;
use crate::peer_stream::PeerStream;
use crate::tls::Certificates;

/// What one shard needs to open an authenticated connection to another
/// node.
pub struct Peers {
    /// The inter-broker listener's protocol (the first listener's).
    pub protocol: SecurityProtocol,
    pub credential: Option<Credential>,
    /// The last SCRAM salted password: a reconnect to a broker with the
    /// same salt derives nothing (a PBKDF2 derivation is milliseconds).
    pub keys: RefCell<Option<SaltedKeys>>,
    tls: Option<Rc<RefCell<Certificates>>>,
}

impl Peers {
    pub fn new(
        protocol: SecurityProtocol,
        credential: Option<Credential>,
        tls: Option<Rc<RefCell<Certificates>>>,
    ) -> Peers {
        Peers { protocol, credential, keys: RefCell::default(), tls }
    }

    /// The TLS client configuration, reloaded with the server's when the
    /// files change; `None` without a client CA (the node refuses to
    /// start with a TLS inter-broker listener in a cluster then).
    pub fn tls_client(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.as_ref()?.borrow_mut().client(Instant::now())
    }

    /// The bytes of a new connection to the node at `host`: TLS when the
    /// inter-broker listener is, checking that node's certificate against
    /// `--ssl-client-ca` (and presenting this node's). Unbounded: the
    /// caller bounds it.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<PeerStream, String> {
        if !self.protocol.is_tls() {
            return Ok(PeerStream::Plain(tcp));
        }
        let config =
            self.tls_client().ok_or("a TLS inter-broker listener needs --ssl-client-ca")?;
        PeerStream::connect(config, host, tcp).await
    }

    /// The bytes of a connection another node opened to a controller's
    /// port: TLS when the inter-broker listener is, with the listeners'
    /// certificate and client authentication. Unbounded: the caller
    /// bounds it.
    pub async fn accept(&self, tcp: TcpStream) -> Result<PeerStream, String> {
        if !self.protocol.is_tls() {
            return Ok(PeerStream::Plain(tcp));
        }
        let certificates = self.tls.as_ref().ok_or("no TLS certificate")?;
        let config = certificates.borrow_mut().current(Instant::now());
        PeerStream::accept(config, tcp).await
    }
}

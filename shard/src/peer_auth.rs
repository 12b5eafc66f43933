//! How this node proves itself to the other nodes of its cluster
//! (Kafka's `sasl.mechanism.inter.broker.protocol` and inter-broker
//! JAAS login, in one flag): the `--inter-broker-credential` it logs in
//! with on another broker's SASL inter-broker listener and on the
//! controllers' ports, the TLS client configuration for a TLS
//! inter-broker listener, and the salted password kept between logins.
//!
//! One [`Peers`] per shard, read by the connections the shard opens to
//! other nodes ([`crate::replica::wire`], the member and the voters of
//! [`crate::cluster`]). Values only: it opens no socket and no file (the
//! certificates are [`crate::tls`]'s).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use auth::{Credential, SaltedKeys};

use crate::listener::SecurityProtocol;
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
}

//! The bytes of a connection between two nodes: a follower's or a
//! transaction coordinator's to another broker ([`crate::replica::wire`]),
//! a node's or a voter's to a controller's port, and the controller's
//! side of those ([`crate::cluster`]). In the clear when the inter-broker
//! listener (the first) is PLAINTEXT or SASL_PLAINTEXT; TLS (rustls, with
//! the node's certificates from [`crate::tls`]) when it is SSL or
//! SASL_SSL, so that what nodes exchange (records, metadata with salted
//! credentials and ACLs) is as protected as what clients send.
//!
//! Runs in the task of the connection that uses it, on any shard; it
//! opens no socket itself and bounds nothing: callers bound the handshake.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::{client, server};
use glommio::net::TcpStream;

/// A connection's bytes: as they are, or through rustls on either end.
pub enum PeerStream {
    Plain(TcpStream),
    Client(Box<client::TlsStream<TcpStream>>),
    Server(Box<server::TlsStream<TcpStream>>),
}

impl PeerStream {
    /// The TLS handshake of the connecting end, checking that the other
    /// node's certificate names `host`; the error is rustls' reason.
    pub async fn connect(
        config: Arc<rustls::ClientConfig>,
        host: &str,
        tcp: TcpStream,
    ) -> Result<PeerStream, String> {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} is not a server name: {e}"))?;
        let stream = futures_rustls::TlsConnector::from(config).connect(name, tcp).await;
        Ok(PeerStream::Client(Box::new(stream.map_err(|e| format!("TLS handshake: {e}"))?)))
    }

    /// The TLS handshake of the accepting end (the client certificate
    /// checked as `config` asks); the error is rustls' reason.
    pub async fn accept(
        config: Arc<rustls::ServerConfig>,
        tcp: TcpStream,
    ) -> Result<PeerStream, String> {
        let stream = futures_rustls::TlsAcceptor::from(config).accept(tcp).await;
        Ok(PeerStream::Server(Box::new(stream.map_err(|e| format!("TLS handshake: {e}"))?)))
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PeerStream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            PeerStream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PeerStream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            PeerStream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PeerStream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            PeerStream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_close(cx),
            PeerStream::Client(s) => Pin::new(s.as_mut()).poll_close(cx),
            PeerStream::Server(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

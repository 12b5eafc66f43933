//! A TLS session over a blocking socket that two threads can share, one
//! writing and one reading: the load generator's writer and reader of one
//! connection ([`crate::Conn::try_clone`]). rustls' `StreamOwned` owns
//! its socket and needs `&mut` for both directions; here the session sits
//! behind a mutex held only while it encrypts or decrypts, and each handle
//! has its own clone of the socket, so no thread waits on the network
//! with the lock held.
//!
//! A handle may read or write, but only one handle of a connection may
//! read and only one may write at a time (as with the plain socket's
//! clones, frames would interleave otherwise). Records the session must
//! send while reading (the answer to a TLS 1.3 KeyUpdate) go out with
//! the next write. Runs on the caller's thread; owns no thread.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

/// Bytes read from the socket at once: one TLS record at most is 16 KiB
/// of plaintext plus its overhead.
const READ_BYTES: usize = 18 * 1024;

/// One handle on a TLS connection.
pub struct TlsStream {
    session: Arc<Mutex<ClientConnection>>,
    tcp: TcpStream,
    /// Read from the socket and not yet handed to the session:
    /// `raw[start..end]`.
    raw: Box<[u8]>,
    start: usize,
    end: usize,
    /// Records encrypted under the lock, written after it.
    out: Vec<u8>,
}

impl TlsStream {
    /// The client's handshake on `tcp` with the server named `name`.
    pub fn handshake(
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        mut tcp: TcpStream,
    ) -> std::io::Result<TlsStream> {
        let mut session = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        // Frames are written whole (a produce request can be megabytes):
        // the caller bounds them, not rustls' 64 KiB default.
        session.set_buffer_limit(None);
        while session.is_handshaking() {
            session.complete_io(&mut tcp)?;
        }
        Ok(TlsStream::over(Arc::new(Mutex::new(session)), tcp))
    }

    /// Another handle on the same session and socket. Fails while this
    /// handle holds bytes read from the socket and not yet decrypted: the
    /// new handle would read what follows them first.
    pub fn try_clone(&self) -> std::io::Result<TlsStream> {
        if self.start < self.end {
            return Err(std::io::Error::other("TLS bytes read and not yet decrypted"));
        }
        Ok(TlsStream::over(self.session.clone(), self.tcp.try_clone()?))
    }

    fn over(session: Arc<Mutex<ClientConnection>>, tcp: TcpStream) -> TlsStream {
        let raw = vec![0; READ_BYTES].into_boxed_slice();
        TlsStream { session, tcp, raw, start: 0, end: 0, out: Vec::new() }
    }

    fn lock(session: &Mutex<ClientConnection>) -> MutexGuard<'_, ClientConnection> {
        // A panic elsewhere cannot leave the session half-changed in a way
        // that matters here: its own errors are returned, not panicked.
        session.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            {
                let mut session = TlsStream::lock(&self.session);
                match session.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if self.start < self.end {
                    let mut rest = &self.raw[self.start..self.end];
                    self.start += session.read_tls(&mut rest)?;
                    session
                        .process_new_packets()
                        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
                    continue;
                }
            }
            let n = self.tcp.read(&mut self.raw)?;
            if n == 0 {
                // The session learns of the end: its reader then answers
                // Ok(0) after the server's close_notify, UnexpectedEof
                // after a connection cut without one.
                let mut session = TlsStream::lock(&self.session);
                session.read_tls(&mut std::io::empty())?;
                return session.reader().read(buf);
            }
            (self.start, self.end) = (0, n);
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        {
            let mut session = TlsStream::lock(&self.session);
            session.writer().write_all(buf)?;
            while session.wants_write() {
                session.write_tls(&mut self.out)?;
            }
        }
        let written = self.tcp.write_all(&self.out);
        self.out.clear();
        written.map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

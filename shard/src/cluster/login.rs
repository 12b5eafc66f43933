//! The login on a controller's port, when nodes have an
//! `--inter-broker-credential`: before any Raft message or request, the
//! connecting node proves it holds the cluster's credential and the
//! controller proves it holds it too (SCRAM-SHA-512 in `Login` and
//! `LoginAnswer` frames, whatever mechanism the credential names for the
//! Kafka listener). Every node of a cluster gives the same credential;
//! the controller checks against a SCRAM credential it derives from its
//! own at start, so it needs no metadata (voters log in to each other
//! before any is committed) and derives nothing per attempt. Another
//! user fails at the proof, as a wrong password does; a refused login is
//! answered, then closed after [`FAILED_LOGIN_DELAY`].
//!
//! The exchange (each message a frame; any other frame, a frame over
//! [`LOGIN_FRAME_BYTES_MAX`] or more than [`LOGIN_TIMEOUT`] closes the
//! connection):
//! 1. `Login`: client-first (`n,,n=USER,r=NONCE`);
//! 2. `LoginAnswer`: server-first, or `e=` and the reason;
//! 3. `Login`: client-final with the proof;
//! 4. `LoginAnswer`: server-final (`v=` the server's signature) or `e=`.
//!
//! It authenticates the two ends at connect, as Kafka's SASL controller
//! listeners do; it encrypts nothing: the frames are encrypted when the
//! port speaks TLS, that is when the inter-broker listener does
//! ([`crate::peer_stream`]). Runs in the tasks of [`super::controller`] and
//! [`super::member`], on shard 0.

use std::time::Duration;

use auth::{Mechanism, SaltedKeys, ScramClient, ScramCredential, ScramServer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::frame::{read_frame_at_most, write_frame, Kind};
use crate::admission::within;
use auth::Credential;

/// The mechanism on the port: the strongest SCRAM; PLAIN would send the
/// password.
const MECHANISM: Mechanism = Mechanism::ScramSha512;

/// Largest login frame: a SCRAM message and the kind byte.
pub const LOGIN_FRAME_BYTES_MAX: usize = auth::scram::MESSAGE_BYTES_MAX + 1;

/// How long a login may take, both ends.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a refused login waits before its connection is closed
/// (Kafka's `connection.failed.authentication.delay.ms`): a guesser gets
/// ten tries a second per connection, and a misconfigured node's retries
/// do not spin.
pub const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(100);

/// A controller's side: who may log in, and the credential it checks.
pub struct PortLogin {
    user: String,
    credential: ScramCredential,
    /// Checked for any other user, so that an unknown user fails at the
    /// proof like a wrong password: the answers do not tell which users
    /// exist.
    decoy: ScramCredential,
}

impl PortLogin {
    /// The login of `credential`'s user with its password (PBKDF2
    /// derivations: once, at start).
    pub fn new(credential: &Credential) -> Result<PortLogin, String> {
        let derive = |password: &[u8]| {
            ScramCredential::generate(MECHANISM, password, auth::scram::ITERATIONS_MIN)
                .map_err(|e| e.to_string())
        };
        let mut random = [0u8; 32];
        getrandom::getrandom(&mut random).map_err(|e| e.to_string())?;
        Ok(PortLogin {
            user: credential.user.clone(),
            credential: derive(credential.password())?,
            decoy: derive(&random)?,
        })
    }
}

/// Logs in on a new connection to a controller's port; `keys` is the
/// salted password of the last login to this controller (derived again
/// when its salt is another).
pub async fn log_in<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    stream: &mut S,
    credential: &Credential,
    keys: &mut Option<SaltedKeys>,
) -> Result<(), String> {
    let exchange = async {
        let (mut client, first) =
            ScramClient::new(MECHANISM, &credential.user, credential.password())
                .map_err(|e| e.to_string())?;
        write_frame(stream, Kind::Login, &first).await.map_err(|e| e.to_string())?;
        let server_first = read_answer(stream).await?;
        let last = client.respond(&server_first, keys).map_err(|e| e.to_string())?;
        write_frame(stream, Kind::Login, &last).await.map_err(|e| e.to_string())?;
        let server_final = read_answer(stream).await?;
        client.verify(&server_final).map_err(|e| e.to_string())
    };
    within(LOGIN_TIMEOUT, exchange).await.ok_or("the login timed out")?
}

async fn read_answer<S: AsyncReadExt + Unpin>(stream: &mut S) -> Result<Vec<u8>, String> {
    let closed = |e: std::io::Error| {
        format!("the controller closed the connection during the login ({e}): it has no or another --inter-broker-credential")
    };
    match read_frame_at_most(stream, LOGIN_FRAME_BYTES_MAX).await.map_err(closed)? {
        (Kind::LoginAnswer, answer) => match answer.strip_prefix(b"e=") {
            Some(why) => Err(format!("the controller refused: {}", String::from_utf8_lossy(why))),
            None => Ok(answer),
        },
        (kind, _) => Err(format!("a {kind:?} frame during the login")),
    }
}

/// Checks the login of a connection to this controller's port; a refusal
/// is answered (`e=`, never a secret) before the error is returned.
pub async fn check<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    stream: &mut S,
    login: &PortLogin,
) -> Result<(), String> {
    let exchange = async {
        let mut server = ScramServer::new(MECHANISM);
        let first = read_login(stream).await?;
        let answer = server.first(&first, |user| {
            Some(if user == login.user { &login.credential } else { &login.decoy }.clone())
        });
        let server_first = refuse_on_error(stream, answer).await?;
        write_frame(stream, Kind::LoginAnswer, &server_first).await.map_err(|e| e.to_string())?;
        let last = read_login(stream).await?;
        let (server_final, _) = refuse_on_error(stream, server.finish(&last)).await?;
        write_frame(stream, Kind::LoginAnswer, &server_final).await.map_err(|e| e.to_string())
    };
    within(LOGIN_TIMEOUT, exchange).await.ok_or("the login timed out")?
}

async fn read_login<S: AsyncReadExt + Unpin>(stream: &mut S) -> Result<Vec<u8>, String> {
    match read_frame_at_most(stream, LOGIN_FRAME_BYTES_MAX).await.map_err(|e| e.to_string())? {
        (Kind::Login, message) => Ok(message),
        (kind, _) => Err(format!("a {kind:?} frame before logging in")),
    }
}

async fn refuse_on_error<S: AsyncWriteExt + Unpin, T>(
    stream: &mut S,
    result: Result<T, auth::AuthError>,
) -> Result<T, String> {
    match result {
        Ok(t) => Ok(t),
        Err(e) => {
            let why = match e {
                auth::AuthError::InvalidCredentials => "invalid-proof".to_string(),
                e => e.to_string(),
            };
            let _ = write_frame(stream, Kind::LoginAnswer, format!("e={why}").as_bytes()).await;
            Err(format!("a failed login ({why})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use glommio::net::{TcpListener, TcpStream};

    use super::*;

    /// A login from `client` to a controller of `server`, over loopback:
    /// (the client's result, the controller's).
    fn login(client: &str, server: &str) -> (Result<(), String>, Result<(), String>) {
        let client = Credential::parse(client).unwrap();
        let server = PortLogin::new(&Credential::parse(server).unwrap()).unwrap();
        glommio::LocalExecutor::default().run(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let controller = glommio::spawn_local(async move {
                let mut stream = listener.accept().await.map_err(|e| e.to_string())?;
                check(&mut stream, &server).await
            });
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let mut keys = None;
            let logged_in = log_in(&mut stream, &client, &mut keys).await;
            drop(stream);
            (logged_in, controller.await)
        })
    }

    #[test]
    fn a_node_with_the_cluster_s_credential_logs_in_and_no_other() {
        let cluster = "broker:PLAIN:s3cret";
        assert_eq!(login("broker:SCRAM-SHA-256:s3cret", cluster), (Ok(()), Ok(())));
        for other in ["broker:PLAIN:wrong", "alice:PLAIN:s3cret"] {
            let (client, controller) = login(other, cluster);
            let client = client.unwrap_err();
            assert!(client.contains("the controller refused: invalid-proof"), "{other}: {client}");
            assert!(controller.unwrap_err().contains("failed login"), "{other}");
        }
    }

    /// A controller without a login closes the connection at the Login
    /// frame; the node says what that likely means. (A controller that
    /// cannot sign the final message is refused by the SCRAM client,
    /// tested in `auth`.)
    #[test]
    fn a_controller_port_without_a_login_closes_and_the_node_says_why() {
        glommio::LocalExecutor::default().run(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let controller = glommio::spawn_local(async move {
                let mut stream = listener.accept().await.unwrap();
                // A controller without a login reads a Login frame and closes.
                let _ = super::super::frame::read_frame(&mut stream).await;
            });
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let credential = Credential::parse("broker:PLAIN:s3cret").unwrap();
            let e = log_in(&mut stream, &credential, &mut None).await.unwrap_err();
            assert!(e.contains("no or another --inter-broker-credential"), "{e}");
            controller.await;
        });
    }
}

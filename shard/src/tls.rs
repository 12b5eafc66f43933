//! TLS on the SSL and SASL_SSL listeners: the server's certificate and
//! key, the client CA and `ssl.client.auth` (`--ssl-*`), the rustls
//! configurations built from them (the server's, and the client's this
//! node uses to reach other brokers on a TLS inter-broker listener),
//! reloaded when the files change, and the principal a client
//! certificate proves.
//!
//! Each shard holds its own [`Certificates`] and checks the files' times
//! at most once a second, when a TLS connection arrives: a renewed
//! certificate is served to the next connections without a restart
//! (connections already open keep their session). A file that does not
//! load keeps the previous configuration and is logged. The checks and
//! reloads are small blocking file reads on the shard's core, rare by
//! construction; the handshakes themselves run in [`crate::conn`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client must present a certificate the client CA signed.
    Required,
    /// A client may present one (then it must verify); without one its
    /// principal is `User:ANONYMOUS`.
    Requested,
    /// Client certificates are not asked for.
    None,
}

impl ClientAuth {
    pub fn parse(s: &str) -> Option<ClientAuth> {
        match s {
            "required" => Some(ClientAuth::Required),
            "requested" => Some(ClientAuth::Requested),
            "none" => Some(ClientAuth::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::Required => "required",
            ClientAuth::Requested => "requested",
            ClientAuth::None => "none",
        }
    }
}

/// The `--ssl-*` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM, leaf first).
    pub certificate: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Certificates of the CAs client certificates must chain to (PEM).
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// How often a shard looks at the files' times, at most.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The rustls configurations the files make: the server's, and the
/// client's when a client CA is given.
#[derive(Clone)]
pub struct Configs {
    pub server: Arc<ServerConfig>,
    /// How this node reaches another broker's TLS listener: the peer's
    /// certificate must chain to the client CA (brokers of a cluster
    /// share one), and this node presents its own certificate, whose
    /// subject is its principal there.
    pub client: Option<Arc<ClientConfig>>,
}

/// Builds the rustls configurations from the files: TLS 1.2 and 1.3,
/// rustls' cipher suites (AES-GCM and ChaCha20-Poly1305, forward secret
/// only), the client verifier `ssl.client.auth` asks for.
pub fn load(settings: &TlsSettings) -> Result<Configs, String> {
    // ring rather than aws-lc-rs: minutes less to build on two cores, at
    // the cost of the post-quantum key exchange (decision 48).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let what = |path: &PathBuf, e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.certificate)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| what(&settings.certificate, &e))?;
    if chain.is_empty() {
        return Err(what(&settings.certificate, &"no CERTIFICATE in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key).map_err(|e| what(&settings.key, &e))?;
    let versions: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let roots = match &settings.client_ca {
        None => None,
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| what(ca, &e))? {
                let cert = cert.map_err(|e| what(ca, &e))?;
                roots.add(cert).map_err(|e| what(ca, &e))?;
            }
            if roots.is_empty() {
                return Err(what(ca, &"no CERTIFICATE in the file"));
            }
            Some((ca, Arc::new(roots)))
        }
    };
    let builder = match (settings.client_auth, &roots) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(format!(
                "--ssl-client-auth {} needs --ssl-client-ca",
                settings.client_auth.name()
            ))
        }
        (auth, Some((ca, roots))) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
            let verifier = match auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| what(ca, &e))?)
        }
    };
    let pair = |e: &dyn std::fmt::Display| {
        format!("{} and {}: {e}", settings.certificate.display(), settings.key.display())
    };
    let server = builder.with_single_cert(chain.clone(), key.clone_key()).map_err(|e| pair(&e))?;
    let client = match roots {
        None => None,
        Some((_, roots)) => {
            let client = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&versions)
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)
                .map_err(|e| pair(&e))?;
            Some(Arc::new(client))
        }
    };
    Ok(Configs { server: Arc::new(server), client })
}

/// One shard's TLS configuration, reloaded when its files change.
pub struct Certificates {
    settings: TlsSettings,
    configs: Configs,
    /// The files' modification times and sizes the configuration was
    /// built from.
    stamp: Vec<Option<(SystemTime, u64)>>,
    checked: Instant,
}

impl Certificates {
    /// Loads the files; an error here stops the node at startup.
    pub fn new(settings: TlsSettings, now: Instant) -> Result<Certificates, String> {
        let stamp = stamp(&settings);
        let configs = load(&settings)?;
        Ok(Certificates { settings, configs, stamp, checked: now })
    }

    /// The server configuration for a connection arriving now: reloaded
    /// first if a file changed since the last look (at most once a
    /// second).
    pub fn current(&mut self, now: Instant) -> Arc<ServerConfig> {
        self.refresh(now).server.clone()
    }

    /// The client configuration for a connection to another broker's TLS
    /// listener, reloaded as [`Certificates::current`]; `None` without a
    /// client CA to check the peer's certificate against.
    pub fn client(&mut self, now: Instant) -> Option<Arc<ClientConfig>> {
        self.refresh(now).client.clone()
    }

    fn refresh(&mut self, now: Instant) -> &Configs {
        if now.duration_since(self.checked) >= RELOAD_CHECK_INTERVAL {
            self.checked = now;
            let stamp = stamp(&self.settings);
            if stamp != self.stamp {
                self.stamp = stamp;
                match load(&self.settings) {
                    Ok(configs) => {
                        info!("TLS: reloaded {}", self.settings.certificate.display());
                        self.configs = configs;
                    }
                    Err(e) => warn!("TLS: keeping the previous certificate: {e}"),
                }
            }
        }
        &self.configs
    }
}

fn stamp(settings: &TlsSettings) -> Vec<Option<(SystemTime, u64)>> {
    [Some(&settings.certificate), Some(&settings.key), settings.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

/// Kafka's principal for a verified client certificate chain (leaf
/// first): `User:` and the subject's distinguished name; `None` without
/// a certificate (then the connection stays `User:ANONYMOUS`).
pub fn principal(chain: Option<&[CertificateDer<'_>]>) -> Option<Result<String, String>> {
    let leaf = chain?.first()?;
    Some(auth::x500::subject_name(leaf).map(|dn| format!("User:{dn}")).map_err(|e| e.to_string()))
}

/// The principal this node's own certificate proves to a broker that
/// asks for client certificates; `None` when the file does not read.
pub fn own_principal(settings: &TlsSettings) -> Option<String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.certificate)
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    principal(Some(&chain))?.ok()
}

/// Whether this kernel offers kernel TLS (the `tls` upper layer
/// protocol), probed once at startup. Kernel TLS would let cold fetches
/// splice under TLS; without it TLS connections copy them (see
/// docs/decisions.md).
pub fn kernel_tls_available() -> bool {
    // SAFETY: a socket of our own, closed below; setsockopt reads
    // `name` within its length.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return false;
        }
        let name = b"tls";
        let r = libc::setsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        );
        let errno = std::io::Error::last_os_error().raw_os_error();
        libc::close(fd);
        // An unconnected socket: the module answers ENOTCONN, a kernel
        // without it ENOENT.
        r == 0 || errno == Some(libc::ENOTCONN)
    }
}

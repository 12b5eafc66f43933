//! `corelog serve`: flags to a [`shard::NodeConfig`], then run the node.

use anyhow::{bail, Context, Result};
use engine::Flush;
use shard::listener::Listener;
use shard::tls::{ClientAuth, TlsSettings};
use shard::NodeConfig;

const USAGE: &str = "usage: corelog serve [options]

  --data-dir DIR               data directory (default ./corelog-data)
  --host HOST                  address to listen on and advertise (default 127.0.0.1)
  --port PORT                  port of shard 0; shard k listens on PORT+k (default 9092)
  --listener NAME://HOST:PORT  a listener instead of --host/--port, repeatable; NAME is
                               PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; shard k
                               listens on PORT+k of each; brokers talk to each other on
                               the first one
  --ssl-certificate PEM        certificate chain of SSL and SASL_SSL listeners (leaf
                               first); reloaded when the file changes
  --ssl-key PEM                its private key (PKCS#8, PKCS#1 or SEC1)
  --ssl-client-ca PEM          CA certificates client certificates must chain to
  --ssl-client-auth required|requested|none
                               ask clients for a certificate (Kafka's ssl.client.auth;
                               default: required with --ssl-client-ca, else none); its
                               subject is the principal (User:CN=...,O=...)
  --sasl-mechanisms LIST       SASL mechanisms of SASL listeners (default
                               PLAIN,SCRAM-SHA-256,SCRAM-SHA-512); credentials are the
                               SCRAM ones (--scram-credential, AlterUserScramCredentials)
  --oauthbearer-jwks FILE      the JSON Web Key Set OAUTHBEARER tokens (signed JWTs:
                               RS256/384/512, ES256/384) are checked against, reloaded
                               when it changes; add OAUTHBEARER to --sasl-mechanisms
  --oauthbearer-expected-audience AUD[,AUD]
                               a token's aud must hold one of these (default: any)
  --oauthbearer-expected-issuer ISS
                               a token's iss must be ISS (default: any)
  --oauthbearer-sub-claim NAME the claim naming the principal (default sub)
  --authorizer on|off          check every request against the ACLs (no ACL: denied);
                               off (the default), everything is allowed and the ACL
                               APIs answer SECURITY_DISABLED
  --inter-broker-credential USER:MECHANISM:PASSWORD
                               how this node logs in to other brokers when the first
                               listener is SASL_PLAINTEXT or SASL_SSL (MECHANISM PLAIN,
                               SCRAM-SHA-256 or SCRAM-SHA-512); the user needs a SCRAM
                               credential and, with the authorizer, to be a super user.
                               A TLS first listener checks the other brokers'
                               certificates against --ssl-client-ca and presents its own.
                               It also guards the controllers' ports (same on every node)
  --inter-broker-credential-file PATH
                               the same from a file, kept out of the process list
  --super-users User:NAME;User:NAME
                               principals allowed everything (Kafka's super.users);
                               User:ANONYMOUS is every PLAINTEXT connection
  --connections-max-reauth-ms MS
                               a SASL session lasts MS, then the client re-authenticates
                               on its connection or is closed (default 0: for ever)
  --shards N                   shards, one per core (default: the number of cores)
  --node-id ID                 node id; shard k is broker ID*1000+k (default 0)
  --controller-quorum ID@HOST:PORT,...
                               join a cluster whose metadata quorum is these controllers
                               (1, 3 or 5); a node named in it runs one, listening on
                               HOST:PORT. Without it: a single node, its own controller
  --metadata-snapshot-entries N
                               metadata log entries (one per command) a controller
                               applies between two snapshots of the image (default 1000)
  --flush fsync|interval:MS    acknowledge after fdatasync (default), or after the
                               write with fdatasync every MS milliseconds
  --auto-create-topics BOOL    create unknown topics on Metadata/Produce (default true)
  --num-partitions N           partitions of auto-created topics (default 1)
  --default-replication-factor N
                               replicas of auto-created topics and of CreateTopics
                               with replication factor -1 (default 1)
  --min-insync-replicas N      in-sync replicas an acks=all produce needs, for topics
                               without min.insync.replicas (default 1)
  --replica-lag-time-max-ms MS a follower not caught up for MS leaves the ISR
                               (default 30000, Kafka's replica.lag.time.max.ms)
  --broker-session-timeout-ms MS
                               a controller fences a node not heard from for MS
                               (default 9000, Kafka's broker.session.timeout.ms;
                               nodes heartbeat every 2000)
  --transactional-id-expiration-ms MS
                               a transactional id idle for MS is forgotten (default
                               604800000, Kafka's transactional.id.expiration.ms)
  --scram-credential USER:MECHANISM:PASSWORD
                               a SCRAM credential (MECHANISM SCRAM-SHA-256 or
                               SCRAM-SHA-512, 4096 iterations) written when the node
                               creates its metadata log, as kafka-storage format
                               --add-scram; repeatable; ignored once the log exists
  --log-maintenance-ms MS      how often each shard applies retention and compacts
                               (default 15000, Kafka's log.cleaner.backoff.ms)
  --log-cleaner-io-bytes-per-sec N
                               compaction read+write budget per shard (default 64000000)
  --advertised-host HOST       host clients are told to connect to, on every listener
                               (default: the listener's)
  --advertised-port PORT       port of shard 0 clients are told to connect to on the
                               first listener (default: its own), like Kafka's
                               advertised.listeners
  --offsets-topic-segment-bytes N
                               segment.bytes of __consumer_offsets when it is created
                               (default 104857600, Kafka's offsets.topic.segment.bytes)
  --zero-copy-fetch BOOL       splice cold fetch data from segment files to sockets
                               instead of copying it (default true)
  --metrics-port PORT          Prometheus endpoint http://HOST:PORT/metrics
                               (default 9644; 0 for none)
  --max-partitions N           partitions the node serves, all topics together
                               (default: what the open-files limit allows)
  --connections-max-idle-ms MS close a connection with no request for MS
                               (default 600000, Kafka's connections.max.idle.ms)
  --request-arrival-timeout-ms MS
                               close a connection whose request is not whole MS
                               after its size arrived (default 60000)";

pub fn run(args: Vec<String>) -> Result<()> {
    let mut config = NodeConfig {
        shards: std::thread::available_parallelism().map(|n| n.get() as u16).unwrap_or(1),
        ..NodeConfig::default()
    };
    let mut listeners: Vec<Listener> = Vec::new();
    let mut host_or_port = false;
    let (mut certificate, mut key, mut client_ca, mut client_auth) = (None, None, None, None);
    let mut oauth = OAuthFlags::default();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        if let Some((name, _)) = flag.split_once('=') {
            // Not echoed whole: the value may be a password.
            bail!("{name}=...: give the value after a space\n\n{USAGE}");
        }
        let value = it.next().with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        let bad = |what: &str| anyhow::anyhow!("{flag} {value:?}: {what}");
        match flag.as_str() {
            "--data-dir" => config.data_dir = value.into(),
            "--host" => {
                config.host = value;
                host_or_port = true;
            }
            "--port" => {
                config.port = value.parse().map_err(|_| bad("not a port"))?;
                host_or_port = true;
            }
            "--listener" => listeners.push(Listener::parse(&value).map_err(|e| bad(&e))?),
            "--ssl-certificate" => certificate = Some(value.into()),
            "--ssl-key" => key = Some(value.into()),
            "--ssl-client-ca" => client_ca = Some(value.into()),
            "--ssl-client-auth" => {
                client_auth = Some(
                    ClientAuth::parse(&value)
                        .ok_or_else(|| bad("expected required, requested or none"))?,
                )
            }
            "--sasl-mechanisms" => {
                config.sasl_mechanisms = value
                    .split(',')
                    .map(|m| {
                        auth::SaslMechanism::parse(m.trim()).ok_or_else(|| {
                            bad("expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, comma-separated")
                        })
                    })
                    .collect::<Result<_>>()?;
            }
            "--authorizer" => {
                config.authorizer = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => bail!("--authorizer {value:?}: expected on or off"),
                }
            }
            "--super-users" => {
                for principal in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                    match principal.split_once(':') {
                        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                            config.super_users.insert(principal.to_string());
                        }
                        _ => bail!("--super-users: {principal:?} is not User:NAME"),
                    }
                }
            }
            "--connections-max-reauth-ms" => {
                let ms: u64 = value.parse().map_err(|_| bad("not a number"))?;
                config.connections_max_reauth =
                    (ms > 0).then(|| std::time::Duration::from_millis(ms));
            }
            "--shards" => config.shards = value.parse().map_err(|_| bad("not a number"))?,
            "--node-id" => config.node_id = value.parse().map_err(|_| bad("not a number"))?,
            "--controller-quorum" => {
                config.controller_quorum =
                    Some(shard::cluster::QuorumConfig::parse(&value).map_err(|e| bad(&e))?)
            }
            "--metadata-snapshot-entries" => {
                config.metadata_snapshot_entries =
                    value.parse().map_err(|_| bad("not a number"))?;
                if config.metadata_snapshot_entries == 0 {
                    bail!("--metadata-snapshot-entries must be positive");
                }
            }
            "--flush" => {
                config.flush =
                    parse_flush(&value).ok_or_else(|| bad("expected fsync or interval:MS"))?
            }
            "--auto-create-topics" => {
                config.auto_create_topics =
                    value.parse().map_err(|_| bad("expected true or false"))?
            }
            "--num-partitions" => {
                config.default_partitions = value.parse().map_err(|_| bad("not a number"))?;
                if config.default_partitions < 1 {
                    bail!("--num-partitions must be at least 1");
                }
            }
            "--default-replication-factor" => {
                config.default_replication_factor =
                    value.parse().map_err(|_| bad("not a number"))?;
                if config.default_replication_factor < 1 {
                    bail!("--default-replication-factor must be at least 1");
                }
            }
            "--min-insync-replicas" => {
                config.min_insync_replicas = value.parse().map_err(|_| bad("not a number"))?;
                if config.min_insync_replicas < 1 {
                    bail!("--min-insync-replicas must be at least 1");
                }
            }
            "--replica-lag-time-max-ms" => {
                config.replica_lag_time_max_ms = value.parse().map_err(|_| bad("not a number"))?;
                if config.replica_lag_time_max_ms == 0 {
                    bail!("--replica-lag-time-max-ms must be positive");
                }
            }
            "--broker-session-timeout-ms" => {
                let ms: u64 = value.parse().map_err(|_| bad("not a number"))?;
                // Below two heartbeat intervals a live node would be fenced.
                let least = 2 * shard::cluster::HEARTBEAT_INTERVAL.as_millis() as u64;
                if !(least..=i32::MAX as u64).contains(&ms) {
                    bail!("--broker-session-timeout-ms must be {least} to {}", i32::MAX);
                }
                config.broker_session_timeout_ms = ms;
            }
            "--transactional-id-expiration-ms" => {
                let ms: u64 = value.parse().map_err(|_| bad("not a number"))?;
                if ms == 0 || ms > i32::MAX as u64 {
                    bail!("--transactional-id-expiration-ms must be 1 to {}", i32::MAX);
                }
                config.transactional_id_expiration_ms = ms;
            }
            "--scram-credential" => config.scram_credentials.push(scram_seed(&value)?),
            "--oauthbearer-jwks" => oauth.jwks = Some(value.into()),
            "--oauthbearer-expected-audience" => {
                oauth.expect.audience = value.split(',').map(|a| a.trim().to_string()).collect()
            }
            "--oauthbearer-expected-issuer" => oauth.expect.issuer = Some(value),
            "--oauthbearer-sub-claim" => oauth.expect.sub_claim = value,
            "--inter-broker-credential" => {
                let c = auth::Credential::parse(&value)
                    .map_err(|e| anyhow::anyhow!("--inter-broker-credential: {e}"))?;
                config.inter_broker_credential = Some(c);
            }
            "--inter-broker-credential-file" => {
                let text = std::fs::read_to_string(&value)
                    .with_context(|| format!("--inter-broker-credential-file {value}"))?;
                // One line: its end of line is not part of the password.
                let line = text.trim_end_matches(['\n', '\r']);
                if line.contains('\n') {
                    bail!("--inter-broker-credential-file {value}: more than one line");
                }
                let c = auth::Credential::parse(line)
                    .map_err(|e| anyhow::anyhow!("--inter-broker-credential-file {value}: {e}"))?;
                config.inter_broker_credential = Some(c);
            }
            "--log-maintenance-ms" => {
                config.maintenance_interval_ms = value.parse().map_err(|_| bad("not a number"))?;
                if config.maintenance_interval_ms == 0 {
                    bail!("--log-maintenance-ms must be positive");
                }
            }
            "--log-cleaner-io-bytes-per-sec" => {
                config.compaction_bytes_per_sec = value.parse().map_err(|_| bad("not a number"))?;
                if config.compaction_bytes_per_sec == 0 {
                    bail!("--log-cleaner-io-bytes-per-sec must be positive");
                }
            }
            "--advertised-host" => config.advertised_host = Some(value),
            "--advertised-port" => {
                config.advertised_port = Some(value.parse().map_err(|_| bad("not a port"))?)
            }
            "--metrics-port" => {
                let port: u16 = value.parse().map_err(|_| bad("not a port"))?;
                config.metrics_port = (port != 0).then_some(port);
            }
            "--zero-copy-fetch" => {
                config.zero_copy_fetch = value.parse().map_err(|_| bad("expected true or false"))?
            }
            "--max-partitions" => {
                let n: usize = value.parse().map_err(|_| bad("not a number"))?;
                if n == 0 {
                    bail!("--max-partitions must be positive");
                }
                config.partitions_max = Some(n);
            }
            "--connections-max-idle-ms" | "--request-arrival-timeout-ms" => {
                let ms: u64 = value.parse().map_err(|_| bad("not a number"))?;
                if ms == 0 {
                    bail!("{flag} must be positive");
                }
                let limit = std::time::Duration::from_millis(ms);
                if flag == "--connections-max-idle-ms" {
                    config.connections_max_idle = limit;
                } else {
                    config.request_arrival_timeout = limit;
                }
            }
            "--offsets-topic-segment-bytes" => {
                config.offsets_segment_bytes = value.parse().map_err(|_| bad("not a number"))?
            }
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    config.oauth = oauth.config()?;
    if !listeners.is_empty() {
        if host_or_port {
            bail!("--listener replaces --host and --port: give one or the other");
        }
        let first = listeners.remove(0);
        (config.protocol, config.host, config.port) = (first.protocol, first.host, first.port);
        config.more_listeners = listeners;
    }
    config.tls = match (certificate, key) {
        (Some(certificate), Some(key)) => {
            let required =
                if client_ca.is_some() { ClientAuth::Required } else { ClientAuth::None };
            let client_auth = client_auth.unwrap_or(required);
            Some(TlsSettings { certificate, key, client_ca, client_auth })
        }
        (None, None) if client_ca.is_none() && client_auth.is_none() => None,
        _ => bail!("--ssl-* needs both --ssl-certificate and --ssl-key"),
    };
    if !(0..=2_000_000).contains(&config.node_id) {
        bail!("--node-id must be between 0 and 2000000");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .with_context(|| format!("data dir {}", config.data_dir.display()))?;
    shard::run(config).map_err(|e| anyhow::anyhow!(e))
}

fn parse_flush(v: &str) -> Option<Flush> {
    match v {
        "fsync" => Some(Flush::Fsync),
        _ => v
            .strip_prefix("interval:")?
            .parse()
            .ok()
            .filter(|&ms| ms > 0)
            .map(|ms| Flush::Interval { ms }),
    }
}

/// `USER:MECHANISM:PASSWORD` as a salted credential (the password may hold
/// colons; the user may not).
fn scram_seed(value: &str) -> Result<(String, auth::ScramCredential)> {
    // Never the value itself in a message: it holds a password.
    let bad = || anyhow::anyhow!("--scram-credential: expected USER:MECHANISM:PASSWORD");
    let mut parts = value.splitn(3, ':');
    let (Some(user), Some(mechanism), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if user.is_empty() || password.is_empty() {
        return Err(bad());
    }
    // Not echoed either: with the fields swapped it is the password.
    let mechanism = auth::Mechanism::parse(mechanism).ok_or_else(|| {
        anyhow::anyhow!("--scram-credential: the mechanism is not SCRAM-SHA-256 or SCRAM-SHA-512")
    })?;
    let credential = auth::ScramCredential::generate(
        mechanism,
        password.as_bytes(),
        auth::scram::ITERATIONS_MIN,
    )
    .map_err(|e| anyhow::anyhow!("--scram-credential: {e}"))?;
    Ok((user.to_string(), credential))
}

/// The `--oauthbearer-*` flags as given.
#[derive(Default)]
struct OAuthFlags {
    jwks: Option<std::path::PathBuf>,
    expect: auth::oauth::Expectations,
}

impl OAuthFlags {
    fn config(self) -> Result<Option<shard::oauth::OAuthConfig>> {
        let others = !self.expect.audience.is_empty()
            || self.expect.issuer.is_some()
            || self.expect.sub_claim != "sub";
        match self.jwks {
            Some(jwks) => Ok(Some(shard::oauth::OAuthConfig { jwks, expect: self.expect })),
            None if others => bail!("--oauthbearer-* needs --oauthbearer-jwks FILE"),
            None => Ok(None),
        }
    }
}

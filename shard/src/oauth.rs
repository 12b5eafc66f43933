//! The key set OAUTHBEARER logins are checked against on this shard
//! (`--oauthbearer-jwks FILE`, Kafka's
//! `sasl.oauthbearer.jwks.endpoint.url` as a file) and what tokens must
//! show (`--oauthbearer-expected-audience`, `--oauthbearer-expected-issuer`,
//! `--oauthbearer-sub-claim`). The file is read at start (a set that does
//! not load stops the node) and again when it changes, looked at no more
//! than once a second and only on an OAUTHBEARER login: an identity
//! provider rotating its keys is followed without a restart; a new set
//! that does not load is logged and the old one kept.
//!
//! Each shard holds its own copy; the checks are the `auth` crate's.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth::oauth::{Expectations, Jwks, Token};
use auth::AuthError;
use log::{info, warn};

/// How often the file's time is looked at, at most.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The `--oauthbearer-*` flags.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub jwks: PathBuf,
    pub expect: Expectations,
}

/// One shard's key set, reloaded when its file changes.
pub struct OAuthKeys {
    config: OAuthConfig,
    jwks: RefCell<Jwks>,
    stamp: Cell<Option<(SystemTime, u64)>>,
    checked: Cell<Instant>,
}

impl OAuthKeys {
    pub fn load(config: &OAuthConfig, now: Instant) -> Result<OAuthKeys, String> {
        let stamp = stamp(&config.jwks);
        let jwks = read(&config.jwks)?;
        Ok(OAuthKeys {
            config: config.clone(),
            jwks: RefCell::new(jwks),
            stamp: Cell::new(stamp),
            checked: Cell::new(now),
        })
    }

    /// Checks an OAUTHBEARER client message (the key set reloaded first
    /// if its file changed since the last look).
    pub fn authenticate(&self, message: &[u8], now: Instant) -> Result<Token, AuthError> {
        if now.duration_since(self.checked.get()) >= RELOAD_CHECK_INTERVAL {
            self.checked.set(now);
            let stamp = stamp(&self.config.jwks);
            if stamp != self.stamp.get() {
                self.stamp.set(stamp);
                match read(&self.config.jwks) {
                    Ok(jwks) => {
                        info!("OAUTHBEARER: reloaded {}", self.config.jwks.display());
                        *self.jwks.borrow_mut() = jwks;
                    }
                    Err(e) => warn!("OAUTHBEARER: keeping the previous key set: {e}"),
                }
            }
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64);
        auth::oauth::authenticate(message, &self.jwks.borrow(), &self.config.expect, now_ms)
    }
}

fn read(path: &PathBuf) -> Result<Jwks, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Jwks::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

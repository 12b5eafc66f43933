//! The `log` facade's backend: one line per event on stderr, as text or as
//! JSON, filtered by `RUST_LOG`-style directives.
//!
//! - `RUST_LOG`: comma-separated `LEVEL` or `TARGET=LEVEL` (for example
//!   `info,shard::conn=debug`); the longest matching target prefix wins;
//!   default `info`. glommio's own info-level chatter is kept at `warn`
//!   unless a directive names `glommio`.
//! - `CORELOG_LOG_FORMAT=json`: JSON lines with `ts` (RFC 3339, UTC,
//!   milliseconds), `level`, `target`, `thread` (`shard-N` on a shard,
//!   `main`, `metrics`) and `msg`; otherwise text with the same fields:
//!   `2026-12-01T21:06:45.123Z INFO  shard-0 shard::conn: message`.

use log::{LevelFilter, Log, Metadata, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

struct StderrLogger {
    /// The level with no target, then (target prefix, level), longest first.
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
    format: Format,
}

impl StderrLogger {
    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix.as_str()))
            .map(|&(_, level)| level)
            .unwrap_or(self.default)
    }

    fn max_level(&self) -> LevelFilter {
        self.targets.iter().map(|&(_, l)| l).fold(self.default, std::cmp::max)
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level_for(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ts = rfc3339_now();
        let current = std::thread::current();
        let thread = thread_label(current.name().unwrap_or("?"));
        let line = match self.format {
            Format::Text => {
                format!("{ts} {:5} {thread} {}: {}", record.level(), record.target(), record.args())
            }
            Format::Json => serde_json::json!({
                "ts": ts,
                "level": record.level().as_str(),
                "target": record.target(),
                "thread": thread,
                "msg": record.args().to_string(),
            })
            .to_string(),
        };
        eprintln!("{line}");
    }

    fn flush(&self) {}
}

/// A thread's name as logged: glommio names a shard's thread
/// `shard-<shard>-<executor id>`; the executor id is noise here.
fn thread_label(name: &str) -> &str {
    match name.strip_prefix("shard-").and_then(|rest| rest.split_once('-')) {
        Some((shard, _)) => &name[..6 + shard.len()],
        None => name,
    }
}

fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(LevelFilter::Trace),
        "debug" => Some(LevelFilter::Debug),
        "info" => Some(LevelFilter::Info),
        "warn" => Some(LevelFilter::Warn),
        "error" => Some(LevelFilter::Error),
        "off" => Some(LevelFilter::Off),
        _ => None,
    }
}

/// The logger for `RUST_LOG` directives and a format; a directive that does
/// not parse is reported on stderr and skipped.
fn build(directives: &str, format: Format) -> StderrLogger {
    let mut default = LevelFilter::Info;
    let mut targets: Vec<(String, LevelFilter)> = Vec::new();
    for d in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            None => match parse_level(d) {
                Some(l) => default = l,
                None => {
                    eprintln!("corelog: RUST_LOG: ignoring {d:?} (expected LEVEL or TARGET=LEVEL)")
                }
            },
            Some((target, level)) => match parse_level(level) {
                Some(l) => targets.push((target.trim().to_string(), l)),
                None => eprintln!("corelog: RUST_LOG: ignoring {d:?} (unknown level)"),
            },
        }
    }
    if !targets.iter().any(|(t, _)| t.starts_with("glommio")) {
        targets.push(("glommio".into(), default.min(LevelFilter::Warn)));
    }
    targets.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
    StderrLogger { default, targets, format }
}

pub fn init() {
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let format = match std::env::var("CORELOG_LOG_FORMAT").as_deref() {
        Ok("json") => Format::Json,
        _ => Format::Text,
    };
    let logger = Box::leak(Box::new(build(&directives, format)));
    let max = logger.max_level();
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

/// Now as RFC 3339 in UTC with milliseconds: `2026-12-01T21:06:45.123Z`.
fn rfc3339_now() -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_millis())
}

fn rfc3339(secs: i64, millis: u32) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + (m <= 2) as i64;
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_796_159_846, 772), "2026-12-01T21:17:26.772Z");
    }

    #[test]
    fn shard_threads_are_named_by_shard() {
        assert_eq!(thread_label("shard-0-1"), "shard-0");
        assert_eq!(thread_label("shard-12-13"), "shard-12");
        assert_eq!(thread_label("main"), "main");
        assert_eq!(thread_label("shard-3"), "shard-3");
    }

    #[test]
    fn directives_pick_the_longest_target() {
        let l = build("warn,shard=info,shard::conn=debug", Format::Text);
        assert_eq!(l.level_for("shard::conn"), LevelFilter::Debug);
        assert_eq!(l.level_for("shard::node"), LevelFilter::Info);
        assert_eq!(l.level_for("engine::log"), LevelFilter::Warn);
        assert_eq!(l.level_for("glommio::reactor"), LevelFilter::Warn);
        assert_eq!(l.max_level(), LevelFilter::Debug);
        let quiet = build("", Format::Text);
        assert_eq!(quiet.level_for("shard"), LevelFilter::Info);
        assert!(!quiet.enabled(&Metadata::builder().level(Level::Info).target("glommio").build()));
        let loud = build("debug,glommio=debug", Format::Json);
        assert!(loud.enabled(&Metadata::builder().level(Level::Debug).target("glommio").build()));
    }
}

//! The admin, produce and consume commands of `corelog`: `topic`, `group`,
//! `cluster`, `user`, `acl`, `produce`, `consume`. Each speaks the Kafka protocol to
//! `--bootstrap HOST:PORT` through the `client` crate, so it works against
//! Apache Kafka as well as Corelog.
//!
//! Runs in the CLI process, one thread. Owns flags, output layout and exit
//! codes only; every request is the `client` crate's. Errors end the
//! command with one line on stderr: usage errors ([`flags::UsageError`])
//! exit 2, everything else 1.
//!
//! - [`flags`]: the flag parser and usage errors.
//! - [`topic`], [`group`], [`cluster`], [`user`], [`acl`]: administration.
//! - [`produce`], [`consume`]: lines in, records out.
//! - [`datetime`]: `--to-datetime` times.

pub mod acl;
pub mod cluster;
pub mod consume;
pub mod datetime;
pub mod flags;
pub mod group;
pub mod produce;
pub mod quota;
pub mod topic;
pub mod user;

use anyhow::Result;

pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Runs admin command `command` (`topic`, `group`, ...) with `args`.
pub fn run(command: &str, args: Vec<String>) -> Result<()> {
    match command {
        "topic" => topic::run(args),
        "group" => group::run(args),
        "cluster" => cluster::run(args),
        "user" => user::run(args),
        "acl" => acl::run(args),
        "quota" => quota::run(args),
        "produce" => produce::run(args),
        "consume" => consume::run(args),
        other => Err(flags::usage("--help", format!("unknown command {other:?}"))),
    }
}

/// Picks a subcommand: the first argument, or `--help` for the group's
/// usage text.
pub fn subcommand<'a>(
    group: &str,
    usage: &str,
    args: &'a [String],
) -> Result<Option<(&'a str, Vec<String>)>> {
    match args.first().map(String::as_str) {
        None => Err(flags::usage(group, "missing subcommand")),
        Some("-h" | "--help") => {
            println!("{usage}");
            Ok(None)
        }
        Some(sub) => Ok(Some((sub, args[1..].to_vec()))),
    }
}

/// Columns aligned, separated by two spaces, as Kafka's tools print tables.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 < r.len() {
                line += &format!("{cell:<w$}  ", w = widths[c]);
            } else {
                line += cell;
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// Base64 (RFC 4648), `url_safe` without padding as Kafka prints topic ids,
/// otherwise standard with padding (JSON output of non-UTF-8 bytes).
pub fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url_safe {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b"", false), "");
        assert_eq!(base64(b"f", false), "Zg==");
        assert_eq!(base64(b"fo", false), "Zm8=");
        assert_eq!(base64(b"foo", false), "Zm9v");
        assert_eq!(base64(b"foobar", false), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff], false), "+/8=");
        assert_eq!(base64(&[0xfb, 0xff], true), "-_8");
    }

    #[test]
    fn tables_align() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["xxx".into(), "y".into(), "z".into()],
        ]);
        assert_eq!(t, "A    BB  C\nxxx  y   z\n");
    }
}

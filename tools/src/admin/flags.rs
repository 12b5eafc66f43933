//! Hand-rolled flag parsing for the admin commands, in the style of
//! `corelog serve`: `--name value` or `--name=value`, repeatable flags,
//! positional arguments, `-h`/`--help`, and `--` to end the flags.
//!
//! Owns the usage errors ([`UsageError`], exit code 2); it must not know
//! what any flag means.

use std::collections::BTreeMap;
use std::str::FromStr;

/// A mistake in the command line: unknown flag, missing or bad value.
/// `corelog` exits with status 2 on it, as Kafka's tools and kcat do.
#[derive(Debug)]
pub struct UsageError {
    pub message: String,
    /// The command whose `--help` explains the flags, e.g. `topic create`.
    pub command: String,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (see `corelog {} --help`)", self.message, self.command)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(command: &str, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError { message: message.into(), command: command.to_string() })
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub name: &'static str,
    /// Takes a value (`--name VALUE`); otherwise it is a switch.
    pub value: bool,
    /// May be given more than once.
    pub repeat: bool,
}

pub const fn switch(name: &'static str) -> Flag {
    Flag { name, value: false, repeat: false }
}

pub const fn value(name: &'static str) -> Flag {
    Flag { name, value: true, repeat: false }
}

pub const fn repeated(name: &'static str) -> Flag {
    Flag { name, value: true, repeat: true }
}

/// The command line of one command, parsed.
#[derive(Debug, Default)]
pub struct Parsed {
    pub command: String,
    values: BTreeMap<&'static str, Vec<String>>,
    pub positional: Vec<String>,
    pub help: bool,
}

/// Parses `args` against `flags`; `--bootstrap` and `--command-config` are
/// accepted by every command.
pub fn parse(command: &str, args: Vec<String>, flags: &[Flag]) -> anyhow::Result<Parsed> {
    let mut p = Parsed { command: command.to_string(), ..Parsed::default() };
    let mut it = args.into_iter();
    let mut flags_done = false;
    while let Some(arg) = it.next() {
        if flags_done || !arg.starts_with('-') || arg == "-" {
            p.positional.push(arg);
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => {
                p.help = true;
                continue;
            }
            "--" => {
                flags_done = true;
                continue;
            }
            _ => {}
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let Some(flag) = flags
            .iter()
            .chain(&[value("--bootstrap"), value("--command-config")])
            .find(|f| f.name == name)
            .copied()
        else {
            return Err(usage(command, format!("unknown option {name}")));
        };
        let v = if flag.value {
            match inline.or_else(|| it.next()) {
                Some(v) => v,
                None => return Err(usage(command, format!("{name} needs a value"))),
            }
        } else {
            if inline.is_some() {
                return Err(usage(command, format!("{name} takes no value")));
            }
            String::new()
        };
        let slot = p.values.entry(flag.name).or_default();
        if !flag.repeat && !slot.is_empty() {
            return Err(usage(command, format!("{name} given twice")));
        }
        slot.push(v);
    }
    Ok(p)
}

impl Parsed {
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The value of `name` parsed as a `T`, if given; `what` names the
    /// expected kind in the usage error ("a number").
    pub fn num<T: FromStr>(&self, name: &str, what: &str) -> anyhow::Result<Option<T>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| self.usage(format!("{name} {v:?}: expected {what}"))),
        }
    }

    pub fn bootstrap(&self) -> &str {
        self.get("--bootstrap").unwrap_or(super::DEFAULT_BOOTSTRAP)
    }

    /// A client of `--bootstrap`, secured as `--command-config` says
    /// (Kafka tools' flag; librdkafka's keys, see `client::security`).
    pub fn client(&self) -> anyhow::Result<client::Client> {
        let security = match self.get("--command-config") {
            None => Default::default(),
            Some(path) => client::security::Security::from_file(std::path::Path::new(path))?,
        };
        Ok(client::Client::with_security(self.bootstrap(), security))
    }

    pub fn usage(&self, message: impl Into<String>) -> anyhow::Error {
        usage(&self.command, message)
    }

    /// `key=value` pairs of a repeated flag.
    pub fn pairs(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        self.all(name)
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(self.usage(format!("{name} {kv:?}: expected key=value"))),
            })
            .collect()
    }

    /// Fails unless exactly `n` positional arguments were given.
    pub fn positional_exactly(&self, n: usize, what: &str) -> anyhow::Result<()> {
        match self.positional.len() {
            len if len == n => Ok(()),
            0 => Err(self.usage(format!("missing {what}"))),
            _ => Err(self.usage(format!(
                "unexpected argument {:?}",
                self.positional[n.min(self.positional.len() - 1)]
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn values_switches_repeats_and_positionals() {
        let flags = [value("--partitions"), repeated("--config"), switch("--if-not-exists")];
        let p = parse(
            "topic create",
            args(&["t", "--partitions=3", "--config", "a=1", "--config", "b=2", "--if-not-exists"]),
            &flags,
        )
        .unwrap();
        assert_eq!(p.positional, vec!["t"]);
        assert_eq!(p.num::<i32>("--partitions", "a number").unwrap(), Some(3));
        assert_eq!(
            p.pairs("--config").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(p.has("--if-not-exists"));
        assert_eq!(p.bootstrap(), "127.0.0.1:9092");
    }

    #[test]
    fn mistakes_are_usage_errors() {
        let flags = [value("--partitions"), switch("--x")];
        for bad in [
            &["--nope"][..],
            &["--partitions"],
            &["--partitions", "1", "--partitions", "2"],
            &["--x=1"],
        ] {
            let e = parse("c", args(bad), &flags).unwrap_err();
            assert!(e.downcast_ref::<UsageError>().is_some(), "{bad:?}");
        }
        let p = parse("c", args(&["--partitions", "many"]), &flags).unwrap();
        assert!(p.num::<i32>("--partitions", "a number").is_err());
        let p = parse("c", args(&["--", "--x"]), &flags).unwrap();
        assert_eq!(p.positional, vec!["--x"]);
    }
}

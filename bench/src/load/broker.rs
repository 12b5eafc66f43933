//! A `corelog serve` child process for benchmarks run without
//! `--bootstrap`: fresh data directory, free ports, started and awaited
//! (its "ready" line), stopped with SIGTERM, and its CPU time read from
//! `/proc` (all its threads, io_uring workers included).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long a broker may take to start (fresh data directory).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a broker may take to stop cleanly after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct OwnBroker {
    child: Option<Child>,
    pub bootstrap: String,
    pub shards: u16,
    pub flush: String,
    data_dir: PathBuf,
}

impl OwnBroker {
    /// Starts `exe serve` with `shards` shards, `flush` and `extra` flags
    /// on a fresh directory under `dir`.
    pub fn start(
        exe: &Path,
        dir: &Path,
        shards: u16,
        flush: &str,
        extra: &[String],
    ) -> Result<OwnBroker> {
        let name = format!("broker-{}", std::process::id());
        let (broker, ready) =
            Self::spawn(exe, dir, &name, shards, free_ports(shards)?, flush, extra)?;
        broker.wait_ready(ready)?;
        Ok(broker)
    }

    /// Starts `exe serve` on `port` in `dir/name`; `ready` gets a message
    /// once it prints "ready" (a cluster's nodes only do once all of the
    /// quorum's have started).
    fn spawn(
        exe: &Path,
        dir: &Path,
        name: &str,
        shards: u16,
        port: u16,
        flush: &str,
        extra: &[String],
    ) -> Result<(OwnBroker, mpsc::Receiver<()>)> {
        let data_dir = dir.join(name);
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut child = Command::new(exe)
            .args(["serve", "--shards", &shards.to_string(), "--port", &port.to_string()])
            .args(["--flush", flush])
            // No metrics endpoint unless asked for (`--serve-flags`): the
            // default port may be taken by a broker running beside.
            .args(["--metrics-port", "0"])
            .args(extra)
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let stdout = child.stdout.take().context("broker stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        let broker = OwnBroker {
            child: Some(child),
            bootstrap: format!("127.0.0.1:{port}"),
            shards,
            flush: flush.to_string(),
            data_dir,
        };
        Ok((broker, rx))
    }

    fn wait_ready(&self, ready: mpsc::Receiver<()>) -> Result<()> {
        if ready.recv_timeout(START_TIMEOUT).is_err() {
            bail!("the broker did not start within {} s", START_TIMEOUT.as_secs());
        }
        Ok(())
    }

    /// User plus system CPU seconds the broker process has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let pid = self.child.as_ref().context("broker stopped")?.id();
        cpu_seconds_of(pid)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                let _ = std::fs::remove_dir_all(&self.data_dir);
                if !status.success() {
                    bail!("the broker exited with {status} after SIGTERM");
                }
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                bail!("the broker did not stop within {} s of SIGTERM", STOP_TIMEOUT.as_secs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// A cluster of `corelog serve` nodes on loopback, each a controller of
/// the metadata quorum and a broker (combined mode), for the replicated
/// cases; they share this machine's cores.
pub struct OwnCluster {
    pub nodes: Vec<OwnBroker>,
}

impl OwnCluster {
    /// Starts `nodes` nodes of `shards` shards each, with `extra` flags.
    pub fn start(
        exe: &Path,
        dir: &Path,
        nodes: u16,
        shards: u16,
        flush: &str,
        extra: &[String],
    ) -> Result<OwnCluster> {
        let controller_ports: Vec<u16> =
            (0..nodes).map(|_| free_ports(1)).collect::<Result<_>>()?;
        let quorum: Vec<String> = controller_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect();
        let mut started = Vec::new();
        for n in 1..=nodes {
            let mut args = vec![
                "--node-id".to_string(),
                n.to_string(),
                "--controller-quorum".to_string(),
                quorum.join(","),
            ];
            args.extend_from_slice(extra);
            let name = format!("cluster-{}-node{n}", std::process::id());
            let port = free_ports(shards)?;
            started.push(OwnBroker::spawn(exe, dir, &name, shards, port, flush, &args)?);
        }
        let mut cluster = OwnCluster { nodes: Vec::new() };
        for (node, ready) in started {
            node.wait_ready(ready)?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    pub fn bootstrap(&self) -> String {
        self.nodes.iter().map(|n| n.bootstrap.as_str()).collect::<Vec<_>>().join(",")
    }

    /// CPU seconds of every node together.
    pub fn cpu_seconds(&self) -> Result<f64> {
        self.nodes.iter().map(|n| n.cpu_seconds()).sum()
    }

    pub fn stop(self) -> Result<()> {
        for n in self.nodes {
            n.stop()?;
        }
        Ok(())
    }
}

/// CPU seconds (user + system, all threads) of process `pid`.
pub fn cpu_seconds_of(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no memory effects.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / per_sec)
}

/// CPU seconds this process (the load generator) has used so far.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds_of(std::process::id()).unwrap_or(0.0)
}

/// Bytes free for an unprivileged writer on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statvfs fills `st` for a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()).context("statvfs");
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// A base port with `n` free ports from it; each call of one process
/// starts its search elsewhere (a cluster's nodes take several ranges
/// before any listens). Below Linux's ephemeral range (32768 and up by
/// default), where the outgoing connections of clients and of the nodes
/// themselves could take a port between this check and the node's bind
/// (a CI run lost a controller port that way).
fn free_ports(n: u16) -> Result<u16> {
    const LOW: u32 = 20_000;
    const EPHEMERAL: u32 = 32_768;
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = EPHEMERAL - LOW - u32::from(n);
    for attempt in 0..200u32 {
        let step = (call * 200 + attempt).wrapping_mul(104_729);
        let base = (LOW + std::process::id().wrapping_mul(7919).wrapping_add(step) % span) as u16;
        let held: Vec<_> = (base..base + n)
            .filter_map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == n as usize {
            return Ok(base);
        }
    }
    bail!("no {n} free consecutive ports")
}

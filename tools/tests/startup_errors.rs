//! Startup without io_uring: `corelog serve` run under a seccomp filter that
//! makes `io_uring_setup` fail with ENOSYS (as Docker's default profile or
//! `kernel.io_uring_disabled` do) exits with an error saying so, instead of
//! hanging or panicking.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `io_uring_setup` in the generic syscall table (x86_64 and aarch64 alike).
const SYS_IO_URING_SETUP: u32 = 425;

/// Installs a seccomp filter: `io_uring_setup` fails with ENOSYS, every
/// other system call is allowed. Runs in the child between fork and exec.
fn deny_io_uring() -> std::io::Result<()> {
    // BPF: load the syscall number (offset 0 of seccomp_data); if it is
    // io_uring_setup return ERRNO(ENOSYS), else ALLOW.
    let filter = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: SYS_IO_URING_SETUP,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
    // SAFETY: plain prctl calls with valid arguments; `prog` outlives them.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const _ as usize,
            0,
            0,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn without_io_uring_the_broker_says_so_and_exits() {
    let dir = std::env::temp_dir().join(format!("corelog-no-uring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corelog"));
    cmd.args(["serve", "--shards", "1", "--port", "0", "--metrics-port", "0", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(deny_io_uring);
    }
    let mut child = cmd.spawn().expect("spawn corelog");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "corelog did not exit within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success(), "must fail; stderr: {stderr}");
    assert!(stderr.contains("io_uring"), "names io_uring: {stderr}");
    assert!(!stderr.contains("panicked"), "a clear error, not a panic: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready"));
}

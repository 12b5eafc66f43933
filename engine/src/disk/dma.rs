//! [`DmaDisk`]: the production disk, glommio DMA files (O_DIRECT, io_uring).
//! Runs only inside a glommio executor, on the shard that owns the files.

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};
use glommio::GlommioError;

use super::{Disk, DiskFile, IoBuf};
use crate::limits::{FREE_SPACE_CACHE_MS, FREE_SPACE_RECHECK_BELOW_BYTES};

/// glommio's error type wraps the OS error; keep the errno (ENOSPC matters).
fn to_io(e: GlommioError<()>) -> io::Error {
    match e {
        GlommioError::IoError(e) => e,
        GlommioError::EnhancedIoError { source, op, path, .. } => io::Error::new(
            source.kind(),
            EnhancedIo { source, op, path: path.map(|p| p.display().to_string()) },
        ),
        other => other.into(),
    }
}

/// An io::Error payload that keeps the errno reachable through `raw_os_error`
/// of the inner error, and says which operation on which path failed.
#[derive(Debug)]
struct EnhancedIo {
    source: io::Error,
    op: &'static str,
    path: Option<String>,
}

impl std::fmt::Display for EnhancedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.as_deref().unwrap_or("?"), self.source)
    }
}

impl std::error::Error for EnhancedIo {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// glommio DMA files. Zero-sized: all state lives in the executor's reactor.
#[derive(Debug, Clone, Copy)]
pub struct DmaDisk(());

impl DmaDisk {
    /// Prepares direct I/O on the device holding `dir` (which must exist).
    ///
    /// glommio decides once per device whether reads go to its polled
    /// (IOPOLL) ring by reading the first block of the first file it opens
    /// there. If that file is empty the probe read succeeds without touching
    /// the device, glommio concludes "pollable", and every later read on a
    /// device without polling support (virtio, most cloud disks) fails with
    /// EOPNOTSUPP. Opening a file that holds data first makes the probe honest.
    pub async fn new(dir: &Path) -> io::Result<DmaDisk> {
        // Unique per call: several shards prepare the same directory at once.
        static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = dir.join(format!(".corelog-dma-probe-{}-{n}", std::process::id()));
        std::fs::write(&probe, vec![0u8; 64 * 1024])?;
        let file = std::fs::File::open(&probe)?;
        file.sync_all()?;
        drop(file);
        let opened = OpenOptions::new().read(true).dma_open(&probe).await.map_err(to_io);
        let removed = std::fs::remove_file(&probe);
        let file = opened?;
        removed?;
        file.close().await.map_err(to_io)?;
        Ok(DmaDisk(()))
    }
}

impl IoBuf for DmaBuffer {
    fn trim(&mut self, len: usize) {
        self.trim_to_size(len)
    }
}

/// Bytes read from a DMA file, in glommio's buffer.
pub struct DmaRead(ReadResult);

impl AsRef<[u8]> for DmaRead {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Bytes available to unprivileged writers on the file system holding `path`.
fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Free space promised to appends and not yet written, over every DMA file
/// of the process (one node, one data directory: one file system). Kept
/// with [`HEADROOM`], the free space beyond the promises when last asked.
static PROMISED: AtomicU64 = AtomicU64::new(0);
/// `statvfs` free bytes minus [`PROMISED`] at the last check (may go
/// negative between checks). A promised byte being written lowers both
/// free space and the promises, so the figure stays right without asking
/// the file system again; only other writers (index files, other
/// processes) and deletions move it, which the periodic re-check catches.
static HEADROOM: AtomicI64 = AtomicI64::new(0);
/// When [`HEADROOM`] was last computed, in ms since [`EPOCH`].
static CHECKED_AT_MS: AtomicU64 = AtomicU64::new(u64::MAX);
static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Promises `n` bytes of the file system holding `path` to an append, or
/// fails with ENOSPC (nothing promised) when fewer than `n` plus
/// `keep_free` (for appends of partitions,
/// [`crate::limits::FREE_SPACE_MARGIN_BYTES`])
/// are free beyond the other promises. `warn`: the refusal is logged
/// (sampled), since it refuses a produce; zeros written ahead are not.
fn promise(path: &Path, n: u64, keep_free: u64, warn: bool) -> io::Result<()> {
    let now = EPOCH.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64;
    let promised = PROMISED.fetch_add(n, Ordering::SeqCst) + n;
    let mut headroom = HEADROOM.fetch_sub(n as i64, Ordering::SeqCst) - n as i64;
    let stale = now.saturating_sub(CHECKED_AT_MS.load(Ordering::Relaxed)) > FREE_SPACE_CACHE_MS
        || CHECKED_AT_MS.load(Ordering::Relaxed) == u64::MAX;
    if stale || headroom < FREE_SPACE_RECHECK_BELOW_BYTES as i64 {
        match free_bytes(path) {
            Ok(free) => {
                headroom = free as i64 - promised as i64;
                HEADROOM.store(headroom, Ordering::SeqCst);
                CHECKED_AT_MS.store(now, Ordering::Relaxed);
            }
            Err(e) => {
                release(n);
                return Err(e);
            }
        }
    }
    if headroom < keep_free as i64 {
        release(n);
        // Said once per 1,000 refusals: a full disk refuses every produce.
        static REFUSED: AtomicU64 = AtomicU64::new(0);
        if warn && REFUSED.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
            log::warn!(
                "disk full under {}: {} bytes free beyond appends in flight, {} kept free; refusing produces (KAFKA_STORAGE_ERROR) until space returns",
                path.display(),
                headroom.max(0),
                keep_free
            );
        }
        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
    }
    Ok(())
}

/// Returns `n` promised bytes: written, or no longer needed.
fn release(n: u64) {
    if n > 0 {
        PROMISED.fetch_sub(n, Ordering::SeqCst);
        HEADROOM.fetch_add(n as i64, Ordering::SeqCst);
    }
}

/// Bytes promised now, for tests.
pub fn promised_bytes() -> u64 {
    PROMISED.load(Ordering::SeqCst)
}

/// A glommio DMA file, with the free space promised to its appends.
pub struct DmaDiskFile {
    file: DmaFile,
    /// The end of the data written so far (or the size when opened).
    written_end: Cell<u64>,
    /// The end up to which space is written or promised (`>= written_end`);
    /// `promised_end - written_end` bytes are held in [`PROMISED`].
    promised_end: Cell<u64>,
}

impl DmaDiskFile {
    /// Promised bytes this file holds, given back (truncation, close).
    fn release_all(&self) {
        release(self.promised_end.get().saturating_sub(self.written_end.get()));
        self.promised_end.set(self.written_end.get());
    }
}

impl Drop for DmaDiskFile {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// The open descriptor (O_DIRECT), for the broker's zero-copy sends, which
/// open their own buffered descriptor of the same file through it.
impl std::os::fd::AsRawFd for DmaDiskFile {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

impl Disk for DmaDisk {
    type Buf = DmaBuffer;
    type File = DmaDiskFile;

    fn alloc(&self, len: usize) -> DmaBuffer {
        glommio::allocate_dma_buffer(len)
    }

    async fn open(&self, path: &Path, create: bool) -> io::Result<DmaDiskFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(create)
            .dma_open(path)
            .await
            .map_err(to_io)?;
        let size = file.file_size().await.map_err(to_io)?;
        Ok(DmaDiskFile { file, written_end: Cell::new(size), promised_end: Cell::new(size) })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir = glommio::io::Directory::open(path).await.map_err(to_io)?;
        dir.sync().await.map_err(to_io)?;
        dir.close().await.map_err(to_io)
    }

    /// `syncfs(2)` has no io_uring operation: this blocks the calling
    /// shard's thread until the file system is synced. A stopping shard
    /// calls it (once or twice), and otherwise only rare repairs of one
    /// log (a diverged suffix cut, a checkpoint rewritten at open), where
    /// the shard's other work waits behind it.
    /// Through the page cache (a few kilobytes; no device write each, as a
    /// DMA file would need), with the create, write and close on the ring
    /// so that many files' directory updates overlap; the rename blocks,
    /// like the directory operations above.
    async fn replace_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let file = glommio::io::BufferedFile::create(&tmp).await.map_err(to_io)?;
        let mut at = 0;
        while at < bytes.len() {
            let n = file.write_at(bytes[at..].to_vec(), at as u64).await.map_err(to_io)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
            }
            at += n;
        }
        file.close().await.map_err(to_io)?;
        std::fs::rename(&tmp, path)
    }

    async fn sync_filesystem(&self, path: &Path) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(path)?;
        // SAFETY: `dir` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl DiskFile for DmaDiskFile {
    type Buf = DmaBuffer;
    type ReadBuf = DmaRead;

    async fn write_at(&self, buf: Rc<DmaBuffer>, pos: u64) -> io::Result<()> {
        self.write_buf(buf, pos).await
    }

    /// From a buffer of zeros the thread keeps per length (the lengths are
    /// few: powers of two), filled once: no allocation or fill per call.
    /// Outside the reactor's pool (`allocate_dma_buffer_global`): kept for
    /// the thread's life.
    async fn write_zeros(&self, pos: u64, len: usize, keep_free: u64) -> io::Result<()> {
        // Refused quietly: a refusal here refuses no produce.
        self.promise_to(pos + len as u64, keep_free, false)?;
        let zeros = ZEROS.with(|z| {
            let mut z = z.borrow_mut();
            match z.iter().find(|b| b.len() == len) {
                Some(b) => b.clone(),
                None => {
                    let mut b = glommio::allocate_dma_buffer_global(len);
                    b.as_bytes_mut().fill(0);
                    let b = Rc::new(b);
                    z.push(b.clone());
                    b
                }
            }
        });
        self.write_buf(zeros, pos).await
    }

    fn written_end(&self) -> u64 {
        self.written_end.get()
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<DmaRead> {
        self.file.read_at(pos, len).await.map(DmaRead).map_err(to_io)
    }

    async fn fdatasync(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(to_io)
    }

    /// Promises free space (see [`promise`]) instead of calling fallocate:
    /// on ext4, direct writes into fallocated (unwritten) extents need an
    /// extent conversion at completion and a journal commit at fdatasync,
    /// which measured 45% slower here for small group-commit rounds (see
    /// docs/decisions.md). Every append's bytes are promised before its
    /// offsets are assigned and stay promised until written, over all
    /// partitions of all shards, so appends cannot outrun the disk; a write
    /// still meets ENOSPC only when another process fills the disk.
    async fn reserve(&self, len: u64, keep_free: u64) -> io::Result<()> {
        self.promise_to(len, keep_free, true)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.release_all();
        self.file.truncate(len).await.map_err(to_io)?;
        self.written_end.set(len);
        self.promised_end.set(len);
        Ok(())
    }

    async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(to_io)
    }
}

thread_local! {
    /// Buffers of zeros by length, for [`DiskFile::write_zeros`]: never
    /// written into after their fill, shared by every write of zeros on
    /// the shard. At most one per power of two up to
    /// [`crate::limits::PREWRITE_STEP_MAX_BYTES`] (448 KiB in all).
    static ZEROS: std::cell::RefCell<Vec<Rc<DmaBuffer>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl DmaDiskFile {
    /// Promises the space up to `len` (see [`promise`]); `warn`: a refusal
    /// refuses produces, and says so.
    fn promise_to(&self, len: u64, keep_free: u64, warn: bool) -> io::Result<()> {
        let promised_end = self.promised_end.get();
        if len <= promised_end {
            return Ok(());
        }
        let path = self.file.path().map(|p| p.to_path_buf());
        let path = path.ok_or_else(|| io::Error::other("DMA file without a path"))?;
        promise(&path, len - promised_end, keep_free, warn)?;
        self.promised_end.set(len);
        Ok(())
    }

    async fn write_buf(&self, buf: Rc<DmaBuffer>, pos: u64) -> io::Result<()> {
        let len = buf.len();
        let written = self.file.write_rc_at(buf, pos).await.map_err(to_io)?;
        let end = pos + written as u64;
        let before = self.written_end.get();
        if end > before {
            // The promise covers (written_end, promised_end]: what this
            // write filled of it is no longer owed.
            release(end.min(self.promised_end.get()).saturating_sub(before));
            self.written_end.set(end);
            self.promised_end.set(self.promised_end.get().max(end));
        }
        if written != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short direct write: {written} of {len} bytes at {pos}"),
            ));
        }
        Ok(())
    }
}

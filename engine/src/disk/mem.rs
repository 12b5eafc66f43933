//! [`MemDisk`]: an in-memory disk for deterministic tests, with faults.
//!
//! Every file keeps two images: `current` (what reads see) and `durable`
//! (what survives a crash). A write changes `current` and is remembered as
//! unsynced; `fdatasync` copies `current` to `durable`. [`MemDisk::crash`]
//! rebuilds every file from its durable image plus a seeded random choice of
//! its unsynced writes, each kept whole, torn at a 512-byte sector boundary,
//! or lost, which is what a power cut does to a drive's volatile cache.
//! Directory operations (create, rename, remove, truncate) are
//! durable at once: the engine syncs directories anyway, and the crash tests
//! aim at data, not at directory entries.
//!
//! Faults: [`Fault`]s injected with [`MemDisk::inject`] fire on the next
//! matching operation; a capacity makes writes and allocations past it fail
//! with ENOSPC (reservations too); [`MemDisk::flip_bit`] corrupts stored bytes.
//! [`MemDisk::hold_syncs`] keeps every fdatasync pending until released and
//! counts how often a held one is polled (an I/O future polled on every
//! wake of its task is what glommio's DMA files cannot take).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{Disk, DiskFile, IoBuf};
use crate::limits::BLOCK_BYTES;

/// Sector size used when tearing writes at a crash.
const SECTOR_BYTES: usize = 512;

/// A one-shot failure of the next matching operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next write fails with EIO (nothing of it is stored).
    WriteError,
    /// The next fdatasync fails with EIO (the unsynced writes stay unsynced).
    SyncError,
    /// The next write fails with ENOSPC.
    WriteNoSpace,
    /// The next space reservation fails with ENOSPC.
    ReserveNoSpace,
    /// The next write of zeros ahead of data fails with EIO.
    ZerosError,
    /// The next write of zeros ahead of data finds the file system full,
    /// as glommio reports it (the kind, no OS error number).
    ZerosNoSpace,
}

#[derive(Default)]
struct FileData {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last fdatasync, oldest first.
    unsynced: Vec<(u64, Vec<u8>)>,
}

#[derive(Default)]
struct State {
    files: HashMap<PathBuf, Rc<RefCell<FileData>>>,
    dirs: BTreeSet<PathBuf>,
    faults: VecDeque<Fault>,
    capacity_bytes: Option<u64>,
    writes: u64,
    syncs: u64,
    /// fdatasyncs stay pending while set.
    syncs_held: bool,
    sync_waiters: Vec<std::task::Waker>,
    held_sync_polls: u64,
}

impl State {
    fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.borrow().current.len() as u64).sum()
    }

    fn take_fault(&mut self, wanted: &[Fault]) -> Option<Fault> {
        let i = self.faults.iter().position(|f| wanted.contains(f))?;
        self.faults.remove(i)
    }
}

/// An in-memory disk shared by clones (a test keeps one to crash and reopen).
#[derive(Clone, Default)]
pub struct MemDisk {
    state: Rc<RefCell<State>>,
}

/// A buffer of the memory disk: a plain vector, block-sized.
pub struct MemBuf(Vec<u8>);

impl AsRef<[u8]> for MemBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for MemBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl IoBuf for MemBuf {
    fn trim(&mut self, len: usize) {
        assert!(
            len <= self.0.len() && len.is_multiple_of(BLOCK_BYTES),
            "trim to {len} of {}",
            self.0.len()
        );
        self.0.truncate(len);
    }
}

/// An open file of the memory disk. Like a real descriptor it keeps reading
/// and writing the same data after the name is removed.
pub struct MemFile {
    disk: MemDisk,
    data: Rc<RefCell<FileData>>,
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

/// One step of a small xorshift generator, enough for choosing what a crash keeps.
fn next_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

impl MemDisk {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a fault for the next matching operation.
    pub fn inject(&self, fault: Fault) {
        self.state.borrow_mut().faults.push_back(fault);
    }

    /// Keeps every fdatasync pending (started or not) until [`Self::release_syncs`].
    pub fn hold_syncs(&self) {
        self.state.borrow_mut().syncs_held = true;
    }

    /// Lets held fdatasyncs complete.
    pub fn release_syncs(&self) {
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.syncs_held = false;
            std::mem::take(&mut state.sync_waiters)
        };
        waiters.into_iter().for_each(std::task::Waker::wake);
    }

    /// How many times held fdatasyncs were polled. Each poll of a pending
    /// glommio DMA I/O keeps a clone of its task's waker until the I/O ends,
    /// and a task's wakers are counted in 16 bits: an I/O re-polled on every
    /// wake of a busy task overflows them and aborts the shard.
    pub fn held_sync_polls(&self) -> u64 {
        self.state.borrow().held_sync_polls
    }

    /// Makes writes and reservations that would grow the disk past `bytes` fail with ENOSPC.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.borrow_mut().capacity_bytes = bytes;
    }

    /// Number of writes and fdatasyncs so far.
    pub fn io_counts(&self) -> (u64, u64) {
        let s = self.state.borrow();
        (s.writes, s.syncs)
    }

    /// Simulates a power cut: every file goes back to its durable image plus a
    /// random subset of its unsynced writes, some torn. Open handles keep
    /// pointing at the old data, so callers drop every log before crashing.
    pub fn crash(&self, seed: u64) {
        let mut rng = seed | 1;
        let state = self.state.borrow();
        for file in state.files.values() {
            let mut f = file.borrow_mut();
            let mut image = f.durable.clone();
            for (pos, bytes) in std::mem::take(&mut f.unsynced) {
                let keep = match next_random(&mut rng) % 3 {
                    0 => 0,
                    1 => bytes.len(),
                    _ => {
                        (next_random(&mut rng) as usize % (bytes.len() / SECTOR_BYTES + 1))
                            * SECTOR_BYTES
                    }
                };
                let end = pos as usize + keep.min(bytes.len());
                if image.len() < end {
                    image.resize(end, 0);
                }
                image[pos as usize..end].copy_from_slice(&bytes[..keep.min(bytes.len())]);
            }
            f.current = image.clone();
            f.durable = image;
        }
    }

    /// Flips one bit of a stored file, in both images.
    pub fn flip_bit(&self, path: &Path, pos: u64, bit: u8) {
        let state = self.state.borrow();
        let mut f = state.files.get(path).expect("file to corrupt exists").borrow_mut();
        f.current[pos as usize] ^= 1 << bit;
        if (pos as usize) < f.durable.len() {
            f.durable[pos as usize] ^= 1 << bit;
        }
    }

    /// Current size of a file, if it exists.
    pub fn file_len(&self, path: &Path) -> Option<u64> {
        self.state.borrow().files.get(path).map(|f| f.borrow().current.len() as u64)
    }

    /// Every file path, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<_> = self.state.borrow().files.keys().cloned().collect();
        v.sort();
        v
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if self.state.borrow().dirs.contains(dir) => Ok(()),
            _ => Err(not_found(path)),
        }
    }
}

/// Lets other tasks run, so that a memory-disk operation is really "in flight"
/// across an await point, as on a real disk.
async fn yield_once() {
    let mut yielded = false;
    futures_lite::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

impl Disk for MemDisk {
    type Buf = MemBuf;
    type File = MemFile;

    fn alloc(&self, len: usize) -> MemBuf {
        assert!(len.is_multiple_of(BLOCK_BYTES), "unaligned buffer of {len} bytes");
        MemBuf(vec![0xCC; len])
    }

    async fn open(&self, path: &Path, create: bool) -> io::Result<MemFile> {
        assert!(path.is_absolute(), "relative path {}", path.display());
        self.check_parent(path)?;
        let mut state = self.state.borrow_mut();
        let data = if create {
            let data = Rc::new(RefCell::new(FileData::default()));
            state.files.insert(path.to_path_buf(), data.clone());
            data
        } else {
            state.files.get(path).cloned().ok_or_else(|| not_found(path))?
        };
        Ok(MemFile { disk: self.clone(), data })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        for dir in path.ancestors() {
            state.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.state.borrow();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        let files = state.files.keys();
        let dirs = state.dirs.iter();
        Ok(files
            .chain(dirs)
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.state.borrow();
        Ok(state.files.contains_key(path) || state.dirs.contains(path))
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.state.borrow_mut().files.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        if !state.dirs.contains(path) {
            return Err(not_found(path));
        }
        state.files.retain(|p, _| !p.starts_with(path));
        state.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_parent(to)?;
        let mut state = self.state.borrow_mut();
        let data = state.files.remove(from).ok_or_else(|| not_found(from))?;
        state.files.insert(to.to_path_buf(), data);
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.state.borrow().dirs.contains(path) {
            Ok(())
        } else {
            Err(not_found(path))
        }
    }

    async fn replace_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        super::write_file(self, path, bytes, false).await
    }

    async fn sync_filesystem(&self, _path: &Path) -> io::Result<()> {
        yield_once().await;
        let mut state = self.state.borrow_mut();
        if state.take_fault(&[Fault::SyncError]).is_some() {
            return Err(eio());
        }
        state.syncs += 1;
        for f in state.files.values() {
            let mut f = f.borrow_mut();
            f.durable = f.current.clone();
            f.unsynced.clear();
        }
        Ok(())
    }
}

impl MemFile {
    /// A write's bytes into the current image, remembered as unsynced;
    /// ENOSPC past the disk's capacity.
    fn store(&self, state: &State, pos: u64, bytes: &[u8]) -> io::Result<()> {
        let used = state.used_bytes();
        let mut f = self.data.borrow_mut();
        let end = pos as usize + bytes.len();
        if end > f.current.len() {
            let growth = (end - f.current.len()) as u64;
            if state.capacity_bytes.is_some_and(|cap| used + growth > cap) {
                return Err(enospc());
            }
            f.current.resize(end, 0);
        }
        f.current[pos as usize..end].copy_from_slice(bytes);
        f.unsynced.push((pos, bytes.to_vec()));
        Ok(())
    }
}

impl DiskFile for MemFile {
    type Buf = MemBuf;
    type ReadBuf = Vec<u8>;

    async fn write_at(&self, buf: Rc<MemBuf>, pos: u64) -> io::Result<()> {
        let bytes = buf.as_ref().as_ref();
        assert!(
            (pos as usize).is_multiple_of(BLOCK_BYTES) && bytes.len() % BLOCK_BYTES == 0,
            "unaligned write"
        );
        yield_once().await;
        let mut state = self.disk.state.borrow_mut();
        state.writes += 1;
        match state.take_fault(&[Fault::WriteError, Fault::WriteNoSpace]) {
            Some(Fault::WriteError) => return Err(eio()),
            Some(_) => return Err(enospc()),
            None => {}
        }
        self.store(&state, pos, bytes)
    }

    /// A write of zeros, which the capacity and crashes treat like any
    /// write; it takes only the faults aimed at it ([`Fault::ZerosError`],
    /// [`Fault::ZerosNoSpace`]), leaving the others to the writes of data.
    async fn write_zeros(&self, pos: u64, len: usize, _keep_free: u64) -> io::Result<()> {
        assert!(
            (pos as usize).is_multiple_of(BLOCK_BYTES) && len.is_multiple_of(BLOCK_BYTES),
            "unaligned write"
        );
        yield_once().await;
        let mut state = self.disk.state.borrow_mut();
        state.writes += 1;
        match state.take_fault(&[Fault::ZerosError, Fault::ZerosNoSpace]) {
            Some(Fault::ZerosError) => return Err(eio()),
            Some(_) => {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space (glommio)"))
            }
            None => {}
        }
        self.store(&state, pos, &vec![0; len])
    }

    fn written_end(&self) -> u64 {
        self.data.borrow().current.len() as u64
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let f = self.data.borrow();
        let start = (pos as usize).min(f.current.len());
        let end = (pos as usize + len).min(f.current.len());
        Ok(f.current[start..end].to_vec())
    }

    async fn fdatasync(&self) -> io::Result<()> {
        yield_once().await;
        futures_lite::future::poll_fn(|cx| {
            let mut state = self.disk.state.borrow_mut();
            if !state.syncs_held {
                return std::task::Poll::Ready(());
            }
            state.held_sync_polls += 1;
            state.sync_waiters.push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await;
        let mut state = self.disk.state.borrow_mut();
        state.syncs += 1;
        if state.take_fault(&[Fault::SyncError]).is_some() {
            return Err(eio());
        }
        let mut f = self.data.borrow_mut();
        f.durable = f.current.clone();
        f.unsynced.clear();
        Ok(())
    }

    /// `keep_free` is not modelled: a test's capacity is what appends get.
    async fn reserve(&self, len: u64, _keep_free: u64) -> io::Result<()> {
        let mut state = self.disk.state.borrow_mut();
        if state.take_fault(&[Fault::ReserveNoSpace]).is_some() {
            return Err(enospc());
        }
        let used = state.used_bytes();
        let growth = len.saturating_sub(self.data.borrow().current.len() as u64);
        if state.capacity_bytes.is_some_and(|cap| used + growth > cap) {
            return Err(enospc());
        }
        Ok(())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        let mut f = self.data.borrow_mut();
        f.current.resize(len as usize, 0);
        f.durable.resize(len as usize, 0);
        for (pos, bytes) in f.unsynced.iter_mut() {
            let keep = (len as usize).saturating_sub(*pos as usize).min(bytes.len());
            bytes.truncate(keep);
        }
        Ok(())
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.data.borrow().current.len() as u64)
    }
}

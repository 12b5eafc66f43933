//! The engine's only door to storage: a small async trait over files and
//! directories, with two implementations.
//!
//! - [`DmaDisk`]: glommio DMA files (O_DIRECT through io_uring). Must run
//!   inside a glommio executor.
//! - [`MemDisk`]: an in-memory disk for tests that keeps the durable image
//!   apart from unsynced writes, so a simulated crash can drop or tear them,
//!   flip bits and inject I/O errors and full disks.
//!
//! Rules every caller follows (the DMA implementation needs them, the memory
//! one checks them): write positions and lengths are multiples of
//! [`crate::limits::BLOCK_BYTES`]; paths are absolute. Files close when their
//! last handle is dropped. Nothing here is `Send`: a disk belongs to one shard.

mod dma;
mod mem;

use std::io;
use std::path::Path;
use std::rc::Rc;

pub use dma::{promised_bytes, DmaDisk, DmaDiskFile, DmaRead};
pub use mem::{Fault, MemBuf, MemDisk, MemFile};

/// A block-aligned buffer that writes take by reference count.
pub trait IoBuf: AsRef<[u8]> + AsMut<[u8]> + 'static {
    /// Shortens the buffer to `len` bytes; `len` is a multiple of the block size.
    fn trim(&mut self, len: usize);
}

/// A directory tree of files.
#[allow(async_fn_in_trait)]
pub trait Disk: 'static {
    type Buf: IoBuf;
    type File: DiskFile<Buf = Self::Buf>;

    /// A block-aligned buffer of `len` bytes (a multiple of the block size).
    /// Its contents are unspecified.
    fn alloc(&self, len: usize) -> Self::Buf;
    /// Opens a file for reading and writing; `create` creates it empty (or
    /// truncates an existing one).
    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory, in no particular order.
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    async fn exists(&self, path: &Path) -> io::Result<bool>;
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    async fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes every write, size change and directory entry of the whole file
    /// system holding `path` durable (`syncfs(2)`): one call where closing
    /// thousands of logs would otherwise take an fdatasync and a directory
    /// sync per file.
    async fn sync_filesystem(&self, path: &Path) -> io::Result<()>;
    /// Replaces the small file at `path` whole, through a temporary name
    /// and a rename, without syncing: durable only after a
    /// [`Self::sync_filesystem`]; until then a crash may leave the old
    /// file, the new one, or the new name with only part of its bytes.
    /// Through the page cache where the disk has one: thousands of these
    /// at a stop cost microseconds each, not a device write each.
    async fn replace_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// One open file.
#[allow(async_fn_in_trait)]
pub trait DiskFile: 'static {
    type Buf: IoBuf;
    type ReadBuf: AsRef<[u8]>;

    /// Writes the whole buffer at `pos` (both block-aligned).
    async fn write_at(&self, buf: Rc<Self::Buf>, pos: u64) -> io::Result<()>;
    /// Writes `len` zero bytes at `pos` (both block-aligned) so that later
    /// writes there overwrite written blocks (see
    /// [`crate::limits::PREWRITE_STEP_MAX_BYTES`]), once the file system
    /// promises them beyond `keep_free` like [`Self::reserve`]: ENOSPC,
    /// with nothing written, when it cannot.
    async fn write_zeros(&self, pos: u64, len: usize, keep_free: u64) -> io::Result<()>;
    /// The end of the bytes written to the file (its size when it was
    /// opened or last truncated): a write past it extends the file.
    fn written_end(&self) -> u64;
    /// Reads up to `len` bytes at `pos` (any alignment); shorter at the end of file.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Self::ReadBuf>;
    /// Makes every completed write durable.
    async fn fdatasync(&self) -> io::Result<()>;
    /// Makes sure the file can grow to `len` bytes and leave `keep_free`
    /// bytes free for others: fails with ENOSPC, before anything is
    /// written, when the file system cannot. Does not change the file.
    async fn reserve(&self, len: u64, keep_free: u64) -> io::Result<()>;
    async fn truncate(&self, len: u64) -> io::Result<()>;
    async fn size(&self) -> io::Result<u64>;
}

/// Writes a small file whole and durably: through a temporary name, fdatasync,
/// rename, directory sync. A crash leaves either the old file or the new one.
pub async fn write_file_atomic<D: Disk>(disk: &D, path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file(disk, path, bytes, true).await
}

pub(crate) async fn write_file<D: Disk>(
    disk: &D,
    path: &Path,
    bytes: &[u8],
    durable: bool,
) -> io::Result<()> {
    use crate::limits::BLOCK_BYTES;
    let tmp = path.with_extension("tmp");
    let file = disk.open(&tmp, true).await?;
    let padded = bytes.len().div_ceil(BLOCK_BYTES).max(1) * BLOCK_BYTES;
    let mut buf = disk.alloc(padded);
    buf.as_mut()[..bytes.len()].copy_from_slice(bytes);
    buf.as_mut()[bytes.len()..].fill(0);
    file.write_at(Rc::new(buf), 0).await?;
    file.truncate(bytes.len() as u64).await?;
    if durable {
        file.fdatasync().await?;
    }
    drop(file);
    disk.rename(&tmp, path).await?;
    if let (true, Some(dir)) = (durable, path.parent()) {
        disk.sync_dir(dir).await?;
    }
    Ok(())
}

/// Reads a whole small file.
pub async fn read_file<D: Disk>(disk: &D, path: &Path) -> io::Result<Vec<u8>> {
    let file = disk.open(path, false).await?;
    let size = file.size().await?;
    if size == 0 {
        return Ok(Vec::new());
    }
    Ok(file.read_at(0, size as usize).await?.as_ref().to_vec())
}

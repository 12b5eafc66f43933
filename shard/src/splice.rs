//! Zero-copy sends of segment file ranges to a client socket: `splice(2)`
//! from the file into a pipe and from the pipe into the socket, so cold
//! fetches never copy record bytes through user space.
//!
//! Runs on its shard. glommio exposes neither splice nor a way to wait for
//! socket writability, so each shard owns a [`Splicer`]: a small io_uring of
//! its own (the side ring), an eventfd that the ring signals on every
//! completion and that the shard awaits through glommio, a task that hands
//! completions to the waiting sends, and a bounded cache of buffered
//! read-only descriptors of segment files. Each connection owns a [`Pipe`],
//! and a response in parts goes through it whole: its bytes written into
//! the pipe, its file ranges spliced into it, the pipe spliced to the
//! socket when full and at the end, so the socket takes a response in a
//! few large sends, headers and records together.
//!
//! Splicing goes through a buffered descriptor because splicing from an
//! O_DIRECT one reads the disk into fresh pages on every call. The
//! descriptor is opened through `/proc/self/fd` of the engine's own file,
//! so it is always the inode the engine's read positions refer to (a
//! compacted segment is a new inode). Only whole, acknowledged batches on
//! disk are ever spliced (the engine's cold `ReadChunk::File`), and their
//! bytes are never rewritten with other bytes. Direct writes do rewrite
//! what follows them: the partial last block of the data (padding), and
//! the zeros the flusher writes ahead of small writes (decision 52), which
//! readahead may have cached. Sends rely on the kernel dropping the
//! cached pages a direct write covers when it completes, as they did for
//! the partial last block before; the zeros' pages are never sent (only
//! bytes below the acknowledged end are), so no send holds them then.
//!
//! It must not be used for anything but file → socket sends of one shard.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use engine::sync::{Notify, Slots};

use crate::response::Part;
use io_uring::{opcode, squeue, types, IoUring};

/// Operations in flight on a shard's side ring (sends wait beyond): far
/// more than the connections that fetch cold data at once on one core.
pub const SIDE_RING_ENTRIES: u32 = 64;

/// Bytes a connection's pipe holds, and so the most one splice moves.
/// Linux's default `pipe-max-size`; 64 KiB (the default pipe size) if the
/// system refuses it.
pub const PIPE_BYTES: usize = 1 << 20;

/// Buffered descriptors of segment files kept open per shard (least
/// recently used closed first): a consumer reading cold data touches one
/// or two segments per partition at a time.
pub const OPEN_SEGMENT_FILES_MAX: usize = 256;

/// One shard's side ring and what goes with it.
pub struct Splicer {
    ring: RefCell<IoUring>,
    /// Signalled by the ring on every completion; kept open as long as it.
    _eventfd: OwnedFd,
    waiting: RefCell<HashMap<u64, Rc<Waiter>>>,
    next_id: Cell<u64>,
    slots: Slots,
    files: RefCell<HashMap<FileId, (Rc<File>, u64)>>,
    uses: Cell<u64>,
}

/// A segment file by (device, inode); the value beside it in the cache is
/// the buffered descriptor and its last use.
type FileId = (u64, u64);

#[derive(Default)]
struct Waiter {
    result: Cell<Option<i32>>,
    done: Notify,
}

/// Memory page size: a pipe buffer holds at most one page of a file
/// splice or of a write.
const PAGE_BYTES: usize = 4096;

/// Largest write of response bytes into a pipe at once.
const BYTES_WRITE_MAX: usize = 64 * 1024;

/// What a pipe holds: bytes, and buffers (an upper bound).
#[derive(Debug, Default, Clone, Copy)]
struct Fill {
    bytes: usize,
    buffers: usize,
}

impl Fill {
    /// Pipe buffers that `len` bytes starting `in_page` bytes into a page
    /// may take: one per page touched, plus one (a write may not merge
    /// into the buffer before it).
    fn buffers_for(in_page: usize, len: usize) -> usize {
        (in_page + len).div_ceil(PAGE_BYTES) + 1
    }
}

/// A connection's pipe between file and socket.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    bytes: usize,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        // Non-blocking: a full pipe is an EAGAIN to drain on, never a
        // blocked shard.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned here.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our own pipe; failure leaves the default size.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES as i32) };
        let bytes = if size > 0 {
            size as usize
        } else {
            // SAFETY: as above.
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) }.max(4096) as usize
        };
        Ok(Pipe { read, write, bytes })
    }

    /// Buffers the pipe holds (one page each at most).
    fn buffers(&self) -> usize {
        self.bytes / PAGE_BYTES
    }

    /// Writes what fits of `b` into the pipe (never blocks).
    fn write(&self, b: &[u8]) -> io::Result<usize> {
        // SAFETY: write(2) from a valid slice into our own pipe.
        let n = unsafe { libc::write(self.write.as_raw_fd(), b.as_ptr().cast(), b.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Splicer {
    /// Sets up the side ring and starts its completion task on the
    /// current glommio executor.
    pub fn start() -> io::Result<Rc<Splicer>> {
        let ring = IoUring::new(SIDE_RING_ENTRIES)?;
        // Blocking on purpose: glommio reads it through its own ring, which
        // waits for a blocking eventfd with poll instead of failing EAGAIN.
        // SAFETY: eventfd creates a new descriptor, owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned here.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        let wake = eventfd.try_clone()?;
        let splicer = Rc::new(Splicer {
            ring: RefCell::new(ring),
            _eventfd: eventfd,
            waiting: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
            slots: Slots::new(SIDE_RING_ENTRIES as usize),
            files: RefCell::new(HashMap::new()),
            uses: Cell::new(0),
        });
        let dispatcher = splicer.clone();
        glommio::spawn_local(async move { dispatcher.dispatch(wake).await }).detach();
        Ok(splicer)
    }

    /// Waits for completions and hands them to their waiters, forever.
    async fn dispatch(self: Rc<Self>, wake: OwnedFd) {
        // SAFETY: glommio takes ownership of this descriptor (a dup of ours).
        let wake = unsafe { glommio::io::BufferedFile::from_raw_fd(wake.into_raw_fd()) };
        loop {
            if let Err(e) = wake.read_at(0, 8).await {
                log::warn!("side ring: cannot wait for completions: {e}; zero-copy sends stop");
                return;
            }
            let mut ring = self.ring.borrow_mut();
            for cqe in ring.completion() {
                if let Some(w) = self.waiting.borrow_mut().remove(&cqe.user_data()) {
                    w.result.set(Some(cqe.result()));
                    w.done.notify();
                }
            }
        }
    }

    /// Submits one operation and waits for its result (bytes moved).
    async fn run(&self, entry: squeue::Entry) -> io::Result<usize> {
        let _slot = self.slots.acquire().await;
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let waiter = Rc::new(Waiter::default());
        self.waiting.borrow_mut().insert(id, waiter.clone());
        {
            let mut ring = self.ring.borrow_mut();
            // SAFETY: the descriptors in `entry` stay open until it
            // completes: the caller holds them across this await.
            let pushed = unsafe { ring.submission().push(&entry.user_data(id)) };
            if pushed.is_err() {
                self.waiting.borrow_mut().remove(&id);
                return Err(io::Error::other("side ring full"));
            }
            if let Err(e) = ring.submit() {
                self.waiting.borrow_mut().remove(&id);
                return Err(e);
            }
        }
        let result = loop {
            let done = waiter.done.notified();
            if let Some(r) = waiter.result.get() {
                break r;
            }
            done.await;
        };
        if result < 0 {
            Err(io::Error::from_raw_os_error(-result))
        } else {
            Ok(result as usize)
        }
    }

    /// A buffered read-only descriptor of the file behind `dma_fd`.
    fn buffered(&self, dma_fd: RawFd) -> io::Result<Rc<File>> {
        // SAFETY: fstat fills `st` for an open descriptor.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(dma_fd, &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let key = (st.st_dev, st.st_ino);
        let now = self.uses.get() + 1;
        self.uses.set(now);
        let mut files = self.files.borrow_mut();
        if let Some((file, used)) = files.get_mut(&key) {
            *used = now;
            return Ok(file.clone());
        }
        let file = Rc::new(File::open(format!("/proc/self/fd/{dma_fd}"))?);
        if files.len() >= OPEN_SEGMENT_FILES_MAX {
            if let Some(oldest) = files.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k) {
                files.remove(&oldest);
            }
        }
        files.insert(key, (file.clone(), now));
        Ok(file)
    }

    /// Sends a response given in parts to `socket`, every part through
    /// `pipe`: bytes written into it, file ranges spliced into it, and the
    /// pipe spliced to the socket whenever it is full and at the end. So
    /// the socket gets the response in pipe-sized sends, headers and
    /// records together, whatever the parts. An error leaves the socket
    /// mid-response: the caller closes the connection.
    pub async fn send_parts(&self, pipe: &Pipe, parts: Vec<Part>, socket: RawFd) -> io::Result<()> {
        // A splice into a full pipe blocks its ring worker until the pipe
        // is read, whatever the pipe's O_NONBLOCK (only SPLICE_F_NONBLOCK,
        // which would also fail reads of uncached pages, makes it return),
        // and only this task reads the pipe: so every part is sized to fit
        // the pipe's free buffers, counted conservatively, and the pipe is
        // drained to the socket before a part would not fit.
        let capacity = pipe.buffers();
        let mut fill = Fill::default();
        for part in parts {
            match part {
                Part::Bytes(b) => {
                    for chunk in b.chunks(BYTES_WRITE_MAX) {
                        let need = Fill::buffers_for(0, chunk.len());
                        if fill.buffers + need > capacity {
                            fill = self.drain(pipe, fill, socket).await?;
                        }
                        let mut at = 0;
                        while at < chunk.len() {
                            // Cannot block or fail for room: the buffers are free.
                            let n = pipe.write(&chunk[at..])?;
                            at += n;
                            fill.bytes += n;
                        }
                        fill.buffers += need;
                    }
                }
                Part::File { file, position, len } => {
                    let file = self.buffered(file.as_raw_fd())?;
                    let mut done = 0u64;
                    while done < len {
                        if fill.buffers + 2 > capacity {
                            fill = self.drain(pipe, fill, socket).await?;
                        }
                        let at = position + done;
                        let in_page = (at % PAGE_BYTES as u64) as usize;
                        let room = (capacity - fill.buffers) * PAGE_BYTES - in_page;
                        let want = ((len - done) as usize).min(room);
                        let splice = opcode::Splice::new(
                            types::Fd(file.as_raw_fd()),
                            at as i64,
                            types::Fd(pipe.write.as_raw_fd()),
                            -1,
                            want as u32,
                        )
                        .build();
                        let got = self.run(splice).await?;
                        if got == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("segment ends before {position} + {len}"),
                            ));
                        }
                        fill.buffers += Fill::buffers_for(in_page, got);
                        fill.bytes += got;
                        done += got as u64;
                    }
                }
            }
        }
        self.drain(pipe, fill, socket).await.map(|_| ())
    }

    /// Moves the bytes in `pipe` to `socket`, on the side ring: glommio's
    /// sockets are blocking, so a splice into a full socket waits in a ring
    /// worker, never on the shard's thread. (Should a socket be
    /// non-blocking, EAGAIN is waited out with a poll.)
    async fn drain(&self, pipe: &Pipe, fill: Fill, socket: RawFd) -> io::Result<Fill> {
        let mut filled = fill.bytes;
        while filled > 0 {
            let splice = opcode::Splice::new(
                types::Fd(pipe.read.as_raw_fd()),
                -1,
                types::Fd(socket),
                -1,
                filled.min(u32::MAX as usize) as u32,
            )
            .build();
            match self.run(splice).await {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => filled -= n,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    let poll =
                        opcode::PollAdd::new(types::Fd(socket), libc::POLLOUT as u32).build();
                    self.run(poll).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Fill::default())
    }
}

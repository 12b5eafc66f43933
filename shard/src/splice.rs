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
//! A response's file ranges after its first are read ahead when its send
//! starts (`POSIX_FADV_WILLNEED` on the side ring, a few per shard at
//! once, decision 54), so that the disk reads a response's partitions
//! together rather than one after another as the splices reach them.
//!
//! It must not be used for anything but file → socket sends of one shard.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use engine::disk::DmaDiskFile;
use engine::sync::{Notify, Slot, Slots};
use futures_util::stream::{self, StreamExt};
use io_uring::{opcode, squeue, types, IoUring};

use crate::response::Part;

/// Operations in flight on a shard's side ring (sends wait beyond): far
/// more than the connections that fetch cold data at once on one core.
pub const SIDE_RING_ENTRIES: u32 = 64;

/// Bytes a connection's pipe holds, and so the most one splice moves.
/// Linux's default `pipe-max-size`; 64 KiB (the default pipe size) if the
/// system refuses it.
pub const PIPE_BYTES: usize = 1 << 20;

/// File ranges of a response at least this long, after its first, are
/// read ahead when the send starts (see [`Splicer::read_ahead`]); shorter
/// ones are not worth a ring worker's wake-up each.
pub const READ_AHEAD_MIN_BYTES: u64 = 64 * 1024;

/// Read-ahead hints in flight on a shard, all responses together; a hint
/// that finds none free is skipped. io_uring runs each in a worker of the
/// pool that also runs the flusher's fdatasyncs (bounded work, at most
/// four workers per CPU), so hints stay a few, and they never hold the
/// side ring's slots from the sends for long.
pub const READ_AHEAD_IN_FLIGHT_MAX: usize = 2;

/// Buffered descriptors of segment files kept open per shard (least
/// recently used closed first): a consumer reading cold data touches one
/// or two segments per partition at a time.
pub const OPEN_SEGMENT_FILES_MAX: usize = 256;

/// What a shard's zero-copy sends did, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpliceStats {
    /// Bytes spliced from segment files into connections' pipes.
    pub file_bytes: u64,
    /// Read-ahead hints given ([`Splicer::read_ahead`]).
    pub read_ahead_hints: u64,
    /// Bytes the hints asked for. The kernel reads at most its readahead
    /// window of each (the device's `read_ahead_kb`), so not all of them
    /// may have been read.
    pub read_ahead_requested_bytes: u64,
    /// Hints the kernel refused (the splice then reads as without).
    pub read_ahead_failures: u64,
}

/// One shard's side ring and what goes with it.
pub struct Splicer {
    ring: RefCell<IoUring>,
    /// Signalled by the ring on every completion; kept open as long as it.
    _eventfd: OwnedFd,
    waiting: RefCell<HashMap<u64, Rc<Waiter>>>,
    next_id: Cell<u64>,
    slots: Slots,
    /// Read-ahead hints in flight ([`READ_AHEAD_IN_FLIGHT_MAX`]).
    hint_slots: Slots,
    files: RefCell<HashMap<FileId, (Rc<File>, u64)>>,
    uses: Cell<u64>,
    stats: Cell<SpliceStats>,
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
            hint_slots: Slots::new(READ_AHEAD_IN_FLIGHT_MAX),
            files: RefCell::new(HashMap::new()),
            uses: Cell::new(0),
            stats: Cell::default(),
        });
        let dispatcher = splicer.clone();
        glommio::spawn_local(async move { dispatcher.dispatch(wake).await }).detach();
        Ok(splicer)
    }

    /// What this shard's zero-copy sends did so far.
    pub fn stats(&self) -> SpliceStats {
        self.stats.get()
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
        let slot = self.slots.acquire().await;
        self.run_in(slot, entry).await
    }

    /// [`Self::run`] in a slot of the ring already held.
    async fn run_in(&self, _slot: Slot<'_>, entry: squeue::Entry) -> io::Result<usize> {
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
        let ranges: Vec<(usize, Rc<DmaDiskFile>, u64, u64)> = parts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Part::File { file, position, len } => Some((i, file.clone(), *position, *len)),
                Part::Bytes(_) => None,
            })
            .skip(1)
            .filter(|(_, _, _, len)| *len >= READ_AHEAD_MIN_BYTES)
            .collect();
        // Parts the sends have started; all of them once the sends end.
        let reached = Cell::new(0);
        let send = async {
            let sent = self.send_in_order(pipe, parts, socket, &reached).await;
            reached.set(usize::MAX);
            sent
        };
        let (_, sent) = futures_lite::future::zip(self.read_ahead(ranges, &reached), send).await;
        sent
    }

    /// Asks the kernel to start reading a response's file ranges after the
    /// first (`POSIX_FADV_WILLNEED`, on the side ring: io_uring runs it in
    /// a worker, never on the shard's thread), so that a response carrying
    /// several partitions' cold data keeps the disk reading the next while
    /// the first is spliced, instead of reading each only when its splice
    /// reaches it. Pages already cached are found and left; the pages read
    /// are the response's own, which the splices then take. Hints are
    /// optional: a range the sends have reached, or one that finds no free
    /// hint slot ([`READ_AHEAD_IN_FLIGHT_MAX`]) or ring slot, is skipped, so
    /// no send ever waits for a hint; a hint that fails changes nothing
    /// (the splice reads). Each hint's descriptor is held until it
    /// completes.
    async fn read_ahead(
        &self,
        ranges: Vec<(usize, Rc<DmaDiskFile>, u64, u64)>,
        reached: &Cell<usize>,
    ) {
        stream::iter(ranges)
            .for_each_concurrent(
                READ_AHEAD_IN_FLIGHT_MAX,
                |(part, file, position, len)| async move {
                    if reached.get() >= part {
                        return;
                    }
                    let Some(_hint) = self.hint_slots.try_acquire() else { return };
                    let Some(slot) = self.slots.try_acquire() else { return };
                    let Ok(file) = self.buffered(file.as_raw_fd()) else { return };
                    let hint = opcode::Fadvise::new(
                        types::Fd(file.as_raw_fd()),
                        len.min(u32::MAX as u64) as libc::off_t,
                        libc::POSIX_FADV_WILLNEED,
                    )
                    .offset(position)
                    .build();
                    let mut stats = self.stats.get();
                    stats.read_ahead_hints += 1;
                    stats.read_ahead_requested_bytes += len;
                    self.stats.set(stats);
                    if self.run_in(slot, hint).await.is_err() {
                        let mut stats = self.stats.get();
                        stats.read_ahead_failures += 1;
                        self.stats.set(stats);
                    }
                },
            )
            .await;
    }

    /// [`Self::send_parts`]' sends, part after part, counting in `reached`
    /// the parts started.
    async fn send_in_order(
        &self,
        pipe: &Pipe,
        parts: Vec<Part>,
        socket: RawFd,
        reached: &Cell<usize>,
    ) -> io::Result<()> {
        // A splice into a full pipe blocks its ring worker until the pipe
        // is read, whatever the pipe's O_NONBLOCK (only SPLICE_F_NONBLOCK,
        // which would also fail reads of uncached pages, makes it return),
        // and only this task reads the pipe: so every part is sized to fit
        // the pipe's free buffers, counted conservatively, and the pipe is
        // drained to the socket before a part would not fit.
        let capacity = pipe.buffers();
        let mut fill = Fill::default();
        for (i, part) in parts.into_iter().enumerate() {
            reached.set(i);
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
                        let mut stats = self.stats.get();
                        stats.file_bytes += got as u64;
                        self.stats.set(stats);
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

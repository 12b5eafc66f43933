//! Every bound of the engine in one place, each with the reason for its value.
//!
//! Per-topic knobs (`segment.bytes`, `max.message.bytes`, ...) live in
//! [`crate::config::LogConfig`]; the constants here are the engine's own limits
//! that no topic config can move.

/// Direct I/O alignment: every write position and length is a multiple of this.
/// 4 KiB is the logical block size of NVMe drives and of the ext4/xfs page, so
/// O_DIRECT accepts it everywhere we run.
pub const BLOCK_BYTES: usize = 4096;

/// Smallest `segment.bytes` we accept. Kafka's own minimum is 14 bytes, which
/// only makes sense for tests; 1 KiB keeps the tests' "tiny segments" while
/// guaranteeing that a segment holds at least one small batch.
pub const SEGMENT_BYTES_MIN: u64 = 1024;

/// Largest `segment.bytes`: relative positions in the offset index are u32, so
/// a segment can never exceed 4 GiB. Kafka uses `Int.MaxValue` for the same reason.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// Size of the first tail chunk of a partition and the floor it shrinks back
/// to when idle. Each active partition holds at least one chunk, so this is the
/// per-partition memory floor: 64 KiB x 1,000 partitions = 64 MiB per shard.
pub const TAIL_CHUNK_BYTES_MIN: usize = 64 * 1024;

/// Largest tail chunk, which is also the largest single write. 1 MiB writes
/// with several in flight reach the disk's sequential bandwidth here (fio:
/// ~2.1 GB/s at 1 MiB x 4 in flight, ~0.8 GB/s at 128 KiB x 1).
pub const TAIL_CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// Zeros written ahead of the active segment's data (decision 52): a
/// direct write that extends a file on ext4 goes through io_uring's worker
/// threads and makes the next fdatasync commit the journal, while one over
/// blocks already written is neither (`bench/fio_extend.sh`: 0.52-0.65 of
/// the CPU per 4 KiB write and fdatasync, 0.32-0.43 of the sync's p50).
/// A round of small writes to the active segment writes zeros ahead when
/// its file holds fewer than half a step of them past its data; a step is
/// [`PREWRITE_ROUNDS`] times the round's bytes, a power of two between
/// these bounds. The maximum bounds the disk space a segment holds beyond
/// its data (a step and a half: up to 384 KiB per active partition, cut
/// when it closes) and
/// how long a round waits for its zeros.
pub const PREWRITE_STEP_MIN_BYTES: usize = 64 * 1024;
pub const PREWRITE_STEP_MAX_BYTES: usize = 256 * 1024;

/// Rounds of writes one step of zeros serves: the extension's cost is
/// shared by this many rounds, which pays for it eight times over while
/// writing each step's zeros quickly.
pub const PREWRITE_ROUNDS: usize = 8;

/// Rounds writing more than this to a segment write no zeros ahead: their
/// cost is the disk's bandwidth, which zeros would double, not the
/// per-write cost that zeros save. At 128 KiB, 1,000-record batches of
/// 100 B wrote 35% more bytes in zeros than in data (rounds near the
/// bound got a step each); 10-record batches' rounds are a few KiB.
pub const PREWRITE_ROUND_BYTES_MAX: usize = 32 * 1024;

/// Bytes appended on one shard but not yet written to disk. Appends wait for
/// the flusher once this is exceeded, so a producer faster than the disk is
/// slowed down instead of growing memory without bound. 64 MiB is ~30 ms of
/// this disk's bandwidth: enough to keep several 1 MiB writes in flight.
pub const SHARD_UNWRITTEN_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Writes in flight at once on one shard, all partitions together. Bounds
/// io_uring requests (kernel memory, completion queue) per shard; fio
/// reaches this disk's bandwidth with 1 MiB writes at depth 4, and a deeper
/// queue measured no faster, so 8 leaves room for several partitions.
pub const SHARD_WRITES_IN_FLIGHT_MAX: usize = 8;

/// Logs whose files one shard fdatasyncs at once. Bounds io_uring requests
/// per shard like [`SHARD_WRITES_IN_FLIGHT_MAX`]; syncs are many and small
/// (one per partition written in a round) and the filesystem's journal
/// commits them together, so more of them in flight costs little. 64 also
/// stays well inside glommio's ring of 128 entries. Before this bound, a
/// round syncing 4,500 partitions put all of them on the ring at once.
pub const SHARD_SYNCS_IN_FLIGHT_MAX: usize = 64;

/// Default of `LogConfig::cache_bytes_max`: recently appended batches kept in memory per partition, so that consumers
/// close to the tail are served without touching the disk. Batches not yet
/// written are always kept, whatever this says (they are bounded by
/// [`SHARD_UNWRITTEN_BYTES_MAX`]).
pub const CACHE_BYTES_PER_PARTITION: usize = 4 * 1024 * 1024;

/// Free space kept aside from appends: a full disk refuses produces while
/// this much is still free, so that index files, producer snapshots and
/// the metadata log (whose appends may use it, `LogConfig::keep_free_bytes`)
/// still fit.
pub const FREE_SPACE_MARGIN_BYTES: u64 = 64 * 1024 * 1024;

/// Below this much free space beyond the promises, every promise asks the
/// file system again (`statvfs`) instead of trusting the cached figure.
pub const FREE_SPACE_RECHECK_BELOW_BYTES: u64 = 1024 * 1024 * 1024;

/// How long a cached free-space figure is trusted when far from full:
/// files deleted by retention or other processes' writes show up this late.
pub const FREE_SPACE_CACHE_MS: u64 = 100;

/// Size of one read when recovery scans a segment. Large enough to stream at
/// the disk's bandwidth, small enough not to matter for memory.
pub const RECOVERY_READ_BYTES: usize = 1024 * 1024;

/// Bytes read at once when a cold read looks for the batch holding an offset:
/// the offset index points at most `index.interval.bytes` before it, so one
/// read usually suffices.
pub const LOOKUP_READ_BYTES: usize = 16 * 1024;

const _: () = assert!(TAIL_CHUNK_BYTES_MIN.is_multiple_of(BLOCK_BYTES));
const _: () = assert!(TAIL_CHUNK_BYTES_MAX.is_multiple_of(TAIL_CHUNK_BYTES_MIN));
const _: () =
    assert!(TAIL_CHUNK_BYTES_MAX.is_power_of_two() && TAIL_CHUNK_BYTES_MIN.is_power_of_two());
const _: () = assert!(SHARD_UNWRITTEN_BYTES_MAX >= 4 * TAIL_CHUNK_BYTES_MAX);
const _: () = assert!(
    PREWRITE_STEP_MIN_BYTES.is_power_of_two()
        && PREWRITE_STEP_MAX_BYTES.is_power_of_two()
        && PREWRITE_STEP_MIN_BYTES.is_multiple_of(BLOCK_BYTES)
        && PREWRITE_STEP_MAX_BYTES >= PREWRITE_ROUND_BYTES_MAX
);
const _: () = assert!(FREE_SPACE_RECHECK_BELOW_BYTES > FREE_SPACE_MARGIN_BYTES);
const _: () = assert!(
    RECOVERY_READ_BYTES.is_multiple_of(BLOCK_BYTES)
        && LOOKUP_READ_BYTES.is_multiple_of(BLOCK_BYTES)
);

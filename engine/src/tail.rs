//! The tail buffer of the active segment: where appended batches are copied
//! (once) on their way to disk, in block-aligned chunks.
//!
//! Runs on the shard that owns the partition. Must not do I/O: it only fills
//! chunks and hands sealed ones to the flusher.
//!
//! A chunk covers the file range `[pos, pos + capacity)`, `pos` block-aligned.
//! Only the chunk's first block can hold bytes that were written before: the
//! partial last block of the previous write, carried over so that the next
//! write rewrites it as it fills. Sealing a chunk trims it to whole blocks
//! (zero padding after the data) and hands it over as one write of the whole
//! buffer; sealing a full chunk carries nothing over.

use std::rc::Rc;

use crate::disk::{Disk, IoBuf};
use crate::limits::{BLOCK_BYTES, TAIL_CHUNK_BYTES_MAX, TAIL_CHUNK_BYTES_MIN};

/// A sealed chunk: its bytes and the file position they go to.
pub(crate) struct SealedChunk<B> {
    pub buf: Rc<B>,
    pub pos: u64,
}

pub(crate) struct Tail<B> {
    chunk: B,
    /// File position of the chunk's first byte (block-aligned).
    pos: u64,
    /// Bytes of the chunk holding data.
    fill: usize,
    /// Bytes appended since the last seal.
    dirty: bool,
}

impl<B: IoBuf> Tail<B> {
    /// A tail that continues a file whose logical end is `end`; `last_block`
    /// holds the bytes of the file from `align_down(end)` to `end`.
    pub fn new<D: Disk<Buf = B>>(disk: &D, end: u64, last_block: &[u8]) -> Self {
        let pos = end - end % BLOCK_BYTES as u64;
        assert_eq!(last_block.len() as u64, end - pos);
        let mut chunk = disk.alloc(TAIL_CHUNK_BYTES_MIN);
        chunk.as_mut()[..last_block.len()].copy_from_slice(last_block);
        Tail { chunk, pos, fill: last_block.len(), dirty: false }
    }

    /// Logical end of the data: the file position the next byte goes to.
    pub fn end(&self) -> u64 {
        self.pos + self.fill as u64
    }

    /// Copies `bytes` at the end; chunks that fill up are sealed into `sealed`.
    pub fn append<D: Disk<Buf = B>>(
        &mut self,
        disk: &D,
        mut bytes: &[u8],
        sealed: &mut Vec<SealedChunk<B>>,
    ) {
        while !bytes.is_empty() {
            let cap = self.chunk.as_ref().len();
            let n = bytes.len().min(cap - self.fill);
            self.chunk.as_mut()[self.fill..self.fill + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            self.dirty = true;
            bytes = &bytes[n..];
            if self.fill == cap {
                // A full chunk: the next one starts right after, with nothing to
                // carry, and twice as large (up to the maximum) since data flows fast.
                let next_cap = (cap * 2).min(TAIL_CHUNK_BYTES_MAX);
                let full = std::mem::replace(&mut self.chunk, disk.alloc(next_cap));
                sealed.push(SealedChunk { buf: Rc::new(full), pos: self.pos });
                self.pos += cap as u64;
                self.fill = 0;
                self.dirty = false;
            }
        }
    }

    /// Seals the data appended since the last seal, if any: the chunk is
    /// trimmed to whole blocks and a new chunk starts at its last partial
    /// block, which is copied over.
    pub fn seal<D: Disk<Buf = B>>(&mut self, disk: &D) -> Option<SealedChunk<B>> {
        if !self.dirty {
            return None;
        }
        let cap = self.chunk.as_ref().len();
        let blocks_bytes = self.fill.div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
        let carried = self.fill % BLOCK_BYTES;
        let whole = self.fill - carried;
        // Shrink the next chunk when little data flows, to keep idle partitions small.
        let next_cap = if self.fill < cap / 4 { (cap / 2).max(TAIL_CHUNK_BYTES_MIN) } else { cap };
        let mut next = disk.alloc(next_cap);
        next.as_mut()[..carried].copy_from_slice(&self.chunk.as_ref()[whole..self.fill]);
        let mut done = std::mem::replace(&mut self.chunk, next);
        done.as_mut()[self.fill..blocks_bytes].fill(0);
        done.trim(blocks_bytes);
        let sealed = SealedChunk { buf: Rc::new(done), pos: self.pos };
        self.pos += whole as u64;
        self.fill = carried;
        self.dirty = false;
        Some(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    /// Applies sealed chunks to a model file in order, as the flusher would.
    fn apply(file: &mut Vec<u8>, sealed: Vec<SealedChunk<crate::disk::MemBuf>>) {
        for s in sealed {
            let end = s.pos as usize + s.buf.as_ref().as_ref().len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[s.pos as usize..end].copy_from_slice(s.buf.as_ref().as_ref());
        }
    }

    #[test]
    fn sealed_chunks_rebuild_the_appended_bytes() {
        let disk = MemDisk::new();
        let mut expected = b"previous".to_vec();
        let mut tail = Tail::new(&disk, expected.len() as u64, &expected);
        let mut file = expected.clone();
        let mut seed = 7u64;
        for round in 0..300 {
            let mut sealed = Vec::new();
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = (seed >> 33) as usize % 300_000;
            let bytes: Vec<u8> = (0..n).map(|i| (i + round) as u8).collect();
            tail.append(&disk, &bytes, &mut sealed);
            expected.extend_from_slice(&bytes);
            if round % 3 != 0 {
                sealed.extend(tail.seal(&disk));
            }
            apply(&mut file, sealed);
            assert_eq!(tail.end(), expected.len() as u64);
        }
        let mut last = Vec::new();
        last.extend(tail.seal(&disk));
        apply(&mut file, last);
        assert_eq!(&file[..expected.len()], &expected[..]);
        assert!(file[expected.len()..].iter().all(|&b| b == 0), "padding is zeros");
    }
}

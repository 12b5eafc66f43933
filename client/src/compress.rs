//! Compressed batches, with pure-Rust codecs (no C libraries in the build):
//! the records section of a built batch is compressed as Kafka clients do
//! it and the batch re-framed around it, and fetched batches' records are
//! decompressed (with `engine::compression`, the broker's own decoders).
//!
//! - gzip: a gzip stream (flate2 on miniz_oxide).
//! - snappy: raw snappy blocks, as librdkafka sends them; decompression
//!   also reads the Java clients' xerial framing.
//! - lz4: an LZ4 frame (lz4_flex), the format Kafka has used since 0.10.
//! - zstd: a zstd frame (ruzstd's encoder, its fastest level).
//!
//! Owns the codecs only, never the batch header (that is `engine::batch`).
//! The load generator compresses once per pre-built batch, before a run
//! starts, never on its hot path. Decompressed sizes are bounded by
//! [`DECOMPRESSED_BYTES_MAX`].

use std::io::Write;

use anyhow::{bail, Result};
use engine::batch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn parse(name: &str) -> Result<Codec> {
        Ok(match name {
            "none" => Codec::None,
            "gzip" => Codec::Gzip,
            "snappy" => Codec::Snappy,
            "lz4" => Codec::Lz4,
            "zstd" => Codec::Zstd,
            other => bail!("compression {other:?}: expected none, gzip, snappy, lz4 or zstd"),
        })
    }

    /// The codec of id `id` (a batch's attribute bits 0-2).
    pub fn from_id(id: i16) -> Result<Codec> {
        Ok(match id {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            other => bail!("unknown compression codec {other}"),
        })
    }

    /// The codec id in a batch's attributes.
    pub fn id(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
}

/// `built` (an uncompressed batch) with its records compressed by `codec`.
pub fn compress_batch(built: &[u8], codec: Codec) -> Result<Vec<u8>> {
    let records = &built[batch::HEADER_BYTES..];
    let compressed = match codec {
        Codec::None => return Ok(built.to_vec()),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(records)?;
            e.finish()?
        }
        Codec::Snappy => snap::raw::Encoder::new().compress_vec(records)?,
        Codec::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(records)?;
            e.finish()?
        }
        Codec::Zstd => {
            ruzstd::encoding::compress_to_vec(records, ruzstd::encoding::CompressionLevel::Fastest)
        }
    };
    Ok(batch::with_compressed_records(built, codec.id(), &compressed))
}

/// Largest records section a compressed batch may expand to: a bomb or a
/// corrupt length fails instead of exhausting memory.
pub const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// The records section `data`, compressed with `codec`, decompressed
/// (the engine's decoders, which the broker validates batches with).
pub fn decompress(codec: Codec, data: &[u8]) -> Result<Vec<u8>> {
    if codec == Codec::None {
        return Ok(data.to_vec());
    }
    let mut out = Vec::new();
    engine::compression::decompress_into(codec.id(), data, DECOMPRESSED_BYTES_MAX, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let recs: Vec<engine::batch::KeyValue<'_>> =
            (0..50).map(|_| (Some(&b"key"[..]), Some(&b"some value, some value"[..]))).collect();
        let built = batch::build(&recs, 1_700_000_000_000);
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let c = compress_batch(&built, codec).unwrap();
            let h = batch::validate_one(&c).unwrap();
            assert_eq!(h.compression(), codec.id());
            let records = decompress(codec, &c[batch::HEADER_BYTES..]).unwrap();
            assert_eq!(records, &built[batch::HEADER_BYTES..], "{codec:?}");
        }
    }
}

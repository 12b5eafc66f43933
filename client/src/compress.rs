//! Compressed batches for the load generator, with pure-Rust codecs (no C
//! libraries in the build): the records section of a built batch is
//! compressed as Kafka clients do it, and the batch re-framed around it.
//!
//! - gzip: a gzip stream (flate2 on miniz_oxide).
//! - snappy: raw snappy blocks, as librdkafka sends them (consumers also
//!   accept the Java clients' xerial framing, which this does not write).
//! - lz4: an LZ4 frame (lz4_flex), the format Kafka has used since 0.10.
//! - zstd: a zstd frame (ruzstd's encoder, its fastest level).
//!
//! Runs once per pre-built batch, before a run starts; never on the hot path.

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

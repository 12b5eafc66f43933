//! Compressed batches, with pure-Rust codecs (no C libraries in the build):
//! the records section of a built batch is compressed as Kafka clients do
//! it and the batch re-framed around it, and fetched batches' records are
//! decompressed.
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

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
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

/// The xerial framing Java clients put around snappy blocks: this magic,
/// a version and a compatible version (4 bytes each), then blocks each
/// preceded by its 4-byte big-endian length.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

/// The records section `data`, compressed with `codec`, decompressed.
pub fn decompress(codec: Codec, data: &[u8]) -> Result<Vec<u8>> {
    let limit = DECOMPRESSED_BYTES_MAX as u64 + 1;
    let mut out = Vec::new();
    match codec {
        Codec::None => out.extend_from_slice(data),
        Codec::Gzip => {
            flate2::read::GzDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out)
                .context("gzip records do not decompress")?;
        }
        Codec::Snappy => {
            if data.starts_with(XERIAL_MAGIC) {
                let mut rest = data.get(XERIAL_HEADER_BYTES..).context("short xerial header")?;
                while !rest.is_empty() {
                    let (len, tail) = rest.split_at_checked(4).context("truncated xerial block")?;
                    let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
                    let block = tail.get(..len).context("truncated xerial block")?;
                    out.extend(snap::raw::Decoder::new().decompress_vec(block)?);
                    if out.len() > DECOMPRESSED_BYTES_MAX {
                        break;
                    }
                    rest = &tail[len..];
                }
            } else {
                let n = snap::raw::decompress_len(data)?;
                if n > DECOMPRESSED_BYTES_MAX {
                    bail!("snappy records of {n} bytes decompressed");
                }
                out = snap::raw::Decoder::new()
                    .decompress_vec(data)
                    .context("snappy records do not decompress")?;
            }
        }
        Codec::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(data)
                .take(limit)
                .read_to_end(&mut out)
                .context("lz4 records do not decompress")?;
        }
        Codec::Zstd => {
            let mut input = data;
            let d = ruzstd::decoding::StreamingDecoder::new(&mut input)
                .map_err(|e| anyhow::anyhow!("zstd records do not decompress: {e}"))?;
            d.take(limit).read_to_end(&mut out).context("zstd records do not decompress")?;
        }
    }
    if out.len() > DECOMPRESSED_BYTES_MAX {
        bail!("compressed records expand beyond {DECOMPRESSED_BYTES_MAX} bytes");
    }
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

    #[test]
    fn xerial_framed_snappy_decompresses() {
        let a = snap::raw::Encoder::new().compress_vec(b"hello ").unwrap();
        let b = snap::raw::Encoder::new().compress_vec(b"world").unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&1u32.to_be_bytes());
        for block in [&a, &b] {
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(block);
        }
        assert_eq!(decompress(Codec::Snappy, &framed).unwrap(), b"hello world");
    }
}

//! Decompressing the records section of a compressed batch, with pure-Rust
//! codecs and libzstd, so that the validator can check the records inside (Kafka's
//! `LogValidator` does the same) and tools can read them.
//!
//! Runs on the shard that appends, inside validation, with nothing awaited:
//! one decompression at a time per shard, into a buffer the caller keeps.
//! It never compresses (producers do; `client::compress` has the encoders)
//! and never allocates past the limit it is given.
//!
//! Codec ids are a batch's attribute bits 0-2:
//! - 1 gzip: a gzip stream (flate2 on miniz_oxide).
//! - 2 snappy: a raw snappy block (librdkafka), or the xerial framing Java
//!   clients put around blocks (a magic, two 4-byte versions, then blocks
//!   each preceded by a 4-byte big-endian length).
//! - 3 lz4: an LZ4 frame (lz4_flex), Kafka's format since 0.10.
//! - 4 zstd: zstd frames (libzstd through the `zstd` crate: ruzstd decoded
//!   at ~250 MB/s and cost validation 59% more broker CPU per GB; decision 33).

use std::io::Read;

/// Why a records section does not decompress. Maps to `CORRUPT_MESSAGE`
/// through [`crate::batch::BatchError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressError {
    /// The codec id is not 1-4.
    UnknownCodec(i16),
    /// The bytes are not a valid stream of the codec.
    Corrupt { codec: &'static str, why: String },
    /// The records expand beyond the limit given (a bomb, or a lie).
    TooLarge { limit: usize },
}

impl std::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecompressError::UnknownCodec(c) => write!(f, "unknown compression codec {c}"),
            DecompressError::Corrupt { codec, why } => {
                write!(f, "{codec} records do not decompress: {why}")
            }
            DecompressError::TooLarge { limit } => {
                write!(f, "compressed records expand beyond {limit} bytes")
            }
        }
    }
}

impl std::error::Error for DecompressError {}

/// A zstd window this large is accepted whatever the output limit: zstd
/// level 19 uses 8 MiB, and encoders declare windows larger than small
/// contents (Kafka's default level 3 declares 2 MiB).
pub const ZSTD_WINDOW_BYTES_ALLOWED: u64 = 8 * 1024 * 1024;

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

/// The codec's name for messages, or `None` for an id that is not one.
pub fn codec_name(codec: i16) -> Option<&'static str> {
    Some(match codec {
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => return None,
    })
}

/// Decompresses `data` (a records section compressed with `codec`) into
/// `out`, which is cleared first. Fails without growing `out` past `limit`
/// bytes (plus one read's worth) when the records expand beyond it.
pub fn decompress_into(
    codec: i16,
    data: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecompressError> {
    out.clear();
    let name = codec_name(codec).ok_or(DecompressError::UnknownCodec(codec))?;
    let corrupt = |why: String| DecompressError::Corrupt { codec: name, why };
    let take = limit as u64 + 1;
    match codec {
        1 => {
            flate2::read::GzDecoder::new(data)
                .take(take)
                .read_to_end(out)
                .map_err(|e| corrupt(e.to_string()))?;
        }
        2 if data.starts_with(XERIAL_MAGIC) => {
            let mut rest = data.get(XERIAL_HEADER_BYTES..).ok_or(corrupt("short header".into()))?;
            while !rest.is_empty() {
                let (len, tail) =
                    rest.split_at_checked(4).ok_or(corrupt("truncated block".into()))?;
                let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                let block = tail.get(..len).ok_or(corrupt("truncated block".into()))?;
                snappy_block(block, limit, out).map_err(|e| match e {
                    SnappyError::TooLarge => DecompressError::TooLarge { limit },
                    SnappyError::Corrupt(why) => corrupt(why),
                })?;
                rest = &tail[len..];
            }
        }
        2 => snappy_block(data, limit, out).map_err(|e| match e {
            SnappyError::TooLarge => DecompressError::TooLarge { limit },
            SnappyError::Corrupt(why) => corrupt(why),
        })?,
        3 => {
            lz4_flex::frame::FrameDecoder::new(data)
                .take(take)
                .read_to_end(out)
                .map_err(|e| corrupt(e.to_string()))?;
        }
        _ => {
            // A 20-byte frame may declare a window of gigabytes, which the
            // decoder would reserve: refused from the header, and libzstd
            // is told the same bound.
            let window_max = (limit as u64).max(ZSTD_WINDOW_BYTES_ALLOWED);
            if zstd_window_bytes(data).is_some_and(|w| w > window_max) {
                return Err(DecompressError::TooLarge { limit });
            }
            let mut decoder = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| corrupt(e.to_string()))?;
            decoder.window_log_max(window_log(window_max)).map_err(|e| corrupt(e.to_string()))?;
            decoder.take(take).read_to_end(out).map_err(|e| corrupt(e.to_string()))?;
        }
    }
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(())
}

/// The smallest power of two exponent whose window holds `bytes`, within
/// what libzstd accepts (10 to 31).
fn window_log(bytes: u64) -> u32 {
    (64 - bytes.saturating_sub(1).leading_zeros()).clamp(10, 31)
}

/// The window size a zstd frame header declares (RFC 8878 3.1.1.1), or
/// `None` when `data` does not start with a readable frame header (the
/// decoder then reports the error).
fn zstd_window_bytes(data: &[u8]) -> Option<u64> {
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    if data.get(..4)? != MAGIC {
        return None;
    }
    let descriptor = *data.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let wd = *data.get(5)?;
        let base = 1u64 << (10 + (wd >> 3) as u32);
        return Some(base + base / 8 * (wd & 7) as u64);
    }
    // Single segment: the window is the content size, after the dictionary id.
    let dictionary_bytes = [0usize, 1, 2, 4][(descriptor & 3) as usize];
    let at = 5 + dictionary_bytes;
    let fcs = match descriptor >> 6 {
        0 => *data.get(at)? as u64,
        1 => u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?) as u64 + 256,
        2 => u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as u64,
        _ => u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?),
    };
    Some(fcs)
}

enum SnappyError {
    TooLarge,
    Corrupt(String),
}

/// Appends one raw snappy block to `out`. The block states its length
/// first, so a block that would pass `limit` fails before any allocation.
fn snappy_block(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), SnappyError> {
    let n = snap::raw::decompress_len(block).map_err(|e| SnappyError::Corrupt(e.to_string()))?;
    if out.len() + n > limit {
        return Err(SnappyError::TooLarge);
    }
    let at = out.len();
    out.resize(at + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[at..])
        .map_err(|e| SnappyError::Corrupt(e.to_string()))?;
    out.truncate(at + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_codec_decompresses_within_its_limit() {
        let data = b"some records, some records, some records".repeat(50);
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(&data).unwrap();
        let inputs = [
            (1, gzip(&data)),
            (2, snap::raw::Encoder::new().compress_vec(&data).unwrap()),
            (3, lz4.finish().unwrap()),
            (
                4,
                ruzstd::encoding::compress_to_vec(
                    &data[..],
                    ruzstd::encoding::CompressionLevel::Fastest,
                ),
            ),
        ];
        let mut out = Vec::new();
        for (codec, compressed) in &inputs {
            decompress_into(*codec, compressed, data.len(), &mut out).unwrap();
            assert_eq!(out, data, "codec {codec}");
            let e = decompress_into(*codec, compressed, data.len() - 1, &mut out).unwrap_err();
            assert_eq!(e, DecompressError::TooLarge { limit: data.len() - 1 }, "codec {codec}");
            assert!(out.len() <= data.len() + 1);
        }
    }

    #[test]
    fn garbage_and_unknown_codecs_are_errors() {
        let mut out = Vec::new();
        for codec in 1..=4 {
            let e = decompress_into(codec, &[0xde, 0xad, 0xbe, 0xef, 7, 7, 7], 1 << 20, &mut out);
            // Snappy reads a length first: garbage may claim too much.
            let refused = matches!(
                e,
                Err(DecompressError::Corrupt { .. } | DecompressError::TooLarge { .. })
            );
            assert!(refused, "codec {codec}: {e:?}");
        }
        assert_eq!(decompress_into(5, b"x", 10, &mut out), Err(DecompressError::UnknownCodec(5)));
        // A snappy block claiming 4 GB: refused before allocating.
        let e = decompress_into(2, &[0xff, 0xff, 0xff, 0xff, 0x0f, 0], 1 << 20, &mut out);
        assert!(matches!(e, Err(DecompressError::TooLarge { .. })), "{e:?}");
    }

    #[test]
    fn a_zstd_frame_declaring_a_huge_window_is_refused_before_decoding() {
        // Magic, descriptor (no single segment), window descriptor 0xf8:
        // 2^41 bytes; the limit and the allowed window are far below.
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0, 0, 0];
        let mut out = Vec::new();
        let e = decompress_into(4, &frame, 1 << 20, &mut out).unwrap_err();
        assert_eq!(e, DecompressError::TooLarge { limit: 1 << 20 });
        let real = ruzstd::encoding::compress_to_vec(
            &[7u8; 5000][..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert!(
            zstd_window_bytes(&real)
                .is_some_and(|w| (5000..=ZSTD_WINDOW_BYTES_ALLOWED).contains(&w)),
            "{:?}",
            zstd_window_bytes(&real)
        );
    }

    #[test]
    fn a_zstd_bomb_stops_at_the_limit_and_frames_follow_each_other() {
        let bomb = ruzstd::encoding::compress_to_vec(
            &vec![0u8; 16 << 20][..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let mut out = Vec::new();
        let e = decompress_into(4, &bomb, 1 << 20, &mut out).unwrap_err();
        assert_eq!(e, DecompressError::TooLarge { limit: 1 << 20 });
        assert!(out.len() <= (1 << 20) + 1);
        let frame = |b: &[u8]| {
            ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest)
        };
        let two = [frame(b"first "), frame(b"second")].concat();
        decompress_into(4, &two, 1 << 20, &mut out).unwrap();
        assert_eq!(out, b"first second");
        let garbage = [frame(b"first "), b"not zstd".to_vec()].concat();
        assert!(decompress_into(4, &garbage, 1 << 20, &mut out).is_err());
    }

    #[test]
    fn window_logs_cover_their_bytes() {
        assert_eq!(window_log(1), 10);
        assert_eq!(window_log(8 << 20), 23);
        assert_eq!(window_log((8 << 20) + 1), 24);
        assert_eq!(window_log(64 << 20), 26);
        assert_eq!(window_log(u64::MAX), 31);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let mut out = Vec::new();
        let e = decompress_into(1, &bomb, 1 << 20, &mut out).unwrap_err();
        assert_eq!(e, DecompressError::TooLarge { limit: 1 << 20 });
        assert!(out.len() <= (1 << 20) + 1);
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
        let mut out = Vec::new();
        decompress_into(2, &framed, 100, &mut out).unwrap();
        assert_eq!(out, b"hello world");
    }
}

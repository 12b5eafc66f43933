//! Where a keyed record goes: Java's default partitioner,
//! `toPositive(murmur2(key)) % partitions`, so records land where every
//! Kafka client (Java, librdkafka's `murmur2_random`) puts the same key.
//!
//! Owns the hash only; it must not choose partitions for unkeyed records
//! (the producer does, round robin per batch).

/// Kafka's `Utils.murmur2`: MurmurHash2, 32 bits, seed 0x9747b28c, with
/// Java's little-endian reads of four-byte blocks.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions`, as Java's default
/// partitioner computes it.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors (UtilsTest.testMurmur2 in the Java client).
    #[test]
    fn murmur2_matches_java() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for &(key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partitions_are_positive_and_in_range() {
        // murmur2("21") is negative: toPositive masks the sign bit.
        assert_eq!(partition_for_key(b"21", 1000), (-973932308i32 & 0x7fff_ffff) % 1000);
        for n in 1..20 {
            for k in 0..100u32 {
                let p = partition_for_key(k.to_string().as_bytes(), n);
                assert!((0..n).contains(&p));
            }
        }
    }
}

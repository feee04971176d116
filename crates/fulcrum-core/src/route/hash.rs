//! A fast hash for the host index, in place of std's SipHash.
//!
//! The index keys come from the config, so an attacker can only choose what is
//! looked up, never what is stored: probe lengths are fixed by the table, and
//! SipHash's flooding resistance buys nothing here. This is FxHash's word step
//! (as in rustc) with a murmur3 finalizer so the low bits hashbrown indexes by
//! depend on every input byte. Not fleet-visible: nothing outside this process
//! sees these hashes, so the algorithm may change freely.
use std::hash::{BuildHasher, Hasher};

/// Builds [`FxHasher`]s; unkeyed, so every table hashes alike.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FxBuild;

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;

    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

/// FxHash word mixing over 8-byte chunks.
#[derive(Debug)]
pub(super) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        // `str`'s Hash ends with 0xff: keeps "ab" + "c" apart from "a" + "bc".
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // murmur3 fmix64: spreads high-bit differences into the low bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_hosts_spread_over_low_bits() {
        let buckets: std::collections::HashSet<u64> = (0..1000)
            .map(|i| FxBuild.hash_one(format!("app{i}.example.com").as_str()) & 1023)
            .collect();
        // A uniform hash fills about 632 of 1024 buckets with 1000 keys.
        assert!(buckets.len() > 560, "{}", buckets.len());
    }
}

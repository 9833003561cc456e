//! One fast hash for the short byte strings of the hot paths (flattened
//! keys, partition names), where SipHash's DoS resistance buys nothing: the
//! inputs are bounded per record or per open file.
//!
//! Owns: the hash function and a `HashMap` hasher built on it. Must not:
//! be used where an attacker chooses many keys for one table.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style multiplicative hash over 8-byte words; keys are short.
#[inline]
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 29)
}

/// `hash_bytes` as a `Hasher`.
#[derive(Default)]
pub(crate) struct ShortHasher(u64);

impl Hasher for ShortHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(5) ^ hash_bytes(bytes);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by short strings, hashed with `hash_bytes`.
pub(crate) type ShortKeyMap<K, V> = HashMap<K, V, BuildHasherDefault<ShortHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_alike_and_a_map_finds_them() {
        assert_eq!(
            hash_bytes(b"ordertime=2019111315"),
            hash_bytes(b"ordertime=2019111315")
        );
        assert_ne!(
            hash_bytes(b"ordertime=2019111315"),
            hash_bytes(b"ordertime=2019111316")
        );
        let mut map: ShortKeyMap<String, u32> = ShortKeyMap::default();
        for i in 0..1000u32 {
            map.insert(format!("p={i}"), i);
        }
        assert!((0..1000u32).all(|i| map[&format!("p={i}")] == i));
    }
}

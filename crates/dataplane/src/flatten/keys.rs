//! The keys of a record: the template that predicts them from the record
//! before (so the usual record needs no hashing), the per-record set that
//! detects collisions, and the sink that only lists them.
//!
//! Owns: collision detection's data structures. Must not: walk records or
//! encode values.

use super::error::ErrorKind;
use super::sink::{bytes_eq, Key, Leaf, Sink};
use crate::hash::hash_bytes;

/// The key sequence of a recent record, known to be free of duplicates.
/// A record whose keys match it in order cannot have a collision, which
/// spares hashing every key of the (usual) record shaped like the last.
#[derive(Default)]
pub(super) struct KeyTemplate {
    bytes: Vec<u8>,
    /// End offset of each key in `bytes`.
    ends: Vec<u32>,
    /// Length of each key's last segment when the key has no escapes (raw
    /// bytes = decoded bytes), else 0: such keys can be matched in the input
    /// without scanning the key string.
    plain_last: Vec<u32>,
    /// Keys of the current record matched so far.
    pub(super) matched: usize,
    pub(super) diverged: bool,
}

impl KeyTemplate {
    pub(super) fn start_record(&mut self) {
        self.matched = 0;
        self.diverged = false;
    }

    pub(super) fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// If the next template key has `prefix` and is written plainly, the
    /// length of its last segment when `input` starts with that segment
    /// and a closing quote.
    #[inline(always)]
    pub(super) fn predict(&self, prefix: &[u8], input: &[u8]) -> Option<usize> {
        if self.diverged || self.matched >= self.ends.len() {
            return None;
        }
        let last = self.plain_last[self.matched] as usize;
        let key = self.key(self.matched);
        if last == 0 || key.len() != prefix.len() + last || input.get(last) != Some(&b'"') {
            return None;
        }
        (bytes_eq(&key[..prefix.len()], prefix) && bytes_eq(&key[prefix.len()..], &input[..last]))
            .then_some(last)
    }

    /// Whether `key` is the next key of the template (and so unique so far).
    #[inline(always)]
    pub(super) fn matches_next(&mut self, key: Key<'_>) -> bool {
        if !self.diverged && self.matched < self.ends.len() && key.eq_bytes(self.key(self.matched))
        {
            self.matched += 1;
            return true;
        }
        false
    }

    /// Leave the template: keep its matched prefix, which becomes the start
    /// of the new template this record builds; returns that prefix's keys.
    pub(super) fn diverge(&mut self) -> impl Iterator<Item = &[u8]> {
        self.diverged = true;
        let keep = self.matched;
        let end = if keep == 0 {
            0
        } else {
            self.ends[keep - 1] as usize
        };
        self.bytes.truncate(end);
        self.ends.truncate(keep);
        self.plain_last.truncate(keep);
        let this: &KeyTemplate = self;
        (0..keep).map(move |i| this.key(i))
    }

    pub(super) fn push(&mut self, key: &[u8], plain_last: usize) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len() as u32);
        self.plain_last.push(plain_last as u32);
    }
}

#[derive(Default)]
pub(super) struct KeysSink {
    pub(super) keys: Vec<String>,
}

impl Sink for KeysSink {
    fn begin(&mut self, _: &mut Vec<u8>) {}
    fn leaf(&mut self, _: &mut Vec<u8>, leaf: &Leaf<'_>) -> Result<(), ErrorKind> {
        self.keys
            .push(String::from_utf8_lossy(&leaf.key.to_vec()).into_owned());
        Ok(())
    }
    fn end(&mut self, _: &mut Vec<u8>, _: &[u8]) -> Result<(), ErrorKind> {
        Ok(())
    }
    fn detects_collisions(&self) -> bool {
        false
    }
}

/// Per-record set of decoded keys: open addressing over hashes, cleared in
/// O(1) by bumping a generation, so no allocation per record.
#[derive(Default)]
pub(super) struct KeySet {
    /// (generation, hash, start, len) per slot.
    slots: Vec<(u32, u64, u32, u32)>,
    arena: Vec<u8>,
    generation: u32,
    len: usize,
}

impl KeySet {
    pub(super) fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slots.iter_mut().for_each(|s| s.0 = 0);
            self.generation = 1;
        }
        self.arena.clear();
        self.len = 0;
        if self.slots.is_empty() {
            self.slots.resize(64, (0, 0, 0, 0));
        }
    }

    /// False if `key` was already present.
    #[inline]
    pub(super) fn insert(&mut self, key: &[u8]) -> bool {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let hash = hash_bytes(key);
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let (generation, h, start, len) = self.slots[i];
            if generation != self.generation {
                let start = self.arena.len() as u32;
                self.arena.extend_from_slice(key);
                self.slots[i] = (self.generation, hash, start, key.len() as u32);
                self.len += 1;
                return true;
            }
            if h == hash && &self.arena[start as usize..(start + len) as usize] == key {
                return false;
            }
            i = (i + 1) & mask;
        }
    }

    pub(super) fn grow(&mut self) {
        let live: Vec<_> = self
            .slots
            .iter()
            .copied()
            .filter(|s| s.0 == self.generation)
            .collect();
        self.slots = vec![(0, 0, 0, 0); self.slots.len() * 2];
        let mask = self.slots.len() - 1;
        for s in live {
            let mut i = s.1 as usize & mask;
            while self.slots[i].0 == self.generation {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }
}

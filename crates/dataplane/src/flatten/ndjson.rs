//! NDJSON output of one flattened record.
//!
//! Owns: the NDJSON encoding (pairs copied byte-exact). Must not: walk
//! records.

use super::error::ErrorKind;
use super::sink::{Leaf, ShapeSlot, Sink};

/// NDJSON output: `"key":value` pairs that are compact in the input are
/// copied in one piece. (Batching runs of consecutive pairs into one copy
/// was measured 5% slower: the extra branches cost more than the copies.)
pub(super) struct NdjsonSink {
    pub(super) first: bool,
}

impl Sink for NdjsonSink {
    #[inline]
    fn begin(&mut self, out: &mut Vec<u8>) {
        self.first = true;
        out.push(b'{');
    }

    #[inline]
    fn leaf(&mut self, out: &mut Vec<u8>, leaf: &Leaf<'_>) -> Result<(), ErrorKind> {
        if !self.first {
            out.push(b',');
        }
        self.first = false;
        match leaf.pair {
            Some(pair) if leaf.raw_prefix.is_empty() => out.extend_from_slice(pair),
            Some(pair) => {
                out.push(b'"');
                out.extend_from_slice(leaf.raw_prefix);
                out.extend_from_slice(&pair[1..]);
            }
            None => {
                out.push(b'"');
                out.extend_from_slice(leaf.raw_prefix);
                out.extend_from_slice(leaf.raw_key);
                out.extend_from_slice(b"\":");
                out.extend_from_slice(leaf.value);
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn shaped_leaf(
        &mut self,
        out: &mut Vec<u8>,
        leaf: &Leaf<'_>,
        head: &[u8],
        _slot: ShapeSlot,
    ) -> Result<(), ErrorKind> {
        self.first = false;
        out.extend_from_slice(head);
        out.extend_from_slice(leaf.value);
        Ok(())
    }

    #[inline]
    fn end(&mut self, out: &mut Vec<u8>, _record: &[u8]) -> Result<(), ErrorKind> {
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    fn detects_collisions(&self) -> bool {
        false
    }
}

//! What the walk hands to an output encoding: one leaf at a time.
//!
//! Owns: the `Sink` trait, `Leaf` and `Key` (a decoded key without copying),
//! and the short-slice equality keys are compared with. Must not: encode
//! (`ndjson`, `csv`, `typed` do) or walk records (`flattener`).

use super::error::ErrorKind;
use super::scan::ValueKind;

/// Receives each flattened leaf of one record.
pub(crate) trait Sink {
    fn begin(&mut self, out: &mut Vec<u8>);
    fn leaf(&mut self, out: &mut Vec<u8>, leaf: &Leaf<'_>) -> Result<(), ErrorKind>;
    fn end(&mut self, out: &mut Vec<u8>, record: &[u8]) -> Result<(), ErrorKind>;
    /// A leaf of a record shaped like the last one (`shape`): `head` is
    /// the leaf's NDJSON text before its value, comma included; `slot`
    /// names the leaf within its shape (the same slot, the same key).
    #[inline(always)]
    fn shaped_leaf(
        &mut self,
        out: &mut Vec<u8>,
        leaf: &Leaf<'_>,
        head: &[u8],
        slot: ShapeSlot,
    ) -> Result<(), ErrorKind> {
        let _ = (head, slot);
        self.leaf(out, leaf)
    }
    /// Whether the sink itself guarantees unique keys (CSV slots do).
    fn detects_collisions(&self) -> bool;
}

/// One flattened field, as the sinks see it.
pub(crate) struct Leaf<'a> {
    /// The decoded full key (prefix included), for matching and columns.
    pub key: Key<'a>,
    /// The same key as raw input bytes: prefix (separators included) and last segment.
    pub raw_prefix: &'a [u8],
    pub raw_key: &'a [u8],
    pub value: &'a [u8],
    pub kind: ValueKind,
    /// A string value with escapes: its body is not its text. (Unescaped
    /// strings hold no `"`, `\\` or control character: the scanner
    /// rejects them raw.)
    pub escaped: bool,
    /// `"key":value` exactly as in the input when it has no inner
    /// whitespace, so it can be copied in one go.
    pub pair: Option<&'a [u8]>,
}

/// A leaf's place in a shape: two leaves with the same slot have the same
/// key, so a sink may remember what it worked out for the key (its column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShapeSlot {
    /// The shape's identity (never 0; unique in the process).
    pub shape: u64,
    /// The leaf's index in the shape.
    pub leaf: usize,
}

/// A decoded key without copying when possible: `prefix` + `last`.
#[derive(Clone, Copy)]
pub(crate) struct Key<'a> {
    pub prefix: &'a [u8],
    pub last: &'a [u8],
}

impl Key<'_> {
    #[inline]
    pub fn len(&self) -> usize {
        self.prefix.len() + self.last.len()
    }

    #[inline(always)]
    pub fn eq_bytes(&self, other: &[u8]) -> bool {
        other.len() == self.len()
            && bytes_eq(&other[..self.prefix.len()], self.prefix)
            && bytes_eq(&other[self.prefix.len()..], self.last)
    }

    pub fn to_vec(self) -> Vec<u8> {
        [self.prefix, self.last].concat()
    }
}

/// Equality for short slices (keys, the bytes between values) without a
/// `memcmp` call: two overlapping loads cover 4..=32 bytes.
#[inline(always)]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    let wide =
        |s: &[u8], at: usize| u128::from_le_bytes(s[at..at + 16].try_into().expect("16 bytes"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => wide(a, 0) == wide(b, 0) && wide(a, n - 16) == wide(b, n - 16),
        _ => a == b,
    }
}

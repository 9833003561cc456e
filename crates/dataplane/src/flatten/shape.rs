//! The stream's usual shape, from a recent record the full walk accepted:
//! the exact bytes between its values. A record with the same bytes between
//! its values has the same keys in the same order, so it is flattened by
//! comparing those bytes and scanning only the values: no key scanning,
//! no nesting, no key prediction, no collision check.
//!
//! Owns: recording a shape during the full walk, and the matching walk.
//! Must not: decide keys or collisions itself (a shape is only built from
//! a record the full walk and its sink accepted, so its keys are known to
//! be unique and accepted), or encode output (sinks do). Any difference
//! from the shape, and any error, sends the record back to the full walk,
//! which alone reports errors: both walks accept exactly the same records
//! with exactly the same output. A stream whose records keep changing shape
//! gains nothing and would pay for every failed match and new shape, so the
//! shaped walk rests for a while after a window of mostly misses.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::ErrorKind;
use super::scan::{Cursor, ValueKind};
use super::sink::{bytes_eq, Key, Leaf, ShapeSlot, Sink};

/// Shape identities: unique in the process, never 0.
static NEXT_SHAPE_ID: AtomicU64 = AtomicU64::new(1);

/// Records per window of hit/miss accounting.
const WINDOW: u32 = 64;
/// Records the shaped walk sits out after a window in which more than a
/// third missed. A stream that changes shape from record to record would
/// otherwise pay a failed match, a recording and a new shape for every
/// record (measured: 1.8x slower than the full walk alone on three shapes
/// in turn); a hit saves less than a miss costs, so a third is about even.
const REST: u32 = 16384;
/// Consecutive misses before the full walk records a new shape: a record
/// of another shape now and then (an optional field) leaves the usual
/// shape in place instead of replacing it twice.
const STRIKES: u32 = 2;

/// A byte range in `Shape::bytes`.
#[derive(Clone, Copy, Default)]
struct Span {
    start: u32,
    end: u32,
}

/// One leaf of a shape.
#[derive(Clone, Copy)]
struct ShapeLeaf {
    /// Input bytes from the end of the previous value (or the walk's start)
    /// to the start of this value.
    gap: Span,
    /// The decoded full key.
    key: Span,
    /// The raw key: prefix (separators included) and last segment.
    raw_prefix: Span,
    raw_key: Span,
    /// The leaf's NDJSON output before its value: `,"a_b":`.
    head: Span,
    /// Nesting depth of the object holding the leaf (arrays count from it).
    depth: u32,
}

/// A leaf as the full walk saw it, before the shape is built.
struct Seen {
    value: (usize, usize),
    key: Span,
    raw_prefix: Span,
    raw_key: Span,
    depth: u32,
}

#[derive(Default)]
pub(super) struct Shape {
    ready: bool,
    /// Identity of the shape in use (sinks key per-leaf memos by it).
    id: u64,
    /// Built from an envelope's payload (the walk starts at the payload).
    unwrapped: bool,
    bytes: Vec<u8>,
    leaves: Vec<ShapeLeaf>,
    /// Input bytes after the last value to the end of the walk.
    tail: Span,
    /// The leaf whose value the flattener captures.
    capture: Option<usize>,
    /// Whether the full walk records the current record (not while resting).
    recording: bool,
    window_tried: u32,
    window_missed: u32,
    /// Misses in a row.
    strikes: u32,
    /// Records left before the shaped walk is tried again.
    resting: u32,
    /// The full walk's record of the current record.
    seen: Vec<Seen>,
    seen_bytes: Vec<u8>,
    seen_capture: Option<usize>,
}

/// Where the matching walk stopped short (or rests): the full walk takes
/// the record.
pub(super) struct Miss;

impl Shape {
    /// Forget the shape (the captured key changed).
    pub(super) fn reset(&mut self) {
        self.ready = false;
    }

    /// Start recording a record's leaves in the full walk.
    #[inline]
    pub(super) fn record_start(&mut self) {
        if !self.recording {
            return;
        }
        self.seen.clear();
        self.seen_bytes.clear();
        self.seen_capture = None;
    }

    fn stash(bytes: &mut Vec<u8>, parts: &[&[u8]]) -> Span {
        let start = bytes.len() as u32;
        for part in parts {
            bytes.extend_from_slice(part);
        }
        Span {
            start,
            end: bytes.len() as u32,
        }
    }

    /// Record one leaf of the full walk.
    #[inline(always)]
    pub(super) fn record_leaf(&mut self, leaf: &Leaf<'_>, value: (usize, usize), depth: usize) {
        if self.recording {
            self.keep_leaf(leaf, value, depth);
        }
    }

    #[inline(never)]
    fn keep_leaf(&mut self, leaf: &Leaf<'_>, value: (usize, usize), depth: usize) {
        let b = &mut self.seen_bytes;
        let key = Self::stash(b, &[leaf.key.prefix, leaf.key.last]);
        let raw_prefix = Self::stash(b, &[leaf.raw_prefix]);
        let raw_key = Self::stash(b, &[leaf.raw_key]);
        self.seen.push(Seen {
            value,
            key,
            raw_prefix,
            raw_key,
            depth: depth as u32,
        });
    }

    /// The leaf recorded last holds the captured value.
    #[inline]
    pub(super) fn record_capture(&mut self) {
        if !self.recording {
            return;
        }
        self.seen_capture = self.seen.len().checked_sub(1);
    }

    /// The full walk accepted `record`, walked from `start` to `end`: its
    /// recorded leaves become the shape.
    #[inline(always)]
    pub(super) fn commit(&mut self, record: &[u8], start: usize, end: usize, unwrapped: bool) {
        if self.recording {
            self.build(record, start, end, unwrapped);
        }
    }

    #[inline(never)]
    fn build(&mut self, record: &[u8], start: usize, end: usize, unwrapped: bool) {
        self.bytes.clear();
        self.leaves.clear();
        let mut at = start;
        for (i, seen) in self.seen.iter().enumerate() {
            let part = |s: Span| &self.seen_bytes[s.start as usize..s.end as usize];
            let b = &mut self.bytes;
            let gap = Self::stash(b, &[&record[at..seen.value.0]]);
            let key = Self::stash(b, &[part(seen.key)]);
            let raw_prefix = Self::stash(b, &[part(seen.raw_prefix)]);
            let raw_key = Self::stash(b, &[part(seen.raw_key)]);
            let comma: &[u8] = if i == 0 { b"" } else { b"," };
            let head = Self::stash(
                b,
                &[
                    comma,
                    b"\"",
                    part(seen.raw_prefix),
                    part(seen.raw_key),
                    b"\":",
                ],
            );
            self.leaves.push(ShapeLeaf {
                gap,
                key,
                raw_prefix,
                raw_key,
                head,
                depth: seen.depth,
            });
            at = seen.value.1;
        }
        self.tail = Self::stash(&mut self.bytes, &[&record[at..end]]);
        self.capture = self.seen_capture;
        self.unwrapped = unwrapped;
        self.id = NEXT_SHAPE_ID.fetch_add(1, Ordering::Relaxed);
        self.ready = true;
    }

    #[inline(always)]
    fn get(&self, s: Span) -> &[u8] {
        &self.bytes[s.start as usize..s.end as usize]
    }

    /// Flatten `record` from `start` (0, or an envelope's payload) if it has
    /// this shape. On success returns the captured value's range and kind;
    /// on a miss `out` and `sink` may hold part of the record: the caller
    /// truncates `out` and the full walk begins the sink again.
    #[inline]
    pub(super) fn walk<S: Sink>(
        &mut self,
        record: &[u8],
        start: Option<usize>,
        max_depth: usize,
        out: &mut Vec<u8>,
        sink: &mut S,
    ) -> Result<Option<(usize, usize, ValueKind)>, Miss> {
        if self.resting > 0 {
            self.resting -= 1;
            self.recording = false;
            return Err(Miss);
        }
        let result = self.matching_walk(record, start, max_depth, out, sink);
        self.strikes = if result.is_ok() { 0 } else { self.strikes + 1 };
        self.recording = !self.ready || self.strikes >= STRIKES;
        self.window_tried += 1;
        self.window_missed += result.is_err() as u32;
        if self.window_tried == WINDOW {
            if self.window_missed * 3 > WINDOW {
                self.resting = REST;
                self.recording = false;
            }
            self.window_tried = 0;
            self.window_missed = 0;
        }
        result
    }

    #[inline(always)]
    fn matching_walk<S: Sink>(
        &self,
        record: &[u8],
        start: Option<usize>,
        max_depth: usize,
        out: &mut Vec<u8>,
        sink: &mut S,
    ) -> Result<Option<(usize, usize, ValueKind)>, Miss> {
        if !self.ready || self.unwrapped != start.is_some() {
            return Err(Miss);
        }
        let mut c = Cursor::new(record);
        c.pos = start.unwrap_or(0);
        let mut captured = None;
        sink.begin(out);
        for (i, leaf) in self.leaves.iter().enumerate() {
            let gap = self.get(leaf.gap);
            match record.get(c.pos..c.pos + gap.len()) {
                Some(bytes) if bytes_eq(bytes, gap) => c.pos += gap.len(),
                _ => return Err(Miss),
            }
            let value_start = c.pos;
            let (kind, escaped) = match c.peek() {
                Some(b'"') => {
                    c.pos += 1;
                    (ValueKind::String, c.string().map_err(|_| Miss)?)
                }
                Some(b'0'..=b'9' | b'-') => {
                    c.number().map_err(|_| Miss)?;
                    (ValueKind::Number, false)
                }
                // An object here is nesting: a different shape.
                Some(b'{') | None => return Err(Miss),
                Some(_) => (
                    c.value(leaf.depth as usize, max_depth).map_err(|_| Miss)?,
                    false,
                ),
            };
            let value = &record[value_start..c.pos];
            if self.capture == Some(i) {
                captured = Some((value_start, c.pos, kind));
            }
            let shaped = Leaf {
                key: Key {
                    prefix: &[],
                    last: self.get(leaf.key),
                },
                raw_prefix: self.get(leaf.raw_prefix),
                raw_key: self.get(leaf.raw_key),
                value,
                kind,
                escaped,
                pair: None,
            };
            let slot = ShapeSlot {
                shape: self.id,
                leaf: i,
            };
            sink.shaped_leaf(out, &shaped, self.get(leaf.head), slot)
                .map_err(|_: ErrorKind| Miss)?;
        }
        let tail = self.get(self.tail);
        let end = c.pos + tail.len();
        match record.get(c.pos..end) {
            Some(bytes) if bytes_eq(bytes, tail) => {}
            _ => return Err(Miss),
        }
        if start.is_none() && end != record.len() {
            return Err(Miss);
        }
        sink.end(out, record).map_err(|_| Miss)?;
        Ok(captured)
    }
}

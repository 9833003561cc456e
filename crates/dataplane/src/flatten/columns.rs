//! Fixed-column outputs share one job: find a flattened key's column, and
//! refuse a key that a record sets twice, or that is no column (unless
//! unknown keys are dropped: then the key's value is skipped and counted).
//!
//! Owns: the key -> column index of a layout, the per-record "already
//! set" marks (a generation counter, so a new record clears nothing), the
//! memo of each shape leaf's column (a shaped record compares no keys),
//! and the count of dropped keys. Must not: encode values (the CSV and
//! typed sinks do) or scan JSON.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::sink::ShapeSlot;
use super::{ErrorKind, Key};

static NEXT_LAYOUT_ID: AtomicU64 = AtomicU64::new(1);

/// The "column" of a key that is no column when unknown keys are dropped:
/// the sink skips its value.
pub(super) const DROPPED: usize = u32::MAX as usize;

/// Distinct dropped key names kept for reports (the first ones seen).
const DROPPED_NAMES: usize = 8;

/// A new layout's identity: a sink re-attaches only when the layout changes.
pub(super) fn new_layout_id() -> u64 {
    NEXT_LAYOUT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Which column each key of a record goes to, for one layout at a time.
#[derive(Default)]
pub(super) struct ColumnSlots {
    /// Identity of the attached layout (0 = none yet).
    layout: u64,
    index: HashMap<Vec<u8>, usize>,
    names: Vec<Vec<u8>>,
    /// The generation in which each column was last set.
    set: Vec<u32>,
    generation: u32,
    /// Column expected next: records usually follow the layout's order.
    next: usize,
    /// What the columns are, for errors ("the CSV header", "the schema").
    of: &'static str,
    /// The column of each leaf of shape `by_leaf_shape`, as claimed once.
    by_leaf: Vec<u32>,
    by_leaf_shape: u64,
    /// Skip (and count) keys that are no column instead of refusing them.
    drop_unknown: bool,
    /// Values of unknown keys skipped so far (never reset).
    pub(super) dropped: u64,
    /// The first distinct unknown keys skipped.
    pub(super) dropped_names: Vec<String>,
}

impl ColumnSlots {
    /// Use these columns (cheap when `id` is the layout attached last);
    /// returns whether the layout changed.
    pub(super) fn attach<'a>(
        &mut self,
        id: u64,
        of: &'static str,
        drop_unknown: bool,
        columns: impl Iterator<Item = &'a str>,
    ) -> bool {
        if self.drop_unknown != drop_unknown {
            // The memo holds the other policy's answers.
            self.drop_unknown = drop_unknown;
            self.by_leaf_shape = 0;
            self.by_leaf.clear();
        }
        if self.layout == id {
            return false;
        }
        self.layout = id;
        self.of = of;
        self.names = columns.map(|c| c.as_bytes().to_vec()).collect();
        self.index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        self.set = vec![0; self.names.len()];
        self.generation = 0;
        self.by_leaf_shape = 0;
        self.by_leaf.clear();
        true
    }

    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    /// Start a record: no column is set.
    #[inline]
    pub(super) fn begin(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.set.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        self.next = 0;
    }

    /// The column of `key`, now marked set (or `DROPPED`: no column, and
    /// unknown keys are dropped); an error if it is no column or was set
    /// before in this record. Small enough to inline into the walk:
    /// the lookup of a key out of order and the errors are out of line
    /// (called once per leaf, the function call alone was 3% of a CSV
    /// backfill's instructions).
    #[inline(always)]
    pub(super) fn claim(&mut self, key: Key<'_>) -> Result<usize, ErrorKind> {
        let found = if self.names.get(self.next).is_some_and(|n| key.eq_bytes(n)) {
            Some(self.next)
        } else {
            self.find(key)
        };
        match found {
            Some(col) if self.set[col] != self.generation => {
                self.set[col] = self.generation;
                self.next = col + 1;
                Ok(col)
            }
            _ => self.refuse(key, found),
        }
    }

    /// `claim` for a leaf of a shape: the column this shape's leaf was
    /// claimed for before, without comparing keys. A shape's keys are
    /// unique (only an accepted record becomes a shape), so the column is
    /// not set yet in this record.
    #[inline(always)]
    pub(super) fn claim_shaped(
        &mut self,
        key: Key<'_>,
        slot: ShapeSlot,
    ) -> Result<usize, ErrorKind> {
        if self.by_leaf_shape == slot.shape {
            if let Some(&col) = self.by_leaf.get(slot.leaf) {
                let col = col as usize;
                if col == DROPPED {
                    self.dropped += 1;
                    return Ok(DROPPED);
                }
                debug_assert_ne!(self.set[col], self.generation, "a shape key twice");
                self.set[col] = self.generation;
                self.next = col + 1;
                return Ok(col);
            }
        } else {
            self.by_leaf_shape = slot.shape;
            self.by_leaf.clear();
        }
        let col = self.claim(key)?;
        if self.by_leaf.len() == slot.leaf {
            self.by_leaf.push(col as u32);
        }
        Ok(col)
    }

    /// The column of a key that is not the one expected next.
    #[inline(never)]
    fn find(&self, key: Key<'_>) -> Option<usize> {
        if key.prefix.is_empty() {
            self.index.get(key.last).copied()
        } else {
            self.index.get(&key.to_vec()).copied()
        }
    }

    /// A key that is not the next free column: dropped (no such column,
    /// and unknown keys are dropped), or why it cannot be claimed.
    #[cold]
    #[inline(never)]
    fn refuse(&mut self, key: Key<'_>, found: Option<usize>) -> Result<usize, ErrorKind> {
        let key = String::from_utf8_lossy(&key.to_vec()).into_owned();
        match found {
            None if self.drop_unknown => {
                self.dropped += 1;
                if self.dropped_names.len() < DROPPED_NAMES && !self.dropped_names.contains(&key) {
                    self.dropped_names.push(key);
                }
                Ok(DROPPED)
            }
            None => Err(ErrorKind::UnknownColumn { key, of: self.of }),
            Some(_) => Err(ErrorKind::Collision { key }),
        }
    }

    /// Whether the current record set column `col`.
    #[inline]
    pub(super) fn is_set(&self, col: usize) -> bool {
        self.set[col] == self.generation
    }
}

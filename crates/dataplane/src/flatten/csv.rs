//! CSV encoding of flattened records: a fixed column layout (from an Avro
//! schema or the first record), RFC 4180 quoting, JSON strings decoded.
//!
//! Owns: the header and the per-record CSV fields (`columns` maps keys to
//! columns).
//! Must not: scan JSON (it receives validated leaves from the flattener).

use std::collections::HashSet;

use super::columns::{new_layout_id, ColumnSlots, DROPPED};
use super::scan::{decode_string, ValueKind};
use super::sink::ShapeSlot;
use super::{ErrorKind, Leaf, Sink};

/// The columns of a CSV output, in order. Rows end with LF, not CRLF: Hive
/// and Spark read the lake line by line and would keep a CR in the last column.
#[derive(Debug, Clone)]
pub struct CsvLayout {
    /// Identity, so a flattener re-attaches only when the layout changes.
    id: u64,
    columns: Vec<String>,
}

impl CsvLayout {
    pub fn new(columns: Vec<String>) -> Result<Self, String> {
        let mut seen = HashSet::with_capacity(columns.len());
        for c in &columns {
            if !seen.insert(c.as_str()) {
                return Err(format!("column `{c}` appears twice"));
            }
        }
        let id = new_layout_id();
        Ok(CsvLayout { id, columns })
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The header row, newline-terminated.
    pub fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_quoted_if_needed(c.as_bytes(), &mut out);
        }
        out.push(b'\n');
        out
    }
}

/// Append `field`, quoted (and inner quotes doubled) when RFC 4180 requires it.
fn push_quoted_if_needed(field: &[u8], out: &mut Vec<u8>) {
    let needs = field
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !needs {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    for &b in field {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// One record's row. Fields that arrive in column order (the usual
/// record) are written straight to the output; the first field that
/// arrives after a later column moves the row so far to an arena, and the
/// row is assembled in column order at the end.
#[derive(Default)]
pub(super) struct CsvSink {
    columns: ColumnSlots,
    /// (start, end) per column set in this record: into the output while
    /// `direct`, else into `arena`.
    ranges: Vec<(u32, u32)>,
    arena: Vec<u8>,
    decoded: Vec<u8>,
    /// The row is being written to the output in column order.
    direct: bool,
    /// Where the row starts in the output.
    mark: usize,
    /// Columns `0..written` are in the output (commas between, none after).
    written: usize,
    /// The row has no value decoded from escapes and no JSON text: so no
    /// line break, carriage return or NUL anywhere in it.
    pub(super) plain: bool,
}

impl CsvSink {
    /// Its column lookup (the dropped-key count lives there).
    pub(super) fn columns(&self) -> &ColumnSlots {
        &self.columns
    }

    /// Use `layout`'s columns (cheap when it is the same layout as last time).
    pub(super) fn attach(&mut self, layout: &CsvLayout, drop_unknown: bool) {
        let names = layout.columns.iter().map(String::as_str);
        if self
            .columns
            .attach(layout.id, "the CSV header", drop_unknown, names)
        {
            self.ranges = vec![(0, 0); self.columns.len()];
        }
    }

    /// A column came after a later one: move the row written so far to the
    /// arena, where fields are kept until `end` puts them in order.
    #[cold]
    #[inline(never)]
    fn leave_direct(&mut self, out: &mut Vec<u8>) {
        self.direct = false;
        self.arena.clear();
        self.arena.extend_from_slice(&out[self.mark..]);
        let mark = self.mark as u32;
        for (col, range) in self.ranges.iter_mut().enumerate().take(self.written) {
            if self.columns.is_set(col) {
                *range = (range.0 - mark, range.1 - mark);
            }
        }
        out.truncate(self.mark);
    }

    /// Write `leaf` as column `col`'s field.
    #[inline(always)]
    fn put(&mut self, out: &mut Vec<u8>, leaf: &Leaf<'_>, col: usize) {
        if self.direct && col < self.written {
            self.leave_direct(out);
        }
        let start;
        if self.direct {
            // Empty fields for the columns skipped, then this one.
            for k in self.written..=col {
                if k > 0 {
                    out.push(b',');
                }
            }
            start = out.len();
            self.field(false, out, leaf);
            self.written = col + 1;
            self.ranges[col] = (start as u32, out.len() as u32);
        } else {
            start = self.arena.len();
            self.field(true, out, leaf);
            self.ranges[col] = (start as u32, self.arena.len() as u32);
        }
    }

    /// Append one field's CSV text to `to`.
    #[inline(always)]
    fn field(&mut self, to_arena: bool, out: &mut Vec<u8>, leaf: &Leaf<'_>) {
        let to = if to_arena { &mut self.arena } else { out };
        let value = leaf.value;
        match leaf.kind {
            ValueKind::String => {
                let body = &value[1..value.len() - 1];
                if !leaf.escaped {
                    // `""` keeps an empty string apart from null (an empty
                    // field). Unescaped, only a comma can need quotes: no
                    // `"`, CR or LF can be in the body.
                    if body.is_empty() || body.contains(&b',') {
                        to.push(b'"');
                        to.extend_from_slice(body);
                        to.push(b'"');
                    } else {
                        to.extend_from_slice(body);
                    }
                } else {
                    self.plain = false;
                    self.decoded.clear();
                    decode_string(body, &mut self.decoded);
                    push_quoted_if_needed(&self.decoded, to);
                }
            }
            ValueKind::Null => {}
            ValueKind::Array | ValueKind::Object => {
                self.plain = false;
                push_quoted_if_needed(value, to)
            }
            ValueKind::Number | ValueKind::True | ValueKind::False => to.extend_from_slice(value),
        }
    }
}

impl Sink for CsvSink {
    #[inline]
    fn begin(&mut self, out: &mut Vec<u8>) {
        self.columns.begin();
        self.direct = true;
        self.mark = out.len();
        self.written = 0;
        self.plain = true;
    }

    #[inline]
    fn leaf(&mut self, out: &mut Vec<u8>, leaf: &Leaf<'_>) -> Result<(), ErrorKind> {
        let col = self.columns.claim(leaf.key)?;
        if col != DROPPED {
            self.put(out, leaf, col);
        }
        Ok(())
    }

    #[inline]
    fn shaped_leaf(
        &mut self,
        out: &mut Vec<u8>,
        leaf: &Leaf<'_>,
        _head: &[u8],
        slot: ShapeSlot,
    ) -> Result<(), ErrorKind> {
        let col = self.columns.claim_shaped(leaf.key, slot)?;
        if col != DROPPED {
            self.put(out, leaf, col);
        }
        Ok(())
    }

    #[inline]
    fn end(&mut self, out: &mut Vec<u8>, _record: &[u8]) -> Result<(), ErrorKind> {
        if self.direct {
            for k in self.written..self.ranges.len() {
                if k > 0 {
                    out.push(b',');
                }
            }
            out.push(b'\n');
            return Ok(());
        }
        for (i, &(start, end)) in self.ranges.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if self.columns.is_set(i) {
                out.extend_from_slice(&self.arena[start as usize..end as usize]);
            }
        }
        out.push(b'\n');
        Ok(())
    }

    fn detects_collisions(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FlattenConfig, Flattener};
    use super::*;

    fn csv(layout: &[&str], record: &str) -> Result<String, ErrorKind> {
        let layout = CsvLayout::new(layout.iter().map(|s| s.to_string()).collect()).unwrap();
        let mut f = Flattener::new(FlattenConfig::default());
        let mut out = Vec::new();
        f.flatten_csv(record.as_bytes(), &layout, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn columns_follow_the_layout_and_strings_are_decoded_and_quoted() {
        let row = csv(
            &["a", "b_c", "d", "e", "f", "g"],
            r#"{"b":{"c":"say \"hi\", ok"},"a":1.50,"e":null,"f":[1,2],"g":"","d":"caf\u00e9\nline"}"#,
        )
        .unwrap();
        assert_eq!(
            row,
            "1.50,\"say \"\"hi\"\", ok\",\"café\nline\",,\"[1,2]\",\"\"\n"
        );
    }

    #[test]
    fn missing_keys_are_empty_and_unknown_keys_are_errors() {
        assert_eq!(csv(&["a", "b"], r#"{"b":true}"#).unwrap(), ",true\n");
        assert_eq!(
            csv(&["a"], r#"{"a":1,"z":{"y":2}}"#),
            Err(ErrorKind::UnknownColumn {
                key: "z_y".into(),
                of: "the CSV header"
            })
        );
        assert_eq!(
            csv(&["a"], r#"{"a":1,"a":2}"#),
            Err(ErrorKind::Collision { key: "a".into() })
        );
    }

    #[test]
    fn header_is_quoted_when_needed() {
        let l = CsvLayout::new(vec!["a".into(), "b,c".into()]).unwrap();
        assert_eq!(l.header(), b"a,\"b,c\"\n");
        assert!(CsvLayout::new(vec!["a".into(), "a".into()]).is_err());
    }
}

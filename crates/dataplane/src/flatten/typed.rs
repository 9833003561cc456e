//! Typed rows: a flattened record checked against typed columns (from an
//! Avro schema) and encoded as binary values in column order, in the same
//! pass that flattens it — so a columnar writer (Parquet) takes numbers and
//! strings as they are, without parsing JSON a second time.
//!
//! Row encoding (internal to this crate; `TypedRow` reads it back): per
//! column, in layout order, one tag byte (0 = null or absent, 1 = a value)
//! and for a value: a byte (boolean), 4 bytes LE (int32, float), 8 bytes
//! LE (int64, double) or a 4-byte LE length and the bytes (string: decoded;
//! JSON: the value's text as in the input).
//!
//! Owns: the key -> typed column check (a value that does not fit is an
//! error naming the column, its type and the value), that encoding, and
//! handing a checked record's values straight to a columnar destination
//! (`TypedColumns`) without encoding a row.
//! Must not: write files or know Parquet (`ingest::parquet` does).

use std::collections::HashSet;

use super::columns::{new_layout_id, ColumnSlots, DROPPED};
use super::scan::{decode_string, ValueKind};
use super::sink::ShapeSlot;
use super::{ErrorKind, Leaf, Sink};
use lake_contract::schema::ColumnType;

/// The typed columns of a table, in order.
#[derive(Debug, Clone)]
pub struct TypedLayout {
    /// Identity, so a flattener re-attaches only when the layout changes.
    id: u64,
    columns: Vec<(String, ColumnType)>,
}

impl TypedLayout {
    pub fn new(columns: Vec<(String, ColumnType)>) -> Result<TypedLayout, String> {
        if columns.is_empty() {
            return Err("a typed layout needs at least one column".into());
        }
        let mut seen = HashSet::with_capacity(columns.len());
        for (name, _) in &columns {
            if !seen.insert(name.as_str()) {
                return Err(format!("column `{name}` appears twice"));
            }
        }
        Ok(TypedLayout {
            id: new_layout_id(),
            columns,
        })
    }

    pub fn columns(&self) -> &[(String, ColumnType)] {
        &self.columns
    }
}

/// One value of a typed row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TypedValue<'a> {
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    /// A string (decoded UTF-8) or a JSON column's text.
    Bytes(&'a [u8]),
}

/// Reads the values of one encoded row, column by column.
pub struct TypedRow<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> TypedRow<'a> {
    pub fn new(row: &'a [u8]) -> Self {
        TypedRow { buf: row, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or_else(|| format!("a typed row ends early at byte {}", self.pos))?;
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    /// The next column's value (`None` = null), read as `ty`.
    #[inline]
    pub fn next(&mut self, ty: ColumnType) -> Result<Option<TypedValue<'a>>, String> {
        if self.take(1)?[0] == 0 {
            return Ok(None);
        }
        Ok(Some(match ty {
            ColumnType::Boolean => TypedValue::Bool(self.take(1)?[0] != 0),
            ColumnType::Int32 => TypedValue::I32(i32::from_le_bytes(self.array()?)),
            ColumnType::Int64 => TypedValue::I64(i64::from_le_bytes(self.array()?)),
            ColumnType::Float => TypedValue::F32(f32::from_le_bytes(self.array()?)),
            ColumnType::Double => TypedValue::F64(f64::from_le_bytes(self.array()?)),
            ColumnType::String | ColumnType::Json => {
                let len = u32::from_le_bytes(self.array()?) as usize;
                TypedValue::Bytes(self.take(len)?)
            }
        }))
    }
}

/// Where a record's typed values go when they are not encoded as a row:
/// a columnar writer's buffers (`Flattener::typed_values`).
pub trait TypedColumns {
    /// Column `column` (layout order) of the row: a value, or null.
    fn push(&mut self, column: usize, value: Option<TypedValue<'_>>);
    /// The row is complete; `bytes` is its size as an encoded typed row.
    fn end_row(&mut self, bytes: usize);
}

/// One column's value in the current record (strings: a range of the
/// sink's arena).
#[derive(Debug, Clone, Copy, Default)]
enum Slot {
    #[default]
    Null,
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Bytes(u32, u32),
}

/// Per-record typed values, one slot per column, handed over in column
/// order at the end (as a row into the output, or kept for `emit`).
#[derive(Default)]
pub(super) struct TypedSink {
    /// Encode the row into the output at the end of the record (else the
    /// values wait in their slots for `emit`).
    pub(super) encode_row: bool,
    columns: ColumnSlots,
    types: Vec<ColumnType>,
    /// Each set column's value (`columns` says which are set).
    slots: Vec<Slot>,
    /// String and JSON values' bytes (decoded strings).
    arena: Vec<u8>,
    decoded: Vec<u8>,
}

impl TypedSink {
    /// Its column lookup (the dropped-key count lives there).
    pub(super) fn columns(&self) -> &ColumnSlots {
        &self.columns
    }

    /// Use `layout`'s columns (cheap when it is the same layout as last time).
    pub(super) fn attach(&mut self, layout: &TypedLayout, drop_unknown: bool) {
        let names = layout.columns.iter().map(|(n, _)| n.as_str());
        if self
            .columns
            .attach(layout.id, "the schema", drop_unknown, names)
        {
            self.types = layout.columns.iter().map(|(_, t)| *t).collect();
            self.slots = vec![Slot::Null; layout.columns.len()];
        }
    }

    /// Column `i`'s value in the record just flattened (None: null or absent).
    #[inline(always)]
    fn value(&self, i: usize) -> Option<TypedValue<'_>> {
        if !self.columns.is_set(i) {
            return None;
        }
        Some(match self.slots[i] {
            Slot::Null => return None,
            Slot::Bool(v) => TypedValue::Bool(v),
            Slot::I32(v) => TypedValue::I32(v),
            Slot::I64(v) => TypedValue::I64(v),
            Slot::F32(v) => TypedValue::F32(v),
            Slot::F64(v) => TypedValue::F64(v),
            Slot::Bytes(start, end) => TypedValue::Bytes(&self.arena[start as usize..end as usize]),
        })
    }

    /// The values of the record just flattened, column by column, to `to`.
    pub(super) fn emit<C: TypedColumns>(&self, to: &mut C) {
        let mut bytes = 0;
        for i in 0..self.slots.len() {
            let value = self.value(i);
            bytes += encoded_len(value);
            to.push(i, value);
        }
        to.end_row(bytes);
    }

    /// `leaf`'s value as `ty`; None if it does not fit.
    #[inline]
    fn encode(&mut self, ty: ColumnType, leaf: &Leaf<'_>) -> Option<Slot> {
        let (value, kind) = (leaf.value, leaf.kind);
        Some(match (ty, kind) {
            (ColumnType::Boolean, ValueKind::True) => Slot::Bool(true),
            (ColumnType::Boolean, ValueKind::False) => Slot::Bool(false),
            (ColumnType::Int32, ValueKind::Number) => {
                Slot::I32(parse_int(value).and_then(|n| i32::try_from(n).ok())?)
            }
            (ColumnType::Int64, ValueKind::Number) => Slot::I64(parse_int(value)?),
            (ColumnType::Float, ValueKind::Number) => {
                let x = parse_float(value)? as f32;
                Slot::F32(x.is_finite().then_some(x)?)
            }
            (ColumnType::Double, ValueKind::Number) => Slot::F64(parse_float(value)?),
            (ColumnType::String, ValueKind::String) => {
                let body = &value[1..value.len() - 1];
                let start = self.arena.len() as u32;
                if !leaf.escaped {
                    self.arena.extend_from_slice(body);
                } else {
                    self.decoded.clear();
                    decode_string(body, &mut self.decoded);
                    self.arena.extend_from_slice(&self.decoded);
                }
                Slot::Bytes(start, self.arena.len() as u32)
            }
            (ColumnType::Json, _) => {
                let start = self.arena.len() as u32;
                self.arena.extend_from_slice(value);
                Slot::Bytes(start, self.arena.len() as u32)
            }
            _ => return None,
        })
    }
}

/// A value's size in the row encoding (the tag byte included).
#[inline(always)]
fn encoded_len(value: Option<TypedValue<'_>>) -> usize {
    1 + match value {
        None => 0,
        Some(TypedValue::Bool(_)) => 1,
        Some(TypedValue::I32(_) | TypedValue::F32(_)) => 4,
        Some(TypedValue::I64(_) | TypedValue::F64(_)) => 8,
        Some(TypedValue::Bytes(b)) => 4 + b.len(),
    }
}

/// Append one value in the row encoding (the module's doc says how).
fn encode_value(value: Option<TypedValue<'_>>, out: &mut Vec<u8>) {
    let Some(value) = value else {
        out.push(0);
        return;
    };
    out.push(1);
    match value {
        TypedValue::Bool(v) => out.push(v as u8),
        TypedValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        TypedValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        TypedValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        TypedValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        TypedValue::Bytes(b) => {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// A JSON integer literal (no fraction, no exponent) that fits an i64.
#[inline]
fn parse_int(v: &[u8]) -> Option<i64> {
    let (negative, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    if negative {
        (n <= i64::MAX as u64 + 1).then(|| (n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

/// A JSON number as a finite double.
#[inline]
fn parse_float(v: &[u8]) -> Option<f64> {
    fast_float2::parse::<f64, _>(v)
        .ok()
        .filter(|x| x.is_finite())
}

/// A value's JSON text for an error message, shortened when long.
fn shown(value: &[u8]) -> String {
    const MAX: usize = 64;
    let text = String::from_utf8_lossy(value);
    if text.chars().count() <= MAX {
        return text.into_owned();
    }
    let mut short: String = text.chars().take(MAX).collect();
    short.push('…');
    short
}

impl Sink for TypedSink {
    #[inline]
    fn begin(&mut self, _out: &mut Vec<u8>) {
        self.columns.begin();
        self.arena.clear();
    }

    #[inline]
    fn leaf(&mut self, _out: &mut Vec<u8>, leaf: &Leaf<'_>) -> Result<(), ErrorKind> {
        let col = self.columns.claim(leaf.key)?;
        if col == DROPPED {
            return Ok(());
        }
        self.put(leaf, col)
    }

    #[inline]
    fn shaped_leaf(
        &mut self,
        _out: &mut Vec<u8>,
        leaf: &Leaf<'_>,
        _head: &[u8],
        slot: ShapeSlot,
    ) -> Result<(), ErrorKind> {
        let col = self.columns.claim_shaped(leaf.key, slot)?;
        if col == DROPPED {
            return Ok(());
        }
        self.put(leaf, col)
    }

    #[inline]
    fn end(&mut self, out: &mut Vec<u8>, _record: &[u8]) -> Result<(), ErrorKind> {
        if self.encode_row {
            for i in 0..self.slots.len() {
                encode_value(self.value(i), out);
            }
        }
        Ok(())
    }

    fn detects_collisions(&self) -> bool {
        true
    }
}

impl TypedSink {
    /// Check `leaf` against column `col`'s type and keep its value.
    #[inline(always)]
    fn put(&mut self, leaf: &Leaf<'_>, col: usize) -> Result<(), ErrorKind> {
        let slot = if leaf.kind == ValueKind::Null {
            Some(Slot::Null)
        } else {
            self.encode(self.types[col], leaf)
        };
        match slot {
            Some(slot) => {
                self.slots[col] = slot;
                Ok(())
            }
            None => Err(ErrorKind::Type {
                key: String::from_utf8_lossy(&leaf.key.to_vec()).into_owned(),
                column: self.types[col],
                value: shown(leaf.value),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FlattenConfig, Flattener};
    use super::*;

    /// The byte parser gives std's bits (`str::parse::<f64>`) for every
    /// JSON number form: shortest forms of random doubles, long decimals,
    /// exponents, out-of-range and subnormal values.
    #[test]
    fn doubles_parse_to_the_same_bits_as_std() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "9007199254740993",
            "0.1",
            "1.7976931348623157e308",
            "1.8e308",
            "-1e400",
            "4.9e-324",
            "2e-324",
            "1e-400",
            "123456789012345678901234567890",
            "123456789012345678901234567890e-99999",
            "1E+2",
            "0.30000000000000004",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..100_000 {
            let bits = next();
            let f = f64::from_bits(bits);
            if f.is_finite() {
                texts.push(format!("{f}"));
                texts.push(format!("{f:e}"));
            }
            texts.push(format!(
                "{}",
                (bits >> 11) as f64 / (1u64 << (bits % 53)) as f64
            ));
            let digits = next().to_string() + &next().to_string();
            let point = (next() as usize) % (digits.len() + 1);
            let (int, frac) = digits.split_at(point);
            let int = int.trim_start_matches('0');
            let int = if int.is_empty() { "0" } else { int };
            let exp = (next() % 700) as i64 - 350;
            texts.push(format!("{int}.{frac}0e{exp}"));
        }
        for text in &texts {
            let want = text.parse::<f64>().ok().filter(|x| x.is_finite());
            let got = parse_float(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{text}");
        }
    }

    fn layout() -> TypedLayout {
        TypedLayout::new(vec![
            ("ordertime".into(), ColumnType::Int64),
            ("orderid".into(), ColumnType::Int32),
            ("itemid".into(), ColumnType::String),
            ("orderunits".into(), ColumnType::Double),
            ("gift".into(), ColumnType::Boolean),
            ("tags".into(), ColumnType::Json),
            ("ratio".into(), ColumnType::Float),
        ])
        .unwrap()
    }

    fn typed(record: &str) -> Result<Vec<Option<String>>, String> {
        let layout = layout();
        let mut f = Flattener::new(FlattenConfig::default());
        let mut out = Vec::new();
        f.flatten_typed(record.as_bytes(), &layout, &mut out)
            .map_err(|e| e.to_string())?;
        let mut row = TypedRow::new(&out);
        let values = layout
            .columns()
            .iter()
            .map(|(_, ty)| {
                row.next(*ty).unwrap().map(|v| match v {
                    TypedValue::Bytes(b) => String::from_utf8(b.to_vec()).unwrap(),
                    other => format!("{other:?}"),
                })
            })
            .collect();
        assert!(
            row.next(ColumnType::Boolean).is_err(),
            "nothing after the row"
        );
        Ok(values)
    }

    #[test]
    fn values_are_typed_in_column_order() {
        let values = typed(
            r#"{"gift":true,"tags":[1, {"a":null}],"itemid":"caf\u00e9 \"q\"","ordertime":-9223372036854775808,"orderid":2147483647,"orderunits":1e3,"ratio":0.5}"#,
        )
        .unwrap();
        assert_eq!(
            values,
            [
                Some("I64(-9223372036854775808)".into()),
                Some("I32(2147483647)".into()),
                Some("café \"q\"".into()),
                Some("F64(1000.0)".into()),
                Some("Bool(true)".into()),
                Some(r#"[1, {"a":null}]"#.into()),
                Some("F32(0.5)".into()),
            ]
        );
        // Absent and null are both null; an empty string is a value.
        assert_eq!(
            typed(r#"{"orderid":null,"itemid":"","tags":null}"#).unwrap(),
            [None, None, Some(String::new()), None, None, None, None]
        );
        // A JSON column takes any value as its text.
        assert_eq!(
            typed(r#"{"tags":"x"}"#).unwrap()[5].as_deref(),
            Some("\"x\"")
        );
    }

    #[test]
    fn values_that_do_not_fit_are_named() {
        let cases = [
            (
                r#"{"orderid":"7"}"#,
                r#"column `orderid` is Int32 in the schema; the record has "7""#,
            ),
            (
                r#"{"orderid":4294967296}"#,
                "column `orderid` is Int32 in the schema; the record has 4294967296",
            ),
            (
                r#"{"ordertime":1.5}"#,
                "column `ordertime` is Int64 in the schema; the record has 1.5",
            ),
            (
                r#"{"ordertime":9223372036854775808}"#,
                "column `ordertime` is Int64 in the schema; the record has 9223372036854775808",
            ),
            (
                r#"{"ordertime":1e3}"#,
                "column `ordertime` is Int64 in the schema; the record has 1e3",
            ),
            (
                r#"{"orderunits":1e400}"#,
                "column `orderunits` is Double in the schema; the record has 1e400",
            ),
            (
                r#"{"ratio":1e39}"#,
                "column `ratio` is Float in the schema; the record has 1e39",
            ),
            (
                r#"{"gift":"yes"}"#,
                r#"column `gift` is Boolean in the schema; the record has "yes""#,
            ),
            (
                r#"{"itemid":{"a":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]}}"#,
                "key `itemid_a` is not a column of the schema",
            ),
            (
                r#"{"itemid":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]}"#,
                "column `itemid` is String in the schema; the record has [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,…",
            ),
            (
                r#"{"colour":"red"}"#,
                "key `colour` is not a column of the schema",
            ),
            (
                r#"{"orderid":1,"orderid":2}"#,
                "flattened key `orderid` occurs twice",
            ),
        ];
        for (record, reason) in cases {
            assert_eq!(typed(record).unwrap_err(), reason, "{record}");
        }
    }

    #[test]
    fn integers_parse_exactly_at_the_edges() {
        for (text, want) in [
            ("0", Some(0)),
            ("-0", Some(0)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("-9223372036854775809", None),
            ("99999999999999999999", None),
            ("1.0", None),
            ("", None),
            ("-", None),
        ] {
            assert_eq!(parse_int(text.as_bytes()), want, "{text}");
        }
    }
}

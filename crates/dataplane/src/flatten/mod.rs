//! The flattener: one JSON object (a record) in, one flat record out.
//!
//! Contract (DESIGN.md, `lake-ingest flatten`): nested objects become keys
//! joined by the separator, in input order; an empty object yields no key;
//! every other value passes through byte-exact (NDJSON) or decoded (CSV); a
//! JsonConverter envelope (`schema` + `payload` only) is unwrapped; a record
//! that is not a JSON object, is not UTF-8, nests deeper than the limit or
//! whose flattened keys collide is rejected with a reason.
//!
//! Owns: the record-level walk, key joining, collision detection and the
//! NDJSON and CSV encodings of one record. Must not: do I/O or count lines;
//! `stream` drives it over files, and the ingest consumer calls it on
//! buffers. No allocation per record in the steady state: scratch buffers
//! are reused and output is appended to the caller's buffer.

mod columns;
pub mod csv;
pub mod dead_letter;
pub mod scan;
pub mod stream;
pub mod typed;

use std::fmt;

use crate::hash::hash_bytes;
use scan::Cursor;
pub use scan::ValueKind;

pub use self::csv::CsvLayout;
pub use self::typed::TypedLayout;
use lake_contract::schema::ColumnType;

/// Default nesting limit (objects and arrays), as serde_json's is 128.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Why a record could not be flattened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Byte offset of the string holding the invalid sequence.
    NotUtf8 {
        at: usize,
    },
    /// `what` was expected at byte `at`.
    Syntax {
        what: &'static str,
        at: usize,
    },
    /// A valid JSON value that is not an object (`an array`, `a string`, …).
    NotObject {
        found: &'static str,
    },
    TooDeep {
        limit: usize,
    },
    /// Two fields flatten to the same key (decoded).
    Collision {
        key: String,
    },
    /// An envelope whose payload is not an object.
    EnvelopePayload {
        found: &'static str,
    },
    /// A fixed-column output (CSV, typed columns): a key that is not one
    /// of the columns (`of` says which: "the CSV header", "the schema").
    UnknownColumn {
        key: String,
        of: &'static str,
    },
    /// A typed-column output: a value that does not fit its column's type.
    Type {
        key: String,
        column: ColumnType,
        /// The value's JSON text (shortened when long).
        value: String,
    },
    /// Bytes after the closing brace.
    Trailing {
        at: usize,
    },
    /// CSV without a schema: a record with no fields cannot set the header.
    NoColumns,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotUtf8 { at } => {
                write!(f, "not valid UTF-8 (in the string at column {})", at + 1)
            }
            ErrorKind::Syntax { what, at } => {
                write!(f, "invalid JSON at column {}: expected {what}", at + 1)
            }
            ErrorKind::NotObject { found } => write!(f, "not a JSON object: {found}"),
            ErrorKind::TooDeep { limit } => write!(f, "nested deeper than {limit} levels"),
            ErrorKind::Collision { key } => write!(f, "flattened key `{key}` occurs twice"),
            ErrorKind::EnvelopePayload { found } => {
                write!(
                    f,
                    "JsonConverter envelope whose payload is {found}, not an object"
                )
            }
            ErrorKind::UnknownColumn { key, of } => {
                write!(f, "key `{key}` is not a column of {of}")
            }
            ErrorKind::Type { key, column, value } => {
                write!(
                    f,
                    "column `{key}` is {column:?} in the schema; the record has {value}"
                )
            }
            ErrorKind::Trailing { at } => write!(
                f,
                "invalid JSON at column {}: text after the object",
                at + 1
            ),
            ErrorKind::NoColumns => write!(
                f,
                "a record with no fields cannot set the CSV header (pass --schema)"
            ),
        }
    }
}

impl std::error::Error for ErrorKind {}

/// How records are flattened.
#[derive(Debug, Clone)]
pub struct FlattenConfig {
    /// Joins parent and child keys (`address` + `_` + `city`).
    pub separator: Vec<u8>,
    pub max_depth: usize,
    /// Unwrap Kafka Connect JsonConverter envelopes.
    pub unwrap_envelopes: bool,
}

impl Default for FlattenConfig {
    fn default() -> Self {
        FlattenConfig {
            separator: b"_".to_vec(),
            max_depth: DEFAULT_MAX_DEPTH,
            unwrap_envelopes: true,
        }
    }
}

impl FlattenConfig {
    /// A separator must keep keys valid JSON string bodies without escaping.
    pub fn check(&self) -> Result<(), String> {
        let bad = self
            .separator
            .iter()
            .any(|&b| b == b'"' || b == b'\\' || b < 0x20);
        if bad || std::str::from_utf8(&self.separator).is_err() {
            return Err(
                "the separator must be UTF-8 without `\"`, `\\` or control characters".into(),
            );
        }
        Ok(())
    }
}

/// Receives each flattened leaf of one record.
trait Sink {
    fn begin(&mut self, out: &mut Vec<u8>);
    fn leaf(&mut self, out: &mut Vec<u8>, leaf: &Leaf<'_>) -> Result<(), ErrorKind>;
    fn end(&mut self, out: &mut Vec<u8>, record: &[u8]) -> Result<(), ErrorKind>;
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
    /// `"key":value` exactly as in the input when it has no inner
    /// whitespace, so it can be copied in one go.
    pub pair: Option<&'a [u8]>,
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

/// Equality for short slices (keys) without a `memcmp` call: two
/// overlapping word loads cover 4..=16 bytes.
#[inline(always)]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// The key sequence of a recent record, known to be free of duplicates.
/// A record whose keys match it in order cannot have a collision, which
/// spares hashing every key of the (usual) record shaped like the last.
#[derive(Default)]
struct KeyTemplate {
    bytes: Vec<u8>,
    /// End offset of each key in `bytes`.
    ends: Vec<u32>,
    /// Length of each key's last segment when the key has no escapes (raw
    /// bytes = decoded bytes), else 0: such keys can be matched in the input
    /// without scanning the key string.
    plain_last: Vec<u32>,
    /// Keys of the current record matched so far.
    matched: usize,
    diverged: bool,
}

impl KeyTemplate {
    fn start_record(&mut self) {
        self.matched = 0;
        self.diverged = false;
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// If the next template key has `prefix` and is written plainly, the
    /// length of its last segment when `input` starts with that segment
    /// and a closing quote.
    #[inline(always)]
    fn predict(&self, prefix: &[u8], input: &[u8]) -> Option<usize> {
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
    fn matches_next(&mut self, key: Key<'_>) -> bool {
        if !self.diverged && self.matched < self.ends.len() && key.eq_bytes(self.key(self.matched))
        {
            self.matched += 1;
            return true;
        }
        false
    }

    /// Leave the template: keep its matched prefix, which becomes the start
    /// of the new template this record builds; returns that prefix's keys.
    fn diverge(&mut self) -> impl Iterator<Item = &[u8]> {
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

    fn push(&mut self, key: &[u8], plain_last: usize) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len() as u32);
        self.plain_last.push(plain_last as u32);
    }
}

/// Flattens records; keep one per thread and reuse it.
pub struct Flattener {
    config: FlattenConfig,
    /// Raw (as in the input) key prefix of the current nesting, separators included.
    prefix: Vec<u8>,
    /// Number of escaped key segments in `prefix`.
    prefix_escapes: usize,
    /// Decoded full key of the current leaf.
    key: Vec<u8>,
    seen: KeySet,
    template: KeyTemplate,
    csv: Option<csv::CsvSink>,
    typed: Option<typed::TypedSink>,
    /// A flattened key whose value the caller wants back (the partitioning
    /// time field), and where it was in the last record.
    capture_key: Option<Vec<u8>>,
    captured: Option<(usize, usize, ValueKind)>,
}

impl Flattener {
    pub fn new(config: FlattenConfig) -> Self {
        Flattener {
            config,
            prefix: Vec::with_capacity(256),
            prefix_escapes: 0,
            key: Vec::with_capacity(256),
            seen: KeySet::default(),
            template: KeyTemplate::default(),
            csv: None,
            typed: None,
            capture_key: None,
            captured: None,
        }
    }

    pub fn config(&self) -> &FlattenConfig {
        &self.config
    }

    /// Remember the value of flattened key `key` in each record (read it
    /// with `captured`): the ingest pipeline partitions by it without
    /// parsing the record twice.
    pub fn capture(&mut self, key: &str) {
        self.capture_key = Some(key.as_bytes().to_vec());
    }

    /// The captured value of the last record flattened (raw JSON text) and its kind.
    pub fn captured<'r>(&self, record: &'r [u8]) -> Option<(&'r [u8], ValueKind)> {
        self.captured
            .and_then(|(start, end, kind)| record.get(start..end).map(|v| (v, kind)))
    }

    /// Flatten one record (no trailing newline) and append it to `out` as one
    /// NDJSON line. On error `out` is left as it was.
    pub fn flatten_ndjson(&mut self, record: &[u8], out: &mut Vec<u8>) -> Result<(), ErrorKind> {
        let mark = out.len();
        let mut sink = NdjsonSink { first: true };
        self.run(record, out, &mut sink)
            .inspect_err(|_| out.truncate(mark))
    }

    /// Flatten one record and append it to `out` as one CSV row in `layout`'s
    /// column order. On error `out` is left as it was.
    pub fn flatten_csv(
        &mut self,
        record: &[u8],
        layout: &CsvLayout,
        out: &mut Vec<u8>,
    ) -> Result<(), ErrorKind> {
        let mark = out.len();
        let mut sink = self.csv.take().unwrap_or_default();
        sink.attach(layout);
        let result = self
            .run(record, out, &mut sink)
            .inspect_err(|_| out.truncate(mark));
        self.csv = Some(sink);
        result
    }

    /// Flatten one record, check it against `layout`'s typed columns and
    /// append it to `out` as one typed row (`typed::TypedRow` reads it). On
    /// error `out` is left as it was.
    pub fn flatten_typed(
        &mut self,
        record: &[u8],
        layout: &TypedLayout,
        out: &mut Vec<u8>,
    ) -> Result<(), ErrorKind> {
        let mark = out.len();
        let mut sink = self.typed.take().unwrap_or_default();
        sink.attach(layout);
        let result = self
            .run(record, out, &mut sink)
            .inspect_err(|_| out.truncate(mark));
        self.typed = Some(sink);
        result
    }

    /// The flattened keys of `record`, decoded, in output order (used to
    /// build a CSV header from the first record).
    pub fn keys(&mut self, record: &[u8]) -> Result<Vec<String>, ErrorKind> {
        let mut sink = KeysSink::default();
        let mut scratch = Vec::new();
        self.run(record, &mut scratch, &mut sink)?;
        Ok(sink.keys)
    }

    fn run<S: Sink>(
        &mut self,
        record: &[u8],
        out: &mut Vec<u8>,
        sink: &mut S,
    ) -> Result<(), ErrorKind> {
        let result = self.walk_record(record, out, sink);
        match result {
            // A syntax error on a line that is not UTF-8 at all is better told as such.
            Err(ErrorKind::Syntax { .. }) if simdutf8::basic::from_utf8(record).is_err() => {
                let at = simdutf8::compat::from_utf8(record)
                    .err()
                    .map_or(0, |e| e.valid_up_to());
                Err(ErrorKind::NotUtf8 { at })
            }
            other => other,
        }
    }

    fn walk_record<S: Sink>(
        &mut self,
        record: &[u8],
        out: &mut Vec<u8>,
        sink: &mut S,
    ) -> Result<(), ErrorKind> {
        let mut c = Cursor::new(record);
        c.skip_ws();
        if c.peek() != Some(b'{') {
            return Err(not_an_object(&mut c, self.config.max_depth));
        }
        c.pos += 1;
        self.captured = None;
        self.prefix.clear();
        self.prefix_escapes = 0;
        self.template.start_record();
        let body_start = c.pos;
        let mut unwrapped = false;
        if self.config.unwrap_envelopes {
            if let Some(payload) = envelope_payload(record, body_start, self.config.max_depth)? {
                c.pos = payload + 1;
                unwrapped = true;
            }
        }
        sink.begin(out);
        let check = !sink.detects_collisions();
        self.object(&mut c, 1, out, sink, check)?;
        sink.end(out, record)?;
        // `envelope_payload` already validated the rest of an envelope.
        if !unwrapped {
            c.skip_ws();
            if c.pos != record.len() {
                return Err(ErrorKind::Trailing { at: c.pos });
            }
        }
        Ok(())
    }

    /// Walk the body of an object whose `{` was consumed.
    fn object<S: Sink>(
        &mut self,
        c: &mut Cursor,
        depth: usize,
        out: &mut Vec<u8>,
        sink: &mut S,
        check: bool,
    ) -> Result<(), ErrorKind> {
        c.skip_ws();
        if c.peek() == Some(b'}') {
            c.pos += 1;
            return Ok(());
        }
        loop {
            c.expect(b'"', "a key string")?;
            let key_start = c.pos;
            // The usual record repeats the last one's keys: match the expected
            // key in place instead of scanning the string.
            let predicted = if check && self.prefix_escapes == 0 {
                self.template.predict(&self.prefix, &c.buf[key_start..])
            } else {
                None
            };
            let key_escaped = match predicted {
                Some(len) => {
                    c.pos = key_start + len + 1;
                    false
                }
                None => c.string()?,
            };
            let raw_key = &c.buf[key_start..c.pos - 1];
            if c.peek() == Some(b':') {
                c.pos += 1;
            } else {
                c.skip_ws();
                c.expect(b':', "`:` after a key")?;
            }
            c.skip_ws();
            if c.peek() == Some(b'{') {
                if depth >= self.config.max_depth {
                    return Err(ErrorKind::TooDeep {
                        limit: self.config.max_depth,
                    });
                }
                c.pos += 1;
                let saved = self.prefix.len();
                self.prefix.extend_from_slice(raw_key);
                self.prefix.extend_from_slice(&self.config.separator);
                self.prefix_escapes += key_escaped as usize;
                self.object(c, depth + 1, out, sink, check)?;
                self.prefix_escapes -= key_escaped as usize;
                self.prefix.truncate(saved);
            } else {
                let value_start = c.pos;
                // Strings and numbers inline; the rest out of line.
                let kind = match c.peek() {
                    Some(b'"') => {
                        c.pos += 1;
                        c.string()?;
                        ValueKind::String
                    }
                    Some(b'0'..=b'9' | b'-') => {
                        c.number()?;
                        ValueKind::Number
                    }
                    _ => c.value(depth, self.config.max_depth)?,
                };
                let value = &c.buf[value_start..c.pos];
                // `"key":value` with nothing in between can be copied verbatim.
                let pair = (value_start == key_start + raw_key.len() + 2)
                    .then(|| &c.buf[key_start - 1..c.pos]);
                let key = if key_escaped || self.prefix_escapes > 0 {
                    self.key.clear();
                    let mut raw = std::mem::take(&mut self.prefix);
                    let saved = raw.len();
                    raw.extend_from_slice(raw_key);
                    scan::decode_string(&raw, &mut self.key);
                    raw.truncate(saved);
                    self.prefix = raw;
                    Key {
                        prefix: &[],
                        last: &self.key,
                    }
                } else {
                    Key {
                        prefix: &self.prefix,
                        last: raw_key,
                    }
                };
                let known = !check
                    || if predicted.is_some() {
                        self.template.matched += 1;
                        true
                    } else {
                        self.template.matches_next(key)
                    };
                if !known {
                    if !self.template.diverged {
                        self.seen.clear();
                        for earlier in self.template.diverge() {
                            self.seen.insert(earlier);
                        }
                    }
                    let full = key.to_vec();
                    if !self.seen.insert(&full) {
                        return Err(ErrorKind::Collision {
                            key: String::from_utf8_lossy(&full).into_owned(),
                        });
                    }
                    let plain = !key_escaped && self.prefix_escapes == 0;
                    self.template
                        .push(&full, if plain { raw_key.len() } else { 0 });
                }
                let leaf = Leaf {
                    key,
                    raw_prefix: &self.prefix,
                    raw_key,
                    value,
                    kind,
                    pair,
                };
                if let Some(wanted) = &self.capture_key {
                    if leaf.key.eq_bytes(wanted) {
                        self.captured = Some((value_start, c.pos, kind));
                    }
                }
                sink.leaf(out, &leaf)?;
            }
            c.skip_ws();
            match c.peek() {
                Some(b',') => {
                    c.pos += 1;
                    c.skip_ws();
                }
                Some(b'}') => {
                    c.pos += 1;
                    return Ok(());
                }
                _ => return Err(c.syntax("`,` or `}` in an object")),
            }
        }
    }
}

/// Describe a non-object record (validating it, so syntax errors win).
fn not_an_object(c: &mut Cursor, max_depth: usize) -> ErrorKind {
    if c.peek().is_none() {
        return ErrorKind::NotObject { found: "nothing" };
    }
    match c.value(0, max_depth) {
        Err(e) => e,
        Ok(kind) => {
            c.skip_ws();
            if c.pos != c.buf.len() {
                return ErrorKind::Trailing { at: c.pos };
            }
            ErrorKind::NotObject {
                found: kind_name(kind),
            }
        }
    }
}

fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::String => "a string",
        ValueKind::Number => "a number",
        ValueKind::True | ValueKind::False => "a boolean",
        ValueKind::Null => "null",
        ValueKind::Array => "an array",
        ValueKind::Object => "an object",
    }
}

/// If the object whose body starts at `body` is a JsonConverter envelope
/// (exactly the keys `schema` and `payload`, compared decoded), the offset
/// of the payload's `{`. Cheap for ordinary records: only a first key that
/// starts with `s`, `p` or an escape triggers the full look.
fn envelope_payload(
    record: &[u8],
    body: usize,
    max_depth: usize,
) -> Result<Option<usize>, ErrorKind> {
    let mut c = Cursor::new(record);
    c.pos = body;
    c.skip_ws();
    if !matches!(
        record.get(c.pos..c.pos + 2),
        Some([b'"', b's' | b'p' | b'\\'])
    ) {
        return Ok(None);
    }
    let (mut schema, mut payload) = (false, None);
    let mut decoded = Vec::new();
    loop {
        c.expect(b'"', "a key string")?;
        let start = c.pos;
        let escaped = c.string()?;
        let mut key = &record[start..c.pos - 1];
        if escaped {
            decoded.clear();
            scan::decode_string(key, &mut decoded);
            key = &decoded;
        }
        let (is_schema, is_payload) = (key == b"schema", key == b"payload");
        c.skip_ws();
        c.expect(b':', "`:` after a key")?;
        c.skip_ws();
        let value_at = c.pos;
        let kind = c.value(1, max_depth)?;
        match (is_schema, is_payload) {
            (true, _) if !schema => schema = true,
            (_, true) if payload.is_none() => payload = Some((value_at, kind)),
            _ => return Ok(None),
        }
        c.skip_ws();
        match c.peek() {
            Some(b',') => {
                c.pos += 1;
                c.skip_ws();
            }
            Some(b'}') => break,
            _ => return Err(c.syntax("`,` or `}` in an object")),
        }
    }
    c.pos += 1;
    c.skip_ws();
    if c.pos != record.len() {
        return Err(ErrorKind::Trailing { at: c.pos });
    }
    match (schema, payload) {
        (true, Some((at, ValueKind::Object))) => Ok(Some(at)),
        (true, Some((_, kind))) => Err(ErrorKind::EnvelopePayload {
            found: kind_name(kind),
        }),
        _ => Ok(None),
    }
}

/// NDJSON output: `"key":value` pairs that are compact in the input are
/// copied in one piece. (Batching runs of consecutive pairs into one copy
/// was measured 5% slower: the extra branches cost more than the copies.)
struct NdjsonSink {
    first: bool,
}

impl Sink for NdjsonSink {
    #[inline]
    fn begin(&mut self, out: &mut Vec<u8>) {
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

    #[inline]
    fn end(&mut self, out: &mut Vec<u8>, _record: &[u8]) -> Result<(), ErrorKind> {
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    fn detects_collisions(&self) -> bool {
        false
    }
}

#[derive(Default)]
struct KeysSink {
    keys: Vec<String>,
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
struct KeySet {
    /// (generation, hash, start, len) per slot.
    slots: Vec<(u32, u64, u32, u32)>,
    arena: Vec<u8>,
    generation: u32,
    len: usize,
}

impl KeySet {
    fn clear(&mut self) {
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
    fn insert(&mut self, key: &[u8]) -> bool {
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

    fn grow(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ndjson(input: &str) -> Result<String, ErrorKind> {
        let mut f = Flattener::new(FlattenConfig::default());
        let mut out = b"prefix|".to_vec();
        let r = f.flatten_ndjson(input.as_bytes(), &mut out);
        match r {
            Ok(()) => Ok(String::from_utf8(out)
                .unwrap()
                .strip_prefix("prefix|")
                .unwrap()
                .to_string()),
            Err(e) => {
                assert_eq!(out, b"prefix|", "output untouched on error");
                Err(e)
            }
        }
    }

    #[test]
    fn nested_objects_flatten_in_order_and_values_stay_byte_exact() {
        assert_eq!(
            ndjson(r#"{"a":1.50,"b":{"c":"x\u0041","d":{"e":[1, {"f":2}]}},"g":null,"h":{}}"#)
                .unwrap(),
            "{\"a\":1.50,\"b_c\":\"x\\u0041\",\"b_d_e\":[1, {\"f\":2}],\"g\":null}\n"
        );
        assert_eq!(ndjson(" { } ").unwrap(), "{}\n");
        assert_eq!(
            ndjson(r#"{"n":123456789012345678901234567890e-99999}"#).unwrap(),
            "{\"n\":123456789012345678901234567890e-99999}\n"
        );
    }

    #[test]
    fn envelopes_are_unwrapped_only_when_exact() {
        let env = r#"{"schema":{"type":"struct"},"payload":{"a":{"b":1}}}"#;
        assert_eq!(ndjson(env).unwrap(), "{\"a_b\":1}\n");
        let escaped = r#"{"sch\u0065ma":1,"payload":{"a":1}}"#;
        assert_eq!(ndjson(escaped).unwrap(), "{\"a\":1}\n");
        let reversed = r#"{"payload":{"a":1},"schema":null}"#;
        assert_eq!(ndjson(reversed).unwrap(), "{\"a\":1}\n");
        let extra = r#"{"schema":1,"payload":{"a":1},"x":2}"#;
        assert_eq!(
            ndjson(extra).unwrap(),
            "{\"schema\":1,\"payload_a\":1,\"x\":2}\n"
        );
        assert_eq!(
            ndjson(r#"{"schema":{},"payload":"text"}"#),
            Err(ErrorKind::EnvelopePayload { found: "a string" })
        );
        assert!(matches!(
            ndjson(r#"{"schema":{},"payload":{"a":1}} x"#),
            Err(ErrorKind::Trailing { .. })
        ));
    }

    #[test]
    fn collisions_are_found_on_decoded_keys() {
        assert_eq!(
            ndjson(r#"{"a_b":1,"a":{"b":2}}"#),
            Err(ErrorKind::Collision { key: "a_b".into() })
        );
        assert_eq!(
            ndjson(r#"{"a\u005fb":1,"a":{"b":2}}"#),
            Err(ErrorKind::Collision { key: "a_b".into() })
        );
        assert_eq!(
            ndjson(r#"{"k":1,"k":2}"#),
            Err(ErrorKind::Collision { key: "k".into() })
        );
        let wide: String = (0..500)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            ndjson(&format!("{{{wide}}}")).is_ok(),
            "hundreds of keys: the set grows"
        );
        assert!(ndjson(&format!("{{{wide},\"k7\":0}}")).is_err());
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert_eq!(
            ndjson("[1,2]"),
            Err(ErrorKind::NotObject { found: "an array" })
        );
        assert_eq!(
            ndjson("42"),
            Err(ErrorKind::NotObject { found: "a number" })
        );
        assert!(matches!(ndjson("{\"a\":1"), Err(ErrorKind::Syntax { .. })));
        assert!(matches!(
            ndjson("{\"a\":1} {}"),
            Err(ErrorKind::Trailing { at: 8 })
        ));
        assert!(matches!(
            ndjson("{\"a\":1}}"),
            Err(ErrorKind::Trailing { at: 7 })
        ));
        assert!(
            matches!(ndjson("\u{feff}{}"), Err(ErrorKind::Syntax { .. })),
            "BOMs are stripped by the stream, not here"
        );
    }

    #[test]
    fn depth_limit_counts_objects_and_arrays() {
        let f = |n: usize| "{\"a\":".repeat(n) + "1" + &"}".repeat(n);
        let mut fl = Flattener::new(FlattenConfig {
            max_depth: 3,
            ..FlattenConfig::default()
        });
        let mut out = Vec::new();
        assert!(fl.flatten_ndjson(f(3).as_bytes(), &mut out).is_ok());
        assert_eq!(
            fl.flatten_ndjson(f(4).as_bytes(), &mut out),
            Err(ErrorKind::TooDeep { limit: 3 })
        );
        assert_eq!(
            fl.flatten_ndjson(br#"{"a":{"b":[[1]]}}"#, &mut out),
            Err(ErrorKind::TooDeep { limit: 3 })
        );
    }

    #[test]
    fn short_equality_matches_slice_equality() {
        let words: Vec<Vec<u8>> = (0..20)
            .flat_map(|n| {
                [
                    vec![b'a'; n],
                    [vec![b'a'; n.saturating_sub(1)], vec![b'b'; n.min(1)]].concat(),
                ]
            })
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(bytes_eq(a, b), a == b, "{a:?} {b:?}");
            }
        }
        assert!(
            !bytes_eq(b"abc", b"axc")
                && !bytes_eq(b"abcde", b"abXde")
                && !bytes_eq(b"0123456789", b"0123X56789")
        );
    }

    #[test]
    fn the_time_field_is_captured_while_flattening() {
        let mut f = Flattener::new(FlattenConfig::default());
        f.capture("meta_ts");
        let mut out = Vec::new();
        let rec = br#"{"a":1,"meta":{"ts":"2019-11-13 15:00:00"}}"#;
        f.flatten_ndjson(rec, &mut out).unwrap();
        assert_eq!(
            f.captured(rec),
            Some((&b"\"2019-11-13 15:00:00\""[..], ValueKind::String))
        );
        f.flatten_ndjson(br#"{"a":2}"#, &mut out).unwrap();
        assert_eq!(f.captured(br#"{"a":2}"#), None, "reset per record");
    }

    #[test]
    fn separator_is_configurable_and_checked() {
        let mut f = Flattener::new(FlattenConfig {
            separator: b".".to_vec(),
            ..FlattenConfig::default()
        });
        let mut out = Vec::new();
        f.flatten_ndjson(br#"{"a":{"b":1}}"#, &mut out).unwrap();
        assert_eq!(out, b"{\"a.b\":1}\n");
        let bad = FlattenConfig {
            separator: b"\"".to_vec(),
            ..FlattenConfig::default()
        };
        assert!(bad.check().is_err());
    }
}

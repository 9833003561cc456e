//! The record-level walk: one JSON object in, its leaves to a sink.
//!
//! Owns: `Flattener` (nesting, key joining, envelope unwrapping, the
//! captured partition field, collision checks), and which walk a record
//! takes: the shaped walk (`shape`) when it has the stream's usual shape,
//! else the full walk here, which records a new shape when the stream's
//! has changed. Must not: encode output (the sinks do) or do I/O.

use super::config::FlattenConfig;
use super::csv::{self, CsvLayout};
use super::envelope::envelope_payload;
use super::error::ErrorKind;
use super::keys::{KeySet, KeyTemplate, KeysSink};
use super::ndjson::NdjsonSink;
use super::scan::{self, Cursor, ValueKind};
use super::shape::Shape;
use super::sink::{Key, Leaf, Sink};
use super::typed::{self, TypedLayout};

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
    // Boxed: a sink is taken out and put back for every record.
    csv: Option<Box<csv::CsvSink>>,
    typed: Option<Box<typed::TypedSink>>,
    /// A flattened key whose value the caller wants back (the partitioning
    /// time field), and where it was in the last record.
    capture_key: Option<Vec<u8>>,
    captured: Option<(usize, usize, ValueKind)>,
    /// The stream's usual shape: a record like it skips the full walk.
    shape: Shape,
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
            shape: Shape::default(),
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
        self.shape.reset();
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
        sink.attach(layout, self.config.drop_unknown_fields);
        let result = self
            .run(record, out, &mut *sink)
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
        sink.attach(layout, self.config.drop_unknown_fields);
        sink.encode_row = true;
        let result = self
            .run(record, out, &mut *sink)
            .inspect_err(|_| out.truncate(mark));
        self.typed = Some(sink);
        result
    }

    /// Whether the CSV row `flatten_csv` wrote last surely holds no line
    /// break, carriage return or NUL (no value in it was decoded from
    /// escapes or copied as JSON text), so nobody needs to look.
    pub fn csv_row_is_plain(&self) -> bool {
        self.csv.as_ref().is_some_and(|sink| sink.plain)
    }

    /// Flatten one record and check it against `layout`'s typed columns,
    /// as `flatten_typed` does, but encode no row: on success the values
    /// wait for `typed_values` (a columnar writer takes them from there,
    /// one copy and one decoding less).
    pub fn check_typed(&mut self, record: &[u8], layout: &TypedLayout) -> Result<(), ErrorKind> {
        let mut sink = self.typed.take().unwrap_or_default();
        sink.attach(layout, self.config.drop_unknown_fields);
        sink.encode_row = false;
        let result = self.run(record, &mut Vec::new(), &mut *sink);
        self.typed = Some(sink);
        result
    }

    /// The values of the record `check_typed` accepted last, column by
    /// column, to `to`.
    pub fn typed_values<C: typed::TypedColumns>(&self, to: &mut C) {
        if let Some(sink) = &self.typed {
            sink.emit(to);
        }
    }

    /// Values of keys that are no column skipped so far (with
    /// `drop_unknown_fields`), and the first distinct such keys.
    pub fn unknown_fields(&self) -> (u64, Vec<String>) {
        let mut count = 0;
        let mut names: Vec<String> = Vec::new();
        let csv = self.csv.as_ref().map(|s| s.columns());
        let typed = self.typed.as_ref().map(|s| s.columns());
        for columns in csv.into_iter().chain(typed) {
            count += columns.dropped;
            for n in &columns.dropped_names {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
        (count, names)
    }

    /// The flattened keys of `record`, decoded, in output order (used to
    /// build a CSV header from the first record).
    pub fn keys(&mut self, record: &[u8]) -> Result<Vec<String>, ErrorKind> {
        let mut sink = KeysSink::default();
        let mut scratch = Vec::new();
        self.run(record, &mut scratch, &mut sink)?;
        Ok(sink.keys)
    }

    pub(super) fn run<S: Sink>(
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
        self.captured = None;
        let mut c = Cursor::new(record);
        c.skip_ws();
        if c.peek() != Some(b'{') {
            return Err(not_an_object(&mut c, self.config.max_depth));
        }
        c.pos += 1;
        let body_start = c.pos;
        let payload = if self.config.unwrap_envelopes {
            envelope_payload(record, body_start, self.config.max_depth)?
        } else {
            None
        };
        let mark = out.len();
        match self
            .shape
            .walk(record, payload, self.config.max_depth, out, sink)
        {
            Ok(captured) => {
                self.captured = captured;
                return Ok(());
            }
            Err(_) => out.truncate(mark),
        }
        self.prefix.clear();
        self.prefix_escapes = 0;
        self.template.start_record();
        self.shape.record_start();
        if let Some(payload) = payload {
            c.pos = payload + 1;
        }
        sink.begin(out);
        let check = !sink.detects_collisions();
        self.object(&mut c, 1, out, sink, check)?;
        sink.end(out, record)?;
        // `envelope_payload` already validated the rest of an envelope.
        if payload.is_none() {
            c.skip_ws();
            if c.pos != record.len() {
                return Err(ErrorKind::Trailing { at: c.pos });
            }
        }
        let start = payload.unwrap_or(0);
        self.shape.commit(record, start, c.pos, payload.is_some());
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
                let (kind, escaped) = match c.peek() {
                    Some(b'"') => {
                        c.pos += 1;
                        (ValueKind::String, c.string()?)
                    }
                    Some(b'0'..=b'9' | b'-') => {
                        c.number()?;
                        (ValueKind::Number, false)
                    }
                    _ => (c.value(depth, self.config.max_depth)?, false),
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
                    escaped,
                    pair,
                };
                self.shape.record_leaf(&leaf, (value_start, c.pos), depth);
                if let Some(wanted) = &self.capture_key {
                    if leaf.key.eq_bytes(wanted) {
                        self.captured = Some((value_start, c.pos, kind));
                        self.shape.record_capture();
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
pub(super) fn not_an_object(c: &mut Cursor, max_depth: usize) -> ErrorKind {
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

pub(super) fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::String => "a string",
        ValueKind::Number => "a number",
        ValueKind::True | ValueKind::False => "a boolean",
        ValueKind::Null => "null",
        ValueKind::Array => "an array",
        ValueKind::Object => "an object",
    }
}

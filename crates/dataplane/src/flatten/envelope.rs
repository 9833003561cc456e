//! Kafka Connect JsonConverter envelopes (`schema` + `payload` only).
//!
//! Owns: recognising an envelope and finding its payload. Must not: flatten
//! the payload (the flattener does).

use super::error::ErrorKind;
use super::flattener::kind_name;
use super::scan::{self, Cursor, ValueKind};

/// If the object whose body starts at `body` is a JsonConverter envelope
/// (exactly the keys `schema` and `payload`, compared decoded), the offset
/// of the payload's `{`. Cheap for ordinary records: only a first key that
/// starts with `s`, `p` or an escape triggers the full look.
pub(super) fn envelope_payload(
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

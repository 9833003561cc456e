//! Validating JSON scanning primitives over a byte slice: whitespace,
//! strings (with escape and UTF-8 checks), numbers, literals, and whole
//! values skipped with a nesting limit.
//!
//! Owns: the JSON grammar (RFC 8259) at byte level, and fast paths for the
//! common ASCII case. Must not: allocate, build values, or know about keys,
//! flattening or output formats.

use super::ErrorKind;

/// The kind of a scalar or array value (objects are flattened, not values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Number,
    True,
    False,
    Null,
    Array,
    /// Only from `skip_value` when the caller allows objects (inside arrays).
    Object,
}

/// Index of the first non-digit at or after `i` (eight bytes at a time).
#[inline(always)]
fn skip_digits(buf: &[u8], mut i: usize) -> usize {
    while i + 8 <= buf.len() {
        let x =
            u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes")) ^ (ONES * b'0' as u64);
        // A lane is a digit iff x < 10: then neither x nor x + 0x76 has its high bit.
        let non_digit = (x.wrapping_add(ONES * 0x76) | x) & HIGHS;
        if non_digit != 0 {
            return i + (non_digit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while matches!(buf.get(i), Some(b'0'..=b'9')) {
        i += 1;
    }
    i
}

/// A position in one record's bytes.
pub struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in every byte lane of `x` that is zero (exact for the lowest lane).
#[inline(always)]
fn zero_lanes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Lanes of `w` that need attention inside a string: `"`, `\`, a control
/// character (< 0x20) or a non-ASCII byte (>= 0x80).
#[inline(always)]
fn special_lanes(w: u64) -> u64 {
    let quote = zero_lanes(w ^ (ONES * b'"' as u64));
    let backslash = zero_lanes(w ^ (ONES * b'\\' as u64));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    quote | backslash | control | (w & HIGHS)
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    #[inline(always)]
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Skip JSON whitespace. All of it is <= 0x20, so the compact case
    /// (no whitespace) costs one comparison.
    #[inline(always)]
    pub fn skip_ws(&mut self) {
        if self.buf.get(self.pos).is_some_and(|&b| b > b' ') {
            return;
        }
        self.skip_ws_slow();
    }

    #[cold]
    fn skip_ws_slow(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if b == b' ' || b == b'\t' || b == b'\n' || b == b'\r' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Consume `byte` or fail with `what` ("expected ...").
    #[inline(always)]
    pub fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), ErrorKind> {
        if self.buf.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(what))
        }
    }

    pub fn syntax(&self, what: &'static str) -> ErrorKind {
        ErrorKind::Syntax { what, at: self.pos }
    }

    /// Scan a string whose opening quote is at `pos - 1`; on return `pos` is
    /// past the closing quote. Returns whether it contained escapes.
    #[inline(always)]
    pub fn string(&mut self) -> Result<bool, ErrorKind> {
        let start = self.pos;
        let mut escaped = false;
        let mut non_ascii = false;
        let buf = self.buf;
        let mut i = self.pos;
        loop {
            // Eight bytes at a time until something needs a look.
            while i + 8 <= buf.len() {
                let w = u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
                let lanes = special_lanes(w);
                if lanes != 0 {
                    i += (lanes.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let Some(&b) = buf.get(i) else {
                self.pos = i;
                return Err(self.syntax("a closing quote of the string"));
            };
            match b {
                b'"' => {
                    self.pos = i + 1;
                    if non_ascii && simdutf8::basic::from_utf8(&buf[start..i]).is_err() {
                        return Err(ErrorKind::NotUtf8 { at: start });
                    }
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    i = self.escape(i + 1)?;
                }
                0x00..=0x1f => {
                    self.pos = i;
                    return Err(self.syntax("no raw control character inside a string (escape it)"));
                }
                0x80..=0xff => {
                    non_ascii = true;
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }

    /// Validate the escape after a backslash at `i - 1`; returns the index after it.
    fn escape(&mut self, i: usize) -> Result<usize, ErrorKind> {
        match self.buf.get(i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
            Some(b'u') => {
                let unit = self.hex4(i + 1)?;
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by an escaped low one.
                        if self.buf.get(i + 5) == Some(&b'\\') && self.buf.get(i + 6) == Some(&b'u')
                        {
                            let low = self.hex4(i + 7)?;
                            if (0xDC00..=0xDFFF).contains(&low) {
                                return Ok(i + 11);
                            }
                        }
                        self.pos = i - 1;
                        Err(self.syntax("a low surrogate \\uDC00-\\uDFFF after a high surrogate"))
                    }
                    0xDC00..=0xDFFF => {
                        self.pos = i - 1;
                        Err(self.syntax("no lone low surrogate"))
                    }
                    _ => Ok(i + 5),
                }
            }
            _ => {
                self.pos = i;
                Err(self.syntax("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"))
            }
        }
    }

    fn hex4(&mut self, i: usize) -> Result<u32, ErrorKind> {
        let digits = self.buf.get(i..i + 4).ok_or(ErrorKind::Syntax {
            what: "four hex digits after \\u",
            at: i,
        })?;
        let mut v = 0u32;
        for (k, &d) in digits.iter().enumerate() {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => {
                    self.pos = i + k;
                    return Err(self.syntax("four hex digits after \\u"));
                }
            };
            v = v * 16 + n as u32;
        }
        Ok(v)
    }

    /// Scan a number starting at `pos` (RFC 8259 grammar; any magnitude).
    #[inline(always)]
    pub fn number(&mut self) -> Result<(), ErrorKind> {
        let buf = self.buf;
        let mut i = self.pos;
        if buf.get(i) == Some(&b'-') {
            i += 1;
        }
        match buf.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = skip_digits(buf, i + 1),
            _ => {
                self.pos = i;
                return Err(self.syntax("a digit"));
            }
        }
        if buf.get(i) == Some(&b'.') {
            i += 1;
            if !matches!(buf.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return Err(self.syntax("a digit after the decimal point"));
            }
            i = skip_digits(buf, i);
        }
        if matches!(buf.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(buf.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !matches!(buf.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return Err(self.syntax("a digit in the exponent"));
            }
            while matches!(buf.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        self.pos = i;
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), ErrorKind> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax("a value (string, number, object, array, true, false or null)"))
        }
    }

    /// Skip one complete value starting at `pos`, validating it. `depth` is
    /// the nesting level of the value itself; arrays and objects inside it
    /// count against `max_depth`.
    pub fn value(&mut self, depth: usize, max_depth: usize) -> Result<ValueKind, ErrorKind> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.string()?;
                Ok(ValueKind::String)
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ValueKind::Number),
            Some(b't') => self.literal(b"true").map(|_| ValueKind::True),
            Some(b'f') => self.literal(b"false").map(|_| ValueKind::False),
            Some(b'n') => self.literal(b"null").map(|_| ValueKind::Null),
            Some(open @ (b'[' | b'{')) => {
                if depth >= max_depth {
                    return Err(ErrorKind::TooDeep { limit: max_depth });
                }
                self.pos += 1;
                if open == b'[' {
                    self.array_body(depth + 1, max_depth)
                        .map(|_| ValueKind::Array)
                } else {
                    self.object_body(depth + 1, max_depth)
                        .map(|_| ValueKind::Object)
                }
            }
            _ => Err(self.syntax("a value (string, number, object, array, true, false or null)")),
        }
    }

    fn array_body(&mut self, depth: usize, max_depth: usize) -> Result<(), ErrorKind> {
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth, max_depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.syntax("`,` or `]` in an array")),
            }
        }
    }

    fn object_body(&mut self, depth: usize, max_depth: usize) -> Result<(), ErrorKind> {
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.expect(b'"', "a key string")?;
            self.string()?;
            self.skip_ws();
            self.expect(b':', "`:` after a key")?;
            self.skip_ws();
            self.value(depth, max_depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.syntax("`,` or `}` in an object")),
            }
        }
    }
}

/// Decode the body of a JSON string (between the quotes, already validated)
/// into UTF-8, appending to `out`.
pub fn decode_string(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        let next = memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |p| i + p);
        out.extend_from_slice(&raw[i..next]);
        if next == raw.len() {
            break;
        }
        let esc = raw[next + 1];
        i = next + 2;
        let simple = match esc {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            _ => 0,
        };
        if esc != b'u' {
            out.push(simple);
            continue;
        }
        let hex = |at: usize| {
            u32::from_str_radix(std::str::from_utf8(&raw[at..at + 4]).unwrap_or("0"), 16)
                .unwrap_or(0)
        };
        let mut code = hex(i);
        i += 4;
        if (0xD800..=0xDBFF).contains(&code) {
            let low = hex(i + 2);
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
        }
        let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
        let mut tmp = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Result<ValueKind, ErrorKind> {
        let mut c = Cursor::new(text.as_bytes());
        let kind = c.value(0, 64)?;
        assert_eq!(c.pos, text.len(), "consumed all of {text}");
        Ok(kind)
    }

    #[test]
    fn accepts_every_json_number_form() {
        for n in [
            "0",
            "-0",
            "12",
            "-12.5",
            "1e10",
            "1E+2",
            "1.5e-300",
            "123456789012345678901234567890",
        ] {
            assert_eq!(value(n), Ok(ValueKind::Number), "{n}");
        }
        for bad in ["01", "1.", ".5", "-", "1e", "+1"] {
            let mut c = Cursor::new(bad.as_bytes());
            let ok = c.value(0, 64).is_ok() && c.pos == bad.len();
            assert!(!ok, "{bad} must be rejected");
        }
    }

    #[test]
    fn digit_skipping_stops_at_the_first_non_digit() {
        for text in [
            "",
            "1",
            "12345678",
            "123456789",
            "1234567a90",
            "12345678901234567,",
            "9/",
            "0:",
        ] {
            let expect = text
                .bytes()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(text.len());
            assert_eq!(skip_digits(text.as_bytes(), 0), expect, "{text}");
        }
        let mut high = b"1234567".to_vec();
        high.push(0xb0);
        assert_eq!(skip_digits(&high, 0), 7);
    }

    #[test]
    fn strings_validate_escapes_controls_and_utf8() {
        assert_eq!(
            value(r#""a\"b\\c\u00e9\ud83d\ude00""#),
            Ok(ValueKind::String)
        );
        assert_eq!(
            value("\"caf\u{e9} \u{1F600} long enough to use words\""),
            Ok(ValueKind::String)
        );
        assert!(value(r#""\x""#).is_err());
        assert!(value(r#""\ud83d""#).is_err(), "lone high surrogate");
        assert!(value(r#""\ude00""#).is_err(), "lone low surrogate");
        assert!(value("\"tab\there\"").is_err(), "raw control character");
        let mut bad = b"\"ab".to_vec();
        bad.extend_from_slice(&[0xff, 0xfe]);
        bad.push(b'"');
        let mut c = Cursor::new(&bad);
        assert!(matches!(c.value(0, 64), Err(ErrorKind::NotUtf8 { .. })));
    }

    #[test]
    fn nesting_limit_applies_to_arrays_and_objects() {
        let deep = "[".repeat(5) + &"]".repeat(5);
        assert!(Cursor::new(deep.as_bytes()).value(0, 5).is_ok());
        assert_eq!(
            Cursor::new(deep.as_bytes()).value(0, 4),
            Err(ErrorKind::TooDeep { limit: 4 })
        );
    }

    #[test]
    fn decoding_handles_every_escape() {
        let mut out = Vec::new();
        decode_string(br#"a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00"#, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\"b\\c/\u{8}\u{c}\n\r\t\u{e9}\u{1F600}"
        );
    }
}

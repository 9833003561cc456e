//! Dead letters: one NDJSON line per rejected record, with where it came
//! from, why, and the original bytes (nothing is lost).
//!
//! Owns: the dead-letter line format. Must not: decide what is rejected.

use base64::Engine;

/// Append `{"source":…,"line":N,"reason":…,"text":…}` (+ `"text_base64"`
/// when the record is not UTF-8, so its exact bytes survive) and a newline.
pub fn write(out: &mut Vec<u8>, source: &str, line: u64, reason: &str, record: &[u8]) {
    out.extend_from_slice(b"{\"source\":");
    serde_json::to_writer(&mut *out, source).expect("writing to a Vec cannot fail");
    out.extend_from_slice(format!(",\"line\":{line},\"reason\":").as_bytes());
    serde_json::to_writer(&mut *out, reason).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b",\"text\":");
    match std::str::from_utf8(record) {
        Ok(text) => serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail"),
        Err(_) => {
            serde_json::to_writer(&mut *out, &String::from_utf8_lossy(record))
                .expect("writing to a Vec cannot fail");
            out.extend_from_slice(b",\"text_base64\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(record)
                    .as_bytes(),
            );
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_and_binary_records() {
        let mut out = Vec::new();
        write(
            &mut out,
            "in.json",
            3,
            "not a JSON object: an array",
            b"[1]",
        );
        write(&mut out, "-", 4, "not valid UTF-8", b"{\"a\":\"\xff\"}");
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"source": "in.json", "line": 3, "reason": "not a JSON object: an array", "text": "[1]"})
        );
        assert_eq!(lines[1]["text_base64"], "eyJhIjoi/yJ9");
    }
}

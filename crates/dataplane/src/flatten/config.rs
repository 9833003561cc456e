//! How records are flattened: separator, nesting limit, envelopes.
//!
//! Owns: `FlattenConfig` and its check. Must not: flatten.

/// Default nesting limit (objects and arrays), as serde_json's is 128.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// How records are flattened.
#[derive(Debug, Clone)]
pub struct FlattenConfig {
    /// Joins parent and child keys (`address` + `_` + `city`).
    pub separator: Vec<u8>,
    pub max_depth: usize,
    /// Unwrap Kafka Connect JsonConverter envelopes.
    pub unwrap_envelopes: bool,
    /// With fixed columns (CSV, typed): skip a key that is no column and
    /// count it (`Flattener::unknown_fields`), instead of refusing the
    /// record. A producer that adds a field keeps its rows.
    pub drop_unknown_fields: bool,
}

impl Default for FlattenConfig {
    fn default() -> Self {
        FlattenConfig {
            separator: b"_".to_vec(),
            max_depth: DEFAULT_MAX_DEPTH,
            unwrap_envelopes: true,
            drop_unknown_fields: false,
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

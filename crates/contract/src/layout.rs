//! The lake's partition directories: a layout such as `dt=%Y-%m-%d/hr=%H`
//! names one Hive-style level per partition key, its value formatted from
//! the partition's time (UTC) with strftime-like tokens.
//!
//! Owns: which layouts are valid and their partition keys, read the same
//! way by `lakectl` (the Hive table's partition columns, registration) and
//! by `lake-ingest` (`--partition-format`, the datasets file). Must not:
//! format times (the ingest partitioner does) or know about columns.

/// The tokens the ingest partitioner formats.
pub const TOKENS: &[char] = &['Y', 'm', 'd', 'H', 'j', '%'];

/// Why a layout cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("layout `{fmt}` has unknown token %{token}; use %Y %m %d %H %j")]
    UnknownToken { fmt: String, token: char },
    #[error("layout `{fmt}` ends with a lone %")]
    LonePercent { fmt: String },
    #[error("layout `{fmt}` has `{c}`, which is not safe in S3 keys and Hive paths")]
    Unsafe { fmt: String, c: char },
    #[error(
        "layout `{fmt}`: level `{level}` is not Hive-style `key=<tokens>` with a key of letters, \
         digits and `_` (e.g. dt=%Y-%m-%d/hr=%H)"
    )]
    NotHiveStyle { fmt: String, level: String },
    #[error("layout `{fmt}` names partition key `{key}` twice")]
    Repeated { fmt: String, key: String },
}

/// The partition keys of `fmt`, in directory order; an error when a
/// reader could misread it or the partitioner could not format it.
pub fn partition_keys(fmt: &str) -> Result<Vec<String>, LayoutError> {
    let f = || fmt.to_string();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(t) if TOKENS.contains(&t) => {}
                Some(token) => return Err(LayoutError::UnknownToken { fmt: f(), token }),
                None => return Err(LayoutError::LonePercent { fmt: f() }),
            }
        } else if !(c.is_ascii_alphanumeric() || "=_-/.:+".contains(c)) {
            return Err(LayoutError::Unsafe { fmt: f(), c });
        }
    }
    let mut keys: Vec<String> = Vec::new();
    for level in fmt.split('/') {
        let key = level
            .split_once('=')
            .filter(|(key, value)| {
                is_hive_identifier(key) && !value.is_empty() && !value.contains('=')
            })
            .map(|(key, _)| key.to_string())
            .ok_or_else(|| LayoutError::NotHiveStyle {
                fmt: f(),
                level: level.to_string(),
            })?;
        if keys.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
            return Err(LayoutError::Repeated { fmt: f(), key });
        }
        keys.push(key);
    }
    Ok(keys)
}

/// A name Hive (and every reader that discovers partitions) takes unquoted:
/// a partition key, a column, a database. One rule for both planes.
pub fn is_hive_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_name_their_keys() {
        assert_eq!(partition_keys("dt=%Y-%m-%d/hr=%H").unwrap(), ["dt", "hr"]);
        assert_eq!(partition_keys("dt=%Y-%m-%d").unwrap(), ["dt"]);
        assert_eq!(partition_keys("ordertime=%Y%m%d%H").unwrap(), ["ordertime"]);
        let err = |f: &str| partition_keys(f).unwrap_err().to_string();
        assert!(err("%Y%m%d%H").contains("key=<tokens>"));
        assert!(err("dt=%Y-%m-%d/%H").contains("level `%H`"));
        assert_eq!(partition_keys("p=all").unwrap(), ["p"]);
        assert!(err("t=%Y%m%d%H%q").contains("%q"));
        assert!(err("t=%Y %m%d").contains("not safe"));
        assert!(err("dt=%Y-%m-%d/DT=%H").contains("twice"));
    }
}

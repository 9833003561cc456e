//! The lake's layout rules every stage reads the same way: which objects
//! under a lake prefix are data.
//!
//! Owns: the hidden-file rule. Must not: list stores or know file formats.

/// Objects no stage treats as data: bookkeeping and hidden files (any path
/// segment starting with `_` or `.`, as Hive and Spark skip them): dead
/// letters under `_errors/`, the compactor's `_compaction/` journal.
pub fn is_hidden(key: &str) -> bool {
    key.split('/')
        .any(|seg| seg.starts_with('_') || seg.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_and_dot_files_are_hidden() {
        assert!(is_hidden("ordertime=1/_errors/x.ndjson"));
        assert!(is_hidden("_compaction/j.json"));
        assert!(is_hidden("ordertime=1/.a.csv.crc"));
        assert!(!is_hidden("ordertime=1/a.csv"));
    }
}

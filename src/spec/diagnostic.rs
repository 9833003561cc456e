//! Problems found in a spec, each pinned to `file:line:col`.
//!
//! Owns: the `Diagnostic` type, its text form, and `Locator`, the map from a
//! spec field path (`kafka.topics.0.replication`) to where it was written.
//! Must not: decide what is a problem; loaders and validators do that.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Where something was written: 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub position: Position,
    /// Dotted field path, e.g. `kafka.topics.0.replication`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.position, self.message),
            Severity::Warning => write!(f, "{}: warning: {}", self.position, self.message),
        }
    }
}

/// Field path -> position of its key (or of the list item) in the spec files.
#[derive(Debug, Clone, Default)]
pub struct Locator {
    positions: HashMap<String, Position>,
    /// Where to point when nothing closer is known: the top of the env file.
    fallback: Option<Position>,
}

impl Locator {
    pub fn new(fallback: Position) -> Self {
        Self {
            positions: HashMap::new(),
            fallback: Some(fallback),
        }
    }

    pub fn insert(&mut self, path: String, position: Position) {
        self.positions.insert(path, position);
    }

    /// Forget everything below `path` (its value was replaced by an overlay).
    pub fn remove_below(&mut self, path: &str) {
        let prefix = format!("{path}.");
        self.positions.retain(|k, _| !k.starts_with(&prefix));
    }

    pub fn merge_from(&mut self, other: Locator) {
        self.positions.extend(other.positions);
        if other.fallback.is_some() {
            self.fallback = other.fallback;
        }
    }

    /// Position of `path`, or of its nearest ancestor that was written down.
    pub fn locate(&self, path: &str) -> Position {
        let mut probe = path;
        loop {
            if let Some(p) = self.positions.get(probe) {
                return p.clone();
            }
            match probe.rfind('.') {
                Some(i) => probe = &probe[..i],
                None => break,
            }
        }
        if let Some(p) = self.positions.get(probe) {
            return p.clone();
        }
        self.fallback.clone().unwrap_or(Position {
            file: PathBuf::from("<spec>"),
            line: 1,
            col: 1,
        })
    }

    /// A diagnostic for `path`.
    pub fn error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.diagnostic(Severity::Error, path, message)
    }

    pub fn warning(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.diagnostic(Severity::Warning, path, message)
    }

    fn diagnostic(&self, severity: Severity, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            position: self.locate(path),
            field: path.to_string(),
            message: message.into(),
        }
    }
}

/// The closest candidate to a misspelt `word`, if one is close enough to suggest.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: usize) -> Position {
        Position {
            file: "e.yaml".into(),
            line,
            col: 1,
        }
    }

    #[test]
    fn locate_falls_back_to_nearest_ancestor() {
        let mut l = Locator::new(pos(1));
        l.insert("kafka".into(), pos(5));
        l.insert("kafka.topics".into(), pos(7));
        assert_eq!(l.locate("kafka.topics.3.name").line, 7);
        assert_eq!(l.locate("kafka.msk").line, 5);
        assert_eq!(l.locate("stream").line, 1);
    }

    #[test]
    fn suggestion_needs_similarity() {
        assert_eq!(suggest("shard", ["shards", "mode"]), Some("shards"));
        assert_eq!(suggest("zzz", ["shards", "mode"]), None);
    }
}

//! Reading spec files: YAML text -> merged value (`extends:`) -> typed `EnvSpec`.
//!
//! Owns: finding environment files, following `extends:` chains, deep-merging
//! base and overlay, recording where every key was written, and turning serde
//! errors (syntax, types, unknown keys) into positioned diagnostics.
//! Must not: apply cross-field rules (that is `validate`) or render anything.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::diagnostic::{suggest, Diagnostic, Locator, Position, Severity};
use super::model::EnvSpec;

/// A spec that parsed and type-checked, with the map back to its source.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The environment's name as on the command line (the file stem).
    pub env: String,
    pub file: PathBuf,
    pub spec: EnvSpec,
    pub locator: Locator,
}

/// Longest `extends:` chain followed before it is called a cycle.
const MAX_EXTENDS_DEPTH: usize = 8;

/// The environment names in `env_dir`: every `*.yaml` not starting with `_`
/// (underscore files are shared bases), sorted.
pub fn list_environments(env_dir: &Path) -> Result<Vec<String>, Diagnostic> {
    let entries = std::fs::read_dir(env_dir).map_err(|e| io_diagnostic(env_dir, &e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".yaml")?;
            (!stem.starts_with('_')).then(|| stem.to_string())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Load `env_dir/<env>.yaml`, following `extends:`.
pub fn load_environment(env_dir: &Path, env: &str) -> Result<LoadedSpec, Vec<Diagnostic>> {
    let file = env_dir.join(format!("{env}.yaml"));
    if !file.is_file() {
        let known = list_environments(env_dir).unwrap_or_default();
        let hint = match suggest(env, known.iter().map(String::as_str)) {
            Some(s) => format!("; did you mean `{s}`?"),
            None if known.is_empty() => String::new(),
            None => format!("; known environments: {}", known.join(", ")),
        };
        return Err(vec![Diagnostic {
            severity: Severity::Error,
            position: top_of(&file),
            field: String::new(),
            message: format!(
                "no environment `{env}` (expected the file {}){hint}",
                file.display()
            ),
        }]);
    }
    let (value, locator) = load_merged(&file, 0)?;
    let moved = moved_keys(&value, &locator, env);
    if !moved.is_empty() {
        return Err(moved);
    }
    let mut spec = deserialize(value, &locator)?;
    read_schema_files(&mut spec, &locator)?;
    Ok(LoadedSpec {
        env: env.to_string(),
        file,
        spec,
        locator,
    })
}

fn top_of(file: &Path) -> Position {
    Position {
        file: file.to_path_buf(),
        line: 1,
        col: 1,
    }
}

fn io_diagnostic(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        position: top_of(path),
        field: String::new(),
        message: format!("cannot read {}: {e}", path.display()),
    }
}

/// Parse one file and, recursively, its bases; the overlay wins key by key.
fn load_merged(file: &Path, depth: usize) -> Result<(Value, Locator), Vec<Diagnostic>> {
    let text = std::fs::read_to_string(file).map_err(|e| vec![io_diagnostic(file, &e)])?;
    let value: Value =
        serde_yaml::from_str(&text).map_err(|e| vec![yaml_syntax(file, &text, &e)])?;
    let value = match value {
        Value::Null => Value::Mapping(Mapping::new()),
        v @ Value::Mapping(_) => v,
        _ => {
            return Err(vec![Diagnostic {
                severity: Severity::Error,
                position: top_of(file),
                field: String::new(),
                message: "a spec must be a YAML mapping of keys to values".into(),
            }])
        }
    };
    let locator = index_positions(file, &text);
    let Some(base_ref) = value.get("extends") else {
        return Ok((value, locator));
    };
    let Some(base_name) = base_ref.as_str() else {
        return Err(vec![locator.error(
            "extends",
            "`extends` must be a file name such as `_base.yaml`",
        )]);
    };
    if depth >= MAX_EXTENDS_DEPTH {
        return Err(vec![locator.error(
            "extends",
            format!("`extends` chain deeper than {MAX_EXTENDS_DEPTH}; is there a cycle?"),
        )]);
    }
    let base_file = file.parent().unwrap_or(Path::new(".")).join(base_name);
    if !base_file.is_file() {
        return Err(vec![locator.error(
            "extends",
            format!("base spec `{}` does not exist", base_file.display()),
        )]);
    }
    let (mut merged, mut merged_locator) = load_merged(&base_file, depth + 1)?;
    merge_into(&mut merged, value, "", &mut merged_locator);
    merged_locator.merge_from(locator);
    Ok((merged, merged_locator))
}

/// Deep merge: mappings merge per key, anything else replaces. A mapping
/// whose `mode:` (or `kind:`) changes is replaced whole: the other mode's
/// keys do not apply.
fn merge_into(base: &mut Value, overlay: Value, path: &str, locator: &mut Locator) {
    let mode_changes = |b: &Mapping, o: &Mapping| {
        ["mode", "kind"]
            .iter()
            .any(|tag| matches!((b.get(tag), o.get(tag)), (Some(x), Some(y)) if x != y))
    };
    // A schema is one document: an overlay's replaces the base's whole
    // (merged, `{file: …}` and an inline record would make neither).
    let whole = path.ends_with(".schema");
    match (base, overlay) {
        (Value::Mapping(b), Value::Mapping(o)) if !whole && !mode_changes(b, &o) => {
            for (k, v) in o {
                let child = match k.as_str() {
                    Some(s) if path.is_empty() => s.to_string(),
                    Some(s) => format!("{path}.{s}"),
                    None => path.to_string(),
                };
                match b.get_mut(&k) {
                    Some(existing) => merge_into(existing, v, &child, locator),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => {
            locator.remove_below(path);
            *b = o;
        }
    }
}

/// Keys of the single-dataset spec (before `datasets:`) and where each
/// went. Every one found is an error naming its new place, all at once.
const MOVED: &[(&str, &str)] = &[
    ("stream", "datasets.<name>.stream"),
    (
        "storage.lake_prefix",
        "storage.lake_root (the folder of every dataset's folder)",
    ),
    (
        "kafka.topics",
        "datasets.<name>.source: {kind: kafka, topic, partitions, replication}",
    ),
    ("kafka.bridge.topic", "datasets.<name>.source.topic"),
    (
        "ingest.scenario",
        "datasets.<name>.partition_by (A: arrival-time, B: record-time)",
    ),
    ("ingest.partition_by", "datasets.<name>.partition_by"),
    ("ingest.time_field", "datasets.<name>.time_field"),
    (
        "ingest.partition_format",
        "datasets.<name>.granularity (hour: dt=YYYY-MM-DD/hr=HH, day: dt=YYYY-MM-DD)",
    ),
    ("ingest.format", "datasets.<name>.format"),
    ("ingest.schema", "datasets.<name>.schema"),
    ("compaction.schedule", "datasets.<name>.compaction"),
    (
        "compaction.target_size_mib",
        "datasets.<name>.compaction_target_mib",
    ),
];

/// The moved keys `value` still has, as errors at their positions.
fn moved_keys(value: &Value, locator: &Locator, env: &str) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for (old, new) in MOVED {
        let mut at = Some(value);
        for part in old.split('.') {
            at = at.and_then(|v| v.get(part));
        }
        if at.is_some() {
            found.push(locator.error(
                old,
                format!(
                    "`{old}` moved to `{new}`: the lake holds datasets now, each with its own stream, schema and table; docs/migrating-to-datasets.md shows a spec before and after, and how to move a running lake (environment {env})"
                ),
            ));
        }
    }
    found
}

/// Read every `{file: …}` schema of the datasets, relative to the spec
/// file that names it; a missing or non-JSON file is an error there.
fn read_schema_files(spec: &mut EnvSpec, locator: &Locator) -> Result<(), Vec<Diagnostic>> {
    use super::model::SchemaSource;
    let mut errors = Vec::new();
    for (name, d) in spec.datasets.iter_mut() {
        let history = d
            .schema_history
            .iter_mut()
            .enumerate()
            .map(|(i, s)| (format!("datasets.{name}.schema_history.{i}"), s));
        let current = d
            .schema
            .as_mut()
            .map(|s| (format!("datasets.{name}.schema"), s));
        for (path, source) in current.into_iter().chain(history) {
            let SchemaSource::File { file, content } = source else {
                continue;
            };
            let field = format!("{path}.file");
            let at = locator.locate(&field);
            let full = at.file.parent().unwrap_or(Path::new(".")).join(&*file);
            let read = std::fs::read_to_string(&full)
                .map_err(|e| format!("cannot read the schema {}: {e}", full.display()))
                .and_then(|text| {
                    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                        format!(
                            "{}:{}:{}: not a JSON (Avro) schema: {e}",
                            full.display(),
                            e.line(),
                            e.column()
                        )
                    })
                });
            match read {
                Ok(v) => *content = Some(v),
                Err(message) => errors.push(locator.error(&field, message)),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn yaml_syntax(file: &Path, text: &str, e: &serde_yaml::Error) -> Diagnostic {
    let (mut line, mut col) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    // serde_yaml places a duplicate key at the start of its mapping: point
    // at the second occurrence instead (the one to remove or merge).
    let message = e.to_string();
    if let Some(key) = message
        .strip_prefix("duplicate entry with key \"")
        .and_then(|rest| rest.split('"').next())
    {
        let indent = " ".repeat(col.saturating_sub(1));
        let second = text
            .lines()
            .enumerate()
            .skip(line.saturating_sub(1))
            .filter(|(_, l)| {
                l.strip_prefix(&indent).is_some_and(|rest| {
                    rest.strip_prefix(key)
                        .is_some_and(|after| after.trim_start().starts_with(':'))
                })
            })
            .nth(1);
        if let Some((at, _)) = second {
            (line, col) = (at + 1, indent.len() + 1);
        }
    }
    Diagnostic {
        severity: Severity::Error,
        position: Position {
            file: file.to_path_buf(),
            line,
            col,
        },
        field: String::new(),
        message: format!("YAML syntax: {}", strip_location(&e.to_string())),
    }
}

/// serde_yaml appends " at line L column C"; we already print the position.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The typed spec, or every structural problem of it at once: after each
/// error the offending key is set aside and the spec is read again, so a
/// spec with five mistakes takes one run, not five. A required key missing
/// only because a bad value under it was set aside is not reported twice.
fn deserialize(value: Value, locator: &Locator) -> Result<EnvSpec, Vec<Diagnostic>> {
    let mut value = value;
    let mut found: Vec<Diagnostic> = Vec::new();
    let mut set_aside: Vec<String> = Vec::new();
    // Bounded: each round removes one key, and a spec has few.
    for _ in 0..200 {
        let err = match serde_path_to_error::deserialize::<_, EnvSpec>(value.clone()) {
            Ok(spec) if found.is_empty() => return Ok(spec),
            Ok(_) => return Err(found),
            Err(err) => err,
        };
        let mut path = path_string(err.path());
        let mut inner = strip_location(&err.inner().to_string());
        if path == "network" {
            if let Some((at, message)) = inside_network(&value) {
                (path, inner) = (at, message);
            }
        }
        let missing = inner.starts_with("missing field");
        let message = match parse_unknown_field(&inner) {
            Some((key, expected)) => {
                // The path usually ends at the unknown key already; make sure it does.
                if path.rsplit('.').next() != Some(key.as_str()) {
                    path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                }
                let hint = match suggest(&key, expected.iter().map(String::as_str)) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!("; expected one of: {}", expected.join(", ")),
                };
                format!("unknown key `{path}`{hint}")
            }
            None => {
                let inner = in_user_terms(&inner);
                if path.is_empty() {
                    inner
                } else {
                    format!("{path}: {inner}")
                }
            }
        };
        if set_aside.contains(&path) {
            // Its removal did not help (a list item set to null): stop.
            break;
        }
        // "missing field `x`" where x (or something inside it) was set
        // aside: a consequence of an error already reported.
        let consequence = missing
            && inner.split('`').nth(1).is_some_and(|field| {
                let full = if path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
                set_aside
                    .iter()
                    .any(|p| *p == full || p.starts_with(&format!("{full}.")))
            });
        if !consequence {
            found.push(locator.error(&path, message));
        }
        // A section missing a key is set aside whole: serde reports a
        // missing key only after reading every key beside it, so the
        // sections after it are still read. The whole spec cannot be set
        // aside.
        if path.is_empty() || !remove_at(&mut value, &path) {
            break;
        }
        set_aside.push(path);
    }
    Err(found)
}

/// `network` is read as a whole (its `mode` picks the variant), so an
/// error inside it has no place of its own: read the chosen variant's
/// fields alone to find it (`network.cidr`).
fn inside_network(spec: &Value) -> Option<(String, String)> {
    use super::model::{ExistingNetwork, NewNetwork};
    let Value::Mapping(section) = spec.get("network")? else {
        return None;
    };
    let mode = section.get("mode").and_then(Value::as_str);
    let mut fields = section.clone();
    fields.remove("mode");
    let fields = Value::Mapping(fields);
    fn probe<T: serde::de::DeserializeOwned>(v: Value) -> Option<(String, String)> {
        serde_path_to_error::deserialize::<_, T>(v).err().map(|e| {
            let inner = path_string(e.path());
            (
                if inner.is_empty() {
                    "network".to_string()
                } else {
                    format!("network.{inner}")
                },
                strip_location(&e.inner().to_string()),
            )
        })
    }
    match mode {
        Some("new") => probe::<NewNetwork>(fields),
        Some("existing") => probe::<ExistingNetwork>(fields),
        _ => None,
    }
}

/// Remove the node at dotted `path` (map keys, list indices); whether it
/// was there.
fn remove_at(value: &mut Value, path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut node = value;
    for part in parts {
        let next = match node {
            Value::Mapping(m) => m.get_mut(part),
            Value::Sequence(items) => part.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match node {
        Value::Mapping(m) => m.remove(last).is_some(),
        Value::Sequence(items) => match last.parse::<usize>() {
            // An item becomes null rather than shifting its siblings'
            // indices (and their positions in the messages).
            Ok(i) if i < items.len() => {
                items[i] = Value::Null;
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// serde's words for a type, in the words of someone writing YAML.
fn in_user_terms(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, user) in [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping (key: value lines)"),
    ] {
        m = m.replace(rust, user);
    }
    if let Some(at) = m.find("expected struct ") {
        m.truncate(at);
        m.push_str("expected a mapping (key: value lines)");
    }
    m
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let parts: Vec<String> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect();
    parts.join(".")
}

/// `unknown field `x`, expected one of `a`, `b`` -> ("x", ["a", "b"]).
fn parse_unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    let key = rest[..end].to_string();
    let expected = rest[end + 1..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((key, expected))
}

/// Record the position of every mapping key and list item of `text`.
fn index_positions(file: &Path, text: &str) -> Locator {
    let mut indexer = PositionIndexer {
        file: file.to_path_buf(),
        locator: Locator::new(top_of(file)),
        stack: Vec::new(),
    };
    // A syntax error here was already reported by serde_yaml; keep what we have.
    let _ = Parser::new_from_str(text).load(&mut indexer, false);
    indexer.locator
}

enum Frame {
    /// `key` is Some while the value of that key is being read.
    Mapping {
        path: String,
        key: Option<String>,
    },
    Sequence {
        path: String,
        index: usize,
    },
}

struct PositionIndexer {
    file: PathBuf,
    locator: Locator,
    stack: Vec<Frame>,
}

impl PositionIndexer {
    fn position(&self, mark: Marker) -> Position {
        Position {
            file: self.file.clone(),
            line: mark.line(),
            col: mark.col() + 1,
        }
    }

    /// Path of the value that starts now, recording its position; None when
    /// the event is a mapping key rather than a value.
    fn begin_value(&mut self, scalar_key: Option<&str>, mark: Marker) -> Option<String> {
        let position = self.position(mark);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = scalar_key.unwrap_or("?").to_string();
                    let full = join(path, &k);
                    *key = Some(k);
                    self.locator.insert(full, position);
                    None
                }
            },
            Some(Frame::Sequence { path, index }) => {
                let full = join(path, &index.to_string());
                *index += 1;
                self.locator.insert(full.clone(), position);
                Some(full)
            }
        }
    }
}

fn join(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_string()
    } else {
        format!("{path}.{segment}")
    }
}

impl MarkedEventReceiver for PositionIndexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                self.begin_value(Some(&s), mark);
            }
            Event::Alias(_) => {
                self.begin_value(Some("*alias"), mark);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.begin_value(None, mark) {
                    self.stack.push(Frame::Mapping { path, key: None });
                } else {
                    // A complex (mapping) key: index nothing inside it.
                    self.stack.push(Frame::Mapping {
                        path: "?".into(),
                        key: None,
                    });
                }
            }
            Event::SequenceStart(..) => {
                let path = self.begin_value(None, mark).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Sequence { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_items() {
        let text = "a: 1\nb:\n  c: x\n  d:\n    - 1\n    - e: 2\n";
        let l = index_positions(Path::new("f.yaml"), text);
        assert_eq!(l.locate("a").line, 1);
        assert_eq!(l.locate("b.c").line, 3);
        assert_eq!(l.locate("b.c").col, 3);
        assert_eq!(l.locate("b.d.1").line, 6);
        assert_eq!(l.locate("b.d.1.e").line, 6);
        assert_eq!(l.locate("b.d.1.e").col, 7);
    }

    #[test]
    fn unknown_field_message_is_parsed() {
        let (k, exp) =
            parse_unknown_field("unknown field `shard`, expected one of `mode`, `shards`").unwrap();
        assert_eq!(k, "shard");
        assert_eq!(exp, vec!["mode", "shards"]);
    }

    #[test]
    fn a_changed_mode_replaces_the_block() {
        let mut base: Value =
            serde_yaml::from_str("c: {mode: serverless, min_acu: 1, instances: 2}").unwrap();
        let overlay: Value =
            serde_yaml::from_str("c: {mode: provisioned, instance_class: db.r6g.large}").unwrap();
        let mut l = Locator::new(top_of(Path::new("env.yaml")));
        merge_into(&mut base, overlay.clone(), "", &mut l);
        assert_eq!(base, overlay);
    }

    #[test]
    fn merge_overlays_and_forgets_replaced_positions() {
        let mut base: Value = serde_yaml::from_str("a: {b: 1, c: [1, 2, 3]}").unwrap();
        let overlay: Value = serde_yaml::from_str("a: {c: [9]}").unwrap();
        let mut l = Locator::new(top_of(Path::new("env.yaml")));
        let stale = Position {
            file: "base.yaml".into(),
            line: 5,
            col: 3,
        };
        l.insert("a.c.2".into(), stale.clone());
        l.insert("a.b".into(), stale.clone());
        merge_into(&mut base, overlay, "", &mut l);
        assert_eq!(
            base,
            serde_yaml::from_str::<Value>("a: {b: 1, c: [9]}").unwrap()
        );
        // The replaced list's third item no longer exists: its position is gone.
        assert_eq!(l.locate("a.c.2").file, PathBuf::from("env.yaml"));
        // Untouched keys keep the base's position.
        assert_eq!(l.locate("a.b"), stale);
    }
}

//! CSV columns from an Avro record schema (such as `orders.avsc`): nested
//! records flatten exactly as the flattener flattens nested objects.
//!
//! Owns: reading Avro record schemas (named types, `["null", record]`
//! unions). Must not: read files (callers pass the text).

use std::collections::HashMap;

use serde_json::Value;

/// Column names of an Avro record schema, nested records joined by `separator`.
pub fn columns_from_avro(schema: &str, separator: &str) -> Result<Vec<String>, AvroError> {
    Ok(typed_columns_from_avro(schema, separator)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// The value type of a flattened column, as typed files (Parquet) store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Int32,
    Int64,
    Float,
    Double,
    String,
    /// Anything else (arrays, maps, unions of several types, bytes): the
    /// value's JSON text.
    Json,
}

impl ColumnType {
    /// The Avro type a user wrote for a column of this type.
    pub fn avro_name(self) -> &'static str {
        match self {
            ColumnType::Boolean => "boolean",
            ColumnType::Int32 => "int",
            ColumnType::Int64 => "long",
            ColumnType::Float => "float",
            ColumnType::Double => "double",
            ColumnType::String => "string",
            ColumnType::Json => "complex (array, map, bytes or union)",
        }
    }

    fn from_avro(ty: &Value) -> ColumnType {
        let name = ty
            .as_str()
            .or_else(|| ty.get("type").and_then(Value::as_str));
        match name {
            Some("boolean") => ColumnType::Boolean,
            Some("int") => ColumnType::Int32,
            Some("long") => ColumnType::Int64,
            Some("float") => ColumnType::Float,
            Some("double") => ColumnType::Double,
            Some("string") | Some("enum") => ColumnType::String,
            _ => ColumnType::Json,
        }
    }
}

/// Columns of an Avro record schema with their types; every column may be
/// null (a record may lack any key). Strict: an unknown type name, a record
/// without fields, a field without a name is an error.
pub fn typed_columns_from_avro(
    schema: &str,
    separator: &str,
) -> Result<Vec<(String, ColumnType)>, AvroError> {
    let root: Value = serde_json::from_str(schema).map_err(AvroError::NotJson)?;
    Ok(typed_columns(&root, separator)?)
}

/// An Avro schema text that gives no columns.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("the schema is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// A problem in an Avro schema, at a path inside it (`fields.4.type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

impl std::error::Error for SchemaError {}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why `field` cannot be a record's own time among `columns`, or `None`:
/// it must be a column, and a number (epoch seconds or milliseconds) or a
/// string (ISO-8601). `lakectl validate` (a dataset's `time_field`) and
/// `lake-ingest` (`--time-field`) ask this one question.
pub fn time_field_problem(columns: &[(String, ColumnType)], field: &str) -> Option<String> {
    match columns.iter().find(|(n, _)| n == field) {
        None => Some(format!(
            "`{field}` is not a column of the schema (its columns: {}); every record would be \
             dead-lettered",
            columns
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some((
            _,
            ColumnType::Int32
            | ColumnType::Int64
            | ColumnType::Float
            | ColumnType::Double
            | ColumnType::String,
        )) => None,
        Some((_, ty)) => Some(format!(
            "`{field}` is a {} column; a record's time must be epoch seconds or milliseconds \
             (int, long, double) or an ISO-8601 string",
            ty.avro_name()
        )),
    }
}

/// The first column that is also one of the partition `keys` (Hive
/// ignores case): readers that discover partitions would read the
/// directory's value for it.
pub fn column_shadowed_by_partition<'a>(
    columns: &'a [(String, ColumnType)],
    keys: &[String],
) -> Option<&'a str> {
    columns
        .iter()
        .map(|(c, _)| c.as_str())
        .find(|c| keys.iter().any(|k| k.eq_ignore_ascii_case(c)))
}

/// `typed_columns_from_avro` on a parsed schema, with the error's place.
pub fn typed_columns(
    root: &Value,
    separator: &str,
) -> Result<Vec<(String, ColumnType)>, SchemaError> {
    if root.get("type").and_then(Value::as_str) != Some("record") {
        return Err(SchemaError {
            path: String::new(),
            message: "the schema's top level must be an Avro record (\"type\": \"record\")".into(),
        });
    }
    let mut named = HashMap::new();
    let mut columns = Vec::new();
    walk(root, "", "", separator, &mut named, &mut columns)?;
    Ok(columns)
}

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn at(path: &str, key: impl std::fmt::Display) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    record: &Value,
    path: &str,
    prefix: &str,
    separator: &str,
    named: &mut HashMap<String, Value>,
    columns: &mut Vec<(String, ColumnType)>,
) -> Result<(), SchemaError> {
    define(record, named);
    let fields = record
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| SchemaError {
            path: path.to_string(),
            message: format!("record `{prefix}` has no \"fields\" list"),
        })?;
    for (i, field) in fields.iter().enumerate() {
        let here = at(path, format_args!("fields.{i}"));
        let name = field
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError {
                path: here.clone(),
                message: "a field without a \"name\"".into(),
            })?;
        let ty_path = at(&here, "type");
        let raw = field.get("type").ok_or_else(|| SchemaError {
            path: here.clone(),
            message: format!("field `{name}` has no \"type\""),
        })?;
        check_type(raw, &ty_path, named)?;
        let ty = resolve(raw, named);
        if ty.get("type").and_then(Value::as_str) == Some("record") {
            // A record inline in a union keeps its own path for errors.
            walk(
                &ty,
                &ty_path,
                &format!("{prefix}{name}{separator}"),
                separator,
                named,
                columns,
            )?;
        } else {
            columns.push((format!("{prefix}{name}"), ColumnType::from_avro(&ty)));
        }
    }
    Ok(())
}

/// Remember a named type (record, enum, fixed) by its name and full name.
fn define(ty: &Value, named: &mut HashMap<String, Value>) {
    if let Some(name) = ty.get("name").and_then(Value::as_str) {
        named.insert(name.to_string(), ty.clone());
        if let Some(ns) = ty.get("namespace").and_then(Value::as_str) {
            named.insert(format!("{ns}.{name}"), ty.clone());
        }
    }
}

/// Every type name in `ty` is a primitive, a complex type written out, or
/// a named type defined before it (Avro's rule).
fn check_type(
    ty: &Value,
    path: &str,
    named: &mut HashMap<String, Value>,
) -> Result<(), SchemaError> {
    let fail = |message: String| SchemaError {
        path: path.to_string(),
        message,
    };
    match ty {
        Value::String(name) => {
            if PRIMITIVES.contains(&name.as_str()) || named.contains_key(name) {
                Ok(())
            } else {
                Err(fail(format!(
                    "unknown type `{name}`: not an Avro primitive ({}) nor a named type defined before it",
                    PRIMITIVES.join(", ")
                )))
            }
        }
        Value::Array(branches) => {
            if branches.is_empty() {
                return Err(fail("an empty union".into()));
            }
            for (i, b) in branches.iter().enumerate() {
                check_type(b, &at(path, i), named)?;
            }
            Ok(())
        }
        Value::Object(o) => match o.get("type") {
            Some(Value::String(t)) => match t.as_str() {
                // Fields are checked as the record is walked.
                "record" | "error" => {
                    define(ty, named);
                    Ok(())
                }
                "enum" => {
                    define(ty, named);
                    match o.get("symbols").and_then(Value::as_array) {
                        Some(s) if !s.is_empty() => Ok(()),
                        _ => Err(fail("an enum needs a non-empty \"symbols\" list".into())),
                    }
                }
                "fixed" => {
                    define(ty, named);
                    Ok(())
                }
                "array" => check_type(
                    o.get("items")
                        .ok_or_else(|| fail("an array needs \"items\"".into()))?,
                    &at(path, "items"),
                    named,
                ),
                "map" => check_type(
                    o.get("values")
                        .ok_or_else(|| fail("a map needs \"values\"".into()))?,
                    &at(path, "values"),
                    named,
                ),
                // `{"type": "long", "logicalType": …}` and the like.
                other => check_type(&Value::String(other.to_string()), path, named),
            },
            _ => Err(fail("a type object needs a \"type\" name".into())),
        },
        other => Err(fail(format!("`{other}` is not an Avro type"))),
    }
}

/// A field type with named references and `["null", T]` unions resolved.
fn resolve(ty: &Value, named: &HashMap<String, Value>) -> Value {
    match ty {
        Value::String(name) => named.get(name).cloned().unwrap_or_else(|| ty.clone()),
        Value::Array(branches) => {
            let non_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            match non_null.as_slice() {
                [one] => resolve(one, named),
                _ => ty.clone(),
            }
        }
        _ => ty.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_schema_flattens_the_address() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dataplane/tests/data/orders.avsc"
        ))
        .unwrap();
        assert_eq!(
            columns_from_avro(&text, "_").unwrap(),
            [
                "ordertime",
                "orderid",
                "itemid",
                "orderunits",
                "address_city",
                "address_state",
                "address_zipcode"
            ]
        );
    }

    #[test]
    fn named_references_and_optional_records() {
        let s = r#"{"type":"record","name":"r","fields":[
            {"name":"a","type":{"type":"record","name":"p","fields":[{"name":"x","type":"int"}]}},
            {"name":"b","type":["null","p"]},
            {"name":"c","type":["null","string","int"]}]}"#;
        assert_eq!(columns_from_avro(s, ".").unwrap(), ["a.x", "b.x", "c"]);
        let types: Vec<ColumnType> = typed_columns_from_avro(s, ".")
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        // `["null","string","int"]` has two non-null branches: kept as JSON.
        assert_eq!(
            types,
            [ColumnType::Int32, ColumnType::Int32, ColumnType::Json]
        );
        assert!(columns_from_avro(r#"{"type":"string"}"#, "_").is_err());
    }

    #[test]
    fn unknown_types_are_errors_with_their_place() {
        let s: Value = serde_json::from_str(
            r#"{"type":"record","name":"r","fields":[
            {"name":"a","type":"int"},
            {"name":"b","type":{"type":"record","name":"p","fields":[{"name":"x","type":"wat"}]}}]}"#,
        )
        .unwrap();
        let e = typed_columns(&s, "_").unwrap_err();
        assert_eq!(e.path, "fields.1.type.fields.0.type");
        assert!(e.message.contains("unknown type `wat`"), "{e}");
        let s: Value = serde_json::from_str(
            r#"{"type":"record","name":"r","fields":[{"name":"a","type":["null",{"type":"array","items":"nope"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            typed_columns(&s, "_").unwrap_err().path,
            "fields.0.type.1.items"
        );
        // Logical types and enums are fine.
        let s: Value = serde_json::from_str(
            r#"{"type":"record","name":"r","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}},{"name":"f","type":"E"}]}"#,
        )
        .unwrap();
        assert_eq!(typed_columns(&s, "_").unwrap().len(), 3);
    }
}

/// Why a schema cannot follow another as the same table's next version:
/// the table's old files must read back under the new columns. Every old
/// column keeps its name and type; new columns (read as null from old
/// files: every lake column may be null) come after them when files are
/// positional (CSV), anywhere otherwise (Parquet and NDJSON match by name).
pub fn evolution_problem(
    old: &[(String, ColumnType)],
    new: &[(String, ColumnType)],
    positional: bool,
) -> Option<String> {
    for (name, ty) in old {
        match new.iter().find(|(n, _)| n == name) {
            None => {
                return Some(format!(
                    "column `{name}` is gone: files already written hold it, and a removed or renamed field cannot be read back"
                ))
            }
            Some((_, new_ty)) if new_ty != ty => {
                return Some(format!(
                    "column `{name}` changes type ({ty:?} -> {new_ty:?}): files already written hold {ty:?} values"
                ))
            }
            Some(_) => {}
        }
    }
    if positional {
        let prefix: Vec<&str> = new
            .iter()
            .take(old.len())
            .map(|(n, _)| n.as_str())
            .collect();
        let before: Vec<&str> = old.iter().map(|(n, _)| n.as_str()).collect();
        if prefix != before {
            let added = new
                .iter()
                .find(|(n, _)| !before.contains(&n.as_str()))
                .map(|(n, _)| n.as_str())
                .unwrap_or("?");
            return Some(format!(
                "new column `{added}` is not at the end: CSV files are read by position, so new fields go after every existing column (at the end of the record, not inside a nested one)"
            ));
        }
    }
    None
}

#[cfg(test)]
mod evolution_tests {
    use super::*;

    #[test]
    fn a_schema_may_only_grow() {
        let c = |names: &[(&str, ColumnType)]| -> Vec<(std::string::String, ColumnType)> {
            names.iter().map(|(n, t)| (n.to_string(), *t)).collect()
        };
        use ColumnType::*;
        let v1 = c(&[("id", Int64), ("city", String)]);
        assert_eq!(evolution_problem(&v1, &v1, true), None);
        let grown = c(&[("id", Int64), ("city", String), ("coupon", String)]);
        assert_eq!(evolution_problem(&v1, &grown, true), None);
        let inside = c(&[("id", Int64), ("coupon", String), ("city", String)]);
        assert!(evolution_problem(&v1, &inside, true)
            .unwrap()
            .contains("not at the end"));
        assert_eq!(evolution_problem(&v1, &inside, false), None);
        let removed = c(&[("id", Int64)]);
        assert!(evolution_problem(&v1, &removed, false)
            .unwrap()
            .contains("`city` is gone"));
        let retyped = c(&[("id", String), ("city", String)]);
        assert!(evolution_problem(&v1, &retyped, false)
            .unwrap()
            .contains("changes type"));
    }
}

//! CSV columns from an Avro record schema (such as `orders.avsc`): nested
//! records flatten exactly as the flattener flattens nested objects.
//!
//! Owns: reading Avro record schemas (named types, `["null", record]`
//! unions). Must not: read files (callers pass the text).

use std::collections::HashMap;

use serde_json::Value;

/// Column names of an Avro record schema, nested records joined by `separator`.
pub fn columns_from_avro(schema: &str, separator: &str) -> Result<Vec<String>, String> {
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
/// null (a record may lack any key).
pub fn typed_columns_from_avro(
    schema: &str,
    separator: &str,
) -> Result<Vec<(String, ColumnType)>, String> {
    let root: Value =
        serde_json::from_str(schema).map_err(|e| format!("the schema is not JSON: {e}"))?;
    if root.get("type").and_then(Value::as_str) != Some("record") {
        return Err("the schema's top level must be an Avro record (\"type\": \"record\")".into());
    }
    let mut named = HashMap::new();
    let mut columns = Vec::new();
    walk(&root, "", separator, &mut named, &mut columns)?;
    Ok(columns)
}

fn walk(
    record: &Value,
    prefix: &str,
    separator: &str,
    named: &mut HashMap<String, Value>,
    columns: &mut Vec<(String, ColumnType)>,
) -> Result<(), String> {
    if let Some(name) = record.get("name").and_then(Value::as_str) {
        named.insert(name.to_string(), record.clone());
        if let Some(ns) = record.get("namespace").and_then(Value::as_str) {
            named.insert(format!("{ns}.{name}"), record.clone());
        }
    }
    let fields = record
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("record `{prefix}` has no \"fields\" list"))?;
    for field in fields {
        let name = field
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a field of record `{prefix}` has no name"))?;
        let ty = resolve(field.get("type").unwrap_or(&Value::Null), named);
        if ty.get("type").and_then(Value::as_str) == Some("record") {
            walk(
                &ty,
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
            "/tests/data/orders.avsc"
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
}

//! The spec reference: every field with its type, default and meaning,
//! generated from the JSON Schema of the typed model (so docs cannot drift).
//!
//! Owns: walking the schema into a flat list of fields, and the Markdown
//! table of `docs/spec-reference.md`. Must not: know what templates use a
//! field; callers pass that in (see `render::consumers`).

use std::collections::BTreeMap;

use serde_json::Value;

/// One documented field of the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDoc {
    /// Dotted path, e.g. `kafka.msk.broker_count`.
    pub path: String,
    /// `integer`, `string`, `provisioned | on-demand`, `list of string`, …
    pub ty: String,
    pub default: Option<String>,
    pub description: String,
    /// For string enums: the allowed values.
    pub choices: Vec<String>,
    /// `mode: X` when the field exists only in that variant.
    pub when: Option<String>,
    /// True for scalars and lists (leaves), false for sections.
    pub leaf: bool,
}

/// Every field of the spec schema, depth first, in declaration order.
pub fn fields(schema: &Value) -> Vec<FieldDoc> {
    let mut out = Vec::new();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    walk_object(schema, "", None, &defs, &mut out);
    out
}

fn resolve<'a>(schema: &'a Value, defs: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => defs
            .get(r.trim_start_matches("#/$defs/"))
            .map(|d| resolve(d, defs))
            .unwrap_or(schema),
        None => match schema.get("anyOf").and_then(Value::as_array) {
            // Option<T>: anyOf [T, null]
            Some(alts) if alts.len() == 2 && alts[1].get("type") == Some(&Value::from("null")) => {
                resolve(&alts[0], defs)
            }
            _ => schema,
        },
    }
}

fn string_choices(schema: &Value) -> Vec<String> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
    }
    schema
        .get("oneOf")
        .and_then(Value::as_array)
        .map(|alts| {
            alts.iter()
                .filter_map(|a| a.get("const").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn variants(schema: &Value) -> Vec<&Value> {
    schema
        .get("oneOf")
        .and_then(Value::as_array)
        .map(|alts| {
            alts.iter()
                .filter(|a| a.get("properties").is_some())
                .collect()
        })
        .unwrap_or_default()
}

fn type_name(schema: &Value, defs: &Value) -> String {
    let r = resolve(schema, defs);
    let choices = string_choices(r);
    if !choices.is_empty() {
        return choices.join(" \\| ");
    }
    let ty = match r.get("type") {
        // Option<T> renders as `type: [T, "null"]`.
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        Some(other) => other.as_str(),
        None => None,
    };
    match ty {
        Some("object") if r.get("properties").is_some() => "section".into(),
        Some("array") => format!(
            "list of {}",
            r.get("items")
                .map(|i| type_name(i, defs))
                .unwrap_or_default()
        ),
        Some("object") if r.get("additionalProperties").is_some_and(Value::is_object) => {
            "map of string".into()
        }
        Some(t) => t.to_string(),
        None if !variants(r).is_empty() => "section (by `mode`)".into(),
        None => "section".into(),
    }
}

fn walk_object(
    schema: &Value,
    prefix: &str,
    when: Option<&str>,
    defs: &Value,
    out: &mut Vec<FieldDoc>,
) {
    let schema = resolve(schema, defs);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, sub) in props {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let target = resolve(sub, defs);
        let description = sub
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .replace('\n', " ");
        let map_of_sections = target
            .get("additionalProperties")
            .filter(|v| v.is_object())
            .is_some_and(|e| resolve(e, defs).get("properties").is_some());
        let is_section =
            target.get("properties").is_some() || !variants(target).is_empty() || map_of_sections;
        let default = sub
            .get("default")
            .filter(|d| !d.is_object() && !d.is_null())
            .map(|d| match d {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let mut choices = string_choices(target);
        // A list of choices (enum items): the items' choices.
        if choices.is_empty() {
            if let Some(items) = target.get("items") {
                choices = string_choices(resolve(items, defs));
            }
        }
        let description = match (
            description.is_empty(),
            sub.get("const").and_then(Value::as_str),
        ) {
            (true, Some(c)) => format!("`{c}` selects this variant."),
            _ => description,
        };
        out.push(FieldDoc {
            path: path.clone(),
            ty: if let Some(c) = sub.get("const").and_then(Value::as_str) {
                format!("`{c}`")
            } else {
                type_name(sub, defs)
            },
            default: if is_section { None } else { default },
            description,
            choices,
            when: when.map(String::from),
            // A variant's `mode` tag selects a block; it is not a value of its own.
            leaf: !is_section && sub.get("const").is_none(),
        });
        if target.get("properties").is_some() {
            walk_object(target, &path, when, defs, out);
        }
        // A map of sections (`datasets:`): each entry's fields, under `<name>`.
        if let Some(entry) = target.get("additionalProperties").filter(|v| v.is_object()) {
            let entry = resolve(entry, defs);
            if entry.get("properties").is_some() {
                walk_object(entry, &format!("{path}.<name>"), when, defs, out);
            }
        }
        for variant in variants(target) {
            let mode = variant
                .pointer("/properties/mode/const")
                .and_then(Value::as_str)
                .map(|m| format!("mode: {m}"));
            walk_object(variant, &path, mode.as_deref().or(when), defs, out);
        }
    }
}

/// `docs/spec-reference.md`: a table of every field; `consumers` maps a
/// field path to the stacks whose rendered template depends on it.
pub fn markdown(fields: &[FieldDoc], consumers: &BTreeMap<String, Vec<String>>) -> String {
    let mut md = String::from(
        "# Environment spec reference\n\n\
         Generated from the typed model by `cargo test` (`tests/render.rs`); do not edit by hand.\n\
         Run `LAKECTL_BLESS=1 cargo test --test render` after changing the model.\n\n\
         A spec is `environments/<env>.yaml`. `extends: _base.yaml` inherits a base: mappings merge\n\
         key by key, lists and scalars replace, and a block whose `mode:` changes is replaced whole.\n\
         Editors get completion from `docs/spec.schema.json` (`lakectl schema`).\n\n\
         *Used by* lists the stacks whose rendered template changes when the field changes\n\
         (measured by perturbing each field of `poc` and of two variants that take every other\n\
         template branch); `stacks.json` is what the deployer reads. `—`: read by the loader\n\
         (`extends`) or by commands that talk to AWS (account guard, endpoint), not by a template.\n\n\
         | field | type | default | used by | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for f in fields {
        let depth = f.path.matches('.').count();
        let name = format!("{}`{}`", "&nbsp;&nbsp;".repeat(depth), f.path);
        let when = f
            .when
            .as_ref()
            .map(|w| format!(" *({w})*"))
            .unwrap_or_default();
        let used = if f.leaf {
            consumers
                .get(&f.path)
                .map(|c| c.join(", "))
                .unwrap_or_else(|| "—".into())
        } else {
            String::new()
        };
        md.push_str(&format!(
            "| {name} | {} | {} | {used} | {}{when} |\n",
            f.ty,
            f.default
                .as_deref()
                .map(|d| format!("`{d}`"))
                .unwrap_or_default(),
            f.description.replace('|', "\\|"),
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_field_is_listed_with_its_variant() {
        let f = fields(&crate::spec::json_schema());
        let cidr = f
            .iter()
            .find(|f| f.path == "network.cidr")
            .expect("network.cidr");
        assert_eq!(cidr.when.as_deref(), Some("mode: new"));
        let shards = f
            .iter()
            .find(|f| f.path == "datasets.<name>.stream.shards")
            .unwrap();
        assert_eq!(
            (shards.ty.as_str(), shards.default.as_deref()),
            ("integer", Some("2"))
        );
        let mode = f
            .iter()
            .find(|f| f.path == "datasets.<name>.stream.mode")
            .unwrap();
        assert_eq!(mode.choices, ["provisioned", "on-demand"]);
        assert!(f
            .iter()
            .any(|f| f.path == "kafka.self_managed.broker_heap_gib"));
        assert!(f
            .iter()
            .any(|f| f.path == "metastore.capacity.instance_class"));
    }
}

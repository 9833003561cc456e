//! Which stacks consume which spec field, measured rather than declared:
//! each leaf field is changed in turn and the stacks whose rendered output
//! changes are recorded. Feeds the "used by" column of the spec reference and
//! shows dead fields.
//!
//! Owns: field perturbation and the comparison of renders. Must not: be used
//! on the deploy path (it renders once per field).

use std::collections::BTreeMap;

use serde_json::Value;

use super::render;
use crate::spec::reference::FieldDoc;
use crate::spec::{EnvSpec, LoadedSpec};

/// Field path -> stacks (and `stacks.json`) whose output depends on it.
pub fn consumers(loaded: &LoadedSpec, fields: &[FieldDoc]) -> BTreeMap<String, Vec<String>> {
    let Ok(base) = render(loaded) else {
        return BTreeMap::new();
    };
    let value = serde_json::to_value(&loaded.spec).expect("specs serialise");
    let mut found = BTreeMap::new();
    for field in fields.iter().filter(|f| f.leaf) {
        // A field of a map's entries (`datasets.<name>.format`): each entry
        // the spec has, until one changes a render.
        let pointers: Vec<String> = match field.path.split_once(".<name>") {
            Some((map, rest)) => value
                .pointer(&format!("/{}", map.replace('.', "/")))
                .and_then(Value::as_object)
                .map(|m| {
                    m.keys()
                        .map(|k| {
                            format!("/{}/{k}{}", map.replace('.', "/"), rest.replace('.', "/"))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None => vec![format!("/{}", field.path.replace('.', "/"))],
        };
        'pointers: for pointer in pointers {
            let Some(current) = value.pointer(&pointer).filter(|v| !v.is_null()) else {
                continue;
            };
            for candidate in mutations(current, &field.choices) {
                let mut changed = value.clone();
                *changed.pointer_mut(&pointer).expect("pointer exists") = candidate;
                let Ok(spec) = serde_json::from_value::<EnvSpec>(changed) else {
                    continue;
                };
                let mutated = LoadedSpec {
                    spec,
                    ..loaded.clone()
                };
                let Ok(other) = render(&mutated) else {
                    continue;
                };
                let mut stacks: Vec<String> = base
                    .stacks
                    .iter()
                    .map(|s| s.id.as_str())
                    .chain(other.stacks.iter().map(|s| s.id.as_str()))
                    .filter(|id| {
                        base.stack(id).map(|s| &s.template) != other.stack(id).map(|s| &s.template)
                    })
                    .map(String::from)
                    .collect();
                stacks.sort_by_key(|id| {
                    super::catalog::stack_kinds()
                        .iter()
                        .position(|k| k.id == id)
                });
                stacks.dedup();
                if base.stacks_json() != other.stacks_json() {
                    stacks.push("stacks.json".into());
                }
                if !stacks.is_empty() {
                    found.insert(field.path.clone(), stacks);
                    break 'pointers;
                }
            }
        }
    }
    found
}

/// Plausible other values for a field, most likely to stay valid first.
fn mutations(current: &Value, choices: &[String]) -> Vec<Value> {
    match current {
        Value::Bool(b) => vec![Value::Bool(!b)],
        Value::Number(n) if n.is_u64() => {
            let n = n.as_u64().unwrap_or(0);
            let mut out = vec![Value::from(n + 1)];
            if n > 1 {
                out.push(Value::from(n - 1));
            }
            out
        }
        Value::Number(n) => vec![Value::from(n.as_f64().unwrap_or(0.0) + 0.5)],
        Value::String(s) if !choices.is_empty() => choices
            .iter()
            .filter(|c| *c != s)
            .map(|c| Value::from(c.as_str()))
            .collect(),
        Value::String(s) => {
            let mut out = Vec::new();
            if let Some(i) = s.find(|c: char| c.is_ascii_digit() && c != '9') {
                let mut bumped = s.clone();
                let digit = bumped.as_bytes()[i] - b'0' + 1;
                bumped.replace_range(i..=i, &digit.to_string());
                out.push(Value::from(bumped));
            }
            out.push(Value::from(format!("{s}x")));
            out
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            // An empty list of choices (enum items): one choice in it.
            if items.is_empty() {
                if let Some(first) = choices.first() {
                    out.push(Value::Array(vec![Value::from(first.as_str())]));
                }
            }
            if let Some(last) = items.last() {
                out.push(Value::Array(items[..items.len() - 1].to_vec()));
                let mut longer = items.clone();
                longer.push(last.clone());
                out.push(Value::Array(longer));
                for changed_last in mutations(last, &[]) {
                    let mut edited = items.clone();
                    *edited.last_mut().expect("not empty") = changed_last;
                    out.push(Value::Array(edited));
                }
            }
            out
        }
        Value::Object(map) => {
            let mut more = map.clone();
            more.insert("perturbed".into(), Value::from("yes"));
            vec![Value::Object(more)]
        }
        Value::Null => Vec::new(),
    }
}

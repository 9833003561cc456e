//! The planner/differ: what `lakectl diff` shows and `up` will apply.
//!
//! Owns: comparing rendered stacks with earlier ones (a previous render in a
//! directory, or the deployed templates the deployer reads) and the plan's
//! text and JSON (`report`); `diff` (per-resource changes), `security`
//! (IAM and security-group broadening), `normalize` (one model of a
//! template). Must not: call AWS or render templates.

pub mod diff;
pub mod normalize;
pub mod propagate;
pub mod report;
pub mod security;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::render::{ParamSource, RenderedEnv, RenderedStack};
use diff::StackDiff;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: not a template: {source}")]
    Template {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{path}: not a stacks.json written by `lakectl render`: {source}")]
    Stacks {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Parameter values as an offline plan compares them: where each comes from.
pub fn parameter_text(source: &ParamSource) -> String {
    match source {
        ParamSource::Output { stack, output } => format!("output {stack}.{output}"),
        ParamSource::Artifact { artifact } => format!("sha256 of {artifact}"),
        ParamSource::Default { value } => format!("default {value}"),
        ParamSource::Image { ssm_parameter } => format!("image of {ssm_parameter}"),
    }
}

/// One stack as it was before: its template text (YAML or JSON) and
/// parameter values (as text, in the same terms as the new side's).
#[derive(Debug, Clone)]
pub struct Earlier {
    /// Where it came from, for error messages (a file, a deployed stack).
    pub origin: String,
    pub template: String,
    pub parameters: BTreeMap<String, String>,
    /// The stack's tags, when known (a deployed stack; an earlier render's
    /// `stacks.json`): `up` applies the spec's tags to every stack and
    /// every resource, so a change of them is a change of the plan.
    pub tags: Option<BTreeMap<String, String>>,
}

/// Compare a fresh render (with the parameter values `new_params` gives each
/// stack) with `earlier` stacks by id. Earlier stacks that are no longer
/// rendered are deleted; rendered stacks with no earlier one are created.
pub fn compare(
    rendered: &RenderedEnv,
    new_params: impl Fn(&RenderedStack) -> BTreeMap<String, String>,
    earlier: &BTreeMap<String, Earlier>,
) -> Result<Vec<StackDiff>, PlanError> {
    let parse = |e: &Earlier| {
        normalize::normalize(&e.template).map_err(|source| PlanError::Template {
            path: e.origin.clone(),
            source,
        })
    };
    let new_tags: BTreeMap<String, String> = rendered
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut diffs = Vec::new();
    // Outputs that change when their stack applies, by stack id: the
    // parameters downstream stacks take from them are not known before.
    // Rendered stacks come in deploy order, so upstream is planned first.
    let mut moving: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for stack in &rendered.stacks {
        let new = normalize::normalize(&stack.template).map_err(|source| PlanError::Template {
            path: format!("{} (rendered)", stack.id),
            source,
        })?;
        let mut params = new_params(stack);
        for (name, source) in &stack.parameters {
            let ParamSource::Output { stack: up, output } = source else {
                continue;
            };
            let known = params.get(name).is_some_and(|v| !propagate::is_unknown(v));
            if known && moving.get(up).is_some_and(|o| o.contains(output)) {
                params.insert(
                    name.clone(),
                    propagate::known_after_upstream(&parameter_text(source)),
                );
            }
        }
        let old = earlier.get(&stack.id).map(parse).transpose()?;
        let old_params = earlier.get(&stack.id).map(|e| &e.parameters);
        let mut d = diff::diff_stack(
            &stack.id,
            &stack.stack_name,
            old.as_ref().zip(old_params),
            Some((&new, &params)),
        );
        if let Some(old_tags) = earlier.get(&stack.id).and_then(|e| e.tags.as_ref()) {
            diff::set_tag_changes(&mut d, old_tags, &new_tags);
        }
        if old.is_some() {
            moving.insert(stack.id.clone(), propagate::changing_outputs(&d, &new));
        }
        diffs.push(d);
    }
    for (id, e) in earlier
        .iter()
        .filter(|(id, _)| rendered.stack(id).is_none())
    {
        let old = parse(e)?;
        diffs.push(diff::diff_stack(
            id,
            &format!("{}-{id}", rendered.name),
            Some((&old, &e.parameters)),
            None,
        ));
    }
    Ok(diffs)
}

/// Diff a fresh render against an earlier render in `dir` (`lakectl render`
/// output, e.g. of the main branch): stacks missing there are created,
/// stacks missing now are deleted.
pub fn against_render(rendered: &RenderedEnv, dir: &Path) -> Result<Vec<StackDiff>, PlanError> {
    let stacks_path = dir.join("stacks.json");
    let stacks: serde_json::Value = match std::fs::read_to_string(&stacks_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|source| PlanError::Stacks {
            path: stacks_path.display().to_string(),
            source,
        })?,
        Err(_) => serde_json::Value::Null,
    };
    // A template file without a stacks.json entry (a hand-made or partial
    // render) still counts: its stack has no parameters then.
    let listed = stacks["stacks"].as_array().cloned().unwrap_or_default();
    let tags: Option<BTreeMap<String, String>> = stacks["tags"].as_object().map(|t| {
        t.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    });
    let mut ids: Vec<String> = rendered.stacks.iter().map(|s| s.id.clone()).collect();
    ids.extend(
        listed
            .iter()
            .filter_map(|s| s["id"].as_str().map(String::from)),
    );
    let mut earlier = BTreeMap::new();
    for id in ids {
        let path = dir.join(format!("{id}.yaml"));
        let Ok(template) = std::fs::read_to_string(&path) else {
            continue;
        };
        let entry = listed.iter().find(|s| s["id"] == id.as_str());
        let parameters = entry
            .and_then(|s| s["parameters"].as_object())
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                serde_json::from_value::<ParamSource>(v.clone())
                    .ok()
                    .map(|p| (k.clone(), parameter_text(&p)))
            })
            .collect();
        earlier.insert(
            id,
            Earlier {
                origin: path.display().to_string(),
                template,
                parameters,
                tags: tags.clone(),
            },
        );
    }
    compare(
        rendered,
        |stack| {
            stack
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), parameter_text(v)))
                .collect()
        },
        &earlier,
    )
}

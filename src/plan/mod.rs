//! The planner/differ: what `lakectl diff` shows and `up` will apply.
//!
//! Owns: comparing rendered stacks with earlier ones (a previous render in a
//! directory today; the deployed templates once the deployer lands) and
//! reporting the plan. Must not: call AWS or render templates.

pub mod diff;
pub mod normalize;
pub mod report;
pub mod security;

use std::collections::BTreeMap;
use std::path::Path;

use crate::render::{ParamSource, RenderedEnv};
use diff::StackDiff;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {message}")]
    Template { path: String, message: String },
    #[error("{path}: not a stacks.json written by `lakectl render`: {message}")]
    Stacks { path: String, message: String },
}

/// Parameter values as the plan compares them: where each comes from.
fn parameter_text(source: &ParamSource) -> String {
    match source {
        ParamSource::Output { stack, output } => format!("output {stack}.{output}"),
        ParamSource::Artifact { artifact } => format!("sha256 of {artifact}"),
        ParamSource::Default { value } => format!("default {value}"),
    }
}

/// Diff a fresh render against an earlier render in `dir` (`lakectl render`
/// output, e.g. of the main branch): stacks missing there are created,
/// stacks missing now are deleted.
pub fn against_render(rendered: &RenderedEnv, dir: &Path) -> Result<Vec<StackDiff>, PlanError> {
    let stacks_path = dir.join("stacks.json");
    let earlier: Option<serde_json::Value> = match std::fs::read_to_string(&stacks_path) {
        Ok(text) => Some(serde_json::from_str(&text).map_err(|e| PlanError::Stacks {
            path: stacks_path.display().to_string(),
            message: e.to_string(),
        })?),
        Err(_) => None,
    };
    let earlier_ids: Vec<String> = earlier
        .as_ref()
        .and_then(|e| e["deploy_order"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let earlier_params = |id: &str| -> BTreeMap<String, String> {
        let stack = earlier
            .as_ref()
            .and_then(|e| e["stacks"].as_array())
            .and_then(|s| s.iter().find(|s| s["id"] == id));
        stack
            .and_then(|s| s["parameters"].as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        serde_json::from_value::<ParamSource>(v.clone())
                            .ok()
                            .map(|p| (k.clone(), parameter_text(&p)))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let read = |id: &str| -> Result<Option<serde_json::Value>, PlanError> {
        let path = dir.join(format!("{id}.yaml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                normalize::normalize(&text)
                    .map(Some)
                    .map_err(|message| PlanError::Template {
                        path: path.display().to_string(),
                        message,
                    })
            }
            Err(_) => Ok(None),
        }
    };
    let mut diffs = Vec::new();
    for stack in &rendered.stacks {
        let new = normalize::normalize(&stack.template).map_err(|message| PlanError::Template {
            path: format!("{} (rendered)", stack.id),
            message,
        })?;
        let new_params: BTreeMap<String, String> = stack
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), parameter_text(v)))
            .collect();
        let old = read(&stack.id)?;
        let old_params = earlier_params(&stack.id);
        diffs.push(diff::diff_stack(
            &stack.id,
            &stack.stack_name,
            old.as_ref().map(|t| (t, &old_params)),
            Some((&new, &new_params)),
        ));
    }
    for id in earlier_ids.iter().filter(|id| rendered.stack(id).is_none()) {
        if let Some(old) = read(id)? {
            let params = earlier_params(id);
            diffs.push(diff::diff_stack(
                id,
                &format!("{}-{id}", rendered.name),
                Some((&old, &params)),
                None,
            ));
        }
    }
    Ok(diffs)
}

//! Parameter wiring: each stack parameter is fed by the upstream stack that
//! outputs a value of the same name, by an artifact hash, by a pinned
//! machine image (named under the template's `Metadata.lakectl.Images`), or
//! by its Default.
//!
//! Owns: reading Parameters/Outputs from rendered templates and deriving the
//! dependency edges from them, so templates cannot drift from the graph.
//! Must not: order stacks (that is `graph`) or talk to AWS.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde::Serialize;
use serde_yaml::Value;

use super::{RenderError, RenderedStack};

/// Where a stack parameter's value comes from at deploy time.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum ParamSource {
    /// An output of an upstream stack.
    Output { stack: String, output: String },
    /// The sha256 of a data-plane binary published by `lakectl up`.
    Artifact { artifact: String },
    /// The template's own Default.
    Default { value: String },
    /// A machine image: resolved from this SSM parameter at the first
    /// deploy, then pinned to the value the stack runs (an image id is
    /// create-only: re-resolving on every update would replace instances
    /// whenever AWS publishes an image). `up --refresh-images` moves it.
    Image { ssm_parameter: String },
}

/// Parameters named `<Binary>ArtifactSha256` take the hash of that binary.
pub fn artifact_for_parameter(name: &str) -> Option<&'static str> {
    match name {
        "IngestArtifactSha256" => Some("lake-ingest"),
        "CompactArtifactSha256" => Some("lake-compact"),
        "BridgePluginSha256" => Some("bridge-plugin"),
        _ => None,
    }
}

/// Fill `parameters`, `outputs` and `depends_on` of every stack.
pub fn wire(stacks: &mut [RenderedStack]) -> Result<(), RenderError> {
    let mut parsed = Vec::with_capacity(stacks.len());
    for s in stacks.iter() {
        let doc: Value = serde_yaml::from_str(&s.template).map_err(|e| {
            // Show the rendered line: the template's line numbers differ.
            let line = e
                .location()
                .and_then(|l| s.template.lines().nth(l.line().saturating_sub(1)))
                .map(|l| format!("\n  the rendered line: {}", l.trim()))
                .unwrap_or_default();
            RenderError::NotYaml {
                stack: s.id.clone(),
                message: format!("{e}{line}"),
            }
        })?;
        parsed.push(doc);
    }
    let mut producer: HashMap<String, String> = HashMap::new();
    for (s, doc) in stacks.iter_mut().zip(&parsed) {
        s.outputs = section_keys(doc, "Outputs").map(|(k, _)| k).collect();
        for out in &s.outputs {
            if let Some(first) = producer.insert(out.clone(), s.id.clone()) {
                return Err(RenderError::DuplicateOutput {
                    output: out.clone(),
                    first,
                    second: s.id.clone(),
                });
            }
        }
    }
    for (s, doc) in stacks.iter_mut().zip(&parsed) {
        let mut params = IndexMap::new();
        let mut deps: Vec<String> = Vec::new();
        let images = doc
            .get("Metadata")
            .and_then(|m| m.get("lakectl"))
            .and_then(|m| m.get("Images"));
        for (name, body) in section_keys(doc, "Parameters") {
            let image = images
                .and_then(|i| i.get(name.as_str()))
                .and_then(Value::as_str);
            let source = if let Some(path) = image {
                ParamSource::Image {
                    ssm_parameter: path.to_string(),
                }
            } else if let Some(stack) = producer.get(&name).filter(|p| **p != s.id) {
                if !deps.contains(stack) {
                    deps.push(stack.clone());
                }
                ParamSource::Output {
                    stack: stack.clone(),
                    output: name.clone(),
                }
            } else if let Some(artifact) = artifact_for_parameter(&name) {
                ParamSource::Artifact {
                    artifact: artifact.to_string(),
                }
            } else if let Some(default) = body.get("Default") {
                ParamSource::Default {
                    value: scalar_text(default),
                }
            } else {
                return Err(RenderError::Unwired {
                    stack: s.id.clone(),
                    parameter: name,
                });
            };
            params.insert(name, source);
        }
        s.parameters = params;
        s.depends_on = deps;
    }
    // Dependencies in canonical stack order, whatever the parameter order.
    let canonical: Vec<String> = stacks.iter().map(|s| s.id.clone()).collect();
    for s in stacks.iter_mut() {
        s.depends_on
            .sort_by_key(|d| canonical.iter().position(|c| c == d));
    }
    Ok(())
}

fn section_keys<'a>(doc: &'a Value, section: &str) -> impl Iterator<Item = (String, &'a Value)> {
    doc.get(section)
        .and_then(Value::as_mapping)
        .into_iter()
        .flat_map(|m| m.iter())
        .filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), v)))
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

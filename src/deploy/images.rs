//! Machine images, pinned: an image parameter (`ParamSource::Image`) is
//! resolved from its SSM parameter when its stack is first created, and
//! from then on keeps the value the deployed stack runs. An `ImageId` is
//! create-only: an SSM-typed parameter, which CloudFormation re-resolves on
//! every update, would replace every broker and roll the fleet on any
//! unrelated change once AWS publishes a new image. A newer image is
//! reported; `--refresh-images` takes it (and `diff` shows the replacement).
//!
//! Owns: resolving and pinning image parameters. Must not: decide what a
//! changed image does to resources (the plan shows it).

use std::collections::BTreeMap;

use super::cfn::Deployed;
use super::DeployError;
use crate::aws::{Aws, AwsError};
use crate::render::{ParamSource, RenderedStack};

/// The key a pinned image takes among the values parameters resolve from.
pub fn key(ssm_parameter: &str) -> String {
    format!("image:{ssm_parameter}")
}

/// The images of `stack`, and a note for each one a newer image is
/// available for.
#[derive(Debug, Default)]
pub struct Pinned {
    pub values: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

/// Pin `stack`'s images: the deployed value, or (first deploy, or
/// `refresh`) the SSM parameter's.
pub async fn pin(
    aws: &Aws,
    stack: &RenderedStack,
    deployed: Option<&Deployed>,
    refresh: bool,
) -> Result<Pinned, DeployError> {
    let mut pinned = Pinned::default();
    for (param, source) in &stack.parameters {
        let ParamSource::Image { ssm_parameter } = source else {
            continue;
        };
        let latest = aws
            .ssm
            .parameter(ssm_parameter)
            .await
            .map_err(|e| crate::aws::aws_error(format!("resolving {ssm_parameter} (SSM)"), e))?
            .ok_or_else(|| {
                AwsError::service(
                    format!("resolving {ssm_parameter} (SSM)"),
                    "NoValue",
                    "the parameter has no value",
                )
            })?;
        let running = deployed
            .and_then(|d| d.parameters.get(param))
            .filter(|v| v.starts_with("ami-"))
            .cloned();
        let chosen = match running {
            Some(running) if !refresh => {
                if running != latest {
                    pinned.notes.push(format!(
                        "{}: {param} stays at {running}; {ssm_parameter} now gives {latest} (`lakectl up --refresh-images` replaces what runs it)",
                        stack.stack_name
                    ));
                }
                running
            }
            _ => latest,
        };
        pinned.values.insert(key(ssm_parameter), chosen);
    }
    Ok(pinned)
}

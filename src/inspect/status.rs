//! `lakectl status` and `lakectl outputs`: what is deployed, per stack.
//!
//! Owns: reading stack state and outputs for an environment into plain
//! rows, and their table. Must not: change anything, or print (the command
//! does).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::Aws;
use crate::deploy::cfn::Deployed;
use crate::deploy::{deployed_stacks, outputs_by_id, DeployError};
use crate::render::RenderedEnv;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StackStatus {
    pub id: String,
    pub stack_name: String,
    /// CloudFormation's status, or `NOT_DEPLOYED`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub last_updated: Option<String>,
    /// Whether this stack is as it should be (a complete create or update).
    pub ok: bool,
}

/// Every rendered stack's state in `deployed` (what is deployed now), plus
/// deployed stacks the spec no longer has.
pub fn rows(rendered: &RenderedEnv, deployed: &BTreeMap<String, Deployed>) -> Vec<StackStatus> {
    let mut rows: Vec<StackStatus> = rendered
        .stacks
        .iter()
        .map(|s| match deployed.get(&s.id) {
            Some(d) => StackStatus {
                id: s.id.clone(),
                stack_name: d.name.clone(),
                status: d.status.to_string(),
                reason: d.reason.clone(),
                last_updated: Some(d.last_updated.clone()),
                ok: d.healthy(),
            },
            None => StackStatus {
                id: s.id.clone(),
                stack_name: s.stack_name.clone(),
                status: "NOT_DEPLOYED".into(),
                reason: None,
                last_updated: None,
                ok: false,
            },
        })
        .collect();
    for (id, d) in deployed
        .iter()
        .filter(|(id, _)| rendered.stack(id).is_none())
    {
        rows.push(StackStatus {
            id: id.clone(),
            stack_name: d.name.clone(),
            status: d.status.to_string(),
            reason: Some("not in the spec any more; the next `up` deletes it".into()),
            last_updated: Some(d.last_updated.clone()),
            ok: false,
        });
    }
    rows
}

/// Outputs of every deployed stack, by stack id.
pub async fn outputs(
    aws: &Aws,
    rendered: &RenderedEnv,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, DeployError> {
    Ok(outputs_by_id(&deployed_stacks(aws, rendered).await?))
}

/// The status rows as an aligned table.
pub fn table(rows: &[StackStatus]) -> String {
    let width = rows
        .iter()
        .map(|r| r.stack_name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:width$}  {:24}  LAST UPDATE\n", "STACK", "STATUS");
    for r in rows {
        out.push_str(&format!(
            "{:width$}  {:24}  {}{}\n",
            r.stack_name,
            r.status,
            r.last_updated.as_deref().unwrap_or("-"),
            r.reason
                .as_deref()
                .filter(|_| !r.ok)
                .map(|x| format!("  ({x})"))
                .unwrap_or_default()
        ));
    }
    out
}

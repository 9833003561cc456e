//! `lakectl status` and `lakectl outputs`: what is deployed, per stack.
//!
//! Owns: reading stack state and outputs for an environment into plain
//! rows. Must not: change anything, or print (the CLI formats the rows).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{deployed_stacks, Aws, DeployError};
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

/// Every rendered stack's state, plus deployed stacks the spec no longer has.
pub async fn status(aws: &Aws, rendered: &RenderedEnv) -> Result<Vec<StackStatus>, DeployError> {
    let deployed = deployed_stacks(aws, rendered).await?;
    let mut rows: Vec<StackStatus> = rendered
        .stacks
        .iter()
        .map(|s| match deployed.get(&s.id) {
            Some(d) => StackStatus {
                id: s.id.clone(),
                stack_name: d.name.clone(),
                status: d.status.clone(),
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
            status: d.status.clone(),
            reason: Some("not in the spec any more; the next `up` deletes it".into()),
            last_updated: Some(d.last_updated.clone()),
            ok: false,
        });
    }
    Ok(rows)
}

/// Outputs of every deployed stack, by stack id.
pub async fn outputs(
    aws: &Aws,
    rendered: &RenderedEnv,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, DeployError> {
    Ok(super::outputs_by_id(&deployed_stacks(aws, rendered).await?))
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

//! Protection of production stacks: the stack policy that keeps
//! CloudFormation from replacing or deleting data stores on update.
//!
//! Owns: which resource types hold data and the policy document. Must not:
//! call AWS (the deployer sets the policy) or judge IAM changes (`plan`).

use serde_json::{json, Value};

pub use crate::plan::diff::DATA_STORE_TYPES;

/// Logical ids of the data stores in a normalised template, sorted.
pub fn data_stores(template: &Value) -> Vec<String> {
    let mut ids: Vec<String> = template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| {
            r["Type"]
                .as_str()
                .is_some_and(|t| DATA_STORE_TYPES.contains(&t))
        })
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    ids
}

/// The stack policy of a protected stack: every update allowed, except
/// replacing or deleting a data store (an operator who means it lifts the
/// policy for one update with `--stack-policy-during-update-body`).
pub fn stack_policy(template: &Value) -> String {
    stack_policy_allowing(template, &[])
}

/// The policy of a stack whose environment is no longer protected.
pub fn allow_all_policy() -> String {
    serde_json::to_string(&json!({ "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "Update:*", "Resource": "*"
    }]}))
    .expect("policy serialises")
}

/// The stack policy with `allowed` data stores free to be replaced or
/// deleted (one update an operator asked for with `--allow-replace`).
pub fn stack_policy_allowing(template: &Value, allowed: &[String]) -> String {
    let mut statements = vec![json!({
        "Effect": "Allow", "Principal": "*", "Action": "Update:*", "Resource": "*"
    })];
    let stores: Vec<String> = data_stores(template)
        .into_iter()
        .filter(|id| !allowed.contains(id))
        .collect();
    if !stores.is_empty() {
        let resources: Vec<String> = stores
            .iter()
            .map(|id| format!("LogicalResourceId/{id}"))
            .collect();
        statements.push(json!({
            "Effect": "Deny", "Principal": "*",
            "Action": ["Update:Replace", "Update:Delete"],
            "Resource": resources
        }));
    }
    serde_json::to_string(&json!({ "Statement": statements })).expect("policy serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_stores_are_denied_replace_and_delete() {
        let template = json!({"Resources": {
            "Lake": {"Type": "AWS::S3::Bucket"},
            "Stream": {"Type": "AWS::Kinesis::Stream"},
            "Role": {"Type": "AWS::IAM::Role"}
        }});
        let policy: Value = serde_json::from_str(&stack_policy(&template)).unwrap();
        assert_eq!(
            policy["Statement"][1],
            json!({"Effect": "Deny", "Principal": "*",
                   "Action": ["Update:Replace", "Update:Delete"],
                   "Resource": ["LogicalResourceId/Lake", "LogicalResourceId/Stream"]})
        );
        assert_eq!(policy["Statement"][0]["Action"], "Update:*");
    }

    #[test]
    fn a_stack_without_data_stores_only_allows() {
        let template = json!({"Resources": {"Role": {"Type": "AWS::IAM::Role"}}});
        let policy: Value = serde_json::from_str(&stack_policy(&template)).unwrap();
        assert_eq!(policy["Statement"].as_array().unwrap().len(), 1);
    }
}

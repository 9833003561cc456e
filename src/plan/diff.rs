//! Template diffs: resources added, modified (property by property, nested
//! paths, old -> new) and removed; replacement marked from the create-only
//! table and carried through references (`propagate`); parameters
//! compared; security changes collected; a change set's verdicts applied.
//!
//! Owns: comparing two normalised templates. Must not: fetch templates
//! (callers hand in the deployed or earlier ones) or print.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use super::security::{self, SecurityChange};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Modify,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropertyChange {
    /// Dotted path from the resource, e.g. `Properties.StreamModeDetails.StreamMode`.
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub requires_replacement: bool,
}

/// Resource types whose replacement or deletion loses data.
pub const DATA_STORE_TYPES: [&str; 8] = [
    "AWS::S3::Bucket",
    "AWS::RDS::DBCluster",
    "AWS::RDS::DBInstance",
    "AWS::DynamoDB::Table",
    "AWS::Kinesis::Stream",
    "AWS::KMS::Key",
    "AWS::MSK::Cluster",
    "AWS::SecretsManager::Secret",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceChange {
    pub logical_id: String,
    pub resource_type: String,
    pub action: Action,
    pub requires_replacement: bool,
    /// CloudFormation's verdict was `Conditional`: replaced or not depending
    /// on a value known only while the update runs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
    pub properties: Vec<PropertyChange>,
    /// For removals: the resource is kept in AWS (DeletionPolicy Retain).
    pub retained: bool,
    /// For removals: a final snapshot is taken (DeletionPolicy Snapshot).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// A data store whose replacement or removal deletes its data (its
    /// UpdateReplacePolicy / DeletionPolicy is `Delete`, the default).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub loses_data: bool,
    /// Changes that arrive through a parameter or another resource, not
    /// the template (`parameter SubnetIds`, `resource Cluster`), from the
    /// change set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<String>,
    /// A replacement under the same custom name (its name property set
    /// and unchanged): CloudFormation creates the new resource first, and
    /// the name is taken, so the update fails. The name as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_name: Option<String>,
    /// Data store, UpdateReplacePolicy (what a replacement does to the old one).
    #[serde(skip)]
    keeps_replaced: Option<bool>,
}

/// CloudFormation's verdict on one resource a change set modifies.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `False` or `Conditional`; `None` when the change set does
    /// not say (the template's own account stands then).
    pub replacement: Option<String>,
    /// Properties that change through a parameter or another resource:
    /// (property path, recreates: `Always`/`Conditionally`/`Never`, cause).
    pub via: Vec<(String, String, String)>,
}

impl ResourceChange {
    /// A resource the template does not change but something it refers to
    /// does (`propagate`) or a change set modifies: no property changes
    /// yet; its UpdateReplacePolicy from `resource` (the new template's).
    pub(super) fn modified(logical_id: &str, resource_type: &str, resource: &Value) -> Self {
        ResourceChange {
            keeps_replaced: keeps_replaced(resource),
            ..ResourceChange::bare(logical_id, resource_type, Action::Modify)
        }
    }

    /// A change with nothing known about it yet but what and which way.
    fn bare(logical_id: &str, resource_type: &str, action: Action) -> Self {
        ResourceChange {
            logical_id: logical_id.to_string(),
            resource_type: resource_type.to_string(),
            action,
            requires_replacement: false,
            conditional: false,
            properties: Vec::new(),
            retained: false,
            snapshot: false,
            loses_data: false,
            via: Vec::new(),
            same_name: None,
            keeps_replaced: None,
        }
    }

    /// Recompute `loses_data` from the replacement verdict.
    pub(super) fn judge_data_loss(&mut self) {
        self.loses_data = match (self.action, self.keeps_replaced) {
            (Action::Modify, Some(keeps)) => self.requires_replacement && !keeps,
            _ => self.loses_data,
        };
    }
}

/// Whether a resource holds data of its own: a data-store type, except an
/// Aurora instance (its cluster holds the data).
fn holds_data(resource: &Value) -> bool {
    let ty = resource["Type"].as_str().unwrap_or_default();
    DATA_STORE_TYPES.contains(&ty)
        && !(ty == "AWS::RDS::DBInstance"
            && resource["Properties"].get("DBClusterIdentifier").is_some())
}

/// For a data store: whether a replacement keeps the old one (its
/// UpdateReplacePolicy is `Retain` or `Snapshot`); `None` for other types.
fn keeps_replaced(resource: &Value) -> Option<bool> {
    holds_data(resource).then(|| {
        matches!(
            resource["UpdateReplacePolicy"].as_str(),
            Some("Retain" | "Snapshot")
        )
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueChange {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Whether the stack itself is created, updated, deleted or unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StackAction {
    Create,
    Update,
    Delete,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackDiff {
    pub id: String,
    pub stack_name: String,
    pub action: StackAction,
    pub resources: Vec<ResourceChange>,
    pub parameters: Vec<ValueChange>,
    pub outputs: Vec<ValueChange>,
    /// Stack tags (applied by CloudFormation to every resource that takes
    /// tags): changed, added or removed. Updates only.
    pub tags: Vec<ValueChange>,
    pub security: Vec<SecurityChange>,
}

impl StackDiff {
    pub fn has_changes(&self) -> bool {
        self.action != StackAction::Unchanged
    }
}

/// The create-only (replacement) table generated from AWS's resource schemas.
fn create_only() -> &'static HashMap<String, Vec<Vec<String>>> {
    static TABLE: OnceLock<HashMap<String, Vec<Vec<String>>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let raw: BTreeMap<String, Value> =
            serde_json::from_str(include_str!("../../data/create-only-properties.json"))
                .expect("the committed table is JSON");
        raw.into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(ty, paths)| {
                let paths = paths
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|p| p.split('/').map(String::from).collect())
                    .collect();
                (ty, paths)
            })
            .collect()
    })
}

/// Whether changing `path` (segments after `Properties`) replaces a resource
/// of `ty`: the change is inside a create-only property, or is a parent of
/// one replaced whole. `*` in the schema's pointers matches any array index.
pub fn forces_replacement(ty: &str, path: &[String]) -> bool {
    create_only().get(ty).is_some_and(|paths| {
        paths
            .iter()
            .any(|p| p.iter().zip(path).all(|(a, b)| a == b || a == "*"))
    })
}

/// Leaf-level differences between two JSON values.
fn value_diff(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<Value>, Option<Value>)>,
) {
    match (old, new) {
        (Some(a), Some(b)) if a == b => {}
        // Intrinsics too: `Fn::Sub` bodies (user data, scripts) diff by line.
        (Some(Value::Object(a)), Some(Value::Object(b))) if same_shape(a, b) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(k.clone());
                value_diff(a.get(k), b.get(k), path, out);
                path.pop();
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            // Elements matched by a longest common subsequence: an added
            // statement shows as one addition, not as the whole list changed.
            let (ka, kb): (Vec<String>, Vec<String>) = (
                a.iter().map(Value::to_string).collect(),
                b.iter().map(Value::to_string).collect(),
            );
            for op in similar::capture_diff_slices(similar::Algorithm::Myers, &ka, &kb) {
                match op {
                    similar::DiffOp::Equal { .. } => {}
                    similar::DiffOp::Delete {
                        old_index, old_len, ..
                    } => {
                        for (i, gone) in a.iter().enumerate().skip(old_index).take(old_len) {
                            path.push(i.to_string());
                            out.push((path.clone(), Some(gone.clone()), None));
                            path.pop();
                        }
                    }
                    similar::DiffOp::Insert {
                        new_index, new_len, ..
                    } => {
                        for (i, added) in b.iter().enumerate().skip(new_index).take(new_len) {
                            path.push(i.to_string());
                            out.push((path.clone(), None, Some(added.clone())));
                            path.pop();
                        }
                    }
                    similar::DiffOp::Replace {
                        old_index,
                        old_len,
                        new_index,
                        new_len,
                    } => {
                        for k in 0..old_len.max(new_len) {
                            let (x, y) = (
                                a.get(old_index + k).filter(|_| k < old_len),
                                b.get(new_index + k).filter(|_| k < new_len),
                            );
                            path.push(
                                (if y.is_some() {
                                    new_index + k
                                } else {
                                    old_index + k
                                })
                                .to_string(),
                            );
                            value_diff(x, y, path, out);
                            path.pop();
                        }
                    }
                }
            }
        }
        (a, b) => out.push((path.clone(), a.cloned(), b.cloned())),
    }
}

/// Two objects are compared key by key unless one is an intrinsic and the
/// other is not (or another intrinsic): then the value changed as a whole.
fn same_shape(a: &serde_json::Map<String, Value>, b: &serde_json::Map<String, Value>) -> bool {
    let intrinsic = |m: &serde_json::Map<String, Value>| {
        (m.len() == 1)
            .then(|| m.keys().next().cloned())
            .flatten()
            .filter(|k| k == "Ref" || k == "Condition" || k.starts_with("Fn::"))
    };
    intrinsic(a) == intrinsic(b)
}

fn section<'a>(t: Option<&'a Value>, name: &str) -> BTreeMap<&'a str, &'a Value> {
    t.and_then(|t| t.get(name))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

/// Compare an earlier (deployed) template and parameters with new ones.
/// `None` for a side that does not exist (stack to create / to delete).
pub fn diff_stack(
    id: &str,
    stack_name: &str,
    old: Option<(&Value, &BTreeMap<String, String>)>,
    new: Option<(&Value, &BTreeMap<String, String>)>,
) -> StackDiff {
    let (old_t, new_t) = (old.map(|o| o.0), new.map(|n| n.0));
    let (old_r, new_r) = (section(old_t, "Resources"), section(new_t, "Resources"));
    let mut resources = Vec::new();
    let mut ids: Vec<&str> = old_r.keys().chain(new_r.keys()).copied().collect();
    ids.sort();
    ids.dedup();
    for rid in ids {
        let ty = |r: &Value| r["Type"].as_str().unwrap_or_default().to_string();
        match (old_r.get(rid), new_r.get(rid)) {
            (None, Some(n)) => resources.push(ResourceChange::bare(rid, &ty(n), Action::Add)),
            (Some(o), None) => resources.push(ResourceChange {
                retained: matches!(
                    o["DeletionPolicy"].as_str(),
                    Some("Retain" | "RetainExceptOnCreate")
                ),
                snapshot: o["DeletionPolicy"].as_str() == Some("Snapshot"),
                loses_data: holds_data(o)
                    && !matches!(
                        o["DeletionPolicy"].as_str(),
                        Some("Retain" | "RetainExceptOnCreate" | "Snapshot")
                    ),
                ..ResourceChange::bare(rid, &ty(o), Action::Remove)
            }),
            (Some(o), Some(n)) if o != n => {
                let mut raw = Vec::new();
                value_diff(Some(o), Some(n), &mut Vec::new(), &mut raw);
                let new_ty = ty(n);
                let type_changed = ty(o) != new_ty;
                let properties: Vec<PropertyChange> = raw
                    .into_iter()
                    .map(|(path, old, new)| {
                        let under_props = path.first().map(String::as_str) == Some("Properties");
                        let requires_replacement =
                            type_changed || under_props && forces_replacement(&new_ty, &path[1..]);
                        PropertyChange {
                            path: path.join("."),
                            old,
                            new,
                            requires_replacement,
                        }
                    })
                    .collect();
                let mut change = ResourceChange {
                    requires_replacement: properties.iter().any(|p| p.requires_replacement),
                    properties,
                    ..ResourceChange::modified(rid, &new_ty, n)
                };
                change.judge_data_loss();
                resources.push(change);
            }
            _ => {}
        }
    }
    // NoEcho parameters: CloudFormation describes them as `****`, so they
    // would differ on every run, and their values must never be printed.
    let no_echo = |t: Option<&Value>| -> Vec<String> {
        section(t, "Parameters")
            .into_iter()
            .filter(|(_, p)| p["NoEcho"] == Value::Bool(true) || p["NoEcho"] == "true")
            .map(|(k, _)| k.to_string())
            .collect()
    };
    let hidden: Vec<String> = no_echo(old_t).into_iter().chain(no_echo(new_t)).collect();
    let params = |p: Option<(&Value, &BTreeMap<String, String>)>| -> BTreeMap<String, String> {
        p.map(|(_, m)| m.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !hidden.contains(k))
            .collect()
    };
    let outputs = |t: Option<&Value>| -> BTreeMap<String, String> {
        section(t, "Outputs")
            .into_iter()
            .map(|(k, v)| (k.to_string(), v["Value"].to_string()))
            .collect()
    };
    let parameters = value_changes(&params(old), &params(new));
    let outputs_changed = value_changes(&outputs(old_t), &outputs(new_t));
    let empty = Value::Null;
    let security = security::changes(old_t.unwrap_or(&empty), new_t.unwrap_or(&empty));
    let action = match (old, new) {
        (None, Some(_)) => StackAction::Create,
        (Some(_), None) => StackAction::Delete,
        _ if resources.is_empty()
            && parameters.is_empty()
            && outputs_changed.is_empty()
            && old_t != new_t =>
        {
            StackAction::Update
        }
        _ if resources.is_empty() && parameters.is_empty() && outputs_changed.is_empty() => {
            StackAction::Unchanged
        }
        _ => StackAction::Update,
    };
    let mut diff = StackDiff {
        id: id.into(),
        stack_name: stack_name.into(),
        action,
        resources,
        parameters,
        outputs: outputs_changed,
        tags: Vec::new(),
        security,
    };
    if let (Some(_), Some(new_t)) = (old_t, new_t) {
        super::propagate::through_references(&mut diff, new_t);
        mark_same_names(&mut diff, new_t);
    }
    diff
}

/// The property that names a resource of `ty` when set (and must then be
/// unique in the account and region): replacing such a resource without
/// changing it fails.
fn name_property(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "AWS::KafkaConnect::Connector" => "ConnectorName",
        "AWS::KafkaConnect::CustomPlugin" => "Name",
        "AWS::S3::Bucket" => "BucketName",
        "AWS::Kinesis::Stream" => "Name",
        "AWS::KinesisFirehose::DeliveryStream" => "DeliveryStreamName",
        "AWS::DynamoDB::Table" => "TableName",
        "AWS::IAM::Role" => "RoleName",
        "AWS::IAM::InstanceProfile" => "InstanceProfileName",
        "AWS::IAM::ManagedPolicy" => "ManagedPolicyName",
        "AWS::RDS::DBCluster" => "DBClusterIdentifier",
        "AWS::RDS::DBInstance" => "DBInstanceIdentifier",
        "AWS::RDS::DBSubnetGroup" => "DBSubnetGroupName",
        "AWS::RDS::DBClusterParameterGroup" => "DBClusterParameterGroupName",
        "AWS::RDS::DBParameterGroup" => "DBParameterGroupName",
        "AWS::SecretsManager::Secret" => "Name",
        "AWS::MSK::Cluster" => "ClusterName",
        "AWS::MSK::Configuration" => "Name",
        "AWS::SNS::Topic" => "TopicName",
        "AWS::SQS::Queue" => "QueueName",
        "AWS::Logs::LogGroup" => "LogGroupName",
        "AWS::StepFunctions::StateMachine" => "StateMachineName",
        "AWS::Events::Rule" => "Name",
        "AWS::Scheduler::Schedule" => "Name",
        "AWS::EC2::LaunchTemplate" => "LaunchTemplateName",
        "AWS::EC2::SecurityGroup" => "GroupName",
        "AWS::AutoScaling::AutoScalingGroup" => "AutoScalingGroupName",
        "AWS::CloudWatch::Alarm" => "AlarmName",
        "AWS::Lambda::Function" => "FunctionName",
        "AWS::KMS::Alias" => "AliasName",
        "AWS::Glue::Database" => "DatabaseName",
        _ => return None,
    })
}

/// Mark replacements that keep a custom name (`same_name`).
pub(super) fn mark_same_names(diff: &mut StackDiff, new: &Value) {
    for r in diff
        .resources
        .iter_mut()
        .filter(|r| r.action == Action::Modify)
    {
        r.same_name = None;
        let Some(prop) = name_property(&r.resource_type) else {
            continue;
        };
        // Any change to the name (its text, or a value it is made of that
        // changes through a reference) gives the replacement a new name.
        let path = format!("Properties.{prop}");
        let under = format!("{path}.");
        let renamed = r
            .properties
            .iter()
            .any(|p| p.path == path || p.path.starts_with(&under));
        let name = &new["Resources"][r.logical_id.as_str()]["Properties"][prop];
        // Only a sure replacement: a Conditional one may happen in place.
        if r.requires_replacement && !r.conditional && !renamed && !name.is_null() {
            r.same_name = Some(match name {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
    }
}

/// Record the stack's tag changes; a stack that otherwise stays as it is
/// is updated for them (CloudFormation re-tags every resource).
pub fn set_tag_changes(
    diff: &mut StackDiff,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) {
    if diff.action == StackAction::Create || diff.action == StackAction::Delete {
        return;
    }
    diff.tags = value_changes(old, new);
    if !diff.tags.is_empty() && diff.action == StackAction::Unchanged {
        diff.action = StackAction::Update;
    }
}

/// Refine replacement marks with CloudFormation's own verdict from a change
/// set (its Modify changes): `True` and `Conditional` mark the resource as
/// replaced, `False` clears the mark the create-only table or a reference
/// set (CloudFormation knows the resource better); no verdict keeps them.
/// A resource the plan does not show but the change set modifies (through
/// a parameter, another resource or one of its attributes, or for a reason
/// the change set does not give) is added, with its properties and causes;
/// `new` (the rendered template) gives its UpdateReplacePolicy.
pub fn refine_replacement(diff: &mut StackDiff, verdicts: &[Verdict], new: &Value) {
    for v in verdicts {
        if diff.resources.iter().any(|r| r.logical_id == v.logical_id) {
            continue;
        }
        let resource = &new["Resources"][v.logical_id.as_str()];
        let mut change = ResourceChange::modified(&v.logical_id, &v.resource_type, resource);
        change.properties = v
            .via
            .iter()
            .map(|(path, recreates, _)| PropertyChange {
                path: path.clone(),
                old: None,
                new: None,
                requires_replacement: recreates == "Always" || recreates == "Conditionally",
            })
            .collect();
        if change.properties.is_empty() {
            change.via.push("change set (no cause given)".into());
        }
        diff.resources.push(change);
        if diff.action == StackAction::Unchanged {
            diff.action = StackAction::Update;
        }
    }
    diff.resources
        .sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    for r in diff
        .resources
        .iter_mut()
        .filter(|r| r.action == Action::Modify)
    {
        let Some(v) = verdicts.iter().find(|v| v.logical_id == r.logical_id) else {
            continue;
        };
        match v.replacement.as_deref() {
            Some("False") => {
                r.requires_replacement = false;
                r.conditional = false;
                r.properties
                    .iter_mut()
                    .for_each(|p| p.requires_replacement = false);
            }
            Some("Conditional") => {
                r.requires_replacement = true;
                r.conditional = true;
            }
            Some(_) => {
                r.requires_replacement = true;
                r.conditional = false;
            }
            None => {}
        }
        // The change set's properties, where the plan did not have them
        // (a reference found deeper, `VPCZoneIdentifier.0`, is the same one).
        for (path, recreates, _) in &v.via {
            let recreates = recreates == "Always" || recreates == "Conditionally";
            let prefix = format!("{path}.");
            let mut seen = false;
            for p in r
                .properties
                .iter_mut()
                .filter(|p| p.path == *path || p.path.starts_with(&prefix))
            {
                p.requires_replacement |= recreates && r.requires_replacement;
                seen = true;
            }
            if !seen {
                r.properties.push(PropertyChange {
                    path: path.clone(),
                    old: None,
                    new: None,
                    requires_replacement: recreates && r.requires_replacement,
                });
            }
        }
        r.via
            .extend(v.via.iter().map(|(_, _, cause)| cause.clone()));
        r.via.sort();
        r.via.dedup();
        r.judge_data_loss();
    }
    mark_same_names(diff, new);
}

fn value_changes(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<ValueChange> {
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| ValueChange {
            name: n.clone(),
            old: a.get(n).cloned(),
            new: b.get(n).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::normalize::normalize;

    fn t(body: &str) -> Value {
        normalize(body).unwrap()
    }

    fn verdict(id: &str, replacement: &str) -> Verdict {
        Verdict {
            logical_id: id.into(),
            replacement: Some(replacement.into()),
            ..Verdict::default()
        }
    }

    #[test]
    fn conditional_replacements_and_lost_data_are_said_as_such() {
        let old = t("Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: a, ShardCount: 2}\n  Q:\n    Type: AWS::DynamoDB::Table\n    UpdateReplacePolicy: Retain\n    Properties: {TableName: q, BillingMode: PAY_PER_REQUEST}\n  B:\n    Type: AWS::S3::Bucket\n  K:\n    Type: AWS::S3::Bucket\n    DeletionPolicy: Retain\n  D:\n    Type: AWS::RDS::DBInstance\n    DeletionPolicy: Snapshot\n");
        let new = t("Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: b, ShardCount: 2}\n  Q:\n    Type: AWS::DynamoDB::Table\n    UpdateReplacePolicy: Retain\n    Properties: {TableName: q2, BillingMode: PAY_PER_REQUEST}\n");
        let empty = BTreeMap::new();
        let mut d = diff_stack("x", "lake-x", Some((&old, &empty)), Some((&new, &empty)));
        // CloudFormation's verdicts: the stream surely, the table Conditionally.
        refine_replacement(
            &mut d,
            &[verdict("S", "True"), verdict("Q", "Conditional")],
            &new,
        );
        insta::assert_snapshot!(crate::plan::report::text(&[d.clone()]), @r#"
        Stack lake-x (x): update
          - B AWS::S3::Bucket  (DeletionPolicy Delete: its data is deleted)
          - D AWS::RDS::DBInstance  (DeletionPolicy Snapshot: a final snapshot is kept)
          - K AWS::S3::Bucket  (DeletionPolicy Retain: kept in AWS)
          ~ Q AWS::DynamoDB::Table  may require replacement (CloudFormation: Conditional, decided by a value known only during the update)
              Properties.TableName: "q" -> "q2"  (may require replacement)
          ~ S AWS::Kinesis::Stream  requires replacement; UpdateReplacePolicy Delete: the old one and its data are deleted
              Properties.Name: "a" -> "b"  (requires replacement)

        1 of 1 stacks change: 0 resources to add, 2 to modify (2 by replacement), 3 to remove; 0 broadening IAM/security changes
        "#);
        let approval =
            crate::deploy::up::approvals_needed(&[d], crate::deploy::up::Approval::Broadening);
        assert_eq!(
            approval,
            [
                "lake-x: removing B deletes its data",
                "lake-x: replacing S deletes its data"
            ]
        );
    }

    #[test]
    fn no_echo_parameters_are_never_shown_nor_a_change() {
        let tpl = t("Parameters:\n  Password: {Type: String, NoEcho: true}\n  Size: {Type: String}\nResources: {}\n");
        let deployed: BTreeMap<String, String> = [("Password", "****"), ("Size", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut rendered = deployed.clone();
        rendered.insert("Password".into(), "hunter2".into());
        let d = diff_stack(
            "x",
            "lake-x",
            Some((&tpl, &deployed)),
            Some((&tpl, &rendered)),
        );
        assert!(!d.has_changes(), "{d:?}");
        rendered.insert("Size".into(), "2".into());
        let d = diff_stack(
            "x",
            "lake-x",
            Some((&tpl, &deployed)),
            Some((&tpl, &rendered)),
        );
        let text = crate::plan::report::text(&[d]);
        assert!(
            text.contains("parameter Size: 1 -> 2")
                && !text.contains("hunter2")
                && !text.contains("Password"),
            "{text}"
        );
    }

    #[test]
    fn replacement_comes_from_the_create_only_table() {
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        assert!(forces_replacement("AWS::Kinesis::Stream", &p("Name")));
        assert!(!forces_replacement(
            "AWS::Kinesis::Stream",
            &p("ShardCount")
        ));
        assert!(forces_replacement(
            "AWS::RDS::DBCluster",
            &p("StorageEncrypted")
        ));
        assert!(forces_replacement(
            "AWS::MSK::Cluster",
            &p("BrokerNodeGroupInfo/ClientSubnets/1")
        ));
        assert!(!forces_replacement(
            "AWS::MSK::Cluster",
            &p("BrokerNodeGroupInfo/InstanceType")
        ));
        assert!(!forces_replacement("Custom::Thing", &p("Anything")));
    }

    #[test]
    fn property_changes_with_nested_paths() {
        let old = t("Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: a, ShardCount: 2, StreamModeDetails: {StreamMode: PROVISIONED}}\n  Gone: {Type: AWS::S3::Bucket, DeletionPolicy: Retain}\n");
        let new = t("Resources:\n  S:\n    Type: AWS::Kinesis::Stream\n    Properties: {Name: b, ShardCount: 4, StreamModeDetails: {StreamMode: PROVISIONED}}\n  New: {Type: AWS::SNS::Topic}\n");
        let params = BTreeMap::new();
        let d = diff_stack(
            "stream",
            "e-stream",
            Some((&old, &params)),
            Some((&new, &params)),
        );
        assert_eq!(d.action, StackAction::Update);
        let s = d.resources.iter().find(|r| r.logical_id == "S").unwrap();
        assert!(s.requires_replacement);
        assert_eq!(
            s.properties
                .iter()
                .map(|p| (p.path.as_str(), p.requires_replacement))
                .collect::<Vec<_>>(),
            [("Properties.Name", true), ("Properties.ShardCount", false)]
        );
        assert_eq!(s.properties[1].old, Some(Value::from("2")));
        assert!(d
            .resources
            .iter()
            .any(|r| r.logical_id == "New" && r.action == Action::Add));
        assert!(d
            .resources
            .iter()
            .any(|r| r.logical_id == "Gone" && r.action == Action::Remove && r.retained));
    }

    #[test]
    fn list_elements_are_matched_not_compared_by_position() {
        let (a, b) = (
            serde_json::json!(["x", "y", "z"]),
            serde_json::json!(["x", "new", "y", "z"]),
        );
        let mut out = Vec::new();
        value_diff(Some(&a), Some(&b), &mut vec!["L".into()], &mut out);
        assert_eq!(
            out,
            [(
                vec!["L".to_string(), "1".to_string()],
                None,
                Some(Value::from("new"))
            )]
        );
        let (a, b) = (
            serde_json::json!([{"k": 1}, "y"]),
            serde_json::json!([{"k": 2}, "y"]),
        );
        out.clear();
        value_diff(Some(&a), Some(&b), &mut Vec::new(), &mut out);
        assert_eq!(out[0].0, ["0", "k"], "a changed element diffs inside");
    }

    #[test]
    fn missing_sides_create_or_delete_and_equal_sides_are_unchanged() {
        let a = t("Resources:\n  S: {Type: AWS::SNS::Topic}\n");
        let p = BTreeMap::new();
        assert_eq!(
            diff_stack("x", "x", None, Some((&a, &p))).action,
            StackAction::Create
        );
        assert_eq!(
            diff_stack("x", "x", Some((&a, &p)), None).action,
            StackAction::Delete
        );
        assert_eq!(
            diff_stack("x", "x", Some((&a, &p)), Some((&a, &p))).action,
            StackAction::Unchanged
        );
        let mut q = BTreeMap::new();
        q.insert("ShardCount".to_string(), "4".to_string());
        let d = diff_stack("x", "x", Some((&a, &p)), Some((&a, &q)));
        assert_eq!(
            d.parameters,
            [ValueChange {
                name: "ShardCount".into(),
                old: None,
                new: Some("4".into())
            }]
        );
    }

    #[test]
    fn a_change_set_verdict_overrides_the_create_only_table() {
        let old = t("Resources:\n  S: {Type: AWS::Kinesis::Stream, Properties: {Name: a, ShardCount: 2}}\n  B: {Type: AWS::S3::Bucket, Properties: {Tags: []}}\n");
        let new = t("Resources:\n  S: {Type: AWS::Kinesis::Stream, Properties: {Name: b, ShardCount: 2}}\n  B: {Type: AWS::S3::Bucket, Properties: {Tags: [{Key: k, Value: v}]}}\n");
        let params = BTreeMap::new();
        let mut d = diff_stack("s", "s", Some((&old, &params)), Some((&new, &params)));
        let marked = |d: &StackDiff, id: &str| {
            d.resources
                .iter()
                .find(|r| r.logical_id == id)
                .unwrap()
                .requires_replacement
        };
        assert!(marked(&d, "S"));
        assert!(!marked(&d, "B"));
        refine_replacement(
            &mut d,
            &[verdict("S", "False"), verdict("B", "Conditional")],
            &new,
        );
        assert!(!marked(&d, "S"));
        assert!(
            !d.resources
                .iter()
                .find(|r| r.logical_id == "S")
                .unwrap()
                .properties[0]
                .requires_replacement
        );
        assert!(marked(&d, "B"));
    }

    #[test]
    fn a_change_set_without_a_verdict_keeps_the_table_and_adds_what_it_modifies() {
        // moto's change sets carry no `Replacement`: the create-only table's
        // mark must stay (a VPC's new CIDR replaces it).
        let old = t("Parameters: {D: {Type: String}}\nResources:\n  V: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties: {TableName: !Ref D, BillingMode: PAY_PER_REQUEST}\n");
        let new = t("Parameters: {D: {Type: String}}\nResources:\n  V: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties: {TableName: !Ref D, BillingMode: PAY_PER_REQUEST}\n");
        let params = BTreeMap::new();
        let mut d = diff_stack("s", "s", Some((&old, &params)), Some((&new, &params)));
        let unsaid = Verdict {
            logical_id: "V".into(),
            ..Verdict::default()
        };
        // The table changes through parameter D, CloudFormation says it is
        // replaced: its data goes with it (no UpdateReplacePolicy).
        let table = Verdict {
            logical_id: "T".into(),
            resource_type: "AWS::DynamoDB::Table".into(),
            replacement: Some("True".into()),
            via: vec![(
                "Properties.TableName".into(),
                "Always".into(),
                "parameter D".into(),
            )],
        };
        refine_replacement(&mut d, &[unsaid, table], &new);
        let v = d.resources.iter().find(|r| r.logical_id == "V").unwrap();
        assert!(v.requires_replacement && !v.conditional);
        let t = d.resources.iter().find(|r| r.logical_id == "T").unwrap();
        assert!(t.requires_replacement && t.loses_data, "{t:?}");
        assert_eq!(t.via, ["parameter D"]);
        let approval =
            crate::deploy::up::approvals_needed(&[d], crate::deploy::up::Approval::Broadening);
        assert_eq!(approval, ["s: replacing T deletes its data"]);
    }

    #[test]
    fn a_replacement_under_the_same_custom_name_is_said_to_fail() {
        // A new plugin (create-only) replaces the connector, whose name stays.
        let t = |plugin: &str, name: &str| {
            normalize(&format!("Resources:\n  Bridge:\n    Type: AWS::KafkaConnect::Connector\n    Properties:\n      ConnectorName: {name}\n      Plugins: [{{CustomPlugin: {{CustomPluginArn: {plugin}, Revision: 1}}}}]\n")).unwrap()
        };
        let p = BTreeMap::new();
        let (old, new) = (t("arn:a", "lake-bridge"), t("arn:b", "lake-bridge"));
        let d = diff_stack("kafka", "lake-kafka", Some((&old, &p)), Some((&new, &p)));
        let bridge = &d.resources[0];
        assert!(bridge.requires_replacement);
        assert_eq!(bridge.same_name.as_deref(), Some("lake-bridge"));
        assert!(crate::plan::report::text(std::slice::from_ref(&d)).contains(
            "FAILS: it keeps its custom name lake-bridge, and CloudFormation creates the replacement before deleting the old one"
        ));
        assert_eq!(
            crate::deploy::up::same_name_replacements(&[d]),
            ["lake-kafka: Bridge (AWS::KafkaConnect::Connector, named lake-bridge)"]
        );
        // Renamed in the same update: both can exist.
        let renamed = t("arn:b", "lake-bridge-2");
        let d = diff_stack(
            "kafka",
            "lake-kafka",
            Some((&old, &p)),
            Some((&renamed, &p)),
        );
        assert_eq!(d.resources[0].same_name, None);
    }

    #[test]
    fn a_name_made_of_a_changing_value_is_a_new_name() {
        // The plugin's name carries its content hash: a new plugin is a new
        // name, never a clash (the review's false positive).
        let t = "Parameters: {Sha: {Type: String}}\nResources:\n  Plugin:\n    Type: AWS::KafkaConnect::CustomPlugin\n    Properties:\n      Name: !Sub 'lake-plugin-${Sha}'\n      ContentType: ZIP\n      Location: {S3Location: {BucketArn: b, FileKey: !Sub 'plugins/${Sha}.zip'}}\n";
        let t = normalize(t).unwrap();
        let params = |v: &str| {
            [("Sha".to_string(), v.to_string())]
                .into_iter()
                .collect::<BTreeMap<_, _>>()
        };
        let d = diff_stack(
            "kafka",
            "lake-kafka",
            Some((&t, &params("a"))),
            Some((&t, &params("b"))),
        );
        let plugin = &d.resources[0];
        assert!(plugin.requires_replacement, "{plugin:?}");
        assert_eq!(plugin.same_name, None, "{plugin:?}");
        // Its text edited: a new name too.
        let p = params("a");
        let moved = normalize("Parameters: {Sha: {Type: String}}\nResources:\n  Plugin:\n    Type: AWS::KafkaConnect::CustomPlugin\n    Properties:\n      Name: !Sub 'lake-plugin2-${Sha}'\n      ContentType: ZIP\n      Location: {S3Location: {BucketArn: c, FileKey: !Sub 'plugins/${Sha}.zip'}}\n").unwrap();
        let d = diff_stack("kafka", "lake-kafka", Some((&t, &p)), Some((&moved, &p)));
        assert!(d.resources[0].requires_replacement);
        assert_eq!(d.resources[0].same_name, None);
    }
}

//! Changes that travel through references: a parameter whose value
//! changes, or a resource that is replaced, changes every property that
//! refers to it (`Ref`, `Fn::GetAtt`, `Fn::Sub`); a create-only property so
//! changed replaces its resource, which changes what refers to *it*, and so
//! on. The same reasoning crosses stacks: an output whose value depends on
//! such a change is known only after its stack applies, so the parameters
//! downstream stacks take from it are planned as unknown (`known after
//! upstream`).
//!
//! This is the template's own account, the same for every plan (`diff`
//! with or without change sets, `--against`, `up`, a saved plan);
//! CloudFormation's change set refines it where one can be made
//! (`diff::refine_replacement`).
//!
//! Owns: finding references in a template and marking what they carry.
//! Must not: compare templates (`diff`) or call AWS.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::diff::{forces_replacement, Action, PropertyChange, ResourceChange, StackDiff};

/// References found in a template value, each with its path.
type Found = Vec<(Vec<String>, Reference)>;

/// The prefix every planned value that is not known yet starts with.
pub const UNKNOWN_PREFIX: &str = "(known after";

/// Whether a planned parameter value is one not known until something
/// upstream applies (`(known after deploy: …)`, `(known after upstream: …)`).
pub fn is_unknown(value: &str) -> bool {
    value.starts_with(UNKNOWN_PREFIX)
}

/// The planned value of a parameter whose upstream output changes in the
/// same plan: `what` says where it comes from (`output network.VpcId`).
pub fn known_after_upstream(what: &str) -> String {
    format!("{UNKNOWN_PREFIX} upstream: {what})")
}

/// One reference inside a template value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// A parameter or resource logical id (pseudo parameters included).
    pub name: String,
    /// The attribute of a `Fn::GetAtt` (or `${R.Attr}`); `None` for a `Ref`.
    pub attribute: Option<String>,
}

/// Every reference inside `v` with the path (below `v`) where it is made.
pub fn references(v: &Value) -> Found {
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn walk(v: &Value, path: &mut Vec<String>, out: &mut Found) {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Ref") => {
            if let Some(name) = m["Ref"].as_str() {
                out.push((
                    path.clone(),
                    Reference {
                        name: name.to_string(),
                        attribute: None,
                    },
                ));
            }
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::GetAtt") => {
            if let Some([name, attr]) = m["Fn::GetAtt"].as_array().map(Vec::as_slice) {
                if let Some(name) = name.as_str() {
                    out.push((
                        path.clone(),
                        Reference {
                            name: name.to_string(),
                            attribute: Some(
                                attr.as_str().map_or_else(|| attr.to_string(), String::from),
                            ),
                        },
                    ));
                }
            }
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            let (body, vars) = match &m["Fn::Sub"] {
                Value::String(s) => (s.as_str(), None),
                Value::Array(a) => (a.first().and_then(Value::as_str).unwrap_or(""), a.get(1)),
                _ => ("", None),
            };
            let own: BTreeSet<&str> = vars
                .and_then(Value::as_object)
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for name in sub_names(body) {
                if own.contains(name.split('.').next().unwrap_or("")) {
                    continue;
                }
                let reference = match name.split_once('.') {
                    Some((n, attr)) => Reference {
                        name: n.to_string(),
                        attribute: Some(attr.to_string()),
                    },
                    None => Reference {
                        name: name.to_string(),
                        attribute: None,
                    },
                };
                out.push((path.clone(), reference));
            }
            if let Some(vars) = vars {
                walk(vars, path, out);
            }
        }
        Value::Object(m) => {
            for (k, child) in m {
                path.push(k.clone());
                walk(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(i.to_string());
                walk(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The `${Name}` / `${Name.Attr}` variables of a `Fn::Sub` body (`${!x}`
/// is a literal).
fn sub_names(body: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') && !name.is_empty() {
            names.push(name);
        }
        rest = &after[end + 1..];
    }
    names
}

/// Attributes of a resource updated in place that change with the update
/// (a launch template's new version number, an MSK configuration's latest
/// revision). Identifiers and ARNs stay.
fn moves_in_place(attribute: &str) -> bool {
    attribute.contains("Version") || attribute.contains("Revision")
}

/// What one reference carries, if anything changes through it: (cause as
/// the plan shows it, certainly changes).
fn carried(
    r: &Reference,
    params: &BTreeMap<String, bool>,
    replaced: &BTreeMap<String, bool>,
    modified: &BTreeSet<String>,
) -> Option<(String, bool)> {
    if r.attribute.is_none() {
        if let Some(sure) = params.get(&r.name) {
            return Some((format!("parameter {}", r.name), *sure));
        }
    }
    if let Some(sure) = replaced.get(&r.name) {
        return Some(match &r.attribute {
            None => (format!("resource {}", r.name), *sure),
            Some(a) => (format!("attribute {}.{a}", r.name), *sure),
        });
    }
    match &r.attribute {
        Some(a) if modified.contains(&r.name) && moves_in_place(a) => {
            Some((format!("attribute {}.{a}", r.name), false))
        }
        _ => None,
    }
}

/// The parameters whose planned value changes: name -> certainly (a known
/// new value) or possibly (known only after upstream).
fn changed_parameters(diff: &StackDiff) -> BTreeMap<String, bool> {
    diff.parameters
        .iter()
        .filter(|p| p.old != p.new)
        .map(|p| {
            let unknown = p.new.as_deref().is_some_and(is_unknown);
            (p.name.clone(), !unknown)
        })
        .collect()
}

/// Replaced resources (surely, or possibly) and those modified in place.
fn replaced_and_modified(diff: &StackDiff) -> (BTreeMap<String, bool>, BTreeSet<String>) {
    let mut replaced = BTreeMap::new();
    let mut modified = BTreeSet::new();
    for r in diff.resources.iter().filter(|r| r.action == Action::Modify) {
        if r.requires_replacement {
            replaced.insert(r.logical_id.clone(), !r.conditional);
        } else {
            modified.insert(r.logical_id.clone());
        }
    }
    (replaced, modified)
}

/// Mark in `diff` every resource of the `new` template a changed parameter
/// or a replaced resource reaches, until nothing more is replaced.
pub fn through_references(diff: &mut StackDiff, new: &Value) {
    let params = changed_parameters(diff);
    let Some(resources) = new.get("Resources").and_then(Value::as_object) else {
        return;
    };
    // Each resource's references, found once.
    let refs: Vec<(&String, &Value, Found)> = resources
        .iter()
        .map(|(id, r)| {
            let mut found = references(&r["Properties"]);
            for (path, _) in found.iter_mut() {
                path.insert(0, "Properties".into());
            }
            (id, r, found)
        })
        .collect();
    loop {
        let (replaced, modified) = replaced_and_modified(diff);
        let mut grew = false;
        for (id, resource, found) in &refs {
            let reached: Vec<(&Vec<String>, String, bool)> = found
                .iter()
                .filter_map(|(path, r)| {
                    carried(r, &params, &replaced, &modified).map(|(c, s)| (path, c, s))
                })
                .collect();
            if reached.is_empty() {
                continue;
            }
            let ty = resource["Type"].as_str().unwrap_or_default();
            let at = match diff.resources.iter().position(|r| r.logical_id == **id) {
                Some(at) => at,
                None => {
                    diff.resources
                        .push(ResourceChange::modified(id, ty, resource));
                    diff.resources.len() - 1
                }
            };
            let change = &mut diff.resources[at];
            if change.action != Action::Modify {
                continue;
            }
            for (path, cause, sure) in reached {
                let dotted = path.join(".");
                let replaces = forces_replacement(ty, &path[1..]);
                if !change.properties.iter().any(|p| p.path == dotted) {
                    change.properties.push(PropertyChange {
                        path: dotted,
                        old: None,
                        new: None,
                        requires_replacement: replaces,
                    });
                }
                if !change.via.contains(&cause) {
                    change.via.push(cause);
                    change.via.sort();
                }
                if replaces {
                    let was = (change.requires_replacement, change.conditional);
                    if !change.requires_replacement {
                        change.requires_replacement = true;
                        change.conditional = !sure;
                    } else if sure {
                        change.conditional = false;
                    }
                    grew |= was != (change.requires_replacement, change.conditional);
                }
            }
            change.judge_data_loss();
        }
        if !grew {
            break;
        }
    }
    diff.resources
        .sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    if !diff.resources.is_empty() && diff.action == super::diff::StackAction::Unchanged {
        diff.action = super::diff::StackAction::Update;
    }
}

/// The outputs of `new` whose values may differ once `diff` applies: their
/// definition changed, or they read a changed parameter, a replaced or
/// added resource, or an attribute an in-place update moves.
pub fn changing_outputs(diff: &StackDiff, new: &Value) -> BTreeSet<String> {
    let params = changed_parameters(diff);
    let (mut replaced, modified) = replaced_and_modified(diff);
    for r in diff.resources.iter().filter(|r| r.action == Action::Add) {
        replaced.insert(r.logical_id.clone(), true);
    }
    let mut out: BTreeSet<String> = diff.outputs.iter().map(|o| o.name.clone()).collect();
    for (name, output) in new
        .get("Outputs")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if references(&output["Value"])
            .iter()
            .any(|(_, r)| carried(r, &params, &replaced, &modified).is_some())
        {
            out.insert(name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::diff::diff_stack;
    use crate::plan::normalize::normalize;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn references_are_found_in_ref_getatt_and_sub() {
        let v = normalize(
            "A: !Ref P\nB: [!GetAtt R.Arn]\nC: !Sub '${X}-${Y.Name}-${!Literal}-${AWS::Region}'\n\
             D: !Sub ['${Own}-${Z}', {Own: !Ref Q}]\n",
        )
        .unwrap();
        let found: Vec<(String, String)> = references(&v)
            .into_iter()
            .map(|(p, r)| {
                (
                    p.join("."),
                    format!(
                        "{}{}",
                        r.name,
                        r.attribute.map(|a| format!(".{a}")).unwrap_or_default()
                    ),
                )
            })
            .collect();
        let want = [
            ("A", "P"),
            ("B.0", "R.Arn"),
            ("C", "X"),
            ("C", "Y.Name"),
            ("C", "AWS::Region"),
            ("D", "Z"),
            ("D.Own", "Q"),
        ];
        for (path, name) in want {
            assert!(
                found.contains(&(path.to_string(), name.to_string())),
                "{path} {name} not in {found:?}"
            );
        }
        assert!(!found
            .iter()
            .any(|(_, n)| n.contains("Literal") || n == "Own"));
    }

    const NETWORK: &str = "Parameters:\n  Cidr: {Type: String}\nResources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties:\n      CidrBlock: !Ref Cidr\n  Subnet:\n    Type: AWS::EC2::Subnet\n    Properties:\n      VpcId: !Ref Vpc\n      CidrBlock: 10.0.0.0/24\n  Route:\n    Type: AWS::EC2::RouteTable\n    Properties:\n      VpcId: !Ref Vpc\n  Assoc:\n    Type: AWS::EC2::SubnetRouteTableAssociation\n    Properties:\n      SubnetId: !Ref Subnet\n      RouteTableId: !Ref Route\nOutputs:\n  SubnetId: {Value: !Ref Subnet}\n  Region: {Value: !Ref 'AWS::Region'}\n";

    #[test]
    fn a_replaced_resource_replaces_what_refers_to_it_and_moves_outputs() {
        let t = normalize(NETWORK).unwrap();
        let d = diff_stack(
            "network",
            "lake-network",
            Some((&t, &params(&[("Cidr", "10.0.0.0/16")]))),
            Some((&t, &params(&[("Cidr", "10.1.0.0/16")]))),
        );
        let replaced: Vec<&str> = d
            .resources
            .iter()
            .filter(|r| r.requires_replacement && !r.conditional)
            .map(|r| r.logical_id.as_str())
            .collect();
        // The VPC (create-only CidrBlock), then everything on it.
        assert_eq!(replaced, ["Assoc", "Route", "Subnet", "Vpc"]);
        let vpc = d.resources.iter().find(|r| r.logical_id == "Vpc").unwrap();
        assert_eq!(vpc.via, ["parameter Cidr"]);
        let subnet = d
            .resources
            .iter()
            .find(|r| r.logical_id == "Subnet")
            .unwrap();
        assert_eq!(subnet.via, ["resource Vpc"]);
        assert!(subnet
            .properties
            .iter()
            .any(|p| p.path == "Properties.VpcId" && p.requires_replacement));
        assert_eq!(
            changing_outputs(&d, &t).into_iter().collect::<Vec<_>>(),
            ["SubnetId"]
        );
    }

    #[test]
    fn an_unknown_value_may_replace_and_an_in_place_change_moves_nothing() {
        let t = normalize(NETWORK).unwrap();
        let d = diff_stack(
            "network",
            "lake-network",
            Some((&t, &params(&[("Cidr", "10.0.0.0/16")]))),
            Some((
                &t,
                &params(&[("Cidr", &known_after_upstream("output a.B"))]),
            )),
        );
        assert!(d
            .resources
            .iter()
            .all(|r| r.requires_replacement && r.conditional));
        assert_eq!(d.resources.len(), 4);

        // A route table modified in place (a tag) keeps its id: nothing
        // referring to it changes.
        let tagged = NETWORK.replace(
            "  Route:\n    Type: AWS::EC2::RouteTable\n    Properties:\n      VpcId: !Ref Vpc\n",
            "  Route:\n    Type: AWS::EC2::RouteTable\n    Properties:\n      VpcId: !Ref Vpc\n      Tags: [{Key: a, Value: b}]\n",
        );
        let n = normalize(&tagged).unwrap();
        let p = params(&[("Cidr", "10.0.0.0/16")]);
        let d = diff_stack("network", "lake-network", Some((&t, &p)), Some((&n, &p)));
        let ids: Vec<&str> = d.resources.iter().map(|r| r.logical_id.as_str()).collect();
        assert_eq!(ids, ["Route"]);
        assert!(changing_outputs(&d, &n).is_empty());
    }

    #[test]
    fn a_new_launch_template_version_reaches_its_group() {
        let lt = "Resources:\n  Lt:\n    Type: AWS::EC2::LaunchTemplate\n    Properties:\n      LaunchTemplateData: {ImageId: X}\n  Asg:\n    Type: AWS::AutoScaling::AutoScalingGroup\n    Properties:\n      MaxSize: '1'\n      MinSize: '1'\n      LaunchTemplate:\n        LaunchTemplateId: !Ref Lt\n        Version: !GetAtt Lt.LatestVersionNumber\n";
        let (a, b) = (
            normalize(lt).unwrap(),
            normalize(&lt.replace("ImageId: X", "ImageId: Y")).unwrap(),
        );
        let p = BTreeMap::new();
        let d = diff_stack("ingest", "lake-ingest", Some((&a, &p)), Some((&b, &p)));
        let asg = d.resources.iter().find(|r| r.logical_id == "Asg").unwrap();
        assert_eq!(asg.via, ["attribute Lt.LatestVersionNumber"]);
        assert!(!asg.requires_replacement);
    }
}

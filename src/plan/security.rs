//! IAM and security-group changes, listed on their own with broadening
//! flagged: what a reviewer must not miss in a pull request.
//!
//! Owns: reducing policies to permission atoms (effect, principal, action,
//! resource, condition) and security groups to rule atoms, and classifying
//! their differences. Must not: diff anything else.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;

/// One allowed (or denied) thing, as small as a policy can say it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PermissionAtom {
    /// Where it is written: `LogicalId` + policy (e.g. `FirehoseRole/archive`).
    pub source: String,
    pub effect: String,
    pub principal: String,
    pub action: String,
    pub resource: String,
    /// Canonical JSON of the Condition block, or empty.
    pub condition: String,
}

/// One security-group rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RuleAtom {
    pub group: String,
    pub direction: String,
    pub protocol: String,
    pub ports: String,
    /// A CIDR, a security group reference or a prefix list.
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityChange {
    /// `+` added, `-` removed.
    pub sign: char,
    pub description: String,
    /// Grants more than before: new principals, actions, resources, wider
    /// CIDRs, removed conditions or removed denies.
    pub broadening: bool,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => vec![String::new()],
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        Some(other) => vec![text(other)],
    }
}

/// A value as reviewers read it: strings bare, intrinsics as compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn principals(p: Option<&Value>) -> Vec<String> {
    match p {
        None => vec![String::new()],
        Some(Value::Object(m)) => m
            .iter()
            .flat_map(|(kind, ids)| {
                strings(Some(ids))
                    .into_iter()
                    .map(move |id| format!("{kind}:{id}"))
            })
            .collect(),
        Some(other) => vec![text(other)],
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(s)) => s.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

fn add_policy(source: &str, doc: &Value, out: &mut BTreeSet<PermissionAtom>) {
    for st in statements(doc) {
        let effect = text(st.get("Effect").unwrap_or(&Value::Null));
        let condition = st
            .get("Condition")
            .map(|c| c.to_string())
            .unwrap_or_default();
        let actions = strings(st.get("Action").or(st.get("NotAction")));
        let resources = strings(st.get("Resource").or(st.get("NotResource")));
        for principal in principals(st.get("Principal")) {
            for action in &actions {
                for resource in &resources {
                    out.insert(PermissionAtom {
                        source: source.to_string(),
                        effect: effect.clone(),
                        principal: principal.clone(),
                        action: action.clone(),
                        resource: resource.clone(),
                        condition: condition.clone(),
                    });
                }
            }
        }
    }
}

/// (logical id, type, properties) of every resource of a template.
fn resources(template: &Value) -> impl Iterator<Item = (&str, &str, &Value)> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(id, r)| {
            (
                id.as_str(),
                r["Type"].as_str().unwrap_or_default(),
                &r["Properties"],
            )
        })
}

/// Every permission atom of a (normalised) template.
pub fn permissions(template: &Value) -> BTreeSet<PermissionAtom> {
    let mut out = BTreeSet::new();
    for (id, ty, props) in resources(template) {
        match ty {
            "AWS::IAM::Role" => {
                add_policy(
                    &format!("{id}/trust"),
                    &props["AssumeRolePolicyDocument"],
                    &mut out,
                );
                for p in props["Policies"].as_array().into_iter().flatten() {
                    add_policy(
                        &format!("{id}/{}", text(&p["PolicyName"])),
                        &p["PolicyDocument"],
                        &mut out,
                    );
                }
                for arn in props["ManagedPolicyArns"].as_array().into_iter().flatten() {
                    out.insert(PermissionAtom {
                        source: format!("{id}/managed"),
                        effect: "Allow".into(),
                        principal: String::new(),
                        action: format!("managed policy {}", text(arn)),
                        resource: String::new(),
                        condition: String::new(),
                    });
                }
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => {
                add_policy(id, &props["PolicyDocument"], &mut out)
            }
            "AWS::S3::BucketPolicy" => add_policy(id, &props["PolicyDocument"], &mut out),
            "AWS::KMS::Key" => {
                add_policy(&format!("{id}/key policy"), &props["KeyPolicy"], &mut out)
            }
            _ => {}
        }
    }
    out
}

fn ports(rule: &Value) -> String {
    match (rule.get("FromPort"), rule.get("ToPort")) {
        (Some(f), Some(t)) if f == t => text(f),
        (Some(f), Some(t)) => format!("{}-{}", text(f), text(t)),
        _ => "all".into(),
    }
}

fn peer(rule: &Value) -> String {
    for key in [
        "CidrIp",
        "CidrIpv6",
        "SourceSecurityGroupId",
        "DestinationSecurityGroupId",
        "SourcePrefixListId",
        "DestinationPrefixListId",
    ] {
        if let Some(v) = rule.get(key) {
            return text(v);
        }
    }
    String::new()
}

fn add_rule(group: &str, direction: &str, rule: &Value, out: &mut BTreeSet<RuleAtom>) {
    out.insert(RuleAtom {
        group: group.to_string(),
        direction: direction.to_string(),
        protocol: text(rule.get("IpProtocol").unwrap_or(&Value::Null)),
        ports: ports(rule),
        peer: peer(rule),
    });
}

/// Every security-group rule of a template, inline or standalone.
pub fn rules(template: &Value) -> BTreeSet<RuleAtom> {
    let mut out = BTreeSet::new();
    for (id, ty, props) in resources(template) {
        match ty {
            "AWS::EC2::SecurityGroup" => {
                for rule in props["SecurityGroupIngress"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    add_rule(id, "ingress", rule, &mut out);
                }
                for rule in props["SecurityGroupEgress"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    add_rule(id, "egress", rule, &mut out);
                }
            }
            "AWS::EC2::SecurityGroupIngress" => {
                add_rule(&group_name(&props["GroupId"]), "ingress", props, &mut out)
            }
            "AWS::EC2::SecurityGroupEgress" => {
                add_rule(&group_name(&props["GroupId"]), "egress", props, &mut out)
            }
            _ => {}
        }
    }
    out
}

fn group_name(group_id: &Value) -> String {
    match group_id.get("Ref") {
        Some(Value::String(s)) => s.clone(),
        _ => text(group_id),
    }
}

/// Added and removed atoms, broadening flagged.
pub fn changes(old: &Value, new: &Value) -> Vec<SecurityChange> {
    let mut out = Vec::new();
    let (op, np) = (permissions(old), permissions(new));
    for a in np.difference(&op) {
        // A new Allow grants more, unless the same grant existed under a stricter condition only.
        let broadening = a.effect == "Allow";
        out.push(SecurityChange {
            sign: '+',
            description: describe_permission(a),
            broadening,
        });
    }
    for a in op.difference(&np) {
        // Losing a Deny (or a condition, which shows as remove + add) grants more.
        out.push(SecurityChange {
            sign: '-',
            description: describe_permission(a),
            broadening: a.effect == "Deny",
        });
    }
    let (or, nr) = (rules(old), rules(new));
    for r in nr.difference(&or) {
        out.push(SecurityChange {
            sign: '+',
            description: describe_rule(r),
            broadening: true,
        });
    }
    for r in or.difference(&nr) {
        out.push(SecurityChange {
            sign: '-',
            description: describe_rule(r),
            broadening: false,
        });
    }
    // A rule that replaced a narrower CIDR on the same group/ports is still broadening (already flagged);
    // a replacement by a narrower CIDR is not.
    for c in out
        .iter_mut()
        .filter(|c| c.sign == '+' && c.description.contains(" from "))
    {
        if let Some(narrower) = narrows_existing(c, &or, &nr) {
            c.broadening = !narrower;
        }
    }
    out
}

/// For an added rule, whether it only narrows a removed rule of the same
/// group, direction, protocol and ports (new CIDR inside the old one).
fn narrows_existing(
    change: &SecurityChange,
    old: &BTreeSet<RuleAtom>,
    new: &BTreeSet<RuleAtom>,
) -> Option<bool> {
    let added = new
        .difference(old)
        .find(|r| describe_rule(r) == change.description)?;
    let new_net: IpNet = added.peer.parse().ok()?;
    let removed = old.difference(new).find(|r| {
        r.group == added.group
            && r.direction == added.direction
            && r.protocol == added.protocol
            && r.ports == added.ports
    })?;
    let old_net: IpNet = removed.peer.parse().ok()?;
    Some(old_net.contains(&new_net))
}

fn describe_permission(a: &PermissionAtom) -> String {
    let mut s = format!("{}: {} {}", a.source, a.effect, a.action);
    if !a.resource.is_empty() {
        s.push_str(&format!(" on {}", a.resource));
    }
    if !a.principal.is_empty() {
        s.push_str(&format!(" for {}", a.principal));
    }
    if !a.condition.is_empty() {
        s.push_str(&format!(" when {}", a.condition));
    }
    s
}

fn describe_rule(r: &RuleAtom) -> String {
    let world = matches!(r.peer.as_str(), "0.0.0.0/0" | "::/0");
    format!(
        "{} {} {} {} {} {}{}",
        r.group,
        r.direction,
        r.protocol,
        r.ports,
        if r.direction == "ingress" {
            "from"
        } else {
            "to"
        },
        r.peer,
        if world { " (the whole internet)" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::normalize::normalize;

    fn role(actions: &str) -> Value {
        normalize(&format!(
            "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument:\n        Statement:\n          - {{Effect: Allow, Principal: {{Service: ec2.amazonaws.com}}, Action: sts:AssumeRole}}\n      Policies:\n        - PolicyName: p\n          PolicyDocument:\n            Statement:\n              - {{Effect: Allow, Action: [{actions}], Resource: arn:aws:s3:::b/*}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_new_action_is_broadening_and_a_removed_one_is_not() {
        let c = changes(&role("s3:GetObject"), &role("s3:GetObject, s3:PutObject"));
        assert_eq!(
            c,
            [SecurityChange {
                sign: '+',
                description: "R/p: Allow s3:PutObject on arn:aws:s3:::b/*".into(),
                broadening: true
            }]
        );
        let c = changes(&role("s3:GetObject, s3:PutObject"), &role("s3:GetObject"));
        assert!(c.len() == 1 && !c[0].broadening && c[0].sign == '-');
    }

    fn sg(cidr: &str) -> Value {
        normalize(&format!("Resources:\n  I:\n    Type: AWS::EC2::SecurityGroupIngress\n    Properties: {{GroupId: !Ref K, IpProtocol: tcp, FromPort: 9098, ToPort: 9098, CidrIp: {cidr}}}\n")).unwrap()
    }

    #[test]
    fn wider_cidrs_broaden_and_narrower_do_not() {
        let wider = changes(&sg("10.0.0.0/16"), &sg("0.0.0.0/0"));
        let added = wider.iter().find(|c| c.sign == '+').unwrap();
        assert!(
            added.broadening && added.description.contains("the whole internet"),
            "{added:?}"
        );
        let narrower = changes(&sg("10.0.0.0/16"), &sg("10.0.1.0/24"));
        assert!(narrower.iter().all(|c| !c.broadening), "{narrower:?}");
    }
}

//! IAM and security-group changes, listed on their own with broadening
//! flagged: what a reviewer must not miss in a pull request.
//!
//! Owns: reducing policies to permission atoms (effect, principal, action,
//! resource, condition; `Not*` elements kept apart, `Fn::If` statements with
//! both branches, attachments of policies, instance profiles, permission
//! boundaries, endpoint policies, Lambda permissions, resource policies of
//! every type that has one, S3 public access blocks, MSK unauthenticated
//! access, public RDS instances) and security groups
//! to rule atoms (EC2's implicit allow-all egress included), and
//! classifying their differences. Must not: diff anything else.

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

/// The statements of a policy document; a statement chosen by `Fn::If`
/// counts with both branches (either may be in force), marked with the
/// condition's name. `AWS::NoValue` branches drop out.
fn statements(doc: &Value) -> Vec<(Value, Option<String>)> {
    let listed: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(s)) => s.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for st in listed {
        match st.get("Fn::If").and_then(Value::as_array) {
            Some(branches) if branches.len() == 3 => {
                let cond = text(&branches[0]);
                for (branch, when) in [(&branches[1], "true"), (&branches[2], "false")] {
                    let no_value =
                        branch.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue");
                    if branch.is_object() && !no_value {
                        out.push((branch.clone(), Some(format!("if {cond} is {when}"))));
                    }
                }
            }
            _ => out.push((st.clone(), None)),
        }
    }
    out
}

/// The values of `key`, or of its `Not` form marked `not ` (a statement
/// with `NotAction: iam:*` grants everything but IAM: it must never read as
/// one granting IAM).
fn strings_or_not(st: &Value, key: &str) -> Vec<String> {
    match (st.get(key), st.get(format!("Not{key}"))) {
        (None, Some(not)) => strings(Some(not))
            .into_iter()
            .map(|v| format!("not {v}"))
            .collect(),
        (given, _) => strings(given),
    }
}

fn add_policy(source: &str, doc: &Value, out: &mut BTreeSet<PermissionAtom>) {
    for (st, chosen_by) in statements(doc) {
        let effect = text(st.get("Effect").unwrap_or(&Value::Null));
        let mut condition = st
            .get("Condition")
            .map(|c| c.to_string())
            .unwrap_or_default();
        if let Some(chosen_by) = chosen_by {
            condition = [chosen_by, condition]
                .into_iter()
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
                .join(" and ");
        }
        let actions = strings_or_not(&st, "Action");
        let resources = strings_or_not(&st, "Resource");
        let principals = match (st.get("Principal"), st.get("NotPrincipal")) {
            (None, Some(not)) => principals(Some(not))
                .into_iter()
                .map(|p| format!("everyone but {p}"))
                .collect(),
            (given, _) => principals(given),
        };
        for principal in principals {
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
                // A boundary limits the role: losing it grants more.
                if let Some(boundary) = props.get("PermissionsBoundary") {
                    out.insert(PermissionAtom {
                        source: format!("{id}/boundary"),
                        effect: "Deny".into(),
                        principal: String::new(),
                        action: format!(
                            "anything outside permissions boundary {}",
                            attachment(boundary)
                        ),
                        resource: String::new(),
                        condition: String::new(),
                    });
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
                // Granted to whom it is attached: each attachment is its
                // own grant (attaching to one more role broadens).
                let mut attached: Vec<String> = Vec::new();
                for (kind, key) in [("role", "Roles"), ("user", "Users"), ("group", "Groups")] {
                    for target in props[key].as_array().into_iter().flatten() {
                        attached.push(format!("{kind} {}", attachment(target)));
                    }
                }
                if attached.is_empty() {
                    add_policy(id, &props["PolicyDocument"], &mut out);
                }
                for target in attached {
                    add_policy(
                        &format!("{id} (attached to {target})"),
                        &props["PolicyDocument"],
                        &mut out,
                    );
                }
            }
            "AWS::IAM::InstanceProfile" => {
                for role in props["Roles"].as_array().into_iter().flatten() {
                    out.insert(PermissionAtom {
                        source: id.to_string(),
                        effect: "Allow".into(),
                        principal: String::new(),
                        action: format!(
                            "instances launched with it act as role {}",
                            attachment(role)
                        ),
                        resource: String::new(),
                        condition: String::new(),
                    });
                }
            }
            "AWS::EC2::VPCEndpoint" => add_policy(
                &format!("{id}/endpoint policy"),
                &props["PolicyDocument"],
                &mut out,
            ),
            "AWS::Lambda::Permission" => {
                let condition = ["SourceArn", "SourceAccount", "PrincipalOrgID"]
                    .iter()
                    .filter_map(|k| props.get(*k).map(|v| format!("{k}={}", text(v))))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.insert(PermissionAtom {
                    source: id.to_string(),
                    effect: "Allow".into(),
                    principal: text(&props["Principal"]),
                    action: text(&props["Action"]),
                    resource: attachment(&props["FunctionName"]),
                    condition,
                });
            }
            "AWS::S3::BucketPolicy" => add_policy(id, &props["PolicyDocument"], &mut out),
            // Resource policies: who else may act on the resource.
            "AWS::SNS::TopicPolicy" | "AWS::SQS::QueuePolicy" | "AWS::Logs::ResourcePolicy" => {
                add_policy(id, &document(&props["PolicyDocument"]), &mut out)
            }
            "AWS::Kinesis::ResourcePolicy" | "AWS::SecretsManager::ResourcePolicy" => {
                add_policy(id, &document(&props["ResourcePolicy"]), &mut out)
            }
            "AWS::MSK::ClusterPolicy" | "AWS::S3::AccessPoint" => {
                add_policy(id, &document(&props["Policy"]), &mut out);
                public_access_block(id, props, &mut out);
            }
            "AWS::ECR::Repository" => add_policy(
                &format!("{id}/repository policy"),
                &document(&props["RepositoryPolicyText"]),
                &mut out,
            ),
            "AWS::DynamoDB::Table" => add_policy(
                &format!("{id}/resource policy"),
                &document(&props["ResourcePolicy"]["PolicyDocument"]),
                &mut out,
            ),
            "AWS::IAM::RolePolicy" => add_policy(
                &format!("{id} (attached to role {})", attachment(&props["RoleName"])),
                &props["PolicyDocument"],
                &mut out,
            ),
            "AWS::S3::Bucket" => public_access_block(id, props, &mut out),
            "AWS::MSK::Cluster" => {
                let open = &props["ClientAuthentication"]["Unauthenticated"]["Enabled"];
                if open == true || open == "true" {
                    out.insert(switch(
                        id,
                        "Allow",
                        "clients without authentication to connect",
                    ));
                }
            }
            "AWS::RDS::DBInstance" => {
                let open = &props["PubliclyAccessible"];
                if open == true || open == "true" {
                    out.insert(switch(
                        id,
                        "Allow",
                        "connections from the internet (PubliclyAccessible)",
                    ));
                }
            }
            "AWS::KMS::Key" => {
                add_policy(&format!("{id}/key policy"), &props["KeyPolicy"], &mut out)
            }
            _ => {}
        }
    }
    out
}

/// A policy document as the template gives it: an object, or (CloudWatch
/// Logs, ECR) JSON text.
fn document(v: &Value) -> Value {
    match v {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

/// An atom for a switch on a resource (public access, authentication).
fn switch(id: &str, effect: &str, what: &str) -> PermissionAtom {
    PermissionAtom {
        source: id.to_string(),
        effect: effect.into(),
        principal: String::new(),
        action: what.into(),
        resource: String::new(),
        condition: String::new(),
    }
}

/// Where an atom comes from a bucket's (or access point's) own public
/// access block: removing the resource removes no protection of others.
const PUBLIC_ACCESS_BLOCK: &str = "/public access block";

/// S3 Block Public Access flags: each one on is a deny of public access
/// (turning it off, or dropping the block, broadens); each one written off
/// allows it.
fn public_access_block(id: &str, props: &Value, out: &mut BTreeSet<PermissionAtom>) {
    let block = &props["PublicAccessBlockConfiguration"];
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        let on = &block[flag];
        let (effect, what) = if on == true || on == "true" {
            ("Deny", format!("public access ({flag} on)"))
        } else if on == false || on == "false" {
            ("Allow", format!("public access ({flag} off)"))
        } else {
            continue;
        };
        out.insert(switch(&format!("{id}{PUBLIC_ACCESS_BLOCK}"), effect, &what));
    }
}

/// A resource named by reference: the logical id of a `Ref`, else its text.
fn attachment(v: &Value) -> String {
    match v.get("Ref") {
        Some(Value::String(s)) => s.clone(),
        _ => text(v),
    }
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
    // EC2 gives a group without egress rules one that allows all outbound
    // traffic; the first explicit egress rule replaces it (a narrowing).
    for (id, ty, _) in resources(template) {
        if ty == "AWS::EC2::SecurityGroup"
            && !out.iter().any(|r| r.group == id && r.direction == "egress")
        {
            out.insert(RuleAtom {
                group: id.to_string(),
                direction: "egress".into(),
                protocol: "-1".into(),
                ports: DEFAULT_EGRESS.into(),
                peer: "0.0.0.0/0".into(),
            });
        }
    }
    out
}

/// The ports text of EC2's implicit allow-all egress rule.
const DEFAULT_EGRESS: &str = "all (EC2's default egress)";

/// Whether rule `a` allows everything rule `b` allows (same group and
/// direction; all protocols or the same; all ports or the same; a peer
/// network that contains `b`'s).
fn covers(a: &RuleAtom, b: &RuleAtom) -> bool {
    let ports_all = |p: &str| p.starts_with("all");
    let nets = a
        .peer
        .parse::<IpNet>()
        .ok()
        .zip(b.peer.parse::<IpNet>().ok());
    a.group == b.group
        && a.direction == b.direction
        && (a.protocol == "-1" || a.protocol == b.protocol)
        && (ports_all(&a.ports) || a.ports == b.ports)
        && (a.peer == b.peer || nets.is_some_and(|(x, y)| x.contains(&y)))
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
            broadening: a.effect == "Deny" && !gone_with_its_resource(a, new),
        });
    }
    let (or, nr) = (rules(old), rules(new));
    for r in nr.difference(&or) {
        out.push(SecurityChange {
            sign: '+',
            description: describe_rule(r),
            // Nothing new when an old rule already allowed all of it (the
            // first egress rule replacing EC2's default allow-all).
            broadening: !or.iter().any(|o| covers(o, r)),
        });
    }
    for r in or.difference(&nr) {
        out.push(SecurityChange {
            sign: '-',
            description: describe_rule(r),
            broadening: false,
        });
    }
    out
}

/// A public access block removed together with its bucket protects
/// nothing any more: no broadening.
fn gone_with_its_resource(a: &PermissionAtom, new: &Value) -> bool {
    a.source
        .strip_suffix(PUBLIC_ACCESS_BLOCK)
        .is_some_and(|id| new["Resources"].get(id).is_none())
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
    fn resource_policies_and_public_access_switches_are_security_changes() {
        // The storage stack's alert topic opened to everyone with its
        // account condition dropped, and a bucket's BlockPublicPolicy
        // turned off: both broadening (issue 32, item 3).
        let storage = |principal: &str, condition: &str, block: &str| {
            normalize(&format!(
                "Resources:\n  AlertTopicPolicy:\n    Type: AWS::SNS::TopicPolicy\n    Properties:\n      Topics: [!Ref AlertTopic]\n      PolicyDocument:\n        Statement:\n          - {{Effect: Allow, Principal: {principal}, Action: sns:Publish, Resource: !Ref AlertTopic{condition}}}\n  Data:\n    Type: AWS::S3::Bucket\n    Properties:\n      PublicAccessBlockConfiguration: {{BlockPublicAcls: true, BlockPublicPolicy: {block}, IgnorePublicAcls: true, RestrictPublicBuckets: true}}\n  Cluster:\n    Type: AWS::MSK::Cluster\n    Properties:\n      ClientAuthentication: {{Unauthenticated: {{Enabled: {open}}}}}\n",
                open = block == "false"
            ))
            .unwrap()
        };
        let before = storage(
            "{Service: cloudwatch.amazonaws.com}",
            ", Condition: {StringEquals: {aws:SourceAccount: '1'}}",
            "true",
        );
        let after = storage("'*'", "", "false");
        let c = changes(&before, &after);
        let broadening: Vec<&str> = c
            .iter()
            .filter(|c| c.broadening)
            .map(|c| c.description.as_str())
            .collect();
        assert_eq!(
            broadening,
            [
                "AlertTopicPolicy: Allow sns:Publish on {\"Ref\":\"AlertTopic\"} for *",
                "Cluster: Allow clients without authentication to connect",
                "Data/public access block: Allow public access (BlockPublicPolicy off)",
                "Data/public access block: Deny public access (BlockPublicPolicy on)",
            ],
            "{c:#?}"
        );
        // A bucket removed with its block broadens nothing.
        let gone = normalize("Resources: {}\n").unwrap();
        assert!(
            !changes(&before, &gone)
                .iter()
                .any(|c| c.broadening && c.description.contains("public access")),
            "{:#?}",
            changes(&before, &gone)
        );
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

    fn t(yaml: &str) -> Value {
        normalize(yaml).unwrap()
    }

    fn shown(c: &[SecurityChange]) -> String {
        c.iter()
            .map(|c| {
                format!(
                    "{} {}{}\n",
                    c.sign,
                    c.description,
                    if c.broadening { "  [broadening]" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn flipping_action_to_not_action_is_a_change_and_broadens() {
        let policy = |key: &str| {
            t(&format!("Resources:\n  P:\n    Type: AWS::IAM::Policy\n    Properties:\n      PolicyName: p\n      PolicyDocument:\n        Statement:\n          - {{Effect: Allow, {key}: iam:*, Resource: '*'}}\n"))
        };
        insta::assert_snapshot!(shown(&changes(&policy("Action"), &policy("NotAction"))), @r"
        + P: Allow not iam:* on *  [broadening]
        - P: Allow iam:* on *
        ");
        let principal = |key: &str| {
            t(&format!("Resources:\n  B:\n    Type: AWS::S3::BucketPolicy\n    Properties:\n      Bucket: b\n      PolicyDocument:\n        Statement:\n          - {{Effect: Deny, {key}: {{AWS: arn:aws:iam::1:root}}, Action: s3:*, Resource: '*'}}\n"))
        };
        insta::assert_snapshot!(shown(&changes(&principal("Principal"), &principal("NotPrincipal"))), @r"
        + B: Deny s3:* on * for everyone but AWS:arn:aws:iam::1:root
        - B: Deny s3:* on * for AWS:arn:aws:iam::1:root  [broadening]
        ");
    }

    #[test]
    fn attaching_a_policy_to_one_more_role_broadens() {
        let attached = |roles: &str| {
            t(&format!("Resources:\n  P:\n    Type: AWS::IAM::ManagedPolicy\n    Properties:\n      Roles: [{roles}]\n      PolicyDocument:\n        Statement:\n          - {{Effect: Allow, Action: s3:GetObject, Resource: '*'}}\n"))
        };
        insta::assert_snapshot!(shown(&changes(&attached("!Ref A"), &attached("!Ref A, !Ref B"))), @"+ P (attached to role B): Allow s3:GetObject on *  [broadening]");
        insta::assert_snapshot!(shown(&changes(&attached("!Ref A, !Ref B"), &attached("!Ref A"))), @"- P (attached to role B): Allow s3:GetObject on *");
        let profile = |roles: &str| {
            t(&format!("Resources:\n  I:\n    Type: AWS::IAM::InstanceProfile\n    Properties: {{Roles: [{roles}]}}\n"))
        };
        insta::assert_snapshot!(shown(&changes(&profile("!Ref A"), &profile("!Ref Admin"))), @r"
        + I: Allow instances launched with it act as role Admin  [broadening]
        - I: Allow instances launched with it act as role A
        ");
    }

    #[test]
    fn removing_a_permissions_boundary_broadens() {
        let with = t("Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {}\n      PermissionsBoundary: arn:aws:iam::1:policy/limit\n");
        let without = t("Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {}\n");
        insta::assert_snapshot!(shown(&changes(&with, &without)), @"- R/boundary: Deny anything outside permissions boundary arn:aws:iam::1:policy/limit  [broadening]");
    }

    #[test]
    fn the_first_egress_rule_narrows_ec2s_default() {
        let none = t("Resources:\n  G:\n    Type: AWS::EC2::SecurityGroup\n    Properties: {GroupDescription: g}\n");
        let https = t("Resources:\n  G:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription: g\n      SecurityGroupEgress: [{IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 0.0.0.0/0}]\n");
        insta::assert_snapshot!(shown(&changes(&none, &https)), @r"
        + G egress tcp 443 to 0.0.0.0/0 (the whole internet)
        - G egress -1 all (EC2's default egress) to 0.0.0.0/0 (the whole internet)
        ");
        // Back to no rule: allow-all again.
        assert!(changes(&https, &none)
            .iter()
            .any(|c| c.sign == '+' && c.broadening));
    }

    #[test]
    fn endpoint_policies_lambda_permissions_and_conditional_statements_count() {
        let endpoint = |action: &str| {
            t(&format!("Resources:\n  E:\n    Type: AWS::EC2::VPCEndpoint\n    Properties:\n      VpcId: v\n      ServiceName: s3\n      PolicyDocument:\n        Statement: [{{Effect: Allow, Principal: '*', Action: '{action}', Resource: '*'}}]\n"))
        };
        insta::assert_snapshot!(shown(&changes(&endpoint("s3:GetObject"), &endpoint("s3:*"))), @r"
        + E/endpoint policy: Allow s3:* on * for *  [broadening]
        - E/endpoint policy: Allow s3:GetObject on * for *
        ");
        let lambda = t("Resources:\n  L:\n    Type: AWS::Lambda::Permission\n    Properties: {Action: lambda:InvokeFunction, FunctionName: !Ref F, Principal: s3.amazonaws.com}\n");
        insta::assert_snapshot!(shown(&changes(&Value::Null, &lambda)), @"+ L: Allow lambda:InvokeFunction on F for s3.amazonaws.com  [broadening]");
        let conditional = t("Resources:\n  P:\n    Type: AWS::IAM::Policy\n    Properties:\n      PolicyName: p\n      PolicyDocument:\n        Statement:\n          - Fn::If: [IsProd, {Effect: Allow, Action: kms:Decrypt, Resource: '*'}, !Ref AWS::NoValue]\n");
        insta::assert_snapshot!(shown(&changes(&Value::Null, &conditional)), @"+ P: Allow kms:Decrypt on * when if IsProd is true  [broadening]");
    }
}

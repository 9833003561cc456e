//! Printing plans: the reviewable text form (cdk-diff style, stable for
//! snapshot tests) and the JSON plan CI archives.
//!
//! Owns: presentation only. Must not: compute differences.

use std::fmt::Write;

use serde_json::Value;

use super::diff::{Action, StackAction, StackDiff};

pub(crate) fn show(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

/// Long strings (user data, scripts) as a diff rather than two walls of text.
fn long_string_diff(old: &str, new: &str, indent: &str) -> Option<String> {
    if old.len() + new.len() < 160 {
        return None;
    }
    let mut out = String::new();
    if old.contains('\n') || new.contains('\n') {
        let diff = similar::TextDiff::from_lines(old, new);
        for group in diff.grouped_ops(1) {
            for op in group {
                for change in diff.iter_changes(&op) {
                    let sign = match change.tag() {
                        similar::ChangeTag::Delete => '-',
                        similar::ChangeTag::Insert => '+',
                        similar::ChangeTag::Equal => ' ',
                    };
                    let _ = writeln!(
                        out,
                        "{indent}{sign} {}",
                        change.value().trim_end_matches('\n')
                    );
                }
            }
        }
    } else {
        // One long line: the changed words with a little context.
        let diff = similar::TextDiff::from_words(old, new);
        let mut line = String::new();
        for group in diff.grouped_ops(2) {
            line.push_str("… ");
            for op in group {
                for change in diff.iter_changes(&op) {
                    match change.tag() {
                        similar::ChangeTag::Delete => {
                            line.push_str(&format!("[-{}-]", change.value()))
                        }
                        similar::ChangeTag::Insert => {
                            line.push_str(&format!("{{+{}+}}", change.value()))
                        }
                        similar::ChangeTag::Equal => line.push_str(change.value()),
                    }
                }
            }
            line.push_str(" …");
        }
        let _ = writeln!(out, "{indent}{line}");
    }
    Some(out)
}

/// The text plan of every stack, with a summary line.
pub fn text(diffs: &[StackDiff]) -> String {
    let mut out = String::new();
    let (mut add, mut modify, mut replace, mut remove, mut broadening) = (0, 0, 0, 0, 0);
    for d in diffs {
        let verb = match d.action {
            StackAction::Create => "create",
            StackAction::Update => "update",
            StackAction::Delete => "delete",
            StackAction::Unchanged => "no changes",
        };
        let _ = writeln!(out, "Stack {} ({}): {verb}", d.stack_name, d.id);
        for r in &d.resources {
            let (sign, note) = match r.action {
                Action::Add => {
                    add += 1;
                    ('+', String::new())
                }
                Action::Remove => {
                    remove += 1;
                    (
                        '-',
                        if r.retained {
                            "  (DeletionPolicy Retain: kept in AWS)".into()
                        } else if r.snapshot {
                            "  (DeletionPolicy Snapshot: a final snapshot is kept)".into()
                        } else if r.loses_data {
                            "  (DeletionPolicy Delete: its data is deleted)".into()
                        } else {
                            String::new()
                        },
                    )
                }
                Action::Modify => {
                    modify += 1;
                    if r.requires_replacement {
                        replace += 1;
                    }
                    let mut note = match (r.requires_replacement, r.conditional) {
                        (true, true) => "  may require replacement (CloudFormation: Conditional, \
                                         decided by a value known only during the update)"
                            .to_string(),
                        (true, false) => "  requires replacement".into(),
                        _ => String::new(),
                    };
                    if r.loses_data {
                        note.push_str(
                            "; UpdateReplacePolicy Delete: the old one and its data are deleted",
                        );
                    }
                    if let Some(name) = &r.same_name {
                        note.push_str(&format!(
                            "; FAILS: it keeps its custom name {name}, and CloudFormation \
                             creates the replacement before deleting the old one"
                        ));
                    }
                    if !r.via.is_empty() {
                        note = format!("  (via {}){note}", r.via.join(", "));
                    }
                    ('~', note)
                }
            };
            let _ = writeln!(out, "  {sign} {} {}{note}", r.logical_id, r.resource_type);
            for p in &r.properties {
                let mark = match (p.requires_replacement, r.conditional) {
                    (true, true) => "  (may require replacement)",
                    (true, false) => "  (requires replacement)",
                    _ => "",
                };
                match (&p.old, &p.new) {
                    // Known only to CloudFormation: it changes through a
                    // parameter or another resource.
                    (None, None) => {
                        let _ = writeln!(
                            out,
                            "      {}: changes through {}{mark}",
                            p.path,
                            r.via.join(", ")
                        );
                    }
                    (Some(Value::String(a)), Some(Value::String(b)))
                        if long_string_diff(a, b, "").is_some() =>
                    {
                        let _ = writeln!(out, "      {}:{mark}", p.path);
                        out.push_str(&long_string_diff(a, b, "        ").expect("checked"));
                    }
                    _ => {
                        let _ = writeln!(
                            out,
                            "      {}: {} -> {}{mark}",
                            p.path,
                            show(&p.old),
                            show(&p.new)
                        );
                    }
                }
            }
        }
        for p in &d.parameters {
            let _ = writeln!(
                out,
                "  parameter {}: {} -> {}",
                p.name,
                p.old.as_deref().unwrap_or("(absent)"),
                p.new.as_deref().unwrap_or("(absent)")
            );
        }
        if !d.tags.is_empty() {
            out.push_str("  tags (CloudFormation re-tags every resource of the stack):\n");
        }
        for t in &d.tags {
            let _ = writeln!(
                out,
                "    {}: {} -> {}",
                t.name,
                t.old.as_deref().unwrap_or("(absent)"),
                t.new.as_deref().unwrap_or("(absent)")
            );
        }
        for o in &d.outputs {
            let _ = writeln!(
                out,
                "  output {}: {}",
                o.name,
                if o.new.is_none() {
                    "removed"
                } else if o.old.is_none() {
                    "added"
                } else {
                    "changed"
                }
            );
        }
        if !d.security.is_empty() {
            let _ = writeln!(out, "  IAM and security group changes:");
            for c in &d.security {
                if c.broadening {
                    broadening += 1;
                }
                let flag = if c.broadening { "  [broadening]" } else { "" };
                let _ = writeln!(out, "    {} {}{flag}", c.sign, c.description);
            }
        }
    }
    let stacks = diffs.iter().filter(|d| d.has_changes()).count();
    let _ = writeln!(
        out,
        "\n{stacks} of {} stacks change: {add} resources to add, {modify} to modify ({replace} by replacement), {remove} to remove; {broadening} broadening IAM/security changes",
        diffs.len()
    );
    out
}

/// A plan as `lakectl diff` reports it: the text plan for review, or the
/// JSON plan CI archives, from one value.
#[derive(Debug, Clone)]
pub struct PlanReport {
    pub environment: String,
    pub diffs: Vec<StackDiff>,
    /// What the plan could not see (a stack that could not get a change
    /// set, binaries not built, newer images than the pinned ones).
    pub notes: Vec<String>,
    /// Drift (changes made outside CloudFormation) on resources the plan
    /// updates or removes: what applying it overwrites.
    pub drift: Vec<crate::inspect::drift::StackDrift>,
}

impl PlanReport {
    pub fn has_changes(&self) -> bool {
        self.diffs.iter().any(StackDiff::has_changes)
    }
}

impl std::fmt::Display for PlanReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&text(&self.diffs))?;
        if !self.drift.is_empty() {
            f.write_str(
                "\nDrift this plan overwrites (changed outside CloudFormation; expected -> \
                 actual, `up` puts back the expected):\n",
            )?;
            f.write_str(&crate::inspect::drift::text(&self.drift))?;
        }
        Ok(())
    }
}

impl serde::Serialize for PlanReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let broadening = self
            .diffs
            .iter()
            .flat_map(|d| &d.security)
            .any(|c| c.broadening);
        let mut plan = serde_json::json!({
            "environment": self.environment,
            "changes": self.has_changes(),
            "broadening": broadening,
            "stacks": self.diffs,
        });
        if !self.notes.is_empty() {
            plan["notes"] = serde_json::json!(self.notes);
        }
        if !self.drift.is_empty() {
            plan["drift"] = serde_json::json!(self.drift);
        }
        plan.serialize(serializer)
    }
}

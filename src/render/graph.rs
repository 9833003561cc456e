//! The stack dependency graph: deploy order, parallel waves, and the
//! text / mermaid / dot pictures of `lakectl graph`.
//!
//! Owns: ordering stacks from their `depends_on` edges (canonical order
//! breaks ties, so output is deterministic). Must not: derive edges.

use super::{RenderError, RenderedEnv, RenderedStack};

/// Kahn's algorithm by levels: each wave depends only on earlier waves.
pub fn waves(stacks: &[RenderedStack]) -> Result<Vec<Vec<String>>, RenderError> {
    let mut placed: Vec<&str> = Vec::new();
    let mut waves = Vec::new();
    while placed.len() < stacks.len() {
        let wave: Vec<String> = stacks
            .iter()
            .filter(|s| !placed.contains(&s.id.as_str()))
            .filter(|s| s.depends_on.iter().all(|d| placed.contains(&d.as_str())))
            .map(|s| s.id.clone())
            .collect();
        if wave.is_empty() {
            let stuck: Vec<&str> = stacks
                .iter()
                .map(|s| s.id.as_str())
                .filter(|id| !placed.contains(id))
                .collect();
            return Err(RenderError::Cycle(stuck.join(", ")));
        }
        for id in &wave {
            placed.push(
                stacks
                    .iter()
                    .find(|s| &s.id == id)
                    .map(|s| s.id.as_str())
                    .unwrap_or_default(),
            );
        }
        waves.push(wave);
    }
    Ok(waves)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Text,
    Mermaid,
    Dot,
}

/// The graph in the requested notation.
pub fn draw(env: &RenderedEnv, format: GraphFormat) -> String {
    let mut out = String::new();
    match format {
        GraphFormat::Text => {
            for (i, wave) in env.waves.iter().enumerate() {
                out.push_str(&format!("wave {}:\n", i + 1));
                for id in wave {
                    let s = env.stack(id).expect("waves name rendered stacks");
                    let deps = if s.depends_on.is_empty() {
                        String::from("-")
                    } else {
                        s.depends_on.join(", ")
                    };
                    out.push_str(&format!(
                        "  {:<11} {:<22} <- {}\n",
                        s.id, s.stack_name, deps
                    ));
                }
            }
        }
        GraphFormat::Mermaid => {
            out.push_str("graph LR\n");
            for s in &env.stacks {
                out.push_str(&format!(
                    "  {}[\"<b>{}</b><br/>{}\"]\n",
                    s.id, s.id, s.summary
                ));
            }
            for s in &env.stacks {
                for d in &s.depends_on {
                    out.push_str(&format!("  {d} --> {}\n", s.id));
                }
            }
        }
        GraphFormat::Dot => {
            out.push_str(&format!(
                "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
                env.name
            ));
            for s in &env.stacks {
                out.push_str(&format!(
                    "  \"{}\" [label=\"{}\\n{}\"];\n",
                    s.id, s.id, s.summary
                ));
            }
            for s in &env.stacks {
                for d in &s.depends_on {
                    out.push_str(&format!("  \"{d}\" -> \"{}\";\n", s.id));
                }
            }
            out.push_str("}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;

    fn stack(id: &str, deps: &[&str]) -> RenderedStack {
        RenderedStack {
            id: id.into(),
            stack_name: format!("e-{id}"),
            summary: String::new(),
            template: String::new(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            parameters: IndexMap::new(),
            outputs: Vec::new(),
        }
    }

    #[test]
    fn waves_respect_dependencies_and_canonical_order() {
        let s = [
            stack("a", &[]),
            stack("b", &["c"]),
            stack("c", &["a"]),
            stack("d", &[]),
        ];
        assert_eq!(
            waves(&s).unwrap(),
            vec![vec!["a", "d"], vec!["c"], vec!["b"]]
        );
    }

    #[test]
    fn cycles_are_reported() {
        let s = [stack("a", &["b"]), stack("b", &["a"]), stack("c", &[])];
        let e = waves(&s).unwrap_err().to_string();
        assert!(e.contains("a, b"), "{e}");
    }
}

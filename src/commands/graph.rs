//! `lakectl graph ENV`: the stacks and their dependencies, as text,
//! mermaid or dot; `--output json` gives the waves and edges.

use serde::Serialize;

use super::{load_and_render, CommandError, Global, Report};
use crate::render::graph::{self, GraphFormat};

#[derive(Debug, Clone, clap::Args)]
pub struct GraphArgs {
    pub env: String,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

#[derive(Debug, Serialize)]
pub struct GraphReport {
    /// Stacks deployed together, in order.
    pub waves: Vec<Vec<String>>,
    /// Each stack's dependencies.
    pub depends_on: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(skip)]
    picture: String,
}

impl GraphArgs {
    pub fn run(&self, global: &Global) -> Result<GraphReport, CommandError> {
        let (_, rendered) = load_and_render(global, &self.env)?;
        Ok(GraphReport {
            picture: graph::draw(&rendered, self.format),
            waves: rendered.waves.clone(),
            depends_on: rendered
                .stacks
                .iter()
                .map(|s| (s.id.clone(), s.depends_on.clone()))
                .collect(),
        })
    }
}

impl std::fmt::Display for GraphReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.picture)
    }
}

impl Report for GraphReport {}

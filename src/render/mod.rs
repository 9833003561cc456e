//! Rendering: a valid spec -> one CloudFormation template per stack, plus the
//! stack graph (`stacks.json`).
//!
//! Owns: the minijinja environment, the rendering of every enabled stack,
//! and writing `DIR/<stack>.yaml` and `DIR/stacks.json`. Wiring of parameters
//! to upstream outputs and the deploy order live in `wiring` and `graph`.
//! Must not: call AWS or read spec files (callers hand in a `LoadedSpec`).

pub mod bootstrap;
pub mod catalog;
pub mod consumers;
pub mod context;
pub mod datasets;
pub mod graph;
pub mod hive;
pub mod steps;
pub mod wiring;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::spec::LoadedSpec;
pub use wiring::ParamSource;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}: {message}\n  (this is a bug in lakectl's templates; please report it)")]
    Template { template: String, message: String },
    #[error("stack {stack}: the rendered template is not valid YAML: {message}\n  (a bug in templates/{stack}.yaml.j2)")]
    NotYaml { stack: String, message: String },
    #[error("stack {stack}: parameter {parameter} has no source: no upstream stack outputs it, it has no Default and it is not an artifact hash")]
    Unwired { stack: String, parameter: String },
    #[error("output {output} is produced by both stack {first} and stack {second}; output names must be unique across stacks")]
    DuplicateOutput {
        output: String,
        first: String,
        second: String,
    },
    #[error("stacks depend on each other in a cycle: {0}")]
    Cycle(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One rendered stack.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedStack {
    /// Short id (`network`), also the template file's stem.
    pub id: String,
    /// CloudFormation stack name (`<name>-<id>`).
    pub stack_name: String,
    pub summary: String,
    #[serde(skip)]
    pub template: String,
    pub depends_on: Vec<String>,
    pub parameters: IndexMap<String, ParamSource>,
    pub outputs: Vec<String>,
}

/// Every stack of one environment, in deploy order.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedEnv {
    pub environment: String,
    pub name: String,
    pub region: String,
    pub termination_protection: bool,
    pub tags: IndexMap<String, String>,
    pub deploy_order: Vec<String>,
    /// Groups of stacks that can deploy in parallel, in order.
    pub waves: Vec<Vec<String>>,
    pub stacks: Vec<RenderedStack>,
    /// Local files the spec names that `up` publishes as artifacts (the
    /// Kafka bridge's plugin), by artifact name; paths are machine-specific.
    #[serde(skip)]
    pub files: std::collections::BTreeMap<String, PathBuf>,
    /// Files the stacks' nodes fetch from the artifacts bucket, by their
    /// content-addressed key (the RDS CA bootstrap action, the lake steps,
    /// the ingest fleet's datasets file):
    /// `up` publishes each one a stack's template names before that stack.
    #[serde(skip)]
    pub scripts: std::collections::BTreeMap<String, String>,
}

impl RenderedEnv {
    pub fn stack(&self, id: &str) -> Option<&RenderedStack> {
        self.stacks.iter().find(|s| s.id == id)
    }

    /// `stacks.json`: deterministic, pretty, newline-terminated.
    pub fn stacks_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("plain data serialises");
        text.push('\n');
        text
    }

    /// Write `dir/<stack>.yaml`, `dir/stacks.json`, and under
    /// `dir/published/` each file `up` publishes for the nodes, at its key
    /// (the lake steps script, the fleet's datasets file: reviewable, and
    /// what a local run of `lake-ingest run --config` reads); returns the
    /// files written.
    pub fn write_to(&self, dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
        let write = |path: PathBuf, text: &str| {
            std::fs::write(&path, text)
                .map(|_| path.clone())
                .map_err(|source| RenderError::Write { path, source })
        };
        std::fs::create_dir_all(dir).map_err(|source| RenderError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut written = Vec::new();
        for s in &self.stacks {
            written.push(write(dir.join(format!("{}.yaml", s.id)), &s.template)?);
        }
        written.push(write(dir.join("stacks.json"), &self.stacks_json())?);
        for (key, text) in &self.scripts {
            let path = dir.join("published").join(key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| RenderError::Write {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            written.push(write(path, text)?);
        }
        Ok(written)
    }
}

/// The scripts nodes fetch from the artifacts bucket, by key.
fn node_scripts(spec: &crate::spec::EnvSpec) -> std::collections::BTreeMap<String, String> {
    let lease_table = format!("{}-ingest-leases", spec.name);
    let config = datasets::ingest_config(spec);
    std::collections::BTreeMap::from([
        (bootstrap::rds_ca_script_key(), bootstrap::rds_ca_script()),
        (
            steps::key(spec, &lease_table),
            steps::script(spec, &lease_table),
        ),
        (config.key, config.text),
    ])
}

/// The files the spec names that are published with the artifacts: a
/// bridge plugin given as a path (relative to the environment's directory).
fn local_files(loaded: &LoadedSpec) -> std::collections::BTreeMap<String, PathBuf> {
    let mut files = std::collections::BTreeMap::new();
    if let Some(plugin) = loaded
        .spec
        .kafka
        .as_ref()
        .and_then(|k| k.bridge.as_ref())
        .map(|b| b.plugin.as_str())
        .filter(|p| !p.starts_with("s3://"))
    {
        let dir = loaded.file.parent().unwrap_or(Path::new("."));
        files.insert(crate::publish::BRIDGE_PLUGIN.to_string(), dir.join(plugin));
    }
    files
}

/// The template environment; with `overrides`, any template file of the
/// same name in that directory replaces the built-in one.
fn environment(overrides: Option<&Path>) -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // A misspelt variable in a template is a bug, not an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // JSON quoting is valid YAML and keeps any spec string from breaking the document.
    env.add_filter(
        "q",
        |v: minijinja::Value| -> Result<String, minijinja::Error> {
            serde_json::to_string(&v).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })
        },
    );
    let builtin = catalog::partials()
        .into_iter()
        .chain(catalog::stack_kinds().map(|k| (k.template, k.source)));
    for (name, source) in builtin {
        let file = overrides.map(|dir| dir.join(name)).filter(|f| f.is_file());
        match file {
            Some(file) => {
                let text = std::fs::read_to_string(&file).map_err(|e| RenderError::Template {
                    template: file.display().to_string(),
                    message: e.to_string(),
                })?;
                env.add_template_owned(name, text)
                    .map_err(|e| template_error(&file.display().to_string(), &e))?;
            }
            None => env
                .add_template(name, source)
                .expect("built-in templates parse (checked by tests)"),
        }
    }
    Ok(env)
}

/// Render every enabled stack of a (validated) spec.
pub fn render(loaded: &LoadedSpec) -> Result<RenderedEnv, RenderError> {
    render_with(loaded, None)
}

/// Render with templates from `templates` where that directory has them
/// (developing a template without rebuilding lakectl).
pub fn render_with(
    loaded: &LoadedSpec,
    templates: Option<&Path>,
) -> Result<RenderedEnv, RenderError> {
    let spec = &loaded.spec;
    let env = environment(templates)?;
    let ctx = context::Context::new(spec);
    let mut stacks = Vec::new();
    for kind in catalog::stack_kinds()
        .into_iter()
        .filter(|k| (k.enabled)(spec))
    {
        let template = env
            .get_template(kind.template)
            .map_err(|e| template_error(kind.template, &e))?;
        let text = template
            .render(&ctx)
            .map_err(|e| template_error(kind.template, &e))?;
        stacks.push(RenderedStack {
            id: kind.id.to_string(),
            stack_name: format!("{}-{}", spec.name, kind.id),
            summary: kind.summary.to_string(),
            template: normalise_blank_lines(&text),
            depends_on: Vec::new(),
            parameters: IndexMap::new(),
            outputs: Vec::new(),
        });
    }
    wiring::wire(&mut stacks)?;
    let waves = graph::waves(&stacks)?;
    let deploy_order: Vec<String> = waves.iter().flatten().cloned().collect();
    stacks.sort_by_key(|s| deploy_order.iter().position(|id| *id == s.id));
    Ok(RenderedEnv {
        environment: loaded.env.clone(),
        name: spec.name.clone(),
        region: spec.region.clone(),
        termination_protection: spec.protection.termination_protection,
        tags: spec.tags.clone(),
        deploy_order,
        waves,
        stacks,
        files: local_files(loaded),
        scripts: node_scripts(spec),
    })
}

fn template_error(template: &str, e: &minijinja::Error) -> RenderError {
    let mut message = e.to_string();
    if let Some(line) = e.line() {
        message = format!("line {line}: {message}");
    }
    RenderError::Template {
        template: template.to_string(),
        message,
    }
}

/// Collapse runs of blank lines that conditionals leave behind.
fn normalise_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
            out.push('\n');
        } else {
            blank = 0;
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

//! One room per `lakectl` command. Each command's clap `Args` owns its
//! arguments' validation and a `run` that returns a report: one value that
//! prints as text (`Display`) and as JSON (`Serialize`) and says its exit
//! code, so text and JSON never drift apart.
//!
//! Owns: the global flags (`Global`), what every AWS-facing command starts
//! with (`Session`: the spec, its rendering and connected clients), asking a
//! person on the terminal, printing a report (`emit`), `CommandError`.
//! Must not: hold platform logic (the library rooms do: `spec`, `render`,
//! `plan`, `deploy`, `inspect`, `operate`).

pub mod compact;
pub mod diff;
pub mod down;
pub mod drift;
pub mod graph;
pub mod outputs;
pub mod preflight;
pub mod render;
pub mod schema;
pub mod status;
pub mod up;
pub mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::aws::{Aws, ConnectError, Connection};
use crate::deploy::DeployError;
use crate::operate::compact::CompactError;
use crate::plan::PlanError;
use crate::publish::PublishError;
use crate::render::{RenderError, RenderedEnv};
use crate::spec::{self, Diagnostic, Severity};

/// Flags every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Folder holding `<env>.yaml` specs.
    #[arg(long, global = true, default_value = "environments")]
    pub env_dir: PathBuf,
    /// Templates to use instead of the built-in ones, file by file
    /// (developing a template without rebuilding lakectl).
    #[arg(long, global = true, env = "LAKECTL_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// AWS profile (commands that call AWS).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region, overriding the spec's.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS API endpoint (also AWS_ENDPOINT_URL), e.g. a local moto server.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// No colours in output.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// More detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// What a command returns: printed as text or JSON from this one value.
pub trait Report: std::fmt::Display + serde::Serialize {
    /// The process's exit code (0 unless the command's contract says 1 or 2).
    fn exit_code(&self) -> u8 {
        0
    }
    /// Lines for people on standard error in text mode (diagnostics,
    /// notes); the JSON form carries them itself.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Print `report` as `output` asks; its exit code.
pub fn emit(report: &impl Report, output: Output) -> ExitCode {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports are plain data")
        ),
        Output::Text => {
            for note in report.notes() {
                eprintln!("{note}");
            }
            print!("{report}");
        }
    }
    ExitCode::from(report.exit_code())
}

/// Why a command failed; each kind keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{env}: {errors} problem(s) in the spec; run `lakectl validate {env}`")]
    InvalidSpec { env: String, errors: usize },
    #[error("no environment specs (*.yaml) in {dir}")]
    NoSpecs { dir: String },
    #[error("{0}")]
    SpecDir(Diagnostic),
    #[error(
        "preflight found {errors} problem(s) that would fail the deploy; fix them (or \
         --skip-preflight)"
    )]
    Preflight { errors: usize },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Compact(#[from] CompactError),
}

/// The spec of `env`, checked, and its rendering; warnings go to standard
/// error, errors end the command.
pub fn load_and_render(
    global: &Global,
    env: &str,
) -> Result<(spec::LoadedSpec, RenderedEnv), CommandError> {
    match spec::load_valid(&global.env_dir, env) {
        Ok((loaded, warnings)) => {
            print_diagnostics(&warnings);
            let rendered = crate::render::render_with(&loaded, global.templates.as_deref())?;
            Ok((loaded, rendered))
        }
        Err(found) => {
            print_diagnostics(&found);
            Err(CommandError::InvalidSpec {
                env: env.to_string(),
                errors: found
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count(),
            })
        }
    }
}

fn print_diagnostics(found: &[Diagnostic]) {
    for d in found {
        eprintln!("{d}");
    }
}

/// What every AWS-facing command starts with: the rendered environment, a
/// runtime, and clients that passed the account guard. Flags win over the
/// spec's endpoint and region.
pub struct Session {
    pub runtime: tokio::runtime::Runtime,
    pub spec: spec::EnvSpec,
    /// Where each spec field was written (preflight findings point there).
    pub locator: spec::Locator,
    pub rendered: RenderedEnv,
    pub aws: Aws,
}

impl Session {
    pub fn open(global: &Global, env: &str) -> Result<Session, CommandError> {
        let (loaded, rendered) = load_and_render(global, env)?;
        let spec::LoadedSpec { spec, locator, .. } = loaded;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(CommandError::Runtime)?;
        let connection = Connection {
            profile: global.profile.clone(),
            region: global.region.clone(),
            endpoint_url: global.endpoint_url.clone(),
        };
        let aws = runtime.block_on(Aws::connect(
            &connection,
            &rendered,
            spec.account_id.as_deref(),
            spec.endpoint_url.as_deref(),
        ))?;
        Ok(Session {
            runtime,
            spec,
            locator,
            rendered,
            aws,
        })
    }

    pub fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// Ask a person on the terminal to type `word`; anything else is a no.
pub fn confirm(question: &str, word: &str) -> bool {
    use std::io::Write;
    eprint!("{question}\nType {word} to go ahead: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == word
}

/// `code` when `detailed` and `changed`, else 0: `--detailed-exitcode`.
pub(crate) fn detailed(detailed: bool, changed: bool) -> u8 {
    if detailed && changed {
        2
    } else {
        0
    }
}

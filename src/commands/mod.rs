//! One room per `lakectl` command. Each command's clap `Args` owns its
//! arguments' validation and a `run` that returns a report: one value that
//! prints as text (`Display`) and as JSON (`Serialize`) and says its exit
//! code, so text and JSON never drift apart.
//!
//! Owns: the global flags (`Global`), what every AWS-facing command starts
//! with (`Session`: the spec, its rendering and connected clients), asking a
//! person on the terminal, printing a report (`emit`: text or JSON, colour
//! only on a terminal, `-q`), `CommandError`.
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
    /// No colours (also NO_COLOR); colour is used only on a terminal.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Show every AWS call made (service, operation, status, duration,
    /// attempts); -vv also each attempt.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only the result and errors: no progress lines, notes or warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// How a report prints: its format, in colour or not, with notes or not.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub output: Output,
    pub color: bool,
    pub quiet: bool,
}

impl Global {
    /// The style the flags and the terminal ask for: colour only on a
    /// terminal, never with --no-color or a non-empty NO_COLOR.
    pub fn style(&self) -> Style {
        use std::io::IsTerminal;
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            output: self.output,
            color: !self.no_color && !no_color_env && std::io::stdout().is_terminal(),
            quiet: self.quiet,
        }
    }
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

/// Print `report` as `style` asks; its exit code.
pub fn emit(report: &impl Report, style: Style) -> ExitCode {
    match style.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports are plain data")
        ),
        Output::Text => {
            if !style.quiet {
                for note in report.notes() {
                    eprintln!("{note}");
                }
            }
            let text = report.to_string();
            print!("{}", if style.color { paint(&text) } else { text });
        }
    }
    ExitCode::from(report.exit_code())
}

/// Plan markers in colour, as Terraform and CDK show them: a line whose
/// marker is `+` green, `~` yellow, `-` red; `[broadening]` bold red.
pub fn paint(text: &str) -> String {
    const GREEN: &str = "\x1b[32m";
    const YELLOW: &str = "\x1b[33m";
    const RED: &str = "\x1b[31m";
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let colour = match body.trim_start().get(..2) {
            Some("+ ") => Some(GREEN),
            Some("~ ") => Some(YELLOW),
            Some("- ") => Some(RED),
            _ => None,
        };
        let body = body.replace("[broadening]", &format!("\x1b[1;31m[broadening]{RESET}"));
        match colour {
            Some(c) => out.push_str(&format!("{c}{body}{RESET}{end}")),
            None => out.push_str(&format!("{body}{end}")),
        }
    }
    out
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
            if !global.quiet {
                print_diagnostics(&warnings);
            }
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
            verbose: global.verbose,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_markers_are_painted_and_nothing_else_changes() {
        let text = "Stack a (a): update\n  + New T\n  ~ Old T\n  - Gone T\n  + R/p: Allow x  [broadening]\nno marker\n";
        let painted = paint(text);
        assert!(painted.contains("\x1b[32m  + New T\x1b[0m\n"));
        assert!(painted.contains("\x1b[33m  ~ Old T\x1b[0m\n"));
        assert!(painted.contains("\x1b[31m  - Gone T\x1b[0m\n"));
        assert!(painted.contains("\x1b[1;31m[broadening]\x1b[0m"));
        let plain: String = painted
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "")
            .replace("\x1b[1;31m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "");
        assert_eq!(plain, text);
    }
}

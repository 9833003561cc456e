//! `lakectl` command line: parses arguments and dispatches to one command
//! room each (`lakectl::commands`), then prints its report or its error.
//!
//! Owns: the command list, printing an error with its cause chain, the exit
//! code. Must not: hold logic; every command's is in its room.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lakectl::commands::{
    compact::CompactArgs, diff::DiffArgs, down::DownArgs, drift::DriftArgs, emit, graph::GraphArgs,
    outputs::OutputsArgs, preflight::PreflightArgs, render::RenderArgs, schema::SchemaArgs,
    status::StatusArgs, up::UpArgs, validate::ValidateArgs, Global,
};

#[derive(Parser)]
#[command(
    name = "lakectl",
    version,
    about = "Provision an AWS streaming data lake from typed environment specs"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs (all environments when none is named); problems as file:line:col.
    Validate(ValidateArgs),
    /// Write one CloudFormation template per stack and stacks.json.
    Render(RenderArgs),
    /// Show what would change: resources, properties (replacement marked),
    /// parameters, and IAM / security-group changes (broadening flagged).
    Diff(DiffArgs),
    /// Deploy the environment: publish artifacts, then every stack in
    /// dependency order through change sets.
    Up(UpArgs),
    /// Delete every stack of the environment, dependents first.
    Down(DownArgs),
    /// Each stack's state and last update, and each component's health from
    /// its own API (ok / degraded / down / not deployed); exit 1 unless all
    /// stacks are complete and all components ok.
    Status(StatusArgs),
    /// Start a compaction run now (the deployed state machine: an EMR step
    /// running lake-compact); exit 1 if it fails (with --wait).
    Compact(CompactArgs),
    /// The outputs of every deployed stack.
    Outputs(OutputsArgs),
    /// Before the first `up`: check with read-only calls what would make a
    /// deploy fail half-way (zones, instance types, EMR release, engine and
    /// Kafka versions, existing VPC, permissions); findings as file:line:col.
    /// Exit 1 on any error.
    Preflight(PreflightArgs),
    /// Run CloudFormation drift detection on every stack and show what was
    /// changed outside CloudFormation (expected -> actual).
    Drift(DriftArgs),
    /// Show the stacks and their dependencies.
    Graph(GraphArgs),
    /// Print the JSON Schema of environment specs (for editors).
    Schema(SchemaArgs),
}

fn main() -> ExitCode {
    let Cli { global, command } = lake_contract::cli::parse();
    let g = &global;
    let out = g.style();
    let done = match &command {
        Command::Validate(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Render(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Diff(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Up(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Down(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Status(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Compact(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Outputs(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Preflight(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Drift(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Graph(a) => a.run(g).map(|r| emit(&r, out)),
        Command::Schema(a) => Ok(emit(&a.run(), out)),
    };
    done.unwrap_or_else(|err| {
        print_error(&err);
        ExitCode::from(1)
    })
}

/// What failed and what to do, one line; then each cause that adds to it.
fn print_error(err: &dyn std::error::Error) {
    eprintln!("error: {err}");
    let mut said = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // "other" is the SDK's placeholder between two real causes.
        if text != "other" && !said.contains(&text) {
            eprintln!("  caused by: {}", text.replace('\n', "\n    "));
            said.push_str(&text);
        }
        cause = c.source();
    }
}

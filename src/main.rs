//! `lakectl` command line: parses arguments and dispatches to the library.
//!
//! Owns: flags, exit codes and printing. Must not: hold platform logic; all
//! of it lives in `lakectl::spec` and `lakectl::render`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use lakectl::render::{self, graph::GraphFormat};
use lakectl::spec::{self, Diagnostic, Severity};

#[derive(Parser)]
#[command(
    name = "lakectl",
    version,
    about = "Provision an AWS streaming data lake from typed environment specs"
)]
struct Cli {
    /// Folder holding `<env>.yaml` specs.
    #[arg(long, global = true, default_value = "environments")]
    env_dir: PathBuf,
    /// AWS profile (commands that call AWS).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// AWS region, overriding the spec's.
    #[arg(long, global = true)]
    region: Option<String>,
    /// AWS API endpoint (also AWS_ENDPOINT_URL), e.g. a local moto server.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// No colours in output.
    #[arg(long, global = true)]
    no_color: bool,
    /// More detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs (all environments when none is named); problems as file:line:col.
    Validate { envs: Vec<String> },
    /// Write one CloudFormation template per stack and stacks.json.
    Render {
        env: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Show what would change: resources, properties (replacement marked),
    /// parameters, and IAM / security-group changes (broadening flagged).
    Diff {
        env: String,
        /// An earlier `lakectl render` of this environment (e.g. of the main
        /// branch) to compare with. Comparing with the deployed stacks arrives
        /// with `lakectl up`.
        #[arg(long)]
        against: PathBuf,
        /// Exit 0 when nothing changes, 2 when something does (1 on errors).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Show the stacks and their dependencies.
    Graph {
        env: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Print the JSON Schema of environment specs (for editors).
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, String> {
    match &cli.command {
        Command::Validate { envs } => validate(cli, envs),
        Command::Render { env, out } => {
            let rendered = load_and_render(cli, env)?;
            let written = rendered.write_to(out).map_err(|e| e.to_string())?;
            if cli.output == Output::Json {
                println!("{}", rendered.stacks_json().trim_end());
            } else {
                for path in written {
                    println!("wrote {}", path.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            env,
            against,
            detailed_exitcode,
        } => {
            let rendered = load_and_render(cli, env)?;
            let diffs =
                lakectl::plan::against_render(&rendered, against).map_err(|e| e.to_string())?;
            match cli.output {
                Output::Json => println!("{}", lakectl::plan::report::json(env, &diffs)),
                Output::Text => print!("{}", lakectl::plan::report::text(&diffs)),
            }
            let changes = diffs.iter().any(|d| d.has_changes());
            Ok(if *detailed_exitcode && changes {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Graph { env, format } => {
            let rendered = load_and_render(cli, env)?;
            print!("{}", render::graph::draw(&rendered, *format));
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&spec::json_schema()).expect("schema serialises")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn validate(cli: &Cli, envs: &[String]) -> Result<ExitCode, String> {
    let envs = if envs.is_empty() {
        spec::list_environments(&cli.env_dir).map_err(|d| d.to_string())?
    } else {
        envs.to_vec()
    };
    if envs.is_empty() {
        return Err(format!(
            "no environment specs (*.yaml) in {}",
            cli.env_dir.display()
        ));
    }
    let mut all = Vec::new();
    let mut valid = Vec::new();
    for env in &envs {
        let found = match spec::load_environment(&cli.env_dir, env) {
            Ok(loaded) => spec::validate::validate(&loaded.spec, &loaded.locator),
            Err(found) => found,
        };
        if !found.iter().any(|d| d.severity == Severity::Error) {
            valid.push(env.clone());
        }
        all.extend(found);
    }
    if cli.output == Output::Json {
        let report = serde_json::json!({ "valid": valid, "diagnostics": all });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else {
        print_diagnostics(&all);
        for env in &valid {
            println!("{env}: ok");
        }
    }
    Ok(if valid.len() == envs.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_diagnostics(found: &[Diagnostic]) {
    for d in found {
        eprintln!("{d}");
    }
}

fn load_and_render(cli: &Cli, env: &str) -> Result<render::RenderedEnv, String> {
    match spec::load_valid(&cli.env_dir, env) {
        Ok((loaded, warnings)) => {
            print_diagnostics(&warnings);
            render::render(&loaded).map_err(|e| e.to_string())
        }
        Err(found) => {
            print_diagnostics(&found);
            let errors = found
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            Err(format!(
                "{env}: {errors} problem(s) in the spec; run `lakectl validate {env}`"
            ))
        }
    }
}

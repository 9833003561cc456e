//! `lakectl` command line: parses arguments and dispatches to the library.
//!
//! Owns: flags, exit codes and printing. Must not: hold platform logic; all
//! of it lives in `lakectl::spec` and `lakectl::render`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use lakectl::deploy::up::{Approval, UpOptions};
use lakectl::deploy::{self, progress::Progress, Aws, Connection};
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
    /// Templates to use instead of the built-in ones, file by file
    /// (developing a template without rebuilding lakectl).
    #[arg(long, global = true, env = "LAKECTL_TEMPLATES")]
    templates: Option<PathBuf>,
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

/// Where the data-plane binaries come from.
#[derive(clap::Args)]
struct ArtifactArgs {
    /// A directory holding prebuilt `lake-ingest` and `lake-compact`
    /// (default: `cargo build --release` of this workspace).
    #[arg(long)]
    artifacts: Option<PathBuf>,
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
        /// Compare with an earlier `lakectl render` of this environment (e.g.
        /// of the main branch) instead of the deployed stacks; needs no AWS.
        #[arg(long)]
        against: Option<PathBuf>,
        /// Exit 0 when nothing changes, 2 when something does (1 on errors).
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        artifacts: ArtifactArgs,
        /// Do not ask CloudFormation (change sets) which modifications replace
        /// resources; the create-only table alone decides.
        #[arg(long)]
        no_change_set: bool,
        /// Plan machine images at what their SSM parameters give now instead
        /// of the pinned ones (shows the instances that would be replaced).
        #[arg(long)]
        refresh_images: bool,
    },
    /// Deploy the environment: publish artifacts, then every stack in
    /// dependency order through change sets.
    Up {
        env: String,
        /// Apply changes that need approval without asking.
        #[arg(long)]
        yes: bool,
        /// Which changes need approval (--yes, or a typed yes on a terminal).
        #[arg(long, value_enum, default_value_t = Approval::Broadening)]
        require_approval: Approval,
        /// Stacks deployed at the same time (independent ones only).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[command(flatten)]
        artifacts: ArtifactArgs,
        /// Do not run `lakectl preflight` first.
        #[arg(long)]
        skip_preflight: bool,
        /// Move pinned machine images (Kafka nodes, the ingest fleet) to what
        /// their SSM parameters give now: replaces those instances.
        #[arg(long)]
        refresh_images: bool,
        /// In a protected environment, let this update replace or delete
        /// one data store (`STACK/LogicalId`, e.g. `metastore/Cluster`;
        /// repeatable). Without it such an update is refused before it
        /// starts: the stack policy would fail it half-way.
        #[arg(long, value_name = "STACK/LOGICAL_ID")]
        allow_replace: Vec<String>,
    },
    /// Delete every stack of the environment, dependents first.
    Down {
        env: String,
        #[arg(long)]
        yes: bool,
        /// Delete even a protected environment (its termination protection is lifted).
        #[arg(long)]
        allow_protected: bool,
        /// A stack CloudFormation cannot delete completely (DELETE_FAILED: a
        /// bucket with objects, a group in use): delete it again and leave
        /// those resources in place (named in the output).
        #[arg(long)]
        retain_failed: bool,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Each stack's state and last update, and each component's health from
    /// its own API (ok / degraded / down / not deployed); exit 1 unless all
    /// stacks are complete and all components ok.
    Status { env: String },
    /// Start a compaction run now (the deployed state machine: an EMR step
    /// running lake-compact); exit 1 if it fails (with --wait).
    Compact {
        env: String,
        /// One partition directory under the lake prefix, e.g.
        /// `ordertime=2019111315` (default: the whole lake).
        #[arg(long)]
        partition: Option<String>,
        /// Only register the lake's partitions in the Hive table now (what
        /// the 15-minute schedule does), no compaction.
        #[arg(long)]
        register_only: bool,
        /// Wait until the run ends.
        #[arg(long)]
        wait: bool,
    },
    /// The outputs of every deployed stack.
    Outputs { env: String },
    /// Before the first `up`: check with read-only calls what would make a
    /// deploy fail half-way (zones, instance types, EMR release, engine and
    /// Kafka versions, existing VPC, permissions); findings as file:line:col.
    /// Exit 1 on any error.
    Preflight { env: String },
    /// Run CloudFormation drift detection on every stack and show what was
    /// changed outside CloudFormation (expected -> actual).
    Drift {
        env: String,
        /// Exit 0 when nothing drifted, 2 when something did (1 on errors).
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
            let (_, rendered) = load_and_render(cli, env)?;
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
            against: Some(against),
            detailed_exitcode,
            ..
        } => {
            let (_, rendered) = load_and_render(cli, env)?;
            let diffs =
                lakectl::plan::against_render(&rendered, against).map_err(|e| e.to_string())?;
            print_plan(cli, env, &diffs, *detailed_exitcode)
        }
        Command::Diff {
            env,
            against: None,
            detailed_exitcode,
            artifacts,
            no_change_set,
            refresh_images,
        } => {
            let session = Session::open(cli, env)?;
            let artifacts =
                lakectl::publish::locate_for(&session.rendered, artifacts.artifacts.as_deref())
                    .map_err(|e| e.to_string())?;
            let planned = session
                .run(deploy::up::plan_against_deployed(
                    &session.aws,
                    &session.rendered,
                    &artifacts,
                    !no_change_set,
                    *refresh_images,
                ))
                .map_err(|e| e.to_string())?;
            for note in &planned.notes {
                eprintln!("note: {note}");
            }
            print_plan(cli, env, &planned.diffs, *detailed_exitcode)
        }
        Command::Up {
            env,
            yes,
            require_approval,
            concurrency,
            artifacts,
            skip_preflight,
            refresh_images,
            allow_replace,
        } => {
            let session = Session::open(cli, env)?;
            if !skip_preflight {
                let report = session.run(deploy::preflight::preflight(
                    &session.aws,
                    &session.spec,
                    &session.locator,
                    &session.rendered.region,
                    &session.rendered.files,
                ));
                eprint!("{}", deploy::preflight::text(&report));
                let errors = report.count(Severity::Error);
                if errors > 0 {
                    return Err(format!(
                        "preflight found {errors} problem(s) that would fail the deploy; fix them (or --skip-preflight)"
                    ));
                }
            }
            let options = UpOptions {
                yes: *yes,
                approval: *require_approval,
                concurrency: *concurrency,
                artifacts_dir: artifacts.artifacts.clone(),
                refresh_images: *refresh_images,
                allow_replace: allow_replace.clone(),
            };
            let progress = Arc::new(Progress::new(cli.output == Output::Json));
            let Session {
                runtime,
                aws,
                rendered,
                ..
            } = session;
            let report = runtime
                .block_on(deploy::up::up(
                    aws,
                    rendered,
                    &options,
                    progress,
                    |needed| {
                        confirm(
                            &format!("These changes need approval:\n  {}", needed.join("\n  ")),
                            "yes",
                        )
                    },
                ))
                .map_err(|e| e.to_string())?;
            if cli.output == Output::Json {
                let outcomes: serde_json::Map<String, serde_json::Value> = report
                    .outcomes
                    .iter()
                    .map(|(name, o)| (name.clone(), o.text().into()))
                    .collect();
                let json = serde_json::json!({
                    "environment": env,
                    "stacks": outcomes,
                    "executed_change_sets": report.executed_change_sets,
                    "uploaded_artifacts": report.uploaded,
                });
                print_json(&json);
            } else {
                use deploy::up::Outcome;
                println!(
                    "{env}: {} created, {} updated ({} change sets executed), {} unchanged, {} deleted; {} artifacts uploaded",
                    report.count(Outcome::Created),
                    report.count(Outcome::Updated),
                    report.executed_change_sets,
                    report.count(Outcome::Unchanged),
                    report.count(Outcome::Deleted),
                    report.uploaded.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Down {
            env,
            yes,
            allow_protected,
            retain_failed,
            concurrency,
        } => {
            let session = Session::open(cli, env)?;
            let options = deploy::down::DownOptions {
                yes: *yes,
                on_failed: if *retain_failed {
                    deploy::down::OnDeleteFailed::Retain
                } else {
                    deploy::down::OnDeleteFailed::Stop
                },
                allow_protected: *allow_protected,
                concurrency: *concurrency,
            };
            let Session {
                runtime,
                aws,
                rendered,
                spec,
                ..
            } = session;
            let protected = deploy::down::protected(&rendered, spec.protection.deletion_protection);
            let progress = Arc::new(Progress::new(cli.output == Output::Json));
            let deleted = runtime
                .block_on(deploy::down::down(
                    aws,
                    &rendered,
                    &options,
                    protected,
                    progress,
                    |names| {
                        confirm(
                            &format!("This deletes {}.", names.join(", ")),
                            &rendered.environment,
                        )
                    },
                ))
                .map_err(|e| e.to_string())?;
            if cli.output == Output::Json {
                println!("{}", serde_json::json!({ "deleted": deleted }));
            } else {
                println!("{env}: {} stacks deleted", deleted.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { env } => {
            let session = Session::open(cli, env)?;
            let (rows, components) = session
                .run(async {
                    let rows = deploy::status::status(&session.aws, &session.rendered).await?;
                    let deployed = deploy::deployed_stacks(&session.aws, &session.rendered).await?;
                    let parameters = deployed
                        .iter()
                        .map(|(id, d)| (id.clone(), d.parameters.clone()))
                        .collect();
                    let components = deploy::health::components(
                        &session.aws,
                        &session.rendered,
                        &deploy::outputs_by_id(&deployed),
                        &parameters,
                        &session.spec,
                    )
                    .await?;
                    Ok::<_, deploy::DeployError>((rows, components))
                })
                .map_err(|e| e.to_string())?;
            match cli.output {
                Output::Json => {
                    print_json(&serde_json::json!({ "stacks": rows, "components": components }))
                }
                Output::Text => print!(
                    "{}\n{}",
                    deploy::status::table(&rows),
                    deploy::health::table(&components)
                ),
            }
            let healthy = rows.iter().all(|r| r.ok)
                && components
                    .iter()
                    .all(|c| c.verdict == deploy::health::Verdict::Ok);
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Compact {
            env,
            partition,
            register_only,
            wait,
        } => {
            let session = Session::open(cli, env)?;
            let run = session
                .run(deploy::compact::compact(
                    &session.aws,
                    &session.rendered,
                    partition.as_deref(),
                    *register_only,
                    *wait,
                ))
                .map_err(|e| e.to_string())?;
            match cli.output {
                Output::Json => print_json(&run),
                Output::Text => println!(
                    "compaction of {} {}: {}{}",
                    if run.partition.is_empty() {
                        "the whole lake"
                    } else {
                        run.partition.as_str()
                    },
                    run.execution_arn,
                    run.status,
                    run.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            }
            let failed = *wait && !run.succeeded();
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Outputs { env } => {
            let session = Session::open(cli, env)?;
            let outputs = session
                .run(deploy::status::outputs(&session.aws, &session.rendered))
                .map_err(|e| e.to_string())?;
            match cli.output {
                Output::Json => print_json(&outputs),
                Output::Text => {
                    for (stack, values) in &outputs {
                        for (key, value) in values {
                            println!("{stack}.{key} = {value}");
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Preflight { env } => {
            let session = Session::open(cli, env)?;
            let report = session.run(deploy::preflight::preflight(
                &session.aws,
                &session.spec,
                &session.locator,
                &session.rendered.region,
                &session.rendered.files,
            ));
            match cli.output {
                Output::Json => print_json(&report),
                Output::Text => print!("{}", deploy::preflight::text(&report)),
            }
            Ok(if report.count(Severity::Error) > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Drift {
            env,
            detailed_exitcode,
        } => {
            let session = Session::open(cli, env)?;
            let drifts = session
                .run(deploy::drift::drift(&session.aws, &session.rendered))
                .map_err(|e| e.to_string())?;
            match cli.output {
                Output::Json => {
                    print_json(&serde_json::json!({ "environment": env, "stacks": drifts }))
                }
                Output::Text => print!("{}", deploy::drift::text(&drifts)),
            }
            let drifted = drifts.iter().any(|d| d.drifted());
            Ok(if *detailed_exitcode && drifted {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Graph { env, format } => {
            let (_, rendered) = load_and_render(cli, env)?;
            print!("{}", render::graph::draw(&rendered, *format));
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            print_json(&spec::json_schema());
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
        print_json(&report);
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

/// Machine-readable output: every `--output json` goes through here.
fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("plain data serialises")
    );
}

fn print_diagnostics(found: &[Diagnostic]) {
    for d in found {
        eprintln!("{d}");
    }
}

fn load_and_render(
    cli: &Cli,
    env: &str,
) -> Result<(spec::LoadedSpec, render::RenderedEnv), String> {
    match spec::load_valid(&cli.env_dir, env) {
        Ok((loaded, warnings)) => {
            print_diagnostics(&warnings);
            let rendered = render::render_with(&loaded, cli.templates.as_deref())
                .map_err(|e| e.to_string())?;
            Ok((loaded, rendered))
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

fn print_plan(
    cli: &Cli,
    env: &str,
    diffs: &[lakectl::plan::diff::StackDiff],
    detailed_exitcode: bool,
) -> Result<ExitCode, String> {
    match cli.output {
        Output::Json => println!("{}", lakectl::plan::report::json(env, diffs)),
        Output::Text => print!("{}", lakectl::plan::report::text(diffs)),
    }
    let changes = diffs.iter().any(|d| d.has_changes());
    Ok(if detailed_exitcode && changes {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// What every AWS-facing command starts with: the rendered environment, a
/// runtime, and clients that passed the account guard. Flags win over the
/// spec's endpoint and region.
struct Session {
    runtime: tokio::runtime::Runtime,
    spec: spec::EnvSpec,
    /// Where each spec field was written (preflight findings point there).
    locator: spec::Locator,
    rendered: render::RenderedEnv,
    aws: Aws,
}

impl Session {
    fn open(cli: &Cli, env: &str) -> Result<Session, String> {
        let (loaded, rendered) = load_and_render(cli, env)?;
        let spec::LoadedSpec { spec, locator, .. } = loaded;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let connection = Connection {
            profile: cli.profile.clone(),
            region: cli.region.clone(),
            endpoint_url: cli.endpoint_url.clone(),
        };
        let aws = runtime
            .block_on(Aws::connect(
                &connection,
                &rendered,
                spec.account_id.as_deref(),
                spec.endpoint_url.as_deref(),
            ))
            .map_err(|e| e.to_string())?;
        Ok(Session {
            runtime,
            spec,
            locator,
            rendered,
            aws,
        })
    }

    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// Ask a person on the terminal to type `word`; anything else is a no.
fn confirm(question: &str, word: &str) -> bool {
    use std::io::Write;
    eprint!("{question}\nType {word} to go ahead: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == word
}

//! The one test harness every integration test binary shares.
//!
//! Owns: locating the repository and the workspace's binaries, temp dirs,
//! requiring external tools with an actionable message (never a silent
//! skip), running the local AWS emulator (moto in server mode) on a free
//! loopback port, the real AWS CLI against it, the scripts templates embed,
//! and the test tier's query engine (Spark SQL with Hive support serving
//! `hive`), systemd booting a node's user data, fault-injecting proxies.
//! Must not: fake any AWS API; tests talk to the real moto server and the
//! real CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod boot;
pub mod engine;
pub mod metric_filter;
pub mod moto;
pub mod proxy;

pub use engine::{SqlEngine, SPARK_JVM_ENV};
pub use moto::{aws, free_port, Moto};
pub use proxy::{Fault, FaultProxy, FlakyProxy, ShardEndProxy};

/// The workspace root (where `environments/` and `templates/` live).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("environments").is_dir() && p.join("Cargo.toml").is_file())
        .expect("the testkit lives inside the lakectl workspace")
        .to_path_buf()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lakectl-test-")
        .tempdir()
        .expect("create a temp dir")
}

/// Every file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            // Not there (yet, or any more: a writer's scratch folder).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("listing {}: {e}", d.display()),
        };
        for e in entries {
            let Ok(e) = e else { continue };
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Relative path -> contents of every file under `dir`: a directory's state.
/// A file removed between listing and reading (a running writer's scratch
/// file) is not part of it.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .filter_map(|p| {
            let rel = p
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .into_owned();
            match std::fs::read(&p) {
                Ok(bytes) => Some((rel, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => panic!("reading {}: {e}", p.display()),
            }
        })
        .collect()
}

/// Path of an external tool, or a panic that says how to install it.
pub fn require_tool(name: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not on PATH; install it with: {install}"))
}

/// Run cfn-lint over `files`; returns (exit code, combined output).
pub fn cfn_lint(files: &[PathBuf]) -> (i32, String) {
    let tool = require_tool("cfn-lint", "pip install cfn-lint");
    let out = Command::new(tool)
        .args(["--format", "parseable"])
        .args(files)
        .output()
        .expect("run cfn-lint");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// checkov (pinned; installed by scripts/setup-tools.sh into its own
/// virtual environment under `.tools/`, apart from moto's and cfn-lint's
/// dependencies) over a folder of templates, JSON report; returns (exit
/// code, stdout).
pub fn checkov(dir: &Path) -> (i32, String) {
    let local = repo_root().join(".tools/checkov/bin/checkov");
    let tool = if local.is_file() {
        local
    } else {
        require_tool(
            "checkov",
            "scripts/setup-tools.sh (a venv under .tools/checkov)",
        )
    };
    let out = Command::new(tool)
        // Offline: no fetching of guideline links from Prisma Cloud.
        .env("BC_SKIP_MAPPING", "TRUE")
        .args([
            "--framework",
            "cloudformation",
            "--compact",
            "--output",
            "json",
            "-d",
        ])
        .arg(dir)
        .output()
        .expect("run checkov");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A binary of this workspace (any package) from the build the running test
/// belongs to: `target/<profile>/<name>`. `cargo test --workspace` builds
/// every package's binaries.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run the tests with `cargo test --release --workspace --all-targets` (scripts/test.sh), which builds every binary",
        path.display()
    );
    path
}

/// Every script a template carries as `echo <base64> | base64 -d | bash …`
/// (EMR steps, state-machine steps), decoded, in template order.
pub fn embedded_scripts(template: &str) -> Vec<String> {
    use base64::Engine;
    template
        .match_indices("echo ")
        .filter_map(|(at, _)| {
            let rest = &template[at + 5..];
            let (encoded, tail) = rest.split_once(' ')?;
            tail.starts_with("| base64 -d | bash")
                .then(|| {
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .ok()
                })
                .flatten()
        })
        .map(|bytes| String::from_utf8(bytes).expect("scripts are UTF-8"))
        .collect()
}

/// `shellcheck` over one script (bash); returns its findings, empty when
/// it has none.
pub fn shellcheck(script: &str) -> String {
    let tool = require_tool(
        "shellcheck",
        "apt-get install -y shellcheck (scripts/setup-tools.sh does)",
    );
    let dir = tempdir();
    let path = dir.path().join("script.sh");
    std::fs::write(&path, script).expect("write the script");
    let out = Command::new(tool)
        .args(["--shell=bash", "--severity=style", "--format=gcc"])
        .arg(&path)
        .output()
        .expect("run shellcheck");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// CloudFormation's `!Sub` on `text`: `${Name}` from `values` (a name not
/// there is a panic: a new parameter needs a test value), `${!Literal}`
/// kept as `${Literal}`.
pub fn cfn_sub(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let end = tail.find('}').expect("`${` without `}` in a !Sub string");
        let name = &tail[..end];
        match name.strip_prefix('!') {
            Some(literal) => {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            }
            None => out.push_str(
                values
                    .get(name)
                    .unwrap_or_else(|| {
                        panic!("!Sub references ${{{name}}}, which the test gives no value")
                    })
                    .as_str(),
            ),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

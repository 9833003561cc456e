//! The one test harness every integration test binary shares.
//!
//! Owns: locating the repository, temp dirs, requiring external tools with
//! an actionable message (never a silent skip), and running the local AWS
//! emulator (moto in server mode) on a free loopback port.
//! Must not: fake any AWS API; tests talk to the real moto server.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("listing {}: {e}", d.display())) {
            let p = e.expect("a directory entry").path();
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
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(&p).expect("readable"))
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

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// moto in server mode on 127.0.0.1, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let tool = require_tool("moto_server", "pip install 'moto[server]'");
        let port = free_port();
        let child = Command::new(tool)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        moto.wait_ready(Duration::from_secs(30));
        moto
    }

    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        while start.elapsed() < limit {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read, Write};
                let req = format!("GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && buf.starts_with(b"HTTP/1.")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not answer on {} within {limit:?}",
            self.endpoint
        );
    }

    /// Environment variables pointing an AWS SDK or CLI at this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The local AWS emulator: moto in server mode on a free loopback port, and
//! the real AWS CLI pointed at it.
//!
//! Owns: starting and stopping moto, the environment that points an SDK or
//! the CLI at it. Must not: answer any AWS call itself.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::require_tool;

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
        Moto::start_with_env(&[])
    }

    /// A server with extra environment, e.g. `INITIAL_NO_AUTH_ACTION_COUNT`
    /// (after that many requests moto checks each one's SigV4 signature
    /// and IAM policy, as AWS does).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let tool = require_tool("moto_server", "pip install 'moto[server]'");
        let port = free_port();
        // LAKE_TEST_MOTO_LOG=DIR keeps each server's log (its tracebacks
        // explain a 500) in DIR/moto-<port>.log.
        let log = |_: ()| match std::env::var_os("LAKE_TEST_MOTO_LOG") {
            Some(dir) => {
                std::fs::File::create(std::path::Path::new(&dir).join(format!("moto-{port}.log")))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null())
            }
            None => Stdio::null(),
        };
        let child = Command::new(tool)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(log(()))
            .stderr(log(()))
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

/// The AWS CLI (the real one, from PyPI) against `moto`; panics with its
/// output unless it exits 0.
pub fn aws(moto: &Moto, args: &[&str]) -> String {
    aws_with_env(moto, &[], args)
}

/// `aws` with environment over the emulator's (other credentials, say).
pub fn aws_with_env(moto: &Moto, env: &[(&str, &str)], args: &[&str]) -> String {
    let tool = require_tool(
        "aws",
        "pip install awscli (scripts/setup-tools.sh installs the pinned one)",
    );
    let out = Command::new(tool)
        .args(args)
        .envs(moto.aws_env())
        .envs(env.iter().copied())
        .output()
        .expect("run aws");
    assert!(
        out.status.success(),
        "aws {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

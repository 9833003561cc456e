//! The one test harness every integration test binary shares.
//!
//! Owns: locating the repository and the workspace's binaries, temp dirs,
//! requiring external tools with an actionable message (never a silent
//! skip), running the local AWS emulator (moto in server mode) on a free
//! loopback port, the real AWS CLI against it, the scripts templates embed,
//! and the test tier's query engine (Spark SQL with Hive support serving
//! `hive`). Must not: fake any AWS API; tests talk to the real moto server
//! and the real CLI.

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

/// The AWS CLI (the real one, from PyPI) against `moto`; panics with its
/// output unless it exits 0.
pub fn aws(moto: &Moto, args: &[&str]) -> String {
    let tool = require_tool(
        "aws",
        "pip install awscli (scripts/setup-tools.sh installs the pinned one)",
    );
    let out = Command::new(tool)
        .args(args)
        .envs(moto.aws_env())
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

/// The test tier's query engine: Spark SQL with Hive support (pyspark from
/// PyPI, Java from Debian) serving the `hive` command the lake's step
/// scripts run (`engine/spark_hive.py`). One per test binary, shared by its
/// tests; each test uses its own database.
pub struct SqlEngine {
    child: std::sync::Mutex<Child>,
    socket: PathBuf,
    bin_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl SqlEngine {
    /// The engine of this test binary, started on first use.
    pub fn shared() -> &'static SqlEngine {
        static ENGINE: std::sync::OnceLock<SqlEngine> = std::sync::OnceLock::new();
        ENGINE.get_or_init(SqlEngine::start)
    }

    fn start() -> SqlEngine {
        require_tool(
            "java",
            "apt-get install -y openjdk-17-jre-headless (scripts/setup-tools.sh does)",
        );
        let probe = Command::new("python3")
            .args(["-c", "import pyspark, boto3"])
            .output()
            .expect("run python3");
        assert!(
            probe.status.success(),
            "pyspark is not importable: pip install pyspark==3.5.2 (scripts/setup-tools.sh installs the pinned one): {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let dir = tempdir();
        let script = repo_root().join("crates/testkit/engine/spark_hive.py");
        let socket = dir.path().join("engine.sock");
        let log = std::fs::File::create(dir.path().join("engine.log")).expect("engine log");
        let child = Command::new("python3")
            .arg(&script)
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--warehouse")
            .arg(dir.path().join("warehouse"))
            .arg("--mirror")
            .arg(dir.path().join("mirror"))
            .envs([
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
            ])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the Spark SQL engine");
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir_all(&bin_dir).expect("bin dir");
        let hive = bin_dir.join("hive");
        std::fs::write(
            &hive,
            format!(
                "#!/bin/sh\n# `hive` served by Spark SQL (lake-testkit)\nexec python3 {} hive \"$@\"\n",
                script.display()
            ),
        )
        .expect("write the hive shim");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hive, std::fs::Permissions::from_mode(0o755))
                .expect("chmod hive");
        }
        let engine = SqlEngine {
            child: std::sync::Mutex::new(child),
            socket,
            bin_dir,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if engine.request(&serde_json::json!({"ping": true})).is_some() {
                return engine;
            }
            let exited = engine
                .child
                .lock()
                .expect("engine lock")
                .try_wait()
                .ok()
                .flatten();
            if exited.is_some() || start.elapsed() > Duration::from_secs(180) {
                let log = std::fs::read_to_string(engine._dir.path().join("engine.log"))
                    .unwrap_or_default();
                panic!(
                    "the Spark SQL engine did not start ({exited:?}); its log:\n{}",
                    &log[log.len().saturating_sub(4000)..]
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn request(&self, req: &serde_json::Value) -> Option<serde_json::Value> {
        use std::io::{BufRead, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).ok()?;
        s.write_all(format!("{req}\n").as_bytes()).ok()?;
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    /// Environment for a step script: `hive` first on PATH, served by this
    /// engine in `database`.
    pub fn script_env(&self, database: &str) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            ("PATH".into(), format!("{}:{path}", self.bin_dir.display())),
            ("LAKE_SQL_SOCKET".into(), self.socket.display().to_string()),
            ("LAKE_SQL_DATABASE".into(), database.into()),
        ]
    }

    /// Run `sql` in `database` (its `s3://` paths read from `moto`); the
    /// result rows, or a panic with the engine's error.
    pub fn query(&self, moto: &Moto, database: &str, sql: &str) -> Vec<Vec<serde_json::Value>> {
        let reply = self
            .request(
                &serde_json::json!({"sql": sql, "database": database, "endpoint": moto.endpoint}),
            )
            .expect("the Spark SQL engine answers");
        assert!(reply["ok"] == true, "{sql}\n{}", reply["err"]);
        reply["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r.as_array().expect("a row").clone())
            .collect()
    }
}

impl Drop for SqlEngine {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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

/// A TCP proxy in front of the moto server that can make AWS unreachable
/// for a while: `outage()` drops every open connection and answers new
/// requests with HTTP 503 until `restore()`. It injects faults; it answers
/// no AWS call itself.
pub struct FlakyProxy {
    pub endpoint: String,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl FlakyProxy {
    pub fn start(upstream: &str) -> FlakyProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    let mut client = client;
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 8192];
                        let mut seen = Vec::new();
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            match client.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        }
                        let _ = client.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    });
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    o.lock().expect("proxy lock").extend([c, s]);
                }
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        FlakyProxy {
            endpoint,
            down,
            open,
        }
    }

    /// AWS is unreachable: open connections drop, new requests get 503.
    pub fn outage(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().expect("proxy lock").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A proxy in front of moto that ends closed Kinesis shards as Kinesis
/// does. moto 5.2 keeps returning a next iterator for a shard a reshard
/// closed, so a consumer never reaches its end (`SHARD_END`). Here a
/// `GetRecords` on one of `closed` that returns no records comes back
/// without `NextShardIterator`, Kinesis's documented sign that a closed
/// shard is read to its end. Every other call passes through unchanged; it
/// answers no AWS call itself.
pub struct ShardEndProxy {
    pub endpoint: String,
}

impl ShardEndProxy {
    pub fn start(upstream: &str, closed: Vec<String>) -> ShardEndProxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let closed = std::sync::Arc::new(closed);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, closed) = (upstream.clone(), closed.clone());
                std::thread::spawn(move || {
                    let _ = serve_ending_shards(client, &upstream, &closed);
                });
            }
        });
        ShardEndProxy { endpoint }
    }
}

/// One client connection: each request forwarded on a connection of its
/// own, each response passed back (rewritten for a closed shard's end).
fn serve_ending_shards(
    mut client: std::net::TcpStream,
    upstream: &str,
    closed: &[String],
) -> std::io::Result<()> {
    use std::io::Write;
    while let Some((head, body)) = read_http(&mut client, false)? {
        let mut server = std::net::TcpStream::connect(upstream)?;
        server.write_all(&head)?;
        server.write_all(&body)?;
        let Some((reply_head, mut reply)) = read_http(&mut server, true)? else {
            return Ok(());
        };
        let request_head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if request_head.contains("x-amz-target: kinesis_20131202.getrecords") {
            reply = end_closed_shard(&body, reply, closed);
        }
        let reply_head = String::from_utf8_lossy(&reply_head);
        let mut out = String::new();
        for line in reply_head.split("\r\n").filter(|l| !l.is_empty()) {
            let lower = line.to_ascii_lowercase();
            if !lower.starts_with("content-length:") && !lower.starts_with("connection:") {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", reply.len()));
        client.write_all(out.as_bytes())?;
        client.write_all(&reply)?;
    }
    Ok(())
}

/// A GetRecords reply for a closed shard with no records: without its next iterator.
fn end_closed_shard(request: &[u8], reply: Vec<u8>, closed: &[String]) -> Vec<u8> {
    use base64::Engine as _;
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(request) else {
        return reply;
    };
    let iterator: String = req["ShardIterator"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    // moto's iterator: base64 of `stream:shard:last sequence number`.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(iterator)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let shard = decoded.split(':').nth(1).unwrap_or_default();
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&reply) else {
        return reply;
    };
    let empty = body["Records"].as_array().is_some_and(|r| r.is_empty());
    if closed.iter().any(|c| c == shard) && empty {
        if let Some(map) = body.as_object_mut() {
            map.remove("NextShardIterator");
        }
        return serde_json::to_vec(&body).expect("JSON");
    }
    reply
}

/// One HTTP/1.1 message: (head with its blank line, body). A body without a
/// length runs to the end of the stream when `to_eof` (a response).
fn read_http(
    stream: &mut std::net::TcpStream,
    to_eof: bool,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    use std::io::Read;
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        seen.extend_from_slice(&buf[..n]);
    };
    let head = seen[..end].to_vec();
    let mut body = seen[end..].to_vec();
    let length = String::from_utf8_lossy(&head).split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    match length {
        Some(n) => {
            while body.len() < n {
                let got = stream.read(&mut buf)?;
                if got == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..got]);
            }
            body.truncate(n);
        }
        None if to_eof => {
            stream.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok(Some((head, body)))
}

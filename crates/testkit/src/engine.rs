//! The test tier's query engine: Spark SQL with Hive support serving the
//! `hive` command the lake's step scripts run.
//!
//! Owns: the engine process of a test binary and its requests. Must not:
//! read the lake itself (the engine does, through its mirror of moto's S3).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::moto::Moto;
use crate::{repo_root, require_tool, tempdir};

/// JVM options for every local Spark a test starts (the engine below, the
/// step scripts' and the compaction tests' `spark-submit`): the client JIT
/// only and the serial collector. Their JVMs live seconds to minutes on two
/// cores, where C2's compile threads and the parallel collector's workers
/// cost more CPU than they win back: the lake tests alone took 420 s of the
/// machine's CPU with the defaults and 315 s with these (issue 36,
/// docs/benchmarks.md "CI"). Spark and the queries are the same.
pub const SPARK_JVM_ENV: [(&str, &str); 2] = [
    // the driver JVM spark-submit starts (client mode, local master)
    ("SPARK_SUBMIT_OPTS", JVM_OPTIONS),
    // the small launcher JVM spark-class starts first
    ("SPARK_LAUNCHER_OPTS", JVM_OPTIONS),
];
const JVM_OPTIONS: &str = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC";

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
            .envs(SPARK_JVM_ENV)
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
    /// engine in `database`; its `spark-submit` with `SPARK_JVM_ENV`.
    pub fn script_env(&self, database: &str) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        let mut env = vec![
            ("PATH".into(), format!("{}:{path}", self.bin_dir.display())),
            ("LAKE_SQL_SOCKET".into(), self.socket.display().to_string()),
            ("LAKE_SQL_DATABASE".into(), database.into()),
        ];
        env.extend(SPARK_JVM_ENV.map(|(k, v)| (k.into(), v.into())));
        env
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

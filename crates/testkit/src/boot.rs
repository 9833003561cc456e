//! Booting a node: a stack's rendered user data run by cloud-init under
//! systemd as PID 1, in a Debian root filesystem of its own
//! (`.tools/node-root`, built by `scripts/setup-tools.sh`), never the
//! machine's own root (systemd empties `/tmp` and more at boot).
//!
//! Each boot mounts an overlay (the cached root below, a fresh upper layer
//! above) inside a private mount namespace and starts `systemd-nspawn
//! --boot --private-network` on it. The node reaches the outside world
//! only through the test: the instance metadata address (169.254.169.254)
//! and the AWS endpoint are forwarded over Unix sockets to this process,
//! which serves an IMDSv2 stand-in and passes AWS traffic to the moto
//! server unchanged. The stand-ins for what cannot be had here (dnf,
//! cfn-signal, the CloudWatch agent) are the files in `crates/testkit/node/`.
//!
//! Owns: the node's root, its boot and power-off, looking inside it
//! (`systemctl`, files), the metadata stand-in. Must not: answer any AWS
//! call (those go to moto) or change the machine's own root filesystem.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::moto::Moto;
use crate::{repo_root, require_tool, tempdir};

/// What a node boots with.
pub struct NodeConfig<'a> {
    /// The user data, as CloudFormation hands it to EC2 (`!Sub` resolved).
    pub user_data: &'a str,
    /// The instance id the metadata service reports.
    pub instance_id: &'a str,
    /// The instance's private address the metadata service reports.
    pub local_ipv4: &'a str,
    /// The instance profile's role (credentials come from the metadata
    /// service, as on EC2).
    pub role: &'a str,
    pub region: &'a str,
}

/// A booted node; powered off (and its mounts gone) when dropped.
pub struct Node {
    child: Option<Child>,
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    /// Every metadata request: (method, path, whether it carried a token).
    pub imds_requests: Arc<Mutex<Vec<(String, String, bool)>>>,
}

/// The node root `scripts/setup-tools.sh` builds, or a panic that says how.
pub fn node_root() -> PathBuf {
    let root = repo_root().join(".tools/node-root");
    assert!(
        root.join("usr/lib/systemd/systemd").exists() || root.join("lib/systemd/systemd").exists(),
        "no node root at {}: run scripts/setup-tools.sh (it builds one with mmdebstrap)",
        root.display()
    );
    root
}

impl Node {
    /// Boot `config.user_data` on a fresh copy of the node root, with the
    /// AWS endpoint of `moto`.
    pub fn boot(moto: &Moto, config: &NodeConfig<'_>) -> Node {
        require_tool(
            "systemd-nspawn",
            "apt-get install -y systemd-container (scripts/setup-tools.sh does)",
        );
        require_tool(
            "unshare",
            "apt-get install -y util-linux (scripts/setup-tools.sh does)",
        );
        let lower = node_root();
        let dir = tempdir();
        let upper = dir.path().join("upper");
        let host = dir.path().join("host");
        for d in ["upper", "work", "merged", "host"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("node dirs");
        }
        let port: u16 = moto
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("moto's endpoint has a port");
        stage(&upper, config, port);

        let stop = Arc::new(AtomicBool::new(false));
        let imds_requests = Arc::new(Mutex::new(Vec::new()));
        let upstream = moto.endpoint.trim_start_matches("http://").to_string();
        serve_unix(&host.join("aws.sock"), stop.clone(), move |client| {
            forward(client, &upstream)
        });
        let imds = Imds {
            instance_id: config.instance_id.to_string(),
            local_ipv4: config.local_ipv4.to_string(),
            role: config.role.to_string(),
            region: config.region.to_string(),
            log: imds_requests.clone(),
        };
        serve_unix(&host.join("imds.sock"), stop.clone(), move |client| {
            imds.serve(client)
        });

        let machine = format!(
            "lake-node-{}",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        let script = format!(
            "set -e\n\
             mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {merged}\n\
             exec systemd-nspawn --quiet --directory={merged} --boot --register=no --keep-unit \
             --private-network --machine={machine} --bind={host}:/lake-host",
            lower = lower.display(),
            upper = upper.display(),
            work = dir.path().join("work").display(),
            merged = dir.path().join("merged").display(),
            host = host.display(),
        );
        let console = std::fs::File::create(dir.path().join("console.log")).expect("console log");
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash", "-c", &script])
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("console"))
            .stderr(console)
            .spawn()
            .expect("start systemd-nspawn");
        Node {
            child: Some(child),
            dir,
            stop,
            imds_requests,
        }
    }

    /// What systemd and the node printed on its console.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    /// The container's init process (pid in this machine's namespace).
    fn leader(&self) -> Option<u32> {
        let nspawn = self.child.as_ref()?.id();
        // nspawn's descendants: the container's init is the first `systemd`.
        let mut stack = vec![nspawn];
        while let Some(pid) = stack.pop() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if pid != nspawn && comm.trim() == "systemd" {
                return Some(pid);
            }
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            stack.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        None
    }

    /// Run `argv` inside the node (its namespaces and root), as root.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let pid = self
            .leader()
            .unwrap_or_else(|| panic!("the node is not running; console:\n{}", self.console()));
        Command::new("nsenter")
            .args([
                "--target",
                &pid.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-r",
                "-w",
            ])
            .args(argv)
            .output()
            .expect("run nsenter")
    }

    /// `systemctl show UNIT` as properties.
    pub fn unit(&self, unit: &str) -> BTreeMap<String, String> {
        let out = self.exec(&[
            "systemctl",
            "show",
            unit,
            "-p",
            "ActiveState,SubState,Result,NRestarts,ExecMainStatus,ExecMainPID,User,UnitFileState",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A file inside the node, or None.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let out = self.exec(&["cat", path]);
        out.status.success().then_some(out.stdout)
    }

    /// A file the node wrote to the test's shared folder (`/lake-host`).
    pub fn host_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("host").join(name)).unwrap_or_default()
    }

    /// Wait until cloud-init has run every boot stage (the user data
    /// included); its result (`/var/lib/cloud/data/result.json`).
    pub fn wait_for_cloud_init(&self, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        let result = self.dir.path().join("upper/var/lib/cloud/data/result.json");
        loop {
            if let Ok(text) = std::fs::read_to_string(&result) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    return v;
                }
            }
            assert!(
                start.elapsed() < limit,
                "cloud-init did not finish within {limit:?}; console:\n{}",
                tail(&self.console(), 6000)
            );
            self.assert_running();
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Wait until `check` says Ok, polling; after `limit`, panics with
    /// `what` and the last reason `check` gave.
    pub fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Node) -> Result<(), String>,
    ) {
        let start = Instant::now();
        loop {
            let reason = match check(self) {
                Ok(()) => return,
                Err(reason) => reason,
            };
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}: {reason}\nconsole:\n{}",
                tail(&self.console(), 3000)
            );
            self.assert_running();
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn assert_running(&self) {
        let exited = self
            .child
            .as_ref()
            .map(|c| std::fs::metadata(format!("/proc/{}", c.id())).is_err())
            .unwrap_or(true);
        assert!(
            !exited,
            "the node stopped; console:\n{}",
            tail(&self.console(), 6000)
        );
    }

    /// Shut the node down as EC2 does (systemd stops every unit), wait for
    /// it, and return its console.
    pub fn poweroff(mut self) -> String {
        self.shutdown(Duration::from_secs(120));
        self.console()
    }

    fn shutdown(&mut self, limit: Duration) {
        let leader = self.leader();
        let Some(mut child) = self.child.take() else {
            return;
        };
        let signal = |sig: &str, pid: u32| {
            let _ = Command::new("kill")
                .args(["-s", sig, &pid.to_string()])
                .status();
        };
        if let Some(pid) = leader {
            // SIGRTMIN+4 asks systemd for a clean power-off.
            signal("SIGRTMIN+4", pid);
        }
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if start.elapsed() > limit {
                // The container's init first: killing only nspawn would
                // leave the node running, orphaned.
                if let Some(pid) = leader {
                    signal("SIGKILL", pid);
                }
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(30));
    }
}

fn tail(text: &str, n: usize) -> &str {
    let mut at = text.len().saturating_sub(n);
    while !text.is_char_boundary(at) {
        at += 1;
    }
    &text[at..]
}

/// Files the node boots with, in the overlay's upper layer: cloud-init's
/// NoCloud seed (the user data and the instance id), the stand-ins, the
/// test's network unit, and the AWS endpoint every unit's environment
/// carries (the SDKs and the CLI read `AWS_ENDPOINT_URL`).
fn stage(upper: &Path, config: &NodeConfig<'_>, port: u16) {
    let write = |path: &str, body: &[u8], mode: u32| {
        let p = upper.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&p, body).expect("write a node file");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write(
        "/var/lib/cloud/seed/nocloud/meta-data",
        format!(
            "instance-id: {}\nlocal-hostname: {}\n",
            config.instance_id, config.instance_id
        )
        .as_bytes(),
        0o644,
    );
    // Debian's cloud-init sets en_US.UTF-8, which a minbase root lacks;
    // Amazon Linux has it. C.UTF-8 is built into glibc.
    write(
        "/etc/cloud/cloud.cfg.d/98_lake_test_locale.cfg",
        b"locale: C.UTF-8\n",
        0o644,
    );
    write(
        "/var/lib/cloud/seed/nocloud/user-data",
        config.user_data.as_bytes(),
        0o644,
    );
    let assets = repo_root().join("crates/testkit/node");
    for (name, mode) in [
        ("dnf", 0o755),
        ("cfn-signal", 0o755),
        ("amazon-cloudwatch-agent", 0o755),
        ("amazon-cloudwatch-agent.service", 0o644),
        ("lake-test-bridge", 0o755),
        ("lake-test-bridge.service", 0o644),
    ] {
        let body = std::fs::read(assets.join(name)).expect("a node stand-in");
        write(&format!("/usr/lib/lake-test/{name}"), &body, mode);
    }
    let dnf = std::fs::read(assets.join("dnf")).expect("dnf stand-in");
    write("/usr/bin/dnf", &dnf, 0o755);
    let bridge = std::fs::read(assets.join("lake-test-bridge.service")).expect("bridge unit");
    write(
        "/etc/systemd/system/lake-test-bridge.service",
        &bridge,
        0o644,
    );
    let wants = upper.join("etc/systemd/system/sysinit.target.wants");
    std::fs::create_dir_all(&wants).expect("wants dir");
    let _ = std::os::unix::fs::symlink(
        "/etc/systemd/system/lake-test-bridge.service",
        wants.join("lake-test-bridge.service"),
    );
    write(
        "/etc/lake-test/bridge.env",
        format!("AWS_PORT={port}\n").as_bytes(),
        0o644,
    );
    write(
        "/etc/systemd/system.conf.d/lake-test.conf",
        format!("[Manager]\nDefaultEnvironment=AWS_ENDPOINT_URL=http://127.0.0.1:{port}\n")
            .as_bytes(),
        0o644,
    );
}

/// Accept connections on a Unix socket at `path` until `stop`, each served
/// on a thread of its own.
fn serve_unix(
    path: &Path,
    stop: Arc<AtomicBool>,
    serve: impl Fn(UnixStream) + Send + Sync + 'static,
) {
    let listener = UnixListener::bind(path).expect("bind a node socket");
    listener.set_nonblocking(true).expect("nonblocking");
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((client, _)) => {
                    let _ = client.set_nonblocking(false);
                    let serve = serve.clone();
                    std::thread::spawn(move || serve(client));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
}

/// Pass one connection through to `upstream` (host:port) unchanged.
fn forward(client: UnixStream, upstream: &str) {
    let Ok(server) = std::net::TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    let (mut server, mut client) = (server, client);
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// The instance metadata service as a node sees it (IMDSv2: a token from
/// `PUT /latest/api/token`, required on every read; 401 without one).
/// Serves the few paths the user data and the SDKs read.
struct Imds {
    instance_id: String,
    local_ipv4: String,
    role: String,
    region: String,
    log: Arc<Mutex<Vec<(String, String, bool)>>>,
}

const IMDS_TOKEN: &str = "lake-test-imds-token";

impl Imds {
    fn serve(&self, client: UnixStream) {
        let mut reader = BufReader::new(client.try_clone().expect("clone"));
        let mut writer = client;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or_default().to_string(),
            );
            let mut headers = BTreeMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let token = headers.get("x-aws-ec2-metadata-token").map(String::as_str);
            self.log.lock().expect("imds log").push((
                method.clone(),
                path.clone(),
                token == Some(IMDS_TOKEN),
            ));
            let (status, text) = self.answer(&method, &path, &headers, token);
            // A token's reply says its lifetime, as IMDS does (SDKs require it).
            let ttl = match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
                Some(ttl) if method == "PUT" => {
                    format!("X-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n")
                }
                _ => String::new(),
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{ttl}Content-Length: {}\r\n\r\n{text}",
                text.len()
            );
            if writer.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn answer(
        &self,
        method: &str,
        path: &str,
        headers: &BTreeMap<String, String>,
        token: Option<&str>,
    ) -> (&'static str, String) {
        if method == "PUT" && path == "/latest/api/token" {
            return match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
                Some(_) => ("200 OK", IMDS_TOKEN.to_string()),
                None => ("400 Bad Request", String::new()),
            };
        }
        if token != Some(IMDS_TOKEN) {
            return ("401 Unauthorized", String::new());
        }
        let creds_path = format!("/latest/meta-data/iam/security-credentials/{}", self.role);
        let expires = "2099-01-01T00:00:00Z";
        let text = match path {
            "/latest/meta-data/instance-id" => self.instance_id.clone(),
            "/latest/meta-data/local-ipv4" => self.local_ipv4.clone(),
            "/latest/meta-data/placement/region" => self.region.clone(),
            "/latest/meta-data/placement/availability-zone" => format!("{}a", self.region),
            "/latest/meta-data/iam/security-credentials/"
            | "/latest/meta-data/iam/security-credentials" => self.role.clone(),
            p if p == creds_path => serde_json::json!({
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": "testing",
                "SecretAccessKey": "testing",
                "Token": "testing",
                "Expiration": expires,
                "LastUpdated": "2026-01-01T00:00:00Z",
            })
            .to_string(),
            "/latest/dynamic/instance-identity/document" => serde_json::json!({
                "instanceId": self.instance_id,
                "region": self.region,
                "accountId": "123456789012",
                "availabilityZone": format!("{}a", self.region),
                "privateIp": self.local_ipv4,
            })
            .to_string(),
            _ => return ("404 Not Found", String::new()),
        };
        ("200 OK", text)
    }
}

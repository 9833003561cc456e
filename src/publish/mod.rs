//! The artifact publisher: the data-plane binaries the stacks run, found or
//! built, hashed, and uploaded content-addressed to the artifacts bucket.
//!
//! Owns: where the binaries come from (`--artifacts DIR` or a release build
//! of this workspace), their sha256, and the object layout
//! `bin/<name>/<sha256>/<name>` the templates fetch from; the files a spec
//! names (the bridge plugin: required to deploy, planned as known after
//! deploy by a read-only `diff` when missing); EMR's TLS material (`tls`). Must not: decide when to deploy or read stack state (the
//! deployer hands in the bucket).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::aws::{aws_error, AwsError};

pub mod tls;

/// The binaries a deploy ships, by name.
pub const ARTIFACT_NAMES: [&str; 2] = ["lake-ingest", "lake-compact"];

/// glibc of the hosts that run the artifacts (Amazon Linux 2023).
pub const TARGET_GLIBC: &str = "2.34";

/// The newest `GLIBC_x.y[.z]` symbol version an ELF file asks for (`None`:
/// none, e.g. a static build). Streams the file; the names live in its
/// dynamic string table.
pub fn glibc_needed(path: &Path) -> Result<Option<Vec<u32>>, PublishError> {
    let err = |e: std::io::Error| PublishError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"\x7fELF" {
        return Err(PublishError::NotElf {
            path: path.display().to_string(),
        });
    }
    let mut newest: Option<Vec<u32>> = None;
    let mut buf = vec![0u8; 8 << 20];
    let mut carry = 0usize;
    loop {
        let n = file.read(&mut buf[carry..]).map_err(err)?;
        let end = carry + n;
        for at in memchr::memmem::find_iter(&buf[..end], b"GLIBC_") {
            let digits: Vec<u8> = buf[at + 6..end]
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b'.')
                .copied()
                .collect();
            let version: Vec<u32> = String::from_utf8_lossy(&digits)
                .split('.')
                .filter_map(|p| p.parse().ok())
                .collect();
            if version.len() >= 2 && newest.as_ref().is_none_or(|v| version > *v) {
                newest = Some(version);
            }
        }
        if n == 0 {
            break;
        }
        // Keep a tail so a name split across reads is seen whole next time.
        let keep = end.min(32);
        buf.copy_within(end - keep..end, 0);
        carry = keep;
    }
    Ok(newest)
}

/// Refuse a binary that would not start on the target hosts.
pub fn check_runs_on_target(path: &Path) -> Result<(), PublishError> {
    let target: Vec<u32> = TARGET_GLIBC
        .split('.')
        .map(|p| p.parse().expect("static"))
        .collect();
    match glibc_needed(path)? {
        Some(needed) if needed > target => Err(PublishError::Glibc {
            path: path.display().to_string(),
            needed: needed
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("."),
        }),
        _ => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}: cannot read it")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no artifact directory given and no workspace to build one in ({cwd} has no \
         crates/dataplane); pass --artifacts DIR holding lake-ingest and lake-compact"
    )]
    NoWorkspace { cwd: String },
    #[error("building the data-plane binaries failed ({status}); run `cargo build --release --workspace --bins` to see why")]
    Build { status: String },
    #[error("cannot run cargo to build the data-plane binaries; install Rust (rustup.rs) or pass --artifacts DIR")]
    Cargo(#[source] std::io::Error),
    #[error(
        "{path}: needs glibc {needed} (symbol versions up to GLIBC_{needed}), but the ingest \
         and compaction hosts run Amazon Linux 2023 with glibc {TARGET_GLIBC}; build it where \
         glibc is {TARGET_GLIBC} or older (an amazonlinux:2023 container) or statically (musl)"
    )]
    Glibc { path: String, needed: String },
    #[error(
        "{path}: not a Linux executable (no ELF header); pass the built lake-ingest / lake-compact"
    )]
    NotElf { path: String },
    #[error("uploading {key} to s3://{bucket}")]
    Upload {
        bucket: String,
        key: String,
        #[source]
        source: Box<crate::aws::AwsError>,
    },
}

/// One artifact (a data-plane binary, the Kafka bridge's plugin): where it
/// is and its content address.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
}

/// The artifact name of the Kafka bridge's connector plugin.
pub const BRIDGE_PLUGIN: &str = "bridge-plugin";

impl Artifact {
    /// Its key in the artifacts bucket: `bin/<name>/<sha256>/<name>` for a
    /// binary, `plugins/<name>/<sha256>/<file name>` for a plugin.
    pub fn key(&self) -> String {
        if ARTIFACT_NAMES.contains(&self.name.as_str()) {
            format!("bin/{0}/{1}/{0}", self.name, self.sha256)
        } else {
            let file = self
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("plugins/{}/{}/{file}", self.name, self.sha256)
        }
    }

    /// A file given in the spec (the bridge's plugin), by its content.
    pub fn file(name: &str, path: &Path) -> Result<Artifact, PublishError> {
        if !path.is_file() {
            let how = if name == BRIDGE_PLUGIN {
                ": spec field kafka.bridge.plugin. Build it from awslabs/kinesis-kafka-connector \
                 (`mvn package`, then zip the jar under that name), or point kafka.bridge.plugin \
                 at an s3:// object you own; `validate`, `render`, `graph` and `diff` work without it"
            } else {
                ""
            };
            return Err(PublishError::File {
                path: path.display().to_string(),
                message: format!("no such file (the spec names it for {name}){how}"),
            });
        }
        Ok(Artifact {
            name: name.to_string(),
            path: path.to_path_buf(),
            sha256: sha256_file(path)?,
        })
    }
}

/// Where the data-plane binaries come from.
#[derive(Debug, Clone, Copy)]
pub enum Binaries<'a> {
    /// A directory holding prebuilt ones (`--artifacts DIR`).
    Dir(&'a Path),
    /// A release build of this workspace (`up`).
    Build,
    /// Not at hand: a read-only plan does not build; their hashes are
    /// planned as known after deploy.
    NotBuilt,
}

/// Whether any rendered stack takes a data-plane binary's hash.
pub fn needs_binaries(rendered: &crate::render::RenderedEnv) -> bool {
    rendered.stacks.iter().flat_map(|s| s.parameters.values()).any(|p| {
        matches!(p, crate::render::ParamSource::Artifact { artifact } if ARTIFACT_NAMES.contains(&artifact.as_str()))
    })
}

/// Every artifact the rendered stacks need: the data-plane binaries (as
/// `binaries` says) if any stack takes their hash, and the files the spec
/// names (`RenderedEnv::files`).
pub fn locate_for(
    rendered: &crate::render::RenderedEnv,
    binaries: Binaries<'_>,
) -> Result<BTreeMap<String, Artifact>, PublishError> {
    let mut found = binaries_for(rendered, binaries)?;
    for (name, path) in &rendered.files {
        found.insert(name.clone(), Artifact::file(name, path)?);
    }
    Ok(found)
}

/// The data-plane binaries, if any stack takes their hash.
fn binaries_for(
    rendered: &crate::render::RenderedEnv,
    binaries: Binaries<'_>,
) -> Result<BTreeMap<String, Artifact>, PublishError> {
    Ok(match (needs_binaries(rendered), binaries) {
        (false, _) | (true, Binaries::NotBuilt) => BTreeMap::new(),
        (true, Binaries::Dir(dir)) => locate(Some(dir))?,
        (true, Binaries::Build) => locate(None)?,
    })
}

/// As [`locate_for`], for a read-only plan: a file the spec names that is
/// not at hand is planned as known after deploy (a note says which, and
/// where it comes from) instead of failing the plan.
pub fn locate_for_plan(
    rendered: &crate::render::RenderedEnv,
    binaries: Binaries<'_>,
) -> Result<(BTreeMap<String, Artifact>, Vec<String>), PublishError> {
    let mut found = binaries_for(rendered, binaries)?;
    let mut notes = Vec::new();
    for (name, path) in &rendered.files {
        match Artifact::file(name, path) {
            Ok(a) => {
                found.insert(name.clone(), a);
            }
            Err(PublishError::File { path, message }) => notes.push(format!(
                "{path}: {message}; its hash is planned as known after deploy (`up` needs it)"
            )),
            Err(other) => return Err(other),
        }
    }
    Ok((found, notes))
}

/// The sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, PublishError> {
    let err = |e: std::io::Error| PublishError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The artifacts in `dir`, or (with no `dir`) a release build of this
/// workspace's data plane. Every name in `ARTIFACT_NAMES` must be present.
pub fn locate(dir: Option<&Path>) -> Result<BTreeMap<String, Artifact>, PublishError> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => build_release()?,
    };
    ARTIFACT_NAMES
        .iter()
        .map(|name| {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(PublishError::File {
                    path: path.display().to_string(),
                    message: format!("no {name} binary here"),
                });
            }
            check_runs_on_target(&path)?;
            let sha256 = sha256_file(&path)?;
            Ok((
                name.to_string(),
                Artifact {
                    name: name.to_string(),
                    path,
                    sha256,
                },
            ))
        })
        .collect()
}

/// `cargo build --release --workspace --bins` from the workspace in the
/// current directory; returns the directory holding the binaries. The same
/// invocation as `scripts/demo.sh` and the test suite's build (one feature
/// resolution), so it is fresh after either; `-p lake-dataplane` alone would
/// resolve features differently and compile the AWS crates again.
fn build_release() -> Result<PathBuf, PublishError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    if !cwd.join("crates/dataplane/Cargo.toml").is_file() {
        return Err(PublishError::NoWorkspace {
            cwd: cwd.display().to_string(),
        });
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--workspace", "--bins"])
        .current_dir(&cwd)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(PublishError::Cargo)?;
    if !status.success() {
        return Err(PublishError::Build {
            status: status.to_string(),
        });
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cwd.join("target"));
    Ok(target.join("release"))
}

/// What publishing did, per artifact.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    Uploaded,
    AlreadyThere,
}

/// Upload `artifact` to `bucket` unless an object is already at its
/// content address (same key = same bytes, so it is never re-sent).
pub async fn publish(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    artifact: &Artifact,
) -> Result<Published, PublishError> {
    let key = artifact.key();
    let fail = |source: AwsError| PublishError::Upload {
        bucket: bucket.to_string(),
        key: key.clone(),
        source: Box::new(source),
    };
    if exists(s3, bucket, &key).await.map_err(fail)? {
        return Ok(Published::AlreadyThere);
    }
    // The key is the content's address, so a repeated PUT is harmless: an
    // upload the endpoint failed (a 5xx after the SDK's own retries, a
    // dropped connection) is sent again, whole, from the file, twice more.
    let mut attempt = 1;
    loop {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(&artifact.path)
            .await
            .map_err(|e| PublishError::Read {
                path: artifact.path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
        let sent = s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(body)
            .metadata("sha256", &artifact.sha256)
            .checksum_sha256(checksum_header(&artifact.sha256))
            .send()
            .await;
        match sent {
            Ok(_) => return Ok(Published::Uploaded),
            Err(e)
                if attempt < 3
                    && e.raw_response()
                        .is_none_or(|r| r.status().is_server_error()) =>
            {
                eprintln!(
                    "lakectl: uploading {key} to {bucket} failed (attempt {attempt} of 3), sending it again: {}",
                    aws_error("PutObject", e)
                );
                tokio::time::sleep(std::time::Duration::from_secs(2 * attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(fail(aws_error("PutObject", e))),
        }
    }
}

/// Whether `key` is in `bucket` (HeadObject).
async fn exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<bool, AwsError> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
        Err(e) => Err(aws_error("HeadObject", e)),
    }
}

/// Put `body` at `key` unless an object is there already (material that
/// running resources use is never replaced).
pub async fn put_once(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: impl FnOnce() -> Result<Vec<u8>, PublishError>,
) -> Result<Published, PublishError> {
    let fail = |source: AwsError| PublishError::Upload {
        bucket: bucket.to_string(),
        key: key.to_string(),
        source: Box::new(source),
    };
    if exists(s3, bucket, key).await.map_err(fail)? {
        return Ok(Published::AlreadyThere);
    }
    let bytes = body()?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .checksum_sha256(checksum_header(&sha256))
        .body(bytes.into())
        .send()
        .await
        .map_err(|e| fail(aws_error("PutObject", e)))?;
    Ok(Published::Uploaded)
}

/// The `x-amz-checksum-sha256` of content whose sha256 we know (hex): S3
/// checks the bytes it stored against it, so an upload is the artifact or
/// an error. Sent as a header, it also replaces the SDK's trailing
/// checksum, which moto looks for by searching the body: a binary that
/// embeds the SDK's own `x-amz-checksum-…` strings made moto's PutObject
/// fail with HTTP 500 (docs/moto-gaps.md).
fn checksum_header(sha256_hex: &str) -> String {
    let bytes = hex::decode(sha256_hex).unwrap_or_default();
    aws_smithy_types::base64::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF-looking file asking for `glibc` symbol versions.
    fn elf(path: &Path, versions: &[&str]) {
        let mut bytes = b"\x7fELF\x02\x01\x01\0".to_vec();
        for v in versions {
            bytes.extend_from_slice(b"\0memcpy\0GLIBC_");
            bytes.extend_from_slice(v.as_bytes());
        }
        bytes.push(0);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn artifacts_are_addressed_by_their_content() {
        let dir = tempfile::tempdir().unwrap();
        for name in ARTIFACT_NAMES {
            elf(
                &dir.path().join(name),
                &["2.2.5", name.len().to_string().as_str()],
            );
        }
        std::fs::write(dir.path().join("x"), b"lake-ingest").unwrap();
        // `printf lake-ingest | sha256sum`
        assert_eq!(
            sha256_file(&dir.path().join("x")).unwrap(),
            "68ca2b65768586cdf3318ffcd1f37ffda5abdfcd9d5af260aba452330fca0fee"
        );
        let found = locate(Some(dir.path())).unwrap();
        let ingest = &found["lake-ingest"];
        assert_eq!(
            ingest.key(),
            format!("bin/lake-ingest/{}/lake-ingest", ingest.sha256)
        );
        assert_ne!(ingest.sha256, found["lake-compact"].sha256);
    }

    #[test]
    fn binaries_that_need_a_newer_glibc_than_the_hosts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lake-ingest");
        elf(&path, &["2.2.5", "2.34", "2.17"]);
        assert_eq!(glibc_needed(&path).unwrap(), Some(vec![2, 34]));
        assert!(check_runs_on_target(&path).is_ok());
        elf(&path, &["2.2.5", "2.36", "2.4"]);
        let err = check_runs_on_target(&path).unwrap_err().to_string();
        assert!(
            err.contains("needs glibc 2.36") && err.contains("glibc 2.34"),
            "{err}"
        );
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        assert!(check_runs_on_target(&path)
            .unwrap_err()
            .to_string()
            .contains("no ELF header"));
        // A static build asks for no glibc at all.
        elf(&path, &[]);
        assert_eq!(glibc_needed(&path).unwrap(), None);
    }

    #[test]
    fn a_plugin_file_is_published_under_its_content_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kinesis-kafka-connector-0.0.9.zip");
        std::fs::write(&path, b"PK plugin").unwrap();
        let a = Artifact::file(BRIDGE_PLUGIN, &path).unwrap();
        assert_eq!(
            a.key(),
            format!(
                "plugins/bridge-plugin/{}/kinesis-kafka-connector-0.0.9.zip",
                a.sha256
            )
        );
        let missing = Artifact::file(BRIDGE_PLUGIN, &dir.path().join("nope.zip")).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("no such file (the spec names it for bridge-plugin)"),
            "{missing}"
        );
    }

    #[test]
    fn a_missing_binary_is_named() {
        let dir = tempfile::tempdir().unwrap();
        elf(&dir.path().join("lake-ingest"), &[]);
        let err = locate(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("lake-compact: no lake-compact binary here"),
            "{err}"
        );
    }
}

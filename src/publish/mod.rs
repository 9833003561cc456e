//! The artifact publisher: the data-plane binaries the stacks run, found or
//! built, hashed, and uploaded content-addressed to the artifacts bucket.
//!
//! Owns: where the binaries come from (`--artifacts DIR` or a release build
//! of this workspace), their sha256, and the object layout
//! `bin/<name>/<sha256>/<name>` the templates fetch from. Must not: decide
//! when to deploy or read stack state (the deployer hands in the bucket).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The binaries a deploy ships, by name.
pub const ARTIFACT_NAMES: [&str; 2] = ["lake-ingest", "lake-compact"];

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(
        "no artifact directory given and no workspace to build one in ({cwd} has no \
         crates/dataplane); pass --artifacts DIR holding lake-ingest and lake-compact"
    )]
    NoWorkspace { cwd: String },
    #[error("building the data-plane binaries failed ({0}); run `cargo build --release -p lake-dataplane --bins` to see why")]
    Build(String),
    #[error("uploading {key} to s3://{bucket}: {message}")]
    Upload {
        bucket: String,
        key: String,
        message: String,
    },
}

/// One binary: where it is and its content address.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
}

impl Artifact {
    /// Its key in the artifacts bucket.
    pub fn key(&self) -> String {
        format!("bin/{0}/{1}/{0}", self.name, self.sha256)
    }
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

/// `cargo build --release` of the data plane, from the workspace in the
/// current directory; returns the directory holding the binaries.
fn build_release() -> Result<PathBuf, PublishError> {
    let cwd = std::env::current_dir().unwrap_or_default();
    if !cwd.join("crates/dataplane/Cargo.toml").is_file() {
        return Err(PublishError::NoWorkspace {
            cwd: cwd.display().to_string(),
        });
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "lake-dataplane", "--bins"])
        .current_dir(&cwd)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| PublishError::Build(e.to_string()))?;
    if !status.success() {
        return Err(PublishError::Build(status.to_string()));
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
    let fail = |message: String| PublishError::Upload {
        bucket: bucket.to_string(),
        key: key.clone(),
        message,
    };
    match s3.head_object().bucket(bucket).key(&key).send().await {
        Ok(_) => return Ok(Published::AlreadyThere),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(fail(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())),
    }
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&artifact.path)
        .await
        .map_err(|e| fail(e.to_string()))?;
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(body)
        .metadata("sha256", &artifact.sha256)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
    Ok(Published::Uploaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_addressed_by_their_content() {
        let dir = tempfile::tempdir().unwrap();
        for name in ARTIFACT_NAMES {
            std::fs::write(dir.path().join(name), name.as_bytes()).unwrap();
        }
        let found = locate(Some(dir.path())).unwrap();
        let ingest = &found["lake-ingest"];
        // `printf lake-ingest | sha256sum`
        assert_eq!(
            ingest.sha256,
            "68ca2b65768586cdf3318ffcd1f37ffda5abdfcd9d5af260aba452330fca0fee"
        );
        assert_eq!(
            ingest.key(),
            format!("bin/lake-ingest/{}/lake-ingest", ingest.sha256)
        );
        assert_ne!(ingest.sha256, found["lake-compact"].sha256);
    }

    #[test]
    fn a_missing_binary_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lake-ingest"), b"x").unwrap();
        let err = locate(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("lake-compact: no lake-compact binary here"),
            "{err}"
        );
    }
}

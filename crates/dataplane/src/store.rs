//! Object stores the data plane reads and writes: a local directory or an S3
//! prefix, behind one small interface of whole-object operations.
//!
//! Owns: URL parsing (`s3://bucket/prefix`, `file:///path`, a plain path),
//! listing, fetching to a local file, uploading from one, atomic publish
//! (rename or server-side copy), deletes that tolerate "already gone", and
//! durability and free space on local disk (fsync of files and directories,
//! statvfs), and the data
//! plane's S3 client (built by `lake_contract::aws`).
//! Fenced writes (`Fence`): a check before every request that changes the
//! store, S3 objects written by multipart upload so a successor can abort a
//! stalled writer's upload, and that abort.
//! Must not: know file formats, plans, journals or leases (a fence is only
//! a check it is handed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use lake_contract::aws::{aws_config_for, s3_client_from, AwsTarget};

/// A check run right before every request of a fenced write that could
/// change the store (create, part, complete, delete): an error stops the
/// write there. The ingest consumer's fence is its shard lease.
pub type Fence = Arc<dyn Fn() -> Result<()> + Send + Sync>;

/// Parts of a fenced S3 upload (S3 needs at least 5 MiB per part but the
/// last; 64 MiB keeps a 128 MiB lake file to two parts).
const PART_BYTES: u64 = 64 << 20;

/// One object: key relative to the store's root, and its size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// A place holding objects (cheap to clone: a path, or an S3 client handle).
#[derive(Clone)]
pub enum Store {
    Local {
        root: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
}

/// Where a URL points, before connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    pub fn parse(url: &str) -> Result<Location> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("`{url}`: an S3 URL needs a bucket (s3://bucket/prefix)");
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                bail!("`{url}`: file URLs need an absolute path (file:///path)");
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if url.contains("://") {
            bail!(
                "`{url}`: unsupported URL scheme; use s3://bucket/prefix, file:///path or a path"
            );
        }
        Ok(Location::Local(PathBuf::from(url)))
    }

    /// Whether both name the same place (local paths resolved: `./lake`,
    /// `lake/` and a link to it are one).
    pub fn is_same(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Local(a), Location::Local(b)) => resolved(a) == resolved(b),
            _ => self == other,
        }
    }

    /// Whether one location lies inside the other (or they are the same):
    /// a job that reads one and writes the other would read its own output.
    pub fn overlaps(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Local(a), Location::Local(b)) => {
                let (a, b) = (resolved(a), resolved(b));
                a.starts_with(&b) || b.starts_with(&a)
            }
            (
                Location::S3 {
                    bucket: a,
                    prefix: pa,
                },
                Location::S3 {
                    bucket: b,
                    prefix: pb,
                },
            ) => {
                let inside = |outer: &str, inner: &str| {
                    outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
                };
                a == b && (inside(pa, pb) || inside(pb, pa))
            }
            _ => false,
        }
    }

    /// The URL of `key` under this location, as written in manifests.
    pub fn url_of(&self, key: &str) -> String {
        match self {
            Location::Local(root) => format!("file://{}", absolute(root).join(key).display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}/{key}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}/{key}"),
        }
    }
}

/// A local path with symbolic links and `..` resolved as far as it exists.
fn resolved(p: &Path) -> PathBuf {
    let abs = absolute(p);
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// AWS SDK configuration (the workspace's one loader, `lake_contract::aws`):
/// the standard credential chain, with an explicit endpoint (e.g. a local
/// emulator) and region when given.
pub async fn aws_config(endpoint_url: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    aws_config_for(&AwsTarget::endpoint(endpoint_url, region)).await
}

/// An S3 client; path-style addressing with a custom endpoint (emulators need it).
pub async fn s3_client(endpoint_url: Option<&str>, region: Option<&str>) -> aws_sdk_s3::Client {
    s3_client_from(&aws_config(endpoint_url, region).await)
}

/// A key names an object inside a store: relative, `/`-separated, with no
/// empty, `.` or `..` segment. Anything else (an absolute path, `/`, a
/// climb out of the root) is refused before it reaches a path join.
pub fn check_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.contains('\0')
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        bail!("`{key}` is not a key inside the store: it must be a relative name like `dir/file.ext`, without empty, `.` or `..` parts");
    }
    Ok(())
}

impl Store {
    /// The local path of `key` under `root` (callers checked the key).
    fn local(root: &Path, key: &str) -> PathBuf {
        root.join(key)
    }

    pub async fn open(location: &Location, client: Option<&aws_sdk_s3::Client>) -> Result<Store> {
        Ok(match location {
            Location::Local(root) => Store::Local {
                root: absolute(root),
            },
            Location::S3 { bucket, prefix } => Store::S3 {
                client: client
                    .ok_or_else(|| anyhow!("no S3 client configured"))?
                    .clone(),
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
        })
    }

    fn s3_key(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}/{key}")
        }
    }

    /// Every object under `sub` (recursively), keys relative to the root, sorted.
    pub async fn list(&self, sub: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        match self {
            Store::Local { root } => {
                let start = root.join(sub);
                if start.exists() {
                    walk_dir(root, &start, &mut out)?;
                }
            }
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let mut full = Self::s3_key(prefix, sub);
                if !full.is_empty() && !full.ends_with('/') {
                    full.push('/');
                }
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(&full)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.with_context(|| format!("listing s3://{bucket}/{full}"))?;
                    for o in page.contents() {
                        let key = o.key().unwrap_or_default();
                        let rel = if prefix.is_empty() {
                            key
                        } else {
                            key.strip_prefix(&format!("{prefix}/")).unwrap_or(key)
                        };
                        out.push(ObjectMeta {
                            key: rel.to_string(),
                            size: o.size().unwrap_or(0) as u64,
                        });
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// A local file with the object's bytes: the file itself on local disk,
    /// or a download into `spool`.
    pub async fn fetch(&self, key: &str, spool: &Path) -> Result<PathBuf> {
        check_key(key)?;
        match self {
            Store::Local { root } => Ok(Self::local(root, key)),
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = Self::s3_key(prefix, key);
                let resp = client
                    .get_object()
                    .bucket(bucket)
                    .key(&full)
                    .send()
                    .await
                    .with_context(|| format!("reading s3://{bucket}/{full}"))?;
                let path = spool.join(hex::encode(sha2_short(key)));
                let mut file = tokio::fs::File::create(&path).await?;
                let mut body = resp.body.into_async_read();
                tokio::io::copy(&mut body, &mut file).await?;
                Ok(path)
            }
        }
    }

    /// Small objects (journals, manifests), or None when absent.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        match self {
            Store::Local { root } => {
                let path = Self::local(root, key);
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = Self::s3_key(prefix, key);
                match client.get_object().bucket(bucket).key(&full).send().await {
                    Ok(resp) => Ok(Some(resp.body.collect().await?.into_bytes().to_vec())),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("reading s3://{bucket}/{full}")),
                }
            }
        }
    }

    /// Write a whole object atomically (temp + rename, or one PUT) and durably.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        check_key(key)?;
        match self {
            Store::Local { root } => {
                let path = Self::local(root, key);
                let tmp = path.with_extension("partial");
                let writing = || format!("writing {}", path.display());
                std::fs::create_dir_all(path.parent().expect("keys have a parent"))
                    .with_context(writing)?;
                std::fs::write(&tmp, &bytes).with_context(writing)?;
                sync_file(&tmp)?;
                std::fs::rename(&tmp, &path).with_context(writing)?;
                sync_dir(path.parent().expect("keys have a parent"))
            }
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = Self::s3_key(prefix, key);
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&full)
                    .body(ByteStream::from(bytes))
                    .send()
                    .await
                    .with_context(|| format!("writing s3://{bucket}/{full}"))?;
                Ok(())
            }
        }
    }

    /// Upload a finished local file to `key` (local: move it there, durably).
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        check_key(key)?;
        match self {
            Store::Local { root } => {
                let path = Self::local(root, key);
                let writing = || format!("writing {}", path.display());
                std::fs::create_dir_all(path.parent().expect("keys have a parent"))
                    .with_context(writing)?;
                sync_file(file)?;
                if std::fs::rename(file, &path).is_err() {
                    // Another filesystem: copy, then sync.
                    std::fs::copy(file, &path).with_context(writing)?;
                    sync_file(&path)?;
                }
                sync_dir(path.parent().expect("keys have a parent"))
            }
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = Self::s3_key(prefix, key);
                let body = ByteStream::from_path(file).await?;
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&full)
                    .body(body)
                    .send()
                    .await
                    .with_context(|| format!("uploading s3://{bucket}/{full}"))?;
                Ok(())
            }
        }
    }

    /// Upload a finished local file to `key`, checking `fence` before every
    /// request that could change the store. On S3 it is a multipart upload:
    /// the object appears only at CompleteMultipartUpload, and a successor
    /// that aborts the upload (`abort_uploads`) makes every later part or
    /// completion of it fail, however late the network delivers it. When
    /// the completion's outcome is unknown (a timeout, a dropped
    /// connection), the upload is aborted: success means it could not
    /// complete any more and the file is uploaded again; NoSuchUpload means
    /// it completed (the object is checked) or a successor aborted it (the
    /// fence says which). On disk: the fence, then `put_file`.
    pub async fn put_file_fenced(&self, key: &str, file: &Path, fence: &Fence) -> Result<()> {
        check_key(key)?;
        let Store::S3 {
            client,
            bucket,
            prefix,
        } = self
        else {
            fence()?;
            return self.put_file(key, file).await;
        };
        let full = Self::s3_key(prefix, key);
        let size = std::fs::metadata(file)
            .with_context(|| format!("reading {}", file.display()))?
            .len();
        for _attempt in 0..3 {
            fence()?;
            let upload = client
                .create_multipart_upload()
                .bucket(bucket)
                .key(&full)
                .send()
                .await
                .with_context(|| format!("starting the upload of s3://{bucket}/{full}"))?;
            let id = upload
                .upload_id()
                .ok_or_else(|| anyhow!("s3://{bucket}/{full}: no upload id"))?
                .to_string();
            let abort = || async {
                client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(&full)
                    .upload_id(&id)
                    .send()
                    .await
            };
            let mut parts = Vec::new();
            let mut offset = 0u64;
            let mut number = 1i32;
            while offset < size || number == 1 {
                let length = PART_BYTES.min(size - offset);
                if let Err(e) = fence() {
                    let _ = abort().await;
                    return Err(e);
                }
                let body = ByteStream::read_from()
                    .path(file)
                    .offset(offset)
                    .length(aws_sdk_s3::primitives::Length::Exact(length))
                    .build()
                    .await
                    .with_context(|| format!("reading {}", file.display()))?;
                let part = client
                    .upload_part()
                    .bucket(bucket)
                    .key(&full)
                    .upload_id(&id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await;
                let part = match part {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = abort().await;
                        return Err(e).with_context(|| {
                            format!("uploading part {number} of s3://{bucket}/{full}")
                        });
                    }
                };
                parts.push(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(String::from))
                        .build(),
                );
                offset += length;
                number += 1;
                if offset >= size {
                    break;
                }
            }
            if let Err(e) = fence() {
                let _ = abort().await;
                return Err(e);
            }
            let completed = client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(&full)
                .upload_id(&id)
                .multipart_upload(
                    aws_sdk_s3::types::CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await;
            let complete_error = match completed {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            // Did the completion happen? Abort settles it.
            match abort().await {
                // It had not, and now it cannot: upload the file again.
                Ok(_) => continue,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => {
                    // Completed, or aborted by a successor (then the fence
                    // says so and this writer stops).
                    fence()?;
                    if self.size(key).await? == Some(size) {
                        return Ok(());
                    }
                    return Err(complete_error)
                        .with_context(|| format!("completing the upload of s3://{bucket}/{full}"));
                }
                Err(_) => {
                    return Err(complete_error)
                        .with_context(|| format!("completing the upload of s3://{bucket}/{full}"))
                }
            }
        }
        bail!("s3://{bucket}/{full}: the upload's completion failed three times")
    }

    /// Abort every multipart upload in progress to any of `keys` (a
    /// predecessor's, stalled or partitioned): none of their parts or
    /// completions can land afterwards. One listing of the store's uploads
    /// (open windows', and orphans of late creates until the bucket's
    /// lifecycle rule aborts them after 7 days). Returns how many were
    /// aborted. A no-op on disk.
    pub async fn abort_uploads(&self, keys: &[String]) -> Result<usize> {
        for key in keys {
            check_key(key)?;
        }
        let Store::S3 {
            client,
            bucket,
            prefix,
        } = self
        else {
            return Ok(0);
        };
        let wanted: std::collections::HashSet<String> =
            keys.iter().map(|k| Self::s3_key(prefix, k)).collect();
        let mut root = prefix.clone();
        if !root.is_empty() {
            root.push('/');
        }
        let mut aborted = 0;
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = client
                .list_multipart_uploads()
                .bucket(bucket)
                .prefix(&root)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .with_context(|| format!("listing the uploads under s3://{bucket}/{root}"))?;
            for u in page.uploads() {
                let (Some(k), Some(id)) = (u.key(), u.upload_id()) else {
                    continue;
                };
                if !wanted.contains(k) {
                    continue;
                }
                match client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(k)
                    .upload_id(id)
                    .send()
                    .await
                {
                    Ok(_) => aborted += 1,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => {}
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("aborting an upload to s3://{bucket}/{k}"))
                    }
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(String::from);
            id_marker = page.next_upload_id_marker().map(String::from);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(aborted);
            }
        }
    }

    /// Size of `key`, or None when absent.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        check_key(key)?;
        match self {
            Store::Local { root } => match std::fs::metadata(Self::local(root, key)) {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = Self::s3_key(prefix, key);
                match client.head_object().bucket(bucket).key(&full).send().await {
                    Ok(h) => Ok(Some(h.content_length().unwrap_or(0) as u64)),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("checking s3://{bucket}/{full}")),
                }
            }
        }
    }

    /// Publish `from` as `to`: a rename on disk, a server-side copy on S3
    /// (then `from` is deleted). Either way `to` appears complete or not at all.
    pub async fn publish(&self, from: &str, to: &str) -> Result<()> {
        check_key(from)?;
        check_key(to)?;
        match self {
            Store::Local { root } => {
                let target = Self::local(root, to);
                let writing = || format!("writing {}", target.display());
                std::fs::create_dir_all(target.parent().expect("keys have a parent"))
                    .with_context(writing)?;
                std::fs::rename(Self::local(root, from), &target).with_context(writing)?;
                sync_dir(target.parent().expect("keys have a parent"))
            }
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let (src, dst) = (Self::s3_key(prefix, from), Self::s3_key(prefix, to));
                client
                    .copy_object()
                    .bucket(bucket)
                    .key(&dst)
                    .copy_source(format!("{bucket}/{}", encode_copy_source(&src)))
                    .send()
                    .await
                    .with_context(|| format!("publishing s3://{bucket}/{dst}"))?;
                self.delete(from).await
            }
        }
    }

    /// Delete `key`; an object already gone is not an error (re-runs).
    pub async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        match self {
            Store::Local { root } => {
                let path = Self::local(root, key);
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e).with_context(|| format!("deleting {}", path.display())),
                }
            }
            Store::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = Self::s3_key(prefix, key);
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(&full)
                    .send()
                    .await
                    .with_context(|| format!("deleting s3://{bucket}/{full}"))?;
                Ok(())
            }
        }
    }

    /// Where files bound for this store are written first: on local disk
    /// `root/sub` (same filesystem, so publishing is a rename), for S3 `spool`.
    pub fn scratch_dir(&self, sub: &str, spool: &Path) -> Result<PathBuf> {
        match self {
            Store::Local { root } => {
                let dir = root.join(sub);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(dir)
            }
            Store::S3 { .. } => Ok(spool.to_path_buf()),
        }
    }
}

fn sha2_short(key: &str) -> [u8; 16] {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    d[..16].try_into().expect("16 bytes")
}

/// CopySource is `bucket/key` with the key URL-encoded (keys may hold `=`, spaces, …).
fn encode_copy_source(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn walk_dir(root: &Path, dir: &Path, out: &mut Vec<ObjectMeta>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk_dir(root, &entry.path(), out)?;
        } else if ty.is_file() {
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("walked from root")
                .to_string_lossy()
                .replace('\\', "/");
            out.push(ObjectMeta {
                key: rel,
                size: entry.metadata()?.len(),
            });
        }
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on the filesystem of `path`
/// (statvfs: available blocks × fragment size).
pub fn free_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{}: a path with a NUL byte", path.display()))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("checking the free space of {}", path.display()));
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

pub fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)?
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

pub fn sync_dir(path: &Path) -> Result<()> {
    std::fs::File::open(path)?
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Location::parse("s3://b/lake/orders/").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "lake/orders".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::Local("/tmp/x".into())
        );
        assert_eq!(
            Location::parse("rel/dir").unwrap(),
            Location::Local("rel/dir".into())
        );
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("file://rel").is_err());
        assert!(Location::parse("gs://b/x").is_err());
        let loc = Location::S3 {
            bucket: "b".into(),
            prefix: "p".into(),
        };
        assert_eq!(
            loc.url_of("ordertime=1/a.csv"),
            "s3://b/p/ordertime=1/a.csv"
        );
    }

    #[test]
    fn keys_stay_inside_the_store() {
        for ok in ["a", "_compaction/manifest.gz", "ordertime=1/x.csv"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "/tmp/x.gz",
            "a//b",
            "../x",
            "a/../../x",
            "a/",
            "./a",
        ] {
            let e = check_key(bad).unwrap_err().to_string();
            assert!(e.contains("is not a key inside the store"), "{bad}: {e}");
        }
    }

    #[test]
    fn copy_source_encoding_keeps_slashes() {
        assert_eq!(
            encode_copy_source("p/ordertime=2019 x.csv"),
            "p/ordertime%3D2019%20x.csv"
        );
    }

    #[test]
    fn locations_overlap_when_one_holds_the_other() {
        let l = |u: &str| Location::parse(u).unwrap();
        assert!(l("s3://b/raw").overlaps(&l("s3://b/raw/lake")));
        assert!(l("s3://b/raw/lake").overlaps(&l("s3://b/raw")));
        assert!(l("s3://b").overlaps(&l("s3://b/anything")));
        assert!(l("s3://b/raw").overlaps(&l("s3://b/raw/")));
        assert!(!l("s3://b/raw").overlaps(&l("s3://b/raw2")));
        assert!(!l("s3://b/raw").overlaps(&l("s3://c/raw")));
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw2");
        std::fs::create_dir(&raw).unwrap();
        let (a, b) = (
            raw.display().to_string(),
            raw.join("../raw2/lake").display().to_string(),
        );
        assert!(l(&a).overlaps(&l(&b)), "{a} {b}");
        assert!(!l(&a).overlaps(&l(&dir.path().join("raw").display().to_string())));
        assert!(!l(&a).overlaps(&l("s3://b/raw2")));
    }
}

//! Proxies in front of the moto server that inject what a real network or
//! AWS can do (outages, a closed shard's end, held, slow or failed
//! requests). They forward every request to moto; none answers an AWS call
//! of its own making.

use std::net::TcpListener;

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

/// What the fault proxy does to a request a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Keep the request (it has not reached moto) until `release`: a
    /// paused process's or a partitioned network's in-flight request.
    Hold,
    /// Forward it after this long.
    Delay(std::time::Duration),
    /// Close the connection without an answer (it never reached moto).
    Drop,
    /// Answer with this HTTP status and the service's error body (it never
    /// reached moto).
    Fail(u16),
    /// Forward it, then close the connection without the reply: it took
    /// effect, and the client cannot know (its SDK retries).
    LoseReply,
    /// Forward it as usual, and keep a copy that `release` delivers to moto
    /// once more: a stale duplicate the network hands over late.
    Replay,
}

/// A request seen by the fault proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// The AWS operation: `UpdateItem`, `GetRecords`, `UploadPart`, …
    pub operation: String,
    /// S3: the object path (`/bucket/key`); JSON services: the request body.
    pub target: String,
    /// Which rule (if any) it met.
    pub rule: Option<usize>,
    /// The HTTP status moto answered (None: not forwarded, or no answer yet).
    pub status: Option<u16>,
}

struct Rule {
    id: usize,
    /// Copies of requests kept for a late delivery (`Fault::Replay`).
    replays: Vec<Vec<u8>>,
    operation: String,
    key: Option<String>,
    fault: Fault,
    /// Requests it still applies to (None: every one until removed).
    remaining: Option<usize>,
    released: bool,
    held_now: usize,
}

#[derive(Default)]
struct Faults {
    rules: Vec<Rule>,
    calls: Vec<Call>,
    next_id: usize,
}

/// A proxy in front of the moto server that holds, delays, drops or fails
/// chosen requests — by AWS operation and a substring of their target (an
/// S3 key, or anything in a JSON request such as a shard id) — and
/// forwards every other request unchanged. The review's method as a tool:
/// a paused worker's in-flight upload, a renewal that never arrives, a
/// flaky service, produced on demand. It answers no AWS call with data of
/// its own.
pub struct FaultProxy {
    pub endpoint: String,
    upstream: String,
    state: std::sync::Arc<(std::sync::Mutex<Faults>, std::sync::Condvar)>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let state = std::sync::Arc::new((
            std::sync::Mutex::new(Faults::default()),
            std::sync::Condvar::new(),
        ));
        let (s, up) = (state.clone(), upstream.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, state) = (up.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = serve_faults(client, &upstream, &state);
                });
            }
        });
        FaultProxy {
            endpoint,
            upstream,
            state,
        }
    }

    /// Apply `fault` to requests of `operation` whose target contains
    /// `key` (any target when None), `times` times (every time when None).
    /// Returns the rule's id.
    pub fn add(
        &self,
        operation: &str,
        key: Option<&str>,
        fault: Fault,
        times: Option<usize>,
    ) -> usize {
        let (lock, _) = &*self.state;
        let mut f = lock.lock().expect("proxy lock");
        f.next_id += 1;
        let id = f.next_id;
        f.rules.push(Rule {
            id,
            replays: Vec::new(),
            operation: operation.to_string(),
            key: key.map(String::from),
            fault,
            remaining: times,
            released: false,
            held_now: 0,
        });
        id
    }

    /// Let the requests rule `id` holds go on to moto (and deliver the
    /// copies it kept again), and stop applying it.
    pub fn release(&self, id: usize) {
        let (lock, cond) = &*self.state;
        let replays = {
            let mut f = lock.lock().expect("proxy lock");
            let mut replays = Vec::new();
            for r in f.rules.iter_mut().filter(|r| r.id == id) {
                r.released = true;
                r.remaining = Some(0);
                replays.append(&mut r.replays);
            }
            cond.notify_all();
            replays
        };
        for request in replays {
            use std::io::{Read, Write};
            if let Ok(mut server) = std::net::TcpStream::connect(&self.upstream) {
                let _ = server.write_all(&request);
                let _ = server.read_to_end(&mut Vec::new());
            }
        }
    }

    /// `release` rule `id`, then wait (up to `limit`) until every request it
    /// held has been answered by moto: the released requests land before
    /// anything released after them.
    pub fn release_and_settle(&self, id: usize, limit: std::time::Duration) {
        self.release(id);
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            let settled = {
                let (lock, _) = &*self.state;
                let f = lock.lock().expect("proxy lock");
                f.calls
                    .iter()
                    .filter(|c| c.rule == Some(id))
                    .all(|c| c.status.is_some())
            };
            if settled {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stop applying every rule and let every held request go on.
    pub fn release_all(&self) {
        let ids: Vec<usize> = {
            let (lock, _) = &*self.state;
            lock.lock()
                .expect("proxy lock")
                .rules
                .iter()
                .map(|r| r.id)
                .collect()
        };
        for id in ids {
            self.release(id);
        }
    }

    /// Requests rule `id` holds right now.
    pub fn held(&self, id: usize) -> usize {
        let (lock, _) = &*self.state;
        let f = lock.lock().expect("proxy lock");
        f.rules
            .iter()
            .filter(|r| r.id == id)
            .map(|r| r.held_now)
            .sum()
    }

    /// Wait until rule `id` holds at least `n` requests; false after `limit`.
    pub fn wait_held(&self, id: usize, n: usize, limit: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if self.held(id) >= n {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// Every request seen so far, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        let (lock, _) = &*self.state;
        lock.lock().expect("proxy lock").calls.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// The AWS operation of a request, from its head (JSON protocols name it
/// in `X-Amz-Target`; S3's REST calls by method, query and headers).
fn operation_of(head: &str) -> (String, String) {
    let first = head.lines().next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let uri = parts.next().unwrap_or_default().to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    if let Some(target) = header("x-amz-target") {
        let op = target.rsplit('.').next().unwrap_or(&target).to_string();
        return (op, String::new());
    }
    let (path, query) = uri.split_once('?').unwrap_or((&uri, ""));
    let has = |q: &str| {
        query
            .split('&')
            .any(|p| p == q || p.starts_with(&format!("{q}=")))
    };
    let op = match method.as_str() {
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "POST" if has("delete") => "DeleteObjects",
        "PUT" if has("partNumber") => "UploadPart",
        "PUT" if header("x-amz-copy-source").is_some() => "CopyObject",
        "PUT" => "PutObject",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" => "DeleteObject",
        "GET" if has("uploads") => "ListMultipartUploads",
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" => "GetObject",
        "HEAD" => "HeadObject",
        _ => "Unknown",
    };
    (op.to_string(), percent_decode(path))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type FaultState = std::sync::Arc<(std::sync::Mutex<Faults>, std::sync::Condvar)>;

/// One client connection: each request read whole, matched against the
/// rules, then held, delayed, dropped, failed or forwarded on a connection
/// of its own.
fn serve_faults(
    mut client: std::net::TcpStream,
    upstream: &str,
    state: &FaultState,
) -> std::io::Result<()> {
    use std::io::Write;
    while let Some((head, body)) = read_request(&mut client)? {
        let head_text = String::from_utf8_lossy(&head).into_owned();
        let (operation, path) = operation_of(&head_text);
        let target = if path.is_empty() {
            String::from_utf8_lossy(&body).into_owned()
        } else {
            path
        };
        let json = head_text.to_ascii_lowercase().contains("x-amz-target:");
        let (lock, cond) = &**state;
        let fault = {
            let mut f = lock.lock().expect("proxy lock");
            let matched = f.rules.iter_mut().find(|r| {
                r.operation == operation
                    && r.remaining != Some(0)
                    && r.key.as_deref().is_none_or(|k| target.contains(k))
            });
            let hit = matched.map(|r| {
                if let Some(n) = r.remaining.as_mut() {
                    *n -= 1;
                }
                if r.fault == Fault::Hold {
                    r.held_now += 1;
                }
                (r.id, r.fault)
            });
            f.calls.push(Call {
                operation: operation.clone(),
                target: target.clone(),
                rule: hit.map(|(id, _)| id),
                status: None,
            });
            (hit, f.calls.len() - 1)
        };
        let (fault, call) = fault;
        match fault {
            Some((id, Fault::Hold)) => {
                let mut f = lock.lock().expect("proxy lock");
                while !f.rules.iter().any(|r| r.id == id && r.released) {
                    f = cond.wait(f).expect("proxy lock");
                }
                for r in f.rules.iter_mut().filter(|r| r.id == id) {
                    r.held_now -= 1;
                }
            }
            Some((_, Fault::Delay(d))) => std::thread::sleep(d),
            Some((_, Fault::Drop)) => {
                let _ = client.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
            Some((_, Fault::Fail(status))) => {
                let body = if json {
                    r#"{"__type":"InternalFailure","message":"injected by the test's fault proxy"}"#
                        .to_string()
                } else {
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>injected by the test's fault proxy</Message></Error>".to_string()
                };
                let ctype = if json {
                    "application/x-amz-json-1.1"
                } else {
                    "application/xml"
                };
                let reply = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                client.write_all(reply.as_bytes())?;
                continue;
            }
            // Forwarded below: the reply withheld, or a copy kept.
            Some((_, Fault::LoseReply)) | Some((_, Fault::Replay)) | None => {}
        }
        let request = [close_after(&head), body.clone()].concat();
        if let Some((id, Fault::Replay)) = fault {
            let mut f = lock.lock().expect("proxy lock");
            if let Some(r) = f.rules.iter_mut().find(|r| r.id == id) {
                r.replays.push(request.clone());
            }
        }
        let mut server = std::net::TcpStream::connect(upstream)?;
        server.write_all(&request)?;
        // A HEAD reply says the object's length and carries no body: it
        // passes through as it is.
        if head_text.starts_with("HEAD ") {
            let mut reply = Vec::new();
            std::io::Read::read_to_end(&mut server, &mut reply)?;
            client.write_all(&reply)?;
            continue;
        }
        let Some((reply_head, reply)) = read_http(&mut server, true)? else {
            return Ok(());
        };
        let reply_head = String::from_utf8_lossy(&reply_head);
        let status = reply_head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok());
        lock.lock().expect("proxy lock").calls[call].status = status;
        if let Some((_, Fault::LoseReply)) = fault {
            let _ = client.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        let mut out = String::new();
        for line in reply_head.split("\r\n").filter(|l| !l.is_empty()) {
            let lower = line.to_ascii_lowercase();
            if !lower.starts_with("content-length:")
                && !lower.starts_with("connection:")
                && !lower.starts_with("transfer-encoding:")
            {
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

/// A request head with `Connection: close` (the reply then ends the
/// upstream connection) and without `Expect` (the body is already read).
fn close_after(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("expect:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// One client request: (head, body), the body read by its length or its
/// chunks (then re-framed by length); `Expect: 100-continue` answered.
fn read_request(stream: &mut std::net::TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    use std::io::{Read, Write};
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
    let mut rest = seen[end..].to_vec();
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if text.contains("expect: 100-continue") {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let header = |name: &str| {
        text.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        // Decode the chunks, then send the body on by its length.
        let mut body = Vec::new();
        loop {
            while !rest.windows(2).any(|w| w == b"\r\n") {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(None);
                }
                rest.extend_from_slice(&buf[..n]);
            }
            let at = rest.windows(2).position(|w| w == b"\r\n").expect("a line");
            let size_line = String::from_utf8_lossy(&rest[..at]).to_string();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
                .unwrap_or(0);
            rest.drain(..at + 2);
            while rest.len() < size + 2 {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(None);
                }
                rest.extend_from_slice(&buf[..n]);
            }
            body.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
        let mut new_head = String::new();
        for line in String::from_utf8_lossy(&head)
            .split("\r\n")
            .filter(|l| !l.is_empty())
        {
            if !line.to_ascii_lowercase().starts_with("transfer-encoding:") {
                new_head.push_str(line);
                new_head.push_str("\r\n");
            }
        }
        new_head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        return Ok(Some((new_head.into_bytes(), body)));
    }
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while rest.len() < length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            // The client went away mid-body (killed): the request never
            // arrived whole, and S3 would refuse it (IncompleteBody); it
            // must not reach moto as a short object.
            return Ok(None);
        }
        rest.extend_from_slice(&buf[..n]);
    }
    rest.truncate(length);
    Ok(Some((head, rest)))
}

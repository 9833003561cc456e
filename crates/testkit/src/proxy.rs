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

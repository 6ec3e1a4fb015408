//! A raw HTTP/1.1 client, so that every byte of a request is the test's: chunked bodies
//! without `Content-Length`, invalid UTF-8, paths no URL library would send. One request per
//! connection; a reply must come whole within [`REPLY_WITHIN`], or the case fails as a hang or
//! a dropped connection.

use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply slower than this counts as a hang.
pub const REPLY_WITHIN: Duration = Duration::from_secs(20);

pub enum Body {
    Empty,
    /// Sent with `Content-Length`.
    Sized(Vec<u8>),
    /// Sent with `Transfer-Encoding: chunked`, in 64 KiB chunks, with no `Content-Length`.
    Chunked(Vec<u8>),
}

pub struct Request {
    pub method: &'static str,
    pub target: String,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub body: Body,
}

impl Request {
    pub fn new(method: &'static str, target: impl Into<String>) -> Request {
        Request {
            method,
            target: target.into(),
            headers: vec![],
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Body::Sized(body.into());
        self
    }

    pub fn chunked(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Body::Chunked(body.into());
        self
    }

    pub fn json_body(self, body: impl Into<Vec<u8>>) -> Request {
        self.header("content-type", "application/json").body(body)
    }

    pub fn bytes(&self, host: &str) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n",
            self.method, self.target
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match &self.body {
            Body::Empty => out.extend_from_slice(b"\r\n"),
            Body::Sized(body) => {
                out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
            }
            Body::Chunked(body) => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
                for chunk in body.chunks(64 * 1024) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        out
    }

    pub fn describe(&self) -> String {
        let target: String = self.target.chars().take(120).collect();
        let body = match &self.body {
            Body::Empty => String::new(),
            Body::Sized(b) | Body::Chunked(b) => {
                let shown = String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned();
                format!(
                    " body ({} bytes{}): {shown:?}",
                    b.len(),
                    if matches!(self.body, Body::Chunked(_)) {
                        ", chunked"
                    } else {
                        ""
                    }
                )
            }
        };
        format!("{} {target}{body}", self.method)
    }
}

/// `POST /v1/tasks` with `Content-Type: application/json`.
pub fn post(body: impl Into<Vec<u8>>) -> Request {
    Request::new("POST", "/v1/tasks").json_body(body)
}

pub fn get(target: impl Into<String>) -> Request {
    Request::new("GET", target)
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
        format!(
            "{} (content-type {:?}) {body}",
            self.status,
            self.header("content-type")
        )
    }
}
/// Sends `request` on a fresh connection and reads one reply. Err when the connection drops
/// or stalls before a whole reply arrives. The request is written while the reply is read,
/// so a server that answers before reading an oversized body is still heard.
pub async fn send(host: &str, request: &Request) -> Result<Reply, String> {
    let started = Instant::now();
    let stream = TcpStream::connect(host)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let bytes = request.bytes(host);
    let writing = tokio::spawn(async move {
        let written = writer.write_all(&bytes).await;
        (written, writer)
    });
    let mut raw = vec![];
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = tokio::time::timeout(REPLY_WITHIN, async {
        loop {
            if let Some(reply) = parse_reply(&raw, false) {
                return Ok(reply);
            }
            match reader.read(&mut buf).await {
                Ok(0) => {
                    return parse_reply(&raw, true)
                        .ok_or_else(|| "connection closed before a whole reply".to_owned())
                }
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) => {
                    return parse_reply(&raw, true)
                        .ok_or_else(|| format!("connection dropped: {e}"))
                }
            }
        }
    })
    .await;
    writing.abort();
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
    match outcome {
        Ok(Ok((status, headers, body))) => Ok(Reply {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        }),
        Ok(Err(problem)) => Err(format!("{problem}; got {} bytes: {shown:?}", raw.len())),
        Err(_) => Err(format!(
            "no whole reply within {REPLY_WITHIN:?}; got {} bytes: {shown:?}",
            raw.len()
        )),
    }
}

pub type Parsed = (u16, Vec<(String, String)>, Vec<u8>);

/// One whole response in `raw`, if there is one yet; `eof` says no more bytes will come.
pub fn parse_reply(raw: &[u8], eof: bool) -> Option<Parsed> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &raw[end + 4..];
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().ok()?;
        rest.get(..length)?.to_vec()
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some((status, headers, body))
}

pub fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = vec![];
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

pub fn post_chunked(body: impl Into<Vec<u8>>) -> Request {
    Request::new("POST", "/v1/tasks")
        .header("content-type", "application/json")
        .chunked(body)
}

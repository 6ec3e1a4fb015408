//! The load generator's HTTP client: one keep-alive HTTP/1.1 connection per load client,
//! driven by hyper's connection API directly. The measured server and the load generator
//! share the same two cores, so every microsecond the client spends is one the server does
//! not get; reqwest's pool, per-request URL parsing and middleware cost several of them per
//! request (docs/benchmarks-history.md, "Lean load generator"). This does what `wrk` does: a
//! ready request, a write, a read of the whole answer, and nothing else.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// Where requests go: `host:port` of an `http://` base URL.
#[derive(Clone, Debug)]
pub struct Endpoint {
    authority: String,
}

impl Endpoint {
    /// `base` is `http://host:port` (a trailing slash is ignored; a path is refused: requests
    /// carry their own paths).
    pub fn parse(base: &str) -> Result<Endpoint, String> {
        let authority = base
            .strip_prefix("http://")
            .ok_or_else(|| format!("{base}: the load generator speaks plain http:// only"))?
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(format!("{base}: expected http://host:port"));
        }
        Ok(Endpoint {
            authority: authority.to_owned(),
        })
    }

    /// A request for `path` with `body` (JSON when not empty).
    pub fn request(&self, method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        if !body.is_empty() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        // The builder fails only on an invalid method, URI or header value; the paths are
        // ours (a task path or a fixed one) and the host came from a parsed base URL.
        request
            .body(Full::new(body))
            .unwrap_or_else(|e| panic!("a load request for {path} is valid: {e}"))
    }
}

/// One open connection.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(endpoint: &Endpoint) -> Result<Conn, String> {
        let stream = tokio::net::TcpStream::connect(&endpoint.authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("connect: {e}"))?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // Drives the connection; ends when `send` is dropped or the server closes it.
        tokio::spawn(connection);
        Ok(Conn { send })
    }

    /// Sends `request`, reads the whole answer, and fails unless its status is `expect`.
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        expect: u16,
    ) -> Result<Bytes, String> {
        self.send
            .ready()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let response = self
            .send
            .send_request(request)
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        if status != expect {
            return Err(format!(
                "status {status} (wanted {expect}): {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
        Ok(body)
    }
}

/// Sends `request` over `conn`, opening it first when there is none; a connection that failed
/// is dropped, so the next request opens a fresh one.
pub async fn send_on(
    conn: Option<Conn>,
    endpoint: &Endpoint,
    request: Request<Full<Bytes>>,
    expect: u16,
) -> (Option<Conn>, Result<Bytes, String>) {
    let mut conn = match conn {
        Some(conn) => conn,
        None => match Conn::open(endpoint).await {
            Ok(conn) => conn,
            Err(error) => return (None, Err(error)),
        },
    };
    match conn.send(request, expect).await {
        Ok(body) => (Some(conn), Ok(body)),
        Err(error) if error.starts_with("status") => (Some(conn), Err(error)),
        Err(error) => (None, Err(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_plain_http_host_and_port() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080").unwrap().authority,
            "127.0.0.1:8080"
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/").unwrap().authority,
            "127.0.0.1:8080"
        );
        assert!(Endpoint::parse("https://example.com").is_err());
        assert!(Endpoint::parse("http://host:1/v1").is_err());
        assert!(Endpoint::parse("http://").is_err());
    }
}

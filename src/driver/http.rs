//! HTTP operations ([`crate::dialect::Via::Http`]; push's `POST /api/push`).
//!
//! The client is hyper-util's pooled ("legacy") client over plain HTTP/1.1 with keep-alive:
//! one process-wide pool, so the connections to the target are reused across requests and
//! clients instead of paying a TCP handshake per push. hyper is already in the build (the
//! reference server is on it), so this adds only the client half; reqwest would bring its
//! own stack (and TLS, which a loopback target does not need) for the same hyper
//! underneath. Each request runs in its own task: a client keeps reading its socket while its
//! push is in flight, and its latency counts from the intended send time like any other send.

use std::sync::OnceLock;
use tokio::time::Instant;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The answer to one HTTP operation, handed back to the client that sent it.
pub struct HttpDone {
    /// The operation's request name (what the judge pairs the response with).
    pub request: &'static str,
    /// When it was sent (run time, µs): which of the client's requests it answers.
    pub sent: crate::oracle::Micros,
    /// The response status, or why there was none.
    pub status: Result<u16, String>,
    /// The response body (empty without a response; cut at [`MAX_BODY`]).
    pub body: Bytes,
    /// When the response (head and body) was read.
    pub at: Instant,
}

fn client() -> &'static Client<HttpConnector, Full<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Full<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            // A burst of pushes opens as many connections as it needs; all of them stay.
            .pool_max_idle_per_host(usize::MAX)
            .build(connector)
    })
}

/// The URL of `path` on the target (its scheme and authority; the target's own path, a
/// Socket.IO namespace, is not the HTTP API's).
pub fn url(target: &str, path: &str) -> String {
    let (scheme, rest) = target.split_once("://").unwrap_or(("http", target));
    let scheme = match scheme {
        "ws" => "http",
        "wss" => "https",
        s => s,
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}{path}")
}

/// `?name=value&...` of a GET's fields (strings as they are, anything else as JSON text),
/// percent-encoded; empty without fields.
pub fn query(fields: &serde_json::Map<String, serde_json::Value>) -> String {
    fn encode(text: &str, out: &mut String) {
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    let mut out = String::new();
    for (name, value) in fields {
        out.push(if out.is_empty() { '?' } else { '&' });
        encode(name, &mut out);
        out.push('=');
        match value {
            serde_json::Value::String(s) => encode(s, &mut out),
            other => encode(&other.to_string(), &mut out),
        }
    }
    out
}

/// The most of a response body that is read (a push reply is a few dozen bytes; a hostile
/// target must not make the driver buffer without end).
pub const MAX_BODY: usize = 64 << 10;

/// Sends one request of `request` (sent at `sent`) and hands back its answer.
pub async fn exchange(
    method: &'static str,
    url: &str,
    body: Vec<u8>,
    request: &'static str,
    sent: crate::oracle::Micros,
) -> HttpDone {
    let (status, body) = match send(method, url, body).await {
        Ok((status, body)) => (Ok(status), body),
        Err(e) => (Err(e), Bytes::new()),
    };
    HttpDone {
        request,
        sent,
        status,
        body,
        at: Instant::now(),
    }
}

/// Sends one request with a JSON body and reads the whole response (its body up to
/// [`MAX_BODY`]).
pub async fn send(method: &'static str, url: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = client().request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    // Read the body to its end: only then does the connection go back to the pool.
    let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the response body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_keep_scheme_and_authority() {
        assert_eq!(
            super::url("http://127.0.0.1:3000", "/api/push"),
            "http://127.0.0.1:3000/api/push"
        );
        assert_eq!(
            super::url("http://h:1/chat?x=1", "/api/push"),
            "http://h:1/api/push"
        );
        assert_eq!(super::url("ws://h:1/", "/a"), "http://h:1/a");
    }

    #[test]
    fn get_fields_become_a_percent_encoded_query() {
        let fields = serde_json::json!({"sid": "t 1/é", "n": 7});
        assert_eq!(
            super::query(fields.as_object().unwrap()),
            "?n=7&sid=t%201%2F%C3%A9"
        );
        assert_eq!(super::query(&serde_json::Map::new()), "");
    }
}

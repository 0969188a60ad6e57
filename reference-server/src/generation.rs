//! Serving one Engine.IO generation only, as the servers roomrig meets do: a socket.io 2 server
//! answers every client with Engine.IO 3 whatever `EIO=` it asked for (so an EIO 4 client gets
//! an OPEN without `maxPayload` and an unprompted `40`), and a socket.io 3/4 server without
//! `allowEIO3` refuses `EIO=3` with HTTP 400. socketioxide speaks both, so a request is rewritten
//! or refused before it reaches it.

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The middleware: `only` is 3 or 4.
pub async fn one_generation(only: u8, mut req: Request, next: Next) -> Response {
    let asked = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("EIO=")))
        .map(str::to_owned);
    match (only, asked.as_deref()) {
        (4, Some("3")) => {
            // Node's engine.io 4+ answer, word for word.
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                r#"{"code":5,"message":"Unsupported protocol version"}"#,
            )
                .into_response();
        }
        (3, Some(v)) if v != "3" => {
            if let Some(uri) = with_eio3(req.uri()) {
                *req.uri_mut() = uri;
            }
        }
        _ => {}
    }
    next.run(req).await
}

/// The same URI asking for `EIO=3`.
fn with_eio3(uri: &Uri) -> Option<Uri> {
    let query: Vec<String> = uri
        .query()?
        .split('&')
        .map(|kv| {
            if kv.starts_with("EIO=") {
                "EIO=3".to_owned()
            } else {
                kv.to_owned()
            }
        })
        .collect();
    format!("{}?{}", uri.path(), query.join("&")).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_version() {
        let uri: Uri = "/socket.io/?EIO=4&transport=websocket&token=EIO%3D4"
            .parse()
            .unwrap();
        assert_eq!(
            with_eio3(&uri).unwrap().to_string(),
            "/socket.io/?EIO=3&transport=websocket&token=EIO%3D4"
        );
    }
}

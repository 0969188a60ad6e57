//! Heartbeat faults that advertise another pingTimeout than the one enforced. engineioxide
//! advertises what it enforces, so such a server runs socketioxide on an inner loopback port and
//! this relay in front of it rewrites the websocket OPEN frame's `pingTimeout` (long-polling
//! responses pass unchanged):
//!
//! - `never-timeout` enforces a day and advertises the configured value: it looks healthy until
//!   a client's heartbeat stops;
//! - `early-timeout` enforces the configured value and advertises four times as much: it closes
//!   a silent client before the window it announced.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Accepts on `public` and relays every connection to `inner`, rewriting `from` to `to` in the
/// first websocket frame of each upgraded connection.
pub async fn relay(public: TcpListener, inner: SocketAddr, from: u64, to: u64) {
    loop {
        let Ok((client, _)) = public.accept().await else {
            continue;
        };
        client.set_nodelay(true).ok();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(inner).await else {
                return;
            };
            server.set_nodelay(true).ok();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let up = async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
                let _ = sw.shutdown().await;
            };
            let down = async move {
                let _ = rewrite_open(&mut sr, &mut cw, from, to).await;
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                let _ = cw.shutdown().await;
            };
            tokio::join!(up, down);
        });
    }
}

/// Copies the HTTP response head; after a `101`, rewrites the first websocket frame.
async fn rewrite_open<R, W>(r: &mut R, w: &mut W, from: u64, to: u64) -> std::io::Result<()>
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 16 * 1024 || r.read_buf(&mut buf).await? == 0 {
            return w.write_all(&buf).await;
        }
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        // Long-polling or an error: not touched.
        return w.write_all(&buf).await;
    }
    // The first frame: unmasked text, 7- or 16-bit length.
    let frame = loop {
        if let Some(f) = frame_at(&buf[head_end..]) {
            break f;
        }
        if buf.len() > 64 * 1024 || r.read_buf(&mut buf).await? == 0 {
            return w.write_all(&buf).await;
        }
    };
    let (hdr, len) = frame;
    let payload = String::from_utf8_lossy(&buf[head_end + hdr..head_end + hdr + len]);
    let text = payload
        .strip_prefix('0')
        .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .filter(|open| open["pingTimeout"] == from)
        .map(|mut open| {
            open["pingTimeout"] = to.into();
            format!("0{open}")
        })
        .unwrap_or_else(|| payload.into_owned());
    let mut out = buf[..head_end].to_vec();
    out.push(buf[head_end]);
    if text.len() < 126 {
        out.push(text.len() as u8);
    } else {
        out.push(126);
        out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&buf[head_end + hdr + len..]);
    w.write_all(&out).await
}

/// `(header length, payload length)` of a complete unmasked frame at the start of `b`.
fn frame_at(b: &[u8]) -> Option<(usize, usize)> {
    if b.len() < 2 || b[1] & 0x80 != 0 {
        return None;
    }
    let (hdr, len) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
        126 | 127 => return None,
        n => (2, n as usize),
    };
    (b.len() >= hdr + len).then_some((hdr, len))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewrites_the_open_frame_only() {
        let open = br#"0{"sid":"x","pingInterval":500,"pingTimeout":86400000}"#;
        let mut input = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        input.extend_from_slice(&[0x81, open.len() as u8]);
        input.extend_from_slice(open);
        input.extend_from_slice(&[0x81, 2, b'4', b'0']);
        let mut out = Vec::new();
        rewrite_open(&mut &input[..], &mut out, 86_400_000, 500)
            .await
            .unwrap();
        let want = br#"0{"pingInterval":500,"pingTimeout":500,"sid":"x"}"#;
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(&out[..head.len()], head);
        assert_eq!(out[head.len() + 1] as usize, want.len());
        assert_eq!(&out[head.len() + 2..head.len() + 2 + want.len()], want);
        assert_eq!(&out[head.len() + 2 + want.len()..], &[0x81, 2, b'4', b'0']);
    }

    #[tokio::test]
    async fn only_the_exact_value_is_rewritten() {
        let open = br#"0{"sid":"x","pingInterval":500,"pingTimeout":5000}"#;
        let mut input = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        input.extend_from_slice(&[0x81, open.len() as u8]);
        input.extend_from_slice(open);
        let mut out = Vec::new();
        rewrite_open(&mut &input[..], &mut out, 500, 2000)
            .await
            .unwrap();
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn polling_passes_unchanged() {
        let input = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc".to_vec();
        let mut out = Vec::new();
        rewrite_open(&mut &input[..], &mut out, 1, 2).await.unwrap();
        assert_eq!(out, input);
    }
}

//! The client side of RFC 6455 over one TCP stream, as small as the driver needs: handshake,
//! text/binary/control frames, fragmentation, masking, close.
//!
//! The driver's hot path reads one text frame per wake-up on tens of thousands of sockets.
//! tokio-tungstenite costs there: a waker proxy registered per poll, a 4 KiB buffer
//! re-allocated per frame (a frame's `Bytes` keeps the previous one alive), a `Message` per
//! frame. Here a connection owns one read buffer, reused; a frame is parsed in place and a
//! text frame's payload copied once, into the `String` the caller keeps.

use std::future::poll_fn;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read per `recv` (and the buffer an idle connection keeps).
pub const READ_CHUNK: usize = 4096;
/// Largest message accepted (tungstenite's default).
pub const MAX_MESSAGE: usize = 64 << 20;
/// Largest frame accepted (tungstenite's default).
pub const MAX_FRAME: usize = 16 << 20;
/// Longest HTTP response head accepted in the handshake.
const MAX_HEAD: usize = 16 << 10;

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    Text(String),
    /// A binary message (the driver only reports its size).
    Binary(usize),
    /// A close frame, with its status code if it had one (the reply is already queued).
    Close(Option<u16>),
    /// A ping (the pong is already queued) or a pong.
    Control,
}

/// Why a read or write failed.
#[derive(Debug)]
pub enum WsError {
    /// The TCP connection ended without a close frame.
    Eof,
    Io(io::Error),
    /// The peer broke the protocol; the connection is unusable.
    Protocol(String),
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsError::Eof => f.write_str("connection closed without a close frame"),
            WsError::Io(e) => write!(f, "{e}"),
            WsError::Protocol(p) => write!(f, "websocket protocol error: {p}"),
        }
    }
}

impl From<io::Error> for WsError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            WsError::Eof
        } else {
            WsError::Io(e)
        }
    }
}

/// A client websocket.
pub struct WsStream {
    tcp: TcpStream,
    /// Received bytes: `rbuf[rpos..rlen]` is not consumed yet.
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    /// Frames waiting to be written: `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// A fragmented message being assembled: (text?, payload).
    partial: Option<(bool, Vec<u8>)>,
    /// Masking keys (xorshift; RFC 6455 wants them unpredictable to intermediaries only).
    mask_state: u64,
    close_received: bool,
    close_sent: bool,
    /// The stream ended (EOF, error, close handshake done).
    done: bool,
}

/// A parsed frame header.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Range<usize>,
}

/// Parses one frame at the start of `buf`: None when incomplete.
fn parse_frame(buf: &[u8]) -> Result<Option<Frame>, WsError> {
    let proto = |m: &str| Err(WsError::Protocol(m.to_owned()));
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return proto("reserved bits set");
    }
    if b1 & 0x80 != 0 {
        return proto("masked frame from server");
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    let (len, head) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > MAX_FRAME as u64 {
        return proto("frame too large");
    }
    let len = len as usize;
    if opcode >= 8 && (!fin || len > 125) {
        return proto("fragmented or oversized control frame");
    }
    if buf.len() < head + len {
        return Ok(None);
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload: head..head + len,
    }))
}

/// Appends one masked client frame.
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish() | 1
}

impl WsStream {
    /// The opening handshake on a connected stream: `GET path_and_query` with `Host: host`.
    /// A refusal is `Err(status line and an excerpt of what followed)`.
    pub async fn handshake(
        tcp: TcpStream,
        host: &str,
        path_and_query: &str,
    ) -> Result<WsStream, HandshakeError> {
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        );
        let mut ws = WsStream {
            tcp,
            rbuf: Vec::new(),
            rpos: 0,
            rlen: 0,
            wbuf: request.into_bytes(),
            wpos: 0,
            partial: None,
            mask_state: random_seed(),
            close_received: false,
            close_sent: false,
            done: false,
        };
        poll_fn(|cx| ws.poll_flush(cx))
            .await
            .map_err(HandshakeError::Io)?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head = &ws.rbuf[..ws.rlen];
            match response.parse(head) {
                Ok(httparse::Status::Complete(n)) => {
                    let code = response.code.unwrap_or(0);
                    if code != 101 {
                        let reason = response.reason.unwrap_or("");
                        let body = String::from_utf8_lossy(&head[n..]).into_owned();
                        return Err(HandshakeError::Status(format!("{code} {reason}"), body));
                    }
                    let header = |name: &str| {
                        response
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    };
                    let upgrade = header("Upgrade").unwrap_or_default();
                    let connection = header("Connection").unwrap_or_default();
                    let accept = header("Sec-WebSocket-Accept").unwrap_or_default();
                    let expected = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                        key.as_bytes(),
                    );
                    if !upgrade.eq_ignore_ascii_case("websocket")
                        || !connection
                            .split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                        || accept.trim() != expected
                    {
                        return Err(HandshakeError::Invalid(
                            "the 101 response does not upgrade to a websocket".to_owned(),
                        ));
                    }
                    ws.rpos = n;
                    ws.compact();
                    ws.wbuf = Vec::new();
                    ws.wpos = 0;
                    return Ok(ws);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(HandshakeError::Invalid(format!("bad HTTP response: {e}"))),
            }
            if ws.rlen >= MAX_HEAD {
                return Err(HandshakeError::Invalid(
                    "HTTP response head too long".to_owned(),
                ));
            }
            let n = poll_fn(|cx| ws.poll_fill(cx))
                .await
                .map_err(HandshakeError::Io)?;
            if n == 0 {
                return Err(HandshakeError::Invalid(
                    "connection closed during the handshake".to_owned(),
                ));
            }
        }
    }

    /// The TCP stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// Drops consumed bytes; an idle connection keeps one [`READ_CHUNK`] buffer at most.
    fn compact(&mut self) {
        if self.rpos == self.rlen {
            self.rpos = 0;
            self.rlen = 0;
            if self.rbuf.len() > READ_CHUNK {
                self.rbuf.truncate(READ_CHUNK);
                self.rbuf.shrink_to(READ_CHUNK);
            }
        } else if self.rpos > 0 {
            self.rbuf.copy_within(self.rpos..self.rlen, 0);
            self.rlen -= self.rpos;
            self.rpos = 0;
        }
    }

    /// One read from the socket into the buffer; `Ok(0)` at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.len() - self.rlen < READ_CHUNK / 2 {
            let want = (self.rlen + READ_CHUNK).max(self.rbuf.len());
            self.rbuf.resize(want, 0);
        }
        let mut rb = ReadBuf::new(&mut self.rbuf[self.rlen..]);
        ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        self.rlen += n;
        Poll::Ready(Ok(n))
    }

    /// Writes what is queued. Ready(Ok) once everything is written.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.wbuf[self.wpos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }

    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_state = x;
        (x as u32).to_ne_bytes()
    }

    /// Queues a frame; [`poll_flush`](Self::poll_flush) writes it.
    fn queue(&mut self, opcode: u8, payload: &[u8]) {
        if self.wpos > 0 && self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        let mask = self.next_mask();
        push_frame(&mut self.wbuf, opcode, payload, mask);
    }

    /// Queues a text message; false once a close frame was sent.
    pub fn queue_text(&mut self, text: &str) -> bool {
        if self.close_sent || self.done {
            return false;
        }
        self.queue(1, text.as_bytes());
        true
    }

    /// Queues a close frame with `code` (once).
    pub fn queue_close(&mut self, code: Option<u16>) {
        if self.close_sent || self.done {
            return;
        }
        self.close_sent = true;
        match code {
            Some(c) => self.queue(8, &c.to_be_bytes()),
            None => self.queue(8, &[]),
        }
    }

    /// Sends a text message: queued, then everything queued is written.
    pub async fn send_text(&mut self, text: &str) -> Result<(), WsError> {
        if !self.queue_text(text) {
            return Err(WsError::Protocol("send after close".to_owned()));
        }
        poll_fn(|cx| self.poll_flush(cx))
            .await
            .map_err(WsError::from)
    }

    /// The next message. `Ready(None)` after the close handshake completed or the stream
    /// ended; errors end the stream too.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<WsMessage, WsError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match self.next_buffered() {
                Ok(Some(m)) => return Poll::Ready(Some(Ok(m))),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            self.compact();
            match ready!(self.poll_fill(cx)) {
                Ok(0) => {
                    self.done = true;
                    if self.close_received || self.close_sent {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(WsError::Eof)));
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    /// A message from what is buffered, if a whole one is there.
    fn next_buffered(&mut self) -> Result<Option<WsMessage>, WsError> {
        loop {
            let Some(frame) = parse_frame(&self.rbuf[self.rpos..self.rlen])? else {
                return Ok(None);
            };
            let base = self.rpos;
            let payload = base + frame.payload.start..base + frame.payload.end;
            self.rpos = base + frame.payload.end;
            match frame.opcode {
                0 => {
                    let Some((_, data)) = self.partial.as_mut() else {
                        return Err(WsError::Protocol("continuation without a start".into()));
                    };
                    if data.len() + payload.len() > MAX_MESSAGE {
                        return Err(WsError::Protocol("message too large".into()));
                    }
                    data.extend_from_slice(&self.rbuf[payload]);
                    if frame.fin {
                        let (text, data) = self.partial.take().expect("partial");
                        return message(text, data).map(Some);
                    }
                }
                1 | 2 => {
                    if self.partial.is_some() {
                        return Err(WsError::Protocol(
                            "new message inside a fragmented one".into(),
                        ));
                    }
                    let text = frame.opcode == 1;
                    if frame.fin {
                        let bytes = &self.rbuf[payload];
                        return if text {
                            match std::str::from_utf8(bytes) {
                                Ok(s) => Ok(Some(WsMessage::Text(s.to_owned()))),
                                Err(_) => Err(WsError::Protocol("invalid UTF-8 in text".into())),
                            }
                        } else {
                            Ok(Some(WsMessage::Binary(bytes.len())))
                        };
                    }
                    self.partial = Some((text, self.rbuf[payload].to_vec()));
                }
                8 => {
                    let body = &self.rbuf[payload];
                    let code = match body.len() {
                        0 => None,
                        1 => return Err(WsError::Protocol("close frame of one byte".into())),
                        _ => {
                            if std::str::from_utf8(&body[2..]).is_err() {
                                return Err(WsError::Protocol("invalid UTF-8 in close".into()));
                            }
                            Some(u16::from_be_bytes([body[0], body[1]]))
                        }
                    };
                    self.close_received = true;
                    // Answer the close with the same code, as tungstenite does.
                    self.queue_close(code);
                    return Ok(Some(WsMessage::Close(code)));
                }
                9 => {
                    let body = self.rbuf[payload].to_vec();
                    if !self.close_sent {
                        self.queue(10, &body);
                    }
                    return Ok(Some(WsMessage::Control));
                }
                10 => return Ok(Some(WsMessage::Control)),
                other => return Err(WsError::Protocol(format!("unknown opcode {other}"))),
            }
        }
    }

    /// Whether frames are queued but not written.
    pub fn has_pending_writes(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    /// The next message (async form of [`poll_next`](Self::poll_next)).
    pub async fn next(&mut self) -> Option<Result<WsMessage, WsError>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}

fn message(text: bool, data: Vec<u8>) -> Result<WsMessage, WsError> {
    if text {
        String::from_utf8(data)
            .map(WsMessage::Text)
            .map_err(|_| WsError::Protocol("invalid UTF-8 in text".into()))
    } else {
        Ok(WsMessage::Binary(data.len()))
    }
}

/// Why the opening handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    Io(io::Error),
    /// The server answered with another status: (status line, what followed the head).
    Status(String, String),
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_encode() {
        assert!(parse_frame(&[0x81]).unwrap().is_none());
        let f = parse_frame(&[0x81, 2, b'4', b'2', 0xff]).unwrap().unwrap();
        assert_eq!(
            f,
            Frame {
                fin: true,
                opcode: 1,
                payload: 2..4
            }
        );
        let mut long = vec![0x82, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7, 256));
        assert_eq!(parse_frame(&long).unwrap().unwrap().payload, 4..260);
        assert!(parse_frame(&long[..100]).unwrap().is_none());
        assert!(parse_frame(&[0x81, 0x82, 0, 0, 0, 0]).is_err()); // masked from server
        assert!(parse_frame(&[0xc1, 0]).is_err()); // RSV1
        assert!(parse_frame(&[0x09, 0]).is_err()); // fragmented ping

        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            push_frame(&mut out, 1, &payload, [1, 2, 3, 4]);
            // Unmask as a server would.
            let mut b1 = out.clone();
            b1[1] &= 0x7f;
            let head = match len {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            let mask = [out[head], out[head + 1], out[head + 2], out[head + 3]];
            let mut unmasked: Vec<u8> = b1[..head].to_vec();
            unmasked.extend(
                out[head + 4..]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[i & 3]),
            );
            let f = parse_frame(&unmasked).unwrap().unwrap();
            assert_eq!(&unmasked[f.payload], &payload[..], "{len}");
        }
    }
}

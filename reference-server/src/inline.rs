//! Synchronous ("inline") socketioxide handlers, which keep each socket's events in order.
//!
//! # Why not plain `socket.on(event, async |..| ..)`?
//!
//! In socketioxide 0.18 every message handler is async, and its `MessageHandler::call` (run
//! synchronously by the socket's reader: the websocket read loop, or the loop over the packets
//! of one polling POST) only runs the extractors and then `tokio::spawn`s the handler future. Two
//! events sent back to back by one client therefore become two independent tasks; on the
//! multi-threaded runtime they may run in either order, so a `join_room` immediately followed by
//! `message` can be answered "not in room". The same holds for the disconnect handler, which is
//! spawned too. (Measured with socketioxide 0.18.9 on 2 workers: 20,000 events sent back to back
//! on one websocket reached a plain async handler with 386 adjacent pairs out of order.)
//!
//! `MessageHandler` and `DisconnectHandler` are public, non-sealed traits whose `call` is
//! synchronous. Implementing them for our own wrapper runs the dialect's code right inside
//! `call`, i.e. on the reader of that socket, in arrival order, with no task per event. The
//! dialect code must therefore never block: it only takes short `std::sync::Mutex` locks and
//! emits with `SocketRef::emit`, which queues the packet on the socket's bounded channel without
//! awaiting (a full channel drops the packet for that one slow client).
//!
//! A second socketioxide ordering pitfall: the namespace's connect handler is also spawned, and
//! only *after* the CONNECT packet has been queued to the client; handlers registered there can
//! miss the first events of a fast client (13 of 1,000 clients that emitted as soon as CONNECT
//! arrived lost that event, silently: socketioxide ignores events without a handler). Register handlers in a connect *middleware* instead,
//! which is awaited before CONNECT is sent (see `dorm::install`).

use std::sync::Arc;

use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::{DisconnectHandler, FromMessageParts as _, MessageHandler, Value};
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::ParserError;

/// The first argument of an event, as JSON, or why it could not be read (no argument, binary
/// data that is not JSON...). Further arguments are ignored.
pub type EventData = Result<serde_json::Value, ParserError>;

/// Marker type that keeps our `MessageHandler`/`DisconnectHandler` impls apart from
/// socketioxide's blanket impls for async closures.
pub enum InlineMarker {}

/// A message or disconnect handler that runs synchronously in socketioxide's dispatch path.
pub struct Inline<F>(pub F);

impl<A, F> MessageHandler<A, InlineMarker> for Inline<F>
where
    A: Adapter,
    F: Fn(SocketRef<A>, EventData) + Send + Sync + 'static,
{
    fn call(&self, s: Arc<Socket<A>>, mut v: Value, ack_id: Option<i64>) {
        // TryData never fails: a payload that does not decode is handed over as an Err.
        let data = match TryData::<serde_json::Value>::from_message_parts(&s, &mut v, &ack_id) {
            Ok(TryData(data)) => data,
            Err(never) => match never {},
        };
        wait_until_connected(&s);
        (self.0)(SocketRef::from(s), data);
    }
}

/// Every argument of an event (the event name excluded), as JSON, or why they could not be read
/// (binary-only payload, JSON that serde_json refuses such as `1e999`). Binary attachments appear
/// as their `{"_placeholder":true,"num":N}` objects.
pub type EventArgs = Result<Vec<serde_json::Value>, ParserError>;

/// Like [`Inline`], but hands over ALL positional arguments of the event (for dialects whose
/// events take several arguments, such as `lobby`).
pub struct InlineArgs<F>(pub F);

impl<A, F> MessageHandler<A, InlineMarker> for InlineArgs<F>
where
    A: Adapter,
    F: Fn(SocketRef<A>, EventArgs) + Send + Sync + 'static,
{
    fn call(&self, s: Arc<Socket<A>>, v: Value, _ack_id: Option<i64>) {
        let args = all_args(&v);
        wait_until_connected(&s);
        (self.0)(SocketRef::from(s), args);
    }
}

/// The arguments of an EVENT packet's data. The common parser hands the data over as the raw
/// JSON array `["event", arg1, arg2, ...]` (binary attachments still as placeholders).
fn all_args(v: &Value) -> EventArgs {
    #[derive(Debug, thiserror::Error)]
    #[error("event data is not a JSON array with an event name")]
    struct NotAnEventArray;

    let text = v
        .as_str()
        .ok_or_else(|| ParserError::new(NotAnEventArray))?;
    let mut all: Vec<serde_json::Value> =
        serde_json::from_str(text.as_str()).map_err(ParserError::new)?;
    if all.is_empty() {
        return Err(ParserError::new(NotAnEventArray));
    }
    all.remove(0);
    Ok(all)
}

/// A third socketioxide pitfall: `Namespace::connect` queues CONNECT to the client and only
/// then marks the socket connected (`set_connected(true)`, no await in between). A fast client
/// can answer CONNECT with its first event, dispatched on the other worker thread inside that
/// gap; every `emit` to the socket then fails with `Closed` while room broadcasts still reach
/// it (seen as a `join_room` whose `last_data` never came, about 1 client in 100 under load).
/// The gap is a few instructions long, so wait it out, boundedly.
pub(crate) fn wait_until_connected<A: Adapter>(s: &Socket<A>) {
    for i in 0..100_000u32 {
        if s.connected() {
            return;
        }
        if i % 64 == 63 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

impl<A, F> DisconnectHandler<A, InlineMarker> for Inline<F>
where
    A: Adapter,
    F: Fn(SocketRef<A>, DisconnectReason) + Send + Sync + 'static,
{
    fn call_with_defer(
        &self,
        s: Arc<Socket<A>>,
        reason: DisconnectReason,
        defer: fn(Arc<Socket<A>>),
    ) {
        (self.0)(SocketRef::from(s.clone()), reason);
        defer(s);
    }
}

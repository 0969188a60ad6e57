//! The Socket.IO transport under the name it had before the transport seam
//! ([`crate::transport`]): what the checker, the generation probe and the tests import.

pub(crate) use crate::transport::socketio::open_session;
pub use crate::transport::socketio::{ClientConfig, Connection};
pub use crate::transport::{
    ClientError, CloseReason, ConnectError, Heartbeat, HeartbeatMarks, HeartbeatStats, Incoming,
    RawEvent, RawIncoming, READ_BUFFER_SIZE,
};

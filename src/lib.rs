//! roomrig: load-testing and protocol-conformance harness for real-time room protocols.
//!
//! `run` replays a YAML [`scenario`] with many simulated clients ([`driver`]) that speak
//! Engine.IO/Socket.IO or plain WebSocket themselves ([`transport`], [`protocol`]); the
//! [`oracle`] judges every received event against the [`dialect`]'s table; [`metrics`] keeps
//! the latency histograms; [`report`] presents a finished run; [`workers`] splits a run across
//! driver processes.

pub mod catalogue;
pub mod check;
pub mod cli;
pub mod client;
pub mod dialect;
pub mod driver;
pub mod exit;
pub mod generation;
pub mod heartbeat;
pub mod junit;
pub mod metrics;
pub mod oracle;
pub mod protocol;
pub mod report;
pub mod resources;
pub mod scenario;
pub mod schedule;
pub mod signals;
pub mod thresholds;
pub mod transport;
pub mod workers;

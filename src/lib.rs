//! roomrig: load-testing and protocol-conformance harness for real-time room protocols.
//!
//! `roomrig run` (parsed by [`cli`], run by `run`) replays a YAML `scenario` with many
//! simulated clients (`driver`) that speak Engine.IO/Socket.IO or plain WebSocket themselves
//! ([`transport`], [`protocol`]); the [`oracle`] judges every received event against the
//! `dialect`'s table; `metrics` keeps the latency histograms; `report` presents a finished
//! run; [`workers`] splits a run across driver processes. Modules used only inside the crate
//! are `pub(crate)`; the public ones are those the binary and the integration tests use.

pub(crate) mod capacity;
pub(crate) mod catalogue;
pub(crate) mod check;
pub mod cli;
pub(crate) mod dialect;
pub(crate) mod driver;
pub(crate) mod env_expand;
pub(crate) mod exit;
#[cfg(test)]
mod fuzz;
pub(crate) mod generation;
pub(crate) mod heartbeat;
pub mod hlog;
pub(crate) mod html;
pub(crate) mod junit;
pub(crate) mod k8s;
pub(crate) mod live_feed;
pub(crate) mod live_metrics;
pub(crate) mod merge_cmd;
pub(crate) mod metrics;
pub(crate) mod oracle;
pub(crate) mod out;
pub(crate) mod overrides;
pub mod protocol;
pub(crate) mod report;
pub(crate) mod report_cmd;
pub(crate) mod report_dir;
pub(crate) mod resources;
pub(crate) mod roster;
pub(crate) mod run;
pub(crate) mod scenario;
pub(crate) mod scenario_source;
pub(crate) mod schedule;
pub(crate) mod shard;
pub(crate) mod share;
pub(crate) mod signals;
pub(crate) mod text;
pub(crate) mod thresholds;
pub(crate) mod timeline;
pub mod transport;
pub mod workers;
pub(crate) mod yaml_path;

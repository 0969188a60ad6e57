//! roomrig: load-testing and protocol-conformance harness for real-time room protocols.
//!
//! `run` replays a YAML [`scenario`] with many simulated clients ([`driver`]) that speak
//! Engine.IO/Socket.IO themselves ([`client`], [`protocol`]); the [`oracle`] judges every
//! received event against the [`dialect`]'s table; [`metrics`] keeps the latency histograms;
//! [`report`] presents a finished run; [`workers`] splits a run across driver processes.

pub mod catalogue;
pub mod check;
pub mod cli;
pub mod client;
pub mod dialect;
pub mod driver;
pub mod env_expand;
pub mod exit;
pub mod generation;
pub mod heartbeat;
pub mod junit;
pub mod metrics;
pub mod oracle;
pub mod overrides;
pub mod protocol;
pub mod report;
pub mod resources;
pub mod roster;
pub mod scenario;
pub mod scenario_source;
pub mod schedule;
pub mod signals;
pub mod thresholds;
pub mod workers;

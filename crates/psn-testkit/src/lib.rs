//! Stateful fake platforms for connector and engine tests, over real HTTP on 127.0.0.1.
//!
//! [`FakeX`] is a strict, stateful X API v2: it keeps the posts it accepted, rejects what X
//! rejects (bad tokens, over-long or duplicate text, replies to unknown posts), reports
//! `x-rate-limit-*` headers, and injects faults — including the two that make publishing
//! hard: a request that times out before anything is written, and one whose write is applied
//! but whose connection drops before any response ([`FaultKind::DropAfterWrite`]).
//!
//! Tests drive it through the Rust handle; child processes (the `psn` binary under test) can
//! be pointed at [`FakeX::base_url`] with `PSN_API_BASE_X`, and a test can steer it over HTTP
//! with the control endpoints under `/_fake/` (see [`x`]).

pub mod bluesky;
pub mod faults;
pub mod form;
pub mod mastodon;
pub mod oauth;
mod rng;
mod server;
pub mod uploads;
pub mod x;

pub use x::{FakeMedia, FakePost, FakeX, Fault, FaultKind, RecordedRequest};

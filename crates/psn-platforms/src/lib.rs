//! What each platform accepts, checked before anything is scheduled or sent, and the
//! connectors that send it.
//!
//! [`rules`] holds the platform knowledge that can be decided from the post alone: length
//! rules in each platform's own unit, thread splitting, media counts, titles and boards. It
//! must stay pure: no I/O (no files, no network, no database, no clock), no async, so that the
//! CLI, the store and the scheduler can all run the same rules and get the same answer.
//!
//! [`publish`] holds the connectors: the [`publish::Publisher`] contract, HTTP plumbing and
//! error classification shared by connectors, and one module per platform. Connectors do
//! network I/O but never touch the database and never retry on their own.
//!
//! [`upload`] holds the media upload flows the connectors share (single, chunked, resumable,
//! multipart, processing polls), each resumable from the state it saves after every step.

pub mod oauth;
pub mod publish;
pub mod rules;
pub mod upload;

pub use rules::{
    Length, RuleIssue, SplitError, ValidationReport, ValidationRequest, measure, split_thread,
    validate,
};

//! What each platform accepts, checked before anything is scheduled or sent.
//!
//! This crate holds the platform knowledge that can be decided from the post alone: length
//! rules in each platform's own unit, thread splitting, media counts, titles and boards. It
//! must stay a pure library: no I/O (no files, no network, no database, no clock), no async,
//! so that the CLI, the store and the scheduler can all run the same rules and get the same
//! answer.

pub mod rules;

pub use rules::{
    Length, RuleIssue, SplitError, ValidationReport, ValidationRequest, measure, split_thread,
    validate,
};

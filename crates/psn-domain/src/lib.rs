//! The domain: the words psn speaks in, and the rules between them.
//!
//! This crate knows what a platform, a post, a delivery and a schedule time are, and which
//! state changes are legal. It does no I/O: no files, no network, no database, no clock
//! (callers pass `now`). Everything here is deterministic and unit-testable.

pub mod ids;
pub mod language;
pub mod media;
pub mod platform;
pub mod schedule;
pub mod status;

pub use ids::{AccountId, DeliveryId, PostId};
pub use language::Language;
pub use media::{MediaKind, MediaSummary};
pub use platform::Platform;
pub use schedule::{ScheduleError, parse_schedule};
pub use status::{DeliveryEvent, DeliveryStatus, PostEvent, PostStatus, TransitionError};

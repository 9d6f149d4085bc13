//! Post and delivery state machines.
//!
//! A post is published to one or more accounts; each (post, account) pair is a *delivery* with
//! its own state. Every state change goes through [`DeliveryStatus::apply`] or
//! [`PostStatus::apply`], which either return the next state or refuse with a reason a person
//! understands. The store and the engine never set a status by hand.
//!
//! The post's status while it is live is derived from its deliveries ([`derive_post_status`]);
//! only the phases before scheduling (draft, pending approval, rejected) and cancellation are
//! decided at the post level.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A refused state change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a {what} that is {from}: {reason}")]
pub struct TransitionError {
    pub what: &'static str,
    pub action: &'static str,
    pub from: &'static str,
    pub reason: &'static str,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err(format!("unknown {} '{}'", stringify!($name), other)),
                }
            }
        }
    };
}

string_enum!(
    /// The state of one delivery (one post to one account).
    DeliveryStatus {
        Held => "held",
        Scheduled => "scheduled",
        Claimed => "claimed",
        Processing => "processing",
        RetryWait => "retry_wait",
        Unconfirmed => "unconfirmed",
        NeedsAttention => "needs_attention",
        Published => "published",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// What happens to a delivery.
    DeliveryEvent {
        Release => "release",
        Hold => "hold",
        Claim => "claim",
        StartProcessing => "start_processing",
        Succeed => "succeed",
        TransientFailure => "transient_failure",
        Ambiguous => "ambiguous",
        LeaseExpired => "lease_expired",
        ReconciledNotFound => "reconciled_not_found",
        ReconcileImpossible => "reconcile_impossible",
        PermanentFailure => "permanent_failure",
        Cancel => "cancel",
        Reschedule => "reschedule",
        Edit => "edit",
        ManualRetry => "manual_retry",
        MarkPublished => "mark_published",
    }
);

string_enum!(
    /// The status of a post as people see it.
    PostStatus {
        Draft => "draft",
        PendingApproval => "pending_approval",
        Rejected => "rejected",
        Scheduled => "scheduled",
        Publishing => "publishing",
        Published => "published",
        PartiallyPublished => "partially_published",
        NeedsAttention => "needs_attention",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// What a person (or the approval flow) does to a post.
    PostEvent {
        Submit => "submit",
        SubmitForApproval => "submit_for_approval",
        Approve => "approve",
        Reject => "reject",
        Edit => "edit",
        Reschedule => "reschedule",
        Cancel => "cancel",
        Retry => "retry",
    }
);

impl DeliveryStatus {
    /// Whether no event other than a person's explicit action can move the delivery on.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Published | DeliveryStatus::Failed | DeliveryStatus::Cancelled
        )
    }

    /// Whether the platform may already have (part of) this delivery: a worker holds it or
    /// its outcome is unknown. Such a delivery cannot be edited, rescheduled or cancelled.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Claimed | DeliveryStatus::Processing | DeliveryStatus::Unconfirmed
        )
    }

    /// The next state after `event`, or why the change is refused.
    pub fn apply(self, event: DeliveryEvent) -> Result<DeliveryStatus, TransitionError> {
        use DeliveryEvent as E;
        use DeliveryStatus as S;
        let next = match (self, event) {
            (S::Held, E::Release) => S::Scheduled,
            (S::Scheduled, E::Hold) => S::Held,
            (S::Scheduled | S::RetryWait | S::Processing | S::Unconfirmed, E::Claim) => S::Claimed,
            (S::Claimed, E::StartProcessing) => S::Processing,
            (S::Claimed | S::Processing | S::Unconfirmed, E::Succeed) => S::Published,
            (S::Claimed | S::Processing, E::TransientFailure) => S::RetryWait,
            (S::Claimed | S::Processing, E::Ambiguous | E::LeaseExpired) => S::Unconfirmed,
            (S::Unconfirmed, E::ReconciledNotFound) => S::RetryWait,
            (S::Unconfirmed, E::ReconcileImpossible) => S::NeedsAttention,
            (S::Claimed | S::Processing | S::RetryWait | S::Unconfirmed, E::PermanentFailure) => {
                S::Failed
            }
            (S::Held | S::Scheduled | S::RetryWait | S::Failed, E::Cancel) => S::Cancelled,
            (S::Held, E::Reschedule | E::Edit) => S::Held,
            (S::Scheduled | S::RetryWait, E::Reschedule | E::Edit) => S::Scheduled,
            (S::Failed, E::Edit) => S::Failed,
            (S::Failed | S::NeedsAttention, E::ManualRetry) => S::Scheduled,
            (S::NeedsAttention, E::MarkPublished) => S::Published,
            (from, event) => return Err(delivery_refusal(from, event)),
        };
        Ok(next)
    }
}

fn delivery_refusal(from: DeliveryStatus, event: DeliveryEvent) -> TransitionError {
    use DeliveryStatus as S;
    let reason = match from {
        S::Published => {
            "it is already on the platform; a published post cannot be changed from psn"
        }
        S::Cancelled => "it was cancelled; create a new post instead",
        S::Claimed | S::Processing => {
            "a worker is publishing it right now; wait for the outcome (psn show)"
        }
        S::Unconfirmed => {
            "its last publish attempt has an unknown outcome; recovery must check the platform first"
        }
        S::NeedsAttention => {
            "psn could not tell whether it was published; check the platform, then `psn retry` or mark it published"
        }
        S::Failed => "it failed; use `psn retry` to schedule it again",
        S::Held => "it is not scheduled yet (draft or awaiting approval)",
        S::Scheduled | S::RetryWait => "that step only happens while a worker is publishing it",
    };
    TransitionError {
        what: "delivery",
        action: event.as_str(),
        from: from.as_str(),
        reason,
    }
}

impl PostStatus {
    /// The next state after a person's `event`, or why it is refused. For events that hand the
    /// post to the engine (submit, approve, retry) the result is `Scheduled`; from then on the
    /// status is derived from the deliveries.
    pub fn apply(self, event: PostEvent) -> Result<PostStatus, TransitionError> {
        use PostEvent as E;
        use PostStatus as S;
        let next = match (self, event) {
            (S::Draft | S::Rejected, E::Submit) => S::Scheduled,
            (S::Draft | S::Rejected, E::SubmitForApproval) => S::PendingApproval,
            (S::PendingApproval, E::Approve) => S::Scheduled,
            (S::PendingApproval, E::Reject) => S::Rejected,
            (
                s @ (S::Draft | S::PendingApproval | S::Rejected | S::Scheduled | S::Failed),
                E::Edit,
            ) => s,
            (s @ (S::Draft | S::PendingApproval | S::Rejected | S::Scheduled), E::Reschedule) => s,
            (S::Draft | S::PendingApproval | S::Rejected | S::Scheduled | S::Failed, E::Cancel) => {
                S::Cancelled
            }
            (S::Failed | S::PartiallyPublished | S::NeedsAttention, E::Retry) => S::Scheduled,
            (from, event) => return Err(post_refusal(from, event)),
        };
        Ok(next)
    }

    /// Whether deliveries of a post in this status may be claimed by a worker.
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            PostStatus::Draft
                | PostStatus::PendingApproval
                | PostStatus::Rejected
                | PostStatus::Cancelled
        )
    }
}

fn post_refusal(from: PostStatus, event: PostEvent) -> TransitionError {
    use PostEvent as E;
    use PostStatus as S;
    let reason = match (from, event) {
        (S::Published, _) => "it is already published",
        (S::Cancelled, _) => "it was cancelled; create a new post instead",
        (S::Publishing, _) => {
            "a worker is publishing it right now; wait for the outcome (psn show)"
        }
        (S::PartiallyPublished, _) => {
            "part of it is already published; `psn retry` re-queues only what failed"
        }
        (S::NeedsAttention, _) => {
            "psn could not tell whether part of it was published; check the platform, then `psn retry`"
        }
        (S::Failed, E::Reschedule) => "it failed; use `psn retry`, which schedules it again",
        (S::Scheduled, E::Submit | E::SubmitForApproval) => "it is already scheduled",
        (S::Scheduled | S::Draft | S::Rejected | S::PendingApproval, E::Retry) => {
            "only failed or partially published posts can be retried"
        }
        (S::Draft | S::Rejected | S::Scheduled | S::Failed, E::Approve | E::Reject) => {
            "only posts awaiting approval can be approved or rejected"
        }
        (S::PendingApproval, E::Submit | E::SubmitForApproval) => "it already awaits approval",
        (S::Failed, E::Submit | E::SubmitForApproval) => "it failed; use `psn retry`",
        _ => "that change is not allowed",
    };
    TransitionError {
        what: "post",
        action: event.as_str(),
        from: from.as_str(),
        reason,
    }
}

/// The status of a post, given its own phase and its deliveries' states.
///
/// `phase` is the stored post-level status: `Draft`, `PendingApproval`, `Rejected` and
/// `Cancelled` stand as they are; any other phase means "handed to the engine", and the result
/// is computed from the deliveries.
pub fn derive_post_status(phase: PostStatus, deliveries: &[DeliveryStatus]) -> PostStatus {
    use DeliveryStatus as D;
    if !phase.is_live() {
        return phase;
    }
    let live: Vec<D> = deliveries
        .iter()
        .copied()
        .filter(|d| *d != D::Cancelled)
        .collect();
    if live.is_empty() {
        return PostStatus::Cancelled;
    }
    let published = live.iter().filter(|d| **d == D::Published).count();
    let failed = live.iter().filter(|d| **d == D::Failed).count();
    let attention = live.contains(&D::NeedsAttention);
    let in_flight = live.iter().any(|d| d.is_in_flight());
    if published == live.len() {
        PostStatus::Published
    } else if attention {
        PostStatus::NeedsAttention
    } else if published + failed == live.len() {
        if published == 0 {
            PostStatus::Failed
        } else {
            PostStatus::PartiallyPublished
        }
    } else if in_flight || published > 0 || failed > 0 {
        PostStatus::Publishing
    } else {
        PostStatus::Scheduled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryEvent as E;
    use DeliveryStatus as S;

    /// Every legal delivery transition, written out as a table independent of `apply`.
    const LEGAL: &[(S, E, S)] = &[
        (S::Held, E::Release, S::Scheduled),
        (S::Scheduled, E::Hold, S::Held),
        (S::Scheduled, E::Claim, S::Claimed),
        (S::RetryWait, E::Claim, S::Claimed),
        (S::Processing, E::Claim, S::Claimed),
        (S::Unconfirmed, E::Claim, S::Claimed),
        (S::Claimed, E::StartProcessing, S::Processing),
        (S::Claimed, E::Succeed, S::Published),
        (S::Processing, E::Succeed, S::Published),
        (S::Unconfirmed, E::Succeed, S::Published),
        (S::Claimed, E::TransientFailure, S::RetryWait),
        (S::Processing, E::TransientFailure, S::RetryWait),
        (S::Claimed, E::Ambiguous, S::Unconfirmed),
        (S::Processing, E::Ambiguous, S::Unconfirmed),
        (S::Claimed, E::LeaseExpired, S::Unconfirmed),
        (S::Processing, E::LeaseExpired, S::Unconfirmed),
        (S::Unconfirmed, E::ReconciledNotFound, S::RetryWait),
        (S::Unconfirmed, E::ReconcileImpossible, S::NeedsAttention),
        (S::Claimed, E::PermanentFailure, S::Failed),
        (S::Processing, E::PermanentFailure, S::Failed),
        (S::RetryWait, E::PermanentFailure, S::Failed),
        (S::Unconfirmed, E::PermanentFailure, S::Failed),
        (S::Held, E::Cancel, S::Cancelled),
        (S::Scheduled, E::Cancel, S::Cancelled),
        (S::RetryWait, E::Cancel, S::Cancelled),
        (S::Failed, E::Cancel, S::Cancelled),
        (S::Held, E::Reschedule, S::Held),
        (S::Held, E::Edit, S::Held),
        (S::Scheduled, E::Reschedule, S::Scheduled),
        (S::Scheduled, E::Edit, S::Scheduled),
        (S::RetryWait, E::Reschedule, S::Scheduled),
        (S::RetryWait, E::Edit, S::Scheduled),
        (S::Failed, E::Edit, S::Failed),
        (S::Failed, E::ManualRetry, S::Scheduled),
        (S::NeedsAttention, E::ManualRetry, S::Scheduled),
        (S::NeedsAttention, E::MarkPublished, S::Published),
    ];

    #[test]
    fn every_delivery_transition_is_legal_or_refused_with_a_reason() {
        for &from in S::ALL {
            for &event in E::ALL {
                let expected = LEGAL.iter().find(|(f, e, _)| *f == from && *e == event);
                match (from.apply(event), expected) {
                    (Ok(next), Some((_, _, want))) => assert_eq!(next, *want, "{from} + {event}"),
                    (Err(err), None) => {
                        assert_eq!(err.from, from.as_str());
                        assert_eq!(err.action, event.as_str());
                        assert!(err.reason.len() > 10, "{from} + {event}: empty reason");
                        assert!(err.to_string().starts_with("cannot "));
                    }
                    (got, want) => panic!("{from} + {event}: got {got:?}, table says {want:?}"),
                }
            }
        }
    }

    #[test]
    fn published_deliveries_never_move() {
        for &event in E::ALL {
            assert!(S::Published.apply(event).is_err(), "published + {event}");
        }
    }

    #[test]
    fn in_flight_deliveries_cannot_be_cancelled_edited_or_rescheduled() {
        for from in [S::Claimed, S::Processing, S::Unconfirmed] {
            for event in [E::Cancel, E::Edit, E::Reschedule] {
                assert!(from.apply(event).is_err(), "{from} + {event}");
            }
        }
    }

    const LEGAL_POST: &[(PostStatus, PostEvent, PostStatus)] = {
        use PostEvent as PE;
        use PostStatus as P;
        &[
            (P::Draft, PE::Submit, P::Scheduled),
            (P::Rejected, PE::Submit, P::Scheduled),
            (P::Draft, PE::SubmitForApproval, P::PendingApproval),
            (P::Rejected, PE::SubmitForApproval, P::PendingApproval),
            (P::PendingApproval, PE::Approve, P::Scheduled),
            (P::PendingApproval, PE::Reject, P::Rejected),
            (P::Draft, PE::Edit, P::Draft),
            (P::PendingApproval, PE::Edit, P::PendingApproval),
            (P::Rejected, PE::Edit, P::Rejected),
            (P::Scheduled, PE::Edit, P::Scheduled),
            (P::Failed, PE::Edit, P::Failed),
            (P::Draft, PE::Reschedule, P::Draft),
            (P::PendingApproval, PE::Reschedule, P::PendingApproval),
            (P::Rejected, PE::Reschedule, P::Rejected),
            (P::Scheduled, PE::Reschedule, P::Scheduled),
            (P::Draft, PE::Cancel, P::Cancelled),
            (P::PendingApproval, PE::Cancel, P::Cancelled),
            (P::Rejected, PE::Cancel, P::Cancelled),
            (P::Scheduled, PE::Cancel, P::Cancelled),
            (P::Failed, PE::Cancel, P::Cancelled),
            (P::Failed, PE::Retry, P::Scheduled),
            (P::PartiallyPublished, PE::Retry, P::Scheduled),
            (P::NeedsAttention, PE::Retry, P::Scheduled),
        ]
    };

    #[test]
    fn every_post_transition_is_legal_or_refused_with_a_reason() {
        for &from in PostStatus::ALL {
            for &event in PostEvent::ALL {
                let expected = LEGAL_POST
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event);
                match (from.apply(event), expected) {
                    (Ok(next), Some((_, _, want))) => assert_eq!(next, *want, "{from} + {event}"),
                    (Err(err), None) => {
                        assert!(err.reason.len() > 10);
                        assert_eq!(err.from, from.as_str());
                    }
                    (got, want) => panic!("{from} + {event}: got {got:?}, table says {want:?}"),
                }
            }
        }
    }

    #[test]
    fn post_status_is_derived_from_deliveries() {
        use PostStatus as P;
        let d = derive_post_status;
        assert_eq!(d(P::Draft, &[S::Held]), P::Draft);
        assert_eq!(d(P::Scheduled, &[S::Scheduled, S::Scheduled]), P::Scheduled);
        assert_eq!(d(P::Scheduled, &[S::Claimed, S::Scheduled]), P::Publishing);
        assert_eq!(
            d(P::Scheduled, &[S::Published, S::Scheduled]),
            P::Publishing
        );
        assert_eq!(d(P::Scheduled, &[S::Published, S::Published]), P::Published);
        assert_eq!(
            d(P::Scheduled, &[S::Published, S::Failed]),
            P::PartiallyPublished
        );
        assert_eq!(d(P::Scheduled, &[S::Failed, S::Failed]), P::Failed);
        assert_eq!(
            d(P::Scheduled, &[S::Published, S::NeedsAttention]),
            P::NeedsAttention
        );
        assert_eq!(d(P::Scheduled, &[S::Cancelled, S::Published]), P::Published);
        assert_eq!(d(P::Scheduled, &[S::Cancelled]), P::Cancelled);
        assert_eq!(d(P::Cancelled, &[S::Cancelled]), P::Cancelled);
        assert_eq!(d(P::Scheduled, &[S::RetryWait]), P::Scheduled);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for &s in S::ALL {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
        }
        for &s in PostStatus::ALL {
            assert_eq!(s.as_str().parse::<PostStatus>().unwrap(), s);
        }
    }
}

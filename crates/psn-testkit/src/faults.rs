//! Fault injection shared by the fake platforms: what a fault does ([`FaultKind`]), which
//! requests it hits ([`Fault`]), and the per-fake queue ([`Faults`]) with its optional seeded
//! random faults. Every fake answers the same control body at `POST /_fake/faults`: a
//! [`Fault`], `{"faults":[…]}` or `{"random":{"probability","kinds","seed","path_prefix"?}}`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use axum::http::Method;
use serde::{Deserialize, Serialize};

use crate::rng::XorShift;

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// 503 with a problem body; nothing is written.
    ServerError,
    /// 429 with `Retry-After` and `x-rate-limit-reset`; nothing is written.
    RateLimit { retry_after_secs: u64 },
    /// 401 as for a bad token; nothing is written.
    Unauthorized,
    /// 400 with a problem detail; nothing is written.
    BadRequest,
    /// Waits, then handles the request normally (the write happens even if the client gave
    /// up meanwhile).
    Slow { ms: u64 },
    /// Waits, then closes the connection without a response; nothing is written.
    TimeoutBeforeWrite { ms: u64 },
    /// Handles the request (the post is created), then closes the connection without any
    /// response.
    DropAfterWrite,
}

/// A fault for the next `times` requests that match `path_prefix` and `method` (when set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// An HTTP method (`"POST"`), matched case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// `kind` for the next request, whatever its path.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            kind,
            times: 1,
            path_prefix: None,
            method: None,
        }
    }

    /// Applies to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Only requests whose path starts with `prefix`.
    pub fn path(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Only requests with this method.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    pub(crate) fn matches(&self, method: &Method, path: &str) -> bool {
        self.times > 0
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RandomSpec {
    probability: f64,
    kinds: Vec<FaultKind>,
    seed: u64,
    #[serde(default)]
    path_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FaultControl {
    Random { random: RandomSpec },
    Many { faults: Vec<Fault> },
    One(Fault),
}

#[derive(Debug)]
struct RandomFaults {
    probability: f64,
    kinds: Vec<FaultKind>,
    rng: XorShift,
    path_prefix: Option<String>,
}

/// One fake's faults: queued ones first (in order of injection), then random ones.
#[derive(Debug, Default)]
pub struct Faults {
    queued: Vec<Fault>,
    random: Option<RandomFaults>,
}

impl Faults {
    /// Queues a fault.
    pub fn push(&mut self, fault: Fault) {
        self.queued.push(fault);
    }

    /// After queued faults, each request (whose path starts with `path_prefix`, when set) gets
    /// one of `kinds` with `probability`, drawn from a generator seeded with `seed`.
    pub fn set_random(
        &mut self,
        path_prefix: Option<&str>,
        probability: f64,
        kinds: Vec<FaultKind>,
        seed: u64,
    ) {
        self.random = Some(RandomFaults {
            probability,
            kinds,
            rng: XorShift::new(seed),
            path_prefix: path_prefix.map(str::to_owned),
        });
    }

    /// Removes queued and random faults.
    pub fn clear(&mut self) {
        self.queued.clear();
        self.random = None;
    }

    /// Applies a `POST /_fake/faults` body; the error is for a 400 answer.
    pub fn apply_control(&mut self, body: &[u8]) -> Result<(), String> {
        let control: FaultControl =
            serde_json::from_slice(body).map_err(|e| format!("bad fault: {e}"))?;
        match control {
            FaultControl::Random { random } => self.set_random(
                random.path_prefix.as_deref(),
                random.probability,
                random.kinds,
                random.seed,
            ),
            FaultControl::Many { faults } => self.queued.extend(faults),
            FaultControl::One(fault) => self.queued.push(fault),
        }
        Ok(())
    }

    /// The fault for this request, if any (consuming one use of a queued fault).
    pub fn take(&mut self, method: &Method, path: &str) -> Option<FaultKind> {
        if let Some(pos) = self.queued.iter().position(|f| f.matches(method, path)) {
            let fault = &mut self.queued[pos];
            fault.times -= 1;
            let kind = fault.kind.clone();
            if fault.times == 0 {
                self.queued.remove(pos);
            }
            return Some(kind);
        }
        let random = self.random.as_mut()?;
        if random.kinds.is_empty()
            || random
                .path_prefix
                .as_deref()
                .is_some_and(|p| !path.starts_with(p))
        {
            return None;
        }
        if random.rng.next_f64() < random.probability {
            let i = random.rng.below(random.kinds.len());
            Some(random.kinds[i].clone())
        } else {
            None
        }
    }
}

/// Holds requests, from the n-th one counted after [`Gate::hold_from`], until
/// [`Gate::release`]: a test can kill a client while its request is in flight and then let the
/// request land, as a write the client never heard back from. A fake calls [`Gate::pass`] at
/// the top of the handler it gates.
#[derive(Debug)]
pub struct Gate {
    from: tokio::sync::watch::Sender<Option<u64>>,
    seen: AtomicU64,
    held: AtomicUsize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            from: tokio::sync::watch::channel(None).0,
            seen: AtomicU64::new(0),
            held: AtomicUsize::new(0),
        }
    }
}

impl Gate {
    /// Holds the `n`-th gated request from now on (0: the next one) and every later one.
    pub fn hold_from(&self, n: u64) {
        self.seen.store(0, Ordering::SeqCst);
        self.from.send_replace(Some(n));
    }

    /// Lets every held request through, and stops holding.
    pub fn release(&self) {
        self.from.send_replace(None);
    }

    /// How many requests are waiting.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Waits while this request is held.
    pub async fn pass(&self) {
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        let mut rx = self.from.subscribe();
        let held = |from: &Option<u64>| from.is_some_and(|from| n >= from);
        if !held(&rx.borrow_and_update()) {
            return;
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        while held(&rx.borrow_and_update()) {
            if rx.changed().await.is_err() {
                break;
            }
        }
        self.held.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_bodies_parse() {
        let mut faults = Faults::default();
        faults
            .apply_control(br#"{"kind":"drop_after_write","path_prefix":"/a"}"#)
            .unwrap();
        assert_eq!(faults.take(&Method::POST, "/b"), None);
        assert_eq!(
            faults.take(&Method::POST, "/a/x"),
            Some(FaultKind::DropAfterWrite)
        );
        assert_eq!(faults.take(&Method::POST, "/a/x"), None, "used once");
        let random =
            json!({"random":{"probability":1.0,"kinds":[{"kind":"server_error"}],"seed":1}});
        faults.apply_control(random.to_string().as_bytes()).unwrap();
        assert_eq!(faults.take(&Method::GET, "/"), Some(FaultKind::ServerError));
        faults.clear();
        assert_eq!(faults.take(&Method::GET, "/"), None);
        assert!(faults.apply_control(b"{}").is_err());
    }

    #[tokio::test]
    async fn a_gate_holds_from_the_nth_request_until_released() {
        let gate = std::sync::Arc::new(Gate::default());
        gate.hold_from(1);
        gate.pass().await; // the 0th passes
        let held = tokio::spawn({
            let gate = gate.clone();
            async move { gate.pass().await }
        });
        while gate.held() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!held.is_finished());
        gate.release();
        held.await.unwrap();
        assert_eq!(gate.held(), 0);
        gate.pass().await; // released: nothing waits
    }
}

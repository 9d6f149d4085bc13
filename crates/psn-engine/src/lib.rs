//! The publishing engine: the worker loop that publishes due deliveries on time, exactly once.
//!
//! One [`Engine`] serves every hub of a workspace (a task per hub). Per hub it recovers expired
//! leases, claims due deliveries (one in flight per account), and runs each claimed delivery
//! step by step ([`process`]): a write-ahead attempt row is committed before every creating call,
//! the step's result is committed after, an unknown outcome makes the delivery `unconfirmed`,
//! and an unconfirmed delivery is reconciled against the platform before anything is sent again.
//!
//! The engine decides; the store persists; publishers talk to platforms. The engine holds no
//! SQL and no platform HTTP.

pub mod backoff;
mod health;
pub mod media;
pub mod metrics;
mod process;
mod refresh;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use psn_domain::Platform;
use psn_platforms::publish::Publisher;
use psn_store::{Hub, TokenCipher};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

pub use health::classify_check;
pub use metrics::Metrics;

/// Tunables. Defaults suit production; tests shorten the delays.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Identifies this worker in leases and attempt records.
    pub worker_id: String,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// Deliveries published at once per hub (never two for one account).
    pub concurrency: usize,
    /// Longest sleep between checks on a hub that cannot notify (SQLite).
    pub poll: Duration,
    /// First retry delay; doubles each attempt, with full jitter, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// After this long past its scheduled time, a delivery that keeps failing is failed.
    pub deadline: Duration,
    /// Delay before reconciling an ambiguous call (platforms list new posts with a lag).
    pub reconcile_delay: Duration,
    /// Consecutive failures that open a breaker, and for how long it opens first.
    pub breaker_threshold: i64,
    pub breaker_open: Duration,
    /// Process what is due now, then return.
    pub once: bool,
    /// Replaces every platform's publishing budget: `Some(None)` turns budgets off,
    /// `Some(Some((calls, window)))` sets one (`PSN_WORKER_PUBLISH_BUDGET=off|CALLS/WINDOW_MS`).
    pub publish_budget: Option<Option<(i64, Duration)>>,
    /// How often each hub loop refreshes tokens due at half their lifetime (also once when it
    /// starts; `PSN_WORKER_REFRESH_EVERY_MS`).
    pub refresh_every: Duration,
    /// How long a worker holds an account's refresh before another may take it over; longer
    /// than a refresh call can take (`PSN_WORKER_REFRESH_LEASE_MS`).
    pub refresh_lease: Duration,
    /// How often each account's token gets a lightweight identity check (weekly;
    /// `PSN_WORKER_CHECK_EVERY_MS`). Checked during the refresh rounds.
    pub check_every: Duration,
    /// Media lifecycle: a file whose posts were all published is deleted this long after the
    /// last publication (`PSN_MEDIA_KEEP_DAYS`, default 7 days); a file no post uses, this
    /// long after it was added (`PSN_WORKER_MEDIA_UNATTACHED_MS`, default 24 h); rounds run
    /// this often (`PSN_WORKER_MEDIA_EVERY_MS`, default 1 h, and once when a hub loop starts).
    pub media_keep_published: Duration,
    pub media_keep_unattached: Duration,
    pub media_every: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            worker_id: default_worker_id(),
            lease: Duration::from_secs(30),
            concurrency: 8,
            poll: Duration::from_millis(500),
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
            deadline: Duration::from_secs(24 * 3600),
            reconcile_delay: Duration::from_secs(5),
            breaker_threshold: 5,
            breaker_open: Duration::from_secs(60),
            once: false,
            publish_budget: None,
            refresh_every: Duration::from_secs(60),
            refresh_lease: Duration::from_secs(300),
            check_every: Duration::from_secs(7 * 24 * 3600),
            media_keep_published: Duration::from_secs(7 * 24 * 3600),
            media_keep_unattached: Duration::from_secs(24 * 3600),
            media_every: Duration::from_secs(3600),
        }
    }
}

impl EngineConfig {
    /// Applies `PSN_WORKER_*` environment overrides (milliseconds), for operators and tests.
    pub fn with_env_overrides(mut self) -> Self {
        fn ms(name: &str) -> Option<Duration> {
            std::env::var(name)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
                .map(Duration::from_millis)
        }
        if let Some(d) = ms("PSN_WORKER_LEASE_MS") {
            self.lease = d;
        }
        if let Some(d) = ms("PSN_WORKER_POLL_MS") {
            self.poll = d;
        }
        if let Some(d) = ms("PSN_WORKER_RETRY_BASE_MS") {
            self.retry_base = d;
        }
        if let Some(d) = ms("PSN_WORKER_RETRY_CAP_MS") {
            self.retry_cap = d;
        }
        if let Some(d) = ms("PSN_WORKER_DEADLINE_MS") {
            self.deadline = d;
        }
        if let Some(d) = ms("PSN_WORKER_RECONCILE_DELAY_MS") {
            self.reconcile_delay = d;
        }
        if let Some(d) = ms("PSN_WORKER_BREAKER_OPEN_MS") {
            self.breaker_open = d;
        }
        if let Some(d) = ms("PSN_WORKER_REFRESH_EVERY_MS") {
            self.refresh_every = d;
        }
        if let Some(d) = ms("PSN_WORKER_REFRESH_LEASE_MS") {
            self.refresh_lease = d;
        }
        if let Some(d) = ms("PSN_WORKER_CHECK_EVERY_MS") {
            self.check_every = d;
        }
        if let Some(d) = ms("PSN_WORKER_MEDIA_UNATTACHED_MS") {
            self.media_keep_unattached = d;
        }
        if let Some(d) = ms("PSN_WORKER_MEDIA_EVERY_MS") {
            self.media_every = d;
        }
        if let Some(days) = std::env::var("PSN_MEDIA_KEEP_DAYS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            self.media_keep_published = Duration::from_secs(days * 24 * 3600);
        }
        if let Some(n) = std::env::var("PSN_WORKER_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            self.concurrency = n;
        }
        if let Ok(budget) = std::env::var("PSN_WORKER_PUBLISH_BUDGET") {
            let budget = budget.trim();
            if budget.eq_ignore_ascii_case("off") {
                self.publish_budget = Some(None);
            } else if let Some((calls, window)) = budget.split_once('/')
                && let (Ok(calls), Ok(window)) = (calls.parse::<i64>(), window.parse::<u64>())
            {
                self.publish_budget = Some(Some((calls, Duration::from_millis(window))));
            }
        }
        if let Ok(id) = std::env::var("PSN_WORKER_ID")
            && !id.trim().is_empty()
        {
            self.worker_id = id;
        }
        self
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".to_string());
    format!("{host}:{}", std::process::id())
}

/// The connectors the engine may use, by platform.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    publishers: HashMap<Platform, Arc<dyn Publisher>>,
    /// Token keepers for platforms without a publishing connector, or whose connector does not
    /// refresh: used by the refresh and health rounds (and the refresh after a 401) only, never
    /// to claim deliveries.
    keepers: HashMap<Platform, Arc<dyn Publisher>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn register(&mut self, publisher: Arc<dyn Publisher>) {
        self.publishers.insert(publisher.platform(), publisher);
    }

    pub fn get(&self, platform: Platform) -> Option<&Arc<dyn Publisher>> {
        self.publishers.get(&platform)
    }

    /// Platforms with a connector, in a stable order.
    pub fn platforms(&self) -> Vec<Platform> {
        let mut p: Vec<Platform> = self.publishers.keys().copied().collect();
        p.sort();
        p
    }

    /// Registers a connector that only refreshes and checks tokens (no publishing), for a
    /// platform without a publisher or one whose publisher does not refresh (LinkedIn). It
    /// takes precedence over the platform's publisher for refreshes and identity checks.
    pub fn register_keeper(&mut self, keeper: Arc<dyn Publisher>) {
        self.keepers.insert(keeper.platform(), keeper);
    }

    /// The connector that refreshes and checks `platform`'s tokens: its keeper, else its
    /// publisher.
    pub fn keeper(&self, platform: Platform) -> Option<&Arc<dyn Publisher>> {
        self.keepers
            .get(&platform)
            .or_else(|| self.publishers.get(&platform))
    }

    /// Platforms whose tokens this registry can keep (publishers and keepers), in order.
    pub fn kept_platforms(&self) -> Vec<Platform> {
        let mut p: Vec<Platform> = self
            .publishers
            .keys()
            .chain(self.keepers.keys())
            .copied()
            .collect();
        p.sort();
        p.dedup();
        p
    }
}

/// What one hub's loop needs, shared with its delivery tasks.
#[derive(Debug)]
pub(crate) struct HubContext {
    pub hub: Hub,
    pub cipher: TokenCipher,
    pub registry: Registry,
    pub config: EngineConfig,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
}

/// The worker.
#[derive(Debug)]
pub struct Engine {
    hubs: Vec<Hub>,
    cipher: TokenCipher,
    registry: Registry,
    config: EngineConfig,
    metrics: Arc<Metrics>,
}

/// Ask a running engine to stop: it stops claiming, finishes or releases what is in flight.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl Engine {
    pub fn new(
        hubs: Vec<Hub>,
        cipher: TokenCipher,
        registry: Registry,
        config: EngineConfig,
    ) -> Engine {
        Engine {
            hubs,
            cipher,
            registry,
            config,
            metrics: Arc::new(Metrics::default()),
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` is signalled (or, with `once`, until nothing is due).
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), psn_store::StoreError> {
        let mut tasks = JoinSet::new();
        for hub in self.hubs {
            let ctx = Arc::new(HubContext {
                hub,
                cipher: self.cipher.clone(),
                registry: self.registry.clone(),
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                shutdown: shutdown.clone(),
            });
            tasks.spawn(run_hub(ctx));
        }
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(e) => tracing::error!(error = %e, "a hub loop panicked"),
            }
        }
        result
    }

    /// A shutdown channel for [`Engine::run`].
    pub fn shutdown_channel() -> (ShutdownHandle, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (ShutdownHandle(tx), rx)
    }
}

async fn run_hub(ctx: Arc<HubContext>) -> Result<(), psn_store::StoreError> {
    let platforms = ctx.registry.platforms();
    let finished = Arc::new(Notify::new());
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut shutdown = ctx.shutdown.clone();
    let mut listener = ctx.hub.listen().await?;
    ctx.hub.refresh_planner_statistics().await?;
    // Token refresh runs beside publishing (a slow platform must not delay posts): one round
    // at a time, the first when the loop starts.
    let mut refreshing: Option<JoinHandle<()>> = None;
    let mut next_refresh = Instant::now();
    let mut next_media = Instant::now();
    tracing::info!(hub = ctx.hub.name(), worker = %ctx.config.worker_id, "worker serving hub");
    loop {
        if *shutdown.borrow() {
            break;
        }
        while in_flight.try_join_next().is_some() {}
        if Instant::now() >= next_refresh {
            next_refresh = Instant::now() + ctx_refresh_every(&ctx);
            if refreshing.as_ref().is_none_or(|t| t.is_finished()) {
                let round = ctx.clone();
                refreshing = Some(tokio::spawn(async move {
                    refresh::run_round(&round).await;
                    health::run_round(&round).await;
                }));
            } else {
                tracing::debug!(
                    hub = ctx.hub.name(),
                    "the previous token refresh round is still running"
                );
            }
        }
        if Instant::now() >= next_media {
            next_media = Instant::now() + ctx.config.media_every.max(Duration::from_millis(100));
            if let Err(e) = media::run_round(&ctx.hub, &ctx.config, Utc::now()).await {
                tracing::warn!(hub = ctx.hub.name(), error = %e, "media lifecycle round failed; will try again");
            }
        }
        let now = Utc::now();
        let recovered = ctx.hub.recover_expired_leases(now).await?;
        if recovered > 0 {
            ctx.metrics.add(&ctx.metrics.recovered, recovered);
            tracing::warn!(
                hub = ctx.hub.name(),
                recovered,
                "recovered deliveries from expired leases"
            );
        }
        let mut claimed_any = false;
        while in_flight.len() < ctx.config.concurrency.max(1) && !*shutdown.borrow() {
            match ctx
                .hub
                .claim_next(
                    &ctx.config.worker_id,
                    &platforms,
                    Utc::now(),
                    ctx.config.lease,
                )
                .await?
            {
                Some(delivery) => {
                    claimed_any = true;
                    ctx.metrics.add(&ctx.metrics.claimed, 1);
                    let ctx = ctx.clone();
                    let finished = finished.clone();
                    in_flight.spawn(async move {
                        process::run(&ctx, delivery).await;
                        finished.notify_one();
                    });
                }
                None => break,
            }
        }
        ctx.metrics.set_in_flight(ctx.hub.name(), in_flight.len());
        let next_due = ctx.hub.next_due_at(&platforms).await?;
        let now = Utc::now();
        let due_now = next_due.is_some_and(|t| t <= now);
        if ctx.config.once && in_flight.is_empty() && !claimed_any && !due_now {
            break;
        }
        if ctx.config.once && in_flight.is_empty() && !claimed_any && due_now {
            // Due but not claimable (breaker open, account busy or blocked): nothing more now.
            break;
        }
        let mut sleep = ctx.config.poll;
        // Sleep until the next due time when it is in the future. A delivery already due that
        // could not be claimed (account busy or needing re-authorization, breaker open, budget
        // spent) waits for the poll or a wake-up; waking every few ms would spin.
        if let Some(t) = next_due.filter(|t| *t > now) {
            let until = (t - now).to_std().unwrap_or(Duration::ZERO);
            sleep = sleep.min(until.max(Duration::from_millis(5)));
        }
        sleep = sleep.min(
            next_refresh
                .min(next_media)
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(5)),
        );
        if claimed_any && in_flight.len() < ctx.config.concurrency {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = finished.notified() => {}
            _ = shutdown.changed() => {}
            _ = listener.recv() => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
    if let Some(task) = refreshing
        && let Err(e) = task.await
    {
        tracing::error!(hub = ctx.hub.name(), error = %e, "the token refresh task panicked");
    }
    ctx.metrics.set_in_flight(ctx.hub.name(), 0);
    tracing::info!(hub = ctx.hub.name(), "worker stopped serving hub");
    Ok(())
}

/// The refresh interval, at least 100 ms (a zero interval would query in a loop).
fn ctx_refresh_every(ctx: &HubContext) -> Duration {
    ctx.config.refresh_every.max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use psn_platforms::oauth::TokenKeeper;
    use psn_platforms::publish::linkedin::LinkedInPublisher;

    #[test]
    fn a_keeper_takes_precedence_over_the_publisher_for_tokens() {
        let mut r = Registry::new();
        r.register(Arc::new(LinkedInPublisher::new("http://127.0.0.1:1")));
        let keeper = r.keeper(Platform::Linkedin).expect("the publisher");
        assert!(!keeper.capabilities().refresh);
        r.register_keeper(Arc::new(TokenKeeper::new(Platform::Linkedin)));
        let keeper = r.keeper(Platform::Linkedin).expect("the keeper");
        assert!(keeper.capabilities().refresh);
        let publisher = r.get(Platform::Linkedin).expect("the publisher");
        assert!(
            publisher.capabilities().reconcile,
            "deliveries go to the publisher"
        );
        assert_eq!(r.platforms(), vec![Platform::Linkedin]);
        assert_eq!(r.kept_platforms(), vec![Platform::Linkedin]);
    }
}

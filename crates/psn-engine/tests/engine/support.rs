//! A hub (SQLite in a temporary folder, or a throwaway PostgreSQL database), a token cipher,
//! a stateful fake X, and ways to run the engine against them and check what X ended up with.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use psn_domain::{DeliveryStatus, Platform, PostStatus};
use psn_engine::{Engine, EngineConfig, Metrics, Registry, ShutdownHandle};
use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::x::XPublisher;
use psn_store::testing::ThrowawayDatabase;
use psn_store::{
    Account, Hub, NewAccount, NewDelivery, NewPost, Post, PostFilter, Secret, TokenCipher, TokenSet,
};
use psn_testkit::{FakePost, FakeX};
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// Which database the hub lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A generous bound for anything that should take a second or two.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One test's world: a hub, its cipher, and a fake X with a high posting limit.
#[derive(Debug)]
pub struct World {
    pub hub: Hub,
    pub cipher: TokenCipher,
    pub fake: FakeX,
    dir: Option<TempDir>,
    db: Option<ThrowawayDatabase>,
    seq: std::sync::atomic::AtomicUsize,
}

impl World {
    pub async fn new(db: Db) -> World {
        let fake = FakeX::start().await;
        fake.set_post_rate_limit(1_000_000);
        let cipher =
            TokenCipher::from_base64(&TokenCipher::generate_key_base64()).expect("a cipher");
        let (hub, dir, db) = match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("hub.db").display());
                let hub = Hub::open("personal", &url).await.expect("open sqlite hub");
                (hub, Some(dir), None)
            }
            Db::Postgres => {
                let db = ThrowawayDatabase::create().await;
                let hub = Hub::open("personal", &db.url)
                    .await
                    .expect("open postgres hub");
                (hub, None, Some(db))
            }
        };
        World {
            hub,
            cipher,
            fake,
            dir,
            db,
            seq: Default::default(),
        }
    }

    /// The PostgreSQL hub's URL (None on SQLite).
    pub fn url(&self) -> Option<String> {
        self.db.as_ref().map(|db| db.url.clone())
    }

    /// Runs one SQL statement on the hub's database, behind the store's back (tests use it to
    /// age accounts and tokens).
    pub async fn sql(&self, sql: &str) {
        use sqlx::Connection;
        match (&self.dir, &self.db) {
            (Some(dir), _) => {
                let url = format!("sqlite://{}", dir.path().join("hub.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect sqlite");
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
                conn.close().await.ok();
            }
            (None, Some(db)) => {
                let mut conn = sqlx::PgConnection::connect(&db.url)
                    .await
                    .expect("connect postgres");
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
                conn.close().await.ok();
            }
            (None, None) => unreachable!("a world has a database"),
        }
    }

    /// Closes the hub and drops the throwaway database.
    pub async fn finish(self) {
        self.hub.close().await;
        if let Some(db) = self.db {
            db.drop_database().await;
        }
        drop(self.dir);
    }

    /// Connects an X account `handle` (fake user id `user_id`) with access token
    /// `tok-<handle>` and refresh token `ref-<handle>`, both known to the fake.
    pub async fn connect_x(&self, user_id: &str, handle: &str) -> Account {
        let access = format!("tok-{handle}");
        let refresh = format!("ref-{handle}");
        self.fake.add_account(user_id, handle, &access);
        self.fake.add_refresh_token(user_id, &refresh);
        self.connect_x_with(user_id, handle, &access, Some(&refresh))
            .await
    }

    /// Connects an X account with the given tokens, registering nothing in the fake.
    pub async fn connect_x_with(
        &self,
        user_id: &str,
        handle: &str,
        access: &str,
        refresh: Option<&str>,
    ) -> Account {
        let (account, _) = self
            .hub
            .upsert_account(
                &NewAccount {
                    platform: Platform::X,
                    handle: handle.to_string(),
                    external_id: user_id.to_string(),
                    service_url: String::new(),
                    tokens: TokenSet {
                        access_token: Secret::new(access),
                        refresh_token: refresh.map(Secret::new),
                    },
                    expires_at: Some(Utc::now() + chrono::Duration::hours(2)),
                    created_by: "tester".to_string(),
                },
                &self.cipher,
            )
            .await
            .expect("connect account");
        account
    }

    /// Schedules a post at `run_at` to `accounts`, with these segments on each.
    pub async fn schedule_at(
        &self,
        segments: &[String],
        accounts: &[&Account],
        run_at: DateTime<Utc>,
    ) -> Post {
        self.hub
            .create_post(&NewPost {
                created_by: "tester".to_string(),
                idempotency_key: None,
                phase: PostStatus::Scheduled,
                body: segments.join("\n\n"),
                language: Some("en".parse().expect("language")),
                media: serde_json::json!([]),
                options: serde_json::json!({"thread": segments.len() > 1}),
                run_at: Some(run_at),
                deliveries: accounts
                    .iter()
                    .map(|a| NewDelivery {
                        account_id: a.id.clone(),
                        platform: Platform::X,
                        segments: segments.to_vec(),
                    })
                    .collect(),
            })
            .await
            .expect("create post")
            .into_post()
    }

    /// Schedules a post due now.
    pub async fn schedule(&self, segments: &[String], accounts: &[&Account]) -> Post {
        self.schedule_at(segments, accounts, Utc::now()).await
    }

    /// `n` unique segment texts for a new post.
    pub fn texts(&self, n: usize) -> Vec<String> {
        let post = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (0..n)
            .map(|i| {
                if n == 1 {
                    format!("Post {post}: exactly once, please.")
                } else {
                    format!(
                        "Post {post}, part {}/{n}: a thread that stays in order.",
                        i + 1
                    )
                }
            })
            .collect()
    }

    /// A registry with the X connector pointed at the fake, with this HTTP timeout.
    pub fn registry(&self, timeout: Duration) -> Registry {
        let mut r = Registry::new();
        r.register(Arc::new(XPublisher::with_client(
            self.fake.base_url(),
            client_with_timeout(timeout),
        )));
        r
    }

    /// Runs an engine with `config` (forced to `once`) to completion.
    pub async fn run_once(&self, config: EngineConfig) -> Arc<Metrics> {
        let engine = Engine::new(
            vec![self.hub.clone()],
            self.cipher.clone(),
            self.registry(Duration::from_secs(10)),
            EngineConfig {
                once: true,
                ..config
            },
        );
        let metrics = engine.metrics();
        let (_handle, rx) = Engine::shutdown_channel();
        tokio::time::timeout(PATIENCE, engine.run(rx))
            .await
            .expect("a once run finishes")
            .expect("the engine ran");
        metrics
    }

    /// Starts an engine in the background.
    pub fn spawn(&self, config: EngineConfig) -> Running {
        self.spawn_with(config, Duration::from_secs(10))
    }

    /// Starts an engine in the background whose HTTP client gives up after `timeout`.
    pub fn spawn_with(&self, config: EngineConfig, timeout: Duration) -> Running {
        let engine = Engine::new(
            vec![self.hub.clone()],
            self.cipher.clone(),
            self.registry(timeout),
            config,
        );
        let metrics = engine.metrics();
        let (handle, rx) = Engine::shutdown_channel();
        let task = tokio::spawn(engine.run(rx));
        Running {
            handle,
            task,
            metrics,
        }
    }

    /// Every post, soonest first.
    pub async fn posts(&self) -> Vec<Post> {
        self.hub
            .posts(&PostFilter::default())
            .await
            .expect("list posts")
    }

    /// Whether every delivery of every post is published.
    pub async fn all_published(&self) -> bool {
        self.posts()
            .await
            .iter()
            .flat_map(|p| &p.deliveries)
            .all(|d| d.status == DeliveryStatus::Published)
    }

    /// Attempt rows of every delivery.
    pub async fn attempt_count(&self) -> usize {
        let mut n = 0;
        for p in self.posts().await {
            let p = self.hub.post_with_attempts(&p.id).await.expect("attempts");
            n += p.deliveries.iter().map(|d| d.attempts.len()).sum::<usize>();
        }
        n
    }

    /// Asserts that every delivery is published and that X has each of its segments exactly
    /// once, chained (segment i+1 replies to segment i), and nothing else.
    pub async fn assert_published_exactly_once(&self) {
        let posts = self.posts().await;
        let fake_posts = self.fake.posts();
        assert_exactly_once(
            &posts,
            &self.hub.accounts().await.expect("accounts"),
            &fake_posts,
        );
    }
}

/// A background engine.
#[derive(Debug)]
pub struct Running {
    pub handle: ShutdownHandle,
    pub task: JoinHandle<Result<(), psn_store::StoreError>>,
    pub metrics: Arc<Metrics>,
}

impl Running {
    /// Asks it to stop and waits (bounded) for it to return cleanly.
    pub async fn stop(self) -> Arc<Metrics> {
        self.handle.shutdown();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the engine stops")
            .expect("the engine task did not panic")
            .expect("the engine returned Ok");
        self.metrics
    }
}

/// Polls `check` every 20 ms until it is true; panics with `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fast timings for tests: short lease, poll, retries and reconcile delay.
pub fn fast_config(worker: &str) -> EngineConfig {
    EngineConfig {
        worker_id: worker.to_string(),
        lease: Duration::from_secs(5),
        concurrency: 4,
        poll: Duration::from_millis(50),
        retry_base: Duration::from_millis(20),
        retry_cap: Duration::from_millis(200),
        deadline: Duration::from_secs(3600),
        reconcile_delay: Duration::from_millis(50),
        breaker_threshold: 5,
        breaker_open: Duration::from_millis(500),
        // X's real budget (100 per 15 minutes) is not what these tests are about.
        publish_budget: Some(None),
        ..EngineConfig::default()
    }
}

/// Asserts that every delivery of `posts` is published, its post too, and that `fake` holds
/// each segment exactly once, threads chained, the delivery's id and URL those of the first
/// segment — and no post that psn did not ask for.
pub fn assert_exactly_once(posts: &[Post], accounts: &[Account], fake: &[FakePost]) {
    let users: HashMap<String, &Account> = accounts.iter().map(|a| (a.id.to_string(), a)).collect();
    // (author, text) → every fake post with them.
    let mut by_text: HashMap<(&str, &str), Vec<&FakePost>> = HashMap::new();
    for p in fake {
        by_text
            .entry((p.author_id.as_str(), p.text.as_str()))
            .or_default()
            .push(p);
    }
    let mut expected = 0;
    for post in posts {
        assert_eq!(
            post.status,
            PostStatus::Published,
            "post {} is {}: {:?}",
            post.id,
            post.status,
            post.deliveries
                .iter()
                .map(|d| (d.status, d.last_error.clone()))
                .collect::<Vec<_>>()
        );
        for d in &post.deliveries {
            assert_eq!(
                d.status,
                DeliveryStatus::Published,
                "delivery {} of post {}: {:?}",
                d.id,
                post.id,
                d.last_error
            );
            let account = users[d.account.as_str()];
            let mut previous: Option<&FakePost> = None;
            for (i, text) in d.segments.iter().enumerate() {
                expected += 1;
                let found = by_text
                    .get(&(account.external_id.as_str(), text.as_str()))
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(
                    found.len(),
                    1,
                    "segment {i} of delivery {} ({text:?}) is on X {} times",
                    d.id,
                    found.len()
                );
                let on_x = found[0];
                assert_eq!(
                    on_x.reply_to.as_deref(),
                    previous.map(|p| p.id.as_str()),
                    "segment {i} of delivery {} does not reply to segment {}",
                    d.id,
                    i.saturating_sub(1)
                );
                if i == 0 {
                    assert_eq!(d.external_id.as_deref(), Some(on_x.id.as_str()));
                    assert_eq!(
                        d.url.as_deref(),
                        Some(XPublisher::post_url(&account.handle, &on_x.id).as_str())
                    );
                    assert!(d.published_at.is_some());
                }
                previous = Some(on_x);
            }
        }
    }
    assert_eq!(
        fake.len(),
        expected,
        "X has {} posts, psn asked for {expected}",
        fake.len()
    );
}

//! The contract every publishing connector keeps, run against each platform's strict fake over
//! real HTTP. One generic test per promise; [`contract_suite!`] instantiates them for a
//! [`Target`] (a connector and its fake). A new connector joins by implementing [`Target`] and
//! adding one `contract_suite!` line.
//!
//! The promises: what the connector publishes is what the platform holds; threads chain; every
//! injected fault lands in the engine's class for it (transient, rate limited, authorization,
//! permanent with the platform's reason, ambiguous after a write whose answer was lost);
//! reconcile finds a lost write exactly once and never invents one; capabilities say the truth;
//! validation stops over-long text before any request; no error shows a token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use psn_domain::Platform;
use psn_platforms::publish::bluesky::BlueskyPublisher;
use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::mastodon::MastodonPublisher;
use psn_platforms::publish::x::XPublisher;
use psn_platforms::publish::{
    AccessToken, AccountContext, PublishError, Published, Publisher, SegmentRequest,
};
use psn_platforms::rules::ValidationRequest;
use psn_testkit::bluesky::FakeBluesky;
use psn_testkit::mastodon::FakeMastodon;
use psn_testkit::{FakeX, Fault, FaultKind};

/// A post as a fake holds it, in the fake's own terms.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub text: String,
    pub reply_to: Option<String>,
}

/// A connector and its fake, with one account.
#[async_trait]
pub trait Target: Sized + Send + Sync {
    const PLATFORM: Platform;

    /// A fresh fake with one account whose token is [`Target::token`].
    async fn start() -> Self;

    /// The connector, pointed at the fake, with this request timeout.
    fn publisher(&self, timeout: Duration) -> Arc<dyn Publisher>;

    /// The account, authenticated with `token`.
    fn account_with(&self, token: &str) -> AccountContext;

    /// The valid token of the fake's account.
    fn token(&self) -> String;

    /// A fault that hits the call that creates a post.
    fn create_fault(&self, kind: FaultKind) -> Fault;

    fn inject(&self, fault: Fault);

    /// The posts the fake holds, oldest first.
    fn posts(&self) -> Vec<Entry>;

    /// Requests the fake received (control endpoints excluded).
    fn request_count(&self) -> usize;

    /// Whether `published` names `entry` (most platforms: the same id).
    fn names(&self, published: &Published, entry: &Entry) -> bool {
        published.external_id == entry.id
    }

    fn account(&self) -> AccountContext {
        self.account_with(&self.token())
    }
}

fn segment<'a>(
    text: &'a str,
    index: usize,
    count: usize,
    reply_to: Option<&'a str>,
    root: Option<&'a str>,
    key: &'a str,
) -> SegmentRequest<'a> {
    SegmentRequest {
        text,
        index,
        count,
        reply_to,
        thread_root: root,
        idempotency_key: key,
        language: Some("en"),
        media_ids: &[],
    }
}

fn single<'a>(text: &'a str, key: &'a str) -> SegmentRequest<'a> {
    segment(text, 0, 1, None, None, key)
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn assert_no_secret<T: Target>(t: &T, err: &PublishError) {
    let token = t.token();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(&token), "token leaked: {text}");
    }
}

/// The one entry that `published` names.
fn entry_of<T: Target>(t: &T, published: &Published) -> Entry {
    let found: Vec<Entry> = t
        .posts()
        .into_iter()
        .filter(|e| t.names(published, e))
        .collect();
    assert_eq!(found.len(), 1, "{published:?} names one post: {found:?}");
    found.into_iter().next().unwrap()
}

pub async fn publishes_what_the_platform_then_holds<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    let text = "Contract: plain text, 100 % — ünïcode ✓";
    let published = p
        .publish_segment(&t.account(), &single(text, "contract/plain/0"))
        .await
        .unwrap();
    assert!(!published.external_id.is_empty());
    let entry = entry_of(&t, &published);
    assert_eq!(entry.text, text);
    assert_eq!(entry.reply_to, None);
    assert_eq!(t.posts().len(), 1);
    if let Some(url) = &published.url {
        assert!(
            url.starts_with("https://") || url.starts_with("http://127.0.0.1:"),
            "an absolute URL (the fake's own for a per-instance platform): {url}"
        );
    }
}

pub async fn threads_chain_each_segment_to_the_previous<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    if !p.capabilities().threads {
        return;
    }
    let texts = [
        "Contract thread 1/3",
        "Contract thread 2/3",
        "Contract thread 3/3",
    ];
    let keys = [
        "contract/thread/0",
        "contract/thread/1",
        "contract/thread/2",
    ];
    let mut published: Vec<Published> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let parent = published.last().map(|p| p.external_id.clone());
        let root = published.first().map(|p| p.external_id.clone());
        let s = segment(text, i, 3, parent.as_deref(), root.as_deref(), keys[i]);
        published.push(p.publish_segment(&t.account(), &s).await.unwrap());
    }
    let entries: Vec<Entry> = published.iter().map(|p| entry_of(&t, p)).collect();
    assert_eq!(entries[0].reply_to, None);
    for i in 1..3 {
        assert_eq!(entries[i].text, texts[i]);
        assert_eq!(
            entries[i].reply_to.as_deref(),
            Some(entries[i - 1].id.as_str()),
            "segment {i} replies to segment {}",
            i - 1
        );
    }
}

pub async fn a_server_error_is_transient_and_creates_nothing<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    t.inject(t.create_fault(FaultKind::ServerError));
    let err = p
        .publish_segment(&t.account(), &single("Contract 5xx", "contract/5xx/0"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    assert_no_secret(&t, &err);
    assert!(t.posts().is_empty());
}

pub async fn a_rate_limit_is_rate_limited_with_its_reset<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    t.inject(t.create_fault(FaultKind::RateLimit {
        retry_after_secs: 120,
    }));
    let before = chrono::Utc::now();
    let err = p
        .publish_segment(&t.account(), &single("Contract 429", "contract/429/0"))
        .await
        .unwrap_err();
    match &err {
        PublishError::RateLimited {
            reset_at: Some(at), ..
        } => assert!(
            *at >= before + chrono::Duration::seconds(60),
            "the reset the platform gave is kept: {at}"
        ),
        other => panic!("expected RateLimited with a reset, got {other:?}"),
    }
    assert!(t.posts().is_empty());
}

pub async fn a_refused_token_is_an_authorization_error<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    let err = p
        .publish_segment(
            &t.account_with("sEcReT-unknown-token-0000"),
            &single("Contract 401", "contract/401/0"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("sEcReT-unknown-token-0000"), "{text}");

    t.inject(t.create_fault(FaultKind::Unauthorized));
    let err = p
        .publish_segment(&t.account(), &single("Contract 401", "contract/401/1"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert_no_secret(&t, &err);
    assert!(t.posts().is_empty());
}

pub async fn a_content_refusal_is_permanent_with_the_platform_reason<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    t.inject(t.create_fault(FaultKind::BadRequest));
    let err = p
        .publish_segment(&t.account(), &single("Contract 400", "contract/400/0"))
        .await
        .unwrap_err();
    match &err {
        PublishError::Permanent { message } => {
            assert!(!message.trim().is_empty(), "the platform's reason is kept")
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert_no_secret(&t, &err);
    assert!(t.posts().is_empty());
}

pub async fn a_lost_answer_is_ambiguous_and_reconcile_finds_it_once<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    let text = "Contract: written, answer lost";
    let s = single(text, "contract/drop/0");
    t.inject(t.create_fault(FaultKind::DropAfterWrite));
    let err = p.publish_segment(&t.account(), &s).await.unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    assert_eq!(t.posts().len(), 1, "the platform wrote it");
    if !p.capabilities().reconcile {
        return;
    }
    let found = p
        .reconcile(&t.account(), &s)
        .await
        .unwrap()
        .expect("reconcile finds the written post");
    assert_eq!(entry_of(&t, &found).text, text);
    assert_eq!(t.posts().len(), 1, "reconcile writes nothing");
}

pub async fn reconcile_never_invents_a_post<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    if !p.capabilities().reconcile {
        let err = p
            .reconcile(&t.account(), &single("x", "contract/none/0"))
            .await
            .unwrap_err();
        assert!(matches!(err, PublishError::NotSupported { .. }), "{err:?}");
        return;
    }
    p.publish_segment(
        &t.account(),
        &single("Contract: another post", "contract/other/0"),
    )
    .await
    .unwrap();
    let found = p
        .reconcile(
            &t.account(),
            &single("Contract: never sent", "contract/none/0"),
        )
        .await
        .unwrap();
    assert_eq!(found, None);
}

pub async fn a_timeout_before_the_write_leaves_nothing_to_find<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(Duration::from_millis(300));
    let s = single("Contract: timed out", "contract/timeout/0");
    t.inject(t.create_fault(FaultKind::TimeoutBeforeWrite { ms: 1_000 }));
    let err = p.publish_segment(&t.account(), &s).await.unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Ambiguous { .. } | PublishError::Transient { .. }
        ),
        "{err:?}"
    );
    assert!(t.posts().is_empty());
    if p.capabilities().reconcile {
        let p = t.publisher(TIMEOUT);
        assert_eq!(p.reconcile(&t.account(), &s).await.unwrap(), None);
    }
}

pub async fn a_replayed_idempotency_key_creates_nothing_new<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    if !p.capabilities().idempotency_keys {
        return;
    }
    let s = single("Contract: sent twice", "contract/idem/0");
    let first = p.publish_segment(&t.account(), &s).await.unwrap();
    let second = p.publish_segment(&t.account(), &s).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(t.posts().len(), 1);
}

pub async fn validation_stops_overlong_text_before_any_request<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    let before = t.request_count();
    let text = "word ".repeat(20_000);
    let report = p.validate(&ValidationRequest::new(T::PLATFORM, &text));
    assert!(!report.valid, "{} refuses 100,000 characters", T::PLATFORM);
    assert_eq!(t.request_count(), before, "validation sends nothing");
}

pub async fn debug_output_shows_no_token<T: Target>() {
    let t = T::start().await;
    let p = t.publisher(TIMEOUT);
    let shown = format!("{p:?} {:?}", t.account());
    assert!(!shown.contains(&t.token()), "{shown}");
}

/// Instantiates every contract test for a target, in a module named `$name`.
macro_rules! contract_suite {
    ($name:ident, $target:ty) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn publishes_what_the_platform_then_holds() {
                super::publishes_what_the_platform_then_holds::<$target>().await
            }
            #[tokio::test]
            async fn threads_chain_each_segment_to_the_previous() {
                super::threads_chain_each_segment_to_the_previous::<$target>().await
            }
            #[tokio::test]
            async fn a_server_error_is_transient_and_creates_nothing() {
                super::a_server_error_is_transient_and_creates_nothing::<$target>().await
            }
            #[tokio::test]
            async fn a_rate_limit_is_rate_limited_with_its_reset() {
                super::a_rate_limit_is_rate_limited_with_its_reset::<$target>().await
            }
            #[tokio::test]
            async fn a_refused_token_is_an_authorization_error() {
                super::a_refused_token_is_an_authorization_error::<$target>().await
            }
            #[tokio::test]
            async fn a_content_refusal_is_permanent_with_the_platform_reason() {
                super::a_content_refusal_is_permanent_with_the_platform_reason::<$target>().await
            }
            #[tokio::test]
            async fn a_lost_answer_is_ambiguous_and_reconcile_finds_it_once() {
                super::a_lost_answer_is_ambiguous_and_reconcile_finds_it_once::<$target>().await
            }
            #[tokio::test]
            async fn reconcile_never_invents_a_post() {
                super::reconcile_never_invents_a_post::<$target>().await
            }
            #[tokio::test]
            async fn a_timeout_before_the_write_leaves_nothing_to_find() {
                super::a_timeout_before_the_write_leaves_nothing_to_find::<$target>().await
            }
            #[tokio::test]
            async fn a_replayed_idempotency_key_creates_nothing_new() {
                super::a_replayed_idempotency_key_creates_nothing_new::<$target>().await
            }
            #[tokio::test]
            async fn validation_stops_overlong_text_before_any_request() {
                super::validation_stops_overlong_text_before_any_request::<$target>().await
            }
            #[tokio::test]
            async fn debug_output_shows_no_token() {
                super::debug_output_shows_no_token::<$target>().await
            }
        }
    };
}

// --- X -----------------------------------------------------------------------------------

#[derive(Debug)]
pub struct XTarget {
    fake: FakeX,
}

const X_TOKEN: &str = "sEcReT-contract-x-token-0123456789";

#[async_trait]
impl Target for XTarget {
    const PLATFORM: Platform = Platform::X;

    async fn start() -> Self {
        let fake = FakeX::start().await;
        fake.add_account("100", "alice", X_TOKEN);
        XTarget { fake }
    }

    fn publisher(&self, timeout: Duration) -> Arc<dyn Publisher> {
        Arc::new(XPublisher::with_client(
            self.fake.base_url(),
            client_with_timeout(timeout),
        ))
    }

    fn account_with(&self, token: &str) -> AccountContext {
        AccountContext {
            external_id: "100".into(),
            handle: "@alice".into(),
            service_url: String::new(),
            access_token: AccessToken(token.into()),
        }
    }

    fn token(&self) -> String {
        X_TOKEN.into()
    }

    fn create_fault(&self, kind: FaultKind) -> Fault {
        Fault::on_create(kind)
    }

    fn inject(&self, fault: Fault) {
        self.fake.inject(fault);
    }

    fn posts(&self) -> Vec<Entry> {
        self.fake
            .posts()
            .into_iter()
            .map(|p| Entry {
                id: p.id,
                text: p.text,
                reply_to: p.reply_to,
            })
            .collect()
    }

    fn request_count(&self) -> usize {
        self.fake.request_count()
    }
}

contract_suite!(x, XTarget);

// --- Mastodon ----------------------------------------------------------------------------

#[derive(Debug)]
pub struct MastodonTarget {
    fake: FakeMastodon,
}

const MASTODON_TOKEN: &str = "sEcReT-contract-mastodon-token-0123456789";

#[async_trait]
impl Target for MastodonTarget {
    const PLATFORM: Platform = Platform::Mastodon;

    async fn start() -> Self {
        let fake = FakeMastodon::start().await;
        fake.add_account("109", "alice", MASTODON_TOKEN);
        MastodonTarget { fake }
    }

    fn publisher(&self, timeout: Duration) -> Arc<dyn Publisher> {
        Arc::new(MastodonPublisher::with_client(client_with_timeout(timeout)))
    }

    fn account_with(&self, token: &str) -> AccountContext {
        AccountContext {
            external_id: "109".into(),
            handle: "@alice@fake.example".into(),
            service_url: format!("{}/", self.fake.base_url()),
            access_token: AccessToken(token.into()),
        }
    }

    fn token(&self) -> String {
        MASTODON_TOKEN.into()
    }

    fn create_fault(&self, kind: FaultKind) -> Fault {
        Fault::on_status_create(kind)
    }

    fn inject(&self, fault: Fault) {
        self.fake.inject(fault);
    }

    fn posts(&self) -> Vec<Entry> {
        self.fake
            .posts()
            .into_iter()
            .map(|s| Entry {
                id: s.id,
                text: s.text,
                reply_to: s.in_reply_to_id,
            })
            .collect()
    }

    fn request_count(&self) -> usize {
        self.fake.request_count()
    }
}

contract_suite!(mastodon, MastodonTarget);

// --- Bluesky -----------------------------------------------------------------------------

#[derive(Debug)]
pub struct BlueskyTarget {
    fake: FakeBluesky,
}

/// The "token" of a Bluesky account is its app password; session JWTs stay inside the
/// connector.
const BLUESKY_PASSWORD: &str = "sEcReT-contract-bsky-app-password";
const BLUESKY_DID: &str = "did:plc:contract0000000000000000";

#[async_trait]
impl Target for BlueskyTarget {
    const PLATFORM: Platform = Platform::Bluesky;

    async fn start() -> Self {
        let fake = FakeBluesky::start().await;
        fake.add_account(BLUESKY_DID, "alice.test", BLUESKY_PASSWORD);
        BlueskyTarget { fake }
    }

    fn publisher(&self, timeout: Duration) -> Arc<dyn Publisher> {
        Arc::new(BlueskyPublisher::with_client(client_with_timeout(timeout)))
    }

    fn account_with(&self, token: &str) -> AccountContext {
        AccountContext {
            external_id: BLUESKY_DID.into(),
            handle: "alice.test".into(),
            service_url: self.fake.base_url(),
            access_token: AccessToken(token.into()),
        }
    }

    fn token(&self) -> String {
        BLUESKY_PASSWORD.into()
    }

    fn create_fault(&self, kind: FaultKind) -> Fault {
        // After a 401 on a live session the connector logs in again once and resends: the
        // refusal must repeat to be one.
        let times = if kind == FaultKind::Unauthorized {
            2
        } else {
            1
        };
        Fault::on_record_create(kind).times(times)
    }

    fn inject(&self, fault: Fault) {
        self.fake.inject(fault);
    }

    /// Ids as the connector gives them (`at://…|cid`), replies by their parent's.
    fn posts(&self) -> Vec<Entry> {
        self.fake
            .records()
            .into_iter()
            .map(|r| Entry {
                id: format!("{}|{}", r.uri, r.cid),
                text: r.text().to_owned(),
                reply_to: r.value.get("reply").map(|reply| {
                    format!(
                        "{}|{}",
                        reply["parent"]["uri"].as_str().unwrap_or(""),
                        reply["parent"]["cid"].as_str().unwrap_or("")
                    )
                }),
            })
            .collect()
    }

    fn request_count(&self) -> usize {
        self.fake.requests().len()
    }
}

contract_suite!(bluesky, BlueskyTarget);

//! The X connector against the fake X over real HTTP: threads, error classes for every
//! fault, reconcile after an ambiguous call, refresh, no secrets in errors, and request
//! bodies that conform to X's OpenAPI description.

use std::time::Duration;

use chrono::Utc;
use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::x::XPublisher;
use psn_platforms::publish::{
    AccessToken, AccountContext, PublishError, Published, Publisher, SegmentRequest,
};
use psn_testkit::{FakeX, Fault, FaultKind};
use serde_json::Value;

const TOKEN: &str = "sEcReT-access-TOKEN-alice-0123456789";
const REFRESH: &str = "sEcReT-refresh-TOKEN-alice-9876543210";

async fn fake() -> FakeX {
    let fake = FakeX::start().await;
    fake.add_account("100", "alice", TOKEN);
    fake.add_refresh_token("100", REFRESH);
    fake
}

fn account() -> AccountContext {
    AccountContext {
        external_id: "100".into(),
        handle: "@alice".into(),
        service_url: String::new(),
        access_token: AccessToken(TOKEN.into()),
    }
}

fn publisher(fake: &FakeX) -> XPublisher {
    XPublisher::with_client(fake.base_url(), client_with_timeout(Duration::from_secs(5)))
}

fn segment<'a>(text: &'a str, reply_to: Option<&'a str>) -> SegmentRequest<'a> {
    SegmentRequest {
        text,
        index: 0,
        count: 1,
        reply_to,
        thread_root: reply_to,
        idempotency_key: "post-1/account-1/segment-0",
        language: Some("en"),
        media_ids: &[],
    }
}

/// Every rendering of an error, which must never contain a token.
fn assert_no_secret(err: &PublishError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains(REFRESH), "refresh token leaked: {text}");
    }
}

#[tokio::test]
async fn publishes_a_thread_chained_by_reply_ids() {
    let fake = fake().await;
    let x = publisher(&fake);
    let caps = x.capabilities();
    assert!(caps.threads && caps.reconcile && caps.refresh && !caps.idempotency_keys);
    assert_eq!(caps.media_kinds.len(), 3);

    let texts = ["1/3 a thread", "2/3 continues", "3/3 ends"];
    let mut published: Vec<Published> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let reply_to = published.last().map(|p| p.external_id.clone());
        let root = published.first().map(|p| p.external_id.clone());
        let seg = SegmentRequest {
            index: i,
            count: 3,
            thread_root: root.as_deref(),
            ..segment(text, reply_to.as_deref())
        };
        published.push(x.publish_segment(&account(), &seg).await.unwrap());
    }
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    for (i, (post, p)) in posts.iter().zip(&published).enumerate() {
        assert_eq!(post.id, p.external_id);
        assert_eq!(post.text, texts[i]);
        assert_eq!(
            p.url.as_deref(),
            Some(format!("https://x.com/alice/status/{}", post.id).as_str())
        );
        let expected_parent = if i == 0 {
            None
        } else {
            Some(posts[i - 1].id.clone())
        };
        assert_eq!(post.reply_to, expected_parent);
    }
    assert_eq!(fake.request_count(), 3, "one creating call per segment");
}

#[tokio::test]
async fn every_fault_maps_to_its_class() {
    let fake = fake().await;
    let x = publisher(&fake);
    let acct = account();

    fake.inject(Fault::on_create(FaultKind::ServerError));
    let err = x
        .publish_segment(&acct, &segment("a", None))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    assert_no_secret(&err);

    fake.inject(Fault::on_create(FaultKind::RateLimit {
        retry_after_secs: 30,
    }));
    let before = Utc::now();
    let err = x
        .publish_segment(&acct, &segment("a", None))
        .await
        .unwrap_err();
    match &err {
        PublishError::RateLimited {
            reset_at: Some(reset),
            ..
        } => {
            let secs = (*reset - before).num_seconds();
            assert!((28..=32).contains(&secs), "reset in {secs} s");
        }
        other => panic!("expected RateLimited with reset_at, got {other:?}"),
    }
    assert_no_secret(&err);

    fake.inject(Fault::on_create(FaultKind::Unauthorized));
    let err = x
        .publish_segment(&acct, &segment("a", None))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert_no_secret(&err);

    fake.inject(Fault::on_create(FaultKind::BadRequest));
    let err = x
        .publish_segment(&acct, &segment("a", None))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Permanent {
            message: "One or more parameters to your request was invalid (injected by the fake)."
                .into()
        }
    );

    fake.inject(Fault::on_create(FaultKind::DropAfterWrite));
    let err = x
        .publish_segment(&acct, &segment("dropped", None))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    assert_no_secret(&err);

    // Slow but within the client's timeout: a normal success.
    fake.inject(Fault::on_create(FaultKind::Slow { ms: 100 }));
    let ok = x
        .publish_segment(&acct, &segment("slow", None))
        .await
        .unwrap();
    assert!(!ok.external_id.is_empty());

    let texts: Vec<String> = fake.posts().into_iter().map(|p| p.text).collect();
    assert_eq!(
        texts,
        ["dropped", "slow"],
        "only the dropped write and the slow one happened"
    );
}

#[tokio::test]
async fn timeouts_after_sending_are_ambiguous() {
    let fake = fake().await;
    let acct = account();
    // The client gives up first.
    let x = XPublisher::with_client(
        fake.base_url(),
        client_with_timeout(Duration::from_millis(300)),
    );
    fake.inject(Fault::on_create(FaultKind::TimeoutBeforeWrite {
        ms: 2_000,
    }));
    let err = x
        .publish_segment(&acct, &segment("t", None))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    assert_no_secret(&err);
    // The server gives up first (closes without answering).
    fake.inject(Fault::on_create(FaultKind::TimeoutBeforeWrite { ms: 50 }));
    let err = x
        .publish_segment(&acct, &segment("t", None))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    // A slow write the client stopped waiting for: ambiguous, and it did happen.
    fake.inject(Fault::on_create(FaultKind::Slow { ms: 600 }));
    let err = x
        .publish_segment(&acct, &segment("late write", None))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let found = x
        .reconcile(&acct, &segment("late write", None))
        .await
        .unwrap();
    assert_eq!(
        found.map(|p| p.external_id),
        fake.posts().first().map(|p| p.id.clone())
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let x = XPublisher::with_client(
        format!("http://{addr}"),
        client_with_timeout(Duration::from_secs(2)),
    );
    let err = x
        .publish_segment(&account(), &segment("a", None))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn reconcile_finds_a_dropped_segment_and_not_an_unsent_one() {
    let fake = fake().await;
    let x = publisher(&fake);
    let acct = account();
    let first = x
        .publish_segment(&acct, &segment("thread start & more", None))
        .await
        .unwrap();

    fake.inject(Fault::on_create(FaultKind::DropAfterWrite));
    let reply = segment("the reply, see example.com/page", Some(&first.external_id));
    let err = x.publish_segment(&acct, &reply).await.unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }));
    let written = fake.posts().last().unwrap().clone();

    let found = x
        .reconcile(&acct, &reply)
        .await
        .unwrap()
        .expect("the dropped segment is found");
    assert_eq!(found.external_id, written.id);
    assert_eq!(
        found.url,
        Some(format!("https://x.com/alice/status/{}", written.id))
    );
    // Same text but not a reply: not ours.
    assert_eq!(
        x.reconcile(&acct, &segment("the reply, see example.com/page", None))
            .await
            .unwrap(),
        None
    );
    // A different reply target: not ours.
    assert_eq!(
        x.reconcile(
            &acct,
            &segment("the reply, see example.com/page", Some("1"))
        )
        .await
        .unwrap(),
        None
    );
    // Never sent.
    assert_eq!(
        x.reconcile(&acct, &segment("never sent", None))
            .await
            .unwrap(),
        None
    );
    // A top-level post with an escaped character is found.
    let root = x
        .reconcile(&acct, &segment("thread start & more", None))
        .await
        .unwrap();
    assert_eq!(root.map(|p| p.external_id), Some(first.external_id.clone()));
    // The reconcile call asked for the reply references.
    let get = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "GET")
        .unwrap();
    assert_eq!(get.path, "/2/users/100/tweets");
    assert!(get.query.unwrap().contains("referenced_tweets"));
}

#[tokio::test]
async fn reconcile_failures_are_never_ambiguous() {
    let fake = fake().await;
    let x = publisher(&fake);
    let acct = account();
    let seg = segment("x", None);
    fake.inject(Fault::new(FaultKind::DropAfterWrite).method("GET"));
    let err = x.reconcile(&acct, &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    fake.inject(Fault::new(FaultKind::ServerError).method("GET"));
    assert!(matches!(
        x.reconcile(&acct, &seg).await.unwrap_err(),
        PublishError::Transient { .. }
    ));
    fake.inject(
        Fault::new(FaultKind::RateLimit {
            retry_after_secs: 5,
        })
        .method("GET"),
    );
    assert!(matches!(
        x.reconcile(&acct, &seg).await.unwrap_err(),
        PublishError::RateLimited { .. }
    ));
    fake.expire_token(TOKEN);
    let err = x.reconcile(&acct, &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert_no_secret(&err);
    let short = XPublisher::with_client(
        fake.base_url(),
        client_with_timeout(Duration::from_millis(200)),
    );
    fake.inject(Fault::new(FaultKind::TimeoutBeforeWrite { ms: 1_000 }).method("GET"));
    let err = short.reconcile(&acct, &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn content_refusals_are_permanent_with_the_platform_reason() {
    let fake = fake().await;
    let x = publisher(&fake);
    let acct = account();
    let long = "a".repeat(281);
    let err = x
        .publish_segment(&acct, &segment(&long, None))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Permanent {
            message: "Forbidden".into()
        }
    );
    x.publish_segment(&acct, &segment("once", None))
        .await
        .unwrap();
    let err = x
        .publish_segment(&acct, &segment("once", None))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Permanent {
            message: "You are not allowed to create a Tweet with duplicate content.".into()
        }
    );
    let err = x
        .publish_segment(&acct, &segment("orphan", Some("42")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PublishError::Permanent { message } if message.contains("42")),
        "{err:?}"
    );
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn expired_token_is_auth_and_refresh_rotates() {
    let fake = fake().await;
    let x = publisher(&fake).with_client_id("client-123");
    let acct = account();
    fake.expire_token(TOKEN);
    let err = x
        .publish_segment(&acct, &segment("a", None))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert_no_secret(&err);

    let tokens = x
        .refresh(&acct, &AccessToken(REFRESH.into()))
        .await
        .unwrap();
    let new_refresh = tokens
        .refresh_token
        .clone()
        .expect("X rotates refresh tokens");
    assert_ne!(new_refresh.0, REFRESH);
    assert_eq!(tokens.expires_in, Some(Duration::from_secs(7200)));
    assert!(
        !format!("{tokens:?}").contains(&tokens.access_token.0),
        "tokens are redacted in Debug"
    );
    let form = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/2/oauth2/token")
        .unwrap()
        .body;
    assert!(
        form.contains("grant_type=refresh_token") && form.contains("client_id=client-123"),
        "{form}"
    );

    // The spent refresh token is refused: Auth, without the token in the message.
    let err = x
        .refresh(&acct, &AccessToken(REFRESH.into()))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert_no_secret(&err);

    let renewed = AccountContext {
        access_token: tokens.access_token,
        ..acct
    };
    x.publish_segment(&renewed, &segment("after refresh", None))
        .await
        .unwrap();
    let next = x.refresh(&renewed, &new_refresh).await.unwrap();
    assert!(fake.token_valid(&next.access_token.0));
}

#[test]
fn publisher_debug_shows_no_token() {
    let x = XPublisher::new("http://127.0.0.1:9");
    let text = format!("{x:?} {:?}", account());
    assert!(!text.contains(TOKEN), "{text}");
}

/// The request bodies XPublisher sends validate against `CreatePostsRequest` (X's name for
/// the `POST /2/tweets` body; older descriptions called it `TweetCreateRequest`) in the X API
/// OpenAPI description, resolving `$ref`s within the whole document.
#[tokio::test]
async fn request_bodies_conform_to_the_openapi_schema() {
    let spec: Value = serde_json::from_str(include_str!("fixtures/x-api-openapi.json")).unwrap();
    let body_ref = spec["paths"]["/2/tweets"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(body_ref, "#/components/schemas/CreatePostsRequest");
    // The document as the root resource, with a root `$ref` to the request schema: draft 4
    // (OpenAPI 3.0's dialect) ignores the sibling keywords (`paths`, `components`…).
    let mut root = spec.clone();
    root.as_object_mut()
        .unwrap()
        .insert("$ref".into(), Value::String(body_ref));
    let validator = jsonschema::draft4::new(&root).expect("the schema compiles");
    // The validator is not vacuous.
    for bad in [
        serde_json::json!({"text": "x", "colour": "red"}),
        serde_json::json!({"text": 5}),
        serde_json::json!({"text": "x", "reply": {"in_reply_to_tweet_id": "abc"}}),
        serde_json::json!({"text": "x", "reply": {}}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad} should be invalid");
    }

    let fake = fake().await;
    let x = publisher(&fake);
    let acct = account();
    let first = x
        .publish_segment(&acct, &segment("schema check 1", None))
        .await
        .unwrap();
    x.publish_segment(
        &acct,
        &segment(
            "schema check 2 — ünïcode & \"quotes\"",
            Some(&first.external_id),
        ),
    )
    .await
    .unwrap();
    let bodies: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/2/tweets")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(bodies[1]["reply"]["in_reply_to_tweet_id"].is_string());
    for body in &bodies {
        let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{body}: {errors:?}");
    }
}

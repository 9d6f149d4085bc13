//! The Mastodon connector against the fake Mastodon over real HTTP: threads, error classes for
//! every fault, idempotency-key dedupe after a dropped connection, reconcile, no secrets in
//! errors, and request bodies that conform to the community Mastodon OpenAPI description.

use std::time::Duration;

use chrono::Utc;
use psn_platforms::publish::http::client_with_timeout;
use psn_platforms::publish::mastodon::MastodonPublisher;
use psn_platforms::publish::{
    AccessToken, AccountContext, PublishError, Published, Publisher, SegmentRequest,
};
use psn_testkit::mastodon::{FakeMastodon, Fault, FaultKind};
use serde_json::Value;

const TOKEN: &str = "sEcReT-mastodon-TOKEN-alice-0123456789";

async fn fake() -> FakeMastodon {
    let fake = FakeMastodon::start().await;
    fake.add_account("109", "alice", TOKEN);
    fake
}

fn account(fake: &FakeMastodon) -> AccountContext {
    AccountContext {
        external_id: "109".into(),
        handle: "@alice@fake.example".into(),
        service_url: format!("{}/", fake.base_url()),
        access_token: AccessToken(TOKEN.into()),
    }
}

fn publisher() -> MastodonPublisher {
    MastodonPublisher::with_client(client_with_timeout(Duration::from_secs(5)))
}

fn segment<'a>(text: &'a str, reply_to: Option<&'a str>, key: &'a str) -> SegmentRequest<'a> {
    SegmentRequest {
        text,
        index: 0,
        count: 1,
        reply_to,
        thread_root: reply_to,
        idempotency_key: key,
        language: Some("en"),
        media_ids: &[],
    }
}

/// Every rendering of an error, which must never contain the token.
fn assert_no_secret(err: &PublishError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
}

#[tokio::test]
async fn publishes_a_thread_chained_by_in_reply_to_id() {
    let fake = fake().await;
    let m = publisher();
    let caps = m.capabilities();
    assert!(caps.threads && caps.reconcile && caps.idempotency_keys && !caps.refresh);
    assert_eq!(caps.publish_budget, Some((300, Duration::from_secs(300))));

    let texts = ["1/3 a thread", "2/3 continues & <escapes>", "3/3 ends"];
    let keys = ["post-1/acct/0", "post-1/acct/1", "post-1/acct/2"];
    let mut published: Vec<Published> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let reply_to = published.last().map(|p| p.external_id.clone());
        let root = published.first().map(|p| p.external_id.clone());
        let seg = SegmentRequest {
            index: i,
            count: 3,
            thread_root: root.as_deref(),
            ..segment(text, reply_to.as_deref(), keys[i])
        };
        published.push(m.publish_segment(&account(&fake), &seg).await.unwrap());
    }
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    for (i, (post, p)) in posts.iter().zip(&published).enumerate() {
        assert_eq!(post.id, p.external_id);
        assert_eq!(post.text, texts[i]);
        assert_eq!(post.visibility, "public");
        assert_eq!(post.language.as_deref(), Some("en"));
        assert_eq!(post.idempotency_key.as_deref(), Some(keys[i]));
        // The URL is the one Mastodon answered.
        assert_eq!(
            p.url.as_deref(),
            Some(format!("{}/@alice/{}", fake.base_url(), post.id).as_str())
        );
        let expected_parent = (i > 0).then(|| posts[i - 1].id.clone());
        assert_eq!(post.in_reply_to_id, expected_parent);
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "one creating call per segment");
    for (r, key) in requests.iter().zip(keys) {
        assert_eq!(r.idempotency_key.as_deref(), Some(key));
        assert!(
            r.content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json"))
        );
    }
}

#[tokio::test]
async fn every_fault_maps_to_its_class() {
    let fake = fake().await;
    let m = publisher();
    let acct = account(&fake);

    fake.inject(Fault::on_status_create(FaultKind::ServerError));
    let err = m
        .publish_segment(&acct, &segment("a", None, "k1"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    assert_no_secret(&err);

    // Mastodon's reset is an ISO 8601 time and there is no Retry-After.
    fake.inject(Fault::on_status_create(FaultKind::RateLimit {
        retry_after_secs: 30,
    }));
    let before = Utc::now();
    let err = m
        .publish_segment(&acct, &segment("a", None, "k2"))
        .await
        .unwrap_err();
    match &err {
        PublishError::RateLimited {
            reset_at: Some(reset),
            message,
        } => {
            let secs = (*reset - before).num_seconds();
            assert!((28..=32).contains(&secs), "reset in {secs} s");
            assert_eq!(message, "Too many requests");
        }
        other => panic!("expected RateLimited with reset_at, got {other:?}"),
    }

    fake.inject(Fault::on_status_create(FaultKind::Unauthorized));
    let err = m
        .publish_segment(&acct, &segment("a", None, "k3"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Auth {
            message: "The access token is invalid".into()
        }
    );

    fake.inject(Fault::on_status_create(FaultKind::BadRequest));
    let err = m
        .publish_segment(&acct, &segment("a", None, "k4"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Permanent {
            message: "Validation failed: the request was refused (injected by the fake)".into()
        }
    );

    fake.inject(Fault::on_status_create(FaultKind::DropAfterWrite));
    let err = m
        .publish_segment(&acct, &segment("dropped", None, "k5"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    assert_no_secret(&err);

    fake.inject(Fault::on_status_create(FaultKind::Slow { ms: 100 }));
    let ok = m
        .publish_segment(&acct, &segment("slow", None, "k6"))
        .await
        .unwrap();
    assert!(!ok.external_id.is_empty());

    let texts: Vec<String> = fake.posts().into_iter().map(|p| p.text).collect();
    assert_eq!(texts, ["dropped", "slow"]);
}

#[tokio::test]
async fn timeouts_after_sending_are_ambiguous_and_refused_connections_transient() {
    let fake = fake().await;
    let acct = account(&fake);
    let short = MastodonPublisher::with_client(client_with_timeout(Duration::from_millis(300)));
    fake.inject(Fault::on_status_create(FaultKind::TimeoutBeforeWrite {
        ms: 2_000,
    }));
    let err = short
        .publish_segment(&acct, &segment("t", None, "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    assert_no_secret(&err);
    fake.inject(Fault::on_status_create(FaultKind::TimeoutBeforeWrite {
        ms: 50,
    }));
    let err = short
        .publish_segment(&acct, &segment("t", None, "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    assert!(fake.posts().is_empty());

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let gone = AccountContext {
        service_url: format!("http://{addr}"),
        ..acct
    };
    let err = publisher()
        .publish_segment(&gone, &segment("a", None, "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn resending_with_the_same_idempotency_key_after_a_drop_creates_nothing_new() {
    let fake = fake().await;
    let m = publisher();
    let acct = account(&fake);
    let root = m
        .publish_segment(&acct, &segment("root", None, "p/a/0"))
        .await
        .unwrap();
    let reply = segment("the reply", Some(&root.external_id), "p/a/1");
    fake.inject(Fault::on_status_create(FaultKind::DropAfterWrite));
    let err = m.publish_segment(&acct, &reply).await.unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }), "{err:?}");
    assert_eq!(fake.posts().len(), 2, "the dropped write happened");
    let written = fake.posts()[1].clone();

    // The resend carries the same key: Mastodon answers the first status.
    let again = m.publish_segment(&acct, &reply).await.unwrap();
    assert_eq!(again.external_id, written.id);
    assert_eq!(fake.posts().len(), 2, "the key deduplicated the resend");
    let keys: Vec<Option<String>> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys[1], keys[2]);

    // A different key is a different status.
    let other = m
        .publish_segment(
            &acct,
            &segment("the reply", Some(&root.external_id), "p/a/9"),
        )
        .await
        .unwrap();
    assert_ne!(other.external_id, written.id);
    assert_eq!(fake.posts().len(), 3);
}

#[tokio::test]
async fn reconcile_finds_a_dropped_segment_and_not_an_unsent_one() {
    let fake = fake().await;
    let m = publisher();
    let acct = account(&fake);
    let first = m
        .publish_segment(
            &acct,
            &segment("thread start & <more> \"quoted\" it's", None, "r0"),
        )
        .await
        .unwrap();
    let text = "the reply, see https://example.com/page?a=1&b=2\n\nsecond paragraph\nline";
    let reply = segment(text, Some(&first.external_id), "r1");
    fake.inject(Fault::on_status_create(FaultKind::DropAfterWrite));
    let err = m.publish_segment(&acct, &reply).await.unwrap_err();
    assert!(matches!(err, PublishError::Ambiguous { .. }));
    let written = fake.posts().last().unwrap().clone();

    let found = m
        .reconcile(&acct, &reply)
        .await
        .unwrap()
        .expect("the dropped segment is found");
    assert_eq!(found.external_id, written.id);
    assert_eq!(
        found.url,
        Some(format!("{}/@alice/{}", fake.base_url(), written.id))
    );
    // Same text but not a reply, or another reply target: not ours.
    assert_eq!(
        m.reconcile(&acct, &segment(text, None, "x")).await.unwrap(),
        None
    );
    assert_eq!(
        m.reconcile(&acct, &segment(text, Some("1"), "x"))
            .await
            .unwrap(),
        None
    );
    // Never sent.
    assert_eq!(
        m.reconcile(&acct, &segment("never sent", None, "x"))
            .await
            .unwrap(),
        None
    );
    // Escaped characters compare equal.
    let root = m
        .reconcile(
            &acct,
            &segment("thread start & <more> \"quoted\" it's", None, "x"),
        )
        .await
        .unwrap();
    assert_eq!(root.map(|p| p.external_id), Some(first.external_id));
    let get = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "GET")
        .unwrap();
    assert_eq!(get.path, "/api/v1/accounts/109/statuses");
    assert_eq!(get.query.as_deref(), Some("limit=40"));
}

#[tokio::test]
async fn reconcile_failures_are_never_ambiguous() {
    let fake = fake().await;
    let m = publisher();
    let acct = account(&fake);
    let seg = segment("x", None, "k");
    fake.inject(Fault::new(FaultKind::DropAfterWrite).method("GET"));
    let err = m.reconcile(&acct, &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Transient { .. }), "{err:?}");
    fake.inject(Fault::new(FaultKind::ServerError).method("GET"));
    assert!(matches!(
        m.reconcile(&acct, &seg).await.unwrap_err(),
        PublishError::Transient { .. }
    ));
    fake.inject(
        Fault::new(FaultKind::RateLimit {
            retry_after_secs: 5,
        })
        .method("GET"),
    );
    assert!(matches!(
        m.reconcile(&acct, &seg).await.unwrap_err(),
        PublishError::RateLimited {
            reset_at: Some(_),
            ..
        }
    ));
    fake.revoke_token(TOKEN);
    let err = m.reconcile(&acct, &seg).await.unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn content_refusals_are_permanent_with_the_platform_reason() {
    let fake = fake().await;
    let m = publisher();
    let acct = account(&fake);
    let long = "a".repeat(501);
    let err = m
        .publish_segment(&acct, &segment(&long, None, "l1"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Permanent {
            message: "Validation failed: Text character limit of 500 exceeded".into()
        }
    );
    // URLs count 23: 480 characters of text plus a long URL fit.
    let with_url = format!(
        "{} https://example.com/{}",
        "b".repeat(470),
        "p".repeat(100)
    );
    m.publish_segment(&acct, &segment(&with_url, None, "l2"))
        .await
        .unwrap();
    let err = m
        .publish_segment(&acct, &segment("orphan", Some("42"), "l3"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Permanent {
            message: "The post you are trying to reply to does not appear to exist.".into()
        }
    );
    let err = m
        .publish_segment(&acct, &segment("   ", None, "l4"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Permanent { .. }), "{err:?}");
    assert_eq!(fake.posts().len(), 1);

    let bad = AccountContext {
        access_token: AccessToken("sEcReT-revoked-token-zzz".into()),
        ..acct
    };
    let err = m
        .publish_segment(&bad, &segment("a", None, "l5"))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("sEcReT-revoked-token-zzz"));
}

#[test]
fn publisher_debug_and_refresh_show_no_token() {
    let m = MastodonPublisher::new();
    let acct = AccountContext {
        external_id: "1".into(),
        handle: "@a".into(),
        service_url: "https://mastodon.social".into(),
        access_token: AccessToken(TOKEN.into()),
    };
    let text = format!("{m:?} {acct:?}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn refresh_is_not_supported() {
    let fake = fake().await;
    let err = publisher()
        .refresh(&account(&fake), &AccessToken("r".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::NotSupported { .. }), "{err:?}");
}

/// The request bodies MastodonPublisher sends validate against the `POST /api/v1/statuses`
/// request schema of the community Mastodon OpenAPI description (OpenAPI 3.1, so JSON Schema
/// 2020-12), resolving `$ref`s within the whole document. The schema allows unknown fields
/// (no `additionalProperties: false`), so every field sent is also checked to be one the
/// schema names.
#[tokio::test]
async fn request_bodies_conform_to_the_openapi_schema() {
    let spec: Value = serde_json::from_str(include_str!("fixtures/mastodon-openapi.json")).unwrap();
    let operation = &spec["paths"]["/api/v1/statuses"]["post"];
    assert_eq!(operation["operationId"], "createStatus");
    assert!(
        operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
    );
    let body_schema = operation["requestBody"]["content"]["application/json"]["schema"].clone();
    assert!(body_schema["oneOf"].is_array());
    // The document as the root resource (for `$ref`s), with the body schema's `oneOf` at the
    // root: 2020-12 ignores the unknown sibling keywords (`paths`, `components`…).
    let mut root = spec.clone();
    let obj = root.as_object_mut().unwrap();
    obj.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    obj.insert("oneOf".into(), body_schema["oneOf"].clone());
    let validator = jsonschema::draft202012::new(&root).expect("the schema compiles");
    let schemas = &spec["components"]["schemas"];
    let mut known: Vec<String> = Vec::new();
    for name in ["BaseStatus", "TextStatus"] {
        let schema = &schemas[name];
        let parts = schema["allOf"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![schema.clone()]);
        for part in parts {
            if let Some(props) = part["properties"].as_object() {
                known.extend(props.keys().cloned());
            }
        }
    }
    for field in ["status", "in_reply_to_id", "language", "visibility"] {
        assert!(known.iter().any(|k| k == field), "{field} in {known:?}");
    }
    // The validator is not vacuous.
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"status": 5}),
        serde_json::json!({"status": "x", "visibility": "everyone"}),
        serde_json::json!({"status": "x", "in_reply_to_id": 12}),
        serde_json::json!({"status": "x", "language": ["en"]}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad} should be invalid");
    }

    let fake = fake().await;
    let m = publisher();
    let acct = account(&fake);
    let first = m
        .publish_segment(&acct, &segment("schema check 1", None, "s0"))
        .await
        .unwrap();
    let seg = SegmentRequest {
        language: None,
        ..segment(
            "schema check 2 — ünïcode & \"quotes\"",
            Some(&first.external_id),
            "s1",
        )
    };
    m.publish_segment(&acct, &seg).await.unwrap();
    let bodies: Vec<Value> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/statuses")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(bodies[1]["in_reply_to_id"].is_string());
    for body in &bodies {
        let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{body}: {errors:?}");
        for field in body.as_object().unwrap().keys() {
            assert!(known.contains(field), "{field} is not in the schema");
        }
    }
}

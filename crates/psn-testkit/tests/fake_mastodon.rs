//! The fake Mastodon behaves like Mastodon (strictly) and its faults do what they say, over
//! real HTTP.

use std::time::{Duration, Instant};

use psn_testkit::mastodon::{FakeMastodon, Fault, FaultKind};
use serde_json::{Value, json};

const TOKEN: &str = "token-alice";
const BOB: &str = "token-bob";

async fn fake() -> FakeMastodon {
    let fake = FakeMastodon::start().await;
    fake.add_account("1", "alice", TOKEN);
    fake.add_account("2", "bob", BOB);
    fake
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn create_as(
    fake: &FakeMastodon,
    token: &str,
    key: Option<&str>,
    body: Value,
) -> reqwest::Result<reqwest::Response> {
    let mut request = client()
        .post(format!("{}/api/v1/statuses", fake.base_url()))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await
}

async fn create(fake: &FakeMastodon, body: Value) -> (u16, Value) {
    status_and_body(create_as(fake, TOKEN, None, body).await.unwrap()).await
}

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn get(fake: &FakeMastodon, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().get(format!("{}{path}", fake.base_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    status_and_body(request.send().await.unwrap()).await
}

#[tokio::test]
async fn creates_statuses_with_rate_limit_headers_and_html_content() {
    let fake = fake().await;
    let r = create_as(&fake, TOKEN, None, json!({"status": "a & <b>"}))
        .await
        .unwrap();
    assert_eq!(r.headers()["x-ratelimit-limit"], "300");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "299");
    let reset = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        reset.len() == 27 && reset.ends_with('Z') && reset.as_bytes()[10] == b'T',
        "{reset}"
    );
    let (status, first) = status_and_body(r).await;
    assert_eq!(status, 200);
    assert_eq!(first["content"], "<p>a &amp; &lt;b&gt;</p>");
    assert_eq!(first["visibility"], "public");
    assert_eq!(first["in_reply_to_id"], Value::Null);
    assert_eq!(first["account"]["username"], "alice");
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(
        first["url"],
        json!(format!("{}/@alice/{id}", fake.base_url()))
    );
    let (status, second) = create(
        &fake,
        json!({"status": "line one\nline two", "in_reply_to_id": id, "language": "en"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(second["in_reply_to_id"], json!(id));
    assert_eq!(second["in_reply_to_account_id"], "1");
    assert_eq!(second["content"], "<p>line one<br />line two</p>");
    assert!(second["id"].as_str().unwrap().parse::<u64>().unwrap() > id.parse::<u64>().unwrap());

    // The timeline: newest first, HTML content, limit honored and capped at 40.
    let (status, timeline) = get(&fake, "/api/v1/accounts/1/statuses?limit=40", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second["id"].as_str().unwrap(), id.as_str()]);
    let (_, one) = get(&fake, "/api/v1/accounts/1/statuses?limit=1", None).await;
    assert_eq!(one.as_array().unwrap().len(), 1);
    let (status, _) = get(&fake, "/api/v1/accounts/1/statuses", Some("nope")).await;
    assert_eq!(status, 401);
    let (status, body) = get(&fake, "/api/v1/accounts/999/statuses", Some(TOKEN)).await;
    assert_eq!((status, body), (404, json!({"error": "Record not found"})));
    let (status, me) = get(&fake, "/api/v1/accounts/verify_credentials", Some(BOB)).await;
    assert_eq!((status, me["id"].clone()), (200, json!("2")));
}

#[tokio::test]
async fn refuses_what_mastodon_refuses() {
    let fake = fake().await;
    let r = client()
        .post(format!("{}/api/v1/statuses", fake.base_url()))
        .json(&json!({"status": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_body(r).await,
        (401, json!({"error": "The access token is invalid"}))
    );
    let (status, _) = status_and_body(
        create_as(&fake, "wrong", None, json!({"status": "x"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        create(&fake, json!({"status": "  "})).await,
        (
            422,
            json!({"error": "Validation failed: Text can't be blank"})
        )
    );
    assert_eq!(create(&fake, json!({})).await.0, 422);
    assert_eq!(create(&fake, json!({"status": 5})).await.0, 422);
    assert_eq!(
        create(&fake, json!({"status": "a".repeat(501)})).await,
        (
            422,
            json!({"error": "Validation failed: Text character limit of 500 exceeded"})
        )
    );
    // URLs count 23.
    let long_url = format!(
        "{} https://example.com/{}",
        "a".repeat(470),
        "p".repeat(200)
    );
    assert_eq!(create(&fake, json!({"status": long_url})).await.0, 200);
    assert_eq!(
        create(&fake, json!({"status": "x", "in_reply_to_id": "424242"})).await,
        (
            404,
            json!({"error": "The post you are trying to reply to does not appear to exist."})
        )
    );
    assert_eq!(
        create(&fake, json!({"status": "x", "visibility": "everyone"}))
            .await
            .0,
        422
    );
    // A misspelt field is refused rather than silently ignored.
    assert_eq!(
        create(&fake, json!({"status": "x", "in_reply_to": "1"})).await,
        (
            422,
            json!({"error": "Validation failed: unknown parameter in_reply_to"})
        )
    );
    assert_eq!(
        create(&fake, json!({"status": "x", "media_ids": ["1"]}))
            .await
            .0,
        422
    );
    assert_eq!(fake.posts().len(), 1);

    // The instance's limit is configurable and reported.
    let (_, instance) = get(&fake, "/api/v2/instance", None).await;
    assert_eq!(instance["configuration"]["statuses"]["max_characters"], 500);
    fake.set_max_characters(1000);
    let (_, instance) = get(&fake, "/api/v2/instance", None).await;
    assert_eq!(
        instance["configuration"]["statuses"]["max_characters"],
        1000
    );
    assert_eq!(
        instance["configuration"]["statuses"]["characters_reserved_per_url"],
        23
    );
    assert_eq!(
        create(&fake, json!({"status": "a".repeat(900)})).await.0,
        200
    );
}

#[tokio::test]
async fn accepts_form_bodies() {
    let fake = fake().await;
    let r = client()
        .post(format!("{}/api/v1/statuses", fake.base_url()))
        .bearer_auth(TOKEN)
        .form(&[("status", "from a form & more"), ("visibility", "unlisted")])
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(r).await;
    assert_eq!(status, 200, "{body}");
    let post = &fake.posts()[0];
    assert_eq!(post.text, "from a form & more");
    assert_eq!(post.visibility, "unlisted");
}

#[tokio::test]
async fn idempotency_keys_return_the_first_status_per_account() {
    let fake = fake().await;
    let (s1, first) = status_and_body(
        create_as(&fake, TOKEN, Some("key-1"), json!({"status": "once"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s1, 200);
    // Same key, even with another body: the first status, nothing created.
    let (s2, again) = status_and_body(
        create_as(&fake, TOKEN, Some("key-1"), json!({"status": "changed"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s2, 200);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["content"], "<p>once</p>");
    assert_eq!(fake.posts().len(), 1);
    // Another account with the same key: its own status.
    let (_, bobs) = status_and_body(
        create_as(&fake, BOB, Some("key-1"), json!({"status": "once"}))
            .await
            .unwrap(),
    )
    .await;
    assert_ne!(bobs["id"], first["id"]);
    // A failed request does not claim its key.
    let (s, _) = status_and_body(
        create_as(&fake, TOKEN, Some("key-2"), json!({"status": ""}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 422);
    let (s, ok) = status_and_body(
        create_as(&fake, TOKEN, Some("key-2"), json!({"status": "now valid"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, ok["content"].clone()), (200, json!("<p>now valid</p>")));
    assert_eq!(fake.posts().len(), 3);
    let keys: Vec<Option<String>> = fake
        .requests()
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys[0].as_deref(), Some("key-1"));
}

#[tokio::test]
async fn faults_do_what_they_say() {
    let fake = fake().await;
    fake.inject(Fault::on_status_create(FaultKind::ServerError));
    assert_eq!(create(&fake, json!({"status": "a"})).await.0, 503);
    fake.inject(Fault::on_status_create(FaultKind::Unauthorized));
    assert_eq!(create(&fake, json!({"status": "a"})).await.0, 401);
    fake.inject(Fault::on_status_create(FaultKind::BadRequest));
    assert_eq!(create(&fake, json!({"status": "a"})).await.0, 422);
    fake.inject(Fault::on_status_create(FaultKind::RateLimit {
        retry_after_secs: 60,
    }));
    let r = create_as(&fake, TOKEN, None, json!({"status": "a"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_none());
    assert!(r.headers().contains_key("x-ratelimit-reset"));
    assert!(fake.posts().is_empty(), "no fault so far wrote anything");

    // Faults on another path do not fire on create.
    fake.inject(Fault::new(FaultKind::ServerError).method("GET"));
    assert_eq!(create(&fake, json!({"status": "kept"})).await.0, 200);
    assert_eq!(get(&fake, "/api/v2/instance", None).await.0, 503);

    fake.inject(Fault::on_status_create(FaultKind::DropAfterWrite));
    let err = create_as(&fake, TOKEN, Some("k"), json!({"status": "dropped"}))
        .await
        .unwrap_err();
    assert!(!err.is_status());
    assert_eq!(fake.posts().len(), 2, "the dropped write happened");

    fake.inject(Fault::on_status_create(FaultKind::TimeoutBeforeWrite {
        ms: 100,
    }));
    let started = Instant::now();
    assert!(
        create_as(&fake, TOKEN, None, json!({"status": "lost"}))
            .await
            .is_err()
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(fake.posts().len(), 2, "nothing written before the timeout");

    fake.inject(Fault::on_status_create(FaultKind::Slow { ms: 100 }));
    let started = Instant::now();
    assert_eq!(create(&fake, json!({"status": "slow"})).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(100));

    // Random faults are reproducible and can be cleared.
    fake.set_random_faults(1.0, vec![FaultKind::ServerError], 7);
    assert_eq!(create(&fake, json!({"status": "r"})).await.0, 503);
    fake.clear_faults();
    assert_eq!(create(&fake, json!({"status": "r"})).await.0, 200);
}

#[tokio::test]
async fn control_endpoints_steer_the_fake() {
    let fake = fake().await;
    let c = client();
    let base = fake.base_url();
    let r = c
        .post(format!("{base}/_fake/accounts"))
        .json(&json!({"account_id": "3", "username": "carol", "token": "token-carol"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let r = c
        .post(format!("{base}/_fake/faults"))
        .json(&json!({"kind": "server_error", "path_prefix": "/api/v1/statuses"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (status, _) = status_and_body(
        create_as(&fake, "token-carol", None, json!({"status": "c"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    let (status, _) = status_and_body(
        create_as(&fake, "token-carol", None, json!({"status": "c"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let statuses: Value = c
        .get(format!("{base}/_fake/statuses"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(statuses[0]["account_id"], "3");
    let requests: Value = c
        .get(format!("{base}/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requests.as_array().unwrap().len(), 2);
    assert_eq!(fake.request_count(), 2, "control requests are not counted");
}

#[test]
fn starts_in_its_own_thread() {
    let fake = FakeMastodon::start_in_thread();
    // This test has no runtime of its own; the fake runs on its thread's.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = runtime.block_on(get(&fake, "/api/v2/instance", None));
    assert_eq!(status, 200);
    assert_eq!(body["configuration"]["statuses"]["max_characters"], 500);
}

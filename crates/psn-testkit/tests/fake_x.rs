//! The fake X behaves like X (strictly) and its faults do what they say, over real HTTP.

use std::time::{Duration, Instant};

use psn_testkit::{FakeX, Fault, FaultKind};
use serde_json::{Value, json};

const TOKEN: &str = "token-alice";

async fn fake() -> FakeX {
    let fake = FakeX::start().await;
    fake.add_account("100", "alice", TOKEN);
    fake
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn create(fake: &FakeX, body: Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
}

async fn status_and_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn creates_posts_with_increasing_ids_and_rate_limit_headers() {
    let fake = fake().await;
    let r = create(&fake, json!({"text": "first"})).await.unwrap();
    for h in [
        "x-rate-limit-limit",
        "x-rate-limit-remaining",
        "x-rate-limit-reset",
    ] {
        assert!(r.headers().contains_key(h), "{h}");
    }
    assert_eq!(r.headers()["x-rate-limit-remaining"], "99");
    let (status, body) = status_and_body(r).await;
    assert_eq!(status, 201);
    let first = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["text"], "first");
    let (status, body) = status_and_body(
        create(
            &fake,
            json!({"text": "second", "reply": {"in_reply_to_tweet_id": first}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let second = body["data"]["id"].as_str().unwrap().to_owned();
    assert!(second.parse::<u64>().unwrap() > first.parse::<u64>().unwrap());
    let posts = fake.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].reply_to.as_deref(), Some(first.as_str()));
    assert_eq!(posts[1].author_id, "100");
    assert_eq!(posts[1].created_seq, 2);
    assert_eq!(fake.request_count(), 2);
}

#[tokio::test]
async fn rejects_what_x_rejects() {
    let fake = fake().await;
    let url = format!("{}/2/tweets", fake.base_url());
    // No token, unknown token, expired token.
    let r = client()
        .post(&url)
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(r).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"})
    );
    let r = client()
        .post(&url)
        .bearer_auth("nope")
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Not JSON.
    let r = client()
        .post(&url)
        .bearer_auth(TOKEN)
        .body(r#"{"text":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Empty text, unknown field, malformed reply id, reply to an unknown post.
    for body in [
        json!({"text": "  "}),
        json!({"text": "x", "colour": "red"}),
        json!({"text": "x", "reply": {"in_reply_to_tweet_id": "abc"}}),
        json!({"text": "x", "reply": {"in_reply_to_tweet_id": "123"}}),
    ] {
        let (status, response) = status_and_body(create(&fake, body.clone()).await.unwrap()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            response["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{response}"
        );
    }
    // Over 280 weighted characters: 403 "Forbidden". 140 CJK characters weigh 280: accepted.
    let (status, body) = status_and_body(
        create(&fake, json!({"text": "a".repeat(281)}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["detail"].as_str()), (403, Some("Forbidden")));
    let (status, _) = status_and_body(
        create(&fake, json!({"text": "漢".repeat(140)}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = status_and_body(
        create(&fake, json!({"text": "漢".repeat(141)}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    // Duplicate content from the same author.
    let (status, body) = status_and_body(
        create(&fake, json!({"text": "漢".repeat(140)}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["detail"],
        "You are not allowed to create a Tweet with duplicate content."
    );
    // The same text from another author is fine.
    fake.add_account("200", "bob", "token-bob");
    let r = client()
        .post(&url)
        .bearer_auth("token-bob")
        .json(&json!({"text": "漢".repeat(140)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Expired token.
    fake.expire_token(TOKEN);
    assert!(!fake.token_valid(TOKEN));
    let (status, _) = status_and_body(create(&fake, json!({"text": "later"})).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn timeline_is_newest_first_and_strict_about_parameters() {
    let fake = fake().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let reply = ids
            .last()
            .map(|id: &String| json!({"in_reply_to_tweet_id": id}));
        let mut body = json!({"text": format!("post {i} & <more>")});
        if let Some(reply) = reply {
            body["reply"] = reply;
        }
        let (_, b) = status_and_body(create(&fake, body).await.unwrap()).await;
        ids.push(b["data"]["id"].as_str().unwrap().to_owned());
    }
    let url = format!("{}/2/users/100/tweets", fake.base_url());
    let get = |query: &'static str| {
        let url = format!("{url}?{query}");
        async move { status_and_body(client().get(url).bearer_auth(TOKEN).send().await.unwrap()).await }
    };
    // Default 10, newest first, no referenced_tweets unless asked.
    let (status, body) = get("").await;
    assert_eq!(status, 200);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 10);
    assert_eq!(data[0]["id"], ids[11].as_str());
    assert_eq!(data[0]["text"], "post 11 &amp; &lt;more&gt;");
    assert!(data[0].get("referenced_tweets").is_none());
    assert_eq!(body["meta"]["result_count"], 10);
    // max_results and fields.
    let (_, body) = get("max_results=5&tweet.fields=referenced_tweets,created_at,author_id").await;
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    assert_eq!(
        data[0]["referenced_tweets"],
        json!([{"type": "replied_to", "id": ids[10]}])
    );
    assert_eq!(data[0]["author_id"], "100");
    assert!(data[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let (_, body) = get("max_results=100&tweet.fields=referenced_tweets").await;
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 12);
    assert!(
        data[11].get("referenced_tweets").is_none(),
        "the first post is not a reply"
    );
    // Out of range, unknown parameter, unknown field.
    assert_eq!(get("max_results=4").await.0, 400);
    assert_eq!(get("max_results=101").await.0, 400);
    assert_eq!(get("colour=red").await.0, 400);
    assert_eq!(get("tweet.fields=nonsense").await.0, 400);
    // Auth required.
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // An account without posts.
    fake.add_account("300", "carol", "token-carol");
    let r = client()
        .get(format!("{}/2/users/300/tweets", fake.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_body(r).await.1,
        json!({"meta": {"result_count": 0}})
    );
}

#[tokio::test]
async fn users_me_and_token_refresh_rotation() {
    let fake = fake().await;
    fake.add_refresh_token("100", "refresh-1");
    let r = client()
        .get(format!("{}/2/users/me", fake.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let (_, body) = status_and_body(r).await;
    assert_eq!(body["data"]["id"], "100");
    assert_eq!(body["data"]["username"], "alice");

    let url = format!("{}/2/oauth2/token", fake.base_url());
    let refresh = |token: String| {
        let url = url.clone();
        async move {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("client_id", "cid"),
            ];
            status_and_body(client().post(url).form(&form).send().await.unwrap()).await
        }
    };
    let (status, body) = refresh("refresh-1".into()).await;
    assert_eq!(status, 200);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let next_refresh = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next_refresh, "refresh-1");
    assert!(fake.token_valid(&access));
    // The old refresh token is spent; the new one works once.
    let (status, body) = refresh("refresh-1".into()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(refresh(next_refresh.clone()).await.0, 200);
    assert_eq!(refresh(next_refresh).await.0, 400);
    // The new access token posts.
    let r = client()
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(&access)
        .json(&json!({"text": "with a refreshed token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn status_faults_answer_and_write_nothing() {
    let fake = fake().await;
    fake.inject(Fault::on_create(FaultKind::ServerError));
    let (status, body) = status_and_body(create(&fake, json!({"text": "a"})).await.unwrap()).await;
    assert_eq!(status, 503);
    assert!(body["detail"].is_string());

    fake.inject(Fault::on_create(FaultKind::RateLimit {
        retry_after_secs: 42,
    }));
    let r = create(&fake, json!({"text": "a"})).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "42");
    assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
    let reset: u64 = r.headers()["x-rate-limit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset >= now + 40 && reset <= now + 44, "{reset} vs {now}");

    fake.inject(Fault::on_create(FaultKind::Unauthorized));
    assert_eq!(
        create(&fake, json!({"text": "a"})).await.unwrap().status(),
        401
    );

    fake.inject(Fault::on_create(FaultKind::BadRequest));
    let (status, body) = status_and_body(create(&fake, json!({"text": "a"})).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("injected"));

    assert!(fake.posts().is_empty(), "no fault wrote anything");
    // Faults are used up: the next request succeeds.
    assert_eq!(
        create(&fake, json!({"text": "a"})).await.unwrap().status(),
        201
    );
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn faults_honor_times_path_and_method() {
    let fake = fake().await;
    fake.inject(Fault::new(FaultKind::ServerError).path("/2/users").times(2));
    // POST /2/tweets is not affected.
    assert_eq!(
        create(&fake, json!({"text": "a"})).await.unwrap().status(),
        201
    );
    let url = format!("{}/2/users/me", fake.base_url());
    for expected in [503, 503, 200] {
        let r = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status().as_u16(), expected);
    }
    fake.inject(Fault::new(FaultKind::ServerError).method("GET").times(5));
    assert_eq!(
        create(&fake, json!({"text": "b"})).await.unwrap().status(),
        201
    );
    fake.clear_faults();
    let r = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn slow_delays_then_answers() {
    let fake = fake().await;
    fake.inject(Fault::on_create(FaultKind::Slow { ms: 300 }));
    let started = Instant::now();
    let r = create(&fake, json!({"text": "slow"})).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status(), 201);
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn slow_write_completes_even_when_the_client_gives_up() {
    let fake = fake().await;
    fake.inject(Fault::on_create(FaultKind::Slow { ms: 400 }));
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = short
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"text": "late"}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(fake.posts().len(), 1, "the server finished the write");
}

#[tokio::test]
async fn timeout_before_write_closes_without_a_response_and_writes_nothing() {
    let fake = fake().await;
    fake.inject(Fault::on_create(FaultKind::TimeoutBeforeWrite { ms: 200 }));
    let started = Instant::now();
    let err = create(&fake, json!({"text": "never"})).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(!err.is_connect(), "the request was sent: {err:?}");
    // With a client timeout shorter than the fault: a timeout.
    fake.inject(Fault::on_create(FaultKind::TimeoutBeforeWrite { ms: 500 }));
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = short
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"text": "never"}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn drop_after_write_creates_the_post_but_the_client_sees_an_error() {
    let fake = fake().await;
    fake.inject(Fault::on_create(FaultKind::DropAfterWrite));
    let err = create(&fake, json!({"text": "maybe"})).await.unwrap_err();
    assert!(!err.is_connect(), "{err:?}");
    assert!(!err.is_timeout(), "{err:?}");
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].text, "maybe");
    // The same client keeps working afterwards (a new connection).
    let c = client();
    for text in ["after 1", "after 2"] {
        let r = c
            .post(format!("{}/2/tweets", fake.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Dropping on a pooled (reused) connection is an error too, never a silent retry.
    fake.inject(Fault::on_create(FaultKind::DropAfterWrite));
    let err = c
        .post(format!("{}/2/tweets", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"text": "pooled"}))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_connect(), "{err:?}");
    assert_eq!(
        fake.posts().iter().filter(|p| p.text == "pooled").count(),
        1
    );
}

#[tokio::test]
async fn random_faults_are_reproducible_by_seed() {
    async fn run(seed: u64) -> Vec<u16> {
        let fake = fake().await;
        fake.set_random_faults(
            0.5,
            vec![FaultKind::ServerError, FaultKind::Unauthorized],
            seed,
        );
        let mut statuses = Vec::new();
        for i in 0..40 {
            let r = create(&fake, json!({"text": format!("r{i}")}))
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
        }
        statuses
    }
    let a = run(7).await;
    assert_eq!(a, run(7).await);
    assert_ne!(a, run(8).await);
    let faulted = a.iter().filter(|&&s| s != 201).count();
    assert!((8..=32).contains(&faulted), "{faulted} of 40");
    assert!(a.contains(&503) && a.contains(&401));
}

#[tokio::test]
async fn post_rate_limit_is_enforced() {
    let fake = fake().await;
    fake.set_post_rate_limit(2);
    assert_eq!(
        create(&fake, json!({"text": "1"})).await.unwrap().status(),
        201
    );
    let r = create(&fake, json!({"text": "2"})).await.unwrap();
    assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
    let r = create(&fake, json!({"text": "3"})).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn control_endpoints_steer_the_fake_over_http() {
    let fake = FakeX::start().await;
    let base = fake.base_url();
    let c = client();
    let r = c
        .post(format!("{base}/_fake/accounts"))
        .json(&json!({"user_id": "9", "username": "ctl", "token": "tok-9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .post(format!("{base}/_fake/faults"))
        .json(&json!({"faults": [{"kind": "server_error", "path_prefix": "/2/tweets"}, {"kind": "drop_after_write"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let send = || {
        c.post(format!("{base}/2/tweets"))
            .bearer_auth("tok-9")
            .json(&json!({"text": "ctl"}))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 503);
    assert!(send().await.is_err());
    let posts: Value = c
        .get(format!("{base}/_fake/posts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posts.as_array().unwrap().len(), 1);
    assert_eq!(posts[0]["text"], "ctl");
    assert_eq!(posts[0]["author_id"], "9");
    let r = c
        .post(format!("{base}/_fake/faults"))
        .json(&json!({"random": {"probability": 1.0, "kinds": [{"kind": "unauthorized"}], "seed": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(send().await.unwrap().status(), 401);
    assert_eq!(
        c.delete(format!("{base}/_fake/faults"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    // Duplicate now (same text), but not faulted.
    assert_eq!(send().await.unwrap().status(), 403);
    let requests: Value = c
        .get(format!("{base}/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requests.as_array().unwrap().len(), 4);
    assert_eq!(fake.request_count(), 4, "control requests are not counted");
}

#[test]
fn starts_on_its_own_thread_for_synchronous_tests() {
    let fake = FakeX::start_in_thread();
    fake.add_account("1", "sync", "tok");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        client()
            .post(format!("{}/2/tweets", fake.base_url()))
            .bearer_auth("tok")
            .json(&json!({"text": "from a thread"}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 201);
    assert_eq!(fake.posts().len(), 1);
}

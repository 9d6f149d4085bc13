//! `psn accounts list | connect | disconnect`.

use crate::support::{TestWorkspace, access_token, refresh_token, token_json};

#[test]
fn connect_x_headlessly_and_list_without_tokens() {
    let ws = TestWorkspace::new();
    let out = ws.psn_stdin(
        &["accounts", "connect", "x", "--token-stdin"],
        &token_json("1001", "alice"),
    );
    out.ok().stdout_has("Connected").stdout_has("alice");
    assert!(!out.mentions(&access_token("alice")));
    assert!(!out.mentions(&refresh_token("alice")));

    let out = ws.psn(&["accounts", "list", "--json"]);
    out.ok();
    let list = out.json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1);
    let a = &list[0];
    assert!(a["id"].as_str().unwrap().starts_with("a_"), "{a}");
    assert_eq!(a["platform"], "x");
    assert_eq!(a["handle"], "alice");
    assert_eq!(a["status"], "active");
    assert!(
        a["expires_at"].is_string(),
        "expires_in sets expires_at: {a}"
    );
    for secret in [access_token("alice"), refresh_token("alice")] {
        assert!(!out.mentions(&secret), "a token leaked into accounts list");
    }
    let text = ws.psn(&["accounts", "list"]);
    text.ok().stdout_has("alice");
    assert!(!text.mentions(&access_token("alice")));
}

#[test]
fn reconnecting_the_same_account_keeps_its_id() {
    let ws = TestWorkspace::new();
    let first = ws.connect_x("1001", "alice");
    let out = ws.psn_stdin(
        &["accounts", "connect", "x", "--token-stdin", "--json"],
        &token_json("1001", "alice_renamed"),
    );
    out.ok();
    assert_eq!(out.json()["id"].as_str().unwrap(), first);
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["handle"], "alice_renamed");
}

/// `psn accounts connect bluesky --handle H --app-password-stdin` logs in to the PDS first:
/// the account is stored under its DID with the handle the PDS reports; a wrong password is
/// refused (exit 2) and stores nothing; `accounts check` makes the identity call.
#[test]
fn connect_bluesky_with_an_app_password() {
    let fake = psn_testkit::bluesky::FakeBluesky::start_in_thread();
    let password = "abcd-efgh-ijkl-mnop";
    fake.add_account(
        "did:plc:alice000000000000000000",
        "alice.bsky.social",
        password,
    );
    let ws = TestWorkspace::new();
    let connect = |password: &str| {
        ws.cmd([
            "accounts",
            "connect",
            "bluesky",
            "--handle",
            "@Alice.bsky.social",
            "--app-password-stdin",
            "--json",
        ])
        .env("PSN_API_BASE_BLUESKY", fake.base_url())
        .stdin(&format!("{password}\n"))
        .run()
    };
    let before = ws.counts();
    let out = connect("wrong-pass-word-0000");
    out.invalid("app password");
    assert!(!out.mentions("wrong-pass-word-0000"));
    assert_eq!(ws.counts(), before, "a refused password writes nothing");

    let out = connect(password);
    out.ok();
    let a = out.json();
    assert_eq!(a["platform"], "bluesky");
    assert_eq!(a["handle"], "alice.bsky.social");
    assert_eq!(a["external_id"], "did:plc:alice000000000000000000");
    assert!(!out.mentions(password));
    let list = ws.psn(&["accounts", "list", "--json"]);
    assert!(!list.mentions(password));
    assert_eq!(list.json()[0]["handle"], "alice.bsky.social");
    assert!(
        fake.requests().iter().all(|r| !r.body.contains(password)),
        "the fake records no password"
    );

    let check = ws
        .cmd(["accounts", "check", "--json"])
        .env("PSN_API_BASE_BLUESKY", fake.base_url())
        .run();
    check.ok();
    assert_eq!(check.json()[0]["result"], "ok", "{}", check.stdout);
    fake.revoke_app_password(password);
    let check = ws
        .cmd(["accounts", "check", "--json"])
        .env("PSN_API_BASE_BLUESKY", fake.base_url())
        .run();
    check.expect(1);
    assert_eq!(check.json()[0]["result"], "refused", "{}", check.stdout);
}

/// An account connected when psn keyed Bluesky accounts by handle is updated by a
/// reconnect with the app password, not duplicated.
#[test]
fn reconnecting_a_handle_keyed_bluesky_account_keeps_it() {
    let fake = psn_testkit::bluesky::FakeBluesky::start_in_thread();
    let password = "abcd-efgh-ijkl-mnop";
    fake.add_account(
        "did:plc:alice000000000000000000",
        "alice.bsky.social",
        password,
    );
    let ws = TestWorkspace::new();
    let old = ws.psn_stdin(
        &[
            "accounts",
            "connect",
            "bluesky",
            "--token-stdin",
            "--service",
            &fake.base_url(),
            "--json",
        ],
        r#"{"access_token":"old-app-password","handle":"alice.bsky.social"}"#,
    );
    old.ok();
    let old_id = old.json()["id"].as_str().unwrap().to_owned();
    let out = ws
        .cmd([
            "accounts",
            "connect",
            "bluesky",
            "--handle",
            "alice.bsky.social",
            "--service",
            &fake.base_url(),
            "--app-password-stdin",
            "--json",
        ])
        .stdin(password)
        .run();
    out.ok();
    assert_eq!(out.json()["id"].as_str().unwrap(), old_id);
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn bluesky_needs_a_handle() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    ws.psn_stdin(
        &["accounts", "connect", "bluesky", "--app-password-stdin"],
        "abcd-efgh-ijkl-mnop",
    )
    .invalid("--handle");
    assert_eq!(ws.counts(), before);
}

#[test]
fn mastodon_needs_an_instance() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    let out = ws.psn_stdin(
        &["accounts", "connect", "mastodon", "--token-stdin"],
        &token_json("42", "alice"),
    );
    out.invalid("--instance");
    assert!(!out.mentions(&access_token("alice")));
    assert_eq!(ws.counts(), before);

    let id = ws.connect(
        "mastodon",
        "42",
        "alice",
        &["--instance", "https://mastodon.example/"],
    );
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert_eq!(list[0]["id"].as_str().unwrap(), id);
    assert_eq!(list[0]["platform"], "mastodon");
}

#[test]
fn bad_token_json_is_refused_without_echoing_the_token() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    let secret = "AT-secret-never-echo-0123456789";
    for input in [
        // Not JSON at all / cut short.
        secret.to_string(),
        format!("{{\"access_token\": \"{secret}\", \"handle\": \"alice\""),
        // A field of the wrong type holding the secret.
        format!("{{\"access_token\": \"x\", \"expires_in\": \"{secret}\", \"handle\": \"a\"}}"),
        format!("{{\"access_token\": [\"{secret}\"], \"handle\": \"alice\"}}"),
        // No access token; an unknown field.
        "{\"handle\": \"alice\"}".to_string(),
        format!("{{\"acess_token\": \"{secret}\", \"handle\": \"alice\"}}"),
        // Neither account_id nor handle; an empty token.
        format!("{{\"access_token\": \"{secret}\"}}"),
        "{\"access_token\": \"\", \"handle\": \"alice\"}".to_string(),
    ] {
        let out = ws.psn_stdin(&["accounts", "connect", "x", "--token-stdin"], &input);
        out.expect(2);
        assert!(
            !out.mentions(secret),
            "the token was echoed for input {input}:\n{}{}",
            out.stdout,
            out.stderr
        );
        assert!(out.stderr.contains("error:"), "{}", out.stderr);
    }
    assert_eq!(ws.counts(), before);
}

#[test]
fn unknown_platform_is_refused() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    ws.psn_stdin(
        &["accounts", "connect", "myspace", "--token-stdin"],
        &token_json("1", "a"),
    )
    .invalid("myspace");
    assert_eq!(ws.counts(), before);
}

#[test]
fn interactive_connect_is_refused_with_a_hint() {
    let ws = TestWorkspace::new();
    let before = ws.counts();
    ws.psn(&["accounts", "connect", "x"])
        .invalid("--token-stdin");
    assert_eq!(ws.counts(), before);
}

#[test]
fn disconnect_is_refused_while_a_post_waits_then_cancels_it() {
    let ws = TestWorkspace::new();
    let id = ws.connect_x("1001", "alice");
    let post = ws.post(&["Hello", "--to", "x", "--at", "+2h"]);
    let post_id = post["id"].as_str().unwrap();

    let out = ws.refused(&["accounts", "disconnect", &id], "--cancel-pending");
    out.stderr_has(&id);

    let out = ws.psn(&["accounts", "disconnect", &id, "--cancel-pending", "--json"]);
    out.ok();
    let v = out.json();
    assert_eq!(v["cancelled_deliveries"], 1);
    assert_eq!(v["account"]["status"], "disconnected");
    let shown = ws.psn(&["show", post_id, "--json"]).json();
    assert_eq!(shown["status"], "cancelled");
    assert_eq!(shown["deliveries"][0]["status"], "cancelled");
    // A disconnected account cannot be posted to.
    ws.refused(
        &["post", "Again", "--to", "x", "--at", "+2h"],
        "psn accounts connect x",
    );
}

#[test]
fn disconnect_without_pending_posts_and_unknown_ids() {
    let ws = TestWorkspace::new();
    let id = ws.connect_x("1001", "alice");
    ws.psn(&["accounts", "disconnect", &id])
        .ok()
        .stdout_has("Disconnected");
    let list = ws.psn(&["accounts", "list", "--json"]).json();
    assert_eq!(list[0]["status"], "disconnected");
    ws.refused(&["accounts", "disconnect", "a_000000000000"], "no account");
    ws.refused(&["accounts", "disconnect", "nonsense"], "nonsense");
}

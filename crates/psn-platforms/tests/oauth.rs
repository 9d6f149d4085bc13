//! The OAuth client against the fake authorization server (real HTTP): the code exchange with
//! PKCE (a wrong verifier, a reused code, another redirect URI and a wrong client secret are
//! refused), refresh rotation (a spent refresh token is a dead token, an outage is transient),
//! and the identity calls of the X and Mastodon connectors against their fakes.

use psn_domain::Platform;
use psn_platforms::oauth::{
    self, ClientCredentials, Endpoints, authorization_request, exchange_code, parse_callback,
    provider, refresh_token,
};
use psn_platforms::publish::mastodon::MastodonPublisher;
use psn_platforms::publish::x::XPublisher;
use psn_platforms::publish::{AccessToken, AccountContext, PublishError, Publisher};
use psn_testkit::FakeX;
use psn_testkit::mastodon::FakeMastodon;
use psn_testkit::oauth::{CLIENT_ID, CLIENT_SECRET, FakeOAuth, RefreshBehavior};

const REDIRECT: &str = "http://127.0.0.1:18923/callback";

fn creds() -> ClientCredentials {
    ClientCredentials {
        id: CLIENT_ID.into(),
        secret: Some(CLIENT_SECRET.into()),
    }
}

/// Goes through the authorization endpoint like a browser that stops at the redirect, and
/// returns the code (checked against the state) and the request.
async fn authorize(
    platform: Platform,
    fake: &FakeOAuth,
) -> (String, oauth::AuthorizationRequest, Endpoints) {
    let p = provider(platform).unwrap();
    let endpoints = Endpoints::at(p, &fake.base_url());
    let request = authorization_request(p, &endpoints, &creds(), REDIRECT, &[]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(&request.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    let code = parse_callback(&location, &request.state).expect("the state round-trips");
    (code, request, endpoints)
}

#[tokio::test]
async fn the_code_exchange_checks_the_pkce_verifier() {
    let fake = FakeOAuth::start(Platform::X, "1", "alice").await;
    let p = provider(Platform::X).unwrap();
    let client = reqwest::Client::new();
    let (code, request, endpoints) = authorize(Platform::X, &fake).await;
    let wrong = oauth::Pkce::generate();
    let err = exchange_code(
        &client,
        p,
        &endpoints,
        &creds(),
        &code,
        REDIRECT,
        Some(&wrong.verifier),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, PublishError::Permanent { message } if message.contains("code_verifier")),
        "{err:?}"
    );
    // The refused attempt spent the code (as real servers do): authorize again.
    let (code, request2, endpoints) = authorize(Platform::X, &fake).await;
    assert_ne!(request.state, request2.state, "a fresh state per sign-in");
    let verifier = request2.pkce.as_ref().unwrap().verifier.clone();
    let tokens = exchange_code(
        &client,
        p,
        &endpoints,
        &creds(),
        &code,
        REDIRECT,
        Some(&verifier),
    )
    .await
    .expect("the right verifier is accepted");
    assert!(tokens.refresh_token.is_some());
    assert_eq!(tokens.expires_in, Some(7200));
    assert!(
        !format!("{tokens:?}").contains(&tokens.access_token),
        "Debug hides tokens"
    );
    // A code works once.
    let again = exchange_code(
        &client,
        p,
        &endpoints,
        &creds(),
        &code,
        REDIRECT,
        Some(&verifier),
    )
    .await;
    assert!(
        matches!(again, Err(PublishError::Permanent { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn the_code_exchange_checks_the_redirect_uri_and_client_secret() {
    let fake = FakeOAuth::start(Platform::Pinterest, "1", "pinner").await;
    let p = provider(Platform::Pinterest).unwrap();
    let client = reqwest::Client::new();
    let (code, _, endpoints) = authorize(Platform::Pinterest, &fake).await;
    let err = exchange_code(
        &client,
        p,
        &endpoints,
        &creds(),
        &code,
        "http://127.0.0.1:1/other",
        None,
    )
    .await
    .unwrap_err();
    assert!(format!("{err}").contains("redirect_uri"), "{err}");
    let (code, _, endpoints) = authorize(Platform::Pinterest, &fake).await;
    let bad = ClientCredentials {
        id: CLIENT_ID.into(),
        secret: Some("not-the-secret".into()),
    };
    let err = exchange_code(&client, p, &endpoints, &bad, &code, REDIRECT, None)
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Auth { .. }), "{err:?}");
    assert!(!format!("{err}").contains("not-the-secret"));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_spent_one_is_dead() {
    let fake = FakeOAuth::start(Platform::Linkedin, "1", "member").await;
    fake.add_refresh_token("li-refresh-0");
    let p = provider(Platform::Linkedin).unwrap();
    let endpoints = Endpoints::at(p, &fake.base_url());
    let client = reqwest::Client::new();
    let fresh = refresh_token(&client, p, &endpoints, &creds(), "li-refresh-0")
        .await
        .unwrap();
    let rotated = fresh.refresh_token.clone().expect("rotated");
    assert_ne!(rotated, "li-refresh-0");
    let spent = refresh_token(&client, p, &endpoints, &creds(), "li-refresh-0").await;
    match spent {
        Err(PublishError::Auth { message }) => {
            assert!(message.contains("invalid_grant"), "{message}");
            assert!(!message.contains("li-refresh-0"));
        }
        other => panic!("a spent refresh token is dead: {other:?}"),
    }
    fake.set_refresh_behavior(RefreshBehavior::Unavailable);
    let outage = refresh_token(&client, p, &endpoints, &creds(), &rotated).await;
    assert!(
        matches!(outage, Err(PublishError::Transient { .. })),
        "{outage:?}"
    );
}

#[tokio::test]
async fn x_and_mastodon_connectors_identify_the_account() {
    let x = FakeX::start().await;
    x.add_account("77", "alice", "tok-alice");
    let account = |token: &str, service: &str| AccountContext {
        external_id: String::new(),
        handle: String::new(),
        service_url: service.into(),
        access_token: AccessToken(token.into()),
    };
    let publisher = XPublisher::new(x.base_url());
    let who = publisher.identity(&account("tok-alice", "")).await.unwrap();
    assert_eq!((who.id.as_str(), who.handle.as_str()), ("77", "alice"));
    let refused = publisher.identity(&account("tok-wrong", "")).await;
    assert!(
        matches!(refused, Err(PublishError::Auth { .. })),
        "{refused:?}"
    );

    let m = FakeMastodon::start().await;
    m.add_account("109", "toot", "tok-toot");
    let who = MastodonPublisher::new()
        .identity(&account("tok-toot", &m.base_url()))
        .await
        .unwrap();
    assert_eq!(who.id, "109");
    assert_eq!(who.handle, "toot");
}

#[tokio::test]
async fn linkedin_organizations_are_listed_with_the_versioned_headers_and_the_admin_scope() {
    let fake = FakeOAuth::start(Platform::Linkedin, "li-1", "Member").await;
    fake.add_organization("2414183", "Acme Corp", "acme");
    fake.add_organization_role("777", "Analysed", "analysed", "ANALYST", "APPROVED");
    let p = provider(Platform::Linkedin).unwrap();
    let client = reqwest::Client::new();
    let endpoints = Endpoints::at(p, &fake.base_url());
    let request = authorization_request(
        p,
        &endpoints,
        &creds(),
        REDIRECT,
        oauth::LINKEDIN_ORGANIZATION_SCOPES,
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = browser.get(&request.url).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let code = parse_callback(&location, &request.state).unwrap();
    let tokens = exchange_code(&client, p, &endpoints, &creds(), &code, REDIRECT, None)
        .await
        .unwrap();
    assert!(
        oauth::linkedin_missing_organization_scopes(tokens.scope.as_deref()).is_empty(),
        "{:?}",
        tokens.scope
    );
    let orgs = oauth::linkedin_organizations(&client, &endpoints, &tokens.access_token)
        .await
        .unwrap();
    assert_eq!(
        orgs,
        vec![oauth::LinkedinOrganization {
            id: "2414183".into(),
            name: "Acme Corp".into(),
            vanity_name: Some("acme".into()),
        }],
        "only approved administrator roles"
    );
    assert_eq!(orgs[0].urn(), "urn:li:organization:2414183");
    assert_eq!(orgs[0].handle(), "acme");

    // The fake is as strict as LinkedIn: no version or no Rest.li 2.0 header is a 400.
    let acls = format!(
        "{}/rest/organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED",
        fake.base_url()
    );
    let bare = client
        .get(&acls)
        .bearer_auth(&tokens.access_token)
        .header("X-Restli-Protocol-Version", "2.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 400);
    assert!(bare.text().await.unwrap().contains("VERSION_MISSING"));
    let no_restli = client
        .get(&acls)
        .bearer_auth(&tokens.access_token)
        .header("LinkedIn-Version", oauth::LINKEDIN_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(no_restli.status().as_u16(), 400);

    // A member token without the admin scope is refused (403), and psn says which is missing.
    assert_eq!(
        oauth::linkedin_missing_organization_scopes(Some("openid profile w_member_social")),
        vec!["w_organization_social", "r_organization_admin"]
    );
    assert!(
        oauth::linkedin_missing_organization_scopes(Some(
            "w_organization_social,rw_organization_admin"
        ))
        .is_empty()
    );
    let (code, request, endpoints) = authorize(Platform::Linkedin, &fake).await;
    let member = exchange_code(&client, p, &endpoints, &creds(), &code, REDIRECT, None)
        .await
        .unwrap();
    let _ = request;
    let err = oauth::linkedin_organizations(&client, &endpoints, &member.access_token)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Auth { .. } | PublishError::Permanent { .. }
        ),
        "{err:?}"
    );
}

//! A strict, stateful fake authorization server and token endpoint for one platform, on real
//! HTTP: the authorization endpoint redirects to the `redirect_uri` with a code and the
//! `state` it was given (a test "browser" follows that redirect to psn's callback listener);
//! the token endpoint checks the client credentials (HTTP Basic or form), that the code is
//! unused and was issued for the same `redirect_uri`, and the PKCE verifier against the S256
//! challenge; refresh grants rotate refresh tokens (a spent one is refused with
//! `invalid_grant`); Meta's long-lived exchange and Page listing, Threads' exchange and
//! refresh, Mastodon's `POST /api/v1/apps`, LinkedIn's organization pages
//! (`/rest/organizationAcls` by role assignee and `/rest/organizations/<id>`, strict about the
//! `LinkedIn-Version` and `X-Restli-Protocol-Version` headers and the admin scope), and each
//! platform's identity endpoint.
//!
//! Paths come from [`psn_platforms::oauth::provider`], so one fake serves whatever platform it
//! was started for; point `PSN_AUTH_BASE_<PLATFORM>` and `PSN_API_BASE_<PLATFORM>` (or the
//! Mastodon instance) at [`FakeOAuth::base_url`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use psn_domain::Platform;
use psn_platforms::oauth::{Provider, pkce_challenge, provider};

/// A Facebook Page the fake lists under `/me/accounts`.
#[derive(Debug, Clone)]
pub struct FakePage {
    pub id: String,
    pub name: String,
    pub instagram: Option<(String, String)>,
}

/// A LinkedIn organization the fake's member has a role on (`/rest/organizationAcls`).
#[derive(Debug, Clone)]
pub struct FakeOrganization {
    /// Numeric id (`urn:li:organization:<id>`).
    pub id: String,
    pub name: String,
    pub vanity_name: String,
    /// `ADMINISTRATOR`, `DIRECT_SPONSORED_CONTENT_POSTER`, …
    pub role: String,
    /// `APPROVED`, `REQUESTED` or `REVOKED`.
    pub state: String,
}

/// What a test can make the token endpoint do on the next refresh grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshBehavior {
    /// Issue a new access token and a new (rotated) refresh token.
    Rotate,
    /// Issue a new access token and no refresh token (the stored one stays valid).
    KeepRefreshToken,
    /// Answer 503 (a transient outage).
    Unavailable,
}

/// One request the fake received (no bodies: they carry secrets).
#[derive(Debug, Clone)]
pub struct OAuthRequest {
    pub method: String,
    pub path: String,
    pub grant_type: Option<String>,
}

#[derive(Debug)]
struct CodeGrant {
    scope: String,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
}

#[derive(Debug)]
struct Inner {
    platform: Platform,
    clients: HashMap<String, Option<String>>,
    codes: HashMap<String, CodeGrant>,
    access: HashSet<String>,
    refresh: HashSet<String>,
    spent_refresh: HashSet<String>,
    issued: Vec<String>,
    user_id: String,
    username: String,
    pages: Vec<FakePage>,
    page_tokens: HashMap<String, String>,
    organizations: Vec<FakeOrganization>,
    /// The scopes granted with each access and refresh token.
    token_scopes: HashMap<String, String>,
    expires_in: u64,
    refresh_behavior: RefreshBehavior,
    /// Scopes the user (or the app's approval state) does not grant.
    withheld_scopes: Vec<String>,
    requests: Vec<OAuthRequest>,
    counter: u64,
    registered_redirects: Vec<String>,
}

impl Inner {
    fn next(&mut self, kind: &str) -> String {
        self.counter += 1;
        let token = format!(
            "{}-{kind}-{}-{:x}",
            self.platform.as_str(),
            self.counter,
            std::process::id() as u64 * 7919 + self.counter * 104_729
        );
        if kind != "code" && kind != "client" {
            self.issued.push(token.clone());
        }
        token
    }

    fn issue(&mut self, with_refresh: bool) -> serde_json::Value {
        let access = self.next("access");
        self.access.insert(access.clone());
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        });
        if with_refresh {
            let refresh = self.next("refresh");
            self.refresh.insert(refresh.clone());
            body["refresh_token"] = refresh.into();
        }
        match self.platform {
            Platform::Tiktok => body["open_id"] = self.user_id.clone().into(),
            Platform::Threads => body["user_id"] = self.user_id.clone().into(),
            _ => {}
        }
        body
    }
}

impl Inner {
    /// Records `scopes` as granted with the tokens in a token response `body`.
    fn remember_scopes(&mut self, body: &serde_json::Value, scopes: &str) {
        for key in ["access_token", "refresh_token"] {
            if let Some(token) = body.get(key).and_then(|v| v.as_str()) {
                self.token_scopes
                    .insert(token.to_owned(), scopes.to_owned());
            }
        }
    }

    fn has_scope(&self, token: &str, any_of: &[&str]) -> bool {
        self.token_scopes
            .get(token)
            .is_some_and(|granted| granted.split(' ').any(|s| any_of.contains(&s)))
    }
}

/// The fake. Cheap to clone; the server runs until the process ends.
#[derive(Debug, Clone)]
pub struct FakeOAuth {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

/// The client id and secret the fake accepts (Mastodon: whatever `POST /api/v1/apps` issued).
pub const CLIENT_ID: &str = "psn-test-client";
pub const CLIENT_SECRET: &str = "psn-test-client-secret";

impl FakeOAuth {
    /// Starts a fake for `platform` on 127.0.0.1 (an ephemeral port), accepting
    /// [`CLIENT_ID`] / [`CLIENT_SECRET`], with one user `user_id` / `username`.
    pub async fn start(platform: Platform, user_id: &str, username: &str) -> FakeOAuth {
        let mut clients = HashMap::new();
        if platform != Platform::Mastodon {
            clients.insert(CLIENT_ID.to_owned(), Some(CLIENT_SECRET.to_owned()));
        }
        let inner = Arc::new(Mutex::new(Inner {
            platform,
            clients,
            codes: HashMap::new(),
            access: HashSet::new(),
            refresh: HashSet::new(),
            spent_refresh: HashSet::new(),
            issued: Vec::new(),
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            pages: Vec::new(),
            page_tokens: HashMap::new(),
            organizations: Vec::new(),
            token_scopes: HashMap::new(),
            expires_in: default_lifetime(platform),
            refresh_behavior: RefreshBehavior::Rotate,
            withheld_scopes: Vec::new(),
            requests: Vec::new(),
            counter: 0,
            registered_redirects: Vec::new(),
        }));
        let state = inner.clone();
        let router = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(&state, method, uri, headers, body) }
            },
        );
        let addr = crate::server::serve(router)
            .await
            .expect("bind the fake OAuth server");
        FakeOAuth { addr, inner }
    }

    /// [`FakeOAuth::start`] on its own thread and runtime, for synchronous tests.
    pub fn start_in_thread(platform: Platform, user_id: &str, username: &str) -> FakeOAuth {
        let (user_id, username) = (user_id.to_owned(), username.to_owned());
        crate::server::start_in_thread("fake-oauth", move || async move {
            FakeOAuth::start(platform, &user_id, &username).await
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Accepts a public client (no secret; X native apps).
    pub fn allow_public_client(&self, id: &str) {
        self.inner
            .lock()
            .unwrap()
            .clients
            .insert(id.to_owned(), None);
    }

    /// Lists a Page under `/me/accounts` (with an Instagram business account when given).
    pub fn add_page(&self, id: &str, name: &str, instagram: Option<(&str, &str)>) {
        let mut inner = self.inner.lock().unwrap();
        inner.pages.push(FakePage {
            id: id.to_owned(),
            name: name.to_owned(),
            instagram: instagram.map(|(a, b)| (a.to_owned(), b.to_owned())),
        });
    }

    /// LinkedIn: makes the member an approved administrator of an organization page.
    pub fn add_organization(&self, id: &str, name: &str, vanity_name: &str) {
        self.add_organization_role(id, name, vanity_name, "ADMINISTRATOR", "APPROVED");
    }

    /// LinkedIn: gives the member `role` in `state` on an organization page.
    pub fn add_organization_role(
        &self,
        id: &str,
        name: &str,
        vanity_name: &str,
        role: &str,
        state: &str,
    ) {
        self.inner
            .lock()
            .unwrap()
            .organizations
            .push(FakeOrganization {
                id: id.to_owned(),
                name: name.to_owned(),
                vanity_name: vanity_name.to_owned(),
                role: role.to_owned(),
                state: state.to_owned(),
            });
    }

    /// The access token lifetime the token endpoint reports.
    pub fn set_expires_in(&self, seconds: u64) {
        self.inner.lock().unwrap().expires_in = seconds;
    }

    /// Grants every requested scope but this one (e.g. LinkedIn `w_organization_social` before
    /// the app's Community Management API access is approved).
    pub fn withhold_scope(&self, scope: &str) {
        self.inner
            .lock()
            .unwrap()
            .withheld_scopes
            .push(scope.to_owned());
    }

    pub fn set_refresh_behavior(&self, behavior: RefreshBehavior) {
        self.inner.lock().unwrap().refresh_behavior = behavior;
    }

    /// Makes a refresh token known (as if issued earlier).
    pub fn add_refresh_token(&self, token: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.refresh.insert(token.to_owned());
        inner.issued.push(token.to_owned());
    }

    /// Makes an access token valid at the identity endpoint.
    pub fn add_access_token(&self, token: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.access.insert(token.to_owned());
        inner.issued.push(token.to_owned());
    }

    /// Revokes an access token (the identity endpoint answers 401).
    pub fn revoke(&self, token: &str) {
        self.inner.lock().unwrap().access.remove(token);
    }

    /// Every token value the fake ever issued or was given (to search outputs for leaks).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.lock().unwrap().issued.clone()
    }

    pub fn requests(&self) -> Vec<OAuthRequest> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// How many refresh grants reached the token endpoint.
    pub fn refresh_grants(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                matches!(
                    r.grant_type.as_deref(),
                    Some("refresh_token" | "th_refresh_token")
                )
            })
            .count()
    }

    /// The redirect URIs Mastodon apps were registered with.
    pub fn registered_redirects(&self) -> Vec<String> {
        self.inner.lock().unwrap().registered_redirects.clone()
    }
}

fn default_lifetime(platform: Platform) -> u64 {
    match platform {
        Platform::X => 7_200,
        Platform::Tiktok => 86_400,
        Platform::Youtube => 3_599,
        Platform::Linkedin | Platform::Facebook | Platform::Instagram | Platform::Threads => {
            5_184_000
        }
        Platform::Pinterest => 2_592_000,
        _ => 0,
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        serde_json::json!({"error": error, "error_description": description}),
    )
}

/// Decodes `application/x-www-form-urlencoded` text.
fn decode_form(text: &str) -> HashMap<String, String> {
    fn unescape(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = decode_base64(encoded)?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn decode_base64(s: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

fn handle(
    state: &Mutex<Inner>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = state.lock().unwrap();
    let provider = provider(inner.platform).expect("an OAuth platform");
    let query = decode_form(uri.query().unwrap_or(""));
    let form = decode_form(std::str::from_utf8(&body).unwrap_or(""));
    let path = uri.path().to_owned();
    let grant_type = form
        .get("grant_type")
        .or_else(|| query.get("grant_type"))
        .cloned();
    inner.requests.push(OAuthRequest {
        method: method.to_string(),
        path: path.clone(),
        grant_type: grant_type.clone(),
    });
    let token_path = provider.token.1;
    match (method.as_str(), path.as_str()) {
        ("GET", p) if p == provider.authorize_path => authorize(&mut inner, provider, &query),
        ("POST", p)
            if p == token_path || (inner.platform == Platform::Youtube && p == "/token") =>
        {
            token(&mut inner, provider, &headers, &form)
        }
        ("GET", p)
            if p == token_path
                && query.get("grant_type").map(String::as_str) == Some("fb_exchange_token") =>
        {
            exchange_long_lived(&mut inner, &query, "fb_exchange_token")
        }
        ("GET", "/access_token") if inner.platform == Platform::Threads => {
            exchange_long_lived(&mut inner, &query, "access_token")
        }
        ("GET", "/refresh_access_token") if inner.platform == Platform::Threads => {
            let Some(token) = query.get("access_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "no access_token",
                );
            };
            if !inner.access.contains(token) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "unknown token");
            }
            if inner.refresh_behavior == RefreshBehavior::Unavailable {
                return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try later");
            }
            let body = inner.issue(false);
            json(StatusCode::OK, body)
        }
        ("GET", "/v21.0/me/accounts") => {
            let Some(token) = bearer(&headers).filter(|t| inner.access.contains(t)) else {
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "bad token");
            };
            let _ = token;
            let pages: Vec<FakePage> = inner.pages.clone();
            let mut data = Vec::new();
            for page in pages {
                let page_token = inner.next("page");
                inner.access.insert(page_token.clone());
                inner
                    .page_tokens
                    .insert(page.id.clone(), page_token.clone());
                let mut v = serde_json::json!({
                    "id": page.id, "name": page.name, "access_token": page_token,
                });
                if let Some((id, username)) = page.instagram {
                    v["instagram_business_account"] =
                        serde_json::json!({"id": id, "username": username});
                }
                data.push(v);
            }
            json(StatusCode::OK, serde_json::json!({ "data": data }))
        }
        ("POST", "/api/v1/apps") if inner.platform == Platform::Mastodon => {
            let (Some(name), Some(redirect)) = (form.get("client_name"), form.get("redirect_uris"))
            else {
                return json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    serde_json::json!({"error": "Validation failed: client_name and redirect_uris are required"}),
                );
            };
            let _ = name;
            let id = inner.next("client");
            let secret = inner.next("secret");
            inner.clients.insert(id.clone(), Some(secret.clone()));
            inner.registered_redirects.push(redirect.clone());
            json(
                StatusCode::OK,
                serde_json::json!({"id": "1", "name": "psn", "client_id": id, "client_secret": secret, "redirect_uri": redirect}),
            )
        }
        ("GET", "/rest/organizationAcls") if inner.platform == Platform::Linkedin => {
            linkedin_acls(&inner, &headers, &query)
        }
        ("GET", p)
            if inner.platform == Platform::Linkedin && p.starts_with("/rest/organizations/") =>
        {
            linkedin_organization(&inner, &headers, &p["/rest/organizations/".len()..])
        }
        ("GET", p) if p == provider.identity.1 => identity(&inner, &headers),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("the fake has no {method} {path}")}),
        ),
    }
}

fn authorize(inner: &mut Inner, provider: &Provider, q: &HashMap<String, String>) -> Response {
    let client_id = q.get(provider.client_id_param).cloned().unwrap_or_default();
    if !inner.clients.contains_key(&client_id) {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return (StatusCode::BAD_REQUEST, "response_type must be code").into_response();
    }
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is required").into_response();
    };
    let Some(state) = q.get("state").cloned().filter(|s| !s.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "state is required").into_response();
    };
    if q.get("scope").is_none_or(|s| s.is_empty()) {
        return (StatusCode::BAD_REQUEST, "scope is required").into_response();
    }
    let challenge = q.get("code_challenge").cloned();
    if provider.pkce
        && (challenge.is_none()
            || q.get("code_challenge_method").map(String::as_str) != Some("S256"))
    {
        return (StatusCode::BAD_REQUEST, "PKCE S256 is required").into_response();
    }
    let code = inner.next("code");
    inner.codes.insert(
        code.clone(),
        CodeGrant {
            scope: q.get("scope").cloned().unwrap_or_default(),
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge,
        },
    );
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{sep}code={code}&state={}", encode(&state));
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .body(Body::empty())
        .unwrap()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn token(
    inner: &mut Inner,
    provider: &Provider,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    // Client authentication: Basic, or the id (and secret) in the form.
    let (client_id, secret) = match basic(headers) {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            form.get(provider.client_id_param)
                .cloned()
                .unwrap_or_default(),
            form.get("client_secret").cloned(),
        ),
    };
    match inner.clients.get(&client_id) {
        None => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client"),
        Some(Some(expected)) if secret.as_deref() != Some(expected.as_str()) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "bad client secret",
            );
        }
        _ => {}
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(grant) = inner.codes.remove(&code) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown or used code",
                );
            };
            if grant.client_id != client_id {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "code of another client",
                );
            }
            if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "redirect_uri mismatch",
                );
            }
            if let Some(challenge) = &grant.challenge {
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                if pkce_challenge(&verifier) != *challenge {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "code_verifier does not match the code_challenge",
                    );
                }
            }
            let with_refresh = !matches!(
                inner.platform,
                Platform::Facebook | Platform::Instagram | Platform::Threads | Platform::Mastodon
            );
            let mut body = inner.issue(with_refresh);
            let granted: Vec<&str> = grant
                .scope
                .split([' ', ','])
                .filter(|s| !s.is_empty() && !inner.withheld_scopes.iter().any(|w| w == s))
                .collect();
            let granted = granted.join(" ");
            inner.remember_scopes(&body, &granted);
            body["scope"] = granted.into();
            json(StatusCode::OK, body)
        }
        Some("refresh_token") => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            if inner.spent_refresh.contains(&rt) || !inner.refresh.contains(&rt) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the refresh token is invalid or was already used",
                );
            }
            match inner.refresh_behavior {
                RefreshBehavior::Unavailable => oauth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "try later",
                ),
                RefreshBehavior::KeepRefreshToken => {
                    let body = inner.issue(false);
                    let scopes = inner.token_scopes.get(&rt).cloned().unwrap_or_default();
                    inner.remember_scopes(&body, &scopes);
                    json(StatusCode::OK, body)
                }
                RefreshBehavior::Rotate => {
                    inner.refresh.remove(&rt);
                    let scopes = inner.token_scopes.get(&rt).cloned().unwrap_or_default();
                    inner.spent_refresh.insert(rt);
                    let body = inner.issue(true);
                    inner.remember_scopes(&body, &scopes);
                    json(StatusCode::OK, body)
                }
            }
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "unknown grant_type",
        ),
    }
}

fn exchange_long_lived(
    inner: &mut Inner,
    q: &HashMap<String, String>,
    token_param: &str,
) -> Response {
    let secret_ok = inner
        .clients
        .values()
        .any(|s| s.as_deref() == q.get("client_secret").map(String::as_str));
    if !secret_ok {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "bad client secret",
        );
    }
    let short = q.get(token_param).cloned().unwrap_or_default();
    if !inner.access.contains(&short) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "unknown short-lived token",
        );
    }
    let body = inner.issue(false);
    json(StatusCode::OK, body)
}

/// LinkedIn's versioned `/rest` API: `LinkedIn-Version: YYYYMM`, `X-Restli-Protocol-Version:
/// 2.0.0`, a valid bearer token with an organization admin scope. `Some` is the refusal.
fn linkedin_rest_refusal(inner: &Inner, headers: &HeaderMap, resource: &str) -> Option<Response> {
    let restli_error = |status: StatusCode, code: &str, message: String| {
        json(
            status,
            serde_json::json!({"status": status.as_u16(), "code": code, "message": message}),
        )
    };
    let version = headers
        .get("linkedin-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if version.len() != 6 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Some(restli_error(
            StatusCode::BAD_REQUEST,
            "VERSION_MISSING",
            "A version must be present: add the LinkedIn-Version header (YYYYMM)".into(),
        ));
    }
    if headers
        .get("x-restli-protocol-version")
        .and_then(|v| v.to_str().ok())
        != Some("2.0.0")
    {
        return Some(restli_error(
            StatusCode::BAD_REQUEST,
            "ILLEGAL_ARGUMENT",
            "finder requests need X-Restli-Protocol-Version: 2.0.0".into(),
        ));
    }
    let Some(token) = bearer(headers).filter(|t| inner.access.contains(t)) else {
        return Some(restli_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_ACCESS_TOKEN",
            "Invalid access token".into(),
        ));
    };
    if !inner.has_scope(&token, &["r_organization_admin", "rw_organization_admin"]) {
        return Some(restli_error(
            StatusCode::FORBIDDEN,
            "ACCESS_DENIED",
            format!("Not enough permissions to access: {resource}"),
        ));
    }
    None
}

fn linkedin_acls(inner: &Inner, headers: &HeaderMap, q: &HashMap<String, String>) -> Response {
    if let Some(refused) =
        linkedin_rest_refusal(inner, headers, "organizationAcls.FINDER-roleAssignee")
    {
        return refused;
    }
    if q.get("q").map(String::as_str) != Some("roleAssignee") {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"status": 400, "message": "q must be roleAssignee or organization"}),
        );
    }
    let start: usize = q.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let count: usize = q.get("count").and_then(|v| v.parse().ok()).unwrap_or(10);
    let matching: Vec<serde_json::Value> = inner
        .organizations
        .iter()
        .filter(|o| q.get("role").is_none_or(|r| *r == o.role))
        .filter(|o| q.get("state").is_none_or(|s| *s == o.state))
        .map(|o| {
            serde_json::json!({
                "roleAssignee": format!("urn:li:person:{}", inner.user_id),
                "role": o.role,
                "state": o.state,
                "organization": format!("urn:li:organization:{}", o.id),
            })
        })
        .collect();
    let total = matching.len();
    let elements: Vec<_> = matching.into_iter().skip(start).take(count).collect();
    json(
        StatusCode::OK,
        serde_json::json!({
            "paging": {"start": start, "count": count, "total": total, "links": []},
            "elements": elements,
        }),
    )
}

fn linkedin_organization(inner: &Inner, headers: &HeaderMap, id: &str) -> Response {
    if let Some(refused) = linkedin_rest_refusal(inner, headers, "organizations.GET") {
        return refused;
    }
    let Some(org) = inner.organizations.iter().find(|o| o.id == id) else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"status": 404, "message": format!("organization {id} not found")}),
        );
    };
    let id_value: serde_json::Value = org
        .id
        .parse::<u64>()
        .map(Into::into)
        .unwrap_or_else(|_| org.id.clone().into());
    json(
        StatusCode::OK,
        serde_json::json!({
            "id": id_value,
            "localizedName": org.name,
            "vanityName": org.vanity_name,
            "name": {"localized": {"en_US": org.name}, "preferredLocale": {"country": "US", "language": "en"}},
        }),
    )
}

fn identity(inner: &Inner, headers: &HeaderMap) -> Response {
    let Some(_) = bearer(headers).filter(|t| inner.access.contains(t)) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is invalid",
        );
    };
    let (id, name) = (inner.user_id.clone(), inner.username.clone());
    let body = match inner.platform {
        Platform::X => serde_json::json!({"data": {"id": id, "username": name, "name": name}}),
        Platform::Linkedin => serde_json::json!({"sub": id, "name": name}),
        Platform::Facebook | Platform::Instagram => serde_json::json!({"id": id, "name": name}),
        Platform::Threads | Platform::Pinterest => {
            serde_json::json!({"id": id, "username": name})
        }
        Platform::Tiktok => {
            serde_json::json!({"data": {"user": {"open_id": id, "display_name": name, "username": name}}, "error": {"code": "ok"}})
        }
        Platform::Youtube => {
            serde_json::json!({"items": [{"id": id, "snippet": {"title": name, "customUrl": format!("@{name}")}}]})
        }
        Platform::Mastodon => serde_json::json!({"id": id, "username": name, "acct": name}),
        Platform::Bluesky => serde_json::json!({}),
    };
    json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_basic_credentials_decode() {
        let f = decode_form("a=1+2&b=%2Fx%3D&c=");
        assert_eq!(f["a"], "1 2");
        assert_eq!(f["b"], "/x=");
        assert_eq!(f["c"], "");
        assert_eq!(decode_base64("aWQ6c2VjcmV0").as_deref(), Some("id:secret"));
    }
}

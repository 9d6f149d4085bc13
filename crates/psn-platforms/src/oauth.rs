//! OAuth 2 clients for connecting accounts: per-platform endpoints and scopes, PKCE (S256),
//! `state`, the authorization URL, the code exchange, Meta's long-lived token exchange and
//! page / business-account listing, Mastodon app registration on the user's instance, and a
//! lightweight identity call per platform (for connecting and for health checks).
//!
//! Every endpoint can be pointed elsewhere (proxies, fakes): `PSN_AUTH_BASE_<PLATFORM>` replaces
//! the origin of the authorization (and, where it lives there, token) endpoint,
//! `PSN_API_BASE_<PLATFORM>` the API root. Mastodon's are the user's instance.
//!
//! Nothing here stores or prints a token: token values are [`AccessToken`]s (redacted in
//! `Debug`) and every error message is sanitized of the secrets involved.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use psn_domain::Platform;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::publish::http::{self, CallKind};
use crate::publish::{AccessToken, PublishError};

/// Which base URL an endpoint hangs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The authorization server (`PSN_AUTH_BASE_<PLATFORM>`).
    Auth,
    /// The API root (`PSN_API_BASE_<PLATFORM>`).
    Api,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (public clients send `client_id` in the body).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// One platform's OAuth application and endpoints.
#[derive(Debug, Clone)]
pub struct Provider {
    pub platform: Platform,
    pub auth_default: &'static str,
    pub api_default: &'static str,
    pub authorize_path: &'static str,
    pub token: (Origin, &'static str),
    pub scopes: &'static [&'static str],
    pub scope_separator: &'static str,
    /// Send a PKCE S256 challenge (and the verifier at the exchange).
    pub pkce: bool,
    pub client_auth: ClientAuth,
    /// The name of the client id parameter (`client_key` on TikTok).
    pub client_id_param: &'static str,
    /// Where the client id and secret come from (`config/keys.env` or the environment).
    pub client_id_env: &'static str,
    pub client_secret_env: &'static str,
    /// Whether the secret is required (X public clients use PKCE alone).
    pub secret_required: bool,
    pub extra_authorize: &'static [(&'static str, &'static str)],
    pub identity: (Origin, &'static str),
    /// Where to create the app and find its credentials.
    pub console: &'static str,
}

const META_SCOPES: &[&str] = &[
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_posts",
    "business_management",
    "instagram_basic",
    "instagram_content_publish",
];

const PROVIDERS: &[Provider] = &[
    Provider {
        platform: Platform::X,
        auth_default: "https://x.com",
        api_default: "https://api.x.com",
        authorize_path: "/i/oauth2/authorize",
        token: (Origin::Api, "/2/oauth2/token"),
        scopes: &[
            "tweet.read",
            "tweet.write",
            "users.read",
            "offline.access",
            "media.write",
        ],
        scope_separator: " ",
        pkce: true,
        client_auth: ClientAuth::Basic,
        client_id_param: "client_id",
        client_id_env: "X_CLIENT_ID",
        client_secret_env: "X_CLIENT_SECRET",
        secret_required: false,
        extra_authorize: &[],
        identity: (Origin::Api, "/2/users/me"),
        console: "https://developer.x.com/en/portal/dashboard (User authentication settings: type Native App, callback http://127.0.0.1:18923/callback)",
    },
    Provider {
        platform: Platform::Linkedin,
        auth_default: "https://www.linkedin.com",
        api_default: "https://api.linkedin.com",
        authorize_path: "/oauth/v2/authorization",
        token: (Origin::Auth, "/oauth/v2/accessToken"),
        scopes: &["openid", "profile", "w_member_social"],
        scope_separator: " ",
        pkce: false,
        client_auth: ClientAuth::Body,
        client_id_param: "client_id",
        client_id_env: "LINKEDIN_CLIENT_ID",
        client_secret_env: "LINKEDIN_CLIENT_SECRET",
        secret_required: true,
        extra_authorize: &[],
        identity: (Origin::Api, "/v2/userinfo"),
        console: "https://www.linkedin.com/developers/apps (Auth tab; products: Share on LinkedIn, Sign In with LinkedIn using OpenID Connect)",
    },
    Provider {
        platform: Platform::Instagram,
        auth_default: "https://www.facebook.com",
        api_default: "https://graph.facebook.com",
        authorize_path: "/v21.0/dialog/oauth",
        token: (Origin::Api, "/v21.0/oauth/access_token"),
        scopes: META_SCOPES,
        scope_separator: ",",
        pkce: false,
        client_auth: ClientAuth::Body,
        client_id_param: "client_id",
        client_id_env: "META_APP_ID",
        client_secret_env: "META_APP_SECRET",
        secret_required: true,
        extra_authorize: &[],
        identity: (Origin::Api, "/v21.0/me"),
        console: "https://developers.facebook.com/apps (App settings > Basic)",
    },
    Provider {
        platform: Platform::Facebook,
        auth_default: "https://www.facebook.com",
        api_default: "https://graph.facebook.com",
        authorize_path: "/v21.0/dialog/oauth",
        token: (Origin::Api, "/v21.0/oauth/access_token"),
        scopes: META_SCOPES,
        scope_separator: ",",
        pkce: false,
        client_auth: ClientAuth::Body,
        client_id_param: "client_id",
        client_id_env: "META_APP_ID",
        client_secret_env: "META_APP_SECRET",
        secret_required: true,
        extra_authorize: &[],
        identity: (Origin::Api, "/v21.0/me"),
        console: "https://developers.facebook.com/apps (App settings > Basic)",
    },
    Provider {
        platform: Platform::Threads,
        auth_default: "https://threads.net",
        api_default: "https://graph.threads.net",
        authorize_path: "/oauth/authorize",
        token: (Origin::Api, "/oauth/access_token"),
        scopes: &["threads_basic", "threads_content_publish"],
        scope_separator: ",",
        pkce: false,
        client_auth: ClientAuth::Body,
        client_id_param: "client_id",
        client_id_env: "THREADS_APP_ID",
        client_secret_env: "THREADS_APP_SECRET",
        secret_required: true,
        extra_authorize: &[],
        identity: (Origin::Api, "/v1.0/me"),
        console: "https://developers.facebook.com/apps (the Threads use case: Threads app ID and secret)",
    },
    Provider {
        platform: Platform::Tiktok,
        auth_default: "https://www.tiktok.com",
        api_default: "https://open.tiktokapis.com",
        authorize_path: "/v2/auth/authorize/",
        token: (Origin::Api, "/v2/oauth/token/"),
        scopes: &["user.info.basic", "video.upload", "video.publish"],
        scope_separator: ",",
        pkce: true,
        client_auth: ClientAuth::Body,
        client_id_param: "client_key",
        client_id_env: "TIKTOK_CLIENT_KEY",
        client_secret_env: "TIKTOK_CLIENT_SECRET",
        secret_required: true,
        extra_authorize: &[],
        identity: (Origin::Api, "/v2/user/info/"),
        console: "https://developers.tiktok.com/apps (Login Kit and Content Posting API)",
    },
    Provider {
        platform: Platform::Youtube,
        auth_default: "https://accounts.google.com",
        api_default: "https://www.googleapis.com",
        authorize_path: "/o/oauth2/v2/auth",
        token: (Origin::Auth, "/token"),
        scopes: &[
            "https://www.googleapis.com/auth/youtube.upload",
            "https://www.googleapis.com/auth/youtube.readonly",
        ],
        scope_separator: " ",
        pkce: true,
        client_auth: ClientAuth::Body,
        client_id_param: "client_id",
        client_id_env: "GOOGLE_CLIENT_ID",
        client_secret_env: "GOOGLE_CLIENT_SECRET",
        secret_required: true,
        extra_authorize: &[("access_type", "offline"), ("prompt", "consent")],
        identity: (Origin::Api, "/youtube/v3/channels"),
        console: "https://console.cloud.google.com/apis/credentials (OAuth client ID, type Desktop app; enable YouTube Data API v3)",
    },
    Provider {
        platform: Platform::Pinterest,
        auth_default: "https://www.pinterest.com",
        api_default: "https://api.pinterest.com",
        authorize_path: "/oauth/",
        token: (Origin::Api, "/v5/oauth/token"),
        scopes: &[
            "boards:read",
            "pins:read",
            "pins:write",
            "user_accounts:read",
        ],
        scope_separator: ",",
        pkce: false,
        client_auth: ClientAuth::Basic,
        client_id_param: "client_id",
        client_id_env: "PINTEREST_APP_ID",
        client_secret_env: "PINTEREST_APP_SECRET",
        secret_required: true,
        extra_authorize: &[],
        identity: (Origin::Api, "/v5/user_account"),
        console: "https://developers.pinterest.com/apps",
    },
    Provider {
        platform: Platform::Mastodon,
        auth_default: "",
        api_default: "",
        authorize_path: "/oauth/authorize",
        token: (Origin::Auth, "/oauth/token"),
        scopes: &[
            "read:accounts",
            "read:statuses",
            "write:statuses",
            "write:media",
        ],
        scope_separator: " ",
        pkce: true,
        client_auth: ClientAuth::Body,
        client_id_param: "client_id",
        client_id_env: "",
        client_secret_env: "",
        secret_required: true,
        extra_authorize: &[],
        identity: (Origin::Api, "/api/v1/accounts/verify_credentials"),
        console: "none needed: psn registers its app on your instance",
    },
];

/// The OAuth provider of `platform` (`None` for Bluesky, which uses app passwords).
pub fn provider(platform: Platform) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.platform == platform)
}

/// The environment variable overriding a platform's authorization server origin.
pub fn auth_base_env(platform: Platform) -> String {
    format!("PSN_AUTH_BASE_{}", platform.as_str().to_ascii_uppercase())
}

/// Endpoints resolved from the defaults, the environment and (Mastodon) the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub api: String,
    pub identity: String,
}

impl Endpoints {
    /// Every endpoint of `provider` under one base URL (a fake or a proxy).
    pub fn at(provider: &Provider, base: &str) -> Endpoints {
        let base = base.trim().trim_end_matches('/');
        Endpoints {
            authorize: format!("{base}{}", provider.authorize_path),
            token: format!("{base}{}", provider.token.1),
            api: base.to_owned(),
            identity: format!("{base}{}", provider.identity.1),
        }
    }
}

impl Provider {
    /// The endpoints to use. `instance` is the Mastodon instance URL (ignored elsewhere).
    pub fn endpoints(&self, instance: Option<&str>) -> Endpoints {
        let (auth, api) = if self.platform == Platform::Mastodon {
            let base = instance.unwrap_or_default().trim().trim_end_matches('/');
            (base.to_owned(), base.to_owned())
        } else {
            let auth = std::env::var(auth_base_env(self.platform))
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| self.auth_default.to_owned());
            (
                auth.trim().trim_end_matches('/').to_owned(),
                http::api_base(self.platform, self.api_default),
            )
        };
        let at = |origin: Origin, path: &str| match origin {
            Origin::Auth => format!("{auth}{path}"),
            Origin::Api => format!("{api}{path}"),
        };
        // Google's token endpoint has its own host.
        let token = if self.platform == Platform::Youtube
            && std::env::var(auth_base_env(self.platform)).is_err()
        {
            "https://oauth2.googleapis.com/token".to_owned()
        } else {
            at(self.token.0, self.token.1)
        };
        Endpoints {
            authorize: format!("{auth}{}", self.authorize_path),
            token,
            identity: at(self.identity.0, self.identity.1),
            api,
        }
    }

    /// The scopes to ask for, with `extra` (e.g. LinkedIn organization scopes) appended.
    pub fn scope(&self, extra: &[&str]) -> String {
        self.scopes
            .iter()
            .chain(extra.iter())
            .copied()
            .collect::<Vec<_>>()
            .join(self.scope_separator)
    }
}

/// LinkedIn's scopes for posting as an organization page and finding the pages the member
/// administers (the app needs the Community Management API product).
pub const LINKEDIN_ORGANIZATION_SCOPES: &[&str] = &[
    "w_organization_social",
    "r_organization_social",
    "r_organization_admin",
];

/// The scope that lets psn post as an organization page.
pub const LINKEDIN_ORGANIZATION_POSTING: &str = "w_organization_social";
/// Either scope lets psn list the organizations the member administers (`organizationAcls`).
pub const LINKEDIN_ORGANIZATION_ADMIN: &[&str] = &["r_organization_admin", "rw_organization_admin"];

/// The organization scopes missing from `granted` (space or comma separated): posting, and one
/// of the admin scopes. Empty when psn may list and post as the member's organization pages.
pub fn linkedin_missing_organization_scopes(granted: Option<&str>) -> Vec<&'static str> {
    let granted: Vec<&str> = granted
        .unwrap_or_default()
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .collect();
    let mut missing = Vec::new();
    if !granted.contains(&LINKEDIN_ORGANIZATION_POSTING) {
        missing.push(LINKEDIN_ORGANIZATION_POSTING);
    }
    if !LINKEDIN_ORGANIZATION_ADMIN
        .iter()
        .any(|s| granted.contains(s))
    {
        missing.push(LINKEDIN_ORGANIZATION_ADMIN[0]);
    }
    missing
}

/// The `LinkedIn-Version` (YYYYMM) psn sends to LinkedIn's versioned `/rest` API.
pub const LINKEDIN_VERSION: &str = "202510";

/// An organization page the LinkedIn member administers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedinOrganization {
    /// The numeric id (`urn:li:organization:<id>`).
    pub id: String,
    pub name: String,
    pub vanity_name: Option<String>,
}

impl LinkedinOrganization {
    pub fn urn(&self) -> String {
        format!("urn:li:organization:{}", self.id)
    }

    /// The handle psn shows: the vanity name (linkedin.com/company/<vanity>), else the name.
    pub fn handle(&self) -> String {
        self.vanity_name
            .clone()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| self.name.clone())
    }
}

fn linkedin_rest(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    request
        .bearer_auth(token)
        .header("LinkedIn-Version", LINKEDIN_VERSION)
        .header("X-Restli-Protocol-Version", "2.0.0")
}

/// The organizations the member administers (`GET /rest/organizationAcls?q=roleAssignee&
/// role=ADMINISTRATOR&state=APPROVED`, then `GET /rest/organizations/<id>` for each name),
/// in the order LinkedIn lists them.
pub async fn linkedin_organizations(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    token: &str,
) -> Result<Vec<LinkedinOrganization>, PublishError> {
    #[derive(Deserialize)]
    struct Acl {
        #[serde(default, alias = "organizationalTarget")]
        organization: Option<String>,
    }
    #[derive(Deserialize)]
    struct Acls {
        #[serde(default)]
        elements: Vec<Acl>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Organization {
        #[serde(default)]
        localized_name: Option<String>,
        #[serde(default)]
        vanity_name: Option<String>,
    }
    let mut ids: Vec<String> = Vec::new();
    let mut start = 0usize;
    const PAGE: usize = 100;
    loop {
        let request = linkedin_rest(
            client
                .get(format!("{}/rest/organizationAcls", endpoints.api))
                .query(&[
                    ("q", "roleAssignee"),
                    ("role", "ADMINISTRATOR"),
                    ("state", "APPROVED"),
                    ("start", &start.to_string()),
                    ("count", &PAGE.to_string()),
                ]),
            token,
        );
        let response = http::send(request, CallKind::Reading, &[token]).await?;
        let acls: Acls = serde_json::from_str(&response.body)
            .map_err(|_| unreadable("organization list", Platform::Linkedin))?;
        let n = acls.elements.len();
        for acl in acls.elements {
            let Some(urn) = acl.organization else {
                continue;
            };
            if let Some(id) = urn.strip_prefix("urn:li:organization:")
                && !ids.iter().any(|i| i == id)
            {
                ids.push(id.to_owned());
            }
        }
        if n < PAGE {
            break;
        }
        start += n;
    }
    let mut organizations = Vec::with_capacity(ids.len());
    for id in ids {
        let request = linkedin_rest(
            client.get(format!("{}/rest/organizations/{id}", endpoints.api)),
            token,
        );
        let response = http::send(request, CallKind::Reading, &[token]).await?;
        let org: Organization = serde_json::from_str(&response.body)
            .map_err(|_| unreadable("organization", Platform::Linkedin))?;
        organizations.push(LinkedinOrganization {
            name: org.localized_name.unwrap_or_else(|| id.clone()),
            vanity_name: org.vanity_name,
            id,
        });
    }
    Ok(organizations)
}

/// An OAuth application's credentials. The secret is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Random URL-safe text with `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
#[derive(Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pkce([redacted])")
    }
}

impl Pkce {
    /// A fresh verifier (43 characters from 32 random bytes) and its challenge.
    pub fn generate() -> Pkce {
        let verifier = random_token(32);
        Pkce {
            challenge: pkce_challenge(&verifier),
            verifier,
        }
    }
}

/// `BASE64URL(SHA256(verifier))`, unpadded.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An authorization to ask the user for: open `url`, then expect a callback with `state`.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub redirect_uri: String,
    pub pkce: Option<Pkce>,
}

/// Builds the authorization URL with a fresh `state` and (where the platform takes it) PKCE.
pub fn authorization_request(
    provider: &Provider,
    endpoints: &Endpoints,
    client: &ClientCredentials,
    redirect_uri: &str,
    extra_scopes: &[&str],
) -> AuthorizationRequest {
    let state = random_token(24);
    let pkce = provider.pkce.then(Pkce::generate);
    let scope = provider.scope(extra_scopes);
    let mut query: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        (provider.client_id_param, client.id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", scope.as_str()),
        ("state", state.as_str()),
    ];
    if let Some(p) = &pkce {
        query.push(("code_challenge", p.challenge.as_str()));
        query.push(("code_challenge_method", "S256"));
    }
    query.extend(provider.extra_authorize.iter().copied());
    let url = reqwest::Url::parse_with_params(&endpoints.authorize, &query)
        .map(String::from)
        .unwrap_or_else(|_| endpoints.authorize.clone());
    AuthorizationRequest {
        url,
        state,
        redirect_uri: redirect_uri.to_owned(),
        pkce,
    }
}

/// Why a callback was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback's state does not match this sign-in (a stale or forged redirect)")]
    StateMismatch,
    #[error("the platform refused the authorization: {0}")]
    Denied(String),
    #[error("the callback has no authorization code")]
    NoCode,
    #[error(
        "'{0}' is not the redirect URL (expected http://127.0.0.1:PORT/callback?code=…&state=…)"
    )]
    NotACallback(String),
}

/// Reads the authorization code from a callback URL (or a bare `?query`), checking `state`.
pub fn parse_callback(url: &str, expected_state: &str) -> Result<String, CallbackError> {
    let url = url.trim();
    let query = match url.split_once('?') {
        Some((_, q)) => q,
        None if url.contains('=') => url,
        None => return Err(CallbackError::NotACallback(shorten(url))),
    };
    let query = query.split('#').next().unwrap_or_default();
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    for (k, v) in reqwest::Url::parse(&format!("http://x/?{query}"))
        .map_err(|_| CallbackError::NotACallback(shorten(url)))?
        .query_pairs()
    {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "error_description" => description = Some(v.into_owned()),
            _ => {}
        }
    }
    if state.as_deref() != Some(expected_state) {
        return Err(CallbackError::StateMismatch);
    }
    if let Some(e) = error {
        let reason = match description {
            Some(d) => format!("{e}: {d}"),
            None => e,
        };
        return Err(CallbackError::Denied(shorten(&reason)));
    }
    code.filter(|c| !c.is_empty()).ok_or(CallbackError::NoCode)
}

fn shorten(s: &str) -> String {
    let s: String = s.chars().take(200).collect();
    s.replace(['<', '>'], "")
}

/// Tokens from a token endpoint.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_expires_in: Option<u64>,
    /// The scopes granted (space or comma separated), when the platform says.
    #[serde(default)]
    pub scope: Option<String>,
    /// TikTok names the user in the token response.
    #[serde(default)]
    pub open_id: Option<String>,
    /// Threads names the user in the token response.
    #[serde(default)]
    pub user_id: Option<serde_json::Value>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl TokenResponse {
    pub fn lifetime(&self) -> Option<Duration> {
        self.expires_in.filter(|&s| s > 0).map(Duration::from_secs)
    }
}

fn unreadable(what: &str, platform: Platform) -> PublishError {
    PublishError::Transient {
        message: format!("unreadable {what} from {}", platform.display_name()),
        retry_after: None,
    }
}

/// Exchanges an authorization code for tokens.
pub async fn exchange_code(
    client: &reqwest::Client,
    provider: &Provider,
    endpoints: &Endpoints,
    credentials: &ClientCredentials,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Result<TokenResponse, PublishError> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    token_call(client, provider, endpoints, credentials, form, &[code]).await
}

/// Exchanges a refresh token for new tokens (the platforms with standard OAuth 2 refresh).
pub async fn refresh_token(
    client: &reqwest::Client,
    provider: &Provider,
    endpoints: &Endpoints,
    credentials: &ClientCredentials,
    refresh_token: &str,
) -> Result<TokenResponse, PublishError> {
    let form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    match token_call(
        client,
        provider,
        endpoints,
        credentials,
        form,
        &[refresh_token],
    )
    .await
    {
        // A spent or revoked refresh token: 400 invalid_grant.
        Err(PublishError::Permanent { message }) => Err(PublishError::Auth { message }),
        other => other,
    }
}

async fn token_call(
    client: &reqwest::Client,
    provider: &Provider,
    endpoints: &Endpoints,
    credentials: &ClientCredentials,
    mut form: Vec<(&str, &str)>,
    secrets: &[&str],
) -> Result<TokenResponse, PublishError> {
    let secret = credentials.secret.as_deref().filter(|s| !s.is_empty());
    let mut all_secrets: Vec<&str> = secrets.to_vec();
    all_secrets.extend(secret);
    let mut request = client.post(&endpoints.token);
    match (provider.client_auth, secret) {
        (ClientAuth::Basic, Some(secret)) => {
            request = request.basic_auth(&credentials.id, Some(secret));
        }
        (_, secret) => {
            form.push((provider.client_id_param, credentials.id.as_str()));
            if let Some(secret) = secret {
                form.push(("client_secret", secret));
            }
        }
    }
    let response = http::send(request.form(&form), CallKind::Reading, &all_secrets).await?;
    let tokens: TokenResponse = serde_json::from_str(&response.body)
        .map_err(|_| unreadable("token response", provider.platform))?;
    if tokens.access_token.is_empty() {
        return Err(PublishError::Permanent {
            message: format!(
                "{} answered without an access token",
                provider.platform.display_name()
            ),
        });
    }
    Ok(tokens)
}

/// Meta (Facebook, Instagram): exchanges a short-lived user token for a long-lived one
/// (about 60 days). Threads: `th_exchange_token` on graph.threads.net.
pub async fn long_lived_token(
    client: &reqwest::Client,
    provider: &Provider,
    endpoints: &Endpoints,
    credentials: &ClientCredentials,
    short_lived: &str,
) -> Result<TokenResponse, PublishError> {
    let secret = credentials.secret.as_deref().unwrap_or_default();
    let secrets = [short_lived, secret];
    let request = if provider.platform == Platform::Threads {
        client
            .get(format!("{}/access_token", endpoints.api))
            .query(&[
                ("grant_type", "th_exchange_token"),
                ("client_secret", secret),
                ("access_token", short_lived),
            ])
    } else {
        client.get(&endpoints.token).query(&[
            ("grant_type", "fb_exchange_token"),
            ("client_id", credentials.id.as_str()),
            ("client_secret", secret),
            ("fb_exchange_token", short_lived),
        ])
    };
    let response = http::send(request, CallKind::Reading, &secrets).await?;
    serde_json::from_str(&response.body)
        .map_err(|_| unreadable("long-lived token response", provider.platform))
}

/// Threads: extends a long-lived token (allowed once it is at least 24 hours old).
pub async fn threads_refresh(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    token: &str,
) -> Result<TokenResponse, PublishError> {
    let request = client
        .get(format!("{}/refresh_access_token", endpoints.api))
        .query(&[("grant_type", "th_refresh_token"), ("access_token", token)]);
    let response = match http::send(request, CallKind::Reading, &[token]).await {
        Err(PublishError::Permanent { message }) => return Err(PublishError::Auth { message }),
        other => other?,
    };
    serde_json::from_str(&response.body)
        .map_err(|_| unreadable("token response", Platform::Threads))
}

/// A Facebook Page the user manages, with its page token and linked Instagram business account.
#[derive(Debug, Clone)]
pub struct MetaPage {
    pub id: String,
    pub name: String,
    pub access_token: AccessToken,
    pub instagram: Option<InstagramAccount>,
}

/// An Instagram business or creator account linked to a Page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstagramAccount {
    pub id: String,
    pub username: String,
}

/// The Pages the user manages (`GET /me/accounts`), each with its Page token and Instagram
/// business account.
pub async fn meta_pages(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    user_token: &str,
) -> Result<Vec<MetaPage>, PublishError> {
    #[derive(Deserialize)]
    struct Ig {
        id: String,
        #[serde(default)]
        username: Option<String>,
    }
    #[derive(Deserialize)]
    struct Page {
        id: String,
        #[serde(default)]
        name: String,
        access_token: String,
        #[serde(default)]
        instagram_business_account: Option<Ig>,
    }
    #[derive(Deserialize)]
    struct Pages {
        data: Vec<Page>,
    }
    let request = client
        .get(format!("{}/v21.0/me/accounts", endpoints.api))
        .query(&[(
            "fields",
            "id,name,access_token,instagram_business_account{id,username}",
        )])
        .bearer_auth(user_token);
    let response = http::send(request, CallKind::Reading, &[user_token]).await?;
    let pages: Pages = serde_json::from_str(&response.body)
        .map_err(|_| unreadable("page list", Platform::Facebook))?;
    Ok(pages
        .data
        .into_iter()
        .map(|p| MetaPage {
            id: p.id,
            name: p.name,
            access_token: AccessToken(p.access_token),
            instagram: p.instagram_business_account.map(|ig| InstagramAccount {
                username: ig.username.unwrap_or_else(|| ig.id.clone()),
                id: ig.id,
            }),
        })
        .collect())
}

/// Registers psn as an application on a Mastodon instance (`POST /api/v1/apps`).
pub async fn register_mastodon_app(
    client: &reqwest::Client,
    instance: &str,
    redirect_uri: &str,
) -> Result<ClientCredentials, PublishError> {
    #[derive(Deserialize)]
    struct App {
        client_id: String,
        client_secret: String,
    }
    let provider = provider(Platform::Mastodon).expect("Mastodon has a provider");
    let scopes = provider.scope(&[]);
    let request = client
        .post(format!(
            "{}/api/v1/apps",
            instance.trim().trim_end_matches('/')
        ))
        .form(&[
            ("client_name", "psn"),
            ("redirect_uris", redirect_uri),
            ("scopes", scopes.as_str()),
        ]);
    let response = http::send(request, CallKind::Reading, &[]).await?;
    let app: App = serde_json::from_str(&response.body)
        .map_err(|_| unreadable("app registration", Platform::Mastodon))?;
    Ok(ClientCredentials {
        id: app.client_id,
        secret: Some(app.client_secret),
    })
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// The platform's id for the account.
    pub id: String,
    pub handle: String,
}

/// The lightweight identity call of `platform` with `token` (the account's id and handle).
pub async fn identity(
    client: &reqwest::Client,
    provider: &Provider,
    endpoints: &Endpoints,
    token: &str,
) -> Result<Identity, PublishError> {
    identity_at(client, provider.platform, &endpoints.identity, token).await
}

/// [`identity`] at an explicit URL (connectors pass their own API root).
pub async fn identity_at(
    client: &reqwest::Client,
    platform: Platform,
    url: &str,
    token: &str,
) -> Result<Identity, PublishError> {
    let mut request = client.get(url).bearer_auth(token);
    request = match platform {
        Platform::Facebook | Platform::Instagram => request.query(&[("fields", "id,name")]),
        Platform::Threads => request.query(&[("fields", "id,username")]),
        Platform::Tiktok => request.query(&[("fields", "open_id,display_name,username")]),
        Platform::Youtube => request.query(&[("part", "snippet"), ("mine", "true")]),
        _ => request,
    };
    let response = http::send(request, CallKind::Reading, &[token]).await?;
    let v: serde_json::Value =
        serde_json::from_str(&response.body).map_err(|_| unreadable("identity", platform))?;
    let s = |v: &serde_json::Value, key: &str| -> Option<String> {
        match v.get(key)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let found = match platform {
        Platform::X => v
            .get("data")
            .and_then(|d| Some((s(d, "id")?, s(d, "username")?))),
        Platform::Linkedin => s(&v, "sub").map(|id| {
            let name = s(&v, "name").unwrap_or_else(|| id.clone());
            (id, name)
        }),
        Platform::Facebook | Platform::Instagram => s(&v, "id").map(|id| {
            let name = s(&v, "name").unwrap_or_else(|| id.clone());
            (id, name)
        }),
        Platform::Threads | Platform::Pinterest => s(&v, "id")
            .or_else(|| s(&v, "username"))
            .and_then(|id| Some((id, s(&v, "username")?))),
        Platform::Tiktok => v.get("data").and_then(|d| d.get("user")).and_then(|u| {
            let id = s(u, "open_id")?;
            let handle = s(u, "username")
                .or_else(|| s(u, "display_name"))
                .unwrap_or_else(|| id.clone());
            Some((id, handle))
        }),
        Platform::Youtube => v.get("items").and_then(|i| i.get(0)).and_then(|c| {
            let id = s(c, "id")?;
            let snippet = c.get("snippet");
            let handle = snippet
                .and_then(|sn| s(sn, "customUrl").or_else(|| s(sn, "title")))
                .unwrap_or_else(|| id.clone());
            Some((id, handle))
        }),
        Platform::Mastodon => s(&v, "id").and_then(|id| Some((id, s(&v, "acct")?))),
        Platform::Bluesky => None,
    };
    let (id, handle) = found.ok_or_else(|| PublishError::Permanent {
        message: format!(
            "{} answered the identity call without an account id",
            platform.display_name()
        ),
    })?;
    Ok(Identity {
        id,
        handle: handle.trim_start_matches('@').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate();
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(p.challenge, pkce_challenge(&p.verifier));
        assert_eq!(format!("{p:?}"), "Pkce([redacted])");
    }

    #[test]
    fn authorization_url_carries_state_scope_and_challenge() {
        let x = provider(Platform::X).unwrap();
        let endpoints = x.endpoints(None);
        let creds = ClientCredentials {
            id: "cid".into(),
            secret: None,
        };
        let req = authorization_request(
            x,
            &endpoints,
            &creds,
            "http://127.0.0.1:18923/callback",
            &[],
        );
        let url = reqwest::Url::parse(&req.url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["state"], req.state);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["code_challenge"],
            pkce_challenge(&req.pkce.as_ref().unwrap().verifier)
        );
        assert!(q["scope"].contains("offline.access"));
        let tiktok = provider(Platform::Tiktok).unwrap();
        let req =
            authorization_request(tiktok, &tiktok.endpoints(None), &creds, "http://h/cb", &[]);
        assert!(req.url.contains("client_key=cid"), "{}", req.url);
    }

    #[test]
    fn callbacks_are_checked_against_the_state() {
        assert_eq!(
            parse_callback("http://127.0.0.1:1/callback?code=abc&state=s1", "s1").unwrap(),
            "abc"
        );
        assert_eq!(
            parse_callback("http://127.0.0.1:1/callback?code=abc&state=s2", "s1"),
            Err(CallbackError::StateMismatch)
        );
        assert!(matches!(
            parse_callback("/callback?error=access_denied&state=s1", "s1"),
            Err(CallbackError::Denied(_))
        ));
        assert!(matches!(
            parse_callback("nonsense", "s1"),
            Err(CallbackError::NotACallback(_))
        ));
    }

    #[test]
    fn every_oauth_platform_has_a_provider_with_credentials_to_name() {
        for p in Platform::ALL {
            match provider(p) {
                None => assert_eq!(p, Platform::Bluesky),
                Some(pr) if p == Platform::Mastodon => assert!(pr.client_id_env.is_empty()),
                Some(pr) => {
                    assert!(!pr.client_id_env.is_empty(), "{p}");
                    assert!(!pr.console.is_empty(), "{p}");
                }
            }
        }
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = ClientCredentials {
            id: "id".into(),
            secret: Some("very-secret".into()),
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}

/// The client credentials of `provider` from the environment (`config/keys.env` entries are
/// exported to the environment by the `psn` binary). `None` when the id is not set.
pub fn credentials_from_env(provider: &Provider) -> Option<ClientCredentials> {
    let get = |name: &str| {
        if name.is_empty() {
            return None;
        }
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    Some(ClientCredentials {
        id: get(provider.client_id_env)?,
        secret: get(provider.client_secret_env),
    })
}

/// Whether a token of `platform` obtained `age` ago may be refreshed now: Threads refuses to
/// extend a token younger than 24 hours; the others can refresh at any time.
pub fn refresh_allowed(platform: Platform, age: Duration) -> bool {
    match platform {
        Platform::Threads => age >= Duration::from_secs(24 * 3600),
        _ => true,
    }
}

/// Keeps the tokens of a platform that has no publishing connector yet fresh and checks them:
/// a [`crate::publish::Publisher`] that only refreshes and identifies (publishing is not
/// supported). The engine registers it for refresh and health rounds only.
#[derive(Debug, Clone)]
pub struct TokenKeeper {
    platform: Platform,
    client: reqwest::Client,
    credentials: Option<ClientCredentials>,
    endpoints: Option<Endpoints>,
}

impl TokenKeeper {
    pub fn new(platform: Platform) -> TokenKeeper {
        TokenKeeper {
            platform,
            client: http::client(),
            credentials: None,
            endpoints: None,
        }
    }

    /// Fixed endpoints instead of the defaults and `PSN_*_BASE_<PLATFORM>` (tests, proxies).
    pub fn with_endpoints(mut self, endpoints: Endpoints) -> TokenKeeper {
        self.endpoints = Some(endpoints);
        self
    }

    fn endpoints_for(
        &self,
        provider: &Provider,
        account: &crate::publish::AccountContext,
    ) -> Endpoints {
        self.endpoints
            .clone()
            .unwrap_or_else(|| provider.endpoints(Some(&account.service_url)))
    }

    /// The app credentials to refresh with (else they are read from the environment).
    pub fn with_credentials(mut self, credentials: Option<ClientCredentials>) -> TokenKeeper {
        self.credentials = credentials;
        self
    }

    /// One keeper per OAuth platform other than those listed in `except` (which have
    /// connectors that refresh on their own).
    pub fn all_except(except: &[Platform]) -> Vec<TokenKeeper> {
        Platform::ALL
            .into_iter()
            .filter(|p| provider(*p).is_some() && !except.contains(p))
            .map(TokenKeeper::new)
            .collect()
    }
}

#[async_trait::async_trait]
impl crate::publish::Publisher for TokenKeeper {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn capabilities(&self) -> crate::publish::Capabilities {
        crate::publish::Capabilities {
            threads: false,
            media_kinds: Vec::new(),
            reconcile: false,
            idempotency_keys: false,
            refresh: true,
            publish_budget: None,
        }
    }

    async fn publish_segment(
        &self,
        _account: &crate::publish::AccountContext,
        _segment: &crate::publish::SegmentRequest<'_>,
    ) -> Result<crate::publish::Published, PublishError> {
        Err(PublishError::NotSupported {
            operation: "publishing",
            platform: self.platform,
        })
    }

    async fn refresh(
        &self,
        account: &crate::publish::AccountContext,
        refresh_token: &AccessToken,
    ) -> Result<crate::publish::RefreshedTokens, PublishError> {
        let provider = provider(self.platform).ok_or(PublishError::NotSupported {
            operation: "token refresh",
            platform: self.platform,
        })?;
        let endpoints = self.endpoints_for(provider, account);
        let tokens = if self.platform == Platform::Threads {
            // Threads extends the long-lived token itself; it is stored as its own refresh
            // credential.
            let mut t = threads_refresh(&self.client, &endpoints, &account.access_token.0).await?;
            t.refresh_token = Some(t.access_token.clone());
            t
        } else {
            let credentials = self
                .credentials
                .clone()
                .or_else(|| credentials_from_env(provider))
                .ok_or_else(|| PublishError::Transient {
                message: format!(
                    "{} is not set: psn cannot refresh {} tokens without the app's credentials (add it to config/keys.env)",
                    provider.client_id_env,
                    self.platform.display_name()
                ),
                retry_after: None,
            })?;
            crate::oauth::refresh_token(
                &self.client,
                provider,
                &endpoints,
                &credentials,
                &refresh_token.0,
            )
            .await?
        };
        Ok(crate::publish::RefreshedTokens {
            expires_in: tokens.lifetime(),
            refresh_token: tokens.refresh_token.map(AccessToken),
            access_token: AccessToken(tokens.access_token),
        })
    }

    async fn identity(
        &self,
        account: &crate::publish::AccountContext,
    ) -> Result<Identity, PublishError> {
        let provider = provider(self.platform).ok_or(PublishError::NotSupported {
            operation: "identity check",
            platform: self.platform,
        })?;
        let endpoints = self.endpoints_for(provider, account);
        identity(&self.client, provider, &endpoints, &account.access_token.0).await
    }
}

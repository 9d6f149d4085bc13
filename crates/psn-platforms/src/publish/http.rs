//! HTTP plumbing shared by the connectors: the client, API base URLs, and the classification
//! of transport failures and HTTP statuses into [`PublishError`] classes.
//!
//! The classification follows the reliability model: a failure *before* the request reached
//! the platform (connection refused, DNS) is transient; a failure *after* it may have
//! (timeout, connection dropped mid-response, unreadable body) is ambiguous for a creating
//! call, because the platform may have created the post.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use psn_domain::Platform;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::PublishError;
use super::sanitize::sanitize_error;

/// Connect timeout of [`client`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request timeout of [`client`], unless `PSN_HTTP_TIMEOUT_MS` says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment variable overriding [`REQUEST_TIMEOUT`] (milliseconds), for tests.
pub const TIMEOUT_ENV: &str = "PSN_HTTP_TIMEOUT_MS";

/// The `User-Agent` psn sends.
pub fn user_agent() -> String {
    format!("psn/{}", env!("CARGO_PKG_VERSION"))
}

/// The request timeout: `PSN_HTTP_TIMEOUT_MS` when set to a positive number, else 30 s.
pub fn request_timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(REQUEST_TIMEOUT)
}

/// A client for platform APIs: connect timeout 10 s, request timeout 30 s
/// (`PSN_HTTP_TIMEOUT_MS`), `psn/<version>` user agent, rustls.
pub fn client() -> reqwest::Client {
    client_with_timeout(request_timeout())
}

/// [`client`] with an explicit request timeout (the connect timeout is at most that).
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .user_agent(user_agent())
        // Redirects on API calls are not expected; never follow one with a bearer token.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The API base URL for `platform`: `PSN_API_BASE_<PLATFORM>` when set (tests point it at a
/// fake), else `default`; never with a trailing slash.
pub fn api_base(platform: Platform, default: &str) -> String {
    let base = std::env::var(platform.api_base_env())
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned());
    base.trim().trim_end_matches('/').to_owned()
}

/// Rate-limit state reported by a response (`x-rate-limit-limit`, `-remaining`, `-reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_at: Option<DateTime<Utc>>,
}

/// Parses the `x-rate-limit-*` headers; `None` when none is present.
pub fn rate_limit_info(headers: &HeaderMap) -> Option<RateLimitInfo> {
    let limit = header_u64(headers, "x-rate-limit-limit");
    let remaining = header_u64(headers, "x-rate-limit-remaining");
    let reset_at = header_u64(headers, "x-rate-limit-reset").and_then(unix_seconds);
    if limit.is_none() && remaining.is_none() && reset_at.is_none() {
        return None;
    }
    Some(RateLimitInfo {
        limit,
        remaining,
        reset_at,
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.parse().ok())
}

fn unix_seconds(secs: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(i64::try_from(secs).ok()?, 0).single()
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = header_str(headers, "retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

/// When a rate limit lifts: the latest of `x-rate-limit-reset` (Unix seconds, X),
/// `X-RateLimit-Reset` (an ISO 8601 time, Mastodon) and `Retry-After`.
pub fn rate_limit_reset(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let from_reset = header_u64(headers, "x-rate-limit-reset").and_then(unix_seconds);
    let from_iso_reset = header_str(headers, "x-ratelimit-reset")
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|d| d.with_timezone(&Utc));
    let from_retry = retry_after(headers, now)
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| now + d);
    [from_reset, from_iso_reset, from_retry]
        .into_iter()
        .flatten()
        .max()
}

/// Whether the call whose transport failed could have created something on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Creates something (a post, a media container): a failure after sending is ambiguous.
    Creating,
    /// Reads or refreshes: any transport failure is transient.
    Reading,
}

/// Classifies a transport failure from `reqwest`.
///
/// - connection failures (refused, DNS, TLS handshake) → `Transient`: nothing was sent;
/// - for a creating call, everything else (timeout, connection closed before the response,
///   unreadable body) → `Ambiguous`: the platform may have acted;
/// - for a reading call, everything → `Transient`.
pub fn classify_transport(err: &reqwest::Error, kind: CallKind, secrets: &[&str]) -> PublishError {
    let message = sanitize_error(&error_chain(err), secrets);
    if err.is_builder() {
        return PublishError::Permanent { message };
    }
    if err.is_connect() {
        return PublishError::Transient {
            message,
            retry_after: None,
        };
    }
    match kind {
        CallKind::Creating => PublishError::Ambiguous { message },
        CallKind::Reading => PublishError::Transient {
            message,
            retry_after: None,
        },
    }
}

/// The error and its sources, joined (reqwest's own Display omits the cause), without the
/// URL's query string.
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = display_without_url(err);
    if let Some(url) = err.url() {
        text = format!("{text} ({} {})", url.host_str().unwrap_or(""), url.path());
    }
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// reqwest's message without its "for url (…)" part (the URL may carry a query string).
fn display_without_url(err: &reqwest::Error) -> String {
    let text = err.to_string();
    match err.url() {
        Some(url) => text.replace(&format!(" for url ({url})"), ""),
        None => text,
    }
}

/// Classifies an HTTP response status (`body` is the response text, possibly empty).
///
/// - 2xx → `Ok(())`;
/// - 429 → `RateLimited`, `reset_at` from `x-rate-limit-reset` or `Retry-After`;
/// - 401 → `Auth`;
/// - 408 and 5xx → `Transient` with `Retry-After`. This assumes the platform did not create
///   anything when it answered 5xx — true of X (a 5xx from `POST /2/tweets` means the Tweet
///   was not created) and of the other platforms psn supports; a connector for a platform
///   where a 5xx may hide a created post must map it to `Ambiguous` itself;
/// - other 4xx (and anything else) → `Permanent` with the platform's message, sanitized.
pub fn classify_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    secrets: &[&str],
) -> Result<(), PublishError> {
    if status.is_success() {
        return Ok(());
    }
    let now = Utc::now();
    let message = platform_message(status, body, secrets);
    match status.as_u16() {
        429 => Err(PublishError::RateLimited {
            message,
            reset_at: rate_limit_reset(headers, now),
        }),
        401 => Err(PublishError::Auth { message }),
        408 | 500..=599 => Err(PublishError::Transient {
            message,
            retry_after: retry_after(headers, now),
        }),
        _ => Err(PublishError::Permanent { message }),
    }
}

/// The platform's own error message from an error body, sanitized; `HTTP <status>` when the
/// body says nothing.
///
/// Understands X's shapes — a problem `{"title","detail","type"}`, `{"errors":[{"message"}]}`
/// (v1.1 and v2 partial errors) — OAuth's `{"error","error_description"}`, and a plain
/// `{"message"}`/`{"error":{"message"}}`; any other body is used as text (HTML stripped).
pub fn platform_message(status: StatusCode, body: &str, secrets: &[&str]) -> String {
    let extracted = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .map(|v| json_message(&v))
        .unwrap_or_else(|| body.to_owned());
    let message = sanitize_error(&extracted, secrets);
    if message.is_empty() {
        let reason = status.canonical_reason().unwrap_or("");
        format!("HTTP {} {}", status.as_u16(), reason)
            .trim_end()
            .to_owned()
    } else {
        message
    }
}

fn json_message(v: &serde_json::Value) -> String {
    let s = |key: &str| v.get(key).and_then(|x| x.as_str()).map(str::to_owned);
    let mut parts: Vec<String> = Vec::new();
    // Problem detail (X v2): `detail` is the useful part; `title` when there is no detail.
    match (s("detail"), s("title")) {
        (Some(d), _) if !d.trim().is_empty() => parts.push(d),
        (_, Some(t)) => parts.push(t),
        _ => {}
    }
    if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
        for e in errors {
            let m = e
                .get("message")
                .or_else(|| e.get("detail"))
                .and_then(|m| m.as_str())
                .unwrap_or_default();
            if !m.is_empty() && !parts.iter().any(|p| p == m) {
                parts.push(m.to_owned());
            }
        }
    }
    if parts.is_empty() {
        match v.get("error") {
            Some(serde_json::Value::String(e)) => {
                parts.push(match s("error_description") {
                    Some(d) => format!("{e}: {d}"),
                    None => e.clone(),
                });
            }
            Some(obj @ serde_json::Value::Object(_)) => {
                if let Some(m) = obj.get("message").and_then(|m| m.as_str()) {
                    parts.push(m.to_owned());
                }
            }
            _ => {}
        }
    }
    if parts.is_empty()
        && let Some(m) = s("message")
    {
        parts.push(m);
    }
    parts.join("; ")
}

/// Sends `request` and reads the whole response, classifying every failure.
///
/// On success returns the status, headers and body text. A body that cannot be read after a
/// 2xx on a creating call is `Ambiguous` (the platform acted; the answer was lost).
pub async fn send(
    request: reqwest::RequestBuilder,
    kind: CallKind,
    secrets: &[&str],
) -> Result<HttpResponse, PublishError> {
    let response = request
        .send()
        .await
        .map_err(|e| classify_transport(&e, kind, secrets))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = match response.text().await {
        Ok(body) => body,
        Err(e) if status.is_success() => return Err(classify_transport(&e, kind, secrets)),
        // The status alone decides an error response whose body was lost.
        Err(_) => String::new(),
    };
    classify_status(status, &headers, &body, secrets)?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A successful response, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl HttpResponse {
    /// The rate-limit state the response reported.
    pub fn rate_limit(&self) -> Option<RateLimitInfo> {
        rate_limit_info(&self.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_map_to_classes() {
        let h = HeaderMap::new();
        assert!(classify_status(StatusCode::CREATED, &h, "", &[]).is_ok());
        assert!(matches!(
            classify_status(StatusCode::UNAUTHORIZED, &h, "", &[]),
            Err(PublishError::Auth { .. })
        ));
        assert!(matches!(
            classify_status(StatusCode::SERVICE_UNAVAILABLE, &h, "", &[]),
            Err(PublishError::Transient {
                retry_after: None,
                ..
            })
        ));
        assert!(matches!(
            classify_status(StatusCode::REQUEST_TIMEOUT, &h, "", &[]),
            Err(PublishError::Transient { .. })
        ));
        assert!(matches!(
            classify_status(StatusCode::FORBIDDEN, &h, "", &[]),
            Err(PublishError::Permanent { .. })
        ));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        let h = headers(&[("retry-after", "Thu, 01 Jan 2026 00:01:00 GMT")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(60)));
        let h = headers(&[("retry-after", "Wed, 31 Dec 2025 00:01:00 GMT")]);
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn rate_limited_reset_prefers_the_later() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let reset = now.timestamp() + 100;
        let h = headers(&[
            ("x-rate-limit-reset", &reset.to_string()),
            ("retry-after", "5"),
        ]);
        assert_eq!(
            rate_limit_reset(&h, now),
            Some(now + chrono::Duration::seconds(100))
        );
        let h = headers(&[("retry-after", "5")]);
        assert_eq!(
            rate_limit_reset(&h, now),
            Some(now + chrono::Duration::seconds(5))
        );
        let err = classify_status(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "5")]),
            "",
            &[],
        );
        assert!(matches!(
            err,
            Err(PublishError::RateLimited {
                reset_at: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn transient_carries_retry_after() {
        let err = classify_status(
            StatusCode::BAD_GATEWAY,
            &headers(&[("retry-after", "3")]),
            "",
            &[],
        );
        assert_eq!(
            err,
            Err(PublishError::Transient {
                message: "HTTP 502 Bad Gateway".into(),
                retry_after: Some(Duration::from_secs(3))
            })
        );
    }

    #[test]
    fn rate_limit_headers_parse() {
        let h = headers(&[
            ("x-rate-limit-limit", "100"),
            ("x-rate-limit-remaining", "99"),
            ("x-rate-limit-reset", "1767225600"),
        ]);
        let info = rate_limit_info(&h).unwrap();
        assert_eq!(info.limit, Some(100));
        assert_eq!(info.remaining, Some(99));
        assert_eq!(
            info.reset_at,
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(rate_limit_info(&HeaderMap::new()), None);
    }

    #[test]
    fn x_error_shapes() {
        let s = StatusCode::FORBIDDEN;
        let problem = r#"{"title":"Forbidden","type":"about:blank","status":403,"detail":"You are not allowed to create a Tweet with duplicate content."}"#;
        assert_eq!(
            platform_message(s, problem, &[]),
            "You are not allowed to create a Tweet with duplicate content."
        );
        let errors = r#"{"errors":[{"message":"Text too long","code":186}]}"#;
        assert_eq!(platform_message(s, errors, &[]), "Text too long");
        let title_only = r#"{"title":"Forbidden","type":"about:blank"}"#;
        assert_eq!(platform_message(s, title_only, &[]), "Forbidden");
        let oauth = r#"{"error":"invalid_grant","error_description":"Value passed for the token was invalid."}"#;
        assert_eq!(
            platform_message(StatusCode::BAD_REQUEST, oauth, &[]),
            "invalid_grant: Value passed for the token was invalid."
        );
        assert_eq!(
            platform_message(s, "<html><h1>Denied</h1></html>", &[]),
            "Denied"
        );
        assert_eq!(platform_message(s, "", &[]), "HTTP 403 Forbidden");
        assert_eq!(
            platform_message(s, "bad token tok123", &["tok123"]),
            "bad token [redacted]"
        );
    }

    #[test]
    fn api_base_strips_trailing_slash() {
        // The env var for a platform no test sets.
        assert_eq!(
            api_base(Platform::Pinterest, "https://api.example/"),
            "https://api.example"
        );
    }
}

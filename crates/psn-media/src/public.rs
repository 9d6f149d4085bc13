//! Public URLs for platforms that download media themselves (Instagram, Threads, Pinterest,
//! TikTok's pull mode): either an S3-compatible bucket, where psn uploads the library file once
//! (by content hash) and hands out presigned GET links that expire, or a public base URL that
//! reaches `psn up`, which serves the library at `/media/<sha256>.<ext>`.
//!
//! Configuration (environment, or `config/keys.env` for the secrets):
//!
//! | variable | meaning |
//! | --- | --- |
//! | `PSN_MEDIA_S3_ENDPOINT` | `https://s3.eu-central-1.amazonaws.com`, an R2/MinIO endpoint |
//! | `PSN_MEDIA_S3_BUCKET` | the bucket |
//! | `PSN_MEDIA_S3_REGION` | default `us-east-1` (`auto` for R2) |
//! | `PSN_MEDIA_S3_ACCESS_KEY_ID`, `PSN_MEDIA_S3_SECRET_ACCESS_KEY` | credentials |
//! | `PSN_MEDIA_S3_PREFIX` | key prefix, default `psn/` |
//! | `PSN_MEDIA_S3_VIRTUAL_HOST` | `true` for `bucket.endpoint` URLs (default: path style) |
//! | `PSN_MEDIA_URL_TTL_SECS` | how long a presigned link works, default 86400 (max 7 days) |
//! | `PSN_MEDIA_PUBLIC_BASE_URL` | instead of S3: the public URL of `psn up` |
//!
//! Requests are signed with `rusty-s3` (AWS Signature V4, no SDK) and sent with reqwest.

use std::path::Path;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use url::Url;

use crate::MediaError;

/// The variables read by [`PublicMedia::from_vars`].
pub const VARS: &[&str] = &[
    "PSN_MEDIA_S3_ENDPOINT",
    "PSN_MEDIA_S3_BUCKET",
    "PSN_MEDIA_S3_REGION",
    "PSN_MEDIA_S3_ACCESS_KEY_ID",
    "PSN_MEDIA_S3_SECRET_ACCESS_KEY",
    "PSN_MEDIA_S3_PREFIX",
    "PSN_MEDIA_S3_VIRTUAL_HOST",
    "PSN_MEDIA_URL_TTL_SECS",
    "PSN_MEDIA_PUBLIC_BASE_URL",
];

const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Validity of the short-lived links psn signs for its own requests.
const OWN_REQUEST_TTL: Duration = Duration::from_secs(300);

/// Where public media URLs come from.
#[derive(Debug, Clone)]
pub enum PublicMedia {
    S3(S3Public),
    /// `psn up` behind this URL serves `/media/<file>`.
    BaseUrl(Url),
}

/// An S3-compatible bucket. The secret key never appears in `Debug`.
#[derive(Clone)]
pub struct S3Public {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    ttl: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for S3Public {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Public")
            .field("bucket", &self.bucket.name())
            .field("endpoint", &self.bucket.base_url().as_str())
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A public link to a library file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublicUrl {
    pub url: String,
    /// When the link stops working (presigned links), Unix seconds.
    pub expires_at: Option<i64>,
    /// True when this call uploaded the file to the bucket.
    pub uploaded: bool,
}

fn bad(msg: impl Into<String>) -> MediaError {
    MediaError::Invalid(msg.into())
}

impl PublicMedia {
    /// Reads the configuration through `get` (environment first, then `keys.env`, at the
    /// caller's choice). `Ok(None)` when nothing is configured.
    pub fn from_vars(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<PublicMedia>, MediaError> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let ttl = match var("PSN_MEDIA_URL_TTL_SECS") {
            Some(v) => {
                let secs: u64 = v.parse().map_err(|_| {
                    bad(format!(
                        "PSN_MEDIA_URL_TTL_SECS={v} is not a number of seconds"
                    ))
                })?;
                let ttl = Duration::from_secs(secs);
                if ttl.is_zero() || ttl > MAX_TTL {
                    return Err(bad(format!(
                        "PSN_MEDIA_URL_TTL_SECS={v}: presigned links last 1 s to 7 days (604800)"
                    )));
                }
                ttl
            }
            None => DEFAULT_TTL,
        };
        if let Some(endpoint) = var("PSN_MEDIA_S3_ENDPOINT") {
            let endpoint = Url::parse(&endpoint).map_err(|e| {
                bad(format!(
                    "PSN_MEDIA_S3_ENDPOINT={endpoint} is not a URL ({e})"
                ))
            })?;
            let need = |name: &str| {
                var(name).ok_or_else(|| {
                    bad(format!(
                        "PSN_MEDIA_S3_ENDPOINT is set but {name} is not: set it in the environment or config/keys.env"
                    ))
                })
            };
            let bucket_name = need("PSN_MEDIA_S3_BUCKET")?;
            let key = need("PSN_MEDIA_S3_ACCESS_KEY_ID")?;
            let secret = need("PSN_MEDIA_S3_SECRET_ACCESS_KEY")?;
            let region = var("PSN_MEDIA_S3_REGION").unwrap_or_else(|| "us-east-1".into());
            let style = match var("PSN_MEDIA_S3_VIRTUAL_HOST").as_deref() {
                Some("true" | "1" | "yes") => UrlStyle::VirtualHost,
                _ => UrlStyle::Path,
            };
            let bucket = Bucket::new(endpoint, style, bucket_name, region)
                .map_err(|e| bad(format!("the S3 bucket configuration is not usable: {e}")))?;
            let mut prefix = var("PSN_MEDIA_S3_PREFIX").unwrap_or_else(|| "psn/".into());
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .map_err(|e| MediaError::Public(format!("cannot build the HTTP client: {e}")))?;
            return Ok(Some(PublicMedia::S3(S3Public {
                bucket,
                credentials: Credentials::new(key, secret),
                prefix,
                ttl,
                http,
            })));
        }
        if let Some(base) = var("PSN_MEDIA_PUBLIC_BASE_URL") {
            let mut url = Url::parse(&base).map_err(|e| {
                bad(format!(
                    "PSN_MEDIA_PUBLIC_BASE_URL={base} is not a URL ({e})"
                ))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad(format!(
                    "PSN_MEDIA_PUBLIC_BASE_URL={base} must be an http(s) URL"
                )));
            }
            if !url.path().ends_with('/') {
                let p = format!("{}/", url.path());
                url.set_path(&p);
            }
            return Ok(Some(PublicMedia::BaseUrl(url)));
        }
        Ok(None)
    }

    /// What `psn doctor` shows.
    pub fn describe(&self) -> String {
        match self {
            PublicMedia::S3(s) => format!(
                "S3 bucket {} at {} (links valid {} s)",
                s.bucket.name(),
                s.bucket.base_url(),
                s.ttl.as_secs()
            ),
            PublicMedia::BaseUrl(u) => format!("{u}media/… served by `psn up`"),
        }
    }

    /// Checks the configuration works: the bucket answers to the credentials. A base URL is
    /// only checked for its form (the platforms reach it from outside).
    pub async fn check(&self) -> Result<String, MediaError> {
        match self {
            PublicMedia::S3(s) => {
                let url = s
                    .bucket
                    .head_bucket(Some(&s.credentials))
                    .sign(OWN_REQUEST_TTL);
                let resp = s.http.head(url).send().await.map_err(|e| {
                    MediaError::Public(format!(
                        "the S3 endpoint {} is not reachable: {e}",
                        s.bucket.base_url()
                    ))
                })?;
                match resp.status().as_u16() {
                    200..=299 => Ok(self.describe()),
                    404 => Err(MediaError::Public(format!(
                        "the bucket {} does not exist at {}: create it or fix PSN_MEDIA_S3_BUCKET",
                        s.bucket.name(),
                        s.bucket.base_url()
                    ))),
                    401 | 403 => Err(MediaError::Public(format!(
                        "the S3 endpoint refused the credentials for bucket {} (HTTP {}): check PSN_MEDIA_S3_ACCESS_KEY_ID and PSN_MEDIA_S3_SECRET_ACCESS_KEY",
                        s.bucket.name(),
                        resp.status().as_u16()
                    ))),
                    n => Err(MediaError::Public(format!(
                        "the S3 endpoint answered HTTP {n} for bucket {}",
                        s.bucket.name()
                    ))),
                }
            }
            PublicMedia::BaseUrl(u) => {
                if u.scheme() == "http" {
                    Ok(format!(
                        "{} (plain http: platforms may refuse it; prefer https)",
                        self.describe()
                    ))
                } else {
                    Ok(self.describe())
                }
            }
        }
    }

    /// A public URL for the library file at `path` (named `<sha256>.<ext>`). With S3 the file
    /// is uploaded first unless the bucket already has it.
    pub async fn url_for(&self, path: &Path, mime: &str) -> Result<PublicUrl, MediaError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| crate::library::is_library_name(n))
            .ok_or_else(|| {
                bad(format!(
                    "{} is not a library file (add it with `psn media add`)",
                    path.display()
                ))
            })?;
        match self {
            PublicMedia::BaseUrl(base) => {
                let url = base
                    .join(&format!("media/{name}"))
                    .map_err(|e| bad(format!("cannot build the media URL: {e}")))?;
                Ok(PublicUrl {
                    url: url.to_string(),
                    expires_at: None,
                    uploaded: false,
                })
            }
            PublicMedia::S3(s) => {
                let key = format!("{}{name}", s.prefix);
                let uploaded = s.upload_if_missing(&key, path, mime).await?;
                let url = s.bucket.get_object(Some(&s.credentials), &key).sign(s.ttl);
                let expires_at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| (d + s.ttl).as_secs() as i64)
                    .ok();
                Ok(PublicUrl {
                    url: url.to_string(),
                    expires_at,
                    uploaded,
                })
            }
        }
    }
}

impl S3Public {
    fn unreachable(&self, e: reqwest::Error) -> MediaError {
        MediaError::Public(format!(
            "the S3 endpoint {} is not reachable: {e}",
            self.bucket.base_url()
        ))
    }

    async fn upload_if_missing(
        &self,
        key: &str,
        path: &Path,
        mime: &str,
    ) -> Result<bool, MediaError> {
        let head = self
            .bucket
            .head_object(Some(&self.credentials), key)
            .sign(OWN_REQUEST_TTL);
        let resp = self
            .http
            .head(head)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200..=299 => return Ok(false),
            404 => {}
            n => {
                return Err(MediaError::Public(format!(
                    "the bucket {} answered HTTP {n} when psn looked for {key}: check the credentials and the bucket",
                    self.bucket.name()
                )));
            }
        }
        let body = tokio::fs::read(path)
            .await
            .map_err(|e| MediaError::io(format!("cannot read {}", path.display()), e))?;
        let put = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(OWN_REQUEST_TTL);
        let resp = self
            .http
            .put(put)
            .header("content-type", mime)
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let text: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(MediaError::Public(format!(
                "the bucket {} refused the upload of {key} (HTTP {status}): {text}",
                self.bucket.name()
            )));
        }
        Ok(true)
    }

    /// Creates the bucket (tests and first-time setup against MinIO-like servers).
    pub async fn create_bucket(&self) -> Result<(), MediaError> {
        let url = self
            .bucket
            .create_bucket(&self.credentials)
            .sign(OWN_REQUEST_TTL);
        let resp = self
            .http
            .put(url)
            .header("content-length", "0")
            .body(Vec::<u8>::new())
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() || resp.status().as_u16() == 409 {
            Ok(())
        } else {
            Err(MediaError::Public(format!(
                "cannot create the bucket {} (HTTP {})",
                self.bucket.name(),
                resp.status().as_u16()
            )))
        }
    }
}

//! The ten platforms psn publishes to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A social platform. The lowercase name (`x`, `linkedin`, …) is the stable identifier used on
/// the command line, in the database and in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    X,
    Linkedin,
    Instagram,
    Facebook,
    Threads,
    Tiktok,
    Youtube,
    Pinterest,
    Bluesky,
    Mastodon,
}

impl Platform {
    /// Every platform, in the order psn lists them.
    pub const ALL: [Platform; 10] = [
        Platform::X,
        Platform::Linkedin,
        Platform::Instagram,
        Platform::Facebook,
        Platform::Threads,
        Platform::Tiktok,
        Platform::Youtube,
        Platform::Pinterest,
        Platform::Bluesky,
        Platform::Mastodon,
    ];

    /// The stable lowercase identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::X => "x",
            Platform::Linkedin => "linkedin",
            Platform::Instagram => "instagram",
            Platform::Facebook => "facebook",
            Platform::Threads => "threads",
            Platform::Tiktok => "tiktok",
            Platform::Youtube => "youtube",
            Platform::Pinterest => "pinterest",
            Platform::Bluesky => "bluesky",
            Platform::Mastodon => "mastodon",
        }
    }

    /// The name people know the platform by.
    pub fn display_name(self) -> &'static str {
        match self {
            Platform::X => "X",
            Platform::Linkedin => "LinkedIn",
            Platform::Instagram => "Instagram",
            Platform::Facebook => "Facebook",
            Platform::Threads => "Threads",
            Platform::Tiktok => "TikTok",
            Platform::Youtube => "YouTube",
            Platform::Pinterest => "Pinterest",
            Platform::Bluesky => "Bluesky",
            Platform::Mastodon => "Mastodon",
        }
    }

    /// Whether the platform chains posts into threads (replies to one's own previous post).
    pub fn has_threads(self) -> bool {
        matches!(
            self,
            Platform::X | Platform::Bluesky | Platform::Threads | Platform::Mastodon
        )
    }

    /// The environment variable that overrides this platform's API root (the brief's contract).
    pub fn api_base_env(self) -> String {
        format!("PSN_API_BASE_{}", self.as_str().to_ascii_uppercase())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A platform name that psn does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown platform '{0}' (known: x, linkedin, instagram, facebook, threads, tiktok, youtube, pinterest, bluesky, mastodon)"
)]
pub struct UnknownPlatform(pub String);

impl FromStr for Platform {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let found = match lower.as_str() {
            "twitter" => Some(Platform::X),
            "bsky" => Some(Platform::Bluesky),
            "fb" => Some(Platform::Facebook),
            "ig" => Some(Platform::Instagram),
            "yt" => Some(Platform::Youtube),
            other => Platform::ALL.into_iter().find(|p| p.as_str() == other),
        };
        found.ok_or_else(|| UnknownPlatform(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_round_trips_through_its_name() {
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>().unwrap(), p);
            assert_eq!(serde_json_like(p), p.as_str());
        }
    }

    fn serde_json_like(p: Platform) -> String {
        // Display and the serde name must agree, since both are stored.
        p.to_string()
    }

    #[test]
    fn unknown_platform_names_the_known_ones() {
        let err = "myspace".parse::<Platform>().unwrap_err();
        assert!(err.to_string().contains("unknown platform 'myspace'"));
        assert!(err.to_string().contains("bluesky"));
    }

    #[test]
    fn threads_are_limited_to_four_platforms() {
        let with: Vec<_> = Platform::ALL
            .into_iter()
            .filter(|p| p.has_threads())
            .collect();
        assert_eq!(
            with,
            vec![
                Platform::X,
                Platform::Threads,
                Platform::Bluesky,
                Platform::Mastodon
            ]
        );
    }
}

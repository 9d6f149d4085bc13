//! The language of a post: a first-class field (seed 000, pitfall 13), stored with every post
//! and passed to platforms that take it (Bluesky `langs`, Mastodon `language`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A BCP 47 language tag in its common short form: a 2–3 letter primary language, optionally
/// followed by a region or script (`en`, `es`, `pt-BR`, `zh-Hant`). Normalized to lowercase
/// language and the subtag's conventional case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

/// A language tag psn cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a language code (use a BCP 47 tag such as en, es, pt-BR)")]
pub struct BadLanguage(pub String);

impl Language {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Language {
    type Err = BadLanguage;

    fn from_str(s: &str) -> Result<Self, BadLanguage> {
        let bad = || BadLanguage(s.to_string());
        let mut parts = s.trim().split(['-', '_']);
        let primary = parts.next().ok_or_else(bad)?;
        if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad());
        }
        let mut out = primary.to_ascii_lowercase();
        for sub in parts {
            let ok = match sub.len() {
                2 => sub.bytes().all(|b| b.is_ascii_alphabetic()),
                3 => sub.bytes().all(|b| b.is_ascii_digit()),
                4 => sub.bytes().all(|b| b.is_ascii_alphabetic()),
                _ => false,
            };
            if !ok {
                return Err(bad());
            }
            out.push('-');
            match sub.len() {
                2 => out.push_str(&sub.to_ascii_uppercase()),
                4 => {
                    out.push_str(&sub[..1].to_ascii_uppercase());
                    out.push_str(&sub[1..].to_ascii_lowercase());
                }
                _ => out.push_str(sub),
            }
        }
        Ok(Language(out))
    }
}

impl TryFrom<String> for Language {
    type Error = BadLanguage;
    fn try_from(s: String) -> Result<Self, BadLanguage> {
        s.parse()
    }
}

impl From<Language> for String {
    fn from(l: Language) -> String {
        l.0
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_tags_are_normalized() {
        assert_eq!("EN".parse::<Language>().unwrap().as_str(), "en");
        assert_eq!("pt_br".parse::<Language>().unwrap().as_str(), "pt-BR");
        assert_eq!("zh-hant".parse::<Language>().unwrap().as_str(), "zh-Hant");
        assert_eq!("es-419".parse::<Language>().unwrap().as_str(), "es-419");
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in ["", "e", "english", "en-", "12", "en-toolongsub"] {
            assert!(bad.parse::<Language>().is_err(), "{bad}");
        }
    }
}

//! Token encryption at rest: XChaCha20-Poly1305 with a random 24-byte nonce per value and the
//! row id plus field name as associated data, so a sealed value cannot be moved to another row
//! or field. The key is 32 bytes, written base64 in `config/keys.env` as `PSN_ENCRYPTION_KEY`.
//!
//! Tokens live in [`Secret`] from the moment they are read until they are sealed: it has no
//! `Serialize`, its `Debug` and `Display` print `[redacted]`, and it is zeroed on drop.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::StoreError;

/// Sealed values start with this version byte, so the format can change later.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;

/// A secret string (an access token, a refresh token, an app password).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret's value. Call this only to hand it to the platform or to the cipher.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Seals and opens token fields.
#[derive(Clone)]
pub struct TokenCipher {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher([redacted])")
    }
}

impl TokenCipher {
    /// A fresh random key, base64-encoded, for `psn init`.
    pub fn generate_key_base64() -> String {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(key.as_mut()).expect("the operating system's random source failed");
        STANDARD.encode(key.as_ref())
    }

    /// Reads a base64 key of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<TokenCipher, StoreError> {
        let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
            StoreError::Crypto("the encryption key is not valid base64".to_string())
        })?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            StoreError::Crypto(format!(
                "the encryption key must be 32 bytes (44 base64 characters), got {} bytes",
                bytes.len()
            ))
        })?;
        Ok(TokenCipher {
            key: Zeroizing::new(key),
        })
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    /// Encrypts `secret` for the field `field` of the row `row_id`.
    pub fn seal(&self, secret: &Secret, row_id: &str, field: &str) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|e| StoreError::Crypto(e.to_string()))?;
        let aad = format!("{row_id}:{field}");
        let ciphertext = self
            .aead()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Crypto("encryption failed".to_string()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Decrypts a value sealed by [`TokenCipher::seal`] for the same row and field.
    pub fn open(&self, sealed: &[u8], row_id: &str, field: &str) -> Result<Secret, StoreError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != FORMAT_V1 {
            return Err(StoreError::Crypto(format!(
                "the stored {field} is not in a known format"
            )));
        }
        let aad = format!("{row_id}:{field}");
        let plain = Zeroizing::new(
            self.aead()
                .decrypt(
                    XNonce::from_slice(&sealed[1..1 + NONCE_LEN]),
                    Payload { msg: &sealed[1 + NONCE_LEN..], aad: aad.as_bytes() },
                )
                .map_err(|_| {
                    StoreError::Crypto(format!(
                        "cannot decrypt the stored {field}: wrong encryption key (PSN_ENCRYPTION_KEY / config/keys.env)?"
                    ))
                })?,
        );
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| StoreError::Crypto(format!("the stored {field} is not text")))?;
        Ok(Secret(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> TokenCipher {
        TokenCipher::from_base64(&TokenCipher::generate_key_base64()).unwrap()
    }

    #[test]
    fn sealed_tokens_open_with_the_same_row_and_field() {
        let c = cipher();
        let sealed = c
            .seal(&Secret::new("tok-123"), "a_1", "access_token")
            .unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"tok-123"));
        assert_eq!(
            c.open(&sealed, "a_1", "access_token").unwrap().expose(),
            "tok-123"
        );
    }

    #[test]
    fn a_sealed_token_cannot_move_to_another_row_or_field() {
        let c = cipher();
        let sealed = c.seal(&Secret::new("tok"), "a_1", "access_token").unwrap();
        assert!(c.open(&sealed, "a_2", "access_token").is_err());
        assert!(c.open(&sealed, "a_1", "refresh_token").is_err());
    }

    #[test]
    fn the_wrong_key_says_so() {
        let sealed = cipher()
            .seal(&Secret::new("tok"), "a_1", "access_token")
            .unwrap();
        let err = cipher().open(&sealed, "a_1", "access_token").unwrap_err();
        assert!(err.to_string().contains("wrong encryption key"));
    }

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let s = Secret::new("super-secret-token");
        assert!(!format!("{s:?} {s}").contains("super-secret"));
        assert!(!format!("{:?}", cipher()).contains('='));
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(
            TokenCipher::from_base64("c2hvcnQ=")
                .unwrap_err()
                .to_string()
                .contains("32 bytes")
        );
        assert!(TokenCipher::from_base64("not base64!").is_err());
    }
}

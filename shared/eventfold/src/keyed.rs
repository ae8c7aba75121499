//! Keyed hashes (MACs) of values that must not be found again by guessing them: a uniqueness
//! claim on an email address is a stream named after the address's MAC, so that neither its
//! id, nor a queue's group id, nor a log line that carries it, lets anyone test addresses by
//! hashing them. Without the key the id says nothing; with it, the same address always gives
//! the same id, which is what a claim needs.
//!
//! [`LocalKey`] computes HMAC-SHA-256 in the process (tests, the memory store, a key kept in a
//! secret); `eventfold::aws::KmsMac` asks KMS, so the key never leaves it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), eventfold::StoreError> {
//! use eventfold::keyed::{KeyedHash, LocalKey};
//!
//! let key = LocalKey::new(*b"a secret of thirty-two bytes....");
//! let once = key.mac(b"ada@example.com").await?;
//! assert_eq!(once, key.mac(b"ada@example.com").await?);
//! assert_ne!(once, LocalKey::new(*b"another secret, thirty-two bytes").mac(b"ada@example.com").await?);
//! assert_eq!(once.len(), 64);
//! # Ok(())
//! # }
//! ```

use std::fmt;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::StoreError;

/// A keyed hash: the same message under the same key gives the same MAC, and nothing short of
/// the key turns a guess into it.
#[async_trait]
pub trait KeyedHash: Send + Sync + fmt::Debug {
    /// The MAC of `message`, as lower-case hex.
    async fn mac(&self, message: &[u8]) -> Result<String, StoreError>;
}

/// HMAC-SHA-256 under a key held in the process.
#[derive(Clone)]
pub struct LocalKey {
    key: Vec<u8>,
}

impl LocalKey {
    /// A key of these bytes (32 or more: shorter keys are weaker than the hash).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }
}

/// The key is a secret: `Debug` (and so every log line) never shows it.
impl fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalKey(<secret>)")
    }
}

#[async_trait]
impl KeyedHash for LocalKey {
    async fn mac(&self, message: &[u8]) -> Result<String, StoreError> {
        Ok(hmac_sha256(&self.key, message))
    }
}

/// HMAC-SHA-256 of `message` under `key`, as hex.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        assert_eq!(
            hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_key_never_prints() {
        assert_eq!(
            format!("{:?}", LocalKey::new(*b"secret")),
            "LocalKey(<secret>)"
        );
    }
}

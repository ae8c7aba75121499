//! Personal data that can be forgotten without rewriting history (crypto-shredding).
//!
//! A field that holds personal data is a [`Personal<T>`]: the value together with the subject it
//! belongs to (a user id). Before an event is written, and so before it is chained, every
//! personal value in it is **sealed**: encrypted (AES-256-GCM) with the subject's own data key,
//! the subject bound in as associated data. The stored event, its integrity chain, snapshots and
//! read-model rows made from it, and every queue message that carries it hold ciphertext only.
//! Forgetting a subject deletes its key: from then on every copy reads as [`Personal::Erased`]
//! (a value the domain handles), and the chain still verifies, since the ciphertext it covers
//! never changes.
//!
//! Where the value is needed in plaintext (an answer to its owner), the copy is **opened** with
//! the subject's key, in memory, for that request only. Keys come from [`SubjectKeys`]: in
//! memory here ([`MemoryKeys`]), in a DynamoDB table wrapped by a KMS key on AWS
//! (`eventfold::aws::KmsSubjectKeys`). A [`Keyring`] asks each subject's key once per command
//! or request.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), eventfold::StoreError> {
//! use std::sync::Arc;
//! use eventfold::personal::{Keyring, MemoryKeys, Personal, SubjectKeys};
//!
//! let keys = Arc::new(MemoryKeys::new());
//! let name = Personal::new("user-1", "Ada Lovelace".to_owned());
//! let mut stored = serde_json::json!({ "owner": name, "currency": "EUR" });
//! Keyring::new(keys.clone()).seal(&mut stored).await?;
//! assert!(!stored.to_string().contains("Ada"), "only ciphertext is stored");
//!
//! let mut shown = stored.clone();
//! Keyring::new(keys.clone()).open(&mut shown).await?;
//! let owner: Personal<String> = serde_json::from_value(shown["owner"].clone()).unwrap();
//! assert_eq!(owner.value().map(String::as_str), Some("Ada Lovelace"));
//!
//! keys.forget("user-1").await?;
//! let mut after = stored.clone();
//! Keyring::new(keys).open(&mut after).await?;
//! let owner: Personal<String> = serde_json::from_value(after["owner"].clone()).unwrap();
//! assert!(owner.is_erased());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::StoreError;

/// The key of the JSON object a personal value is written as: `{"$personal": <subject>, …}`.
pub const MARKER: &str = "$personal";

/// A value that is one subject's personal data.
#[derive(Clone, PartialEq, Eq)]
pub enum Personal<T> {
    /// The value, in hand: as a command wrote it, or opened with its subject's key.
    Open {
        /// Whose it is.
        subject: String,
        /// The value.
        value: T,
    },
    /// Sealed with its subject's key, as stored; opening needs the key.
    Sealed {
        /// Whose it is.
        subject: String,
        /// Nonce and ciphertext, base64.
        sealed: String,
    },
    /// Its subject was forgotten: the value is gone for good.
    Erased {
        /// Whose it was.
        subject: String,
    },
}

impl<T> Personal<T> {
    /// `value`, which belongs to `subject`.
    pub fn new(subject: impl Into<String>, value: T) -> Self {
        Self::Open {
            subject: subject.into(),
            value,
        }
    }

    /// Whose it is.
    pub fn subject(&self) -> &str {
        match self {
            Self::Open { subject, .. }
            | Self::Sealed { subject, .. }
            | Self::Erased { subject } => subject,
        }
    }

    /// The value, if it is in hand (not sealed, not erased).
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Open { value, .. } => Some(value),
            Self::Sealed { .. } | Self::Erased { .. } => None,
        }
    }

    /// Whether its subject was forgotten.
    pub fn is_erased(&self) -> bool {
        matches!(self, Self::Erased { .. })
    }
}

/// Personal data never reaches a log: `Debug` shows the subject and the state, not the value.
impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Self::Open { .. } => "open",
            Self::Sealed { .. } => "sealed",
            Self::Erased { .. } => "erased",
        };
        write!(f, "Personal({}, {state})", self.subject())
    }
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut object = Map::new();
        object.insert(MARKER.into(), Value::String(self.subject().to_owned()));
        match self {
            Self::Open { value, .. } => {
                let value = serde_json::to_value(value).map_err(serde::ser::Error::custom)?;
                object.insert("value".into(), value);
            }
            Self::Sealed { sealed, .. } => {
                object.insert("sealed".into(), Value::String(sealed.clone()));
            }
            Self::Erased { .. } => {
                object.insert("erased".into(), Value::Bool(true));
            }
        }
        Value::Object(object).serialize(serializer)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Value::Object(mut object) = Value::deserialize(deserializer)? else {
            return Err(D::Error::custom("a personal value is an object"));
        };
        let Some(Value::String(subject)) = object.remove(MARKER) else {
            return Err(D::Error::custom("a personal value names its subject"));
        };
        let personal = if let Some(value) = object.remove("value") {
            Self::Open {
                subject,
                value: serde_json::from_value(value).map_err(D::Error::custom)?,
            }
        } else if let Some(Value::String(sealed)) = object.remove("sealed") {
            Self::Sealed { subject, sealed }
        } else if object.remove("erased") == Some(Value::Bool(true)) {
            Self::Erased { subject }
        } else {
            return Err(D::Error::custom(
                "a personal value is open, sealed or erased",
            ));
        };
        if let Some(extra) = object.keys().next() {
            return Err(D::Error::custom(format!(
                "unknown field {extra:?} in a personal value"
            )));
        }
        Ok(personal)
    }
}

/// A subject's data key: 32 random bytes, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A key of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from a slice, which must be 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, StoreError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| StoreError::corrupt(format!("a data key of {} bytes", bytes.len())))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0_u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::misuse("no system randomness for a data key"))?;
        Ok(Self(bytes))
    }

    fn aead(&self) -> LessSafeKey {
        // 32 bytes is AES-256's key length, so this cannot fail.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte key"))
    }

    /// `plaintext` sealed for `subject`: base64 of a random nonce and the ciphertext with its
    /// tag, the subject bound in (a ciphertext moved to another subject does not open).
    pub fn seal(&self, subject: &str, plaintext: &[u8]) -> Result<String, StoreError> {
        let mut nonce = [0_u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::misuse("no system randomness for a nonce"))?;
        let mut sealed = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(subject.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| StoreError::misuse("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// The plaintext of `sealed`, which must have been sealed for `subject` with this key.
    pub fn open(&self, subject: &str, sealed: &str) -> Result<Vec<u8>, StoreError> {
        let corrupt = || StoreError::corrupt(format!("a sealed value of {subject} does not open"));
        let bytes = STANDARD.decode(sealed).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .aead()
            .open_in_place(nonce, Aad::from(subject.as_bytes()), &mut buffer)
            .map_err(|_| corrupt())?;
        Ok(plaintext.to_vec())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<secret>)")
    }
}

/// Where subjects' data keys are kept.
#[async_trait]
pub trait SubjectKeys: Send + Sync + fmt::Debug {
    /// The key to seal `subject`'s data with, made on first use. A forgotten subject has none
    /// and gets none again: sealing for it is refused ([`StoreError::Misuse`]).
    async fn sealing_key(&self, subject: &str) -> Result<DataKey, StoreError>;

    /// The key to open `subject`'s data with; `None` once it is forgotten (or never had one).
    async fn opening_key(&self, subject: &str) -> Result<Option<DataKey>, StoreError>;

    /// Forgets `subject`: its key is deleted for good (a tombstone keeps a new one from being
    /// made). Forgetting twice is fine.
    async fn forget(&self, subject: &str) -> Result<(), StoreError>;
}

/// The refusal to seal data of a forgotten subject.
pub fn forgotten(subject: &str) -> StoreError {
    StoreError::misuse(format!(
        "{subject} was forgotten: no personal data of theirs is written"
    ))
}

/// Subjects' keys in memory (tests, the memory store).
#[derive(Debug, Default)]
pub struct MemoryKeys {
    /// `None`: forgotten.
    keys: Mutex<HashMap<String, Option<DataKey>>>,
}

impl MemoryKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<DataKey>>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SubjectKeys for MemoryKeys {
    async fn sealing_key(&self, subject: &str) -> Result<DataKey, StoreError> {
        let mut keys = self.lock();
        match keys.get(subject) {
            Some(Some(key)) => Ok(key.clone()),
            Some(None) => Err(forgotten(subject)),
            None => {
                let key = DataKey::generate()?;
                keys.insert(subject.to_owned(), Some(key.clone()));
                Ok(key)
            }
        }
    }

    async fn opening_key(&self, subject: &str) -> Result<Option<DataKey>, StoreError> {
        Ok(self.lock().get(subject).cloned().flatten())
    }

    async fn forget(&self, subject: &str) -> Result<(), StoreError> {
        self.lock().insert(subject.to_owned(), None);
        Ok(())
    }
}

/// The keys one command or request uses: each subject's asked of the [`SubjectKeys`] once,
/// then held in memory until the keyring is dropped (at the end of the command or request),
/// so that forgetting takes effect on the next one everywhere.
#[derive(Debug)]
pub struct Keyring {
    keys: Arc<dyn SubjectKeys>,
    sealing: Mutex<HashMap<String, DataKey>>,
    opening: Mutex<HashMap<String, Option<DataKey>>>,
}

impl Keyring {
    /// A keyring over `keys`, empty.
    pub fn new(keys: Arc<dyn SubjectKeys>) -> Self {
        Self {
            keys,
            sealing: Mutex::default(),
            opening: Mutex::default(),
        }
    }

    async fn sealing_key(&self, subject: &str) -> Result<DataKey, StoreError> {
        if let Some(key) = lock(&self.sealing).get(subject) {
            return Ok(key.clone());
        }
        let key = self.keys.sealing_key(subject).await?;
        lock(&self.sealing).insert(subject.to_owned(), key.clone());
        Ok(key)
    }

    async fn opening_key(&self, subject: &str) -> Result<Option<DataKey>, StoreError> {
        if let Some(key) = lock(&self.opening).get(subject) {
            return Ok(key.clone());
        }
        let key = self.keys.opening_key(subject).await?;
        lock(&self.opening).insert(subject.to_owned(), key.clone());
        Ok(key)
    }

    /// Seals every open personal value in `value`, in place.
    pub async fn seal(&self, value: &mut Value) -> Result<(), StoreError> {
        for spot in personal_values(value) {
            let Value::Object(object) = spot else {
                continue;
            };
            let Some(Value::String(subject)) = object.get(MARKER).cloned() else {
                continue;
            };
            let Some(plain) = object.remove("value") else {
                continue;
            };
            let key = self.sealing_key(&subject).await?;
            let sealed = key.seal(&subject, plain.to_string().as_bytes())?;
            object.insert("sealed".into(), Value::String(sealed));
        }
        Ok(())
    }

    /// Opens every sealed personal value in `value`, in place; those of forgotten subjects
    /// become erased.
    pub async fn open(&self, value: &mut Value) -> Result<(), StoreError> {
        for spot in personal_values(value) {
            let Value::Object(object) = spot else {
                continue;
            };
            let Some(Value::String(subject)) = object.get(MARKER).cloned() else {
                continue;
            };
            let Some(Value::String(sealed)) = object.remove("sealed") else {
                continue;
            };
            match self.opening_key(&subject).await? {
                Some(key) => {
                    let plain = key.open(&subject, &sealed)?;
                    let value: Value = serde_json::from_slice(&plain).map_err(|e| {
                        StoreError::corrupt(format!("a value of {subject} opens to no JSON: {e}"))
                    })?;
                    object.insert("value".into(), value);
                }
                None => {
                    object.insert("erased".into(), Value::Bool(true));
                }
            }
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every object in `value` that is a personal value (it has the [`MARKER`] key), outermost
/// first; a personal value's own content is not searched.
fn personal_values(value: &mut Value) -> Vec<&mut Value> {
    let mut found = Vec::new();
    let mut pending = vec![value];
    while let Some(next) = pending.pop() {
        match next {
            Value::Object(object) if object.contains_key(MARKER) => found.push(next),
            Value::Object(object) => pending.extend(object.values_mut()),
            Value::Array(items) => pending.extend(items.iter_mut()),
            _ => {}
        }
    }
    found
}

/// Every personal value in `value` replaced by what a reader sees of it: its value if open,
/// else `null` (sealed: no key was used; erased: forgotten).
pub fn present(value: &mut Value) {
    match value {
        Value::Object(object) if object.contains_key(MARKER) => {
            *value = object.remove("value").unwrap_or(Value::Null);
        }
        Value::Object(object) => object.values_mut().for_each(present),
        Value::Array(items) => items.iter_mut().for_each(present),
        _ => {}
    }
}

/// Whether `value` holds a personal value that is open (plaintext a store must not see).
pub fn holds_open_values(value: &Value) -> bool {
    match value {
        Value::Object(object) if object.contains_key(MARKER) => object.contains_key("value"),
        Value::Object(object) => object.values().any(holds_open_values),
        Value::Array(items) => items.iter().any(holds_open_values),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_personal_value_reads_back_in_each_state_and_never_prints() {
        for personal in [
            Personal::new("s", "Ada".to_owned()),
            Personal::Sealed {
                subject: "s".into(),
                sealed: "AAAA".into(),
            },
            Personal::Erased {
                subject: "s".into(),
            },
        ] {
            let json = serde_json::to_value(&personal).expect("serializes");
            assert_eq!(json[MARKER], json!("s"));
            let back: Personal<String> = serde_json::from_value(json).expect("deserializes");
            assert_eq!(back, personal);
            assert!(!format!("{personal:?}").contains("Ada"));
        }
        let unknown = json!({ MARKER: "s", "value": "x", "more": 1 });
        assert!(serde_json::from_value::<Personal<String>>(unknown).is_err());
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_for_its_subject() {
        let key = DataKey::generate().expect("a key");
        let sealed = key.seal("s", b"secret").expect("sealed");
        assert_eq!(key.open("s", &sealed).expect("opens"), b"secret");
        assert!(key.open("t", &sealed).is_err(), "moved to another subject");
        let other = DataKey::generate().expect("a key");
        assert!(other.open("s", &sealed).is_err());
        assert_ne!(
            key.seal("s", b"secret").expect("sealed"),
            sealed,
            "fresh nonce"
        );
    }

    #[tokio::test]
    async fn sealing_finds_nested_values_and_refuses_a_forgotten_subject() {
        let keys = Arc::new(MemoryKeys::new());
        let mut value = json!({
            "a": Personal::new("s", json!({"email": "ada@example.com"})),
            "list": [Personal::new("t", "Bob".to_owned())],
            "plain": "kept",
        });
        assert!(holds_open_values(&value));
        Keyring::new(keys.clone())
            .seal(&mut value)
            .await
            .expect("sealed");
        assert!(!holds_open_values(&value));
        let text = value.to_string();
        assert!(!text.contains("ada@") && !text.contains("Bob") && text.contains("kept"));
        keys.forget("s").await.expect("forgotten");
        Keyring::new(keys.clone())
            .open(&mut value)
            .await
            .expect("opened");
        assert_eq!(value["a"], json!({ MARKER: "s", "erased": true }));
        assert_eq!(value["list"][0]["value"], json!("Bob"));
        let mut again = json!({ "a": Personal::new("s", "new".to_owned()) });
        assert!(Keyring::new(keys).seal(&mut again).await.is_err());
    }
}

//! Keyed hashes computed by KMS (`GenerateMac` with an HMAC key): the key never leaves KMS, and
//! the function's role may only ask for MACs, not read it.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;

use crate::error::StoreError;
use crate::keyed::KeyedHash;

/// HMAC-SHA-256 by a KMS key (`KeySpec: HMAC_256`, `KeyUsage: GENERATE_VERIFY_MAC`).
#[derive(Clone, Debug)]
pub struct KmsMac {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsMac {
    /// MACs by the key `key_id` (an id, ARN or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

#[async_trait]
impl KeyedHash for KmsMac {
    async fn mac(&self, message: &[u8]) -> Result<String, StoreError> {
        let answer = self
            .client
            .generate_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .send()
            .await
            .map_err(|e| super::error::from_sdk("GenerateMac", &self.key_id, e))?;
        let mac = answer
            .mac
            .ok_or_else(|| StoreError::misuse(format!("KMS key {} gave no MAC", self.key_id)))?;
        Ok(hex::encode(mac.as_ref()))
    }
}

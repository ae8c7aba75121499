//! Subjects' data keys on AWS: each made by KMS (`GenerateDataKey`, AES-256, the subject as
//! encryption context), kept wrapped in a DynamoDB table by subject, unwrapped by KMS
//! (`Decrypt`) when used. Forgetting replaces the wrapped key by a tombstone: the plaintext key
//! existed only in memory, so nothing can open the subject's data again, and no new key is made
//! for it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use crate::error::StoreError;
use crate::names::subject_keys::{CREATED_AT, FORGOTTEN_AT, SUBJECT, WRAPPED_KEY};
use crate::personal::{DataKey, SubjectKeys, forgotten};

/// The encryption context key a data key is bound to its subject with.
const CONTEXT: &str = "subject";

/// Data keys wrapped by the KMS key `key_id`, kept in `table`.
#[derive(Clone, Debug)]
pub struct KmsSubjectKeys {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    kms: aws_sdk_kms::Client,
    key_id: String,
}

/// What the table holds for a subject.
enum Stored {
    Wrapped(Vec<u8>),
    Forgotten,
    Nothing,
}

impl KmsSubjectKeys {
    /// Keys in `table`, wrapped by `key_id` (an id, ARN or alias).
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        kms: aws_sdk_kms::Client,
        key_id: impl Into<String>,
    ) -> Self {
        Self {
            dynamodb,
            table: table.into(),
            kms,
            key_id: key_id.into(),
        }
    }

    async fn stored(&self, subject: &str) -> Result<Stored, StoreError> {
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(SUBJECT, AttributeValue::S(subject.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::error::from_sdk("GetItem", &self.table, e))?
            .item;
        Ok(match item {
            None => Stored::Nothing,
            Some(item) if item.contains_key(FORGOTTEN_AT) => Stored::Forgotten,
            Some(item) => match item.get(WRAPPED_KEY) {
                Some(AttributeValue::B(blob)) => Stored::Wrapped(blob.as_ref().to_vec()),
                _ => {
                    return Err(StoreError::corrupt(format!(
                        "the key item of {subject} holds no wrapped key"
                    )));
                }
            },
        })
    }

    async fn unwrap(&self, subject: &str, wrapped: Vec<u8>) -> Result<DataKey, StoreError> {
        let plain = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .encryption_context(CONTEXT, subject)
            .send()
            .await
            .map_err(|e| super::error::from_sdk("Decrypt", &self.key_id, e))?
            .plaintext
            .ok_or_else(|| StoreError::corrupt(format!("KMS unwrapped no key for {subject}")))?;
        DataKey::from_slice(plain.as_ref())
    }

    /// A new key for `subject`, stored wrapped unless another writer stored one first (then
    /// that one is used).
    async fn make(&self, subject: &str) -> Result<DataKey, StoreError> {
        let made = self
            .kms
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT, subject)
            .send()
            .await
            .map_err(|e| super::error::from_sdk("GenerateDataKey", &self.key_id, e))?;
        let (Some(plain), Some(wrapped)) = (made.plaintext, made.ciphertext_blob) else {
            return Err(StoreError::corrupt(
                "KMS made a data key without both halves",
            ));
        };
        let item = HashMap::from([
            (SUBJECT.to_owned(), AttributeValue::S(subject.to_owned())),
            (
                WRAPPED_KEY.to_owned(),
                AttributeValue::B(Blob::new(wrapped.into_inner())),
            ),
            (
                CREATED_AT.to_owned(),
                AttributeValue::S(crate::envelope::format_timestamp(&crate::envelope::now())),
            ),
        ]);
        let written = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#subject)")
            .expression_attribute_names("#subject", SUBJECT)
            .send()
            .await;
        match written {
            Ok(_) => DataKey::from_slice(plain.as_ref()),
            Err(e)
                if e.as_service_error().is_some_and(
                    aws_sdk_dynamodb::operation::put_item::PutItemError::is_conditional_check_failed_exception,
                ) =>
            {
                // Another writer made the subject's key (or forgot it) first: theirs stands.
                match self.stored(subject).await? {
                    Stored::Wrapped(wrapped) => self.unwrap(subject, wrapped).await,
                    Stored::Forgotten | Stored::Nothing => Err(forgotten(subject)),
                }
            }
            Err(e) => Err(super::error::from_sdk_write("PutItem", &self.table, e)),
        }
    }
}

#[async_trait]
impl SubjectKeys for KmsSubjectKeys {
    async fn sealing_key(&self, subject: &str) -> Result<DataKey, StoreError> {
        match self.stored(subject).await? {
            Stored::Wrapped(wrapped) => self.unwrap(subject, wrapped).await,
            Stored::Forgotten => Err(forgotten(subject)),
            Stored::Nothing => self.make(subject).await,
        }
    }

    async fn opening_key(&self, subject: &str) -> Result<Option<DataKey>, StoreError> {
        match self.stored(subject).await? {
            Stored::Wrapped(wrapped) => self.unwrap(subject, wrapped).await.map(Some),
            Stored::Forgotten | Stored::Nothing => Ok(None),
        }
    }

    async fn forget(&self, subject: &str) -> Result<(), StoreError> {
        let item = HashMap::from([
            (SUBJECT.to_owned(), AttributeValue::S(subject.to_owned())),
            (
                FORGOTTEN_AT.to_owned(),
                AttributeValue::S(crate::envelope::format_timestamp(&crate::envelope::now())),
            ),
        ]);
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| super::error::from_sdk_write("PutItem", &self.table, e))?;
        Ok(())
    }
}

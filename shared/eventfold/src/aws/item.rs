//! Stored documents to and from DynamoDB items, attribute for attribute, via serde_dynamo.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::stored::Document;

/// A DynamoDB item as the SDK represents it.
pub type Item = HashMap<String, AttributeValue>;

/// Serializes any serde value into an item.
pub fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::misuse(format!("cannot encode item: {e}")))
}

/// Deserializes an item, reporting undecodable data as corruption.
pub fn from_item<T: DeserializeOwned>(item: Item, what: &str) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::corrupt(format!("cannot decode {what}: {e}")))
}

/// A stored document as the item DynamoDB holds.
pub fn from_document(document: &Document) -> Result<Item, StoreError> {
    to_item(document)
}

/// An item as the stored document it holds.
pub fn to_document(item: Item) -> Result<Document, StoreError> {
    from_item(item, "item")
}

/// The size DynamoDB charges an item: attribute names plus values, by its documented rules.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => crate::stored::digits_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| crate::stored::digits_size(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::stored;

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "[a-zé\"]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// What the store normalises and sizes without the SDK is what DynamoDB's own form
        /// gives: the memory store refuses and chains exactly what DynamoDB would.
        #[test]
        fn documents_normalise_and_size_as_their_items(value in arbitrary_json()) {
            let normalized = stored::normalize(value).expect("in range");
            let document: Document = [("payload".to_owned(), normalized)].into_iter().collect();
            let item = from_document(&document).expect("encodes");
            prop_assert_eq!(stored::size(&document), item_size(&item));
            prop_assert_eq!(to_document(item).expect("decodes"), document);
        }
    }

    #[test]
    fn item_size_counts_names_and_values() {
        let mut item = Item::new();
        item.insert("ab".into(), AttributeValue::S("xyz".into()));
        item.insert("n".into(), AttributeValue::N("12345".into()));
        assert_eq!(item_size(&item), 2 + 3 + 1 + 4);
        let document = to_document(item).expect("decodes");
        assert_eq!(document["n"], json!(12345));
    }
}

//! Lambda event filtering: the subset of the pattern language event source mappings accept
//! that matters here — exact values, `prefix`, `exists`, `anything-but` and nested objects.

use serde_json::Value;

/// Whether a record (as Lambda would deliver it) matches any of the patterns; no patterns
/// match everything.
pub fn matches_any(patterns: &[Value], record: &Value) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|pattern| matches(pattern, Some(record)))
}

/// Whether `value` matches `pattern`.
pub fn matches(pattern: &Value, value: Option<&Value>) -> bool {
    match pattern {
        Value::Object(fields) => fields.iter().all(|(key, sub)| {
            let inner = value.and_then(|v| v.get(key));
            matches(sub, inner)
        }),
        Value::Array(alternatives) => alternatives.iter().any(|alt| matches_leaf(alt, value)),
        other => value == Some(other),
    }
}

fn matches_leaf(alternative: &Value, value: Option<&Value>) -> bool {
    match alternative {
        Value::Object(rule) => {
            if let Some(Value::Bool(exists)) = rule.get("exists") {
                return value.is_some() == *exists;
            }
            if let Some(Value::String(prefix)) = rule.get("prefix") {
                return value
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with(prefix.as_str()));
            }
            if let Some(excluded) = rule.get("anything-but") {
                let Some(value) = value else { return false };
                return match excluded {
                    Value::Array(items) => !items.contains(value),
                    single => single != value,
                };
            }
            false
        }
        literal => value == Some(literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_select_records() {
        let insert = json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"snapshot_due": {"BOOL": true}, "stream_id": {"S": "Account-1"}}}});
        let modify = json!({"eventName": "MODIFY", "dynamodb": {}});
        let only_inserts = [json!({"eventName": ["INSERT"]})];
        assert!(matches_any(&only_inserts, &insert));
        assert!(!matches_any(&only_inserts, &modify));
        let due = [json!({"dynamodb": {"NewImage": {"snapshot_due": {"BOOL": [true]}}}})];
        assert!(matches_any(&due, &insert) && !matches_any(&due, &modify));
        let accounts =
            [json!({"dynamodb": {"NewImage": {"stream_id": {"S": [{"prefix": "Account-"}]}}}})];
        assert!(matches_any(&accounts, &insert));
        let exists = [json!({"dynamodb": {"NewImage": [{"exists": false}]}})];
        assert!(!matches_any(&exists, &insert) && matches_any(&exists, &modify));
        let not_remove = [json!({"eventName": [{"anything-but": ["REMOVE"]}]})];
        assert!(matches_any(&not_remove, &insert));
        assert!(matches_any(&[], &modify));
    }
}

//! Anchored history: the heads of every stream (version and chain value) digested into one
//! Merkle root, signed by a KMS asymmetric key (ECDSA P-256) and kept in a bucket under S3
//! Object Lock, where no function (and, in compliance mode, nobody) can rewrite or delete it
//! before its retention ends.
//!
//! The chain alone proves little against someone who can write the events table: they can
//! rewrite an event and recompute the chain after it, cut a stream's tail, or delete a stream.
//! Against the latest signed anchor each is seen and named: a stream it lists that is gone, a
//! stream shorter than it was, an event whose chain value at an anchored version differs.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use eventfold::StreamId;
use eventfold::store::EventStore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{OpsError, Target};
use crate::sign::SignedClient;

/// Where anchors are kept, under this prefix, one object per anchor, named by its time.
const PREFIX: &str = "anchors/";

/// A stream's head: its last version and that event's chain value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub stream: String,
    pub version: u64,
    pub chain: String,
}

/// A signed digest of every stream's head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// When it was made (RFC 3339).
    pub anchored_at: String,
    /// The heads, sorted by stream.
    pub heads: Vec<Head>,
    /// The Merkle root of the heads (hex).
    pub root: String,
    /// The KMS key that signed it.
    pub key_id: String,
    /// ECDSA P-256 signature of [`signed_digest`] (the time and the root), base64.
    pub signature: String,
}

/// What a comparison with an anchor found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A stream the anchor lists is gone.
    Deleted { stream: String, anchored: u64 },
    /// A stream has fewer events than when anchored.
    Cut {
        stream: String,
        anchored: u64,
        now: u64,
    },
    /// The event at an anchored version is not the one anchored (rewritten, its chain
    /// recomputed from there).
    Rewritten { stream: String, version: u64 },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deleted { stream, anchored } => write!(
                f,
                "DELETED {stream}: anchored at version {anchored}, now gone"
            ),
            Self::Cut {
                stream,
                anchored,
                now,
            } => write!(
                f,
                "CUT {stream}: anchored at version {anchored}, now ends at {now}"
            ),
            Self::Rewritten { stream, version } => write!(
                f,
                "REWRITTEN {stream}: the event at version {version} is not the one anchored \
                 (rewritten, and the chain recomputed after it)"
            ),
        }
    }
}

/// The Merkle root of heads sorted by stream: leaves hash their fields (0x00-prefixed), nodes
/// their children (0x01-prefixed), an odd node rises alone.
pub fn merkle_root(heads: &[Head]) -> [u8; 32] {
    let mut level: Vec<[u8; 32]> = heads
        .iter()
        .map(|head| {
            let mut leaf = Sha256::new();
            leaf.update([0]);
            leaf.update(head.stream.as_bytes());
            leaf.update([0]);
            leaf.update(head.version.to_be_bytes());
            leaf.update([0]);
            leaf.update(head.chain.as_bytes());
            leaf.finalize().into()
        })
        .collect();
    if level.is_empty() {
        return Sha256::digest([]).into();
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut node = Sha256::new();
                    node.update([1]);
                    node.update(left);
                    node.update(right);
                    node.finalize().into()
                }
                [alone] => *alone,
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    level[0]
}

/// The bucket anchors are kept in and the key that signs them.
#[derive(Clone, Debug)]
pub struct AnchorStore {
    client: SignedClient,
    bucket: String,
    key_id: String,
}

impl AnchorStore {
    /// Anchors in `bucket`, signed by the KMS key `key_id`.
    pub fn new(client: SignedClient, bucket: impl Into<String>, key_id: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            key_id: key_id.into(),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// An object's URL: path style on an emulator, virtual-hosted on AWS.
    fn url(&self, key: &str) -> String {
        let endpoint = self.client.endpoint("s3");
        if endpoint.contains(".amazonaws.com") {
            format!(
                "https://{}.s3.{}.amazonaws.com/{key}",
                self.bucket,
                self.client.region()
            )
        } else {
            format!("{endpoint}/{}/{key}", self.bucket)
        }
    }

    /// Signs and stores an anchor of `heads`; what was stored, and under which key.
    pub async fn anchor(&self, mut heads: Vec<Head>) -> Result<(Anchor, String), OpsError> {
        heads.sort_by(|a, b| a.stream.cmp(&b.stream));
        let root = merkle_root(&heads);
        let now = eventfold::envelope::now();
        let anchored_at = eventfold::envelope::format_timestamp(&now);
        let signed = self
            .client
            .call_json(
                "kms",
                "TrentService.Sign",
                &json!({
                    "KeyId": self.key_id,
                    "Message": STANDARD.encode(signed_digest(&anchored_at, &root)),
                    "MessageType": "DIGEST",
                    "SigningAlgorithm": "ECDSA_SHA_256",
                }),
            )
            .await
            .map_err(|e| OpsError::new(e.to_string()))?;
        let anchor = Anchor {
            anchored_at: anchored_at.clone(),
            heads,
            root: hex::encode(root),
            key_id: self.key_id.clone(),
            signature: signed["Signature"].as_str().unwrap_or_default().to_owned(),
        };
        let body = serde_json::to_vec(&anchor).map_err(|e| OpsError::new(e.to_string()))?;
        let checksum = STANDARD.encode(Sha256::digest(&body));
        let key = anchor_key(&now);
        // The bucket's default retention locks the object; an Object Lock write needs a
        // checksum of the body.
        let put = self
            .client
            .send(
                "s3",
                "PUT",
                &self.url(&key),
                &[
                    ("content-type", "application/json"),
                    ("x-amz-sdk-checksum-algorithm", "SHA256"),
                    ("x-amz-checksum-sha256", &checksum),
                ],
                body,
            )
            .await
            .map_err(OpsError::new)?;
        if !put.status().is_success() {
            let status = put.status();
            let said = put.text().await.unwrap_or_default();
            return Err(OpsError::new(format!(
                "storing the anchor in {}: {status} {said}",
                self.bucket
            )));
        }
        Ok((anchor, format!("s3://{}/{key}", self.bucket)))
    }

    /// The latest anchor, if any, its signature and root checked: one that does not verify
    /// is an error (the anchors themselves were tampered with).
    ///
    /// Keys sort newest first, and the listing is of versions: a delete marker laid over the
    /// latest anchor (which Object Lock allows) does not hide it. The signature covers the
    /// anchor's time, and the time must be the one its key is named after, so an older genuine
    /// anchor stored again under a newer name, or as a new version of the latest, is refused
    /// rather than trusted.
    pub async fn latest(&self) -> Result<Option<Anchor>, OpsError> {
        let mut marker: Option<(String, String)> = None;
        let (key, version) = loop {
            let mut url = format!(
                "{}?versions&prefix={}&max-keys=100",
                self.url(""),
                query_value(PREFIX)
            );
            if let Some((key, version)) = &marker {
                url.push_str(&format!(
                    "&key-marker={}&version-id-marker={}",
                    query_value(key),
                    query_value(version)
                ));
            }
            let listed = self
                .client
                .send("s3", "GET", &url, &[], Vec::new())
                .await
                .map_err(OpsError::new)?;
            let status = listed.status();
            let xml = listed
                .text()
                .await
                .map_err(|e| OpsError::new(e.to_string()))?;
            if !status.is_success() {
                return Err(OpsError::new(format!(
                    "listing the anchors in {}: {status} {xml}",
                    self.bucket
                )));
            }
            let versions: Vec<(String, String)> = xml
                .split("<Version>")
                .skip(1)
                .filter_map(|version| {
                    Some((element(version, "Key")?, element(version, "VersionId")?))
                })
                .collect();
            if let Some((key, version)) = versions.first() {
                if versions.iter().filter(|(other, _)| other == key).count() > 1 {
                    return Err(OpsError::new(format!(
                        "the anchor {key} was stored more than once: anchors are written once, \
                         so one of its versions is not genuine"
                    )));
                }
                break (key.clone(), version.clone());
            }
            match (
                element(&xml, "NextKeyMarker"),
                element(&xml, "NextVersionIdMarker"),
            ) {
                (Some(key), Some(version))
                    if element(&xml, "IsTruncated").as_deref() == Some("true") =>
                {
                    marker = Some((key, version));
                }
                _ => return Ok(None),
            }
        };
        let object = self
            .client
            .send(
                "s3",
                "GET",
                &format!("{}?versionId={version}", self.url(&key)),
                &[],
                Vec::new(),
            )
            .await
            .map_err(OpsError::new)?;
        if !object.status().is_success() {
            return Err(OpsError::new(format!(
                "reading the anchor {key}: {}",
                object.status()
            )));
        }
        let anchor: Anchor = object
            .json()
            .await
            .map_err(|e| OpsError::new(format!("the anchor {key} does not read: {e}")))?;
        let root = merkle_root(&anchor.heads);
        if hex::encode(root) != anchor.root {
            return Err(OpsError::new(format!(
                "the anchor {key} does not hold together: its heads do not make its root"
            )));
        }
        let verified = self
            .client
            .call_json(
                "kms",
                "TrentService.Verify",
                &json!({
                    // The stack's key, never the one the anchor names: a forger signs with a
                    // key of their own.
                    "KeyId": self.key_id,
                    "Message": STANDARD.encode(signed_digest(&anchor.anchored_at, &root)),
                    "MessageType": "DIGEST",
                    "Signature": anchor.signature,
                    "SigningAlgorithm": "ECDSA_SHA_256",
                }),
            )
            .await;
        if !matches!(verified, Ok(answer) if answer["SignatureValid"] == json!(true)) {
            return Err(OpsError::new(format!(
                "the anchor {key} is not signed by its key: it was forged"
            )));
        }
        let named =
            eventfold::envelope::parse_timestamp(&anchor.anchored_at).map(|at| anchor_key(&at));
        if named.as_deref() != Some(key.as_str()) {
            return Err(OpsError::new(format!(
                "the anchor {key} was made at {} and stored under another name: an older \
                 anchor replayed as the latest",
                anchor.anchored_at
            )));
        }
        Ok(Some(anchor))
    }
}

/// What an anchor's signature covers: its time and its root.
fn signed_digest(anchored_at: &str, root: &[u8; 32]) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(b"eventfold anchor\0");
    digest.update(anchored_at.as_bytes());
    digest.update([0]);
    digest.update(root);
    digest.finalize().into()
}

/// An anchor's key: a count down from the far future, so that the newest sorts first, then the
/// time it was made, to read.
fn anchor_key(at: &chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{PREFIX}{:013}-{}.json",
        9_999_999_999_999 - at.timestamp_millis(),
        at.format("%Y%m%dT%H%M%S%.6fZ")
    )
}

/// `text` as a query string value (RFC 3986: unreserved characters as they are, the rest
/// percent-encoded), as SigV4's canonical request encodes it.
fn query_value(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The text of the first `<name>` element in `xml`.
pub(crate) fn element(xml: &str, name: &str) -> Option<String> {
    let (_, rest) = xml.split_once(&format!("<{name}>"))?;
    let (text, _) = rest.split_once(&format!("</{name}>"))?;
    Some(text.to_owned())
}

/// What `heads` (every stream's now, by stream) says of the history `anchor` vouched for.
pub async fn compare(
    target: &Target,
    anchor: &Anchor,
    heads: &BTreeMap<String, Head>,
) -> Result<Vec<Finding>, OpsError> {
    let mut findings = Vec::new();
    for anchored in &anchor.heads {
        let Some(now) = heads.get(&anchored.stream) else {
            findings.push(Finding::Deleted {
                stream: anchored.stream.clone(),
                anchored: anchored.version,
            });
            continue;
        };
        if now.version < anchored.version {
            findings.push(Finding::Cut {
                stream: anchored.stream.clone(),
                anchored: anchored.version,
                now: now.version,
            });
            continue;
        }
        let chain = if now.version == anchored.version {
            now.chain.clone()
        } else {
            let stream = StreamId::parse(&anchored.stream).map_err(|e| OpsError(e.to_string()))?;
            let page = target
                .store
                .read_stream(&stream, anchored.version, 1)
                .await?;
            page.events
                .first()
                .map(|e| e.chain.clone())
                .unwrap_or_default()
        };
        if chain != anchored.chain {
            findings.push(Finding::Rewritten {
                stream: anchored.stream.clone(),
                version: anchored.version,
            });
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(stream: &str, version: u64) -> Head {
        Head {
            stream: stream.into(),
            version,
            chain: format!("c{version}"),
        }
    }

    #[test]
    fn the_newest_anchor_sorts_first() {
        let earlier = chrono::DateTime::parse_from_rfc3339("2026-12-06T09:00:00.000001Z")
            .expect("time")
            .to_utc();
        let later = earlier + chrono::Duration::milliseconds(1);
        assert!(anchor_key(&later) < anchor_key(&earlier));
        let far = earlier + chrono::Duration::days(365 * 40);
        assert!(anchor_key(&far) < anchor_key(&later));
        assert_eq!(
            element("<a><Key>k</Key><Key>l</Key></a>", "Key").as_deref(),
            Some("k")
        );
        assert_eq!(query_value("anchors/0-2026.json"), "anchors%2F0-2026.json");
    }

    #[test]
    fn the_root_changes_with_any_head_and_rises_an_odd_node() {
        let heads = vec![head("A-1", 3), head("B-1", 5), head("C-1", 1)];
        let root = merkle_root(&heads);
        for changed in [
            vec![head("A-1", 2), head("B-1", 5), head("C-1", 1)],
            vec![head("A-1", 3), head("C-1", 1)],
            vec![head("A-1", 3), head("B-1", 5), head("C-2", 1)],
        ] {
            assert_ne!(merkle_root(&changed), root, "{changed:?}");
        }
        assert_eq!(merkle_root(&heads), root);
        assert_ne!(merkle_root(&[]), root);
    }
}

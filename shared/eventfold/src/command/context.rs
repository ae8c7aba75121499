//! What a command is given: who asks, under which idempotency key, by when; which streams it
//! acts on; which uniqueness claims it makes.

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::aggregate::DomainEvent;
use crate::chain::write_canonical_json;
use crate::encoding::to_new_event;
use crate::envelope::{EventMetadata, NewEvent};
use crate::error::StoreError;
use crate::identity::Principal;
use crate::ids::{CommandId, StreamId};

/// The fingerprint of a request: SHA-256 over its kind and the canonical JSON of its parsed
/// form. Formatting, key order and Rust field names do not change it; what the request means
/// does. The same command id with another fingerprint is refused.
pub fn request_fingerprint<T: Serialize>(kind: &str, request: &T) -> Result<String, StoreError> {
    let value = serde_json::to_value(request)
        .map_err(|e| StoreError::misuse(format!("a {kind} request does not serialize: {e}")))?;
    let mut canonical = String::new();
    write_canonical_json(&value, &mut canonical);
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    Ok(hex::encode(hasher.finalize()))
}

/// Who is asking, under which idempotency key, and by when the answer is due.
#[derive(Clone, Debug, Default)]
pub struct CommandContext {
    /// Makes the command idempotent: a repeat returns the first execution and writes nothing.
    pub command_id: Option<CommandId>,
    /// Fingerprint of the request behind the command id ([`request_fingerprint`]).
    pub request_hash: String,
    /// Correlation, causation and actor, copied onto every event written (the command id is
    /// added by the service).
    pub metadata: EventMetadata,
    /// When the caller stops waiting (a Lambda's deadline less a margin): retries stop, and
    /// a store call still running is abandoned, in time to answer.
    pub deadline: Option<Instant>,
    /// The command id was generated for this very request, so no earlier execution can
    /// exist: a command that writes nothing answers without reading the command record.
    pub fresh_id: bool,
    /// Who asks, as the authorizer vouched for them; access rules see it, and it is recorded
    /// as the actor of the events written.
    pub principal: Option<Principal>,
}

impl CommandContext {
    /// A context for an idempotent command.
    pub fn new(command_id: CommandId, request_hash: impl Into<String>) -> Self {
        Self {
            command_id: Some(command_id),
            request_hash: request_hash.into(),
            ..Self::default()
        }
    }

    /// Sets the event metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: EventMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the principal.
    #[must_use]
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// Sets the deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The metadata every event of this command carries: the caller's, with the command id.
    pub(crate) fn event_metadata(&self) -> EventMetadata {
        let mut metadata = self.metadata.clone();
        metadata.command_id = self.command_id.as_ref().map(ToString::to_string);
        if metadata.actor.is_none() {
            metadata.actor = self.principal.as_ref().map(|p| p.subject().to_owned());
        }
        metadata
    }
}

/// A stream the command acts on, optionally pinned to a version by the caller.
#[derive(Clone, Debug)]
pub struct Target {
    /// The stream.
    pub stream_id: StreamId,
    /// `If-Match`: fail with `PreconditionFailed` unless the stream is at this version.
    pub if_match: Option<u64>,
}

impl Target {
    /// A target the service may retry on.
    pub fn new(stream_id: StreamId) -> Self {
        Self {
            stream_id,
            if_match: None,
        }
    }

    /// A target pinned to a version (or not, for `None`).
    #[must_use]
    pub fn if_match(mut self, version: Option<u64>) -> Self {
        self.if_match = version;
        self
    }
}

/// A uniqueness claim: a stream that must not exist yet, created in the same transaction.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The claiming stream (e.g. one named after a keyed hash of the unique value).
    pub stream_id: StreamId,
    /// Its first event; the service gives it the command's metadata.
    pub(crate) event: NewEvent,
}

impl Claim {
    /// A claim on `stream_id`, recorded by `event`. A claim's event is never sealed, so one
    /// holding a personal value is refused: claim by a keyed hash of the value instead.
    pub fn new<E: DomainEvent>(stream_id: StreamId, event: &E) -> Result<Self, StoreError> {
        let event = to_new_event(event)?;
        if crate::personal::holds_open_values(&event.payload) {
            return Err(StoreError::misuse(format!(
                "the claim on {stream_id} holds personal data, which a claim cannot seal: \
                 name the claim after a keyed hash of the value instead"
            )));
        }
        Ok(Self { stream_id, event })
    }
}

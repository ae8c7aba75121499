//! Personal data through the command service, in memory: sealed before it is chained, never
//! written without keys or for a forgotten subject (nothing at all is written then), each
//! subject's key asked for once per command, kept states as sealed as stored ones, and a
//! forgotten subject's values erased on every read while every chain still verifies.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use eventfold::command::{CommandContext, CommandError, CommandService, Target};
use eventfold::personal::{DataKey, Keyring, MemoryKeys, Personal, SubjectKeys};
use eventfold::prelude::*;
use eventfold::store::EventStore;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DomainEvent)]
#[serde(tag = "type", content = "data")]
enum MemberEvent {
    Joined {
        name: Personal<String>,
        town: Personal<String>,
    },
    Renamed {
        name: Personal<String>,
    },
}

#[derive(Debug)]
enum MemberCommand {}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("never")]
struct Never;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Member {
    name: Option<Personal<String>>,
    events: u64,
}

impl Aggregate for Member {
    const CATEGORY: &'static str = "Member";
    const STATE_SCHEMA: u32 = 1;
    type Event = MemberEvent;
    type Command = MemberCommand;
    type Error = Never;

    fn decide(&self, command: &MemberCommand) -> Result<Vec<MemberEvent>, Never> {
        match *command {}
    }

    fn evolve(mut self, event: &MemberEvent) -> Self {
        match event {
            MemberEvent::Joined { name, .. } | MemberEvent::Renamed { name } => {
                self.name = Some(name.clone());
            }
        }
        self.events += 1;
        self
    }
}

/// Keys in memory that count how often each is asked for.
#[derive(Debug, Default)]
struct Counted {
    keys: MemoryKeys,
    sealing: AtomicUsize,
}

#[async_trait]
impl SubjectKeys for Counted {
    async fn sealing_key(&self, subject: &str) -> Result<DataKey, StoreError> {
        self.sealing.fetch_add(1, Ordering::SeqCst);
        self.keys.sealing_key(subject).await
    }

    async fn opening_key(&self, subject: &str) -> Result<Option<DataKey>, StoreError> {
        self.keys.opening_key(subject).await
    }

    async fn forget(&self, subject: &str) -> Result<(), StoreError> {
        self.keys.forget(subject).await
    }
}

fn stream(id: &str) -> StreamId {
    Member::stream_id(&EntityId::parse(id).unwrap())
}

fn mine(subject: &str, value: &str) -> Personal<String> {
    Personal::new(subject, value.to_owned())
}

/// Writes `events` to each of `streams` in one command.
async fn write(
    service: &CommandService,
    streams: &[StreamId],
    events: Vec<MemberEvent>,
) -> Result<(), CommandError<Never>> {
    let targets: Vec<Target> = streams.iter().cloned().map(Target::new).collect();
    service
        .execute_authorized::<Member, _>(
            &CommandContext::default(),
            &targets,
            &[],
            |_| Ok(()),
            |loaded| Ok(loaded.iter().map(|_| events.clone()).collect()),
            (),
        )
        .await
        .map(drop)
}

#[tokio::test]
async fn personal_values_are_sealed_before_chaining_with_one_key_fetch_per_subject() {
    let keys = Arc::new(Counted::default());
    let store = Arc::new(MemoryStore::new());
    let service = CommandService::new(store.clone()).with_subject_keys(keys.clone());
    let ann = stream("ann");
    write(
        &service,
        std::slice::from_ref(&ann),
        vec![
            MemberEvent::Joined {
                name: mine("ann", "Ann Smith"),
                town: mine("ann", "Leeds"),
            },
            MemberEvent::Renamed {
                name: mine("ann", "Ann Jones"),
            },
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        keys.sealing.load(Ordering::SeqCst),
        1,
        "one key fetch for three values of one subject"
    );
    let stored = store.read_stream(&ann, 1, 10).await.unwrap().events;
    assert_eq!(stored.len(), 2);
    for secret in ["Ann Smith", "Leeds", "Ann Jones"] {
        assert!(
            !format!("{stored:?}").contains(secret),
            "{secret} is stored in plain text"
        );
    }
    assert!(store.verify_stream(&ann).await.unwrap().is_intact());
    // The state this process kept from its own write is as sealed as one loaded afresh.
    let kept = service.load::<Member>(&ann).await.unwrap().state;
    let fresh = service
        .clone()
        .keep_states(0)
        .load::<Member>(&ann)
        .await
        .unwrap()
        .state;
    for state in [&kept, &fresh] {
        let name = state.name.as_ref().unwrap();
        assert_eq!((name.subject(), name.value()), ("ann", None), "{state:?}");
    }
    // A reader with the key sees the values.
    let mut shown = stored[1].payload.clone();
    Keyring::new(keys.clone()).open(&mut shown).await.unwrap();
    let name: Personal<String> = serde_json::from_value(shown["name"].clone()).unwrap();
    assert_eq!(name.value().map(String::as_str), Some("Ann Jones"));
}

#[tokio::test]
async fn without_keys_a_personal_value_is_refused_and_nothing_is_written() {
    let store = Arc::new(MemoryStore::new());
    let service = CommandService::new(store.clone());
    let bo = stream("bo");
    let refused = write(
        &service,
        std::slice::from_ref(&bo),
        vec![MemberEvent::Renamed {
            name: mine("bo", "Bo"),
        }],
    )
    .await;
    assert!(
        matches!(refused, Err(CommandError::Store(StoreError::Misuse(ref why))) if why.contains("with_subject_keys")),
        "{refused:?}"
    );
    assert_eq!(store.read_head(&bo).await.unwrap(), None);
}

#[tokio::test]
async fn a_forgotten_subject_reads_as_erased_and_no_command_writes_for_them() {
    let keys = Arc::new(MemoryKeys::new());
    let store = Arc::new(MemoryStore::new());
    let service = CommandService::new(store.clone()).with_subject_keys(keys.clone());
    let (cy, dee) = (stream("cy"), stream("dee"));
    write(
        &service,
        std::slice::from_ref(&cy),
        vec![MemberEvent::Renamed {
            name: mine("cy", "Cy Young"),
        }],
    )
    .await
    .unwrap();
    keys.forget("cy").await.unwrap();

    let stored = store.read_stream(&cy, 1, 10).await.unwrap().events;
    let mut shown = stored[0].payload.clone();
    Keyring::new(keys.clone()).open(&mut shown).await.unwrap();
    let name: Personal<String> = serde_json::from_value(shown["name"].clone()).unwrap();
    assert!(name.is_erased(), "{name:?}");
    assert!(
        store.verify_stream(&cy).await.unwrap().is_intact(),
        "forgetting rewrites nothing"
    );
    // The stream still folds.
    let state = service.load::<Member>(&cy).await.unwrap().state;
    assert_eq!(state.events, 1);

    // A command over two streams that would write a value of the forgotten subject writes
    // nothing on either, whoever else's values it carries.
    let refused = write(
        &service,
        &[dee.clone(), cy.clone()],
        vec![
            MemberEvent::Renamed {
                name: mine("dee", "Dee"),
            },
            MemberEvent::Renamed {
                name: mine("cy", "Cy Again"),
            },
        ],
    )
    .await;
    assert!(
        matches!(refused, Err(CommandError::Store(StoreError::Misuse(ref why))) if why.contains("forgotten")),
        "{refused:?}"
    );
    assert_eq!(store.read_head(&dee).await.unwrap(), None);
    assert_eq!(
        store.read_head(&cy).await.unwrap().map(|h| h.version()),
        Some(1)
    );
}

#[test]
fn a_claim_cannot_carry_a_personal_value() {
    let refused = Claim::new(
        stream("claim"),
        &MemberEvent::Renamed {
            name: mine("ann", "Ann"),
        },
    );
    assert!(
        matches!(refused, Err(StoreError::Misuse(ref why)) if why.contains("keyed hash")),
        "{refused:?}"
    );
}

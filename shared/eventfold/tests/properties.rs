//! Property tests: the stored form round-trips any envelope, and chain verification catches any
//! single mutated field of any event.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use chrono::{TimeZone, Utc};
use eventfold::chain::{ChainVerifier, chain_hash};
use eventfold::stored::{decode, encode, normalize};
use eventfold::{EventMetadata, RecordedEvent, StreamId};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e12f64..1.0e12).prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn payload() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map("[a-zA-Z_]{1,12}", json_value(), 0..8)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn metadata() -> impl Strategy<Value = EventMetadata> {
    let text = proptest::option::of("[ -~]{1,40}");
    (text.clone(), text.clone(), text.clone(), text).prop_map(
        |(correlation_id, causation_id, command_id, actor)| EventMetadata {
            correlation_id,
            causation_id,
            command_id,
            actor,
        },
    )
}

fn event() -> impl Strategy<Value = RecordedEvent> {
    (
        "[A-Z][a-zA-Z0-9]{0,12}",
        "[A-Za-z0-9_-]{1,64}",
        1u64..u64::MAX / 2,
        any::<u128>(),
        "[A-Za-z][A-Za-z0-9_.]{0,30}",
        1u32..50,
        0i64..4_102_444_800_000_000,
        metadata(),
        payload(),
        any::<bool>(),
    )
        .prop_map(
            |(
                category,
                id,
                version,
                uuid,
                event_type,
                schema_version,
                micros,
                metadata,
                payload,
                snapshot_due,
            )| RecordedEvent {
                stream_id: StreamId::new(&category, &id).unwrap(),
                version,
                event_id: uuid::Uuid::from_u128(uuid),
                event_type,
                schema_version,
                occurred_at: Utc.timestamp_micros(micros).unwrap(),
                metadata,
                payload,
                chain: "0f".repeat(32),
                snapshot_due,
            },
        )
}

/// A chained stream of `n` events, as the writer produces it.
fn stream(n: usize) -> impl Strategy<Value = Vec<RecordedEvent>> {
    proptest::collection::vec(event(), n..=n).prop_map(|mut events| {
        let stream_id = events[0].stream_id.clone();
        let mut previous = String::new();
        for (i, event) in events.iter_mut().enumerate() {
            event.stream_id = stream_id.clone();
            event.version = i as u64 + 1;
            event.payload = normalize(event.payload.clone()).unwrap();
            event.chain = chain_hash(&previous, event);
            previous.clone_from(&event.chain);
        }
        events
    })
}

fn verify(events: &[RecordedEvent]) -> Result<(), u64> {
    let mut verifier = ChainVerifier::new();
    events.iter().try_for_each(|e| verifier.push(e))
}

/// Changes one field of an event, always to a different value.
fn mutate(event: &mut RecordedEvent, field: usize, noise: u64) {
    match field {
        0 => event.stream_id = StreamId::new("Mutated", &format!("x{noise}")).unwrap(),
        1 => event.version = event.version.wrapping_add(1 + noise % 5),
        2 => {
            event.event_id =
                uuid::Uuid::from_u128(event.event_id.as_u128() ^ (u128::from(noise) | 1));
        }
        3 => event.event_type.push('X'),
        4 => event.schema_version += 1 + (noise % 3) as u32,
        5 => event.occurred_at += chrono::Duration::microseconds(1 + (noise % 1000) as i64),
        6 => {
            event.metadata.correlation_id =
                Some(format!("{:?}-changed", event.metadata.correlation_id));
        }
        7 => event.metadata.actor = Some(format!("{:?}-changed", event.metadata.actor)),
        8 => {
            if let Value::Object(map) = &mut event.payload {
                map.insert(format!("tampered{noise}"), Value::from(noise));
            }
        }
        9 => event.snapshot_due = !event.snapshot_due,
        _ => event.chain = format!("{:064x}", u128::from(noise) + 1),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_stored_form_round_trips_any_envelope(mut original in event()) {
        original.payload = normalize(original.payload).unwrap();
        let document = encode(&original).unwrap();
        let decoded = decode(document).unwrap();
        prop_assert_eq!(decoded, original);
    }

    #[test]
    fn verification_catches_any_single_mutation(events in stream(6), index in 0usize..6, field in 0usize..11, noise in any::<u64>()) {
        prop_assert_eq!(verify(&events), Ok(()));
        let mut tampered = events.clone();
        mutate(&mut tampered[index], field, noise);
        prop_assert_eq!(verify(&tampered), Err(index as u64 + 1), "field {} of version {}", field, index + 1);
    }

    #[test]
    fn reordering_or_dropping_events_is_caught(events in stream(5), a in 0usize..5, offset in 1usize..5) {
        let b = (a + offset) % 5;
        let mut swapped = events.clone();
        swapped.swap(a, b);
        prop_assert_eq!(verify(&swapped), Err(a.min(b) as u64 + 1));
        let mut dropped = events.clone();
        dropped.remove(a);
        if a < 4 {
            prop_assert_eq!(verify(&dropped), Err(a as u64 + 1));
        }
    }
}

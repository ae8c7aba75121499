//! The timer-store conformance suite: written once, run against any [`TimerStore`].
//! [`crate::timers_conformance!`] makes its cases tests.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::reactor::{Timer, TimerStore};

/// The cases of the suite, for [`crate::timers_conformance!`]: `$callback!($args case…)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __timers_suite_cases {
    ([$($callback:tt)*] ($($args:tt)*)) => {
        $($callback)*! { $($args)*
            timers_come_due_in_order_and_go_once_fired
            a_newer_timer_replaces_and_a_cancel_removes
            misuse_is_refused_before_writing_a_timer }
    };
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_900_000_000 + seconds, 0).expect("an instant")
}

fn timer(reactor: &str, key: &str, due: i64, id: &str) -> Timer {
    Timer {
        reactor: reactor.to_owned(),
        key: key.to_owned(),
        due: at(due),
        id: id.to_owned(),
        payload: json!({"key": key, "n": due}),
    }
}

/// Each reactor's timers come due at their time, earliest first, within the limit; scheduling
/// the same timer twice changes nothing; a fired timer is gone; other reactors' are their own.
pub async fn timers_come_due_in_order_and_go_once_fired(timers: Arc<dyn TimerStore>) {
    let late = timer("shipping", "late/o1", 30, "t1");
    let early = timer("shipping", "early/o2", 10, "t2");
    let other = timer("billing", "late/o1", 5, "t3");
    for t in [&late, &early, &other, &late] {
        timers.schedule(t).await.expect("scheduled");
    }
    assert!(
        timers
            .due("shipping", at(9), 10)
            .await
            .expect("none")
            .is_empty()
    );
    assert_eq!(
        timers.due("shipping", at(10), 10).await.expect("due"),
        std::slice::from_ref(&early)
    );
    assert_eq!(
        timers.due("shipping", at(60), 10).await.expect("due"),
        [early.clone(), late.clone()]
    );
    assert_eq!(
        timers.due("shipping", at(60), 1).await.expect("due"),
        std::slice::from_ref(&early)
    );
    assert_eq!(
        timers.pending(Some("shipping")).await.expect("pending"),
        [early.clone(), late.clone()]
    );
    assert_eq!(
        timers.pending(None).await.expect("pending"),
        [other.clone(), early.clone(), late.clone()]
    );
    timers.fired(&early).await.expect("fired");
    timers.fired(&early).await.expect("twice is fine");
    assert_eq!(
        timers.due("shipping", at(60), 10).await.expect("due"),
        std::slice::from_ref(&late)
    );
    assert_eq!(
        timers.due("billing", at(60), 10).await.expect("due"),
        [other]
    );
}

/// A timer under a key already set replaces it (the older never comes due, even at its own
/// time); a cancel removes it; firing a replaced timer leaves its successor set.
pub async fn a_newer_timer_replaces_and_a_cancel_removes(timers: Arc<dyn TimerStore>) {
    let first = timer("orders", "unpaid/o1", 10, "a");
    let later = timer("orders", "unpaid/o1", 20, "b");
    timers.schedule(&first).await.expect("scheduled");
    timers.schedule(&later).await.expect("replaced");
    assert!(
        timers
            .due("orders", at(15), 10)
            .await
            .expect("none")
            .is_empty()
    );
    timers
        .fired(&first)
        .await
        .expect("a replaced timer fired late");
    assert_eq!(
        timers.due("orders", at(25), 10).await.expect("due"),
        std::slice::from_ref(&later)
    );
    timers
        .cancel("orders", "unpaid/o1")
        .await
        .expect("cancelled");
    timers
        .cancel("orders", "unpaid/o1")
        .await
        .expect("twice is fine");
    assert!(
        timers
            .due("orders", at(25), 10)
            .await
            .expect("none")
            .is_empty()
    );
    assert!(
        timers
            .pending(Some("orders"))
            .await
            .expect("none")
            .is_empty()
    );
    // Set again after a cancel: it is due again.
    let again = timer("orders", "unpaid/o1", 40, "c");
    timers.schedule(&again).await.expect("scheduled");
    assert_eq!(
        timers
            .due("orders", at(40) + Duration::milliseconds(1), 10)
            .await
            .expect("due"),
        [again]
    );
}

/// A key no store can keep is refused before anything is written.
pub async fn misuse_is_refused_before_writing_a_timer(timers: Arc<dyn TimerStore>) {
    for key in [
        "",
        "has space",
        &"k".repeat(crate::reactor::MAX_KEY_LEN + 1),
    ] {
        let refused = timers.schedule(&timer("orders", key, 1, "x")).await;
        assert!(refused.is_err(), "{key:?}");
    }
    assert!(
        timers
            .pending(Some("orders"))
            .await
            .expect("none")
            .is_empty()
    );
}

//! Standing orders: a recurring transfer out of an account, run by a reactor on timers. Setting
//! one (`StandingOrderSet` on the sending account) sets its timer a period ahead; each run is a
//! transfer and the next run's timer, a period after this one was due (so runs missed while
//! nothing ran are made up, none twice); cancelling it cancels the timer. A run the accounts
//! refuse (funds short, the payee closed) moves nothing: the reactor records it on the paying
//! account (`StandingOrderRunFailed`, once however often the run fires), and the next run comes
//! as planned.

use std::time::Duration;

use async_trait::async_trait;
use eventfold::command::{CommandContext, CommandService};
use eventfold::encoding::decode_known;
use eventfold::reactor::{Dispatch, Reactions, Reactor, Refusal, Sent, Timer};
use eventfold::{Aggregate, EntityId, RecordedEvent, StoreError, StreamId};
use serde::{Deserialize, Serialize};

use crate::api::TransferMoney;
use crate::domain::account::{Account, AccountCommand, AccountEvent};
use crate::domain::money::Amount;

/// The reactor's name: its checkpoints, timers and commands are kept under it.
pub const NAME: &str = "standing-orders";

/// The standing-orders workflow.
#[derive(Clone, Copy, Debug, Default)]
pub struct StandingOrders;

/// What a standing order's timer carries: everything a run needs, and which run it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The sending account.
    pub from: EntityId,
    /// The receiving account.
    pub to: EntityId,
    /// How much.
    pub amount: Amount,
    /// Seconds between runs.
    pub every_seconds: u32,
    /// Which run (1 for the first).
    pub run: u64,
}

/// The timer of the standing order from `from` to `to`.
pub fn timer_key(from: &EntityId, to: &EntityId) -> String {
    format!("standing/{from}/{to}")
}

fn invalid(what: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(what.to_string())
}

impl Reactor for StandingOrders {
    fn name(&self) -> &str {
        NAME
    }

    fn follows(&self, stream_id: &StreamId) -> bool {
        stream_id.category() == Account::CATEGORY
    }

    fn react(&self, event: &RecordedEvent, out: &mut Reactions) -> Result<(), StoreError> {
        let from = EntityId::parse(event.stream_id.entity_id()).map_err(invalid)?;
        match decode_known::<AccountEvent>(event)? {
            Some(AccountEvent::StandingOrderSet {
                to,
                amount,
                every_seconds,
                ..
            }) => {
                let run = Run {
                    from: from.clone(),
                    to: to.clone(),
                    amount,
                    every_seconds,
                    run: 1,
                };
                let payload = serde_json::to_value(&run).map_err(invalid)?;
                let every = Duration::from_secs(u64::from(every_seconds));
                out.schedule(&timer_key(&from, &to), every, payload);
            }
            Some(AccountEvent::StandingOrderCancelled { to }) => {
                out.cancel(&timer_key(&from, &to));
            }
            _ => {}
        }
        Ok(())
    }

    fn on_timer(&self, timer: &Timer, out: &mut Reactions) -> Result<(), StoreError> {
        let run: Run = serde_json::from_value(timer.payload.clone()).map_err(invalid)?;
        out.send(Box::new(RunTransfer {
            transfer: TransferMoney {
                from: run.from.clone(),
                to: run.to.clone(),
                amount: run.amount,
            },
            run: run.run,
        }));
        let every = chrono::Duration::seconds(i64::from(run.every_seconds));
        let next = Run {
            run: run.run + 1,
            ..run
        };
        let payload = serde_json::to_value(&next).map_err(invalid)?;
        out.schedule_at(&timer.key, timer.due + every, payload);
        Ok(())
    }

    fn on_refused(&self, refusal: &Refusal<'_>, out: &mut Reactions) -> Result<(), StoreError> {
        if let Some(RunTransfer { transfer, run }) = refusal.command_as::<RunTransfer>() {
            out.command::<Account>(
                &transfer.from,
                AccountCommand::RecordFailedRun {
                    to: transfer.to.clone(),
                    amount: transfer.amount,
                    run: *run,
                    reason: refusal.why.to_owned(),
                },
            );
        }
        Ok(())
    }
}

/// One run's transfer, as the reactor sends it (a command over two accounts).
#[derive(Clone, Debug, PartialEq)]
pub struct RunTransfer {
    /// The transfer.
    pub transfer: TransferMoney,
    /// Which run of the standing order it is.
    pub run: u64,
}

#[async_trait]
impl Dispatch for RunTransfer {
    fn stream_id(&self) -> &StreamId {
        // Named for logs; both accounts are written.
        static NONE: std::sync::OnceLock<StreamId> = std::sync::OnceLock::new();
        NONE.get_or_init(|| StreamId::new(Account::CATEGORY, "standing-order").expect("an id"))
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }

    async fn send(
        &self,
        service: &CommandService,
        context: &CommandContext,
    ) -> Result<Sent, StoreError> {
        let result = crate::service::transfer(service, context, &self.transfer, None).await;
        Sent::of(result, self.transfer.from.as_str())
    }
}

#[cfg(test)]
mod tests {
    use eventfold::testing::workflow;

    use super::*;
    use crate::domain::money::Currency;

    fn id(text: &str) -> EntityId {
        EntityId::parse(text).expect("an id")
    }

    fn set(every_seconds: u32) -> AccountEvent {
        AccountEvent::StandingOrderSet {
            to: id("rent"),
            amount: Amount::new(500).expect("an amount"),
            currency: Currency::parse("EUR").expect("EUR"),
            every_seconds,
        }
    }

    fn run(run: u64) -> RunTransfer {
        RunTransfer {
            transfer: TransferMoney {
                from: id("alice"),
                to: id("rent"),
                amount: Amount::new(500).expect("an amount"),
            },
            run,
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_standing_order_runs_every_period_from_when_it_was_set() {
        workflow(StandingOrders)
            .given::<Account>(&id("alice"), [set(86_400)])
            .when_time_elapses(DAY - Duration::from_secs(1))
            .then_no_commands()
            .and()
            .when_time_elapses(Duration::from_secs(1))
            .then_sent(&run(1))
            .then_commands(1)
            .then_scheduled(&timer_key(&id("alice"), &id("rent")))
            .and()
            // Three more days: three more runs, each a day after the last was due.
            .when_time_elapses(DAY * 3)
            .then_commands(3);
    }

    #[test]
    fn a_cancelled_standing_order_runs_no_more() {
        workflow(StandingOrders)
            .given::<Account>(&id("alice"), [set(86_400)])
            .when_time_elapses(DAY)
            .then_commands(1)
            .and()
            .when::<Account>(
                &id("alice"),
                AccountEvent::StandingOrderCancelled { to: id("rent") },
            )
            .then_cancelled(&timer_key(&id("alice"), &id("rent")))
            .and()
            .when_time_elapses(DAY * 10)
            .then_no_commands();
    }

    #[test]
    fn setting_it_again_restarts_its_period() {
        let kit = workflow(StandingOrders)
            .given::<Account>(&id("alice"), [set(86_400)])
            .when_time_elapses(DAY / 2)
            .then_no_commands()
            .and()
            .when::<Account>(&id("alice"), set(3_600))
            .then_scheduled(&timer_key(&id("alice"), &id("rent")))
            .and();
        assert_eq!(kit.timers().len(), 1, "one timer per standing order");
        kit.when_time_elapses(Duration::from_secs(3_600))
            .then_sent(&run(1));
    }

    fn failed(run: u64) -> AccountCommand {
        AccountCommand::RecordFailedRun {
            to: id("rent"),
            amount: Amount::new(500).expect("an amount"),
            run,
            reason: "insufficient funds: balance 10, requested 500".into(),
        }
    }

    #[test]
    fn a_refused_run_is_recorded_on_the_paying_account() {
        workflow(StandingOrders)
            .given::<Account>(&id("alice"), [set(86_400)])
            .when_time_elapses(DAY * 2)
            .then_sent(&run(2))
            .when_refused("insufficient funds: balance 10, requested 500")
            .then_command::<Account>(&id("alice"), failed(1))
            .then_command::<Account>(&id("alice"), failed(2))
            .then_commands(2);
    }

    /// The run's transfer against the accounts as they may be: funds short, it is refused,
    /// nothing moves, and the failure is recorded on the paying account once per run however
    /// often the timer fires; the run after still comes.
    #[tokio::test]
    async fn a_run_with_funds_short_is_refused_cleanly() {
        use std::sync::Arc;

        use eventfold::command::Target;
        use eventfold::reactor::{MemoryTimers, Reacting, TimerStore};
        use eventfold::store::{EventStore, MemoryStore};

        let store = Arc::new(MemoryStore::new());
        let commands = CommandService::new(store.clone())
            .with_subject_keys(Arc::new(eventfold::personal::MemoryKeys::new()));
        let timers = Arc::new(MemoryTimers::new());
        let reacting = Reacting::new(Arc::new(StandingOrders), commands.clone(), timers.clone());
        let context = CommandContext::default();
        let open = |name: &str| AccountCommand::Open {
            owner: eventfold::personal::Personal::new(
                name,
                crate::domain::Name::parse(name).expect("a name"),
            ),
            currency: Currency::parse("EUR").expect("EUR"),
            owner_id: None,
        };
        for (account, command) in [
            ("alice", open("alice")),
            ("rent", open("rent")),
            (
                "alice",
                AccountCommand::Deposit {
                    amount: Amount::new(700).expect("an amount"),
                },
            ),
            (
                "alice",
                AccountCommand::SetStandingOrder {
                    to: id("rent"),
                    amount: Amount::new(500).expect("an amount"),
                    every_seconds: 60,
                },
            ),
        ] {
            let stream = Account::stream_id(&id(account));
            commands
                .execute_one::<Account, _>(&context, Target::new(stream), &command, ())
                .await
                .expect("executed");
        }
        let alice = Account::stream_id(&id("alice"));
        for event in store.read_all(&alice, 1).await.expect("read") {
            reacting.react(&event).await.expect("reacted");
        }
        let due = timers.pending(None).await.expect("pending")[0].due;
        for minute in 0..3 {
            let pending = timers.pending(None).await.expect("pending");
            reacting
                .fire_due(due + chrono::Duration::minutes(minute))
                .await
                .expect("fired");
            // The same timer fired again (a crash before it was taken off): the same commands,
            // answered from their records or refused again and recorded once.
            for timer in pending {
                timers.schedule(&timer).await.expect("set again");
            }
            reacting
                .fire_due(due + chrono::Duration::minutes(minute))
                .await
                .expect("fired");
        }
        let report = reacting.take_report();
        assert_eq!(
            (report.fired, report.written, report.refused),
            (6, 3, 4),
            "a transfer and two failures written; each refusal twice: {report:?}"
        );
        let events = store.read_all(&alice, 1).await.expect("read");
        let sent = events
            .iter()
            .filter(|e| e.event_type == "TransferSent")
            .count();
        assert_eq!(sent, 1, "700 pays one run of 500; the others are refused");
        let failed: Vec<_> = events
            .iter()
            .filter_map(|e| match decode_known::<AccountEvent>(e) {
                Ok(Some(AccountEvent::StandingOrderRunFailed { run, reason, .. })) => {
                    Some((run, reason))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            failed.iter().map(|(run, _)| *run).collect::<Vec<_>>(),
            [2, 3],
            "each refused run recorded once"
        );
        assert!(failed[0].1.contains("insufficient funds"), "{failed:?}");
        assert_eq!(
            timers.pending(None).await.expect("pending").len(),
            1,
            "and the next run waits"
        );
    }
}

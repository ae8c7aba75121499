use eventfold::testing::given;

use super::*;
use crate::domain::money::MAX_AMOUNT;
use eventfold::personal::Personal;

fn eur() -> Currency {
    Currency::parse("EUR").expect("valid")
}

fn name(text: &str) -> Name {
    Name::parse(text).expect("valid name")
}

fn amount(units: i64) -> Amount {
    Amount::new(units).expect("valid amount")
}

fn id(text: &str) -> EntityId {
    EntityId::parse(text).expect("valid id")
}

fn opened() -> AccountEvent {
    AccountEvent::AccountOpened {
        owner: Personal::new("ada", name("Ada")),
        currency: eur(),
        owner_id: None,
    }
}

fn deposited(units: i64) -> AccountEvent {
    AccountEvent::MoneyDeposited {
        amount: amount(units),
        currency: eur(),
    }
}

#[test]
fn opening_a_new_account() {
    let state = given::<Account>([])
        .when(AccountCommand::Open {
            owner: Personal::new("ada", name("Ada")),
            currency: eur(),
            owner_id: None,
        })
        .then([opened()]);
    assert_eq!(state.status, AccountStatus::Open);
}

#[test]
fn an_account_opens_once() {
    given::<Account>([opened()])
        .when(AccountCommand::Open {
            owner: Personal::new("bob", name("Bob")),
            currency: eur(),
            owner_id: None,
        })
        .then_error(AccountError::AlreadyOpen);
}

#[test]
fn deposits_need_an_open_account() {
    given::<Account>([])
        .when(AccountCommand::Deposit { amount: amount(5) })
        .then_error(AccountError::NotFound);
}

#[test]
fn depositing_records_the_currency() {
    let state = given::<Account>([opened()])
        .when(AccountCommand::Deposit {
            amount: amount(1250),
        })
        .then([deposited(1250)]);
    assert_eq!(state.balance, 1250);
}

#[test]
fn withdrawing_more_than_the_balance_is_refused() {
    given::<Account>([opened(), deposited(100)])
        .when(AccountCommand::Withdraw {
            amount: amount(101),
        })
        .then_error(AccountError::InsufficientFunds {
            balance: 100,
            requested: 101,
        });
}

#[test]
fn withdrawing_the_whole_balance_is_allowed() {
    let state = given::<Account>([opened(), deposited(100)])
        .when(AccountCommand::Withdraw {
            amount: amount(100),
        })
        .then([AccountEvent::MoneyWithdrawn {
            amount: amount(100),
            currency: eur(),
        }]);
    assert_eq!(state.balance, 0);
}

#[test]
fn closing_needs_a_zero_balance() {
    given::<Account>([opened(), deposited(1)])
        .when(AccountCommand::Close)
        .then_error(AccountError::BalanceNotZero { balance: 1 });
    given::<Account>([opened()])
        .when(AccountCommand::Close)
        .then([AccountEvent::AccountClosed {}]);
}

#[test]
fn nothing_happens_to_a_closed_account() {
    let closed = [opened(), AccountEvent::AccountClosed {}];
    for command in [
        AccountCommand::Deposit { amount: amount(1) },
        AccountCommand::Withdraw { amount: amount(1) },
        AccountCommand::Close,
    ] {
        given::<Account>(closed.clone())
            .when(command)
            .then_error(AccountError::Closed);
    }
}

#[test]
fn balance_cannot_overflow() {
    let mut history = vec![opened()];
    history.extend(std::iter::repeat_n(deposited(MAX_AMOUNT), 9223));
    given::<Account>(history)
        .when(AccountCommand::Deposit {
            amount: amount(MAX_AMOUNT),
        })
        .then_error(AccountError::BalanceOverflow);
}

fn transfer(from: &str, to: &str, units: i64) -> Transfer {
    Transfer {
        transfer_id: id("t1"),
        from: id(from),
        to: id(to),
        amount: amount(units),
    }
}

#[test]
fn transfers_move_money_in_one_currency() {
    let source = [opened(), deposited(500)]
        .iter()
        .fold(Account::default(), Aggregate::evolve);
    let destination = Account::default().evolve(&opened());
    let (sent, received) = transfer("a", "b", 200)
        .decide(&source, &destination)
        .expect("allowed");
    assert_eq!(
        sent,
        vec![AccountEvent::TransferSent {
            transfer_id: id("t1"),
            to: id("b"),
            amount: amount(200),
            currency: eur(),
        }]
    );
    assert_eq!(
        received,
        vec![AccountEvent::TransferReceived {
            transfer_id: id("t1"),
            from: id("a"),
            amount: amount(200),
            currency: eur(),
        }]
    );
}

#[test]
fn transfers_refuse_mixed_currencies_short_funds_and_self() {
    let source = [opened(), deposited(500)]
        .iter()
        .fold(Account::default(), Aggregate::evolve);
    let usd = Account::default().evolve(&AccountEvent::AccountOpened {
        owner: Personal::new("bob", name("Bob")),
        currency: Currency::parse("USD").expect("valid"),
        owner_id: None,
    });
    assert_eq!(
        transfer("a", "b", 1).decide(&source, &usd),
        Err(AccountError::CurrencyMismatch {
            account: Currency::parse("USD").expect("valid"),
            requested: eur(),
        })
    );
    assert_eq!(
        transfer("a", "b", 501).decide(&source, &source),
        Err(AccountError::InsufficientFunds {
            balance: 500,
            requested: 501
        })
    );
    assert_eq!(
        transfer("a", "a", 1).decide(&source, &source),
        Err(AccountError::SameAccount)
    );
    assert_eq!(
        transfer("a", "b", 1).decide(&source, &Account::default()),
        Err(AccountError::NotFound)
    );
}

#[test]
fn events_serialize_as_type_and_data() {
    let value = serde_json::to_value(deposited(7)).expect("serializes");
    assert_eq!(
        value,
        serde_json::json!({"type": "MoneyDeposited", "data": {"amount": 7, "currency": "EUR"}})
    );
    let closed = serde_json::to_value(AccountEvent::AccountClosed {}).expect("serializes");
    let back: AccountEvent = serde_json::from_value(closed).expect("deserializes");
    assert_eq!(back, AccountEvent::AccountClosed {});
}

#[test]
fn stored_events_are_parsed_like_requests() {
    for payload in [
        serde_json::json!({"type": "MoneyDeposited", "data": {"amount": 0, "currency": "EUR"}}),
        serde_json::json!({"type": "AccountOpened", "data": {"owner": {"$personal": "a", "value": " "}, "currency": "EUR"}}),
        serde_json::json!({"type": "TransferSent", "data": {"transfer_id": "t", "to": "a/b", "amount": 1, "currency": "EUR"}}),
    ] {
        assert!(
            serde_json::from_value::<AccountEvent>(payload.clone()).is_err(),
            "{payload}"
        );
    }
}

fn standing_order_set() -> AccountEvent {
    AccountEvent::StandingOrderSet {
        to: id("rent"),
        amount: amount(500),
        currency: eur(),
        every_seconds: 60,
    }
}

#[test]
fn a_standing_order_is_set_replaced_and_cancelled() {
    let state = given::<Account>([opened()])
        .when(AccountCommand::SetStandingOrder {
            to: id("rent"),
            amount: amount(500),
            every_seconds: 60,
        })
        .then([standing_order_set()]);
    assert_eq!(state.standing_orders[&id("rent")].every_seconds, 60);
    given::<Account>([opened(), standing_order_set()])
        .when(AccountCommand::CancelStandingOrder { to: id("rent") })
        .then([AccountEvent::StandingOrderCancelled { to: id("rent") }]);
    given::<Account>([opened()])
        .when(AccountCommand::CancelStandingOrder { to: id("rent") })
        .then_error(AccountError::NoStandingOrder { to: id("rent") });
    given::<Account>([])
        .when(AccountCommand::SetStandingOrder {
            to: id("rent"),
            amount: amount(1),
            every_seconds: 1,
        })
        .then_error(AccountError::NotFound);
}

#[test]
fn an_account_with_standing_orders_is_not_closed() {
    given::<Account>([opened(), standing_order_set()])
        .when(AccountCommand::Close)
        .then_error(AccountError::StandingOrdersLeft { count: 1 });
    given::<Account>([
        opened(),
        standing_order_set(),
        AccountEvent::StandingOrderCancelled { to: id("rent") },
    ])
    .when(AccountCommand::Close)
    .then([AccountEvent::AccountClosed {}]);
}

#[test]
fn a_failed_run_is_recorded_while_its_standing_order_stands() {
    let record = |reason: &str| AccountCommand::RecordFailedRun {
        to: id("rent"),
        amount: amount(500),
        run: 3,
        reason: reason.to_owned(),
    };
    let state = given::<Account>([opened(), standing_order_set()])
        .when(record("insufficient funds"))
        .then([AccountEvent::StandingOrderRunFailed {
            to: id("rent"),
            amount: amount(500),
            currency: eur(),
            run: 3,
            reason: "insufficient funds".into(),
        }]);
    assert_eq!(state.balance, 0, "nothing moved");
    assert_eq!(state.standing_orders.len(), 1, "the order stands");
    // A reason past its bound is cut, not refused: the run did fail.
    let long = "x".repeat(MAX_REASON_CHARS + 50);
    given::<Account>([opened(), standing_order_set()])
        .when(record(&long))
        .then([AccountEvent::StandingOrderRunFailed {
            to: id("rent"),
            amount: amount(500),
            currency: eur(),
            run: 3,
            reason: "x".repeat(MAX_REASON_CHARS),
        }]);
    // Cancelled meanwhile: nothing to record it on.
    given::<Account>([
        opened(),
        standing_order_set(),
        AccountEvent::StandingOrderCancelled { to: id("rent") },
    ])
    .when(record("insufficient funds"))
    .then_error(AccountError::NoStandingOrder { to: id("rent") });
}

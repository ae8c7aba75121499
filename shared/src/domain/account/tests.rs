use super::*;
use crate::aggregate::Aggregate;
use crate::domain::given::given;

fn eur() -> Currency {
    Currency::parse("EUR").expect("valid")
}

fn opened() -> AccountEvent {
    AccountEvent::AccountOpened {
        owner: "Ada".into(),
        currency: eur(),
    }
}

fn deposited(amount: i64) -> AccountEvent {
    AccountEvent::MoneyDeposited {
        amount,
        currency: eur(),
    }
}

#[test]
fn opening_a_new_account() {
    given::<Account>([])
        .when(AccountCommand::Open {
            owner: "Ada".into(),
            currency: eur(),
        })
        .then([opened()]);
}

#[test]
fn an_account_opens_once() {
    given::<Account>([opened()])
        .when(AccountCommand::Open {
            owner: "Bob".into(),
            currency: eur(),
        })
        .then_error(AccountError::AlreadyOpen);
}

#[test]
fn owner_must_be_present_and_printable() {
    for owner in ["", "   ", "a\u{0}b", &"x".repeat(201)] {
        given::<Account>([])
            .when(AccountCommand::Open {
                owner: owner.into(),
                currency: eur(),
            })
            .then_error(AccountError::InvalidOwner);
    }
}

#[test]
fn deposits_need_an_open_account() {
    given::<Account>([])
        .when(AccountCommand::Deposit { amount: 5 })
        .then_error(AccountError::NotFound);
}

#[test]
fn depositing_records_the_currency() {
    given::<Account>([opened()])
        .when(AccountCommand::Deposit { amount: 1250 })
        .then([deposited(1250)]);
}

#[test]
fn amounts_must_be_positive_and_bounded() {
    for amount in [0, -1, i64::MIN, MAX_AMOUNT + 1] {
        given::<Account>([opened()])
            .when(AccountCommand::Deposit { amount })
            .then_error(AccountError::InvalidAmount { amount });
    }
    given::<Account>([opened()])
        .when(AccountCommand::Deposit { amount: MAX_AMOUNT })
        .then([deposited(MAX_AMOUNT)]);
}

#[test]
fn withdrawing_more_than_the_balance_is_refused() {
    given::<Account>([opened(), deposited(100)])
        .when(AccountCommand::Withdraw { amount: 101 })
        .then_error(AccountError::InsufficientFunds {
            balance: 100,
            requested: 101,
        });
}

#[test]
fn withdrawing_the_whole_balance_is_allowed() {
    given::<Account>([opened(), deposited(100)])
        .when(AccountCommand::Withdraw { amount: 100 })
        .then([AccountEvent::MoneyWithdrawn {
            amount: 100,
            currency: eur(),
        }]);
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
        AccountCommand::Deposit { amount: 1 },
        AccountCommand::Withdraw { amount: 1 },
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
    given::<Account>(history.clone())
        .when(AccountCommand::Deposit { amount: MAX_AMOUNT })
        .then_error(AccountError::BalanceOverflow);
}

#[test]
fn transfers_move_money_in_one_currency() {
    let source = [opened(), deposited(500)]
        .iter()
        .fold(Account::default(), Aggregate::evolve);
    let destination = Account::default().evolve(&opened());
    let (sent, received) =
        decide_transfer("t1", ("a", &source), ("b", &destination), 200).expect("allowed");
    assert_eq!(
        sent,
        vec![AccountEvent::TransferSent {
            transfer_id: "t1".into(),
            to: "b".into(),
            amount: 200,
            currency: eur(),
        }]
    );
    assert_eq!(
        received,
        vec![AccountEvent::TransferReceived {
            transfer_id: "t1".into(),
            from: "a".into(),
            amount: 200,
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
        owner: "Bob".into(),
        currency: Currency::parse("USD").expect("valid"),
    });
    assert_eq!(
        decide_transfer("t", ("a", &source), ("b", &usd), 1),
        Err(AccountError::CurrencyMismatch {
            account: Currency::parse("USD").expect("valid"),
            requested: eur(),
        })
    );
    assert_eq!(
        decide_transfer("t", ("a", &source), ("b", &source), 501),
        Err(AccountError::InsufficientFunds {
            balance: 500,
            requested: 501
        })
    );
    assert_eq!(
        decide_transfer("t", ("a", &source), ("a", &source), 1),
        Err(AccountError::SameAccount)
    );
    assert_eq!(
        decide_transfer("t", ("a", &source), ("b", &Account::default()), 1),
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

//! The bank's table attributes and environment variables (the library's are in
//! `eventfold::names`); a drift test checks them against `infra/template.yaml`.

/// Accounts read model: one row per account, plus totals rows.
pub mod accounts {
    /// Partition key (S): the account id, or a totals row's key.
    pub const ACCOUNT_ID: &str = "account_id";
    /// Prefix of the totals rows' keys (`#totals-0` …); `#` is in no account id.
    pub const TOTALS_PREFIX: &str = "#totals";
    /// Totals: accounts open.
    pub const ACCOUNTS_OPEN: &str = "accounts_open";
    /// Totals: prefix of money held per currency (`held_EUR`, …).
    pub const HELD_PREFIX: &str = "held_";
    /// Totals: account events applied.
    pub const EVENTS_APPLIED: &str = "events_applied";
}

/// The bank's environment variables.
pub mod env {
    /// The accounts read model's table.
    pub const ACCOUNTS_TABLE: &str = "ACCOUNTS_TABLE";
}

//! Waiting between attempts, and never past the caller's deadline.

use std::time::Duration;

use tokio::time::Instant;

use super::{CommandContext, CommandError};
use crate::error::StoreError;

/// How the service retries concurrency conflicts (transient failures are the SDK's to retry).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; the deadline usually ends retrying first.
    pub max_attempts: u32,
    /// The first backoff's cap.
    pub base_delay: Duration,
    /// The largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 100,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// "Full jitter" in units of the store's own round trip: a random delay up to a cap that
    /// doubles with each attempt, starting from the last attempt's duration (or `base_delay`,
    /// if that was shorter). Contenders then spread over about as many round trips as there
    /// are of them, whatever the store's latency, so few attempts are wasted and the stream's
    /// throughput stays up.
    pub(crate) fn delay(&self, attempt: u32, round_trip: Duration) -> Duration {
        let cap = round_trip
            .max(self.base_delay)
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
            .min(self.max_delay);
        cap.mul_f64(fastrand::f64())
    }

    /// Waits before attempt `attempt + 1`; false if the deadline leaves no room for it.
    pub(crate) async fn backoff(
        &self,
        context: &CommandContext,
        attempt: u32,
        round_trip: Duration,
    ) -> bool {
        if attempt >= self.max_attempts {
            return false;
        }
        let delay = self.delay(attempt, round_trip);
        if remaining(context).is_some_and(|left| left <= delay) {
            return false;
        }
        tokio::time::sleep(delay).await;
        true
    }
}

fn remaining(context: &CommandContext) -> Option<Duration> {
    context
        .deadline
        .map(|deadline| deadline.saturating_duration_since(Instant::now()))
}

/// What a timed-out call leaves behind.
#[derive(Clone, Copy)]
enum Effect {
    /// Nothing: a read.
    None,
    /// Perhaps a write.
    Unknown,
}

/// Runs a read within the context's deadline; past it, the read is abandoned as
/// `DeadlineExceeded`.
pub(crate) async fn read_within<T, E: std::error::Error + 'static>(
    context: &CommandContext,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, CommandError<E>> {
    within(context, Effect::None, call).await
}

/// Runs a write within the context's deadline; past it, the write is abandoned and its outcome
/// is unknown.
pub(crate) async fn write_within<T, E: std::error::Error + 'static>(
    context: &CommandContext,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, CommandError<E>> {
    within(context, Effect::Unknown, call).await
}

async fn within<T, E: std::error::Error + 'static>(
    context: &CommandContext,
    effect: Effect,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, CommandError<E>> {
    let outcome = match remaining(context) {
        None => call.await,
        Some(left) if left.is_zero() => {
            return Err(CommandError::DeadlineExceeded {
                outcome_unknown: false,
            });
        }
        Some(left) => match tokio::time::timeout(left, call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return Err(CommandError::DeadlineExceeded {
                    outcome_unknown: matches!(effect, Effect::Unknown),
                });
            }
        },
    };
    outcome.map_err(CommandError::Store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_attempts_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let round_trip = Duration::from_millis(10);
        for attempt in 1..30 {
            let cap = round_trip
                .saturating_mul(2u32.saturating_pow((attempt - 1).min(16)))
                .min(policy.max_delay);
            assert!(policy.delay(attempt, round_trip) <= cap);
        }
        assert!(policy.delay(30, round_trip) <= policy.max_delay);
    }
}

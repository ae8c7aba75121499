//! `timers list`: the reactors' timers still waiting, earliest first, from the table a function
//! of the template names in `TIMERS_TABLE`.

use eventfold::aws::DynamoTimers;
use eventfold::names::env;
use eventfold::reactor::{Timer, TimerStore};

use super::{OpsError, Target, say};
use crate::local::template::Reference;

/// The service's timers, if its template keeps any.
pub fn timers_of(target: &Target) -> Result<DynamoTimers, OpsError> {
    let table = target
        .template
        .functions
        .iter()
        .find_map(|f| match f.environment.get(env::TIMERS_TABLE) {
            Some(Reference::Ref(logical)) => target.tables.get(logical).cloned(),
            _ => None,
        })
        .ok_or_else(|| {
            OpsError::new(format!(
                "{} keeps no timers: no function of its template names a table in {}",
                target.label,
                env::TIMERS_TABLE
            ))
        })?;
    Ok(DynamoTimers::new(target.clients.dynamodb.clone(), table))
}

/// Prints the timers waiting (of `reactor`, or of every reactor) with when each is due and
/// how far off that is; returns them.
pub async fn list(target: &Target, reactor: Option<&str>) -> Result<Vec<Timer>, OpsError> {
    let timers = timers_of(target)?.pending(reactor).await?;
    let now = chrono::Utc::now();
    for timer in &timers {
        let seconds = (timer.due - now).num_milliseconds() as f64 / 1000.0;
        let when = if seconds >= 0.0 {
            format!("in {seconds:.1} s")
        } else {
            format!("{:.1} s overdue", -seconds)
        };
        say(&format!(
            "{:<20} {:<48} {}  {when}  {}",
            timer.reactor,
            timer.key,
            eventfold::envelope::format_timestamp(&timer.due),
            timer.payload
        ));
    }
    say(&format!("{} timers waiting", timers.len()));
    Ok(timers)
}

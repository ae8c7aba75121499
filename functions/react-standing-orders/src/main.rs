//! The standing-orders reactor Lambda (a schedule invokes it every minute; each invocation
//! follows the feed and fires due timers until shortly before its deadline).

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&react_standing_orders::CONTRACT, |config, sdk| {
        react_standing_orders::from_config(&config, &sdk)
            .expect("the contract checked the feed, timers and snapshot key")
    })
}

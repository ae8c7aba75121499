//! The unpaid-orders reactor Lambda (a schedule invokes it every minute; each invocation
//! follows the feed and fires due timers until shortly before its deadline).

use eventfold::aws::aws_sdk_dynamodb::Client;
use orders_functions::react;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&react::CONTRACT, |config, sdk| {
        react::from_config(&config, Client::new(&sdk))
            .expect("the contract names the feed and timers tables, checked before this runs")
    })
}

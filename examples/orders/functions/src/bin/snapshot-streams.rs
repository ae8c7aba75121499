//! The snapshot Lambda (SQS event source).

use eventfold::aws::aws_sdk_dynamodb::Client;
use orders_functions::snapshots;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&snapshots::CONTRACT, |config, sdk| {
        snapshots::from_config(&config, Client::new(&sdk))
            .expect("a command service with a snapshot store makes a snapshotter")
    })
}

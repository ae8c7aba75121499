//! The snapshot Lambda (SQS event source).

use eventfold::aws::aws_sdk_dynamodb::Client;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&snapshot_streams::CONTRACT, |config, sdk| {
        snapshot_streams::from_config(&config, Client::new(&sdk))
            .expect("a command service with a snapshot store makes a snapshotter")
    })
}

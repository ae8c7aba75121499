//! The snapshot Lambda (SQS event source).

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&snapshot_streams::CONTRACT, |config, sdk| {
        snapshot_streams::from_config(&config, &sdk)
            .expect("the contract checked the snapshot key; a snapshot store makes a snapshotter")
    })
}

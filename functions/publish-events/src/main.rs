//! The publisher Lambda (DynamoDB Streams event source).

use eventfold::lambda::consumers::PublisherFunction;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&publish_events::CONTRACT, |config, sdk| {
        PublisherFunction::from_config(&config, &sdk)
    })
}

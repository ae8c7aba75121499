//! The publisher Lambda (DynamoDB Streams event source).

use eventfold::aws::aws_sdk_sqs::Client;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&publish_events::CONTRACT, |config, sdk| {
        publish_events::from_config(
            &config,
            Client::new(&sdk),
            eventfold::aws::aws_sdk_dynamodb::Client::new(&sdk),
        )
    })
}

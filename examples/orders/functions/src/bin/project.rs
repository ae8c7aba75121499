//! The orders projector Lambda (DynamoDB Streams event source).

use eventfold::aws::aws_sdk_dynamodb::Client;
use orders_functions::project;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&project::CONTRACT, |config, sdk| {
        project::from_config(&config, Client::new(&sdk))
    })
}

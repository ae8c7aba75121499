//! The publisher Lambda (DynamoDB Streams event source).

use eventfold::aws::aws_sdk_sqs::Client;
use orders_functions::publish;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&publish::CONTRACT, |config, sdk| {
        publish::from_config(&config, Client::new(&sdk))
    })
}

//! The accounts projector Lambda (DynamoDB Streams event source).

use eventfold::aws::aws_sdk_dynamodb::Client;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&project_accounts::CONTRACT, |config, sdk| {
        project_accounts::from_config(&config, Client::new(&sdk))
    })
}

//! The command API Lambda: configured once, then every invocation served by the same routes.

use eventfold::aws::aws_sdk_dynamodb::Client;
use orders_functions::command_api;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&command_api::CONTRACT, |config, sdk| {
        command_api::from_config(&config, Client::new(&sdk))
    })
}

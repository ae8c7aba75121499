//! The query API Lambda: configured once, then every invocation served by the same routes.

use eventfold::aws::aws_sdk_dynamodb::Client;
use orders_functions::query_api;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&query_api::CONTRACT, |config, sdk| {
        query_api::from_config(&config, Client::new(&sdk))
    })
}

//! The publisher Lambda (DynamoDB Streams event source).

use eventfold::lambda::consumers::PublisherFunction;
use {{service_rs}}_functions::publish;

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&publish::CONTRACT, |config, sdk| {
        PublisherFunction::from_config(&config, &sdk)
    })
}

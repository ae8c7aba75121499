//! The query API Lambda: configured once, then every invocation served by the same routes.

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&query_api::CONTRACT, |config, sdk| {
        query_api::from_config(&config, &sdk)
    })
}

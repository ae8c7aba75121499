//! The command API Lambda: configured once, then every invocation served by the same routes.

fn main() -> Result<(), eventfold::lambda::Error> {
    eventfold::lambda::serve(&command_api::CONTRACT, |config, sdk| {
        command_api::from_config(&config, &sdk)
    })
}

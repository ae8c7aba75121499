//! The conformance suites on the in-memory implementations (the DynamoDB ones run in the
//! workspace's integration tests, against the emulator).

mod event_store {
    eventfold::event_store_conformance!(eventfold::testing::store_suite::MemoryHarness::new());
}

mod read_model {
    eventfold::read_model_conformance!(std::sync::Arc::new(
        eventfold::projection::MemoryReadModel::new("id")
    ));
}

/// Three partitions: streams share them unevenly, as they do in a deployed feed.
mod feed {
    eventfold::feed_conformance!(std::sync::Arc::new(eventfold::feed::MemoryFeed::new(3)));
}

mod timers {
    eventfold::timers_conformance!(std::sync::Arc::new(eventfold::reactor::MemoryTimers::new()));
}

//! Events stream reader 2, the seeds' "subscribe": every event indexed into the global feed,
//! then to the subscribers' FIFO queue, every snapshot-due event to the snapshot queue. The
//! library's publisher, wired to the environment; it names no domain.

use eventfold::lambda::contract::{Contract, Runtime};

/// What this function needs from the template (checked against it): the runtime's queues,
/// the feed's table and the events table its gaps are repaired from.
pub const CONTRACT: Contract = Contract::new(Runtime::Publisher);

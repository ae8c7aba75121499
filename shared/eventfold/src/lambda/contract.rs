//! What a function's code needs from its infrastructure, said by the code: the runtime it
//! runs, the environment it reads, what it may do to each table and queue, and the metrics it
//! emits. A function crate declares its [`Contract`]; the template is checked against it (the
//! CLI's drift checks), so template and code cannot drift apart unnoticed.

use crate::names::env;

use super::{command_api, consumers, feed_consumer, query_api};

/// The library runtime a function runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    /// [`command_api::CommandApi`] behind API Gateway.
    CommandApi,
    /// [`query_api::QueryApi`] behind API Gateway.
    QueryApi,
    /// [`consumers::ProjectorFunction`], a reader of the events table's stream.
    Projector,
    /// [`consumers::PublisherFunction`], a reader of the events table's stream.
    Publisher,
    /// [`consumers::SnapshotFunction`], on the snapshot queue.
    Snapshot,
    /// [`feed_consumer::FeedConsumerFunction`], on a schedule, reading the global feed.
    FeedConsumer,
    /// [`feed_consumer::FeedConsumerFunction::reactor`]: a reactor on the global feed, sending
    /// commands and firing its timers, on a schedule.
    Reactor,
}

/// DynamoDB actions, as IAM names them.
mod actions {
    pub const QUERY: &str = "dynamodb:Query";
    pub const GET: &str = "dynamodb:GetItem";
    pub const PUT: &str = "dynamodb:PutItem";
    pub const UPDATE: &str = "dynamodb:UpdateItem";
    pub const BATCH_GET: &str = "dynamodb:BatchGetItem";
    pub const DELETE: &str = "dynamodb:DeleteItem";
    pub const SEND: &str = "sqs:SendMessage";
    pub const MAC: &str = "kms:GenerateMac";
    pub const NEW_DATA_KEY: &str = "kms:GenerateDataKey";
    pub const UNWRAP: &str = "kms:Decrypt";
}

impl Runtime {
    /// The metric names it emits (its EMF records).
    pub const fn metrics(self) -> &'static [&'static str] {
        match self {
            Self::CommandApi => command_api::METRICS,
            Self::QueryApi => query_api::METRICS,
            Self::Projector => consumers::PROJECTOR_METRICS,
            Self::Publisher => consumers::PUBLISHER_METRICS,
            Self::Snapshot => consumers::SNAPSHOT_METRICS,
            Self::FeedConsumer => feed_consumer::FEED_CONSUMER_METRICS,
            Self::Reactor => feed_consumer::REACTOR_METRICS,
        }
    }

    /// The library's environment variables it cannot run without.
    pub const fn environment(self) -> &'static [&'static str] {
        match self {
            Self::CommandApi => &[env::EVENTS_TABLE, env::COMMANDS_TABLE, env::SNAPSHOTS_TABLE],
            Self::QueryApi => &[env::EVENTS_TABLE, env::SNAPSHOTS_TABLE],
            Self::Projector => &[env::EVENTS_TABLE, env::FEED_TABLE],
            Self::Publisher => &[
                env::EVENTS_QUEUE_URL,
                env::SNAPSHOT_QUEUE_URL,
                env::FEED_TABLE,
                env::EVENTS_TABLE,
            ],
            Self::Snapshot => &[env::EVENTS_TABLE, env::SNAPSHOTS_TABLE],
            Self::FeedConsumer => &[env::EVENTS_TABLE, env::FEED_TABLE],
            Self::Reactor => &[
                env::EVENTS_TABLE,
                env::COMMANDS_TABLE,
                env::SNAPSHOTS_TABLE,
                env::FEED_TABLE,
                env::TIMERS_TABLE,
            ],
        }
    }

    /// Optional variables it reads when they are set (tuning, not wiring).
    pub const fn tuning(self) -> &'static [&'static str] {
        match self {
            Self::CommandApi => &[
                env::SNAPSHOT_EVERY,
                env::MAX_EVENT_BYTES,
                env::COMMAND_TTL_DAYS,
                env::CLAIM_KEY_ID,
                env::SUBJECT_KEYS_TABLE,
                env::SUBJECT_KEY_ID,
                env::SNAPSHOT_KEY_ID,
            ],
            Self::QueryApi => &[
                env::SUBJECT_KEYS_TABLE,
                env::SUBJECT_KEY_ID,
                env::SNAPSHOT_KEY_ID,
                env::FEED_TABLE,
                env::FEED_PARTITIONS,
            ],
            Self::Snapshot => &[env::SNAPSHOT_EVERY, env::SNAPSHOT_KEY_ID],
            Self::FeedConsumer => &[env::FEED_PARTITIONS],
            Self::Reactor => &[
                env::FEED_PARTITIONS,
                env::SNAPSHOT_EVERY,
                env::MAX_EVENT_BYTES,
                env::COMMAND_TTL_DAYS,
                env::SUBJECT_KEYS_TABLE,
                env::SUBJECT_KEY_ID,
                env::SNAPSHOT_KEY_ID,
            ],
            Self::Publisher => &[env::SNAPSHOT_EVERY, env::FEED_PARTITIONS],
            Self::Projector => &[],
        }
    }

    /// What its code calls on the resource each of its library variables names: appends are
    /// `PutItem` (alone or inside `TransactWriteItems`, which IAM checks per item), loads are
    /// `Query`, an exact append without a known head reads one item, a replay `GetItem`s its
    /// command record, a keyed claim asks its key for a MAC.
    pub const fn grants(self) -> &'static [(&'static str, &'static [&'static str])] {
        use actions::{
            BATCH_GET, DELETE, GET, MAC, NEW_DATA_KEY, PUT, QUERY, SEND, UNWRAP, UPDATE,
        };
        match self {
            // Personal data is sealed with subjects' keys: read (and unwrapped), or made
            // (wrapped and stored), or tombstoned when forgotten (a put).
            Self::CommandApi => &[
                (env::EVENTS_TABLE, &[QUERY, GET, PUT]),
                (env::COMMANDS_TABLE, &[GET, PUT]),
                (env::SNAPSHOTS_TABLE, &[GET]),
                (env::CLAIM_KEY_ID, &[MAC]),
                (env::SUBJECT_KEYS_TABLE, &[GET, PUT]),
                (env::SUBJECT_KEY_ID, &[NEW_DATA_KEY, UNWRAP]),
                (env::SNAPSHOT_KEY_ID, &[MAC]),
            ],
            Self::QueryApi => &[
                (env::EVENTS_TABLE, &[QUERY]),
                (env::SNAPSHOTS_TABLE, &[GET]),
                (env::SUBJECT_KEYS_TABLE, &[GET]),
                (env::SUBJECT_KEY_ID, &[UNWRAP]),
                (env::SNAPSHOT_KEY_ID, &[MAC]),
                (env::FEED_TABLE, &[QUERY]),
            ],
            // Gap repair reads the events it missed; parked streams are read and written in
            // the feed's table.
            Self::Projector => &[
                (env::EVENTS_TABLE, &[QUERY]),
                (env::FEED_TABLE, &[GET, UPDATE]),
            ],
            // Indexing reads the marks, finds a partition's end, writes pages and marks
            // (`TransactWriteItems` of puts), and reads back events a batch lacked.
            Self::Publisher => &[
                (env::EVENTS_QUEUE_URL, &[SEND]),
                (env::SNAPSHOT_QUEUE_URL, &[SEND]),
                (env::FEED_TABLE, &[BATCH_GET, QUERY, PUT]),
                (env::EVENTS_TABLE, &[QUERY]),
            ],
            Self::Snapshot => &[
                (env::EVENTS_TABLE, &[QUERY]),
                (env::SNAPSHOTS_TABLE, &[GET, PUT]),
                (env::SNAPSHOT_KEY_ID, &[MAC]),
            ],
            // Pages and checkpoints are queried, the parked streams read; leases, checkpoints
            // and parked streams are updated in place; the events named are queried.
            Self::FeedConsumer => &[
                (env::FEED_TABLE, &[QUERY, GET, UPDATE]),
                (env::EVENTS_TABLE, &[QUERY]),
            ],
            // A feed consumer's grants, a command function's, and its timers: due ones
            // queried, their pointers read in batches, set (a transaction of puts) and deleted.
            Self::Reactor => &[
                (env::FEED_TABLE, &[QUERY, GET, UPDATE]),
                (env::EVENTS_TABLE, &[QUERY, GET, PUT]),
                (env::COMMANDS_TABLE, &[GET, PUT]),
                (env::SNAPSHOTS_TABLE, &[GET]),
                (env::TIMERS_TABLE, &[QUERY, BATCH_GET, PUT, DELETE]),
                (env::SUBJECT_KEYS_TABLE, &[GET, PUT]),
                (env::SUBJECT_KEY_ID, &[NEW_DATA_KEY, UNWRAP]),
                (env::SNAPSHOT_KEY_ID, &[MAC]),
            ],
        }
    }

    /// What its code calls on each read-model table it names.
    pub const fn read_model_grants(self) -> &'static [&'static str] {
        use actions::{GET, PUT, UPDATE};
        match self {
            Self::QueryApi => &[GET],
            Self::Projector | Self::FeedConsumer => &[GET, PUT, UPDATE],
            Self::CommandApi | Self::Publisher | Self::Snapshot | Self::Reactor => &[],
        }
    }

    /// Whether it reads the events table's stream.
    pub const fn reads_the_stream(self) -> bool {
        matches!(self, Self::Projector | Self::Publisher)
    }
}

/// A function as its code sees it: its runtime, and the variables naming the read-model tables
/// it reads or writes (the service's own names, beside the library's).
///
/// ```
/// use eventfold::lambda::contract::{Contract, Runtime};
///
/// const CONTRACT: Contract = Contract::new(Runtime::Projector).read_models(&["LOANS_TABLE"]);
/// assert_eq!(CONTRACT.environment(), ["EVENTS_TABLE", "FEED_TABLE", "LOANS_TABLE"]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contract {
    /// The runtime.
    pub runtime: Runtime,
    /// Variables naming read-model tables.
    pub read_models: &'static [&'static str],
    /// Optional variables of the runtime this function cannot run without (the key of the
    /// claims it makes, say).
    pub requires: &'static [&'static str],
}

impl Contract {
    /// A function on `runtime` with no read-model table.
    pub const fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            read_models: &[],
            requires: &[],
        }
    }

    /// The runtime's optional `variables` this function needs set (checked at start, and
    /// against the template).
    #[must_use]
    pub const fn requires(mut self, variables: &'static [&'static str]) -> Self {
        self.requires = variables;
        self
    }

    /// The variables naming its read-model tables.
    #[must_use]
    pub const fn read_models(mut self, variables: &'static [&'static str]) -> Self {
        self.read_models = variables;
        self
    }

    /// Every variable it cannot run without: the runtime's, the read models', then the
    /// optional ones it requires.
    pub fn environment(&self) -> Vec<&'static str> {
        let mut variables = self.runtime.environment().to_vec();
        variables.extend(self.read_models);
        variables.extend(self.requires);
        variables
    }
}

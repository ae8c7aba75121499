//! Versions as writers expect them and as stores report them: the vocabulary of optimistic
//! concurrency, shared by the store, its errors and the command service.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the writer expects the stream's current version to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version (the store still never forks or gaps it).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must be this version (`Exact(0)` is the same as `NoStream`).
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream | Self::Exact(0) => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (0 if absent) satisfies the expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => v == actual,
        }
    }
}

/// What a store knows of a stream's version when it refuses an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurrentVersion {
    /// The stream does not exist.
    NoStream,
    /// The stream's last event is this version.
    At(u64),
    /// The stream has moved past this version; how far was not read (that read is the
    /// caller's catch-up, so the store does not spend a round trip on it).
    Beyond(u64),
}

impl CurrentVersion {
    /// The version known for certain to exist (0 for no stream).
    pub fn at_least(self) -> u64 {
        match self {
            Self::NoStream => 0,
            Self::At(version) => version,
            Self::Beyond(version) => version + 1,
        }
    }
}

impl fmt::Display for CurrentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::At(version) => write!(f, "version {version}"),
            Self::Beyond(version) => write!(f, "past version {version}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_versions_read_plainly() {
        assert_eq!(CurrentVersion::Beyond(3).to_string(), "past version 3");
        assert_eq!(CurrentVersion::Beyond(3).at_least(), 4);
        assert_eq!(CurrentVersion::NoStream.at_least(), 0);
    }

    #[test]
    fn expectations_admit_what_they_say() {
        assert!(ExpectedVersion::Any.admits(7));
        assert!(ExpectedVersion::NoStream.admits(0) && !ExpectedVersion::NoStream.admits(1));
        assert!(ExpectedVersion::Exact(0).admits(0));
        assert!(ExpectedVersion::Exact(3).admits(3) && !ExpectedVersion::Exact(3).admits(4));
    }
}

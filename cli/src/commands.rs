//! One module per subcommand.

pub mod backup;
pub mod check;
pub mod diff;
pub mod dump;
pub mod find;
pub mod forget;
pub mod init;
pub mod ls;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod snapshots;
pub mod stats;
pub mod tier;
pub mod unlock;

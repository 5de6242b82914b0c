//! One module per subcommand.

pub mod backup;
pub mod cat;
pub mod check;
pub mod copy;
pub mod diff;
pub mod dump;
pub mod find;
pub mod forget;
pub mod generate;
pub mod init;
pub mod key;
pub mod list;
pub mod ls;
pub mod migrate;
pub mod object_lock;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rewrite;
pub mod rollback;
pub mod snapshots;
pub mod stats;
pub mod tag;
pub mod tier;
pub mod unlock;
pub mod version;

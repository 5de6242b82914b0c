//! The operations, one module each. Operations never import one another: what two of them share
//! lives in a lower layer.

pub mod backup;
pub mod check;
pub mod copy;
pub mod diff;
pub mod drill;
pub mod dump;
pub mod find;
pub mod forget;
pub mod health;
pub mod migrate;
pub mod object_lock;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rewrite;
pub mod rollback;
pub mod stats;
pub mod tag;

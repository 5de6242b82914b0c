//! The repository: a backend opened with a key, the in-memory index, locks and snapshot selection.

pub mod index;
pub mod keys;
pub mod lock;
pub mod repository;
pub mod tree_writer;
pub mod walk;

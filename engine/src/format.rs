//! The bytes on disk: everything a repository stores, encoded and decoded, and nothing that does
//! I/O. Each module implements a section of `format-spec/format.md`.

pub mod aad;
pub mod blob;
pub mod chunker;
pub mod compress;
pub mod config;
pub mod crypto;
pub mod index_file;
pub mod key;
pub mod pack;
pub mod sealed;
pub mod snapshot;
pub mod timestamp;
pub mod tree;

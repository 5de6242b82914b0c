pub mod backend;
pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod error;
pub mod id;
pub mod pack;

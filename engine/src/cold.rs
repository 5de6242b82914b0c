//! The cold tier: storage classes as money and time, and reading data packs from archive classes.

pub mod thaw;
pub mod tiers;

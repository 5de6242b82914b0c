//! Storage classes as money and time: minimum storage durations and list prices, for prune's
//! early-deletion rule and the cost reports. Prices are AWS S3 list prices in us-east-1 as of
//! [`PRICES_AS_OF`]; other stores and regions differ.

use std::time::Duration;

use crate::backend::StorageClass;

/// Date and region of the prices below.
pub const PRICES_AS_OF: &str = crate::thaw::PRICES_AS_OF;

const DAY: u64 = 24 * 3600;

/// Shortest time an object of this class is billed for: deleting it earlier is charged as if it
/// had stayed that long.
pub fn min_storage_duration(class: &StorageClass) -> Duration {
    let days = match class {
        StorageClass::StandardIa | StorageClass::OnezoneIa => 30,
        StorageClass::GlacierIr | StorageClass::Glacier => 90,
        StorageClass::DeepArchive => 180,
        _ => 0,
    };
    Duration::from_secs(days * DAY)
}

/// USD per GiB and month of storage; `None` for a class this table does not know.
pub fn storage_price(class: &StorageClass) -> Option<f64> {
    Some(match class {
        StorageClass::Standard => 0.023,
        StorageClass::StandardIa => 0.0125,
        StorageClass::OnezoneIa => 0.01,
        // The frequent-access tier; objects move to cheaper tiers on their own.
        StorageClass::IntelligentTiering => 0.023,
        StorageClass::GlacierIr => 0.004,
        StorageClass::Glacier => 0.0036,
        StorageClass::DeepArchive => 0.00099,
        StorageClass::Other(_) => return None,
    })
}

/// What deleting an object of `size` bytes and `age` costs beyond its storage so far: the
/// storage of the rest of its minimum duration. Zero once the minimum is reached.
pub fn early_deletion_charge(class: &StorageClass, size: u64, age: Duration) -> f64 {
    let min = min_storage_duration(class);
    let Some(left) = min.checked_sub(age) else {
        return 0.0;
    };
    let months = left.as_secs_f64() / (30.0 * DAY as f64);
    storage_price(class).unwrap_or(0.0) * months * size as f64 / (1u64 << 30) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_deletion() {
        let gib = 1u64 << 30;
        let deep = StorageClass::DeepArchive;
        // 100 days into 180: 80 days, 8/3 months, left to pay.
        let c = early_deletion_charge(&deep, gib, Duration::from_secs(100 * DAY));
        assert!((c - 0.00099 * 80.0 / 30.0).abs() < 1e-9, "{c}");
        assert_eq!(
            early_deletion_charge(&deep, gib, Duration::from_secs(180 * DAY)),
            0.0
        );
        assert_eq!(
            early_deletion_charge(&StorageClass::Standard, gib, Duration::ZERO),
            0.0
        );
        assert_eq!(
            min_storage_duration(&StorageClass::OnezoneIa).as_secs(),
            30 * DAY
        );
        assert_eq!(
            min_storage_duration(&StorageClass::GlacierIr).as_secs(),
            90 * DAY
        );
    }
}

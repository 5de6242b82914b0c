//! Storage classes as money and time: minimum storage durations and list prices, for prune's
//! early-deletion rule and the cost reports. Prices are AWS S3 list prices in us-east-1 as of
//! [`PRICES_AS_OF`]; other stores and regions differ.

use std::time::Duration;

use crate::storage::{StorageClass, ThawTier};

/// Expected wait and list price of one retrieval tier for one storage class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierEstimate {
    /// How long a thaw takes, as the store documents it.
    pub wait: &'static str,
    /// Longest documented wait, for planning.
    pub max_wait: Duration,
    /// USD per GiB retrieved.
    pub per_gib: f64,
    /// USD per 1000 thaw requests.
    pub per_1000_requests: f64,
}

/// Date of the list prices below (AWS S3, us-east-1).
pub const PRICES_AS_OF: &str = "AWS us-east-1 list prices of 2025-01";

/// What thawing from `class` with `tier` takes and costs; `None` when the store does not offer
/// that tier for that class (Expedited from DEEP_ARCHIVE).
pub fn estimate(class: &StorageClass, tier: ThawTier) -> Option<TierEstimate> {
    let h = |n: u64| Duration::from_secs(n * 3600);
    let e = |wait, max_wait, per_gib, per_1000_requests| {
        Some(TierEstimate {
            wait,
            max_wait,
            per_gib,
            per_1000_requests,
        })
    };
    match (class, tier) {
        (StorageClass::Glacier, ThawTier::Expedited) => {
            e("1 to 5 minutes", Duration::from_secs(300), 0.03, 10.0)
        }
        (StorageClass::Glacier, ThawTier::Standard) => e("3 to 5 hours", h(5), 0.01, 0.05),
        (StorageClass::Glacier, ThawTier::Bulk) => e("5 to 12 hours", h(12), 0.0, 0.0),
        (StorageClass::DeepArchive, ThawTier::Expedited) => None,
        (StorageClass::DeepArchive, ThawTier::Standard) => e("up to 12 hours", h(12), 0.02, 0.10),
        (StorageClass::DeepArchive, ThawTier::Bulk) => e("up to 48 hours", h(48), 0.0025, 0.025),
        // Intelligent-Tiering's archive tiers and unknown archive classes: no price known.
        _ => e("unknown", h(48), 0.0, 0.0),
    }
}

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

pub use crate::storage::lifecycle::Rule;

/// The folders of a repository (format-spec section 4) that must stay readable at once.
pub const HOT_FOLDERS: [&str; 6] = ["config", "keys/", "snapshots/", "index/", "locks/", "tree/"];

/// The id of floe's rule for the repository at `prefix`.
pub fn rule_id(prefix: &str) -> String {
    if prefix.is_empty() {
        "floe-data".to_string()
    } else {
        format!("floe-data:{prefix}")
    }
}

/// A data rule S3 would refuse, or one that does nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Transition days that do not increase.
    #[error("transition days must increase from one step to the next")]
    DaysNotIncreasing,
    /// A transition to an infrequent-access class before 30 days.
    #[error("S3 accepts a transition to {0} only after 30 days or more")]
    TooEarly(String),
    /// A class no transition can go to.
    #[error("cannot transition to {0}")]
    NotATarget(String),
    /// Neither a transition nor the multipart clean-up.
    #[error("a rule needs at least one transition or the multipart clean-up")]
    Empty,
}

/// floe's rule for the data packs of the repository at `prefix` (without trailing `/`).
pub fn data_rule(
    prefix: &str,
    transitions: &[(u32, StorageClass)],
    abort_incomplete_multipart_days: Option<u32>,
) -> Result<Rule, RuleError> {
    let mut last: Option<u32> = None;
    for (days, class) in transitions {
        if last.is_some_and(|l| *days <= l) {
            return Err(RuleError::DaysNotIncreasing);
        }
        if matches!(class, StorageClass::StandardIa | StorageClass::OnezoneIa) && *days < 30 {
            return Err(RuleError::TooEarly(class.name().to_string()));
        }
        if matches!(class, StorageClass::Standard | StorageClass::Other(_)) {
            return Err(RuleError::NotATarget(class.name().to_string()));
        }
        last = Some(*days);
    }
    if transitions.is_empty() && abort_incomplete_multipart_days.is_none() {
        return Err(RuleError::Empty);
    }
    Ok(Rule {
        id: rule_id(prefix),
        enabled: true,
        prefix: data_prefix(prefix),
        other_conditions: false,
        transitions: transitions.to_vec(),
        expiration_days: None,
        abort_incomplete_multipart_days,
        noncurrent_expiration_days: None,
        expired_delete_markers: false,
    })
}

fn data_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        "data/".to_string()
    } else {
        format!("{prefix}/data/")
    }
}

/// What one rule does to a repository at `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleImpact {
    /// The rule.
    pub id: String,
    /// Whether S3 applies it.
    pub enabled: bool,
    /// The rule's prefix.
    pub prefix: String,
    /// Repository folders it reaches (`data/`, `index/`...).
    pub affects: Vec<String>,
    /// "after N days: CLASS" steps, expiration and multipart clean-up, in words.
    pub actions: Vec<String>,
    /// Set when the rule would make something other than data packs cold, or delete
    /// repository objects.
    pub warning: Option<String>,
}

/// Reads the rules of a bucket against the repository at `prefix`.
pub fn describe(rules: &[Rule], prefix: &str) -> Vec<RuleImpact> {
    let root = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let folders: Vec<String> = HOT_FOLDERS
        .iter()
        .chain(std::iter::once(&"data/"))
        .map(|f| format!("{root}{f}"))
        .collect();
    rules
        .iter()
        .map(|r| {
            // A rule reaches a folder when one is a prefix of the other.
            let affects: Vec<String> = folders
                .iter()
                .filter(|f| f.starts_with(&r.prefix) || r.prefix.starts_with(f.as_str()))
                .map(|f| f[root.len()..].to_string())
                .collect();
            let mut actions: Vec<String> = r
                .transitions
                .iter()
                .map(|(d, c)| format!("after {d} days: {}", c.name()))
                .collect();
            if let Some(d) = r.expiration_days {
                actions.push(format!("after {d} days: deleted"));
            }
            if let Some(d) = r.abort_incomplete_multipart_days {
                actions.push(format!(
                    "incomplete multipart uploads aborted after {d} days"
                ));
            }
            if let Some(d) = r.noncurrent_expiration_days {
                actions.push(format!(
                    "{d} days after a version is replaced or deleted: that version removed"
                ));
            }
            if r.expired_delete_markers {
                actions.push("delete markers with no version left: removed".into());
            }
            let hot: Vec<&String> = affects.iter().filter(|f| *f != "data/").collect();
            let warning = if !r.enabled || hot.is_empty() && r.expiration_days.is_none() {
                None
            } else if r.expiration_days.is_some() && !affects.is_empty() {
                Some(format!(
                    "expires (deletes) repository objects in {}: snapshots would lose their data",
                    affects.join(", ")
                ))
            } else if !r.transitions.is_empty() && !hot.is_empty() {
                Some(format!(
                    "moves {} to other classes: only data/ may go cold; listing, forget and \
                     check need the rest readable at once",
                    hot.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            } else {
                None
            };
            RuleImpact {
                id: r.id.clone(),
                enabled: r.enabled,
                prefix: r.prefix.clone(),
                affects,
                actions,
                warning,
            }
        })
        .collect()
}

/// For each class, the day after upload at which the bucket's enabled rules move this
/// repository's data packs into it (the latest, when several rules do).
pub fn class_entry_days(rules: &[Rule], prefix: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (r, i) in rules.iter().zip(describe(rules, prefix)) {
        if !r.enabled || !i.affects.iter().any(|f| f == "data/") {
            continue;
        }
        for (days, class) in &r.transitions {
            let e = out.entry(class.name().to_string()).or_insert(*days);
            *e = (*e).max(*days);
        }
    }
    out
}

/// A rule in the JSON shape of S3's lifecycle configuration (as `aws s3api
/// put-bucket-lifecycle-configuration` takes it).
pub fn rule_json(r: &Rule) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ID": r.id,
        "Status": if r.enabled { "Enabled" } else { "Disabled" },
        "Filter": { "Prefix": r.prefix },
    });
    if !r.transitions.is_empty() {
        v["Transitions"] = r
            .transitions
            .iter()
            .map(|(d, c)| serde_json::json!({ "Days": d, "StorageClass": c.name() }))
            .collect();
    }
    if let Some(d) = r.expiration_days {
        v["Expiration"] = serde_json::json!({ "Days": d });
    }
    if let Some(d) = r.abort_incomplete_multipart_days {
        v["AbortIncompleteMultipartUpload"] = serde_json::json!({ "DaysAfterInitiation": d });
    }
    v
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    fn other_rule() -> Rule {
        data_rule("backups/desktop", &[(1, StorageClass::GlacierIr)], None).unwrap()
    }

    #[test]
    fn the_default_rule_and_what_rules_reach() {
        let steps = [
            (30, StorageClass::StandardIa),
            (90, StorageClass::Glacier),
            (365, StorageClass::DeepArchive),
        ];
        let r = data_rule("backups/laptop", &steps, Some(7)).unwrap();
        assert_eq!(r.prefix, "backups/laptop/data/");
        let d = describe(std::slice::from_ref(&r), "backups/laptop");
        assert_eq!(d[0].affects, vec!["data/"]);
        assert_eq!(d[0].warning, None);
        assert_eq!(d[0].actions.len(), 4);
        // A bucket-wide rule reaches everything and is flagged.
        let wide = Rule {
            id: "all".into(),
            prefix: String::new(),
            ..r.clone()
        };
        let d = describe(&[wide], "backups/laptop");
        assert_eq!(d[0].affects.len(), 7);
        assert!(d[0].warning.as_deref().unwrap().contains("index/"));
        // A rule on another repository's prefix reaches nothing here.
        let other = data_rule("backups/desktop", &steps, None).unwrap();
        let d = describe(&[other], "backups/laptop");
        assert!(d[0].affects.is_empty() && d[0].warning.is_none());
        // Bad steps are refused.
        assert!(data_rule("p", &[(10, StorageClass::StandardIa)], None).is_err());
        assert!(data_rule(
            "p",
            &[(90, StorageClass::Glacier), (60, StorageClass::DeepArchive)],
            None
        )
        .is_err());
        // Entry days into each class, from enabled rules that reach data/ only.
        let off = Rule {
            enabled: false,
            transitions: vec![(10, StorageClass::Glacier)],
            ..r.clone()
        };
        let entry = class_entry_days(&[r.clone(), off, other_rule()], "backups/laptop");
        assert_eq!(entry.get("DEEP_ARCHIVE"), Some(&365));
        assert_eq!(entry.get("GLACIER"), Some(&90));
        let j = rule_json(&r);
        assert_eq!(j["Transitions"][2]["StorageClass"], "DEEP_ARCHIVE");
        assert_eq!(
            j["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
            7
        );
    }
}

/// List prices used by the cost report: the built-in table, optionally overridden by a file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prices {
    /// Where the prices come from and when.
    pub as_of: String,
    /// USD per GiB-month, by class name (`STANDARD`, `DEEP_ARCHIVE`...).
    #[serde(default)]
    pub storage: BTreeMap<String, f64>,
    /// USD per GiB retrieved, by `CLASS/tier` (`GLACIER/bulk`, `DEEP_ARCHIVE/standard`...).
    #[serde(default)]
    pub retrieval_per_gib: BTreeMap<String, f64>,
    /// USD per 1000 thaw requests, by `CLASS/tier`.
    #[serde(default)]
    pub retrieval_per_1000_requests: BTreeMap<String, f64>,
}

use std::collections::BTreeMap;

const PRICED: [StorageClass; 7] = [
    StorageClass::Standard,
    StorageClass::StandardIa,
    StorageClass::OnezoneIa,
    StorageClass::IntelligentTiering,
    StorageClass::GlacierIr,
    StorageClass::Glacier,
    StorageClass::DeepArchive,
];
const TIERS: [ThawTier; 3] = [ThawTier::Expedited, ThawTier::Standard, ThawTier::Bulk];

impl Default for Prices {
    fn default() -> Self {
        let mut p = Prices {
            as_of: PRICES_AS_OF.to_string(),
            storage: BTreeMap::new(),
            retrieval_per_gib: BTreeMap::new(),
            retrieval_per_1000_requests: BTreeMap::new(),
        };
        for c in PRICED {
            if let Some(price) = storage_price(&c) {
                p.storage.insert(c.name().to_string(), price);
            }
            for t in TIERS {
                if let Some(e) = estimate(&c, t) {
                    if c.needs_thaw() {
                        let k = format!("{}/{}", c.name(), t.name().to_lowercase());
                        p.retrieval_per_gib.insert(k.clone(), e.per_gib);
                        p.retrieval_per_1000_requests.insert(k, e.per_1000_requests);
                    }
                }
            }
        }
        p
    }
}

/// What thawing the archived packs of some classes with one tier costs and takes.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalCost {
    /// USD, at the table's prices (the built-in estimate where the table has none).
    pub cost_usd: f64,
    /// True when the table priced every class.
    pub priced: bool,
    /// The longest expected wait, as documented (`none` when nothing is archived).
    pub wait: String,
    /// Classes the tier cannot retrieve from (Expedited from DEEP_ARCHIVE).
    pub unavailable: Vec<String>,
}

impl Prices {
    /// The cost and wait of thawing, with `tier`, `archived`: (packs, bytes) by class name.
    pub fn retrieval_cost(
        &self,
        archived: &BTreeMap<String, (usize, u64)>,
        tier: ThawTier,
    ) -> RetrievalCost {
        let gib = (1u64 << 30) as f64;
        let mut out = RetrievalCost {
            cost_usd: 0.0,
            priced: true,
            wait: "none".to_string(),
            unavailable: Vec::new(),
        };
        let mut max_wait = Duration::ZERO;
        for (class, (packs, bytes)) in archived {
            let Some(e) = estimate(&StorageClass::parse(class), tier) else {
                out.unavailable.push(class.clone());
                continue;
            };
            let key = format!("{class}/{}", tier.name().to_lowercase());
            let per_gib = self.retrieval_per_gib.get(&key).copied();
            out.priced &= per_gib.is_some();
            let per_1000 = self.retrieval_per_1000_requests.get(&key);
            out.cost_usd += per_gib.unwrap_or(e.per_gib) * *bytes as f64 / gib
                + per_1000.copied().unwrap_or(e.per_1000_requests) * *packs as f64 / 1000.0;
            if e.max_wait > max_wait {
                max_wait = e.max_wait;
                out.wait = e.wait.to_string();
            }
        }
        out
    }
}

/// A price file that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("price file: {0}")]
pub struct PriceFileError(serde_json::Error);

impl Prices {
    /// The built-in table with the entries of a JSON file (same shape) replacing its own.
    pub fn with_overrides(json: &[u8]) -> Result<Self, PriceFileError> {
        let o: Prices = serde_json::from_slice(json).map_err(PriceFileError)?;
        let mut p = Prices {
            as_of: o.as_of,
            ..Prices::default()
        };
        p.storage.extend(o.storage);
        p.retrieval_per_gib.extend(o.retrieval_per_gib);
        p.retrieval_per_1000_requests
            .extend(o.retrieval_per_1000_requests);
        Ok(p)
    }
}

/// Objects of one folder in one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TierRow {
    /// Repository folder (`data`, `tree`, `index`...).
    pub folder: String,
    /// Storage class (`none` for storage without classes).
    pub class: String,
    /// Objects.
    pub objects: u64,
    /// Bytes.
    pub bytes: u64,
    /// Storage cost per month, USD (`None`: no price for this class).
    pub monthly_usd: Option<f64>,
}

/// Cost of thawing every archived data pack with one tier.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RestoreAllCost {
    /// The tier.
    pub tier: String,
    /// Archived packs.
    pub packs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// USD (`None` when the tier cannot retrieve some class).
    pub cost_usd: Option<f64>,
    /// Longest expected wait.
    pub wait: String,
}

/// `floe stats --tiers`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TierStats {
    /// Per folder and class.
    pub rows: Vec<TierRow>,
    /// Total storage cost per month, USD, of the classes with a price.
    pub monthly_usd: f64,
    /// Thawing every archived data pack, per tier.
    pub restore_all: Vec<RestoreAllCost>,
    /// Where the prices come from.
    pub prices_as_of: String,
}

/// Storage use and costs of a repository by folder and storage class, from listings only.
pub fn tier_stats(
    backend: &dyn crate::storage::Backend,
    prices: &Prices,
) -> Result<TierStats, crate::error::BackendError> {
    use crate::storage::FileType;
    let gib = (1u64 << 30) as f64;
    let mut rows: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut archived: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for t in FileType::ALL {
        for e in backend.list(t)? {
            let class = e
                .storage_class
                .as_ref()
                .map_or("none".to_string(), |c| c.name().to_string());
            let r = rows
                .entry((t.dir_name().to_string(), class.clone()))
                .or_default();
            r.0 += 1;
            r.1 += e.size;
            if e.storage_class.as_ref().is_some_and(|c| c.needs_thaw()) {
                let a = archived.entry(class).or_default();
                a.0 += 1;
                a.1 += e.size;
            }
        }
    }
    let rows: Vec<TierRow> = rows
        .into_iter()
        .map(|((folder, class), (objects, bytes))| TierRow {
            monthly_usd: prices.storage.get(&class).map(|p| p * bytes as f64 / gib),
            folder,
            class,
            objects,
            bytes,
        })
        .collect();
    let monthly_usd = rows.iter().filter_map(|r| r.monthly_usd).sum();
    let restore_all = TIERS
        .iter()
        .map(|t| {
            let r = prices.retrieval_cost(&archived, *t);
            RestoreAllCost {
                tier: t.name().to_lowercase(),
                packs: archived.values().map(|(n, _)| *n as u64).sum(),
                bytes: archived.values().map(|(_, b)| b).sum(),
                cost_usd: (r.priced && r.unavailable.is_empty()).then_some(r.cost_usd),
                wait: r.wait,
            }
        })
        .collect();
    Ok(TierStats {
        rows,
        monthly_usd,
        restore_all,
        prices_as_of: prices.as_of.clone(),
    })
}

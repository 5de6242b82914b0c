//! Typed 256-bit identifiers (format-spec/format.md, section "Identifiers").
//!
//! Every object in a repository is named by 32 bytes: blobs by the keyed BLAKE3 hash of their
//! plaintext, everything else by the plain BLAKE3 hash of the bytes stored. Each kind of id is its
//! own type so that a pack id can never be passed where a blob id is expected.

use std::fmt;
use std::str::FromStr;

/// Length in bytes of every identifier.
pub const ID_LEN: usize = 32;

/// Length of the hex prefix shown in listings.
pub const SHORT_ID_HEX: usize = 8;

/// The id of a pack (or any stored file) computed from its bytes as they are produced, for a
/// pack written out in pieces: the same as `PackId::hash_of` of the pieces joined.
#[derive(Debug, Clone, Default)]
pub struct PackHasher(blake3::Hasher);

impl PackHasher {
    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The id of all the bytes added.
    pub fn finish(&self) -> PackId {
        PackId::from_bytes(*self.0.finalize().as_bytes())
    }
}

/// Error returned when a string is not a well-formed hex identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {0:?}: expected 64 hex digits")]
pub struct ParseIdError(pub String);

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; ID_LEN]);

        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
                Self(bytes)
            }
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
            /// Lower-case hex, 64 digits.
            pub fn to_hex(&self) -> String {
                let mut buf = [0u8; 2 * ID_LEN];
                self.hex_into(&mut buf).to_string()
            }
            /// Lower-case hex written into `buf`, without an allocation.
            fn hex_into<'b>(&self, buf: &'b mut [u8; 2 * ID_LEN]) -> &'b str {
                // The buffer is exactly twice the id, and hex digits are ASCII: neither fails.
                let _ = hex::encode_to_slice(self.0, buf);
                std::str::from_utf8(buf).unwrap_or_default()
            }
            /// The first eight hex digits, as shown in listings.
            pub fn short(&self) -> String {
                let mut s = self.to_hex();
                s.truncate(SHORT_ID_HEX);
                s
            }
            /// The plain (unkeyed) BLAKE3 hash of `bytes`: the id of a stored file or pack.
            pub fn hash_of(bytes: &[u8]) -> Self {
                Self(*blake3::hash(bytes).as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                id_bytes(s).map(Self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.hex_into(&mut [0u8; 2 * ID_LEN]))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(HexIdVisitor).map(Self)
            }
        }
    };
}

/// Reads an id's 64 hex digits straight from the text being parsed, without an allocation: ids
/// are most of the bytes of a tree.
struct HexIdVisitor;

impl serde::de::Visitor<'_> for HexIdVisitor {
    type Value = [u8; ID_LEN];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("64 hex digits")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        id_bytes(s).map_err(E::custom)
    }
}

/// The value of every byte as a hex digit, either case; `INVALID` for the other bytes.
const HEX_VALUE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        table[b"0123456789ABCDEF"[i] as usize] = i as u8;
        i += 1;
    }
    table
};
/// Marks a byte that is not a hex digit: any value above 15 would do.
const INVALID: u8 = 0xff;

/// The bytes of an id written as 64 hex digits. Ids are most of the bytes of trees and index
/// files, so this runs for every one read: a table, and no branch per digit.
fn id_bytes(s: &str) -> Result<[u8; ID_LEN], ParseIdError> {
    let digits = s.as_bytes();
    if digits.len() != 2 * ID_LEN {
        return Err(ParseIdError(s.to_string()));
    }
    let mut out = [0u8; ID_LEN];
    let mut seen = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        seen |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    if seen > 15 {
        return Err(ParseIdError(s.to_string()));
    }
    Ok(out)
}

define_id!(
    /// Names a blob (a chunk of file content or an encoded tree): keyed BLAKE3 of its plaintext.
    BlobId
);
define_id!(
    /// Names a pack file: BLAKE3 of the pack's stored bytes.
    PackId
);
define_id!(
    /// Names a snapshot file: BLAKE3 of its stored bytes.
    SnapshotId
);
define_id!(
    /// Names an index file: BLAKE3 of its stored bytes.
    IndexId
);
define_id!(
    /// Names a key file: BLAKE3 of its stored bytes.
    KeyId
);
define_id!(
    /// Names a lock file: BLAKE3 of its stored bytes.
    LockId
);
define_id!(
    /// A repository's random, unique identity (stored in the config).
    RepoId
);

/// Any of the typed ids, as the backend sees it: 32 bytes that name a file.
pub type RawId = [u8; ID_LEN];

macro_rules! into_raw {
    ($($name:ident),*) => {$(
        impl From<$name> for RawId {
            fn from(id: $name) -> RawId { id.0 }
        }
    )*};
}
into_raw!(BlobId, PackId, SnapshotId, IndexId, KeyId, LockId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short_form() {
        let id = PackId::hash_of(b"floe");
        let hex = id.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<PackId>().unwrap(), id);
        assert_eq!(id.short(), hex[..8]);
        assert!("xyz".parse::<PackId>().is_err());
        assert!(hex[..62].parse::<PackId>().is_err());
    }

    #[test]
    fn ids_read_as_the_hex_crate_reads_them() {
        let id = BlobId::hash_of(b"digits");
        let lower = id.to_hex();
        assert_eq!(lower.parse::<BlobId>().unwrap(), id);
        assert_eq!(lower.to_uppercase().parse::<BlobId>().unwrap(), id);
        // Every byte in every position: taken exactly where the hex crate takes it.
        for at in [0, 1, 31, 62, 63] {
            for b in 0..=255u8 {
                let mut digits = lower.clone().into_bytes();
                digits[at] = b;
                let Ok(s) = String::from_utf8(digits.clone()) else {
                    continue;
                };
                let mut want = [0u8; ID_LEN];
                let ok = hex::decode_to_slice(&digits, &mut want).is_ok();
                match id_bytes(&s) {
                    Ok(got) => assert!(ok && got == want, "{s:?} read as {got:?}"),
                    Err(e) => assert!(!ok, "{s:?} refused: {e}"),
                }
            }
        }
    }

    #[test]
    fn json_is_a_hex_string() {
        let id = SnapshotId::hash_of(b"x");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        let back: SnapshotId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
        assert_eq!(id.to_hex(), hex::encode(id.as_bytes()));
        // Escaped digits are digits; anything but 64 of them is refused, naming what was read.
        let escaped = format!("\"\\u0030{}\"", &id.to_hex()[1..]);
        let zero_first = format!("0{}", &id.to_hex()[1..]);
        let read: SnapshotId = serde_json::from_str(&escaped).unwrap();
        assert_eq!(read.to_hex(), zero_first);
        for (bad, says) in [
            ("\"abc\"", "invalid id \"abc\": expected 64 hex digits"),
            ("\"\"", "invalid id \"\": expected 64 hex digits"),
            ("17", "invalid type: integer `17`, expected 64 hex digits"),
            ("null", "invalid type: null, expected 64 hex digits"),
        ] {
            let err = serde_json::from_str::<BlobId>(bad).unwrap_err().to_string();
            assert!(err.starts_with(says), "{bad}: {err}");
        }
    }
}

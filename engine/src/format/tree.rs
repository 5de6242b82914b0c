//! Trees: one directory's entries, encoded as JSON and stored as a tree blob
//! (format-spec/format.md, "Trees").
//!
//! Names and link targets are bytes. A name that is valid UTF-8 is a JSON string; any other name is
//! an object `{"b64": "<base64>"}`, so non-UTF-8 names round-trip exactly.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::BlobId;

/// Bytes that serialize as a string when they are UTF-8 and as `{"b64": ...}` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteString(pub Vec<u8>);

impl ByteString {
    /// From an OS string (a file name or path).
    pub fn from_os(s: &OsStr) -> Self {
        Self(s.as_bytes().to_vec())
    }
    /// As an OS string.
    pub fn to_os(&self) -> OsString {
        OsString::from_vec(self.0.clone())
    }
    /// As an OS string slice.
    pub fn as_os(&self) -> &OsStr {
        OsStr::from_bytes(&self.0)
    }
    /// For display; invalid UTF-8 shown with replacement characters.
    pub fn lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

/// The object form of bytes that are not UTF-8.
#[derive(Serialize)]
struct Base64Bytes {
    b64: String,
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => s.serialize_str(t),
            Err(_) => Base64Bytes {
                b64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            }
            .serialize(s),
        }
    }
}

/// Reads a string, or an object whose only member is `b64`, straight from the parser: every
/// node has a name, so nothing is buffered on the way.
struct ByteStringVisitor;

impl<'de> Visitor<'de> for ByteStringVisitor {
    type Value = ByteString;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(r#"a string, or {"b64": "<base64>"}"#)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteString, E> {
        Ok(ByteString(s.as_bytes().to_vec()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<ByteString, E> {
        Ok(ByteString(s.into_bytes()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ByteString, A::Error> {
        let mut b64: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_ref() {
                "b64" if b64.is_none() => b64 = Some(map.next_value()?),
                "b64" => return Err(de::Error::duplicate_field("b64")),
                other => return Err(de::Error::unknown_field(other, &["b64"])),
            }
        }
        let b64 = b64.ok_or_else(|| de::Error::missing_field("b64"))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(ByteString)
            .map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteStringVisitor)
    }
}

/// The kind of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Character device.
    Chardev,
    /// Block device.
    Blockdev,
    /// Unix socket (recorded, not restored).
    Socket,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name (bytes).
    pub name: ByteString,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Modification time, UTC, nanosecond precision.
    #[serde(deserialize_with = "crate::format::timestamp::utc")]
    pub mtime: DateTime<Utc>,
    /// Status change time (used to detect changes, not restored).
    #[serde(deserialize_with = "crate::format::timestamp::utc")]
    pub ctime: DateTime<Utc>,
    /// Inode number.
    pub inode: u64,
    /// Device holding the entry.
    pub device_id: u64,
    /// Number of hard links.
    pub links: u64,
    /// Size in bytes (regular files).
    #[serde(default)]
    pub size: u64,
    /// Content blobs in order (regular files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<BlobId>>,
    /// The tree of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// The target of a symlink (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<ByteString>,
    /// Device number (character and block devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// Extended attributes, sorted by name, names unique; empty when the entry has none or the
    /// repository is of format version 1 (format-spec/format.md, "Extended attributes").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

/// One extended attribute of an entry: its full name (`user.comment`,
/// `system.posix_acl_access`) and its value, both bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Name, namespace included.
    pub name: ByteString,
    /// Value (may be empty).
    pub value: ByteString,
}

/// A directory: its entries sorted by name bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, sorted by `name`, names unique.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Encodes the tree (its nodes must be sorted).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs, strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|e| unreachable!("tree encoding failed: {e}"))
    }

    /// Decodes a tree and checks the order of its names.
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        let t: Tree = serde_json::from_slice(bytes).map_err(TreeError::Json)?;
        if t.nodes.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(TreeError::Unsorted);
        }
        if t.nodes.iter().any(|n| {
            n.name.0.is_empty() || n.name.0.contains(&b'/') || n.name.0 == b"." || n.name.0 == b".."
        }) {
            return Err(TreeError::InvalidName);
        }
        for n in &t.nodes {
            check_xattrs(&n.xattrs).map_err(|problem| TreeError::InvalidXattrs {
                entry: n.name.lossy().into_owned(),
                problem,
            })?;
        }
        Ok(t)
    }

    /// Finds an entry by name, for names looked up in increasing order: `from` is where the
    /// previous lookup stopped, and moves on. A name out of order is simply not found.
    pub fn get_from(&self, from: &mut usize, name: &[u8]) -> Option<&Node> {
        let rest = self.nodes.get(*from..).unwrap_or_default();
        *from += rest
            .iter()
            .take_while(|n| n.name.0.as_slice() < name)
            .count();
        self.nodes.get(*from).filter(|n| n.name.0 == name)
    }

    /// Finds an entry by name.
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.0.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// The rules of a node's `xattrs`: names sorted as bytes, unique, not empty, without a NUL byte.
fn check_xattrs(xattrs: &[Xattr]) -> std::result::Result<(), &'static str> {
    if xattrs.windows(2).any(|w| w[0].name >= w[1].name) {
        return Err("names are not sorted or not unique");
    }
    if xattrs
        .iter()
        .any(|x| x.name.0.is_empty() || x.name.0.contains(&0))
    {
        return Err("a name is empty or holds a NUL byte");
    }
    Ok(())
}

/// Why stored bytes are not a tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Not the JSON of a tree.
    #[error("{0}")]
    Json(serde_json::Error),
    /// Names out of order, or repeated.
    #[error("entries are not sorted by name or not unique")]
    Unsorted,
    /// An empty name, `.`, `..`, or one with a `/`.
    #[error("an entry has an invalid name")]
    InvalidName,
    /// An entry's extended attributes break the ordering or naming rules.
    #[error("the extended attributes of entry {entry:?} are invalid: {problem}")]
    InvalidXattrs {
        /// The entry's name (lossy).
        entry: String,
        /// Which rule is broken.
        problem: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: Vec<u8>) -> Node {
        Node {
            name: ByteString(name),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            user: Some("u".into()),
            group: None,
            mtime: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
            ctime: DateTime::from_timestamp(1_700_000_001, 1).unwrap(),
            inode: 42,
            device_id: 7,
            links: 1,
            size: 3,
            content: Some(vec![BlobId::hash_of(b"c")]),
            subtree: None,
            link_target: None,
            rdev: None,
            xattrs: Vec::new(),
        }
    }

    fn xattr(name: &[u8], value: &[u8]) -> Xattr {
        Xattr {
            name: ByteString(name.to_vec()),
            value: ByteString(value.to_vec()),
        }
    }

    #[test]
    fn a_node_without_attributes_encodes_as_before_attributes_existed() {
        // Trees written before attributes existed keep their bytes, and so their ids.
        let text = String::from_utf8(
            Tree {
                nodes: vec![node(b"a".to_vec())],
            }
            .encode(),
        )
        .unwrap();
        let content = BlobId::hash_of(b"c");
        assert_eq!(
            text,
            format!(
                r#"{{"nodes":[{{"name":"a","type":"file","mode":420,"uid":1000,"gid":1000,"user":"u","mtime":"2023-11-14T22:13:20.123456789Z","ctime":"2023-11-14T22:13:21.000000001Z","inode":42,"device_id":7,"links":1,"size":3,"content":["{content}"]}}]}}"#
            )
        );
    }

    #[test]
    fn attributes_round_trip_with_binary_and_empty_values() {
        let mut n = node(b"f".to_vec());
        n.xattrs = vec![
            xattr(b"security.capability", &[1, 0, 0, 2, 0x20, 0, 0, 0, 0xff]),
            xattr(b"user.empty", b""),
            xattr(b"user.text", b"hello"),
        ];
        let t = Tree { nodes: vec![n] };
        let enc = t.encode();
        let text = String::from_utf8(enc.clone()).unwrap();
        assert!(
            text.contains(r#""xattrs":[{"name":"security.capability","value":{"b64":"AQAAAiAAAAD/"}},{"name":"user.empty","value":""},{"name":"user.text","value":"hello"}]"#),
            "{text}"
        );
        assert_eq!(Tree::decode(&enc).unwrap(), t);
    }

    #[test]
    fn unsorted_repeated_or_empty_attribute_names_are_refused() {
        for xattrs in [
            vec![xattr(b"user.b", b""), xattr(b"user.a", b"")],
            vec![xattr(b"user.a", b"1"), xattr(b"user.a", b"2")],
            vec![xattr(b"", b"v")],
            vec![xattr(b"user.\0x", b"v")],
        ] {
            let mut n = node(b"f".to_vec());
            n.xattrs = xattrs;
            let err = Tree::decode(&Tree { nodes: vec![n] }.encode()).unwrap_err();
            assert!(matches!(err, TreeError::InvalidXattrs { .. }), "{err}");
        }
    }

    #[test]
    fn lookups_in_increasing_order_find_what_get_finds() {
        let t = Tree {
            nodes: [&b"b"[..], b"d", b"e", b"g"]
                .iter()
                .map(|n| node(n.to_vec()))
                .collect(),
        };
        let mut from = 0;
        for name in [&b"a"[..], b"b", b"c", b"e", b"f", b"g", b"h"] {
            assert_eq!(t.get_from(&mut from, name), t.get(name), "{name:?}");
        }
        assert_eq!(from, 4);
        // Out of order: not found, and nothing breaks.
        assert_eq!(t.get_from(&mut from, b"b"), None);
    }

    #[test]
    fn non_utf8_names_round_trip() {
        let t = Tree {
            nodes: vec![node(b"plain".to_vec()), node(vec![b'x', 0xff, 0xfe])],
        };
        let enc = t.encode();
        let text = String::from_utf8(enc.clone()).unwrap();
        assert!(text.contains("\"name\":\"plain\""));
        assert!(text.contains("{\"b64\":\"eP/+\"}"), "{text}");
        assert_eq!(Tree::decode(&enc).unwrap(), t);
    }

    #[test]
    fn a_byte_string_object_has_only_its_b64_member() {
        let ok: ByteString = serde_json::from_str(r#"{"b64":"eP/+"}"#).unwrap();
        assert_eq!(ok.0, [0x78, 0xff, 0xfe]);
        let utf8: ByteString = serde_json::from_str(r#"{"b64":"YWJj"}"#).unwrap();
        assert_eq!(utf8.0, b"abc");
        let escaped: ByteString = serde_json::from_str(r#"{"b\u0036\u0034":"YWJj"}"#).unwrap();
        assert_eq!(escaped.0, b"abc");
        for (bad, says) in [
            (
                r#"{"b64":"eP/+","x":1}"#,
                "unknown field `x`, expected `b64`",
            ),
            (r#"{"b64":"QR=="}"#, "Invalid"),
            (r#"{"b64":"eP/+","b64":"YWJj"}"#, "duplicate field `b64`"),
            ("{}", "missing field `b64`"),
            (
                "17",
                "invalid type: integer `17`, expected a string, or {\"b64\"",
            ),
            (r#"["eP/+"]"#, "invalid type: sequence"),
        ] {
            let err = serde_json::from_str::<ByteString>(bad)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(says), "{bad}: {err}");
        }
    }

    #[test]
    fn unsorted_or_bad_names_are_refused() {
        let t = Tree {
            nodes: vec![node(b"b".to_vec()), node(b"a".to_vec())],
        };
        assert!(Tree::decode(&t.encode()).is_err());
        let t = Tree {
            nodes: vec![node(b"a/b".to_vec())],
        };
        assert!(Tree::decode(&t.encode()).is_err());
        assert!(Tree::decode(b"{not json").is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(mut names in proptest::collection::btree_set(proptest::collection::vec(1u8..=255, 1..20), 0..10)) {
            names.retain(|n| !n.contains(&b'/') && n != b"." && n != b"..");
            let t = Tree { nodes: names.into_iter().map(node).collect() };
            prop_assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
        }
    }
}

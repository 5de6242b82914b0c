//! The index: where each blob lives (format-spec/format.md, "Index files").
//!
//! On disk, index files list packs and their blobs as JSON. In memory, every blob costs one
//! 37-byte [`Entry`] (packed, no padding) in a vector sorted by id (no hash table slack, no
//! per-entry allocation), and every pack one 33-byte row shared by its blobs: 40 bytes per blob or
//! less once a pack holds eleven blobs or more (a 16 MiB data pack of 1 MiB chunks holds about
//! sixteen; `cargo bench --bench index` measures ten million).
//!
//! Entries keep the first 21 bytes (168 bits) of each id. Among 10^12 blobs, the chance that two
//! distinct ids share them is about 10^-27: far below that of an undetected memory or disk error.
//! Readers check every blob's full keyed hash against the id they asked for, so even then the
//! wrong blob would be reported as damaged, never returned.

use std::collections::{HashMap, HashSet};

pub use crate::format::index_file::{IndexFile, IndexPack};
use crate::format::pack::{BlobType, PackEntry};
use crate::id::{BlobId, IndexId, PackId};

/// Flag in `Entry::length_flags` marking a compressed blob.
const COMPRESSED_FLAG: u32 = 1 << 31;

/// One blob, 37 bytes: packed, since an array of them is most of a repository's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed)]
struct Entry {
    id: [u8; ID_PREFIX],
    pack: u32,
    offset: u32,
    length_flags: u32,
    uncompressed_length: u32,
}

/// Bytes of each id kept in memory.
const ID_PREFIX: usize = 21;

const _: () = assert!(std::mem::size_of::<Entry>() == 37);

fn prefix(id: &BlobId) -> [u8; ID_PREFIX] {
    let mut p = [0u8; ID_PREFIX];
    p.copy_from_slice(&id.as_bytes()[..ID_PREFIX]);
    p
}

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: PackId,
    /// Its header entry.
    pub entry: PackEntry,
}

/// The in-memory index of a repository.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackId, BlobType)>,
    pack_numbers: HashMap<PackId, u32>,
    /// Where the entries whose id starts with each two-byte value begin (and, one further, end):
    /// a lookup searches about 150 entries of ten million instead of all of them.
    starts: Vec<u32>,
    entries: Vec<Entry>,
    /// Further copies of blobs stored more than once (concurrent backups), sorted by id: not
    /// used for lookups, kept so that [`Index::prefer`] can pick a copy in a readable pack.
    alternates: Vec<Entry>,
    sorted: bool,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            sorted: true,
            ..Self::default()
        }
    }

    /// Adds a pack's blobs. Call [`Index::finish`] before lookups.
    pub fn add_pack(&mut self, pack: PackId, blob_type: BlobType, blobs: &[PackEntry]) {
        if self.pack_numbers.is_empty() && !self.packs.is_empty() {
            // `finish` dropped the lookup map; rebuild it for this batch of additions.
            self.pack_numbers = self
                .packs
                .iter()
                .enumerate()
                .map(|(i, (p, _))| (*p, i as u32))
                .collect();
        }
        let number = *self.pack_numbers.entry(pack).or_insert_with(|| {
            self.packs.push((pack, blob_type));
            (self.packs.len() - 1) as u32
        });
        self.entries.reserve(blobs.len());
        for b in blobs {
            self.entries.push(Entry {
                id: prefix(&b.id),
                pack: number,
                offset: b.offset,
                // Lengths are below 2^31 (format-spec "Pack header"); the top bit is the flag.
                length_flags: (b.length & !COMPRESSED_FLAG)
                    | if b.compressed { COMPRESSED_FLAG } else { 0 },
                uncompressed_length: b.uncompressed_length,
            });
        }
        self.sorted = false;
    }

    /// Sorts the entries; of a blob stored more than once, the copy in the earliest added pack
    /// answers lookups and the others are kept aside. Adding packs and finishing again undoes
    /// any [`Index::prefer`].
    pub fn finish(&mut self) {
        if !self.sorted {
            self.entries.append(&mut self.alternates);
            self.entries
                .sort_unstable_by(|a, b| a.id.cmp(&b.id).then({ a.pack }.cmp(&{ b.pack })));
            // Compact in place (no second copy of the entries while loading): the first entry
            // of each id stays, copies in other packs go aside, repeats of one pack go.
            let mut w = 0;
            for r in 0..self.entries.len() {
                let e = self.entries[r];
                if w > 0 && self.entries[w - 1].id == e.id {
                    let kept = self.entries[w - 1];
                    let repeat = self
                        .alternates
                        .last()
                        .is_some_and(|a| a.id == e.id && a.pack == e.pack);
                    if kept.pack != e.pack && !repeat {
                        self.alternates.push(e);
                    }
                } else {
                    self.entries[w] = e;
                    w += 1;
                }
            }
            self.entries.truncate(w);
            self.entries.shrink_to_fit();
            self.alternates.shrink_to_fit();
            self.packs.shrink_to_fit();
            self.pack_numbers = HashMap::new();
            self.starts = bucket_starts(&self.entries);
            self.sorted = true;
        }
    }

    /// Further copies of blobs stored in more than one pack.
    pub fn duplicate_count(&self) -> usize {
        self.alternates.len()
    }

    /// Further copies of data blobs (file contents) stored in more than one pack.
    pub fn data_duplicate_count(&self) -> usize {
        self.alternates
            .iter()
            .filter(|a| self.packs[a.pack as usize].1 == BlobType::Data)
            .count()
    }

    /// For blobs stored in more than one pack, makes lookups answer with a copy in a pack for
    /// which `preferred` holds, when the current one is not (restore prefers copies it can read
    /// at once over archived ones). Returns how many blobs changed pack.
    pub fn prefer(&mut self, preferred: impl Fn(&PackId) -> bool) -> usize {
        debug_assert!(self.sorted, "Index::finish not called");
        let mut moved = 0;
        for alt in self.alternates.iter_mut() {
            if !preferred(&self.packs[alt.pack as usize].0) {
                continue;
            }
            let Some(i) = search(&self.entries, &self.starts, &alt.id) else {
                continue;
            };
            let current = &mut self.entries[i];
            if !preferred(&self.packs[current.pack as usize].0) {
                std::mem::swap(current, alt);
                moved += 1;
            }
        }
        moved
    }

    fn find(&self, id: &BlobId) -> Option<&Entry> {
        debug_assert!(self.sorted, "Index::finish not called");
        self.search(&prefix(id)).map(|i| &self.entries[i])
    }

    /// The position of the entry with this id prefix, searched within its two-byte bucket.
    fn search(&self, id: &[u8; ID_PREFIX]) -> Option<usize> {
        search(&self.entries, &self.starts, id)
    }

    /// The blob's position in the sorted entries (`0..len()`), for per-blob bitmaps.
    pub fn position(&self, id: &BlobId) -> Option<usize> {
        self.search(&prefix(id))
    }

    /// True when the blob is indexed.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    /// The blob's location.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        let e = self.find(id)?;
        let (pack, blob_type) = self.packs[e.pack as usize];
        Some(BlobLocation {
            pack,
            entry: PackEntry {
                blob_type,
                compressed: e.length_flags & COMPRESSED_FLAG != 0,
                id: *id,
                offset: e.offset,
                length: e.length_flags & !COMPRESSED_FLAG,
                uncompressed_length: e.uncompressed_length,
            },
        })
    }

    /// The packs the index names.
    pub fn pack_ids(&self) -> impl Iterator<Item = &PackId> {
        self.packs.iter().map(|(p, _)| p)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of packs.
    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// Adds every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, p.blob_type, &p.entries());
        }
    }

    /// Heap bytes held, for the memory figures (entries, pack table, pack lookup map).
    pub fn heap_bytes(&self) -> usize {
        (self.entries.capacity() + self.alternates.capacity()) * std::mem::size_of::<Entry>()
            + self.packs.capacity() * std::mem::size_of::<(PackId, BlobType)>()
            + self.pack_numbers.capacity() * (std::mem::size_of::<(PackId, u32)>() + 1)
            + self.starts.capacity() * std::mem::size_of::<u32>()
    }
}

/// The position in sorted `entries` of the one with this id prefix, searched within its two-byte
/// bucket of `starts` (all of them when there are no buckets yet).
fn search(entries: &[Entry], starts: &[u32], id: &[u8; ID_PREFIX]) -> Option<usize> {
    let bucket = u16::from_be_bytes([id[0], id[1]]) as usize;
    let (start, end) = match starts.get(bucket..bucket + 2) {
        Some(&[start, end]) => (start as usize, end as usize),
        _ => (0, entries.len()),
    };
    let slice = entries.get(start..end)?;
    slice
        .binary_search_by(|e| e.id.cmp(id))
        .ok()
        .map(|i| start + i)
}

/// For entries sorted by id, where each two-byte bucket begins, with the end last.
fn bucket_starts(entries: &[Entry]) -> Vec<u32> {
    let mut starts = vec![0u32; (1 << 16) + 1];
    for e in entries {
        starts[u16::from_be_bytes([e.id[0], e.id[1]]) as usize + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    starts
}

/// An index file with its id.
pub type NamedIndexFile = (IndexId, IndexFile);

/// The repository's index files, split into those in force and those another file supersedes,
/// with the in-memory index of the former: the one place that loads, splits and merges them.
pub struct LoadedIndex {
    /// Every index file's id, superseded ones included.
    pub ids: Vec<IndexId>,
    /// The files in force.
    pub live: Vec<NamedIndexFile>,
    /// The files another one supersedes: readers ignore them, and the packs only they name are
    /// obsolete.
    pub superseded: Vec<NamedIndexFile>,
    /// The index of the files in force, finished.
    pub index: Index,
}

impl LoadedIndex {
    /// Splits `files` and indexes the live ones.
    pub fn from_files(files: Vec<NamedIndexFile>) -> Self {
        let ids = files.iter().map(|(id, _)| *id).collect();
        let dead: HashSet<IndexId> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let (live, superseded): (Vec<_>, Vec<_>) =
            files.into_iter().partition(|(id, _)| !dead.contains(id));
        let mut index = Index::new();
        for (_, f) in &live {
            index.add_file(f);
        }
        index.finish();
        Self {
            ids,
            live,
            superseded,
            index,
        }
    }

    /// Every pack the files in force name, once.
    pub fn packs(&self) -> HashMap<PackId, IndexPack> {
        let mut packs = HashMap::new();
        for (_, f) in &self.live {
            for p in &f.packs {
                packs.entry(p.id).or_insert_with(|| p.clone());
            }
        }
        packs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_every_blob_across_buckets_and_nothing_else() {
        // Ids at the edges of the two-byte buckets, several sharing a bucket.
        let mut ids: Vec<[u8; 32]> = Vec::new();
        for first in [[0u8, 0], [0, 1], [0x7f, 0xff], [0xff, 0xfe], [0xff, 0xff]] {
            for n in 0..3u8 {
                let mut id = [n; 32];
                id[..2].copy_from_slice(&first);
                ids.push(id);
            }
        }
        let mut idx = Index::new();
        let entries: Vec<PackEntry> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| PackEntry {
                id: BlobId::from_bytes(*id),
                offset: i as u32 * 100,
                ..entry(0, 0)
            })
            .collect();
        idx.add_pack(PackId::from_bytes([9; 32]), BlobType::Data, &entries);
        idx.finish();
        for (i, id) in ids.iter().enumerate() {
            let loc = idx.get(&BlobId::from_bytes(*id)).expect("indexed");
            assert_eq!(loc.entry.offset, i as u32 * 100);
            assert!(idx.position(&BlobId::from_bytes(*id)).is_some());
        }
        for absent in [[0x7f; 32], [0xfe; 32], [1; 32]] {
            assert!(!idx.contains(&BlobId::from_bytes(absent)));
        }
        assert_eq!(idx.len(), ids.len());
    }

    fn entry(n: u8, offset: u32) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Data,
            compressed: n.is_multiple_of(2),
            id: BlobId::hash_of(&[n]),
            offset,
            length: 100 + n as u32,
            uncompressed_length: 1000,
        }
    }

    #[test]
    fn a_blob_stored_twice_can_be_read_from_the_preferred_pack() {
        let (cold, hot) = (PackId::hash_of(b"cold"), PackId::hash_of(b"hot"));
        let entries: Vec<_> = (0..10u8).map(|n| entry(n, n as u32 * 1000)).collect();
        let mut idx = Index::new();
        idx.add_pack(cold, BlobType::Data, &entries);
        // The hot pack holds copies of blobs 3..6 at other offsets.
        let copies: Vec<_> = (3..6u8).map(|n| entry(n, 50_000 + n as u32)).collect();
        idx.add_pack(hot, BlobType::Data, &copies);
        idx.finish();
        assert_eq!((idx.len(), idx.duplicate_count()), (10, 3));
        // The first pack added answers until told otherwise.
        assert!(entries.iter().all(|e| idx.get(&e.id).unwrap().pack == cold));
        assert_eq!(idx.prefer(|p| *p == hot), 3);
        for e in &entries {
            let loc = idx.get(&e.id).unwrap();
            let n = e.offset / 1000;
            if (3..6).contains(&n) {
                assert_eq!((loc.pack, loc.entry.offset), (hot, 50_000 + n));
            } else {
                assert_eq!(loc.pack, cold);
            }
        }
        // Asking again changes nothing; preferring the other pack swaps back.
        assert_eq!(idx.prefer(|p| *p == hot), 0);
        assert_eq!(idx.prefer(|p| *p == cold), 3);
        assert!(entries.iter().all(|e| idx.get(&e.id).unwrap().pack == cold));
        // Later additions keep every copy; the same pack named twice is one copy; finishing
        // again answers from the first pack added.
        idx.add_pack(hot, BlobType::Data, &copies);
        idx.add_pack(PackId::hash_of(b"more"), BlobType::Data, &entries[..1]);
        idx.finish();
        assert_eq!((idx.len(), idx.duplicate_count()), (10, 4));
        assert_eq!(idx.data_duplicate_count(), 4);
        assert!(entries.iter().all(|e| idx.get(&e.id).unwrap().pack == cold));
        assert_eq!(idx.prefer(|p| *p == hot), 3);
    }

    #[test]
    fn lookups_after_merge_and_costs_48_bytes_per_blob() {
        let mut file = IndexFile::default();
        let pack = PackId::hash_of(b"p");
        let entries: Vec<_> = (0..200u8).map(|n| entry(n, n as u32 * 1000)).collect();
        file.add_pack(pack, BlobType::Data, 200_000, &entries);
        let json = serde_json::to_vec(&file).unwrap();
        let back: IndexFile = serde_json::from_slice(&json).unwrap();
        let mut idx = Index::new();
        idx.add_file(&back);
        // A second copy of a blob in another pack is kept once.
        idx.add_pack(PackId::hash_of(b"q"), BlobType::Data, &entries[..1]);
        idx.finish();
        assert_eq!(idx.len(), 200);
        for e in &entries {
            let loc = idx.get(&e.id).unwrap();
            assert_eq!(loc.entry, *e);
        }
        assert!(!idx.contains(&BlobId::hash_of(b"absent")));
        assert_eq!(idx.entries.capacity(), 200);
    }

    #[test]
    fn memory_is_at_most_48_bytes_per_blob() {
        // 100k blobs in packs of 16, as 16 MiB data packs of 1 MiB chunks.
        let mut idx = Index::new();
        for p in 0..6250u32 {
            let entries: Vec<PackEntry> = (0..16u32)
                .map(|i| PackEntry {
                    blob_type: BlobType::Data,
                    compressed: true,
                    id: BlobId::hash_of(&(p * 16 + i).to_le_bytes()),
                    offset: i * 1_000_000,
                    length: 1_000_000,
                    uncompressed_length: 1_048_576,
                })
                .collect();
            idx.add_pack(PackId::hash_of(&p.to_le_bytes()), BlobType::Data, &entries);
        }
        idx.finish();
        assert_eq!(idx.len(), 100_000);
        let per_blob = idx.heap_bytes() as f64 / idx.len() as f64;
        assert!(per_blob <= 48.0, "{per_blob} bytes per blob");
        // Lookups still work after the pack map was dropped, and additions rebuild it.
        assert!(idx.contains(&BlobId::hash_of(&77u32.to_le_bytes())));
        idx.add_pack(PackId::hash_of(&0u32.to_le_bytes()), BlobType::Data, &[]);
        assert_eq!(idx.pack_count(), 6250);
    }
}

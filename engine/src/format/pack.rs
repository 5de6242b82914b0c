//! Packs: many encrypted blobs in one stored object (format-spec/format.md, "Packs").
//!
//! ```text
//! pack   = blob* || sealed_header || header_length (u32 LE)
//! blob   = nonce (24) || ciphertext || tag (16)          AAD = "floe/v1/blob/" || type || id
//! header = version (u8 = 1) || entry*                     sealed, AAD = "floe/v1/pack-header/" || type
//! entry  = type (u8) || compression (u8) || id (32) || offset (u32 LE) || length (u32 LE)
//!          || uncompressed_length (u32 LE)                 46 bytes
//! ```

use crate::error::{Error, Object, Result};
use crate::format::aad;
pub use crate::format::blob::BlobType;
use crate::format::compress::{self, Compression, Compressor};
use crate::format::crypto::{MasterKey, NONCE_LEN, OVERHEAD};
use crate::id::{BlobId, PackId, ID_LEN};

/// Version byte at the start of every pack header.
pub const HEADER_VERSION: u8 = 1;
/// Size of one header entry (format-spec/format.md, "Pack header").
pub const ENTRY_LEN: usize = 1 + 1 + ID_LEN + 4 + 4 + 4;
/// Size of the trailing header length.
pub const TRAILER_LEN: usize = 4;
/// Compression byte: stored raw.
pub const COMPRESSION_NONE: u8 = 0;
/// Compression byte: one zstd frame.
pub const COMPRESSION_ZSTD: u8 = 1;
/// Largest pack size accepted as a target (offsets are 32-bit).
pub const MAX_PACK_TARGET: u32 = 1 << 30;

/// One blob's place in a pack, as the pack header and the index record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Blob type.
    pub blob_type: BlobType,
    /// True when the plaintext is one zstd frame.
    pub compressed: bool,
    /// The blob id.
    pub id: BlobId,
    /// Offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob (nonce and tag included).
    pub length: u32,
    /// Length of the blob's content once decrypted and decompressed.
    pub uncompressed_length: u32,
}

impl PackEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.blob_type as u8);
        out.push(if self.compressed {
            COMPRESSION_ZSTD
        } else {
            COMPRESSION_NONE
        });
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.uncompressed_length.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let blob_type = BlobType::from_u8(b[0])?;
        let compressed = match b[1] {
            COMPRESSION_NONE => false,
            COMPRESSION_ZSTD => true,
            _ => return None,
        };
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&b[2..2 + ID_LEN]);
        Some(Self {
            blob_type,
            compressed,
            id: BlobId::from_bytes(id),
            offset: u32_at(34),
            length: u32_at(38),
            uncompressed_length: u32_at(42),
        })
    }
}

/// Compresses and seals blobs, reusing its buffers (one per worker thread).
pub struct BlobSealer {
    /// `None` with [`Compression::Off`].
    compressor: Option<Compressor>,
    scratch: Vec<u8>,
}

/// A sealed blob ready to be appended to a pack.
#[derive(Debug)]
pub struct SealedBlob {
    /// Its id.
    pub id: BlobId,
    /// Its type.
    pub blob_type: BlobType,
    /// Whether the sealed plaintext is compressed.
    pub compressed: bool,
    /// Plaintext length before compression.
    pub uncompressed_length: u32,
    /// `nonce || ciphertext || tag`.
    pub bytes: Vec<u8>,
}

impl BlobSealer {
    /// A sealer compressing at `level`.
    pub fn new(level: i32) -> std::io::Result<Self> {
        Self::with(Compression::Level(level))
    }

    /// A sealer compressing as `compression` says.
    pub fn with(compression: Compression) -> std::io::Result<Self> {
        let compressor = match compression {
            Compression::Off => None,
            Compression::Level(level) => Some(Compressor::new(level)?),
        };
        Ok(Self {
            compressor,
            scratch: Vec::new(),
        })
    }

    /// Seals one blob. `buf` holds `NONCE_LEN` bytes of room and then the plaintext; when
    /// compression does not pay, the plaintext is encrypted where it lies, with no copy.
    pub fn seal(
        &mut self,
        key: &MasterKey,
        blob_type: BlobType,
        id: BlobId,
        mut buf: Vec<u8>,
    ) -> SealedBlob {
        let plain_len = buf.len() - NONCE_LEN;
        let compressed = self
            .compressor
            .as_mut()
            .is_some_and(|c| c.compress_for_seal(&buf[NONCE_LEN..], NONCE_LEN, &mut self.scratch));
        if compressed {
            // Hand the compressed buffer out and keep the plaintext buffer as the next scratch.
            std::mem::swap(&mut buf, &mut self.scratch);
        }
        key.seal_in_place(&aad::blob(blob_type, &id), &mut buf);
        SealedBlob {
            id,
            blob_type,
            compressed,
            uncompressed_length: plain_len as u32,
            bytes: buf,
        }
    }
}

/// Opens a sealed blob read from a pack: authenticates, decompresses and checks that its keyed hash
/// is its id. Every failure is reported as corruption of that blob in that pack.
pub fn open_blob(
    key: &MasterKey,
    pack: &PackId,
    entry: &PackEntry,
    mut sealed: Vec<u8>,
) -> Result<Vec<u8>> {
    let mut opener = BlobOpener::new();
    let len = opener.open(key, pack, entry, &mut sealed)?.len();
    if entry.compressed {
        Ok(opener.scratch)
    } else {
        sealed.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
        sealed.truncate(len);
        Ok(sealed)
    }
}

/// Opens blobs without allocating per blob: decryption happens where the sealed bytes lie and
/// decompression goes to a buffer reused from one blob to the next (one opener per thread).
#[derive(Default)]
pub struct BlobOpener {
    scratch: Vec<u8>,
}

impl BlobOpener {
    /// An opener with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens `sealed` (decrypting it in place) and returns the checked plaintext, which borrows
    /// either `sealed` or the opener's buffer.
    pub fn open<'a>(
        &'a mut self,
        key: &MasterKey,
        pack: &PackId,
        entry: &PackEntry,
        sealed: &'a mut [u8],
    ) -> Result<&'a [u8]> {
        let object = || Object::Blob {
            pack: *pack,
            blob: entry.id,
        };
        let plain = key
            .open_in_place(&aad::blob(entry.blob_type, &entry.id), sealed)
            .map_err(|e| Error::corrupt(object(), e.to_string()))?;
        let data: &[u8] = if entry.compressed {
            let scratch = &mut self.scratch;
            compress::with_dctx(|dctx| {
                compress::decompress_into(dctx, plain, entry.uncompressed_length as usize, scratch)
            })
            .map_err(|e| Error::io("start zstd", "decompressor", e))?
            .map_err(|e| Error::corrupt(object(), format!("decompression failed: {e}")))?;
            &self.scratch
        } else {
            if plain.len() != entry.uncompressed_length as usize {
                return Err(Error::corrupt(object(), "length differs from the index"));
            }
            plain
        };
        if key.blob_id(entry.blob_type, data) != entry.id {
            return Err(Error::corrupt(object(), "content does not match its id"));
        }
        Ok(data)
    }

    /// Gives the decompression buffer back when it has grown past `keep` bytes, so that an idle
    /// opener does not hold on to the largest blob it has seen.
    pub fn release_above(&mut self, keep: usize) {
        release_above(&mut self.scratch, keep);
    }
}

/// Gives `buf`'s allocation back when its capacity is over `keep` bytes.
pub fn release_above(buf: &mut Vec<u8>, keep: usize) {
    if buf.capacity() > keep {
        *buf = Vec::new();
    }
}

/// Accumulates sealed blobs of one type into a pack: in memory ([`Packer::add`]), or written
/// out blob by blob as they come ([`Packer::add_with`]).
#[derive(Debug)]
pub struct Packer {
    blob_type: BlobType,
    target: usize,
    slack: usize,
    buf: Vec<u8>,
    /// Bytes of this pack already written out by [`Packer::add_with`].
    written: usize,
    entries: Vec<PackEntry>,
}

/// A finished pack, ready to store.
#[derive(Debug)]
pub struct FinishedPack {
    /// BLAKE3 of `bytes`.
    pub id: PackId,
    /// The whole pack.
    pub bytes: Vec<u8>,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
    /// The blob type it holds.
    pub blob_type: BlobType,
}

/// A finished pack whose id is not computed yet.
#[derive(Debug)]
pub struct UnhashedPack {
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
    blob_type: BlobType,
}

impl UnhashedPack {
    /// The bytes (for a packer filled by [`Packer::add_with`], the rest of the pack: the header
    /// and the trailer), the entries and the blob type.
    pub fn into_parts(self) -> (Vec<u8>, Vec<PackEntry>, BlobType) {
        (self.bytes, self.entries, self.blob_type)
    }

    /// Computes the pack id.
    pub fn hash(self) -> FinishedPack {
        FinishedPack {
            id: PackId::hash_of(&self.bytes),
            bytes: self.bytes,
            entries: self.entries,
            blob_type: self.blob_type,
        }
    }
}

impl Packer {
    /// An empty packer aiming at `target` bytes.
    pub fn new(blob_type: BlobType, target: u32) -> Self {
        Self::with_max_blob(blob_type, target, target as usize / 2)
    }

    /// An empty packer whose blobs are at most `max_blob` bytes once sealed.
    pub fn with_max_blob(blob_type: BlobType, target: u32, max_blob: usize) -> Self {
        let target = target.min(MAX_PACK_TARGET) as usize;
        Self {
            blob_type,
            target,
            // Room for one blob past the target and a header of one entry per 4 KiB.
            slack: max_blob.min(target) + target / 4096 * ENTRY_LEN / 4 + 4096,
            buf: Vec::new(),
            written: 0,
            entries: Vec::new(),
        }
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, blob: &SealedBlob) {
        debug_assert_eq!(blob.blob_type, self.blob_type);
        if self.buf.capacity() == 0 {
            // A full pack holds up to the target plus one blob plus its header. Reserving that
            // once costs nothing until written and spares a reallocation that would copy and
            // fault in tens of megabytes.
            self.buf.reserve(self.target + self.slack);
        }
        self.push_entry(blob);
        self.buf.extend_from_slice(&blob.bytes);
    }

    /// Appends a sealed blob by handing its bytes to `write` rather than keeping them, after
    /// any bytes [`Packer::add`] kept. What `write` gets over a pack's life, followed by the
    /// bytes of [`Packer::finish_unhashed`], is the pack; a packer filled this way holds no
    /// blob. After an error from `write` the pack is incomplete and must be dropped.
    pub fn add_with<E>(
        &mut self,
        blob: &SealedBlob,
        mut write: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        debug_assert_eq!(blob.blob_type, self.blob_type);
        if !self.buf.is_empty() {
            write(&self.buf)?;
            self.written += self.buf.len();
            self.buf.clear();
        }
        self.push_entry(blob);
        write(&blob.bytes)?;
        self.written += blob.bytes.len();
        Ok(())
    }

    fn push_entry(&mut self, blob: &SealedBlob) {
        self.entries.push(PackEntry {
            blob_type: blob.blob_type,
            compressed: blob.compressed,
            id: blob.id,
            offset: self.len() as u32,
            length: blob.bytes.len() as u32,
            uncompressed_length: blob.uncompressed_length,
        });
    }

    /// Gives the packer an emptied buffer of a finished pack to fill next, so that packs reuse
    /// their memory instead of allocating tens of megabytes each.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.buf.capacity() == 0 && buf.capacity() >= self.target + self.slack {
            buf.clear();
            self.buf = buf;
        }
    }

    /// True when the pack has reached its target size.
    pub fn is_full(&self) -> bool {
        self.len() >= self.target
    }

    /// Forgets the pack being filled, blobs and entries, as if it had just been finished: for a
    /// pack that cannot be completed.
    pub fn discard(&mut self) {
        self.buf.clear();
        self.entries.clear();
        self.written = 0;
    }

    /// The type of blob the pack holds.
    pub fn blob_type(&self) -> BlobType {
        self.blob_type
    }

    /// True when no blob was added since the last finish.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of blobs added to this pack, written out or held.
    pub fn len(&self) -> usize {
        self.written + self.buf.len()
    }

    /// Seals the header, appends it and the trailer, and hands the pack out. The packer is left
    /// empty for the next pack.
    pub fn finish(&mut self, key: &MasterKey) -> FinishedPack {
        self.finish_unhashed(key).hash()
    }

    /// As [`Packer::finish`], leaving the pack id (a hash of the whole pack) to be computed by
    /// [`UnhashedPack::hash`], outside whatever lock guards the packer.
    pub fn finish_unhashed(&mut self, key: &MasterKey) -> UnhashedPack {
        let mut header =
            Vec::with_capacity(NONCE_LEN + 1 + self.entries.len() * ENTRY_LEN + OVERHEAD);
        header.extend_from_slice(&[0u8; NONCE_LEN]);
        header.push(HEADER_VERSION);
        for e in &self.entries {
            e.encode(&mut header);
        }
        key.seal_in_place(&aad::pack_header(self.blob_type), &mut header);
        let mut bytes = std::mem::take(&mut self.buf);
        self.written = 0;
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        UnhashedPack {
            bytes,
            entries: std::mem::take(&mut self.entries),
            blob_type: self.blob_type,
        }
    }
}

/// Reads the header length from a pack's last four bytes.
pub fn header_length(pack: &PackId, trailer: &[u8], pack_size: u64) -> Result<u32> {
    let t: [u8; TRAILER_LEN] = trailer
        .try_into()
        .map_err(|_| Error::corrupt(Object::Pack(*pack), "trailer is not 4 bytes"))?;
    let len = u32::from_le_bytes(t);
    if (len as u64) < OVERHEAD as u64 + 1 || len as u64 + TRAILER_LEN as u64 > pack_size {
        return Err(Error::corrupt(
            Object::Pack(*pack),
            format!("header length {len} does not fit a pack of {pack_size} bytes"),
        ));
    }
    Ok(len)
}

/// Decodes a sealed pack header and checks that its entries lie inside the blob area, in order,
/// without overlap.
pub fn decode_header(
    key: &MasterKey,
    pack: &PackId,
    blob_type: BlobType,
    mut sealed: Vec<u8>,
    pack_size: u64,
) -> Result<Vec<PackEntry>> {
    let corrupt = |reason: String| Error::corrupt(Object::Pack(*pack), reason);
    let blob_area = pack_size
        .checked_sub(sealed.len() as u64 + TRAILER_LEN as u64)
        .ok_or_else(|| corrupt("header longer than the pack".into()))?;
    let plain = key
        .open_in_place(&aad::pack_header(blob_type), &mut sealed)
        .map_err(|e| corrupt(format!("pack header: {e}")))?;
    if plain.first() != Some(&HEADER_VERSION) {
        return Err(corrupt(format!(
            "unknown pack header version {:?}",
            plain.first()
        )));
    }
    let body = &plain[1..];
    if body.len() % ENTRY_LEN != 0 {
        return Err(corrupt(format!(
            "header body of {} bytes is not whole entries",
            body.len()
        )));
    }
    let mut entries = Vec::with_capacity(body.len() / ENTRY_LEN);
    let mut expect_offset = 0u64;
    for raw in body.chunks_exact(ENTRY_LEN) {
        let e = PackEntry::decode(raw)
            .ok_or_else(|| corrupt("invalid type or compression byte".into()))?;
        if e.blob_type != blob_type {
            return Err(corrupt(format!(
                "{} blob {} in a {} pack",
                e.blob_type.name(),
                e.id,
                blob_type.name()
            )));
        }
        // The top bit of a length is reserved and must be zero (format-spec, "Pack header").
        if e.offset as u64 != expect_offset || (e.length as usize) < OVERHEAD || e.length >= 1 << 31
        {
            return Err(corrupt(format!(
                "blob {} at offset {} breaks the layout",
                e.id, e.offset
            )));
        }
        expect_offset += e.length as u64;
        entries.push(e);
    }
    if expect_offset != blob_area {
        return Err(corrupt(format!(
            "header covers {expect_offset} bytes of blobs but the pack holds {blob_area}"
        )));
    }
    Ok(entries)
}

/// Parses a whole pack held in memory: header, then every entry (blobs are not opened).
pub fn parse_pack(
    key: &MasterKey,
    pack: &PackId,
    blob_type: BlobType,
    bytes: &[u8],
) -> Result<Vec<PackEntry>> {
    let size = bytes.len() as u64;
    if bytes.len() < TRAILER_LEN {
        return Err(Error::corrupt(
            Object::Pack(*pack),
            "shorter than its trailer",
        ));
    }
    let hl = header_length(pack, &bytes[bytes.len() - TRAILER_LEN..], size)? as usize;
    let start = bytes.len() - TRAILER_LEN - hl;
    decode_header(
        key,
        pack,
        blob_type,
        bytes[start..bytes.len() - TRAILER_LEN].to_vec(),
        size,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seal(key: &MasterKey, sealer: &mut BlobSealer, t: BlobType, data: &[u8]) -> SealedBlob {
        let mut buf = vec![0u8; NONCE_LEN];
        buf.extend_from_slice(data);
        sealer.seal(key, t, key.blob_id(t, data), buf)
    }

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..3000), 1..12)) {
            let key = MasterKey::generate();
            let mut sealer = BlobSealer::new(3).unwrap();
            let mut packer = Packer::new(BlobType::Data, 1 << 20);
            for b in &blobs {
                packer.add(&seal(&key, &mut sealer, BlobType::Data, b));
            }
            let p = packer.finish(&key);
            prop_assert!(packer.is_empty());
            prop_assert_eq!(PackId::hash_of(&p.bytes), p.id);
            let entries = parse_pack(&key, &p.id, BlobType::Data, &p.bytes).unwrap();
            prop_assert_eq!(&entries, &p.entries);
            for (e, b) in entries.iter().zip(&blobs) {
                let sealed = p.bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec();
                prop_assert_eq!(&open_blob(&key, &p.id, e, sealed).unwrap(), b);
            }
        }
    }

    proptest! {
        #[test]
        fn a_packer_writing_blobs_out_makes_the_pack_one_holding_them_makes(
            blobs in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..5000), any::<bool>()), 1..12),
        ) {
            let key = MasterKey::generate();
            let mut sealer = BlobSealer::new(3).unwrap();
            let mut held = Packer::new(BlobType::Data, 1 << 14);
            let mut streamed = Packer::new(BlobType::Data, 1 << 14);
            let mut out = Vec::new();
            // Some blobs kept, some written out: kept ones go out before the next written one.
            for (b, write_out) in &blobs {
                let sealed = seal(&key, &mut sealer, BlobType::Data, b);
                held.add(&sealed);
                if *write_out {
                    streamed.add_with(&sealed, |bytes| {
                        out.extend_from_slice(bytes);
                        Ok::<_, ()>(())
                    }).unwrap();
                } else {
                    streamed.add(&sealed);
                }
                prop_assert_eq!(held.len(), streamed.len());
                prop_assert_eq!(held.is_full(), streamed.is_full());
            }
            let held = held.finish(&key);
            let (rest, entries, blob_type) = streamed.finish_unhashed(&key).into_parts();
            prop_assert!(streamed.is_empty());
            prop_assert_eq!(streamed.len(), 0);
            out.extend_from_slice(&rest);
            prop_assert_eq!(blob_type, BlobType::Data);
            prop_assert_eq!(&entries, &held.entries);
            let id = PackId::hash_of(&out);
            prop_assert_eq!(parse_pack(&key, &id, BlobType::Data, &out).unwrap(), entries);
            // The same blob area; the sealed headers differ in their nonces only.
            let end = held.entries.iter().map(|e| (e.offset + e.length) as usize).max().unwrap();
            prop_assert_eq!(&out[..end], &held.bytes[..end]);
            prop_assert_eq!(out.len(), held.bytes.len());
        }
    }

    #[test]
    fn an_opener_keeps_a_buffer_of_a_usual_blob_and_gives_back_a_large_one() {
        let key = MasterKey::generate();
        let mut sealer = BlobSealer::new(3).unwrap();
        let mut opener = BlobOpener::new();
        // The second blob is larger than the first, but not twice as large: a buffer grown by
        // doubling would end up 2000 bytes.
        for (size, kept) in [(1000, true), (1500, false)] {
            let data = vec![7u8; size];
            let sealed = seal(&key, &mut sealer, BlobType::Data, &data);
            assert!(sealed.compressed);
            let mut packer = Packer::new(BlobType::Data, 1 << 20);
            packer.add(&sealed);
            let p = packer.finish(&key);
            let e = p.entries[0];
            let mut bytes = p.bytes[..e.length as usize].to_vec();
            assert_eq!(opener.open(&key, &p.id, &e, &mut bytes).unwrap(), &data[..]);
            // Sized to the blob, not doubled past it.
            assert_eq!(opener.scratch.capacity(), size);
            opener.release_above(1200);
            assert_eq!(opener.scratch.capacity() > 0, kept, "{size}");
        }
    }

    #[test]
    fn damage_is_corruption_naming_the_pack() {
        let key = MasterKey::generate();
        let mut sealer = BlobSealer::new(3).unwrap();
        let mut packer = Packer::new(BlobType::Tree, 1 << 20);
        packer.add(&seal(&key, &mut sealer, BlobType::Tree, b"{\"nodes\":[]}"));
        let p = packer.finish(&key);
        // A flipped bit in the blob: the blob fails to open.
        let e = p.entries[0];
        let mut sealed = p.bytes[..e.length as usize].to_vec();
        sealed[30] ^= 1;
        let err = open_blob(&key, &p.id, &e, sealed).unwrap_err();
        assert!(err.is_corruption());
        assert!(err.to_string().contains(&p.id.to_hex()), "{err}");
        // A flipped bit in the header: the header fails to open.
        let mut bytes = p.bytes.clone();
        let n = bytes.len();
        bytes[n - 10] ^= 1;
        assert!(parse_pack(&key, &p.id, BlobType::Tree, &bytes)
            .unwrap_err()
            .is_corruption());
        // Truncation, wrong type, wrong key.
        assert!(parse_pack(&key, &p.id, BlobType::Tree, &p.bytes[..n - 1]).is_err());
        assert!(parse_pack(&key, &p.id, BlobType::Data, &p.bytes).is_err());
        assert!(parse_pack(&MasterKey::generate(), &p.id, BlobType::Tree, &p.bytes).is_err());
        assert!(parse_pack(&key, &p.id, BlobType::Tree, &[1, 2]).is_err());
    }
}

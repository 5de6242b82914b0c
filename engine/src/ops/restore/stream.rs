//! Blobs cut out of a range read as its bytes arrive: a reader of a remote store holds one blob
//! and the piece of the body in hand, rather than the whole range (up to `MAX_READ`), so that five
//! readers cost less memory than five ranges.

use super::BlobJob;

/// Gathers the bytes of a range that starts at the first blob of `group` (sorted by offset) and
/// hands each blob's sealed bytes on as soon as they are all in.
pub struct Assembler<'g> {
    group: &'g [BlobJob],
    /// The blobs handed on so far.
    pub done: usize,
    /// Bytes kept, from pack offset `at`.
    buf: &'g mut Vec<u8>,
    at: u64,
}

impl<'g> Assembler<'g> {
    /// For a range starting at the first blob's offset; `buf` is a buffer to reuse.
    pub fn new(group: &'g [BlobJob], buf: &'g mut Vec<u8>) -> Self {
        buf.clear();
        let at = group.first().map_or(0, |b| b.entry.offset as u64);
        Self {
            group,
            done: 0,
            buf,
            at,
        }
    }

    /// Takes the next bytes of the range; `open` gets each blob completed by them, with its
    /// sealed bytes.
    pub fn push(&mut self, bytes: &[u8], open: &mut dyn FnMut(&BlobJob, &mut [u8])) {
        self.make_room(bytes.len());
        self.buf.extend_from_slice(bytes);
        let end = self.at + self.buf.len() as u64;
        while let Some(b) = self.group.get(self.done) {
            let (off, len) = (b.entry.offset as u64, b.entry.length as u64);
            if off + len > end {
                break;
            }
            let lo = (off - self.at) as usize;
            open(b, &mut self.buf[lo..lo + len as usize]);
            self.done += 1;
        }
        // Keep only what the next blob still needs (none of a gap before it).
        let keep_from = self
            .group
            .get(self.done)
            .map_or(end, |b| (b.entry.offset as u64).min(end));
        let cut = (keep_from - self.at) as usize;
        if cut > 0 {
            self.buf.drain(..cut);
            self.at = keep_from;
        }
    }

    /// Grows the buffer for `more` bytes to exactly what the blob being gathered needs (or the
    /// piece, when that is longer), rather than doubling it: a reader keeps its buffer between
    /// blobs, and it should be as large as the largest blob, not twice that.
    fn make_room(&mut self, more: usize) {
        let len = self.buf.len();
        if len + more <= self.buf.capacity() {
            return;
        }
        let blob_end = self.group.get(self.done).map_or(0, |b| {
            (b.entry.offset as u64 + b.entry.length as u64).saturating_sub(self.at) as usize
        });
        self.buf.reserve_exact(blob_end.max(len + more) - len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::BlobType;
    use crate::format::pack::PackEntry;
    use crate::id::BlobId;

    fn job(offset: u32, length: u32) -> BlobJob {
        BlobJob {
            entry: PackEntry {
                blob_type: BlobType::Data,
                compressed: false,
                id: BlobId::from_bytes([offset as u8; 32]),
                offset,
                length,
                uncompressed_length: length,
            },
            targets: Vec::new(),
        }
    }

    #[test]
    fn each_blob_is_handed_on_whole_whatever_the_pieces_and_gaps_are_dropped() {
        // Blobs at 100..110, 110..130 and 200..205 of a pack whose byte at offset o is o % 251.
        let group = [job(100, 10), job(110, 20), job(200, 5)];
        let range: Vec<u8> = (100u32..205).map(|o| (o % 251) as u8).collect();
        for piece in [1, 3, 7, 64, 105] {
            let mut buf = Vec::new();
            let mut asm = Assembler::new(&group, &mut buf);
            let mut seen = Vec::new();
            for bytes in range.chunks(piece) {
                asm.push(bytes, &mut |b, sealed| {
                    let want: Vec<u8> = (b.entry.offset..b.entry.offset + b.entry.length)
                        .map(|o| (o % 251) as u8)
                        .collect();
                    assert_eq!(sealed, &want[..], "piece {piece}");
                    seen.push(b.entry.offset);
                });
                assert!(
                    asm.buf.len() <= 20 + piece,
                    "piece {piece}: {}",
                    asm.buf.len()
                );
                // Grown to what the largest blob or piece needs, never doubled past it.
                assert!(
                    asm.buf.capacity() <= 20 + piece,
                    "piece {piece}: capacity {}",
                    asm.buf.capacity()
                );
            }
            assert_eq!(seen, [100, 110, 200], "piece {piece}");
            assert_eq!(asm.done, 3);
        }
    }

    #[test]
    fn a_range_cut_short_hands_on_only_the_whole_blobs() {
        let group = [job(0, 10), job(10, 10)];
        let mut buf = Vec::new();
        let mut asm = Assembler::new(&group, &mut buf);
        let mut seen = 0;
        asm.push(&[7; 15], &mut |_, _| seen += 1);
        assert_eq!((seen, asm.done), (1, 1));
    }
}

//! Content-defined chunking with FastCDC, the 2020 variant (format-spec/format.md, "Chunking").
//!
//! Cut points are those of the `fastcdc` crate's `v2020::FastCDC` with normalization level 1 and the
//! standard gear table; `ChunkReader` finds them on a stream through one reusable buffer, without
//! holding a file in memory.

use std::io::{self, Read};
use std::sync::Arc;

use fastcdc::v2020;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Chunk size bounds, stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk is smaller, except the last of a file.
    pub min_size: u32,
    /// The size FastCDC aims at (rounded to a power of two by the algorithm).
    pub avg_size: u32,
    /// No chunk is larger.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self {
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds the algorithm accepts.
    pub fn validate(&self) -> Result<()> {
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min_size)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg_size)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidOptions(format!(
                "invalid chunker sizes min={} avg={} max={}: need {}<=min<={}, {}<=avg<={}, {}<=max<={} and min<=avg<=max",
                self.min_size,
                self.avg_size,
                self.max_size,
                v2020::MINIMUM_MIN,
                v2020::MINIMUM_MAX,
                v2020::AVERAGE_MIN,
                v2020::AVERAGE_MAX,
                v2020::MAXIMUM_MIN,
                v2020::MAXIMUM_MAX
            )))
        }
    }
}

/// Finds cut points.
#[derive(Debug, Clone)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Arc<([u64; 256], [u64; 256])>,
}

impl Chunker {
    /// A chunker with validated parameters whose gear table is XORed with `seed`, as
    /// `v2020::FastCDC::with_level_and_seed` does (seed 0 is the crate's standard table).
    pub fn new(params: ChunkerParams, seed: u64) -> Result<Self> {
        params.validate()?;
        // Normalization level 1, as `v2020::FastCDC::new` uses.
        let bits = v2020::logarithm2(params.avg_size) as usize;
        let (gear, gear_ls) = v2020::get_gear_with_seed(seed);
        Ok(Self {
            params,
            mask_s: v2020::MASKS[bits + 1],
            mask_l: v2020::MASKS[bits - 1],
            gear: Arc::new((*gear, *gear_ls)),
        })
    }

    /// The parameters.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data`. `data` must hold at least `max_size` bytes, or be the
    /// end of the stream; then the result is the same as on the whole stream.
    pub fn cut(&self, data: &[u8]) -> usize {
        let (_, len) = v2020::cut_gear(
            data,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear.0,
            &self.gear.1,
        );
        len
    }
}

/// Splits a stream into chunks through one buffer of twice the maximum chunk size.
pub struct ChunkReader<R> {
    reader: R,
    chunker: Chunker,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    bytes_read: u64,
}

impl<R: Read> ChunkReader<R> {
    /// Wraps `reader`, reusing `buf` (grown as needed) so that callers can recycle it.
    pub fn with_buffer(reader: R, chunker: Chunker, mut buf: Vec<u8>) -> Self {
        let want = 2 * chunker.params.max_size as usize;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        Self {
            reader,
            chunker,
            buf,
            start: 0,
            end: 0,
            eof: false,
            bytes_read: 0,
        }
    }

    /// Bytes read from the stream so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Gives back the buffer for reuse.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    self.bytes_read += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let max = self.chunker.params.max_size as usize;
        if self.end - self.start < max && !self.eof {
            self.fill()?;
        }
        if self.start == self.end {
            return Ok(None);
        }
        let len = self.chunker.cut(&self.buf[self.start..self.end]);
        let chunk = &self.buf[self.start..self.start + len];
        self.start += len;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        }
    }

    fn random(seed: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    /// Reads in odd-sized pieces, to prove cut points do not depend on read sizes.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn stream_cuts(data: &[u8], params: ChunkerParams, step: usize, seed: u64) -> Vec<usize> {
        let mut r = ChunkReader::with_buffer(
            Trickle(data, step),
            Chunker::new(params, seed).unwrap(),
            Vec::new(),
        );
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            out.push(c.len());
        }
        out
    }

    proptest! {
        #[test]
        fn stream_matches_reference_and_reassembles(seed in any::<u64>(), gear_seed in prop_oneof![Just(0u64), any::<u64>()], len in 0usize..200_000, step in 1usize..70_000) {
            let data = random(seed, len);
            let p = small();
            let reference: Vec<usize> = v2020::FastCDC::with_level_and_seed(&data, p.min_size, p.avg_size, p.max_size, v2020::Normalization::Level1, gear_seed).map(|c| c.length).collect();
            let ours = stream_cuts(&data, p, step, gear_seed);
            prop_assert_eq!(&ours, &reference);
            prop_assert_eq!(ours.iter().sum::<usize>(), data.len());
            for (i, l) in ours.iter().enumerate() {
                prop_assert!(*l <= p.max_size as usize);
                if i + 1 < ours.len() { prop_assert!(*l >= p.min_size as usize); }
            }
        }
    }

    #[test]
    fn an_insertion_changes_few_chunks() {
        let data = random(7, 2_000_000);
        let mut shifted = vec![0x42u8];
        shifted.extend_from_slice(&data);
        let a = stream_cuts(&data, small(), 1 << 20, 99);
        let b = stream_cuts(&shifted, small(), 1 << 20, 99);
        // Chunks are compared by content: all but the first few must reappear.
        let chunks = |d: &[u8], cuts: &[usize]| {
            let mut off = 0;
            cuts.iter()
                .map(|l| {
                    let c = d[off..off + l].to_vec();
                    off += l;
                    c
                })
                .collect::<std::collections::HashSet<_>>()
        };
        let ca = chunks(&data, &a);
        let cb = chunks(&shifted, &b);
        let new = cb.difference(&ca).count();
        assert!(new <= 3, "{new} new chunks of {}", cb.len());
    }

    #[test]
    fn bad_params_are_refused() {
        let bad = ChunkerParams {
            min_size: 10,
            avg_size: 4096,
            max_size: 16384,
        };
        assert!(Chunker::new(bad, 0).is_err());
        let inverted = ChunkerParams {
            min_size: 8192,
            avg_size: 4096,
            max_size: 16384,
        };
        assert!(Chunker::new(inverted, 0).is_err());
        assert!(Chunker::new(ChunkerParams::default(), 0).is_ok());
    }

    #[test]
    fn the_seed_moves_cut_points() {
        let data = random(5, 300_000);
        assert_ne!(
            stream_cuts(&data, small(), 1 << 20, 0),
            stream_cuts(&data, small(), 1 << 20, 12345)
        );
    }
}

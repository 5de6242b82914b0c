//! zstd compression of blobs and files (format-spec/format.md, "Compression").
//!
//! A blob is compressed only when that makes it smaller; otherwise it is stored raw and the pack
//! header says so.

/// Default zstd level.
pub const DEFAULT_LEVEL: i32 = 3;

/// How new blobs are compressed: the repository's level unless a command says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Every blob is stored raw (the pack header says so; readers need nothing new).
    Off,
    /// zstd at this level, where it makes the blob smaller.
    Level(i32),
}

/// The zstd levels a repository or a command may ask for (negative ones are faster still).
pub fn levels() -> std::ops::RangeInclusive<i32> {
    zstd::compression_level_range()
}

/// A reusable zstd compressor (one per worker thread).
pub struct Compressor {
    inner: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    /// A compressor at `level`.
    pub fn new(level: i32) -> std::io::Result<Self> {
        Ok(Self {
            inner: zstd::bulk::Compressor::new(level)?,
        })
    }

    /// Compresses `src` into `dst`, after `headroom` bytes of room (for the envelope's nonce).
    /// Returns false, leaving `dst` unspecified, when the result would not be smaller than `src`.
    pub fn compress_for_seal(&mut self, src: &[u8], headroom: usize, dst: &mut Vec<u8>) -> bool {
        dst.clear();
        // Room for the nonce plus strictly less than the input: a frame that does not fit is not
        // worth keeping, and zstd stops as soon as it knows it will not fit.
        let budget = src.len().saturating_sub(1);
        if budget == 0 {
            return false;
        }
        if self.looks_incompressible(src, dst) {
            return false;
        }
        // The tail is zero-filled once per call; a memset costs about 1% of compressing the chunk.
        dst.clear();
        dst.resize(headroom + budget, 0);
        match self.inner.compress_to_buffer(src, &mut dst[headroom..]) {
            Ok(n) if n < src.len() => {
                dst.truncate(headroom + n);
                true
            }
            _ => false,
        }
    }

    /// A cheap guess that compressing `src` would not pay: random, encrypted or already compressed
    /// data. Byte entropy is measured on a few samples spread over the chunk; only when it is near
    /// 8 bits per byte is one sample compressed for real, to catch repeats that entropy cannot
    /// see. Text and other compressible data cost one histogram; incompressible data one sample
    /// instead of the whole chunk. `scratch` is used for the trial.
    fn looks_incompressible(&mut self, src: &[u8], scratch: &mut Vec<u8>) -> bool {
        const SAMPLE: usize = 16 * 1024;
        const SAMPLES: usize = 4;
        if src.len() < 8 * SAMPLE * SAMPLES {
            return false;
        }
        let step = (src.len() - SAMPLE) / (SAMPLES - 1);
        let mut counts = [0u32; 256];
        for i in 0..SAMPLES {
            for &b in &src[i * step..i * step + SAMPLE] {
                counts[b as usize] += 1;
            }
        }
        let total = (SAMPLE * SAMPLES) as f64;
        let entropy: f64 = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / total;
                -p * p.log2()
            })
            .sum();
        if entropy < 7.9 {
            return false;
        }
        // Trial on a larger sample: keep compressing unless it saves less than 2%.
        let trial = &src[..4 * SAMPLE];
        scratch.clear();
        scratch.resize(trial.len(), 0);
        match self.inner.compress_to_buffer(trial, &mut scratch[..]) {
            Ok(n) => n * 100 > trial.len() * 98,
            Err(_) => true,
        }
    }

    /// Compresses a whole buffer (for index, snapshot and config files).
    pub fn compress(&mut self, src: &[u8]) -> std::io::Result<Vec<u8>> {
        self.inner.compress(src)
    }
}

/// The zstd frame magic number, little endian (RFC 8878, section 3.1.1).
const FRAME_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Fails unless `src` is exactly one standard zstd frame: no skippable or legacy frame, no
/// second frame, no trailing bytes (format-spec/format.md, "Compression").
fn one_frame(src: &[u8]) -> std::io::Result<()> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    if !src.starts_with(&FRAME_MAGIC) {
        return Err(bad("not a zstd frame"));
    }
    match zstd::zstd_safe::find_frame_compressed_size(src) {
        Ok(n) if n == src.len() => Ok(()),
        Ok(_) => Err(bad("bytes follow the zstd frame")),
        Err(_) => Err(bad("a truncated or malformed zstd frame")),
    }
}

/// Most bytes one zstd block decompresses to (RFC 8878, section 3.1.1.2.3: `Block_Maximum_Size`).
const MAX_BLOCK_OUTPUT: usize = 128 << 10;
/// Fewest bytes of a block that decompresses to anything: a 3-byte header and the one byte an
/// RLE block repeats.
const MIN_PRODUCTIVE_BLOCK: usize = 4;

/// The most bytes the frame `src` can decompress to, whatever its header claims: each of its
/// blocks takes at least [`MIN_PRODUCTIVE_BLOCK`] bytes and yields at most [`MAX_BLOCK_OUTPUT`].
/// Readers check a length they were told (by a pack header, an index or the frame itself)
/// against it before reserving room for that length.
fn max_output(src: &[u8]) -> usize {
    (src.len() / MIN_PRODUCTIVE_BLOCK).saturating_mul(MAX_BLOCK_OUTPUT)
}

/// Fails when `src` cannot decompress to `expected_len` bytes, before any room is reserved.
fn check_room(src: &[u8], expected_len: usize) -> std::io::Result<()> {
    if expected_len > max_output(src) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "a zstd frame of {} bytes cannot decompress to {expected_len} bytes",
                src.len()
            ),
        ));
    }
    Ok(())
}

thread_local! {
    /// A zstd context per thread for frames decompressed one at a time: making one allocates and
    /// clears more memory than a small tree or snapshot decompresses to.
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's zstd context. Fails only when no context can be made.
pub fn with_dctx<R>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> R,
) -> std::io::Result<R> {
    let mut dctx = match DCTX.take() {
        Some(d) => d,
        None => zstd::bulk::Decompressor::new()?,
    };
    let result = f(&mut dctx);
    DCTX.set(Some(dctx));
    Ok(result)
}

/// Decompresses a blob or file whose plaintext is `expected_len` bytes long. Any other length is
/// an error.
pub fn decompress(src: &[u8], expected_len: usize) -> std::io::Result<Vec<u8>> {
    one_frame(src)?;
    check_room(src, expected_len)?;
    let out = with_dctx(|d| d.decompress(src, expected_len))??;
    if out.len() != expected_len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "decompressed to {} bytes, expected {expected_len}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Decompresses into `out` (its allocation reused), which must end up `expected_len` bytes long.
pub fn decompress_into(
    dctx: &mut zstd::bulk::Decompressor<'static>,
    src: &[u8],
    expected_len: usize,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    one_frame(src)?;
    check_room(src, expected_len)?;
    out.clear();
    // Exactly: a buffer kept from one blob to the next should be as large as the largest blob,
    // not twice that.
    out.reserve_exact(expected_len);
    let n = dctx.decompress_to_buffer(src, out)?;
    if n != expected_len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("decompressed to {n} bytes, expected {expected_len}"),
        ));
    }
    Ok(())
}

/// Decompresses a zstd frame of unknown size, refusing to grow past `limit` bytes.
pub fn decompress_bounded(src: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    one_frame(src)?;
    // A frame that states its size within the limit (as floe writes them) decompresses in one
    // call on this thread's context; the size is only a claim, so the buffer is all it may fill.
    if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(src) {
        if n <= limit as u64 && n <= max_output(src) as u64 {
            return with_dctx(|d| d.decompress(src, n as usize))?;
        }
    }
    let mut out = Vec::new();
    let decoder = zstd::stream::read::Decoder::new(src)?;
    decoder.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("decompresses to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_exactly_one_standard_frame_decompresses() {
        let frame = zstd::bulk::compress(b"one frame of text, one frame of text", 3).unwrap();
        assert_eq!(
            decompress(&frame, 36).unwrap(),
            b"one frame of text, one frame of text"
        );
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert!(decompress_bounded(&two, 1 << 20).is_err(), "a second frame");
        let mut trailing = frame.clone();
        trailing.push(0);
        assert!(
            decompress_bounded(&trailing, 1 << 20).is_err(),
            "a trailing byte"
        );
        // A skippable frame (magic 0x184D2A50, 4-byte length, payload) before the real one.
        let mut skippable = vec![0x50, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 9];
        skippable.extend_from_slice(&frame);
        assert!(
            decompress_bounded(&skippable, 1 << 20).is_err(),
            "a skippable frame"
        );
        assert!(decompress_bounded(&[], 1 << 20).is_err(), "nothing");
        assert!(
            decompress(&frame[..frame.len() - 1], 36).is_err(),
            "a truncated frame"
        );
        // Blob reads go through decompress_into and decompress: the same rules hold there.
        let mut dctx = zstd::bulk::Decompressor::new().unwrap();
        let mut out = Vec::new();
        decompress_into(&mut dctx, &frame, 36, &mut out).unwrap();
        for bad in [&two, &trailing, &skippable] {
            assert!(decompress_into(&mut dctx, bad, 36, &mut out).is_err());
            assert!(decompress(bad, 36).is_err());
        }
    }

    /// Found by fuzzing a blob whose pack header says it decompresses to 4 GiB: the reader
    /// reserved that much before looking at the 20-byte frame.
    #[test]
    fn a_small_frame_claiming_4_gib_is_refused_before_reserving_room() {
        let frame = zstd::bulk::compress(b"a few bytes", 3).unwrap();
        let huge = u32::MAX as usize;
        let mut dctx = zstd::bulk::Decompressor::new().unwrap();
        let mut out = Vec::new();
        let err = decompress_into(&mut dctx, &frame, huge, &mut out).unwrap_err();
        assert!(err.to_string().contains("cannot decompress to"), "{err}");
        assert!(
            out.capacity() < 1 << 20,
            "{} bytes reserved",
            out.capacity()
        );
        assert!(decompress(&frame, huge).is_err());
        // Frames that do reach their length are untouched, the most compressible included:
        // 8 MiB of zeros is one 4-byte RLE block per 128 KiB.
        let zeros = vec![0u8; 8 << 20];
        let z = zstd::bulk::compress(&zeros, 19).unwrap();
        assert_eq!(decompress(&z, zeros.len()).unwrap(), zeros);
        decompress_into(&mut dctx, &z, zeros.len(), &mut out).unwrap();
        assert_eq!(decompress_bounded(&z, 1 << 30).unwrap(), zeros);
    }

    /// Room left before the frame, as for a nonce.
    const HEADROOM: usize = 24;

    #[test]
    fn compressible_data_shrinks_and_round_trips() {
        let src: Vec<u8> = b"floe ".iter().cycle().take(100_000).copied().collect();
        let mut c = Compressor::new(3).unwrap();
        let mut dst = Vec::new();
        assert!(c.compress_for_seal(&src, HEADROOM, &mut dst));
        assert!(dst.len() < 2000);
        assert_eq!(decompress(&dst[HEADROOM..], src.len()).unwrap(), src);
        assert!(decompress(&dst[HEADROOM..], src.len() + 1).is_err());
    }

    #[test]
    fn high_entropy_data_with_repeats_is_still_compressed() {
        // Random 16 KiB repeated to 1 MiB: byte entropy is 8 bits, yet zstd shrinks it 16-fold.
        let mut short = vec![0u8; 16 * 1024];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut short);
        let repeated: Vec<u8> = short.iter().cycle().take(1 << 20).copied().collect();
        let mut c = Compressor::new(3).unwrap();
        let mut dst = Vec::new();
        assert!(c.compress_for_seal(&repeated, HEADROOM, &mut dst));
        assert!(dst.len() < 64 * 1024);
        assert_eq!(
            decompress(&dst[HEADROOM..], repeated.len()).unwrap(),
            repeated
        );
    }

    #[test]
    fn incompressible_data_is_refused() {
        let mut src = vec![0u8; 65536];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut src);
        let mut c = Compressor::new(3).unwrap();
        let mut dst = Vec::new();
        assert!(!c.compress_for_seal(&src, HEADROOM, &mut dst));
        assert!(!c.compress_for_seal(b"", HEADROOM, &mut dst));
        assert!(!c.compress_for_seal(b"a", HEADROOM, &mut dst));
    }

    proptest! {
        #[test]
        fn round_trip_when_compressed(data in proptest::collection::vec(0u8..4, 0..20000)) {
            let mut c = Compressor::new(3).unwrap();
            let mut dst = Vec::new();
            if c.compress_for_seal(&data, HEADROOM, &mut dst) {
                prop_assert!(dst.len() - HEADROOM < data.len());
                prop_assert_eq!(decompress(&dst[HEADROOM..], data.len()).unwrap(), data);
            }
        }
    }
}

//! zstd compression of blobs and files (format-spec/format.md, "Compression").
//!
//! A blob is compressed only when that makes it smaller; otherwise it is stored raw and the pack
//! header says so.

use crate::crypto::NONCE_LEN;

/// Default zstd level.
pub const DEFAULT_LEVEL: i32 = 3;

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

    /// Compresses `src` into `dst`, after `NONCE_LEN` bytes of room for the envelope's nonce.
    /// Returns false, leaving `dst` unspecified, when the result would not be smaller than `src`.
    pub fn compress_for_seal(&mut self, src: &[u8], dst: &mut Vec<u8>) -> bool {
        dst.clear();
        // Room for the nonce plus strictly less than the input: a frame that does not fit is not
        // worth keeping, and zstd stops as soon as it knows it will not fit.
        let budget = src.len().saturating_sub(1);
        if budget == 0 {
            return false;
        }
        // The tail is zero-filled once per call; a memset costs about 1% of compressing the chunk.
        dst.resize(NONCE_LEN + budget, 0);
        match self.inner.compress_to_buffer(src, &mut dst[NONCE_LEN..]) {
            Ok(n) if n < src.len() => {
                dst.truncate(NONCE_LEN + n);
                true
            }
            _ => false,
        }
    }

    /// Compresses a whole buffer (for index, snapshot and config files).
    pub fn compress(&mut self, src: &[u8]) -> std::io::Result<Vec<u8>> {
        self.inner.compress(src)
    }
}

/// Decompresses a blob or file whose plaintext is `expected_len` bytes long. Any other length is
/// an error.
pub fn decompress(src: &[u8], expected_len: usize) -> std::io::Result<Vec<u8>> {
    let out = zstd::bulk::decompress(src, expected_len)?;
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
    out.clear();
    out.reserve(expected_len);
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
    fn compressible_data_shrinks_and_round_trips() {
        let src: Vec<u8> = b"floe ".iter().cycle().take(100_000).copied().collect();
        let mut c = Compressor::new(3).unwrap();
        let mut dst = Vec::new();
        assert!(c.compress_for_seal(&src, &mut dst));
        assert!(dst.len() < 2000);
        assert_eq!(decompress(&dst[NONCE_LEN..], src.len()).unwrap(), src);
        assert!(decompress(&dst[NONCE_LEN..], src.len() + 1).is_err());
    }

    #[test]
    fn incompressible_data_is_refused() {
        let mut src = vec![0u8; 65536];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut src);
        let mut c = Compressor::new(3).unwrap();
        let mut dst = Vec::new();
        assert!(!c.compress_for_seal(&src, &mut dst));
        assert!(!c.compress_for_seal(b"", &mut dst));
        assert!(!c.compress_for_seal(b"a", &mut dst));
    }

    proptest! {
        #[test]
        fn round_trip_when_compressed(data in proptest::collection::vec(0u8..4, 0..20000)) {
            let mut c = Compressor::new(3).unwrap();
            let mut dst = Vec::new();
            if c.compress_for_seal(&data, &mut dst) {
                prop_assert!(dst.len() - NONCE_LEN < data.len());
                prop_assert_eq!(decompress(&dst[NONCE_LEN..], data.len()).unwrap(), data);
            }
        }
    }
}

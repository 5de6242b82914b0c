//! Encryption envelope and keyed hashing (format-spec/format.md, sections "Keys" and "Envelope").
//!
//! Every encrypted object is `nonce (24) || ciphertext || tag (16)`, XChaCha20-Poly1305 with a random
//! nonce. The associated data binds the object to what it claims to be (a data blob with a given
//! id, a snapshot file, a pack header...), so moving ciphertext to another place fails to open.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::format::blob::BlobType;
use crate::id::BlobId;

/// Nonce length (XChaCha20).
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Bytes the envelope adds to a plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of each half of the master key.
pub const KEY_LEN: usize = 32;
/// Input hashed with the id key to derive the chunker seed.
pub const CHUNKER_SEED_CONTEXT: &[u8] = b"floe/v1/chunker-seed";

/// Authentication failed: wrong key, or the bytes were altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed (wrong key, or the data was altered)")]
pub struct AuthError;

/// The repository's master key: one key for encryption, one for blob ids.
#[derive(Clone)]
pub struct MasterKey {
    encryption: [u8; KEY_LEN],
    id_key: [u8; KEY_LEN],
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        let mut enc = [0u8; KEY_LEN];
        let mut id = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut enc);
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self::from_parts(enc, id)
    }

    /// Builds a master key from its two halves.
    pub fn from_parts(encryption: [u8; KEY_LEN], id_key: [u8; KEY_LEN]) -> Self {
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&encryption));
        Self {
            encryption,
            id_key,
            cipher,
        }
    }

    /// The encryption half.
    pub fn encryption_key(&self) -> &[u8; KEY_LEN] {
        &self.encryption
    }

    /// The id half.
    pub fn id_key(&self) -> &[u8; KEY_LEN] {
        &self.id_key
    }

    /// The id of a blob: BLAKE3 keyed with the id key over the type byte and the plaintext, so a
    /// file whose bytes equal an encoded tree never shares its id.
    pub fn blob_id(&self, blob_type: BlobType, plaintext: &[u8]) -> BlobId {
        let mut h = blake3::Hasher::new_keyed(&self.id_key);
        h.update(&[blob_type as u8]);
        h.update(plaintext);
        BlobId::from_bytes(*h.finalize().as_bytes())
    }

    /// The repository's chunker seed: the first 8 bytes (little endian) of BLAKE3 keyed with the
    /// id key over `floe/v1/chunker-seed`. Keying the cut points keeps chunk sizes from telling
    /// which known files a repository holds.
    pub fn chunker_seed(&self) -> u64 {
        let h = blake3::keyed_hash(&self.id_key, CHUNKER_SEED_CONTEXT);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }

    /// Seals in place. `buf` must hold `NONCE_LEN` bytes of room followed by the plaintext; on
    /// return it holds `nonce || ciphertext || tag`. No copy of the plaintext is made.
    pub fn seal_in_place(&self, aad: &[u8], buf: &mut Vec<u8>) {
        debug_assert!(buf.len() >= NONCE_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        buf[..NONCE_LEN].copy_from_slice(&nonce);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut buf[NONCE_LEN..])
            // Encryption only fails for inputs beyond 256 GiB, far above any blob or file.
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 input too large"));
        buf.extend_from_slice(&tag);
    }

    /// Seals a copy of `plaintext`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(plaintext.len() + OVERHEAD);
        buf.extend_from_slice(&[0u8; NONCE_LEN]);
        buf.extend_from_slice(plaintext);
        self.seal_in_place(aad, &mut buf);
        buf
    }

    /// Opens `nonce || ciphertext || tag` in place and returns the plaintext, a sub-slice of `buf`.
    pub fn open_in_place<'a>(
        &self,
        aad: &[u8],
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8], AuthError> {
        if buf.len() < OVERHEAD {
            return Err(AuthError);
        }
        let (nonce, rest) = buf.split_at_mut(NONCE_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        self.cipher
            .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, body, Tag::from_slice(tag))
            .map_err(|_| AuthError)?;
        Ok(body)
    }

    /// Opens a copy of `sealed`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        let mut buf = sealed.to_vec();
        let len = self.open_in_place(aad, &mut buf)?.len();
        buf.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::aad;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096), aad_bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = MasterKey::generate();
            let sealed = key.seal(&aad_bytes, &data);
            prop_assert_eq!(sealed.len(), data.len() + OVERHEAD);
            prop_assert_eq!(key.open(&aad_bytes, &sealed).unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_fails(data in proptest::collection::vec(any::<u8>(), 1..512), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let key = MasterKey::generate();
            let mut sealed = key.seal(b"a", &data);
            let i = pos.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert_eq!(key.open(b"a", &sealed), Err(AuthError));
        }
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let key = MasterKey::generate();
        let id = key.blob_id(BlobType::Data, b"hello");
        let sealed = key.seal(&aad::blob(BlobType::Data, &id), b"hello");
        assert!(key.open(&aad::blob(BlobType::Tree, &id), &sealed).is_err());
        let other = key.blob_id(BlobType::Data, b"other");
        assert!(key
            .open(&aad::blob(BlobType::Data, &other), &sealed)
            .is_err());
        assert!(MasterKey::generate()
            .open(&aad::blob(BlobType::Data, &id), &sealed)
            .is_err());
        assert_eq!(
            key.open(&aad::blob(BlobType::Data, &id), &sealed).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn blob_ids_depend_on_the_id_key() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_eq!(
            a.blob_id(BlobType::Data, b"x"),
            a.blob_id(BlobType::Data, b"x")
        );
        assert_ne!(
            a.blob_id(BlobType::Data, b"x"),
            b.blob_id(BlobType::Data, b"x")
        );
        // The same bytes as data and as a tree get different ids.
        assert_ne!(
            a.blob_id(BlobType::Data, b"{}"),
            a.blob_id(BlobType::Tree, b"{}")
        );
        assert_ne!(a.chunker_seed(), b.chunker_seed());
    }
}

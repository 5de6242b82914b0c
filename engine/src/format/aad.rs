//! Associated data of each kind of sealed object (format-spec/format.md, "Associated data"): the
//! bytes that bind a ciphertext to what it claims to be, so that moving it elsewhere fails to open.

use crate::format::blob::BlobType;
use crate::id::{BlobId, ID_LEN};
use crate::storage::FileType;

/// AAD prefix of a blob: followed by the blob type byte and the 32-byte blob id.
pub const BLOB_PREFIX: &[u8] = b"floe/v1/blob/";
/// AAD prefix of a whole file (config, index, snapshot, lock): followed by its folder name.
pub const FILE_PREFIX: &[u8] = b"floe/v1/file/";
/// AAD prefix of a pack header: followed by the pack's blob type byte.
pub const PACK_HEADER_PREFIX: &[u8] = b"floe/v1/pack-header/";
/// AAD of the master key sealed in a key file.
pub const MASTER_KEY: &[u8] = b"floe/v1/master-key";

/// AAD binding a blob to its type and id.
pub fn blob(blob_type: BlobType, id: &BlobId) -> [u8; 13 + 1 + ID_LEN] {
    let mut out = [0u8; 13 + 1 + ID_LEN];
    out[..13].copy_from_slice(BLOB_PREFIX);
    out[13] = blob_type as u8;
    out[14..].copy_from_slice(id.as_bytes());
    out
}

/// AAD binding a file's contents to its type.
pub fn file(file_type: FileType) -> Vec<u8> {
    let mut out = FILE_PREFIX.to_vec();
    out.extend_from_slice(file_type.dir_name().as_bytes());
    out
}

/// AAD of the header of a pack holding blobs of `blob_type`.
pub fn pack_header(blob_type: BlobType) -> Vec<u8> {
    let mut out = PACK_HEADER_PREFIX.to_vec();
    out.push(blob_type as u8);
    out
}

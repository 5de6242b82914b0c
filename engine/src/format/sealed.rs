//! The sealed-file encoding of config, index, snapshot and lock files (format-spec/format.md,
//! "Files"): JSON, one zstd frame, the envelope with the file type as associated data.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Object, Result};
use crate::format::aad;
use crate::format::compress;
use crate::format::crypto::MasterKey;
use crate::id::RawId;
use crate::storage::FileType;

/// Largest plaintext accepted when decoding a file (index, snapshot, config).
pub const MAX_FILE_PLAINTEXT: usize = 1 << 30;

/// Encodes a file (format-spec/format.md, "Files"): JSON, one zstd frame at `level`, sealed with
/// the file type as associated data.
pub fn encode_file<T: Serialize>(
    key: &MasterKey,
    level: i32,
    file_type: FileType,
    value: &T,
) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(value).map_err(|e| Error::Encode {
        what: file_type.dir_name(),
        reason: e.to_string(),
    })?;
    if json.len() > MAX_FILE_PLAINTEXT {
        // Readers refuse such a file: never write one.
        return Err(Error::TooLarge {
            what: format!("a {} file", file_type.dir_name()),
            size: json.len(),
            limit: MAX_FILE_PLAINTEXT,
        });
    }
    let z = zstd::bulk::compress(&json, level)
        .map_err(|e| Error::io("compress", file_type.dir_name(), e))?;
    Ok(key.seal(&aad::file(file_type), &z))
}

/// Decodes a file sealed by [`encode_file`]: authenticate, decompress, parse. `id` only names the
/// file in errors.
pub fn decode_file<T: DeserializeOwned>(
    key: &MasterKey,
    file_type: FileType,
    id: &RawId,
    mut sealed: Vec<u8>,
) -> Result<T> {
    let object = || Object::File {
        file_type,
        name: if file_type == FileType::Config {
            "config".into()
        } else {
            hex::encode(id)
        },
    };
    let z = key
        .open_in_place(&aad::file(file_type), &mut sealed)
        .map_err(|e| Error::corrupt(object(), e.to_string()))?;
    let json = compress::decompress_bounded(z, MAX_FILE_PLAINTEXT)
        .map_err(|e| Error::corrupt(object(), format!("decompression failed: {e}")))?;
    serde_json::from_slice(&json)
        .map_err(|e| Error::corrupt(object(), format!("does not decode: {e}")))
}

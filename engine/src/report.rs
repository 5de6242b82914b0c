//! How the reports of operations put paths into JSON: a path is bytes on Unix, and a file name
//! that is not UTF-8 must not fail the report of the operation that met it. Such a name is
//! written with U+FFFD in place of its invalid bytes, as the text output shows it.

use std::path::{Path, PathBuf};

use serde::Serializer;

/// Serializes `path` as a string, replacing bytes that are not UTF-8.
pub fn lossy_path<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// [`lossy_path`] for each path of a list.
pub fn lossy_paths<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| p.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[derive(serde::Serialize)]
    struct Report {
        #[serde(serialize_with = "lossy_path")]
        one: PathBuf,
        #[serde(serialize_with = "lossy_paths")]
        many: Vec<PathBuf>,
    }

    #[test]
    fn a_name_that_is_not_utf8_is_written_with_replacement_characters() {
        let bad = PathBuf::from(std::ffi::OsStr::from_bytes(b"/src/bad\xff\xfename"));
        let report = Report {
            one: bad.clone(),
            many: vec!["/src/fine".into(), bad],
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(
            json,
            r#"{"one":"/src/bad\u{fffd}\u{fffd}name","many":["/src/fine","/src/bad\u{fffd}\u{fffd}name"]}"#
                .replace("\\u{fffd}", "\u{fffd}")
        );
    }
}

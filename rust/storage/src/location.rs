//! Locations (`s3://bucket/a/b.parquet`, `file:///dir/x`, `/dir/x`) to object_store paths and back.
//!
//! Owns [`Location`]: a full location split into the store it lives in (scheme + authority: the
//! bucket, container or in-memory store name) and the object_store [`Path`] inside that store.
//!
//! The key is taken **literally**, as Iceberg Java's `S3URI` and pyiceberg do: `%2F` in a
//! location stays `%2F` in the object key, it is not URL-decoded. Keys object_store cannot
//! represent (empty segments as in `a//b`, `.` or `..`, control characters) are
//! [`Error::InvalidLocation`].

use object_store::path::Path;

use crate::config::Scheme;
use crate::error::{Error, Result};

/// A location split into its store and its path in that store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The kind of store.
    pub scheme: Scheme,
    /// The scheme as written (`s3a`), used when building locations back.
    pub scheme_str: String,
    /// Bucket, container (`container@account.dfs.core.windows.net` for `abfss`) or in-memory
    /// store name; empty for `file`.
    pub authority: String,
    /// The object's path inside the store.
    pub path: Path,
}

impl Location {
    /// Splits `location`. A bare absolute path (`/dir/x`) is a `file` location.
    pub fn parse(location: &str) -> Result<Location> {
        if location.starts_with('/') {
            return Ok(Location {
                scheme: Scheme::File,
                scheme_str: "file".into(),
                authority: String::new(),
                path: parse_key(location, location)?,
            });
        }
        let (scheme_str, rest) = match location.split_once("://") {
            Some(parts) => parts,
            // `file:/dir/x` (Java's `File.toURI()` form) and `memory:/x`.
            None => match location.split_once(":/") {
                Some((s, rest))
                    if matches!(
                        Scheme::from_url_scheme(s),
                        Some(Scheme::File | Scheme::Memory)
                    ) =>
                {
                    (s, rest)
                }
                _ => return Err(Error::invalid_location(location, "expected scheme://…")),
            },
        };
        let scheme = Scheme::from_url_scheme(scheme_str).ok_or_else(|| {
            Error::invalid_location(location, format!("unsupported scheme {scheme_str:?}"))
        })?;
        let (authority, key) = if scheme == Scheme::File && !location.contains("://") {
            ("", rest)
        } else {
            rest.split_once('/').unwrap_or((rest, ""))
        };
        let authority = match scheme {
            Scheme::File if authority.is_empty() || authority == "localhost" => "",
            Scheme::File => {
                return Err(Error::invalid_location(
                    location,
                    "file locations need an absolute path (file:///dir)",
                ))
            }
            Scheme::S3 | Scheme::Gcs | Scheme::Azure if authority.is_empty() => {
                return Err(Error::invalid_location(location, "missing bucket"))
            }
            _ => authority,
        };
        if authority.contains(':') && authority.contains('@') {
            return Err(Error::invalid_location(
                "<location with credentials>",
                "must not contain credentials",
            ));
        }
        Ok(Location {
            scheme,
            scheme_str: scheme_str.to_ascii_lowercase(),
            authority: authority.to_string(),
            path: parse_key(location, key)?,
        })
    }

    /// The location of `path` in the same store as `self` (its scheme and authority).
    pub fn sibling(&self, path: &Path) -> String {
        format_location(&self.scheme_str, &self.authority, path)
    }

    /// The full location of `self`.
    pub fn to_location_string(&self) -> String {
        self.sibling(&self.path)
    }
}

/// `scheme://authority/path`; for `file`, `file:///path`.
pub(crate) fn format_location(scheme_str: &str, authority: &str, path: &Path) -> String {
    format!("{scheme_str}://{authority}/{path}")
}

/// The object_store path of a key, taken literally. A trailing `/` (a "directory" prefix) is dropped.
fn parse_key(location: &str, key: &str) -> Result<Path> {
    let key = key.trim_start_matches('/').trim_end_matches('/');
    Path::parse(key)
        .map_err(|e| Error::invalid_location(location, format!("not a valid object key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(l: &str) -> (Scheme, String, String) {
        let loc = Location::parse(l).unwrap();
        (loc.scheme, loc.authority.clone(), loc.path.to_string())
    }

    #[test]
    fn splits_each_form() {
        assert_eq!(
            split("s3://bucket/a/b.parquet"),
            (Scheme::S3, "bucket".into(), "a/b.parquet".into())
        );
        assert_eq!(
            split("s3a://bucket/a/"),
            (Scheme::S3, "bucket".into(), "a".into())
        );
        assert_eq!(
            split("s3://bucket"),
            (Scheme::S3, "bucket".into(), "".into())
        );
        assert_eq!(split("gs://b/x"), (Scheme::Gcs, "b".into(), "x".into()));
        assert_eq!(
            split("abfss://c@acct.dfs.core.windows.net/p/x"),
            (
                Scheme::Azure,
                "c@acct.dfs.core.windows.net".into(),
                "p/x".into()
            )
        );
        assert_eq!(
            split("file:///tmp/x/y"),
            (Scheme::File, "".into(), "tmp/x/y".into())
        );
        assert_eq!(
            split("file:/tmp/x"),
            (Scheme::File, "".into(), "tmp/x".into())
        );
        assert_eq!(split("/tmp/x"), (Scheme::File, "".into(), "tmp/x".into()));
        assert_eq!(
            split("memory://t1/a/b"),
            (Scheme::Memory, "t1".into(), "a/b".into())
        );
        assert_eq!(
            split("memory:///a/b"),
            (Scheme::Memory, "".into(), "a/b".into())
        );
    }

    #[test]
    fn keys_are_literal() {
        let loc = Location::parse("s3://b/p/k=a%2Fb c/x.parquet").unwrap();
        assert_eq!(loc.path.as_ref(), "p/k=a%2Fb c/x.parquet");
        assert_eq!(loc.to_location_string(), "s3://b/p/k=a%2Fb c/x.parquet");
    }

    #[test]
    fn round_trips() {
        for l in [
            "s3://bucket/a/b.parquet",
            "file:///tmp/x/y",
            "memory://t/a",
            "gs://b/x/y",
            "az://c/x",
        ] {
            assert_eq!(Location::parse(l).unwrap().to_location_string(), l);
        }
        assert_eq!(
            Location::parse("/tmp/x").unwrap().to_location_string(),
            "file:///tmp/x"
        );
    }

    #[test]
    fn rejects_what_object_store_cannot_address() {
        for l in [
            "s3://b/a//c",
            "s3://b/a/../c",
            "s3:///x",
            "hdfs://nn/x",
            "relative/x",
            "file://host/x",
        ] {
            let err = Location::parse(l).unwrap_err();
            assert!(matches!(err, Error::InvalidLocation { .. }), "{l}: {err:?}");
        }
        let err = Location::parse("s3://AK:SECRET@b/x").unwrap_err();
        assert!(!format!("{err:?}").contains("SECRET"));
    }
}

//! `[format]`: how records are written into objects (declared here to keep `keys.rs` short;
//! listed in [`super::KEYS`] like every other key).

use super::{int, optional_section, Key, Kind, GIB, MIB};

// ---------------------------------------------------------------------------------------------
// [format]: how records are written into objects.

/// The objects' file format, compression and options.
pub(in crate::config) const FORMAT: Key = Key {
    path: "format",
    kind: optional_section(),
};
/// `json_array`: the product page's JSON array (`.json`); `jsonl`: one JSON object per line
/// (`.jsonl`); `parquet`: a Parquet file (`.parquet`).
pub(in crate::config) const FORMAT_TYPE: Key = Key {
    path: "format.type",
    kind: Kind::Choice {
        options: &["json_array", "jsonl", "parquet"],
        default: "json_array",
    },
};
/// Whole-object compression of the JSON formats (`.gz`, `.zst` after the extension).
pub(in crate::config) const FORMAT_COMPRESSION: Key = Key {
    path: "format.compression",
    kind: Kind::Choice {
        options: &["none", "gzip", "zstd"],
        default: "none",
    },
};
/// Level of gzip or zstd (whole objects, or Parquet's zstd pages); 0: the codec's default
/// (gzip 6, zstd 1). gzip 1 to 9, zstd 1 to 22.
pub(in crate::config) const FORMAT_COMPRESSION_LEVEL: Key = Key {
    path: "format.compression_level",
    kind: int(0, 0, 22),
};
/// A key or value that is not valid UTF-8: `dead_letter` (the product page's rule), written
/// `base64` with `keyEncoding`/`valueEncoding`, or (`parquet` only) `bytes`: binary columns.
pub(in crate::config) const FORMAT_BINARY: Key = Key {
    path: "format.binary",
    kind: Kind::Choice {
        options: &["dead_letter", "base64", "bytes"],
        default: "dead_letter",
    },
};
/// Records carry their headers (`headers`: name, value, in order).
pub(in crate::config) const FORMAT_HEADERS: Key = Key {
    path: "format.headers",
    kind: Kind::Bool { default: false },
};
/// Parquet page compression.
pub(in crate::config) const FORMAT_PARQUET_COMPRESSION: Key = Key {
    path: "format.parquet_compression",
    kind: Kind::Choice {
        options: &["zstd", "snappy", "none"],
        default: "zstd",
    },
};
/// Records per Parquet row group.
pub(in crate::config) const FORMAT_PARQUET_ROW_GROUP_RECORDS: Key = Key {
    path: "format.parquet_row_group_records",
    kind: int(100_000, 1, 10_000_000),
};
/// Bytes of keys, values and headers per Parquet row group.
pub(in crate::config) const FORMAT_PARQUET_ROW_GROUP_BYTES: Key = Key {
    path: "format.parquet_row_group_bytes",
    kind: int(8 * MIB, 64 * 1024, GIB),
};

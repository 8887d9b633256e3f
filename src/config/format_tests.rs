//! `[format]`: defaults, mapping, and the rules between its keys.

use actors::settings::{
    BinaryMode, Compression, Credentials, FormatKind, FormatSettings, ParquetCompression, Secret,
};

use super::{parse_config, ConfigErrors};

const MINIMAL: &str = "name = \"n\"\n[source]\nbootstrap_servers = \"k:1\"\ntopic = \"t\"\n\
                       [sink]\nbucket = \"bkt\"\n";

fn format_of(section: &str) -> Result<FormatSettings, Vec<String>> {
    let credentials = Credentials {
        access_key_id: Secret::new("id".to_owned()),
        access_key_secret: Secret::new("secret".to_owned()),
        session_token: None,
    };
    match parse_config(&format!("{MINIMAL}[format]\n{section}")) {
        Ok(config) => Ok(config
            .into_settings(actors::settings::CredentialSource::Static(credentials))
            .format),
        Err(ConfigErrors(errors)) => Err(errors.iter().map(ToString::to_string).collect()),
    }
}

#[test]
fn without_the_section_objects_are_the_json_array() {
    assert_eq!(format_of("").unwrap(), FormatSettings::default());
    let default = FormatSettings::default();
    assert_eq!(default.kind, FormatKind::JsonArray);
    assert_eq!(default.compression, Compression::None);
    assert_eq!(default.binary, BinaryMode::DeadLetter);
    assert!(!default.headers);
}

#[test]
fn values_are_mapped_and_levels_default_per_codec() {
    let format = format_of(
        "type = \"jsonl\"\ncompression = \"zstd\"\nbinary = \"base64\"\nheaders = true\n",
    )
    .unwrap();
    assert_eq!(format.kind, FormatKind::Jsonl);
    assert_eq!(format.compression, Compression::Zstd { level: 1 });
    assert_eq!(format.binary, BinaryMode::Base64);
    assert!(format.headers);
    let gzip = format_of("compression = \"gzip\"\n").unwrap();
    assert_eq!(gzip.compression, Compression::Gzip { level: 6 });
    let gzip = format_of("compression = \"gzip\"\ncompression_level = 9\n").unwrap();
    assert_eq!(gzip.compression, Compression::Gzip { level: 9 });
    let parquet = format_of(
        "type = \"parquet\"\ncompression_level = 19\nparquet_row_group_records = 500\n\
         parquet_row_group_bytes = 65536\n",
    )
    .unwrap();
    assert_eq!(
        parquet.parquet.compression,
        ParquetCompression::Zstd { level: 19 }
    );
    assert_eq!(parquet.parquet.row_group_records, 500);
    assert_eq!(parquet.parquet.row_group_bytes, 65536);
    let snappy = format_of("type = \"parquet\"\nparquet_compression = \"snappy\"\n").unwrap();
    assert_eq!(snappy.parquet.compression, ParquetCompression::Snappy);
}

#[test]
fn keys_that_do_not_go_together_are_named() {
    let errors = format_of("type = \"parquet\"\ncompression = \"gzip\"\n").unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("`format.compression`: must be \"none\" with `format.type = \"parquet\"`"),
        "{errors:?}"
    );
    assert!(errors[0].ends_with("got \"gzip\""), "{errors:?}");
    let errors = format_of("compression = \"gzip\"\ncompression_level = 10\n").unwrap_err();
    assert_eq!(
        errors,
        ["`format.compression_level`: must be from 0 to 9 with gzip (0: gzip's default, 6), got 10"]
    );
    let errors = format_of("compression_level = 3\n").unwrap_err();
    assert!(
        errors[0].starts_with("`format.compression_level`: applies only to gzip and zstd"),
        "{errors:?}"
    );
    let errors =
        format_of("type = \"parquet\"\nparquet_compression = \"snappy\"\ncompression_level = 3\n")
            .unwrap_err();
    assert!(
        errors[0].starts_with("`format.compression_level`: applies only"),
        "{errors:?}"
    );
    let errors = format_of("binary = \"bytes\"\n").unwrap_err();
    assert_eq!(
        errors,
        [
            "`format.binary`: \"bytes\" (binary columns) needs `format.type = \"parquet\"`: JSON \
          has no binary type, use \"base64\" with \"json_array\""
        ]
    );
    let bytes = format_of("type = \"parquet\"\nbinary = \"bytes\"\n").unwrap();
    assert_eq!(bytes.binary, BinaryMode::Bytes);
    let errors = format_of("type = \"csv\"\ncompression = \"lz4\"\n").unwrap_err();
    assert_eq!(
        errors,
        [
            "`format.type`: must be one of \"json_array\", \"jsonl\", \"parquet\", got \"csv\"",
            "`format.compression`: must be one of \"none\", \"gzip\", \"zstd\", got \"lz4\"",
        ]
    );
}

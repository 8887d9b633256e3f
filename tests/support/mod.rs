//! The real local stack for end-to-end tests: a tansu broker and an s3s-fs server on loopback,
//! started per test on free ports, plus helpers to produce records, run the connector binary and
//! read the bucket back through the S3 API.
//!
//! - [`stack`]: the [`Stack`] (the two server processes, topics and buckets on them);
//! - [`kafka`]: producing, reading, committing and describing on the stack's broker;
//! - [`bucket`]: reading the stack's bucket back (S3 client, objects, sizes);
//! - [`connector`]: the connector's config file and the [`Connector`] process;
//! - [`reconcile`]: running `kafka-oss-sink reconcile`, the exactly-once verifier;
//! - [`s3_proxy`]: the [`S3Proxy`], a fault-injecting front for the stack's s3s-fs;
//! - [`prometheus`]: HTTP GETs and the Prometheus text exposition;
//! - [`python`]: the independent reader of the format tests (`scripts/read-objects.py`);
//! - [`grafana`]: the shipped dashboard's queries and the metric names they use;
//! - [`front`]: a loopback listener serving each connection with a test's handler;
//! - [`tls`]: a test CA and a TLS terminator in front of tansu (the Kafka TLS test);
//! - [`sasl_plain`]: a SASL/PLAIN front for tansu, which has no PLAIN (the Kafka security test).
//!
//! The server binaries come from `TANSU_BIN` / `S3S_FS_BIN` (set by `scripts/test`), or from the
//! cache `scripts/lib.sh` installs into. A missing binary fails the test with a message saying
//! how to install it; it is never skipped silently.

// Each test binary uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub mod bucket;
pub mod connector;
pub mod exactly_once;
pub mod front;
pub mod grafana;
pub mod kafka;
pub mod prometheus;
pub mod python;
pub mod reconcile;
pub mod s3_proxy;
pub mod sasl_plain;
pub mod stack;
pub mod tls;

use std::net::TcpListener;

pub use connector::{
    add_source_properties, set_sink_endpoint, set_sink_keys, Connector, DEBUG_PROCESS_ALLOWANCE,
};
pub use kafka::{records_with_bad_values, Capture, Consumed, Produced, Producing, TestRecord};
pub use prometheus::{http_get, parse_exposition, sum_of, Samples};
pub use s3_proxy::S3Proxy;
pub use stack::Stack;

pub const ACCESS_KEY_ID: &str = "test-access-key";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique name per test run, so tests can share nothing by accident.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}", nanos % 1_000_000_000)
}

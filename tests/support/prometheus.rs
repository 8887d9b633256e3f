//! Plain HTTP GETs and the Prometheus text exposition format, for the admin server and a real
//! Prometheus.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

/// Samples of a scrape: `(name, labels, value)`.
pub type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

/// The sum of `name`'s samples whose labels include `labels`.
pub fn sum_of(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// A plain HTTP/1.0 GET (no client library needed): `(status, body)`.
pub fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// Samples of a Prometheus text exposition: `(name, labels, value)`.
pub fn parse_exposition(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or(f64::NAN),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let mut labels = BTreeMap::new();
                let body = rest.trim_end_matches('}');
                // Label values written by the connector hold no `",` sequences.
                for pair in body.split("\",").filter(|pair| !pair.is_empty()) {
                    let (key, value) = pair.split_once("=\"").expect("label pair");
                    labels.insert(
                        key.trim_start_matches(',').to_owned(),
                        value.trim_end_matches('"').to_owned(),
                    );
                }
                (name.to_owned(), labels)
            }
        };
        samples.push((name, labels, value));
    }
    samples
}

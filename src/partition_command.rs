//! `kafka-oss-sink pause|resume --config FILE --partition N`: asks the running connector, through
//! its admin address (`[admin] address` of the same config file), to pause or resume a
//! partition. The product page's "submit a ticket" becomes one command.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends `POST /partitions/{partition}/{action}` and returns the answer's text, or why it failed.
/// With `token` (`admin.token_file`), the request carries it as a bearer token.
pub fn send(
    address: SocketAddr,
    partition: i32,
    action: &str,
    token: Option<&crate::admin::Token>,
) -> Result<String, String> {
    if address.port() == 0 {
        return Err("admin.address has port 0 (a free port picked at start); set a fixed port to use this command".into());
    }
    // A wildcard listen address is reached through loopback.
    let target = if address.ip().is_unspecified() {
        SocketAddr::new(
            if address.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            address.port(),
        )
    } else {
        address
    };
    let unreachable = |error: std::io::Error| {
        format!("cannot reach the connector's admin address {target}: {error} (is it running with this config?)")
    };
    let mut stream =
        TcpStream::connect_timeout(&target, Duration::from_secs(5)).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(unreachable)?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {}\r\n", token.as_str()))
        .unwrap_or_default();
    let request = format!(
        "POST /partitions/{partition}/{action} HTTP/1.1\r\nHost: {target}\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(unreachable)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("unexpected answer from {target}"))?;
    let body = decode_chunked(head, body).trim().to_owned();
    if status == 200 {
        Ok(body)
    } else {
        Err(format!("HTTP {status}: {body}"))
    }
}

/// The body of a response, undoing `Transfer-Encoding: chunked` if the server used it.
fn decode_chunked(head: &str, body: &str) -> String {
    let chunked = head.lines().any(|line| {
        line.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked";
        assert_eq!(
            decode_chunked(head, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(decode_chunked("HTTP/1.1 200 OK", "plain"), "plain");
    }

    #[test]
    fn port_zero_and_unreachable_addresses_are_clear_errors() {
        let error = send("127.0.0.1:0".parse().unwrap(), 1, "resume", None).unwrap_err();
        assert!(error.contains("port 0"), "{error}");
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = send(free, 1, "resume", None).unwrap_err();
        assert!(
            error.contains(&format!(
                "cannot reach the connector's admin address {free}"
            )),
            "{error}"
        );
    }
}

//! SASL/PLAIN for the Kafka side: a front on loopback that authenticates clients with PLAIN and
//! then forwards their connection, byte for byte, to tansu ([`PlainFront`]).
//!
//! tansu 0.6.0 authenticates SCRAM only (its SASL library is built without PLAIN:
//! tests/README.md, "Broker quirks"), and ApsaraMQ for Kafka's users mostly have PLAIN. The
//! front plays the broker's part of the SASL exchange, as Kafka does since 1.0: it forwards the
//! client's `ApiVersions` to tansu and makes the answer offer `SaslHandshake` v0–v1 and
//! `SaslAuthenticate` v0–v1, answers `SaslHandshake` itself (only `PLAIN`), checks the
//! `SaslAuthenticate` token (`authzid NUL user NUL password`) against its one user, and from
//! then on copies the connection to tansu. A wrong password gets `SASL_AUTHENTICATION_FAILED`
//! (58) with a message and the connection is closed, as Kafka does; any other request before
//! authentication closes the connection. tansu advertises the front's address (or that of a
//! [`TlsFront`](super::tls::TlsFront) in front of it, for SASL_SSL), so every connection the
//! clients make goes through it.
//!
//! Owns: a [`Front`] (a thread with its own tokio runtime), which accepts and copies until
//! [`PlainFront`] is dropped.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::front::Front;

const API_VERSIONS: i16 = 18;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// A SASL/PLAIN listener on loopback for one user, forwarding to `127.0.0.1:upstream`. Stops
/// accepting when dropped.
pub struct PlainFront {
    pub port: u16,
    _front: Front,
}

impl PlainFront {
    pub fn start(upstream: u16, user: &str, password: &str) -> PlainFront {
        let credentials = std::sync::Arc::new((user.to_owned(), password.to_owned()));
        let front = Front::start(move |client| {
            let credentials = credentials.clone();
            async move {
                let _ = serve(client, upstream, &credentials.0, &credentials.1).await;
            }
        });
        PlainFront {
            port: front.port,
            _front: front,
        }
    }
}

type Io = std::io::Result<()>;

fn refused(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_owned())
}

/// One client connection: the SASL exchange, then a plain copy to the broker.
async fn serve(mut client: TcpStream, upstream: u16, user: &str, password: &str) -> Io {
    let _ = client.set_nodelay(true);
    let mut broker = TcpStream::connect(("127.0.0.1", upstream)).await?;
    let _ = broker.set_nodelay(true);
    let mut handshaken = false;
    loop {
        let request = read_frame(&mut client).await?;
        let header = RequestHeader::parse(&request)?;
        match header.api_key {
            API_VERSIONS => {
                write_frame(&mut broker, &request).await?;
                let response = read_frame(&mut broker).await?;
                let patched = offer_sasl(&response, header.api_version)?;
                write_frame(&mut client, &patched).await?;
            }
            SASL_HANDSHAKE => {
                let body = &request[header.body_offset..];
                let mechanism = read_string(body, &mut 0)?;
                let error = if mechanism == "PLAIN" {
                    0
                } else {
                    UNSUPPORTED_SASL_MECHANISM
                };
                // Response header v0; body: error_code, mechanisms [string].
                let mut out = header.correlation_id.to_be_bytes().to_vec();
                out.extend_from_slice(&error.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                put_string(&mut out, "PLAIN");
                write_frame(&mut client, &out).await?;
                if error != 0 {
                    return Err(refused("unsupported mechanism"));
                }
                handshaken = true;
            }
            SASL_AUTHENTICATE if handshaken && header.api_version <= 1 => {
                let body = &request[header.body_offset..];
                let token = read_bytes(body, &mut 0)?;
                let mut fields = token.split(|&b| b == 0);
                let (_authzid, given_user, given_password) =
                    (fields.next(), fields.next(), fields.next());
                let ok = given_user == Some(user.as_bytes())
                    && given_password == Some(password.as_bytes())
                    && fields.next().is_none();
                // Response header v0; body: error_code, error_message, auth_bytes
                // [, session_lifetime_ms (v1)].
                let mut out = header.correlation_id.to_be_bytes().to_vec();
                if ok {
                    out.extend_from_slice(&0i16.to_be_bytes());
                    out.extend_from_slice(&(-1i16).to_be_bytes());
                } else {
                    out.extend_from_slice(&SASL_AUTHENTICATION_FAILED.to_be_bytes());
                    put_string(
                        &mut out,
                        "Authentication failed: Invalid username or password",
                    );
                }
                out.extend_from_slice(&0i32.to_be_bytes());
                if header.api_version >= 1 {
                    out.extend_from_slice(&0i64.to_be_bytes());
                }
                write_frame(&mut client, &out).await?;
                if !ok {
                    return Err(refused("authentication failed"));
                }
                break;
            }
            _ => return Err(refused("request before authentication")),
        }
    }
    tokio::io::copy_bidirectional(&mut client, &mut broker).await?;
    Ok(())
}

struct RequestHeader {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    /// Where the request's body starts: after `client_id`.
    body_offset: usize,
}

impl RequestHeader {
    fn parse(request: &[u8]) -> std::io::Result<RequestHeader> {
        let short = || refused("short request");
        let api_key = i16::from_be_bytes(request.get(0..2).ok_or_else(short)?.try_into().unwrap());
        let api_version =
            i16::from_be_bytes(request.get(2..4).ok_or_else(short)?.try_into().unwrap());
        let correlation_id =
            i32::from_be_bytes(request.get(4..8).ok_or_else(short)?.try_into().unwrap());
        let client_id_len =
            i16::from_be_bytes(request.get(8..10).ok_or_else(short)?.try_into().unwrap());
        // Request header v1 (the versions answered here are not flexible; ApiVersions is
        // forwarded whole).
        let body_offset = (10 + client_id_len.max(0) as usize).min(request.len());
        Ok(RequestHeader {
            api_key,
            api_version,
            correlation_id,
            body_offset,
        })
    }
}

/// The broker's ApiVersions response (to a request of `version`), with SaslHandshake and
/// SaslAuthenticate offered at v0–v1 whatever the broker said about them. The response header
/// is v0 (correlation id only) at every version.
fn offer_sasl(response: &[u8], version: i16) -> std::io::Result<Vec<u8>> {
    let short = || refused("short ApiVersions response");
    let flexible = version >= 3;
    let mut at = 4; // correlation id
    let error_code = response.get(at..at + 2).ok_or_else(short)?;
    if error_code != [0, 0] {
        // UNSUPPORTED_VERSION: the client retries with a lower version.
        return Ok(response.to_vec());
    }
    at += 2;
    let count = if flexible {
        read_uvarint(response, &mut at)? as usize - 1
    } else {
        let n = i32::from_be_bytes(
            response
                .get(at..at + 4)
                .ok_or_else(short)?
                .try_into()
                .unwrap(),
        );
        at += 4;
        n as usize
    };
    let mut keys = Vec::with_capacity(count + 2);
    for _ in 0..count {
        let entry = response.get(at..at + 6).ok_or_else(short)?;
        let key = i16::from_be_bytes([entry[0], entry[1]]);
        let min = i16::from_be_bytes([entry[2], entry[3]]);
        let max = i16::from_be_bytes([entry[4], entry[5]]);
        at += 6;
        if flexible {
            // Each entry's tagged fields: none expected; copied as an empty set.
            let tags = read_uvarint(response, &mut at)?;
            if tags != 0 {
                return Err(refused("tagged fields in an ApiVersions entry"));
            }
        }
        if key != SASL_HANDSHAKE && key != SASL_AUTHENTICATE {
            keys.push((key, min, max));
        }
    }
    keys.push((SASL_HANDSHAKE, 0, 1));
    keys.push((SASL_AUTHENTICATE, 0, 1));
    keys.sort();
    let mut out = response[..6].to_vec();
    if flexible {
        put_uvarint(&mut out, keys.len() as u64 + 1);
    } else {
        out.extend_from_slice(&(keys.len() as i32).to_be_bytes());
    }
    for (key, min, max) in keys {
        out.extend_from_slice(&key.to_be_bytes());
        out.extend_from_slice(&min.to_be_bytes());
        out.extend_from_slice(&max.to_be_bytes());
        if flexible {
            out.push(0);
        }
    }
    // throttle_time_ms (v1+) and the tagged fields (v3+), as the broker sent them.
    out.extend_from_slice(&response[at..]);
    Ok(out)
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_i32().await?;
    if !(0..=16 << 20).contains(&len) {
        return Err(refused("frame size"));
    }
    let mut frame = vec![0; len as usize];
    stream.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn write_frame(stream: &mut TcpStream, frame: &[u8]) -> Io {
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(frame);
    stream.write_all(&out).await
}

fn read_string(buf: &[u8], at: &mut usize) -> std::io::Result<String> {
    let short = || refused("short string");
    let len = i16::from_be_bytes(buf.get(*at..*at + 2).ok_or_else(short)?.try_into().unwrap());
    *at += 2;
    let bytes = buf.get(*at..*at + len.max(0) as usize).ok_or_else(short)?;
    *at += len.max(0) as usize;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn read_bytes<'a>(buf: &'a [u8], at: &mut usize) -> std::io::Result<&'a [u8]> {
    let short = || refused("short bytes");
    let len = i32::from_be_bytes(buf.get(*at..*at + 4).ok_or_else(short)?.try_into().unwrap());
    *at += 4;
    let bytes = buf.get(*at..*at + len.max(0) as usize).ok_or_else(short)?;
    *at += len.max(0) as usize;
    Ok(bytes)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn read_uvarint(buf: &[u8], at: &mut usize) -> std::io::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at).ok_or_else(|| refused("short varint"))?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(refused("varint too long"))
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

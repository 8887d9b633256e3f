//! TLS for the Kafka side: a certificate authority and a broker certificate made for the test
//! ([`TestCa`], rcgen), and a TLS terminator in front of tansu ([`TlsFront`]).
//!
//! tansu 0.6.0 takes `--cert` and `--key` but serves plaintext anyway: its broker builds the TLS
//! acceptor and never uses it (tansu-broker 0.6.0, `broker.rs`: `let _acceptor = ...`), and the
//! two flags share one clap group, so giving both is refused (tests/README.md, "Broker quirks").
//! The terminator is the broker's TLS listener instead: it accepts TLS with the test CA's
//! certificate for `127.0.0.1` and `localhost` and forwards the plaintext, byte for byte, to
//! tansu. tansu advertises the terminator's address ([`Stack::tls`]), so every connection the
//! clients make goes through it.
//!
//! Owns: a [`Front`] (a thread with its own tokio runtime), which accepts and copies until
//! [`TlsFront`] is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::front::Front;

/// A CA made for one test, and the broker's certificate it signed.
pub struct TestCa {
    /// The CA's certificate (PEM): what the client trusts (`ssl.ca.location`).
    pub ca_pem: PathBuf,
    server_cert: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
}

impl TestCa {
    /// A new CA (written to `dir/kafka-ca.pem`) and a server certificate for `127.0.0.1` and
    /// `localhost`.
    pub fn new(dir: &Path) -> TestCa {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kafka-oss-sink test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let ca_pem = dir.join("kafka-ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        TestCa {
            ca_pem,
            server_cert: server.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        }
    }
}

/// A TLS listener on loopback that forwards to `127.0.0.1:upstream` (the broker's plaintext
/// port). Stops accepting when dropped.
pub struct TlsFront {
    pub port: u16,
    _front: Front,
}

impl TlsFront {
    pub fn start(ca: &TestCa, upstream: u16) -> TlsFront {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![ca.server_cert.clone()],
                PrivateKeyDer::Pkcs8(ca.server_key.clone_key()),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let front = Front::start(move |client| {
            let acceptor = acceptor.clone();
            async move {
                // A client that fails the handshake (it does not trust the CA) is simply
                // dropped, as a TLS broker would.
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut broker) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let _ = broker.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
            }
        });
        TlsFront {
            port: front.port,
            _front: front,
        }
    }
}

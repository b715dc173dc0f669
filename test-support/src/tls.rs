//! A throw-away certificate authority for tests: a CA certificate written to a PEM file (point
//! `SSL_CERT_FILE` at [`TestCa::ca_pem_path`]) and a server certificate for `localhost`,
//! `127.0.0.1` and `::1` signed by it, ready as a rustls [`ServerConfig`].
//!
//! Every call to [`TestCa::new`] makes fresh keys in a fresh temporary directory, removed on drop.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA and one server certificate it signed.
pub struct TestCa {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_der: Vec<u8>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_pem_path", &self.ca_pem_path())
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// Generates a CA and a server certificate valid for `localhost`, `127.0.0.1` and `::1`,
    /// and writes the CA certificate to `<tempdir>/ca.pem`.
    pub fn new() -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("generate CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "suite test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).context("self-sign CA")?;

        let server_key = KeyPair::generate().context("generate server key")?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string()]).context("server params")?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = params
            .signed_by(&server_key, &ca_cert, &ca_key)
            .context("sign server certificate")?;

        let dir = tempfile::Builder::new()
            .prefix("suite-test-ca-")
            .tempdir()
            .context("create CA temp dir")?;
        let ca_pem = ca_cert.pem();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, &ca_pem).with_context(|| format!("write {}", path.display()))?;
        Ok(Self {
            dir,
            ca_der: ca_cert.der().clone(),
            server_chain: vec![server_cert.der().clone()],
            server_key_der: server_key.serialize_der(),
        })
    }

    /// The CA certificate as a PEM file: the value for `SSL_CERT_FILE`.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA certificate in DER form (for a rustls client `RootCertStore`).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// A rustls server config presenting the server certificate, offering ALPN `h2` and
    /// `http/1.1`.
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("rustls protocol versions")?
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), key)
            .context("rustls server certificate")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

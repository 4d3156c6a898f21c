//! A throwaway certificate authority and a server certificate for the HTTPS Azurite.
//!
//! rustls rejects a self-signed certificate that is marked `CA:TRUE` when it is
//! used as the server's own certificate (`CaUsedAsEndEntity`), so this makes two:
//! a CA (`CA:TRUE`) whose certificate clients trust (`ca.pem`), and a leaf signed
//! by it (`CA:FALSE`, SAN `127.0.0.1` and `localhost`, extended key usage
//! `serverAuth`) that Azurite serves (`cert.pem`, `key.pem`). Generating them
//! takes milliseconds, so they are made anew on every run and never kept secret.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::Result;

/// Paths of the PEM files written by [`generate`].
#[derive(Debug, Clone)]
pub struct Certs {
    /// Certificate of the CA: what a client adds to its trusted roots.
    pub ca_pem: PathBuf,
    /// The server's (leaf) certificate, signed by the CA: Azurite's `--cert`.
    pub cert_pem: PathBuf,
    /// The server's private key (PKCS#8): Azurite's `--key`.
    pub key_pem: PathBuf,
}

/// Generates a fresh CA and a `127.0.0.1`/`localhost` server certificate signed by
/// it, writing `ca.pem`, `cert.pem` and `key.pem` into `dir` (created if absent).
pub fn generate(dir: &Path) -> Result<Certs> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "adls xtask test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    // An ECDSA (P-256) key: it signs the handshake, it never encrypts.
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &ca)?;

    let certs = Certs {
        ca_pem: dir.join("ca.pem"),
        cert_pem: dir.join("cert.pem"),
        key_pem: dir.join("key.pem"),
    };
    write_replacing(&certs.ca_pem, &ca_cert.pem())?;
    write_replacing(&certs.cert_pem, &leaf_cert.pem())?;
    write_replacing(&certs.key_pem, &leaf_key.serialize_pem())?;
    Ok(certs)
}

/// Writes `contents` to a temporary file beside `path`, then renames it over
/// `path`, so a reader never sees a half-written PEM file.
fn write_replacing(path: &Path, contents: &str) -> Result {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, contents).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("renaming to {}: {e}", path.display()))?;
    Ok(())
}

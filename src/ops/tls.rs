//! HTTPS on `PORT` when `TLS_CERT_FILE` and `TLS_KEY_FILE` name PEM files:
//! rustls on ring (the provider the database drivers already build), offering
//! h2 then HTTP/1.1 by ALPN, and `Strict-Transport-Security` on every
//! response. The files are read once, at start-up: one that cannot be read, or
//! a key that does not belong to the certificate, stops the service with a
//! message naming the variable.

use std::sync::Arc;

use axum::{
    http::{header, HeaderValue},
    response::Response,
    Router,
};
use rustls::{
    crypto::ring,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ServerConfig,
};
use tokio_rustls::TlsAcceptor;

use crate::settings::TlsFiles;

/// A year: browsers that saw it keep to HTTPS for that long.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// The acceptor for `files`.
///
/// # Errors
/// A message naming `TLS_CERT_FILE` or `TLS_KEY_FILE` when a file cannot be
/// read, holds nothing usable, or the key does not match the certificate.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let cert_file = &files.cert_file;
    let key_file = &files.key_file;
    let certificates = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|err| {
            format!("TLS_CERT_FILE: cannot read a certificate from `{cert_file}`: {err}")
        })?;
    if certificates.is_empty() {
        return Err(format!(
            "TLS_CERT_FILE: `{cert_file}` holds no PEM certificate"
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|err| {
        format!("TLS_KEY_FILE: cannot read a private key from `{key_file}`: {err}")
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS: {err}"))?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|err| {
            format!(
                "TLS_KEY_FILE: the key in `{key_file}` cannot serve the certificate in \
                 TLS_CERT_FILE `{cert_file}`: {err}"
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Adds `Strict-Transport-Security` to every response of `router`.
pub fn with_hsts(router: Router) -> Router {
    router.layer(axum::middleware::map_response(
        |mut response: Response| async move {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
            response
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::{path::Path, process::Command};

    use super::*;

    /// A self-signed certificate and its key, made by `openssl` in `dir`.
    fn generate(dir: &Path, name: &str) -> TlsFiles {
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        let status = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key_file)
            .arg("-out")
            .arg(&cert_file)
            .output()
            .expect("openssl runs");
        assert!(status.status.success(), "{status:?}");
        TlsFiles {
            cert_file: cert_file.to_string_lossy().into_owned(),
            key_file: key_file.to_string_lossy().into_owned(),
        }
    }

    #[test]
    fn a_certificate_and_its_key_make_an_acceptor_and_anything_else_names_the_variable() {
        let dir = std::env::temp_dir().join(format!("authgate-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let one = generate(&dir, "one");
        let other = generate(&dir, "other");
        assert!(acceptor(&one).is_ok());

        let mismatched = TlsFiles {
            cert_file: one.cert_file.clone(),
            key_file: other.key_file.clone(),
        };
        let err = acceptor(&mismatched).err().unwrap();
        assert!(err.starts_with("TLS_KEY_FILE:"), "{err}");

        let missing = TlsFiles {
            cert_file: dir.join("absent.crt").to_string_lossy().into_owned(),
            key_file: one.key_file.clone(),
        };
        let err = acceptor(&missing).err().unwrap();
        assert!(err.starts_with("TLS_CERT_FILE:"), "{err}");

        let key_as_certificate = TlsFiles {
            cert_file: one.key_file.clone(),
            key_file: one.key_file.clone(),
        };
        let err = acceptor(&key_as_certificate).err().unwrap();
        assert!(err.starts_with("TLS_CERT_FILE:"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

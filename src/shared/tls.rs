//! TLS for `amqps://` URLs: the extra CA of `AMQP_TLS_CA_FILE` (read and checked once at start),
//! the connector both services hand to amiquip (the system's CAs plus that one, hostname
//! verification on), and what an operator should read when the handshake fails.

use std::path::{Path, PathBuf};

/// The CA certificates of `AMQP_TLS_CA_FILE` (PEM, one or more), trusted beside the system's.
/// Read once at start: a replaced file takes effect at the next restart.
#[derive(Clone)]
pub struct CaFile {
    path: PathBuf,
    pem: Vec<u8>,
}

impl CaFile {
    /// Reads `path` and checks that it holds at least one PEM certificate. The error says why
    /// in words an operator can act on (it never contains the file's content).
    pub fn read(path: &Path) -> Result<CaFile, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read the file ({e})"))?;
        let ca = CaFile {
            path: path.to_owned(),
            pem,
        };
        match ca.certificates() {
            Ok(certificates) if !certificates.is_empty() => Ok(ca),
            Ok(_) => Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into()),
            Err(e) => Err(format!("not a PEM certificate file ({e})")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn certificates(&self) -> native_tls::Result<Vec<native_tls::Certificate>> {
        native_tls::Certificate::stack_from_pem(&self.pem)
    }
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile").field("path", &self.path).finish()
    }
}

/// A connector that trusts the system's CAs and those of `ca`, and verifies that the broker's
/// certificate names the host of the URL (native-tls's default; never turned off here).
pub fn connector(ca: Option<&CaFile>) -> native_tls::Result<native_tls::TlsConnector> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(ca) = ca {
        for certificate in ca.certificates()? {
            builder.add_root_certificate(certificate);
        }
    }
    builder.build()
}

/// The remedy for a failed handshake, naming the setting to check.
pub fn handshake_hint(ca: Option<&CaFile>) -> String {
    let trusted = match ca {
        Some(ca) => format!(
            "the system's CAs and AMQP_TLS_CA_FILE={}",
            ca.path.display()
        ),
        None => "the system's CAs only (AMQP_TLS_CA_FILE is unset)".to_owned(),
    };
    format!(
        "check that the broker's certificate is signed by a CA trusted here ({trusted}) and that \
         the host in AMQP_URL is a name the certificate was issued for"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("tls-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = CaFile::read(&empty).unwrap_err();
        assert!(err.contains("PEM"), "{err}");
        let err = CaFile::read(&dir.join("missing.pem")).unwrap_err();
        assert!(err.contains("cannot read the file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_hint_names_the_setting_and_the_file() {
        assert!(handshake_hint(None).contains("AMQP_TLS_CA_FILE is unset"));
        let ca = CaFile {
            path: "/etc/ca.pem".into(),
            pem: Vec::new(),
        };
        assert!(handshake_hint(Some(&ca)).contains("AMQP_TLS_CA_FILE=/etc/ca.pem"));
    }
}

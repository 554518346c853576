//! The files kube-apiserver authenticates with: a throw-away CA and its serving certificate
//! for 127.0.0.1/localhost, a service-account signing key pair, and a token file with one
//! random token for a `system:masters` user.

use std::path::{Path, PathBuf};

use super::EnvtestError;

/// The CA certificate's file name in the temp dir.
pub(super) const CA_CERT: &str = "pki/ca.crt";

/// Where everything was written, and the two secrets the caller needs again.
pub(super) struct Files {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub sa_public: PathBuf,
    pub sa_private: PathBuf,
    pub tokens: PathBuf,
    pub ca_pem: String,
    pub token: String,
}

/// Generates the keys and writes them under `dir/pki`.
pub(super) fn write(dir: &Path) -> Result<Files, EnvtestError> {
    let pki = dir.join("pki");
    std::fs::create_dir(&pki).map_err(|source| EnvtestError::WriteFile {
        path: pki.clone(),
        source,
    })?;
    let certs = testbed::tls::generate().map_err(|e| EnvtestError::GenerateKeys {
        reason: e.to_string(),
    })?;
    // ECDSA P-256: kube-apiserver signs service-account tokens with ES256.
    let sa = rcgen::KeyPair::generate().map_err(|e| EnvtestError::GenerateKeys {
        reason: e.to_string(),
    })?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let files = Files {
        ca_cert: dir.join(CA_CERT),
        server_cert: pki.join("server.crt"),
        server_key: pki.join("server.key"),
        sa_public: pki.join("sa.pub"),
        sa_private: pki.join("sa.key"),
        tokens: pki.join("tokens.csv"),
        ca_pem: certs.ca_cert_pem,
        token,
    };
    let tokens = format!("{},admin,admin,system:masters\n", files.token);
    for (path, text) in [
        (&files.ca_cert, files.ca_pem.as_str()),
        (&files.server_cert, &certs.server_cert_pem),
        (&files.server_key, &certs.server_key_pem),
        (&files.sa_public, &sa.public_key_pem()),
        (&files.sa_private, &sa.serialize_pem()),
        (&files.tokens, &tokens),
    ] {
        std::fs::write(path, text).map_err(|source| EnvtestError::WriteFile {
            path: path.clone(),
            source,
        })?;
    }
    Ok(files)
}

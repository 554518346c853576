//! The webhooks' settings: off by default, each switchable by environment (so the ConfigMap can
//! carry them), and a webhook on without a certificate refused at start.

use super::*;
use crate::settings::webhooks::{DEFAULT_WEBHOOK_ADDRESS, Validating, WebhookTls};

fn run_inputs(pairs: &[(&str, &str)]) -> Inputs {
    let mut all = vec![("BACKUP_REGISTRY", "q.io/x")];
    all.extend_from_slice(pairs);
    Inputs {
        task: Task::Run,
        ..inputs(&all)
    }
}

fn pem_files() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let s = |p: std::path::PathBuf| p.display().to_string();
    (dir, s(c), s(k))
}

#[test]
fn both_webhooks_are_off_by_default_and_nothing_is_served() {
    let s = load(&run_inputs(&[])).unwrap().settings;
    assert!(!s.webhooks.mutating);
    assert_eq!(s.webhooks.validating, Validating::Off);
    assert!(!s.webhooks.any());
    assert_eq!(s.webhooks.address, DEFAULT_WEBHOOK_ADDRESS);
    assert_eq!(s.webhooks.address.to_string(), "127.0.0.1:8443");
}

#[test]
fn each_webhook_is_switched_by_its_environment_variable() {
    let (_dir, cert, key) = pem_files();
    let s = load(&run_inputs(&[
        ("IMAGE_CLONER_MUTATING_WEBHOOK", "on"),
        ("IMAGE_CLONER_VALIDATING_WEBHOOK", "deny"),
        ("IMAGE_CLONER_WEBHOOK_ADDRESS", "0.0.0.0:8443"),
        ("IMAGE_CLONER_WEBHOOK_CERT_FILE", &cert),
        ("IMAGE_CLONER_WEBHOOK_KEY_FILE", &key),
    ]))
    .unwrap()
    .settings;
    assert!(s.webhooks.mutating);
    assert_eq!(s.webhooks.validating, Validating::Deny);
    assert_eq!(s.webhooks.tls, WebhookTls::Files);
    assert_eq!(s.webhooks.address.to_string(), "0.0.0.0:8443");
    let shown = s.to_string();
    assert!(
        shown.contains("validating_webhook          = deny"),
        "{shown}"
    );

    let s = load(&run_inputs(&[
        ("IMAGE_CLONER_VALIDATING_WEBHOOK", "warn"),
        ("IMAGE_CLONER_WEBHOOK_TLS", "self-signed"),
    ]))
    .unwrap()
    .settings;
    assert_eq!(s.webhooks.validating, Validating::Warn);
    assert!(!s.webhooks.mutating);
    assert_eq!(s.webhooks.tls, WebhookTls::SelfSigned);
}

#[test]
fn a_webhook_on_without_its_certificate_is_refused_at_start() {
    let p = problems(&run_inputs(&[("IMAGE_CLONER_MUTATING_WEBHOOK", "on")]));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("mutating_webhook = on") && p[0].contains("webhook_cert_file"),
        "{p:?}"
    );
    assert!(p[0].contains("webhook_tls = self-signed"), "{p:?}");
}

#[test]
fn bad_values_name_the_setting_and_what_is_expected() {
    let (_dir, cert, _key) = pem_files();
    for (name, value, needle) in [
        (
            "IMAGE_CLONER_MUTATING_WEBHOOK",
            "yes",
            r#"mutating_webhook = "yes""#,
        ),
        (
            "IMAGE_CLONER_VALIDATING_WEBHOOK",
            "block",
            r#""off", "warn" or "deny""#,
        ),
        ("IMAGE_CLONER_WEBHOOK_ADDRESS", "8443", "webhook_address"),
        ("IMAGE_CLONER_WEBHOOK_TLS", "acme", r#""files""#),
        (
            "IMAGE_CLONER_WEBHOOK_CERT_FILE",
            "/nonexistent.pem",
            "no such file",
        ),
        (
            "IMAGE_CLONER_WEBHOOK_KEY_FILE",
            &cert,
            "no PEM PRIVATE KEY in it",
        ),
    ] {
        let p = problems(&run_inputs(&[(name, value)]));
        assert!(
            p.iter().any(|m| m.contains(needle)),
            "{name}={value}: {p:?}"
        );
    }
}

#[test]
fn commands_other_than_run_do_not_read_them() {
    let i = Inputs {
        task: Task::Restore,
        ..inputs(&[("IMAGE_CLONER_MUTATING_WEBHOOK", "maybe")])
    };
    assert!(load(&i).is_ok());
}

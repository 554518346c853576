//! `make install` and `make uninstall` with PREFIX and DESTDIR, as a packager would run them.

use std::path::Path;
use std::process::Command;

fn make(target: &str, destdir: &Path) -> String {
    let out = Command::new("make")
        .arg("--no-print-directory")
        .arg(target)
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg("PREFIX=/usr")
        .arg(format!("BINARY={}", env!("CARGO_BIN_EXE_image-cloner")))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run make");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "make {target}: {text}");
    text
}

#[test]
fn install_puts_the_binary_the_unit_and_the_examples_under_destdir_and_uninstall_removes_them() {
    let root = tempfile::tempdir().unwrap();
    make("install", root.path());
    let binary = root.path().join("usr/bin/image-cloner");
    let unit = root.path().join("etc/systemd/system/image-cloner.service");
    let examples = root.path().join("etc/image-cloner");
    assert!(binary.is_file());
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        unit_text.contains("ExecStart=/usr/bin/image-cloner run "),
        "the unit runs the installed binary:\n{unit_text}"
    );
    assert!(examples.join("config.toml.example").is_file());
    assert!(examples.join("env.example").is_file());
    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("image-cloner "));

    make("uninstall", root.path());
    assert!(!binary.exists() && !unit.exists() && !examples.exists());
}

//! Pure argument building: every skopeo command line the project runs, from validated
//! [`ImageRef`]s, testable without running skopeo.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::image::reference::ImageRef;

/// What every skopeo invocation shares, taken from the settings.
#[derive(Debug, Clone)]
pub struct SkopeoOptions {
    pub program: PathBuf,
    /// The docker `config.json` handed to `--authfile`; `None` leaves skopeo to its own
    /// default lookup (`$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`, ...).
    pub authfile: Option<PathBuf>,
    /// `host[:port]` entries reached over plain HTTP or unverified TLS.
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (`*.crt`) for every registry.
    pub cert_dir: Option<PathBuf>,
    /// skopeo's `--tmpdir` as the argument builders write it. The runner ([`super::Skopeo`])
    /// treats the setting as a base: each run gets its own directory under this process's
    /// directory there (`None`: under `/var/tmp`), see `scratch.rs`.
    pub tmp_dir: Option<PathBuf>,
    pub retry_times: u32,
    pub copy_timeout: Duration,
    pub inspect_timeout: Duration,
}

/// How a copy treats the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// `--all --preserve-digests`: byte-identical manifests and indexes, every platform.
    Preserve,
    /// `--format v2s2`: a schema-1 source rewritten to schema 2 (its digest changes).
    ConvertToV2s2,
}

/// The `docker://` argument for an image. A reference with both a tag and a digest is given by
/// its digest, since skopeo refuses the pair.
pub fn transport(image: &ImageRef) -> String {
    match image.digest() {
        Some(d) => format!("docker://{}@{d}", image.repository()),
        None => format!("docker://{}:{}", image.repository(), image.tag_or_latest()),
    }
}

fn insecure(options: &SkopeoOptions, image: &ImageRef) -> bool {
    crate::registry::is_insecure(&options.insecure_registries, image.domain())
}

fn global_args(options: &SkopeoOptions, out: &mut Vec<OsString>) {
    if let Some(dir) = &options.tmp_dir {
        out.push("--tmpdir".into());
        out.push(dir.into());
    }
}

fn retry_and_auth(options: &SkopeoOptions, out: &mut Vec<OsString>) {
    out.push(format!("--retry-times={}", options.retry_times).into());
    if let Some(file) = &options.authfile {
        out.push("--authfile".into());
        out.push(file.into());
    }
}

/// Arguments of `skopeo inspect --raw`, which prints the manifest's exact bytes.
pub fn inspect_args(options: &SkopeoOptions, image: &ImageRef) -> Vec<OsString> {
    inspect_with(options, image, true)
}

/// `skopeo inspect --raw --no-creds`: what anyone may read, without the docker config.
pub fn anonymous_inspect_args(options: &SkopeoOptions, image: &ImageRef) -> Vec<OsString> {
    inspect_with(options, image, false)
}

fn inspect_with(options: &SkopeoOptions, image: &ImageRef, credentials: bool) -> Vec<OsString> {
    let mut out = Vec::new();
    global_args(options, &mut out);
    out.push("inspect".into());
    out.push("--raw".into());
    if credentials {
        retry_and_auth(options, &mut out);
    } else {
        out.push(format!("--retry-times={}", options.retry_times).into());
        out.push("--no-creds".into());
    }
    if insecure(options, image) {
        out.push("--tls-verify=false".into());
    }
    if let Some(dir) = &options.cert_dir {
        out.push("--cert-dir".into());
        out.push(dir.into());
    }
    out.push(transport(image).into());
    out
}

/// Arguments of `skopeo copy` from `source` to `dest`, writing the pushed digest to `digestfile`.
pub fn copy_args(
    options: &SkopeoOptions,
    source: &ImageRef,
    dest: &ImageRef,
    format: CopyFormat,
    digestfile: &Path,
) -> Vec<OsString> {
    let mut out = Vec::new();
    global_args(options, &mut out);
    out.push("copy".into());
    out.push("--quiet".into());
    match format {
        CopyFormat::Preserve => {
            out.push("--all".into());
            out.push("--preserve-digests".into());
        }
        CopyFormat::ConvertToV2s2 => {
            out.push("--format".into());
            out.push("v2s2".into());
        }
    }
    out.push("--digestfile".into());
    out.push(digestfile.into());
    retry_and_auth(options, &mut out);
    if insecure(options, source) {
        out.push("--src-tls-verify=false".into());
    }
    if insecure(options, dest) {
        out.push("--dest-tls-verify=false".into());
    }
    if let Some(dir) = &options.cert_dir {
        out.push("--src-cert-dir".into());
        out.push(dir.into());
        out.push("--dest-cert-dir".into());
        out.push(dir.into());
    }
    out.push(transport(source).into());
    out.push(transport(dest).into());
    out
}

/// A skopeo command as shown in errors and logs. It holds paths and image names only: no
/// credential is ever on skopeo's command line (they stay in the authfile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine(pub String);

impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl CommandLine {
    pub(crate) fn new(program: &Path, args: &[OsString]) -> Self {
        let mut s = program.display().to_string();
        for a in args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        CommandLine(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SkopeoOptions {
        SkopeoOptions {
            program: "/usr/bin/skopeo".into(),
            authfile: Some("/etc/image-cloner/docker.json".into()),
            insecure_registries: vec!["127.0.0.1:5000".into()],
            cert_dir: None,
            tmp_dir: None,
            retry_times: 3,
            copy_timeout: Duration::from_secs(60),
            inspect_timeout: Duration::from_secs(5),
        }
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn inspect_reads_the_raw_manifest_with_the_authfile() {
        let args = strings(inspect_args(&options(), &image("nginx:1.27")));
        assert_eq!(
            args,
            [
                "inspect",
                "--raw",
                "--retry-times=3",
                "--authfile",
                "/etc/image-cloner/docker.json",
                "docker://docker.io/library/nginx:1.27"
            ]
        );
    }

    #[test]
    fn the_anonymous_inspect_has_no_authfile_and_no_credentials() {
        let args = strings(anonymous_inspect_args(
            &options(),
            &image("127.0.0.1:5000/a:1"),
        ));
        assert_eq!(
            args,
            [
                "inspect",
                "--raw",
                "--retry-times=3",
                "--no-creds",
                "--tls-verify=false",
                "docker://127.0.0.1:5000/a:1"
            ]
        );
    }

    #[test]
    fn copy_preserves_digests_of_every_platform() {
        let args = strings(copy_args(
            &options(),
            &image(&format!("ghcr.io/x/app@{D}")),
            &image("quay.io/backup/ghcr.io_x_app:latest"),
            CopyFormat::Preserve,
            Path::new("/tmp/d"),
        ));
        assert_eq!(
            args,
            [
                "copy",
                "--quiet",
                "--all",
                "--preserve-digests",
                "--digestfile",
                "/tmp/d",
                "--retry-times=3",
                "--authfile",
                "/etc/image-cloner/docker.json",
                &format!("docker://ghcr.io/x/app@{D}"),
                "docker://quay.io/backup/ghcr.io_x_app:latest"
            ]
        );
    }

    #[test]
    fn schema1_sources_are_converted_not_preserved() {
        let args = strings(copy_args(
            &options(),
            &image("old/app:1"),
            &image("quay.io/b/x:1"),
            CopyFormat::ConvertToV2s2,
            Path::new("/tmp/d"),
        ));
        assert!(args.windows(2).any(|w| w == ["--format", "v2s2"]));
        assert!(!args.contains(&"--preserve-digests".to_owned()));
        assert!(!args.contains(&"--all".to_owned()));
    }

    #[test]
    fn tag_and_digest_sources_are_read_by_digest_alone() {
        assert_eq!(
            transport(&image(&format!("nginx:1.27@{D}"))),
            format!("docker://docker.io/library/nginx@{D}")
        );
        assert_eq!(
            transport(&image("localhost:5000/a")),
            "docker://localhost:5000/a:latest"
        );
    }

    #[test]
    fn tls_is_relaxed_only_for_the_listed_registries_and_per_side() {
        let args = strings(copy_args(
            &options(),
            &image("127.0.0.1:5000/src:1"),
            &image("quay.io/b/x:1"),
            CopyFormat::Preserve,
            Path::new("/tmp/d"),
        ));
        assert!(args.contains(&"--src-tls-verify=false".to_owned()));
        assert!(!args.iter().any(|a| a.starts_with("--dest-tls-verify")));
        let args = strings(inspect_args(&options(), &image("quay.io/b/x:1")));
        assert!(!args.iter().any(|a| a.contains("tls-verify")));
    }

    #[test]
    fn cert_dir_tmpdir_and_anonymous_access() {
        let mut o = options();
        o.cert_dir = Some("/etc/image-cloner/certs".into());
        o.tmp_dir = Some("/var/cache/image-cloner".into());
        o.authfile = None;
        let args = strings(copy_args(
            &o,
            &image("a/b:1"),
            &image("quay.io/b/x:1"),
            CopyFormat::Preserve,
            Path::new("/tmp/d"),
        ));
        assert_eq!(&args[..3], ["--tmpdir", "/var/cache/image-cloner", "copy"]);
        assert!(
            args.windows(2)
                .any(|w| w == ["--src-cert-dir", "/etc/image-cloner/certs"])
        );
        assert!(
            args.windows(2)
                .any(|w| w == ["--dest-cert-dir", "/etc/image-cloner/certs"])
        );
        assert!(!args.contains(&"--authfile".to_owned()));
    }

    #[test]
    fn no_image_argument_can_be_read_as_a_flag() {
        for s in ["a", "localhost/x:1", &format!("x@{D}")] {
            let args = strings(inspect_args(&options(), &image(s)));
            assert!(args.last().unwrap().starts_with("docker://"));
        }
    }
}

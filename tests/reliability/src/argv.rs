//! What the recording skopeo saw: every argument list image-cloner gave skopeo, checked
//! against the promise that no input becomes a flag and no transport but `docker://` is used.
//!
//! image-cloner's own flags are a fixed set; everything else on the line comes from input
//! (settings, workloads, the command line): the values of path flags and the image
//! positionals. So an argument is a violation when it starts with `-` and is not one of the
//! known flags, when a known flag's value starts with `-`, or when a positional is not
//! `docker://` followed by something that does not start with `-`.

use std::path::Path;

/// Flags image-cloner passes, and whether each takes the next argument as its value. A flag
/// written `--name=value` is looked up by `--name`.
const FLAGS: &[(&str, bool)] = &[
    ("--tmpdir", true),
    ("--quiet", false),
    ("--all", false),
    ("--preserve-digests", false),
    ("--format", true),
    ("--digestfile", true),
    ("--retry-times", false),
    ("--authfile", true),
    ("--tls-verify", false),
    ("--src-tls-verify", false),
    ("--dest-tls-verify", false),
    ("--cert-dir", true),
    ("--src-cert-dir", true),
    ("--dest-cert-dir", true),
    ("--raw", false),
    ("--no-creds", false),
];

/// The subcommands image-cloner runs.
const SUBCOMMANDS: &[&str] = &["copy", "inspect"];

/// The argument lists recorded in `log` (none when it does not exist), and the problems with
/// lines that could not be read (a non-UTF-8 argument is one).
pub fn read(log: &Path) -> (Vec<Vec<String>>, Vec<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut lists = Vec::new();
    let mut problems = Vec::new();
    for line in text.lines() {
        let parsed: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| {
                v.as_array()?
                    .iter()
                    .map(|a| a.as_str().map(str::to_owned))
                    .collect()
            });
        match parsed {
            Some(args) => lists.push(args),
            None => problems.push(format!("an argument list that is not UTF-8 text: {line}")),
        }
    }
    (lists, problems)
}

/// The violations in one argument list, each naming the argument.
pub fn violations(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen_subcommand = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a.starts_with('-') {
            let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
            match FLAGS.iter().find(|(f, _)| *f == name) {
                None => out.push(format!("{a:?} is not a flag image-cloner passes")),
                Some((_, true)) if !a.contains('=') => match args.get(i) {
                    Some(v) if v.starts_with('-') => {
                        out.push(format!("the value of {a} starts with '-': {v:?}"));
                        i += 1;
                    }
                    Some(_) => i += 1,
                    None => out.push(format!("{a} has no value")),
                },
                Some(_) => {}
            }
            continue;
        }
        if !seen_subcommand {
            seen_subcommand = true;
            if !SUBCOMMANDS.contains(&a.as_str()) {
                out.push(format!("{a:?} is not a subcommand image-cloner runs"));
            }
            continue;
        }
        match a.strip_prefix("docker://") {
            Some(rest) if !rest.starts_with('-') && !rest.chars().any(char::is_control) => {}
            _ => out.push(format!(
                "the image argument {a:?} is not docker://<reference>"
            )),
        }
    }
    if !seen_subcommand {
        out.push("no subcommand".to_owned());
    }
    out
}

/// Every violation in `log`, each with its argument list.
pub fn check(log: &Path) -> (usize, Vec<String>) {
    let (lists, mut problems) = read(log);
    for args in &lists {
        for v in violations(args) {
            problems.push(format!("{v} in: skopeo {}", args.join(" ")));
        }
    }
    (lists.len(), problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        violations(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn image_cloners_own_lines_pass() {
        assert!(
            v(&[
                "--tmpdir",
                "/t/run",
                "copy",
                "--quiet",
                "--all",
                "--preserve-digests",
                "--digestfile",
                "/t/run/digest",
                "--retry-times=0",
                "--src-tls-verify=false",
                "docker://127.0.0.1:5000/a:1",
                "docker://127.0.0.1:5001/m/a:1",
            ])
            .is_empty()
        );
    }

    /// The oracle knows every flag the argument builders write, each option set: a flag
    /// added to them and not here failed only the full suite's hostile-input scenario before
    /// (`--no-creds`, the anonymous inspect of the private-source screen, was found that way).
    #[test]
    fn every_argument_list_the_builders_make_passes() {
        use image_cloner::image::reference::ImageRef;
        use image_cloner::registry::skopeo::{
            CopyFormat, SkopeoOptions, anonymous_inspect_args, copy_args, inspect_args,
        };
        let options = SkopeoOptions {
            program: "skopeo".into(),
            authfile: Some("/etc/image-cloner/config.json".into()),
            insecure_registries: vec!["127.0.0.1:5000".into(), "127.0.0.1:5001".into()],
            cert_dir: Some("/etc/image-cloner/certs".into()),
            tmp_dir: Some("/var/tmp/image-cloner".into()),
            retry_times: 3,
            copy_timeout: std::time::Duration::from_secs(60),
            inspect_timeout: std::time::Duration::from_secs(10),
        };
        let source = ImageRef::parse("127.0.0.1:5000/team/app:1.0").expect("a reference");
        let dest = ImageRef::parse("127.0.0.1:5001/mirror/app:1.0").expect("a reference");
        let digestfile = std::path::Path::new("/var/tmp/image-cloner/run/digest");
        let text = |args: Vec<std::ffi::OsString>| -> Vec<String> {
            args.into_iter()
                .map(|a| a.into_string().expect("UTF-8"))
                .collect()
        };
        let lists = [
            copy_args(&options, &source, &dest, CopyFormat::Preserve, digestfile),
            copy_args(
                &options,
                &source,
                &dest,
                CopyFormat::ConvertToV2s2,
                digestfile,
            ),
            inspect_args(&options, &source),
            anonymous_inspect_args(&options, &source),
        ];
        for args in lists {
            let args = text(args);
            assert_eq!(violations(&args), Vec::<String>::new(), "{args:?}");
        }
    }

    #[test]
    fn input_as_a_flag_or_another_transport_is_caught() {
        assert_eq!(v(&["inspect", "--raw", "--help"]).len(), 1);
        assert_eq!(v(&["inspect", "oci:/tmp/x"]).len(), 1);
        assert_eq!(v(&["inspect", "docker://-x"]).len(), 1);
        assert_eq!(v(&["--tmpdir", "-rf", "inspect", "docker://a/b"]).len(), 1);
        assert_eq!(v(&["--help"]).len(), 2);
    }
}

//! `image-cloner copy IMAGE...`: the bastion operator's one-off clone, through the same mirror
//! service the daemon uses, so its output is a preview of what the daemon would pin.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::image::reference::ImageRef;
use crate::registry::mirror::{Mirror, MirroredImage, Outcome, Unobserved};
use crate::settings::Settings;

/// One requested image and what became of it.
#[derive(Debug)]
pub struct CopyRow {
    pub input: String,
    pub result: Result<MirroredImage, String>,
}

/// `copy`: clones the images, prints the report; `false` when one failed.
pub async fn run(settings: &Settings, images: &[String]) -> bool {
    crate::registry::skopeo::clean_at_start(settings.tmp_dir.as_deref());
    let mirror = settings.mirror(Arc::new(Unobserved));
    let rows = copy(&mirror, images).await;
    print!("{}", render(&rows));
    rows.iter().all(|r| r.result.is_ok())
}

/// Clones every image concurrently (the mirror applies the copy limit) and returns the rows in
/// the order asked.
pub async fn copy(mirror: &Mirror, images: &[String]) -> Vec<CopyRow> {
    let tasks: Vec<_> = images
        .iter()
        .map(|input| {
            let mirror = mirror.clone();
            let input = input.clone();
            tokio::spawn(async move {
                let result = match ImageRef::parse(&input) {
                    Ok(image) => mirror.ensure(&image).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                CopyRow { input, result }
            })
        })
        .collect();
    let mut rows = Vec::with_capacity(tasks.len());
    for (task, input) in tasks.into_iter().zip(images) {
        rows.push(task.await.unwrap_or_else(|e| CopyRow {
            input: input.clone(),
            result: Err(format!("internal error: {e}")),
        }));
    }
    rows
}

/// The report for people: one line per image, then a count.
pub fn render(rows: &[CopyRow]) -> String {
    let mut out = String::new();
    let (mut copied, mut present, mut failed) = (0, 0, 0);
    for row in rows {
        match &row.result {
            Ok(m) => {
                let what = match m.outcome {
                    Outcome::Copied => {
                        copied += 1;
                        "copied"
                    }
                    Outcome::AlreadyInBackup => {
                        present += 1;
                        "already in backup"
                    }
                    Outcome::SourceInBackupRegistry => {
                        present += 1;
                        "is in the backup registry"
                    }
                    Outcome::Retagged => {
                        present += 1;
                        "already in backup under its old digest tag; tagged anew"
                    }
                };
                let converted = if m.converted {
                    "; converted from schema 1 to schema 2, so the digest differs from the source"
                } else {
                    ""
                };
                let _ = writeln!(out, "{} → {} ({what}{converted})", row.input, m.backup_ref);
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(out, "{} → error: {e}", row.input);
            }
        }
    }
    let _ = writeln!(
        out,
        "{} image(s): {copied} copied, {present} already in backup, {failed} failed",
        rows.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::reference::Digest;

    #[test]
    fn the_report_names_each_image_and_counts() {
        let digest = Digest::sha256_of(b"x");
        let ok = MirroredImage {
            source: ImageRef::parse("nginx:1.27").unwrap(),
            backup: ImageRef::parse("quay.io/b/docker.io_library_nginx:1.27").unwrap(),
            backup_ref: format!("quay.io/b/docker.io_library_nginx:1.27@{digest}"),
            digest,
            converted: true,
            outcome: Outcome::Copied,
        };
        let rows = [
            CopyRow {
                input: "nginx:1.27".into(),
                result: Ok(ok),
            },
            CopyRow {
                input: "Bad".into(),
                result: Err("invalid image reference \"Bad\"".into()),
            },
        ];
        let text = render(&rows);
        assert!(text.contains("nginx:1.27 → quay.io/b/docker.io_library_nginx:1.27@sha256:"));
        assert!(text.contains("(copied; converted from schema 1"));
        assert!(text.contains("Bad → error: invalid image reference"));
        assert!(text.ends_with("2 image(s): 1 copied, 0 already in backup, 1 failed\n"));
    }
}

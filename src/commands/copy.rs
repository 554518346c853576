//! `image-cloner copy IMAGE...`: the bastion operator's one-off clone, through the same mirror
//! service the daemon uses, so its output is a preview of what the daemon would pin. The
//! source-registry policy holds here as in the daemon: an image left out by `source_include` /
//! `source_exclude`, or private on a registry `copy_private_sources` does not allow, is not
//! copied (and the command fails, since what was asked for was not done).

use std::fmt::Write as _;
use std::sync::Arc;

use crate::image::reference::ImageRef;
use crate::registry::client::Visibility;
use crate::registry::mirror::{Mirror, MirroredImage, Outcome, Unobserved};
use crate::settings::Settings;
use crate::source_policy::SourcePolicy;

/// One requested image and what became of it.
#[derive(Debug)]
pub struct CopyRow {
    pub input: String,
    pub result: Result<MirroredImage, NotCopied>,
}

/// Why an image was not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCopied {
    /// The source-registry policy leaves it out (the decision and why).
    Policy(String),
    Failed(String),
}

/// `copy`: clones the images, prints the report; `false` when one was not copied.
pub async fn run(settings: &Settings, images: &[String]) -> bool {
    crate::registry::skopeo::clean_at_start(settings.tmp_dir.as_deref());
    let mirror = settings.mirror(Arc::new(Unobserved));
    let rows = copy(&mirror, &settings.sources, images).await;
    print!("{}", render(&rows));
    rows.iter().all(|r| r.result.is_ok())
}

/// One image: the policy's filters, then (unless its registry's private images may be copied)
/// whether it is public, then the mirror.
async fn copy_one(
    mirror: &Mirror,
    policy: &SourcePolicy,
    input: &str,
) -> Result<MirroredImage, NotCopied> {
    let image = ImageRef::parse(input).map_err(|e| NotCopied::Failed(e.to_string()))?;
    // As in planning: an image already under the backup registry is used as it is.
    if !mirror.options().backup.contains(&image) {
        if let Some(why) = policy.excluded(&image) {
            return Err(NotCopied::Policy(format!("excluded ({why})")));
        }
        if policy.must_check_privacy(&image) {
            match mirror.visibility(&image).await {
                Ok(Visibility::Public) => {}
                Ok(Visibility::Private) => {
                    return Err(NotCopied::Policy(
                        "private-source (its registry serves it only with credentials; list the registry in copy_private_sources to copy it anyway)".into(),
                    ));
                }
                Err(e) => return Err(NotCopied::Failed(e.to_string())),
            }
        }
    }
    mirror
        .ensure(&image)
        .await
        .map_err(|e| NotCopied::Failed(e.to_string()))
}

/// Clones every image concurrently (the mirror applies the copy limit) and returns the rows in
/// the order asked.
pub async fn copy(mirror: &Mirror, policy: &SourcePolicy, images: &[String]) -> Vec<CopyRow> {
    let tasks: Vec<_> = images
        .iter()
        .map(|input| {
            let (mirror, policy) = (mirror.clone(), policy.clone());
            let input = input.clone();
            tokio::spawn(async move {
                let result = copy_one(&mirror, &policy, &input).await;
                CopyRow { input, result }
            })
        })
        .collect();
    let mut rows = Vec::with_capacity(tasks.len());
    for (task, input) in tasks.into_iter().zip(images) {
        rows.push(task.await.unwrap_or_else(|e| CopyRow {
            input: input.clone(),
            result: Err(NotCopied::Failed(format!("internal error: {e}"))),
        }));
    }
    rows
}

/// The report for people: one line per image, then a count.
pub fn render(rows: &[CopyRow]) -> String {
    let mut out = String::new();
    let (mut copied, mut present, mut failed, mut left_out) = (0, 0, 0, 0);
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
            Err(NotCopied::Policy(why)) => {
                left_out += 1;
                let _ = writeln!(out, "{} → not copied: {why}", row.input);
            }
            Err(NotCopied::Failed(e)) => {
                failed += 1;
                let _ = writeln!(out, "{} → error: {e}", row.input);
            }
        }
    }
    let _ = write!(
        out,
        "{} image(s): {copied} copied, {present} already in backup, {failed} failed",
        rows.len()
    );
    if left_out > 0 {
        let _ = write!(out, ", {left_out} not copied by the source-registry policy");
    }
    out.push('\n');
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
                result: Err(NotCopied::Failed("invalid image reference \"Bad\"".into())),
            },
            CopyRow {
                input: "corp.internal/x:1".into(),
                result: Err(NotCopied::Policy(
                    "excluded (matches source_exclude \"*.internal/*\")".into(),
                )),
            },
        ];
        let text = render(&rows);
        assert!(text.contains("nginx:1.27 → quay.io/b/docker.io_library_nginx:1.27@sha256:"));
        assert!(text.contains("(copied; converted from schema 1"));
        assert!(text.contains("Bad → error: invalid image reference"));
        assert!(text.contains(
            "corp.internal/x:1 → not copied: excluded (matches source_exclude \"*.internal/*\")"
        ));
        assert!(text.ends_with(
            "3 image(s): 1 copied, 0 already in backup, 1 failed, 1 not copied by the source-registry policy\n"
        ));
    }
}

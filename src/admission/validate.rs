//! The validating webhook's rule, pure: which images of a reviewed object are not in the backup
//! registry, and what the answer says about them.
//!
//! An image offends when the daemon would copy it (`Clone`, `GitOpsManaged`, `Immutable`) and
//! no verified copy exists yet. The daemon's exemptions hold (ignored namespaces, opt-outs,
//! its own namespace, images already in the backup), and on UPDATE an image the object already
//! ran is not judged again, so that scaling or relabelling a workload admitted before the
//! webhook existed is never refused. `warn` admits with one warning per image; `deny` refuses,
//! naming each image and the backup reference it will have, and says what to do: the copy is
//! queued, so the same apply succeeds once it is verified.

use std::collections::BTreeMap;

use crate::image::reference::ImageRef;
use crate::reconcile::plan::ContainerPlan;
use crate::settings::webhooks::Validating;

/// One image that is not in the backup registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offender {
    pub container: String,
    pub image: String,
    /// The backup reference its copy will have (by tag: its digest is not known yet).
    pub backup: String,
}

/// The validating webhook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Admitted, with these warnings (kubectl prints each as `Warning: ...`).
    Warn(Vec<String>),
    /// Refused with this message.
    Deny(String),
}

/// The images of `plans` that would be copied and have no verified copy; on UPDATE, not those
/// the old object already ran in the same container (`old`: container name → image).
pub fn offenders(
    plans: &[ContainerPlan],
    verified: &dyn Fn(&ImageRef) -> bool,
    backup_of: &dyn Fn(&ImageRef) -> Option<String>,
    old: Option<&BTreeMap<String, String>>,
) -> Vec<Offender> {
    plans
        .iter()
        .filter(|p| p.decision.copies())
        .filter(|p| old.is_none_or(|o| o.get(&p.container.name) != Some(&p.container.image)))
        .filter_map(|p| {
            let source = p.source.as_ref()?;
            if verified(source) {
                return None;
            }
            Some(Offender {
                container: p.container.name.clone(),
                image: p.container.image.clone(),
                backup: backup_of(source).unwrap_or_else(|| "(no valid backup name)".to_owned()),
            })
        })
        .collect()
}

/// What `mode` answers for these offenders.
pub fn verdict(mode: Validating, offenders: &[Offender]) -> Verdict {
    if offenders.is_empty() {
        return Verdict::Allow;
    }
    match mode {
        Validating::Off => Verdict::Allow,
        Validating::Warn => Verdict::Warn(offenders.iter().map(warning).collect()),
        Validating::Deny => Verdict::Deny(denial(offenders)),
    }
}

fn warning(o: &Offender) -> String {
    format!(
        "image-cloner: container {:?} runs {}, which is not in the backup registry; its copy {} is queued",
        o.container, o.image, o.backup
    )
}

fn denial(offenders: &[Offender]) -> String {
    let images: Vec<String> = offenders
        .iter()
        .map(|o| {
            format!(
                "container {:?} runs {} (its backup copy will be {})",
                o.container, o.image, o.backup
            )
        })
        .collect();
    format!(
        "image-cloner: {} image(s) not in the backup registry: {}. Their copies are queued: the same apply succeeds once they are verified (usually within a minute). To copy a release ahead of time: image-cloner copy IMAGE...",
        offenders.len(),
        images.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::Decision;
    use crate::workload::Container;

    fn plan(name: &str, image: &str, decision: Decision) -> ContainerPlan {
        ContainerPlan {
            container: Container {
                name: name.into(),
                image: image.into(),
                init: false,
                index: 0,
            },
            source: ImageRef::parse(image).ok(),
            decision,
        }
    }

    fn backup(s: &ImageRef) -> Option<String> {
        Some(format!("backup.example/mirror/{}", s.path()))
    }

    #[test]
    fn only_copied_images_without_a_verified_copy_offend() {
        let plans = [
            plan("web", "nginx:1.27", Decision::Clone),
            plan("ready", "redis:7", Decision::Clone),
            plan("job", "busybox:1", Decision::Immutable),
            plan(
                "mine",
                "backup.example/mirror/x:1",
                Decision::AlreadyInBackup,
            ),
            plan("skip", "alpine:3", Decision::OptOut),
        ];
        let verified = |s: &ImageRef| s.path() == "library/redis";
        let found = offenders(&plans, &verified, &backup, None);
        let names: Vec<&str> = found.iter().map(|o| o.container.as_str()).collect();
        assert_eq!(names, ["web", "job"]);
        assert_eq!(found[0].backup, "backup.example/mirror/library/nginx");
    }

    #[test]
    fn an_update_judges_only_images_it_changes() {
        let plans = [
            plan("web", "nginx:1.27", Decision::Clone),
            plan("side", "envoy:1.30", Decision::Clone),
        ];
        let old = BTreeMap::from([
            ("web".to_owned(), "nginx:1.27".to_owned()),
            ("side".to_owned(), "envoy:1.29".to_owned()),
        ]);
        let found = offenders(&plans, &|_| false, &backup, Some(&old));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].image, "envoy:1.30");
    }

    #[test]
    fn warn_warns_per_image_and_deny_names_each_image_its_backup_and_what_to_do() {
        let found = vec![
            Offender {
                container: "web".into(),
                image: "nginx:1.27".into(),
                backup: "b.example/m/nginx:1.27".into(),
            },
            Offender {
                container: "side".into(),
                image: "envoy:1.30".into(),
                backup: "b.example/m/envoy:1.30".into(),
            },
        ];
        assert_eq!(verdict(Validating::Deny, &[]), Verdict::Allow);
        assert_eq!(verdict(Validating::Off, &found), Verdict::Allow);
        let Verdict::Warn(w) = verdict(Validating::Warn, &found) else {
            panic!("warn mode warns");
        };
        assert_eq!(w.len(), 2);
        assert!(w[0].contains("nginx:1.27") && w[0].contains("b.example/m/nginx:1.27 is queued"));
        let Verdict::Deny(message) = verdict(Validating::Deny, &found) else {
            panic!("deny mode denies");
        };
        for needle in [
            "2 image(s) not in the backup registry",
            "container \"web\" runs nginx:1.27 (its backup copy will be b.example/m/nginx:1.27)",
            "container \"side\" runs envoy:1.30",
            "copies are queued",
            "the same apply succeeds once they are verified",
            "image-cloner copy",
        ] {
            assert!(message.contains(needle), "{needle:?} not in {message}");
        }
    }
}

//! How pods would pull the copies, in `plan`: decided as `run` decides it (a pull secret, the
//! nodes' own credentials, or an anonymous manifest HEAD of the backup registry), then shown
//! as a line under the table and, when they could not, as `backup not pullable` rows.

use crate::commands::plan::PlanRow;
use crate::pullsecret::{AnonymousCheck, Verdict};
use crate::reconcile::plan::Decision;
use crate::reconcile::pull::{FIX, PullAccess};
use crate::settings::Settings;

/// The rows once it is known how pods would pull (pure): when they could not, what `run`
/// would patch is copied only.
pub fn apply_pull(rows: &mut [PlanRow], access: &PullAccess) {
    let PullAccess::NotPullable { why } = access else {
        return;
    };
    for row in rows.iter_mut().filter(|r| r.patch) {
        row.patch = false;
        row.decision = Decision::BackupNotPullable { why: why.clone() };
        row.detail = Some(format!("{why}; to fix it, {FIX}"));
    }
}

/// The line under the table saying how pods would pull the copies.
pub fn pull_line(access: &PullAccess, backup: &str) -> String {
    match access {
        PullAccess::Secret(name) => format!(
            "pods pull from {backup} with the pull secret {name}, created in each namespace before its first patch"
        ),
        PullAccess::Anonymous => {
            format!("pods pull from {backup} without credentials: it answers anonymous pulls")
        }
        PullAccess::NodeCredentials => {
            format!("pods pull from {backup} with the nodes' own credentials (pull_check = off)")
        }
        PullAccess::NotPullable { why } => format!(
            "pods could not pull from {backup} ({why}): workloads are copied, not patched; to fix it, {FIX}"
        ),
        PullAccess::Unknown { error } => format!(
            "whether pods could pull from {backup} is not known ({error}): run patches nothing until it is"
        ),
    }
}

/// How pods would pull, as `run` decides it; the registry is asked only when it matters.
pub async fn pull_access(settings: &Settings, rows: &[PlanRow]) -> Option<PullAccess> {
    if !rows.iter().any(|r| r.patch) {
        return None;
    }
    if let Some(name) = &settings.pull_secret {
        return Some(PullAccess::Secret(name.clone()));
    }
    if !settings.pull_check {
        return Some(PullAccess::NodeCredentials);
    }
    // A copy known to exist says the most; before any copy, the first one run would make.
    let existing = rows
        .iter()
        .find(|r| r.decision == Decision::AlreadyInBackup)
        .map(|r| (r.image.clone(), true));
    let (reference, exists) = existing.or_else(|| {
        let row = rows.iter().find(|r| r.patch)?;
        Some((row.backup.clone()?, false))
    })?;
    let check = AnonymousCheck::new(settings.anonymous_head().ok());
    let verdict = if exists {
        check.check(&reference).await
    } else {
        check.probe(&reference).await
    };
    Some(match verdict {
        Verdict::Pullable => PullAccess::Anonymous,
        Verdict::Refused(why) => PullAccess::NotPullable {
            why: format!("{why}, and no pull secret is provisioned"),
        },
        Verdict::Unknown(error) => PullAccess::Unknown { error },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, decision: Decision) -> PlanRow {
        PlanRow {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: name.into(),
            container: "app".into(),
            image: "nginx:1.27".into(),
            backup: Some("quay.io/b/docker.io_library_nginx:1.27".into()),
            patch: decision == Decision::Clone,
            decision,
            detail: None,
            in_backup: None,
        }
    }

    #[test]
    fn what_run_would_patch_is_copied_only_when_pods_could_not_pull() {
        let rows = vec![
            row("web", Decision::Clone),
            row("done", Decision::AlreadyInBackup),
        ];
        let access = PullAccess::NotPullable {
            why: "quay.io does not serve x without credentials, and no pull secret is provisioned"
                .into(),
        };
        let mut held = rows.clone();
        apply_pull(&mut held, &access);
        assert_eq!(held[0].decision.label(), "backup not pullable");
        assert!(!held[0].patch);
        let detail = held[0].detail.clone().unwrap_or_default();
        assert!(
            detail.contains("without credentials") && detail.contains("set pull_secret"),
            "{detail}"
        );
        assert_eq!(held[1], rows[1], "left as it was");
        let table = crate::commands::plan::render_table(&held, false);
        assert!(table.contains("0 container(s) to patch"), "{table}");
        let json = serde_json::to_value(&held).expect("JSON");
        assert_eq!(json[0]["decision"], "backup not pullable");

        let line = pull_line(&access, "quay.io/b");
        assert!(
            line.starts_with("pods could not pull from quay.io/b"),
            "{line}"
        );
        assert!(line.contains("pull_check = off"), "{line}");
        let secret = PullAccess::Secret("image-cloner-pull".into());
        assert!(pull_line(&secret, "quay.io/b").contains("pull secret image-cloner-pull"));
        let mut unchanged = rows.clone();
        apply_pull(&mut unchanged, &secret);
        assert_eq!(unchanged, rows);
    }
}

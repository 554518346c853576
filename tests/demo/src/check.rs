//! The demo checks itself: each section says what it expects, observes what happened, and
//! compares the two into a [`Check`]; [`Checks::verdict`] at the end names every expectation
//! that did not hold, and only when all held does the demo print "Demo OK".
//!
//! The comparisons are pure (no cluster, no registry): a section observes (reads the workload,
//! asks the backup registry with skopeo, scrapes the metrics), then hands what it saw to
//! [`Checks::expect_eq`], [`Checks::expect_that`] or [`image_row`]. A new section of the demo
//! adds its own checks to the same [`Checks`].

use std::fmt::{Debug, Write as _};

/// One expectation and what was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, as a user would name it ("Deployment shop/web container nginx").
    pub subject: String,
    pub expected: String,
    pub observed: String,
    pub held: bool,
}

/// Every check the demo made, in order.
#[derive(Debug, Default)]
pub struct Checks {
    checks: Vec<Check>,
}

impl Checks {
    /// Records a check; returns whether it held.
    pub fn record(&mut self, check: Check) -> bool {
        let held = check.held;
        self.checks.push(check);
        held
    }

    /// `expected` and `observed` are equal.
    pub fn expect_eq<T: PartialEq + Debug>(
        &mut self,
        subject: impl Into<String>,
        expected: T,
        observed: T,
    ) -> bool {
        self.record(Check {
            subject: subject.into(),
            held: expected == observed,
            expected: format!("{expected:?}"),
            observed: format!("{observed:?}"),
        })
    }

    /// A condition the caller evaluated, with both sides described.
    pub fn expect_that(
        &mut self,
        subject: impl Into<String>,
        expected: impl Into<String>,
        observed: impl Into<String>,
        held: bool,
    ) -> bool {
        self.record(Check {
            subject: subject.into(),
            expected: expected.into(),
            observed: observed.into(),
            held,
        })
    }

    pub fn all(&self) -> &[Check] {
        &self.checks
    }

    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.held)
    }

    /// `Ok(how many held)` when every check held (and there was at least one); otherwise a
    /// message naming each that did not.
    pub fn verdict(&self) -> Result<usize, String> {
        let failed: Vec<&Check> = self.failed().collect();
        if self.checks.is_empty() {
            return Err("nothing was checked".to_owned());
        }
        if failed.is_empty() {
            return Ok(self.checks.len());
        }
        let mut out = format!(
            "{} of {} expectation(s) did not hold:",
            failed.len(),
            self.checks.len()
        );
        for c in failed {
            let _ = write!(
                out,
                "\n  - {}: expected {}, observed {}",
                c.subject, c.expected, c.observed
            );
        }
        Err(out)
    }
}

/// What a container of a workload should run once the daemon is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Its copy in the backup registry, pinned to the digest the registry serves.
    Patched,
    /// Its original image, for the reason given.
    Unchanged(&'static str),
}

impl Expect {
    /// The demo's "expected" column.
    pub fn label(self) -> &'static str {
        match self {
            Expect::Patched => "patched",
            Expect::Unchanged(why) => why,
        }
    }

    /// The opposite expectation: how the demo proves its check can fail (see
    /// `IMAGE_CLONER_DEMO_FLIP` in main.rs).
    pub fn flipped(self) -> Expect {
        match self {
            Expect::Patched => Expect::Unchanged("unchanged (flipped by IMAGE_CLONER_DEMO_FLIP)"),
            Expect::Unchanged(_) => Expect::Patched,
        }
    }
}

/// What was seen of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The image it ran before image-cloner.
    pub before: String,
    /// The image it runs now (empty: the container is gone).
    pub after: String,
    /// For an image now in the backup registry and pinned to a digest: the digest the registry
    /// serves for that reference (`skopeo inspect --raw`), or why it could not be read. `None`
    /// when not asked.
    pub served: Option<Result<String, String>>,
}

/// The digest an image reference pins (`…@sha256:…`), if any.
pub fn pinned_digest(image: &str) -> Option<&str> {
    image
        .split_once('@')
        .map(|(_, d)| d)
        .filter(|d| d.starts_with("sha256:"))
}

/// Compares one container row of the demo: patched rows must run a backup image
/// (`<backup_host>/…`) whose pinned digest the backup registry serves; every other row must
/// run exactly what it ran before.
pub fn image_row(subject: String, expect: Expect, seen: &Observed, backup_host: &str) -> Check {
    let changed = seen.after != seen.before;
    let (expected, observed, held) = match expect {
        Expect::Patched => {
            let in_backup = seen.after.starts_with(&format!("{backup_host}/"));
            let pinned = pinned_digest(&seen.after);
            let observed = match (&seen.served, pinned) {
                _ if !changed => "unchanged".to_owned(),
                _ if !in_backup => format!("{} (not in the backup registry)", seen.after),
                (_, None) => format!("{} (not pinned to a digest)", seen.after),
                (Some(Ok(served)), Some(pin)) if served == pin => {
                    format!("{} (the backup serves that digest)", seen.after)
                }
                (Some(Ok(served)), Some(_)) => {
                    format!("{} (the backup serves {served})", seen.after)
                }
                (Some(Err(e)), Some(_)) => format!("{} (backup: {e})", seen.after),
                (None, Some(_)) => format!("{} (the backup was not asked)", seen.after),
            };
            let held = changed
                && in_backup
                && matches!((&seen.served, pinned), (Some(Ok(s)), Some(p)) if s == p);
            (
                "patched: a backup image at the digest it pins".to_owned(),
                observed,
                held,
            )
        }
        Expect::Unchanged(why) => {
            let observed = if changed {
                format!("now {}", display(&seen.after))
            } else {
                "unchanged".to_owned()
            };
            (format!("unchanged ({why})"), observed, !changed)
        }
    };
    Check {
        subject,
        expected,
        observed,
        held,
    }
}

fn display(image: &str) -> &str {
    if image.is_empty() {
        "(no such container)"
    } else {
        image
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKUP: &str = "127.0.0.1:5001";
    const PIN: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn seen(after: &str, served: Option<Result<&str, &str>>) -> Observed {
        Observed {
            before: "127.0.0.1:5000/library/nginx:1.27".into(),
            after: after.into(),
            served: served.map(|r| r.map(str::to_owned).map_err(str::to_owned)),
        }
    }

    fn copy() -> String {
        format!("{BACKUP}/mirror/nginx:1.27@{PIN}")
    }

    #[test]
    fn a_patched_row_holds_only_when_the_backup_serves_the_pinned_digest() {
        let row = |s: &Observed| image_row("web".into(), Expect::Patched, s, BACKUP).held;
        assert!(row(&seen(&copy(), Some(Ok(PIN)))));
        let other = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        assert!(!row(&seen(&copy(), Some(Ok(other)))), "another digest");
        assert!(!row(&seen(&copy(), Some(Err("manifest unknown")))));
        assert!(!row(&seen(&copy(), None)), "not asked is not proof");
        let unpinned = format!("{BACKUP}/mirror/nginx:1.27");
        assert!(!row(&seen(&unpinned, Some(Ok(PIN)))));
        let elsewhere = format!("quay.io/x/nginx:1.27@{PIN}");
        assert!(!row(&seen(&elsewhere, Some(Ok(PIN)))));
        assert!(!row(&seen("127.0.0.1:5000/library/nginx:1.27", None)));
    }

    /// The mismatch issue 12 found: a row expected to be left alone (namespace opt-out) was
    /// patched. The check names it, and the demo's verdict fails.
    #[test]
    fn a_left_alone_row_that_was_patched_is_a_named_mismatch() {
        let mut checks = Checks::default();
        let subject = "Deployment frozen/frozen-web container nginx";
        let frozen = Expect::Unchanged("opt-out (namespace annotation)");
        checks.record(image_row(
            subject.into(),
            frozen,
            &seen(&copy(), Some(Ok(PIN))),
            BACKUP,
        ));
        checks.record(image_row(
            "Deployment shop/web container nginx".into(),
            Expect::Patched,
            &seen(&copy(), Some(Ok(PIN))),
            BACKUP,
        ));
        checks.expect_eq("image_cloner_workloads_patched_total", 6u64, 7u64);
        let verdict = checks.verdict().expect_err("two expectations did not hold");
        assert!(verdict.starts_with("2 of 3 expectation(s)"), "{verdict}");
        assert!(
            verdict.contains(&format!(
                "{subject}: expected unchanged (opt-out (namespace annotation)), observed now {}",
                copy()
            )),
            "{verdict}"
        );
        assert!(
            verdict.contains("image_cloner_workloads_patched_total: expected 6, observed 7"),
            "{verdict}"
        );
        assert!(!verdict.contains("shop/web"), "{verdict}");
    }

    #[test]
    fn flipping_an_expectation_turns_a_held_row_into_a_mismatch() {
        let unchanged = seen("127.0.0.1:5000/library/nginx:1.27", None);
        let frozen = Expect::Unchanged("opt-out (namespace annotation)");
        assert!(image_row("x".into(), frozen, &unchanged, BACKUP).held);
        let flipped = image_row("x".into(), frozen.flipped(), &unchanged, BACKUP);
        assert!(!flipped.held);
        assert_eq!(flipped.observed, "unchanged");
    }

    #[test]
    fn the_verdict_holds_only_with_checks_that_all_held() {
        let mut checks = Checks::default();
        assert!(checks.verdict().is_err(), "nothing checked proves nothing");
        checks.expect_that("restore output", "says opted out", "says opted out", true);
        assert_eq!(checks.verdict(), Ok(1));
    }
}

//! `status`'s report and table, from classified rows (no cluster).

use super::*;

fn row(name: &str, state: State) -> StatusRow {
    StatusRow {
        namespace: "shop".into(),
        kind: "Deployment".into(),
        name: name.into(),
        state,
        detail: None,
    }
}

#[test]
fn status_counts_every_state_and_lists_the_workloads_at_risk() {
    let r = report(vec![
        row("safe", State::Protected),
        row("gone", State::BackupMissing),
        row("new", State::NotYetCopied),
    ]);
    assert_eq!(r.counts.len(), State::ALL.len());
    assert_eq!(r.counts["backup_missing"], 1);
    assert_eq!(r.counts["copy_failing"], 0);
    assert_eq!(r.workloads[0].name, "gone", "worst first");
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["workloads"][0]["state"], "backup_missing");
    let table = render_table(&r);
    assert!(
        table.contains("backup copy missing                   1"),
        "{table}"
    );
    assert!(
        table.contains("total                                 3"),
        "{table}"
    );
    assert!(
        table.contains("shop       Deployment  new   not yet copied"),
        "{table}"
    );
    assert!(!table.contains("safe"), "{table}");
}

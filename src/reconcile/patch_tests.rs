use proptest::prelude::*;
use serde_json::json;

use super::*;

/// The annotation as it was written before `record_value` wrote it directly: a `Value`,
/// formatted. Annotations already in clusters hold this text.
fn as_serde_json_writes_it(recorded: &OriginalImages) -> String {
    Value::Object(
        recorded
            .iter()
            .map(|(name, r)| {
                (
                    name.clone(),
                    json!({"original": r.original, "backup": r.backup}),
                )
            })
            .collect(),
    )
    .to_string()
}

fn recorded(entries: &[(&str, &str, &str)]) -> OriginalImages {
    entries
        .iter()
        .map(|(name, original, backup)| {
            (
                (*name).to_owned(),
                Recorded {
                    original: (*original).to_owned(),
                    backup: (*backup).to_owned(),
                },
            )
        })
        .collect()
}

#[test]
fn the_annotation_is_the_text_serde_json_wrote() {
    let cases = [
        recorded(&[]),
        recorded(&[(
            "app",
            "docker.io/library/nginx:1.25",
            "backup.example/docker.io/library/nginx@sha256:0123",
        )]),
        recorded(&[
            ("sidecar", "quay.io/a/b:v1", "backup/quay.io/a/b:v1"),
            ("app", "ghcr.io/x/y:1", "backup/ghcr.io/x/y:1"),
        ]),
        recorded(&[(
            "q\"uote\\",
            "tab\there\nnew",
            "\u{1}\u{8}\u{c}\r\u{1f}\u{7f}é\u{2028}",
        )]),
    ];
    for r in cases {
        let text = record_value(&r);
        assert_eq!(text, as_serde_json_writes_it(&r));
        let annotations = BTreeMap::from([(ORIGINAL_IMAGES_ANNOTATION.to_owned(), text)]);
        assert_eq!(original_images(&annotations), Some(r));
    }
}

proptest! {
    #[test]
    fn any_annotation_is_the_text_serde_json_writes(
        entries in prop::collection::btree_map(any::<String>(), (any::<String>(), any::<String>()), 0..4)
    ) {
        let r: OriginalImages = entries
            .into_iter()
            .map(|(name, (original, backup))| (name, Recorded { original, backup }))
            .collect();
        let text = record_value(&r);
        prop_assert_eq!(&text, &as_serde_json_writes_it(&r));
        let annotations = BTreeMap::from([(ORIGINAL_IMAGES_ANNOTATION.to_owned(), text)]);
        prop_assert_eq!(original_images(&annotations), Some(r));
    }

    /// Changes written without the map are the map's text, a repeated name (which a pod never
    /// has) recorded by its last change, as the map's insert keeps it.
    #[test]
    fn changes_are_recorded_as_the_map_of_them_is(
        changes in prop::collection::vec(("[a-c]{1,2}", any::<String>(), any::<String>()), 1..6)
    ) {
        let changes: Vec<ImageChange> = changes
            .into_iter()
            .map(|(container, from, to)| ImageChange { container, init: false, from, to })
            .collect();
        let mut map = OriginalImages::new();
        for c in &changes {
            map.insert(c.container.clone(), Recorded { original: c.from.clone(), backup: c.to.clone() });
        }
        prop_assert_eq!(record_changes(&changes), record_value(&map));
    }

    #[test]
    fn any_control_character_is_escaped_as_serde_json_escapes_it(s in "[\\x00-\\x1f\"\\\\a-z]{0,24}") {
        let r = recorded(&[(s.as_str(), s.as_str(), s.as_str())]);
        prop_assert_eq!(record_value(&r), as_serde_json_writes_it(&r));
    }
}

/// Any operation: each kind, with a string value (escapes included) or another JSON value.
fn any_operation() -> impl Strategy<Value = Op> {
    let path = "/[a-z0-9/~\"\\\\]{0,30}";
    let value = prop_oneof![
        "\\PC{0,30}|[\\x00-\\x1f\"\\\\a-z]{0,20}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z-]{1,12}".prop_map(|name| json!({"name": name})),
        Just(json!([{"name": "regcred"}, null, true])),
    ];
    (0..4u8, path, value).prop_map(|(kind, path, value)| match kind {
        0 => Op::Test { path, value },
        1 => Op::Add { path, value },
        2 => Op::Replace { path, value },
        _ => Op::Remove { path },
    })
}

proptest! {
    #[test]
    fn operations_are_written_as_serde_writes_them(ops in prop::collection::vec(any_operation(), 0..5)) {
        let ours = String::from_utf8(operations_json(&ops)).expect("UTF-8");
        prop_assert_eq!(ours, serde_json::to_string(&ops).expect("JSON"));
    }
}

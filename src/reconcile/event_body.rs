//! A new Event's JSON, written from what the publish already holds: the same members, with the
//! same values, as serde writes the events.k8s.io/v1 `Event` that kube-runtime's `Recorder`
//! builds (checked against it in the tests below).
//!
//! A cold run creates 2,000 Events. Built as a k8s-openapi `Event` (every string cloned into
//! it) and serialized through serde (its ~40 optional members visited, each string escaped
//! through serde_json's general writer), one cost ~16,000 instructions before a byte was sent
//! (callgrind of the cold bench's `run --once`: 5.6 M building, 21.2 M serializing).

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;

use crate::reconcile::json_text::{self, push_json_string};
use crate::reconcile::time_text;

/// The object an Event regards, borrowed from it: what `Resource::object_ref` copies into an
/// `ObjectReference` (six strings a publish) — the kind and API version, and the object's name,
/// namespace, uid and resourceVersion.
#[derive(Debug, Clone, Copy, Default)]
pub struct Regarding<'a> {
    pub api_version: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub resource_version: Option<&'a str>,
    pub uid: Option<&'a str>,
}

/// What a new Event says, borrowed from its publish.
pub struct NewEvent<'a> {
    /// The Event object's name ([`name`]) and namespace (the regarded object's).
    pub name: &'a str,
    pub namespace: &'a str,
    pub type_: &'a str,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: Option<&'a str>,
    pub regarding: &'a Regarding<'a>,
    pub reporting: &'a Reporting,
    pub time: SystemTime,
}

/// The reporting controller and instance's members, the same in every Event a publisher sends:
/// written and escaped once, where each Event wrote and escaped them again.
#[derive(Debug, Clone)]
pub struct Reporting {
    /// `,"reportingController":…,"reportingInstance":…`
    members: String,
}

impl Reporting {
    pub fn new(controller: &str, instance: &str) -> Reporting {
        let mut members = String::with_capacity(controller.len() + instance.len() + 48);
        members.push_str(r#","reportingController":"#);
        push_json_string(&mut members, controller);
        members.push_str(r#","reportingInstance":"#);
        push_json_string(&mut members, instance);
        Reporting { members }
    }
}

/// The Event's name as the `Recorder` makes it: the regarded object's name and the time in
/// nanoseconds since the epoch, in hexadecimal.
pub fn name(object: &str, time: SystemTime) -> String {
    let nanos = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let mut name = String::with_capacity(object.len() + 17);
    name.push_str(object);
    name.push('.');
    json_text::push_hex(&mut name, nanos);
    name
}

/// The JSON of `event`, ready to POST: its members in the order serde writes them, each key
/// and the text between the values written as one constant (through a general object writer,
/// each of an Event's 19 keys was a comma, quotes and a colon pushed one at a time: ~60
/// instructions a key, callgrind of a cold `run --once`).
pub fn body(event: &NewEvent<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(1024);
    out.push_str(r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","action":"#);
    push_json_string(&mut out, event.action);
    // k8s-openapi writes a `MicroTime` as this RFC 3339 text (`%Y-%m-%dT%H:%M:%S%.6fZ`): digits
    // and separators only, nothing to escape.
    out.push_str(r#","eventTime":"#);
    match time_text::rfc3339_micros(event.time) {
        Some(text) => {
            out.push('"');
            out.push_str(text.as_str());
            out.push('"');
        }
        None => out.push_str(&micro_time_by_serde(event.time)),
    }
    out.push_str(r#","metadata":{"name":"#);
    push_json_string(&mut out, event.name);
    out.push_str(r#","namespace":"#);
    push_json_string(&mut out, event.namespace);
    out.push('}');
    if let Some(note) = event.note {
        out.push_str(r#","note":"#);
        push_json_string(&mut out, note);
    }
    out.push_str(r#","reason":"#);
    push_json_string(&mut out, event.reason);
    out.push_str(r#","regarding":"#);
    reference(&mut out, event.regarding);
    out.push_str(&event.reporting.members);
    out.push_str(r#","type":"#);
    push_json_string(&mut out, event.type_);
    out.push('}');
    out.into_bytes()
}

/// A time before 1970 (a clock set wrong), which the RFC 3339 text of `time_text` does not
/// hold: as serde writes k8s-openapi's `MicroTime`.
fn micro_time_by_serde(time: SystemTime) -> String {
    let at = Timestamp::try_from(time).unwrap_or(Timestamp::UNIX_EPOCH);
    serde_json::to_string(&MicroTime(at)).unwrap_or_else(|_| "null".to_owned())
}

/// An `ObjectReference`'s members, as serde writes them (a regarded object has no field path;
/// a member without a value is left out).
fn reference(out: &mut String, r: &Regarding<'_>) {
    let members = [
        (r#""apiVersion":"#, r.api_version),
        (r#""kind":"#, r.kind),
        (r#""name":"#, r.name),
        (r#""namespace":"#, r.namespace),
        (r#""resourceVersion":"#, r.resource_version),
        (r#""uid":"#, r.uid),
    ];
    let mut before = '{';
    for (key, value) in members {
        if let Some(value) = value {
            out.push(before);
            out.push_str(key);
            push_json_string(out, value);
            before = ',';
        }
    }
    if before == '{' {
        out.push('{');
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// The Event kube-runtime's `Recorder` builds for the same publish, as a k8s-openapi type:
    /// what serde writes of it is what the API server was sent before.
    fn as_the_recorder_builds_it(e: &NewEvent<'_>) -> K8sEvent {
        K8sEvent {
            action: Some(e.action.into()),
            reason: Some(e.reason.into()),
            event_time: Some(MicroTime(
                Timestamp::try_from(e.time).expect("a time jiff holds"),
            )),
            regarding: Some(object_reference(e.regarding)),
            note: e.note.map(str::to_owned),
            metadata: ObjectMeta {
                namespace: Some(e.namespace.into()),
                name: Some(e.name.into()),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(CONTROLLER.into()),
            reporting_instance: Some(INSTANCE.into()),
            type_: Some(e.type_.into()),
            ..K8sEvent::default()
        }
    }

    /// The `ObjectReference` the Recorder was given for the same object.
    fn object_reference(r: &Regarding<'_>) -> ObjectReference {
        ObjectReference {
            api_version: r.api_version.map(Into::into),
            kind: r.kind.map(Into::into),
            name: r.name.map(Into::into),
            namespace: r.namespace.map(Into::into),
            resource_version: r.resource_version.map(Into::into),
            uid: r.uid.map(Into::into),
            field_path: None,
        }
    }

    fn reference(name: &str) -> Regarding<'_> {
        Regarding {
            api_version: Some("apps/v1"),
            kind: Some("Deployment"),
            name: Some(name),
            namespace: Some("shop"),
            resource_version: Some("4711"),
            uid: Some("0c9d6e4a-1b2f-4c3d-9e8f-7a6b5c4d3e2f"),
        }
    }

    /// The same bytes: the same members, in the same order, escaped the same way.
    fn assert_written_as_serde_writes_it(e: &NewEvent<'_>) {
        let ours = String::from_utf8(body(e)).expect("UTF-8");
        let serde = serde_json::to_string(&as_the_recorder_builds_it(e)).expect("serialized");
        assert_eq!(ours, serde);
    }

    const CONTROLLER: &str = "image-cloner";
    const INSTANCE: &str = "image-cloner-7d9f8-abcde";

    fn reporting() -> &'static Reporting {
        static REPORTING: std::sync::LazyLock<Reporting> =
            std::sync::LazyLock::new(|| Reporting::new(CONTROLLER, INSTANCE));
        &REPORTING
    }

    fn event<'a>(regarding: &'a Regarding<'a>, note: Option<&'a str>) -> NewEvent<'a> {
        NewEvent {
            name: "web.18f3a2b4c5d6e7f8",
            namespace: "shop",
            type_: "Normal",
            reason: "Cloned",
            action: "Patch",
            note,
            regarding,
            reporting: reporting(),
            time: UNIX_EPOCH + Duration::new(1_764_662_400, 123_456_789),
        }
    }

    #[test]
    fn an_event_is_the_json_serde_writes_of_the_recorders_event() {
        let web = reference("web");
        assert_written_as_serde_writes_it(&event(
            &web,
            Some("Pinned to backup.example.com/nginx:1.27@sha256:0123"),
        ));
        assert_written_as_serde_writes_it(&event(&web, None));
        let sparse = Regarding {
            kind: Some("CronJob"),
            name: Some("nightly"),
            ..Regarding::default()
        };
        assert_written_as_serde_writes_it(&event(&sparse, Some("x")));
    }

    /// A regarded object with no member at all (serde writes `{}`), and a reporter whose
    /// names need escaping: they are escaped once, when the publisher is made.
    #[test]
    fn an_empty_reference_and_a_reporter_to_escape_are_written_as_serde_writes_them() {
        let none = Regarding::default();
        assert_written_as_serde_writes_it(&event(&none, None));
        let reporting = Reporting::new("ctl\"x", "inst\\ance\n");
        let web = reference("web");
        let mut e = event(&web, None);
        e.reporting = &reporting;
        let ours: Value = serde_json::from_slice(&body(&e)).expect("JSON");
        assert_eq!(ours["reportingController"], "ctl\"x");
        assert_eq!(ours["reportingInstance"], "inst\\ance\n");
    }

    /// A clock set before 1970: the time is still the one serde writes.
    #[test]
    fn a_time_before_1970_is_written_as_serde_writes_it() {
        let web = reference("web");
        let mut e = event(&web, None);
        e.time = UNIX_EPOCH - Duration::new(1, 500_000_000);
        assert_written_as_serde_writes_it(&e);
    }

    #[test]
    fn the_name_is_the_objects_and_the_time_in_hexadecimal_nanoseconds() {
        let time = UNIX_EPOCH + Duration::new(1_764_662_400, 123_456_789);
        let nanos = Timestamp::try_from(time).expect("a time").as_nanosecond();
        assert_eq!(name("web", time), format!("web.{nanos:x}"));
    }

    proptest! {
        #[test]
        fn any_text_is_escaped_as_serde_escapes_it(
            note in "\\PC{0,40}|[\\x00-\\x1f\"\\\\/a-z]{0,24}",
            name in "[a-z0-9.\"\\\\\\x00-\\x1f-]{1,20}",
            micros in 0u64..4_000_000_000_000_000,
        ) {
            let regarding = reference(&name);
            let mut e = event(&regarding, Some(&note));
            e.reason = &note;
            e.time = UNIX_EPOCH + Duration::from_micros(micros);
            let ours = String::from_utf8(body(&e)).expect("UTF-8");
            let serde = serde_json::to_string(&as_the_recorder_builds_it(&e)).expect("serialized");
            prop_assert_eq!(ours, serde);
        }
    }
}

//! A new Event's JSON, written from what the publish already holds: the same members, with the
//! same values, as serde writes the events.k8s.io/v1 `Event` that kube-runtime's `Recorder`
//! builds (checked against it in the tests below).
//!
//! A cold run creates 2,000 Events. Built as a k8s-openapi `Event` (every string cloned into
//! it) and serialized through serde (its ~40 optional members visited, each string escaped
//! through serde_json's general writer), one cost ~16,000 instructions before a byte was sent
//! (callgrind of the cold bench's `run --once`: 5.6 M building, 21.2 M serializing).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::ObjectReference;

use crate::reconcile::json_text::{self, JsonObject};

/// What a new Event says, borrowed from its publish.
pub struct NewEvent<'a> {
    /// The Event object's name ([`name`]) and namespace (the regarded object's).
    pub name: &'a str,
    pub namespace: &'a str,
    pub type_: &'a str,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: Option<&'a str>,
    pub regarding: &'a ObjectReference,
    pub related: Option<&'a ObjectReference>,
    pub reporting_controller: &'a str,
    pub reporting_instance: &'a str,
    pub time: SystemTime,
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

/// The JSON of `event`, ready to POST.
pub fn body(event: &NewEvent<'_>) -> Vec<u8> {
    let mut out = String::with_capacity(1024);
    let mut e = JsonObject::open(&mut out);
    e.string("apiVersion", "events.k8s.io/v1");
    e.string("kind", "Event");
    e.string("action", event.action);
    e.raw("eventTime", &micro_time(event.time));
    let mut metadata = e.object("metadata");
    metadata.string("name", event.name);
    metadata.string("namespace", event.namespace);
    metadata.close();
    e.optional("note", event.note);
    e.string("reason", event.reason);
    reference(e.object("regarding"), event.regarding);
    if let Some(related) = event.related {
        reference(e.object("related"), related);
    }
    e.string("reportingController", event.reporting_controller);
    e.string("reportingInstance", event.reporting_instance);
    e.string("type", event.type_);
    e.close();
    out.into_bytes()
}

/// A `MicroTime` as k8s-openapi writes it (`%Y-%m-%dT%H:%M:%S%.6fZ`), quoted; humantime's
/// RFC 3339 form with microseconds is the same text.
fn micro_time(time: SystemTime) -> String {
    let mut text = String::with_capacity(29);
    // Writing to a String cannot fail.
    let _ = write!(text, "\"{}\"", humantime::format_rfc3339_micros(time));
    text
}

fn reference(mut o: JsonObject<'_>, r: &ObjectReference) {
    o.optional("apiVersion", r.api_version.as_deref());
    o.optional("fieldPath", r.field_path.as_deref());
    o.optional("kind", r.kind.as_deref());
    o.optional("name", r.name.as_deref());
    o.optional("namespace", r.namespace.as_deref());
    o.optional("resourceVersion", r.resource_version.as_deref());
    o.optional("uid", r.uid.as_deref());
    o.close();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    use k8s_openapi::jiff::Timestamp;
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
            regarding: Some(e.regarding.clone()),
            related: e.related.cloned(),
            note: e.note.map(str::to_owned),
            metadata: ObjectMeta {
                namespace: Some(e.namespace.into()),
                name: Some(e.name.into()),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(e.reporting_controller.into()),
            reporting_instance: Some(e.reporting_instance.into()),
            type_: Some(e.type_.into()),
            ..K8sEvent::default()
        }
    }

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some(name.into()),
            namespace: Some("shop".into()),
            resource_version: Some("4711".into()),
            uid: Some("0c9d6e4a-1b2f-4c3d-9e8f-7a6b5c4d3e2f".into()),
            field_path: None,
        }
    }

    fn assert_written_as_serde_writes_it(e: &NewEvent<'_>) {
        let ours: Value = serde_json::from_slice(&body(e)).expect("JSON");
        let serde = serde_json::to_value(as_the_recorder_builds_it(e)).expect("serialized");
        assert_eq!(ours, serde);
    }

    fn event<'a>(regarding: &'a ObjectReference, note: Option<&'a str>) -> NewEvent<'a> {
        NewEvent {
            name: "web.18f3a2b4c5d6e7f8",
            namespace: "shop",
            type_: "Normal",
            reason: "Cloned",
            action: "Patch",
            note,
            regarding,
            related: None,
            reporting_controller: "image-cloner",
            reporting_instance: "image-cloner-7d9f8-abcde",
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
        let sparse = ObjectReference {
            kind: Some("CronJob".into()),
            name: Some("nightly".into()),
            ..ObjectReference::default()
        };
        let related = reference("api");
        let mut with_related = event(&sparse, Some("x"));
        with_related.related = Some(&related);
        assert_written_as_serde_writes_it(&with_related);
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
            let ours: Value = serde_json::from_slice(&body(&e)).expect("JSON");
            let serde = serde_json::to_value(as_the_recorder_builds_it(&e)).expect("serialized");
            prop_assert_eq!(ours, serde);
        }
    }
}

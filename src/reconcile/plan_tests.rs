use std::collections::{BTreeMap, BTreeSet};

use crate::image::naming::Pin;
use crate::image::naming::{BackupRegistry, Naming};
use crate::image::reference::Digest;
use crate::image::reference::ImageRef;
use crate::reconcile::patch::*;
use crate::reconcile::plan::*;
use crate::workload::{Container, Kind, SKIP_ANNOTATION, Workload};
use serde_json::{Value, json};

pub(super) const BACKUP: &str = "registry.example.com/backup";

pub(super) fn policy() -> Policy {
    Policy {
        backup: BackupRegistry::parse(BACKUP).unwrap(),
        naming: Naming::Flat,
        ignored_namespaces: ["kube-system", "image-cloner", "legacy"]
            .map(String::from)
            .into(),
        patch_gitops_managed: false,
        only_namespaces: BTreeSet::new(),
        sources: Default::default(),
        refs: Default::default(),
    }
}

pub(crate) fn workload(kind: Kind, images: &[(&str, &str)], init: &[(&str, &str)]) -> Workload {
    let mut containers: Vec<Container> = images
        .iter()
        .enumerate()
        .map(|(i, (n, img))| Container {
            name: (*n).into(),
            image: (*img).into(),
            init: false,
            index: i,
        })
        .collect();
    containers.extend(init.iter().enumerate().map(|(i, (n, img))| Container {
        name: (*n).into(),
        image: (*img).into(),
        init: true,
        index: i,
    }));
    Workload {
        kind,
        namespace: "shop".into(),
        name: "web".into(),
        annotations: BTreeMap::new(),
        labels: BTreeMap::new(),
        containers,
        namespace_opted_out: false,
        pull_secrets: None,
        resource_version: None,
    }
}

/// The mirror's answer for any source, pinned by `pin`: the reference of a verified copy.
pub(super) fn mirrored(pin: Pin) -> impl Fn(&ImageRef) -> Option<String> {
    move |source: &ImageRef| {
        let backup = BackupRegistry::parse(BACKUP).unwrap();
        let target = backup.target(source, Naming::Flat).unwrap();
        let digest = Digest::sha256_of(source.canonical().as_bytes());
        Some(target.pinned(&digest, pin))
    }
}

/// The object the patch applies to: a minimal one of the workload's kind.
pub(super) fn object(w: &Workload) -> Value {
    let list = |init: bool| -> Vec<Value> {
        w.containers
            .iter()
            .filter(|c| c.init == init)
            .map(|c| json!({"name": c.name, "image": c.image}))
            .collect()
    };
    let mut pod_spec = json!({"containers": list(false), "initContainers": list(true)});
    if let Some(names) = &w.pull_secrets {
        pod_spec["imagePullSecrets"] = names.iter().map(|n| json!({"name": n})).collect();
    }
    let spec = match w.kind {
        Kind::Pod => pod_spec,
        Kind::CronJob => {
            json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec}}}})
        }
        _ => json!({"template": {"spec": pod_spec}}),
    };
    let mut metadata = json!({"name": w.name, "namespace": w.namespace});
    if let Some(rv) = &w.resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    if !w.annotations.is_empty() {
        metadata["annotations"] = json!(w.annotations);
    }
    json!({"metadata": metadata, "spec": spec})
}

pub(crate) fn apply(doc: &Value, patch: &[Op]) -> Result<Value, json_patch::PatchError> {
    let mut doc = doc.clone();
    // What is sent: the operations' JSON text, read back as the server reads it.
    let text = serde_json::to_vec(patch).unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&text).unwrap();
    json_patch::patch(&mut doc, &patch)?;
    Ok(doc)
}

/// Reads the workload back from a patched object, as the controller would after a watch event.
pub(super) fn reread(before: &Workload, doc: &Value) -> Workload {
    let spec = doc.pointer(before.kind.pod_spec_pointer()).unwrap();
    let mut w = before.clone();
    for c in &mut w.containers {
        let list = if c.init {
            "initContainers"
        } else {
            "containers"
        };
        c.image = spec[list][c.index]["image"].as_str().unwrap().into();
    }
    w.annotations = doc["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    w.pull_secrets = spec["imagePullSecrets"].as_array().map(|list| {
        list.iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    });
    w
}

pub(super) fn plan_and_apply(w: &Workload, pin: Pin) -> (PatchPlan, Value) {
    let plans = decide(w, &policy());
    let p = patch(w, &plans, &mirrored(pin)).expect("a patch");
    let after = apply(&object(w), &p.patch).unwrap();
    (p, after)
}

#[test]
fn every_kind_is_patched_at_its_own_pod_spec() {
    for &kind in Kind::ALL {
        let w = workload(kind, &[("app", "nginx:1.27")], &[]);
        let plans = decide(&w, &policy());
        if kind == Kind::Job {
            assert_eq!(plans[0].decision, Decision::Immutable);
            assert!(patch(&w, &plans, &mirrored(Pin::Digest)).is_none());
            assert_eq!(
                to_mirror(&plans).len(),
                1,
                "a Job's images are still cloned"
            );
            continue;
        }
        let (_, after) = plan_and_apply(&w, Pin::Digest);
        let image = after
            .pointer(&format!("{}/containers/0/image", kind.pod_spec_pointer()))
            .unwrap()
            .as_str()
            .unwrap();
        assert!(
            image.starts_with("registry.example.com/backup/docker.io_library_nginx:1.27@sha256:"),
            "{kind}: {image}"
        );
    }
}

#[test]
fn init_containers_are_patched_and_tested_too() {
    let w = workload(
        Kind::Deployment,
        &[("app", "ghcr.io/x/app:2")],
        &[("migrate", "busybox")],
    );
    let (p, after) = plan_and_apply(&w, Pin::Tag);
    assert_eq!(
        after["spec"]["template"]["spec"]["initContainers"][0]["image"],
        "registry.example.com/backup/docker.io_library_busybox:latest"
    );
    let ops = &p.patch;
    let tests = ops.iter().filter(|o| matches!(o, Op::Test { .. })).count();
    assert_eq!(tests, 2, "one test per replaced image: {ops:?}");
    assert!(p.changes.iter().any(|c| c.init && c.container == "migrate"));
}

#[test]
fn one_image_in_several_containers_is_copied_once_and_patched_everywhere() {
    let w = workload(
        Kind::StatefulSet,
        &[("a", "nginx:1.27"), ("b", "docker.io/library/nginx:1.27")],
        &[("c", "nginx:1.27")],
    );
    let plans = decide(&w, &policy());
    assert_eq!(to_mirror(&plans).len(), 1);
    let (p, _) = plan_and_apply(&w, Pin::Digest);
    assert_eq!(p.changes.len(), 3);
}

#[test]
fn an_already_patched_workload_plans_nothing() {
    let w = workload(Kind::DaemonSet, &[("app", "nginx:1.27")], &[]);
    let (_, after) = plan_and_apply(&w, Pin::Digest);
    let again = reread(&w, &after);
    let plans = decide(&again, &policy());
    assert!(
        plans
            .iter()
            .all(|p| p.decision == Decision::AlreadyInBackup)
    );
    assert!(to_mirror(&plans).is_empty());
    assert!(patch(&again, &plans, &mirrored(Pin::Digest)).is_none());
}

#[test]
fn ignored_namespaces_and_opt_outs_are_left_alone() {
    let mut w = workload(Kind::Deployment, &[("app", "nginx")], &[]);
    for ns in ["kube-system", "legacy", "image-cloner"] {
        w.namespace = ns.into();
        let plans = decide(&w, &policy());
        assert_eq!(plans[0].decision, Decision::IgnoredNamespace, "{ns}");
        assert!(to_mirror(&plans).is_empty());
    }
    w.namespace = "shop".into();
    w.annotations.insert(SKIP_ANNOTATION.into(), "true".into());
    assert_eq!(decide(&w, &policy())[0].decision, Decision::OptOut);
    w.annotations.insert(SKIP_ANNOTATION.into(), "false".into());
    assert_eq!(decide(&w, &policy())[0].decision, Decision::Clone);
    w.namespace_opted_out = true;
    assert_eq!(decide(&w, &policy())[0].decision, Decision::OptOut);
}

#[test]
fn an_allow_list_of_namespaces_ignores_every_other() {
    let mut p = policy();
    p.only_namespaces = ["shop".to_owned()].into();
    let mut w = workload(Kind::Deployment, &[("app", "nginx")], &[]);
    assert_eq!(decide(&w, &p)[0].decision, Decision::Clone);
    w.namespace = "other".into();
    assert_eq!(decide(&w, &p)[0].decision, Decision::IgnoredNamespace);
}

#[test]
fn gitops_managed_workloads_are_cloned_but_not_patched_unless_asked() {
    let cases: [(&str, &str, bool); 4] = [
        (
            "argocd.argoproj.io/tracking-id",
            "shop:apps/Deployment:shop/web",
            true,
        ),
        ("argocd.argoproj.io/instance", "shop", false),
        ("kustomize.toolkit.fluxcd.io/name", "apps", false),
        ("helm.toolkit.fluxcd.io/name", "web", false),
    ];
    for (key, value, annotation) in cases {
        let mut w = workload(Kind::Deployment, &[("app", "nginx")], &[]);
        if annotation {
            w.annotations.insert(key.into(), value.into());
        } else {
            w.labels.insert(key.into(), value.into());
        }
        let plans = decide(&w, &policy());
        assert!(
            matches!(plans[0].decision, Decision::GitOpsManaged { .. }),
            "{key}"
        );
        assert_eq!(to_mirror(&plans).len(), 1);
        assert!(patch(&w, &plans, &mirrored(Pin::Digest)).is_none());
        let mut anyway = policy();
        anyway.patch_gitops_managed = true;
        assert_eq!(decide(&w, &anyway)[0].decision, Decision::Clone, "{key}");
    }
    // The Helm label alone is not Argo CD; with kubectl's last-applied annotation it is.
    let mut w = workload(Kind::Deployment, &[("app", "nginx")], &[]);
    w.labels
        .insert("app.kubernetes.io/instance".into(), "web".into());
    assert_eq!(decide(&w, &policy())[0].decision, Decision::Clone);
    w.annotations.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        "{}".into(),
    );
    assert!(matches!(
        decide(&w, &policy())[0].decision,
        Decision::GitOpsManaged { .. }
    ));
}

#[test]
fn invalid_references_are_reported_and_never_copied() {
    let w = workload(
        Kind::Deployment,
        &[("bad", "NGINX:1"), ("good", "nginx:1")],
        &[],
    );
    let plans = decide(&w, &policy());
    assert!(matches!(
        &plans[0].decision,
        Decision::InvalidReference { error } if error.contains("NGINX:1")
    ));
    assert_eq!(to_mirror(&plans).len(), 1);
    let (p, _) = plan_and_apply(&w, Pin::Digest);
    assert_eq!(p.changes.len(), 1, "the valid container is still patched");
}

#[test]
fn a_container_without_a_verified_copy_is_not_patched() {
    let w = workload(Kind::Deployment, &[("a", "nginx"), ("b", "redis")], &[]);
    let plans = decide(&w, &policy());
    let only_nginx = |s: &ImageRef| {
        if s.path() == "library/nginx" {
            mirrored(Pin::Digest)(s)
        } else {
            None
        }
    };
    let p = patch(&w, &plans, &only_nginx).unwrap();
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].container, "a");
    assert!(patch(&w, &plans, &|_| None).is_none());
}

#[test]
fn digest_and_tag_pinning() {
    let w = workload(Kind::Deployment, &[("app", "nginx:1.27")], &[]);
    let (p, _) = plan_and_apply(&w, Pin::Digest);
    assert!(p.changes[0].to.contains(":1.27@sha256:"));
    let (p, _) = plan_and_apply(&w, Pin::Tag);
    assert_eq!(
        p.changes[0].to,
        "registry.example.com/backup/docker.io_library_nginx:1.27"
    );
}

#[test]
fn a_concurrent_edit_makes_the_patch_fail_instead_of_being_overwritten() {
    let w = workload(Kind::Deployment, &[("app", "nginx:1.27")], &[]);
    let plans = decide(&w, &policy());
    let p = patch(&w, &plans, &mirrored(Pin::Digest)).unwrap();
    let mut edited = object(&w);
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert!(apply(&edited, &p.patch).is_err());
}

#[test]
fn a_new_container_later_is_added_to_the_existing_record() {
    let w = workload(Kind::Deployment, &[("a", "nginx:1")], &[]);
    let (_, patched) = plan_and_apply(&w, Pin::Digest);
    let mut later = reread(&w, &patched);
    later.containers.push(Container {
        name: "b".into(),
        image: "redis:7".into(),
        init: false,
        index: 1,
    });
    let mut doc = patched.clone();
    doc["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "b", "image": "redis:7"}));
    let plans = decide(&later, &policy());
    let p = patch(&later, &plans, &mirrored(Pin::Digest)).unwrap();
    assert_eq!(p.changes.len(), 1);
    let after = reread(&later, &apply(&doc, &p.patch).unwrap());
    let recorded = original_images(&after.annotations).unwrap();
    assert_eq!(recorded.keys().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn operations_are_written_as_rfc_6902_objects() {
    let ops = vec![
        Op::Test {
            path: "/a~1b".into(),
            value: json!("x"),
        },
        Op::Replace {
            path: "/a~1b".into(),
            value: json!("y"),
        },
        Op::Add {
            path: "/c".into(),
            value: json!({"k": "v"}),
        },
        Op::Remove { path: "/d".into() },
    ];
    let wire = serde_json::to_string(&ops).unwrap();
    assert_eq!(
        wire,
        r#"[{"op":"test","path":"/a~1b","value":"x"},{"op":"replace","path":"/a~1b","value":"y"},{"op":"add","path":"/c","value":{"k":"v"}},{"op":"remove","path":"/d"}]"#
    );
    // As admission and the API server read it.
    let read: json_patch::Patch = serde_json::from_str(&wire).unwrap();
    assert_eq!(read.0.len(), ops.len());
    assert_eq!(escape("a~b/c"), "a~0b~1c");
}

#[test]
fn annotation_keys_are_escaped_in_the_pointer() {
    let mut w = workload(Kind::Deployment, &[("a", "nginx")], &[]);
    w.annotations.insert("other".into(), "x".into());
    let plans = decide(&w, &policy());
    let p = patch(&w, &plans, &mirrored(Pin::Digest)).unwrap();
    let last = serde_json::to_value(p.patch.last().unwrap()).unwrap();
    assert_eq!(
        last["path"],
        "/metadata/annotations/image-cloner.io~1original-images"
    );
}

fn with_sources(include: &[&str], exclude: &[&str]) -> Policy {
    use crate::source_policy::{Glob, SourceFilter};
    let globs = |l: &[&str]| l.iter().map(|p| Glob::parse(p).unwrap()).collect();
    let mut p = policy();
    p.sources.filter = SourceFilter {
        include: globs(include),
        exclude: globs(exclude),
    };
    p
}

#[test]
fn the_source_filters_decide_excluded_before_anything_is_copied() {
    let w = workload(
        Kind::Deployment,
        &[
            ("web", "nginx:1.27"),
            ("corp", "registry.corp.internal/team/app:3"),
            ("quay", "quay.io/org/tool:1"),
            ("done", &format!("{BACKUP}/docker.io_library_redis:7")),
        ],
        &[],
    );
    let plans = decide(&w, &with_sources(&["docker.io/*"], &["*.internal/*"]));
    let decisions: Vec<_> = plans.iter().map(|p| p.decision.clone()).collect();
    assert_eq!(
        decisions,
        [
            Decision::Clone,
            Decision::Excluded {
                rule: "matches source_exclude \"*.internal/*\"".into()
            },
            Decision::Excluded {
                rule: "matches no source_include pattern".into()
            },
            // A copy already in the backup is converged, whatever the filters say.
            Decision::AlreadyInBackup,
        ]
    );
    assert_eq!(to_mirror(&plans), [ImageRef::parse("nginx:1.27").unwrap()]);
    let p = patch(&w, &plans, &mirrored(Pin::Digest)).unwrap();
    assert_eq!(p.changes.len(), 1, "only the included image is patched");
    assert_eq!(plans[1].decision.label(), "excluded");
}

#[test]
fn private_sources_are_neither_copied_nor_patched() {
    use crate::source_policy::PrivateSources;
    let w = workload(
        Kind::Deployment,
        &[("a", "ghcr.io/org/private:1"), ("b", "nginx:1.27")],
        &[],
    );
    let mut policy = policy();
    let mut plans = decide(&w, &policy);
    assert_eq!(privacy_to_check(&plans, &policy).len(), 2);
    policy.sources.private = PrivateSources::parse(&["ghcr.io".into()]).unwrap();
    assert_eq!(
        privacy_to_check(&plans, &policy),
        [ImageRef::parse("nginx:1.27").unwrap()],
        "ghcr.io's private images may be copied: not asked"
    );
    let private = BTreeSet::from([ImageRef::parse("ghcr.io/org/private:1")
        .unwrap()
        .canonical()
        .into_owned()]);
    mark_private(&mut plans, &private);
    assert_eq!(plans[0].decision, Decision::PrivateSource);
    assert_eq!(plans[0].decision.label(), "private-source");
    assert_eq!(plans[1].decision, Decision::Clone);
    assert_eq!(to_mirror(&plans), [ImageRef::parse("nginx:1.27").unwrap()]);
    let p = patch(&w, &plans, &mirrored(Pin::Digest)).unwrap();
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].container, "b");
}

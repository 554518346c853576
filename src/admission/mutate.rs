//! The mutating webhook's rule, pure: the JSON Patch the daemon would write, applied at admission
//! instead. The same [`patch::patch`](crate::reconcile::patch::patch) builds it from the same
//! plans — same naming and pinning, the `image-cloner.io/original-images` annotation, a `test`
//! op on every image it replaces — with the copies the mirror has verified, and the pull secret
//! added to `imagePullSecrets` when the namespace's pods pull the copies with one. An image
//! without a verified copy is left as it is (its copy is queued; the daemon patches it later).

use crate::admission::copies::Verified;
use crate::reconcile::patch::{self, PatchPlan};
use crate::reconcile::plan::{ContainerPlan, Decision};
use crate::workload::Workload;

/// The patch for the object under review, with `pull_secret` added as the daemon's patch adds
/// it; `None` when nothing changes.
pub fn mutation(
    w: &Workload,
    plans: &[ContainerPlan],
    verified: &Verified,
    pull_secret: Option<&str>,
) -> Option<PatchPlan> {
    patch::patch_pulling(
        w,
        plans,
        &|s| verified.get(s.canonical().as_ref()).cloned(),
        pull_secret,
    )
}

/// The first copy the patch would point at: what the pull gate is asked about, as the
/// daemon asks it before a namespace's patch. `None` when nothing would be patched.
pub fn first_copy<'a>(plans: &[ContainerPlan], verified: &'a Verified) -> Option<&'a str> {
    plans
        .iter()
        .filter(|p| p.decision == Decision::Clone)
        .find_map(|p| verified.get(p.source.as_ref()?.canonical().as_ref()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::admission::owners::{OwnerMeta, Owners, pod_plans};
    use crate::admission::review::decode;
    use crate::image::naming::{BackupRegistry, Naming};
    use crate::image::reference::ImageRef;
    use crate::reconcile::patch::{ORIGINAL_IMAGES_ANNOTATION, original_images};
    use crate::reconcile::plan::{Policy, decide};
    use crate::workload::Kind;

    const COPY: &str = "backup.example/mirror/docker.io_library_nginx:1.27@sha256:aaaa";

    fn policy() -> Policy {
        Policy {
            backup: BackupRegistry::parse("backup.example/mirror").expect("valid"),
            naming: Naming::Flat,
            ignored_namespaces: BTreeSet::from(["kube-system".to_owned()]),
            only_namespaces: BTreeSet::new(),
            patch_gitops_managed: false,
            sources: Default::default(),
            refs: Default::default(),
        }
    }

    fn verified() -> Verified {
        let nginx = ImageRef::parse("nginx:1.27").expect("valid");
        Verified::from([(nginx.canonical().into_owned(), COPY.to_owned())])
    }

    fn deployment(annotations: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.27"},
                {"name": "cache", "image": "redis:7.4"}
            ]}}}
        })
    }

    /// Applies the mutation as the API server does; the object after admission.
    fn admitted(kind: Kind, object: &Value, plans: &[ContainerPlan]) -> Value {
        let d = decode(kind, object, "shop", false).expect("decodes");
        match mutation(&d.workload, plans, &verified(), None) {
            Some(p) => crate::reconcile::plan_tests::apply(object, &p.patch).expect("applies"),
            None => object.clone(),
        }
    }

    #[test]
    fn a_deployment_is_created_on_its_verified_copies_with_the_record_for_restore() {
        let obj = deployment(json!({"team": "shop"}));
        let d = decode(Kind::Deployment, &obj, "shop", false).expect("decodes");
        let out = admitted(Kind::Deployment, &obj, &decide(&d.workload, &policy()));
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], COPY);
        assert_eq!(
            containers[1]["image"], "redis:7.4",
            "no verified copy: unchanged"
        );
        assert_eq!(out["metadata"]["annotations"]["team"], "shop");
        let annotations = serde_json::from_value(out["metadata"]["annotations"].clone())
            .expect("string annotations");
        let recorded = original_images(&annotations).expect("the record");
        assert_eq!(recorded["web"].original, "nginx:1.27");
        assert_eq!(recorded["web"].backup, COPY);
        assert!(!recorded.contains_key("cache"));
    }

    #[test]
    fn opted_out_and_gitops_managed_workloads_are_admitted_unchanged() {
        for annotations in [
            json!({"image-cloner.io/skip": "true"}),
            json!({"argocd.argoproj.io/tracking-id": "app:apps/Deployment:shop/web"}),
        ] {
            let obj = deployment(annotations);
            let d = decode(Kind::Deployment, &obj, "shop", false).expect("decodes");
            let plans = decide(&d.workload, &policy());
            assert!(first_copy(&plans, &verified()).is_none());
            assert!(mutation(&d.workload, &plans, &verified(), None).is_none());
        }
    }

    /// The namespace's pods pull the copies with the provisioned Secret: the same patch adds it
    /// to `imagePullSecrets` and records it, as the daemon's does, so `restore` takes it out.
    #[test]
    fn the_pull_secret_goes_in_with_the_copy() {
        let obj = deployment(json!({}));
        let d = decode(Kind::Deployment, &obj, "shop", false).expect("decodes");
        let plans = decide(&d.workload, &policy());
        assert_eq!(first_copy(&plans, &verified()), Some(COPY));
        let p = mutation(&d.workload, &plans, &verified(), Some("image-cloner-pull"))
            .expect("a mutation");
        let out = crate::reconcile::plan_tests::apply(&obj, &p.patch).expect("applies");
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["image"], COPY);
        assert_eq!(
            spec["imagePullSecrets"],
            json!([{"name": "image-cloner-pull"}])
        );
        assert_eq!(
            out["metadata"]["annotations"]["image-cloner.io/pull-secret"],
            "image-cloner-pull"
        );
    }

    /// A source the screen found private is neither rewritten nor asked about.
    #[test]
    fn a_private_source_is_admitted_unchanged() {
        let obj = deployment(json!({}));
        let d = decode(Kind::Deployment, &obj, "shop", false).expect("decodes");
        let mut plans = decide(&d.workload, &policy());
        let nginx = ImageRef::parse("nginx:1.27")
            .expect("valid")
            .canonical()
            .into_owned();
        crate::reconcile::plan::mark_private(&mut plans, &BTreeSet::from([nginx]));
        assert!(first_copy(&plans, &verified()).is_none());
        assert!(mutation(&d.workload, &plans, &verified(), None).is_none());
    }

    fn pod(owner: Option<(&str, &str)>) -> Value {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "web-"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
        });
        if let Some((api_version, kind)) = owner {
            pod["metadata"]["ownerReferences"] = json!([{"apiVersion": api_version, "kind": kind, "name": "owner", "uid": "u", "controller": true}]);
        }
        pod
    }

    fn owner(kind: Kind, annotations: Value) -> OwnerMeta {
        OwnerMeta {
            kind,
            name: "owner".into(),
            annotations: serde_json::from_value(annotations).expect("annotations"),
            labels: Default::default(),
        }
    }

    /// The Pod after admission, or `None` when its owner's template will carry the copy.
    fn pod_admitted(owners: &Owners) -> Option<Value> {
        let obj = pod(None);
        let d = decode(Kind::Pod, &obj, "shop", false).expect("decodes");
        let planned = pod_plans(&d.workload, owners, &policy());
        (!planned.left_to_owner).then(|| admitted(Kind::Pod, &obj, &planned.plans))
    }

    #[test]
    fn pods_are_rewritten_only_where_no_template_will_carry_the_copy() {
        let gitops = json!({"argocd.argoproj.io/tracking-id": "x"});
        let rewritten = [
            Owners::Bare,
            Owners::Foreign {
                kind: "Rollout".into(),
            },
            Owners::Known(vec![owner(Kind::Job, json!({}))]),
            Owners::Known(vec![
                owner(Kind::Job, json!({})),
                owner(Kind::CronJob, json!({})),
            ]),
            Owners::Known(vec![
                owner(Kind::ReplicaSet, json!({})),
                owner(Kind::Deployment, gitops.clone()),
            ]),
        ];
        for owners in &rewritten {
            let out = pod_admitted(owners).unwrap_or_else(|| panic!("{owners:?}: left alone"));
            assert_eq!(out["spec"]["containers"][0]["image"], COPY, "{owners:?}");
            assert!(
                out["metadata"]["annotations"][ORIGINAL_IMAGES_ANNOTATION].is_string(),
                "{owners:?}"
            );
        }
        let left_to_owner = [
            Owners::Known(vec![
                owner(Kind::ReplicaSet, json!({})),
                owner(Kind::Deployment, json!({})),
            ]),
            Owners::Known(vec![owner(Kind::StatefulSet, json!({}))]),
        ];
        for owners in &left_to_owner {
            assert!(pod_admitted(owners).is_none(), "{owners:?}: rewritten");
        }
        let opted_out = Owners::Known(vec![
            owner(Kind::Job, json!({})),
            owner(Kind::CronJob, json!({"image-cloner.io/skip": "true"})),
        ]);
        let out = pod_admitted(&opted_out).expect("judged itself");
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:1.27");
    }
}

//! The resource types the simulator serves, as the real API server's discovery names them.

/// One REST resource: enough to route a path, answer discovery and name it in errors.
#[derive(Debug)]
pub struct ResourceType {
    /// API group; empty for the core (`/api/v1`) group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Lower-case plural, the path segment and the name used in RBAC and in error messages.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Whether `metadata.generation` is kept (it is for objects with a spec a controller acts on).
    pub generation: bool,
    /// Whether a `status` subresource exists: then writes to the main resource keep the old status.
    pub status: bool,
    /// Whether a PUT on a missing object creates it (the registry's `AllowCreateOnUpdate`).
    pub create_on_update: bool,
    /// What discovery lists and the server answers; other verbs get 405.
    pub verbs: &'static [&'static str],
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: how the real server names a resource
    /// in NotFound, AlreadyExists and Conflict messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`, or `Pod`: how the real server names a kind in Invalid messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        self.verbs
    }
}

macro_rules! resource {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $namespaced:expr,
     [$($short:expr),*], generation: $gen:expr, status: $status:expr, create_on_update: $cou:expr) => {
        ResourceType {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: &[$($short),*],
            generation: $gen,
            status: $status,
            create_on_update: $cou,
            verbs: VERBS,
        }
    };
}

/// A create-only authorization.k8s.io/v1 review, answered and never stored
/// (`access_review.rs`).
macro_rules! review {
    ($kind:expr, $plural:expr, $singular:expr) => {
        ResourceType {
            group: "authorization.k8s.io",
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: false,
            short_names: &[],
            generation: false,
            status: false,
            create_on_update: false,
            verbs: &["create"],
        }
    };
}

/// Every resource served. Flags follow each resource's registry strategy in
/// kubernetes/pkg/registry/<group>/<resource>/strategy.go.
pub static RESOURCES: &[ResourceType] = &[
    resource!("", "v1", "Namespace", "namespaces", "namespace", false, ["ns"], generation: false, status: true, create_on_update: false),
    resource!("", "v1", "Pod", "pods", "pod", true, ["po"], generation: false, status: true, create_on_update: false),
    resource!("", "v1", "Secret", "secrets", "secret", true, [], generation: false, status: false, create_on_update: false),
    resource!("", "v1", "ConfigMap", "configmaps", "configmap", true, ["cm"], generation: false, status: false, create_on_update: false),
    resource!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, ["sa"], generation: false, status: false, create_on_update: false),
    resource!("", "v1", "Service", "services", "service", true, ["svc"], generation: false, status: true, create_on_update: true),
    resource!("", "v1", "Event", "events", "event", true, ["ev"], generation: false, status: false, create_on_update: true),
    resource!("events.k8s.io", "v1", "Event", "events", "event", true, ["ev"], generation: false, status: false, create_on_update: true),
    resource!("apps", "v1", "Deployment", "deployments", "deployment", true, ["deploy"], generation: true, status: true, create_on_update: false),
    resource!("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, ["sts"], generation: true, status: true, create_on_update: false),
    resource!("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, ["ds"], generation: true, status: true, create_on_update: false),
    resource!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, ["rs"], generation: true, status: true, create_on_update: false),
    resource!("batch", "v1", "Job", "jobs", "job", true, [], generation: true, status: true, create_on_update: false),
    resource!("batch", "v1", "CronJob", "cronjobs", "cronjob", true, ["cj"], generation: true, status: true, create_on_update: false),
    resource!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, [], generation: false, status: false, create_on_update: true),
    resource!("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, ["pdb"], generation: true, status: true, create_on_update: false),
    resource!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, [], generation: false, status: false, create_on_update: true),
    resource!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, [], generation: false, status: false, create_on_update: true),
    resource!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, [], generation: false, status: false, create_on_update: true),
    resource!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", false, [], generation: false, status: false, create_on_update: true),
    review!(
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview"
    ),
    review!(
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview"
    ),
    resource!("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", false, [], generation: true, status: false, create_on_update: false),
    resource!("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "validatingwebhookconfiguration", false, [], generation: true, status: false, create_on_update: false),
];

/// The resource served at `group`/`version` under `plural`.
pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for an object's `apiVersion` and `kind` (for seeding and server-side apply).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The resource serving objects of `kind`, the core group's first (an Event is core/v1's).
pub fn of_kind(kind: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// The group/versions served, in the order discovery lists them (core first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_real_server_does() {
        let d = by_path("apps", "v1", "deployments").expect("deployments");
        assert_eq!(d.qualified(), "deployments.apps");
        assert_eq!(d.qualified_kind(), "Deployment.apps");
        let p = by_path("", "v1", "pods").expect("pods");
        assert_eq!(p.qualified(), "pods");
        assert_eq!(p.api_version(), "v1");
        assert!(by_kind("batch/v1", "CronJob").is_some());
        assert_eq!(group_versions()[0], ("", "v1"));
    }
}

//! The workload kinds image-cloner reads, and the one table from a kind to its Rust type.
//!
//! Code that works per kind (the controllers, `plan`, `restore`, `run --once`) is generic over
//! [`WorkloadKind`] and reaches the type of a runtime [`Kind`] through [`dispatch`]. Adding a
//! kind is one `impl WorkloadKind` (in `kinds.rs`) and one name in the table below.

use serde::{Deserialize, Serialize};

use crate::workload::WorkloadKind;
use crate::workload::partial;

/// Runs code generic over [`WorkloadKind`] for a kind known only at run time.
pub trait KindVisitor {
    type Output;
    fn visit<K: WorkloadKind>(self) -> Self::Output;
}

macro_rules! workload_kinds {
    ($($kind:ident),+ $(,)?) => {
        /// The workload kinds image-cloner reads. Each is the name of its type in
        /// [`crate::workload::partial`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Kind {
            $($kind),+
        }

        impl Kind {
            pub const ALL: &[Kind] = &[$(Kind::$kind),+];
        }

        /// Calls `visitor` with the Rust type of `kind`.
        pub fn dispatch<V: KindVisitor>(kind: Kind, visitor: V) -> V::Output {
            match kind {
                $(Kind::$kind => visitor.visit::<partial::$kind>()),+
            }
        }
    };
}

// The table: one name per kind.
workload_kinds!(
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    CronJob,
    Job,
    Pod,
);

/// What planning and discovery need to know of a kind, read from its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindFacts {
    /// JSON pointer of the pod spec inside the object.
    pub pod_spec_pointer: &'static str,
    /// A Job's pod template is immutable once created: its images are copied, never patched.
    pub pod_template_mutable: bool,
    /// Read only when a setting asks for it (bare Pods).
    pub opt_in: bool,
    /// `apps/v1`, `batch/v1`, `v1`: from the type's `Resource` metadata.
    pub api_version: &'static str,
    /// The resource name in the API path (`deployments`).
    pub plural: &'static str,
}

struct Facts;

impl KindVisitor for Facts {
    type Output = KindFacts;
    fn visit<K: WorkloadKind>(self) -> KindFacts {
        KindFacts {
            pod_spec_pointer: K::POD_SPEC_POINTER,
            pod_template_mutable: K::POD_TEMPLATE_MUTABLE,
            opt_in: K::OPT_IN,
            api_version: <K::Full as k8s_openapi::Resource>::API_VERSION,
            plural: <K::Full as k8s_openapi::Resource>::URL_PATH_SEGMENT,
        }
    }
}

impl Kind {
    pub fn facts(self) -> KindFacts {
        dispatch(self, Facts)
    }

    pub fn pod_spec_pointer(self) -> &'static str {
        self.facts().pod_spec_pointer
    }

    pub fn pod_template_mutable(self) -> bool {
        self.facts().pod_template_mutable
    }

    /// The kinds a daemon with these settings reads.
    pub fn wanted(bare_pods: bool) -> Vec<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| bare_pods || !k.facts().opt_in)
            .collect()
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reaches_its_own_type() {
        struct Name;
        impl KindVisitor for Name {
            type Output = Kind;
            fn visit<K: WorkloadKind>(self) -> Kind {
                K::KIND
            }
        }
        for kind in Kind::ALL {
            assert_eq!(dispatch(*kind, Name), *kind);
        }
    }

    #[test]
    fn facts_come_from_the_types() {
        let d = Kind::Deployment.facts();
        assert_eq!((d.api_version, d.plural), ("apps/v1", "deployments"));
        assert_eq!(d.pod_spec_pointer, "/spec/template/spec");
        let c = Kind::CronJob.facts();
        assert_eq!((c.api_version, c.plural), ("batch/v1", "cronjobs"));
        assert_eq!(c.pod_spec_pointer, "/spec/jobTemplate/spec/template/spec");
        assert!(!Kind::Job.pod_template_mutable());
        assert_eq!(Kind::Pod.facts().api_version, "v1");
        assert_eq!(Kind::Pod.pod_spec_pointer(), "/spec");
    }

    #[test]
    fn bare_pods_are_opt_in() {
        assert!(!Kind::wanted(false).contains(&Kind::Pod));
        assert!(Kind::wanted(true).contains(&Kind::Pod));
        assert_eq!(Kind::wanted(true).len(), Kind::ALL.len());
    }
}

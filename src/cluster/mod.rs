//! The Kubernetes side: the client, and the controllers that feed workloads to reconcile.

pub mod client;
pub mod controller;

//! The Kubernetes side: the client and discovery, the daemon's controllers and namespace cache,
//! `run --once`, and paged lists. Uses reconcile for each workload.

pub mod client;
pub mod controller;
pub mod list;
pub mod namespaces;
pub mod once;
pub mod own_writes;
pub mod parking;

#[cfg(test)]
mod list_tests;
#[cfg(test)]
mod parking_tests;

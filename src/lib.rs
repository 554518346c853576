//! image-cloner: copies the public images a cluster runs into a registry you own.
//!
//! The folders read as the pipeline of DESIGN.md, from the bottom up: `image`, `workload` and
//! `source_policy` (pure), `registry`, `settings` and `reconcile`, then `cluster`,
//! `leadership` and `admission`, then `ops` and `pullsecret`, then `commands`.

pub mod admission;
pub mod audit;
pub mod cluster;
pub mod commands;
pub mod image;
pub mod leadership;
pub mod ops;
pub mod pullsecret;
pub mod reconcile;
pub mod registry;
pub mod settings;
pub mod source_policy;
pub mod workload;

#[cfg(test)]
mod sim_client;

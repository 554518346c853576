//! image-cloner: copies the public images a cluster runs into a registry you own.
//!
//! The folders read as the pipeline of DESIGN.md, from the bottom up: `image` and `workload`
//! (pure), `registry`, `settings` and `reconcile`, then `cluster`, `admission` and `ops`, then `commands`.

pub mod admission;
pub mod cluster;
pub mod commands;
pub mod image;
pub mod ops;
pub mod reconcile;
pub mod registry;
pub mod settings;
pub mod workload;

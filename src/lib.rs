//! image-cloner: copies the public images a cluster runs into a registry you own.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod copy_command;
pub mod docker_config;
pub mod health;
pub mod logging;
pub mod manifest;
pub mod manifest_head;
pub mod metrics;
pub mod mirror;
pub mod naming;
pub mod partial;
pub mod plan;
pub mod plan_command;
pub mod reconcile;
pub mod reference;
pub mod restore_command;
pub mod settings;
pub mod skopeo;
pub mod workload;

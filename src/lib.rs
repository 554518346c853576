//! image-cloner: copies the public images a cluster runs into a registry you own.

pub mod cli;
pub mod copy_command;
pub mod docker_config;
pub mod logging;
pub mod manifest;
pub mod mirror;
pub mod naming;
pub mod plan;
pub mod reference;
pub mod settings;
pub mod skopeo;
pub mod workload;

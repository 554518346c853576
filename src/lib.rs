//! image-cloner: copies the public images a cluster runs into a registry you own.

pub mod docker_config;
pub mod manifest;
pub mod naming;
pub mod reference;
pub mod settings;
pub mod skopeo;

//! The scenarios, each a promise of the README put under load and counted.

pub mod api_faults;
pub mod convergence;
pub mod credentials;
pub mod editor;
pub mod kills;
pub mod populate;
pub mod registry_faults;

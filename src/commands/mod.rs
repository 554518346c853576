//! One file per subcommand.

pub mod app;
pub mod copy;
pub mod plan;
pub mod restore;

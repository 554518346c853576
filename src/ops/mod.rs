//! The operator's surface: health, metrics, logging; and the process's allocator.

pub mod allocator;
pub mod audit_metrics;
#[cfg(test)]
pub(crate) mod captured_lines;
pub mod health;
pub mod huge_pages;
mod log_fields;
pub mod logging;
pub mod metrics;

//! Pure: the image reference grammar, backup naming and manifest facts. No I/O.

pub mod manifest;
pub mod naming;
pub mod reference;

#[cfg(test)]
pub(crate) mod properties;

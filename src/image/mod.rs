//! Pure: the image reference grammar, backup naming and manifest facts. No I/O (`parsed`
//! remembers parses, which changes no answer).

pub mod manifest;
pub mod naming;
pub mod parsed;
pub mod reference;

#[cfg(test)]
pub(crate) mod properties;

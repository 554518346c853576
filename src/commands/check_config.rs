//! `image-cloner check-config`: the effective settings and where each came from, credentials
//! redacted. Invalid settings never get here: loading them already exited 2, naming each.

use crate::settings::Settings;

pub fn run(settings: &Settings) -> bool {
    print!("{settings}");
    true
}

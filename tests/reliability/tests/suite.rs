//! The reliability suite (see the crate's documentation): skipped unless `RELIABILITY` is set.

fn main() -> std::process::ExitCode {
    reliability::main(std::path::Path::new(env!("CARGO_BIN_EXE_recording-skopeo")))
}

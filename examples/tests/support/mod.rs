//! What the real-process tests share: the example programs they spawn.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/examples` of this test binary, after building `names` there with the
/// same profile. Always through cargo (a no-op when they are fresh): a test run filtered
/// with `--test` builds no examples, and stale ones would be tested silently. A failed
/// build fails the test.
pub fn built_examples(names: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/TEST-HASH
    let profile_dir: &Path = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let target_dir = profile_dir.parent().expect("target/<profile>");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "-p", "a3m-examples", "--target-dir"])
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }
    for name in names {
        command.args(["--example", name]);
    }
    eprintln!("building the examples: {command:?}");
    let status = command.status().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        status.success(),
        "`{command:?}` failed ({status}): build the examples with `cargo build -p a3m-examples \
         --example NAME` (same profile as the tests)"
    );
    profile_dir.join("examples")
}

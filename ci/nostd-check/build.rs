//! Link flags for a binary with no Rust std: keep the C runtime's startup files (they call
//! `main` and exit with its result) and link the C library they need, which std would
//! otherwise have brought in.
fn main() {
    println!("cargo:rustc-link-arg-bins=-lc");
}

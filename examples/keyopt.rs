//! `--key-file PATH`: seal the node's datagrams with the pre-shared key in that file (see
//! `a3m::keyfile`: 64 hex digits or base64, mode 0600). Shared by the examples through
//! `#[path = "keyopt.rs"] mod keyopt;`.

use a3m::NodeBuilder;
use a3m_examples::{Args, fail};

/// The option's name, for `Args::reject_unknown`.
pub const KEY_FILE: &str = "key-file";

/// `builder` with the key of `--key-file`, if given; exits with the reason if the file is
/// unusable.
pub fn with_key_file(builder: NodeBuilder, args: &Args) -> NodeBuilder {
    match args.get::<String>(KEY_FILE) {
        None => builder,
        Some(path) => builder.psk_file(&path).unwrap_or_else(|e| fail(&format!("--key-file: {e}"))),
    }
}

/// Why links may not come up, if the node refused a peer's datagrams (or a peer refused its
/// own) for a sealing mismatch: `" (peer ... has no key ...)"`, or empty.
pub fn refusal(node: &a3m::Node) -> String {
    node.last_refusal().map_or_else(String::new, |r| format!(" ({r})"))
}

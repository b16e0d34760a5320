//! Pre-shared key files: 32 bytes written as 64 hexadecimal digits or as base64.
//!
//! A key file holds one key and nothing else but blank lines and comment lines starting with
//! `#`. The key is 64 hexadecimal digits (either case) or the standard base64 of 32 bytes
//! (44 characters with its `=` padding, or 43 without). On Unix the file must not be
//! readable or writable by group or others (`chmod 600`): [`read_key_file`] refuses it
//! otherwise, as ssh does for private keys.
//!
//! ```no_run
//! let key = a3m::keyfile::generate_key()?;
//! a3m::keyfile::write_key_file("/tmp/a3m.key".as_ref(), &key)?;
//! let again = a3m::keyfile::read_key_file("/tmp/a3m.key".as_ref())?;
//! assert_eq!(key, again);
//! # Ok::<(), a3m::Error>(())
//! ```

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Bytes of a key.
pub const KEY_LEN: usize = 32;

/// Reads the key in the file at `path` (see the [module docs](self) for the format), after
/// checking that only its owner may read it.
pub fn read_key_file(path: &Path) -> Result<[u8; KEY_LEN]> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::InvalidArgument(format!("cannot open key file {}: {e}", path.display()))
    })?;
    check_permissions(path, &file)?;
    let mut text = String::new();
    file.take(64 * 1024).read_to_string(&mut text).map_err(|e| {
        Error::InvalidArgument(format!("cannot read key file {}: {e}", path.display()))
    })?;
    parse_key(&text)
        .map_err(|why| Error::InvalidArgument(format!("key file {}: {why}", path.display())))
}

#[cfg(unix)]
fn check_permissions(path: &Path, file: &std::fs::File) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|e| Error::InvalidArgument(format!("key file {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::InvalidArgument(format!(
            "key file {} is accessible by group or others (mode {:03o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _file: &std::fs::File) -> Result<()> {
    Ok(())
}

/// Parses the text of a key file: the key as 64 hex digits or base64, comment lines (`#`)
/// and blank lines aside.
pub fn parse_key(text: &str) -> std::result::Result<[u8; KEY_LEN], String> {
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let [key] = lines.as_slice() else {
        return Err(format!("expected one line with the key, found {}", lines.len()));
    };
    if key.len() == 2 * KEY_LEN && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; KEY_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&key[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        return Ok(out);
    }
    let bytes = decode_base64(key).ok_or_else(|| {
        "the key is neither 64 hexadecimal digits nor base64 of 32 bytes".to_string()
    })?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| format!("the key is {} bytes long, not {KEY_LEN}", bytes.len()))
}

/// Standard base64 (RFC 4648 §4), padding optional; `None` on any other character.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be zero padding of a canonical encoding.
    if bits >= 6 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

/// A new random key from the operating system's random source.
pub fn generate_key() -> Result<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    os_random(&mut key)?;
    Ok(key)
}

/// Writes `key` as hex to a new file at `path`, readable and writable by its owner only.
/// Fails if the file exists.
pub fn write_key_file(path: &Path, key: &[u8; KEY_LEN]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        Error::InvalidArgument(format!("cannot create key file {}: {e}", path.display()))
    })?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(file, "# a3m pre-shared key\n{hex}")?;
    Ok(())
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<()> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| Error::Io(std::io::Error::other(format!("reading /dev/urandom: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_keys_parse_to_the_same_bytes() {
        let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 1) as u8);
        let hex: String = key.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_key(&format!("# comment\n\n  {hex}  \n")), Ok(key));
        // Standard base64 of the same 32 bytes.
        let b64 = "AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09o=";
        assert_eq!(parse_key(b64), Ok(key));
        assert_eq!(parse_key(b64.trim_end_matches('=')), Ok(key));
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        for bad in ["", "abc", &"0".repeat(63), &"g".repeat(64), "AAAA\nBBBB", "AQID"] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("a3m-keyfile-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("k");
        let _ = std::fs::remove_file(&path);
        let key = generate_key().unwrap();
        write_key_file(&path, &key).unwrap();
        assert_eq!(read_key_file(&path).unwrap(), key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

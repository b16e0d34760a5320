//! Shared helpers for the a3m example programs: a small `--flag value` argument parser.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed `--flag value` arguments plus positional words.
#[derive(Debug, Default)]
pub struct Args {
    flags: HashMap<String, Option<String>>,
    /// Words that are not flags, in order.
    pub positional: Vec<String>,
}

impl Args {
    /// Parses `std::env::args()` (skipping the program name). A flag followed by another flag
    /// or by nothing is a switch without value.
    pub fn from_env() -> Self {
        Self::parse(std::env::args().skip(1))
    }

    /// Parses the given words.
    pub fn parse(words: impl IntoIterator<Item = String>) -> Self {
        let mut args = Args::default();
        let mut words = words.into_iter().peekable();
        while let Some(w) = words.next() {
            if let Some(name) = w.strip_prefix("--") {
                let value = match words.peek() {
                    Some(next) if !next.starts_with("--") => words.next(),
                    _ => None,
                };
                args.flags.insert(name.to_string(), value);
            } else {
                args.positional.push(w);
            }
        }
        args
    }

    /// True if the switch `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    /// The value of `--name`, parsed; exits with a clear message if it does not parse.
    pub fn get<T: FromStr>(&self, name: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let raw = self.flags.get(name)?.as_deref().unwrap_or_else(|| {
            fail(&format!("--{name} needs a value"));
        });
        Some(raw.parse().unwrap_or_else(|e| fail(&format!("--{name} {raw}: {e}"))))
    }

    /// `--spin MICROS`: how long the node polls before sleeping ([`a3m::NodeBuilder::spin`]),
    /// by default [`a3m::DEFAULT_SPIN`].
    pub fn spin(&self) -> std::time::Duration {
        self.get("spin").map_or(a3m::DEFAULT_SPIN, std::time::Duration::from_micros)
    }

    /// The value of `--name`, or `default`.
    pub fn get_or<T: FromStr>(&self, name: &str, default: T) -> T
    where
        T::Err: std::fmt::Display,
    {
        self.get(name).unwrap_or(default)
    }

    /// The value of `--name`; exits with a clear message if it is missing.
    pub fn require<T: FromStr>(&self, name: &str) -> T
    where
        T::Err: std::fmt::Display,
    {
        self.get(name).unwrap_or_else(|| fail(&format!("missing --{name}")))
    }

    /// Exits with an error if a flag outside `known` was given.
    pub fn reject_unknown(&self, known: &[&str]) {
        for name in self.flags.keys() {
            if !known.contains(&name.as_str()) {
                fail(&format!("unknown flag --{name} (known: --{})", known.join(", --")));
            }
        }
    }
}

/// Prints `msg` to stderr and exits with status 2.
pub fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_values_and_switches() {
        let a = Args::parse(
            ["recv", "--count", "10", "--move", "--size", "3"].iter().map(|s| s.to_string()),
        );
        assert_eq!(a.positional, vec!["recv".to_string()]);
        assert_eq!(a.get::<u32>("count"), Some(10));
        assert!(a.has("move"));
        assert_eq!(a.get_or("size", 0usize), 3);
        assert_eq!(a.get::<u32>("absent"), None);
    }
}

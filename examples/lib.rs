//! Shared helpers for the a3m example programs (argument parsing).

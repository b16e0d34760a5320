#!/usr/bin/env bash
# Fuzz smoke test: runs the cargo-fuzz `decode` target (fuzz/fuzz_targets/decode.rs) for
# FUZZ_SECONDS seconds (default 60). Any crash, panic or failed round trip fails the run and
# leaves the input in fuzz/artifacts/decode/.
#
# cargo-fuzz needs nightly compiler flags. In order of preference this uses the rustup nightly
# toolchain, installs it with rustup, or falls back to the stable toolchain with
# RUSTC_BOOTSTRAP=1 (which cargo-fuzz supports); if none of these works it says so and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Picks how to call cargo so that it accepts nightly flags; sets the array `fuzz_cargo`.
pick_toolchain() {
    if cargo +nightly --version >/dev/null 2>&1; then
        fuzz_cargo=(cargo +nightly)
        return 0
    fi
    if command -v rustup >/dev/null 2>&1; then
        echo "fuzz-smoke: no nightly toolchain, trying: rustup toolchain install nightly"
        if timeout 600 rustup toolchain install nightly --profile minimal </dev/null \
            && cargo +nightly --version >/dev/null 2>&1; then
            fuzz_cargo=(cargo +nightly)
            return 0
        fi
        echo "fuzz-smoke: could not install nightly; falling back to stable + RUSTC_BOOTSTRAP=1"
    fi
    if cargo --version >/dev/null 2>&1; then
        fuzz_cargo=(env RUSTC_BOOTSTRAP=1 cargo)
        return 0
    fi
    return 1
}

if ! pick_toolchain; then
    echo "################################################################" >&2
    echo "fuzz-smoke: FAILED: no toolchain can build the fuzz target"      >&2
    echo "(no 'cargo +nightly', rustup could not install it, no cargo)"      >&2
    echo "################################################################" >&2
    exit 1
fi
echo "fuzz-smoke: using: ${fuzz_cargo[*]} ($("${fuzz_cargo[@]}" --version))"

cd fuzz
# The fuzz crate is its own workspace; keep its build out of any shared target dir.
unset CARGO_TARGET_DIR
mkdir -p corpus/decode
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
"${fuzz_cargo[@]}" fuzz run decode corpus/decode -- \
    -max_total_time="$seconds" -dict=decode.dict -print_final_stats=1 >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    tail -n 80 "$log"
    echo "fuzz-smoke: FAILED (exit $status); crashing inputs are in fuzz/artifacts/decode/" >&2
    exit "$status"
fi
grep -E '^Done [0-9]+ runs' "$log" || tail -n 5 "$log"
echo "fuzz-smoke: decode target: no crash in ${seconds}s"

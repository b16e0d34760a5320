#!/usr/bin/env bash
# Runs every loom model of the core (core/tests/loom_*.rs), one test binary at a time.
#
# Each file starts with #![cfg(loom)], so it only builds here, with `--cfg loom`, where
# a3m_core::sync hands out loom's Mutex and atomics. A lost wake-up shows up as a loom
# deadlock, a broken invariant as a failed assertion.
#
# Usage: ci/loom.sh [name...]    (names without the loom_ prefix; default: every model)
# Env:   LOOM_MAX_PREEMPTIONS  preemption bound (default 3; lower it if a model grows slow)
#        LOOM_TARGET_DIR       cargo target dir (default: target/loom)
set -euo pipefail

cd "$(dirname "$0")/.."

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom"
target_dir="${LOOM_TARGET_DIR:-target/loom}"

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for file in core/tests/loom_*.rs; do
        [ -e "$file" ] || continue
        name="$(basename "$file" .rs)"
        names+=("${name#loom_}")
    done
fi
if [ ${#names[@]} -eq 0 ]; then
    echo "loom: no core/tests/loom_*.rs models found" >&2
    exit 1
fi

for name in "${names[@]}"; do
    echo "== loom_${name} (LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS})"
    cargo test -p a3m-core --features std --release --target-dir "$target_dir" \
        --test "loom_${name}" -- --test-threads=1
done

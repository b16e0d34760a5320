#!/usr/bin/env bash
# Proves that a3m-core is no_std, two ways:
#  1. host: ci/nostd-check, a #![no_std] #![no_main] binary that encodes and decodes a datagram
#     with a3m-core, must link and run. If anything in core's dependency graph pulled in std,
#     std's panic handler would clash with the check's own and the link would fail.
#  2. bare metal: a3m-core builds for thumbv7em-none-eabihf (Cortex-M4, 32-bit, no 64-bit
#     atomics) with Debian's rustc-web building `core` (and `alloc`) from source, since no
#     rustup target can be downloaded here.
# Idempotent; runs as root in CI (CI=true, no stdin).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

echo "== no_std 1/2: link and run a #![no_std] binary using a3m-core (host)"
cargo build --release --manifest-path ci/nostd-check/Cargo.toml --target-dir target/nostd-check
bin=target/nostd-check/release/a3m-nostd-check
status=0
"$bin" || status=$?
if [ "$status" -ne 0 ]; then
    echo "no_std: FAILED: $bin exited with $status (round trip failed)" >&2
    exit 1
fi
echo "no_std: $bin ran, round trip ok"
size "$bin"

echo "== no_std 2/2: build a3m-core for thumbv7em-none-eabihf with Debian's rustc-web"
debian_rust=(rustc-web cargo-web rust-web-src)
if ! dpkg -s "${debian_rust[@]}" >/dev/null 2>&1; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo -n); fi
    echo "no_std: installing ${debian_rust[*]}"
    "${sudo[@]}" apt-get update -q </dev/null
    "${sudo[@]}" apt-get install -y -q "${debian_rust[@]}" </dev/null
fi
# rustc-web installs these names; call them directly, never the rustup shims on PATH.
rustc=/usr/bin/rustc
cargo=/usr/bin/cargo
for tool in "$rustc" "$cargo"; do
    if ! dpkg -S "$tool" 2>/dev/null | grep -qE '^(rustc|cargo)-web:'; then
        echo "no_std: FAILED: $tool is not from Debian's rustc-web/cargo-web" >&2
        exit 1
    fi
done
src="$("$rustc" --print sysroot)/lib/rustlib/src/rust/library/core"
if [ ! -d "$src" ]; then
    echo "no_std: FAILED: no core library source at $src (rust-web-src)" >&2
    exit 1
fi
echo "no_std: $("$rustc" --version)"

target=thumbv7em-none-eabihf
target_dir=target/thumbv7em
bare_metal_build() {
    RUSTC_BOOTSTRAP=1 RUSTC="$rustc" "$cargo" build --target "$target" -p a3m-core \
        --target-dir "$target_dir" "$@"
}
rlib_size() {
    local rlib="$target_dir/$target/$1/liba3m_core.rlib"
    ls -l "$rlib"
    # An rlib is an archive of objects: sum the code and data of all of them.
    echo "  text/data/bss of its objects: $(size -t "$rlib" 2>/dev/null | tail -n 1)"
}

echo "-- default features (no heap), debug"
bare_metal_build -Zbuild-std=core
rlib_size debug
echo "-- default features (no heap), release"
bare_metal_build -Zbuild-std=core --release
rlib_size release
echo "-- feature alloc, debug"
bare_metal_build -Zbuild-std=core,alloc --features alloc
rlib_size debug
echo "no_std: ok"

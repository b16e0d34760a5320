#!/usr/bin/env bash
# Type-checks the std crates for FreeBSD and macOS (the kqueue backend) without rustup targets:
# Debian's rustc-web/cargo-web build the standard library from source (rust-web-src), and
# `cargo check` needs no linker, so no BSD or Apple machine is involved.
#
# Usage: ci/cross.sh [package...]      (default: a3m-platform a3m)
# Env:   CROSS_TARGETS     targets to check (default: x86_64-unknown-freebsd aarch64-apple-darwin)
#        CROSS_TARGET_DIR  cargo target dir (default: target/cross)
set -euo pipefail

cd "$(dirname "$0")/.."

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
    packages=(a3m-platform a3m)
fi
read -r -a targets <<<"${CROSS_TARGETS:-x86_64-unknown-freebsd aarch64-apple-darwin}"
target_dir="${CROSS_TARGET_DIR:-target/cross}"
debs=(rustc-web cargo-web rust-web-src)

installed() {
    local deb
    for deb in "${debs[@]}"; do
        dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q '^install ok installed$' || return 1
    done
}

# The workspace's rust-version: an older rustc-web (bookworm's own 1.85, installed when the
# security lists were stale) cannot build it.
required="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)"
too_old() {
    local have
    have="$(dpkg-query -W -f='${Version}' rustc-web 2>/dev/null | sed 's/[^0-9.].*//')"
    [ -n "$required" ] && [ -n "$have" ] &&
        [ "$(printf '%s\n%s\n' "$required" "$have" | sort -V | head -n 1)" != "$required" ]
}

if installed && too_old; then
    echo "cross.sh: rustc-web is older than rust-version $required: refreshing the lists"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y "${debs[@]}"
elif ! installed; then
    export DEBIAN_FRONTEND=noninteractive
    # The -web packages come from the bookworm-security lists: refresh them only when the
    # packages are unknown to apt.
    if ! apt-cache show "${debs[@]}" >/dev/null 2>&1; then
        apt-get update
    fi
    apt-get install -y "${debs[@]}"
fi

# The packages' own binaries, never rustup's shims that may come first in PATH.
find_bin() { # deb, name
    dpkg -L "$1" | grep -E "/bin/$2(-web)?$" | grep -v '/share/' | head -n 1
}
rustc_bin="$(find_bin rustc-web rustc)"
cargo_bin="$(find_bin cargo-web cargo)"
if [ -z "$rustc_bin" ] || [ -z "$cargo_bin" ]; then
    echo "cross.sh: rustc or cargo not found in the rustc-web/cargo-web packages" >&2
    exit 1
fi
echo "cross.sh: $("$rustc_bin" --version), $("$cargo_bin" --version)"

package_args=()
for package in "${packages[@]}"; do
    package_args+=(-p "$package")
done

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
    echo "cross.sh: checking ${packages[*]} for $target"
    RUSTC_BOOTSTRAP=1 RUSTC="$rustc_bin" "$cargo_bin" check \
        -Zbuild-std=std,panic_abort \
        --target "$target" \
        --target-dir "$target_dir" \
        "${package_args[@]}" 2>&1 | tee "$log"
    # Warnings in our crates fail the check, as -D warnings does on the host (RUSTFLAGS would
    # also apply to the standard library built from source).
    if grep -Eq '^warning: `a3m[-a-z]*` \(' "$log"; then
        echo "cross.sh: warnings in a3m crates for $target" >&2
        exit 1
    fi
done
echo "cross.sh: ok (${targets[*]})"

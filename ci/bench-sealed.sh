#!/usr/bin/env bash
# a3m with and without sealing (pre-shared-key authenticated encryption, issue 15) beside
# ZeroMQ with CURVE, in one run: one-way push/pull throughput over loopback (127.0.0.1).
#
#   bash ci/bench-sealed.sh
#
# Not part of .ci/run: timings depend on the machine and its load. Modelled on ci/bench.sh
# (the helpers both use are in ci/bench-lib.sh). It installs
# Debian's libzmq3-dev if missing (built with libsodium, so it has CURVE), compiles
# ci/peers/zmq_curve_thr.c (and zmq_thr.c, plaintext ZeroMQ for context), builds a3m's
# local_thr/remote_thr in release, writes a fresh key file (mode 0600), then runs a3m
# plaintext, a3m sealed (--key-file), ZeroMQ CURVE and ZeroMQ plaintext alternately so that
# drifts of the machine hit all alike. It prints a table of medians, then per size S:
#
#   ratio sealed size=S a3m_over_zmq_curve=R   median msgs/s of sealed a3m / of ZeroMQ CURVE
#   ratio sealed_over_plain size=S a3m=R       median msgs/s of sealed a3m / of plaintext a3m
#
# If examples/rpc.rs takes --key-file, RPC round trips per second sealed and plaintext are
# measured too (`ratio sealed_over_plain rpc clients=C a3m=R`).
#
# Environment (defaults in brackets):
#   BENCH_REPS [3]           repetitions of every case and library
#   BENCH_COUNT [200000]     messages per throughput run
#   BENCH_SIZES [1 100 1000] message sizes in bytes
#   BENCH_RPC_COUNT [20000]  round trips per RPC run
#   BENCH_CLIENTS [1 4]      RPC client threads
#   BENCH_TIMEOUT [60]       seconds one program may run before it is killed
#   BENCH_PORT [18000]       first loopback port; each run takes the next one
#   BENCH_A3M_SPIN [50]      microseconds a3m nodes poll before sleeping (0: never)
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${BENCH_REPS:-3}
count=${BENCH_COUNT:-200000}
sizes=${BENCH_SIZES:-1 100 1000}
rpc_count=${BENCH_RPC_COUNT:-20000}
clients_list=${BENCH_CLIENTS:-1 4}
a3m_spin=${BENCH_A3M_SPIN:-50}
limit=${BENCH_TIMEOUT:-60}
port=${BENCH_PORT:-18000}
target=${CARGO_TARGET_DIR:-target}
peers=target/bench-peers
runs=$peers/runs-sealed
started=$SECONDS

# ---- The peers: Debian's ZeroMQ (with libsodium: CURVE) --------------------------------------
if ! [ -f /usr/include/zmq.h ]; then
    echo "installing libzmq3-dev" >&2
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libzmq3-dev >/dev/null
fi
mkdir -p "$peers" "$runs"
gcc -O2 -Wall -o "$peers/zmq_curve_thr" ci/peers/zmq_curve_thr.c -lzmq -lpthread
gcc -O2 -Wall -o "$peers/zmq_thr" ci/peers/zmq_thr.c -lzmq -lpthread

# ---- a3m's programs and a key ----------------------------------------------------------------
programs=(--example local_thr --example remote_thr)
have_rpc_key=no
if grep -q 'key-file\|keyopt' examples/rpc.rs 2>/dev/null; then
    have_rpc_key=yes
    programs+=(--example rpc)
fi
cargo build -q --release -p a3m-examples "${programs[@]}"
bin=$target/release/examples
keydir=$(mktemp -d)
trap 'rm -rf "$keydir"' EXIT
keyfile=$keydir/psk
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$keyfile"
chmod 600 "$keyfile"

# ---- Running one measurement (helpers shared with ci/bench.sh) --------------------------------
source ci/bench-lib.sh

thr() { # LIB SIZE
    local lib=$1 size=$2 key=thr.$2.$1
    next_port
    case $lib in
    a3m_plain | a3m_sealed)
        local sealing=()
        [ "$lib" = a3m_sealed ] && sealing=(--key-file "$keyfile")
        serve_and_run "$key" msgs_per_sec \
            -- "$bin/local_thr" "127.0.0.1:$port" "$size" "$count" --spin "$a3m_spin" \
            "${sealing[@]}" \
            -- "$bin/remote_thr" "127.0.0.1:$port" "$size" "$count" --spin "$a3m_spin" \
            "${sealing[@]}"
        ;;
    zmq_curve | zmq)
        serve_and_run "$key" msgs_per_sec \
            -- "$peers/${lib}_thr" local "tcp://127.0.0.1:$port" "$size" "$count" \
            -- "$peers/${lib}_thr" remote "tcp://127.0.0.1:$port" "$size" "$count"
        ;;
    esac
}

rpc() { # LIB CLIENTS
    local lib=$1 clients=$2 key=rpc.$2.$1
    next_port
    local sealing=()
    [ "$lib" = a3m_sealed ] && sealing=(--key-file "$keyfile")
    serve_and_run "$key" rps \
        -- "$bin/rpc" server "127.0.0.1:$port" 100 "$clients" "$rpc_count" --spin "$a3m_spin" \
        "${sealing[@]}" \
        -- "$bin/rpc" client "127.0.0.1:$port" 100 "$clients" "$rpc_count" --spin "$a3m_spin" \
        "${sealing[@]}"
}

# ---- The runs ---------------------------------------------------------------------------------
rm -f "$runs"/*
libs=(a3m_plain a3m_sealed zmq_curve zmq)
aead=AES-256-GCM
grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo || aead=ChaCha20-Poly1305
echo "a3m plaintext vs a3m sealed ($aead) vs ZeroMQ CURVE vs ZeroMQ over loopback," \
    "$reps repetitions, alternating; $(nproc) cores ($(uname -srm))"
echo "throughput: $count messages per run"
for size in $sizes; do
    echo "running throughput size=$size" >&2
    for _ in $(seq "$reps"); do for lib in "${libs[@]}"; do thr "$lib" "$size"; done; done
done
if [ "$have_rpc_key" = yes ]; then
    for clients in $clients_list; do
        echo "running rpc clients=$clients" >&2
        for _ in $(seq "$reps"); do for lib in a3m_plain a3m_sealed; do
            rpc "$lib" "$clients"
        done; done
    done
fi

# ---- The report -------------------------------------------------------------------------------
row_format="%-22s %11s %11s %11s %11s   %s\n"
echo
printf "$row_format" case a3m a3m_sealed zmq_curve zmq "runs a3m | sealed | curve | zmq"
for size in $sizes; do
    k=$runs/thr.$size
    printf "$row_format" "thr size=$size (msg/s)" "$(median "$k.a3m_plain")" \
        "$(median "$k.a3m_sealed")" "$(median "$k.zmq_curve")" "$(median "$k.zmq")" \
        "$(runs_of "$k.a3m_plain") | $(runs_of "$k.a3m_sealed") | $(runs_of "$k.zmq_curve") | $(runs_of "$k.zmq")"
done
if [ "$have_rpc_key" = yes ]; then
    for clients in $clients_list; do
        k=$runs/rpc.$clients
        printf "$row_format" "rpc clients=$clients (rt/s)" "$(median "$k.a3m_plain")" \
            "$(median "$k.a3m_sealed")" - - "$(runs_of "$k.a3m_plain") | $(runs_of "$k.a3m_sealed")"
    done
else
    echo "rpc: examples/rpc.rs takes no --key-file yet: sealed RPC not measured"
fi
echo "(medians of $reps runs; a3m: exactly-once, datagrams up to 64 KB, link capacity 1000;" \
    "ZeroMQ: HWM 1000; $((SECONDS - started)) s in all)"
echo
for size in $sizes; do
    k=$runs/thr.$size
    echo "ratio sealed size=$size a3m_over_zmq_curve=$(ratio "$(median "$k.a3m_sealed")" \
        "$(median "$k.zmq_curve")")"
done
for size in $sizes; do
    k=$runs/thr.$size
    echo "ratio sealed_over_plain size=$size a3m=$(ratio "$(median "$k.a3m_sealed")" \
        "$(median "$k.a3m_plain")")"
done
if [ "$have_rpc_key" = yes ]; then
    for clients in $clients_list; do
        k=$runs/rpc.$clients
        echo "ratio sealed_over_plain rpc clients=$clients a3m=$(ratio \
            "$(median "$k.a3m_sealed")" "$(median "$k.a3m_plain")")"
    done
fi

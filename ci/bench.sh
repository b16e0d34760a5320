#!/usr/bin/env bash
# a3m beside ZeroMQ and NNG on this machine, in one run: one-way throughput (push/pull),
# round-trip latency and RPC round trips per second, over loopback only (127.0.0.1).
#
#   bash ci/bench.sh
#
# Not part of .ci/run: timings depend on the machine and its load. It installs the peers'
# libraries if missing (Debian's libzmq3-dev and libnng-dev), compiles the C peers in
# ci/peers/ into target/bench-peers/, builds the a3m perf examples in release, then runs
# a3m, ZeroMQ and NNG alternately (a3m, zmq, nng, a3m, zmq, nng, ...) so that drifts of the
# machine hit all three alike. It prints a table of medians, then one line per case:
#
#   ratio size=S a3m_over_zmq=R          throughput, median msgs/s of a3m / of ZeroMQ
#   ratio rpc clients=C a3m_over_zmq=R   RPC, median round trips/s of a3m / of ZeroMQ
#
# Environment (defaults in brackets):
#   BENCH_REPS [3]             repetitions of every case and library
#   BENCH_COUNT [200000]       messages per throughput run
#   BENCH_LAT_COUNT [5000]     round trips per latency run
#   BENCH_RPC_COUNT [20000]    round trips per RPC run, over all clients
#   BENCH_SIZES [1 10 100 500 1000]   message sizes in bytes
#   BENCH_LAT_SIZES [1 100 1000]      message sizes of the latency cases
#   BENCH_CLIENTS [1 4]        RPC client threads
#   BENCH_RPC_SIZE [100]       RPC request and reply size
#   BENCH_TIMEOUT [60]         seconds one program may run before it is killed
#   BENCH_PORT [17000]         first loopback port; each run takes the next one
#   BENCH_A3M_BIN              a directory holding prebuilt a3m perf programs (no build)
#   BENCH_A3M_SPIN [50]        microseconds a3m nodes poll before sleeping (0: never)
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${BENCH_REPS:-3}
count=${BENCH_COUNT:-200000}
lat_count=${BENCH_LAT_COUNT:-5000}
rpc_count=${BENCH_RPC_COUNT:-20000}
sizes=${BENCH_SIZES:-1 10 100 500 1000}
lat_sizes=${BENCH_LAT_SIZES:-1 100 1000}
clients_list=${BENCH_CLIENTS:-1 4}
rpc_size=${BENCH_RPC_SIZE:-100}
a3m_spin=${BENCH_A3M_SPIN:-50}
limit=${BENCH_TIMEOUT:-60}
port=${BENCH_PORT:-17000}
target=${CARGO_TARGET_DIR:-target}
peers=target/bench-peers
runs=$peers/runs
started=$SECONDS

# ---- The peers: Debian's ZeroMQ and NNG, and the C programs built on them ----------------
if ! [ -f /usr/include/zmq.h ] || ! [ -f /usr/include/nng/nng.h ]; then
    echo "installing libzmq3-dev and libnng-dev" >&2
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libzmq3-dev libnng-dev >/dev/null
fi
mkdir -p "$peers" "$runs"
for family in thr lat rpc; do
    gcc -O2 -Wall -o "$peers/zmq_$family" "ci/peers/zmq_$family.c" -lzmq -lpthread
    gcc -O2 -Wall -o "$peers/nng_$family" "ci/peers/nng_$family.c" -lnng -lpthread
done

# ---- a3m's perf programs -------------------------------------------------------------------
# The socket-level programs (examples/local_thr.rs and the rest); until they are listed in
# examples/Cargo.toml, throughput falls back to eo_thr (the exactly-once transport alone)
# and latency and RPC have no a3m column.
a3m_programs=(local_thr remote_thr local_lat remote_lat rpc)
bin=${BENCH_A3M_BIN:-$target/release/examples}
have_a3m_sockets=yes
if [ -n "${BENCH_A3M_BIN:-}" ]; then
    # Prebuilt programs (e.g. from another checkout): use them as they are.
    for program in "${a3m_programs[@]}"; do
        [ -x "$bin/$program" ] || { echo "BENCH_A3M_BIN: no $bin/$program" >&2; exit 2; }
    done
else
    for program in "${a3m_programs[@]}"; do
        grep -q "name = \"$program\"" examples/Cargo.toml || have_a3m_sockets=no
    done
    if [ "$have_a3m_sockets" = yes ]; then
        build_args=()
        for program in "${a3m_programs[@]}"; do build_args+=(--example "$program"); done
        cargo build -q --release -p a3m-examples "${build_args[@]}"
    else
        cargo build -q --release -p a3m-examples --example eo_thr
    fi
fi
if [ "$have_a3m_sockets" = yes ]; then
    a3m_thr_label="a3m (local_thr/remote_thr)"
else
    a3m_thr_label="a3m (eo_thr fallback: no socket perf programs yet)"
fi

# ---- Running one measurement ---------------------------------------------------------------
# Each run gets a fresh port, and each program a time limit, so a hang costs BENCH_TIMEOUT at
# most. A failed run records nothing; the median is over the runs that worked.

next_port() { port=$((port + 1)); }

# serve_and_run KEY FIELD -- SERVER... -- CLIENT...: starts the server side, then the client
# side; appends FIELD's value from whichever side printed it to $runs/KEY.
serve_and_run() {
    local key=$1 field=$2
    shift 3
    local server=() client=()
    while [ "$1" != "--" ]; do server+=("$1"); shift; done
    shift
    client=("$@")
    local log=$runs/$key.log
    timeout "$limit" "${server[@]}" >"$log.server" 2>&1 &
    local server_pid=$!
    sleep 0.3
    local client_status=0 server_status=0
    timeout "$limit" "${client[@]}" >"$log.client" 2>&1 || client_status=$?
    wait "$server_pid" || server_status=$?
    cat "$log.server" "$log.client" >>"$log"
    local value
    value=$(sed -n "s/.*[ ]$field=\([0-9.]*\).*/\1/p" "$log.server" "$log.client" | head -n1)
    if [ "$client_status" -ne 0 ] || [ "$server_status" -ne 0 ] || [ -z "$value" ]; then
        echo "  run failed: $key (client exit $client_status, server exit $server_status);" \
            "output in $log" >&2
        return 0
    fi
    echo "$value" >>"$runs/$key"
}

# run_alone KEY FIELD PROGRAM...: one program that does both sides (eo_thr).
run_alone() {
    local key=$1 field=$2
    shift 2
    local log=$runs/$key.log status=0
    timeout "$limit" "$@" >"$log.client" 2>&1 || status=$?
    cat "$log.client" >>"$log"
    local value
    value=$(sed -n "s/.*[ ]$field=\([0-9.]*\).*/\1/p" "$log.client" | head -n1)
    if [ "$status" -ne 0 ] || [ -z "$value" ]; then
        echo "  run failed: $key (exit $status); output in $log" >&2
        return 0
    fi
    echo "$value" >>"$runs/$key"
}

thr() { # LIB SIZE
    local lib=$1 size=$2 key=thr.$2.$1
    next_port
    case $lib in
    a3m)
        if [ "$have_a3m_sockets" = yes ]; then
            serve_and_run "$key" msgs_per_sec \
                -- "$bin/local_thr" "127.0.0.1:$port" "$size" "$count" --spin "$a3m_spin" \
                -- "$bin/remote_thr" "127.0.0.1:$port" "$size" "$count" --spin "$a3m_spin"
        else
            run_alone "$key" msgs_per_sec "$bin/eo_thr" --size "$size" --count "$count"
        fi
        ;;
    *)
        serve_and_run "$key" msgs_per_sec \
            -- "$peers/${lib}_thr" local "tcp://127.0.0.1:$port" "$size" "$count" \
            -- "$peers/${lib}_thr" remote "tcp://127.0.0.1:$port" "$size" "$count"
        ;;
    esac
}

lat() { # LIB SIZE
    local lib=$1 size=$2 key=lat.$2.$1
    next_port
    case $lib in
    a3m)
        [ "$have_a3m_sockets" = yes ] || return 0
        serve_and_run "$key" rtt_us \
            -- "$bin/local_lat" "127.0.0.1:$port" "$size" "$lat_count" --spin "$a3m_spin" \
            -- "$bin/remote_lat" "127.0.0.1:$port" "$size" "$lat_count" --spin "$a3m_spin"
        ;;
    *)
        serve_and_run "$key" rtt_us \
            -- "$peers/${lib}_lat" local "tcp://127.0.0.1:$port" "$size" "$lat_count" \
            -- "$peers/${lib}_lat" remote "tcp://127.0.0.1:$port" "$size" "$lat_count"
        ;;
    esac
}

rpc() { # LIB CLIENTS
    local lib=$1 clients=$2 key=rpc.$2.$1
    next_port
    case $lib in
    a3m)
        [ "$have_a3m_sockets" = yes ] || return 0
        serve_and_run "$key" rps \
            -- "$bin/rpc" server "127.0.0.1:$port" "$rpc_size" "$clients" "$rpc_count" \
            --spin "$a3m_spin" \
            -- "$bin/rpc" client "127.0.0.1:$port" "$rpc_size" "$clients" "$rpc_count" \
            --spin "$a3m_spin"
        ;;
    *)
        serve_and_run "$key" rps \
            -- "$peers/${lib}_rpc" server "tcp://127.0.0.1:$port" "$rpc_size" "$clients" \
            "$rpc_count" \
            -- "$peers/${lib}_rpc" client "tcp://127.0.0.1:$port" "$rpc_size" "$clients" \
            "$rpc_count"
        ;;
    esac
}

# ---- The runs: every case, BENCH_REPS times, the three libraries in turn -------------------
rm -f "$runs"/*
libs=(a3m zmq nng)
echo "a3m vs ZeroMQ vs NNG over loopback, $reps repetitions, alternating; $(nproc) cores" \
    "($(uname -srm))"
echo "throughput: $count messages per run; a3m column: $a3m_thr_label"
for size in $sizes; do
    echo "running throughput size=$size" >&2
    for _ in $(seq "$reps"); do for lib in "${libs[@]}"; do thr "$lib" "$size"; done; done
done
for size in $lat_sizes; do
    echo "running latency size=$size" >&2
    for _ in $(seq "$reps"); do for lib in "${libs[@]}"; do lat "$lib" "$size"; done; done
done
for clients in $clients_list; do
    echo "running rpc clients=$clients" >&2
    for _ in $(seq "$reps"); do for lib in "${libs[@]}"; do rpc "$lib" "$clients"; done; done
done

# ---- The report ----------------------------------------------------------------------------
median() { # FILE: the median of its numbers, or n/a
    [ -s "$1" ] || { echo n/a; return; }
    sort -g "$1" | awk '{a[NR]=$1} END {m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2;
        printf (m >= 100 ? "%.0f\n" : "%.2f\n"), m}'
}
runs_of() { [ -s "$1" ] && paste -sd, "$1" || echo -; }
ratio() { # A B: A/B, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2f\n", a/b;
        else print "n/a" }'
}

row_format="%-26s %12s %12s %12s %9s   %s\n"
echo
printf "$row_format" case a3m zmq nng a3m/zmq "runs a3m | zmq | nng"
report_row() { # LABEL KEY
    local label=$1 key=$2 a z n
    a=$(median "$runs/$key.a3m")
    z=$(median "$runs/$key.zmq")
    n=$(median "$runs/$key.nng")
    printf "$row_format" "$label" "$a" "$z" "$n" "$(ratio "$a" "$z")" \
        "$(runs_of "$runs/$key.a3m") | $(runs_of "$runs/$key.zmq") | $(runs_of "$runs/$key.nng")"
}
for size in $sizes; do report_row "thr size=$size (msg/s)" "thr.$size"; done
for size in $lat_sizes; do report_row "lat size=$size (rtt us)" "lat.$size"; done
for clients in $clients_list; do
    report_row "rpc clients=$clients (rt/s)" "rpc.$clients"
done
if [ "$have_a3m_sockets" = yes ]; then
    carrier=$(cat "$runs"/rpc.*.a3m.log 2>/dev/null | grep -o -m1 'carrier=[^ ]*' || true)
    echo "a3m latency and rpc: ${carrier:-carrier=?} (a3m has no req/rep sockets yet:" \
        "a push/pull pair carries each round trip)"
    if [ "$a3m_spin" = 0 ]; then
        spinning="sleep at once like ZeroMQ's and NNG's (BENCH_A3M_SPIN=0)"
    else
        spinning="spin up to ${a3m_spin} us before sleeping (NodeBuilder::spin, BENCH_A3M_SPIN);"
        spinning="$spinning ZeroMQ and NNG sleep at once"
    fi
    echo "a3m: exactly-once on, datagrams up to 64 KB, throughput with link capacity 1000" \
        "(ZeroMQ: HWM 1000); its blocking calls and reader threads $spinning"
fi
echo "(medians of $reps runs; latency is the mean round trip, lower is better;" \
    "$((SECONDS - started)) s in all)"
echo
for size in $sizes; do
    echo "ratio size=$size a3m_over_zmq=$(ratio "$(median "$runs/thr.$size.a3m")" \
        "$(median "$runs/thr.$size.zmq")")"
done
for clients in $clients_list; do
    echo "ratio rpc clients=$clients a3m_over_zmq=$(ratio "$(median "$runs/rpc.$clients.a3m")" \
        "$(median "$runs/rpc.$clients.zmq")")"
done

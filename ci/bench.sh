#!/usr/bin/env bash
# a3m beside ZeroMQ and NNG on this machine, in one run: one-way throughput (push/pull),
# round-trip latency, RPC round trips per second (req/rep and dealer/router) and pub/sub
# fan-out (delivered messages per second, and how many were lost), over loopback only
# (127.0.0.1).
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
#   ratio pubsub subscribers=N a3m_over_zmq=R   pub/sub, median delivered msgs/s of a3m /
#                                        of ZeroMQ
#   lost pubsub subscribers=N a3m=L zmq=L2 nng=L3   pub/sub, median messages lost
#
# R is n/a when a library's runs all failed, and na when the a3m program does not exist
# (yet); then the a3m column shows "-".
#
# The RPC cases: CLIENTS client threads against one server thread. clients=1 runs over
# req/rep (a3m `rpc ... --pattern reqrep`, ZeroMQ REQ/REP, NNG req0/rep0), more clients over
# dealer/router (a3m `rpc ... --pattern router`, ZeroMQ DEALER clients and a ROUTER server,
# NNG has no such pair: req0/rep0 with as many REQ clients, its nearest). a3m's rpc needs
# `--pattern` (examples/rpc.rs); without it the RPC rows have no a3m column.
#
# The pub/sub cases: one publisher sends BENCH_PUBSUB_COUNT messages as fast as it can to
# N subscribers in one other process (ZeroMQ XPUB/SUB at the default HWM 1000, NNG pub0/sub0
# with its default buffers: both drop for a slow subscriber); delivered msgs/s is the
# messages received over all subscribers / the seconds from the first to the last one
# received, lost is N*COUNT - delivered. The programs (ci/peers/zmq_pubsub.c,
# ci/peers/nng_pubsub.c, a3m's example `pubsub` once it is listed in examples/Cargo.toml):
#
#   PROG sub ADDR SIZE SUBS COUNT     started first
#   PROG pub ADDR SIZE SUBS COUNT     waits for the SUBS subscribers, then publishes
#   -> "<lib>_pubsub subscribers=N size=S published=P delivered=D lost=L msgs_per_s=R"
#
# (ADDR: 127.0.0.1:PORT for a3m, tcp://127.0.0.1:PORT for the peers). The pub/sub table has
# per library the median delivered msgs/s and the median lost.
#
# Environment (defaults in brackets):
#   BENCH_REPS [3]             repetitions of every case and library
#   BENCH_COUNT [200000]       messages per throughput run
#   BENCH_LAT_COUNT [5000]     round trips per latency run
#   BENCH_RPC_COUNT [20000]    round trips per RPC run, over all clients
#   BENCH_SIZES [1 10 100 500 1000]   message sizes in bytes
#   BENCH_LAT_SIZES [1 100 1000]      message sizes of the latency cases
#   BENCH_CLIENTS [1 4 16]     RPC client threads
#   BENCH_RPC_SIZE [100]       RPC request and reply size
#   BENCH_RPC_PATTERN_1 [reqrep]   the RPC pattern of clients=1 (reqrep or router)
#   BENCH_RPC_PATTERN_N [router]   the RPC pattern of more clients (reqrep or router)
#   BENCH_SUBSCRIBERS [1 10 100]   pub/sub subscribers
#   BENCH_PUBSUB_COUNT [100000]    messages published per pub/sub run
#   BENCH_PUBSUB_SIZE [100]        pub/sub message size
#   BENCH_TIMEOUT [60]         seconds one program may run before it is killed
#   BENCH_PORT [17000]         first loopback port; each run takes the next one
#   BENCH_SEALED [1]           0: skip the sealed cases (ci/bench-sealed.sh, run at the end)
#   BENCH_A3M_BIN              a directory holding prebuilt a3m perf programs (no build);
#                              its rpc counts as taking --pattern if the binary holds that
#                              text, and pubsub is optional
#   BENCH_A3M_SPIN [50]        microseconds a3m nodes poll before sleeping (0: never)
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${BENCH_REPS:-3}
count=${BENCH_COUNT:-200000}
lat_count=${BENCH_LAT_COUNT:-5000}
rpc_count=${BENCH_RPC_COUNT:-20000}
sizes=${BENCH_SIZES:-1 10 100 500 1000}
lat_sizes=${BENCH_LAT_SIZES:-1 100 1000}
clients_list=${BENCH_CLIENTS:-1 4 16}
rpc_size=${BENCH_RPC_SIZE:-100}
rpc_pattern_1=${BENCH_RPC_PATTERN_1:-reqrep}
rpc_pattern_n=${BENCH_RPC_PATTERN_N:-router}
subscribers_list=${BENCH_SUBSCRIBERS:-1 10 100}
pubsub_count=${BENCH_PUBSUB_COUNT:-100000}
pubsub_size=${BENCH_PUBSUB_SIZE:-100}
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
for family in thr lat rpc pubsub; do
    gcc -O2 -Wall -o "$peers/zmq_$family" "ci/peers/zmq_$family.c" -lzmq -lpthread
    rm -f "$peers/nng_$family"
    [ ! -f "ci/peers/nng_$family.c" ] ||
        gcc -O2 -Wall -o "$peers/nng_$family" "ci/peers/nng_$family.c" -lnng -lpthread
done

# ---- a3m's perf programs -------------------------------------------------------------------
# The socket-level programs (examples/local_thr.rs and the rest); until they are listed in
# examples/Cargo.toml, throughput falls back to eo_thr (the exactly-once transport alone)
# and latency and RPC have no a3m column.
# The RPC rows need rpc's --pattern, the pub/sub rows the program pubsub; until they exist,
# those rows run the peers alone.
a3m_programs=(local_thr remote_thr local_lat remote_lat rpc)
bin=${BENCH_A3M_BIN:-$target/release/examples}
have_a3m_sockets=yes
have_a3m_rpc_pattern=no
have_a3m_pubsub=no
if [ -n "${BENCH_A3M_BIN:-}" ]; then
    # Prebuilt programs (e.g. from another checkout): use them as they are.
    for program in "${a3m_programs[@]}"; do
        [ -x "$bin/$program" ] || { echo "BENCH_A3M_BIN: no $bin/$program" >&2; exit 2; }
    done
    # An rpc that takes --pattern names it in its usage text.
    grep -qa -- '--pattern' "$bin/rpc" && have_a3m_rpc_pattern=yes
    [ -x "$bin/pubsub" ] && have_a3m_pubsub=yes
else
    for program in "${a3m_programs[@]}"; do
        grep -q "name = \"$program\"" examples/Cargo.toml || have_a3m_sockets=no
    done
    build_args=()
    if [ "$have_a3m_sockets" = yes ]; then
        for program in "${a3m_programs[@]}"; do build_args+=(--example "$program"); done
        grep -q -- '--pattern' examples/rpc.rs && have_a3m_rpc_pattern=yes
    else
        build_args+=(--example eo_thr)
    fi
    if grep -q 'name = "pubsub"' examples/Cargo.toml; then
        have_a3m_pubsub=yes
        build_args+=(--example pubsub)
    fi
    cargo build -q --release -p a3m-examples "${build_args[@]}"
fi
if [ "$have_a3m_sockets" = yes ]; then
    a3m_thr_label="a3m (local_thr/remote_thr)"
else
    a3m_thr_label="a3m (eo_thr fallback: no socket perf programs yet)"
fi

# ---- Running one measurement ---------------------------------------------------------------
# Each run gets a fresh port, and each program a time limit, so a hang costs BENCH_TIMEOUT at
# most. A failed run records nothing; the median is over the runs that worked.

source ci/bench-lib.sh

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

rpc_pattern() { # CLIENTS: reqrep or router
    if [ "$1" -eq 1 ]; then echo "$rpc_pattern_1"; else echo "$rpc_pattern_n"; fi
}

rpc() { # LIB CLIENTS
    local lib=$1 clients=$2 key=rpc.$2.$1 pattern
    pattern=$(rpc_pattern "$clients")
    next_port
    case $lib in
    a3m)
        [ "$have_a3m_rpc_pattern" = yes ] || return 0
        serve_and_run "$key" rps \
            -- "$bin/rpc" server "127.0.0.1:$port" "$rpc_size" "$clients" "$rpc_count" \
            --spin "$a3m_spin" --pattern "$pattern" \
            -- "$bin/rpc" client "127.0.0.1:$port" "$rpc_size" "$clients" "$rpc_count" \
            --spin "$a3m_spin" --pattern "$pattern"
        ;;
    zmq)
        serve_and_run "$key" rps \
            -- "$peers/zmq_rpc" server "tcp://127.0.0.1:$port" "$rpc_size" "$clients" \
            "$rpc_count" "$pattern" \
            -- "$peers/zmq_rpc" client "tcp://127.0.0.1:$port" "$rpc_size" "$clients" \
            "$rpc_count" "$pattern"
        ;;
    nng) # req0/rep0 whatever the pattern: NNG has no dealer/router pair
        serve_and_run "$key" rps \
            -- "$peers/nng_rpc" server "tcp://127.0.0.1:$port" "$rpc_size" "$clients" \
            "$rpc_count" \
            -- "$peers/nng_rpc" client "tcp://127.0.0.1:$port" "$rpc_size" "$clients" \
            "$rpc_count"
        ;;
    esac
}

pubsub() { # LIB SUBSCRIBERS: the subscribers' process first, then the publisher
    local lib=$1 subs=$2 key=pubsub.$2.$1 program addr
    next_port
    case $lib in
    a3m)
        [ "$have_a3m_pubsub" = yes ] || return 0
        program=$bin/pubsub addr=127.0.0.1:$port
        ;;
    *)
        [ -x "$peers/${lib}_pubsub" ] || return 0
        program=$peers/${lib}_pubsub addr=tcp://127.0.0.1:$port
        ;;
    esac
    serve_and_run "$key" msgs_per_s,lost \
        -- "$program" sub "$addr" "$pubsub_size" "$subs" "$pubsub_count" \
        -- "$program" pub "$addr" "$pubsub_size" "$subs" "$pubsub_count"
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
    echo "running rpc clients=$clients ($(rpc_pattern "$clients"))" >&2
    for _ in $(seq "$reps"); do for lib in "${libs[@]}"; do rpc "$lib" "$clients"; done; done
done
for subs in $subscribers_list; do
    echo "running pubsub subscribers=$subs" >&2
    for _ in $(seq "$reps"); do for lib in "${libs[@]}"; do pubsub "$lib" "$subs"; done; done
done

# ---- The report ----------------------------------------------------------------------------

row_format="%-32s %12s %12s %12s %9s   %s\n"
echo
printf "$row_format" case a3m zmq nng a3m/zmq "runs a3m | zmq | nng"
report_row() { # LABEL KEY [A3M]: A3M no: the a3m program does not exist, its column is "-"
    local label=$1 key=$2 a z n
    a=$(median "$runs/$key.a3m")
    [ "${3:-yes}" = yes ] || a=-
    z=$(median "$runs/$key.zmq")
    n=$(median "$runs/$key.nng")
    printf "$row_format" "$label" "$a" "$z" "$n" "$(ratio "$a" "$z")" \
        "$(runs_of "$runs/$key.a3m") | $(runs_of "$runs/$key.zmq") | $(runs_of "$runs/$key.nng")"
}
for size in $sizes; do report_row "thr size=$size (msg/s)" "thr.$size"; done
for size in $lat_sizes; do report_row "lat size=$size (rtt us)" "lat.$size"; done
for clients in $clients_list; do
    report_row "rpc clients=$clients $(rpc_pattern "$clients") (rt/s)" "rpc.$clients" \
        "$have_a3m_rpc_pattern"
done
if [ "$have_a3m_rpc_pattern" = no ]; then
    echo "rpc: no a3m column (examples/rpc.rs has no --pattern yet)"
fi
echo "rpc: zmq reqrep = REQ clients, REP server; router = DEALER clients, ROUTER server;" \
    "nng: req0/rep0 in every row"
if [ "$have_a3m_sockets" = yes ]; then
    carrier=$(cat "$runs"/lat.*.a3m.log 2>/dev/null | grep -o -m1 'carrier=[^ ]*' || true)
    [ -z "$carrier" ] || echo "a3m latency: $carrier"
    for clients in $clients_list; do
        carrier=$(cat "$runs/rpc.$clients.a3m.log" 2>/dev/null \
            | grep -o -m1 'carrier=[^ ]*' || true)
        [ -z "$carrier" ] || echo "a3m rpc clients=$clients: $carrier"
    done
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

# Pub/sub: delivered msgs/s and lost messages side by side.
pubsub_format="%-26s %12s %10s %12s %10s %12s %10s %9s\n"
echo
echo "pub/sub fan-out: $pubsub_count messages of $pubsub_size bytes per run, as fast as the" \
    "publisher can; delivered msgs/s (all subscribers) and lost messages, medians"
printf "$pubsub_format" case "a3m msg/s" "a3m lost" "zmq msg/s" "zmq lost" "nng msg/s" \
    "nng lost" a3m/zmq
pubsub_median() { # SUBS LIB FIELD: "msgs" or "lost"; "-" if the a3m program is absent
    if [ "$2" = a3m ] && [ "$have_a3m_pubsub" = no ]; then echo -; return; fi
    if [ "$3" = msgs ]; then median "$runs/pubsub.$1.$2"; else median "$runs/pubsub.$1.$2.lost"; fi
}
pubsub_ratio() { # SUBS
    if [ "$have_a3m_pubsub" = no ]; then echo na; return; fi
    ratio "$(pubsub_median "$1" a3m msgs)" "$(pubsub_median "$1" zmq msgs)"
}
for subs in $subscribers_list; do
    printf "$pubsub_format" "pubsub subscribers=$subs" \
        "$(pubsub_median "$subs" a3m msgs)" "$(pubsub_median "$subs" a3m lost)" \
        "$(pubsub_median "$subs" zmq msgs)" "$(pubsub_median "$subs" zmq lost)" \
        "$(pubsub_median "$subs" nng msgs)" "$(pubsub_median "$subs" nng lost)" \
        "$(pubsub_ratio "$subs")"
    printf "  runs msg/s  a3m %s | zmq %s | nng %s\n" "$(runs_of "$runs/pubsub.$subs.a3m")" \
        "$(runs_of "$runs/pubsub.$subs.zmq")" "$(runs_of "$runs/pubsub.$subs.nng")"
done
[ "$have_a3m_pubsub" = yes ] || echo "pubsub: no a3m column (no example pubsub yet)"
echo
for size in $sizes; do
    echo "ratio size=$size a3m_over_zmq=$(ratio "$(median "$runs/thr.$size.a3m")" \
        "$(median "$runs/thr.$size.zmq")")"
done
for clients in $clients_list; do
    if [ "$have_a3m_rpc_pattern" = yes ]; then
        r=$(ratio "$(median "$runs/rpc.$clients.a3m")" "$(median "$runs/rpc.$clients.zmq")")
    else
        r=na
    fi
    echo "ratio rpc clients=$clients a3m_over_zmq=$r"
done
for subs in $subscribers_list; do
    echo "ratio pubsub subscribers=$subs a3m_over_zmq=$(pubsub_ratio "$subs")"
done
for subs in $subscribers_list; do
    a=$(pubsub_median "$subs" a3m lost)
    [ "$a" != - ] || a=na
    echo "lost pubsub subscribers=$subs a3m=$a zmq=$(pubsub_median "$subs" zmq lost)" \
        "nng=$(pubsub_median "$subs" nng lost)"
done

# ---- Sealed (issue 15): a3m with keys on and off beside ZeroMQ CURVE -----------------------
# Its own script (ci/bench-sealed.sh, same conventions); BENCH_SEALED=0 skips it. It prints
# `ratio sealed size=S a3m_over_zmq_curve=R` and `ratio sealed_over_plain ...` lines.
if [ "${BENCH_SEALED:-1}" != 0 ]; then
    echo
    BENCH_PORT=$((port + 1000)) bash ci/bench-sealed.sh
fi

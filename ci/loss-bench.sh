#!/usr/bin/env bash
# Goodput under loss: a3m's push/pull beside a QUIC stream (quinn, ci/peers/quinn-peer), both
# through the same UDP fault relay (examples/relay.rs) on loopback.
#
#   bash ci/loss-bench.sh
#
# Not part of .ci/run: timings depend on the machine and its load. It builds the push, pull
# and relay examples and the quinn peer (its own cargo project, target dir
# ci/peers/quinn-peer/target) in release, then, for every loss level and seed, runs one a3m
# transfer and one quinn transfer alternately (a3m, quinn, a3m, quinn, ...), each through a
# fresh relay with that loss and seed: COUNT messages of SIZE bytes, one way, numbered and
# checked in order by the receiver. It prints, per loss level,
#
#   goodput loss=L a3m=MSGS_PER_S quinn=MSGS_PER_S p50_ms=X p99_ms=Y
#   detail loss=L a3m_stalled=K quinn_stalled=K quinn_p50_ms=X quinn_p99_ms=Y
#
# (a3m and quinn: medians over the seeds of COUNT / completion time; p50/p99: a3m's
# completion times, nearest rank; stalled: runs that did not finish within the timeout or
# failed the receiver's check), and at the end, per loss level,
#
#   ratio loss=L a3m_over_quinn=R a3m_over_own_clean=R
#
# (own_clean: a3m's median at loss 0, which must be among the levels, else n/a).
#
# Completion time, for both stacks alike, is what the SENDER prints: from its first send
# until it knows that everything was delivered (a3m push: `delivered_in`, first send until
# the push socket's close returned, i.e. all messages acknowledged; quinn send: `elapsed_ms`,
# first write until the receiver's answer, sent after it read the whole stream). Connection
# set-up (a3m's link, QUIC's handshake) is outside it for both. A run that stalls or fails
# counts as completion time = the timeout.
#
# Environment (defaults in brackets):
#   LOSS_LEVELS [0 0.01 0.05 0.20]  the relay's loss probability, per datagram and direction
#   LOSS_SEEDS [5]           runs per level and stack; the relay's seeds are 1..LOSS_SEEDS
#   LOSS_COUNT [20000]       messages per run
#   LOSS_SIZE [64]           message size in bytes (at least 8)
#   A3M_DATAGRAM [1400]      a3m's largest UDP datagram (push/pull --datagram)
#   LOSS_DUP [0] LOSS_REORDER [0]   the relay's duplication and reordering probabilities
#   LOSS_DELAY [2ms] LOSS_JITTER [0ms]   the relay's one-way delay and its jitter. Jitter
#                            is off by default: the relay draws it per datagram, so a later
#                            datagram may overtake an earlier one, i.e. jitter reorders, and
#                            these figures are meant to be loss only (QUIC reads reordering
#                            by 3 packets as loss: 1ms of jitter cuts quinn's clean goodput
#                            more than tenfold here).
#   LOSS_TIMEOUT [60]        seconds a run may take before it counts as stalled
#   LOSS_GRACE [10]          seconds a sender may take to exit after its result (then killed)
#   LOSS_PORT [18700]        first loopback port; each run takes the next two
#   LOSS_A3M_BIN             a directory holding prebuilt push, pull and relay (no build)
set -euo pipefail
cd "$(dirname "$0")/.."

levels=${LOSS_LEVELS:-0 0.01 0.05 0.20}
seeds=${LOSS_SEEDS:-5}
count=${LOSS_COUNT:-20000}
size=${LOSS_SIZE:-64}
datagram=${A3M_DATAGRAM:-1400}
dup=${LOSS_DUP:-0}
reorder=${LOSS_REORDER:-0}
delay=${LOSS_DELAY:-2ms}
jitter=${LOSS_JITTER:-0ms}
limit=${LOSS_TIMEOUT:-60}
grace=${LOSS_GRACE:-10}
port=${LOSS_PORT:-18700}
out=target/loss-bench
runs=$out/runs
quinn_dir=ci/peers/quinn-peer
quinn=$quinn_dir/target/release/quinn-peer

# ---- Children: every process this script starts, killed on the way out ---------------------
children=()
cleanup() {
    local pid
    for pid in "${children[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${children[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    children=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Builds ----------------------------------------------------------------------------------
if [ -n "${LOSS_A3M_BIN:-}" ]; then
    bin=$LOSS_A3M_BIN
    for program in push pull relay; do
        [ -x "$bin/$program" ] || { echo "LOSS_A3M_BIN: no $bin/$program" >&2; exit 2; }
    done
else
    if ! grep -q 'name = "relay"' examples/Cargo.toml; then
        echo "loss-bench: examples/Cargo.toml has no relay example (examples/relay.rs)" >&2
        exit 2
    fi
    cargo build -q --release -p a3m-examples --example push --example pull --example relay
    bin=${CARGO_TARGET_DIR:-target}/release/examples
fi
cargo build -q --release --locked --manifest-path "$quinn_dir/Cargo.toml" \
    --target-dir "$quinn_dir/target"
mkdir -p "$runs"
rm -f "$runs"/*

# ---- One run -----------------------------------------------------------------------------------

# wait_for_line FILE PATTERN PID: waits (10 s at most) until FILE has a line matching PATTERN
# while PID lives; fails otherwise.
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 tries=0
    until grep -q "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || return 1
        tries=$((tries + 1))
        [ "$tries" -le 200 ] || return 1
        sleep 0.05
    done
}

# stop PID: kills PID if it still runs and reaps it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# run STACK LOSS SEED: one transfer through a fresh relay; appends the completion time in ms
# to $runs/LOSS.STACK (the timeout if it stalled) and counts stalls in $runs/LOSS.STACK.stalled.
run() {
    local stack=$1 loss=$2 seed=$3
    local relay_port=$((port + 1)) server_port=$((port + 2))
    port=$((port + 2))
    local log=$runs/$loss.$stack.$seed
    local relay_pid receiver_pid sender_pid

    "$bin/relay" --listen "127.0.0.1:$relay_port" --to "127.0.0.1:$server_port" \
        --loss "$loss" --dup "$dup" --reorder "$reorder" --delay "$delay" --jitter "$jitter" \
        --seed "$seed" --duration "$((limit + grace + 20))s" >"$log.relay" 2>&1 &
    relay_pid=$!
    children+=("$relay_pid")
    if ! wait_for_line "$log.relay" "relay listening on" "$relay_pid"; then
        echo "loss-bench: the relay did not start; output in $log.relay" >&2
        exit 1
    fi

    local receiver=() sender=() ready
    case $stack in
    a3m)
        receiver=("$bin/pull" --node B --bind "127.0.0.1:$server_port" --tag sink
            --count "$count" --datagram "$datagram" --timeout "$limit")
        sender=("$bin/push" --node A --bind 127.0.0.1:0 --peer "B=127.0.0.1:$relay_port"
            --link B/sink --count "$count" --size "$size" --datagram "$datagram"
            --timeout "$limit")
        ready="pull listening on"
        ;;
    quinn)
        receiver=("$quinn" recv --bind "127.0.0.1:$server_port" --count "$count"
            --size "$size" --timeout "$((limit + 5))")
        sender=("$quinn" send --to "127.0.0.1:$relay_port" --count "$count" --size "$size"
            --timeout "$limit")
        ready="quinn recv listening on"
        ;;
    esac
    "${receiver[@]}" >"$log.receiver" 2>&1 &
    receiver_pid=$!
    children+=("$receiver_pid")
    if ! wait_for_line "$log.receiver" "$ready" "$receiver_pid"; then
        echo "loss-bench: the $stack receiver did not start; output in $log.receiver" >&2
        exit 1
    fi
    "${sender[@]}" >"$log.sender" 2>&1 &
    sender_pid=$!
    children+=("$sender_pid")

    # Done when the receiver has exited and the sender has printed its result, within the
    # timeout (counted from the sender's start).
    local deadline=$((SECONDS + limit)) receiver_status=running sender_line=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        if [ "$receiver_status" = running ] && ! kill -0 "$receiver_pid" 2>/dev/null; then
            receiver_status=0
            wait "$receiver_pid" || receiver_status=$?
        fi
        case $stack in
        a3m) sender_line=$(grep -s -m1 '^push sent=' "$log.sender" || true) ;;
        quinn) sender_line=$(grep -s -m1 '^quinn send count=' "$log.sender" || true) ;;
        esac
        if [ "$receiver_status" != running ]; then
            [ -n "$sender_line" ] && break
            kill -0 "$sender_pid" 2>/dev/null || break # the sender gave up
        fi
        sleep 0.05
    done

    local ms=""
    if [ "$receiver_status" = 0 ] && [ -n "$sender_line" ]; then
        case $stack in
        a3m) ms=$(sed -n 's/.* delivered_in=\([0-9.]*\)s.*/\1/p' <<<"$sender_line") ;;
        quinn) ms=$(sed -n 's/.* elapsed_ms=\([0-9.]*\).*/\1/p' <<<"$sender_line") ;;
        esac
        [ "$stack" = a3m ] && [ -n "$ms" ] && ms=$(awk -v s="$ms" 'BEGIN { printf "%.1f", s * 1000 }')
    fi

    # The sender may still be closing down (a3m: closing its node; quinn: its connection).
    local sender_status=running waited=0
    if [ -n "$ms" ]; then
        while kill -0 "$sender_pid" 2>/dev/null && [ "$waited" -lt $((grace * 20)) ]; do
            sleep 0.05
            waited=$((waited + 1))
        done
        if kill -0 "$sender_pid" 2>/dev/null; then
            echo "  warning: $stack sender still running ${grace}s after its result" \
                "(loss=$loss seed=$seed); killed; output in $log.sender" >&2
        else
            sender_status=0
            wait "$sender_pid" || sender_status=$?
            [ "$sender_status" = 0 ] || echo "  warning: $stack sender exited with" \
                "$sender_status after its result (loss=$loss seed=$seed); output in" \
                "$log.sender" >&2
        fi
    fi
    stop "$sender_pid"
    stop "$receiver_pid"
    stop "$relay_pid"
    children=()

    if [ -n "$ms" ]; then
        echo "  $stack loss=$loss seed=$seed completion_ms=$ms" >&2
        echo "$ms" >>"$runs/$loss.$stack"
    else
        echo "  $stack loss=$loss seed=$seed STALLED or failed (receiver: $receiver_status);" \
            "output in $log.*" >&2
        echo "$((limit * 1000))" >>"$runs/$loss.$stack"
        echo x >>"$runs/$loss.$stack.stalled"
    fi
}

# ---- Statistics --------------------------------------------------------------------------------
median_goodput() { # FILE of completion times in ms: the median of COUNT / time, msgs/s
    awk -v n="$count" '{ print n / ($1 / 1000) }' "$1" | sort -g | awk '{ a[NR] = $1 }
        END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
              printf "%.0f\n", m }'
}
percentile() { # FILE P: the P-th percentile (nearest rank) of its numbers
    sort -g "$1" | awk -v p="$2" '{ a[NR] = $1 }
        END { r = int(p / 100 * NR); if (r < p / 100 * NR) r++; if (r < 1) r = 1;
              printf "%.1f\n", a[r] }'
}
stalled() { [ -f "$1" ] && wc -l <"$1" | tr -d ' ' || echo 0; }
ratio() { # A B: A/B, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f\n", a / b;
        else print "n/a" }'
}

# ---- The runs ------------------------------------------------------------------------------------
echo "goodput under loss: a3m push/pull (datagram $datagram) vs quinn $(grep -A1 \
    '^name = "quinn"$' "$quinn_dir/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p') one stream;" \
    "$count x $size B; relay dup=$dup reorder=$reorder delay=$delay jitter=$jitter;" \
    "$seeds seeds; timeout ${limit}s; $(nproc) cores ($(uname -srm))"
declare -A a3m_median quinn_median
for loss in $levels; do
    echo "running loss=$loss" >&2
    for seed in $(seq "$seeds"); do
        run a3m "$loss" "$seed"
        run quinn "$loss" "$seed"
    done
    a=$runs/$loss.a3m q=$runs/$loss.quinn
    a3m_median[$loss]=$(median_goodput "$a")
    quinn_median[$loss]=$(median_goodput "$q")
    echo "goodput loss=$loss a3m=${a3m_median[$loss]} quinn=${quinn_median[$loss]}" \
        "p50_ms=$(percentile "$a" 50) p99_ms=$(percentile "$a" 99)"
    echo "detail loss=$loss a3m_stalled=$(stalled "$a.stalled")" \
        "quinn_stalled=$(stalled "$q.stalled") quinn_p50_ms=$(percentile "$q" 50)" \
        "quinn_p99_ms=$(percentile "$q" 99)"
done

clean=""
for loss in $levels; do
    if awk -v l="$loss" 'BEGIN { exit !(l + 0 == 0) }'; then
        clean=${a3m_median[$loss]}
        break
    fi
done
for loss in $levels; do
    echo "ratio loss=$loss a3m_over_quinn=$(ratio "${a3m_median[$loss]}" "${quinn_median[$loss]}")" \
        "a3m_over_own_clean=$(ratio "${a3m_median[$loss]}" "${clean:-0}")"
done

#!/usr/bin/env bash
# Fault soak: many seeds of push/pull, as real processes, through the fault relay
# (examples/relay.rs) at each loss level, with 2 % duplication and 5 % reordering both ways.
# Not part of .ci/run (it takes minutes); run it by hand:
#
#   bash ci/fault-soak.sh                      # 100 seeds x loss 1, 5, 20, 30 %
#   SOAK_SEEDS=20 SOAK_LEVELS="0.2 0.3" SOAK_JOBS=8 bash ci/fault-soak.sh
#
# Every run checks safety (pull exits 0: every message exactly once, in order) and liveness
# (push and pull both exit within the level's bound; otherwise they are killed and the run
# counts as stalled). Prints per level the finished/stalled/failed counts and the p50, p99
# and max completion times of the finished runs, then `soak seeds=N stalled=K`; exits
# non-zero if any run stalled or failed. Logs of stalled and failed runs are kept (the path
# is printed).
#
# Settings (environment):
#   SOAK_SEEDS      seeds per level (default 100), from SOAK_SEED_BASE (default 1)
#   SOAK_LEVELS     loss probabilities (default "0.01 0.05 0.20 0.30")
#   SOAK_COUNT      messages per run (default 20000), SOAK_SIZE bytes each (default 64)
#   SOAK_DATAGRAM   --datagram for push and pull (default: the programs' default)
#   SOAK_BOUND      liveness bound in seconds for every level (default per level: 20, 20,
#                   30, 45 s, as in examples/tests/fault_processes.rs)
#   SOAK_JOBS       runs at the same time (default 4; runs mostly wait on timers)
#   SOAK_KEEP=1     keep the logs of every run
#
# Parallel-safe: pull and the relay bind port 0 and the script reads the addresses they print,
# so runs (and several soaks at once) never share a port. Every process is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SOAK_SEEDS:-100}
SEED_BASE=${SOAK_SEED_BASE:-1}
LEVELS=${SOAK_LEVELS:-"0.01 0.05 0.20 0.30"}
COUNT=${SOAK_COUNT:-20000}
SIZE=${SOAK_SIZE:-64}
JOBS=${SOAK_JOBS:-4}
DATAGRAM=()
if [ -n "${SOAK_DATAGRAM:-}" ]; then DATAGRAM=(--datagram "$SOAK_DATAGRAM"); fi

# The liveness bound of a level, in seconds (derivation: fault_processes.rs, PUSH_PULL).
bound_for() {
    if [ -n "${SOAK_BOUND:-}" ]; then echo "$SOAK_BOUND"; return; fi
    awk -v p="$1" 'BEGIN { print (p <= 0.05 ? 20 : (p <= 0.20 ? 30 : 45)) }'
}

echo "building the examples (release)"
cargo build --release -q -p a3m-examples --example push --example pull --example relay
BIN="${CARGO_TARGET_DIR:-target}/release/examples"
for b in push pull relay; do
    [ -x "$BIN/$b" ] || { echo "missing $BIN/$b" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/a3m-fault-soak.XXXXXX")
RESULTS="$WORK/results"
: >"$RESULTS"

cleanup() {
    trap - EXIT INT TERM
    local pids
    pids=$(jobs -p)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
        wait 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'cleanup; echo "interrupted; logs in $WORK" >&2; exit 130' INT TERM

# Waits (up to 10 s) for a line starting with $2 in file $1 and prints the word after "on".
address_from() {
    local file=$1 prefix=$2 i line
    for i in $(seq 1000); do
        line=$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)
        if [ -n "$line" ]; then
            awk '{ for (i = 1; i < NF; i++) if ($i == "on") { print $(i + 1); exit } }' \
                <<<"$line"
            return 0
        fi
        sleep 0.01
    done
    return 1
}

# One run: prints "LEVEL SEED ok|stalled|failed SECONDS" to the results file.
run_one() {
    local level=$1 seed=$2 bound dir pull push relay
    pids=()
    bound=$(bound_for "$level")
    dir="$WORK/loss$level-seed$seed"
    mkdir -p "$dir"
    trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
    trap 'exit 143' TERM INT

    local start outcome="failed" pull_rc="" push_rc="" now elapsed
    start=$(date +%s.%N)
    "$BIN/pull" --node B --bind 127.0.0.1:0 --tag sink --count "$COUNT" --timeout 600 \
        "${DATAGRAM[@]}" >"$dir/pull.out" 2>&1 &
    pull=$!
    pids+=("$pull")
    local pull_addr relay_addr
    if ! pull_addr=$(address_from "$dir/pull.out" "pull listening on"); then
        echo "$level $seed failed 0" >>"$RESULTS"
        echo "pull did not start" >"$dir/why"
        return
    fi
    "$BIN/relay" --listen 127.0.0.1:0 --to "$pull_addr" --loss "$level" --dup 0.02 \
        --reorder 0.05 --seed "$seed" --report 1s >"$dir/relay.out" 2>&1 &
    relay=$!
    pids+=("$relay")
    if ! relay_addr=$(address_from "$dir/relay.out" "relay listening on"); then
        echo "$level $seed failed 0" >>"$RESULTS"
        echo "relay did not start" >"$dir/why"
        return
    fi
    "$BIN/push" --node A --bind 127.0.0.1:0 --peer "B=$relay_addr" --link B/sink \
        --count "$COUNT" --size "$SIZE" --timeout 600 "${DATAGRAM[@]}" >"$dir/push.out" 2>&1 &
    push=$!
    pids+=("$push")

    while :; do
        if [ -z "$pull_rc" ] && ! kill -0 "$pull" 2>/dev/null; then
            pull_rc=0
            wait "$pull" || pull_rc=$?
        fi
        if [ -z "$push_rc" ] && ! kill -0 "$push" 2>/dev/null; then
            push_rc=0
            wait "$push" || push_rc=$?
        fi
        now=$(date +%s.%N)
        elapsed=$(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.3f", b - a }')
        if [ -n "$pull_rc" ] && [ -n "$push_rc" ]; then
            if [ "$pull_rc" = 0 ] && [ "$push_rc" = 0 ]; then
                outcome=ok
            else
                echo "pull exit $pull_rc, push exit $push_rc" >"$dir/why"
            fi
            break
        fi
        if awk -v e="$elapsed" -v b="$bound" 'BEGIN { exit !(e >= b) }'; then
            outcome=stalled
            echo "still running after ${bound}s (pull exit ${pull_rc:-running}," \
                "push exit ${push_rc:-running})" >"$dir/why"
            break
        fi
        sleep 0.05
    done
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "$outcome" = ok ] && [ "${SOAK_KEEP:-0}" != 1 ]; then rm -rf "$dir"; fi
    echo "$level $seed $outcome $elapsed" >>"$RESULTS"
}

echo "soak: seeds $SEED_BASE..$((SEED_BASE + SEEDS - 1)) x loss {$LEVELS}, $COUNT x $SIZE B," \
    "dup 0.02, reorder 0.05, $JOBS at a time; logs in $WORK"
for level in $LEVELS; do
    for ((seed = SEED_BASE; seed < SEED_BASE + SEEDS; seed++)); do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n 2>/dev/null || true; done
        run_one "$level" "$seed" &
    done
done
wait

# Nearest-rank percentile $2 (0-100) of the numbers, one per line, in file $1.
percentile() {
    sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        r = int((p * NR + 99) / 100); if (r < 1) r = 1; printf "%.2fs", v[r] }'
}

total_stalled=0
total_failed=0
for level in $LEVELS; do
    awk -v l="$level" '$1 == l && $3 == "ok" { print $4 }' "$RESULTS" >"$WORK/times"
    finished=$(wc -l <"$WORK/times")
    stalled=$(awk -v l="$level" '$1 == l && $3 == "stalled"' "$RESULTS" | wc -l)
    failed=$(awk -v l="$level" '$1 == l && $3 == "failed"' "$RESULTS" | wc -l)
    total_stalled=$((total_stalled + stalled))
    total_failed=$((total_failed + failed))
    echo "loss=$level bound=$(bound_for "$level")s finished=$finished stalled=$stalled" \
        "failed=$failed p50=$(percentile "$WORK/times" 50) p99=$(percentile "$WORK/times" 99)" \
        "max=$(percentile "$WORK/times" 100)"
    awk -v l="$level" '$1 == l && $3 != "ok" { printf "  %s seed=%s\n", $3, $2 }' "$RESULTS"
done
if [ "$total_failed" -gt 0 ] || [ "$total_stalled" -gt 0 ]; then
    echo "logs of the stalled and failed runs: $WORK"
    echo "soak failed=$total_failed"
elif [ "${SOAK_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
fi
echo "soak seeds=$SEEDS stalled=$total_stalled"
[ "$total_failed" -eq 0 ] && [ "$total_stalled" -eq 0 ]

#!/usr/bin/env bash
# Real address changes under a stream (issue 13): examples/push in network namespace A,
# examples/pull in namespace B, a veth pair between them, and no `rebind()` anywhere: a node
# bound to a wildcard address must keep going when its interface address changes.
#
# Variants (MOB_VARIANTS, default "a b c d e"):
#   a  the sender moves:    A 10.77.0.1 -> 10.77.0.3 (push bound to 0.0.0.0)
#   b  the receiver moves:  B 10.77.0.2 -> 10.77.0.4 (pull bound to 0.0.0.0:7001; push only
#                           knows B=10.77.0.2:7001 and must learn .4 from B's datagrams)
#   c  both move, B 0.2 s after A (each one's only known address of the other disappears)
#   d  blackout: A's link down for MOB_BLACKOUT s (default 10), then up again
#   e  the sender loses its only address and gets 10.77.0.3 MOB_OFFLINE s later (default 2)
# A move is `ip addr add NEW; ip addr del OLD` (DESIGN.md's recipe). Deleting the primary
# address of a subnet also deletes its secondaries unless promote_secondaries is set, so
# a, b and c run twice: MOB_PROMOTE="1 0" (promote_secondaries on, then off: off leaves the
# moved node with no IPv4 address at all, which nothing can survive; those runs are reported
# but not judged).
#
# Every run is made plain and sealed: MOB_SEALED="0 1" (default; "0" or "1" for one pass). A
# sealed run gives push and pull `--key-file` with a key made for this script run (64 hex
# digits from /dev/urandom, mode 0600, in the private log directory): with sealing on, a moved
# peer's new address is adopted only after an authenticated, non-replayed datagram and a path
# challenge answered from there (issue 15), and the run is judged by the same bound.
#
# For each run: messages delivered (pull's own count), complete or not, and the gap: from the
# change (the `ip addr del`, the link coming back up, or the new address appearing) until
# datagrams reach the pull process again at a tenth of the stream's earlier rate or more,
# sampled every MOB_SAMPLE s (default 0.02) from the pull's UDP counters (/proc/PID/net/snmp
# shows the process's own namespace); and the longest stall after the change. Judged runs
# pass if pull exits 0 (all N arrived once, in order), push exits 0 and the gap is at most
# MOB_BOUND s (default 1.0). Exits 1 if a judged run failed. Needs root and `ip netns`; prints
# why and exits 0 without them. The tests in examples/tests/mobility_netns.rs run the same
# scenarios (promote_secondaries on, fewer messages, a 3 s blackout) under `cargo test`.
#
# Other knobs: MOB_COUNT (messages, default 8000000), MOB_MOVE_AFTER (s after the link is up,
# default 1), MOB_QUIET_TIMEOUT (s without a message before pull gives up, default 5 + the
# blackout), MOB_BIN (a directory with push and pull already built: no build), MOB_KEEP=1
# (keep the per-run logs, which are otherwise deleted when every judged run passed).
set -euo pipefail
cd "$(dirname "$0")/.."

VARIANTS=${MOB_VARIANTS:-a b c d e}
PROMOTE=${MOB_PROMOTE:-1 0}
COUNT=${MOB_COUNT:-8000000}
MOVE_AFTER=${MOB_MOVE_AFTER:-1}
BLACKOUT=${MOB_BLACKOUT:-10}
OFFLINE=${MOB_OFFLINE:-2}
SAMPLE=${MOB_SAMPLE:-0.02}
SEALED=${MOB_SEALED:-0 1}
BOUND=${MOB_BOUND:-1.0}
QUIET=${MOB_QUIET_TIMEOUT:-$((5 + BLACKOUT))}

if [ "$(id -u)" != 0 ]; then
    echo "ci/mobility.sh: skipped: needs root (network namespaces)"
    exit 0
fi
if ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
    echo "ci/mobility.sh: skipped: \`ip netns\` is not available"
    exit 0
fi

if [ -n "${MOB_BIN:-}" ]; then
    BIN=$MOB_BIN
else
    cargo build --release --example push --example pull
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/examples"
fi

LOGS=$(mktemp -d /tmp/a3m-mobility.XXXXXX)
KEY=$LOGS/psk
case " $SEALED " in
    *" 1 "*)
        (
            umask 077
            {
                echo "# a3m pre-shared key for ci/mobility.sh"
                od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
                echo
            } >"$KEY"
        )
        chmod 600 "$KEY"
        ;;
esac
NAMESPACES=()
PIDS=()
cleanup() {
    local pid ns
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo "$EPOCHREALTIME"; }
# A sleep that a signal interrupts (the traps run at once, not when a foreground sleep ends).
pause() {
    sleep "$1" &
    wait $!
}

# Writes "time udp_in_datagrams udp_out_datagrams" every $SAMPLE s while process $1 lives,
# read from /proc/$1/net/snmp (the counters of the namespace the process is in).
sampler() {
    local pid=$1 k v rest n
    local -a f
    while [ -e "/proc/$pid" ]; do
        n=0
        while read -r k v rest; do
            if [ "$k" = Udp: ]; then
                n=$((n + 1))
                if [ $n = 2 ]; then
                    read -r -a f <<<"$rest"
                    echo "$EPOCHREALTIME $v ${f[2]}"
                    break
                fi
            fi
        done 2>/dev/null <"/proc/$pid/net/snmp" || break
        sleep "$SAMPLE"
    done
}

# Prints "GAP LONGEST_STALL" (ms) from samples file $1, stream start $2, the change's
# beginning $3 and end $4 (the reference), and whether the stream completed ($5, yes/no).
# The stream's rate is taken from start to beginning; an interval is "flowing" if the pull
# received at least a tenth of that rate's datagrams in it (at least 3). The gap is the end
# of the first flowing interval wholly after the reference ("never" if none came); the longest
# stall is the longest time after the reference without a flowing interval (up to the last
# one if the stream completed, up to the last sample if not).
gap_of() {
    awk -v start="$2" -v begin="$3" -v ref="$4" -v complete="$5" '
        { t[NR] = $1; d[NR] = $2 }
        END {
            for (i = 1; i <= NR; i++) {
                if (t[i] <= start) s = i
                if (t[i] <= begin) b = i
            }
            if (!s || !b || b <= s || t[b] <= t[s]) { print "n/a n/a"; exit }
            rate = (d[b] - d[s]) / (t[b] - t[s])
            gap = ""; last = ref; stall = 0
            for (i = 2; i <= NR; i++) {
                if (t[i - 1] < ref) continue
                need = rate * (t[i] - t[i - 1]) / 10
                if (need < 3) need = 3
                if (d[i] - d[i - 1] >= need) {
                    if (gap == "") gap = t[i] - ref
                    if (t[i] - last > stall) stall = t[i] - last
                    last = t[i]
                }
            }
            if (complete != "yes" && NR > 0 && t[NR] - last > stall) stall = t[NR] - last
            printf "%s %.0f\n", (gap == "" ? "never" : sprintf("%.0f", gap * 1000)), stall * 1000
        }' "$1"
}

FAILED=0
RESULTS=()
RUN=0

# One run: variant $1, promote_secondaries $2 (1 or 0), sealed $3 (1 or 0).
run() {
    local variant=$1 promote=$2 sealed=$3
    RUN=$((RUN + 1))
    local A="a3m-mob-a-$$-$RUN" B="a3m-mob-b-$$-$RUN" dir="$LOGS/$RUN-$variant$promote-s$sealed"
    local -a key=()
    [ "$sealed" = 1 ] && key=(--key-file "$KEY")
    mkdir -p "$dir"
    NAMESPACES+=("$A" "$B")
    ip netns add "$A"
    ip netns add "$B"
    ip link add va netns "$A" type veth peer name vb netns "$B"
    local ns dev
    for ns in "$A:va" "$B:vb"; do
        dev=${ns#*:}
        ns=${ns%%:*}
        # Set explicitly both ways: a new namespace may inherit either value from the host.
        ip netns exec "$ns" sh -c "for c in all default $dev; do
            echo $promote >/proc/sys/net/ipv4/conf/\$c/promote_secondaries; done"
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$dev" up
    done
    ip -n "$A" addr add 10.77.0.1/24 dev va
    ip -n "$B" addr add 10.77.0.2/24 dev vb

    local pull_bind=10.77.0.2:7001
    case $variant in b | c) pull_bind=0.0.0.0:7001 ;; esac
    ip netns exec "$B" "$BIN/pull" --node B --bind "$pull_bind" --tag sink --count "$COUNT" \
        --timeout "$QUIET" --stats "${key[@]}" >"$dir/pull.out" 2>"$dir/pull.err" &
    local pull=$!
    PIDS+=("$pull")
    ip netns exec "$A" "$BIN/push" --node A --bind 0.0.0.0:0 --peer B=10.77.0.2:7001 \
        --link B/sink --count "$COUNT" --size 100 --timeout $((QUIET + 2)) --stats "${key[@]}" \
        >"$dir/push.out" 2>"$dir/push.err" &
    local push=$!
    PIDS+=("$push")
    sampler "$pull" >"$dir/pull.samples" &
    PIDS+=("$!")
    sampler "$push" >"$dir/push.samples" &
    PIDS+=("$!")

    local start="" i
    for i in $(seq 200); do
        if grep -q "linked from" "$dir/pull.out" 2>/dev/null; then
            start=$(now)
            break
        fi
        sleep 0.05
    done
    local begin="" ref="" note="" alive=yes
    if [ -z "$start" ]; then
        note="the link never came up"
    else
        pause "$MOVE_AFTER"
        [ -e "/proc/$pull" ] || alive=no
        begin=$(now)
        case $variant in
            a)
                ip -n "$A" addr add 10.77.0.3/24 dev va
                ip -n "$A" addr del 10.77.0.1/24 dev va
                ref=$(now)
                ;;
            b)
                ip -n "$B" addr add 10.77.0.4/24 dev vb
                ip -n "$B" addr del 10.77.0.2/24 dev vb
                ref=$(now)
                ;;
            c)
                # A first, then B 0.2 s later: moves within about a round trip of each
                # other cannot be recovered without a third party (each announcement goes
                # to the other's dead address).
                ip -n "$A" addr add 10.77.0.3/24 dev va
                ip -n "$A" addr del 10.77.0.1/24 dev va
                sleep 0.2
                ip -n "$B" addr add 10.77.0.4/24 dev vb
                ip -n "$B" addr del 10.77.0.2/24 dev vb
                ref=$(now)
                ;;
            d)
                ip -n "$A" link set va down
                pause "$BLACKOUT"
                ip -n "$A" link set va up
                ref=$(now)
                ;;
            e)
                ip -n "$A" addr del 10.77.0.1/24 dev va
                pause "$OFFLINE"
                ip -n "$A" addr add 10.77.0.3/24 dev va
                ref=$(now)
                ;;
        esac
        {
            echo "after the change:"
            ip -n "$A" -4 addr show dev va
            ip -n "$B" -4 addr show dev vb
        } >"$dir/addresses"
        [ $alive = yes ] || note="the stream ended before the change (raise MOB_COUNT)"
    fi

    # pull gives up after $QUIET s without a message; push may block in send() for good (its
    # --timeout bounds the link and the close, not a send waiting for credit).
    local deadline=$((SECONDS + QUIET + 5)) pull_rc push_rc
    while [ -e "/proc/$pull" ] || [ -e "/proc/$push" ]; do
        if [ $SECONDS -ge $deadline ]; then
            kill "$pull" "$push" 2>/dev/null || true
            note="${note:+$note; }killed at the deadline"
            break
        fi
        sleep 0.1
    done
    wait "$pull" && pull_rc=0 || pull_rc=$?
    wait "$push" && push_rc=0 || push_rc=$?
    local end
    end=$(now)

    local delivered gap stall
    delivered=$(sed -n 's/^pull received=\([0-9]*\).*/\1/p' "$dir/pull.out")
    delivered=${delivered:-?}
    echo "start=$start begin=$begin ref=$ref end=$end" >"$dir/times"
    local complete=no
    [ "$pull_rc" = 0 ] && complete=yes
    read -r gap stall < <(if [ -n "$ref" ]; then
        gap_of "$dir/pull.samples" "$start" "$begin" "$ref" "$complete"
    else echo "n/a n/a"; fi)
    local verdict=PASS
    if [ "$variant" != d ] && [ "$variant" != e ] && [ "$promote" = 0 ]; then
        verdict=info
    elif [ "$complete" != yes ] || [ "$push_rc" != 0 ] || [ "$alive" != yes ] ||
        ! awk -v g="$gap" -v b="$BOUND" 'BEGIN { exit !(g ~ /^[0-9]+$/ && g <= b * 1000) }'; then
        verdict=FAIL
        FAILED=1
    fi
    local line
    local total
    total=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", (a == "" ? 0 : b - a) }')
    line="$(printf '%-2s' "$variant") sealed=$sealed promote=$promote delivered=$delivered/$COUNT"
    line+=" complete=$complete pull_rc=$pull_rc push_rc=$push_rc gap_ms=$gap"
    line+=" longest_stall_ms=$stall total_s=$total $verdict${note:+ ($note)}"
    echo "$line"
    RESULTS+=("$line")
    grep -h "reader stopped" "$dir/push.err" "$dir/pull.err" || true

    ip netns del "$A"
    ip netns del "$B"
}

for sealed in $SEALED; do
    case $sealed in 0 | 1) ;; *)
        echo "MOB_SEALED: expected 0 and/or 1, not $sealed"
        exit 2
        ;;
    esac
done
for sealed in $SEALED; do
    for variant in $VARIANTS; do
        case $variant in
            a | b | c) for p in $PROMOTE; do run "$variant" "$p" "$sealed"; done ;;
            d | e) run "$variant" 1 "$sealed" ;;
            *)
                echo "unknown variant $variant"
                exit 2
                ;;
        esac
    done
done

echo
echo "mobility: $COUNT messages, change ${MOVE_AFTER}s into the stream, bound ${BOUND}s"
printf '%s\n' "${RESULTS[@]}"
if [ $FAILED = 0 ] && [ "${MOB_KEEP:-0}" != 1 ]; then
    rm -rf "$LOGS"
else
    echo "logs: $LOGS"
fi
exit $FAILED

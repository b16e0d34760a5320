#!/usr/bin/env bash
# The exactly-once transport's one-way throughput (examples/eo_thr: two processes over UDP
# loopback) beside ZeroMQ push/pull over TCP loopback, alternating in one run.
# Usage: bash ci/eo-vs-zmq.sh [COUNT] [REPS]   (defaults 1000000 and 3; sizes 1 100 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000000}
reps=${2:-3}
if ! [ -f /usr/include/zmq.h ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq libzmq3-dev >/dev/null
fi
mkdir -p target/bench-peers
gcc -O2 -o target/bench-peers/zmq_thr ci/peers/zmq_thr.c -lzmq
cargo build -q --release --example eo_thr
eo=target/release/examples/eo_thr
zmq=target/bench-peers/zmq_thr
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
rate() { sed -n 's/.*msgs_per_sec=\([0-9]*\).*/\1/p'; }
port=5590
for size in 1 100 1000; do
    : >"target/bench-peers/eo.$size"; : >"target/bench-peers/zmq.$size"
    for _ in $(seq "$reps"); do
        timeout 120 "$eo" --size "$size" --count "$count" | rate >>"target/bench-peers/eo.$size"
        port=$((port + 1))
        timeout 120 "$zmq" local "tcp://127.0.0.1:$port" "$size" "$count" | rate \
            >>"target/bench-peers/zmq.$size" &
        sleep 0.2
        timeout 120 "$zmq" remote "tcp://127.0.0.1:$port" "$size" "$count"
        wait
    done
    e=$(median <"target/bench-peers/eo.$size")
    z=$(median <"target/bench-peers/zmq.$size")
    echo "size=$size eo_thr_median=$e zmq_median=$z runs_eo=[$(paste -sd, "target/bench-peers/eo.$size")] runs_zmq=[$(paste -sd, "target/bench-peers/zmq.$size")] eo_over_zmq=$(awk -v a="$e" -v b="$z" 'BEGIN{printf "%.2f", a/b}')"
done

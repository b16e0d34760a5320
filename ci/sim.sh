#!/usr/bin/env bash
# Deterministic network simulator: 1000 seeds x 1000 messages over loss, duplication,
# reordering, a 10 s partition and a node changing address; fails unless every message is
# delivered exactly once; then the same with delayed acknowledgements (as std nodes run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --example sim -- --seeds 1000 --messages 1000 --loss 0.3 --dup 0.1 --reorder 0.3 --partition 10s --move
cargo run --release --example sim -- --seeds 1000 --messages 1000 --loss 0.3 --dup 0.1 --reorder 0.3 --partition 10s --move --ack-delay 2ms

#!/usr/bin/env bash
# Deterministic network simulator. Every campaign checks safety (every message delivered
# exactly once) and liveness: each seed must be complete (everything delivered and
# acknowledged) and, with --quiesce, closed (every record dropped) within a completion bound
# derived from the scenario (tests/src/sim/liveness.rs); the `sim liveness:` line gives the
# stalled seeds, the virtual goodput and completion-time percentiles.
#  1. 1000 seeds x 1000 messages over 30 % loss, duplication, reordering, a 10 s partition and
#     a node changing address, then the same with delayed acknowledgements (as std nodes run);
#  2. large datagrams (65 507 bytes, 16-byte payloads, ~1000 tokens per peer in flight at
#     once: hundreds lost as one) with random and burst loss and the same faults;
#  3. a sender whose own address disappears at any time, up to after its last submission;
#  4. a window of 64 slots and bursts of submissions under the same faults: senders wait for
#     grants, which is when their slot lookahead grows (up to a quarter of the window).
# Runs in a few seconds of wall time once built.
set -euo pipefail
cd "$(dirname "$0")/.."
sim() { cargo run --release --example sim -- "$@"; }
faults=(--loss 0.3 --dup 0.1 --reorder 0.3 --partition 10s --move --quiesce)
sim --seeds 1000 --messages 1000 "${faults[@]}"
sim --seeds 1000 --messages 1000 "${faults[@]}" --ack-delay 2ms
sim --seeds 1000 --messages 6000 --bursts 2 --max-datagram 65507 --loss 0.25 \
    --burst-loss 0.05 --burst-len 2 --dup 0.1 --reorder 0.3 --partition 10s --move --quiesce
sim --seeds 500 --messages 1000 --loss 0.3 --dup 0.1 --reorder 0.3 --partition 10s \
    --senders 0 --move --mover 0 --move-at 0.1..1.2
sim --seeds 1000 --messages 2000 --bursts 5 --window 64 --base-slots 2 "${faults[@]}"

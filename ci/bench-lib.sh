# Helpers shared by ci/bench.sh and ci/bench-sealed.sh: running one measurement and
# summarizing the runs. Sourced, not run: the caller sets `runs` (the directory of run
# files), `limit` (seconds one program may run) and `port` (the last port used).

next_port() { port=$((port + 1)); }

# serve_and_run KEY FIELD[,EXTRA...] -- SERVER... -- CLIENT...: starts the server side, then
# the client side; appends FIELD's value from whichever side printed it to $runs/KEY (and
# each EXTRA field's to $runs/KEY.EXTRA).
serve_and_run() {
    local key=$1 field=${2%%,*} extras=
    [ "$field" = "$2" ] || extras=${2#*,}
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
    local extra extra_value
    for extra in ${extras//,/ }; do
        extra_value=$(sed -n "s/.*[ ]$extra=\([0-9.]*\).*/\1/p" "$log.server" "$log.client" \
            | head -n1)
        if [ -z "$extra_value" ]; then
            echo "  run failed: $key (no $extra=); output in $log" >&2
            return 0
        fi
    done
    for extra in ${extras//,/ }; do
        sed -n "s/.*[ ]$extra=\([0-9.]*\).*/\1/p" "$log.server" "$log.client" | head -n1 \
            >>"$runs/$key.$extra"
    done
    echo "$value" >>"$runs/$key"
}

median() { # FILE: the median of its numbers, or n/a
    [ -s "$1" ] || { echo n/a; return; }
    sort -g "$1" | awk '{a[NR]=$1} END {m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2;
        printf (m >= 100 ? "%.0f\n" : "%.2f\n"), m}'
}
runs_of() { [ -s "$1" ] && paste -sd, "$1" || echo -; }
ratio() { # A B: A/B (two decimals, or two significant digits below 0.1), or n/a
    awk -v a="$1" -v b="$2" 'BEGIN { if (!(a+0 > 0 && b+0 > 0)) print "n/a";
        else if (a/b >= 0.1) printf "%.2f\n", a/b; else printf "%.2g\n", a/b }'
}

/* NNG request/reply round-trip latency. Same arguments and output as zmq_lat.c:
 *
 *   nng_lat local  URL SIZE COUNT   listens with a REP socket and echoes COUNT (+1) messages,
 *                                   then stays until the requester hangs up
 *   nng_lat remote URL SIZE COUNT   dials with a REQ socket, makes COUNT round trips,
 *                                   prints "nng_lat size=S count=N rtt_us=L"
 *
 * rtt_us is the mean round-trip time in microseconds, after one untimed round trip. */
#define A3M_PEER_NNG
#include "peer.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <string.h>

static void die(const char *what, int rv) {
    fprintf(stderr, "nng_lat: %s: %s\n", what, nng_strerror(rv));
    exit(1);
}

static void round_trip(nng_socket s, size_t size) {
    nng_msg *msg;
    int rv;
    if ((rv = nng_msg_alloc(&msg, size)) != 0) die("nng_msg_alloc", rv);
    memset(nng_msg_body(msg), 'x', size);
    if ((rv = nng_sendmsg(s, msg, 0)) != 0) die("nng_sendmsg", rv);
    if ((rv = nng_recvmsg(s, &msg, 0)) != 0) die("nng_recvmsg", rv);
    if (nng_msg_len(msg) != size) {
        fprintf(stderr, "nng_lat: reply has %zu bytes, expected %zu\n", nng_msg_len(msg), size);
        exit(1);
    }
    nng_msg_free(msg);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: nng_lat local|remote URL SIZE COUNT\n");
        return 2;
    }
    const char *url = argv[2];
    size_t size = (size_t)peer_arg("nng_lat", "SIZE", argv[3], 0);
    long count = peer_arg("nng_lat", "COUNT", argv[4], 1);
    nng_socket s;
    int rv;
    if (strcmp(argv[1], "local") == 0) {
        if ((rv = nng_rep0_open(&s)) != 0) die("nng_rep0_open", rv);
        struct peer_pipes pipes;
        peer_pipes_watch(&pipes, s);
        if ((rv = nng_listen(s, url, NULL, 0)) != 0) die("nng_listen", rv);
        for (long i = 0; i <= count; i++) {
            nng_msg *msg;
            if ((rv = nng_recvmsg(s, &msg, 0)) != 0) die("nng_recvmsg", rv);
            if ((rv = nng_sendmsg(s, msg, 0)) != 0) die("nng_sendmsg", rv);
        }
        peer_pipes_wait_gone(&pipes, 30);
        nng_close(s);
    } else if (strcmp(argv[1], "remote") == 0) {
        if ((rv = nng_req0_open(&s)) != 0) die("nng_req0_open", rv);
        if ((rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) die("nng_dial", rv);
        round_trip(s, size);
        double start = peer_now();
        for (long i = 0; i < count; i++) round_trip(s, size);
        double elapsed = peer_now() - start;
        printf("nng_lat size=%zu count=%ld rtt_us=%.2f\n", size, count, elapsed * 1e6 / count);
        nng_close(s);
    } else {
        fprintf(stderr, "nng_lat: mode must be local or remote\n");
        return 2;
    }
    return 0;
}

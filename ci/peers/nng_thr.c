/* NNG push/pull one-way throughput, the NNG column of ci/bench.sh's throughput cases.
 * Same arguments and output as zmq_thr.c (libzmq's local_thr/remote_thr):
 *
 *   nng_thr local  URL SIZE COUNT   listens with a PULL socket, receives COUNT messages,
 *                                   prints "nng size=S count=N msgs_per_sec=R mbit=M"
 *   nng_thr remote URL SIZE COUNT   dials with a PUSH socket, sends COUNT messages, then stays
 *                                   until the receiver hangs up (NNG does not linger)
 *
 * The rate is measured like libzmq's: from the first message received to the last. */
#define A3M_PEER_NNG
#include "peer.h"

#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <string.h>

static void die(const char *what, int rv) {
    fprintf(stderr, "nng_thr: %s: %s\n", what, nng_strerror(rv));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: nng_thr local|remote URL SIZE COUNT\n");
        return 2;
    }
    const char *url = argv[2];
    size_t size = (size_t)peer_arg("nng_thr", "SIZE", argv[3], 0);
    long count = peer_arg("nng_thr", "COUNT", argv[4], 1);
    /* The receive queue libzmq's perf tools get from their high-water mark of 1000. The
     * PUSH side keeps NNG's default send buffer (none): on NNG 1.5 a 1000-message send
     * buffer made push/pull slower (about 37k against 58k msgs/s at 100 B here). */
    int depth = 1000;
    nng_socket s;
    int rv;
    if (strcmp(argv[1], "local") == 0) {
        if ((rv = nng_pull0_open(&s)) != 0) die("nng_pull0_open", rv);
        nng_socket_set_int(s, NNG_OPT_RECVBUF, depth);
        if ((rv = nng_listen(s, url, NULL, 0)) != 0) die("nng_listen", rv);
        nng_msg *msg;
        if ((rv = nng_recvmsg(s, &msg, 0)) != 0) die("nng_recvmsg", rv);
        nng_msg_free(msg);
        double start = peer_now();
        for (long i = 1; i < count; i++) {
            if ((rv = nng_recvmsg(s, &msg, 0)) != 0) die("nng_recvmsg", rv);
            if (nng_msg_len(msg) != size) {
                fprintf(stderr, "nng_thr: message %ld has %zu bytes, expected %zu\n", i,
                        nng_msg_len(msg), size);
                return 1;
            }
            nng_msg_free(msg);
        }
        double elapsed = peer_now() - start;
        if (elapsed <= 0) elapsed = 1e-9;
        double rate = (count - 1) / elapsed;
        printf("nng size=%zu count=%ld msgs_per_sec=%.0f mbit=%.1f\n", size, count, rate,
               rate * size * 8 / 1e6);
        fflush(stdout);
        nng_close(s);
    } else if (strcmp(argv[1], "remote") == 0) {
        if ((rv = nng_push0_open(&s)) != 0) die("nng_push0_open", rv);
        struct peer_pipes pipes;
        peer_pipes_watch(&pipes, s);
        /* Non-blocking dial: NNG keeps retrying, and sends wait for the connection. */
        if ((rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) die("nng_dial", rv);
        for (long i = 0; i < count; i++) {
            nng_msg *msg;
            if ((rv = nng_msg_alloc(&msg, size)) != 0) die("nng_msg_alloc", rv);
            memset(nng_msg_body(msg), 'x', size);
            if ((rv = nng_sendmsg(s, msg, 0)) != 0) die("nng_sendmsg", rv);
        }
        peer_pipes_wait_gone(&pipes, 60);
        nng_close(s);
    } else {
        fprintf(stderr, "nng_thr: mode must be local or remote\n");
        return 2;
    }
    return 0;
}

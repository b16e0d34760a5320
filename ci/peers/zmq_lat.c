/* ZeroMQ request/reply round-trip latency, modelled on libzmq's perf/local_lat.c and
 * remote_lat.c (which print half the round trip; this prints the whole of it).
 *
 *   zmq_lat local  ENDPOINT SIZE COUNT   binds a REP socket and echoes COUNT messages
 *   zmq_lat remote ENDPOINT SIZE COUNT   connects a REQ socket, makes COUNT round trips,
 *                                        prints "zmq_lat size=S count=N rtt_us=L"
 *
 * rtt_us is the mean round-trip time in microseconds; one untimed round trip comes first
 * so connection set-up is not counted. */
#include "peer.h"

#include <string.h>
#include <zmq.h>

static void die(const char *what) {
    fprintf(stderr, "zmq_lat: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void round_trip(void *s, zmq_msg_t *msg, size_t size) {
    if (zmq_msg_init_size(msg, size) != 0) die("zmq_msg_init_size");
    memset(zmq_msg_data(msg), 'x', size);
    if (zmq_msg_send(msg, s, 0) < 0) die("zmq_msg_send");
    if (zmq_msg_init(msg) != 0) die("zmq_msg_init");
    if (zmq_msg_recv(msg, s, 0) < 0) die("zmq_msg_recv");
    if (zmq_msg_size(msg) != size) {
        fprintf(stderr, "zmq_lat: reply has %zu bytes, expected %zu\n", zmq_msg_size(msg), size);
        exit(1);
    }
    zmq_msg_close(msg);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: zmq_lat local|remote ENDPOINT SIZE COUNT\n");
        return 2;
    }
    const char *endpoint = argv[2];
    size_t size = (size_t)peer_arg("zmq_lat", "SIZE", argv[3], 0);
    long count = peer_arg("zmq_lat", "COUNT", argv[4], 1);
    void *ctx = zmq_ctx_new();
    if (!ctx) die("zmq_ctx_new");
    int linger = -1;
    if (strcmp(argv[1], "local") == 0) {
        void *s = zmq_socket(ctx, ZMQ_REP);
        if (!s) die("zmq_socket");
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_bind(s, endpoint) != 0) die("zmq_bind");
        zmq_msg_t msg;
        /* count timed round trips plus the untimed first one */
        for (long i = 0; i <= count; i++) {
            if (zmq_msg_init(&msg) != 0) die("zmq_msg_init");
            if (zmq_msg_recv(&msg, s, 0) < 0) die("zmq_msg_recv");
            if (zmq_msg_send(&msg, s, 0) < 0) die("zmq_msg_send");
        }
        zmq_close(s);
    } else if (strcmp(argv[1], "remote") == 0) {
        void *s = zmq_socket(ctx, ZMQ_REQ);
        if (!s) die("zmq_socket");
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(s, endpoint) != 0) die("zmq_connect");
        zmq_msg_t msg;
        round_trip(s, &msg, size);
        double start = peer_now();
        for (long i = 0; i < count; i++) round_trip(s, &msg, size);
        double elapsed = peer_now() - start;
        printf("zmq_lat size=%zu count=%ld rtt_us=%.2f\n", size, count, elapsed * 1e6 / count);
        zmq_close(s);
    } else {
        fprintf(stderr, "zmq_lat: mode must be local or remote\n");
        return 2;
    }
    zmq_ctx_term(ctx);
    return 0;
}

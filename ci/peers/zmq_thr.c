/* ZeroMQ push/pull one-way throughput, the peer a3m's eo_thr and local_thr/remote_thr are
 * compared with. Modelled on libzmq's perf/local_thr.c and remote_thr.c.
 *
 *   zmq_thr local  ENDPOINT SIZE COUNT   binds a PULL socket, receives COUNT messages,
 *                                        prints "zmq size=S count=N msgs_per_sec=R mbit=M"
 *   zmq_thr remote ENDPOINT SIZE COUNT   connects a PUSH socket and sends COUNT messages
 */
#include <zmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "zmq_thr: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: zmq_thr local|remote ENDPOINT SIZE COUNT\n");
        return 2;
    }
    const char *endpoint = argv[2];
    size_t size = (size_t)atol(argv[3]);
    long count = atol(argv[4]);
    void *ctx = zmq_ctx_new();
    if (!ctx) die("zmq_ctx_new");
    int hwm = 1000;
    if (strcmp(argv[1], "local") == 0) {
        void *s = zmq_socket(ctx, ZMQ_PULL);
        if (!s) die("zmq_socket");
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (zmq_bind(s, endpoint) != 0) die("zmq_bind");
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_recvmsg(s, &msg, 0) < 0) die("zmq_recvmsg");
        double start = now_sec();
        for (long i = 1; i < count; i++) {
            if (zmq_recvmsg(s, &msg, 0) < 0) die("zmq_recvmsg");
            if (zmq_msg_size(&msg) != size) { fprintf(stderr, "zmq_thr: bad size\n"); return 1; }
        }
        double elapsed = now_sec() - start;
        if (elapsed <= 0) elapsed = 1e-9;
        double rate = (count - 1) / elapsed;
        printf("zmq size=%zu count=%ld msgs_per_sec=%.0f mbit=%.1f\n", size, count, rate,
               rate * size * 8 / 1e6);
        zmq_msg_close(&msg);
        zmq_close(s);
    } else {
        void *s = zmq_socket(ctx, ZMQ_PUSH);
        if (!s) die("zmq_socket");
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        int linger = -1;
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(s, endpoint) != 0) die("zmq_connect");
        for (long i = 0; i < count; i++) {
            zmq_msg_t msg;
            zmq_msg_init_size(&msg, size);
            memset(zmq_msg_data(&msg), 'x', size);
            if (zmq_sendmsg(s, &msg, 0) < 0) die("zmq_sendmsg");
        }
        zmq_close(s);
    }
    zmq_ctx_term(ctx);
    return 0;
}

/* ZeroMQ push/pull one-way throughput with CURVE security (CurveZMQ: Curve25519 key
 * exchange, then XSalsa20-Poly1305 on every message), the peer of a3m's sealed throughput
 * (ci/bench-sealed.sh). Same protocol and output as zmq_thr.c.
 *
 *   zmq_curve_thr local  ENDPOINT SIZE COUNT   CURVE server, PULL: prints
 *                                              "zmq_curve size=S count=N msgs_per_sec=R mbit=M"
 *   zmq_curve_thr remote ENDPOINT SIZE COUNT   CURVE client, PUSH
 *
 * The server's key pair is derived from a fixed secret key (zmq_curve_public), so both
 * processes know its public key without a key file; the client draws its own pair with
 * zmq_curve_keypair. Fixed keys are for benchmarking only.
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
    fprintf(stderr, "zmq_curve_thr: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

/* The server's key pair, Z85-encoded (40 characters and a NUL each). */
static void server_keys(char public_key[41], char secret_key[41]) {
    uint8_t secret[32];
    for (int i = 0; i < 32; i++) secret[i] = (uint8_t)(i * 37 + 11);
    if (!zmq_z85_encode(secret_key, secret, 32)) die("zmq_z85_encode");
    if (zmq_curve_public(public_key, secret_key) != 0) die("zmq_curve_public");
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: zmq_curve_thr local|remote ENDPOINT SIZE COUNT\n");
        return 2;
    }
    if (!zmq_has("curve")) {
        fprintf(stderr, "zmq_curve_thr: this libzmq has no CURVE support\n");
        return 1;
    }
    const char *endpoint = argv[2];
    size_t size = (size_t)atol(argv[3]);
    long count = atol(argv[4]);
    char server_public[41], server_secret[41];
    server_keys(server_public, server_secret);
    void *ctx = zmq_ctx_new();
    if (!ctx) die("zmq_ctx_new");
    int hwm = 1000;
    if (strcmp(argv[1], "local") == 0) {
        void *s = zmq_socket(ctx, ZMQ_PULL);
        if (!s) die("zmq_socket");
        int as_server = 1;
        if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &as_server, sizeof as_server) != 0)
            die("ZMQ_CURVE_SERVER");
        if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, server_secret, 40) != 0)
            die("ZMQ_CURVE_SECRETKEY");
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (zmq_bind(s, endpoint) != 0) die("zmq_bind");
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_recvmsg(s, &msg, 0) < 0) die("zmq_recvmsg");
        double start = now_sec();
        for (long i = 1; i < count; i++) {
            if (zmq_recvmsg(s, &msg, 0) < 0) die("zmq_recvmsg");
            if (zmq_msg_size(&msg) != size) {
                fprintf(stderr, "zmq_curve_thr: bad size\n");
                return 1;
            }
        }
        double elapsed = now_sec() - start;
        if (elapsed <= 0) elapsed = 1e-9;
        double rate = (count - 1) / elapsed;
        printf("zmq_curve size=%zu count=%ld msgs_per_sec=%.0f mbit=%.1f\n", size, count, rate,
               rate * size * 8 / 1e6);
        zmq_msg_close(&msg);
        zmq_close(s);
    } else {
        void *s = zmq_socket(ctx, ZMQ_PUSH);
        if (!s) die("zmq_socket");
        char client_public[41], client_secret[41];
        if (zmq_curve_keypair(client_public, client_secret) != 0) die("zmq_curve_keypair");
        if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_public, 40) != 0)
            die("ZMQ_CURVE_SERVERKEY");
        if (zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, client_public, 40) != 0)
            die("ZMQ_CURVE_PUBLICKEY");
        if (zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, client_secret, 40) != 0)
            die("ZMQ_CURVE_SECRETKEY");
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

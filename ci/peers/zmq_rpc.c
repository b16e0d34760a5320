/* ZeroMQ RPC throughput: CLIENTS client threads, each with its own socket, against one
 * server socket; the aggregate round trips per second.
 *
 *   zmq_rpc server ENDPOINT SIZE CLIENTS COUNT [PATTERN]   binds the server socket and answers
 *                                                          every request (the request, echoed)
 *   zmq_rpc client ENDPOINT SIZE CLIENTS COUNT [PATTERN]   makes COUNT round trips in all
 *                                                          (COUNT/CLIENTS per thread), prints
 *             "zmq_rpc clients=C size=S count=N rps=R pattern=P"
 *
 * PATTERN (both sides alike):
 *   reqrep   (the default) every client thread has a REQ socket, the server one REP socket
 *   router   every client thread has a DEALER socket and keeps one request in flight (send,
 *            then receive the reply); the server is one ROUTER socket, served by one thread,
 *            that sends every message back to the routing id it came from
 *
 * Each client makes one untimed round trip first; the clock runs from the moment every
 * client has made it until the last one finished. */
#include "peer.h"

#include <string.h>
#include <zmq.h>

static void die(const char *what) {
    fprintf(stderr, "zmq_rpc: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

struct run {
    void *ctx;
    const char *endpoint;
    size_t size;
    long per_client;
    int router; /* 1: DEALER clients and a ROUTER server; 0: REQ clients and a REP server */
    pthread_barrier_t ready;
};

static void round_trip(void *s, size_t size) {
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, size) != 0) die("zmq_msg_init_size");
    memset(zmq_msg_data(&msg), 'x', size);
    if (zmq_msg_send(&msg, s, 0) < 0) die("zmq_msg_send");
    if (zmq_msg_init(&msg) != 0) die("zmq_msg_init");
    if (zmq_msg_recv(&msg, s, 0) < 0) die("zmq_msg_recv");
    if (zmq_msg_size(&msg) != size) {
        fprintf(stderr, "zmq_rpc: reply has %zu bytes, expected %zu\n", zmq_msg_size(&msg), size);
        exit(1);
    }
    zmq_msg_close(&msg);
}

static void *client(void *arg) {
    struct run *run = arg;
    void *s = zmq_socket(run->ctx, run->router ? ZMQ_DEALER : ZMQ_REQ);
    if (!s) die("zmq_socket");
    int linger = -1;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, run->endpoint) != 0) die("zmq_connect");
    round_trip(s, run->size);
    pthread_barrier_wait(&run->ready);
    for (long i = 0; i < run->per_client; i++) round_trip(s, run->size);
    zmq_close(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr,
                "usage: zmq_rpc server|client ENDPOINT SIZE CLIENTS COUNT [reqrep|router]\n");
        return 2;
    }
    struct run run;
    const char *pattern = argc == 7 ? argv[6] : "reqrep";
    if (strcmp(pattern, "reqrep") == 0) {
        run.router = 0;
    } else if (strcmp(pattern, "router") == 0) {
        run.router = 1;
    } else {
        fprintf(stderr, "zmq_rpc: PATTERN must be reqrep or router, got '%s'\n", pattern);
        return 2;
    }
    run.endpoint = argv[2];
    run.size = (size_t)peer_arg("zmq_rpc", "SIZE", argv[3], 0);
    long clients = peer_arg("zmq_rpc", "CLIENTS", argv[4], 1);
    long count = peer_arg("zmq_rpc", "COUNT", argv[5], clients);
    run.per_client = count / clients;
    run.ctx = zmq_ctx_new();
    if (!run.ctx) die("zmq_ctx_new");
    int linger = -1;
    if (strcmp(argv[1], "server") == 0) {
        void *s = zmq_socket(run.ctx, run.router ? ZMQ_ROUTER : ZMQ_REP);
        if (!s) die("zmq_socket");
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_bind(s, run.endpoint) != 0) die("zmq_bind");
        long total = clients * (run.per_client + 1);
        for (long i = 0; i < total && run.router; i++) {
            /* [routing id][request] in, the same two frames out. */
            zmq_msg_t id, msg;
            if (zmq_msg_init(&id) != 0 || zmq_msg_init(&msg) != 0) die("zmq_msg_init");
            if (zmq_msg_recv(&id, s, 0) < 0) die("zmq_msg_recv");
            if (!zmq_msg_more(&id)) {
                fprintf(stderr, "zmq_rpc: ROUTER got a message without a routing id\n");
                exit(1);
            }
            if (zmq_msg_recv(&msg, s, 0) < 0) die("zmq_msg_recv");
            if (zmq_msg_more(&msg)) {
                fprintf(stderr, "zmq_rpc: request has more than one frame\n");
                exit(1);
            }
            if (zmq_msg_send(&id, s, ZMQ_SNDMORE) < 0) die("zmq_msg_send");
            if (zmq_msg_send(&msg, s, 0) < 0) die("zmq_msg_send");
        }
        for (long i = 0; i < total && !run.router; i++) {
            zmq_msg_t msg;
            if (zmq_msg_init(&msg) != 0) die("zmq_msg_init");
            if (zmq_msg_recv(&msg, s, 0) < 0) die("zmq_msg_recv");
            if (zmq_msg_send(&msg, s, 0) < 0) die("zmq_msg_send");
        }
        zmq_close(s);
    } else if (strcmp(argv[1], "client") == 0) {
        pthread_t threads[clients];
        pthread_barrier_init(&run.ready, NULL, (unsigned)clients + 1);
        for (long c = 0; c < clients; c++) pthread_create(&threads[c], NULL, client, &run);
        pthread_barrier_wait(&run.ready);
        double start = peer_now();
        for (long c = 0; c < clients; c++) pthread_join(threads[c], NULL);
        double elapsed = peer_now() - start;
        if (elapsed <= 0) elapsed = 1e-9;
        long done = clients * run.per_client;
        printf("zmq_rpc clients=%ld size=%zu count=%ld rps=%.0f pattern=%s\n", clients, run.size,
               done, done / elapsed, pattern);
    } else {
        fprintf(stderr, "zmq_rpc: mode must be server or client\n");
        return 2;
    }
    zmq_ctx_term(run.ctx);
    return 0;
}

/* NNG RPC throughput: CLIENTS client threads, each with its own REQ socket, against one REP
 * server socket; the aggregate round trips per second. Same arguments and output as
 * zmq_rpc.c:
 *
 *   nng_rpc server URL SIZE CLIENTS COUNT   listens with a REP socket and answers every
 *                                           request, then stays until the clients hang up
 *   nng_rpc client URL SIZE CLIENTS COUNT   makes COUNT round trips in all (COUNT/CLIENTS
 *                                           per thread), prints
 *                                           "nng_rpc clients=C size=S count=N rps=R"
 *
 * Each client makes one untimed round trip first; the clock runs from the moment every
 * client has made it until the last one finished. */
#define A3M_PEER_NNG
#include "peer.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <string.h>

static void die(const char *what, int rv) {
    fprintf(stderr, "nng_rpc: %s: %s\n", what, nng_strerror(rv));
    exit(1);
}

struct run {
    const char *url;
    size_t size;
    long per_client;
    pthread_barrier_t ready;
};

static void round_trip(nng_socket s, size_t size) {
    nng_msg *msg;
    int rv;
    if ((rv = nng_msg_alloc(&msg, size)) != 0) die("nng_msg_alloc", rv);
    memset(nng_msg_body(msg), 'x', size);
    if ((rv = nng_sendmsg(s, msg, 0)) != 0) die("nng_sendmsg", rv);
    if ((rv = nng_recvmsg(s, &msg, 0)) != 0) die("nng_recvmsg", rv);
    if (nng_msg_len(msg) != size) {
        fprintf(stderr, "nng_rpc: reply has %zu bytes, expected %zu\n", nng_msg_len(msg), size);
        exit(1);
    }
    nng_msg_free(msg);
}

static void *client(void *arg) {
    struct run *run = arg;
    nng_socket s;
    int rv;
    if ((rv = nng_req0_open(&s)) != 0) die("nng_req0_open", rv);
    if ((rv = nng_dial(s, run->url, NULL, NNG_FLAG_NONBLOCK)) != 0) die("nng_dial", rv);
    round_trip(s, run->size);
    pthread_barrier_wait(&run->ready);
    for (long i = 0; i < run->per_client; i++) round_trip(s, run->size);
    nng_close(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: nng_rpc server|client URL SIZE CLIENTS COUNT\n");
        return 2;
    }
    struct run run;
    run.url = argv[2];
    run.size = (size_t)peer_arg("nng_rpc", "SIZE", argv[3], 0);
    long clients = peer_arg("nng_rpc", "CLIENTS", argv[4], 1);
    long count = peer_arg("nng_rpc", "COUNT", argv[5], clients);
    run.per_client = count / clients;
    int rv;
    if (strcmp(argv[1], "server") == 0) {
        nng_socket s;
        if ((rv = nng_rep0_open(&s)) != 0) die("nng_rep0_open", rv);
        struct peer_pipes pipes;
        peer_pipes_watch(&pipes, s);
        if ((rv = nng_listen(s, run.url, NULL, 0)) != 0) die("nng_listen", rv);
        long total = clients * (run.per_client + 1);
        for (long i = 0; i < total; i++) {
            nng_msg *msg;
            if ((rv = nng_recvmsg(s, &msg, 0)) != 0) die("nng_recvmsg", rv);
            if ((rv = nng_sendmsg(s, msg, 0)) != 0) die("nng_sendmsg", rv);
        }
        peer_pipes_wait_gone(&pipes, 30);
        nng_close(s);
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
        printf("nng_rpc clients=%ld size=%zu count=%ld rps=%.0f\n", clients, run.size, done,
               done / elapsed);
    } else {
        fprintf(stderr, "nng_rpc: mode must be server or client\n");
        return 2;
    }
    return 0;
}

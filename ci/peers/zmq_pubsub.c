/* ZeroMQ pub/sub fan-out: one publisher, SUBS subscribers; how many of the published messages
 * reach the subscribers, and how fast. ZeroMQ's PUB drops a message for a subscriber whose
 * queue is full (SNDHWM, left at its default 1000), and that is part of what is measured.
 *
 *   zmq_pubsub sub ENDPOINT SIZE SUBS COUNT   SUBS SUB sockets, each connected to ENDPOINT and
 *                                             subscribed to "t"; start this side first
 *   zmq_pubsub pub ENDPOINT SIZE SUBS COUNT   binds an XPUB socket, waits (30 s at most, else
 *                                             exit 1) for SUBS subscriptions, then publishes
 *                                             COUNT messages as fast as it can, then the end
 *                                             marker
 *
 * Messages: SIZE bytes (SIZE >= 1), "t" then 'x's; the end marker is the 4 bytes "tEND" (no
 * message of the run equals it) and may be dropped like any other. The publisher binds an
 * XPUB, not a PUB, to see the subscriptions arrive (with ZMQ_XPUB_VERBOSE, so it sees every
 * subscriber's, not only the first "t"): without that wait the first messages would go
 * nowhere (ZeroMQ's slow joiners).
 *
 * The subscribers run in one thread that zmq_polls all SUB sockets (the benchmark machine
 * has 2 cores; one thread per subscriber would only contend). A subscriber ends on the end
 * marker, or once 1 s has gone by without a message to it (counted from the first message
 * any subscriber received, so a slow start is no timeout). Before the first message the
 * subscribers wait 40 s at most. Then the sub side prints
 *
 *   zmq_pubsub subscribers=N size=S published=P delivered=D lost=L msgs_per_s=R
 *
 * P = COUNT, D = messages received over all subscribers, L = N*P - D, and R = D / the seconds
 * from the first message any subscriber received to the last message any subscriber
 * received (the idle timeout is not counted). It exits 1 if nothing arrived. The pub side
 * prints "zmq_pubsub pub subscribers=N size=S published=P send_seconds=T" on stderr. */
#include "peer.h"

#include <string.h>
#include <zmq.h>

static void die(const char *what) {
    fprintf(stderr, "zmq_pubsub: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static const char end_marker[4] = {'t', 'E', 'N', 'D'};

static int is_end(zmq_msg_t *msg) {
    return zmq_msg_size(msg) == sizeof end_marker &&
           memcmp(zmq_msg_data(msg), end_marker, sizeof end_marker) == 0;
}

static int publish(void *ctx, const char *endpoint, size_t size, long subs, long count) {
    void *s = zmq_socket(ctx, ZMQ_XPUB);
    if (!s) die("zmq_socket");
    int one = 1, linger = 5000, wait_ms = 100;
    zmq_setsockopt(s, ZMQ_XPUB_VERBOSE, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &wait_ms, sizeof wait_ms);
    if (zmq_bind(s, endpoint) != 0) die("zmq_bind");

    /* Every subscriber's subscription: a message of byte 1 then the topic. */
    double deadline = peer_now() + 30;
    long subscribed = 0;
    while (subscribed < subs) {
        if (peer_now() > deadline) {
            fprintf(stderr, "zmq_pubsub: %ld of %ld subscriptions after 30 s\n", subscribed,
                    subs);
            exit(1);
        }
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, s, 0) < 0) {
            if (zmq_errno() == EAGAIN) continue;
            die("zmq_msg_recv");
        }
        if (zmq_msg_size(&msg) >= 1 && ((const char *)zmq_msg_data(&msg))[0] == 1) subscribed++;
        zmq_msg_close(&msg);
    }

    char *body = malloc(size ? size : 1);
    if (!body) die("malloc");
    memset(body, 'x', size);
    body[0] = 't';
    double start = peer_now();
    for (long i = 0; i < count; i++) {
        if (zmq_send(s, body, size, 0) < 0) die("zmq_send");
    }
    if (zmq_send(s, end_marker, sizeof end_marker, 0) < 0) die("zmq_send");
    double elapsed = peer_now() - start;
    fprintf(stderr, "zmq_pubsub pub subscribers=%ld size=%zu published=%ld send_seconds=%.3f\n",
            subs, size, count, elapsed);
    free(body);
    zmq_close(s);
    return 0;
}

static int subscribe(void *ctx, const char *endpoint, size_t size, long subs, long count) {
    void **sockets = calloc(subs, sizeof *sockets);
    zmq_pollitem_t *items = calloc(subs, sizeof *items);
    long *got = calloc(subs, sizeof *got);
    double *last = calloc(subs, sizeof *last);
    char *done = calloc(subs, 1);
    if (!sockets || !items || !got || !last || !done) die("calloc");
    for (long i = 0; i < subs; i++) {
        sockets[i] = zmq_socket(ctx, ZMQ_SUB);
        if (!sockets[i]) die("zmq_socket");
        int linger = 0;
        zmq_setsockopt(sockets[i], ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_setsockopt(sockets[i], ZMQ_SUBSCRIBE, "t", 1) != 0) die("zmq_setsockopt");
        if (zmq_connect(sockets[i], endpoint) != 0) die("zmq_connect");
        items[i].socket = sockets[i];
        items[i].events = ZMQ_POLLIN;
    }

    double started = peer_now(), first = 0, latest = 0;
    long active = subs, delivered = 0;
    while (active > 0) {
        if (zmq_poll(items, (int)subs, 100) < 0) {
            if (zmq_errno() == EINTR) continue;
            die("zmq_poll");
        }
        for (long i = 0; i < subs; i++) {
            if (done[i] || !(items[i].revents & ZMQ_POLLIN)) continue;
            /* Drain what is there, then move on, so no subscriber starves the others. */
            for (;;) {
                zmq_msg_t msg;
                zmq_msg_init(&msg);
                if (zmq_msg_recv(&msg, sockets[i], ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&msg);
                    if (zmq_errno() == EAGAIN) break;
                    die("zmq_msg_recv");
                }
                double now = peer_now();
                if (is_end(&msg)) {
                    zmq_msg_close(&msg);
                    done[i] = 1;
                    items[i].events = 0;
                    active--;
                    break;
                }
                zmq_msg_close(&msg);
                if (first == 0) first = now;
                latest = now;
                last[i] = now;
                got[i]++;
                delivered++;
            }
        }
        double now = peer_now();
        if (first == 0) {
            if (now - started > 40) break;
            continue;
        }
        for (long i = 0; i < subs; i++) {
            if (done[i]) continue;
            double since = last[i] > first ? last[i] : first;
            if (now - since > 1.0) {
                done[i] = 1;
                items[i].events = 0;
                active--;
            }
        }
    }

    double span = latest - first;
    if (span <= 0) span = 1e-9;
    printf("zmq_pubsub subscribers=%ld size=%zu published=%ld delivered=%ld lost=%ld "
           "msgs_per_s=%.0f\n",
           subs, size, count, delivered, subs * count - delivered,
           delivered ? delivered / span : 0.0);
    long least = got[0], most = got[0];
    for (long i = 1; i < subs; i++) {
        if (got[i] < least) least = got[i];
        if (got[i] > most) most = got[i];
    }
    fprintf(stderr, "zmq_pubsub sub: per subscriber %ld..%ld messages, %.3f s\n", least, most,
            delivered ? span : 0.0);
    for (long i = 0; i < subs; i++) zmq_close(sockets[i]);
    free(sockets);
    free(items);
    free(got);
    free(last);
    free(done);
    if (delivered == 0) {
        fprintf(stderr, "zmq_pubsub: no message arrived\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: zmq_pubsub pub|sub ENDPOINT SIZE SUBS COUNT\n");
        return 2;
    }
    const char *endpoint = argv[2];
    size_t size = (size_t)peer_arg("zmq_pubsub", "SIZE", argv[3], 1);
    long subs = peer_arg("zmq_pubsub", "SUBS", argv[4], 1);
    long count = peer_arg("zmq_pubsub", "COUNT", argv[5], 1);
    void *ctx = zmq_ctx_new();
    if (!ctx) die("zmq_ctx_new");
    int status;
    if (strcmp(argv[1], "pub") == 0) {
        status = publish(ctx, endpoint, size, subs, count);
    } else if (strcmp(argv[1], "sub") == 0) {
        status = subscribe(ctx, endpoint, size, subs, count);
    } else {
        fprintf(stderr, "zmq_pubsub: mode must be pub or sub\n");
        return 2;
    }
    zmq_ctx_term(ctx);
    return status;
}

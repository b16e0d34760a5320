/* NNG pub/sub fan-out: one publisher, SUBS subscribers; how many of the published messages
 * reach the subscribers, and how fast. NNG's pub0 drops a message for a subscriber whose
 * send queue is full, and sub0 drops when its receive buffer is full (both at their default
 * sizes here); that is part of what is measured. Same arguments and output as zmq_pubsub.c:
 *
 *   nng_pubsub sub URL SIZE SUBS COUNT   SUBS sub0 sockets, each dialing URL and subscribed to
 *                                        "t"; start this side first
 *   nng_pubsub pub URL SIZE SUBS COUNT   listens with a pub0 socket, waits (30 s at most,
 *                                        else exit 1) until SUBS subscribers are connected,
 *                                        publishes COUNT messages as fast as it can, then the
 *                                        end marker, then stays until the subscribers hang up
 *                                        (nng_close does not linger)
 *
 * Messages: SIZE bytes (SIZE >= 1), "t" then 'x's; the end marker is the 4 bytes "tEND" and
 * may be dropped like any other. NNG's subscribers filter on their own side, so a connected
 * subscriber gets messages at once: the publisher waits for the connections (plus 100 ms),
 * not for subscriptions.
 *
 * NNG has no poll: each subscriber keeps one asynchronous receive (nng_aio) posted, whose
 * callback, on NNG's own threads, counts under one mutex and posts the next. The main thread
 * only watches the clock. A subscriber ends on the end marker, or once 1 s has gone by
 * without a message to it (counted from the first message any subscriber received); before
 * the first message the subscribers wait 40 s at most. Then the sub side prints
 *
 *   nng_pubsub subscribers=N size=S published=P delivered=D lost=L msgs_per_s=R
 *
 * P = COUNT, D = messages received over all subscribers, L = N*P - D, and R = D / the seconds
 * from the first message any subscriber received to the last one any received. It exits 1 if
 * nothing arrived. */
#define A3M_PEER_NNG
#include "peer.h"

#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what, int rv) {
    fprintf(stderr, "nng_pubsub: %s: %s\n", what, nng_strerror(rv));
    exit(1);
}

static const char end_marker[4] = {'t', 'E', 'N', 'D'};

static int publish(const char *url, size_t size, long subs, long count) {
    nng_socket s;
    int rv;
    if ((rv = nng_pub0_open(&s)) != 0) die("nng_pub0_open", rv);
    struct peer_pipes pipes;
    peer_pipes_watch(&pipes, s);
    if ((rv = nng_listen(s, url, NULL, 0)) != 0) die("nng_listen", rv);

    double deadline = peer_now() + 30;
    pthread_mutex_lock(&pipes.lock);
    while (pipes.live < subs) {
        if (peer_now() > deadline) {
            fprintf(stderr, "nng_pubsub: %d of %ld subscribers after 30 s\n", pipes.live, subs);
            exit(1);
        }
        pthread_mutex_unlock(&pipes.lock);
        usleep(10000);
        pthread_mutex_lock(&pipes.lock);
    }
    pthread_mutex_unlock(&pipes.lock);
    usleep(100000);

    char *body = malloc(size);
    if (!body) die("malloc", NNG_ENOMEM);
    memset(body, 'x', size);
    body[0] = 't';
    double start = peer_now();
    for (long i = 0; i < count; i++) {
        if ((rv = nng_send(s, body, size, 0)) != 0) die("nng_send", rv);
    }
    if ((rv = nng_send(s, (void *)end_marker, sizeof end_marker, 0)) != 0) die("nng_send", rv);
    double elapsed = peer_now() - start;
    fprintf(stderr, "nng_pubsub pub subscribers=%ld size=%zu published=%ld send_seconds=%.3f\n",
            subs, size, count, elapsed);
    free(body);
    peer_pipes_wait_gone(&pipes, 30);
    nng_close(s);
    return 0;
}

struct subscriber {
    struct fan *fan;
    nng_socket s;
    nng_aio *aio;
    long got;
    double last;
    int done;
};

struct fan {
    pthread_mutex_t lock;
    long delivered;
    double first, latest;
};

static void received(void *arg) {
    struct subscriber *sub = arg;
    struct fan *fan = sub->fan;
    int rv = nng_aio_result(sub->aio);
    if (rv != 0) {
        if (rv == NNG_ECANCELED || rv == NNG_ECLOSED) return;
        die("nng_recv_aio", rv);
    }
    nng_msg *msg = nng_aio_get_msg(sub->aio);
    int end = nng_msg_len(msg) == sizeof end_marker &&
              memcmp(nng_msg_body(msg), end_marker, sizeof end_marker) == 0;
    nng_msg_free(msg);
    double now = peer_now();
    pthread_mutex_lock(&fan->lock);
    if (!sub->done) {
        if (end) {
            sub->done = 1;
        } else {
            if (fan->first == 0) fan->first = now;
            fan->latest = now;
            fan->delivered++;
            sub->last = now;
            sub->got++;
        }
    }
    int again = !sub->done;
    pthread_mutex_unlock(&fan->lock);
    if (again) nng_recv_aio(sub->s, sub->aio);
}

static int subscribe(const char *url, size_t size, long subs, long count) {
    struct fan fan = {.delivered = 0, .first = 0, .latest = 0};
    pthread_mutex_init(&fan.lock, NULL);
    struct subscriber *all = calloc(subs, sizeof *all);
    if (!all) die("calloc", NNG_ENOMEM);
    int rv;
    for (long i = 0; i < subs; i++) {
        struct subscriber *sub = &all[i];
        sub->fan = &fan;
        if ((rv = nng_sub0_open(&sub->s)) != 0) die("nng_sub0_open", rv);
        if ((rv = nng_socket_set(sub->s, NNG_OPT_SUB_SUBSCRIBE, "t", 1)) != 0)
            die("nng_socket_set", rv);
        if ((rv = nng_aio_alloc(&sub->aio, received, sub)) != 0) die("nng_aio_alloc", rv);
        if ((rv = nng_dial(sub->s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) die("nng_dial", rv);
        nng_recv_aio(sub->s, sub->aio);
    }

    double started = peer_now();
    for (;;) {
        usleep(50000);
        double now = peer_now();
        long active = 0;
        pthread_mutex_lock(&fan.lock);
        if (fan.first == 0) {
            pthread_mutex_unlock(&fan.lock);
            if (now - started > 40) break;
            continue;
        }
        for (long i = 0; i < subs; i++) {
            if (all[i].done) continue;
            double since = all[i].last > fan.first ? all[i].last : fan.first;
            if (now - since > 1.0) all[i].done = 1;
            else active++;
        }
        pthread_mutex_unlock(&fan.lock);
        if (active == 0) break;
    }
    for (long i = 0; i < subs; i++) nng_aio_stop(all[i].aio);

    long delivered = fan.delivered;
    double span = fan.latest - fan.first;
    if (span <= 0) span = 1e-9;
    printf("nng_pubsub subscribers=%ld size=%zu published=%ld delivered=%ld lost=%ld "
           "msgs_per_s=%.0f\n",
           subs, size, count, delivered, subs * count - delivered,
           delivered ? delivered / span : 0.0);
    long least = all[0].got, most = all[0].got;
    for (long i = 1; i < subs; i++) {
        if (all[i].got < least) least = all[i].got;
        if (all[i].got > most) most = all[i].got;
    }
    fprintf(stderr, "nng_pubsub sub: per subscriber %ld..%ld messages, %.3f s\n", least, most,
            delivered ? span : 0.0);
    fflush(stdout);
    for (long i = 0; i < subs; i++) {
        nng_close(all[i].s);
        nng_aio_free(all[i].aio);
    }
    free(all);
    if (delivered == 0) {
        fprintf(stderr, "nng_pubsub: no message arrived\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: nng_pubsub pub|sub URL SIZE SUBS COUNT\n");
        return 2;
    }
    const char *url = argv[2];
    size_t size = (size_t)peer_arg("nng_pubsub", "SIZE", argv[3], 1);
    long subs = peer_arg("nng_pubsub", "SUBS", argv[4], 1);
    long count = peer_arg("nng_pubsub", "COUNT", argv[5], 1);
    if (strcmp(argv[1], "pub") == 0) return publish(url, size, subs, count);
    if (strcmp(argv[1], "sub") == 0) return subscribe(url, size, subs, count);
    fprintf(stderr, "nng_pubsub: mode must be pub or sub\n");
    return 2;
}

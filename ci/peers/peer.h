/* Helpers shared by the ZeroMQ and NNG peer programs of ci/bench.sh: a monotonic clock,
 * argument parsing that refuses garbage, and (for NNG) waiting for the other side to hang up,
 * because nng_close does not linger: closing right after the last send can lose it. */
#ifndef A3M_PEER_H
#define A3M_PEER_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double peer_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A positive integer argument, or exit 2 naming it. */
static inline long peer_arg(const char *prog, const char *name, const char *text, long min) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min) {
        fprintf(stderr, "%s: %s must be an integer >= %ld, got '%s'\n", prog, name, min, text);
        exit(2);
    }
    return v;
}

#ifdef A3M_PEER_NNG
#include <nng/nng.h>

/* Counts a socket's live connections (pipes) so a side can wait until the other hung up. */
struct peer_pipes {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int live;
    int ever;
};

static void peer_pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg) {
    (void)pipe;
    struct peer_pipes *p = arg;
    pthread_mutex_lock(&p->lock);
    if (ev == NNG_PIPE_EV_ADD_POST) {
        p->live++;
        p->ever++;
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        p->live--;
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

static inline void peer_pipes_watch(struct peer_pipes *p, nng_socket s) {
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->changed, NULL);
    p->live = 0;
    p->ever = 0;
    nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, peer_pipe_event, p);
    nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, peer_pipe_event, p);
}

/* Waits up to `seconds` until every connection that was made has gone. */
static inline void peer_pipes_wait_gone(struct peer_pipes *p, double seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&p->lock);
    while (p->live > 0) {
        if (pthread_cond_timedwait(&p->changed, &p->lock, &deadline) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&p->lock);
}
#endif

#endif

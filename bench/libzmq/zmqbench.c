/*
 * zmqbench - libzmq baseline peer for the hydra ZMTP benchmark harness.
 *
 * This program is built by the harness (bench/run) at run time with
 *
 *     gcc -O2 -o $TMP/zmqbench zmqbench.c -lzmq
 *
 * and is never linked into any Go binary. It plays one side of a two-process
 * benchmark and prints one JSON line describing what it measured:
 *
 *     zmqbench push|pull|req|rep ENDPOINT SIZE COUNT
 *
 * pull and rep bind ENDPOINT; push and req connect to it.
 *
 *   pull  receives COUNT messages of SIZE bytes; it times from the first
 *         received message to the last and reports msgs/s and MB/s over the
 *         COUNT-1 intervals in between.
 *   push  sends COUNT messages of SIZE bytes, then closes (lingering until
 *         they are delivered); it reports its own send rate.
 *   req   does COUNT round trips of SIZE bytes; the first one warms the
 *         connection up, the remaining COUNT-1 are timed and reported as the
 *         mean round trip in microseconds.
 *   rep   echoes COUNT requests back.
 *
 * A receiver that waits too long gives up and reports what it got, with
 * "complete":false, so that a lost message never hangs the harness:
 *
 *   ZMQBENCH_WAIT_MS  how long to wait for the first message (default 20000)
 *   ZMQBENCH_IDLE_MS  how long to wait for each later one (default 5000)
 *   ZMQBENCH_HWM      ZMQ_SNDHWM and ZMQ_RCVHWM in messages (default 100000)
 *
 * The field set of the JSON line matches the Go peers (bench/peer), so the
 * harness parses all implementations the same way. MB means 10^6 bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

/* Options read from the environment, see the header comment. */
static int wait_ms = 20000;
static int idle_ms = 5000;
static int hwm = 100000;

/* result is what one side measured; report() prints it as JSON. */
struct result {
    const char *role;
    long size;
    long count;    /* messages (or round trips) actually handled */
    long expected; /* COUNT from the command line */
    double elapsed_s;
    double msgs_per_sec;
    double mb_per_sec;
    double rtt_us;
    int complete;
    const char *error; /* NULL when there was none */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < 0 || n > 1000000000L) {
        fprintf(stderr, "zmqbench: bad %s=%s, using %d\n", name, v, def);
        return def;
    }
    return (int)n;
}

static void report(const struct result *r)
{
    printf("{\"impl\":\"libzmq\",\"role\":\"%s\",\"size\":%ld,\"count\":%ld,"
           "\"expected\":%ld,\"elapsed_s\":%.6f,\"msgs_per_sec\":%.3f,"
           "\"mb_per_sec\":%.3f,\"rtt_us\":%.3f,\"complete\":%s",
           r->role, r->size, r->count, r->expected, r->elapsed_s,
           r->msgs_per_sec, r->mb_per_sec, r->rtt_us,
           r->complete ? "true" : "false");
    if (r->error != NULL)
        /* Error strings come from zmq_strerror: plain ASCII, no quotes. */
        printf(",\"error\":\"%s\"", r->error);
    printf("}\n");
    fflush(stdout);
}

/* set_int sets an integer socket option, reporting failures. */
static int set_int(void *s, int opt, int value)
{
    if (zmq_setsockopt(s, opt, &value, sizeof value) != 0) {
        fprintf(stderr, "zmqbench: setsockopt %d: %s\n", opt,
                zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/* rate fills the rate fields of r from count items handled over elapsed. */
static void rate(struct result *r, long intervals, double elapsed)
{
    r->elapsed_s = elapsed;
    if (elapsed > 0 && intervals > 0) {
        r->msgs_per_sec = (double)intervals / elapsed;
        r->mb_per_sec = r->msgs_per_sec * (double)r->size / 1e6;
    }
}

/*
 * recv_timed receives one message into msg. It first tries without blocking;
 * only when the queue is empty does it note the time (into *idle_since, the
 * moment the receiver ran dry, which bounds the arrival of the last message)
 * and block for up to the receive timeout. Returns the size or -1.
 */
static int recv_timed(void *s, zmq_msg_t *msg, double *idle_since)
{
    for (;;) {
        int rc = zmq_msg_recv(msg, s, ZMQ_DONTWAIT);
        if (rc >= 0)
            return rc;
        if (zmq_errno() == EINTR)
            continue;
        if (zmq_errno() != EAGAIN)
            return -1;
        *idle_since = now_s();
        rc = zmq_msg_recv(msg, s, 0);
        if (rc >= 0 || zmq_errno() != EINTR)
            return rc;
    }
}

static int run_pull(void *s, struct result *r)
{
    zmq_msg_t msg;
    double t0, t1, idle_since = 0;
    long n = 0;

    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, s, 0) < 0) {
        r->error = zmq_errno() == EAGAIN ? "timed out waiting for the first message"
                                         : zmq_strerror(zmq_errno());
        zmq_msg_close(&msg);
        return -1;
    }
    t0 = now_s();
    n = 1;
    if (zmq_msg_size(&msg) != (size_t)r->size)
        r->error = "message of unexpected size";
    set_int(s, ZMQ_RCVTIMEO, idle_ms);

    while (n < r->expected) {
        int rc = recv_timed(s, &msg, &idle_since);
        if (rc < 0) {
            if (zmq_errno() != EAGAIN)
                r->error = zmq_strerror(zmq_errno());
            break;
        }
        if ((long)rc != r->size)
            r->error = "message of unexpected size";
        n++;
    }
    t1 = now_s();
    zmq_msg_close(&msg);

    r->count = n;
    r->complete = n == r->expected;
    if (!r->complete) {
        /* The last message arrived before the receiver ran dry. */
        t1 = idle_since;
        if (r->error == NULL)
            r->error = "timed out before all messages arrived";
    }
    rate(r, n - 1, t1 - t0);
    return 0;
}

static int run_push(void *s, struct result *r)
{
    char *payload = malloc(r->size > 0 ? (size_t)r->size : 1);
    double t0, t1;
    long n;

    if (payload == NULL) {
        r->error = "out of memory";
        return -1;
    }
    memset(payload, 'h', (size_t)r->size);

    t0 = now_s();
    for (n = 0; n < r->expected; n++) {
        zmq_msg_t msg;
        /*
         * Like libzmq's remote_thr: a fresh message per send, which the
         * socket takes over. Small sizes live inside the zmq_msg_t itself.
         * The copy makes it comparable with the Go peers, whose Send copies.
         */
        if (zmq_msg_init_size(&msg, (size_t)r->size) != 0) {
            r->error = zmq_strerror(zmq_errno());
            break;
        }
        memcpy(zmq_msg_data(&msg), payload, (size_t)r->size);
        while (zmq_msg_send(&msg, s, 0) < 0) {
            if (zmq_errno() != EINTR) {
                r->error = zmq_strerror(zmq_errno());
                zmq_msg_close(&msg);
                goto out;
            }
        }
    }
out:
    t1 = now_s();
    free(payload);
    r->count = n;
    r->complete = n == r->expected;
    rate(r, n, t1 - t0);
    return 0;
}

static int run_req(void *s, struct result *r)
{
    char *payload = malloc(r->size > 0 ? (size_t)r->size : 1);
    zmq_msg_t msg;
    double t0 = 0, t1 = 0, idle_since = 0;
    long n;

    if (payload == NULL) {
        r->error = "out of memory";
        return -1;
    }
    memset(payload, 'h', (size_t)r->size);
    zmq_msg_init(&msg);

    for (n = 0; n < r->expected; n++) {
        int rc;
        if (zmq_send(s, payload, (size_t)r->size, 0) < 0) {
            r->error = zmq_strerror(zmq_errno());
            break;
        }
        rc = recv_timed(s, &msg, &idle_since);
        if (rc < 0) {
            r->error = zmq_errno() == EAGAIN ? "timed out waiting for a reply"
                                             : zmq_strerror(zmq_errno());
            break;
        }
        if ((long)rc != r->size)
            r->error = "reply of unexpected size";
        if (n == 0) {
            /* The first round trip includes connection setup. */
            t0 = now_s();
            set_int(s, ZMQ_RCVTIMEO, idle_ms);
        }
    }
    t1 = now_s();
    zmq_msg_close(&msg);
    free(payload);

    r->count = n;
    r->complete = n == r->expected;
    if (n >= 2) {
        rate(r, n - 1, t1 - t0);
        r->rtt_us = (t1 - t0) / (double)(n - 1) * 1e6;
    }
    return 0;
}

static int run_rep(void *s, struct result *r)
{
    zmq_msg_t msg;
    double t0 = 0, t1 = 0, idle_since = 0;
    long n;

    zmq_msg_init(&msg);
    for (n = 0; n < r->expected; n++) {
        if (recv_timed(s, &msg, &idle_since) < 0) {
            r->error = zmq_errno() == EAGAIN ? "timed out waiting for a request"
                                             : zmq_strerror(zmq_errno());
            break;
        }
        if (n == 0) {
            t0 = now_s();
            set_int(s, ZMQ_RCVTIMEO, idle_ms);
        }
        /* Echo the request itself: zmq_msg_send takes its content over. */
        if (zmq_msg_send(&msg, s, 0) < 0) {
            r->error = zmq_strerror(zmq_errno());
            break;
        }
    }
    t1 = now_s();
    zmq_msg_close(&msg);

    r->count = n;
    r->complete = n == r->expected;
    if (n >= 2) {
        rate(r, n - 1, t1 - t0);
        r->rtt_us = (t1 - t0) / (double)(n - 1) * 1e6;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: zmqbench push|pull|req|rep ENDPOINT SIZE COUNT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct result r;
    const char *role, *endpoint;
    void *ctx, *s;
    int type, bind, rc = 0;
    char *end;

    if (argc != 5)
        usage();
    role = argv[1];
    endpoint = argv[2];

    memset(&r, 0, sizeof r);
    r.role = role;
    r.size = strtol(argv[3], &end, 10);
    if (*end != '\0' || r.size < 0 || r.size > (1L << 30))
        usage();
    r.expected = strtol(argv[4], &end, 10);
    if (*end != '\0' || r.expected < 1)
        usage();

    if (strcmp(role, "push") == 0) {
        type = ZMQ_PUSH;
        bind = 0;
    } else if (strcmp(role, "pull") == 0) {
        type = ZMQ_PULL;
        bind = 1;
    } else if (strcmp(role, "req") == 0) {
        type = ZMQ_REQ;
        bind = 0;
    } else if (strcmp(role, "rep") == 0) {
        type = ZMQ_REP;
        bind = 1;
    } else {
        usage();
        return 2;
    }

    wait_ms = env_int("ZMQBENCH_WAIT_MS", wait_ms);
    idle_ms = env_int("ZMQBENCH_IDLE_MS", idle_ms);
    hwm = env_int("ZMQBENCH_HWM", hwm);

    ctx = zmq_ctx_new();
    if (ctx == NULL) {
        fprintf(stderr, "zmqbench: zmq_ctx_new: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    s = zmq_socket(ctx, type);
    if (s == NULL) {
        fprintf(stderr, "zmqbench: zmq_socket: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    /*
     * Same high-water marks as the Go peers. Linger bounds the close of a
     * sender whose peer went away; the harness kills anything slower anyway.
     */
    if (set_int(s, ZMQ_SNDHWM, hwm) || set_int(s, ZMQ_RCVHWM, hwm) ||
        set_int(s, ZMQ_RCVTIMEO, wait_ms) || set_int(s, ZMQ_LINGER, 30000))
        return 1;

    if (bind ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint)) {
        fprintf(stderr, "zmqbench: %s %s: %s\n", bind ? "bind" : "connect",
                endpoint, zmq_strerror(zmq_errno()));
        return 1;
    }

    switch (type) {
    case ZMQ_PULL:
        rc = run_pull(s, &r);
        break;
    case ZMQ_PUSH:
        rc = run_push(s, &r);
        break;
    case ZMQ_REQ:
        rc = run_req(s, &r);
        break;
    default:
        rc = run_rep(s, &r);
        break;
    }
    report(&r);

    /* Closing flushes what a sender still has queued (within the linger). */
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc == 0 ? 0 : 1;
}

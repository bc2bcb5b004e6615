/*
 * test_jobs.c -- the task pool of the CLI (cli/jobs.c): results per task,
 * a crashing task reported (not lost, the others unaffected), at most
 * `workers` tasks at once, every task exactly once, custom hand-out
 * (sharding) and stop, for both backends.
 *
 * Tasks report through the file system, as the pool's users do: task i
 * writes DIR/done-<i> holding its pid and how many tasks were running when
 * it started (files DIR/run-*), and returns a status derived from i.
 */
#define _XOPEN_SOURCE 700
#include "../cli/jobs.h"
#include "test.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct task_ctx {
    char dir[256];
    int crash_at;      /* task that dies by SIGKILL (-1: none) */
    int abort_at;      /* task that dies by SIGABRT (-1: none) */
    int sleep_ms;
} task_ctx;

static int count_running(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, "run-", 4)) n++;
    if (d) closedir(d);
    return n;
}

static void path_of(char *b, size_t cap, const task_ctx *c, const char *what, int i) {
    snprintf(b, cap, "%s/%s-%d", c->dir, what, i);
}

/* The status of task i: 0 for even i, 10 + i for odd i. */
static int want_status(int i) {
    return i % 2 ? 10 + i : 0;
}

static int task(int i, void *ctx) {
    task_ctx *c = ctx;
    char run[400], done[400];
    path_of(run, sizeof run, c, "run", i);
    path_of(done, sizeof done, c, "done", i);
    FILE *f = fopen(run, "w");
    if (f) fclose(f);
    int running = count_running(c->dir);
    struct timespec ts = {0, (long)c->sleep_ms * 1000000L};
    nanosleep(&ts, NULL);
    if (i == c->crash_at || i == c->abort_at) remove(run); /* it is not running any more */
    if (i == c->crash_at) raise(SIGKILL);                 /* what no sanitizer intercepts */
    if (i == c->abort_at) abort();
    f = fopen(done, "w");
    if (f) fprintf(f, "%ld %d\n", (long)getpid(), running), fclose(f);
    remove(run);
    return want_status(i);
}

/* Reads DIR/done-<i>: 1 with *pid and *running set, 0 when absent. */
static int read_done(const task_ctx *c, int i, long *pid, int *running) {
    char p[400];
    path_of(p, sizeof p, c, "done", i);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    int ok = fscanf(f, "%ld %d", pid, running) == 2;
    fclose(f);
    return ok;
}

static void setup(task_ctx *c, const char *name) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || strlen(tmp) > 100) tmp = "/tmp";
    snprintf(c->dir, sizeof c->dir, "%.100s/mf-test-jobs-%.40s-%ld", tmp, name, (long)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", c->dir, c->dir);
    CHECK(system(cmd) == 0, "cannot make %s", c->dir);
    c->crash_at = c->abort_at = -1;
    c->sleep_ms = 0;
}

static void teardown(const task_ctx *c) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", c->dir);
}

/* on_done: count the calls per task, in the calling process. */
typedef struct done_log {
    int calls[64];
    int order[64], n;
    volatile sig_atomic_t *stop;
    int stop_after;
} done_log;

static void on_done(int i, const jobs_status *st, void *ctx) {
    done_log *d = ctx;
    (void)st;
    if (i >= 0 && i < 64) d->calls[i]++;
    if (d->n < 64) d->order[d->n++] = i;
    if (d->stop && d->n >= d->stop_after) *d->stop = 1;
}

static void run_spec(const jobs_backend *b, task_ctx *c, int n, int workers, done_log *d,
                     jobs_status *st, int (*next)(void *), void *next_ctx,
                     volatile sig_atomic_t *stop) {
    jobs_spec s;
    memset(&s, 0, sizeof s);
    s.n_tasks = n;
    s.task = task;
    s.ctx = c;
    s.workers = workers;
    s.on_done = on_done;
    s.done_ctx = d;
    s.next = next;
    s.next_ctx = next_ctx;
    s.stop = stop;
    CHECK_EQ_INT(jobs_run_spec(b, &s, st), 0);
}

/* Inline: every task once, in order, in this process; statuses per task. */
TEST(inline_backend) {
    task_ctx c;
    setup(&c, "inline");
    done_log d;
    memset(&d, 0, sizeof d);
    jobs_status st[6];
    run_spec(&jobs_inline, &c, 6, 1, &d, st, NULL, NULL, NULL);
    for (int i = 0; i < 6; i++) {
        long pid = 0;
        int running = 0;
        CHECK(read_done(&c, i, &pid, &running), "task %d left no result", i);
        CHECK_EQ_INT(pid, getpid());
        CHECK_EQ_INT(st[i].state, JOBS_EXITED);
        CHECK_EQ_INT(st[i].status, want_status(i));
        CHECK_EQ_INT(d.calls[i], 1);
        CHECK_EQ_INT(d.order[i], i);
    }
    CHECK_EQ_INT(d.n, 6);
    teardown(&c);
}

/* Fork: 9 tasks on 3 workers, task 4 is killed (SIGKILL), task 7 aborts:
 * both reported as killed with their signal, without a result file; every
 * other task finished once, in a child, with its own status; never more
 * than 3 at once. */
TEST(fork_backend_crash) {
    task_ctx c;
    setup(&c, "fork");
    c.crash_at = 4;
    c.abort_at = 7;
    c.sleep_ms = 30;
    done_log d;
    memset(&d, 0, sizeof d);
    jobs_status st[9];
    run_spec(&jobs_fork, &c, 9, 3, &d, st, NULL, NULL, NULL);
    CHECK_EQ_INT(d.n, 9);
    for (int i = 0; i < 9; i++) {
        long pid = 0;
        int running = 0, have = read_done(&c, i, &pid, &running);
        CHECK_EQ_INT(d.calls[i], 1);
        if (i == 4 || i == 7) {
            CHECK(!have, "crashed task %d wrote a result", i);
            CHECK_EQ_INT(st[i].state, JOBS_KILLED);
            CHECK_EQ_INT(st[i].signal, i == 4 ? SIGKILL : SIGABRT);
            CHECK(!jobs_ok(&st[i]), "crashed task %d counted as ok", i);
            continue;
        }
        CHECK(have, "task %d left no result", i);
        CHECK(pid != getpid(), "task %d ran in the parent", i);
        CHECK(running >= 1 && running <= 3, "task %d saw %d tasks running (workers 3)", i, running);
        CHECK_EQ_INT(st[i].state, JOBS_EXITED);
        CHECK_EQ_INT(st[i].status, want_status(i));
        CHECK_EQ_INT(jobs_ok(&st[i]), want_status(i) == 0);
    }
    CHECK_EQ_INT(count_running(c.dir), 0);
    teardown(&c);
}

/* A hand-out of every third index from 1 (a shard "--task 1/3"): only
 * those run; the others are reported never run. */
typedef struct shard {
    int next, step;
} shard;

static int shard_next(void *ctx) {
    shard *s = ctx;
    int i = s->next;
    s->next += s->step;
    return i < 10 ? i : -1;
}

TEST(custom_next_shard) {
    for (int b = 0; b < 2; b++) {
        task_ctx c;
        setup(&c, b ? "shard-fork" : "shard-inline");
        done_log d;
        memset(&d, 0, sizeof d);
        jobs_status st[10];
        shard sh = {1, 3};
        run_spec(b ? &jobs_fork : &jobs_inline, &c, 10, 2, &d, st, shard_next, &sh, NULL);
        for (int i = 0; i < 10; i++) {
            long pid;
            int running, mine = i % 3 == 1;
            CHECK_EQ_INT(read_done(&c, i, &pid, &running), mine);
            CHECK_EQ_INT(st[i].state, mine ? JOBS_EXITED : JOBS_NOT_RUN);
            CHECK_EQ_INT(d.calls[i], mine);
        }
        CHECK_EQ_INT(d.n, 3);
        teardown(&c);
    }
}

/* *stop set after 2 tasks ended: no task starts after that (inline: exactly
 * 2 ran; fork with 1 worker: the same). */
TEST(stop_flag) {
    for (int b = 0; b < 2; b++) {
        task_ctx c;
        setup(&c, b ? "stop-fork" : "stop-inline");
        volatile sig_atomic_t stop = 0;
        done_log d;
        memset(&d, 0, sizeof d);
        d.stop = &stop;
        d.stop_after = 2;
        jobs_status st[5];
        run_spec(b ? &jobs_fork : &jobs_inline, &c, 5, 1, &d, st, NULL, NULL, &stop);
        CHECK_EQ_INT(d.n, 2);
        for (int i = 0; i < 5; i++) CHECK_EQ_INT(st[i].state, i < 2 ? JOBS_EXITED : JOBS_NOT_RUN);
        teardown(&c);
    }
}

/* jobs_run picks inline for 1 worker, fork for more; 0 tasks is a no-op. */
TEST(jobs_run_default) {
    task_ctx c;
    setup(&c, "default");
    jobs_status st[4];
    CHECK_EQ_INT(jobs_run(4, task, &c, 2, st), 0);
    for (int i = 0; i < 4; i++) {
        long pid = 0;
        int running;
        CHECK(read_done(&c, i, &pid, &running), "task %d left no result", i);
        CHECK(pid != getpid(), "workers 2: task %d ran in the parent", i);
        CHECK_EQ_INT(st[i].status, want_status(i));
    }
    CHECK_EQ_INT(jobs_run(0, task, &c, 2, st), 0);
    teardown(&c);
}

int main(void) {
    RUN(inline_backend);
    RUN(fork_backend_crash);
    RUN(custom_next_shard);
    RUN(stop_flag);
    RUN(jobs_run_default);
    return TEST_REPORT();
}

/*
 * jobs.c -- the task pool (interface and backends: jobs.h).
 *
 * The fork backend keeps one child per running task, up to `workers`. It
 * waits for any child (waitpid(-1)), so the caller should have no other
 * children of its own running meanwhile (those would be reaped and
 * ignored). Before each fork stdout and stderr are flushed, so buffered
 * output is not written twice; a child ends with _exit(status) after
 * flushing its own streams, running no atexit handlers of the parent.
 */
#define _XOPEN_SOURCE 700
#include "jobs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The next index to start, or -1: spec->next, or 0..n-1 in order (*pos);
 * an index out of range or already handed out ends the hand-out. */
static int next_index(const jobs_spec *s, int *pos, const jobs_status *st, const char *given) {
    if (s->stop && *s->stop) return -1;
    int i = s->next ? s->next(s->next_ctx) : *pos < s->n_tasks ? (*pos)++ : -1;
    if (i < 0 || i >= s->n_tasks || given[i] || st[i].state != JOBS_NOT_RUN) return -1;
    return i;
}

static void done(const jobs_spec *s, int i, jobs_status *st) {
    if (s->on_done) s->on_done(i, &st[i], s->done_ctx);
}

static int inline_run(const jobs_spec *s, jobs_status *st) {
    char *given = calloc((size_t)s->n_tasks + 1, 1);
    int pos = 0, i;
    if (!given) return -1;
    while ((i = next_index(s, &pos, st, given)) >= 0) {
        given[i] = 1;
        int rc = s->task(i, s->ctx);
        st[i].state = JOBS_EXITED;
        st[i].status = rc & 255;
        done(s, i, st);
    }
    free(given);
    return 0;
}

void jobs_wait_status(int w, jobs_status *st) {
    if (WIFEXITED(w)) {
        st->state = JOBS_EXITED;
        st->status = WEXITSTATUS(w);
    } else {
        st->state = JOBS_KILLED;
        st->signal = WIFSIGNALED(w) ? WTERMSIG(w) : 0;
    }
}

int jobs_fork_task(const jobs_spec *s, int i, void *const *release, int nrelease) {
    fflush(stdout);
    fflush(stderr);
    pid_t c = fork();
    if (c == 0) { /* the child: run the task, flush, leave without atexit handlers */
        for (int k = 0; k < nrelease; k++) free(release[k]); /* the pool's, not the task's */
        int code = s->task(i, s->ctx);
        fflush(NULL);
        _exit(code & 255);
    }
    return (int)c;
}

static int fork_run(const jobs_spec *s, jobs_status *st) {
    int n = s->n_tasks, workers = s->workers > 1 ? s->workers : 1;
    pid_t *pid = calloc((size_t)n + 1, sizeof *pid);
    char *given = calloc((size_t)n + 1, 1);
    int pos = 0, running = 0, rc = 0, forwarded = 0, i;
    if (!pid || !given) {
        free(pid);
        free(given);
        return -1;
    }
    for (;;) {
        while (running < workers && (i = next_index(s, &pos, st, given)) >= 0) {
            given[i] = 1;
            void *mine[2] = {pid, given};
            pid_t c = jobs_fork_task(s, i, mine, 2);
            if (c < 0) {
                st[i].state = JOBS_FAILED;
                done(s, i, st);
                continue;
            }
            pid[i] = c;
            running++;
        }
        if (running == 0) break;
        if (s->stop && *s->stop && s->stop_signal && !forwarded) {
            for (i = 0; i < n; i++)
                if (pid[i]) kill(pid[i], s->stop_signal);
            forwarded = 1;
        }
        int w;
        pid_t got = waitpid(-1, &w, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) { /* ECHILD: our children were reaped elsewhere */
            for (i = 0; i < n; i++)
                if (pid[i]) st[i].state = JOBS_FAILED, done(s, i, st);
            rc = -1;
            break;
        }
        for (i = 0; i < n && pid[i] != got; i++) continue;
        if (i == n) continue; /* not one of ours */
        pid[i] = 0;
        running--;
        jobs_wait_status(w, &st[i]);
        done(s, i, st);
    }
    free(pid);
    free(given);
    return rc;
}

const jobs_backend jobs_inline = {"inline", inline_run};
const jobs_backend jobs_fork = {"fork", fork_run};

int jobs_run_spec(const jobs_backend *b, const jobs_spec *spec, jobs_status *st) {
    memset(st, 0, sizeof *st * (size_t)(spec->n_tasks > 0 ? spec->n_tasks : 0));
    if (spec->n_tasks <= 0) return 0;
    if (!b) b = spec->workers > 1 ? &jobs_fork : &jobs_inline;
    return b->run(spec, st);
}

int jobs_run(int n_tasks, jobs_task_fn task, void *ctx, int workers, jobs_status *st) {
    jobs_spec s;
    memset(&s, 0, sizeof s);
    s.n_tasks = n_tasks;
    s.task = task;
    s.ctx = ctx;
    s.workers = workers;
    return jobs_run_spec(NULL, &s, st);
}

int jobs_ok(const jobs_status *st) {
    return st->state == JOBS_EXITED && st->status == 0;
}

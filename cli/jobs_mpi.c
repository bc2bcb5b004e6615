/*
 * jobs_mpi.c -- the Open MPI backend of the task pool (contract: jobs_mpi.h).
 * Built only into build/marginflow-mpi (`make mpi`: mpicc -DMF_MPI).
 *
 * Protocol (MPI_COMM_WORLD, two tags). A rank r > 0 sends rank 0 messages
 * {kind, index, state, status} on TAG_MSG:
 *   REQ   "a slot is free: give me an index"  -> rank 0 answers one int on
 *         TAG_IDX: the index to run, or -1 (none left, or stopping)
 *   DONE  "task index ended with (state, status)" -> rank 0 records it in
 *         st[index] and calls on_done
 *   BYE   "I have no running task and will ask for no more"
 * Messages between two ranks arrive in order, so a task's DONE is handled
 * before the same rank's next REQ or its BYE. Rank 0 forks its own tasks
 * too; it polls (MPI_Iprobe, waitpid WNOHANG) and sleeps 1 ms when nothing
 * happened, so it answers a request within about a millisecond while its
 * own tasks run. It returns when every other rank has said BYE and its own
 * tasks have ended. The children of every rank make no MPI call: they run
 * the task and leave with _exit (jobs_fork_task).
 */
#define _XOPEN_SOURCE 700
#include "jobs_mpi.h"

#include <errno.h>
#include <mpi.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { TAG_MSG = 17, TAG_IDX = 18 };
enum { MSG_REQ = 1, MSG_DONE = 2, MSG_BYE = 3 };

static int g_inited;

int jobs_mpi_init(void) {
    if (g_inited) return 0;
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) return -1;
    g_inited = 1;
    return 0;
}

int jobs_mpi_rank(void) {
    int r = 0;
    if (g_inited) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int jobs_mpi_size(void) {
    int s = 1;
    if (g_inited) MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

int jobs_mpi_bcast_int(int v) {
    if (g_inited) MPI_Bcast(&v, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return v;
}

int jobs_mpi_max_int(int v) {
    int m = v;
    if (g_inited) MPI_Allreduce(&v, &m, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return m;
}

void jobs_mpi_finalize(void) {
    if (g_inited) MPI_Finalize();
    g_inited = 0;
}

/* The local children of a rank: pid per running task. */
typedef struct local {
    int n, cap;
    pid_t *pid;
    int *task;
    int forwarded;
} local;

static int local_add(local *l, pid_t p, int task) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 8;
        pid_t *p2 = realloc(l->pid, sizeof *p2 * (size_t)nc);
        if (p2) l->pid = p2;
        int *t2 = p2 ? realloc(l->task, sizeof *t2 * (size_t)nc) : NULL;
        if (t2) l->task = t2;
        if (!p2 || !t2) return -1;
        l->cap = nc;
    }
    l->pid[l->n] = p;
    l->task[l->n++] = task;
    return 0;
}

/* The task of child p (removed from l), or -1 when p is not ours. */
static int local_take(local *l, pid_t p) {
    for (int k = 0; k < l->n; k++)
        if (l->pid[k] == p) {
            int t = l->task[k];
            l->pid[k] = l->pid[l->n - 1];
            l->task[k] = l->task[l->n - 1];
            l->n--;
            return t;
        }
    return -1;
}

/* Once *stop is set: stop_signal to every running child (once). */
static void local_forward(local *l, const jobs_spec *s) {
    if (!s->stop || !*s->stop || !s->stop_signal || l->forwarded) return;
    for (int k = 0; k < l->n; k++) kill(l->pid[k], s->stop_signal);
    l->forwarded = 1;
}

static int stopped(const jobs_spec *s) {
    return s->stop && *s->stop;
}

/* Rank 0's hand-out: spec->next (or 0..n-1), each index once, in range. */
typedef struct handout {
    const jobs_spec *s;
    char *given;
    int pos, done;
} handout;

static int hand_next(handout *h) {
    if (h->done || stopped(h->s)) return -1;
    int i = h->s->next ? h->s->next(h->s->next_ctx) : h->pos < h->s->n_tasks ? h->pos++ : -1;
    if (i < 0 || i >= h->s->n_tasks || h->given[i]) {
        h->done = 1;
        return -1;
    }
    h->given[i] = 1;
    return i;
}

static void record(const jobs_spec *s, jobs_status *st, int i, int state, int status) {
    if (i < 0 || i >= s->n_tasks) return;
    st[i].state = (jobs_state)state;
    if (state == JOBS_KILLED) st[i].signal = status;
    else st[i].status = status;
    if (s->on_done) s->on_done(i, &st[i], s->done_ctx);
}

static void nap(void) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

static int run_root(const jobs_spec *s, jobs_status *st, int size) {
    int workers = s->workers > 1 ? s->workers : 1, byes = 0;
    local l = {0, 0, NULL, NULL, 0};
    handout h = {s, calloc((size_t)s->n_tasks + 1, 1), 0, 0};
    if (!h.given) return -1;
    for (;;) {
        int progressed = 0;
        while (l.n < workers) { /* this rank's own slots */
            int i = hand_next(&h);
            if (i < 0) break;
            void *mine[3] = {l.pid, l.task, h.given};
            pid_t p = jobs_fork_task(s, i, mine, 3);
            if (p < 0 || local_add(&l, p, i)) record(s, st, i, JOBS_FAILED, 0);
            progressed = 1;
        }
        int flag = 0;
        MPI_Status ms;
        while (MPI_Iprobe(MPI_ANY_SOURCE, TAG_MSG, MPI_COMM_WORLD, &flag, &ms) == MPI_SUCCESS && flag) {
            int m[4];
            MPI_Recv(m, 4, MPI_INT, ms.MPI_SOURCE, TAG_MSG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (m[0] == MSG_DONE) record(s, st, m[1], m[2], m[3]);
            else if (m[0] == MSG_BYE) byes++;
            else if (m[0] == MSG_REQ) {
                int i = hand_next(&h);
                MPI_Send(&i, 1, MPI_INT, ms.MPI_SOURCE, TAG_IDX, MPI_COMM_WORLD);
            }
            progressed = 1;
        }
        local_forward(&l, s);
        int w;
        pid_t p;
        while (l.n > 0 && (p = waitpid(-1, &w, WNOHANG)) > 0) {
            int i = local_take(&l, p);
            if (i < 0) continue;
            jobs_status one;
            memset(&one, 0, sizeof one);
            jobs_wait_status(w, &one);
            record(s, st, i, one.state, one.state == JOBS_KILLED ? one.signal : one.status);
            progressed = 1;
        }
        if ((h.done || stopped(s)) && l.n == 0 && byes == size - 1) break;
        if (!progressed) nap();
    }
    free(l.pid);
    free(l.task);
    free(h.given);
    return 0;
}

static int run_rank(const jobs_spec *s) {
    int workers = s->workers > 1 ? s->workers : 1, more = 1;
    local l = {0, 0, NULL, NULL, 0};
    for (;;) {
        while (more && !stopped(s) && l.n < workers) {
            int m[4] = {MSG_REQ, -1, 0, 0}, i;
            MPI_Send(m, 4, MPI_INT, 0, TAG_MSG, MPI_COMM_WORLD);
            MPI_Recv(&i, 1, MPI_INT, 0, TAG_IDX, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (i < 0) {
                more = 0;
                break;
            }
            void *mine[2] = {l.pid, l.task};
            pid_t p = jobs_fork_task(s, i, mine, 2);
            if (p < 0 || local_add(&l, p, i)) {
                int d[4] = {MSG_DONE, i, JOBS_FAILED, 0};
                MPI_Send(d, 4, MPI_INT, 0, TAG_MSG, MPI_COMM_WORLD);
            }
        }
        if (l.n == 0) break;
        local_forward(&l, s);
        int w;
        pid_t p = waitpid(-1, &w, 0);
        if (p < 0 && errno == EINTR) continue;
        if (p < 0) break; /* ECHILD: nothing left to wait for */
        int i = local_take(&l, p);
        if (i < 0) continue;
        jobs_status one;
        memset(&one, 0, sizeof one);
        jobs_wait_status(w, &one);
        int d[4] = {MSG_DONE, i, (int)one.state, one.state == JOBS_KILLED ? one.signal : one.status};
        MPI_Send(d, 4, MPI_INT, 0, TAG_MSG, MPI_COMM_WORLD);
    }
    int bye[4] = {MSG_BYE, -1, 0, 0};
    MPI_Send(bye, 4, MPI_INT, 0, TAG_MSG, MPI_COMM_WORLD);
    free(l.pid);
    free(l.task);
    return 0;
}

static int mpi_run(const jobs_spec *s, jobs_status *st) {
    if (!g_inited) {
        errno = EINVAL;
        return -1;
    }
    int size = jobs_mpi_size();
    return jobs_mpi_rank() == 0 ? run_root(s, st, size) : run_rank(s);
}

const jobs_backend jobs_mpi = {"mpi", mpi_run};

/*
 * jobs.h -- a pool that runs n independent tasks, at most `workers` at a
 * time, and collects one status per task. Used by `marginflow reproduce`
 * (a task = a claim); built for sweeps too.
 *
 * A task is task(index, ctx): it writes its own result (a result file, a
 * run directory) and returns an exit status 0..255. The pool does not
 * carry results between processes: the caller reads each task's files, and
 * the pool tells it per task whether the task finished, with which status,
 * or died (killed by a signal, never started): a crashed task is reported,
 * not lost.
 *
 * Backends. jobs_inline runs the tasks one after another in the calling
 * process (for workers <= 1: no fork, so a debugger, LeakSanitizer and
 * valgrind see every task; a crash ends the caller). jobs_fork forks one
 * child per task and hands the next index to the next free slot, so slow
 * tasks do not hold up the others. A backend only asks `next` for the index
 * to start and reports each end through on_done, so an MPI backend (rank 0
 * serves indices to ranks that ask for work) fits beside these two, and a
 * sweep shards with --task K/N by giving a `next` that yields K, K+N, ...
 * Setting *stop (e.g. from a SIGTERM handler) stops handing out indices;
 * running tasks are waited for.
 */
#ifndef MF_CLI_JOBS_H
#define MF_CLI_JOBS_H

#include <signal.h>

/* A task: run task `index` with the caller's context; returns its exit
 * status (0 = success, else 1..255). */
typedef int (*jobs_task_fn)(int index, void *ctx);

/* How one task ended. */
typedef enum {
    JOBS_NOT_RUN = 0,   /* never started (stopped first, or no index) */
    JOBS_EXITED,        /* returned or exited: status holds the code */
    JOBS_KILLED,        /* died by a signal (a crash): signal holds it */
    JOBS_FAILED         /* could not be started (fork failed) */
} jobs_state;

typedef struct jobs_status {
    jobs_state state;
    int status;         /* JOBS_EXITED: the exit status */
    int signal;         /* JOBS_KILLED: the signal */
} jobs_status;

/* Called in the calling process as each task ends (in the order they end),
 * after st[index] is filled. */
typedef void (*jobs_done_fn)(int index, const jobs_status *st, void *done_ctx);

/* A pool run. Fields left 0 / NULL take their defaults. */
typedef struct jobs_spec {
    int n_tasks;                /* indices 0 .. n_tasks-1 */
    jobs_task_fn task;
    void *ctx;
    int workers;                /* at most this many at once (< 1: 1) */
    jobs_done_fn on_done;       /* optional */
    void *done_ctx;
    /* the next index to start, or -1 when there is none; NULL: 0, 1, ...,
     * n_tasks-1 in order. Called in the calling process. */
    int (*next)(void *next_ctx);
    void *next_ctx;
    volatile sig_atomic_t *stop; /* optional: non-zero stops handing out */
    int stop_signal;            /* fork: sent once to every running task when *stop
                                   is seen set (0: none; the tasks run to their end) */
} jobs_spec;

/* A way to run a pool (see the backends above). run fills st[n_tasks]
 * (every entry, JOBS_NOT_RUN for tasks never started) and returns 0, or -1
 * when it could not wait for its tasks (errno set). */
typedef struct jobs_backend {
    const char *name;
    int (*run)(const jobs_spec *spec, jobs_status *st);
} jobs_backend;

extern const jobs_backend jobs_inline;
extern const jobs_backend jobs_fork;

/* Run the pool with backend b (NULL: jobs_inline when workers <= 1, else
 * jobs_fork); st[n_tasks] receives each task's status. */
int jobs_run_spec(const jobs_backend *b, const jobs_spec *spec, jobs_status *st);

/* The common case: tasks 0..n_tasks-1, `workers` at once, statuses into
 * st[n_tasks]. Returns 0 or -1 as above. */
int jobs_run(int n_tasks, jobs_task_fn task, void *ctx, int workers, jobs_status *st);

/* 1 when the task finished with status 0. */
int jobs_ok(const jobs_status *st);

/* For backends beside these two (an MPI backend forks its tasks the same
 * way). jobs_fork_task: fork a child that frees release[0..nrelease) (the
 * backend's own bookkeeping: memory checkers such as valgrind follow forks
 * and would report it lost at the child's exit), runs spec->task(index, ctx)
 * and ends with _exit(status) after flushing its streams (stdout and stderr
 * are flushed before the fork); returns the child's pid, or -1 (errno set).
 * jobs_wait_status: the status of a task from its child's wait status w. */
int jobs_fork_task(const jobs_spec *spec, int index, void *const *release, int nrelease);
void jobs_wait_status(int w, jobs_status *st);

#endif

/*
 * sweep.c -- `marginflow sweep GRID.json --out DIR [--jobs N] [--task K/N]`:
 * every point of a grid (cli/grid.c) trained, analyzed and recorded under
 * DIR/points/<id>/ (layout: sweep.h; formats: docs/sweeps.md), on one core,
 * on N worker processes (the cli/jobs.c pool), as one task of a job array,
 * or -- in build/marginflow-mpi -- on the ranks of an Open MPI job
 * (cli/jobs_mpi.c, rank 0 handing out points).
 *
 * Crash safety: a point is finished exactly when its result.json, written
 * atomically as the last thing, holds its id. A process runs a point only
 * while it holds the point's lock (an fcntl write lock on
 * DIR/points/<id>/lock, which the kernel releases when the process ends or
 * dies), and re-reads result.json after taking it. So a point is never run
 * twice at once, by any number of sweeps on one DIR (on one host or on
 * several sharing DIR over NFS), and a process killed at any moment leaves
 * either a finished point or an unfinished one that the next start runs
 * again: from its last checkpoint when its run directory has one (the run
 * is deterministic, so a resumed point ends with the same numbers), else
 * afresh. SIGTERM, SIGINT and SIGUSR1 (Slurm's warning before the time
 * limit) checkpoint the running points and stop the sweep (exit 130); the
 * same command later resumes them.
 *
 * Two passes: points locked by another process are left for a second pass,
 * which waits for their locks and runs those whose result is still missing
 * (their process died), so one sweep that ends normally leaves every point
 * of its task finished.
 */
#define _XOPEN_SOURCE 700
#include "sweep.h"
#include "jobs.h"
#include "reproduce.h"
#include "rundir.h"
#ifdef MF_MPI
#include "jobs_mpi.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* exit statuses of one point's task */
enum { PT_OK = 0, PT_ERROR = 1, PT_DONE_BEFORE = 3, PT_BUSY = 4, PT_INTERRUPTED = 130 };

static volatile sig_atomic_t g_stop;

static void on_stop(int sig) {
    (void)sig;
    g_stop = 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* =========================================================== the files */

char *sweep_point_path(const char *dir, const char *id, const char *name) {
    size_t n = strlen(dir) + strlen(id) + (name ? strlen(name) : 0) + 16;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/points/%s%s%s", dir, id, name ? "/" : "", name ? name : "");
    return p;
}

cJSON *sweep_result_read(const char *dir, const char *id) {
    char *p = sweep_point_path(dir, id, "result.json");
    cli_jr r = {p, NULL, 0, NULL, 0};
    cJSON *j = p ? cli_json_load(&r, p, 0) : NULL;
    free(p);
    if (j && (strcmp(cli_jstr_or(j, "format", ""), SWEEP_RESULT_FORMAT) ||
              cli_jnum_or(j, "version", 0) != 1 || strcmp(cli_jstr_or(j, "id", ""), id))) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

/* Cheap test for the hand-out: does point id have a result.json? */
static int result_exists(const char *dir, const char *id) {
    char *p = sweep_point_path(dir, id, "result.json");
    struct stat st;
    int ok = p && stat(p, &st) == 0;
    free(p);
    return ok;
}

int sweep_grid_read(const char *dir, sweep_grid *g, char *why, size_t cap) {
    char *p = cli_join(dir, "sweep.json");
    cli_jr r = {p ? p : "sweep.json", why, cap, NULL, 0};
    memset(g, 0, sizeof *g);
    cJSON *j = p ? cli_json_load(&r, p, 0) : NULL;
    char *text = NULL;
    int rc = -1;
    if (j && strcmp(cli_jstr_or(j, "format", ""), SWEEP_META_FORMAT))
        cli_jbad(&r, "format", "is not \"%s\": not a sweep directory", SWEEP_META_FORMAT);
    else if (j && !(text = cJSON_PrintUnformatted(cli_jget(j, "grid"))))
        cli_jbad(&r, "grid", "is missing");
    else if (j)
        rc = grid_parse(text, strlen(text), cli_jstr_or(j, "grid_file", p), 0, g, why, cap);
    if (!p && cap) cli_fmt(why, cap, "out of memory");
    cJSON_free(text);
    cJSON_Delete(j);
    free(p);
    return rc;
}

/* The axis values of point i as a JSON object (numbers exact). */
static cJSON *axes_json(const sweep_grid *g, int i) {
    cJSON *o = cJSON_CreateObject();
    for (int a = 0; o && a < g->naxes; a++) {
        const grid_axis *ax = &g->axes[a];
        int k = g->vidx[(size_t)i * (size_t)g->naxes + (size_t)a];
        if (ax->str) cli_json_str(o, ax->name, ax->str[k]);
        else cli_json_num(o, ax->name, ax->num[k]);
    }
    return o;
}

/* DIR/sweep.json: written when absent or describing another grid (a note
 * then says so: finished points of the same settings are reused). */
static int write_meta(const char *dir, const char *grid_path, const sweep_grid *g, int quiet) {
    char *p = cli_join(dir, "sweep.json");
    if (!p) return -1;
    cli_jr r = {p, NULL, 0, NULL, 0};
    cJSON *old = cli_json_load(&r, p, 0);
    int same = old && cJSON_Compare(cli_jget(old, "grid"), g->root, 1);
    if (old && !same && !quiet)
        printf("sweep: %s described another grid (%s); replaced -- finished points with the "
               "same settings are reused\n", p, cli_jstr_or(old, "grid_file", "?"));
    cJSON_Delete(old);
    int rc = 0;
    if (!same) {
        char abs[PATH_MAX];
        cJSON *m = cJSON_CreateObject(), *pts;
        cli_json_str(m, "format", SWEEP_META_FORMAT);
        cli_json_int(m, "version", 1);
        cli_json_str(m, "library_version", MF_VERSION);
        cli_json_str(m, "grid_file", realpath(grid_path, abs) ? abs : grid_path);
        cJSON_AddItemToObject(m, "grid", cJSON_Duplicate(g->root, 1));
        pts = cJSON_AddArrayToObject(m, "points");
        for (int i = 0; pts && i < g->npoints; i++) {
            cJSON *o = cJSON_CreateObject();
            cli_json_str(o, "id", g->ids[i]);
            cJSON_AddItemToObject(o, "axes", axes_json(g, i));
            cJSON_AddItemToArray(pts, o);
        }
        mf_err e = {0, ""};
        if (!pts || cli_json_write(p, m, &e)) {
            cli_error("sweep: %s", pts ? e.msg : "out of memory");
            rc = -1;
        }
        cJSON_Delete(m);
    }
    free(p);
    return rc;
}

/* ========================================================== one point */

/* The context of a sweep: the grid, the directory, the points to hand out,
 * and the parent's counts. Forked tasks get a copy. */
typedef struct sweep_ctx {
    const sweep_grid *g;
    const char *dir;
    int blocking;          /* wait for a point's lock (the second pass) */
    int quiet;
    int *list, nlist, pos; /* the points to hand out, in order */
    int *busy, nbusy;      /* points another process held (first pass) */
    int ran, before, failed, interrupted, total;
} sweep_ctx;

/* Take the write lock of path (created if needed): the fd, -2 when another
 * process holds it (not blocking), -1 on error or when a stop signal
 * interrupted the wait (errno set). */
static int lock_file(const char *path, int blocking) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return -1;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    while (fcntl(fd, blocking ? F_SETLKW : F_SETLK, &fl) < 0) {
        int err = errno;
        if (err == EINTR && !g_stop) continue;
        close(fd);
        errno = err;
        return !blocking && (err == EACCES || err == EAGAIN) ? -2 : -1;
    }
    return fd;
}

/* Remove the flat directory path and what it holds (a run directory that
 * never got a config.json: started afresh). */
static void remove_flat(const char *path) {
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *f = cli_join(path, de->d_name);
        if (f) unlink(f);
        free(f);
    }
    if (d) closedir(d);
    rmdir(path);
}

static int file_exists(const char *dir, const char *name) {
    char *p = cli_join(dir, name);
    struct stat st;
    int ok = p && stat(p, &st) == 0;
    free(p);
    return ok;
}

/* point.json (once): id, axis values and identity of point i. */
static int write_point_json(const char *pdir, const sweep_grid *g, int i, const rp_run *r,
                            char *why, size_t cap) {
    if (file_exists(pdir, "point.json")) return 0;
    cJSON *o = cJSON_CreateObject();
    cli_json_str(o, "format", "marginflow-sweep-point-settings");
    cli_json_int(o, "version", 1);
    cli_json_str(o, "id", g->ids[i]);
    cJSON_AddItemToObject(o, "axes", axes_json(g, i));
    cJSON_AddItemToObject(o, "identity", grid_identity(g, r));
    char *p = cli_join(pdir, "point.json");
    mf_err e = {0, "out of memory"};
    int rc = p && o ? cli_json_write(p, o, &e) : MF_ERR_NOMEM;
    if (rc) cli_fmt(why, cap, "%s", e.msg);
    free(p);
    cJSON_Delete(o);
    return rc ? -1 : 0;
}

/* The final metrics of a run that result.json records (names of metrics.csv). */
static const char *const final_cols[] = {"step", "log10_time", "log10_loss", "norm", "q_min",
                                         "normalized_margin", "smoothed_margin", "layer_margin",
                                         "lr", "train_error", "balancedness", NULL};

/* The "analysis" object of result.json: verdict and its numbers. */
static cJSON *analysis_summary(const mf_analysis *a) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cli_json_str(o, "verdict", mf_verdict_name(a->verdict));
    cli_json_str(o, "reason", a->verdict_reason);
    cli_json_num(o, "gamma", a->gamma);
    cli_json_num(o, "eps", a->eps);
    cli_json_num(o, "delta", a->delta);
    cli_json_num(o, "ll_eps", a->ll_eps);
    cli_json_int(o, "n_kinks", a->n_kinks);
    cli_json_int(o, "n_active", a->n_active);
    cli_json_num(o, "gamma_star", a->has_global ? a->gamma_star : NAN);
    cli_json_str(o, "global_source", a->has_global ? a->global_source : NULL);
    cli_json_num(o, "ratio", a->has_global ? a->ratio : NAN);
    cli_json_num(o, "kkt_tol", a->settings.kkt_tol); /* sweep-report: is an inconclusive verdict KKT */
    return o;
}

/* Analyze the final theta of the run in out (when the grid asks): writes
 * run/analysis.json and returns result.json's "analysis" object (an
 * {"error": ...} object when mf_analyze failed); *secs its wall time. */
static cJSON *point_analysis(const sweep_grid *g, const char *rundir, const run_output *out,
                             mf_loss_kind loss, double *secs) {
    double t0 = now_s();
    mf_analysis *an = NULL;
    mf_err e = {0, ""};
    cJSON *res;
    if (mf_analyze(out->model, out->data, out->theta, loss, &g->as, &an, &e)) {
        res = cJSON_CreateObject();
        cli_json_str(res, "error", e.msg[0] ? e.msg : "mf_analyze failed");
    } else {
        res = analysis_summary(an);
        cJSON *aj = cli_analysis_json(an, out->model, out->data, loss, &g->as);
        char *p = cli_join(rundir, "analysis.json");
        if (aj && p && cli_json_write(p, aj, &e)) cli_error("sweep: %s", e.msg);
        free(p);
        cJSON_Delete(aj);
    }
    mf_analysis_free(an);
    *secs = now_s() - t0;
    return res;
}

/* result.json of point i: written atomically, the point's last file. */
static int write_result(const char *pdir, const sweep_grid *g, int i, const run_output *out,
                        cJSON *analysis, double train_s, double analyze_s, int resumed,
                        char *why, size_t cap) {
    cJSON *o = cJSON_CreateObject(), *fj;
    cli_json_str(o, "format", SWEEP_RESULT_FORMAT);
    cli_json_int(o, "version", 1);
    cli_json_str(o, "library_version", MF_VERSION);
    cli_json_str(o, "id", g->ids[i]);
    cJSON_AddItemToObject(o, "axes", axes_json(g, i));
    cli_json_str(o, "outcome", mf_outcome_name(out->res.outcome));
    cli_json_int(o, "steps", out->res.steps);
    fj = cJSON_AddObjectToObject(o, "final");
    for (int k = 0; fj && final_cols[k]; k++)
        cli_json_num(fj, final_cols[k], rp_col(&out->res.final, final_cols[k]));
    if (analysis) cJSON_AddItemToObject(o, "analysis", analysis);
    else cJSON_AddNullToObject(o, "analysis");
    cli_json_num(o, "train_seconds", train_s);
    cli_json_num(o, "analyze_seconds", analyze_s);
    cJSON_AddBoolToObject(o, "resumed", resumed != 0);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    cJSON *by = cJSON_AddObjectToObject(o, "ran_by"); /* where (not part of the result) */
    cli_json_str(by, "host", host);
    cli_json_int(by, "pid", (long long)getpid());
    if (rank && rank[0]) cli_json_int(by, "rank", atoll(rank));
    else cJSON_AddNullToObject(by, "rank");
    char *p = cli_join(pdir, "result.json");
    mf_err e = {0, "out of memory"};
    int rc = p && o && fj ? cli_json_write(p, o, &e) : MF_ERR_NOMEM;
    if (rc) cli_fmt(why, cap, "%s", e.msg);
    free(p);
    cJSON_Delete(o);
    return rc ? -1 : 0;
}

/* Train (resume or start), analyze and record point i in pdir (its lock
 * held). Returns a PT_ status. */
static int point_run(const sweep_ctx *c, int i, const char *pdir, char *why, size_t cap) {
    const sweep_grid *g = c->g;
    rp_run r;
    if (grid_point(g, i, &r, why, cap)) return PT_ERROR;
    char *rundir = cli_join(pdir, "run");
    int st = PT_ERROR;
    if (!rundir || write_point_json(pdir, g, i, &r, why, cap)) goto out;
    run_config rc;
    rp_run_config(&r, &rc);
    rc.made_by = "marginflow sweep";
    run_exec x;
    memset(&x, 0, sizeof x);
    x.dir = rundir;
    x.resume = file_exists(rundir, "config.json") && file_exists(rundir, "checkpoint.bin");
    x.replace = 1;
    x.checkpoint = 1;
    x.keep = 1;
    x.log = RUN_LOG_ERRORS;
    x.stop = &g_stop;
    if (!x.resume) remove_flat(rundir); /* killed before config.json: afresh */
    run_output out;
    int code = run_execute(&rc, &x, &out);
    if (code && x.resume && !g_stop) {
        cli_error("sweep: point %s: %s; starting it afresh", g->ids[i], out.err);
        run_output_free(&out);
        remove_flat(rundir);
        x.resume = 0;
        code = run_execute(&rc, &x, &out);
    }
    if (code) {
        cli_fmt(why, cap, "%s", out.err);
    } else if (out.res.outcome == MF_OUT_INTERRUPTED) {
        st = PT_INTERRUPTED;
    } else {
        double as = 0;
        cJSON *an = g->analyze ? point_analysis(g, rundir, &out, r.s.loss, &as) : NULL;
        st = write_result(pdir, g, i, &out, an, out.res.wall_seconds, as, x.resume, why, cap)
                 ? PT_ERROR : PT_OK;
    }
    run_output_free(&out);
out:
    free(r.init_params);
    free(rundir);
    return st;
}

/* The task of point i: lock it, skip it when finished, else run it. */
static int point_task(int i, void *vctx) {
    const sweep_ctx *c = vctx;
    const char *id = c->g->ids[i];
    char why[MF_ERR_LEN] = "";
    char *pdir = sweep_point_path(c->dir, id, NULL), *lp = sweep_point_path(c->dir, id, "lock");
    int st = PT_ERROR, fd = -1;
    if (!pdir || !lp) cli_fmt(why, sizeof why, "out of memory");
    else if (cli_mkdirs(pdir)) cli_fmt(why, sizeof why, "cannot create %s: %s", pdir, strerror(errno));
    else if ((fd = lock_file(lp, c->blocking)) == -2) st = PT_BUSY;
    else if (fd < 0 && g_stop) st = PT_INTERRUPTED;
    else if (fd < 0) cli_fmt(why, sizeof why, "cannot lock %s: %s", lp, strerror(errno));
    else {
        cJSON *res = sweep_result_read(c->dir, id); /* finished meanwhile? (a damaged one reruns) */
        st = res ? PT_DONE_BEFORE : point_run(c, i, pdir, why, sizeof why);
        cJSON_Delete(res);
    }
    if (st == PT_ERROR) {
        char d[512];
        grid_point_desc(c->g, i, d, sizeof d);
        cli_error("sweep: point %d (%s, id %s): %s", i, d, id, why[0] ? why : "failed");
    }
    if (fd >= 0) close(fd); /* releases the lock */
    free(pdir);
    free(lp);
    return st;
}

/* ========================================================= the pool */

/* The next point to hand out: the next of the list without a result. */
static int next_point(void *vctx) {
    sweep_ctx *c = vctx;
    while (c->pos < c->nlist) {
        int i = c->list[c->pos++];
        if (!result_exists(c->dir, c->g->ids[i])) return i;
        c->before++;
    }
    return -1;
}

/* The line of a point that has ended (printed by the parent / rank 0). */
static void point_done(int i, const jobs_status *st, void *vctx) {
    sweep_ctx *c = vctx;
    const sweep_grid *g = c->g;
    int status = st->state == JOBS_EXITED ? st->status : -1;
    char d[512], line[1024] = "";
    grid_point_desc(g, i, d, sizeof d);
    if (status == PT_OK) {
        cJSON *r = sweep_result_read(c->dir, g->ids[i]);
        const cJSON *an = cli_jget(r, "analysis");
        c->ran++;
        cli_fmt(line, sizeof line, "%s, gamma %.6g", cli_jstr_or(r, "outcome", "?"),
                cli_jnum_or(cli_jget(r, "final"), "normalized_margin", NAN));
        if (an) cli_cat(line, sizeof line, ", verdict %s", cli_jstr_or(an, "verdict", "error"));
        cli_cat(line, sizeof line, " (%.2f s)",
                cli_jnum_or(r, "train_seconds", 0) + cli_jnum_or(r, "analyze_seconds", 0));
        cJSON_Delete(r);
    } else if (status == PT_DONE_BEFORE) {
        c->before++;
        cli_fmt(line, sizeof line, "finished by another process");
    } else if (status == PT_BUSY) {
        c->busy[c->nbusy++] = i;
        cli_fmt(line, sizeof line, "running in another process; waiting for it at the end");
    } else if (status == PT_INTERRUPTED) {
        c->interrupted++;
        cli_fmt(line, sizeof line, "interrupted (checkpointed; the same command resumes it)");
    } else {
        c->failed++;
        if (st->state == JOBS_KILLED)
            cli_fmt(line, sizeof line, "FAILED: its process died (signal %d)", st->signal);
        else if (st->state == JOBS_FAILED)
            cli_fmt(line, sizeof line, "FAILED: no process could be started");
        else
            cli_fmt(line, sizeof line, "FAILED (see the message above)");
    }
    if (!c->quiet || status < 0 || status == PT_ERROR) {
        printf("[%d/%d] %s %s: %s\n", c->ran + c->before, c->total, g->ids[i], d, line);
        fflush(stdout);
    }
}

/* Run the points of list[n] (blocking: wait for their locks) with the
 * backend. Returns 0 or -1 (the pool could not wait for its tasks). */
static int run_pass(sweep_ctx *c, int *list, int n, int workers, int blocking,
                    const jobs_backend *backend) {
    c->list = list, c->nlist = n, c->pos = 0, c->blocking = blocking;
    jobs_status *st = calloc((size_t)c->g->npoints, sizeof *st);
    if (!st) return -1;
    jobs_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.n_tasks = c->g->npoints;
    spec.task = point_task;
    spec.ctx = c;
    spec.workers = workers;
    spec.on_done = point_done;
    spec.done_ctx = c;
    spec.next = next_point;
    spec.next_ctx = c;
    spec.stop = &g_stop;
    spec.stop_signal = SIGTERM;
    int rc = jobs_run_spec(backend, &spec, st);
    free(st);
    return rc;
}

/* ========================================================= the task */

/* This process's share of the points: task k of n. */
typedef struct sweep_task {
    long long k, n;
    char source[160];
} sweep_task;

/* The environment variable name as an integer: 1 (*v set), 0 absent or
 * empty, -1 not an integer (why set). */
static int env_ll(const char *name, long long *v, char *why, size_t cap) {
    const char *s = getenv(name);
    char *end;
    if (!s || !s[0]) return 0;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end || errno) {
        cli_fmt(why, cap, "%s='%s' is not an integer", name, s);
        return -1;
    }
    *v = x;
    return 1;
}

/* The task from the scheduler's environment (docs/sweeps.md lists the
 * rules): Slurm, SGE, LSF, PBS / Torque job arrays, then Open MPI ranks
 * (not in the MPI binary, whose ranks share the points dynamically);
 * none: task 0 of 1. tasks: --tasks (0: not given), the count for
 * schedulers whose environment has none. Returns 0 or -1 (why set). */
static int task_from_env(long long tasks, int mpi, sweep_task *t, char *why, size_t cap) {
    long long id = 0, lo = 0, hi = 0, step = 1, cnt = 0;
    int g;
    t->k = 0, t->n = 1;
    cli_fmt(t->source, sizeof t->source, "all points (no --task, no job array)");
    if ((g = env_ll("SLURM_ARRAY_TASK_ID", &id, why, cap)) != 0) {
        if (g < 0 || env_ll("SLURM_ARRAY_TASK_MIN", &lo, why, cap) < 0 ||
            env_ll("SLURM_ARRAY_TASK_STEP", &step, why, cap) < 0)
            return -1;
        int hc = env_ll("SLURM_ARRAY_TASK_COUNT", &cnt, why, cap), hm = 0;
        if (hc < 0 || (hc == 0 && (hm = env_ll("SLURM_ARRAY_TASK_MAX", &hi, why, cap)) < 0)) return -1;
        if (step < 1 || (id - lo) % step) {
            cli_fmt(why, cap, "SLURM_ARRAY_TASK_ID=%lld is not MIN + k STEP (MIN %lld, STEP %lld)",
                    id, lo, step);
            return -1;
        }
        t->k = (id - lo) / step;
        t->n = hc ? cnt : hm ? (hi - lo) / step + 1 : tasks;
        cli_fmt(t->source, sizeof t->source, "SLURM_ARRAY_TASK_ID=%lld (MIN %lld, %s %lld)", id, lo,
                hc ? "COUNT" : hm ? "from MAX" : "--tasks", t->n);
    } else if (getenv("SGE_TASK_ID") && strcmp(getenv("SGE_TASK_ID"), "undefined")) {
        lo = 1, hi = 0;
        if (env_ll("SGE_TASK_ID", &id, why, cap) < 0 || env_ll("SGE_TASK_FIRST", &lo, why, cap) < 0 ||
            env_ll("SGE_TASK_STEPSIZE", &step, why, cap) < 0)
            return -1;
        int hl = env_ll("SGE_TASK_LAST", &hi, why, cap);
        if (hl < 0) return -1;
        if (step < 1 || (id - lo) % step) {
            cli_fmt(why, cap, "SGE_TASK_ID=%lld is not FIRST + k STEPSIZE", id);
            return -1;
        }
        t->k = (id - lo) / step;
        t->n = hl ? (hi - lo) / step + 1 : tasks;
        cli_fmt(t->source, sizeof t->source, "SGE_TASK_ID=%lld (FIRST %lld, %s %lld)", id, lo,
                hl ? "LAST" : "--tasks", t->n);
    } else if ((g = env_ll("LSB_JOBINDEX", &id, why, cap)) != 0 && !(g > 0 && id == 0)) {
        if (g < 0 || env_ll("LSB_JOBINDEX_STEP", &step, why, cap) < 0) return -1;
        int he = env_ll("LSB_JOBINDEX_END", &hi, why, cap);
        if (he < 0) return -1;
        if (step < 1 || (id - 1) % step) {
            cli_fmt(why, cap, "LSB_JOBINDEX=%lld is not 1 + k STEP (arrays name[1-N:STEP])", id);
            return -1;
        }
        t->k = (id - 1) / step;
        t->n = tasks ? tasks : he ? (hi - 1) / step + 1 : 0;
        cli_fmt(t->source, sizeof t->source, "LSB_JOBINDEX=%lld (arrays from 1, %s %lld)", id,
                tasks ? "--tasks" : "END", t->n);
    } else if ((g = env_ll("PBS_ARRAYID", &id, why, cap)) != 0 ||
               (g = env_ll("PBS_ARRAY_INDEX", &id, why, cap)) != 0) {
        if (g < 0) return -1;
        t->k = id;
        t->n = tasks;
        cli_fmt(t->source, sizeof t->source, "PBS array index %lld (arrays from 0, --tasks %lld)", id,
                tasks);
    } else if (!mpi && (g = env_ll("OMPI_COMM_WORLD_RANK", &id, why, cap)) != 0) {
        if (g < 0 || env_ll("OMPI_COMM_WORLD_SIZE", &cnt, why, cap) < 0) return -1;
        t->k = id;
        t->n = cnt;
        cli_fmt(t->source, sizeof t->source, "OMPI_COMM_WORLD_RANK=%lld of SIZE %lld", id, cnt);
    }
    if (t->n < 1) {
        cli_fmt(why, cap, "%s: the number of tasks is not in the environment; give --tasks N",
                t->source);
        return -1;
    }
    if (t->k < 0 || t->k >= t->n) {
        cli_fmt(why, cap, "%s gives task %lld, not in 0..%lld", t->source, t->k, t->n - 1);
        return -1;
    }
    return 0;
}

/* --task K/N. Returns 0 or -1 (why set). */
static int parse_task(const char *s, sweep_task *t, char *why, size_t cap) {
    long long k, n;
    char tail;
    if (sscanf(s, "%lld/%lld%c", &k, &n, &tail) != 2 || n < 1 || n > 1000000 || k < 0 || k >= n) {
        cli_fmt(why, cap, "--task: expected K/N with 0 <= K < N <= 1000000, got '%s'", s);
        return -1;
    }
    t->k = k, t->n = n;
    cli_fmt(t->source, sizeof t->source, "--task %lld/%lld", k, n);
    return 0;
}

/* ===================================================== --print-slurm */

/* A single-quoted shell word for s (into a malloc'd string). */
static char *sq(const char *s) {
    char *a = (char *)s;
    return cli_shell_quote(1, &a);
}

static int print_slurm(const sweep_grid *g, const char *grid_path, const char *dir,
                       long long tasks, int jobs, const char *time_limit) {
    char gabs[PATH_MAX], dabs[PATH_MAX], exe[PATH_MAX];
    if (cli_mkdirs(dir)) {
        cli_error("sweep: cannot create %s: %s", dir, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el < 0) cli_fmt(exe, sizeof exe, "marginflow");
    else exe[el] = '\0';
    if (!realpath(grid_path, gabs) || !realpath(dir, dabs)) {
        cli_error("sweep: %s: %s", grid_path, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    long long n = tasks ? tasks : g->npoints < 100 ? g->npoints : 100;
    if (n > g->npoints) n = g->npoints;
    char *qe = sq(exe), *qg = sq(gabs), *qd = sq(dabs), *qo = NULL;
    char out[PATH_MAX + 32];
    cli_fmt(out, sizeof out, "%s/slurm-%%A_%%a.out", dabs);
    qo = sq(out);
    printf("#!/bin/bash\n"
           "# The sweep '%s' (%d points) as a Slurm job array; written by\n"
           "#   marginflow sweep %s --out %s --print-slurm\n"
           "# Submit with: sbatch THIS_FILE. Array task K (0..%lld) runs the points i with\n"
           "# i mod %lld = K (K = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN); a point's seed and\n"
           "# files depend only on the point. Finished points are never run again and\n"
           "# unfinished ones resume from their checkpoint, so submitting this script again\n"
           "# finishes whatever a time limit or a failure left. %lld s before the time limit\n"
           "# Slurm sends USR1: the running points are checkpointed and the task requeued.\n"
           "#SBATCH --job-name=%s\n"
           "#SBATCH --array=0-%lld\n"
           "#SBATCH --ntasks=1\n"
           "#SBATCH --cpus-per-task=%d\n"
           "#SBATCH --time=%s\n"
           "#SBATCH --signal=B:USR1@120\n"
           "#SBATCH --requeue\n"
           "#SBATCH --open-mode=append\n"
           "#SBATCH --output=%s\n"
           "set -u\n"
           "export OPENBLAS_NUM_THREADS=1\n"
           "pid=\n"
           "requeue() {\n"
           "    [ -n \"$pid\" ] && kill -USR1 \"$pid\" 2>/dev/null  # checkpoint and stop\n"
           "    [ -n \"$pid\" ] && wait \"$pid\"\n"
           "    scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n"
           "    exit 0\n"
           "}\n"
           "trap requeue USR1\n"
           "%s sweep %s --out %s --jobs %d &\n"
           "pid=$!\n"
           "wait \"$pid\"\n",
           g->name[0] ? g->name : "sweep", g->npoints, gabs, dabs, n - 1, n, 120LL,
           g->name[0] ? g->name : "marginflow-sweep", n - 1, jobs, time_limit, qo ? qo : out,
           qe ? qe : exe, qg ? qg : gabs, qd ? qd : dabs, jobs);
    free(qe), free(qg), free(qd), free(qo);
    return CLI_EXIT_OK;
}

/* ============================================================ command */

static void sweep_help(void) {
    printf(
        "usage: marginflow sweep GRID.json --out DIR [--jobs N] [--task K/N] [options]\n"
        "       marginflow sweep GRID.json --out DIR --print-slurm [--tasks N] [--time T]\n"
        "\n"
        "Train (and analyze) every point of the grid GRID.json (format: docs/sweeps.md): a\n"
        "base run and axes of values. The grid is validated whole first (every point's run,\n"
        "model and data). Each point is written to DIR/points/<id>/ (id: a hash of its full\n"
        "settings): run/ (a run directory), result.json (written last, atomically: the point\n"
        "is finished). A point runs only under its lock, so sweeps may share DIR (also from\n"
        "several hosts); a restarted sweep skips finished points and resumes the others from\n"
        "their checkpoints. SIGTERM, SIGINT and SIGUSR1 checkpoint the running points and\n"
        "stop (exit 130). `marginflow sweep-report DIR` then writes results.csv and figures.\n"
        "\n"
        "  --out DIR          the sweep directory (required)\n"
        "  --jobs N           N worker processes (default 1: points run in this process)\n"
        "  --task K/N         run only the points i with i mod N = K (0 <= K < N). Default:\n"
        "                     from a job array's environment -- SLURM_ARRAY_TASK_ID (minus\n"
        "                     SLURM_ARRAY_TASK_MIN, over SLURM_ARRAY_TASK_COUNT), SGE_TASK_ID,\n"
        "                     LSB_JOBINDEX, PBS_ARRAYID / PBS_ARRAY_INDEX, OMPI_COMM_WORLD_RANK\n"
        "                     / _SIZE -- normalized to 0-based; none: all points\n"
        "  --tasks N          the number of tasks where the environment has none (PBS; LSF\n"
        "                     without LSB_JOBINDEX_END); --print-slurm: the array size\n"
        "                     (default: the number of points, at most 100)\n"
        "  --list             print this task's points (index, id, status, values) and exit\n"
        "  --print-slurm      print an sbatch --array script for the sweep and exit (creates\n"
        "                     DIR for its log files)\n"
        "  --time T           --print-slurm: the time limit of one array task (default 04:00:00)\n"
        "  -q, --quiet        print only errors and the final line\n"
        "  -h, --help         this help\n"
        "\n"
        "build/marginflow-mpi (make mpi): `mpirun -np R build/marginflow-mpi sweep GRID --out DIR`\n"
        "runs the points on R ranks, rank 0 handing them out one at a time (--jobs N: N per\n"
        "rank); a lost rank's points are run again at the next start.\n"
        "\n"
        "exit codes: 0 every point of this task finished, 1 a point failed or is left\n"
        "            unfinished, 2 bad usage or a bad grid, 130 interrupted\n");
}

/* The options of a sweep call. */
typedef struct sweep_opts {
    const char *grid, *out, *task, *time;
    long long jobs, tasks;
    int list, slurm, quiet;
} sweep_opts;

static int sweep_args(int argc, char **argv, sweep_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            sweep_help();
            return CLI_EXIT_OK;
        }
        if (!strcmp(a, "--list")) o->list = 1;
        else if (!strcmp(a, "--print-slurm")) o->slurm = 1;
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o->quiet = 1;
        else if ((r = cli_opt(argc, argv, &i, "--out", &v)) == 1) o->out = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--task", &v)) == 1) o->task = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--time", &v)) == 1) o->time = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--jobs", &v)) == 1) {
            if (cli_parse_ll("--jobs", v, 1, 256, &o->jobs)) r = -1;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--tasks", &v)) == 1) {
            if (cli_parse_ll("--tasks", v, 1, 1000000, &o->tasks)) r = -1;
        } else if (r == 0 && a[0] == '-' && a[1]) {
            cli_error("sweep: unknown option '%s'; see marginflow sweep --help", a);
            return CLI_EXIT_USAGE;
        } else if (r == 0 && o->grid) {
            cli_error("sweep: more than one grid file ('%s' and '%s')", o->grid, a);
            return CLI_EXIT_USAGE;
        } else if (r == 0) {
            o->grid = a;
        }
        if (r < 0) return CLI_EXIT_USAGE;
    }
    if (!o->grid || !o->out) {
        cli_error("sweep: give a grid file and --out DIR (see marginflow sweep --help)");
        return CLI_EXIT_USAGE;
    }
    return -1;
}

/* --list: the points of this task. */
static void list_points(const sweep_grid *g, const char *dir, const sweep_task *t) {
    printf("# task %lld/%lld (%s); index id status values\n", t->k, t->n, t->source);
    for (int i = (int)t->k; i < g->npoints; i += (int)t->n) {
        char d[512];
        grid_point_desc(g, i, d, sizeof d);
        printf("%d %s %s %s\n", i, g->ids[i], result_exists(dir, g->ids[i]) ? "finished" : "todo", d);
    }
}

static void install_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking wait returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* The two passes over this task's points; prints the final line and
 * returns the exit code. root: this process prints (not an MPI rank > 0). */
static int sweep_run(sweep_ctx *c, const sweep_task *t, int workers, int root, int mpi,
                     const jobs_backend *backend) {
    const sweep_grid *g = c->g;
    int n = 0, rc = 0;
    int *list = malloc(sizeof *list * (size_t)(g->npoints + 1));
    c->busy = malloc(sizeof *c->busy * (size_t)(g->npoints + 1));
    if (!list || !c->busy) {
        free(list);
        cli_error("sweep: out of memory");
        return CLI_EXIT_ERROR;
    }
    for (long long i = t->k; i < g->npoints; i += t->n) list[n++] = (int)i;
    c->total = n;
    int left = 0;
    for (int k = 0; k < n; k++) left += !result_exists(c->dir, g->ids[list[k]]);
    if (root && !c->quiet) {
        printf("sweep %s: %d points; task %lld/%lld (%s): %d points, %d finished before, "
               "%d to run on %d worker%s%s\n", g->name[0] ? g->name : g->file, g->npoints, t->k,
               t->n, t->source, n, n - left, left, workers, workers == 1 ? "" : "s",
               mpi ? " per rank" : "");
        fflush(stdout);
    }
    double t0 = now_s();
    if (run_pass(c, list, n, workers, 0, backend)) rc = -1;
    int nbusy = c->nbusy;
#ifdef MF_MPI
    if (mpi) nbusy = jobs_mpi_bcast_int(nbusy);
#endif
    if (!rc && nbusy > 0 && !g_stop) {
        if (root && !c->quiet) {
            printf("sweep: %d points were running in another process; waiting for them\n", nbusy);
            fflush(stdout);
        }
        int *b2 = malloc(sizeof *b2 * (size_t)(nbusy + 1));
        if (!b2) rc = -1;
        else {
            if (root) memcpy(b2, c->busy, sizeof *b2 * (size_t)nbusy);
            c->nbusy = 0;
            if (run_pass(c, b2, root ? nbusy : 0, workers, 1, backend)) rc = -1;
            free(b2);
        }
    }
    int unfinished = 0;
    for (int k = 0; k < n; k++) unfinished += !result_exists(c->dir, g->ids[list[k]]);
    free(list);
    free(c->busy);
    c->busy = NULL;
    int code = rc ? CLI_EXIT_ERROR : g_stop ? CLI_EXIT_INTERRUPTED
               : unfinished || c->failed ? CLI_EXIT_ERROR : CLI_EXIT_OK;
    if (root) {
        double dt = now_s() - t0;
        printf("sweep: %d of %d points of this task finished (%d run here in %.1f s, %.3g points/s); "
               "%d failed%s%s\n", n - unfinished, n, c->ran, dt, dt > 0 ? c->ran / dt : 0, c->failed,
               g_stop ? "; interrupted: the same command resumes the rest" : "",
               unfinished && !g_stop ? "; run the same command to finish the rest" : "");
        if (rc) cli_error("sweep: the worker pool failed: %s", strerror(errno));
    }
    return code;
}

/* The sweep after MPI started (when built with it). */
static int sweep_main(int argc, char **argv, int mpi, int root) {
    sweep_opts o;
    memset(&o, 0, sizeof o);
    o.jobs = 1;
    o.time = "04:00:00";
    int code = sweep_args(argc, argv, &o);
    if (code >= 0) return code;
    sweep_grid g;
    sweep_task t;
    char why[MF_ERR_LEN];
    int bad = grid_read(o.grid, &g, why, sizeof why) || grid_check_runs(&g, o.grid, why, sizeof why);
    memset(&t, 0, sizeof t);
    if (!bad && o.task) bad = parse_task(o.task, &t, why, sizeof why) != 0;
    else if (!bad) bad = task_from_env(o.tasks, mpi, &t, why, sizeof why) ? 1 : 0;
#ifdef MF_MPI
    if (mpi) bad = jobs_mpi_max_int(bad);
#endif
    if (bad) {
        if (root) cli_error("sweep: %s", why);
        grid_free(&g);
        return CLI_EXIT_USAGE;
    }
    if (o.slurm) {
        code = mpi ? (cli_error("sweep: --print-slurm: use build/marginflow (a job array needs no "
                                "MPI)"), CLI_EXIT_USAGE)
                   : print_slurm(&g, o.grid, o.out, o.tasks, (int)o.jobs, o.time);
        grid_free(&g);
        return code;
    }
    if (o.list) {
        if (root) list_points(&g, o.out, &t);
        grid_free(&g);
        return CLI_EXIT_OK;
    }
    char *pts = cli_join(o.out, "points");
    int ok = pts && cli_mkdirs(pts) == 0;
    if (!ok) cli_error("sweep: cannot create %s: %s", pts ? pts : o.out, strerror(errno));
    free(pts);
    if (ok && root && write_meta(o.out, o.grid, &g, o.quiet)) ok = 0;
#ifdef MF_MPI
    if (mpi) ok = !jobs_mpi_max_int(!ok);
#endif
    if (!ok) {
        grid_free(&g);
        return CLI_EXIT_ERROR;
    }
    install_handlers();
    sweep_ctx c;
    memset(&c, 0, sizeof c);
    c.g = &g;
    c.dir = o.out;
    c.quiet = o.quiet;
    const jobs_backend *backend = NULL;
#ifdef MF_MPI
    if (mpi) backend = &jobs_mpi;
#endif
    code = sweep_run(&c, &t, (int)o.jobs, root, mpi, backend);
#ifdef MF_MPI
    if (mpi) code = jobs_mpi_bcast_int(code);
#endif
    grid_free(&g);
    return code;
}

int cli_sweep(int argc, char **argv) {
#ifdef MF_MPI
    for (int i = 1; i < argc; i++) /* help and usage errors need no MPI */
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return sweep_main(argc, argv, 0, 1);
    if (jobs_mpi_init()) {
        cli_error("sweep: MPI_Init failed");
        return CLI_EXIT_ERROR;
    }
    int code = sweep_main(argc, argv, 1, jobs_mpi_rank() == 0);
    fflush(NULL);
    jobs_mpi_finalize();
    return code;
#else
    return sweep_main(argc, argv, 0, 1);
#endif
}

/*
 * test_alloc.c -- allocation-failure injection through the library's one
 * allocation hook (mf_set_allocator).
 *
 * For each operation below and for every k = 1, 2, ... the k-th allocation
 * request of the operation (malloc or realloc) fails, until k exceeds the
 * number of requests the operation makes. Two modes: only the k-th request
 * fails ("once"), or the k-th and every later one ("from k on"). For every k
 * the test checks:
 *   - the call returns MF_OK or MF_ERR_NOMEM, never anything else and never
 *     crashes (the suite also runs under ASan and valgrind);
 *   - on MF_ERR_NOMEM the mf_err carries that code and a message, and no
 *     output object is returned;
 *   - on MF_OK (a failure the library can absorb, e.g. a shrinking realloc)
 *     the result equals the reference result computed without injection;
 *   - no leak: allocations minus frees seen by the hook return to 0 after
 *     the operation's outputs are freed.
 * Operations: mf_data_from_spec (builtin, gauss, symmetric), mf_data_load
 * (libsvm and CSV files of 300 rows, so the growable arrays reallocate),
 * mf_model_parse + mf_work_new for every model kind, mf_train (20-step runs
 * of gd, scaled, lyu-li, flow, sgd), mf_checkpoint_write/read and
 * mf_params_write/read, mf_svm_solve (l2 and l1, a separable and a
 * non-separable set), mf_analyze at the known-answer points B, D and R1 of
 * docs/theory.md section 4, mf_directional_test, mf_local_search, mf_maxmargin.
 * Results after an absorbed failure are compared with the reference: svm by
 * gamma and status (bit-equal), analyze by verdict, gamma and eps, the local
 * tests by their reported numbers.
 * Not reached by the hook: GLPK (l1 LP, directional test), NLopt (SLSQP in
 * local search / maxmargin / analyze) and OpenBLAS / LAPACKE allocate
 * internally with their own malloc; their failures cannot be injected here.
 */
#include "marginflow.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------- the hook */

static long g_requests; /* malloc/realloc requests since reset */
static long g_fail_at;  /* request number that fails (0 = none) */
static int g_fail_after;/* 1: every request >= g_fail_at fails too */
static long g_live;     /* live blocks: successful mallocs/realloc(NULL) minus frees */

static int should_fail(void) {
    g_requests++;
    if (g_fail_at <= 0) return 0;
    return g_fail_after ? g_requests >= g_fail_at : g_requests == g_fail_at;
}

static void *h_malloc(size_t n) {
    if (should_fail()) return NULL;
    void *p = malloc(n);
    if (p) g_live++;
    return p;
}

static void *h_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    void *q = realloc(p, n);
    if (q && !p) g_live++;
    return q;
}

static void h_free(void *p) {
    if (p) g_live--;
    free(p);
}

/* ------------------------------------------------------- the driver */

/* An operation: does its work with the hook installed, frees everything it
 * made, and returns the library's code, or -1 when it succeeded with a
 * result different from the reference. */
typedef int (*op_fn)(void *ctx, mf_err *e);

/* Run op with the k-th request failing for k = 1, 2, ... in both modes.
 * Returns the number of requests of a clean run (-1 if the clean run
 * failed). Checks are counted in the test totals. */
static long inject(const char *name, op_fn op, void *ctx) {
    mf_err e;
    g_requests = 0;
    g_fail_at = 0;
    g_live = 0;
    mf_set_allocator(h_malloc, h_realloc, h_free);
    int rc = op(ctx, &e);
    long clean = g_requests;
    CHECK(rc == MF_OK, "%s: clean run returned %d (%s)", name, rc, rc > 0 ? e.msg : "mismatch");
    CHECK(g_live == 0, "%s: clean run leaves %ld live blocks", name, g_live);
    int bad_rc = 0, leaks = 0, bad_msg = 0, absorbed = 0;
    for (int mode = 0; mode < 2; mode++) {
        for (long k = 1; k <= clean + 1; k++) {
            g_requests = 0;
            g_live = 0;
            g_fail_at = k;
            g_fail_after = mode;
            memset(&e, 0, sizeof e);
            rc = op(ctx, &e);
            if (rc != MF_OK && rc != MF_ERR_NOMEM) {
                if (bad_rc++ < 3)
                    fprintf(stderr, "%s: failing request %ld (%s) gave code %d: %s\n", name, k,
                            mode ? "from k on" : "once", rc, rc > 0 ? e.msg : "wrong result");
            }
            if (rc == MF_ERR_NOMEM && (e.code != MF_ERR_NOMEM || e.msg[0] == '\0')) bad_msg++;
            if (rc == MF_OK && k <= clean) absorbed++;
            if (g_live != 0) {
                if (leaks++ < 3)
                    fprintf(stderr, "%s: failing request %ld (%s) leaks %ld blocks\n", name, k,
                            mode ? "from k on" : "once", g_live);
            }
        }
    }
    g_fail_at = 0;
    mf_set_allocator(NULL, NULL, NULL);
    CHECK(bad_rc == 0, "%s: %d injected failures gave a code other than OK/NOMEM", name, bad_rc);
    CHECK(leaks == 0, "%s: %d injected failures leaked", name, leaks);
    CHECK(bad_msg == 0, "%s: %d NOMEM returns without code/message in mf_err", name, bad_msg);
    printf("  %-28s %3ld allocation requests, each failed in 2 modes; %d failures absorbed\n",
           name, clean, absorbed);
    return rc == MF_OK ? clean : -1;
}

/* ------------------------------------------------------- data */

static int same_data(const mf_data *a, const mf_data *b) {
    if (a->n != b->n || a->d != b->d || a->num_classes != b->num_classes) return 0;
    if (memcmp(a->x, b->x, sizeof(double) * (size_t)a->n * a->d)) return 0;
    if (a->y && (!b->y || memcmp(a->y, b->y, sizeof(double) * (size_t)a->n))) return 0;
    if (a->cls && (!b->cls || memcmp(a->cls, b->cls, sizeof(int) * (size_t)a->n))) return 0;
    return strcmp(a->desc, b->desc) == 0;
}

typedef struct {
    const char *spec;   /* for mf_data_from_spec, or a path */
    const char *format; /* for mf_data_load */
    mf_data *ref;
} data_ctx;

static int op_data_spec(void *ctx, mf_err *e) {
    data_ctx *c = ctx;
    mf_data *D = (mf_data *)1;
    int rc = c->format ? mf_data_load(c->spec, c->format, 0, &D, e)
                       : mf_data_from_spec(c->spec, NULL, &D, e);
    if (rc) return D == NULL ? rc : -1;
    int same = same_data(D, c->ref);
    mf_data_free(D);
    return same ? MF_OK : -1;
}

static char g_dir[64];

static const char *tpath(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

TEST(data_specs_and_files) {
    /* files with 300 rows: label, line and index arrays grow several times */
    FILE *f = fopen(tpath("a.svm"), "w"), *g = fopen(tpath("a.csv"), "w");
    CHECK(f && g, "cannot create test files in %s", g_dir);
    if (!f || !g) return;
    fprintf(g, "label,x1,x2,x3\n");
    for (int i = 0; i < 300; i++) {
        fprintf(f, "%+d 1:%g 3:%g 7:%g\n", i % 2 ? 1 : -1, 0.5 * i, -1.0 / (i + 1), 1e-3 * i);
        fprintf(g, "%d,%g,%g,%g\n", i % 3, 0.25 * i, 2.0 - i, 1.0 / (i + 2));
    }
    fclose(f);
    fclose(g);
    const char *specs[][2] = {{"builtin:sym4", NULL},
                              {"gauss:n=40,d=5,margin=0.1,seed=3", NULL},
                              {"symmetric:n=20,d=3,margin=0.2,seed=5", NULL},
                              {tpath("a.svm"), "libsvm"},
                              {tpath("a.csv"), "csv"}};
    long min_requests[] = {2, 4, 4, 6, 5};
    for (int i = 0; i < 5; i++) {
        data_ctx c = {specs[i][0], specs[i][1], NULL};
        mf_err e;
        int rc = c.format ? mf_data_load(c.spec, c.format, 0, &c.ref, &e)
                          : mf_data_from_spec(c.spec, NULL, &c.ref, &e);
        CHECK(rc == MF_OK, "reference %s: %s", c.spec, e.msg);
        if (rc) continue;
        char name[64];
        snprintf(name, sizeof name, "data %s", c.format ? c.format : c.spec);
        long n = inject(name, op_data_spec, &c);
        CHECK(n >= min_requests[i], "%s: only %ld allocation requests seen, want >= %ld "
              "(is the hook used?)", name, n, min_requests[i]);
        mf_data_free(c.ref);
    }
}

/* ------------------------------------------------------- models */

typedef struct {
    const char *spec;
    int d, num_classes;
    size_t n_params;
} model_ctx;

static int op_model(void *ctx, mf_err *e) {
    model_ctx *c = ctx;
    mf_model *m = (mf_model *)1;
    int rc = mf_model_parse(c->spec, c->d, c->num_classes, &m, e);
    if (rc) return m == NULL ? rc : -1;
    mf_work *w = (mf_work *)1;
    rc = mf_work_new(m, 17, &w, e);
    if (rc) {
        mf_model_free(m);
        return w == NULL ? rc : -1;
    }
    int same = m->n_params == c->n_params;
    mf_work_free(w);
    mf_model_free(m);
    return same ? MF_OK : -1;
}

TEST(models_and_workspaces) {
    model_ctx cs[] = {{"linear", 4, 3, 12},
                      {"fc-linear:depth=3,width=5", 4, 0, 4 * 5 + 5 * 5 + 5},
                      {"diag:depth=3", 4, 0, 12},
                      {"relu2:width=6,alpha=0.1,bias,fix-outer", 4, 0, 6 * 5},
                      {"relu2:width=6", 4, 0, 6 * 4 + 6},
                      {"mlp:widths=5/3,alpha=0.2", 4, 3, 4 * 5 + 5 * 3 + 3 * 3},
                      {"skip-linear", 4, 0, 5},
                      {"relu2-outbias:width=3,alpha=0", 4, 0, 3 * 4 + 3 + 1}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "model %.40s", cs[i].spec);
        long n = inject(name, op_model, &cs[i]);
        CHECK(n >= 3, "%s: %ld allocation requests, want >= 3 (model, work, block)", name, n);
    }
}

/* ------------------------------------------------------- training */

typedef struct {
    const mf_model *m;
    const mf_data *data;
    mf_train_settings s;
    const double *theta0;
    double *theta_ref; /* final theta of the clean run */
    long long steps_ref;
} train_ctx;

static int op_train(void *ctx, mf_err *e) {
    train_ctx *c = ctx;
    mf_train_state *st = (mf_train_state *)1;
    int rc = mf_train_state_new(c->m->n_params, &st, e);
    if (rc) return st == NULL ? rc : -1;
    memcpy(st->theta, c->theta0, c->m->n_params * sizeof(double));
    mf_train_result res;
    rc = mf_train(c->m, c->data, &c->s, st, NULL, &res, e);
    if (rc == MF_OK && c->theta_ref &&
        (res.steps != c->steps_ref ||
         memcmp(st->theta, c->theta_ref, c->m->n_params * sizeof(double))))
        rc = -1;
    mf_train_state_free(st);
    return rc;
}

TEST(training_every_optimizer) {
    mf_err e;
    mf_data *data = NULL;
    mf_model *m = NULL;
    int rc = mf_data_from_spec("gauss:n=30,d=3,margin=0.2,seed=4", NULL, &data, &e);
    if (!rc) rc = mf_model_parse("relu2:width=4", data->d, 0, &m, &e);
    CHECK(rc == MF_OK, "setup: %s", e.msg);
    if (rc) {
        mf_data_free(data);
        return;
    }
    double theta0[64];
    mf_rng rng;
    mf_rng_seed(&rng, 9);
    rc = mf_model_init(m, "gauss", 0.5, &rng, theta0, &e);
    CHECK(rc == MF_OK && m->n_params <= 64, "init: %s", e.msg);
    for (int o = MF_OPT_GD; o <= MF_OPT_SGD; o++) {
        train_ctx c;
        memset(&c, 0, sizeof c);
        c.m = m;
        c.data = data;
        c.theta0 = theta0;
        mf_train_settings_default(&c.s);
        c.s.optimizer = (mf_optimizer_kind)o;
        c.s.max_steps = 20;
        c.s.batch = 8;
        c.s.log_points = 5;
        /* the reference run (no injection) */
        mf_train_state *st = NULL;
        mf_train_result res;
        rc = mf_train_state_new(m->n_params, &st, &e);
        if (!rc) {
            memcpy(st->theta, theta0, m->n_params * sizeof(double));
            rc = mf_train(m, data, &c.s, st, NULL, &res, &e);
        }
        CHECK(rc == MF_OK, "%s reference run: %s", mf_optimizer_name(c.s.optimizer), e.msg);
        double ref[64];
        if (!rc) {
            memcpy(ref, st->theta, m->n_params * sizeof(double));
            c.theta_ref = ref;
            c.steps_ref = res.steps;
        }
        mf_train_state_free(st);
        if (rc) continue;
        char name[64];
        snprintf(name, sizeof name, "train %s", mf_optimizer_name(c.s.optimizer));
        long n = inject(name, op_train, &c);
        CHECK(n >= 8, "%s: %ld allocation requests, want >= 8 (state, work, buffers)", name, n);
    }
    mf_model_free(m);
    mf_data_free(data);
}

/* ------------------------------------------------------- files */

typedef struct {
    mf_train_state *ref;
    mf_model *m;
} file_ctx;

static int op_checkpoint(void *ctx, mf_err *e) {
    file_ctx *c = ctx;
    int rc = mf_checkpoint_write(tpath("ck.bin"), c->ref, 0xabcdef01u, e);
    if (rc) return rc;
    mf_train_state *s = (mf_train_state *)1;
    rc = mf_checkpoint_read(tpath("ck.bin"), 0xabcdef01u, c->ref->n_params, &s, e);
    if (rc) return s == NULL ? rc : -1;
    int same = s->step == c->ref->step && s->lr == c->ref->lr &&
               memcmp(s->theta, c->ref->theta, s->n_params * sizeof(double)) == 0;
    mf_train_state_free(s);
    return same ? MF_OK : -1;
}

static int op_params(void *ctx, mf_err *e) {
    file_ctx *c = ctx;
    int rc = mf_params_write(tpath("p.txt"), c->m, c->ref->theta, e);
    if (rc) return rc;
    double back[600];
    rc = mf_params_read(tpath("p.txt"), c->m->n_params, back, e);
    if (rc) return rc;
    if (memcmp(back, c->ref->theta, c->m->n_params * sizeof(double))) return -1;
    rc = mf_params_read_for(tpath("p.txt"), c->m, back, e); /* parses the header's model */
    if (rc) return rc;
    return memcmp(back, c->ref->theta, c->m->n_params * sizeof(double)) ? -1 : MF_OK;
}

TEST(checkpoints_and_params) {
    mf_err e;
    file_ctx c = {NULL, NULL};
    /* 600 parameters: 4.8 kB checkpoint, so the file reader grows its buffer */
    int rc = mf_model_parse("linear", 600, 0, &c.m, &e);
    if (!rc) rc = mf_train_state_new(600, &c.ref, &e);
    CHECK(rc == MF_OK, "setup: %s", e.msg);
    if (rc) {
        mf_model_free(c.m);
        return;
    }
    c.ref->step = 1234;
    c.ref->lr = 0.125;
    for (int i = 0; i < 600; i++) c.ref->theta[i] = (i % 2 ? -1.0 : 1.0) / (i + 3.0);
    long n = inject("checkpoint write+read", op_checkpoint, &c);
    CHECK(n >= 4, "checkpoint: %ld allocation requests, want >= 4", n);
    n = inject("params write+read", op_params, &c);
    CHECK(n >= 4, "params: %ld allocation requests, want >= 4", n);
    mf_train_state_free(c.ref);
    mf_model_free(c.m);
}

/* ------------------------------------------------------- svm */

typedef struct {
    const mf_data *data;
    mf_svm_norm norm;
    int status;
    double gamma;
} svm_ctx;

static int op_svm(void *ctx, mf_err *e) {
    svm_ctx *c = ctx;
    mf_svm_result *r = (mf_svm_result *)1;
    int rc = mf_svm_solve(c->data, c->norm, NULL, &r, e);
    if (rc) return r == NULL ? rc : -1;
    int same = r->status == c->status && r->gamma == c->gamma;
    mf_svm_result_free(r);
    return same ? MF_OK : -1;
}

static mf_data *data_of(int n, int d, const double *x, const double *y) {
    mf_data *D = NULL;
    mf_err e;
    if (mf_data_new(n, d, 0, &D, &e)) return NULL;
    memcpy(D->x, x, sizeof(double) * (size_t)n * d);
    memcpy(D->y, y, sizeof(double) * (size_t)n);
    return D;
}

TEST(svm_l2_and_l1) {
    /* sym4 (separable, gamma_svm = sqrt(5)/2) and a set with opposite
     * copies of one point (non-separable) */
    mf_data *D[2] = {NULL, NULL};
    mf_err e;
    int rc = mf_data_from_spec("builtin:sym4", NULL, &D[0], &e);
    CHECK(rc == MF_OK, "sym4: %s", e.msg);
    double x2[6] = {1, 2, -1, -2, 0.5, 0.1}, y2[3] = {1, 1, -1};
    D[1] = data_of(3, 2, x2, y2);
    for (int k = 0; k < 2; k++) {
        if (!D[k]) continue;
        for (int norm = 0; norm < 2; norm++) {
            svm_ctx c = {D[k], (mf_svm_norm)norm, 0, 0};
            mf_svm_result *r = NULL;
            rc = mf_svm_solve(D[k], c.norm, NULL, &r, &e);
            CHECK(rc == MF_OK, "svm reference: %s", e.msg);
            if (rc) continue;
            c.status = r->status;
            c.gamma = r->gamma;
            CHECK_EQ_INT(r->status, k == 0 ? MF_SVM_SOLVED : MF_SVM_NONSEPARABLE);
            if (k == 0 && norm == 0) CHECK_NEAR(r->gamma, sqrt(5.0) / 2, 1e-12);
            mf_svm_result_free(r);
            char name[64];
            snprintf(name, sizeof name, "svm %s %s", mf_svm_norm_name(norm),
                     k ? "nonseparable" : "sym4");
            long n = inject(name, op_svm, &c);
            CHECK(n >= 3, "%s: %ld allocation requests, want >= 3", name, n);
        }
        mf_data_free(D[k]);
    }
}

/* ------------------------------------------------------- analysis */

typedef struct {
    const mf_model *m;
    const mf_data *data;
    const double *theta;
    mf_analyze_settings s;
    mf_verdict verdict;
    double gamma, eps;
} analyze_ctx;

static int op_analyze(void *ctx, mf_err *e) {
    analyze_ctx *c = ctx;
    mf_analysis *a = (mf_analysis *)1;
    int rc = mf_analyze(c->m, c->data, c->theta, MF_LOSS_EXP, &c->s, &a, e);
    if (rc) return a == NULL ? rc : -1;
    int same = a->verdict == c->verdict && a->gamma == c->gamma && a->eps == c->eps;
    mf_analysis_free(a);
    return same ? MF_OK : -1;
}

typedef struct {
    int which; /* 0 directional, 1 local search, 2 maxmargin */
    const mf_model *m;
    const mf_data *data;
    const double *theta;
    double ref; /* best_inner / best_gain / best_gamma of the clean run */
} local_ctx;

static int op_local(void *ctx, mf_err *e) {
    local_ctx *c = ctx;
    const double radii[2] = {1e-2, 1e-1};
    double v = 0;
    int rc;
    if (c->which == 0) {
        mf_directional_result *r = (mf_directional_result *)1;
        rc = mf_directional_test(c->m, c->data, c->theta, 1e-3, 1e-6, 16, &r, e);
        if (rc) return r == NULL ? rc : -1;
        v = r->best_inner;
        mf_directional_result_free(r);
    } else if (c->which == 1) {
        mf_local_result *r = (mf_local_result *)1;
        rc = mf_local_search(c->m, c->data, c->theta, radii, 2, 2, 3, &r, e);
        if (rc) return r == NULL ? rc : -1;
        v = r->best_gain;
        mf_local_result_free(r);
    } else {
        mf_maxmargin_result *r = (mf_maxmargin_result *)1;
        rc = mf_maxmargin(c->m, c->data, 3, 5, 1e-6, &r, e);
        if (rc) return r == NULL ? rc : -1;
        v = r->best_gamma;
        mf_maxmargin_result_free(r);
    }
    if (isnan(c->ref)) {
        c->ref = v;
        return MF_OK;
    }
    return v == c->ref ? MF_OK : -1;
}

TEST(analysis_and_local_tests) {
    struct {
        const char *data, *model;
        double theta[18];
        mf_verdict verdict;
    } cs[] = {
        /* B: u = v = (1, 0), a KKT point that is not a local optimum */
        {"builtin:B", "diag:depth=2", {1, 0, 1, 0}, MF_VERDICT_NOT_LOCAL},
        /* D: w1 = (1, 0), w2 = (0, 1), v = (1, 1); pre-activations at 0 */
        {"builtin:D", "relu2:width=2,alpha=0", {1, 0, 0, 1, 1, 1}, MF_VERDICT_NOT_LOCAL},
        /* R1: W_l = e1 e1^T, the global optimum 3^{-3/2} */
        {"builtin:R1", "fc-linear:depth=3,width=3", {0}, MF_VERDICT_GLOBAL},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        mf_err e;
        mf_data *D = NULL;
        mf_model *m = NULL;
        int rc = mf_data_from_spec(cs[i].data, NULL, &D, &e);
        if (!rc) rc = mf_model_parse(cs[i].model, D->d, 0, &m, &e);
        CHECK(rc == MF_OK && m->n_params <= 18, "setup %s: %s", cs[i].data, e.msg);
        if (rc) {
            mf_data_free(D);
            continue;
        }
        if (i == 2)
            for (int l = 0; l < 3; l++) cs[i].theta[m->layers[l].offset] = 1.0;
        analyze_ctx c;
        memset(&c, 0, sizeof c);
        c.m = m;
        c.data = D;
        c.theta = cs[i].theta;
        mf_analyze_settings_default(&c.s);
        c.s.local_trials = 1;
        mf_analysis *a = NULL;
        rc = mf_analyze(m, D, c.theta, MF_LOSS_EXP, &c.s, &a, &e);
        CHECK(rc == MF_OK, "analyze reference %s: %s", cs[i].data, e.msg);
        if (!rc) {
            CHECK_EQ_INT(a->verdict, cs[i].verdict);
            c.verdict = a->verdict;
            c.gamma = a->gamma;
            c.eps = a->eps;
            mf_analysis_free(a);
            char name[64];
            snprintf(name, sizeof name, "analyze %s", cs[i].data);
            long n = inject(name, op_analyze, &c);
            CHECK(n >= 5, "%s: %ld allocation requests, want >= 5", name, n);
        }
        if (i == 1) { /* the local tests at D */
            const char *names[3] = {"directional test D", "local search D", "maxmargin D"};
            for (int w = 0; w < 3; w++) {
                local_ctx lc = {w, m, D, cs[i].theta, NAN};
                mf_err e2;
                rc = op_local(&lc, &e2); /* sets the reference */
                CHECK(rc == MF_OK, "%s reference: %s", names[w], e2.msg);
                if (rc) continue;
                if (w == 0) CHECK(lc.ref < 0, "directional test at D: best <theta, d> = %g, want < 0", lc.ref);
                long n = inject(names[w], op_local, &lc);
                CHECK(n >= 3, "%s: %ld allocation requests, want >= 3", names[w], n);
            }
        }
        mf_model_free(m);
        mf_data_free(D);
    }
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/mf-test-alloc.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(data_specs_and_files);
    RUN(models_and_workspaces);
    RUN(training_every_optimizer);
    RUN(checkpoints_and_params);
    RUN(svm_l2_and_l1);
    RUN(analysis_and_local_tests);
    const char *names[] = {"a.svm", "a.csv", "ck.bin", "p.txt"};
    for (int i = 0; i < 4; i++) remove(tpath(names[i]));
    rmdir(g_dir);
    return TEST_REPORT();
}

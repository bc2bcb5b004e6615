/*
 * test_train.c -- training against the known answers of docs/theory.md section 4,
 * the log-domain contract (runs to log10 Loss < -10000), agreement of the
 * optimizers with each other, resume bit-identity and the no-allocation
 * step loop.
 */
#include "marginflow.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 4096
static mf_metrics rows[MAX_ROWS];
static int n_rows;

static int collect(void *user, const mf_metrics *m) {
    (void)user;
    if (n_rows < MAX_ROWS) rows[n_rows++] = *m;
    return 0;
}

typedef struct {
    mf_train_result res;
    double theta[64];
    int rc;
} run_out;

/* Train model on data from init (n values) or, when init is NULL, from a
 * gauss init of the given scale and seed 1. Rows go to rows[]. */
static run_out train(const char *data_spec, const char *model_spec, const double *init,
                     double init_scale, const mf_train_settings *s) {
    run_out r;
    memset(&r, 0, sizeof r);
    mf_data *d = NULL;
    mf_model *m = NULL;
    mf_train_state *st = NULL;
    mf_err e = {0, ""};
    n_rows = 0;
    r.rc = mf_data_from_spec(data_spec, NULL, &d, &e);
    if (!r.rc) r.rc = mf_model_parse(model_spec, d->d, d->num_classes, &m, &e);
    if (!r.rc) r.rc = mf_train_state_new(m->n_params, &st, &e);
    if (!r.rc) {
        if (init) {
            memcpy(st->theta, init, sizeof(double) * m->n_params);
        } else {
            mf_rng rng;
            mf_rng_seed(&rng, 1);
            r.rc = mf_model_init(m, "gauss", init_scale, &rng, st->theta, &e);
        }
    }
    mf_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_metrics = collect;
    if (!r.rc) r.rc = mf_train(m, d, s, st, &cb, &r.res, &e);
    if (r.rc) fprintf(stderr, "train %s %s: %s\n", data_spec, model_spec, e.msg);
    if (st && st->n_params <= 64) memcpy(r.theta, st->theta, sizeof(double) * st->n_params);
    mf_train_state_free(st);
    mf_model_free(m);
    mf_data_free(d);
    return r;
}

static int rows_finite(void) {
    for (int i = 0; i < n_rows; i++) {
        const mf_metrics *m = &rows[i];
        double v[] = {m->log10_loss, m->norm, m->q_min, m->normalized_margin, m->smoothed_margin,
                      m->layer_margin, m->lr, m->train_error, m->balancedness};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
            if (!isfinite(v[k])) return 0;
        if (i > 0 && !isfinite(m->time_log)) return 0;
    }
    return n_rows > 0;
}

static void settings(mf_train_settings *s, mf_loss_kind loss, mf_optimizer_kind opt, double lr) {
    mf_train_settings_default(s);
    s->loss = loss;
    s->optimizer = opt;
    s->lr = lr;
}

static const double B_INIT[4] = {1, 1, 1, -1};

/* docs/theory.md s.4 case B: the limit is u = v = (1, 0)/.., gamma = 0.5, reached to
 * 1e-6 with log10 Loss below -10000 and no non-finite value anywhere. */
TEST(case_B_to_minus_10000) {
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_SCALED, 0.1);
    s.max_steps = 0;
    s.until_log10_loss = -10000;
    run_out r = train("builtin:B", "diag:depth=2", B_INIT, 0, &s);
    CHECK_EQ_INT(r.rc, MF_OK);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_LOSS_TARGET);
    CHECK(r.res.final.log10_loss < -10000, "log10 loss %g", r.res.final.log10_loss);
    CHECK_NEAR(r.res.final.normalized_margin, 0.5, 1e-6);
    CHECK(rows_finite(), "a metrics row has a non-finite value");
    /* the flow time (sum of lr / Loss) is far beyond double range and still
     * finite in logs: the last steps divide by losses near 1e-8000 */
    CHECK(r.res.final.time_log / log(10.0) > 5000, "log10 t = %g", r.res.final.time_log / log(10.0));
    double ex = r.res.final.normalized_margin;
    /* logistic reaches the same limit */
    settings(&s, MF_LOSS_LOGISTIC, MF_OPT_SCALED, 0.1);
    s.max_steps = 0;
    s.until_log10_loss = -10000;
    r = train("builtin:B", "diag:depth=2", B_INIT, 0, &s);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_LOSS_TARGET);
    CHECK_NEAR(r.res.final.normalized_margin, ex, 1e-6);
    CHECK(rows_finite(), "a logistic metrics row has a non-finite value");
}

/* The same limit by every full-batch optimizer. */
TEST(case_B_every_optimizer) {
    mf_optimizer_kind opts[3] = {MF_OPT_LYU_LI, MF_OPT_FLOW, MF_OPT_GD};
    for (int k = 0; k < 3; k++) {
        mf_train_settings s;
        settings(&s, MF_LOSS_EXP, opts[k], 0.1);
        s.max_steps = opts[k] == MF_OPT_GD ? 20000 : 0;
        s.until_log10_loss = -300;
        run_out r = train("builtin:B", "diag:depth=2", B_INIT, 0, &s);
        CHECK_EQ_INT(r.rc, MF_OK);
        if (opts[k] == MF_OPT_GD) {
            /* constant-step GD: the loss falls only like 1/t; the margin
             * still approaches 0.5 from below, slowly */
            CHECK(r.res.final.normalized_margin > 0.45 && r.res.final.normalized_margin < 0.5,
                  "gd margin %g", r.res.final.normalized_margin);
        } else {
            CHECK_EQ_INT(r.res.outcome, MF_OUT_LOSS_TARGET);
            CHECK_NEAR(r.res.final.normalized_margin, 0.5, 1e-6);
        }
        CHECK(rows_finite(), "%s: non-finite row", mf_optimizer_name(opts[k]));
    }
}

/* Case C: depth-3 diagonal from (0.5, 0.5) per layer: gamma = 2 / 6^{3/2}. */
TEST(case_C_symmetric_init) {
    double init[6] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_FLOW, 0.1);
    s.max_steps = 0;
    s.until_log10_loss = -1000;
    run_out r = train("builtin:C", "diag:depth=3", init, 0, &s);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_LOSS_TARGET);
    CHECK_NEAR(r.res.final.normalized_margin, 0.136083, 1e-6);
}

/* Case D: two-layer ReLU from the init of docs/theory.md s.4 converges to gamma = 0.25. */
TEST(case_D) {
    double init[6] = {1, -1, -1, 1, 1, 1}; /* W = [[1,-1],[-1,1]], a = (1, 1) */
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_SCALED, 0.1);
    s.max_steps = 0;
    s.until_log10_loss = -5000;
    run_out r = train("builtin:D", "relu2:width=2,alpha=0", init, 0, &s);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_LOSS_TARGET);
    CHECK_NEAR(r.res.final.normalized_margin, 0.25, 1e-4);
}

/* R1: fully-connected linear depth 3 width 3 reaches the global 3^{-3/2}. */
TEST(case_R1) {
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_FLOW, 0.1);
    s.max_steps = 0;
    s.until_log10_loss = -3000;
    run_out r = train("builtin:R1", "fc-linear:depth=3,width=3", NULL, 0.05, &s);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_LOSS_TARGET);
    CHECK_NEAR(r.res.final.normalized_margin, pow(3.0, -1.5), 1e-4);
}

/* G: non-homogeneous skip-linear; gamma = y Phi / ||theta||^2 starts at 0.8
 * and decreases strictly at every logged step, staying above 0.5. */
TEST(case_G_decreasing) {
    double init[2] = {2, 1};
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_FLOW, 0.01);
    s.tol = 1e-9;
    s.max_steps = 0;
    s.until_log10_loss = -200;
    run_out r = train("builtin:G", "skip-linear", init, 0, &s);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_LOSS_TARGET);
    CHECK(n_rows > 20, "only %d rows", n_rows);
    CHECK_NEAR(rows[0].normalized_margin, 0.8, 1e-15);
    int bad = 0;
    for (int i = 1; i < n_rows; i++)
        if (!(rows[i].normalized_margin < rows[i - 1].normalized_margin)) bad++;
    CHECK_EQ_INT(bad, 0);
    CHECK(r.res.final.normalized_margin > 0.5 && r.res.final.normalized_margin < 0.6,
          "final %g", r.res.final.normalized_margin);
    /* the conserved quantity w1 - 1 - w2 of docs/theory.md s.4 case G stays 0 */
    CHECK_NEAR(r.theta[0] - 1 - r.theta[1], 0, 1e-6 * fabs(r.theta[0]));
}

/* Gradient flow time: the integrator's t and loss-scaled GD's t (the left
 * Riemann sum of lr / Loss, biased low by about r lr / 2 where r is the
 * decay rate of log Loss in rescaled time) approximate the same flow; at
 * equal loss they agree to O(lr). Also t increases, and the adaptive flow
 * needs far fewer steps than small-step GD. */
TEST(flow_time_matches_small_step_gd) {
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_FLOW, 0.01);
    s.tol = 1e-10;
    s.max_steps = 0;
    s.until_log10_loss = -50;
    run_out f = train("builtin:D", "relu2:width=2,alpha=0", (const double[]){1, -1, -1, 1, 1, 1}, 0, &s);
    CHECK_EQ_INT(f.res.outcome, MF_OUT_LOSS_TARGET);
    int mono = 1;
    for (int i = 2; i < n_rows; i++) mono &= rows[i].time_log > rows[i - 1].time_log;
    CHECK(mono, "flow time must increase");
    settings(&s, MF_LOSS_EXP, MF_OPT_SCALED, 1e-4);
    s.max_steps = 0;
    s.until_log10_loss = -50;
    run_out g = train("builtin:D", "relu2:width=2,alpha=0", (const double[]){1, -1, -1, 1, 1, 1}, 0, &s);
    /* compare log t at (nearly) the same loss, corrected to first order in
     * the loss overshoot: log t ~ -log Loss near the end */
    double lf = f.res.final.time_log + f.res.final.log10_loss * log(10.0);
    double lg = g.res.final.time_log + g.res.final.log10_loss * log(10.0);
    CHECK_NEAR(lf, lg, 2e-2);
    CHECK(f.res.steps < g.res.steps / 10, "flow used %lld steps, gd %lld", f.res.steps, g.res.steps);
}

/* [LL20] Theorem: after Loss < ell(0), the smoothed margin never decreases
 * along gradient flow. Check every logged step of a flow run on a smooth
 * homogeneous net (depth-2 linear), exp and logistic. (Two-layer ReLU nets:
 * the explicit integrator has to take tiny steps where the flow slides
 * along a kink; the reproduce claims cover them with longer budgets.) */
TEST(smoothed_margin_monotone_along_flow) {
    mf_loss_kind losses[2] = {MF_LOSS_EXP, MF_LOSS_LOGISTIC};
    for (int k = 0; k < 2; k++) {
        mf_train_settings s;
        settings(&s, losses[k], MF_OPT_FLOW, 0.01);
        s.tol = 1e-8;
        s.max_steps = 3000;
        s.until_log10_loss = -30;
        run_out r = train("gauss:n=40,d=5,margin=0.2,seed=2", "fc-linear:depth=2,width=4", NULL, 0.5, &s);
        CHECK_EQ_INT(r.rc, MF_OK);
        int bad = 0, started = 0;
        double lim = mf_loss_log_ell0(losses[k]) / log(10.0);
        for (int i = 1; i < n_rows; i++) {
            if (rows[i - 1].log10_loss >= lim) continue;
            started = 1;
            if (rows[i].smoothed_margin < rows[i - 1].smoothed_margin - 1e-9) bad++;
        }
        CHECK(started, "%s: loss never fell below ell(0)", mf_loss_name(losses[k]));
        CHECK_EQ_INT(bad, 0);
        CHECK_NEAR(r.res.final.train_error, 0, 0);
    }
}

/* Lyu-Li's schedule grows alpha and rolls back failures. */
TEST(lyu_li_schedule) {
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_LYU_LI, 0.1);
    s.max_steps = 60;
    run_out r = train("gauss:n=30,d=4,margin=0.1,seed=5", "relu2:width=6,alpha=0", NULL, 0.3, &s);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_STEP_BUDGET);
    CHECK_EQ_INT(r.res.steps, 60);
    CHECK(r.res.rejected > 0, "expected some rollbacks, got %lld", r.res.rejected);
    /* lr = 0.1 * r_u^{accepted} / r_d^{rejected} */
    double want = 0.1 * pow(2.0, 60 / 5.0) / pow(2.0, r.res.rejected / 10.0);
    CHECK_NEAR(r.res.final.lr / want, 1.0, 1e-9);
    /* every accepted step decreased the loss */
    int bad = 0;
    for (int i = 1; i < n_rows; i++) bad += rows[i].log10_loss >= rows[i - 1].log10_loss;
    CHECK_EQ_INT(bad, 0);
}

/* The snapshot callback sees exactly the parameters of each logged row:
 * recomputing the normalized margin from them gives the row's value. */
static mf_model *snap_model;
static mf_data *snap_data;
static mf_work *snap_work;
static int snap_bad, snap_calls;
static int check_snapshot(void *user, const mf_metrics *m, const double *theta) {
    (void)user;
    mf_metrics r;
    snap_calls++;
    if (mf_metrics_eval(snap_model, snap_work, snap_data, MF_LOSS_EXP, theta, NULL, &r, NULL) != MF_OK ||
        r.normalized_margin != m->normalized_margin || r.norm != m->norm)
        snap_bad++;
    return 0;
}

TEST(snapshot_callback) {
    mf_data_from_spec("builtin:sym4", NULL, &snap_data, NULL);
    mf_model_parse("relu2:width=4,alpha=0.5", 2, 0, &snap_model, NULL);
    mf_train_state *st = NULL;
    mf_train_state_new(snap_model->n_params, &st, NULL);
    mf_rng rng;
    mf_rng_seed(&rng, 2);
    mf_model_init(snap_model, "gauss", 0.1, &rng, st->theta, NULL);
    mf_work_new(snap_model, snap_data->n, &snap_work, NULL);
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_LYU_LI, 0.1);
    s.max_steps = 500;
    mf_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.on_metrics = collect;
    cb.on_snapshot = check_snapshot;
    n_rows = 0;
    mf_train_result res;
    CHECK_EQ_INT(mf_train(snap_model, snap_data, &s, st, &cb, &res, NULL), MF_OK);
    CHECK_EQ_INT(snap_calls, n_rows);
    CHECK_EQ_INT(snap_bad, 0);
    mf_work_free(snap_work);
    mf_train_state_free(st);
    mf_model_free(snap_model);
    mf_data_free(snap_data);
}

TEST(sgd_trains) {
    mf_train_settings s;
    settings(&s, MF_LOSS_LOGISTIC, MF_OPT_SGD, 0.5);
    s.batch = 10;
    s.max_steps = 2000;
    run_out r = train("gauss:n=100,d=5,margin=0.2,seed=4", "linear", NULL, 0.01, &s);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_STEP_BUDGET);
    CHECK_NEAR(r.res.final.train_error, 0, 0);
    CHECK(rows_finite(), "non-finite sgd row");
}

/* A run split at a checkpoint continues bit for bit. */
static mf_train_state *saved;
static int save_state(void *user, const mf_train_state *st) {
    (void)user;
    if (st->step == 100 && !saved && mf_train_state_new(st->n_params, &saved, NULL) == MF_OK) {
        double *th = saved->theta;
        *saved = *st;
        saved->theta = th;
        memcpy(th, st->theta, sizeof(double) * st->n_params);
    }
    return 0;
}

TEST(resume_bit_identical) {
    mf_optimizer_kind opts[4] = {MF_OPT_SCALED, MF_OPT_LYU_LI, MF_OPT_FLOW, MF_OPT_SGD};
    for (int k = 0; k < 4; k++) {
        mf_data *d = NULL;
        mf_model *m = NULL;
        mf_train_state *st = NULL;
        mf_train_settings s;
        settings(&s, MF_LOSS_LOGISTIC, opts[k], 0.05);
        s.max_steps = 300;
        s.checkpoint_every = 50;
        s.batch = 7;
        mf_data_from_spec("gauss:n=30,d=4,margin=0.1,seed=9", NULL, &d, NULL);
        mf_model_parse("relu2:width=5,alpha=0.2", d->d, 0, &m, NULL);
        mf_train_state_new(m->n_params, &st, NULL);
        mf_rng rng;
        mf_rng_seed(&rng, 3);
        mf_model_init(m, "gauss", 0.5, &rng, st->theta, NULL);
        mf_callbacks cb;
        memset(&cb, 0, sizeof cb);
        cb.on_metrics = collect;
        cb.on_checkpoint = save_state;
        saved = NULL;
        n_rows = 0;
        mf_train_result full, part;
        mf_train(m, d, &s, st, &cb, &full, NULL);
        static mf_metrics full_rows[MAX_ROWS];
        int nf = n_rows;
        memcpy(full_rows, rows, sizeof(mf_metrics) * nf);
        CHECK(saved != NULL, "no checkpoint at step 100");
        if (!saved) continue;
        n_rows = 0;
        cb.on_checkpoint = NULL;
        mf_train(m, d, &s, saved, &cb, &part, NULL);
        /* the resumed rows are the tail of the full run's rows */
        int off = nf - n_rows;
        CHECK(off > 0 && full_rows[off].step == rows[0].step, "resumed rows start at %lld",
              n_rows ? rows[0].step : -1);
        CHECK(memcmp(full_rows + off, rows, sizeof(mf_metrics) * n_rows) == 0,
              "%s: resumed metrics differ", mf_optimizer_name(opts[k]));
        CHECK(memcmp(st->theta, saved->theta, sizeof(double) * m->n_params) == 0,
              "%s: resumed theta differs", mf_optimizer_name(opts[k]));
        mf_train_state_free(saved);
        mf_train_state_free(st);
        mf_model_free(m);
        mf_data_free(d);
    }
}

/* The step loop allocates nothing: a run of 10 steps and one of 2000 make
 * the same number of allocations. */
static long n_alloc;
static void *count_malloc(size_t n) {
    n_alloc++;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n) {
    n_alloc++;
    return realloc(p, n);
}

TEST(no_allocation_per_step) {
    mf_optimizer_kind opts[5] = {MF_OPT_GD, MF_OPT_SCALED, MF_OPT_LYU_LI, MF_OPT_FLOW, MF_OPT_SGD};
    for (int k = 0; k < 5; k++) {
        long counts[2];
        long long steps[2] = {10, 2000};
        for (int j = 0; j < 2; j++) {
            mf_train_settings s;
            settings(&s, MF_LOSS_EXP, opts[k], 0.01);
            s.max_steps = steps[j];
            s.log_points = 0;
            mf_set_allocator(count_malloc, count_realloc, free);
            n_alloc = 0;
            train("gauss:n=20,d=3,margin=0.1,seed=1", "mlp:widths=4/4,alpha=0.1", NULL, 0.5, &s);
            counts[j] = n_alloc;
            mf_set_allocator(NULL, NULL, NULL);
        }
        CHECK(counts[0] == counts[1], "%s: %ld allocations for 10 steps, %ld for 2000",
              mf_optimizer_name(opts[k]), counts[0], counts[1]);
    }
}

TEST(nonfinite_stops_at_last_good_state) {
    mf_train_settings s;
    settings(&s, MF_LOSS_EXP, MF_OPT_GD, 1e308); /* the first step overflows */
    s.max_steps = 100;
    double init[2] = {-1, 0.5};
    run_out r = train("builtin:R1", "linear", init, 0, &s);
    CHECK_EQ_INT(r.rc, MF_OK);
    CHECK_EQ_INT(r.res.outcome, MF_OUT_NONFINITE);
    CHECK(isfinite(r.theta[0]) && isfinite(r.theta[1]), "theta %g %g", r.theta[0], r.theta[1]);
}

TEST(settings_validator) {
    mf_train_settings s;
    mf_train_settings_default(&s);
    CHECK(mf_train_settings_validate(&s) == NULL, "defaults must be valid");
    s.lr = -1;
    const char *why = mf_train_settings_validate(&s);
    CHECK(why && strncmp(why, "lr:", 3) == 0, "got %s", why ? why : "NULL");
    mf_train_settings_default(&s);
    s.max_steps = 0;
    why = mf_train_settings_validate(&s);
    CHECK(why && strstr(why, "max_steps"), "got %s", why ? why : "NULL");
    mf_train_settings_default(&s);
    s.tol = 2;
    why = mf_train_settings_validate(&s);
    CHECK(why && strncmp(why, "tol:", 4) == 0, "got %s", why ? why : "NULL");
    /* log schedule: step 0, 1, 2 logged, size ~ log_points */
    mf_train_settings_default(&s);
    s.max_steps = 100000;
    int count = 0;
    for (long long k = 0; k <= s.max_steps; k++) count += mf_is_log_step(&s, k);
    CHECK(count > 100 && count <= 201, "%d log steps", count);
    CHECK(mf_is_log_step(&s, 0) && mf_is_log_step(&s, 1) && mf_is_log_step(&s, 100000),
          "endpoints must be logged");
}

int main(void) {
    RUN(case_B_to_minus_10000);
    RUN(case_B_every_optimizer);
    RUN(case_C_symmetric_init);
    RUN(case_D);
    RUN(case_R1);
    RUN(case_G_decreasing);
    RUN(flow_time_matches_small_step_gd);
    RUN(smoothed_margin_monotone_along_flow);
    RUN(lyu_li_schedule);
    RUN(snapshot_callback);
    RUN(sgd_trains);
    RUN(resume_bit_identical);
    RUN(no_allocation_per_step);
    RUN(nonfinite_stops_at_last_good_state);
    RUN(settings_validator);
    return TEST_REPORT();
}

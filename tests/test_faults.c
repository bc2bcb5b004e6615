/*
 * test_faults.c -- numerical faults during training (issue 6): a loss or
 * gradient that becomes non-finite mid-run must be detected in the step
 * where it happens, never reach a logged row, and end the run cleanly.
 *
 * Each optimizer is driven into overflow on purpose:
 *   gd, sgd  linear model on the non-separable set {(1, +1), (1, -1)} with
 *            lr = 1: the exp-loss iteration w <- w - lr 2 sinh(w) oscillates
 *            with exploding amplitude and overflows after a few steps;
 *   scaled   depth-3 diagonal net on builtin:B with lr = 1: ||G|| grows like
 *            ||theta||^2, so the norm explodes in finitely many steps;
 *   lyu-li   linear model on builtin:B with lr_up = 10 and max_rel_step off:
 *            every step lowers the loss, so alpha grows 10x per step until
 *            theta overflows;
 *   flow     linear model on builtin:B: G is constant, the embedded error is
 *            ~0 and h grows 4x per step until the error estimate (a sum of
 *            squares of h-sized terms) overflows to inf near h ~ 1e154.
 * Contract checked:
 *   gd, scaled, sgd: outcome MF_OUT_NONFINITE after >= 2 good steps, theta
 *     finite and bit-for-bit equal to a run stopped by max_steps at the
 *     last good step, every logged row finite, an error log line naming the
 *     step.
 *   lyu-li, flow: the non-finite attempts are rolled back (rejected > 0) and
 *     the run goes on (>= 5 accepted steps after the first rejection) with
 *     finite theta and rows; no error is logged.
 */
#include "marginflow.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int rows, bad_rows, errors;
    char last_error[256];
    size_t n_params;
    double growth;          /* lr factor of an accepted step (lyu-li: lr_up, flow: 4) */
    double prev_lr;
    long long first_reject; /* first row whose lr grew less than growth: -1 none */
    int rows_after;         /* rows after first_reject */
} watch;

static int on_metrics(void *u, const mf_metrics *m) {
    watch *w = u;
    w->rows++;
    /* the norm too: mf_param_norm (BLAS dnrm2) stays finite past 1e154 */
    if (!isfinite(m->log10_loss) || !isfinite(m->q_min) || !isfinite(m->norm)) w->bad_rows++;
    if (w->growth > 0 && w->rows > 1) {
        if (w->first_reject >= 0)
            w->rows_after++;
        else if (m->lr < w->prev_lr * w->growth * (1 - 1e-12))
            w->first_reject = m->step;
    }
    w->prev_lr = m->lr;
    return 0;
}

static int on_snapshot(void *u, const mf_metrics *m, const double *theta) {
    watch *w = u;
    (void)m;
    for (size_t i = 0; i < w->n_params; i++)
        if (!isfinite(theta[i])) w->bad_rows++;
    return 0;
}

static void on_log(void *u, int level, const char *msg) {
    watch *w = u;
    if (level == MF_LOG_ERROR) {
        w->errors++;
        snprintf(w->last_error, sizeof w->last_error, "%s", msg);
    }
}

typedef struct {
    const char *data, *model;
    mf_optimizer_kind opt;
    double lr, lr_up;
    long long max_steps;
} fault_case;

static mf_data *make_data(const char *spec) {
    mf_data *D = NULL;
    mf_err e;
    if (strcmp(spec, "nonsep") == 0) {
        if (mf_data_new(2, 1, 0, &D, &e)) return NULL;
        D->x[0] = D->x[1] = 1.0;
        D->y[0] = 1.0;
        D->y[1] = -1.0;
        return D;
    }
    return mf_data_from_spec(spec, NULL, &D, &e) == MF_OK ? D : NULL;
}

/* Train case c from theta_i = 1 + 0.1 i for max_steps (overriding c's when
 * > 0); theta_out gets the final parameters. */
static int train(const fault_case *c, const mf_model *m, const mf_data *D, long long max_steps,
                 double *theta_out, mf_train_result *res, watch *w) {
    mf_train_state *st = NULL;
    mf_err e;
    int rc = mf_train_state_new(m->n_params, &st, &e);
    if (rc) return rc;
    for (size_t i = 0; i < m->n_params; i++) st->theta[i] = 1.0 + 0.1 * (double)i;
    mf_train_settings s;
    mf_train_settings_default(&s);
    s.optimizer = c->opt;
    s.lr = c->lr;
    s.batch = 1;
    s.max_steps = max_steps > 0 ? max_steps : c->max_steps;
    s.log_horizon = 1000;
    s.log_points = 3000; /* every step is a log step */
    if (c->lr_up > 0) {
        s.lr_up = c->lr_up;
        s.max_rel_step = 0;
    }
    mf_callbacks cb;
    memset(&cb, 0, sizeof cb);
    memset(w, 0, sizeof *w);
    w->n_params = m->n_params;
    w->first_reject = -1;
    w->growth = c->opt == MF_OPT_LYU_LI ? s.lr_up : c->opt == MF_OPT_FLOW ? 4.0 : 0.0;
    cb.user = w;
    cb.on_metrics = on_metrics;
    cb.on_snapshot = on_snapshot;
    cb.log = on_log;
    rc = mf_train(m, D, &s, st, &cb, res, &e);
    if (rc) fprintf(stderr, "mf_train: %s\n", e.msg);
    memcpy(theta_out, st->theta, m->n_params * sizeof(double));
    mf_train_state_free(st);
    return rc;
}

static int all_finite(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

static void run_case(const fault_case *c, int rolls_back) {
    mf_data *D = make_data(c->data);
    mf_model *m = NULL;
    mf_err e;
    CHECK(D != NULL, "data %s", c->data);
    if (!D) return;
    int rc = mf_model_parse(c->model, D->d, 0, &m, &e);
    CHECK(rc == MF_OK, "model %s: %s", c->model, rc ? e.msg : "");
    if (rc) {
        mf_data_free(D);
        return;
    }
    size_t P = m->n_params;
    double th[16], th2[16];
    mf_train_result res, res2;
    watch w, w2;
    const char *name = mf_optimizer_name(c->opt);
    rc = train(c, m, D, 0, th, &res, &w);
    CHECK(rc == MF_OK, "%s: mf_train returned %d", name, rc);
    CHECK(all_finite(th, P), "%s: final theta is not finite", name);
    CHECK(w.bad_rows == 0, "%s: %d logged rows/snapshots with non-finite values", name, w.bad_rows);
    CHECK(isfinite(res.final.log10_loss), "%s: final log10 loss %g", name, res.final.log10_loss);
    if (rolls_back) {
        /* lyu-li ends stalled: near DBL_MAX alpha G falls below an ulp of theta */
        CHECK(res.outcome == MF_OUT_STEP_BUDGET || res.outcome == MF_OUT_STALLED,
              "%s: outcome %s, want step-budget or stalled", name, mf_outcome_name(res.outcome));
        CHECK(res.rejected > 0, "%s: no rejected step (the overflow was never reached?)", name);
        CHECK(w.first_reject > 0 && w.rows_after >= 5,
              "%s: first rejection at step %lld, %d accepted steps after it (want >= 5)", name,
              w.first_reject, w.rows_after);
        CHECK(fabs(th[0]) > 1e150, "%s: |theta_0| = %g: the run never came near overflow", name,
              fabs(th[0]));
        CHECK(w.errors == 0, "%s: %d error log lines (%s)", name, w.errors, w.last_error);
        printf("  %-7s overflow rolled back: first rejection at step %lld, %d steps after it, "
               "%lld rejected attempts, outcome %s, |theta_0| = %.3g\n", name, w.first_reject,
               w.rows_after, res.rejected, mf_outcome_name(res.outcome), fabs(th[0]));
    } else {
        CHECK(res.outcome == MF_OUT_NONFINITE, "%s: outcome %s, want non-finite", name,
              mf_outcome_name(res.outcome));
        CHECK(res.steps >= 2 && res.steps < c->max_steps, "%s: stopped after %lld steps", name,
              res.steps);
        CHECK(w.errors == 1, "%s: %d error log lines, want 1", name, w.errors);
        char want[64];
        snprintf(want, sizeof want, "in step %lld;", res.steps + 1);
        CHECK(strstr(w.last_error, want) != NULL && strstr(w.last_error, "last good state"),
              "%s: log '%s' should name the step ('%s') and the last good state", name,
              w.last_error, want);
        /* the same run stopped by its step budget at the last good step */
        rc = train(c, m, D, res.steps, th2, &res2, &w2);
        CHECK(rc == MF_OK && res2.outcome == MF_OUT_STEP_BUDGET && res2.steps == res.steps,
              "%s: reference run: rc %d outcome %s steps %lld", name, rc,
              mf_outcome_name(res2.outcome), res2.steps);
        CHECK(memcmp(th, th2, P * sizeof(double)) == 0,
              "%s: theta after the fault differs from the run stopped at step %lld "
              "(theta_0 %.17g vs %.17g)", name, res.steps, th[0], th2[0]);
        CHECK(res.final.log10_loss == res2.final.log10_loss && res.final.step == res2.final.step,
              "%s: final row log10 loss %.17g at step %lld, reference %.17g at %lld", name,
              res.final.log10_loss, res.final.step, res2.final.log10_loss, res2.final.step);
        printf("  %-7s non-finite in step %lld, stopped at step %lld, theta_0 = %.6g (= max_steps "
               "run)\n", name, res.steps + 1, res.steps, th[0]);
    }
    mf_model_free(m);
    mf_data_free(D);
}

TEST(gd_stops_at_last_good_state) {
    fault_case c = {"nonsep", "linear", MF_OPT_GD, 1.0, 0, 200};
    run_case(&c, 0);
}

TEST(scaled_stops_at_last_good_state) {
    fault_case c = {"builtin:B", "diag:depth=3", MF_OPT_SCALED, 1.0, 0, 200};
    run_case(&c, 0);
}

TEST(sgd_stops_at_last_good_state) {
    fault_case c = {"nonsep", "linear", MF_OPT_SGD, 1.0, 0, 200};
    run_case(&c, 0);
}

TEST(lyu_li_rolls_back_and_continues) {
    fault_case c = {"builtin:B", "linear", MF_OPT_LYU_LI, 0.1, 10.0, 600};
    run_case(&c, 1);
}

TEST(flow_rolls_back_and_continues) {
    fault_case c = {"builtin:B", "linear", MF_OPT_FLOW, 0.1, 0, 900};
    run_case(&c, 1);
}

/* Non-finite data never reaches training: the readers refuse it. */
TEST(nonfinite_data_rejected) {
    char path[] = "/tmp/mf-test-faults-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    fputs("+1 1:0.5 2:1\n-1 1:nan 2:1\n", f);
    fclose(f);
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(path, "libsvm", 0, &D, &e);
    CHECK(rc == MF_ERR_PARSE && D == NULL, "libsvm with nan: rc %d", rc);
    CHECK(strstr(e.msg, ":2:") != NULL, "message '%s' names line 2", e.msg);
    remove(path);
}

int main(void) {
    RUN(gd_stops_at_last_good_state);
    RUN(scaled_stops_at_last_good_state);
    RUN(sgd_stops_at_last_good_state);
    RUN(lyu_li_rolls_back_and_continues);
    RUN(flow_rolls_back_and_continues);
    RUN(nonfinite_data_rejected);
    return TEST_REPORT();
}

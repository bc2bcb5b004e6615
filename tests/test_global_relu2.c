/*
 * test_global_relu2.c -- the certified global optimum of bias-free two-layer
 * (leaky) ReLU nets (mf_global_relu2, src/global_relu2.c).
 *
 * Known answers (docs/theory.md): the symmetric set sym4 has gamma* =
 * (1 + alpha) gamma_svm / 4 with gamma_svm = sqrt(5)/2 (0.41926 at alpha
 * 0.5); case D has gamma* = 1/(2 sqrt 2) for ReLU; data on one ray is a
 * linear problem. Each answer must be bracketed by the certified bounds to
 * 1e-9 with a gap <= 1e-9. The certificate is re-checked here independently
 * of the library: the primal network by mf_model_forward of a model parsed
 * from the result's spec, the dual lambda by a dense scan of the unit
 * circle. Also: never below the best of many SLSQP starts (mf_maxmargin);
 * the primal network written as a params file and trained from keeps its
 * margin and cannot exceed gamma_upper; enumerated and sampled patterns in
 * d = 3 agree; bad inputs give the exact errors; allocation failures are
 * absorbed or reported as MF_ERR_NOMEM without leaks.
 */
#include "marginflow.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mf_data *data_of(const char *spec) {
    mf_data *d = NULL;
    mf_err e = {0, ""};
    if (mf_data_from_spec(spec, NULL, &d, &e)) fprintf(stderr, "data %s: %s\n", spec, e.msg);
    return d;
}

static mf_model *model_of(const char *spec, int d) {
    mf_model *m = NULL;
    mf_err e = {0, ""};
    if (mf_model_parse(spec, d, 0, &m, &e)) fprintf(stderr, "model %s: %s\n", spec, e.msg);
    return m;
}

/* The result on (data spec, model spec) with default settings (or sample). */
static mf_global_result *solve(const char *ds, const char *ms, int sample, int *rc, mf_err *e) {
    mf_data *d = data_of(ds);
    mf_model *m = d ? model_of(ms, d->d) : NULL;
    mf_global_settings s;
    mf_global_settings_default(&s);
    s.sample = sample;
    mf_global_result *r = NULL;
    *rc = m ? mf_global_relu2(m, d, &s, &r, e) : -1;
    mf_model_free(m);
    mf_data_free(d);
    return r;
}

/* gamma of theta on data by the library's forward pass, for the model
 * parsed from spec (independent of the result's own numbers). */
static double gamma_of(const mf_data *d, const char *spec, const double *theta) {
    mf_model *m = model_of(spec, d->d);
    mf_work *w = NULL;
    double *out = malloc(sizeof(double) * (size_t)d->n), g = NAN;
    if (m && out && !mf_work_new(m, d->n, &w, NULL)) {
        mf_model_forward(m, w, theta, d->x, d->n, out);
        double nn = mf_param_norm(m, theta);
        g = mf_margins(d, out, 1, NULL) / (nn * nn);
    }
    mf_work_free(w);
    mf_model_free(m);
    free(out);
    return g;
}

/* max over 2 * 10^5 directions u of the circle of |sum_n lambda_n y_n
 * sigma(<x_n, u>)| (2-d data): an independent look at rho(lambda). */
static double rho_scan(const mf_data *d, const double *lambda, double alpha) {
    double best = 0.0;
    const int K = 200000;
    for (int t = 0; t < K; t++) {
        double a = 2 * 3.14159265358979323846 * t / K, u[2] = {cos(a), sin(a)}, f = 0.0;
        for (int k = 0; k < d->n; k++) {
            double z = d->x[2 * k] * u[0] + d->x[2 * k + 1] * u[1];
            f += lambda[k] * d->y[k] * (z > 0 ? z : alpha * z);
        }
        if (fabs(f) > best) best = fabs(f);
    }
    return best;
}

/* The checks every certified 2-d answer with a known value passes. */
static void check_known(const char *ds, const char *ms, double want) {
    int rc;
    mf_err e = {0, ""};
    mf_global_result *r = solve(ds, ms, 0, &rc, &e);
    CHECK(rc == MF_OK && r, "%s %s: rc %d: %s", ds, ms, rc, e.msg);
    if (!r) return;
    mf_data *d = data_of(ds);
    CHECK_NEAR(r->gamma_lower, want, 1e-9);
    CHECK_NEAR(r->gamma_upper, want, 1e-9);
    CHECK(r->gap <= 1e-9 && r->gap >= -1e-15, "%s: gap %g", ds, r->gap);
    CHECK(r->gamma_lower <= want * (1 + 1e-12) && r->gamma_upper >= want * (1 - 1e-12),
          "%s: [%.17g, %.17g] does not bracket %.17g", ds, r->gamma_lower, r->gamma_upper, want);
    CHECK_EQ_INT(r->upper_certified, 1);
    CHECK_EQ_INT(r->enumerated, 1);
    CHECK(r->width >= 1 && r->width <= d->n, "%s: width %d, n %d", ds, r->width, d->n);
    CHECK_NEAR(r->q_min, 1.0, 1e-12);
    CHECK_NEAR(r->path_norm, 1.0 / (2 * want), 1e-8 / want);
    /* primal: re-evaluated through a freshly parsed model */
    CHECK_NEAR(gamma_of(d, r->spec, r->theta), r->gamma_lower, 1e-15);
    /* dual: lambda is scaled to rho = 1; a dense scan never exceeds 1 and
     * the bound sum lambda = OPT = 1 / (2 gamma*) */
    double sum = 0.0;
    for (int k = 0; k < d->n; k++) {
        CHECK(r->lambda[k] >= 0.0, "lambda[%d] = %g", k, r->lambda[k]);
        sum += r->lambda[k];
    }
    double rs = rho_scan(d, r->lambda, r->alpha);
    CHECK(rs <= 1.0 + 1e-12, "%s: scanned rho %.17g > 1", ds, rs);
    CHECK(rs >= 1.0 - 1e-6, "%s: scanned rho %.17g far below 1", ds, rs);
    CHECK_NEAR(1.0 / (2 * sum), want, 1e-9);
    /* the cell bound and the exact sweep agree at the optimum */
    CHECK(fabs(r->rho_cells - r->rho) <= 1e-9 * r->rho && r->rho_cells >= r->rho * (1 - 1e-14),
          "%s: rho %.17g, rho_cells %.17g", ds, r->rho, r->rho_cells);
    printf("  %-16s %-22s gamma* %.15f gap %.2e width %d patterns %d, %d IPOPT iterations, "
           "%.3f s\n",
           ds, ms, r->gamma, r->gap, r->width, r->n_patterns, r->iterations,
           r->seconds_patterns + r->seconds_solve + r->seconds_certify);
    mf_data_free(d);
    mf_global_result_free(r);
}

/* The symmetric-data formula (docs/theory.md): gamma* = (1 + alpha) gamma_svm / 4,
 * gamma_svm = sqrt(5)/2 on sym4; 0.41926 at alpha = 0.5. */
TEST(sym4_known_value) {
    double gs = sqrt(5.0) / 2;
    check_known("builtin:sym4", "relu2:alpha=0.5", 1.5 * gs / 4);
    CHECK_NEAR(1.5 * gs / 4, 0.41926, 5e-6);
    check_known("builtin:sym4", "relu2:alpha=0", gs / 4);
    check_known("builtin:sym4", "relu2:alpha=0.2", 1.2 * gs / 4);
    /* 8 points on 4 lines: 8 arcs */
    int rc;
    mf_global_result *r = solve("builtin:sym4", "relu2:alpha=0.5", 0, &rc, NULL);
    CHECK(r && r->n_patterns == 8 && r->n_lines == 4, "patterns %d lines %d",
          r ? r->n_patterns : -1, r ? r->n_lines : -1);
    mf_global_result_free(r);
}

/* Case D: one neuron along (1, 1), gamma* = 1 / (2 sqrt 2). */
TEST(case_D_known_value) {
    check_known("builtin:D", "relu2", 1.0 / (2 * sqrt(2.0)));
    int rc;
    mf_global_result *r = solve("builtin:D", "relu2:width=2", 0, &rc, NULL);
    CHECK(r && r->width == 1, "width %d", r ? r->width : -1);
    if (r && r->width == 1) { /* w = (1, 1) 2^{-1/4}, a = 2^{1/4} */
        CHECK_NEAR(r->theta[0], pow(2.0, -0.25), 1e-9);
        CHECK_NEAR(r->theta[1], pow(2.0, -0.25), 1e-9);
        CHECK_NEAR(r->theta[2], pow(2.0, 0.25), 1e-9);
    }
    mf_global_result_free(r);
}

/* Data on one line through the origin: f(x) = c x on each ray, so with
 * x = (1, 2) (label +1) the best is one neuron along x: gamma* = ||x|| / 2
 * (the l2 margin ||x|| halved by the two layers, as the linear depth-2
 * net: 2^{-1} gamma_svm). Also the d = 1 enumeration. */
TEST(one_ray_known_value) {
    check_known("builtin:B", "relu2:alpha=0.3", sqrt(5.0) / 2);
    int rc;
    mf_err e = {0, ""};
    mf_global_result *r = solve("gauss:n=9,d=1,margin=0.1,seed=2", "relu2:alpha=0.25", 0, &rc, &e);
    CHECK(rc == MF_OK && r, "d = 1: %s", e.msg);
    if (r) {
        /* In d = 1 a net is f(x) = A x (x > 0), B x (x < 0) with
         * A = c1 - alpha c2, B = alpha c1 - c2 for c1 (c2) the signed mass of
         * neurons along +1 (-1), cost |c1| + |c2|. Binding samples: the
         * smallest p > 0 and m > 0 with x = p and x = -m (labels yp, ym):
         * yp A >= 1/p, -ym B >= 1/m. The l1-minimum of this 2-variable LP is
         * at one of the pairwise intersections of its two constraint lines
         * and the two axes: enumerate them. */
        mf_data *d = data_of("gauss:n=9,d=1,margin=0.1,seed=2");
        double p = INFINITY, m = INFINITY, yp = 0, ym = 0, al = 0.25;
        for (int k = 0; k < d->n; k++) {
            if (d->x[k] > 0 && d->x[k] < p) p = d->x[k], yp = d->y[k];
            if (d->x[k] < 0 && -d->x[k] < m) m = -d->x[k], ym = d->y[k];
        }
        /* lines a . c = b: constraints, then the axes c1 = 0, c2 = 0 */
        double L[4][3] = {{yp, -yp * al, 1 / p}, {-ym * al, ym, 1 / m}, {1, 0, 0}, {0, 1, 0}};
        int on[4] = {isfinite(p), isfinite(m), 1, 1};
        double best = INFINITY;
        for (int i = 0; i < 4; i++)
            for (int j = i + 1; j < 4; j++) {
                if (!on[i] || !on[j]) continue;
                double det = L[i][0] * L[j][1] - L[i][1] * L[j][0];
                if (fabs(det) < 1e-14) continue;
                double c1 = (L[i][2] * L[j][1] - L[i][1] * L[j][2]) / det;
                double c2 = (L[i][0] * L[j][2] - L[i][2] * L[j][0]) / det;
                int ok = 1;
                for (int k = 0; k < 2; k++)
                    if (on[k] && L[k][0] * c1 + L[k][1] * c2 < L[k][2] * (1 - 1e-12)) ok = 0;
                if (ok) best = fmin(best, fabs(c1) + fabs(c2));
            }
        double want = 1.0 / (2 * best);
        CHECK_NEAR(r->gamma_lower, want, 1e-9 * want);
        CHECK_NEAR(r->gamma_upper, want, 1e-9 * want);
        CHECK_EQ_INT(r->n_patterns, 2);
        mf_data_free(d);
    }
    mf_global_result_free(r);
}

/* A random 2-d set: gamma* is never below what 40 SLSQP starts find at
 * widths 2 and 6, and the gap is <= 1e-9. */
TEST(random_2d_vs_maxmargin) {
    const char *ds = "gauss:n=12,d=2,margin=0.05,seed=11";
    int rc;
    mf_err e = {0, ""};
    mf_global_result *r = solve(ds, "relu2:alpha=0", 0, &rc, &e);
    CHECK(rc == MF_OK && r, "%s", e.msg);
    if (!r) return;
    CHECK(r->gap <= 1e-9, "gap %g", r->gap);
    mf_data *d = data_of(ds);
    const char *widths[] = {"relu2:width=2,alpha=0", "relu2:width=6,alpha=0"};
    double best = 0.0;
    for (int i = 0; i < 2; i++) {
        mf_model *m = model_of(widths[i], 2);
        mf_maxmargin_result *mm = NULL;
        CHECK_EQ_INT(mf_maxmargin(m, d, 40, 1, 1e-6, &mm, NULL), MF_OK);
        if (mm) {
            CHECK(mm->best_gamma <= r->gamma_upper * (1 + 1e-9),
                  "%s: SLSQP found %.17g above the certified gamma* <= %.17g", widths[i],
                  mm->best_gamma, r->gamma_upper);
            best = fmax(best, mm->best_gamma);
        }
        mf_maxmargin_result_free(mm);
        mf_model_free(m);
    }
    printf("  %s: gamma* %.12f (gap %.1e, width %d); best of 80 SLSQP starts %.12f (%.2f%%)\n",
           ds, r->gamma, r->gap, r->width, best, 100 * best / r->gamma);
    /* the search is not useless either: it gets within 50% */
    CHECK(best >= 0.5 * r->gamma, "SLSQP best %.6g vs gamma* %.6g", best, r->gamma);
    mf_data_free(d);
    mf_global_result_free(r);
}

/* on_metrics: keep the normalized margin of the first row (step 0). */
static int first_margin(void *user, const mf_metrics *mt) {
    double *f = user;
    if (mt->step == 0) *f = mt->normalized_margin;
    return 0;
}

/* The primal network as an --init-file: written by mf_params_write, read
 * back, mf_train reports gamma* as its step-0 margin; gradient flow from it
 * stays between the sandwich bound and the certified upper bound. */
TEST(primal_as_init_file) {
    const char *ds = "gauss:n=10,d=2,margin=0.1,seed=4";
    int rc;
    mf_err e = {0, ""};
    mf_global_result *r = solve(ds, "relu2:alpha=0.1", 0, &rc, &e);
    CHECK(rc == MF_OK && r, "%s", e.msg);
    if (!r) return;
    mf_data *d = data_of(ds);
    mf_model *m = model_of(r->spec, 2);
    char path[64];
    snprintf(path, sizeof path, "/tmp/mf_global_%ld.txt", (long)getpid());
    CHECK_EQ_INT(mf_params_write(path, m, r->theta, &e), MF_OK);
    mf_train_state *st = NULL;
    CHECK_EQ_INT(mf_train_state_new(m->n_params, &st, NULL), MF_OK);
    CHECK_EQ_INT(mf_params_read(path, m->n_params, st->theta, &e), MF_OK);
    unlink(path);
    CHECK(!memcmp(st->theta, r->theta, sizeof(double) * m->n_params), "params round trip");
    CHECK_NEAR(gamma_of(d, r->spec, st->theta), r->gamma, 1e-15);
    /* x10: q_min = 100, so Loss < 1: along gradient flow Lyu & Li's smoothed
     * margin is non-decreasing, hence gamma(t) >= gamma~(t) >= gamma~(0) >=
     * gamma(0) - log(N) / ||theta(0)||^2 (Lyu & Li's sandwich, exp loss) */
    for (size_t i = 0; i < m->n_params; i++) st->theta[i] *= 10.0;
    double n0 = mf_param_norm(m, st->theta);
    mf_train_settings s;
    mf_train_settings_default(&s);
    s.optimizer = MF_OPT_FLOW;
    s.max_steps = 50;
    s.log_points = 10;
    mf_callbacks cb = {0};
    double first = NAN;
    cb.user = &first;
    cb.on_metrics = first_margin;
    mf_train_result tr;
    CHECK_EQ_INT(mf_train(m, d, &s, st, &cb, &tr, &e), MF_OK);
    CHECK_NEAR(first, r->gamma, 1e-14);
    double g = gamma_of(d, r->spec, st->theta);
    CHECK(g <= r->gamma_upper * (1 + 1e-9), "trained gamma %.17g above gamma* <= %.17g", g,
          r->gamma_upper);
    double floor = r->gamma - log((double)d->n) / (n0 * n0);
    CHECK(g >= floor, "trained gamma %.17g below the sandwich bound %.17g", g, floor);
    printf("  %s: gamma* %.12f = the init's margin in mf_train; %lld flow steps give %.12f\n", ds,
           r->gamma, tr.steps, g);
    mf_train_state_free(st);
    mf_model_free(m);
    mf_data_free(d);
    mf_global_result_free(r);
}

/* d = 3: the enumerated arrangement certifies both bounds; sampled
 * patterns reach the same value but only the lower bound is certified. A
 * symmetric set also meets the symmetric-data formula in d = 3. */
TEST(d3_enumerated_and_sampled) {
    const char *ds = "gauss:n=10,d=3,margin=0.1,seed=3";
    int rc, rc2;
    mf_err e = {0, ""};
    mf_global_result *r = solve(ds, "relu2:alpha=0.3", 0, &rc, &e);
    CHECK(rc == MF_OK && r, "%s", e.msg);
    mf_global_result *q = solve(ds, "relu2:alpha=0.3", 5000, &rc2, &e);
    CHECK(rc2 == MF_OK && q, "%s", e.msg);
    if (r && q) {
        CHECK_EQ_INT(r->upper_certified, 1);
        CHECK_EQ_INT(q->upper_certified, 0);
        CHECK_EQ_INT(q->enumerated, 0);
        CHECK_EQ_INT(q->n_samples, 5000);
        CHECK(q->n_patterns <= r->n_patterns, "sampled %d > enumerated %d", q->n_patterns,
              r->n_patterns);
        /* 10 lines in general position in R^3: 2 (1 + 9 + 36) = 92 cells */
        CHECK_EQ_INT(r->n_patterns, 92);
        CHECK(r->gap <= 1e-9, "gap %g", r->gap);
        CHECK(q->gamma_lower <= r->gamma_upper * (1 + 1e-12), "sampled lower %.17g > upper %.17g",
              q->gamma_lower, r->gamma_upper);
        CHECK_NEAR(q->gamma_lower, r->gamma_lower, 1e-8 * r->gamma_lower);
        printf("  %s: gamma* %.12f gap %.1e, %d cells; sampled: %d patterns of 5000 "
               "directions, gamma %.12f\n",
               ds, r->gamma, r->gap, r->n_patterns, q->n_patterns, q->gamma);
    }
    mf_global_result_free(r);
    mf_global_result_free(q);
    /* symmetric data in R^3: gamma* = (1 + alpha) gamma_svm / 4 */
    mf_data *d = data_of("symmetric:n=6,d=3,margin=0.1,seed=2");
    mf_svm_result *sv = NULL;
    CHECK_EQ_INT(mf_svm_solve(d, MF_SVM_L2, NULL, &sv, NULL), MF_OK);
    r = solve("symmetric:n=6,d=3,margin=0.1,seed=2", "relu2:alpha=0.5", 0, &rc, &e);
    CHECK(rc == MF_OK && r && sv, "%s", e.msg);
    if (r && sv) {
        CHECK_NEAR(r->gamma_lower, 1.5 * sv->gamma / 4, 1e-9 * sv->gamma);
        CHECK_NEAR(r->gamma_upper, 1.5 * sv->gamma / 4, 1e-9 * sv->gamma);
    }
    mf_svm_result_free(sv);
    mf_global_result_free(r);
    mf_data_free(d);
}

/* 2-d sampling still certifies the upper bound (rho by the exact sweep). */
TEST(sampled_2d_upper_certified) {
    int rc;
    mf_err e = {0, ""};
    mf_global_result *r = solve("builtin:sym4", "relu2:alpha=0.5", 50, &rc, &e);
    CHECK(rc == MF_OK && r, "%s", e.msg);
    if (r) {
        CHECK_EQ_INT(r->enumerated, 0);
        CHECK_EQ_INT(r->upper_certified, 1);
        CHECK(r->gamma_upper >= 1.5 * sqrt(5.0) / 8 * (1 - 1e-12), "upper %.17g", r->gamma_upper);
    }
    mf_global_result_free(r);
}

/* A data set built by hand: n points of R^2 and labels. */
static mf_data *data_pts(int n, const double *x, const double *y) {
    mf_data *d = NULL;
    if (mf_data_new(n, 2, 0, &d, NULL)) return NULL;
    memcpy(d->x, x, sizeof(double) * 2 * (size_t)n);
    memcpy(d->y, y, sizeof(double) * (size_t)n);
    snprintf(d->desc, sizeof d->desc, "test points");
    return d;
}

static void expect_err(const mf_model *m, const mf_data *d, const mf_global_settings *s, int code,
                       const char *needle) {
    mf_err e = {0, ""};
    mf_global_result *r = (mf_global_result *)&e; /* must be reset to NULL */
    int rc = mf_global_relu2(m, d, s, &r, &e);
    CHECK(rc == code, "want code %d, got %d (%s)", code, rc, e.msg);
    CHECK(r == NULL, "result not NULL on error");
    CHECK(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
}

TEST(bad_inputs) {
    mf_data *sym = data_of("builtin:sym4");
    mf_model *m = model_of("relu2:alpha=0.5", 2);
    mf_global_settings s;
    mf_global_settings_default(&s);
    mf_model *bias = model_of("relu2:width=3,bias", 2);
    expect_err(bias, sym, NULL, MF_ERR_UNSUPPORTED, "hidden bias");
    mf_model *fix = model_of("relu2:width=4,fix-outer", 2);
    expect_err(fix, sym, NULL, MF_ERR_UNSUPPORTED, "fixed outer weights");
    mf_model *lin = model_of("linear", 2);
    expect_err(lin, sym, NULL, MF_ERR_UNSUPPORTED, "relu2 models only");
    mf_model *one = model_of("relu2:alpha=1", 2);
    expect_err(one, sym, NULL, MF_ERR_INVALID, "alpha = 1 must be in [0, 1)");
    m->alpha = -0.25; /* a hand-made model: the parser refuses this already */
    expect_err(m, sym, NULL, MF_ERR_INVALID, "alpha = -0.25 must be in [0, 1)");
    m->alpha = 0.5;
    mf_data *mc = NULL;
    CHECK_EQ_INT(mf_data_new(3, 2, 3, &mc, NULL), MF_OK);
    expect_err(m, mc, NULL, MF_ERR_UNSUPPORTED, "binary data");
    mf_model *m3 = model_of("relu2", 3);
    expect_err(m3, sym, NULL, MF_ERR_DIM, "model input dimension 3, data dimension 2");
    expect_err(NULL, sym, NULL, MF_ERR_INVALID, "must not be NULL");
    CHECK_EQ_INT(mf_global_relu2(m, sym, NULL, NULL, NULL), MF_ERR_INVALID);
    /* settings */
    s.tol = 0.0;
    expect_err(m, sym, &s, MF_ERR_INVALID, "global settings: tol must be in (0, 1e-2]");
    mf_global_settings_default(&s);
    s.max_patterns = 1;
    expect_err(m, sym, &s, MF_ERR_INVALID, "max_patterns must be in [2, 10^6]");
    mf_global_settings_default(&s);
    s.sample = -1;
    expect_err(m, sym, &s, MF_ERR_INVALID, "sample must be 0");
    mf_global_settings_default(&s);
    s.max_seconds = NAN;
    expect_err(m, sym, &s, MF_ERR_INVALID, "max_seconds");
    CHECK(mf_global_settings_validate(NULL) != NULL, "NULL settings");
    mf_global_settings_default(&s);
    CHECK(mf_global_settings_validate(&s) == NULL, "defaults valid");
    /* labels and features */
    double x1[] = {1, 0, 0, 1}, y1[] = {1, 0.5};
    mf_data *lab = data_pts(2, x1, y1);
    expect_err(m, lab, NULL, MF_ERR_INVALID, "label of sample 2 is 0.5");
    double x2[] = {1, NAN, 0, 1}, y2[] = {1, 1};
    mf_data *nanx = data_pts(2, x2, y2);
    expect_err(m, nanx, NULL, MF_ERR_INVALID, "feature 2 of sample 1 is not finite");
    /* non-separable: a zero sample; two points on one ray with opposite
     * labels; symmetric data that is not linearly separable */
    double x3[] = {1, 0, 0, 0}, y3[] = {1, 1};
    mf_data *zero = data_pts(2, x3, y3);
    expect_err(m, zero, NULL, MF_ERR_NONSEPARABLE, "sample 2 is x = 0");
    double x4[] = {1, 1, 2, 2}, y4[] = {1, -1};
    mf_data *ray = data_pts(2, x4, y4);
    expect_err(m, ray, NULL, MF_ERR_NONSEPARABLE, "not separable by any bias-free two-layer net");
    double x5[] = {1, 0, -1, 0, 0, 1, 0, -1, 1, 1, -1, -1}, y5[] = {1, -1, 1, -1, -1, 1};
    mf_data *xr = data_pts(6, x5, y5);
    mf_model *relu = model_of("relu2", 2);
    expect_err(relu, xr, NULL, MF_ERR_NONSEPARABLE, "Gordan");
    expect_err(m, xr, NULL, MF_ERR_NONSEPARABLE, "Gordan");
    /* sampled patterns that miss the separating cells say so */
    mf_global_settings_default(&s);
    s.sample = 1;
    mf_data *D = data_of("builtin:D");
    expect_err(relu, D, &s, MF_ERR_NONSEPARABLE, "and the sampled patterns");
    /* enumeration beyond the limit, 2-d and 3-d */
    mf_global_settings_default(&s);
    s.max_patterns = 10;
    mf_data *g2 = data_of("gauss:n=20,d=2,margin=0.1,seed=1");
    expect_err(relu, g2, &s, MF_ERR_UNSUPPORTED,
               "the arrangement has 40 cells, more than max_patterns = 10");
    mf_data *g3 = data_of("gauss:n=20,d=3,margin=0.1,seed=1");
    mf_model *relu3 = model_of("relu2", 3);
    s.max_patterns = 50;
    expect_err(relu3, g3, &s, MF_ERR_UNSUPPORTED, "more than max_patterns = 50 cells");
    expect_err(relu3, g3, &s, MF_ERR_UNSUPPORTED, "--sample K");
    mf_global_result_free(NULL);
    mf_model_free(bias);
    mf_model_free(fix);
    mf_model_free(lin);
    mf_model_free(one);
    mf_model_free(m3);
    mf_model_free(relu);
    mf_model_free(relu3);
    mf_model_free(m);
    mf_data_free(mc);
    mf_data_free(lab);
    mf_data_free(nanx);
    mf_data_free(zero);
    mf_data_free(ray);
    mf_data_free(xr);
    mf_data_free(D);
    mf_data_free(g2);
    mf_data_free(g3);
    mf_data_free(sym);
}

/* ------------------------------------------------------- allocation failures */

static long g_requests, g_fail_at, g_live;

static void *h_malloc(size_t n) {
    if (++g_requests == g_fail_at) return NULL;
    void *p = malloc(n);
    if (p) g_live++;
    return p;
}

static void *h_realloc(void *p, size_t n) {
    if (++g_requests == g_fail_at) return NULL;
    void *q = realloc(p, n);
    if (q && !p) g_live++;
    return q;
}

static void h_free(void *p) {
    if (p) g_live--;
    free(p);
}

/* Every allocation request of mf_global_relu2 fails once in turn (2-d
 * sweep on D, the d = 3 enumeration, sampling; small sets: each request
 * that fails after the solve costs a whole IPOPT run, ~50x under valgrind): the call returns MF_OK
 * with the reference value or MF_ERR_NOMEM with a message, and leaks
 * nothing. IPOPT, MUMPS and GLPK allocate outside the hook. */
TEST(allocation_failures) {
    const char *cases[][2] = {{"builtin:D", "relu2:alpha=0.5"},
                              {"gauss:n=5,d=3,margin=0.1,seed=2", "relu2"},
                              {"builtin:D", "relu2:alpha=0.1"}};
    for (int c = 0; c < 3; c++) {
        mf_data *d = data_of(cases[c][0]);
        mf_model *m = model_of(cases[c][1], d->d);
        mf_global_settings s;
        mf_global_settings_default(&s);
        if (c == 2) s.sample = 40;
        mf_global_result *ref = NULL;
        CHECK_EQ_INT(mf_global_relu2(m, d, &s, &ref, NULL), MF_OK);
        g_requests = 0, g_fail_at = 0, g_live = 0;
        mf_set_allocator(h_malloc, h_realloc, h_free);
        mf_global_result *r = NULL;
        mf_global_relu2(m, d, &s, &r, NULL);
        mf_global_result_free(r);
        long clean = g_requests;
        int bad = 0, leaks = 0, absorbed = 0;
        for (long k = 1; k <= clean; k++) {
            g_requests = 0, g_fail_at = k, g_live = 0;
            mf_err e = {0, ""};
            r = NULL;
            int rc = mf_global_relu2(m, d, &s, &r, &e);
            if (rc == MF_OK) {
                absorbed++;
                if (!r || r->gamma != ref->gamma) bad++;
            } else if (rc != MF_ERR_NOMEM || e.code != MF_ERR_NOMEM || !e.msg[0] || r) {
                if (bad++ < 3) fprintf(stderr, "request %ld: code %d: %s\n", k, rc, e.msg);
            }
            mf_global_result_free(r);
            if (g_live) leaks++;
        }
        mf_set_allocator(NULL, NULL, NULL);
        CHECK(clean > 10, "%s: only %ld requests", cases[c][0], clean);
        CHECK(bad == 0, "%s: %d bad outcomes", cases[c][0], bad);
        CHECK(leaks == 0, "%s: %d leaking failures", cases[c][0], leaks);
        printf("  %-34s %3ld allocation requests, each failed once; %d absorbed\n", cases[c][0],
               clean, absorbed);
        mf_global_result_free(ref);
        mf_model_free(m);
        mf_data_free(d);
    }
}

/* The analysis' global reference for bias-free relu2 (src/model/relu2.c:
 * mf_global_relu2 as an exact reference with its network). On the
 * two-rays data (x1 = (1, 0), x2 = (cos 100deg, sin 100deg), both +1) the
 * exact KKT point w_k = x_k, a = (1, 1) (every pre-activation nonzero) is a
 * strict local optimum with gamma = 1/4, and gamma* = cos(50deg) / 2: the
 * verdict is local-certified, "Not global" with the reference network,
 * whose own margin (forward pass here) is gamma*; analysing that network
 * gives "global". Case D's data gives gamma* = 1 / (2 sqrt 2) beside its
 * verdict. A set whose arrangement may have too many cells gets no
 * reference, and says why. */
TEST(analysis_reference) {
    const double pi = acos(-1.0), c = cos(100 * pi / 180), sn = sin(100 * pi / 180);
    const double x[4] = {1, 0, c, sn}, y[2] = {1, 1};
    const double want = cos(50 * pi / 180) / 2;
    mf_data *d = data_pts(2, x, y);
    mf_model *m = d ? model_of("relu2:width=2,alpha=0", 2) : NULL;
    double theta[6] = {1, 0, c, sn, 1, 1};
    mf_analysis *a = NULL;
    mf_err e = {0, ""};
    int rc = m ? mf_analyze(m, d, theta, MF_LOSS_EXP, NULL, &a, &e) : -1;
    CHECK(rc == MF_OK, "two rays: %s", e.msg);
    if (a) {
        CHECK(a->verdict == MF_VERDICT_LOCAL_CERTIFIED, "two rays: verdict %s (%s)", mf_verdict_name(a->verdict),
              a->verdict_reason);
        CHECK(a->has_global && fabs(a->gamma_star - want) <= 1e-9 * want, "two rays: gamma* %.17g, want %.17g",
              a->gamma_star, want);
        CHECK_NEAR(a->gamma, 0.25, 1e-12);
        /* the second-order certificate: lambda = (1, 1), Euler 4 = 2 * 2, H
         * positive definite on the critical subspace (min eigenvalue 1), and
         * the local re-solves find nothing */
        CHECK_NEAR(a->lambda[0], 1.0, 1e-9);
        CHECK_NEAR(a->lambda[1], 1.0, 1e-9);
        CHECK_NEAR(a->euler_lhs, 4.0, 1e-12);
        CHECK_NEAR(a->euler_rhs, 4.0, 1e-9);
        CHECK(a->second_order_done && fabs(a->min_eig - 1.0) < 1e-6, "two rays: min eigenvalue %g",
              a->min_eig);
        CHECK(a->local != NULL && a->local->best_gain <= 1e-9, "two rays: local search gain %g",
              a->local ? a->local->best_gain : NAN);
        CHECK(strstr(a->verdict_reason, "Not global") && strstr(a->verdict_reason, "relu2:width=1"),
              "two rays: reason '%s'", a->verdict_reason);
        CHECK(a->global_theta != NULL, "two rays: no reference network");
        if (a->global_theta) {
            double g = gamma_of(d, a->global_spec, a->global_theta);
            CHECK(fabs(g - want) <= 1e-9 * want, "two rays: the reference network's margin %.17g", g);
            mf_model *gm = model_of(a->global_spec, 2);
            mf_analysis *b = NULL;
            CHECK(gm && mf_analyze(gm, d, a->global_theta, MF_LOSS_EXP, NULL, &b, &e) == MF_OK, "%s", e.msg);
            if (b)
                CHECK(b->verdict == MF_VERDICT_GLOBAL, "the reference network: verdict %s (%s)",
                      mf_verdict_name(b->verdict), b->verdict_reason);
            mf_analysis_free(b);
            mf_model_free(gm);
        }
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(d);
    /* case D: the reference beside the verdict */
    d = data_of("builtin:D");
    m = d ? model_of("relu2:width=2,alpha=0", 2) : NULL;
    double td[6] = {1, 0, 0, 1, 1, 1};
    a = NULL;
    rc = m ? mf_analyze(m, d, td, MF_LOSS_EXP, NULL, &a, &e) : -1;
    CHECK(rc == MF_OK, "D: %s", e.msg);
    if (a) CHECK(a->has_global && fabs(a->gamma_star - 1 / sqrt(8.0)) <= 1e-9, "D: gamma* %.17g", a->gamma_star);
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(d);
    /* 40 points in R^5: up to 2 (1 + 39 + 741 + 9139 + 82251) cells, no reference */
    d = data_of("gauss:n=40,d=5,margin=0.1,seed=1");
    m = d ? model_of("relu2:width=2,alpha=0.2", 5) : NULL;
    double *tg = calloc(12, sizeof(double));
    mf_svm_result *sv = NULL; /* a separating net: units +-w_svm, a = (1, -1), a linear function */
    if (tg && d && mf_svm_solve(d, MF_SVM_L2, NULL, &sv, &e) == MF_OK && sv->status == MF_SVM_SOLVED)
        for (int j = 0; j < 5; j++) tg[j] = sv->w[j], tg[5 + j] = -sv->w[j], tg[10] = 1, tg[11] = -1;
    mf_svm_result_free(sv);
    a = NULL;
    rc = m && tg ? mf_analyze(m, d, tg, MF_LOSS_EXP, NULL, &a, &e) : -1;
    CHECK(rc == MF_OK, "gauss 40x5: %s", e.msg);
    if (a) CHECK(!a->has_global && strstr(a->verdict_reason, "beyond the analysis' limit of 256"),
                 "gauss 40x5: has_global %d, reason '%s'", a->has_global, a->verdict_reason);
    mf_analysis_free(a);
    free(tg);
    mf_model_free(m);
    mf_data_free(d);
}

int main(void) {
    RUN(sym4_known_value);
    RUN(case_D_known_value);
    RUN(one_ray_known_value);
    RUN(random_2d_vs_maxmargin);
    RUN(primal_as_init_file);
    RUN(d3_enumerated_and_sampled);
    RUN(sampled_2d_upper_certified);
    RUN(bad_inputs);
    RUN(allocation_failures);
    RUN(analysis_reference);
    return TEST_REPORT();
}

/*
 * test_local.c -- the local tests of src/local.c (mf_analyze.h section B) on
 * the known-answer cases of docs/theory.md section 4:
 *  - D: the directional LP certifies "not a local optimum" (<theta, d> <= -1
 *    on the box, the d of section 4 gives exactly -1) and the measured margin gain
 *    along d is positive and linear in eps;
 *  - the SVM point of sym4 (linear) and R1's global point (fc-linear depth 3)
 *    are KKT points of (P): no direction is found, no nearby point is better;
 *  - B's KKT point u = v = (1, 0) is not a local optimum: SLSQP from small
 *    perturbations finds the global value 1 (gain 1);
 *  - maxmargin finds 1/(2 sqrt 2) on D, 1 on B, sqrt(5)/2 on sym4;
 *  - bad inputs return the documented error codes.
 */
#include "marginflow.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mf_model *model(const char *spec, const mf_data *d) {
    mf_model *m = NULL;
    mf_err e = {0, ""};
    if (mf_model_parse(spec, d->d, d->num_classes, &m, &e)) {
        fprintf(stderr, "model %s: %s\n", spec, e.msg);
        exit(2);
    }
    return m;
}

static mf_data *data(const char *spec) {
    mf_data *d = NULL;
    mf_err e = {0, ""};
    if (mf_data_from_spec(spec, NULL, &d, &e)) {
        fprintf(stderr, "data %s: %s\n", spec, e.msg);
        exit(2);
    }
    return d;
}

/* q_min and gamma = q_min / ||theta||^L at theta. */
static double qmin_at(const mf_model *m, const mf_data *D, const double *th, double *gamma) {
    mf_work *w = NULL;
    double out[64];
    if (mf_work_new(m, D->n, &w, NULL) || D->n * m->n_out > 64) exit(2);
    mf_model_forward(m, w, th, D->x, D->n, out);
    double q = mf_margins(D, out, m->n_out, NULL);
    if (gamma) *gamma = q / pow(mf_param_norm(m, th), m->degree);
    mf_work_free(w);
    return q;
}

static const double radii[4] = {1e-1, 1e-2, 1e-3, 1e-4};

/* D: theta = (W = [[1,0],[0,1]], a = (1,1)); pre-activations w1.x2 = w2.x1 = 0. */
TEST(directional_D) {
    mf_data *D = data("builtin:D");
    mf_model *m = model("relu2:width=2", D);
    double th[6] = {1, 0, 0, 1, 1, 1};
    double g0;
    CHECK_NEAR(qmin_at(m, D, th, &g0), 1.0, 0);
    CHECK_NEAR(g0, 0.25, 1e-15);
    /* docs/theory.md's certificate d = ((0,1), 0, (0,-1/2), -1/2), in our layout W then a */
    double dth[6] = {0, 1, 0, -0.5, 0, -0.5}, inner = 0.0;
    for (int i = 0; i < 6; i++) inner += th[i] * dth[i];
    CHECK_NEAR(inner, -1.0, 0);

    mf_directional_result *r = NULL;
    mf_err e = {0, ""};
    int rc = mf_directional_test(m, D, th, 1e-3, 1e-6, 4096, &r, &e);
    CHECK_EQ_INT(rc, MF_OK);
    if (rc) {
        fprintf(stderr, "%s\n", e.msg);
        goto out;
    }
    CHECK_EQ_INT(r->n_zero, 2);
    CHECK_EQ_INT(r->n_patterns, 4);
    CHECK_EQ_INT(r->searched, 1);
    CHECK_EQ_INT(r->found, 1);
    CHECK(r->best_inner <= -1.0 + 1e-9, "best <theta, d> = %.17g, want <= -1", r->best_inner);
    CHECK(r->d != NULL, "no direction returned");
    if (r->d) {
        double mx = 0.0;
        for (int i = 0; i < 6; i++) mx = fmax(mx, fabs(r->d[i]));
        CHECK(mx <= 1.0 + 1e-12, "||d||_inf = %g", mx);
        /* the active margins do not decrease to first order: q_min(theta + eps d)
         * >= 1 - C eps^2 (q is bilinear in (W, a)) */
        double tp[6];
        for (int i = 0; i < 6; i++) tp[i] = th[i] + 1e-4 * r->d[i];
        double q = qmin_at(m, D, tp, NULL);
        CHECK(q >= 1.0 - 1e-7, "q_min(theta + 1e-4 d) = %.17g", q);
    }
    /* gains: positive and linear in eps at small eps (first order:
     * gain ~ -L <theta, d> eps / ||theta||^2 = eps |<theta,d>| for ||theta||^2 = 4, L = 2) */
    printf("directional D: <theta,d> = %.6g, gains %.6g %.6g %.6g %.6g\n", r->best_inner,
           r->gain[0], r->gain[1], r->gain[2], r->gain[3]);
    CHECK(r->gain[2] > 0.0 && r->gain[3] > 0.0, "gains %g %g", r->gain[2], r->gain[3]);
    double slope = -r->best_inner * 2.0 / 4.0;
    CHECK_NEAR(r->gain[3] / 1e-4, slope, 1e-2 * slope);
    CHECK_NEAR(r->gain[2] / r->gain[3], 10.0, 0.1);
    /* the re-solves stay in their balls: at a kink the best gain in a ball of
     * radius r is first order in r (about 1.155 r here) */
    mf_local_result *L = NULL;
    CHECK_EQ_INT(mf_local_search(m, D, th, radii, 4, 2, 5, &L, &e), MF_OK);
    if (L) {
        printf("local D: best per radius %.9g %.9g %.9g %.9g, gain %.6g\n", L->best_gamma[0],
               L->best_gamma[1], L->best_gamma[2], L->best_gamma[3], L->best_gain);
        for (int k = 0; k < 3; k++) {
            double gk = L->best_gamma[k] / 0.25 - 1, gk1 = L->best_gamma[k + 1] / 0.25 - 1;
            CHECK(gk > 0 && gk1 > 0, "gains %g %g", gk, gk1);
            CHECK_NEAR(gk / gk1, 10.0, 0.5); /* linear in r */
        }
        CHECK_EQ_INT(L->best_radius, 0);
        CHECK(L->best_dist <= radii[0] * (1 + 1e-6), "best point at %g, outside its ball %g",
              L->best_dist, radii[0]);
    }
    mf_local_result_free(L);

    /* q_min = 4 (theta scaled by 2): the active set is relative to q_min */
    mf_directional_result_free(r);
    r = NULL;
    double th2[6];
    for (int i = 0; i < 6; i++) th2[i] = 2.0 * th[i];
    CHECK_EQ_INT(mf_directional_test(m, D, th2, 1e-3, 1e-6, 4096, &r, &e), MF_OK);
    if (r) {
        CHECK_EQ_INT(r->found, 1);
        CHECK(r->best_inner <= -4.0 + 1e-9, "best <2 theta, d> = %.17g, want <= -4",
              r->best_inner);
    }
out:
    mf_directional_result_free(r);
    mf_model_free(m);
    mf_data_free(D);
}

/* sym4, linear, w = w_svm / gamma_svm = (4/5, 2/5): the unique optimum of (P). */
TEST(svm_point_is_local) {
    mf_data *D = data("builtin:sym4");
    mf_model *m = model("linear", D);
    double th[2] = {0.8, 0.4}, g0;
    CHECK_NEAR(qmin_at(m, D, th, &g0), 1.0, 1e-15);
    CHECK_NEAR(g0, sqrt(5.0) / 2.0, 1e-15);
    mf_directional_result *r = NULL;
    mf_err e = {0, ""};
    int rc = mf_directional_test(m, D, th, 1e-3, 1e-6, 4096, &r, &e);
    CHECK_EQ_INT(rc, MF_OK);
    if (r) {
        CHECK_EQ_INT(r->found, 0);
        CHECK_EQ_INT(r->n_patterns, 1);
        CHECK(r->d == NULL, "d returned without a certificate");
        CHECK(r->best_inner >= -1e-12, "best <theta, d> = %g", r->best_inner);
    }
    mf_directional_result_free(r);

    mf_local_result *L = NULL;
    rc = mf_local_search(m, D, th, radii, 4, 4, 7, &L, &e);
    CHECK_EQ_INT(rc, MF_OK);
    if (L) {
        printf("local sym4/linear: gain %.3g, evaluations %d\n", L->best_gain, L->evaluations);
        CHECK_NEAR(L->gamma0, sqrt(5.0) / 2.0, 1e-15);
        CHECK(L->best_gain <= 1e-8, "gain %g at a strict global optimum", L->best_gain);
        CHECK(L->best_gain >= -1e-8, "gain %g: SLSQP did not return to the optimum",
              L->best_gain);
        for (int i = 0; i < 4; i++) CHECK_NEAR(L->best_gamma[i], sqrt(5.0) / 2.0, 1e-9);
    }
    mf_local_result_free(L);
    mf_model_free(m);
    mf_data_free(D);
}

/* R1, fc-linear depth 3 width 3 at the global point W1 = e1 e1^T, W2 = e1 e1^T,
 * W3 = e1^T: gamma = 3^{-3/2}. */
TEST(r1_global_point) {
    mf_data *D = data("builtin:R1");
    mf_model *m = model("fc-linear:depth=3,width=3", D);
    double th[6 + 9 + 3] = {0};
    th[0] = 1.0;      /* W1[0][0] */
    th[6] = 1.0;      /* W2[0][0] */
    th[15] = 1.0;     /* W3[0][0] */
    double g0;
    CHECK_NEAR(qmin_at(m, D, th, &g0), 1.0, 0);
    CHECK_NEAR(g0, pow(3.0, -1.5), 1e-15);
    mf_directional_result *r = NULL;
    mf_err e = {0, ""};
    CHECK_EQ_INT(mf_directional_test(m, D, th, 1e-3, 1e-6, 4096, &r, &e), MF_OK);
    if (r) CHECK_EQ_INT(r->found, 0);
    mf_directional_result_free(r);
    mf_local_result *L = NULL;
    CHECK_EQ_INT(mf_local_search(m, D, th, radii, 4, 3, 1, &L, &e), MF_OK);
    if (L) {
        printf("local R1/fc-linear: gain %.3g\n", L->best_gain);
        CHECK(fabs(L->best_gain) <= 1e-8, "gain %g at the global optimum", L->best_gain);
    }
    mf_local_result_free(L);
    mf_model_free(m);
    mf_data_free(D);
}

/* B: u = v = (1, 0) is KKT (gamma = 0.5) but not a local optimum. */
TEST(local_search_B) {
    mf_data *D = data("builtin:B");
    mf_model *m = model("diag:depth=2", D);
    double th[4] = {1, 0, 1, 0};
    mf_directional_result *r = NULL;
    mf_err e = {0, ""};
    /* smooth point: the first-order test cannot see it (second order needed) */
    CHECK_EQ_INT(mf_directional_test(m, D, th, 1e-3, 1e-6, 4096, &r, &e), MF_OK);
    if (r) CHECK_EQ_INT(r->found, 0);
    mf_directional_result_free(r);

    mf_local_result *L = NULL, *L2 = NULL;
    CHECK_EQ_INT(mf_local_search(m, D, th, radii, 4, 2, 3, &L, &e), MF_OK);
    CHECK_EQ_INT(mf_local_search(m, D, th, radii, 4, 2, 3, &L2, &e), MF_OK);
    if (L && L2) {
        printf("local B: gamma0 %.6g, best per radius %.9g %.9g %.9g %.9g, gain %.6g\n",
               L->gamma0, L->best_gamma[0], L->best_gamma[1], L->best_gamma[2],
               L->best_gamma[3], L->best_gain);
        CHECK_NEAR(L->gamma0, 0.5, 1e-15);
        /* at B's saddle the best gain in a ball of radius r is second order:
         * r^2 (the curve u = v = (sqrt(1 - t^2), t)) */
        for (int k = 0; k < 4; k++)
            CHECK_NEAR(L->best_gamma[k] / 0.5 - 1, radii[k] * radii[k], 1e-2 * radii[k] * radii[k]);
        double g;
        CHECK_NEAR(qmin_at(m, D, L->best_theta, &g), 1.0, 1e-9);
        CHECK_NEAR(g, L->best_gamma[0], 1e-12);
        /* deterministic given the seed */
        CHECK(memcmp(L->best_gamma, L2->best_gamma, sizeof L->best_gamma) == 0 &&
                  memcmp(L->best_theta, L2->best_theta, 4 * sizeof(double)) == 0,
              "two runs with seed 3 differ");
        CHECK_EQ_INT(L->evaluations, L2->evaluations);
    }
    mf_local_result_free(L);
    mf_local_result_free(L2);
    mf_model_free(m);
    mf_data_free(D);
}

static void check_maxmargin(const char *dspec, const char *mspec, int starts, double want) {
    mf_data *D = data(dspec);
    mf_model *m = model(mspec, D);
    mf_maxmargin_result *r = NULL;
    mf_err e = {0, ""};
    int rc = mf_maxmargin(m, D, starts, 1, 1e-6, &r, &e);
    CHECK_EQ_INT(rc, MF_OK);
    if (r) {
        printf("maxmargin %s %s: best %.12g, failures %d, values:", dspec, mspec, r->best_gamma,
               r->failures);
        int total = r->failures;
        for (int i = 0; i < r->n_values; i++) {
            printf(" %.9g x%d", r->values[i], r->counts[i]);
            total += r->counts[i];
            if (i > 0)
                CHECK(r->values[i] < r->values[i - 1], "values not descending at %d", i);
        }
        printf("\n");
        CHECK_EQ_INT(total, starts);
        CHECK_NEAR(r->best_gamma, want, 1e-6);
        if (r->n_values > 0) CHECK_NEAR(r->values[0], r->best_gamma, 0);
        double g;
        CHECK_NEAR(qmin_at(m, D, r->best_theta, &g), 1.0, 1e-9);
        CHECK_NEAR(g, want, 1e-6);
    } else {
        fprintf(stderr, "%s\n", e.msg);
    }
    mf_maxmargin_result_free(r);
    mf_model_free(m);
    mf_data_free(D);
}

TEST(maxmargin_known) {
    check_maxmargin("builtin:D", "relu2:width=2", 20, 1.0 / (2.0 * sqrt(2.0)));
    check_maxmargin("builtin:B", "diag:depth=2", 10, 1.0);
    check_maxmargin("builtin:sym4", "linear", 10, sqrt(5.0) / 2.0);
    /* [LLWA21] on symmetric data: gamma* = (1 + alpha) gamma_svm / 4 */
    check_maxmargin("builtin:sym4", "relu2:width=4,alpha=0.5", 10, 1.5 * sqrt(5.0) / 8.0);
}

/* Allocation failures: fail the k-th allocation for every k until the call
 * succeeds; each failing call must return MF_ERR_NOMEM and leak nothing
 * (checked by ASan's leak detector in the sanitized build). */
static long fail_at, n_alloc;
static void *fail_malloc(size_t n) { return ++n_alloc == fail_at ? NULL : malloc(n); }
static void *fail_realloc(void *p, size_t n) {
    return ++n_alloc == fail_at ? NULL : realloc(p, n);
}

TEST(allocation_failures) {
    mf_data *D = data("builtin:D");
    mf_model *m = model("relu2:width=2", D);
    double th[6] = {1, 0, 0, 1, 1, 1};
    const double rad[1] = {1e-2};
    for (int which = 0; which < 3; which++) {
        int nomem = 0, rc = MF_ERR_NOMEM;
        for (fail_at = 1; fail_at < 200 && rc == MF_ERR_NOMEM; fail_at++) {
            n_alloc = 0;
            mf_set_allocator(fail_malloc, fail_realloc, free);
            mf_directional_result *r = NULL;
            mf_local_result *L = NULL;
            mf_maxmargin_result *X = NULL;
            if (which == 0) rc = mf_directional_test(m, D, th, 1e-3, 1e-6, 16, &r, NULL);
            if (which == 1) rc = mf_local_search(m, D, th, rad, 1, 1, 1, &L, NULL);
            if (which == 2) rc = mf_maxmargin(m, D, 2, 1, 1e-6, &X, NULL);
            mf_set_allocator(NULL, NULL, NULL);
            if (rc == MF_ERR_NOMEM) nomem++;
            mf_directional_result_free(r);
            mf_local_result_free(L);
            mf_maxmargin_result_free(X);
        }
        CHECK_EQ_INT(rc, MF_OK);
        CHECK(nomem >= 5, "function %d: only %d allocations were failed", which, nomem);
    }
    mf_model_free(m);
    mf_data_free(D);
}

TEST(bad_inputs) {
    mf_data *D = data("builtin:D");
    mf_model *m = model("relu2:width=2", D);
    double th[6] = {1, 0, 0, 1, 1, 1};
    mf_err e = {0, ""};
    mf_directional_result *r = (mf_directional_result *)&e; /* must be reset to NULL */
    CHECK_EQ_INT(mf_directional_test(m, D, th, 1e-3, 1e-6, 0, &r, &e), MF_ERR_INVALID);
    CHECK(r == NULL, "out not cleared");
    CHECK(strstr(e.msg, "max_patterns") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(mf_directional_test(m, D, th, -1, 1e-6, 16, &r, &e), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_directional_test(NULL, D, th, 1e-3, 1e-6, 16, &r, &e), MF_ERR_INVALID);
    /* max_patterns below 2^n_zero: not exhaustive, still a certificate */
    CHECK_EQ_INT(mf_directional_test(m, D, th, 1e-3, 1e-6, 2, &r, &e), MF_OK);
    if (r) {
        CHECK_EQ_INT(r->searched, 0);
        CHECK_EQ_INT(r->n_patterns, 2);
    }
    mf_directional_result_free(r);
    double neg[6] = {-1, 0, 0, 1, 1, 1}; /* misclassifies x1 */
    CHECK_EQ_INT(mf_directional_test(m, D, neg, 1e-3, 1e-6, 16, &r, &e), MF_ERR_INVALID);
    double nan_th[6] = {1, 0, 0, 1, NAN, 1};
    CHECK_EQ_INT(mf_directional_test(m, D, nan_th, 1e-3, 1e-6, 16, &r, &e), MF_ERR_INVALID);

    mf_local_result *L = NULL;
    CHECK_EQ_INT(mf_local_search(m, D, th, radii, 0, 2, 1, &L, &e), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_local_search(m, D, th, radii, 4, 0, 1, &L, &e), MF_ERR_INVALID);
    double badr[1] = {-1};
    CHECK_EQ_INT(mf_local_search(m, D, th, badr, 1, 2, 1, &L, &e), MF_ERR_INVALID);
    CHECK(L == NULL, "out not NULL");

    mf_maxmargin_result *X = NULL;
    CHECK_EQ_INT(mf_maxmargin(m, D, 0, 1, 1e-6, &X, &e), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_maxmargin(m, D, 3, 1, -1, &X, &e), MF_ERR_INVALID);
    CHECK(X == NULL, "out not NULL");

    /* an mlp at a kink: unsupported, with a sentence */
    mf_model *mm = model("mlp:widths=2/2,alpha=0", D);
    double thm[4 + 4 + 2] = {1, 0, 0, 1, 1, 0, 0, 1, 1, 1};
    CHECK_EQ_INT(mf_directional_test(mm, D, thm, 1e-3, 1e-6, 16, &r, &e), MF_ERR_UNSUPPORTED);
    CHECK(strstr(e.msg, "mlp") != NULL, "message: %s", e.msg);
    mf_model_free(mm);

    /* non-homogeneous: (P) does not apply to the searches */
    mf_data *G = data("builtin:G");
    mf_model *sk = model("skip-linear", G);
    double ths[2] = {2, 1};
    CHECK_EQ_INT(mf_local_search(sk, G, ths, radii, 1, 1, 1, &L, &e), MF_ERR_UNSUPPORTED);
    CHECK_EQ_INT(mf_maxmargin(sk, G, 2, 1, 1e-6, &X, &e), MF_ERR_UNSUPPORTED);
    mf_model_free(sk);
    mf_data_free(G);

    /* dimension mismatch */
    mf_data *B = data("builtin:G");
    CHECK_EQ_INT(mf_directional_test(m, B, th, 1e-3, 1e-6, 16, &r, &e), MF_ERR_DIM);
    mf_data_free(B);

    mf_directional_result_free(NULL);
    mf_local_result_free(NULL);
    mf_maxmargin_result_free(NULL);
    mf_model_free(m);
    mf_data_free(D);
}

/* relu2 with bias, fix-outer and a leaky slope: the LP's direction must keep
 * q_min and raise gamma, measured by forward passes along it. */
TEST(directional_variants) {
    mf_data *D = data("builtin:D");
    /* fix-outer, width 2: a = (+1, -1); W2 = 0 makes unit 2 dead (kink on both) */
    mf_model *m = model("relu2:width=2,alpha=0.5,bias,fix-outer", D);
    double th[6] = {1, 1, 0, 0, 0, 0}; /* w1 = (1, 1, 0), w2 = 0 */
    mf_directional_result *r = NULL;
    mf_err e = {0, ""};
    int rc = mf_directional_test(m, D, th, 1e-3, 1e-6, 4096, &r, &e);
    CHECK_EQ_INT(rc, MF_OK);
    if (r) {
        printf("directional fix-outer: n_zero %d patterns %d found %d inner %.6g gains %.3g %.3g\n",
               r->n_zero, r->n_patterns, r->found, r->best_inner, r->gain[2], r->gain[3]);
        CHECK_EQ_INT(r->n_zero, 2);
        CHECK_EQ_INT(r->n_patterns, 4);
        /* L = 1: q_n = sigma(w1.x~_n) - sigma(w2.x~_n) = 1 on both samples. Moving
         * weight of w1 to the bias column, w1 = (1-t, 1-t, t), keeps both margins
         * at 1 with a smaller norm, so a direction must be found; on the box the
         * LP optimum is <theta, d> = -2 (dw1 = (-1, -1, 1) or better). */
        CHECK_EQ_INT(r->found, 1);
        CHECK(r->best_inner <= -2.0 + 1e-9, "best <theta, d> = %.17g", r->best_inner);
        if (r->found && r->d) {
            double tp[6], g0, g1;
            qmin_at(m, D, th, &g0);
            for (int i = 0; i < 6; i++) tp[i] = th[i] + 1e-6 * r->d[i];
            double q = qmin_at(m, D, tp, &g1);
            CHECK(q >= 1.0 - 1e-9, "q_min(theta + 1e-6 d) = %.17g", q);
            CHECK(g1 > g0, "gamma did not increase: %.17g -> %.17g", g0, g1);
        }
    }
    mf_directional_result_free(r);
    mf_model_free(m);
    mf_data_free(D);
}

int main(void) {
    RUN(directional_D);
    RUN(svm_point_is_local);
    RUN(r1_global_point);
    RUN(local_search_B);
    RUN(maxmargin_known);
    RUN(bad_inputs);
    RUN(directional_variants);
    RUN(allocation_failures);
    return TEST_REPORT();
}

/*
 * test_extremes.c -- numbers at the edges of double range. Metrics once
 * ||theta||^L overflows (the normalized, smoothed and layer margins in the
 * log domain, a value that cannot be represented is absent: NaN in the
 * struct, an empty CSV field), and the max-margin solver on separable data
 * scaled by factors from 1e-300 to 1e300 (the answer scales exactly with the
 * factor: gamma by it, w by its inverse, the same support).
 */
#define _POSIX_C_SOURCE 200809L
#include "marginflow.h"
#include "test.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Relative difference |a / b - 1| (0 when both are 0). */
static double rel(double a, double b) { return a == b ? 0.0 : fabs(a / b - 1.0); }

/* Metrics of theta for a model spec on a data spec (exp loss). */
static int metrics_of(const char *model, const char *data, const double *theta, mf_metrics *mt) {
    mf_err e = {0, ""};
    mf_data *D = NULL;
    mf_model *m = NULL;
    mf_work *w = NULL;
    int rc = mf_data_from_spec(data, NULL, &D, &e);
    if (!rc) rc = mf_model_parse(model, D->d, D->num_classes, &m, &e);
    if (!rc) rc = mf_work_new(m, D->n, &w, &e);
    if (!rc) rc = mf_metrics_eval(m, w, D, MF_LOSS_EXP, theta, NULL, mt, &e);
    CHECK(rc == MF_OK, "%s on %s: rc %d (%s)", model, data, rc, e.msg);
    mf_work_free(w);
    mf_model_free(m);
    mf_data_free(D);
    return rc;
}

/* diag:depth=2 on builtin:G (one sample x = 1, y = +1): Phi = u v. With
 * u = v = 1e154, ||theta||^2 = 2e308 overflows while q = 1e308 does not:
 * gamma = q / ||theta||^2 = 1/2, the smoothed margin -log L / ||theta||^2 =
 * q / ||theta||^2 = 1/2 (exp loss, one sample), the layer margin
 * q / (|u| |v|) = 1. (Before: 0, 0 and 1.) */
TEST(margins_past_the_norm_overflow) {
    const double theta[2] = {1e154, 1e154};
    mf_metrics mt;
    if (metrics_of("diag:depth=2", "builtin:G", theta, &mt)) return;
    CHECK(rel(mt.q_min, 1e154 * 1e154) < 1e-15, "q_min %.17g", mt.q_min);
    CHECK(rel(mt.norm, sqrt(2.0) * 1e154) < 1e-15, "norm %.17g", mt.norm);
    CHECK(rel(mt.normalized_margin, 0.5) < 1e-14, "normalized margin %.17g, want 0.5",
          mt.normalized_margin);
    CHECK(rel(mt.smoothed_margin, 0.5) < 1e-14, "smoothed margin %.17g, want 0.5",
          mt.smoothed_margin);
    CHECK(rel(mt.layer_margin, 1.0) < 1e-14, "layer margin %.17g, want 1", mt.layer_margin);

    /* far beyond: u = 1e300, v = 1e-290: q = 1e10, ||theta|| = 1e300,
     * gamma = 1e10 / 1e600 = 1e-590 cannot be represented: absent (NaN),
     * not 0; the layer margin is exactly 1. */
    const double th2[2] = {1e300, 1e-290};
    if (metrics_of("diag:depth=2", "builtin:G", th2, &mt)) return;
    CHECK(isnan(mt.normalized_margin), "normalized margin %.17g, want absent (NaN)",
          mt.normalized_margin);
    CHECK(isnan(mt.smoothed_margin), "smoothed margin %.17g, want absent (NaN)",
          mt.smoothed_margin);
    CHECK(rel(mt.layer_margin, 1.0) < 1e-14, "layer margin %.17g, want 1", mt.layer_margin);

    /* ||theta|| itself beyond DBL_MAX: diag:depth=2 on builtin:D (x = e_1,
     * e_2), u = (1.5e308, 1e-300), v = (1e-300, 1.5e308): q = 1.5e8 both,
     * ||theta|| = 1.5e308 sqrt 2 = inf; gamma = q / ||theta||^2 ~ 3e-609:
     * absent; the norm column is absent too (inf). The layer margin
     * q / (||u|| ||v||) = 1.5e8 / 2.25e616 is absent. */
    const double th3[4] = {1.5e308, 1e-300, 1e-300, 1.5e308};
    if (metrics_of("diag:depth=2", "builtin:D", th3, &mt)) return;
    CHECK(rel(mt.q_min, 1.5e8) < 1e-15, "q_min %.17g", mt.q_min);
    CHECK(isnan(mt.normalized_margin) && isnan(mt.layer_margin),
          "normalized %.17g, layer %.17g: want absent", mt.normalized_margin, mt.layer_margin);

    /* in range, the log-domain formulas give the plain quotient: fc-linear
     * depth 2 on builtin:B, every entry 0.5 */
    const double th4[6] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    if (metrics_of("fc-linear:depth=2,width=2", "builtin:B", th4, &mt)) return;
    double q = 0.5 * (0.5 * 1 + 0.5 * 2) * 2; /* W2 W1 x = sum_k 0.5 (0.5 + 1) */
    CHECK(rel(mt.q_min, q) < 1e-15, "q_min %.17g, want %.17g", mt.q_min, q);
    CHECK(rel(mt.normalized_margin, q / 1.5) < 1e-15, "normalized %.17g, want %.17g",
          mt.normalized_margin, q / 1.5); /* ||theta||^2 = 6 * 0.25 */
    CHECK(rel(mt.layer_margin, q / (1.0 * sqrt(0.5))) < 1e-15, "layer %.17g",
          mt.layer_margin); /* ||W1|| = 1, ||W2|| = sqrt(0.5) */
    CHECK(rel(mt.smoothed_margin, q / 1.5) < 1e-15, "smoothed %.17g", mt.smoothed_margin);

    /* theta = 0: the margins are 0 (documented), not absent */
    const double zero[2] = {0, 0};
    if (metrics_of("linear", "builtin:B", zero, &mt)) return;
    CHECK(mt.normalized_margin == 0 && mt.layer_margin == 0 && mt.smoothed_margin == 0,
          "at theta = 0: %g %g %g", mt.normalized_margin, mt.layer_margin, mt.smoothed_margin);
    /* a negative margin keeps its sign in the log domain */
    const double neg[2] = {-1, 0};
    if (metrics_of("linear", "builtin:B", neg, &mt)) return;
    CHECK(mt.normalized_margin == -1.0, "negative margin %.17g, want -1", mt.normalized_margin);
}

/* The other edge: ||theta||^2 and prod ||W_l|| underflow to 0 while q does
 * not. fc-linear:depth=2,width=1 on one sample x = 1e200: W1 = W2 = 1e-200,
 * so W1 x = 1 and q = 1e-200; ||theta||^2 = 2e-400 and ||W1|| ||W2|| =
 * 1e-400 are 0 as doubles, gamma = 1e-200 / 2e-400 = 5e199 and the layer
 * margin 1e-200 / 1e-400 = 1e200. (Before: 0 and 0, from denominators 0.) */
TEST(margins_past_the_norm_underflow) {
    mf_err e = {0, ""};
    mf_data *D = NULL;
    mf_model *m = NULL;
    mf_work *w = NULL;
    int rc = mf_data_new(1, 1, 0, &D, &e);
    if (!rc) {
        D->x[0] = 1e200;
        D->y[0] = 1;
        rc = mf_model_parse("fc-linear:depth=2,width=1", 1, 0, &m, &e);
    }
    if (!rc) rc = mf_work_new(m, 1, &w, &e);
    const double theta[2] = {1e-200, 1e-200};
    mf_metrics mt;
    if (!rc) rc = mf_metrics_eval(m, w, D, MF_LOSS_EXP, theta, NULL, &mt, &e);
    CHECK(rc == MF_OK, "rc %d (%s)", rc, e.msg);
    if (rc == MF_OK) {
        CHECK(rel(mt.q_min, 1e-200) < 1e-15, "q_min %.17g", mt.q_min);
        CHECK(rel(mt.normalized_margin, 5e199) < 1e-14, "normalized %.17g, want 5e199",
              mt.normalized_margin);
        CHECK(rel(mt.layer_margin, 1e200) < 1e-14, "layer %.17g, want 1e200", mt.layer_margin);
    }
    mf_work_free(w);
    mf_model_free(m);
    mf_data_free(D);
}

/* mf_smoothed_margin directly: -log_loss / norm^L with norm^L overflowing. */
TEST(smoothed_margin_log_domain) {
    double g = mf_smoothed_margin(MF_LOSS_EXP, -1e308, sqrt(2.0) * 1e154, 2);
    CHECK(rel(g, 0.5) < 1e-14, "exp: %.17g, want 0.5", g);
    /* logistic far below underflow: -log(expm1(Loss)) ~ -log_loss */
    g = mf_smoothed_margin(MF_LOSS_LOGISTIC, -1e308, sqrt(2.0) * 1e154, 2);
    CHECK(rel(g, 0.5) < 1e-14, "logistic: %.17g, want 0.5", g);
    /* unrepresentable: absent */
    g = mf_smoothed_margin(MF_LOSS_EXP, -1.0, 1e200, 2);
    CHECK(isnan(g), "1 / 1e400: %.17g, want NaN", g);
    /* an ordinary value is unchanged: -log_loss / norm^L */
    g = mf_smoothed_margin(MF_LOSS_EXP, -3.0, 2.0, 3);
    CHECK(rel(g, 3.0 / 8.0) < 1e-15, "3/8: %.17g", g);
    /* loss above 1 gives a negative smoothed margin */
    g = mf_smoothed_margin(MF_LOSS_EXP, 2.0, 2.0, 1);
    CHECK(g == -1.0, "-1: %.17g", g);
    g = mf_smoothed_margin(MF_LOSS_EXP, -3.0, 0.0, 2);
    CHECK(g == 0.0, "norm 0: %.17g, want 0 (documented)", g);
}

/* Absent values print as empty CSV fields, never "nan" or "inf". */
TEST(csv_absent_fields) {
    /* the discretization indicators: beta and margin_change absent (NAN), the
     * two maxima finite; no epoch fields */
    mf_metrics m = {7, log(3.0), -2.5, INFINITY, 1.0, NAN, NAN, 0.25, 0.1, 0.0, NAN,
                    NAN, 1e-3, -INFINITY, NAN, -1, 0, NAN, NAN, NAN, NAN};
    char row[1024];
    mf_metrics_csv_row(&m, row, sizeof row);
    char want[1024];
    char t[64], lt[64], ll[64], lm[64];
    mf_format_log_value(t, sizeof t, log(3.0));
    mf_format_double(lt, sizeof lt, log(3.0) / log(10.0));
    mf_format_double(ll, sizeof ll, -2.5);
    mf_format_double(lm, sizeof lm, 0.1);
    snprintf(want, sizeof want, "7,%s,%s,%s,,1,,,0.25,%s,0,,,0.001,,", t, lt, ll, lm);
    CHECK(strcmp(row, want) == 0, "row '%s', want '%s'", row, want);
    CHECK(!strstr(row, "nan") && !strstr(row, "inf"), "row '%s'", row);
}

/* ------------------------------------------------ svm scale invariance */

/* Separable data through the origin with a planted margin (gauss spec),
 * every entry multiplied by f: the l2 and l1 answers scale exactly. */
static void scaled_case(mf_svm_norm norm, double f, const mf_data *D, const mf_svm_result *r0,
                        int exact) {
    mf_data *S = NULL;
    if (mf_data_new(D->n, D->d, 0, &S, NULL)) return;
    for (size_t i = 0; i < (size_t)D->n * D->d; i++) S->x[i] = D->x[i] * f;
    memcpy(S->y, D->y, sizeof(double) * (size_t)D->n);
    mf_svm_result *r = NULL;
    mf_err e = {0, ""};
    int rc = mf_svm_solve(S, norm, NULL, &r, &e);
    CHECK(rc == MF_OK && r, "%s f=%g: rc %d (%s)", mf_svm_norm_name(norm), f, rc, e.msg);
    if (r) {
        double tol = exact ? 0 : 1e-12;
        CHECK(r->status == MF_SVM_SOLVED, "%s f=%g: %s (certificate norm %g)",
              mf_svm_norm_name(norm), f, mf_svm_status_name(r->status), r->certificate_norm);
        if (r->status == MF_SVM_SOLVED) {
            CHECK(rel(r->gamma, r0->gamma * f) <= tol, "%s f=%g: gamma %.17g, want %.17g",
                  mf_svm_norm_name(norm), f, r->gamma, r0->gamma * f);
            CHECK(rel(r->gamma_lower, r0->gamma_lower * f) <= tol &&
                      rel(r->gamma_upper, r0->gamma_upper * f) <= tol,
                  "%s f=%g: bracket [%.17g, %.17g]", mf_svm_norm_name(norm), f, r->gamma_lower,
                  r->gamma_upper);
            int wbad = 0;
            for (int j = 0; j < D->d; j++) {
                double want = r0->w[j] / f;
                wbad += fabs(want) >= DBL_MIN && rel(r->w[j], want) > (exact ? 0 : 1e-11);
            }
            CHECK(wbad == 0, "%s f=%g: %d entries of w are not w0 / f", mf_svm_norm_name(norm),
                  f, wbad);
            CHECK(r->n_support == r0->n_support &&
                      memcmp(r->support, r0->support, sizeof(int) * (size_t)r->n_support) == 0,
                  "%s f=%g: support of %d, want %d", mf_svm_norm_name(norm), f, r->n_support,
                  r0->n_support);
            CHECK(r->kkt_residual <= r0->kkt_residual * 10 + 1e-13, "%s f=%g: kkt %g vs %g",
                  mf_svm_norm_name(norm), f, r->kkt_residual, r0->kkt_residual);
            CHECK(rel(r->q_min, r0->q_min) <= (exact ? 0 : 1e-12), "%s f=%g: q_min %.17g vs %.17g",
                  mf_svm_norm_name(norm), f, r->q_min, r0->q_min);
            /* the duals scale by 1/f^2 (l2) or 1/f (l1) where representable */
            double p = norm == MF_SVM_L2 ? 2.0 : 1.0;
            int abad = 0;
            for (int i = 0; i < D->n; i++) {
                double want = r0->alpha[i] / pow(f, p);
                if (isfinite(want) && want != 0 && fabs(want) > DBL_MIN)
                    abad += rel(r->alpha[i], want) > (exact ? 0 : 1e-11);
            }
            CHECK(abad == 0, "%s f=%g: %d duals off", mf_svm_norm_name(norm), f, abad);
        }
    }
    mf_svm_result_free(r);
    mf_data_free(S);
}

TEST(svm_scale_invariance) {
    mf_data *D = NULL;
    mf_err e = {0, ""};
    if (mf_data_from_spec("gauss:n=40,d=5,margin=0.2,seed=7", NULL, &D, &e)) return;
    for (int norm = 0; norm < 2; norm++) {
        mf_svm_result *r0 = NULL;
        int rc = mf_svm_solve(D, (mf_svm_norm)norm, NULL, &r0, &e);
        CHECK(rc == MF_OK && r0 && r0->status == MF_SVM_SOLVED, "unscaled: rc %d (%s)", rc, e.msg);
        if (!r0) continue;
        /* powers of two: the same bits inside, so exactly scaled answers */
        for (int k = -990; k <= 990; k += 90) scaled_case((mf_svm_norm)norm, ldexp(1.0, k), D, r0, 1);
        /* decimal factors over the whole range */
        const double fs[] = {1e-300, 1e-200, 1e-155, 1e-100, 1e-10, 1e10,
                             1e100,  1e155,  1e200,  1e300};
        for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
            scaled_case((mf_svm_norm)norm, fs[i], D, r0, 0);
        mf_svm_result_free(r0);
    }
    mf_data_free(D);

    /* non-separable data (+z and -z) scaled by 2^k: the same certificate
     * weights, its norm scaled by 2^k, never inf */
    double x[4] = {1, 2, -1.25, -2.5}, y[2] = {1, 1};
    double c0[2] = {0, 0}, n0 = 0;
    const int ks[] = {0, -1000, -500, 500, 1000};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        double f = ldexp(1.0, ks[t]);
        mf_data *N = NULL;
        if (mf_data_new(2, 2, 0, &N, NULL)) return;
        for (int i = 0; i < 4; i++) N->x[i] = x[i] * f;
        memcpy(N->y, y, sizeof y);
        mf_svm_result *r = NULL;
        int rc = mf_svm_solve(N, MF_SVM_L2, NULL, &r, &e);
        CHECK(rc == MF_OK && r && r->status == MF_SVM_NONSEPARABLE, "nonsep 2^%d: rc %d (%s)",
              ks[t], rc, e.msg);
        if (r && r->certificate) {
            if (t == 0) {
                c0[0] = r->certificate[0];
                c0[1] = r->certificate[1];
                n0 = r->certificate_norm;
                CHECK(n0 < 1e-15 && rel(c0[0], 5.0 / 9.0) < 1e-12, "certificate %.17g %.17g, norm %g",
                      c0[0], c0[1], n0);
            }
            CHECK(r->certificate[0] == c0[0] && r->certificate[1] == c0[1],
                  "2^%d: certificate %.17g %.17g", ks[t], r->certificate[0], r->certificate[1]);
            CHECK(isfinite(r->certificate_norm) &&
                      (r->certificate_norm == ldexp(n0, ks[t]) || ldexp(n0, ks[t]) < DBL_MIN),
                  "2^%d: certificate norm %g, want %g", ks[t], r->certificate_norm,
                  ldexp(n0, ks[t]));
        }
        mf_svm_result_free(r);
        mf_data_free(N);
    }
}

int main(void) {
    RUN(margins_past_the_norm_overflow);
    RUN(margins_past_the_norm_underflow);
    RUN(smoothed_margin_log_domain);
    RUN(csv_absent_fields);
    RUN(svm_scale_invariance);
    return TEST_REPORT();
}

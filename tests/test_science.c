/*
 * test_science.c -- end-to-end known answers: train with mf_train, then
 * judge the limit with mf_analyze (issue 3's trained-run cases; the
 * constructed limit points are in test_analyze.c).
 *   C asymmetric init (0.5 vs 0.49) -> the global 3^{-3/2} = 0.192450.
 *   sym4, two-layer leaky ReLU from a tiny init: small KKT residual, and the
 *   ratio to (1 + alpha) gamma_svm / 4 grows towards 1 with the horizon.
 *   B trained from docs/theory.md's init -> not-local with d'Hd = -2.
 */
#include "marginflow.h"
#include "test.h"
#include "trained.h"

#include <math.h>
#include <string.h>

static mf_analysis *analyze(const trained *t, int search) {
    mf_analyze_settings as;
    mf_analyze_settings_default(&as);
    if (!search) as.local_trials = 1;
    mf_analysis *a = NULL;
    mf_err e = {0, ""};
    if (mf_analyze(t->model, t->data, t->st->theta, MF_LOSS_EXP, &as, &a, &e) != MF_OK)
        fprintf(stderr, "analyze: %s\n", e.msg);
    return a;
}

/* docs/theory.md s.4 case C with the asymmetric init: the flow leaves the symmetric
 * KKT point and reaches the global optimum, certified by the closed form
 * (enumeration for depth-3 diagonal nets). Convergence needs w_1 >> 24.5
 * (w_2's limit), i.e. a very deep loss, which the log domain makes cheap. */
TEST(C_asymmetric_reaches_global) {
    double init[6] = {0.5, 0.49, 0.5, 0.49, 0.5, 0.49};
    trained t;
    CHECK_EQ_INT(train_to(&t, "builtin:C", "diag:depth=3", init, 0, 0, MF_OPT_FLOW, -1e300), MF_OK);
    CHECK_EQ_INT(t.res.outcome, MF_OUT_LOSS_TARGET);
    CHECK_NEAR(t.res.final.normalized_margin, pow(3.0, -1.5), 1e-5);
    mf_analysis *a = analyze(&t, 0);
    CHECK(a != NULL, "analysis failed");
    if (a) {
        CHECK_NEAR(a->gamma_star, pow(3.0, -1.5), 1e-12);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_GLOBAL);
        CHECK_NEAR(a->ratio, 1.0, 1e-4);
    }
    mf_analysis_free(a);
    trained_free(&t);
}

/* docs/theory.md s.4 case B trained from its init: the analysis certifies that the
 * limit is not a local optimum, by the second-order test along
 * d = e_u2 + e_v2 (d'Hd = -2; the unit eigenvector has eigenvalue -1). */
TEST(B_trained_not_local) {
    double init[4] = {1, 1, 1, -1};
    trained t;
    CHECK_EQ_INT(train_to(&t, "builtin:B", "diag:depth=2", init, 0, 0, MF_OPT_SCALED, -10000), MF_OK);
    mf_analysis *a = analyze(&t, 0);
    CHECK(a != NULL, "analysis failed");
    if (a) {
        CHECK_EQ_INT(a->verdict, MF_VERDICT_NOT_LOCAL);
        CHECK(a->eps < 1e-6, "eps %g", a->eps);
        CHECK_NEAR(a->min_eig, -1.0, 1e-6);
        CHECK_NEAR(a->gamma_star, 1.0, 1e-12);
        CHECK_NEAR(a->ratio, 0.5, 1e-6);
    }
    mf_analysis_free(a);
    trained_free(&t);
}

/* [LLWA21] / docs/theory.md s.4: two-layer leaky ReLU (alpha = 0.5, width 20,
 * sigma = 1e-6) on sym4, by gradient flow. The margin rises slowly towards
 * gamma* = (1 + alpha) gamma_svm / 4 = 0.41926: assert the trend (the
 * ratio grows with the horizon and stays below 1), a KKT residual that
 * shrinks, and the value reported. (Fixed-alpha scaled GD and lyu-li do not
 * show the trend: at log10 Loss -3000 their ratio has fallen back to 0.9986
 * and 0.988 with eps 0.32, discretization error once the loss weights are
 * sharp; the adaptive flow keeps it.) */
TEST(sym4_trend_towards_gamma_star) {
    static const double targets[3] = {-30, -300, -3000};
    double ratio[3] = {0}, eps[3] = {0};
    for (int k = 0; k < 3; k++) {
        trained t;
        CHECK_EQ_INT(train_to(&t, "builtin:sym4", "relu2:width=20,alpha=0.5", NULL, 1e-6, 1,
                              MF_OPT_FLOW, targets[k]),
                     MF_OK);
        mf_analysis *a = analyze(&t, 0);
        CHECK(a != NULL, "analysis failed at log10 Loss %g", targets[k]);
        if (a) {
            CHECK_NEAR(a->gamma_star, 1.5 * sqrt(5.0) / 2 / 4, 1e-9);
            ratio[k] = a->ratio;
            eps[k] = a->eps;
            printf("sym4 at log10 Loss %g: gamma/gamma* = %.9f, eps = %.3g, verdict %s\n",
                   targets[k], a->ratio, a->eps, mf_verdict_name(a->verdict));
        }
        mf_analysis_free(a);
        trained_free(&t);
    }
    CHECK(ratio[0] < ratio[1] && ratio[1] < ratio[2] && ratio[2] <= 1 + 1e-12,
          "ratios %.9f %.9f %.9f must rise towards 1", ratio[0], ratio[1], ratio[2]);
    CHECK(ratio[2] > 0.99999, "ratio %.9f at log10 Loss -3000", ratio[2]);
    CHECK(eps[0] > eps[1] && eps[1] > eps[2] && eps[2] < 0.005, "eps %g -> %g -> %g", eps[0], eps[1],
          eps[2]);
}

/* [VSS22]: a two-layer ReLU net whose limit has no pre-activation at 0 is
 * a local optimum. A trained (not exactly converged) run must be judged
 * local-certified with the SLSQP searches on: gains that only reflect the
 * run's remaining distance from its limit (~1e-5 here) are measured against
 * the KKT point polished from theta~ and do not count as certificates. */
TEST(smooth_relu2_local_with_search) {
    trained t;
    CHECK_EQ_INT(train_to(&t, "gauss:n=16,d=2,margin=0.2,seed=2", "relu2:width=2,alpha=0", NULL, 0.5,
                          1, MF_OPT_FLOW, -10000),
                 MF_OK);
    mf_analysis *a = analyze(&t, 1);
    CHECK(a != NULL, "analysis failed");
    if (a) {
        CHECK_EQ_INT(a->n_kinks, 0);
        CHECK(a->eps < 1e-4, "eps %g", a->eps);
        CHECK(a->min_eig > 0.5, "min eigenvalue %g", a->min_eig);
        CHECK(a->local != NULL, "the search must have run");
        CHECK(!isnan(a->gamma_polished) && a->gamma_polished >= a->gamma * (1 - 1e-12),
              "polished %g vs gamma %g", a->gamma_polished, a->gamma);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_LOCAL_CERTIFIED);
        printf("smooth relu2: eps %.3g delta %.3g gain %.3g polished/gamma - 1 = %.3g, %s\n", a->eps,
               a->delta, a->local ? a->local->best_gain : NAN, a->gamma_polished / a->gamma - 1,
               mf_verdict_name(a->verdict));
    }
    mf_analysis_free(a);
    trained_free(&t);
}

/* Kinks are identified on the scale of the active set (zero_tol 1e-3): a
 * relu2 flow run leaves 11 (sample, unit) pre-activations converging to 0 at
 * relative sizes 1e-8..5e-4. With zero_tol 1e-6 (the old default) the set
 * of freed Clarke coefficients changed from horizon to horizon and eps went
 * 0.15 -> 0.20 -> 0.135; on the active-set scale it falls at every horizon
 * (the ll20-kkt claim's relu2 run). */
TEST(relu2_kkt_eps_falls_with_horizon) {
    static const double targets[3] = {-1000, -3000, -10000};
    double eps[3] = {0};
    for (int k = 0; k < 3; k++) {
        trained t;
        CHECK_EQ_INT(train_to(&t, "gauss:n=40,d=5,margin=0.1,seed=1", "relu2:width=8,alpha=0.2", NULL,
                              0.5, 1, MF_OPT_FLOW, targets[k]),
                     MF_OK);
        mf_analysis *a = analyze(&t, 0);
        CHECK(a != NULL, "analysis failed");
        if (a) {
            eps[k] = a->eps;
            printf("relu2 gauss at log10 Loss %g: eps %.4g, kinks %d\n", targets[k], a->eps, a->n_kinks);
        }
        mf_analysis_free(a);
        trained_free(&t);
    }
    CHECK(eps[0] > eps[1] && eps[1] > eps[2] && eps[2] < 0.05, "eps %g -> %g -> %g", eps[0], eps[1],
          eps[2]);
}

int main(void) {
    RUN(C_asymmetric_reaches_global);
    RUN(B_trained_not_local);
    RUN(sym4_trend_towards_gamma_star);
    RUN(smooth_relu2_local_with_search);
    RUN(relu2_kkt_eps_falls_with_horizon);
    return TEST_REPORT();
}

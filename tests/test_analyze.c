/*
 * test_analyze.c -- the analysis of src/analyze.c on the known-answer cases
 * of docs/theory.md section 4, with theta constructed directly at the known
 * limit points (no training): KKT residuals, multipliers, the Euler identity, the
 * Lagrangian Hessian along the directions of section 4 (d'Hd = -2 for B, -6 for C),
 * the directional certificate for D, the closed-form global optima for R1,
 * linear and leaky ReLU on sym4, the non-homogeneous verdict for G, the
 * margin Jacobian against finite differences and the pre-activations of D;
 * the verdict rules of src/verdict.c on constructed evidence, and the
 * settings a result carries.
 */
#include "analysis_internal.h"
#include "marginflow.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static mf_data *load(const char *spec) {
    mf_data *d = NULL;
    mf_err e;
    int rc = mf_data_from_spec(spec, NULL, &d, &e);
    CHECK(rc == MF_OK, "data %s: %s", spec, rc ? e.msg : "");
    return d;
}

static mf_model *model(const char *spec, const mf_data *d) {
    mf_model *m = NULL;
    mf_err e;
    int rc = mf_model_parse(spec, d->d, d->num_classes, &m, &e);
    CHECK(rc == MF_OK, "model %s: %s", spec, rc ? e.msg : "");
    return m;
}

static mf_analysis *analyze(const mf_model *m, const mf_data *d, const double *theta) {
    mf_analyze_settings s;
    mf_analyze_settings_default(&s);
    s.local_trials = 4;
    mf_analysis *a = NULL;
    mf_err e;
    int rc = mf_analyze(m, d, theta, MF_LOSS_EXP, &s, &a, &e);
    CHECK(rc == MF_OK, "mf_analyze on %s / %s: %s", m->spec, d->desc, rc ? e.msg : "");
    if (a) fprintf(stderr, "  [%s / %s] verdict %s: %s\n", m->spec, d->desc, mf_verdict_name(a->verdict),
                   a->verdict_reason);
    return a;
}

/*
 * d' H d with H = I - sum_n lambda_n Hess q_n(theta), Hess q_n d by central
 * differences of the exact gradients (mf_margin_jacobian), independent of
 * the analysis' own Hessian.
 */
static double dHd(const mf_model *m, const mf_data *D, const double *theta, const double *lambda,
                  const double *d) {
    size_t P = m->n_params;
    int N = D->n;
    double h = 1e-5, *tp = calloc(P, sizeof *tp), *tm = calloc(P, sizeof *tm);
    double *Jp = malloc((size_t)N * P * sizeof *Jp), *Jm = malloc((size_t)N * P * sizeof *Jm);
    for (size_t i = 0; i < P; i++) {
        tp[i] = theta[i] + h * d[i];
        tm[i] = theta[i] - h * d[i];
    }
    mf_margin_jacobian(m, D, tp, NULL, Jp, NULL);
    mf_margin_jacobian(m, D, tm, NULL, Jm, NULL);
    double s = 0;
    for (size_t i = 0; i < P; i++) s += d[i] * d[i];
    for (int n = 0; n < N; n++)
        for (size_t i = 0; i < P; i++)
            s -= lambda[n] * d[i] * (Jp[(size_t)n * P + i] - Jm[(size_t)n * P + i]) / (2 * h);
    free(tp);
    free(tm);
    free(Jp);
    free(Jm);
    return s;
}

/* B: u = v = (1, 0), x = (1, 2). */
TEST(test_B) {
    mf_data *D = load("builtin:B");
    mf_model *m = model("diag:depth=2", D);
    if (!D || !m) return;
    double theta[4] = {1, 0, 1, 0};
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK_NEAR(a->gamma, 0.5, 1e-15);
        CHECK(a->eps < 1e-10, "eps = %g", a->eps);
        CHECK_NEAR(a->lambda[0], 1.0, 1e-12); /* theta~ = lambda grad q, grad q = (1,0,1,0) */
        CHECK_NEAR(a->euler_lhs, 2.0, 1e-12);
        CHECK_NEAR(a->euler_rhs, 2.0, 1e-12);
        CHECK_NEAR(a->delta, 0.0, 1e-12);
        CHECK_EQ_INT(a->n_active, 1);
        CHECK_EQ_INT(a->has_global, 1);
        CHECK_NEAR(a->gamma_star, 1.0, 1e-9);
        CHECK_NEAR(a->ratio, 0.5, 1e-9);
        CHECK_EQ_INT(a->second_order_done, 1);
        /* on {d_u1 + d_v1 = 0}: min eigenvalue -1 along (e_u2 + e_v2)/sqrt 2 */
        CHECK_NEAR(a->min_eig, -1.0, 1e-6);
        if (a->dir) {
            CHECK_NEAR(fabs(a->dir[1]), sqrt(0.5), 1e-6);
            CHECK_NEAR(a->dir[1] * a->dir[3], 0.5, 1e-6);
            /* gain along theta~ + eps d: (1 + eps^2/2 ... ) > 0 for small eps */
            CHECK(a->gain[2] > 0 && a->gain[3] > 0, "gains %g %g", a->gain[2], a->gain[3]);
            /* exact: u = v = (1, t), t = eps/sqrt2: gamma = (1 + 2t^2)/(2 + 2t^2) */
            double t = 1e-1 / sqrt(2.0), want = (1 + 2 * t * t) / (2 + 2 * t * t) / 0.5 - 1;
            CHECK_NEAR(a->gain[0], want, 1e-12);
        }
        double d[4] = {0, 1, 0, 1};
        CHECK_NEAR(dHd(m, D, a->theta_tilde, a->lambda, d), -2.0, 1e-6);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_NOT_LOCAL);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* C: depth-3 diagonal, x = (1, 1), w_l = (2^{-1/3}, 2^{-1/3}). */
TEST(test_C) {
    mf_data *D = load("builtin:C");
    mf_model *m = model("diag:depth=3", D);
    if (!D || !m) return;
    double c = pow(2.0, -1.0 / 3), theta[6];
    for (int i = 0; i < 6; i++) theta[i] = c;
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK_NEAR(a->gamma, 0.136083, 1e-6);
        CHECK(a->eps < 1e-10, "eps = %g", a->eps);
        CHECK_NEAR(a->lambda[0], pow(2.0, 1.0 / 3), 1e-12);
        CHECK_NEAR(a->euler_lhs, a->euler_rhs, 1e-12);
        CHECK_NEAR(a->gamma_star, pow(3.0, -1.5), 1e-9); /* by vertex enumeration */
        double d[6] = {1, -1, 1, -1, 1, -1};
        CHECK_NEAR(dHd(m, D, a->theta_tilde, a->lambda, d), -6.0, 1e-6);
        CHECK(a->min_eig < -1e-3, "min_eig = %g", a->min_eig);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_NOT_LOCAL);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* D: two-layer ReLU at w1 = (1, 0), w2 = (0, 1), a = (1, 1): kinks. */
TEST(test_D) {
    mf_data *D = load("builtin:D");
    mf_model *m = model("relu2:width=2,alpha=0", D);
    if (!D || !m) return;
    double theta[6] = {1, 0, 0, 1, 1, 1};
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK_NEAR(a->gamma, 0.25, 1e-15);
        CHECK_EQ_INT(a->n_kinks, 2);
        CHECK(a->eps < 1e-10, "eps = %g", a->eps);
        CHECK_NEAR(a->lambda[0], 1.0, 1e-10);
        CHECK_NEAR(a->lambda[1], 1.0, 1e-10);
        CHECK_NEAR(a->euler_rhs, 4.0, 1e-10);
        CHECK_EQ_INT(a->second_order_done, 0);
        CHECK(a->directional != NULL, "directional test did not run: %s", a->verdict_reason);
        if (a->directional) {
            CHECK_EQ_INT(a->directional->found, 1);
            CHECK(a->directional->best_inner < 0, "best_inner = %g", a->directional->best_inner);
        }
        CHECK_EQ_INT(a->verdict, MF_VERDICT_NOT_LOCAL);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* R1: fc-linear depth 3 width 3, W_l = e1 e1^T (rank one along w_svm = (1, 0)). */
TEST(test_R1) {
    mf_data *D = load("builtin:R1");
    mf_model *m = model("fc-linear:depth=3,width=3", D);
    if (!D || !m) return;
    double theta[3 * 2 + 3 * 3 + 1 * 3] = {0};
    theta[m->layers[0].offset] = 1.0; /* W1[0][0] */
    theta[m->layers[1].offset] = 1.0; /* W2[0][0] */
    theta[m->layers[2].offset] = 1.0; /* W3[0][0] */
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK_NEAR(a->gamma, pow(3.0, -1.5), 1e-15);
        CHECK(a->eps < 1e-10, "eps = %g", a->eps);
        CHECK_NEAR(a->gamma_star, pow(3.0, -1.5), 1e-10);
        CHECK_NEAR(a->ratio, 1.0, 1e-4);
        CHECK_NEAR(a->euler_lhs, a->euler_rhs, 1e-10);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_GLOBAL);
    }
    mf_analysis_free(a);
    /* a scaled copy has the same verdict (theta~ is scale-free) */
    for (size_t i = 0; i < m->n_params; i++) theta[i] *= 7.5;
    a = analyze(m, D, theta);
    if (a) CHECK_EQ_INT(a->verdict, MF_VERDICT_GLOBAL);
    mf_analysis_free(a);
    /* a rotated-away point is not KKT */
    theta[m->layers[0].offset + 1] = 3.0; /* W1[0][1] */
    a = analyze(m, D, theta);
    if (a) {
        CHECK(a->eps > 1e-2, "eps = %g", a->eps);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_NOT_KKT);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* linear on sym4 at w_svm = (0.8, 0.4): gamma_svm = sqrt 5 / 2. */
TEST(test_linear_sym4) {
    mf_data *D = load("builtin:sym4");
    mf_model *m = model("linear", D);
    if (!D || !m) return;
    double theta[2] = {0.8, 0.4};
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK_NEAR(a->gamma, sqrt(5.0) / 2, 1e-12);
        CHECK_NEAR(a->gamma_star, sqrt(5.0) / 2, 1e-10);
        CHECK(a->eps < 1e-10, "eps = %g", a->eps);
        CHECK_EQ_INT(a->n_active, 2); /* (1, 0.5) and its mirror */
        CHECK_EQ_INT(a->verdict, MF_VERDICT_GLOBAL);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* linear on a planted-margin set at the exact SVM solution of mf_svm: the
 * analysis' NNLS multipliers must equal the SVM dual variables (two
 * independent solvers of the same KKT system), and the verdict is global. */
TEST(test_linear_gauss_vs_svm) {
    mf_data *D = load("gauss:n=60,d=8,margin=0.1,seed=5");
    mf_model *m = model("linear", D);
    if (!D || !m) return;
    mf_svm_result *r = NULL;
    mf_err e;
    int rc = mf_svm_solve(D, MF_SVM_L2, NULL, &r, &e);
    CHECK(rc == MF_OK && r && r->status == MF_SVM_SOLVED, "svm: %s", rc ? e.msg : "status");
    if (rc || !r) return;
    mf_analysis *a = analyze(m, D, r->w);
    if (a) {
        CHECK(a->eps < 1e-9, "eps = %g", a->eps);
        CHECK_NEAR(a->ratio, 1.0, 1e-9);
        double worst = 0, amax = 0;
        for (int n = 0; n < D->n; n++) {
            double diff = fabs(a->lambda[n] - r->alpha[n]);
            if (diff > worst) worst = diff;
            if (r->alpha[n] > amax) amax = r->alpha[n];
        }
        CHECK(worst <= 1e-8 * amax, "max |lambda - alpha_svm| = %g (max alpha %g)", worst, amax);
        CHECK_NEAR(a->euler_lhs, a->euler_rhs, 1e-9 * a->euler_lhs);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_GLOBAL);
    }
    mf_analysis_free(a);
    mf_svm_result_free(r);
    mf_model_free(m);
    mf_data_free(D);
}

/* relu2 leaky alpha = 0.5 on sym4 at the linear-along-w_svm network:
 * w_1 = c u, a_1 = c, w_2 = -c u, a_2 = -c gives gamma = (1+alpha) gamma_svm / 4. */
TEST(test_relu2_sym4_global) {
    mf_data *D = load("builtin:sym4");
    mf_model *m = model("relu2:width=2,alpha=0.5", D);
    if (!D || !m) return;
    double u0 = 2 / sqrt(5.0), u1 = 1 / sqrt(5.0);
    double theta[6] = {u0, u1, -u0, -u1, 1, -1};
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK_NEAR(a->gamma_star, 1.5 * sqrt(5.0) / 2 / 4, 1e-10);
        CHECK_NEAR(a->gamma_star, 0.41926, 1e-5);
        CHECK_NEAR(a->ratio, 1.0, 1e-10);
        CHECK(a->eps < 1e-10, "eps = %g", a->eps);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_GLOBAL);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* D's global optimum with one neuron: w = c (1, 1)/sqrt 2, a = c, c^2 = sqrt 2.
 * Smooth KKT point, lambda = (1/sqrt 2, 1/sqrt 2); the critical subspace is
 * spanned by d = (1, 1, -sqrt 2)/2 with d'Hd = 2 > 0: local-certified (no
 * closed form for D, so not "global"). */
TEST(test_local_certified) {
    mf_data *D = load("builtin:D");
    mf_model *m = model("relu2:width=1,alpha=0", D);
    if (!D || !m) return;
    double c = pow(2.0, 0.25), theta[3] = {c / sqrt(2.0), c / sqrt(2.0), c};
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK_NEAR(a->gamma, 1 / (2 * sqrt(2.0)), 1e-15);
        CHECK_EQ_INT(a->n_kinks, 0);
        CHECK(a->eps < 1e-10, "eps = %g", a->eps);
        CHECK_NEAR(a->lambda[0], 1 / sqrt(2.0), 1e-12);
        CHECK_NEAR(a->lambda[1], 1 / sqrt(2.0), 1e-12);
        CHECK_NEAR(a->euler_lhs, 2 * sqrt(2.0), 1e-12);
        CHECK_NEAR(a->euler_rhs, 2 * sqrt(2.0), 1e-12);
        CHECK_EQ_INT(a->has_global, 0);
        CHECK_NEAR(a->min_eig, 2.0, 1e-6);
        if (a->dir) CHECK_NEAR(fabs(a->dir[2]), sqrt(2.0) / 2, 1e-6);
        CHECK(a->local != NULL, "local search did not run");
        if (a->local) CHECK(a->local->best_gain <= 1e-9, "gain %g", a->local->best_gain);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_LOCAL_CERTIFIED);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* Multi-class mlp at a random point: runs end to end (the verdict depends on
 * the point; the KKT residual of a random point is large). */
TEST(test_multiclass_smoke) {
    mf_data *D = load("tests/data/multi3.svm");
    if (!D) return;
    mf_model *m = model("linear", D);
    if (!m) {
        mf_data_free(D);
        return;
    }
    /* W = the three class directions (0, 120, 240 degrees): separating */
    double theta[6] = {1, 0, -0.5, sqrt(3.0) / 2, -0.5, -sqrt(3.0) / 2};
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK(a->q_min > 0, "q_min = %g", a->q_min);
        CHECK(isfinite(a->eps), "eps = %g", a->eps);
        CHECK_EQ_INT(a->has_global, 0);
        CHECK(a->verdict != MF_VERDICT_NON_HOMOGENEOUS && a->verdict != MF_VERDICT_GLOBAL, "verdict %s",
              mf_verdict_name(a->verdict));
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* Allocation failures: failing the k-th allocation inside mf_analyze gives
 * MF_ERR_NOMEM (or MF_OK once k is past the last allocation), never a crash
 * or a leak (ASan). */
static long g_alloc_left;
static void *fail_malloc(size_t n) { return g_alloc_left-- > 0 ? malloc(n) : NULL; }
static void *fail_realloc(void *p, size_t n) { return g_alloc_left-- > 0 ? realloc(p, n) : NULL; }

TEST(test_alloc_failures) {
    /* B: second-order path; D: kinks (extreme rays, directional test);
     * relu2 width 1 on D: second order + local search. */
    const char *cases[][2] = {{"diag:depth=2", "builtin:B"},
                              {"relu2:width=2,alpha=0", "builtin:D"},
                              {"relu2:width=1,alpha=0", "builtin:D"}};
    double c = pow(2.0, 0.25);
    const double thetas[][6] = {{1, 0, 1, 0}, {1, 0, 0, 1, 1, 1}, {c / sqrt(2.0), c / sqrt(2.0), c}};
    for (int t = 0; t < 3; t++) {
        mf_data *D = load(cases[t][1]);
        mf_model *m = model(cases[t][0], D);
        if (!D || !m) return;
        mf_analyze_settings s;
        mf_analyze_settings_default(&s);
        s.local_trials = 1;
        int ok_at = -1, bad_codes = 0;
        for (long k = 0; k < 20000 && ok_at < 0; k++) {
            mf_analysis *a = NULL;
            mf_err e;
            g_alloc_left = k;
            mf_set_allocator(fail_malloc, fail_realloc, free);
            int rc = mf_analyze(m, D, thetas[t], MF_LOSS_EXP, &s, &a, &e);
            mf_set_allocator(NULL, NULL, NULL);
            if (rc == MF_OK) ok_at = (int)k;
            else if (rc != MF_ERR_NOMEM) {
                bad_codes++;
                fprintf(stderr, "  %s: alloc %ld: rc %d: %s\n", cases[t][0], k, rc, e.msg);
            }
            if (rc != MF_OK) CHECK(a == NULL, "analysis returned with error %d", rc);
            mf_analysis_free(a);
        }
        CHECK(ok_at > 10, "%s: mf_analyze succeeded after %d allocations", cases[t][0], ok_at);
        CHECK_EQ_INT(bad_codes, 0);
        mf_model_free(m);
        mf_data_free(D);
    }
}

/* G: skip-linear is not homogeneous. */
TEST(test_G) {
    mf_data *D = load("builtin:G");
    mf_model *m = model("skip-linear", D);
    if (!D || !m) return;
    double theta[2] = {2, 1};
    mf_analysis *a = analyze(m, D, theta);
    if (a) {
        CHECK_EQ_INT(a->verdict, MF_VERDICT_NON_HOMOGENEOUS);
        CHECK_NEAR(a->gamma, 0.8, 1e-15); /* 2 * 2 / 5 */
        CHECK(isnan(a->eps), "eps = %g", a->eps);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* Per-layer problem P_l on B at u = v = (1, 0): layer v frozen at (1, 0),
 * q = u1 v1 x1 + u2 v2 x2 = u1, so P_0 = min 1/2 ||u||^2 s.t. u1 >= 1: 1/2 at u~. */
TEST(test_layer) {
    mf_data *D = load("builtin:B");
    mf_model *m = model("diag:depth=2", D);
    if (!D || !m) return;
    double theta[4] = {1, 0, 1, 0};
    mf_analyze_settings s;
    mf_analyze_settings_default(&s);
    s.layer = 0;
    mf_analysis *a = NULL;
    mf_err e;
    int rc = mf_analyze(m, D, theta, MF_LOSS_EXP, &s, &a, &e);
    CHECK(rc == MF_OK, "%s", rc ? e.msg : "");
    if (a) {
        CHECK_NEAR(a->layer_value, 0.5, 1e-12);
        CHECK_NEAR(a->layer_opt, 0.5, 1e-10);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_GLOBAL);
    }
    mf_analysis_free(a);
    /* u = (1, 1), v = (1, 0): P_0 still has optimum 1/2 but 1/2 ||u~||^2 = 1 */
    theta[1] = 1;
    a = NULL;
    rc = mf_analyze(m, D, theta, MF_LOSS_EXP, &s, &a, &e);
    CHECK(rc == MF_OK, "%s", rc ? e.msg : "");
    if (a) {
        CHECK_NEAR(a->layer_opt, 0.5, 1e-10);
        CHECK_NEAR(a->layer_value, 1.0, 1e-12);
    }
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
    /* the hidden layer of relu2 is not a convex problem */
    D = load("builtin:D");
    m = model("relu2:width=2,alpha=0", D);
    double th[6] = {1, 0, 0, 1, 1, 1};
    s.layer = 0;
    a = NULL;
    rc = mf_analyze(m, D, th, MF_LOSS_EXP, &s, &a, &e);
    CHECK_EQ_INT(rc, MF_ERR_UNSUPPORTED);
    CHECK(a == NULL, "analysis returned on error");
    s.layer = 1; /* output layer: q = a1 + a2 *... convex */
    rc = mf_analyze(m, D, th, MF_LOSS_EXP, &s, &a, &e);
    CHECK(rc == MF_OK, "%s", rc ? e.msg : "");
    if (a) {
        /* features c_1 = (1, 0), c_2 = (0, 1): optimum a = (1, 1), 1/2||a||^2 = 1 */
        CHECK_NEAR(a->layer_opt, 1.0, 1e-10);
        CHECK_NEAR(a->layer_value, 1.0, 1e-12);
    }
    mf_analysis_free(a);
    s.layer = 5;
    a = NULL;
    rc = mf_analyze(m, D, th, MF_LOSS_EXP, &s, &a, &e);
    CHECK_EQ_INT(rc, MF_ERR_INVALID);
    mf_model_free(m);
    mf_data_free(D);
}

/* mf_margin_jacobian against central differences of the margins, on a
 * smooth random point of several models (binary and multi-class). */
TEST(test_jacobian_fd) {
    const char *cases[][2] = {{"relu2:width=3,alpha=0.3,bias", "builtin:sym4"},
                              {"mlp:widths=3/2,alpha=0.2", "builtin:sym4"},
                              {"fc-linear:depth=3,width=2", "builtin:R1"},
                              {"diag:depth=3", "builtin:C"},
                              {"linear", "tests/data/multi3.svm"},
                              {"mlp:widths=4,alpha=0.1", "tests/data/multi3.svm"}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        mf_data *D = load(cases[t][1]);
        if (!D) continue;
        mf_model *m = model(cases[t][0], D);
        if (!m) {
            mf_data_free(D);
            continue;
        }
        size_t P = m->n_params;
        int N = D->n;
        double *th = malloc(P * sizeof *th), *J = malloc((size_t)N * P * sizeof *J);
        double *qp = malloc((size_t)N * sizeof *qp), *qm = malloc((size_t)N * sizeof *qm);
        mf_rng r;
        mf_rng_seed(&r, 11 + t);
        for (size_t i = 0; i < P; i++) th[i] = mf_rng_normal(&r);
        mf_err e;
        int rc = mf_margin_jacobian(m, D, th, NULL, J, &e);
        CHECK(rc == MF_OK, "%s", rc ? e.msg : "");
        double worst = 0, h = 1e-6;
        for (size_t i = 0; i < P; i++) {
            double s = th[i];
            th[i] = s + h;
            mf_margin_jacobian(m, D, th, qp, NULL, NULL);
            th[i] = s - h;
            mf_margin_jacobian(m, D, th, qm, NULL, NULL);
            th[i] = s;
            for (int n = 0; n < N; n++) {
                double fd = (qp[n] - qm[n]) / (2 * h), an = J[(size_t)n * P + i];
                double err = fabs(fd - an) / (1 + fabs(an));
                if (err > worst) worst = err;
            }
        }
        CHECK(worst < 1e-6, "%s on %s: worst relative FD error %g", cases[t][0], cases[t][1], worst);
        free(th);
        free(J);
        free(qp);
        free(qm);
        mf_model_free(m);
        mf_data_free(D);
    }
}

/* Pre-activations of D at the limit: z[n][k] = <w_k, x_n>. */
TEST(test_preactivations) {
    mf_data *D = load("builtin:D");
    mf_model *m = model("relu2:width=2,alpha=0", D);
    if (!D || !m) return;
    CHECK_EQ_INT(mf_model_n_hidden(m), 2);
    double theta[6] = {1, 0, 0, 1, 1, 1}, pre[4];
    int rc = mf_model_preactivations(m, theta, D, pre, NULL);
    CHECK_EQ_INT(rc, MF_OK);
    CHECK_NEAR(pre[0], 1, 0);
    CHECK_NEAR(pre[1], 0, 0);
    CHECK_NEAR(pre[2], 0, 0);
    CHECK_NEAR(pre[3], 1, 0);
    mf_model_free(m);
    /* with bias: x~ = (x, 1) */
    m = model("relu2:width=1,alpha=0,bias", D);
    double th2[4] = {2, 3, -0.5, 1};
    rc = mf_model_preactivations(m, th2, D, pre, NULL);
    CHECK_NEAR(pre[0], 1.5, 0);
    CHECK_NEAR(pre[1], 2.5, 0);
    mf_model_free(m);
    /* mlp: layer by layer, second layer sees the ReLU of the first */
    m = model("mlp:widths=2/1,alpha=0", D);
    CHECK_EQ_INT(mf_model_n_hidden(m), 3);
    double th3[2 * 2 + 2 + 1] = {1, -1, -2, 1, 3, 5, 1}, pre3[6];
    rc = mf_model_preactivations(m, th3, D, pre3, NULL);
    /* x1 = (1,0): z1 = (1, -2), h = (1, 0), z2 = 3. x2 = (0,1): z1 = (-1, 1), h = (0, 1), z2 = 5 */
    CHECK_NEAR(pre3[0], 1, 0);
    CHECK_NEAR(pre3[1], -2, 0);
    CHECK_NEAR(pre3[2], 3, 0);
    CHECK_NEAR(pre3[3], -1, 0);
    CHECK_NEAR(pre3[4], 1, 0);
    CHECK_NEAR(pre3[5], 5, 0);
    mf_model_free(m);
    mf_data_free(D);
}

TEST(test_settings) {
    mf_analyze_settings s;
    mf_analyze_settings_default(&s);
    CHECK(mf_analyze_settings_validate(&s) == NULL, "defaults invalid");
    CHECK_NEAR(s.kkt_tol, 1e-3, 0);
    CHECK_EQ_INT(s.layer, -1);
    s.kkt_tol = 0;
    const char *msg = mf_analyze_settings_validate(&s);
    CHECK(msg && strstr(msg, "kkt_tol"), "message: %s", msg ? msg : "(null)");
    mf_analyze_settings_default(&s);
    s.hess_h = NAN;
    msg = mf_analyze_settings_validate(&s);
    CHECK(msg && strstr(msg, "hess_h"), "message: %s", msg ? msg : "(null)");
    mf_analyze_settings_default(&s);
    s.layer = -2;
    msg = mf_analyze_settings_validate(&s);
    CHECK(msg && strstr(msg, "layer"), "message: %s", msg ? msg : "(null)");
    CHECK(strcmp(mf_verdict_name(MF_VERDICT_GLOBAL), "global") == 0, "name");
    CHECK(strcmp(mf_verdict_name(MF_VERDICT_NOT_LOCAL), "not-local") == 0, "name");
    CHECK(strcmp(mf_verdict_name(MF_VERDICT_LOCAL_EVIDENCE), "local-evidence") == 0, "name");
    mf_analysis_free(NULL);
}

/* Evidence of a KKT point with nothing decided yet (kkt_tol 1e-3,
 * global_tol 1e-4). */
static mf__evidence evidence(void) {
    mf__evidence ev;
    memset(&ev, 0, sizeof ev);
    ev.spec = "relu2:width=2,alpha=0";
    ev.homogeneous = 1;
    ev.degree = 2;
    ev.gamma = 0.25;
    ev.q_min = 4.0;
    ev.norm = 4.0;
    ev.kkt_done = 1;
    ev.eps = 1e-6;
    ev.layer = -1;
    ev.local_done = 1;
    ev.note = " NOTE.";
    ev.kkt_tol = 1e-3;
    ev.global_tol = 1e-4;
    ev.ratio = NAN;
    return ev;
}

static void expect_verdict(const mf__evidence *ev, int decided, mf_verdict want, const char *start,
                           const char *contains) {
    char r1[512] = "", r2[512] = "";
    mf_verdict v1 = (mf_verdict)-1, v2 = (mf_verdict)-1;
    int d1 = mf__verdict(ev, &v1, r1, sizeof r1), d2 = mf__verdict(ev, &v2, r2, sizeof r2);
    CHECK_EQ_INT(d1, decided);
    CHECK(d1 == d2 && v1 == v2 && strcmp(r1, r2) == 0, "not pure: '%s' vs '%s'", r1, r2);
    if (!decided) return;
    CHECK_EQ_INT(v1, want);
    CHECK(strncmp(r1, start, strlen(start)) == 0, "reason '%s' does not start with '%s'", r1, start);
    if (contains) CHECK(strstr(r1, contains) != NULL, "reason '%s' lacks '%s'", r1, contains);
}

/* The rules of verdict.c, in their order, on constructed evidence. */
TEST(test_verdict_rules) {
    mf__evidence ev = evidence();
    ev.homogeneous = 0;
    expect_verdict(&ev, 1, MF_VERDICT_NON_HOMOGENEOUS, "relu2:width=2,alpha=0 is not homogeneous",
                   "= 0.25 only");
    ev = evidence();
    ev.gamma = -0.1;
    ev.q_min = -1.6;
    expect_verdict(&ev, 1, MF_VERDICT_NOT_KKT, "not separating: q_min = -1.6 <= 0", NULL);
    ev = evidence();
    ev.kkt_done = 0;
    expect_verdict(&ev, 0, MF_VERDICT_GLOBAL, "", NULL);
    ev = evidence();
    ev.layer = 1;
    ev.layer_name = "a";
    ev.layer_value = ev.layer_opt = 0.5;
    expect_verdict(&ev, 1, MF_VERDICT_GLOBAL, "per-layer problem P_1 (a, other layers frozen)",
                   "(Whole network: eps = 1e-06, KKT.) NOTE.");
    ev.layer_value = 0.6;
    expect_verdict(&ev, 1, MF_VERDICT_NOT_LOCAL, "per-layer problem P_1 (a,", "exceeds the optimum");
    ev = evidence();
    ev.eps = 2e-3;
    ev.has_global = 1;
    ev.ratio = 0.5;
    expect_verdict(&ev, 1, MF_VERDICT_NOT_KKT, "not a KKT direction yet: eps = 0.002 > kkt_tol = 0.001",
                   ", 0.5 of gamma*). NOTE.");
    ev = evidence();
    ev.has_global = 1;
    ev.ratio = 1.0 + 5e-5;
    ev.gamma_star = 0.25;
    ev.global_source = "SRC";
    expect_verdict(&ev, 1, MF_VERDICT_GLOBAL, "KKT (eps = 1e-06) and gamma = 0.25 equals", "(SRC)");
    ev.ratio = 1.0 + 2e-4; /* beyond global_tol: on to the local tests */
    ev.local_done = 0;
    expect_verdict(&ev, 0, MF_VERDICT_GLOBAL, "", NULL);
    ev.local_done = 1;
    expect_verdict(&ev, 1, MF_VERDICT_LOCAL_EVIDENCE, "KKT (eps = 1e-06); no improvement found",
                   "evidence, not proof. gamma / gamma* = 1.0002 (SRC). NOTE.");
    ev = evidence();
    ev.loc.so_not_local = ev.loc.dir_not_local = 1;
    snprintf(ev.loc.so_note, sizeof ev.loc.so_note, "SO");
    ev.so_gain = 0.125;
    expect_verdict(&ev, 1, MF_VERDICT_NOT_LOCAL, "KKT (eps = 1e-06) but SO; margin gain along it 0.125",
                   NULL);
    ev.loc.so_not_local = 0;
    ev.n_kinks = 3;
    expect_verdict(&ev, 1, MF_VERDICT_NOT_LOCAL, "KKT (eps = 1e-06) at a non-smooth point (3 kinks)", NULL);
    ev.loc.dir_not_local = 0;
    ev.loc.search_not_local = 1;
    ev.local_best_gain = 0.5;
    expect_verdict(&ev, 1, MF_VERDICT_NOT_LOCAL, "KKT (eps = 1e-06) but the local re-solve", "0.5 higher");
    ev.loc.search_not_local = 0;
    ev.loc.so_certified = 1; /* at kinks the sufficient condition is not used */
    expect_verdict(&ev, 1, MF_VERDICT_LOCAL_EVIDENCE, "KKT (eps = 1e-06); no improvement found", "; SO:");
    ev.n_kinks = 0;
    ev.has_local = 1;
    ev.local_trials = 8;
    ev.local_best_gain = 1e-7;
    expect_verdict(&ev, 1, MF_VERDICT_LOCAL_CERTIFIED, "KKT (eps = 1e-06) at a smooth point and SO",
                   "8 starts each: best gain 1e-07.) NOTE.");
}

static int same_settings(const mf_analyze_settings *a, const mf_analyze_settings *b) {
    return a->kkt_tol == b->kkt_tol && a->act_tol == b->act_tol && a->zero_tol == b->zero_tol &&
           a->global_tol == b->global_tol && a->hess_h == b->hess_h &&
           a->local_trials == b->local_trials && a->seed == b->seed &&
           a->max_patterns == b->max_patterns && a->layer == b->layer;
}

/* The result carries the settings it was judged with. */
TEST(test_settings_carried) {
    mf_data *D = load("builtin:R1");
    mf_model *m = D ? model("linear", D) : NULL;
    if (!m) {
        mf_data_free(D);
        return;
    }
    double theta[2] = {1.0, 0.0};
    mf_analyze_settings s;
    mf_analyze_settings_default(&s);
    s.kkt_tol = 2e-3;
    s.act_tol = 3e-3;
    s.zero_tol = 4e-3;
    s.global_tol = 5e-4;
    s.local_trials = 0;
    mf_analysis *a = NULL;
    int rc = mf_analyze(m, D, theta, MF_LOSS_EXP, &s, &a, NULL);
    CHECK_EQ_INT(rc, MF_OK);
    if (a) {
        CHECK(same_settings(&a->settings, &s), "settings not carried");
        CHECK_NEAR(a->settings.global_tol, 5e-4, 0.0);
    }
    mf_analysis_free(a);
    a = NULL;
    rc = mf_analyze(m, D, theta, MF_LOSS_EXP, NULL, &a, NULL); /* NULL: the defaults */
    mf_analyze_settings_default(&s);
    if (a) CHECK(same_settings(&a->settings, &s), "default settings not carried");
    mf_analysis_free(a);
    mf_model_free(m);
    mf_data_free(D);
}

/* Bad inputs: dimension mismatch, non-separating theta. */
TEST(test_bad_inputs) {
    mf_data *D = load("builtin:D");
    mf_data *B = load("builtin:sym4");
    mf_model *m = model("linear", B);
    if (!D || !B || !m) return;
    mf_model *m3 = NULL;
    mf_model_parse("linear", 3, 0, &m3, NULL);
    double th[3] = {1, 1, 1};
    mf_analysis *a = NULL;
    mf_err e;
    CHECK_EQ_INT(mf_analyze(m3, D, th, MF_LOSS_EXP, NULL, &a, &e), MF_ERR_DIM);
    CHECK(a == NULL, "analysis on error");
    double wrong[2] = {-0.8, -0.4};
    int rc = mf_analyze(m, B, wrong, MF_LOSS_EXP, NULL, &a, &e);
    CHECK_EQ_INT(rc, MF_OK);
    if (a) {
        CHECK_EQ_INT(a->verdict, MF_VERDICT_NOT_KKT);
        CHECK(strstr(a->verdict_reason, "not separating") != NULL, "%s", a->verdict_reason);
    }
    mf_analysis_free(a);
    mf_model_free(m3);
    mf_model_free(m);
    mf_data_free(D);
    mf_data_free(B);
}

int main(void) {
    RUN(test_settings);
    RUN(test_verdict_rules);
    RUN(test_settings_carried);
    RUN(test_jacobian_fd);
    RUN(test_preactivations);
    RUN(test_B);
    RUN(test_C);
    RUN(test_D);
    RUN(test_R1);
    RUN(test_linear_sym4);
    RUN(test_linear_gauss_vs_svm);
    RUN(test_relu2_sym4_global);
    RUN(test_local_certified);
    RUN(test_multiclass_smoke);
    RUN(test_G);
    RUN(test_layer);
    RUN(test_bad_inputs);
    RUN(test_alloc_failures);
    return TEST_REPORT();
}

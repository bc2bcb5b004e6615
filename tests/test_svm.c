/*
 * test_svm.c -- the exact max-margin references (src/svm.c) against closed
 * forms from docs/theory.md section 4, an independent brute-force enumeration of
 * support sets, Debian's liblinear-train, and Gordan certificates on data
 * that is not separable through the origin; plus the l1 LP against its own
 * duality certificate recomputed here, bad input, and allocation failures.
 */
#define _POSIX_C_SOURCE 200809L
#include "marginflow.h"
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Binary data set from x [n][d] and y [n]. */
static mf_data *make(int n, int d, const double *x, const double *y) {
    mf_data *D = NULL;
    if (mf_data_new(n, d, 0, &D, NULL) != MF_OK) return NULL;
    memcpy(D->x, x, sizeof(double) * (size_t)n * d);
    memcpy(D->y, y, sizeof(double) * (size_t)n);
    return D;
}

static mf_svm_result *solve(const mf_data *D, mf_svm_norm norm) {
    mf_svm_result *r = NULL;
    mf_err e = {0, ""};
    int rc = mf_svm_solve(D, norm, NULL, &r, &e);
    CHECK(rc == MF_OK && r, "mf_svm_solve returned %d: %s", rc, e.msg);
    return rc == MF_OK ? r : NULL;
}

/* Planted-margin separable data: w* uniform on the sphere, x ~ N(0, I_d),
 * kept iff |<w*, x>| >= margin, y = sign <w*, x>. */
static mf_data *planted(int n, int d, double margin, uint64_t seed) {
    mf_rng g;
    mf_rng_seed(&g, seed);
    double ws[16], nw = 0;
    for (int j = 0; j < d; j++) {
        ws[j] = mf_rng_normal(&g);
        nw += ws[j] * ws[j];
    }
    for (int j = 0; j < d; j++) ws[j] /= sqrt(nw);
    mf_data *D = NULL;
    if (mf_data_new(n, d, 0, &D, NULL) != MF_OK) return NULL;
    for (int i = 0; i < n;) {
        double *x = D->x + (size_t)i * d, s = 0;
        for (int j = 0; j < d; j++) {
            x[j] = mf_rng_normal(&g);
            s += ws[j] * x[j];
        }
        if (fabs(s) < margin) continue;
        D->y[i++] = s > 0 ? 1.0 : -1.0;
    }
    return D;
}

/* ------------------------------------------------- docs/theory.md s.4 known answers */

/* B: a single point x = (1, 2): w = x / ||x||^2 = (1/5, 2/5),
 * gamma_svm = ||x|| = sqrt 5, alpha = 1/5. */
TEST(l2_case_B) {
    double x[2] = {1, 2}, y[1] = {1};
    mf_data *D = make(1, 2, x, y);
    mf_svm_result *r = solve(D, MF_SVM_L2);
    if (r) {
        CHECK_EQ_INT(r->status, MF_SVM_SOLVED);
        CHECK_NEAR(r->gamma, sqrt(5.0), 1e-14);
        CHECK_NEAR(r->w[0], 0.2, 1e-15);
        CHECK_NEAR(r->w[1], 0.4, 1e-15);
        CHECK_NEAR(r->alpha[0], 0.2, 1e-15);
        CHECK_EQ_INT(r->n_support, 1);
        CHECK(r->kkt_residual < 1e-14, "kkt %g", r->kkt_residual);
        CHECK(r->gamma_lower <= r->gamma * (1 + 1e-15) && r->gamma <= r->gamma_upper * (1 + 1e-15),
              "bracket %.17g <= %.17g <= %.17g", r->gamma_lower, r->gamma, r->gamma_upper);
    }
    mf_svm_result_free(r);
    mf_data_free(D);
}

/* R1: {((1,1), +1), ((-1,1), -1)}: z = (1,1), (1,-1); w = (1, 0),
 * gamma_svm = 1, alpha = (1/2, 1/2). */
TEST(l2_case_R1) {
    double x[4] = {1, 1, -1, 1}, y[2] = {1, -1};
    mf_data *D = make(2, 2, x, y);
    mf_svm_result *r = solve(D, MF_SVM_L2);
    if (r) {
        CHECK_EQ_INT(r->status, MF_SVM_SOLVED);
        CHECK_NEAR(r->gamma, 1.0, 1e-14);
        CHECK_NEAR(r->w[0], 1.0, 1e-14);
        CHECK_NEAR(r->w[1], 0.0, 1e-14);
        CHECK_NEAR(r->alpha[0], 0.5, 1e-14);
        CHECK_NEAR(r->alpha[1], 0.5, 1e-14);
        CHECK_EQ_INT(r->n_support, 2);
        CHECK(r->kkt_residual < 1e-13, "kkt %g", r->kkt_residual);
    }
    mf_svm_result_free(r);
    mf_data_free(D);
}

/* sym4 of docs/theory.md s.4 (P and -P, labels +1 on P): w_svm = (2,1)/sqrt5 /
 * gamma, gamma_svm = sqrt(5)/2; every z_n is a point of P twice, so the only
 * support direction is (1, 0.5) (active twice, alpha summing to 0.8). */
TEST(l2_case_sym4) {
    double x[16] = {1, 0.5, 2, -1, 0.6, 1.5, 3, 2, -1, -0.5, -2, 1, -0.6, -1.5, -3, -2};
    double y[8] = {1, 1, 1, 1, -1, -1, -1, -1};
    mf_data *D = make(8, 2, x, y);
    mf_svm_result *r = solve(D, MF_SVM_L2);
    if (r) {
        double g = sqrt(5.0) / 2;
        CHECK_EQ_INT(r->status, MF_SVM_SOLVED);
        CHECK_NEAR(r->gamma, g, 1e-14);
        CHECK_NEAR(r->w[0], 2 / sqrt(5.0) / g, 1e-14);
        CHECK_NEAR(r->w[1], 1 / sqrt(5.0) / g, 1e-14);
        CHECK_NEAR(r->alpha[0] + r->alpha[4], 0.8, 1e-14);
        CHECK_EQ_INT(r->n_active, 2);
        CHECK(r->kkt_residual < 1e-13, "kkt %g", r->kkt_residual);
    }
    mf_svm_result_free(r);
    mf_data_free(D);
}

/* l1 LP on B: minimize |b1| + |b2| s.t. b1 + 2 b2 >= 1 gives beta = (0, 1/2),
 * ||beta||_1 = 1/2, gamma_l1 = 2; the depth-2 diagonal net's global optimum
 * 1/(2 ||beta||_1) = 1.0 is docs/theory.md s.4 case B's "Global ... gamma = 1". The
 * dual is a = 1/2. */
TEST(l1_case_B) {
    double x[2] = {1, 2}, y[1] = {1};
    mf_data *D = make(1, 2, x, y);
    mf_svm_result *r = solve(D, MF_SVM_L1);
    if (r) {
        CHECK_EQ_INT(r->status, MF_SVM_SOLVED);
        CHECK_NEAR(r->w[0], 0.0, 1e-15);
        CHECK_NEAR(r->w[1], 0.5, 1e-15);
        CHECK_NEAR(r->gamma, 2.0, 1e-14);
        CHECK_NEAR(r->gamma_diag2, 1.0, 1e-14);
        CHECK_NEAR(r->alpha[0], 0.5, 1e-14);
        CHECK(r->kkt_residual < 1e-10, "kkt %g", r->kkt_residual);
        CHECK(r->lp_kkt_primal < 1e-10 && r->lp_kkt_dual < 1e-10, "glpk %g %g", r->lp_kkt_primal,
              r->lp_kkt_dual);
    }
    mf_svm_result_free(r);
    mf_data_free(D);
}

/* l1 LP on R1: b1 + b2 >= 1, b1 - b2 >= 1: beta = (1, 0), gamma_l1 = 1. */
TEST(l1_case_R1) {
    double x[4] = {1, 1, -1, 1}, y[2] = {1, -1};
    mf_data *D = make(2, 2, x, y);
    mf_svm_result *r = solve(D, MF_SVM_L1);
    if (r) {
        CHECK_NEAR(r->w[0], 1.0, 1e-14);
        CHECK_NEAR(r->w[1], 0.0, 1e-14);
        CHECK_NEAR(r->gamma, 1.0, 1e-14);
        CHECK_NEAR(r->gamma_diag2, 0.5, 1e-14);
        CHECK(r->kkt_residual < 1e-10, "kkt %g", r->kkt_residual);
    }
    mf_svm_result_free(r);
    mf_data_free(D);
}

/* ------------------------------------------- brute-force support-set check */

/* Solve G a = b (k x k, k <= 8) by Gauss-Jordan with partial pivoting; an
 * implementation independent of the library's LAPACK path. 0 if singular. */
static int gauss_solve(int k, double *G, double *b) {
    for (int c = 0; c < k; c++) {
        int p = c;
        for (int i = c + 1; i < k; i++)
            if (fabs(G[i * k + c]) > fabs(G[p * k + c])) p = i;
        if (fabs(G[p * k + c]) < 1e-13) return 0;
        for (int j = 0; j < k; j++) {
            double t = G[c * k + j];
            G[c * k + j] = G[p * k + j];
            G[p * k + j] = t;
        }
        double t = b[c];
        b[c] = b[p];
        b[p] = t;
        for (int i = 0; i < k; i++) {
            if (i == c) continue;
            double f = G[i * k + c] / G[c * k + c];
            for (int j = c; j < k; j++) G[i * k + j] -= f * G[c * k + j];
            b[i] -= f * b[c];
        }
    }
    for (int i = 0; i < k; i++) b[i] /= G[i * k + i];
    return 1;
}

/* Hard-margin SVM by enumeration: for every subset S with |S| <= d, solve
 * (Z_S Z_S^T) a = 1, w = Z_S^T a; keep S if a > 0 and q_n(w) >= 1 - 1e-12
 * for all n; the KKT conditions make any kept S optimal, and the smallest
 * ||w|| is returned (w_out [d]). Returns ||w|| or -1 if nothing qualified. */
static double brute_force(const mf_data *D, double *w_out) {
    int n = D->n, d = D->d;
    double best = -1;
    for (unsigned mask = 1; mask < (1u << n); mask++) {
        int S[8], k = 0;
        for (int i = 0; i < n; i++)
            if (mask & (1u << i)) S[k++] = i;
        if (k > d) continue;
        double G[64], a[8], w[3] = {0, 0, 0};
        for (int i = 0; i < k; i++) {
            a[i] = 1;
            for (int j = 0; j < k; j++) {
                double s = 0;
                for (int t = 0; t < d; t++)
                    s += D->y[S[i]] * D->x[S[i] * d + t] * D->y[S[j]] * D->x[S[j] * d + t];
                G[i * k + j] = s;
            }
        }
        if (!gauss_solve(k, G, a)) continue;
        int ok = 1;
        for (int i = 0; i < k; i++) {
            if (a[i] <= 0) ok = 0;
            for (int t = 0; t < d; t++) w[t] += a[i] * D->y[S[i]] * D->x[S[i] * d + t];
        }
        for (int i = 0; ok && i < n; i++) {
            double q = 0;
            for (int t = 0; t < d; t++) q += D->y[i] * D->x[i * d + t] * w[t];
            if (q < 1 - 1e-12) ok = 0;
        }
        if (!ok) continue;
        double nw = sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2]);
        if (best < 0 || nw < best) {
            best = nw;
            memcpy(w_out, w, sizeof w);
        }
    }
    return best;
}

TEST(l2_matches_brute_force) {
    int checked = 0;
    for (int trial = 0; trial < 60; trial++) {
        int d = 1 + trial % 3, n = 2 + trial % 7;
        mf_data *D = planted(n, d, 0.05 + 0.01 * (trial % 5), 1000 + trial);
        double wb[3];
        double nb = brute_force(D, wb);
        mf_svm_result *r = solve(D, MF_SVM_L2);
        if (r && nb > 0) {
            checked++;
            CHECK_EQ_INT(r->status, MF_SVM_SOLVED);
            CHECK_NEAR(r->gamma * nb, 1.0, 1e-10);
            for (int t = 0; t < d; t++) CHECK_NEAR(r->w[t], wb[t], 1e-10 * nb);
            CHECK(r->kkt_residual < 1e-10, "trial %d: kkt %g", trial, r->kkt_residual);
        }
        CHECK(nb > 0, "trial %d: brute force found no KKT support set", trial);
        mf_svm_result_free(r);
        mf_data_free(D);
    }
    CHECK_EQ_INT(checked, 60);
}

/* ------------------------------------------------------ liblinear check */

/* liblinear-train (Debian liblinear-tools) on D: -s 3 (L2-regularized
 * L1-loss SVC by dual coordinate descent), no bias (-B -1), C = 1e6. The
 * hinge-loss soft-margin problem has exactly the hard-margin solution once
 * C >= max_n alpha_n (about 1/gamma^2 ~ 1e2 here), so only the stopping
 * tolerance matters: -e 1e-10 gives agreement near 1e-9 relative when the
 * solver converges (-e 0.1, the default, only ~1e-3; the primal solvers
 * -s 2 / -s 1 with the squared hinge need C ~ 1e10 and still stop ~1e-5
 * short). liblinear-train stops after a fixed 1000 passes, printing
 * "reaching max number of iterations": *converged says whether it did not.
 * Sets *gamma = 1/||w|| and *gamma_feas = min_n y_n <w, x_n> / ||w|| (the
 * margin liblinear's direction actually achieves). Returns 0, or -1. */
static int liblinear(const mf_data *D, const char *dir, int k, double *gamma,
                     double *gamma_feas, int *converged) {
    char data[512], model[512], log[512], cmd[2000];
    snprintf(data, sizeof data, "%s/set%d.svm", dir, k);
    snprintf(model, sizeof model, "%s/set%d.model", dir, k);
    snprintf(log, sizeof log, "%s/set%d.log", dir, k);
    FILE *f = fopen(data, "w");
    if (!f) return -1;
    for (int i = 0; i < D->n; i++) {
        fprintf(f, "%+d", (int)D->y[i]);
        for (int j = 0; j < D->d; j++) fprintf(f, " %d:%.17g", j + 1, D->x[i * D->d + j]);
        fputc('\n', f);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "liblinear-train -s 3 -B -1 -c 1e6 -e 1e-10 '%s' '%s' >'%s' 2>&1",
             data, model, log);
    int rc = system(cmd) == 0 ? 0 : -1;
    char line[256];
    *converged = 1;
    if (rc == 0 && (f = fopen(log, "r")) != NULL) {
        while (fgets(line, sizeof line, f))
            if (strstr(line, "reaching max")) *converged = 0;
        fclose(f);
    }
    int first_label = 0, got = 0;
    double w[16], ww = 0, v;
    if (rc == 0 && (f = fopen(model, "r")) != NULL) {
        while (fgets(line, sizeof line, f)) {
            sscanf(line, "label %d", &first_label);
            if (!strcmp(line, "w\n")) break;
        }
        while (got < 16 && fscanf(f, "%lf", &v) == 1) {
            w[got++] = v;
            ww += v * v;
        }
        fclose(f);
    }
    remove(data);
    remove(model);
    remove(log);
    if (rc || got != D->d || (first_label != 1 && first_label != -1)) return -1;
    /* liblinear's decision value is positive for its first label */
    double qmin = INFINITY;
    for (int i = 0; i < D->n; i++) {
        double q = 0;
        for (int j = 0; j < D->d; j++) q += D->x[i * D->d + j] * w[j];
        q *= D->y[i] * first_label;
        if (q < qmin) qmin = q;
    }
    *gamma = 1 / sqrt(ww);
    *gamma_feas = qmin / sqrt(ww);
    return 0;
}

/* On every set, liblinear's direction achieves no more than gamma_svm (it is
 * a feasible point of the max-margin problem over directions); where
 * liblinear converged, 1/||w|| agrees with gamma_svm to 1e-6 relative. */
TEST(l2_matches_liblinear) {
    char dir[] = "/tmp/mf_test_svm_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    int ok_tool = system("command -v liblinear-train >/dev/null 2>&1") == 0;
    CHECK(ok_tool, "liblinear-train not found (Debian package liblinear-tools, scripts/install-deps)");
    int n_conv = 0, n_sets = 12;
    double worst = 0;
    for (int k = 0; ok_tool && k < n_sets; k++) {
        int d = 2 + k % 4, n = 30 + 10 * k;
        mf_data *D = planted(n, d, 0.2 + 0.05 * (k % 3), 77 + k);
        mf_svm_result *r = solve(D, MF_SVM_L2);
        double gl = -1, gf = -1;
        int conv = 0;
        CHECK(liblinear(D, dir, k, &gl, &gf, &conv) == 0, "set %d: liblinear-train failed", k);
        if (r && gl > 0) {
            n_conv += conv;
            CHECK(gf <= r->gamma * (1 + 1e-12), "set %d: liblinear's direction has margin %.17g > gamma_svm %.17g", k, gf, r->gamma);
            if (conv) worst = fmax(worst, fabs(r->gamma / gl - 1));
            if (conv)
                CHECK(fabs(r->gamma / gl - 1) <= 1e-6, "set %d (n=%d d=%d): gamma %.17g, liblinear %.17g", k, n, d, r->gamma, gl);
            CHECK(r->kkt_residual < 1e-10, "set %d (n=%d d=%d): kkt %g", k, n, d, r->kkt_residual);
        }
        mf_svm_result_free(r);
        mf_data_free(D);
    }
    /* the comparison must not be vacuous */
    CHECK(n_conv >= n_sets / 2, "liblinear converged on only %d of %d sets", n_conv, n_sets);
    printf("liblinear converged on %d of %d sets, worst relative difference %.3g\n", n_conv,
           n_sets, worst);
    rmdir(dir);
}

/* ---------------------------------------------------- larger / harder sets */

/* Residual contract on larger sets, with many points exactly on a planted
 * margin (the construction of data.c's "gauss" spec: degenerate ties), and
 * scale covariance: scaling x by s scales gamma by s. */
TEST(l2_large_and_scaled) {
    for (int k = 0; k < 4; k++) {
        int n = 400, d = 3 + 4 * k;
        mf_data *D = planted(n, d, 0.0, 500 + k);
        /* push every point with margin < 0.05 onto the margin along w* */
        mf_rng g;
        mf_rng_seed(&g, 500 + k);
        double ws[16], nw = 0;
        for (int j = 0; j < d; j++) {
            ws[j] = mf_rng_normal(&g);
            nw += ws[j] * ws[j];
        }
        for (int j = 0; j < d; j++) ws[j] /= sqrt(nw);
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < d; j++) s += ws[j] * D->x[i * d + j];
            if (D->y[i] * s < 0.05)
                for (int j = 0; j < d; j++) D->x[i * d + j] += (0.05 - D->y[i] * s) * D->y[i] * ws[j];
        }
        mf_svm_result *r = solve(D, MF_SVM_L2);
        if (r) {
            CHECK_EQ_INT(r->status, MF_SVM_SOLVED);
            CHECK(r->kkt_residual < 1e-10, "d=%d: kkt %g (primal %g dual %g comp %g gap %g)", d,
                  r->kkt_residual, r->primal_residual, r->dual_residual, r->complementarity,
                  r->gap);
            CHECK(r->gamma >= 0.05 * (1 - 1e-12), "gamma %.17g below the planted 0.05", r->gamma);
            CHECK(r->gamma_upper / r->gamma_lower - 1 < 1e-10, "bracket [%.17g, %.17g]",
                  r->gamma_lower, r->gamma_upper);
            for (double s = 1e-6; s < 1e7; s *= 1e6) {
                for (size_t i = 0; i < (size_t)n * d; i++) D->x[i] *= s;
                mf_svm_result *r2 = solve(D, MF_SVM_L2);
                if (r2) CHECK_NEAR(r2->gamma / (s * r->gamma), 1.0, 1e-10);
                if (r2) CHECK(r2->kkt_residual < 1e-10, "scaled %g: kkt %g", s, r2->kkt_residual);
                mf_svm_result_free(r2);
                for (size_t i = 0; i < (size_t)n * d; i++) D->x[i] /= s;
            }
        }
        mf_svm_result_free(r);
        mf_data_free(D);
    }
}

/* l1 LP on random separable sets: optimality checked here from the returned
 * beta and duals a by weak duality: beta feasible (q_min >= 1 - 1e-10),
 * a >= 0 with ||Z^T a||_inf <= 1 + 1e-10, and ||beta||_1 = sum a to 1e-10
 * relative. And gamma_l1 >= gamma_svm / sqrt(d) (||w||_1 <= sqrt(d) ||w||_2)
 * and gamma_l1 <= gamma_svm (||w||_2 <= ||w||_1). */
TEST(l1_duality_random) {
    for (int k = 0; k < 6; k++) {
        int d = 2 + k, n = 40 + 20 * k;
        mf_data *D = planted(n, d, 0.1, 300 + k);
        mf_svm_result *r = solve(D, MF_SVM_L1), *r2 = solve(D, MF_SVM_L2);
        if (r && r2) {
            double l1 = 0, sa = 0, qmin = INFINITY, v[16] = {0}, vinf = 0;
            for (int j = 0; j < d; j++) l1 += fabs(r->w[j]);
            for (int i = 0; i < n; i++) {
                double q = 0;
                for (int j = 0; j < d; j++) {
                    q += D->y[i] * D->x[i * d + j] * r->w[j];
                    v[j] += r->alpha[i] * D->y[i] * D->x[i * d + j];
                }
                if (q < qmin) qmin = q;
                CHECK(r->alpha[i] >= 0, "alpha[%d] = %g", i, r->alpha[i]);
                sa += r->alpha[i];
            }
            for (int j = 0; j < d; j++) vinf = fmax(vinf, fabs(v[j]));
            CHECK(qmin >= 1 - 1e-10, "q_min %.17g", qmin);
            CHECK(vinf <= 1 + 1e-10, "||Z^T a||_inf %.17g", vinf);
            CHECK_NEAR(sa / l1, 1.0, 1e-10);
            CHECK_NEAR(r->gamma * l1, 1.0, 1e-14);
            CHECK(r->kkt_residual < 1e-10, "kkt %g", r->kkt_residual);
            CHECK(r->gamma <= r2->gamma * (1 + 1e-10) && r->gamma * sqrt(d) >= r2->gamma * (1 - 1e-10),
                  "gamma_l1 %.17g vs gamma_svm %.17g", r->gamma, r2->gamma);
        }
        mf_svm_result_free(r);
        mf_svm_result_free(r2);
        mf_data_free(D);
    }
}

/* ------------------------------------------------------- non-separable */

/* Check the Gordan certificate here: c >= 0, sum c = 1, ||sum c_n z_n|| <
 * 1e-10, and the reported norm equals the recomputed one. */
static void check_certificate(const mf_data *D, const mf_svm_result *r, const char *what) {
    CHECK(r->status == MF_SVM_NONSEPARABLE, "%s: status %d", what, r->status);
    if (r->status != MF_SVM_NONSEPARABLE || !r->certificate) return;
    double sum = 0, p[16] = {0};
    int neg = 0;
    for (int i = 0; i < D->n; i++) {
        if (r->certificate[i] < 0) neg++;
        sum += r->certificate[i];
        for (int j = 0; j < D->d; j++) p[j] += r->certificate[i] * D->y[i] * D->x[i * D->d + j];
    }
    double pn = 0;
    for (int j = 0; j < D->d; j++) pn += p[j] * p[j];
    pn = sqrt(pn);
    CHECK_EQ_INT(neg, 0);
    CHECK_NEAR(sum, 1.0, 1e-14);
    CHECK(pn < 1e-10, "%s: ||Z^T c|| = %g", what, pn);
    CHECK_NEAR(r->certificate_norm, pn, 1e-15);
    CHECK(r->w == NULL && r->gamma == 0, "%s: w/gamma set on non-separable data", what);
}

TEST(nonseparable_certificates) {
    /* {x, -x} with the same label: c = (1/2, 1/2) */
    double x1[4] = {0.3, -1.7, -0.3, 1.7}, y1[2] = {1, 1};
    /* XOR */
    double x2[8] = {1, 1, -1, -1, 1, -1, -1, 1}, y2[4] = {1, 1, -1, -1};
    /* the origin itself cannot have margin >= 1: c = e_3 */
    double x3[6] = {1, 0, 0, 1, 0, 0}, y3[3] = {1, 1, -1};
    mf_data *D[4] = {make(2, 2, x1, y1), make(4, 2, x2, y2), make(3, 2, x3, y3), NULL};
    /* random labels on 60 points in R^3: not separable (checked by the certificate) */
    mf_rng g;
    mf_rng_seed(&g, 9);
    mf_data_new(60, 3, 0, &D[3], NULL);
    for (int i = 0; i < 60; i++) {
        for (int j = 0; j < 3; j++) D[3]->x[i * 3 + j] = mf_rng_normal(&g);
        D[3]->y[i] = mf_rng_uniform(&g) < 0.5 ? -1 : 1;
    }
    const char *names[4] = {"x,-x", "xor", "origin", "random"};
    for (int k = 0; k < 4; k++) {
        for (int norm = 0; norm < 2; norm++) {
            mf_svm_result *r = solve(D[k], (mf_svm_norm)norm);
            if (r) check_certificate(D[k], r, names[k]);
            if (r && k == 0) {
                CHECK_NEAR(r->certificate[0], 0.5, 1e-15);
                CHECK_NEAR(r->certificate[1], 0.5, 1e-15);
            }
            if (r && k == 2) CHECK_NEAR(r->certificate[2], 1.0, 0);
            mf_svm_result_free(r);
        }
        mf_data_free(D[k]);
    }
}

/* Robustness sweep: 300 random sets, n in 1..60, d in 1..12, half planted
 * separable and half with random labels, with duplicated points, mirrored
 * points (x, y) -> (-x, -y) and points lying exactly on the planted margin
 * (degenerate ties). Every answer must carry its evidence: SOLVED with KKT
 * residual < 1e-10 (and the duality bracket within 1e-10), or NONSEPARABLE
 * with a certificate of norm < 1e-10 checked here. */
TEST(robustness_sweep) {
    mf_rng g;
    mf_rng_seed(&g, 2024);
    int n_sep = 0, n_non = 0;
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)(mf_rng_uniform(&g) * 60), d = 1 + (int)(mf_rng_uniform(&g) * 12);
        int separable = trial % 2 == 0;
        mf_data *D = separable ? planted(n, d, 0.02 + 0.2 * mf_rng_uniform(&g), 9000 + trial) : NULL;
        if (!separable) {
            mf_data_new(n, d, 0, &D, NULL);
            for (int i = 0; i < n * d; i++) D->x[i] = mf_rng_normal(&g);
            for (int i = 0; i < n; i++) D->y[i] = mf_rng_uniform(&g) < 0.5 ? -1 : 1;
        }
        for (int i = 1; i < n; i++) {
            double u = mf_rng_uniform(&g);
            int src = (int)(mf_rng_uniform(&g) * i);
            if (u < 0.1) { /* duplicate */
                memcpy(D->x + i * d, D->x + src * d, sizeof(double) * d);
                D->y[i] = D->y[src];
            } else if (u < 0.2) { /* mirror */
                for (int j = 0; j < d; j++) D->x[i * d + j] = -D->x[src * d + j];
                D->y[i] = -D->y[src];
            }
        }
        for (int norm = 0; norm < 2; norm++) {
            mf_svm_result *r = solve(D, (mf_svm_norm)norm);
            if (!r) continue;
            if (r->status == MF_SVM_NONSEPARABLE) {
                n_non++;
                CHECK(!separable, "trial %d: planted-separable set reported non-separable", trial);
                check_certificate(D, r, "sweep");
            } else {
                n_sep++;
                CHECK(r->kkt_residual < 1e-10, "trial %d norm %d (n=%d d=%d): kkt %g", trial, norm,
                      n, d, r->kkt_residual);
                CHECK(r->gamma_upper / r->gamma_lower - 1 < 1e-10, "trial %d: bracket [%.17g, %.17g]",
                      trial, r->gamma_lower, r->gamma_upper);
            }
            mf_svm_result_free(r);
        }
        mf_data_free(D);
    }
    CHECK(n_sep >= 300 && n_non >= 100, "solved %d, non-separable %d", n_sep, n_non);
}

/* ------------------------------------------------------------ bad input */

TEST(bad_input) {
    double x[4] = {1, 2, 3, 4}, y[2] = {1, 0.5};
    mf_data *D = make(2, 2, x, y);
    mf_svm_result *r = (mf_svm_result *)&r;
    mf_err e = {0, ""};
    CHECK_EQ_INT(mf_svm_solve(D, MF_SVM_L2, NULL, &r, &e), MF_ERR_INVALID);
    CHECK(r == NULL, "*out not cleared on error");
    CHECK(strstr(e.msg, "label of sample 2") != NULL, "message: %s", e.msg);
    D->y[1] = -1;
    D->x[3] = NAN;
    CHECK_EQ_INT(mf_svm_solve(D, MF_SVM_L2, NULL, &r, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "feature 2 of sample 2") != NULL, "message: %s", e.msg);
    D->x[3] = 4;
    mf_svm_settings s;
    mf_svm_settings_default(&s);
    CHECK(mf_svm_settings_validate(&s) == NULL, "defaults invalid");
    s.sep_tol = -1;
    CHECK_EQ_INT(mf_svm_solve(D, MF_SVM_L2, &s, &r, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "sep_tol") != NULL, "message: %s", e.msg);
    CHECK_EQ_INT(mf_svm_solve(D, (mf_svm_norm)7, NULL, &r, &e), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_svm_solve(NULL, MF_SVM_L2, NULL, &r, &e), MF_ERR_INVALID);
    mf_data *M = NULL;
    mf_data_new(2, 2, 3, &M, NULL);
    /* multi-class data (Crammer-Singer): all-zero x is an answer, not separable */
    CHECK_EQ_INT(mf_svm_solve(M, MF_SVM_L2, NULL, &r, &e), MF_OK);
    if (r) {
        CHECK_EQ_INT(r->status, MF_SVM_NONSEPARABLE);
        CHECK_EQ_INT(r->classes, 3);
    }
    mf_svm_result_free(r);
    r = NULL;
    mf_svm_norm nm;
    CHECK_EQ_INT(mf_svm_norm_from_name("l1", &nm), MF_OK);
    CHECK_EQ_INT(nm, MF_SVM_L1);
    CHECK_EQ_INT(mf_svm_norm_from_name("l3", &nm), MF_ERR_INVALID);
    mf_svm_result_free(NULL);
    mf_data_free(M);
    mf_data_free(D);
}

/* --------------------------------------------------- allocation failures */

static long fail_at, n_alloc;
static void *failing_malloc(size_t s) { return ++n_alloc == fail_at ? NULL : malloc(s); }
static void *failing_realloc(void *p, size_t s) {
    return ++n_alloc == fail_at ? NULL : realloc(p, s);
}

/* Fail the k-th allocation for every k: each run returns MF_ERR_NOMEM with
 * *out NULL (and leaks nothing, under ASan), until k exceeds the number of
 * allocations and the solve succeeds. */
TEST(allocation_failures) {
    double x[16] = {1, 0.5, 2, -1, 0.6, 1.5, 3, 2, -1, -0.5, -2, 1, -0.6, -1.5, -3, -2};
    double y[8] = {1, 1, 1, 1, -1, -1, -1, -1};
    double x2[4] = {0.3, -1.7, -0.3, 1.7}, y2[2] = {1, 1};
    mf_data *D[2] = {make(8, 2, x, y), make(2, 2, x2, y2)};
    for (int k = 0; k < 2; k++)
        for (int norm = 0; norm < 2; norm++) {
            int done = 0, bad = 0;
            for (fail_at = 1; fail_at < 200 && !done; fail_at++) {
                n_alloc = 0;
                mf_svm_result *r = NULL;
                mf_set_allocator(failing_malloc, failing_realloc, free);
                int rc = mf_svm_solve(D[k], (mf_svm_norm)norm, NULL, &r, NULL);
                mf_set_allocator(NULL, NULL, NULL);
                if (rc == MF_OK) done = 1;
                else if (rc != MF_ERR_NOMEM || r) bad++;
                mf_svm_result_free(r);
            }
            CHECK(done && bad == 0, "set %d norm %d: done %d, wrong returns %d", k, norm, done, bad);
        }
    mf_data_free(D[0]);
    mf_data_free(D[1]);
}

/* The Crammer-Singer multi-class SVM through the origin: on multi3 the
 * solution is W = (4/9, 0; -2/9, 1/3; -2/9, -1/3), ||W||_F^2 = 14/27 (by hand
 * from its support samples 2 and 4); checked against its own KKT
 * conditions independently of the solver (W = sum alpha_nj (e_y - e_j) x_n,
 * alpha >= 0, margins >= 1 with equality where alpha > 0), its bracket, and
 * its scale invariance (x * 2^40: gamma * 2^40, W / 2^40). */
TEST(multiclass_crammer_singer) {
    mf_data *D = NULL;
    mf_err e = {0, ""};
    CHECK_EQ_INT(mf_data_from_spec("tests/data/multi3.svm", NULL, &D, &e), MF_OK);
    if (!D) return;
    mf_svm_result *r = NULL;
    CHECK_EQ_INT(mf_svm_solve(D, MF_SVM_L2, NULL, &r, &e), MF_OK);
    if (r) {
        const int C = 3, d = 2;
        const double want[6] = {4.0 / 9, 0, -2.0 / 9, 1.0 / 3, -2.0 / 9, -1.0 / 3};
        CHECK_EQ_INT(r->status, MF_SVM_SOLVED);
        CHECK_EQ_INT(r->classes, 3);
        CHECK_NEAR(r->gamma, sqrt(27.0 / 14.0), 1e-12);
        for (int i = 0; i < 6; i++) CHECK_NEAR(r->w[i], want[i], 1e-12);
        CHECK(r->gamma_lower <= r->gamma * (1 + 1e-12) && r->gamma <= r->gamma_upper * (1 + 1e-12),
              "bracket [%g, %g] vs %g", r->gamma_lower, r->gamma_upper, r->gamma);
        double W[6] = {0};
        for (int n = 0; n < D->n; n++) {
            const int y = D->cls[n];
            const double *x = D->x + (size_t)n * d;
            double qn = INFINITY;
            for (int j = 0; j < C; j++) {
                if (j == y) {
                    CHECK_NEAR(r->alpha[n * C + j], 0.0, 0.0);
                    continue;
                }
                const double a = r->alpha[n * C + j], m = (r->w[y * d] - r->w[j * d]) * x[0] +
                                                          (r->w[y * d + 1] - r->w[j * d + 1]) * x[1];
                CHECK(a >= 0, "alpha[%d][%d] = %g", n, j, a);
                if (a > 1e-12) CHECK_NEAR(m, 1.0, 1e-12);
                if (m < qn) qn = m;
                for (int t = 0; t < d; t++) {
                    W[y * d + t] += a * x[t];
                    W[j * d + t] -= a * x[t];
                }
            }
            CHECK(qn >= 1.0 - 1e-12, "margin of sample %d: %.17g", n + 1, qn);
        }
        for (int i = 0; i < 6; i++) CHECK_NEAR(W[i], r->w[i], 1e-12);
        CHECK_EQ_INT(r->n_support, 2);
    }
    for (size_t i = 0; i < (size_t)D->n * D->d; i++) D->x[i] = ldexp(D->x[i], 40);
    mf_svm_result *r2 = NULL;
    CHECK_EQ_INT(mf_svm_solve(D, MF_SVM_L2, NULL, &r2, &e), MF_OK);
    if (r && r2) {
        CHECK_NEAR(r2->gamma, ldexp(r->gamma, 40), 1e-12 * ldexp(r->gamma, 40));
        for (int i = 0; i < 6; i++) CHECK_NEAR(ldexp(r2->w[i], 40), r->w[i], 1e-12);
    }
    mf_svm_result_free(r);
    mf_svm_result_free(r2);
    mf_data_free(D);
}

int main(void) {
    RUN(l2_case_B);
    RUN(l2_case_R1);
    RUN(l2_case_sym4);
    RUN(l1_case_B);
    RUN(l1_case_R1);
    RUN(l2_matches_brute_force);
    RUN(l2_matches_liblinear);
    RUN(l2_large_and_scaled);
    RUN(l1_duality_random);
    RUN(nonseparable_certificates);
    RUN(robustness_sweep);
    RUN(multiclass_crammer_singer);
    RUN(bad_input);
    RUN(allocation_failures);
    return TEST_REPORT();
}

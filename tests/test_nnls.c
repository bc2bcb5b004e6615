/*
 * test_nnls.c -- the library's one NNLS solver (src/nnls.c, Lawson & Hanson
 * 1974, ch. 23), on problems with known answers:
 *   - closed forms (identity matrix: z = max(b, 0); exact nonnegative fits;
 *     a problem whose unconstrained solution has a negative coefficient);
 *   - random problems against a brute-force reference written here: the
 *     NNLS optimum is the least-squares solution on its support, so the
 *     smallest residual among all subsets whose least-squares coefficients
 *     are all >= 0 (normal equations, Gauss-Jordan) is the optimal residual;
 *   - the optimality conditions w = A^T (b - A z) <= tol off the support and
 *     |w| ~ 0 on it;
 *   - the least-distance program of the SVM (a min-norm hull point);
 *   - bad cases: max_iter exceeded is MF_ERR_NUMERIC with its message.
 * svm.c and kkt.c rely on this one solver; their own tests cover them.
 */
#include "internal.h"
#include "marginflow.h"
#include "test.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 8
#define MAXM 10

/* ||A z - b|| for A [m][n] column-major. */
static double residual(int m, int n, const double *A, const double *b, const double *z) {
    double s = 0.0;
    for (int i = 0; i < m; i++) {
        double r = b[i];
        for (int j = 0; j < n; j++) r -= A[(size_t)j * m + i] * z[j];
        s += r * r;
    }
    return sqrt(s);
}

/* Least squares on the columns in mask by the normal equations (Gauss-Jordan
 * with partial pivoting); returns 0 and z (zero off mask), or -1 when the
 * columns are (numerically) dependent. */
static int ls_subset(int m, int n, const double *A, const double *b, unsigned mask, double *z) {
    int cols[MAXN], k = 0;
    double G[MAXN][MAXN + 1];
    for (int j = 0; j < n; j++)
        if (mask & (1u << j)) cols[k++] = j;
    for (int r = 0; r < k; r++) {
        for (int c = 0; c < k; c++) {
            double s = 0.0;
            for (int i = 0; i < m; i++) s += A[(size_t)cols[r] * m + i] * A[(size_t)cols[c] * m + i];
            G[r][c] = s;
        }
        double s = 0.0;
        for (int i = 0; i < m; i++) s += A[(size_t)cols[r] * m + i] * b[i];
        G[r][k] = s;
    }
    for (int c = 0; c < k; c++) {
        int p = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(G[r][c]) > fabs(G[p][c])) p = r;
        if (fabs(G[p][c]) < 1e-10) return -1;
        for (int t = 0; t <= k; t++) {
            double tmp = G[c][t];
            G[c][t] = G[p][t];
            G[p][t] = tmp;
        }
        for (int r = 0; r < k; r++) {
            if (r == c) continue;
            double f = G[r][c] / G[c][c];
            for (int t = c; t <= k; t++) G[r][t] -= f * G[c][t];
        }
    }
    for (int j = 0; j < n; j++) z[j] = 0.0;
    for (int r = 0; r < k; r++) z[cols[r]] = G[r][k] / G[r][r];
    return 0;
}

/* The optimal residual by enumeration of supports, and its z. */
static double brute_force(int m, int n, const double *A, const double *b, double *zbest) {
    double best = residual(m, n, A, b, (double[MAXN]){0});
    for (int j = 0; j < n; j++) zbest[j] = 0.0;
    for (unsigned mask = 1; mask < (1u << n); mask++) {
        double z[MAXN];
        if (ls_subset(m, n, A, b, mask, z)) continue;
        int ok = 1;
        for (int j = 0; j < n; j++)
            if (z[j] < 0.0) ok = 0;
        if (!ok) continue;
        double r = residual(m, n, A, b, z);
        if (r < best) {
            best = r;
            memcpy(zbest, z, sizeof(double) * (size_t)n);
        }
    }
    return best;
}

TEST(identity_clips_negative_entries) {
    double A[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, b[3] = {1, -2, 3}, z[3];
    int it = -1;
    int rc = mf__nnls(3, 3, A, b, 1e-14, 100, z, &it, NULL);
    CHECK_EQ_INT(rc, MF_OK);
    CHECK_NEAR(z[0], 1.0, 1e-15);
    CHECK_NEAR(z[1], 0.0, 0.0);
    CHECK_NEAR(z[2], 3.0, 1e-15);
    CHECK_EQ_INT(it, 2); /* columns 3 then 1 enter (largest w first); 2 never */
}

TEST(exact_nonnegative_fit) {
    /* b = A (2, 0.5): the NNLS solution is the exact fit */
    double A[8] = {1, 2, 0, 1, /* column 1 */ 3, -1, 1, 0 /* column 2 */}, b[4], z[2];
    for (int i = 0; i < 4; i++) b[i] = 2.0 * A[i] + 0.5 * A[4 + i];
    int rc = mf__nnls(4, 2, A, b, 1e-14, 100, z, NULL, NULL);
    CHECK_EQ_INT(rc, MF_OK);
    CHECK_NEAR(z[0], 2.0, 1e-14);
    CHECK_NEAR(z[1], 0.5, 1e-14);
    CHECK_NEAR(residual(4, 2, A, b, z), 0.0, 1e-14);
}

TEST(negative_unconstrained_coefficient) {
    /* a1 = (1, 0), a2 = (1, 1), b = (2, -1): unconstrained (3, -1); the
     * optimum keeps a1 alone: z = (2, 0), residual 1 */
    double A[4] = {1, 0, 1, 1}, b[2] = {2, -1}, z[2];
    int rc = mf__nnls(2, 2, A, b, 1e-14, 100, z, NULL, NULL);
    CHECK_EQ_INT(rc, MF_OK);
    CHECK_NEAR(z[0], 2.0, 1e-15);
    CHECK_NEAR(z[1], 0.0, 0.0);
    CHECK_NEAR(residual(2, 2, A, b, z), 1.0, 1e-15);
}

TEST(leaving_variable) {
    /* A = [0 1 -1; 2 3 -2; 1 3 1], b = (2, 3, -1) (found by an exact
     * rational run of the algorithm): column 2 enters first, then column 1,
     * whose least squares makes column 2's coefficient negative, so it
     * leaves again (one inner step). Optimum z = (1, 0, 0). */
    double A[9] = {0, 2, 1, /* column 1 */ 1, 3, 3, /* column 2 */ -1, -2, 1}, b[3] = {2, 3, -1};
    double z[3], zb[3];
    int it = 0;
    int rc = mf__nnls(3, 3, A, b, 1e-14, 100, z, &it, NULL);
    CHECK_EQ_INT(rc, MF_OK);
    CHECK_NEAR(z[0], 1.0, 1e-14);
    CHECK_NEAR(z[1], 0.0, 0.0);
    CHECK_NEAR(z[2], 0.0, 0.0);
    double rb = brute_force(3, 3, A, b, zb);
    CHECK_NEAR(residual(3, 3, A, b, z), rb, 1e-14);
    CHECK_EQ_INT(it, 2);
}

TEST(zero_right_hand_side) {
    double A[4] = {1, 2, 3, 4}, b[2] = {0, 0}, z[2] = {5, 5};
    int it = -1;
    int rc = mf__nnls(2, 2, A, b, 1e-14, 100, z, &it, NULL);
    CHECK_EQ_INT(rc, MF_OK);
    CHECK_EQ_INT(it, 0);
    CHECK(z[0] == 0.0 && z[1] == 0.0, "z = (%g, %g)", z[0], z[1]);
}

/* Random problems, full column rank (m >= n, unique optimum) and wide
 * (m < n, optimal residual unique): residual, z and the KKT conditions. */
TEST(random_against_enumeration) {
    mf_rng rng;
    mf_rng_seed(&rng, 11);
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + (int)(mf_rng_uniform(&rng) * MAXN);
        int m = trial % 3 == 0 ? 1 + (int)(mf_rng_uniform(&rng) * n) : n + (int)(mf_rng_uniform(&rng) * 3);
        if (m > MAXM) m = MAXM;
        double A[MAXM * MAXN], b[MAXM], z[MAXN], zb[MAXN];
        for (int i = 0; i < m * n; i++) A[i] = mf_rng_normal(&rng);
        for (int i = 0; i < m; i++) b[i] = mf_rng_normal(&rng);
        double bn = mf__norm2(b, (size_t)m), amax = 0.0;
        for (int j = 0; j < n; j++) amax = fmax(amax, mf__norm2(A + (size_t)j * m, (size_t)m));
        double tol = 1e-12 * bn * amax;
        int rc = mf__nnls(m, n, A, b, tol, 3 * n + 100, z, NULL, NULL);
        CHECK_EQ_INT(rc, MF_OK);
        double rb = brute_force(m, n, A, b, zb), r = residual(m, n, A, b, z);
        CHECK(fabs(r - rb) <= 1e-10 * (1.0 + bn), "trial %d (m %d, n %d): residual %.17g, optimum %.17g",
              trial, m, n, r, rb);
        if (m >= n)
            for (int j = 0; j < n; j++)
                CHECK(fabs(z[j] - zb[j]) <= 1e-8 * (1.0 + fabs(zb[j])), "trial %d: z[%d] = %.17g, want %.17g",
                      trial, j, z[j], zb[j]);
        /* KKT of NNLS: w <= tol off the support, ~0 on it */
        double rv[MAXM];
        for (int i = 0; i < m; i++) {
            rv[i] = b[i];
            for (int j = 0; j < n; j++) rv[i] -= A[(size_t)j * m + i] * z[j];
        }
        for (int j = 0; j < n; j++) {
            double w = mf__dot(A + (size_t)j * m, rv, (size_t)m);
            CHECK(z[j] >= 0.0, "trial %d: z[%d] = %g < 0", trial, j, z[j]);
            if (z[j] > 0.0)
                CHECK(fabs(w) <= 1e-10 * (1.0 + bn * amax), "trial %d: w[%d] = %g on the support", trial, j, w);
            else
                CHECK(w <= 1e-10 * (1.0 + bn * amax), "trial %d: w[%d] = %g > 0 off the support", trial, j, w);
        }
    }
}

/* Lawson & Hanson's LDP for the hull of z_1 = (1, 0), z_2 = (0, 1):
 * minimize ||[Z^T; 1^T] u - e_3||, u >= 0, gives c = u / sum u = (1/2, 1/2)
 * (the min-norm hull point (1/2, 1/2), norm 1/sqrt(2)). */
TEST(least_distance_program) {
    double E[6] = {1, 0, 1, 0, 1, 1}, f[3] = {0, 0, 1}, u[2];
    int rc = mf__nnls(3, 2, E, f, 64.0 * DBL_EPSILON * 2.0, 100, u, NULL, NULL);
    CHECK_EQ_INT(rc, MF_OK);
    double t = u[0] + u[1];
    CHECK(t > 0, "sum u = %g", t);
    CHECK_NEAR(u[0] / t, 0.5, 1e-15);
    CHECK_NEAR(u[1] / t, 0.5, 1e-15);
    /* t minimizes t^2 ||p||^2 + (t - 1)^2 with ||p||^2 = 1/2: t = 2/3 */
    CHECK_NEAR(t, 2.0 / 3.0, 1e-15);
}

TEST(iteration_limit_is_an_error) {
    double A[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, b[3] = {1, 2, 3}, z[3];
    mf_err e = {0, ""};
    int it = 0;
    int rc = mf__nnls(3, 3, A, b, 1e-14, 1, z, &it, &e);
    CHECK_EQ_INT(rc, MF_ERR_NUMERIC);
    CHECK(strcmp(e.msg, "NNLS did not converge in 1 iterations") == 0, "message '%s'", e.msg);
    CHECK_EQ_INT(it, 2);
}

int main(void) {
    RUN(identity_clips_negative_entries);
    RUN(exact_nonnegative_fit);
    RUN(negative_unconstrained_coefficient);
    RUN(leaving_variable);
    RUN(zero_right_hand_side);
    RUN(random_against_enumeration);
    RUN(least_distance_program);
    RUN(iteration_limit_is_an_error);
    return TEST_REPORT();
}

/*
 * svm.c -- exact max-margin references for linear predictors through the
 * origin (docs/theory.md section 3): the l2 hard-margin SVM, solved as a
 * least-distance program by the library's Lawson-Hanson NNLS (src/nnls.c)
 * and a support-set polish by LAPACK least squares, and the l1-margin LP,
 * solved by GLPK.
 * Both report residuals and a duality bracket so a caller can see how exact
 * the reference value is; data that is not separable through the origin is
 * reported with a Gordan certificate instead of a number.
 *
 * Notation (as in marginflow.h): z_n = y_n x_n, Z = [N][d] with rows z_n,
 * q_n(w) = <w, z_n>. Internal work arrays are column-major where they feed
 * LAPACK (stated at each one), row-major [N][d] otherwise.
 */
#include "internal.h"

#include <cblas.h>
#include <float.h>
#include <glpk.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------- settings */

void mf_svm_settings_default(mf_svm_settings *s) {
    s->sep_tol = 1e-12;
    s->support_tol = 1e-12;
    s->active_tol = 1e-9;
    s->max_iter = 0;
    s->polish = 1;
}

const char *mf_svm_settings_validate(const mf_svm_settings *s) {
    if (!s) return "settings: NULL";
    if (!(s->sep_tol >= 0 && s->sep_tol < 1)) return "sep_tol must be in [0, 1)";
    if (!(s->support_tol >= 0 && s->support_tol < 1)) return "support_tol must be in [0, 1)";
    if (!(s->active_tol >= 0 && s->active_tol < 1)) return "active_tol must be in [0, 1)";
    if (s->max_iter < 0) return "max_iter must be >= 0 (0 = 3 n + 100)";
    if (s->polish != 0 && s->polish != 1) return "polish must be 0 or 1";
    return NULL;
}

const char *mf_svm_status_name(int status) {
    switch (status) {
    case MF_SVM_SOLVED: return "solved";
    case MF_SVM_NONSEPARABLE: return "nonseparable";
    default: return "unknown";
    }
}

const char *mf_svm_norm_name(int norm) {
    switch (norm) {
    case MF_SVM_L2: return "l2";
    case MF_SVM_L1: return "l1";
    default: return "unknown";
    }
}

int mf_svm_norm_from_name(const char *s, mf_svm_norm *norm) {
    if (s && !strcmp(s, "l2")) {
        *norm = MF_SVM_L2;
        return MF_OK;
    }
    if (s && !strcmp(s, "l1")) {
        *norm = MF_SVM_L1;
        return MF_OK;
    }
    return MF_ERR_INVALID;
}

void mf_svm_result_free(mf_svm_result *r) {
    if (!r) return;
    mf__free(r->w);
    mf__free(r->alpha);
    mf__free(r->support);
    mf__free(r->certificate);
    mf__free(r);
}

/* ------------------------------------------------- LAPACK least squares */

/* A dgels workspace sized once by a workspace query for the largest problem
 * it will see (the optimal size is monotone in m and n), so every solve goes
 * through LAPACKE_dgels_work without allocation outside mf__malloc. */
typedef struct lsq {
    double *work;
    lapack_int lwork;
} lsq;

static int lsq_init(lsq *q, int m, int n) {
    double opt = 0, a = 0, b = 0;
    int ld = m > n ? m : n;
    q->work = NULL;
    lapack_int info = LAPACKE_dgels_work(LAPACK_COL_MAJOR, 'N', m, n, 1, &a, m > 1 ? m : 1, &b,
                                         ld > 1 ? ld : 1, &opt, -1);
    if (info != 0) return MF_ERR_NUMERIC;
    q->lwork = (lapack_int)opt;
    if (q->lwork < 1) q->lwork = 1;
    q->work = mf__malloc(sizeof(double) * (size_t)q->lwork);
    return q->work ? MF_OK : MF_ERR_NOMEM;
}

/* Full-rank least squares by LAPACK dgels (Householder QR for m >= n, LQ
 * with the minimum-norm solution for m < n):
 *   m >= n: x = argmin ||A x - b||;   m < n: x = argmin { ||x|| : A x = b }.
 * A: [m][n] column-major, lda = m, overwritten. b: [max(m, n)], holds b on
 * entry (first m entries) and x on exit (first n entries). Returns LAPACK's
 * info: 0 ok, > 0 A is exactly rank deficient. */
static lapack_int lsq_solve(lsq *q, int m, int n, double *A, double *b) {
    int ld = m > n ? m : n;
    return LAPACKE_dgels_work(LAPACK_COL_MAJOR, 'N', m, n, 1, A, m, b, ld, q->work, q->lwork);
}

/* ---------------------------------------------------------- residuals */

/* KKT residuals of (P2)/(D2) at (w, alpha) (definitions in marginflow.h), with
 * the duality bracket. q: [N] scratch; v: [d] scratch. */
static void l2_residuals(const double *Z, int N, int d, const double *w, const double *alpha,
                         double active_tol, double *q, double *v, mf_svm_result *r) {
    double ww = mf__dot(w, w, (size_t)d), sum_a = 0.0, comp = 0.0, qmin = INFINITY;
    int n_active = 0;
    for (int i = 0; i < d; i++) v[i] = 0.0;
    for (int n = 0; n < N; n++) {
        const double *z = Z + (size_t)n * d;
        q[n] = mf__dot(w, z, (size_t)d);
        if (q[n] < qmin) qmin = q[n];
        if (fabs(q[n] - 1.0) <= active_tol) n_active++;
        sum_a += alpha[n];
        if (alpha[n] != 0.0) {
            double c = alpha[n] * fabs(q[n] - 1.0);
            if (c > comp) comp = c;
            cblas_daxpy(d, alpha[n], z, 1, v, 1);
        }
    }
    double diff = 0.0;
    for (int i = 0; i < d; i++) diff += (w[i] - v[i]) * (w[i] - v[i]);
    double primal_obj = 0.5 * ww, dual_obj = sum_a - 0.5 * mf__dot(v, v, (size_t)d);
    r->q_min = qmin;
    r->n_active = n_active;
    r->primal_residual = qmin < 1.0 ? 1.0 - qmin : 0.0;
    r->dual_residual = sqrt(diff / ww);
    r->complementarity = sum_a > 0 ? comp / sum_a : INFINITY;
    r->gap = fabs(primal_obj - dual_obj) / primal_obj;
    r->kkt_residual = fmax(fmax(r->primal_residual, r->dual_residual),
                           fmax(r->complementarity, r->gap));
    r->gamma = 1.0 / sqrt(ww);
    r->gamma_lower = qmin > 0 ? qmin / sqrt(ww) : 0.0;
    r->gamma_upper = dual_obj > 0 ? 1.0 / sqrt(2.0 * dual_obj) : INFINITY;
}

/* support = { n : alpha_n > tol * max alpha }, ascending. */
static int set_support(mf_svm_result *r, const double *alpha, int N, double tol) {
    double amax = 0.0;
    for (int n = 0; n < N; n++)
        if (alpha[n] > amax) amax = alpha[n];
    int k = 0;
    for (int n = 0; n < N; n++)
        if (alpha[n] > 0.0 && alpha[n] > tol * amax) k++;
    r->support = mf__malloc(sizeof(int) * (size_t)(k ? k : 1));
    if (!r->support) return MF_ERR_NOMEM;
    r->n_support = 0;
    for (int n = 0; n < N; n++)
        if (alpha[n] > 0.0 && alpha[n] > tol * amax) r->support[r->n_support++] = n;
    return MF_OK;
}

/* --------------------------------------------------- separability test */

/* The NNLS stopping tolerance of the LDP below, in units of DBL_EPSILON:
 * g_j = <(z_j, 1), r> is computed with an absolute error of order
 * eps (1 + ||z_j||) ||r||, ||r|| <= 1, and 64 of those leaves room for the
 * length of the sums. */
#define MF__LDP_TOL_ULPS 64.0

/* Minimum-norm point of conv{z_n} by Lawson & Hanson's algorithm LDP (1974,
 * ch. 23) for the constraints Z w >= 1, through the library's NNLS
 * (src/nnls.c):
 *   minimize || E u - f ||_2  subject to u >= 0,
 *   E = [Zs^T; 1^T]  ([m][N], m = d + 1; column j is (z_j, 1)),  f = e_m,
 * on Zs = Z / scale (scale = max_n ||z_n||, so the columns of E are O(1)).
 * With u the NNLS solution and c = u / sum u (u != 0 always: the first
 * column entered has g_j = 1 > tol), p = Zs^T c is that point in units of
 * scale: NNLS minimizes t^2 ||Zs^T c||^2 + (t - 1)^2 over t >= 0 and c in
 * the simplex, which for each c is monotone in ||Zs^T c||. Writes c[N] and
 * returns ||p|| (relative). */
static int min_norm_point(const double *Zs, int N, int d, int max_iter, double *c,
                          double *pnorm, int *iters, double *pbuf) {
    const int m = d + 1;
    double *E = mf__malloc(sizeof(double) * (size_t)m * (size_t)N);
    double *f = mf__calloc((size_t)m, sizeof(double));
    double *u = mf__calloc((size_t)N, sizeof(double));
    int rc = MF_OK;
    if (!E || !f || !u) {
        rc = MF_ERR_NOMEM;
        goto done;
    }
    double zmax = 0.0;
    for (int j = 0; j < N; j++) {
        const double *z = Zs + (size_t)j * d;
        memcpy(E + (size_t)j * m, z, sizeof(double) * (size_t)d);
        E[(size_t)j * m + d] = 1.0;
        zmax = fmax(zmax, mf__norm2(z, (size_t)d));
    }
    f[d] = 1.0;
    rc = mf__nnls(m, N, E, f, MF__LDP_TOL_ULPS * DBL_EPSILON * (1.0 + zmax), max_iter, u, iters,
                  NULL);
    if (rc == MF_OK) {
        double t = 0.0;
        for (int j = 0; j < N; j++) t += u[j];
        for (int i = 0; i < d; i++) pbuf[i] = 0.0;
        for (int j = 0; j < N; j++) {
            c[j] = t > 0 ? u[j] / t : 0.0;
            if (c[j] != 0.0) cblas_daxpy(d, c[j], Zs + (size_t)j * d, 1, pbuf, 1);
        }
        *pnorm = mf__norm2(pbuf, (size_t)d);
        if (!(t > 0) || !isfinite(*pnorm)) rc = MF_ERR_NUMERIC;
    }
done:
    mf__free(E);
    mf__free(f);
    mf__free(u);
    return rc;
}

/* ---------------------------------------------------------------- l2 */

/* Polish: S = support of alpha (k indices). Solve, by LAPACK dgels,
 *   w = argmin { ||w|| : Z_S w = 1 }     (LQ of Z_S, [k][d], k <= d)
 *   alpha_S = argmin || Z_S^T a - w ||   (QR of Z_S^T, [d][k])
 * i.e. the exact KKT point of (P2) restricted to the constraints in S. On
 * success writes w2[d], alpha2[N] (zero off S) and returns MF_OK; returns
 * MF_ERR_NUMERIC if Z_S is rank deficient, k > d, or some alpha_S <= 0 (S was
 * not the support of an optimum). */
static int l2_polish(const double *Z, int N, int d, const double *alpha, double *w2,
                     double *alpha2) {
    int k = 0;
    for (int n = 0; n < N; n++)
        if (alpha[n] > 0.0) k++;
    if (k == 0 || k > d) return MF_ERR_NUMERIC;
    int *S = mf__malloc(sizeof(int) * (size_t)k);
    double *A = mf__malloc(sizeof(double) * (size_t)k * (size_t)d);
    double *b = mf__malloc(sizeof(double) * (size_t)d);
    lsq q = {NULL, 0};
    int rc = (S && A && b) ? lsq_init(&q, d, d) : MF_ERR_NOMEM;
    if (rc) goto done;
    k = 0;
    for (int n = 0; n < N; n++)
        if (alpha[n] > 0.0) S[k++] = n;
    /* A = Z_S, [k][d] column-major */
    for (int i = 0; i < k; i++)
        for (int j = 0; j < d; j++) A[(size_t)j * k + i] = Z[(size_t)S[i] * d + j];
    for (int i = 0; i < d; i++) b[i] = i < k ? 1.0 : 0.0;
    if (lsq_solve(&q, k, d, A, b) != 0) {
        rc = MF_ERR_NUMERIC;
        goto done;
    }
    memcpy(w2, b, sizeof(double) * (size_t)d);
    /* A = Z_S^T, [d][k] column-major */
    for (int i = 0; i < k; i++)
        for (int j = 0; j < d; j++) A[(size_t)i * d + j] = Z[(size_t)S[i] * d + j];
    memcpy(b, w2, sizeof(double) * (size_t)d);
    if (lsq_solve(&q, d, k, A, b) != 0) {
        rc = MF_ERR_NUMERIC;
        goto done;
    }
    for (int n = 0; n < N; n++) alpha2[n] = 0.0;
    for (int i = 0; i < k; i++) {
        if (!(b[i] > 0.0)) rc = MF_ERR_NUMERIC;
        alpha2[S[i]] = b[i];
    }
done:
    mf__free(S);
    mf__free(A);
    mf__free(b);
    mf__free(q.work);
    return rc;
}

/* (P2)/(D2) given separable data: second NNLS pass on Z / gamma_est, where
 * gamma_est = ||p|| from the first pass, so the min-norm point has norm ~1
 * and the LDP's gradient g_j = t ||p||^2 (1 - q_j) carries q_j to full
 * relative accuracy; then w = p / ||p||^2, alpha = c / ||p||^2 (back in
 * the units of Z), then the polish, keeping whichever has the smaller
 * kkt_residual. */
static int l2_solve(const double *Z, int N, int d, double gamma_est, const mf_svm_settings *s,
                    int max_iter, mf_svm_result *r, mf_err *e) {
    size_t nd = (size_t)N * d;
    double *Zg = mf__malloc(sizeof(double) * nd);
    double *c = mf__malloc(sizeof(double) * (size_t)N);
    double *q = mf__malloc(sizeof(double) * (size_t)N);
    double *p = mf__malloc(sizeof(double) * (size_t)d);
    double *v = mf__malloc(sizeof(double) * (size_t)d);
    double *w2 = mf__malloc(sizeof(double) * (size_t)d);
    double *a2 = mf__malloc(sizeof(double) * (size_t)N);
    r->w = mf__malloc(sizeof(double) * (size_t)d);
    r->alpha = mf__malloc(sizeof(double) * (size_t)N);
    int rc = MF_OK;
    if (!Zg || !c || !q || !p || !v || !w2 || !a2 || !r->w || !r->alpha) {
        rc = mf__err(e, MF_ERR_NOMEM, "svm: out of memory (n = %d, d = %d)", N, d);
        goto done;
    }
    for (size_t i = 0; i < nd; i++) Zg[i] = Z[i] / gamma_est;
    double pn;
    int it = 0;
    rc = min_norm_point(Zg, N, d, max_iter, c, &pn, &it, p);
    r->iterations += it;
    if (rc == MF_ERR_NOMEM) {
        rc = mf__err(e, rc, "svm: out of memory (n = %d, d = %d)", N, d);
        goto done;
    }
    if (rc) {
        rc = mf__err(e, rc, "svm: NNLS did not converge in %d iterations", max_iter);
        goto done;
    }
    /* In Zg units w' = p / ||p||^2 and alpha' = c / ||p||^2; with
     * Z = gamma_est Zg: w = w' / gamma_est, alpha = alpha' / gamma_est^2. */
    double pp = pn * pn;
    for (int i = 0; i < d; i++) r->w[i] = p[i] / pp / gamma_est;
    for (int n = 0; n < N; n++) r->alpha[n] = c[n] / pp / (gamma_est * gamma_est);
    l2_residuals(Z, N, d, r->w, r->alpha, s->active_tol, q, v, r);
    int prc = s->polish ? l2_polish(Z, N, d, r->alpha, w2, a2) : MF_ERR_NUMERIC;
    if (prc == MF_ERR_NOMEM) { /* not a failed polish: report it, never a different answer */
        rc = mf__err(e, MF_ERR_NOMEM, "svm: out of memory");
        goto done;
    }
    if (prc == MF_OK) {
        mf_svm_result t = *r;
        l2_residuals(Z, N, d, w2, a2, s->active_tol, q, v, &t);
        if (t.kkt_residual <= r->kkt_residual) {
            *r = t;
            memcpy(r->w, w2, sizeof(double) * (size_t)d);
            memcpy(r->alpha, a2, sizeof(double) * (size_t)N);
            r->polished = 1;
        }
    }
    if (set_support(r, r->alpha, N, s->support_tol)) rc = mf__err(e, MF_ERR_NOMEM, "svm: out of memory");
done:
    mf__free(Zg);
    mf__free(c);
    mf__free(q);
    mf__free(p);
    mf__free(v);
    mf__free(w2);
    mf__free(a2);
    return rc;
}

/* ---------------------------------------------------------------- l1 */

/* (P1) minimize sum_j (p_j + m_j) s.t. sum_j z_nj (p_j - m_j) >= 1, p, m >= 0,
 * by GLPK's simplex (dual simplex, falling back to primal: the all-zero
 * basis is dual feasible since the costs are positive), with GLPK's
 * automatic scaling and without presolve (so duals and the basis exist).
 * Residuals are recomputed here (definitions in marginflow.h). */
static int l1_solve(const double *Z, int N, int d, const mf_svm_settings *s,
                    mf_svm_result *r, mf_err *e) {
    size_t nz = 0, nd = (size_t)N * d;
    for (size_t i = 0; i < nd; i++)
        if (Z[i] != 0.0) nz += 2;
    int *ia = mf__malloc(sizeof(int) * (nz + 1));
    int *ja = mf__malloc(sizeof(int) * (nz + 1));
    double *ar = mf__malloc(sizeof(double) * (nz + 1));
    double *v = mf__malloc(sizeof(double) * (size_t)d);
    r->w = mf__malloc(sizeof(double) * (size_t)d);
    r->alpha = mf__malloc(sizeof(double) * (size_t)N);
    glp_prob *lp = NULL;
    int rc = MF_OK, term = glp_term_out(GLP_OFF);
    if (!ia || !ja || !ar || !v || !r->w || !r->alpha) {
        rc = mf__err(e, MF_ERR_NOMEM, "svm: out of memory (n = %d, d = %d)", N, d);
        goto done;
    }
    if (nz > (size_t)(INT32_MAX - 1)) {
        rc = mf__err(e, MF_ERR_UNSUPPORTED, "svm l1: too many nonzeros for GLPK (%zu)", nz);
        goto done;
    }
    lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    glp_add_rows(lp, N);
    for (int n = 1; n <= N; n++) glp_set_row_bnds(lp, n, GLP_LO, 1.0, 0.0);
    glp_add_cols(lp, 2 * d);
    for (int j = 1; j <= 2 * d; j++) {
        glp_set_col_bnds(lp, j, GLP_LO, 0.0, 0.0);
        glp_set_obj_coef(lp, j, 1.0);
    }
    size_t k = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < d; j++) {
            double a = Z[(size_t)n * d + j];
            if (a == 0.0) continue;
            ++k;
            ia[k] = n + 1, ja[k] = j + 1, ar[k] = a;
            ++k;
            ia[k] = n + 1, ja[k] = d + j + 1, ar[k] = -a;
        }
    glp_load_matrix(lp, (int)nz, ia, ja, ar);
    glp_scale_prob(lp, GLP_SF_AUTO);
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.meth = GLP_DUALP;
    parm.presolve = GLP_OFF;
    int ret = glp_simplex(lp, &parm);
    int st = glp_get_status(lp);
    r->iterations += glp_get_it_cnt(lp);
    if (ret != 0 || st != GLP_OPT) {
        rc = mf__err(e, MF_ERR_NUMERIC,
                     "svm l1: GLPK simplex failed (glp_simplex returned %d, status %d) on data "
                     "the NNLS test found separable",
                     ret, st);
        goto done;
    }
    double l1 = 0.0, sum_a = 0.0, comp = 0.0, qmin = INFINITY;
    for (int j = 0; j < d; j++) {
        r->w[j] = glp_get_col_prim(lp, j + 1) - glp_get_col_prim(lp, d + j + 1);
        l1 += fabs(r->w[j]);
    }
    for (int i = 0; i < d; i++) v[i] = 0.0;
    int n_active = 0;
    for (int n = 0; n < N; n++) {
        const double *z = Z + (size_t)n * d;
        double a = glp_get_row_dual(lp, n + 1);
        r->alpha[n] = a > 0.0 ? a : 0.0; /* GLPK may leave -0 or -1e-17 on basic rows */
        double qn = mf__dot(r->w, z, (size_t)d);
        if (qn < qmin) qmin = qn;
        if (fabs(qn - 1.0) <= s->active_tol) n_active++;
        sum_a += r->alpha[n];
        if (r->alpha[n] != 0.0) {
            double c = r->alpha[n] * fabs(qn - 1.0);
            if (c > comp) comp = c;
            cblas_daxpy(d, r->alpha[n], z, 1, v, 1);
        }
    }
    comp = sum_a > 0 ? comp / sum_a : INFINITY;
    double vinf = 0.0, ccol = 0.0;
    for (int j = 0; j < d; j++) {
        if (fabs(v[j]) > vinf) vinf = fabs(v[j]);
        if (r->w[j] != 0.0) {
            double sg = r->w[j] > 0 ? 1.0 : -1.0;
            double c = fabs(r->w[j]) * fabs(1.0 - sg * v[j]);
            if (c > ccol) ccol = c;
        }
    }
    ccol /= l1;
    r->q_min = qmin;
    r->n_active = n_active;
    r->primal_residual = qmin < 1.0 ? 1.0 - qmin : 0.0;
    r->dual_residual = vinf > 1.0 ? vinf - 1.0 : 0.0;
    r->complementarity = fmax(comp, ccol);
    r->gap = fabs(l1 - sum_a) / l1;
    r->kkt_residual = fmax(fmax(r->primal_residual, r->dual_residual),
                           fmax(r->complementarity, r->gap));
    r->gamma = 1.0 / l1;
    r->gamma_diag2 = 0.5 / l1;
    r->gamma_lower = qmin > 0 ? qmin / l1 : 0.0;
    r->gamma_upper = sum_a > 0 ? fmax(1.0, vinf) / sum_a : INFINITY;
    double ae, re_pe, re_pb, re_de, re_db;
    int ai, ri;
    glp_check_kkt(lp, GLP_SOL, GLP_KKT_PE, &ae, &ai, &re_pe, &ri);
    glp_check_kkt(lp, GLP_SOL, GLP_KKT_PB, &ae, &ai, &re_pb, &ri);
    glp_check_kkt(lp, GLP_SOL, GLP_KKT_DE, &ae, &ai, &re_de, &ri);
    glp_check_kkt(lp, GLP_SOL, GLP_KKT_DB, &ae, &ai, &re_db, &ri);
    r->lp_kkt_primal = fmax(re_pe, re_pb);
    r->lp_kkt_dual = fmax(re_de, re_db);
    if (set_support(r, r->alpha, N, s->support_tol)) rc = mf__err(e, MF_ERR_NOMEM, "svm: out of memory");
done:
    if (lp) glp_delete_prob(lp);
    glp_term_out(term);
    mf__free(ia);
    mf__free(ja);
    mf__free(ar);
    mf__free(v);
    return rc;
}

/* ---------------------------------------------------------------- solve */

/* The solve itself, for data whose scale is whatever the caller gives (see
 * mf_svm_solve, which brings it to max |x| in [0.5, 1) first). */
static int svm_solve_unit(const mf_data *data, mf_svm_norm norm, const mf_svm_settings *settings,
                          mf_svm_result **out, mf_err *e) {
    if (out) *out = NULL;
    if (!data || !out) return mf__err(e, MF_ERR_INVALID, "svm: data and out must not be NULL");
    mf_svm_settings def;
    mf_svm_settings_default(&def);
    const mf_svm_settings *s = settings ? settings : &def;
    const char *why = mf_svm_settings_validate(s);
    if (why) return mf__err(e, MF_ERR_INVALID, "svm settings: %s", why);
    if (norm != MF_SVM_L2 && norm != MF_SVM_L1)
        return mf__err(e, MF_ERR_INVALID, "svm: norm must be l2 or l1 (got %d)", (int)norm);
    if (data->num_classes != 0 || !data->y)
        return mf__err(e, MF_ERR_INVALID,
                       "svm: needs binary data with labels -1/+1 or class indices (%s has %d "
                       "classes)",
                       data->desc, data->num_classes);
    int N = data->n, d = data->d;
    if (N < 1 || d < 1 || !data->x)
        return mf__err(e, MF_ERR_INVALID, "svm: empty data set (n = %d, d = %d)", N, d);
    for (int n = 0; n < N; n++) {
        if (data->y[n] != 1.0 && data->y[n] != -1.0)
            return mf__err(e, MF_ERR_INVALID, "svm: label of sample %d is %.17g, not -1 or +1",
                           n + 1, data->y[n]);
        for (int j = 0; j < d; j++)
            if (!isfinite(data->x[(size_t)n * d + j]))
                return mf__err(e, MF_ERR_INVALID, "svm: feature %d of sample %d is not finite",
                               j + 1, n + 1);
    }
    int max_iter = s->max_iter ? s->max_iter : 3 * N + 100;
    size_t nd = (size_t)N * d;
    mf_svm_result *r = mf__calloc(1, sizeof *r);
    double *Z = mf__malloc(sizeof(double) * nd);
    double *Zs = mf__malloc(sizeof(double) * nd);
    double *c = mf__malloc(sizeof(double) * (size_t)N);
    double *p = mf__malloc(sizeof(double) * (size_t)d);
    int rc = MF_OK;
    if (!r || !Z || !Zs || !c || !p) {
        rc = mf__err(e, MF_ERR_NOMEM, "svm: out of memory (n = %d, d = %d)", N, d);
        goto done;
    }
    r->norm = norm;
    r->d = d;
    r->n = N;
    /* Z = rows y_n x_n; scale = max_n ||z_n|| */
    double scale = 0.0;
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < d; j++) Z[(size_t)n * d + j] = data->y[n] * data->x[(size_t)n * d + j];
        double zn = mf__norm2(Z + (size_t)n * d, (size_t)d);
        if (zn > scale) scale = zn;
    }
    if (!(scale > 0.0)) scale = 1.0; /* all x = 0: the NNLS finds c = e_1, p = 0 */
    for (size_t i = 0; i < nd; i++) Zs[i] = Z[i] / scale;
    double pn = 0.0;
    int it = 0;
    rc = min_norm_point(Zs, N, d, max_iter, c, &pn, &it, p);
    r->iterations = it;
    if (rc == MF_ERR_NOMEM) {
        mf__err(e, rc, "svm: out of memory (n = %d, d = %d)", N, d);
        goto done;
    }
    if (rc) {
        mf__err(e, rc, "svm: NNLS did not converge in %d iterations", max_iter);
        goto done;
    }
    if (pn <= s->sep_tol) {
        /* Gordan certificate: c >= 0, sum c = 1, ||Z^T c|| measured in the
         * original units. */
        r->status = MF_SVM_NONSEPARABLE;
        r->certificate = c;
        c = NULL;
        for (int i = 0; i < d; i++) p[i] = 0.0;
        for (int n = 0; n < N; n++)
            if (r->certificate[n] != 0.0) cblas_daxpy(d, r->certificate[n], Z + (size_t)n * d, 1, p, 1);
        r->certificate_norm = mf__norm2(p, (size_t)d);
        if (set_support(r, r->certificate, N, 0.0)) rc = mf__err(e, MF_ERR_NOMEM, "svm: out of memory");
        goto done;
    }
    r->status = MF_SVM_SOLVED;
    if (norm == MF_SVM_L2)
        rc = l2_solve(Z, N, d, pn * scale, s, max_iter, r, e);
    else
        rc = l1_solve(Z, N, d, s, r, e);
done:
    mf__free(Z);
    mf__free(Zs);
    mf__free(c);
    mf__free(p);
    if (rc) {
        mf_svm_result_free(r);
        return rc;
    }
    *out = r;
    return MF_OK;
}

/* v * 2^k where representable: 0, +-inf and NaN stay; a nonzero v whose
 * scaled value is not a normal double becomes NAN (absent: an overflow would
 * be inf, an underflow a wrong 0 or a subnormal without full precision). */
static double unscale(double v, int k) {
    if (v == 0 || !isfinite(v)) return v;
    double r = ldexp(v, k);
    return isfinite(r) && fabs(r) >= DBL_MIN ? r : NAN;
}

/* Most entries of the lifted data of a multi-class solve (2^26 doubles,
 * 512 MiB): N (C - 1) rows of C d features. */
#define MF__SVM_MC_MAX_ENTRIES ((size_t)1 << 26)

/*
 * Multi-class data (C = num_classes >= 2): the hard-margin multi-class SVM
 * through the origin in the form of Crammer & Singer (JMLR 2001) without
 * slack, W [C][d],
 *   (P2-mc)  minimize 1/2 ||W||_F^2  s.t.  <w_{y_n} - w_j, x_n> >= 1  (n, j != y_n),
 * whose optimum is gamma_cs = 1 / ||W||_F = max_W min_n (Phi_y - max_{j != y}
 * Phi_j) / ||W||_F, the global optimum of (P) for a linear multi-class
 * model (docs/theory.md s.3 with the multi-class margin). It is exactly the
 * binary problem (P2) on the lifted samples z_{nj} = (e_{y_n} - e_j) (x) x_n
 * in R^{C d} with label +1 (the constraint is <vec W, z_nj> >= 1), so the
 * binary solver, its certificates (weak-duality bracket, KKT residuals,
 * Gordan certificate when not separable) and its scale handling carry over
 * unchanged; the l1 problem (entrywise ||W||_1) likewise. The lifted
 * results are mapped back: alpha and the certificate to [N][C] (0 at j =
 * y_n), the support to the samples with a positive alpha_{nj}, q_min and
 * n_active to the multi-class margins.
 */
static int svm_multiclass(const mf_data *data, mf_svm_norm norm, const mf_svm_settings *settings,
                          mf_svm_result **out, mf_err *e) {
    const int N = data->n, d = data->d, C = data->num_classes;
    const size_t rows = (size_t)N * (size_t)(C - 1), cols = (size_t)C * (size_t)d;
    if (N < 1 || d < 1 || !data->x || !data->cls)
        return mf__err(e, MF_ERR_INVALID, "svm: empty data set (n = %d, d = %d)", N, d);
    if (rows > MF__SVM_MC_MAX_ENTRIES / cols)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "svm: the multi-class problem of %s (n = %d, d = %d, %d classes) lifts to "
                       "%zu x %zu = %.3g entries, more than the limit of %zu (512 MiB)",
                       data->desc, N, d, C, rows, cols, (double)rows * (double)cols,
                       MF__SVM_MC_MAX_ENTRIES);
    for (int n = 0; n < N; n++)
        if (data->cls[n] < 0 || data->cls[n] >= C)
            return mf__err(e, MF_ERR_INVALID, "svm: class of sample %d is %d, not in 0..%d", n + 1,
                           data->cls[n], C - 1);
    mf_data *F = NULL;
    int rc = mf_data_new((int)rows, (int)cols, 0, &F, e);
    if (rc) return rc;
    size_t r = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++) {
            if (j == data->cls[n]) continue;
            double *z = F->x + r * cols;
            const double *x = data->x + (size_t)n * d;
            for (int t = 0; t < d; t++) {
                z[(size_t)data->cls[n] * d + t] = x[t];
                z[(size_t)j * d + t] = -x[t];
            }
            F->y[r++] = 1.0;
        }
    snprintf(F->desc, sizeof F->desc, "%.200s (multi-class lifted)", data->desc);
    mf_svm_result *L = NULL;
    rc = mf_svm_solve(F, norm, settings, &L, e);
    mf_data_free(F);
    if (rc) return rc;
    mf_svm_result *R = L; /* the lifted result, rewritten in place */
    R->classes = C;
    R->n = N;
    R->d = d; /* w stays [C][d] = vec W */
    R->gamma_diag2 = 0.0;
    double *per = mf__calloc((size_t)N * C, sizeof(double));
    if (!per) {
        mf_svm_result_free(R);
        return mf__err(e, MF_ERR_NOMEM, "svm: out of memory");
    }
    double *src = R->status == MF_SVM_SOLVED ? R->alpha : R->certificate;
    r = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < C; j++)
            if (j != data->cls[n]) per[(size_t)n * C + j] = src ? src[r++] : 0.0;
    if (R->status == MF_SVM_SOLVED) {
        mf__free(R->alpha);
        R->alpha = per;
    } else {
        mf__free(R->certificate);
        R->certificate = per;
    }
    /* support: samples with a positive weight; margins of the samples */
    mf__free(R->support);
    R->support = mf__malloc(sizeof(int) * (size_t)N);
    if (!R->support) {
        mf_svm_result_free(R);
        return mf__err(e, MF_ERR_NOMEM, "svm: out of memory");
    }
    double amax = 0.0;
    for (size_t i = 0; i < (size_t)N * C; i++)
        if (per[i] > amax) amax = per[i];
    const double tol = R->status == MF_SVM_SOLVED && settings ? settings->support_tol : 1e-12;
    R->n_support = 0;
    for (int n = 0; n < N; n++) {
        int on = 0;
        for (int j = 0; j < C; j++) on |= per[(size_t)n * C + j] > tol * amax && per[(size_t)n * C + j] > 0;
        if (on) R->support[R->n_support++] = n;
    }
    if (R->status == MF_SVM_SOLVED && R->w) {
        mf_svm_settings def;
        mf_svm_settings_default(&def);
        const double atol = settings ? settings->active_tol : def.active_tol;
        double qmin = INFINITY;
        R->n_active = 0;
        for (int n = 0; n < N; n++) {
            const double *x = data->x + (size_t)n * d;
            const int y = data->cls[n];
            double qn = INFINITY;
            for (int j = 0; j < C; j++) {
                if (j == y) continue;
                double v = 0.0;
                for (int t = 0; t < d; t++) v += (R->w[(size_t)y * d + t] - R->w[(size_t)j * d + t]) * x[t];
                if (v < qn) qn = v;
            }
            if (qn < qmin) qmin = qn;
            if (fabs(qn - 1.0) <= atol) R->n_active++;
        }
        R->q_min = qmin;
    }
    *out = R;
    return MF_OK;
}

/*
 * mf_svm_solve -- contract in marginflow.h. Both problems are homogeneous in
 * the data: for x' = c x (c > 0) the solutions are w' = w / c, gamma' =
 * c gamma (and its bracket), alpha' = alpha / c^2 (l2) or alpha / c (l1),
 * the same support, the same certificate weights with norm c times, and the
 * same relative residuals. So the data are first multiplied by the power of
 * two c = 2^-k that brings max |x| into [0.5, 1) (exact for every entry
 * above 2^-1021 max |x|; smaller ones are below any tolerance of the
 * solve), solved there, and the results multiplied back exactly (ldexp).
 * The answer is then the same, bit for bit up to that power of two,
 * whatever the units of x, over the whole double range: without it,
 * max_n ||z_n|| overflowed for |x| near 1e155 (a finite separable set was
 * called non-separable with a certificate of norm inf) and underflowed for
 * |x| near 1e-160, and GLPK lost the l1 problem far earlier (|x| ~ 1e10).
 * A result entry that is not a normal double once scaled back (an l2 dual
 * of data below ~1e-154 grows as 1/c^2) is NAN: absent.
 */
int mf_svm_solve(const mf_data *data, mf_svm_norm norm, const mf_svm_settings *settings,
                 mf_svm_result **out, mf_err *e) {
    if (out) *out = NULL;
    if (data && out && data->num_classes >= 2) {
        mf_svm_settings def;
        mf_svm_settings_default(&def);
        const char *why = mf_svm_settings_validate(settings ? settings : &def);
        if (why) return mf__err(e, MF_ERR_INVALID, "svm settings: %s", why);
        if (norm != MF_SVM_L2 && norm != MF_SVM_L1)
            return mf__err(e, MF_ERR_INVALID, "svm: norm must be l2 or l1 (got %d)", (int)norm);
        return svm_multiclass(data, norm, settings, out, e);
    }
    if (!data || !out || data->n < 1 || data->d < 1 || !data->x)
        return svm_solve_unit(data, norm, settings, out, e); /* its errors */
    size_t nd = (size_t)data->n * (size_t)data->d;
    double mx = 0;
    for (size_t i = 0; i < nd; i++) {
        double a = fabs(data->x[i]);
        if (!isfinite(a)) return svm_solve_unit(data, norm, settings, out, e);
        if (a > mx) mx = a;
    }
    int k = 0;
    if (mx > 0) frexp(mx, &k); /* mx = m 2^k, m in [0.5, 1) */
    if (k == 0) return svm_solve_unit(data, norm, settings, out, e);
    mf_data S = *data; /* a shallow copy with scaled x */
    S.x = mf__malloc(sizeof(double) * nd);
    if (!S.x)
        return mf__err(e, MF_ERR_NOMEM, "svm: out of memory (n = %d, d = %d)", data->n, data->d);
    for (size_t i = 0; i < nd; i++) S.x[i] = ldexp(data->x[i], -k);
    int rc = svm_solve_unit(&S, norm, settings, out, e);
    mf__free(S.x);
    if (rc) return rc;
    mf_svm_result *r = *out;
    r->gamma = unscale(r->gamma, k);
    r->gamma_diag2 = unscale(r->gamma_diag2, k);
    r->gamma_lower = unscale(r->gamma_lower, k);
    r->gamma_upper = unscale(r->gamma_upper, k);
    /* a bound near 0: its absolute value is what counts, so it may underflow */
    r->certificate_norm = ldexp(r->certificate_norm, k);
    for (int j = 0; r->w && j < r->d; j++) r->w[j] = unscale(r->w[j], -k);
    for (int n = 0; r->alpha && n < r->n; n++)
        r->alpha[n] = unscale(r->alpha[n], norm == MF_SVM_L2 ? -2 * k : -k);
    return MF_OK;
}

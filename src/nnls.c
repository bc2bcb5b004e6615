/*
 * nnls.c -- the one non-negative least-squares solver of the library,
 * Lawson & Hanson, Solving Least Squares Problems (1974), ch. 23, algorithm
 * NNLS:
 *     minimize ||A z - b||_2  subject to  z >= 0.
 * Used by the hard-margin SVM (svm.c: its least-distance program, algorithm
 * LDP of the same chapter) and by the KKT test (kkt.c: the multipliers of the
 * active samples over the Clarke columns). Tested on problems with known
 * solutions in tests/test_nnls.c.
 */
#include "internal.h"

#include <lapacke.h>
#include <math.h>
#include <string.h>

/* dgelsd treats singular values below MF__NNLS_RCOND * s_max as zero (the
 * minimum-norm solution on a numerically rank-deficient passive set): about
 * 500 ulps, so only columns dependent to rounding are cut. */
#define MF__NNLS_RCOND 1e-13

/* The solver's state: n columns of which np are passive (ascending in idx). */
typedef struct nnls_ws {
    int m, n;
    unsigned char *passive, *banned; /* [n] */
    double *w;                       /* [n] A^T (b - A z) */
    double *r;                       /* [m] b - A z */
    int *idx;                        /* [m] passive columns, ascending */
    double *Ap, *bb, *sv;            /* dgelsd's copy of A_P [m][min(m, n)], b [m], singular values */
    double *work;                    /* dgelsd workspace, grown as queried */
    lapack_int *iwork;
    lapack_int lwork, liwork;        /* allocated sizes */
} nnls_ws;

static void ws_free(nnls_ws *s) {
    mf__free(s->passive);
    mf__free(s->banned);
    mf__free(s->w);
    mf__free(s->r);
    mf__free(s->idx);
    mf__free(s->Ap);
    mf__free(s->bb);
    mf__free(s->sv);
    mf__free(s->work);
    mf__free(s->iwork);
}

static int ws_init(nnls_ws *s, int m, int n) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->n = n;
    s->passive = mf__calloc((size_t)n, 1);
    s->banned = mf__calloc((size_t)n, 1);
    s->w = mf__calloc((size_t)n, sizeof(double));
    s->r = mf__calloc((size_t)m, sizeof(double));
    /* at most min(m, n) columns are ever passive: A_P is m x min(m, n) (an
       m x m block would be 80 GB for the KKT test of a 1e5-parameter net) */
    const size_t mn = (size_t)(m < n ? m : n) + 1;
    s->idx = mf__calloc(mn, sizeof(int));
    s->Ap = mf__calloc((size_t)m * mn, sizeof(double));
    s->bb = mf__calloc((size_t)m, sizeof(double));
    s->sv = mf__calloc(mn, sizeof(double));
    if (!s->passive || !s->banned || !s->w || !s->r || !s->idx || !s->Ap || !s->bb || !s->sv)
        return MF_ERR_NOMEM;
    return MF_OK;
}

/* r = b - A z over the nonzero z_j, then w = A^T r (plain loops: the
 * selection of entering columns is the same wherever the solver runs). */
static void gradient(nnls_ws *s, const double *A, const double *b, const double *z) {
    const int m = s->m;
    memcpy(s->r, b, sizeof(double) * (size_t)m);
    for (int j = 0; j < s->n; j++)
        if (z[j] != 0.0)
            for (int i = 0; i < m; i++) s->r[i] -= A[(size_t)j * m + i] * z[j];
    for (int j = 0; j < s->n; j++) s->w[j] = mf__dot(A + (size_t)j * m, s->r, (size_t)m);
}

/*
 * The unconstrained least-squares problem on the p passive columns (in
 * ascending order): bb[0..p) = argmin ||A_P s - b|| by LAPACK dgelsd (SVD,
 * minimum norm where A_P is rank deficient), with the optimal workspace of
 * a dgelsd query. Returns LAPACK's info, or -1000 when the workspace could
 * not grow.
 */
static lapack_int solve_passive(nnls_ws *s, const double *A, const double *b, int p) {
    const int m = s->m;
    lapack_int rank = 0, iq = 0;
    double wq = 0.0;
    for (int c = 0; c < p; c++)
        memcpy(s->Ap + (size_t)c * m, A + (size_t)s->idx[c] * m, sizeof(double) * (size_t)m);
    memcpy(s->bb, b, sizeof(double) * (size_t)m);
    lapack_int info = LAPACKE_dgelsd_work(LAPACK_COL_MAJOR, m, p, 1, s->Ap, m, s->bb, m, s->sv,
                                          MF__NNLS_RCOND, &rank, &wq, -1, &iq);
    if (info != 0) return info;
    lapack_int lw = (lapack_int)wq, liw = iq > 1 ? iq : 1;
    if (lw > s->lwork) {
        double *nw = mf__realloc(s->work, sizeof(double) * (size_t)lw);
        if (!nw) return -1000;
        s->work = nw;
        s->lwork = lw;
    }
    if (liw > s->liwork) {
        lapack_int *ni = mf__realloc(s->iwork, sizeof(lapack_int) * (size_t)liw);
        if (!ni) return -1000;
        s->iwork = ni;
        s->liwork = liw;
    }
    return LAPACKE_dgelsd_work(LAPACK_COL_MAJOR, m, p, 1, s->Ap, m, s->bb, m, s->sv, MF__NNLS_RCOND,
                               &rank, s->work, lw, s->iwork);
}

/* The passive columns in ascending order into s->idx; returns how many. */
static int passive_list(nnls_ws *s) {
    int p = 0;
    for (int j = 0; j < s->n; j++)
        if (s->passive[j]) s->idx[p++] = j;
    return p;
}

/*
 * The inner loop of NNLS after column t entered: solve on the passive set;
 * a first solution with a non-positive coefficient for t is a rounding
 * artefact (t is put back and barred until z next changes); a positive
 * solution is taken; otherwise step from z towards it until the first
 * coefficient reaches 0, drop the columns at 0, and solve again.
 * Returns MF_OK, MF_ERR_NOMEM or MF_ERR_NUMERIC; *changed = 1 if z moved.
 */
static int inner_loop(nnls_ws *s, const double *A, const double *b, double *z, int t, int *changed,
                      mf_err *e) {
    for (int first = 1, inner = 0;; first = 0) {
        int p = passive_list(s);
        lapack_int info = solve_passive(s, A, b, p);
        if (info == -1000) return mf__err(e, MF_ERR_NOMEM, "out of memory in NNLS (%d x %d)", s->m, s->n);
        if (info != 0)
            return mf__err(e, MF_ERR_NUMERIC, "NNLS: LAPACK dgelsd failed (info %d)", (int)info);
        const double *sol = s->bb; /* coefficient of column idx[c] is sol[c] */
        if (first) {
            int ct = 0;
            while (s->idx[ct] != t) ct++;
            if (!(sol[ct] > 0.0)) {
                s->passive[t] = 0;
                s->banned[t] = 1;
                return MF_OK;
            }
        }
        int feasible = 1;
        for (int c = 0; c < p; c++)
            if (!(sol[c] > 0.0)) feasible = 0;
        memset(s->banned, 0, (size_t)s->n);
        *changed = 1;
        if (feasible) {
            for (int c = 0; c < p; c++) z[s->idx[c]] = sol[c];
            return MF_OK;
        }
        double step = 2.0;
        int kmin = -1;
        for (int c = 0; c < p; c++) {
            if (sol[c] > 0.0) continue;
            double zj = z[s->idx[c]], a = zj / (zj - sol[c]);
            if (a < step) {
                step = a;
                kmin = c;
            }
        }
        if (kmin < 0) return mf__err(e, MF_ERR_NUMERIC, "NNLS: no blocking coefficient (non-finite data)");
        for (int c = 0; c < p; c++) z[s->idx[c]] += step * (sol[c] - z[s->idx[c]]);
        z[s->idx[kmin]] = 0.0;
        for (int c = 0; c < p; c++)
            if (z[s->idx[c]] <= 0.0) {
                z[s->idx[c]] = 0.0;
                s->passive[s->idx[c]] = 0;
            }
        if (++inner > 3 * s->m + 10)
            return mf__err(e, MF_ERR_NUMERIC, "NNLS: the inner loop did not end in %d steps", inner);
    }
}

/*
 * mf__nnls -- Lawson & Hanson's NNLS for A [m][n] column-major (column j at
 * A + j m), b [m]; z [n] receives the solution.
 *
 * Active-set method: the passive set P (columns with z_j > 0) grows by the
 * column with the largest w_j = (A^T (b - A z))_j, and the least-squares
 * problem on P is solved by dgelsd (solve_passive; inner_loop keeps z >= 0).
 * It ends, in exact arithmetic after finitely many steps, when
 *   - every column outside P has w_j <= tol (the KKT conditions of NNLS:
 *     w <= 0 off P up to tol, w = 0 on P), or
 *   - P has m columns (the residual is then zero when they are independent), or
 *   - an accepted z did not lower ||b - A z||^2 (each one does in exact
 *     arithmetic; what is left is rounding).
 * tol is absolute (each caller scales it to its problem); more than
 * max_iter entering columns is MF_ERR_NUMERIC ("did not converge"), as are a
 * LAPACK failure and an inner loop that does not end. *iters = columns
 * entered (banned entries included). MF_OK, MF_ERR_NOMEM or MF_ERR_NUMERIC.
 */
int mf__nnls(int m, int n, const double *A, const double *b, double tol, int max_iter, double *z,
             int *iters, mf_err *e) {
    nnls_ws s;
    int rc = ws_init(&s, m, n), it = 0, changed = 1, np = 0;
    double rr_prev = INFINITY;
    if (rc) {
        ws_free(&s);
        return mf__err(e, MF_ERR_NOMEM, "out of memory in NNLS (%d x %d)", m, n);
    }
    for (int j = 0; j < n; j++) z[j] = 0.0;
    for (;;) {
        gradient(&s, A, b, z);
        double rr = mf__dot(s.r, s.r, (size_t)m);
        if (changed && rr >= rr_prev) break;
        if (changed) rr_prev = rr;
        changed = 0;
        int t = -1;
        for (int j = 0; j < n; j++)
            if (!s.passive[j] && !s.banned[j] && s.w[j] > tol && (t < 0 || s.w[j] > s.w[t])) t = j;
        np = 0;
        for (int j = 0; j < n; j++) np += s.passive[j];
        if (t < 0 || np == m) break;
        if (++it > max_iter) {
            rc = mf__err(e, MF_ERR_NUMERIC, "NNLS did not converge in %d iterations", max_iter);
            break;
        }
        s.passive[t] = 1;
        rc = inner_loop(&s, A, b, z, t, &changed, e);
        if (rc) break;
    }
    if (iters) *iters = it;
    ws_free(&s);
    return rc;
}

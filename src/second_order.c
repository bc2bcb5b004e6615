/*
 * second_order.c -- the second-order test for (P) at a smooth KKT point
 * ([VSS22] sec. 4; docs/theory.md s.3): the Lagrangian Hessian
 *   H = I - sum_n lambda_n Hess q_n(theta~)
 * on the critical cone of the active constraints. H positive definite there
 * is the second-order sufficient condition for a strict local minimum (and
 * is reported only when the smallest eigenvalue exceeds its estimated
 * numerical error); a direction of negative curvature inside the cone is
 * EVIDENCE that theta~ is not a local minimum, which becomes a certificate
 * only through a witness on the curve along it (witness.c).
 *
 * H is never formed from second derivatives of the model: it is applied to
 * vectors by central differences of exact batched gradients,
 *   H v = v - (g(theta~ + h v) - g(theta~ - h v)) / (2h),
 *   g(x) = sum_n lambda_n grad q_n(x)   (one batched backward pass),
 * with each margin's competing class fixed at theta~'s. On a fixed
 * activation pattern the margins are polynomials of degree L along a line,
 * so the differences are exact for L = 2 up to rounding and have
 * truncation error O(h^2) deeper; a step that changes the sign of a
 * pre-activation of a sample with a multiplier is detected and retried
 * with h / 10 (twice), else the test reports that it does not apply.
 *
 * The critical subspace S+ = {d : grad q_n . d = 0 for lambda_n > 0} is the
 * orthogonal complement of the rows Gp: an SVD of Gp (LAPACK dgesvd) gives
 * its rank and an orthonormal basis V of its row space, a Householder QR
 * of V (dgeqrf) gives Q = [V', Z] with Z an orthonormal basis of S+, applied
 * to vectors by dormqr in O(P rank). The reduced operator Z' H Z (dimension
 * k = P - rank) is
 *  - formed by k Hessian-vector products and diagonalized (dsyev) when k <=
 *    MF__MAX_HESS_PARAMS and Z fits MF__DENSE_MAX_DOUBLES;
 *  - else handed to ARPACK's implicitly restarted Lanczos method (dsaupd /
 *    dseupd, Lehoucq, Sorensen & Yang, ARPACK Users' Guide, SIAM 1998) for
 *    its smallest algebraic eigenvalue, up to MF__MAX_ARPACK_PARAMS.
 * The numerical error of the smallest eigenvalue lambda with unit
 * eigenvector d is estimated as
 *   err = 2 (|d'H_{2h}d - d'H_h d| + asym) + residual + 64 u (1 + |lambda|),
 * the first term a Richardson comparison of the step sizes h and 2h
 * (truncation ~h^2 and rounding ~u/h both show in it), asym the
 * antisymmetric part of the difference Hessian (dense: ||(H - H')/2||_F on
 * the subspace; ARPACK: |u'Hv - v'Hu| for two random unit vectors of S+),
 * residual the eigenpair residual ||Z'HZ y - lambda y||.
 */
#include "analysis_internal.h"

#include <arpack/arpack.h>
#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* The parameter count up to which the dense path is taken (tests lower it
 * to compare the two paths on one problem). */
static int g_dense_limit = MF__MAX_HESS_PARAMS;

int mf__so_dense_limit(int limit) {
    int prev = g_dense_limit;
    g_dense_limit = limit < 0 ? MF__MAX_HESS_PARAMS : limit;
    return prev;
}

/* The state of one second-order test. */
typedef struct so_ctx {
    mf__an_ctx *c;
    const double *tt;      /* theta~ [P] */
    const double *lambda;  /* [N] */
    int P, N, Hn, C;
    int *jc;               /* [N] competing class at theta~ (multi-class), else unused */
    double *z0, *z1;       /* pre-activations [N][Hn] at theta~ and at a step */
    double *tp, *gp, *gm;  /* [P] */
    double *dout;          /* [N][C] */
    double h;              /* the difference step used */
    int crossed;           /* a step crossed a kink */
    int hvps;              /* Hessian-vector products so far */
    /* the critical subspace */
    int rank, k;           /* rank of Gp, k = P - rank */
    double *Q, *tau;       /* Householder factors of V [P][rank] (col-major), tau [rank] */
    double *wv;            /* [P] scratch for the basis application */
} so_ctx;

/* g = sum_n lambda_n grad q_n(x) by one batched forward and backward pass;
 * sets s->crossed when a pre-activation of a sample with a multiplier has
 * another sign at x than at theta~. */
static void so_grad(so_ctx *s, const double *x, double *g) {
    mf__an_ctx *c = s->c;
    const mf_data *D = c->data;
    mf_model_forward(c->m, c->wN, x, D->x, s->N, c->outN);
    memset(s->dout, 0, sizeof(double) * (size_t)s->N * s->C);
    for (int n = 0; n < s->N; n++) {
        if (s->lambda[n] == 0.0) continue;
        if (D->num_classes == 0) {
            s->dout[n] = s->lambda[n] * D->y[n];
        } else {
            s->dout[(size_t)n * s->C + D->cls[n]] = s->lambda[n];
            s->dout[(size_t)n * s->C + s->jc[n]] -= s->lambda[n];
        }
    }
    mf_model_backward(c->m, c->wN, x, D->x, s->N, s->dout, g);
    if (s->Hn && s->z0 && mf__preact(c->m, x, D, s->z1, NULL, NULL) == MF_OK)
        for (int n = 0; n < s->N; n++)
            if (s->lambda[n] != 0.0)
                for (int k = 0; k < s->Hn; k++) {
                    size_t t = (size_t)n * s->Hn + k;
                    if ((s->z0[t] > 0) != (s->z1[t] > 0)) s->crossed = 1;
                }
}

/* out [P] = H v with step h (||v|| ~ 1): central differences of so_grad. */
static void so_hvp(so_ctx *s, const double *v, double h, double *out) {
    const int P = s->P;
    for (int i = 0; i < P; i++) s->tp[i] = s->tt[i] + h * v[i];
    so_grad(s, s->tp, s->gp);
    for (int i = 0; i < P; i++) s->tp[i] = s->tt[i] - h * v[i];
    so_grad(s, s->tp, s->gm);
    for (int i = 0; i < P; i++) out[i] = v[i] - (s->gp[i] - s->gm[i]) / (2.0 * h);
    s->hvps++;
}

/* The rows of J of the samples with a positive multiplier (> lam_tol), or
 * of every active sample (all = 1): G [r][P] row-major, r returned. */
static int so_rows(const double *J, const mf_analysis *a, double lam_tol, int N, int P, int all,
                   double *G) {
    int r = 0;
    for (int n = 0; n < N; n++)
        if (a->active[n] && (all || a->lambda[n] > lam_tol))
            memcpy(G + (size_t)r++ * P, J + (size_t)n * P, sizeof(double) * (size_t)P);
    return r;
}

/* The orthonormal basis Z of the complement of the row space of G [r][P]:
 * s->rank, s->k, s->Q, s->tau (module comment). 0, -1 no memory, -2 LAPACK. */
static int so_basis(so_ctx *s, const double *G, int r) {
    const int P = s->P, mn = r < P ? r : P;
    mf__free(s->Q);
    mf__free(s->tau);
    s->Q = s->tau = NULL;
    s->rank = 0;
    s->k = P;
    if (r == 0) return 0;
    double *A = mf__malloc(sizeof(double) * (size_t)r * P);   /* G col-major [r][P] */
    double *S = mf__malloc(sizeof(double) * (size_t)mn + sizeof(double));
    double *VT = mf__malloc(sizeof(double) * (size_t)mn * P); /* [mn][P] col-major */
    double *sup = mf__malloc(sizeof(double) * (size_t)mn + sizeof(double));
    double U1;
    int rc = -1;
    if (!A || !S || !VT || !sup) goto done;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < P; j++) A[(size_t)j * r + i] = G[(size_t)i * P + j];
    rc = -2;
    if (LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'N', 'S', r, P, A, r, S, &U1, 1, VT, mn, sup) != 0)
        goto done;
    int rank = 0;
    for (int i = 0; i < mn; i++)
        if (S[i] > MF__RANK_TOL * S[0]) rank++;
    s->rank = rank;
    s->k = P - rank;
    rc = 0;
    if (rank == 0) goto done;
    rc = -1;
    s->Q = mf__malloc(sizeof(double) * (size_t)P * rank);
    s->tau = mf__malloc(sizeof(double) * (size_t)rank);
    if (!s->Q || !s->tau) goto done;
    for (int c = 0; c < rank; c++) /* V [P][rank] col-major: rows of VT */
        for (int j = 0; j < P; j++) s->Q[(size_t)c * P + j] = VT[(size_t)j * mn + c];
    rc = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, P, rank, s->Q, P, s->tau) == 0 ? 0 : -2;
done:
    mf__free(A);
    mf__free(S);
    mf__free(VT);
    mf__free(sup);
    return rc;
}

/* v [P] = Z y (y [k]). */
static int so_Z(so_ctx *s, const double *y, double *v) {
    const int P = s->P;
    if (s->rank == 0) {
        memcpy(v, y, sizeof(double) * (size_t)P);
        return 0;
    }
    for (int i = 0; i < s->rank; i++) v[i] = 0.0;
    memcpy(v + s->rank, y, sizeof(double) * (size_t)s->k);
    return LAPACKE_dormqr(LAPACK_COL_MAJOR, 'L', 'N', P, 1, s->rank, s->Q, P, s->tau, v, P) == 0
               ? 0 : -2;
}

/* y [k] = Z' v (v [P], overwritten). */
static int so_Zt(so_ctx *s, double *v, double *y) {
    const int P = s->P;
    if (s->rank == 0) {
        memcpy(y, v, sizeof(double) * (size_t)P);
        return 0;
    }
    if (LAPACKE_dormqr(LAPACK_COL_MAJOR, 'L', 'T', P, 1, s->rank, s->Q, P, s->tau, v, P) != 0)
        return -2;
    memcpy(y, v + s->rank, sizeof(double) * (size_t)s->k);
    return 0;
}

/* What the smallest eigenvalue search found. */
typedef struct so_eig {
    double lam, err, asym, resid;
    int iters;             /* ARPACK restarts, 0 for the dense path */
    const char *fail;      /* non-NULL: why there is no eigenvalue */
} so_eig;

/* Dense path: Z [P][k] explicitly (dormqr on [0; I_k]), HZ by k
 * Hessian-vector products of its columns, R = Z' HZ (dgemm), its
 * antisymmetric part ||(R - R')/2||_F as the asymmetry, then R symmetrized
 * and diagonalized (dsyev). d [P] receives the unit eigenvector of the
 * smallest eigenvalue. 0, -1 no memory, -2 LAPACK. */
static int so_dense(so_ctx *s, double *d, so_eig *ev) {
    const int P = s->P, k = s->k;
    double *Z = mf__calloc((size_t)P * k, sizeof(double));
    double *HZ = mf__malloc(sizeof(double) * (size_t)P * k);
    double *R = mf__malloc(sizeof(double) * (size_t)k * k);
    double *w = mf__malloc(sizeof(double) * (size_t)k);
    int rc = -1;
    if (!Z || !HZ || !R || !w) goto done;
    rc = -2;
    for (int c = 0; c < k; c++) Z[(size_t)c * P + s->rank + c] = 1.0; /* [0; I_k] */
    if (s->rank > 0 &&
        LAPACKE_dormqr(LAPACK_COL_MAJOR, 'L', 'N', P, k, s->rank, s->Q, P, s->tau, Z, P) != 0)
        goto done;
    for (int c = 0; c < k; c++) so_hvp(s, Z + (size_t)c * P, s->h, HZ + (size_t)c * P);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, k, k, P, 1.0, Z, P, HZ, P, 0.0, R, k);
    double as = 0.0;
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++) {
            double t = 0.5 * (R[(size_t)i * k + j] - R[(size_t)j * k + i]);
            double m = 0.5 * (R[(size_t)i * k + j] + R[(size_t)j * k + i]);
            as += 2.0 * t * t;
            R[(size_t)i * k + j] = R[(size_t)j * k + i] = m;
        }
    ev->asym = sqrt(as);
    if (LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'U', k, R, k, w) != 0) goto done;
    ev->lam = w[0];
    ev->resid = 0.0;
    cblas_dgemv(CblasColMajor, CblasNoTrans, P, k, 1.0, Z, P, R, 1, 0.0, d, 1); /* d = Z y */
    rc = 0;
done:
    mf__free(Z);
    mf__free(HZ);
    mf__free(R);
    mf__free(w);
    return rc;
}

/* ARPACK path: the smallest algebraic eigenvalue of R = Z'HZ by dsaupd /
 * dseupd in reverse communication (mode 1, exact shifts), its unit
 * eigenvector Z y in d [P]. 0, -1 no memory, -2 LAPACK or ARPACK failure
 * (ev->fail says which). */
static int so_arpack(so_ctx *s, double *d, so_eig *ev) {
    const int P = s->P, k = s->k;
    const int nev = 1, ncv = k < MF__ARPACK_NCV ? k : MF__ARPACK_NCV;
    const int lworkl = ncv * (ncv + 8);
    double *V = mf__malloc(sizeof(double) * (size_t)k * ncv);
    double *workd = mf__malloc(sizeof(double) * 3 * (size_t)k);
    double *workl = mf__malloc(sizeof(double) * (size_t)lworkl);
    double *resid = mf__malloc(sizeof(double) * (size_t)P); /* k used; P later as a probe */
    double *y = mf__malloc(sizeof(double) * (size_t)k);
    double *v = mf__malloc(sizeof(double) * (size_t)P), *hv = mf__malloc(sizeof(double) * (size_t)P);
    a_int *sel = mf__calloc((size_t)ncv, sizeof(a_int));
    int rc = -1;
    if (!V || !workd || !workl || !resid || !y || !v || !hv || !sel) goto done;
    mf_rng rng;
    mf_rng_seed(&rng, 7);
    for (int i = 0; i < k; i++) resid[i] = mf_rng_normal(&rng);
    a_int iparam[11] = {0}, ipntr[14] = {0}, ido = 0, info = 1;
    iparam[0] = 1;                  /* exact shifts */
    iparam[2] = MF__ARPACK_MAXIT;   /* restarts */
    iparam[6] = 1;                  /* standard problem A y = lambda y */
    rc = -2;
    for (;;) {
        dsaupd_c(&ido, "I", k, "SA", nev, MF__ARPACK_TOL, resid, ncv, V, k, iparam, ipntr, workd,
                 workl, lworkl, &info);
        if (ido != -1 && ido != 1) break;
        const double *xin = workd + ipntr[0] - 1;
        double *yout = workd + ipntr[1] - 1;
        if (so_Z(s, xin, v)) goto done;
        so_hvp(s, v, s->h, hv);
        if (so_Zt(s, hv, yout)) goto done;
        if (s->crossed) {
            ev->fail = "crossed";
            rc = 0;
            goto done;
        }
    }
    ev->iters = iparam[2];
    if (info < 0 || info == 1) {
        ev->fail = info == 1 ? "ARPACK reached its iteration limit before the smallest eigenvalue "
                               "converged"
                             : "ARPACK dsaupd failed";
        rc = 0;
        goto done;
    }
    double dval[1];
    dseupd_c(1, "A", sel, dval, y, k, 0.0, "I", k, "SA", nev, MF__ARPACK_TOL, resid, ncv, V, k, iparam,
             ipntr, workd, workl, lworkl, &info);
    if (info != 0) {
        ev->fail = "ARPACK dseupd failed";
        rc = 0;
        goto done;
    }
    ev->lam = dval[0];
    double ny = mf__norm2(y, (size_t)k);
    for (int i = 0; i < k; i++) y[i] /= ny;
    if (so_Z(s, y, d)) goto done; /* residual ||R y - lambda y|| */
    so_hvp(s, d, s->h, hv);
    double *ry = workd; /* k doubles free now */
    if (so_Zt(s, hv, ry)) goto done;
    double r2 = 0.0;
    for (int i = 0; i < k; i++) r2 += (ry[i] - ev->lam * y[i]) * (ry[i] - ev->lam * y[i]);
    ev->resid = sqrt(r2);
    /* asymmetry probe: |u'Hw - w'Hu| for random unit u, w in S+ (u, w [k]
       in workd, their images Z u, Z w in v and V's first column) */
    double *u = workd, *uw = workd + k, *pw = resid; /* resid is free after dseupd */
    for (int i = 0; i < k; i++) u[i] = mf_rng_normal(&rng), uw[i] = mf_rng_normal(&rng);
    double nu = mf__norm2(u, (size_t)k), nw = mf__norm2(uw, (size_t)k);
    for (int i = 0; i < k; i++) u[i] /= nu, uw[i] /= nw;
    if (so_Z(s, u, v) || so_Z(s, uw, hv)) goto done;
    memcpy(pw, hv, sizeof(double) * (size_t)P);
    so_hvp(s, pw, s->h, hv);
    double a1 = mf__dot(v, hv, (size_t)P);     /* u' H w */
    so_hvp(s, v, s->h, hv);
    double a2 = mf__dot(pw, hv, (size_t)P);    /* w' H u */
    ev->asym = fabs(a1 - a2);
    rc = 0;
done:
    mf__free(V);
    mf__free(workd);
    mf__free(workl);
    mf__free(resid);
    mf__free(y);
    mf__free(v);
    mf__free(hv);
    mf__free(sel);
    return rc;
}

/* Is d (or -d, then flipped) in the critical cone: g_n.d >= 0 for the
 * active n with lambda_n <= lam_tol (g_n.d = 0 for lambda_n > lam_tol by
 * construction)? */
static int in_cone(const double *J, const mf_analysis *a, double lam_tol, int N, int P, double *dir) {
    int pos = 1, neg = 1;
    for (int n = 0; n < N; n++) {
        if (!a->active[n] || a->lambda[n] > lam_tol) continue;
        double gd = mf__dot(J + (size_t)n * P, dir, (size_t)P);
        double gn = mf__norm2(J + (size_t)n * P, (size_t)P);
        if (gd < -MF__CONE_TOL * gn) pos = 0;
        if (gd > MF__CONE_TOL * gn) neg = 0;
    }
    if (!pos && neg)
        for (int i = 0; i < P; i++) dir[i] = -dir[i];
    return pos || neg;
}

static void so_free(so_ctx *s) {
    mf__free(s->jc);
    mf__free(s->z0);
    mf__free(s->z1);
    mf__free(s->tp);
    mf__free(s->gp);
    mf__free(s->gm);
    mf__free(s->dout);
    mf__free(s->Q);
    mf__free(s->tau);
    mf__free(s->wv);
}

static int so_init(so_ctx *s, mf__an_ctx *c, const double *tt, const mf_analysis *a, double h) {
    memset(s, 0, sizeof *s);
    s->c = c;
    s->tt = tt;
    s->lambda = a->lambda;
    s->P = (int)c->P;
    s->N = c->N;
    s->C = c->m->n_out;
    s->Hn = mf_model_n_hidden(c->m);
    s->h = h;
    const size_t np = (size_t)s->N * (size_t)s->Hn;
    s->jc = mf__calloc((size_t)s->N, sizeof(int));
    s->tp = mf__malloc(sizeof(double) * c->P);
    s->gp = mf__malloc(sizeof(double) * c->P);
    s->gm = mf__malloc(sizeof(double) * c->P);
    s->wv = mf__malloc(sizeof(double) * c->P);
    s->dout = mf__malloc(sizeof(double) * (size_t)s->N * s->C);
    if (np) {
        s->z0 = mf__malloc(sizeof(double) * np);
        s->z1 = mf__malloc(sizeof(double) * np);
    }
    if (!s->jc || !s->tp || !s->gp || !s->gm || !s->wv || !s->dout || (np && (!s->z0 || !s->z1)))
        return -1;
    if (np && mf__preact(c->m, tt, c->data, s->z0, NULL, NULL) != MF_OK) return -1;
    if (c->data->num_classes) {
        mf_model_forward(c->m, c->wN, tt, c->data->x, s->N, c->outN);
        for (int n = 0; n < s->N; n++)
            s->jc[n] = mf__competitor(c->data, c->outN + (size_t)n * s->C, s->C, n);
    }
    return 0;
}

/* The dense path when the subspace is small enough to form Z'HZ (k <=
 * g_dense_limit and P k <= MF__DENSE_MAX_DOUBLES), or too small for
 * Lanczos (k <= 2: ARPACK needs more Lanczos vectors than eigenvalues). */
static int so_use_dense(const so_ctx *s) {
    return s->k <= 2 ||
           (s->k <= g_dense_limit && (double)s->P * s->k <= MF__DENSE_MAX_DOUBLES);
}

/* The smallest eigenvalue of Z'HZ on the current basis (dense or ARPACK),
 * retrying with h / 10 (twice) when a step crossed a kink. */
static int so_min_eig(so_ctx *s, double *d, so_eig *ev) {
    for (int tries = 0; tries < 3; tries++) {
        memset(ev, 0, sizeof *ev);
        s->crossed = 0;
        int rc = so_use_dense(s) ? so_dense(s, d, ev) : so_arpack(s, d, ev);
        if (rc) return rc;
        if (!s->crossed && !(ev->fail && !strcmp(ev->fail, "crossed"))) return 0;
        s->h /= 10;
    }
    ev->fail = "crossed";
    return 0;
}

/* The error estimate of the module comment for eigenvalue ev->lam with unit
 * eigenvector d (one more Hessian-vector product at 2h). */
static void so_error(so_ctx *s, const double *d, so_eig *ev, double *hv) {
    so_hvp(s, d, 2.0 * s->h, hv);
    double lam2 = mf__dot(d, hv, (size_t)s->P);
    so_hvp(s, d, s->h, hv);
    double lam1 = mf__dot(d, hv, (size_t)s->P);
    ev->err = 2.0 * (fabs(lam2 - lam1) + ev->asym) + ev->resid +
              64.0 * DBL_EPSILON * (1.0 + fabs(ev->lam));
}

/*
 * Second-order test at a smooth point (contract in analysis_internal.h).
 * Critical cone ([VSS22] sec. 4): C = {d : g_n.d = 0 (lambda_n > 0), g_n.d
 * >= 0 (active, lambda_n = 0)}; with S+ = {g_n.d = 0, lambda_n > 0} ⊇ C ⊇
 * S0 = {g_n.d = 0 for every active n}: H positive definite on S+ by more
 * than the error certifies the sufficient condition on C; a direction of
 * negative curvature (beyond the error) in S0 -- or in S+ satisfying the
 * inequalities -- lies in C and is evidence (L->so_negative, a->dir).
 */
int mf__second_order(mf__an_ctx *c, const double *tt, const double *J, mf_analysis *a,
                     const mf_analyze_settings *st, mf__local_evidence *L, mf_err *e) {
    const int N = c->N, P = (int)c->P;
    so_ctx s;
    so_eig ev;
    double lmax = 0.0, *G = NULL;
    memset(&s, 0, sizeof s);
    int rc = MF_OK;
    for (int n = 0; n < N; n++)
        if (a->lambda[n] > lmax) lmax = a->lambda[n];
    const double lam_tol = MF__LAMBDA_ZERO * (lmax > 1.0 ? lmax : 1.0);
    a->dir = mf__calloc((size_t)P, sizeof(double));
    G = mf__malloc(sizeof(double) * (size_t)N * P + 1);
    if (!a->dir || !G || so_init(&s, c, tt, a, st->hess_h)) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
        goto done;
    }
    if (P > MF__MAX_ARPACK_PARAMS) { /* (the memory the columns need, ~40 P doubles, is small) */
        snprintf(a->min_eig_absent, sizeof a->min_eig_absent,
                 "second-order test not run: %d parameters > %d", P, MF__MAX_ARPACK_PARAMS);
        goto done;
    }
    int strict = 1, rp = so_rows(J, a, lam_tol, N, P, 0, G);
    for (int n = 0; n < N; n++)
        if (a->active[n] && !(a->lambda[n] > lam_tol)) strict = 0;
    int br = so_basis(&s, G, rp);
    if (br == -1) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
        goto done;
    }
    if (br) {
        rc = mf__err(e, MF_ERR_NUMERIC, "second-order test: LAPACK failed on the critical subspace");
        goto done;
    }
    a->so_dim = s.k;
    a->second_order_done = 1;
    if (s.k == 0) {
        L->so_certified = 1;
        snprintf(a->min_eig_absent, sizeof a->min_eig_absent,
                 "the critical subspace is {0} (the gradients of the %d positive-multiplier "
                 "constraints span R^%d)",
                 rp, P);
        snprintf(L->so_note, sizeof L->so_note, "critical subspace is {0}: the sufficient condition "
                                                "holds trivially");
        goto done;
    }
    int er = so_min_eig(&s, a->dir, &ev);
    if (er) {
        rc = er == -1 ? mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test")
                      : mf__err(e, MF_ERR_NUMERIC, "second-order test: LAPACK failed");
        goto done;
    }
    snprintf(a->hessian_method, sizeof a->hessian_method, "%s, HVP central differences, h = %.3g",
             so_use_dense(&s) ? "dense dsyev" : "ARPACK Lanczos", s.h);
    if (ev.fail) {
        a->second_order_done = 0;
        if (!strcmp(ev.fail, "crossed"))
            snprintf(a->min_eig_absent, sizeof a->min_eig_absent,
                     "a pre-activation of a sample with a multiplier changes sign within the "
                     "difference step (h down to %.3g): the point is too near a kink",
                     s.h);
        else
            snprintf(a->min_eig_absent, sizeof a->min_eig_absent, "%s", ev.fail);
        snprintf(L->so_note, sizeof L->so_note, "second order not available (%s)", a->min_eig_absent);
        goto done;
    }
    so_error(&s, a->dir, &ev, s.wv);
    a->min_eig = ev.lam;
    a->min_eig_err = ev.err;
    const double thr = fmax(MF__EIG_TOL, ev.err);
    if (ev.lam > thr) {
        L->so_certified = 1;
        snprintf(L->so_note, sizeof L->so_note,
                 "H positive definite on the critical subspace (dim %d): min eigenvalue %.6g, above "
                 "its estimated error %.2g%s",
                 s.k, ev.lam, ev.err,
                 strict ? "" : "; the subspace contains the critical cone (active constraints with "
                               "zero multiplier), so the sufficient condition holds");
        goto done;
    }
    if (!(ev.lam < -thr)) {
        snprintf(L->so_note, sizeof L->so_note,
                 "H positive semidefinite on the critical subspace (dim %d) to within its error: min "
                 "eigenvalue %.3g, error %.2g (threshold %.2g): second order inconclusive",
                 s.k, ev.lam, ev.err, thr);
        goto done;
    }
    int cone = strict || in_cone(J, a, lam_tol, N, P, a->dir);
    if (!cone) { /* the smaller subspace S0 lies in the cone */
        int ra = so_rows(J, a, lam_tol, N, P, 1, G);
        br = so_basis(&s, G, ra);
        if (br == -1) {
            rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
            goto done;
        }
        so_eig e0;
        double *d0 = mf__malloc(sizeof(double) * (size_t)P);
        if (!d0) {
            rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
            goto done;
        }
        if (!br && s.k > 0 && so_min_eig(&s, d0, &e0) == 0 && !e0.fail) {
            so_error(&s, d0, &e0, s.wv);
            if (e0.lam < -fmax(MF__EIG_TOL, e0.err)) {
                cone = 1;
                ev = e0;
                a->min_eig = e0.lam;
                a->min_eig_err = e0.err;
                a->so_dim = s.k;
                memcpy(a->dir, d0, sizeof(double) * (size_t)P);
            }
        }
        mf__free(d0);
    }
    if (cone) {
        L->so_negative = 1;
        snprintf(L->so_note, sizeof L->so_note,
                 "negative curvature in the critical cone: d'Hd = %.6g (error %.2g) for a unit d",
                 a->min_eig, a->min_eig_err);
    } else {
        snprintf(L->so_note, sizeof L->so_note,
                 "H has eigenvalue %.6g on the equality relaxation of the critical cone, but its "
                 "direction leaves the cone: inconclusive",
                 a->min_eig);
    }
done:
    so_free(&s);
    mf__free(G);
    return rc;
}

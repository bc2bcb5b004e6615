/*
 * second_order.c -- the second-order test for (P) at a smooth KKT point
 * ([VSS22] sec. 4; docs/theory.md s.3): the Lagrangian Hessian
 *   H = I - sum_n lambda_n Hess q_n(theta~)
 * on the critical cone of the active constraints. H positive definite there
 * certifies a strict local minimum (second-order sufficient condition); a
 * unit direction of negative curvature inside the cone certifies that
 * theta~ is not a local minimum (the necessary condition fails). Hessians by
 * central differences of exact gradients; linear algebra by LAPACKE (dgesvd
 * for null spaces, dsyev for the reduced Hessian), column-major.
 */
#include "analysis_internal.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/*
 * Orthonormal basis of the null space of G [r][P] (row-major rows g_i):
 * Z [P][k] column-major, k returned (-1 on no memory, -2 on LAPACK failure).
 * Rank from the singular values > MF__RANK_TOL * s_max (LAPACKE_dgesvd, V^T
 * full).
 */
static int null_space(const double *G, int r, int P, double **Z_out) {
    *Z_out = NULL;
    if (r == 0) {
        double *Z = mf__calloc((size_t)P * P, sizeof(double));
        if (!Z) return -1;
        for (int i = 0; i < P; i++) Z[(size_t)i * P + i] = 1.0;
        *Z_out = Z;
        return P;
    }
    double *A = mf__malloc(sizeof(double) * (size_t)r * P); /* G, column-major [r][P] */
    double *S = mf__malloc(sizeof(double) * (size_t)(r < P ? r : P));
    double *VT = mf__malloc(sizeof(double) * (size_t)P * P);
    double *sup = mf__malloc(sizeof(double) * (size_t)(r < P ? r : P) + sizeof(double));
    double U1;
    int k = -1;
    if (!A || !S || !VT || !sup) goto done;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < P; j++) A[(size_t)j * r + i] = G[(size_t)i * P + j];
    lapack_int info = LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'N', 'A', r, P, A, r, S, &U1, 1, VT, P, sup);
    k = -2;
    if (info == 0) {
        int mn = r < P ? r : P, rank = 0;
        for (int i = 0; i < mn; i++)
            if (S[i] > MF__RANK_TOL * S[0]) rank++;
        k = P - rank;
        double *Z = mf__malloc(sizeof(double) * (size_t)P * (size_t)(k ? k : 1));
        if (!Z) {
            k = -1;
        } else {
            /* rows rank..P-1 of V^T (col-major VT[i + j*P]) are the basis */
            for (int c = 0; c < k; c++)
                for (int j = 0; j < P; j++) Z[(size_t)c * P + j] = VT[(size_t)j * P + rank + c];
            *Z_out = Z;
        }
    }
done:
    mf__free(A);
    mf__free(S);
    mf__free(VT);
    mf__free(sup);
    return k;
}

/*
 * Smallest eigenvalue of Z^T H Z (Z [P][k] column-major orthonormal, H [P][P]
 * symmetric col-major) and its eigenvector d = Z y (unit). Returns 0, -1 on no
 * memory, -2 on LAPACK failure.
 */
static int min_eig_on(const double *H, const double *Z, int P, int k, double *lam, double *dvec) {
    if (k == 0) {
        *lam = INFINITY;
        for (int i = 0; i < P; i++) dvec[i] = 0.0;
        return 0;
    }
    double *HZ = mf__malloc(sizeof(double) * (size_t)P * k);
    double *R = mf__malloc(sizeof(double) * (size_t)k * k);
    double *ev = mf__malloc(sizeof(double) * (size_t)k);
    int rc = -1;
    if (!HZ || !R || !ev) goto done;
    for (int c = 0; c < k; c++)
        for (int i = 0; i < P; i++) {
            double s = 0.0;
            for (int j = 0; j < P; j++) s += H[(size_t)j * P + i] * Z[(size_t)c * P + j];
            HZ[(size_t)c * P + i] = s;
        }
    for (int c = 0; c < k; c++)
        for (int r = 0; r < k; r++)
            R[(size_t)c * k + r] = mf__dot(Z + (size_t)r * P, HZ + (size_t)c * P, (size_t)P);
    lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'U', k, R, k, ev);
    rc = -2;
    if (info == 0) {
        *lam = ev[0];
        for (int i = 0; i < P; i++) {
            double s = 0.0;
            for (int c = 0; c < k; c++) s += Z[(size_t)c * P + i] * R[c];
            dvec[i] = s;
        }
        double nd = mf__norm2(dvec, (size_t)P);
        if (nd > 0)
            for (int i = 0; i < P; i++) dvec[i] /= nd;
        rc = 0;
    }
done:
    mf__free(HZ);
    mf__free(R);
    mf__free(ev);
    return rc;
}

/* 1 if a pre-activation of a sample with a multiplier has another sign in
 * z1 than in z0 ([N][Hn]): a kink crossed within the difference step. */
static int kink_crossed(const double *z0, const double *z1, const double *lambda, int N, int Hn) {
    for (int n = 0; n < N; n++)
        if (lambda[n] != 0.0)
            for (int k = 0; k < Hn; k++) {
                size_t t = (size_t)n * Hn + k;
                if ((z0[t] > 0) != (z1[t] > 0)) return 1;
            }
    return 0;
}

/*
 * H = I - sum_n lambda_n Hess q_n(theta~) [P][P] (col-major, symmetrized),
 * each Hess q_n by central differences of the exact gradients:
 *   Hess q_n e_i ~ (grad q_n(theta~ + h e_i) - grad q_n(theta~ - h e_i)) / (2h).
 * *crossed = 1 when some pre-activation of a sample with a multiplier changes
 * sign within h (the differences are then not a Hessian).
 */
static int lagrangian_hessian(mf__an_ctx *c, const double *tt, const double *lambda, double h,
                              double *H, int *crossed, mf_err *e) {
    const size_t P = c->P;
    const int N = c->N, Hn = mf_model_n_hidden(c->m);
    const size_t npre = (size_t)N * (size_t)Hn;
    double *tp = mf__malloc(sizeof(double) * P);
    double *Jp = mf__malloc(sizeof(double) * (size_t)N * P);
    double *Jm = mf__malloc(sizeof(double) * (size_t)N * P);
    double *z0 = mf__malloc(sizeof(double) * (npre ? npre : 1));
    double *z1 = mf__malloc(sizeof(double) * (npre ? npre : 1));
    const int nomem = !tp || !Jp || !Jm || !z0 || !z1;
    int prc = MF_OK;
    *crossed = 0;
    if (nomem) goto done;
    prc = npre ? mf__preact(c->m, tt, c->data, z0, NULL, NULL) : MF_OK;
    for (size_t i = 0; i < P && prc == MF_OK; i++) {
        memcpy(tp, tt, sizeof(double) * P);
        for (int sgn = 0; sgn < 2; sgn++) {
            tp[i] = sgn ? tt[i] - h : tt[i] + h;
            mf__margin_jacobian(c->m, c->data, c->w1, tp, NULL, sgn ? Jm : Jp, c->out1, c->dout1);
            if (npre && (prc = mf__preact(c->m, tp, c->data, z1, NULL, NULL)) == MF_OK &&
                kink_crossed(z0, z1, lambda, N, Hn))
                *crossed = 1;
        }
        for (size_t j = 0; j < P; j++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                if (lambda[n] != 0.0)
                    s += lambda[n] * (Jp[(size_t)n * P + j] - Jm[(size_t)n * P + j]) / (2.0 * h);
            H[i * P + j] = (i == j ? 1.0 : 0.0) - s; /* column i */
        }
    }
    for (size_t i = 0; i < P; i++)
        for (size_t j = i + 1; j < P; j++) {
            double s = 0.5 * (H[i * P + j] + H[j * P + i]);
            H[i * P + j] = H[j * P + i] = s;
        }
done:
    mf__free(tp);
    mf__free(Jp);
    mf__free(Jm);
    mf__free(z0);
    mf__free(z1);
    if (nomem || prc)
        return mf__err(e, MF_ERR_NOMEM, "out of memory for the %zu x %zu Hessian", P, P);
    return MF_OK;
}

/* The second-order problem at theta~: the active gradients Ga [rall][P]
 * and those with a positive multiplier Gp [rpos][P], and H. */
typedef struct so_problem {
    int P, rpos, rall, strict; /* strict: every active constraint has lambda > lam_tol */
    double lam_tol;
    double *Gp, *Ga, *H, *d2;
} so_problem;

/* Is d (or -d, then flipped) in the critical cone: g_n.d >= 0 for the
 * active n with lambda_n = 0 (g_n.d = 0 holds for lambda_n > 0 by
 * construction)? */
static int in_cone(const double *J, const mf_analysis *a, const so_problem *p, int N, double *dir) {
    int pos = 1, neg = 1;
    for (int n = 0; n < N; n++) {
        if (!a->active[n] || a->lambda[n] > p->lam_tol) continue;
        double gd = mf__dot(J + (size_t)n * p->P, dir, (size_t)p->P);
        double gn = mf__norm2(J + (size_t)n * p->P, (size_t)p->P);
        if (gd < -MF__CONE_TOL * gn) pos = 0;
        if (gd > MF__CONE_TOL * gn) neg = 0;
    }
    if (!pos && neg)
        for (int i = 0; i < p->P; i++) dir[i] = -dir[i];
    return pos || neg;
}

/* Negative curvature on S+ whose direction leaves the cone: try the smaller
 * subspace S0 = {g_n.d = 0 for every active n}, which lies in the cone.
 * Returns 1 (found: *min_eig, dir replaced), 0, or -1 on no memory. */
static int try_all_active(so_problem *p, double **Z, double *min_eig, double *dir) {
    double lam0;
    mf__free(*Z);
    *Z = NULL;
    int k0 = null_space(p->Ga, p->rall, p->P, Z);
    int e0 = k0 < 0 ? k0 : k0 == 0 ? 0 : min_eig_on(p->H, *Z, p->P, k0, &lam0, p->d2);
    if (e0 == -1) return -1;
    if (k0 > 0 && e0 == 0 && lam0 < -MF__EIG_TOL) {
        *min_eig = lam0;
        memcpy(dir, p->d2, sizeof(double) * (size_t)p->P);
        return 1;
    }
    return 0;
}

/* Judge the smallest eigenvalue *min_eig (on S+ = null of Gp, dimension k)
 * into L; may move to S0 (try_all_active). MF_OK or MF_ERR_NOMEM. */
static int judge_curvature(so_problem *p, const double *J, const mf_analysis *a, int N, int k,
                           double **Z, double *min_eig, double *dir, mf__local_evidence *L,
                           mf_err *e) {
    if (*min_eig > MF__EIG_TOL) {
        L->so_certified = 1;
        snprintf(L->so_note, sizeof L->so_note,
                 "H positive definite on the critical subspace (dim %d, min eigenvalue %.6g)%s", k,
                 *min_eig,
                 p->strict ? "" : "; it contains the critical cone (active constraints with zero "
                                  "multiplier), so the sufficient condition holds");
        return MF_OK;
    }
    if (!(*min_eig < -MF__EIG_TOL)) {
        snprintf(L->so_note, sizeof L->so_note,
                 "H is only positive semidefinite on the critical subspace (min eigenvalue %.3g): "
                 "second order inconclusive",
                 *min_eig);
        return MF_OK;
    }
    int cone = 1;
    if (!p->strict) {
        cone = in_cone(J, a, p, N, dir);
        if (!cone) {
            int r = try_all_active(p, Z, min_eig, dir);
            if (r < 0) return mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
            cone = r;
        }
    }
    if (cone) {
        L->so_not_local = 1;
        snprintf(L->so_note, sizeof L->so_note,
                 "second-order certificate: d'Hd = %.6g < 0 for a unit d in the critical cone", *min_eig);
    } else {
        snprintf(L->so_note, sizeof L->so_note,
                 "H has eigenvalue %.6g on the equality relaxation of the critical cone, but its "
                 "direction leaves the cone: inconclusive",
                 *min_eig);
    }
    return MF_OK;
}

/* Gp, Ga from the active rows of J; strict and lam_tol from the multipliers. */
static int so_setup(so_problem *p, const double *J, const mf_analysis *a, int N, int P) {
    double lmax = 0.0;
    memset(p, 0, sizeof *p);
    p->P = P;
    p->strict = 1;
    for (int n = 0; n < N; n++)
        if (a->lambda[n] > lmax) lmax = a->lambda[n];
    p->lam_tol = MF__LAMBDA_ZERO * (lmax > 1.0 ? lmax : 1.0);
    p->Gp = mf__malloc(sizeof(double) * (size_t)N * P + 1);
    p->Ga = mf__malloc(sizeof(double) * (size_t)N * P + 1);
    p->H = mf__malloc(sizeof(double) * (size_t)P * P);
    p->d2 = mf__malloc(sizeof(double) * (size_t)P);
    if (!p->Gp || !p->Ga || !p->H || !p->d2) return MF_ERR_NOMEM;
    for (int n = 0; n < N; n++) {
        if (!a->active[n]) continue;
        memcpy(p->Ga + (size_t)p->rall++ * P, J + (size_t)n * P, sizeof(double) * P);
        if (a->lambda[n] > p->lam_tol)
            memcpy(p->Gp + (size_t)p->rpos++ * P, J + (size_t)n * P, sizeof(double) * P);
        else
            p->strict = 0;
    }
    return MF_OK;
}

/*
 * Second-order test at a smooth point. Critical cone ([VSS22] sec. 4):
 * C = {d : g_n.d = 0 (lambda_n > 0), g_n.d >= 0 (active, lambda_n = 0)}.
 * With S+ = {g_n.d = 0 for lambda_n > 0} ⊇ C ⊇ S0 = {g_n.d = 0 for all
 * active n}: H positive definite on S+ certifies a strict local minimum of
 * (P) (second-order sufficient condition); a direction of negative
 * curvature in S0 -- or in S+ that also satisfies the inequalities -- lies
 * in C and certifies not a local minimum (second-order necessary condition
 * fails). Fills a->dir (allocated here), min_eig, gain (along dir, when the
 * curvature is negative), hessian_method, second_order_done, and L.
 */
int mf__second_order(mf__an_ctx *c, const double *tt, const double *J, mf_analysis *a,
                     const mf_analyze_settings *s, mf__local_evidence *L, mf_err *e) {
    const int N = c->N, P = (int)c->P;
    so_problem p;
    double *Z = NULL;
    memset(&p, 0, sizeof p);
    int rc = MF_OK, crossed = 0;
    a->dir = mf__calloc((size_t)P, sizeof(double));
    if (!a->dir || so_setup(&p, J, a, N, P)) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
        goto done;
    }
    snprintf(a->hessian_method, sizeof a->hessian_method,
             "central differences of exact gradients, h = %.3g", s->hess_h);
    rc = lagrangian_hessian(c, tt, a->lambda, s->hess_h, p.H, &crossed, e);
    if (rc) goto done;
    if (crossed) {
        a->min_eig = NAN;
        snprintf(L->so_note, sizeof L->so_note,
                 "second order not valid: a pre-activation changes sign within h = %.3g (near-kink), "
                 "the difference Hessian is unreliable",
                 s->hess_h);
        goto ok;
    }
    int k = null_space(p.Gp, p.rpos, P, &Z);
    int er = k < 0 ? k : min_eig_on(p.H, Z, P, k, &a->min_eig, a->dir);
    if (er == -1) rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
    else if (er < 0) rc = mf__err(e, MF_ERR_NUMERIC, "second-order test: LAPACK failed on the critical subspace");
    if (rc) goto done;
    if (k == 0) {
        L->so_certified = 1;
        snprintf(L->so_note, sizeof L->so_note,
                 "critical subspace is {0} (gradients of the %d positive-multiplier constraints span R^%d)",
                 p.rpos, P);
        a->min_eig = NAN;
        goto ok;
    }
    rc = judge_curvature(&p, J, a, N, k, &Z, &a->min_eig, a->dir, L, e);
    if (rc) goto done;
    if (a->min_eig < -MF__EIG_TOL)
        mf__margin_gains(c->m, c->wN, c->data, tt, a->dir, c->outN, c->tmp, a->gain);
ok:
    a->second_order_done = 1;
done:
    mf__free(p.Gp);
    mf__free(p.Ga);
    mf__free(p.H);
    mf__free(p.d2);
    mf__free(Z);
    return rc;
}

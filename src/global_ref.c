/*
 * global_ref.c -- exact references for the max-margin problem (P)
 * (docs/theory.md s.3):
 *  - the global optimum gamma* where a closed form is known; which one a
 *    model has is its table's global_ref (linear / fc-linear: the hard-margin
 *    SVM, depth-2 diagonal: the l1-margin LP, deeper diagonal: vertex
 *    enumeration of an l_{2/K} problem, two-layer leaky ReLU on symmetric
 *    data: (1 + alpha) gamma_svm / 4); the solvers are here and in svm.c;
 *  - the per-layer problem P_l, a convex QP where the margins are linear in
 *    layer l, solved exactly as a hard-margin SVM in the layer's features.
 */
#include "analysis_internal.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Contract in internal.h. */
int mf__data_symmetric(const mf_data *D) {
    if (D->num_classes != 0) return 0;
    for (int n = 0; n < D->n; n++) {
        int found = 0;
        for (int k = 0; k < D->n && !found; k++) {
            if (D->y[k] != -D->y[n]) continue;
            int ok = 1;
            for (int j = 0; j < D->d && ok; j++)
                if (fabs(D->x[(size_t)k * D->d + j] + D->x[(size_t)n * D->d + j]) > MF__SYM_TOL) ok = 0;
            found = ok;
        }
        if (!found) return 0;
    }
    return 1;
}

/* The vertex value of subset sel [d] (rows t < N: z_t = y_t x_t, rhs 1; t >=
 * N: e_{t-N}, rhs 0): sum_j |beta_j|^p at the vertex rescaled to q_min = 1,
 * or INFINITY when the system is singular or the vertex infeasible. */
static double vertex_value(const mf_data *D, const int *sel, double p) {
    const int N = D->n, d = D->d;
    double M[MF__DIAG_ENUM_MAX_D * MF__DIAG_ENUM_MAX_D], rhs[MF__DIAG_ENUM_MAX_D];
    lapack_int piv[MF__DIAG_ENUM_MAX_D];
    for (int r = 0; r < d; r++) {
        int t = sel[r];
        for (int j = 0; j < d; j++)
            M[(size_t)j * d + r] = t < N ? D->y[t] * D->x[(size_t)t * d + j] : (t - N == j ? 1.0 : 0.0);
        rhs[r] = t < N ? 1.0 : 0.0;
    }
    lapack_int info = LAPACKE_dgesv(LAPACK_COL_MAJOR, d, 1, M, d, piv, rhs, d);
    if (info != 0) return INFINITY;
    for (int j = 0; j < d; j++) /* reject near-singular systems */
        if (!isfinite(rhs[j]) || fabs(rhs[j]) > MF__DIAG_ENUM_MAX_COEF) return INFINITY;
    double minq = INFINITY;
    for (int n = 0; n < N; n++) {
        double qn = D->y[n] * mf__dot(D->x + (size_t)n * d, rhs, (size_t)d);
        if (qn < minq) minq = qn;
    }
    if (!(minq >= 1.0 - MF__DIAG_ENUM_FEAS_TOL)) return INFINITY;
    double v = 0.0;
    for (int j = 0; j < d; j++) v += pow(fabs(rhs[j]), p);
    return v / (minq > 1.0 ? pow(minq, p) : 1.0); /* rescale to q_min = 1 */
}

/*
 * Depth-K diagonal net, K >= 2: with beta = w_1 o ... o w_K, AM-GM per
 * coordinate gives ||theta||^2 >= K sum_j |beta_j|^{2/K}, with equality at
 * |w_lj| = |beta_j|^{1/K}. So gamma* = (K min_beta sum_j |beta_j|^{2/K})^{-K/2}
 * over {beta : y_n <beta, x_n> >= 1}. The objective is concave on every
 * orthant and non-decreasing along the recession directions of the
 * feasible set within an orthant, so its minimum is attained at a vertex of
 * (feasible set) ∩ (orthant): a point where d linearly independent
 * constraints among {y_n <beta, x_n> = 1} ∪ {beta_j = 0} are tight. We
 * enumerate all C(N + d, d) subsets (our derivation, docs/theory.md s.3:
 * "exact only by enumeration for small d"). Returns gamma* or NAN when the
 * enumeration is too large (> max_subsets) or infeasible.
 */
static double diag_enumerate(const mf_data *D, int K, long max_subsets) {
    const int N = D->n, d = D->d, T = N + d;
    double cnt = 1; /* C(T, d) */
    for (int i = 1; i <= d; i++) cnt = cnt * (T - d + i) / i;
    if (cnt > (double)max_subsets || d > MF__DIAG_ENUM_MAX_D) return NAN;
    int sel[MF__DIAG_ENUM_MAX_D];
    for (int i = 0; i < d; i++) sel[i] = i;
    double best = INFINITY;
    for (;;) {
        double v = vertex_value(D, sel, 2.0 / K);
        if (v < best) best = v;
        int i = d - 1; /* next subset */
        while (i >= 0 && sel[i] == T - d + i) i--;
        if (i < 0) break;
        sel[i]++;
        for (int k = i + 1; k < d; k++) sel[k] = sel[k - 1] + 1;
    }
    if (!isfinite(best) || best <= 0) return NAN;
    return pow(K * best, -K / 2.0);
}

/* Singular values of W [C][d] (row-major) into sv [min(C, d)], descending:
 * 0, or -1 on no memory / LAPACK failure. */
static int singular_values(const double *W, int C, int d, double *sv) {
    const int mn = C < d ? C : d;
    double *A = mf__malloc(sizeof(double) * (size_t)C * d), *sup = mf__malloc(sizeof(double) * (size_t)mn + 8);
    double u1 = 0, vt1 = 0;
    int rc = -1;
    if (A && sup) {
        memcpy(A, W, sizeof(double) * (size_t)C * d);
        rc = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', C, d, A, d, sv, &u1, 1, &vt1, 1, sup) == 0 ? 0 : -1;
    }
    mf__free(A);
    mf__free(sup);
    return rc;
}

/*
 * Multi-class depth-k linear nets (fc-linear, k >= 2) from the Crammer-Singer
 * solution W (C x d, margins >= 1, q_min = qmin): for an end-to-end map M =
 * W_k ... W_1 the smallest sum_l ||W_l||_F^2 is k sum_i sigma_i(M)^{2/k}
 * (AM-GM on balanced factors; the minimum over factorizations of width >=
 * rank M), so gamma*_k = k^{-k/2} max_M q_min(M) / ||M||_{S_p}, p = 2/k,
 * ||M||_{S_p} = (sum sigma_i^p)^{1/p} >= ||M||_F (our derivation). Hence
 *   upper = k^{-k/2} gamma_cs              (any width),
 *   lower = k^{-k/2} qmin / ||W||_{S_p}    (the balanced factorization of W,
 *                                           when width >= rank W),
 * equal when W has rank one: then the binary formula holds exactly. For
 * C >= 3 classes W has rank >= 2 in general and k^{-k/2} gamma_cs is only an
 * upper bound (the optimum is a Schatten-quasi-norm problem: for k = 2 the
 * nuclear-norm SVM, not the Frobenius one).
 */
static int multiclass_bracket(const mf_model *m, const mf_svm_result *r, int k, double *lower,
                              double *upper, int *rank) {
    const int C = r->classes, d = r->d, mn = C < d ? C : d;
    double *sv = mf__malloc(sizeof(double) * (size_t)mn);
    if (!sv || singular_values(r->w, C, d, sv)) {
        mf__free(sv);
        return -1;
    }
    const double p = 2.0 / k, f = pow((double)k, -k / 2.0);
    double sp = 0.0;
    *rank = 0;
    for (int i = 0; i < mn; i++) {
        if (sv[i] > MF__RANK_TOL * sv[0]) (*rank)++;
        sp += pow(sv[i], p);
    }
    mf__free(sv);
    *upper = f * r->gamma;
    *lower = m->width >= *rank ? f * r->q_min / pow(sp, 1.0 / p) : 0.0;
    if (*lower > *upper) *lower = *upper; /* rank one: equal up to rounding */
    return 0;
}

/* gamma* from the SVM of the reference (l2: factor gamma_svm; l1: the
 * depth-2 diagonal gamma_l1 / 2; multi-class: Crammer-Singer, with the
 * bracket above for depth k >= 2). A failed or non-separable SVM leaves
 * has_global = 0 with the reason in note; only MF_ERR_NOMEM is an error. */
static int svm_reference(const mf__an_ctx *c, const mf__global_ref *ref, mf_analysis *a, char *note,
                         size_t cap, mf_err *e) {
    const mf_data *data = c->data;
    mf_svm_result *r = NULL;
    mf_err se = {0, ""};
    int rc = mf_svm_solve(data, ref->kind == MF__REF_L1_DIAG2 ? MF_SVM_L1 : MF_SVM_L2, NULL, &r, &se);
    if (rc == MF_ERR_NOMEM) return mf__err(e, rc, "%s", se.msg);
    if (rc != MF_OK) {
        mf__say(note, cap, " No global reference: SVM failed (%s). ", se.msg);
        return MF_OK;
    }
    if (r->status != MF_SVM_SOLVED) {
        mf__say(note, cap, " No global reference: data not linearly separable through the origin. ");
        mf_svm_result_free(r);
        return MF_OK;
    }
    if (data->num_classes && ref->depth >= 2) {
        double lo, up;
        int rank;
        if (multiclass_bracket(c->m, r, ref->depth, &lo, &up, &rank)) {
            mf_svm_result_free(r);
            return mf__err(e, MF_ERR_NOMEM, "out of memory for the global reference");
        }
        a->gamma_lower = lo;
        a->gamma_upper = up;
        snprintf(a->global_source, sizeof a->global_source,
                 "Crammer-Singer SVM of rank %d: Schatten-%.3g bracket", rank, 2.0 / ref->depth);
        if (up - lo <= a->settings.global_tol * up) {
            a->gamma_star = up;
            a->has_global = 1;
            snprintf(a->global_source, sizeof a->global_source,
                     "Crammer-Singer SVM of rank one: gamma_cs * %d^{-%d/2}", ref->depth, ref->depth);
        } else {
            mf__say(note, cap,
                    " No exact global reference: the Crammer-Singer SVM has rank %d, so gamma* lies "
                    "in [%.10g, %.10g] (depth-%d linear nets optimize a Schatten-%.3g quasi-norm, "
                    "not the Frobenius norm).",
                    rank, lo, up, ref->depth, 2.0 / ref->depth);
        }
        mf_svm_result_free(r);
        return MF_OK;
    }
    a->gamma_star = ref->kind == MF__REF_L1_DIAG2 ? r->gamma_diag2 : ref->factor * r->gamma;
    snprintf(a->global_source, sizeof a->global_source, "%.96s%s", ref->source,
             data->num_classes ? " (Crammer-Singer)" : "");
    a->has_global = 1;
    mf_svm_result_free(r);
    return MF_OK;
}

/* An exact reference from a solver with a certificate (MF__REF_SOLVER). */
static void solver_reference(const mf__an_ctx *c, const mf__global_ref *ref, mf_analysis *a,
                             char *note, size_t cap) {
    mf__exact_ref x;
    mf_err se = {0, ""};
    memset(&x, 0, sizeof x);
    if (ref->solve(c->m, c->data, &x, &se) != MF_OK) {
        mf__free(x.theta);
        mf__say(note, cap, " No global reference: %s. ", se.msg);
        return;
    }
    if (!(x.lower > 0) || !(x.upper >= x.lower) || !isfinite(x.upper)) {
        mf__free(x.theta);
        mf__say(note, cap, " No global reference: the solver's bracket [%.6g, %.6g] is not valid. ",
                x.lower, x.upper);
        return;
    }
    a->gamma_lower = x.lower;
    a->gamma_upper = x.upper;
    snprintf(a->global_source, sizeof a->global_source, "%s", x.source);
    if (x.theta && x.n_params > 0) { /* the reference network, for "not global" */
        a->global_theta = x.theta;
        a->global_n_params = x.n_params;
        snprintf(a->global_spec, sizeof a->global_spec, "%s", x.spec);
    } else {
        mf__free(x.theta);
    }
    if (x.upper - x.lower <= a->settings.global_tol * x.upper) {
        a->has_global = 1;
        a->gamma_star = x.gamma_star;
        snprintf(a->global_source, sizeof a->global_source, "%s", x.source);
    } else {
        mf__say(note, cap, " No exact global reference: %s brackets gamma* in [%.10g, %.10g].",
                x.source, x.lower, x.upper);
    }
}

/*
 * Fill a->has_global, gamma_star, global_source, ratio = gamma / gamma*
 * (and gamma_lower / gamma_upper where only a bracket is known) where the
 * model's table knows an exact reference (docs/theory.md s.3): a closed form, an
 * exact solve with a certificate (mf_svm_solve; MF__REF_SOLVER). Only
 * homogeneous models. What is missing and why goes to note.
 */
int mf__global_reference(const mf__an_ctx *c, mf_analysis *a, char *note, size_t cap, mf_err *e) {
    mf__global_ref ref;
    memset(&ref, 0, sizeof ref);
    a->has_global = 0;
    a->gamma_star = NAN;
    a->ratio = NAN;
    if (!c->m->homogeneous) return MF_OK;
    if (c->ops->global_ref) c->ops->global_ref(c->m, c->data, &ref);
    if (ref.kind == MF__REF_DIAG_ENUM) {
        double g = diag_enumerate(c->data, ref.depth, MF__DIAG_ENUM_MAX_SUBSETS);
        if (isfinite(g)) {
            a->has_global = 1;
            a->gamma_star = g;
            snprintf(a->global_source, sizeof a->global_source, "%s", ref.source);
        } else {
            mf__say(note, cap, " No global reference: depth-%d diagonal enumeration too large. ",
                    ref.depth);
        }
    } else if (ref.kind == MF__REF_SOLVER && ref.solve) {
        solver_reference(c, &ref, a, note, cap);
    } else if (ref.kind != MF__REF_NONE) {
        int rc = svm_reference(c, &ref, a, note, cap, e);
        if (rc) return rc;
    }
    if (a->has_global) a->ratio = a->gamma / a->gamma_star;
    return MF_OK;
}

/*
 * P_l with the other layers frozen at theta~: the margins are linear in W_l,
 * q_n = <W_l, c_n> with c_n = grad_{W_l} q_n (multi-class: one constraint per
 * competitor j != y, c_nj = grad_{W_l} (Phi_y - Phi_j)), so
 *   minimize 1/2 ||W_l||^2  s.t.  <W_l, c_n> >= 1
 * is a hard-margin SVM through the origin in the features c_n, solved
 * exactly by mf_svm_solve (l2). layer_opt = 1/2 ||w_svm||^2, layer_value =
 * 1/2 ||W_l~||^2.
 */
int mf__layer_problem(mf__an_ctx *c, const double *tt, int l, mf_analysis *a, mf_err *e) {
    const mf_model *m = c->m;
    const mf_data *D = c->data;
    const mf_layer *ly = &m->layers[l];
    const int Pl = ly->rows * ly->cols, C = m->n_out;
    const int rows = D->num_classes ? D->n * (C - 1) : D->n;
    mf_data *F = NULL;
    double *g = mf__malloc(sizeof(double) * c->P);
    if (!g) return mf__err(e, MF_ERR_NOMEM, "out of memory for the per-layer problem");
    int rc = mf_data_new(rows, Pl, 0, &F, e);
    if (rc) {
        mf__free(g);
        return rc;
    }
    int r = 0;
    for (int n = 0; n < D->n; n++)
        for (int j = 0; j < C; j++) {
            if (D->num_classes && j == D->cls[n]) continue;
            mf__output_grad(m, c->w1, D, tt, n, D->num_classes ? D->cls[n] : 0, j, c->out1, c->dout1, g);
            memcpy(F->x + (size_t)r * Pl, g + ly->offset, sizeof(double) * (size_t)Pl);
            F->y[r] = 1.0;
            r++;
        }
    mf__free(g);
    mf_svm_result *s = NULL;
    mf_err se = {0, ""};
    rc = mf_svm_solve(F, MF_SVM_L2, NULL, &s, &se);
    mf_data_free(F);
    if (rc) return mf__err(e, rc, "per-layer problem P_%d: %s", l, se.msg);
    a->layer_value = 0.5 * mf__dot(tt + ly->offset, tt + ly->offset, (size_t)Pl);
    if (s->status == MF_SVM_SOLVED)
        a->layer_opt = 0.5 * mf__dot(s->w, s->w, (size_t)Pl);
    else
        a->layer_opt = NAN; /* cannot happen at a feasible theta~ */
    rc = MF_OK;
    if (s->status == MF_SVM_SOLVED && !(fabs(a->layer_value / a->layer_opt - 1.0) <= a->settings.global_tol)) {
        /* the QP's point (layer l replaced by its solution) as a witness,
           against theta~ itself (P_l is about the point, not its limit) */
        mf__wref ref;
        double *cand = mf__malloc(sizeof(double) * c->P);
        rc = cand ? mf__wref_init(c, tt, a, &ref, e) : mf__err(e, MF_ERR_NOMEM, "out of memory");
        if (!rc) {
            ref.reference = ref.gamma0;
            ref.defect = 0.0;
            memcpy(cand, tt, sizeof(double) * c->P);
            memcpy(cand + ly->offset, s->w, sizeof(double) * (size_t)Pl);
            double dist = mf__rel_dist(cand, tt, c->P);
            rc = mf__witness_try(c, tt, &ref, cand, 2.0 * dist, "per-layer QP", a, NULL, e);
        }
        mf__free(cand);
    }
    mf_svm_result_free(s);
    return rc;
}

/*
 * local.c -- search-based and LP-based tests of local optimality for the
 * max-margin problem of docs/theory.md section 3,
 *     (P)  minimize 1/2 ||theta||^2  subject to  q_n(theta) >= 1 for all n,
 * section B of marginflow.h:
 *
 *  - mf_directional_test: the first-order test at a non-smooth point of
 *    [VSS22] (Vardi, Shamir & Srebro, NeurIPS 2022): a direction d that keeps
 *    every active margin non-decreasing to first order (one-sided directional
 *    derivatives q_n'(theta; d) >= 0) and has <theta, d> < 0 shrinks the norm
 *    at constant margin, so theta is not a local optimum of (P). For two-layer
 *    (leaky) ReLU nets q_n'(theta; .) is piecewise linear; one LP (GLPK) per
 *    sign pattern of the kinked pre-activations decides it exactly.
 *  - mf_local_search: local re-solves of (P) inside balls around theta~
 *    (psolve.c: SLSQP for small nets, an augmented Lagrangian with L-BFGS
 *    for large ones) from random perturbations; a better feasible point in
 *    the ball is a candidate witness, finding none is evidence only.
 * (mf_maxmargin, the multi-start search, is in maxmargin.c.)
 *
 * Margins and their gradients come from the library's one margin Jacobian
 * (src/margin.c) in one model workspace allocated up front, so the solver
 * callbacks never allocate and cannot fail: sigma'(0) = alpha (marginflow.h)
 * and, for multi-class margins, the first maximizing competing class. Which
 * nets have the piecewise-linear directional derivatives of the LP test is
 * read from the model: the two-layer unit view (mf_model_units) and the
 * pre-activations of its table.
 */
#include "analysis_internal.h"

#include <glpk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Check theta (finite) and set up the solver context (psolve.c). */
static int lc_ctx_init(mf__pctx *c, const mf_model *m, const mf_data *data, const double *theta,
                       int need_jacobian, const char *who, mf_err *e) {
    memset(c, 0, sizeof *c);
    if (!m || !data || !theta)
        return mf__err(e, MF_ERR_INVALID, "%s: model, data and theta must not be NULL", who);
    int rc = mf__pctx_init(c, m, data, need_jacobian, who, e);
    if (rc) return rc;
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(theta[i])) {
            mf__pctx_free(c);
            return mf__err(e, MF_ERR_INVALID, "%s: theta[%zu] is not finite", who, i);
        }
    return MF_OK;
}

/* ====================================================================== */
/* B.1  Directional first-order test                                      */
/* ====================================================================== */

void mf_directional_result_free(mf_directional_result *r) {
    if (!r) return;
    mf__free(r->d);
    mf__free(r);
}

/*
 * One kinked pre-activation of a two-layer net: unit k on sample n, with
 * z_kn = <w_k, x~_n> within zero_tol of 0. Pairs whose inputs x~ are
 * parallel share one sign variable (var), with sgn = +1 when x~_n points the
 * same way as the variable's representative input and -1 when opposite.
 */
typedef struct lc_kink {
    int k, n, var, sgn;
} lc_kink;

/* A two-layer net read from its unit view (mf_model_units):
 * W [M][c] at theta + offW (c = d, or d + 1 with the bias column x~_d = 1),
 * a [M] at theta + offa (or the fixed outer weights, mf_units_fixed_outer),
 * b at offb. */
typedef struct lc_two {
    int M, c, d, has_a, has_b, bias;
    size_t offW, offa, offb;
    double alpha;
} lc_two;

/* 1 and *t filled if m is a two-layer net. */
static int lc_two_view(const mf_model *m, lc_two *t) {
    mf_units u;
    memset(t, 0, sizeof *t);
    if (!mf_model_units(m, &u)) return 0;
    t->M = u.n_units;
    t->d = m->d;
    t->c = m->layers[u.w_layer].cols;
    t->offW = m->layers[u.w_layer].offset;
    t->bias = u.in_bias;
    t->has_a = u.a_layer >= 0;
    if (t->has_a) t->offa = m->layers[u.a_layer].offset;
    t->has_b = u.b_layer >= 0;
    if (t->has_b) t->offb = m->layers[u.b_layer].offset;
    t->alpha = m->alpha;
    return 1;
}

static double lc_two_a(const lc_two *t, const double *theta, int k) {
    if (t->has_a) return theta[t->offa + (size_t)k];
    return mf_units_fixed_outer(k);
}

/* x~_n [c] = (x_n, 1 if bias). */
static void lc_two_input(const lc_two *t, const mf_data *data, int n, double *xt) {
    for (int j = 0; j < t->d; j++) xt[j] = data->x[(size_t)n * t->d + j];
    if (t->bias) xt[t->d] = 1.0;
}

/*
 * Row of the linearized margin of sample n under a sign pattern: g [P] with
 * q_n'(theta; d) = <g, d> on the cone where each kink (k, n) has
 * sign(<dw_k, x~_n>) = s (s = pat[var] * sgn). The one-sided derivative of
 * q_n = y_n (sum_k a_k sigma(z_kn) + b) along d = (dW, da, db) is
 *   z > 0:   y_n (a_k <dw_k, x~_n> + da_k z)
 *   z < 0:   y_n alpha (a_k <dw_k, x~_n> + da_k z)
 *   z == 0:  y_n a_k sigma(<dw_k, x~_n>) = y_n a_k (s > 0 ? 1 : alpha) <dw_k, x~_n>
 * plus y_n db for relu2-outbias. kink_of[k] is the kink index of (k, n) or -1.
 */
static void lc_two_row(const lc_two *t, const double *theta, const double *z, const double *xt,
                       double yn, const int *kink_of, const lc_kink *kinks, const int *pat,
                       double *g, size_t P) {
    for (size_t i = 0; i < P; i++) g[i] = 0.0;
    for (int k = 0; k < t->M; k++) {
        double ak = lc_two_a(t, theta, k), slope, zk = z[k];
        int kk = kink_of[k];
        if (kk >= 0) {
            int s = pat[kinks[kk].var] * kinks[kk].sgn;
            slope = s > 0 ? 1.0 : t->alpha;
            zk = 0.0;
        } else {
            slope = zk > 0.0 ? 1.0 : t->alpha;
        }
        double *gw = g + t->offW + (size_t)k * t->c;
        for (int j = 0; j < t->c; j++) gw[j] = yn * ak * slope * xt[j];
        if (t->has_a) g[t->offa + (size_t)k] = yn * slope * zk;
    }
    if (t->has_b) g[t->offb] = yn;
}

/* Set GLPK row r to the dense coefficients g [P] (1-based sparse arrays
 * ind/val of length P + 1). */
static void lc_set_row(glp_prob *lp, int r, const double *g, size_t P, int *ind, double *val) {
    int len = 0;
    for (size_t i = 0; i < P; i++)
        if (g[i] != 0.0) {
            len++;
            ind[len] = (int)i + 1;
            val[len] = g[i];
        }
    glp_set_mat_row(lp, r, len, ind, val);
}

/* Inputs x~_n, x~_m [c] of two kinks of one unit count as parallel (one
 * sign variable) when | |<x~_n, x~_m>| - ||x~_n|| ||x~_m|| | <= this times
 * ||x~_n|| ||x~_m||: a relative 1e-12 is ~1e4 ulps, parallel to rounding. */
#define LC_PARALLEL_TOL 1e-12
/* A direction certifies "not local" when <theta, d> < -LC_DESCENT_TOL
 * ||theta|| (||d||_inf <= 1; far above the rounding of GLPK's optimum). */
#define LC_DESCENT_TOL 1e-9

/* The state of one directional test. */
typedef struct dt_state {
    mf__pctx c;
    const mf_data *data;
    const double *theta;
    size_t P;
    int N, two, n_act, n_kinks, n_vars, n_rows, term_prev;
    lc_two t;
    int *active, *kink_of, *pat, *ind, *rowkind, *rowidx;
    double *z, *xt, *xr, *g, *val, *best_d, *zo;
    lc_kink *kinks;
    glp_prob *lp;
} dt_state;

static void dt_free(dt_state *st) {
    if (st->lp) glp_delete_prob(st->lp);
    if (st->term_prev >= 0) glp_term_out(st->term_prev);
    mf__free(st->active);
    mf__free(st->kink_of);
    mf__free(st->pat);
    mf__free(st->ind);
    mf__free(st->rowkind);
    mf__free(st->rowidx);
    mf__free(st->z);
    mf__free(st->xt);
    mf__free(st->xr);
    mf__free(st->g);
    mf__free(st->val);
    mf__free(st->best_d);
    mf__free(st->zo);
    mf__free(st->kinks);
    mf__pctx_free(&st->c);
}

/* Record a kink of unit k on sample n (input x~_n in st->xt, norm xn),
 * sharing the sign variable of an earlier kink of k with a parallel input. */
static void dt_add_kink(dt_state *st, int n, int k, double xn) {
    const lc_two *t = &st->t;
    lc_kink *kn = &st->kinks[st->n_kinks];
    kn->k = k;
    kn->n = n;
    kn->var = -1;
    kn->sgn = 1;
    for (int o = 0; o < st->n_kinks && kn->var < 0; o++) {
        if (st->kinks[o].k != k || st->kinks[o].sgn != 1) continue;
        lc_two_input(t, st->data, st->kinks[o].n, st->xr);
        double dot = 0.0;
        for (int j = 0; j < t->c; j++) dot += st->xr[j] * st->xt[j];
        double nr = mf__norm2(st->xr, (size_t)t->c);
        if (fabs(fabs(dot) - nr * xn) <= LC_PARALLEL_TOL * nr * xn) {
            kn->var = st->kinks[o].var;
            kn->sgn = dot > 0.0 ? 1 : -1;
        }
    }
    if (kn->var < 0) kn->var = st->n_vars++;
    st->kink_of[(size_t)n * t->M + k] = st->n_kinks++;
}

/* Two-layer net: the pre-activations z [N][M] and the kinks (|z_kn| <=
 * zero_tol ||w_k|| ||x~_n||, n active, a_k != 0). 0 or -1 on no memory. */
static int dt_two_kinks(dt_state *st, double zero_tol) {
    const lc_two *t = &st->t;
    const int N = st->N;
    st->z = mf__calloc((size_t)N * t->M, sizeof *st->z);
    st->xt = mf__calloc((size_t)t->c, sizeof *st->xt);
    st->xr = mf__calloc((size_t)t->c, sizeof *st->xr);
    st->kinks = mf__calloc((size_t)N * t->M, sizeof *st->kinks);
    st->kink_of = mf__calloc((size_t)N * t->M, sizeof *st->kink_of);
    if (!st->z || !st->xt || !st->xr || !st->kinks || !st->kink_of) return -1;
    for (int n = 0; n < N; n++) {
        lc_two_input(t, st->data, n, st->xt);
        double xn = mf__norm2(st->xt, (size_t)t->c);
        for (int k = 0; k < t->M; k++) {
            const double *wk = st->theta + t->offW + (size_t)k * t->c;
            double s = 0.0;
            for (int j = 0; j < t->c; j++) s += wk[j] * st->xt[j];
            st->z[(size_t)n * t->M + k] = s;
            st->kink_of[(size_t)n * t->M + k] = -1;
            if (!st->active[n] || !(xn > 0.0) || lc_two_a(t, st->theta, k) == 0.0) continue;
            if (!(fabs(s) <= zero_tol * mf__norm2(wk, (size_t)t->c) * xn)) continue;
            dt_add_kink(st, n, k, xn);
        }
    }
    return 0;
}

/* Any other net with hidden units: the test needs no pre-activation of an
 * active sample at a kink (|z| <= zero_tol * scale, the model's scales);
 * MF_ERR_UNSUPPORTED otherwise. */
static int dt_hidden_kinks(dt_state *st, const mf_model *m, double zero_tol, const char *who,
                           mf_err *e) {
    const int H = mf_model_n_hidden(m), N = st->N;
    int n_kinks = 0;
    if (H == 0) return MF_OK;
    double *pre = mf__malloc(sizeof(double) * (size_t)N * H);
    double *scl = mf__malloc(sizeof(double) * (size_t)N * H);
    int rc = pre && scl ? mf__preact(m, st->theta, st->data, pre, scl, e) : MF_ERR_NOMEM;
    for (int n = 0; n < N && !rc; n++)
        for (int k = 0; k < H && st->active[n]; k++)
            if (fabs(pre[(size_t)n * H + k]) <= zero_tol * scl[(size_t)n * H + k]) n_kinks++;
    mf__free(pre);
    mf__free(scl);
    if (rc == MF_ERR_NOMEM) return mf__err(e, MF_ERR_NOMEM, "%s: out of memory", who);
    if (n_kinks > 0)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "%s: %d pre-activations of the %s are within zero_tol of 0 on active "
                       "samples; the directional test at %s kinks is not implemented (only "
                       "two-layer relu2 nets and points without kinks are supported)",
                       who, n_kinks, mf__model_ops_of(m)->name, mf__model_ops_of(m)->name);
    return MF_OK;
}

/* The ties of sample n's multi-class margin: competing classes j within
 * zero_tol (relative) of the best one; calls f(st, n, y, j) for each. */
static int dt_tied(dt_state *st, int n, double zero_tol, void (*f)(dt_state *, int, int, int)) {
    const int C = st->c.n_out;
    const double *zz = st->c.out + (size_t)n * C;
    int y = st->data->cls[n], jc = mf__competitor(st->data, zz, C, n), cnt = 0;
    double sc = fabs(zz[y]) > fabs(zz[jc]) ? fabs(zz[y]) : fabs(zz[jc]);
    double zjc = zz[jc];
    for (int j = 0; j < C; j++) {
        if (j == y || !(zjc - st->c.out[(size_t)n * C + j] <= zero_tol * sc)) continue;
        if (f) f(st, n, y, j);
        cnt++;
    }
    return cnt;
}

/* Append the LP row <grad Phi_y - grad Phi_j, d> >= 0 (binary: <grad q_n,
 * d> >= 0, y = 0, j = -1) of sample n. */
static void dt_gradient_row(dt_state *st, int n, int y, int j) {
    mf__output_grad(st->c.m, st->c.w, st->data, st->theta, n, y, j, st->zo, st->c.dout, st->g);
    int row = ++st->n_rows;
    glp_set_row_bnds(st->lp, row, GLP_LO, 0.0, 0.0);
    lc_set_row(st->lp, row, st->g, st->P, st->ind, st->val);
}

/* The LP: variables d in [-1, 1]^P, objective <theta, d>, rows (kind 0 =
 * margin row of sample rowidx, kind 1 = sign row of variable rowidx; the
 * smooth case has fixed gradient rows). */
static int dt_build_lp(dt_state *st, double zero_tol) {
    const int N = st->N;
    int n_rows = 0;
    if (st->two) {
        n_rows = st->n_act + st->n_vars;
    } else { /* smooth: one row per active sample and per tied competing class */
        for (int n = 0; n < N; n++)
            if (st->active[n]) n_rows += st->data->num_classes == 0 ? 1 : dt_tied(st, n, zero_tol, NULL);
    }
    st->rowkind = mf__calloc((size_t)n_rows + 1, sizeof *st->rowkind);
    st->rowidx = mf__calloc((size_t)n_rows + 1, sizeof *st->rowidx);
    st->pat = mf__calloc((size_t)st->n_vars + 1, sizeof *st->pat);
    if (!st->rowkind || !st->rowidx || !st->pat) return -1;
    st->term_prev = glp_term_out(GLP_OFF);
    st->lp = glp_create_prob();
    glp_set_obj_dir(st->lp, GLP_MIN);
    glp_add_cols(st->lp, (int)st->P);
    for (size_t i = 0; i < st->P; i++) {
        glp_set_col_bnds(st->lp, (int)i + 1, GLP_DB, -1.0, 1.0);
        glp_set_obj_coef(st->lp, (int)i + 1, st->theta[i]);
    }
    if (n_rows > 0) glp_add_rows(st->lp, n_rows);
    st->n_rows = 0;
    if (!st->two) {
        for (int n = 0; n < N; n++) {
            if (!st->active[n]) continue;
            if (st->data->num_classes == 0) dt_gradient_row(st, n, 0, -1);
            else dt_tied(st, n, zero_tol, dt_gradient_row);
        }
        return 0;
    }
    for (int n = 0; n < N; n++)
        if (st->active[n]) {
            int row = ++st->n_rows;
            st->rowkind[row] = 0;
            st->rowidx[row] = n;
            glp_set_row_bnds(st->lp, row, GLP_LO, 0.0, 0.0);
        }
    for (int v = 0; v < st->n_vars; v++) { /* the representative kink of v: <dw_k, x~_n> */
        int kk = 0;
        while (st->kinks[kk].var != v) kk++;
        int row = ++st->n_rows;
        st->rowkind[row] = 1;
        st->rowidx[row] = v;
        for (size_t i = 0; i < st->P; i++) st->g[i] = 0.0;
        lc_two_input(&st->t, st->data, st->kinks[kk].n, st->xt);
        for (int j = 0; j < st->t.c; j++) st->g[st->t.offW + (size_t)st->kinks[kk].k * st->t.c + j] = st->xt[j];
        lc_set_row(st->lp, row, st->g, st->P, st->ind, st->val);
    }
    return 0;
}

/* Two-layer rows for sign pattern st->pat: the margin rows' coefficients
 * and the sign rows' bounds. */
static void dt_set_pattern_rows(dt_state *st) {
    for (int row = 1; row <= st->n_rows; row++) {
        if (st->rowkind[row] == 0) {
            int n = st->rowidx[row];
            lc_two_input(&st->t, st->data, n, st->xt);
            lc_two_row(&st->t, st->theta, st->z + (size_t)n * st->t.M, st->xt, st->data->y[n],
                       st->kink_of + (size_t)n * st->t.M, st->kinks, st->pat, st->g, st->P);
            lc_set_row(st->lp, row, st->g, st->P, st->ind, st->val);
        } else if (st->pat[st->rowidx[row]] > 0) {
            glp_set_row_bnds(st->lp, row, GLP_LO, 0.0, 0.0);
        } else {
            glp_set_row_bnds(st->lp, row, GLP_UP, 0.0, 0.0);
        }
    }
}

/* Solve the LP for every sign pattern (all 2^n_vars when at most
 * max_patterns, else the all-plus one and random ones); the best optimum's
 * d in st->best_d. Returns the number of LPs solved to optimality. */
static int dt_patterns(dt_state *st, int max_patterns, mf_directional_result *r, double *best) {
    const int n_vars = st->n_vars;
    long long n_pat_all = n_vars < 62 ? (1LL << n_vars) : -1;
    int exhaustive = n_pat_all > 0 && n_pat_all <= max_patterns;
    int n_pat = exhaustive ? (int)n_pat_all : max_patterns, solved = 0;
    mf_rng rng;
    mf_rng_seed(&rng, 1);
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    *best = INFINITY;
    for (int p = 0; p < n_pat; p++) {
        for (int v = 0; v < n_vars; v++) {
            if (exhaustive)
                st->pat[v] = ((p >> v) & 1) ? -1 : 1;
            else
                st->pat[v] = p == 0 ? 1 : ((mf_rng_next(&rng) >> 63) ? -1 : 1);
        }
        if (st->two) dt_set_pattern_rows(st);
        glp_std_basis(st->lp);
        int ret = glp_simplex(st->lp, &parm);
        r->n_patterns++;
        if (ret != 0 || glp_get_status(st->lp) != GLP_OPT) continue;
        solved++;
        double obj = glp_get_obj_val(st->lp);
        if (obj < *best) {
            *best = obj;
            for (size_t i = 0; i < st->P; i++) st->best_d[i] = glp_get_col_prim(st->lp, (int)i + 1);
        }
        if (!st->two) break; /* one LP */
    }
    r->searched = exhaustive && solved == r->n_patterns;
    return solved;
}

/* The common arguments of the directional test. */
static int dt_check_args(double act_tol, double zero_tol, int max_patterns, const char *who,
                         mf_err *e) {
    if (!(act_tol >= 0.0) || !isfinite(act_tol))
        return mf__err(e, MF_ERR_INVALID, "%s: act_tol must be finite and >= 0 (got %g)", who,
                       act_tol);
    if (!(zero_tol >= 0.0) || !isfinite(zero_tol))
        return mf__err(e, MF_ERR_INVALID, "%s: zero_tol must be finite and >= 0 (got %g)", who,
                       zero_tol);
    if (max_patterns < 1)
        return mf__err(e, MF_ERR_INVALID, "%s: max_patterns must be >= 1 (got %d)", who,
                       max_patterns);
    return MF_OK;
}

/* The result, the active set (q_n <= q_min (1 + act_tol)) and the buffers
 * every case needs. 0 or -1 on no memory. */
static int dt_setup(dt_state *st, double qmin, double act_tol, mf_directional_result **r) {
    const int N = st->N;
    const size_t P = st->P;
    *r = mf__calloc(1, sizeof **r);
    st->active = mf__calloc((size_t)N, sizeof *st->active);
    st->g = mf__calloc(P, sizeof *st->g);
    st->ind = mf__calloc(P + 1, sizeof *st->ind);
    st->val = mf__calloc(P + 1, sizeof *st->val);
    st->best_d = mf__calloc(P, sizeof *st->best_d);
    st->zo = mf__calloc((size_t)st->c.n_out, sizeof *st->zo);
    if (!*r || !st->active || !st->g || !st->ind || !st->val || !st->best_d || !st->zo) return -1;
    for (int i = 0; i < MF_N_GAINS; i++) (*r)->gain[i] = NAN;
    (*r)->best_inner = NAN;
    for (int n = 0; n < N; n++)
        if (st->c.q[n] <= qmin * (1.0 + act_tol)) {
            st->active[n] = 1;
            st->n_act++;
        }
    return 0;
}

/*
 * mf_directional_test -- the first-order test of [VSS22] for (P) at theta
 * (docs/theory.md s.3 "Non-smooth points"). With the active set
 * A = {n : q_n <= q_min (1 + act_tol)} it solves
 *     minimize <theta, d>  s.t.  q_n'(theta; d) >= 0 (n in A),  -1 <= d_i <= 1,
 * exactly when q_n'(theta; .) is piecewise linear:
 *  - two-layer nets (mf_model_units: relu2 with bias / fix-outer, and
 *    relu2-outbias): one LP per sign pattern s of the kinked pre-activations
 *    (|z_kn| <= zero_tol ||w_k|| ||x~_n||, n in A, a_k != 0; parallel inputs
 *    share a sign), adding s <dw_k, x~_n> >= 0; at most max_patterns LPs:
 *    with more patterns, max_patterns of them are tried (the all-plus
 *    pattern, then random ones) and searched = 0;
 *  - models without kinks at theta (linear, fc-linear, diag, skip-linear, an
 *    mlp with no pre-activation at 0 by the scales of its pre-activations):
 *    one LP with q_n' = <grad q_n, d>; for multi-class margins with tied
 *    competitors, one row per tied class (q_n' = min over them, so q_n' >= 0
 *    is still linear);
 *  - any other net with kinks at theta (an mlp): MF_ERR_UNSUPPORTED.
 * The LPs are solved by GLPK's primal simplex (terminal output off). found
 * = 1 when the smallest optimum is below -LC_DESCENT_TOL ||theta||; then d
 * is that LP's solution (||d||_inf <= 1) and gain[i] = gamma(theta + eps_i
 * d) / gamma(theta) - 1 for eps = 1e-1, 1e-2, 1e-3, 1e-4 (a first-order
 * direction gives a gain linear in eps for small eps). Otherwise d = NULL
 * and the gains are NaN. Requires q_min > 0 (MF_ERR_INVALID otherwise).
 */
int mf_directional_test(const mf_model *m, const mf_data *data, const double *theta,
                        double act_tol, double zero_tol, int max_patterns,
                        mf_directional_result **out, mf_err *e) {
    static const char *who = "directional test";
    if (!out) return mf__err(e, MF_ERR_INVALID, "%s: out must not be NULL", who);
    *out = NULL;
    int rc = dt_check_args(act_tol, zero_tol, max_patterns, who, e);
    if (rc) return rc;
    dt_state st;
    memset(&st, 0, sizeof st);
    st.term_prev = -1;
    rc = lc_ctx_init(&st.c, m, data, theta, 0, who, e);
    if (rc) return rc;
    st.data = data;
    st.theta = theta;
    st.P = st.c.P;
    st.N = st.c.n;
    mf_directional_result *r = NULL;
    double qmin = mf__p_margins(&st.c, theta), best;
    if (!(qmin > 0.0)) {
        rc = mf__err(e, MF_ERR_INVALID,
                     "%s: theta does not classify every sample correctly (q_min = %g); the "
                     "test needs q_min > 0",
                     who, qmin);
        goto done;
    }
    if (dt_setup(&st, qmin, act_tol, &r)) goto nomem;
    st.two = lc_two_view(m, &st.t);
    if (st.two) {
        if (dt_two_kinks(&st, zero_tol)) goto nomem;
    } else if ((rc = dt_hidden_kinks(&st, m, zero_tol, who, e)) != MF_OK) {
        goto done;
    }
    r->n_zero = st.n_vars;
    if (dt_build_lp(&st, zero_tol)) goto nomem;
    if (dt_patterns(&st, max_patterns, r, &best) == 0) {
        rc = mf__err(e, MF_ERR_NUMERIC, "%s: GLPK solved none of the %d LPs", who, r->n_patterns);
        goto done;
    }
    r->best_inner = mf__dot(theta, st.best_d, st.P); /* the exact objective of d, not GLPK's */
    if (r->best_inner < -LC_DESCENT_TOL * mf__norm2(theta, st.P)) {
        r->found = 1;
        r->d = st.best_d;
        st.best_d = NULL;
        mf__margin_gains(m, st.c.w, data, theta, r->d, st.c.out, st.c.tmp, r->gain);
    }
    *out = r;
    r = NULL;
    rc = MF_OK;
    goto done;
nomem:
    rc = mf__err(e, MF_ERR_NOMEM, "%s: out of memory", who);
done:
    mf_directional_result_free(r);
    dt_free(&st);
    return rc;
}

static int lc_need_homogeneous(const mf_model *m, const char *who, mf_err *e) {
    if (m && !m->homogeneous)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "%s: model %s is not homogeneous; problem (P) and the normalized margin "
                       "q_min / ||theta||^L are defined for homogeneous models only",
                       who, m->spec);
    return MF_OK;
}

/* ====================================================================== */
/* B.2  Local search                                                      */
/* ====================================================================== */

void mf_local_result_free(mf_local_result *r) {
    if (!r) return;
    mf__free(r->best_theta);
    mf__free(r);
}

/*
 * mf_local_search -- contract in marginflow.h. theta~ = theta / q_min^{1/L};
 * for radius r and trial t the start is theta~ + r ||theta~|| xi, xi a
 * normalized Gaussian vector of mf_rng seeded by seed (sequential over
 * radii, then trials); a start with q_min <= 0 is moved halfway towards
 * theta~ until it separates (at most 60 halvings: it stays in the ball).
 * Then mf__p_solve in the ball of radius r ||theta~|| (SLSQP up to
 * MF_SLSQP_MAX_PARAMS parameters, else the augmented Lagrangian). Failures
 * (nothing feasible in the ball) are counted. Needs a homogeneous model and
 * q_min(theta) > 0.
 */
int mf_local_search(const mf_model *m, const mf_data *data, const double *theta,
                    const double *radii, int n_radii, int trials, uint64_t seed,
                    mf_local_result **out, mf_err *e) {
    static const char *who = "local search";
    if (!out) return mf__err(e, MF_ERR_INVALID, "%s: out must not be NULL", who);
    *out = NULL;
    if (!radii || n_radii < 1 || n_radii > MF_LOCAL_MAX_RADII)
        return mf__err(e, MF_ERR_INVALID, "%s: n_radii must be in 1..%d (got %d)", who,
                       MF_LOCAL_MAX_RADII, n_radii);
    for (int i = 0; i < n_radii; i++)
        if (!(radii[i] > 0.0) || !isfinite(radii[i]))
            return mf__err(e, MF_ERR_INVALID, "%s: radii[%d] must be finite and > 0 (got %g)",
                           who, i, radii[i]);
    if (trials < 1)
        return mf__err(e, MF_ERR_INVALID, "%s: trials must be >= 1 (got %d)", who, trials);
    int rc = lc_need_homogeneous(m, who, e);
    if (rc) return rc;
    const int slsqp = m && m->n_params <= MF_SLSQP_MAX_PARAMS;
    mf__pctx c;
    rc = lc_ctx_init(&c, m, data, theta, slsqp, who, e);
    if (rc) return rc;
    const size_t P = c.P;
    mf_local_result *r = mf__calloc(1, sizeof *r);
    double *tt = mf__calloc(P, sizeof *tt), *x = mf__calloc(P, sizeof *x);
    if (r) r->best_theta = mf__calloc(P, sizeof *r->best_theta);
    if (!r || !tt || !x || !r->best_theta) {
        rc = mf__err(e, MF_ERR_NOMEM, "%s: out of memory", who);
        goto done;
    }
    double qmin = mf__p_margins(&c, theta);
    if (!(qmin > 0.0)) {
        rc = mf__err(e, MF_ERR_INVALID,
                     "%s: theta does not classify every sample correctly (q_min = %g)", who, qmin);
        goto done;
    }
    snprintf(r->method, sizeof r->method, "%s", slsqp ? "SLSQP" : "augmented Lagrangian (L-BFGS)");
    r->n_radii = n_radii;
    for (int i = 0; i < n_radii; i++) r->radii[i] = radii[i];
    r->trials = trials;
    r->seed = seed;
    r->gamma0 = mf__p_gamma(&c, theta);
    r->best_gain = NAN;
    r->best_radius = -1;
    memcpy(tt, theta, P * sizeof *tt);
    mf__p_rescale(&c, tt, qmin);
    memcpy(r->best_theta, tt, P * sizeof *tt);
    double tnorm = mf__norm2(tt, P), best_all = NAN;
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    for (int ri = 0; ri < n_radii; ri++) {
        r->best_gamma[ri] = NAN;
        for (int tr = 0; tr < trials; tr++) {
            for (size_t i = 0; i < P; i++) x[i] = mf_rng_normal(&rng);
            double xn = mf__norm2(x, P);
            for (size_t i = 0; i < P; i++) x[i] = tt[i] + radii[ri] * tnorm * x[i] / xn;
            for (int h = 0; h < 60 && !(mf__p_margins(&c, x) > 0.0); h++)
                for (size_t i = 0; i < P; i++) x[i] = tt[i] + 0.5 * (x[i] - tt[i]);
            double gam = mf__p_solve(&c, x, tt, radii[ri] * tnorm, slsqp, &r->evaluations);
            if (isnan(gam)) {
                r->failures++;
                continue;
            }
            if (isnan(r->best_gamma[ri]) || gam > r->best_gamma[ri]) r->best_gamma[ri] = gam;
            if (isnan(best_all) || gam > best_all) {
                best_all = gam;
                memcpy(r->best_theta, x, P * sizeof *x);
                r->best_radius = ri;
            }
        }
    }
    if (!isnan(best_all)) {
        r->best_gain = best_all / r->gamma0 - 1.0;
        r->best_dist = mf__rel_dist(r->best_theta, tt, P);
    }
    *out = r;
    r = NULL;
done:
    mf_local_result_free(r);
    mf__free(tt);
    mf__free(x);
    mf__pctx_free(&c);
    return rc;
}

/*
 * local.c -- search-based and LP-based tests of local optimality for the
 * max-margin problem of THEORY.md section 3,
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
 *  - mf_local_search: local re-solves of (P) with NLopt's SLSQP from random
 *    perturbations of theta; a better feasible point nearby is a certificate,
 *    finding none is evidence only.
 *  - mf_maxmargin: the same solver from random Gaussian inits: a multi-start
 *    SEARCH for the largest normalized margin gamma = q_min / ||theta||^L.
 *
 * Margins and their gradients are computed here (lc_jacobian) rather than by
 * mf_margin_jacobian, with one model workspace allocated up front
 * (single-sample forward/backward passes), so the SLSQP callbacks never
 * allocate and cannot fail; they use the same conventions: sigma'(0) = alpha
 * (marginflow.h) and, for multi-class margins, the first maximizing
 * competing class.
 */
#include "internal.h"

#include <glpk.h>
#include <math.h>
#include <nlopt.h>
#include <stdlib.h>
#include <string.h>

/* Feasibility tolerance for (P) on SLSQP results: q_min >= 1 - LC_FEAS_TOL. */
#define LC_FEAS_TOL 1e-9
/* SLSQP settings shared by the local search and the multi-start search. */
#define LC_XTOL_REL 1e-12
#define LC_MAXEVAL 2000
/* Constraint tolerance given to NLopt. It must be > 0: NLopt only returns
 * iterates that satisfy the constraints within it, and SLSQP's iterates sit
 * on the boundary q_n = 1 up to rounding, so with 0 it would hand back the
 * start. The results are rescaled to q_min = 1 afterwards anyway. */
#define LC_CTOL 1e-11

/* ====================================================================== */
/* Evaluation context                                                     */
/* ====================================================================== */

/* Everything the margin evaluations need, allocated once. */
typedef struct lc_ctx {
    const mf_model *m;
    const mf_data *data;
    mf_work *w;       /* max_batch = n */
    size_t P;         /* n_params */
    int n, n_out, L;
    double *out;      /* [n][n_out] network outputs */
    double *q;        /* [n] margins */
    double *J;        /* [n][P] margin gradients */
    double *dout;     /* [n_out] output seed for one backward pass */
    double *tmp;      /* [P] scratch parameter vector */
    double *bak;      /* [P + 1] last accepted SLSQP iterate / phase-1 variables */
    double *ctol;     /* [n] NLopt constraint tolerances, all LC_CTOL */
    nlopt_opt opt;    /* the optimizer being run (for force_stop), or NULL */
    int bad;          /* a callback saw a non-finite x */
} lc_ctx;

static void lc_ctx_free(lc_ctx *c) {
    mf_work_free(c->w);
    mf__free(c->out);
    mf__free(c->q);
    mf__free(c->J);
    mf__free(c->dout);
    mf__free(c->tmp);
    mf__free(c->bak);
    mf__free(c->ctol);
    memset(c, 0, sizeof *c);
}

/* Check the common arguments and allocate the context. */
static int lc_ctx_init(lc_ctx *c, const mf_model *m, const mf_data *data, const double *theta,
                       const char *who, mf_err *e) {
    memset(c, 0, sizeof *c);
    if (!m || !data || !theta)
        return mf__err(e, MF_ERR_INVALID, "%s: model, data and theta must not be NULL", who);
    if (data->d != m->d)
        return mf__err(e, MF_ERR_DIM, "%s: data has d = %d features, the model expects %d", who,
                       data->d, m->d);
    if (data->n < 1) return mf__err(e, MF_ERR_INVALID, "%s: the data set is empty", who);
    if ((data->num_classes == 0 ? 1 : data->num_classes) != m->n_out)
        return mf__err(e, MF_ERR_DIM, "%s: the data has %d classes but the model %d outputs",
                       who, data->num_classes, m->n_out);
    if (m->n_params < 1) return mf__err(e, MF_ERR_INVALID, "%s: the model has no parameters", who);
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(theta[i]))
            return mf__err(e, MF_ERR_INVALID, "%s: theta[%zu] is not finite", who, i);
    c->m = m;
    c->data = data;
    c->P = m->n_params;
    c->n = data->n;
    c->n_out = m->n_out;
    c->L = m->degree;
    int rc = mf_work_new(m, data->n, &c->w, e);
    if (rc) return rc;
    c->out = mf__calloc((size_t)c->n * c->n_out, sizeof *c->out);
    c->q = mf__calloc((size_t)c->n, sizeof *c->q);
    c->J = mf__calloc((size_t)c->n * c->P, sizeof *c->J);
    c->dout = mf__calloc((size_t)c->n_out, sizeof *c->dout);
    c->tmp = mf__calloc(c->P, sizeof *c->tmp);
    c->bak = mf__calloc(c->P + 1, sizeof *c->bak);
    c->ctol = mf__calloc((size_t)c->n, sizeof *c->ctol);
    if (!c->out || !c->q || !c->J || !c->dout || !c->tmp || !c->bak || !c->ctol) {
        lc_ctx_free(c);
        return mf__err(e, MF_ERR_NOMEM, "%s: out of memory (%zu parameters, %d samples)", who,
                       m->n_params, data->n);
    }
    for (int i = 0; i < c->n; i++) c->ctol[i] = LC_CTOL;
    return MF_OK;
}

static double lc_norm(const double *v, size_t P) {
    double s = 0.0;
    for (size_t i = 0; i < P; i++) s += v[i] * v[i];
    return sqrt(s);
}

/* Margins c->q[n] at theta from one batched forward pass; returns q_min
 * (NaN if any margin is NaN). */
static double lc_margins(lc_ctx *c, const double *theta) {
    mf_model_forward(c->m, c->w, theta, c->data->x, c->n, c->out);
    return mf_margins(c->data, c->out, c->n_out, c->q);
}

/* Normalized margin gamma = q_min / ||theta||^L ([LL20] sec. 2). */
static double lc_gamma(lc_ctx *c, const double *theta) {
    double qmin = lc_margins(c, theta);
    double nrm = lc_norm(theta, c->P);
    if (!(nrm > 0.0)) return NAN;
    return qmin / pow(nrm, c->L);
}

/* Competing class of sample i from outputs z [n_out]: argmax_{j != y} z_j
 * (first index on ties); -1 for binary data. */
static int lc_competitor(const mf_data *data, const double *z, int n_out, int i) {
    if (data->num_classes == 0) return -1;
    int y = data->cls[i], best = -1;
    for (int j = 0; j < n_out; j++)
        if (j != y && (best < 0 || z[j] > z[best])) best = j;
    return best;
}

/* grad [P] = d (z_pos - z_neg) / d theta for sample i, where z = Phi(theta;
 * x_i) (binary: pos = 0 and neg = -1 give d (y_i Phi) / d theta, i.e. the
 * margin gradient). One single-sample forward and backward pass; z [n_out]
 * receives the outputs. */
static void lc_output_grad(lc_ctx *c, const double *theta, int i, int pos, int neg, double *z,
                           double *grad) {
    const double *xi = c->data->x + (size_t)i * c->data->d;
    mf_model_forward(c->m, c->w, theta, xi, 1, z);
    for (int j = 0; j < c->n_out; j++) c->dout[j] = 0.0;
    if (c->data->num_classes == 0) {
        c->dout[0] = c->data->y[i];
    } else {
        c->dout[pos] = 1.0;
        if (neg >= 0) c->dout[neg] -= 1.0;
    }
    mf_model_backward(c->m, c->w, theta, xi, 1, c->dout, grad);
}

/* Margins c->q[n] and their gradients c->J[n][P] at theta: J_n = grad q_n,
 * q_n = y_n Phi_n or Phi_{n,y} - Phi_{n,j*} with j* the competing class.
 * Uses c->out row 0 as scratch for the single-sample outputs. */
static void lc_jacobian(lc_ctx *c, const double *theta) {
    double *z = c->out;
    for (int i = 0; i < c->n; i++) {
        const double *xi = c->data->x + (size_t)i * c->data->d;
        int y = c->data->num_classes ? c->data->cls[i] : 0;
        mf_model_forward(c->m, c->w, theta, xi, 1, z);
        int jc = lc_competitor(c->data, z, c->n_out, i);
        lc_output_grad(c, theta, i, y, jc, z, c->J + (size_t)i * c->P);
        c->q[i] = c->data->num_classes ? z[y] - z[jc] : c->data->y[i] * z[0];
    }
}

/* Multiply theta by q_min^{-1/L} when q_min > 0 (then q_min = 1 for a
 * homogeneous model); returns the factor used (1 if q_min <= 0 or NaN). */
static double lc_rescale(lc_ctx *c, double *theta, double qmin) {
    if (!(qmin > 0.0) || !isfinite(qmin)) return 1.0;
    double f = pow(qmin, -1.0 / c->L);
    for (size_t i = 0; i < c->P; i++) theta[i] *= f;
    return f;
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

/* A two-layer relu2 / relu2-outbias net read from the layer views:
 * W [M][c] at theta + offW (c = d, or d + 1 with the bias column x~_d = 1),
 * a [M] at theta + offa (or the fixed +-1 of fix-outer), b at offb. */
typedef struct lc_two {
    int M, c, d, has_a, has_b, bias;
    size_t offW, offa, offb;
    double alpha;
} lc_two;

static void lc_two_view(const mf_model *m, lc_two *t) {
    memset(t, 0, sizeof *t);
    t->M = m->width;
    t->d = m->d;
    t->c = m->layers[0].cols;
    t->offW = m->layers[0].offset;
    t->bias = m->kind == MF_MODEL_RELU2 && m->bias;
    t->has_a = !(m->kind == MF_MODEL_RELU2 && m->fix_outer);
    if (t->has_a) t->offa = m->layers[1].offset;
    t->has_b = m->kind == MF_MODEL_RELU2_OUTBIAS;
    if (t->has_b) t->offb = m->layers[2].offset;
    t->alpha = m->alpha;
}

static double lc_two_a(const lc_two *t, const double *theta, int k) {
    if (t->has_a) return theta[t->offa + (size_t)k];
    return (k % 2 == 0) ? 1.0 : -1.0; /* fix-outer convention of marginflow.h */
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

/*
 * mf_directional_test -- the first-order test of [VSS22] for (P) at theta
 * (THEORY.md s.3 "Non-smooth point"). With the active set
 * A = {n : q_n <= q_min (1 + act_tol)} it solves
 *     minimize <theta, d>  s.t.  q_n'(theta; d) >= 0 (n in A),  -1 <= d_i <= 1,
 * exactly when q_n'(theta; .) is piecewise linear:
 *  - relu2 (bias / fix-outer) and relu2-outbias: one LP per sign pattern s of
 *    the kinked pre-activations (|z_kn| <= zero_tol ||w_k|| ||x~_n||, n in A,
 *    a_k != 0; parallel inputs share a sign), adding s <dw_k, x~_n> >= 0;
 *    at most max_patterns LPs: with more patterns, max_patterns of them are
 *    tried (the all-plus pattern, then random ones) and searched = 0;
 *  - models without kinks at theta (linear, fc-linear, diag, skip-linear, an
 *    mlp with no pre-activation at 0): one LP with q_n' = <grad q_n, d>; for
 *    multi-class margins with tied competitors, one row per tied class
 *    (q_n' = min over them, so q_n' >= 0 is still linear);
 *  - an mlp with kinks at theta: MF_ERR_UNSUPPORTED.
 * The LPs are solved by GLPK's primal simplex (terminal output off). found
 * = 1 when the smallest optimum is below -1e-9 ||theta||; then d is that
 * LP's solution (||d||_inf <= 1) and gain[i] = gamma(theta + eps_i d) /
 * gamma(theta) - 1 for eps = 1e-1, 1e-2, 1e-3, 1e-4 (a first-order direction
 * gives a gain linear in eps for small eps). Otherwise d = NULL and the
 * gains are NaN. Requires q_min > 0 (MF_ERR_INVALID otherwise).
 */
int mf_directional_test(const mf_model *m, const mf_data *data, const double *theta,
                        double act_tol, double zero_tol, int max_patterns,
                        mf_directional_result **out, mf_err *e) {
    static const char *who = "directional test";
    if (!out) return mf__err(e, MF_ERR_INVALID, "%s: out must not be NULL", who);
    *out = NULL;
    if (!(act_tol >= 0.0) || !isfinite(act_tol))
        return mf__err(e, MF_ERR_INVALID, "%s: act_tol must be finite and >= 0 (got %g)", who,
                       act_tol);
    if (!(zero_tol >= 0.0) || !isfinite(zero_tol))
        return mf__err(e, MF_ERR_INVALID, "%s: zero_tol must be finite and >= 0 (got %g)", who,
                       zero_tol);
    if (max_patterns < 1)
        return mf__err(e, MF_ERR_INVALID, "%s: max_patterns must be >= 1 (got %d)", who,
                       max_patterns);
    lc_ctx c;
    int rc = lc_ctx_init(&c, m, data, theta, who, e);
    if (rc) return rc;

    const size_t P = c.P;
    const int N = c.n;
    const int two = m->kind == MF_MODEL_RELU2 || m->kind == MF_MODEL_RELU2_OUTBIAS;
    mf_directional_result *r = NULL;
    int *active = NULL, *kink_of = NULL, *pat = NULL, *ind = NULL, *rowkind = NULL;
    int *rowidx = NULL;
    double *z = NULL, *xt = NULL, *xr = NULL, *g = NULL, *val = NULL, *best_d = NULL;
    double *zo = NULL;
    lc_kink *kinks = NULL;
    glp_prob *lp = NULL;
    int term_prev = -1;
    lc_two t;

    double qmin = lc_margins(&c, theta);
    if (!(qmin > 0.0)) {
        rc = mf__err(e, MF_ERR_INVALID,
                     "%s: theta does not classify every sample correctly (q_min = %g); the "
                     "test needs q_min > 0",
                     who, qmin);
        goto done;
    }
    r = mf__calloc(1, sizeof *r);
    active = mf__calloc((size_t)N, sizeof *active);
    g = mf__calloc(P, sizeof *g);
    ind = mf__calloc(P + 1, sizeof *ind);
    val = mf__calloc(P + 1, sizeof *val);
    best_d = mf__calloc(P, sizeof *best_d);
    zo = mf__calloc((size_t)c.n_out, sizeof *zo);
    if (!r || !active || !g || !ind || !val || !best_d || !zo) goto nomem;
    for (int i = 0; i < 4; i++) r->gain[i] = NAN;
    r->best_inner = NAN;
    int n_act = 0;
    for (int n = 0; n < N; n++)
        if (c.q[n] <= qmin * (1.0 + act_tol)) {
            active[n] = 1;
            n_act++;
        }

    /* ---- the kinks: pre-activations within zero_tol of 0 on active samples */
    int n_kinks = 0, n_vars = 0;
    if (two) {
        lc_two_view(m, &t);
        z = mf__calloc((size_t)N * t.M, sizeof *z);
        xt = mf__calloc((size_t)t.c, sizeof *xt);
        xr = mf__calloc((size_t)t.c, sizeof *xr);
        kinks = mf__calloc((size_t)N * t.M, sizeof *kinks);
        kink_of = mf__calloc((size_t)N * t.M, sizeof *kink_of);
        if (!z || !xt || !xr || !kinks || !kink_of) goto nomem;
        for (int n = 0; n < N; n++) {
            lc_two_input(&t, data, n, xt);
            double xn = lc_norm(xt, (size_t)t.c);
            for (int k = 0; k < t.M; k++) {
                const double *wk = theta + t.offW + (size_t)k * t.c;
                double s = 0.0;
                for (int j = 0; j < t.c; j++) s += wk[j] * xt[j];
                z[(size_t)n * t.M + k] = s;
                kink_of[(size_t)n * t.M + k] = -1;
                if (!active[n] || !(xn > 0.0) || lc_two_a(&t, theta, k) == 0.0) continue;
                if (!(fabs(s) <= zero_tol * lc_norm(wk, (size_t)t.c) * xn)) continue;
                /* a new kink; share the sign variable of a parallel input */
                lc_kink *kn = &kinks[n_kinks];
                kn->k = k;
                kn->n = n;
                kn->var = -1;
                kn->sgn = 1;
                for (int o = 0; o < n_kinks && kn->var < 0; o++) {
                    if (kinks[o].k != k || kinks[o].sgn != 1) continue;
                    lc_two_input(&t, data, kinks[o].n, xr);
                    double dot = 0.0;
                    for (int j = 0; j < t.c; j++) dot += xr[j] * xt[j];
                    double nr = lc_norm(xr, (size_t)t.c);
                    if (fabs(fabs(dot) - nr * xn) <= 1e-12 * nr * xn) {
                        kn->var = kinks[o].var;
                        kn->sgn = dot > 0.0 ? 1 : -1;
                    }
                }
                if (kn->var < 0) kn->var = n_vars++;
                kink_of[(size_t)n * t.M + k] = n_kinks++;
            }
        }
    } else if (m->kind == MF_MODEL_MLP) {
        /* pre-activations layer by layer: z_l = W_l h_l, h_{l+1} = sigma(z_l) */
        int maxw = m->d;
        for (int l = 0; l < m->depth; l++)
            if (m->widths[l] > maxw) maxw = m->widths[l];
        xt = mf__calloc((size_t)maxw, sizeof *xt);
        xr = mf__calloc((size_t)maxw, sizeof *xr);
        if (!xt || !xr) goto nomem;
        for (int n = 0; n < N; n++) {
            if (!active[n]) continue;
            int width = m->d;
            for (int j = 0; j < m->d; j++) xt[j] = data->x[(size_t)n * m->d + j];
            for (int l = 0; l < m->depth; l++) {
                const mf_layer *ly = &m->layers[l];
                double hn = lc_norm(xt, (size_t)width);
                for (int i = 0; i < ly->rows; i++) {
                    const double *wi = theta + ly->offset + (size_t)i * ly->cols;
                    double s = 0.0;
                    for (int j = 0; j < ly->cols; j++) s += wi[j] * xt[j];
                    if (fabs(s) <= zero_tol * lc_norm(wi, (size_t)ly->cols) * hn) n_kinks++;
                    xr[i] = s > 0.0 ? s : m->alpha * s;
                }
                width = ly->rows;
                memcpy(xt, xr, (size_t)width * sizeof *xt);
            }
        }
        if (n_kinks > 0) {
            rc = mf__err(e, MF_ERR_UNSUPPORTED,
                         "%s: %d pre-activations of the mlp are within zero_tol of 0 on active "
                         "samples; the directional test at mlp kinks is not implemented (only "
                         "two-layer relu2 nets and points without kinks are supported)",
                         who, n_kinks);
            goto done;
        }
    }
    r->n_zero = n_vars;

    /* ---- rows of the LP: kind 0 = margin row of sample rowidx, kind 1 = sign
     * row of variable rowidx, kind 2 = precomputed gradient row (smooth case) */
    int n_rows = 0;
    if (two) {
        n_rows = n_act + n_vars;
    } else {
        /* smooth: one row per active sample and per tied competing class */
        for (int n = 0; n < N; n++) {
            if (!active[n]) continue;
            if (data->num_classes == 0) {
                n_rows++;
                continue;
            }
            const double *zz = c.out + (size_t)n * c.n_out;
            int y = data->cls[n], jc = lc_competitor(data, zz, c.n_out, n);
            double sc = fabs(zz[y]) > fabs(zz[jc]) ? fabs(zz[y]) : fabs(zz[jc]);
            for (int j = 0; j < c.n_out; j++)
                if (j != y && zz[jc] - zz[j] <= zero_tol * sc) n_rows++;
        }
    }
    rowkind = mf__calloc((size_t)n_rows + 1, sizeof *rowkind);
    rowidx = mf__calloc((size_t)n_rows + 1, sizeof *rowidx);
    pat = mf__calloc((size_t)n_vars + 1, sizeof *pat);
    if (!rowkind || !rowidx || !pat) goto nomem;

    term_prev = glp_term_out(GLP_OFF);
    lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    glp_add_cols(lp, (int)P);
    for (size_t i = 0; i < P; i++) {
        glp_set_col_bnds(lp, (int)i + 1, GLP_DB, -1.0, 1.0);
        glp_set_obj_coef(lp, (int)i + 1, theta[i]);
    }
    if (n_rows > 0) glp_add_rows(lp, n_rows);
    {
        int row = 0;
        if (two) {
            for (int n = 0; n < N; n++)
                if (active[n]) {
                    row++;
                    rowkind[row] = 0;
                    rowidx[row] = n;
                    glp_set_row_bnds(lp, row, GLP_LO, 0.0, 0.0);
                }
            for (int v = 0; v < n_vars; v++) {
                /* the representative kink of v: <dw_k, x~_n> */
                int kk = 0;
                while (kinks[kk].var != v) kk++;
                row++;
                rowkind[row] = 1;
                rowidx[row] = v;
                for (size_t i = 0; i < P; i++) g[i] = 0.0;
                lc_two_input(&t, data, kinks[kk].n, xt);
                for (int j = 0; j < t.c; j++) g[t.offW + (size_t)kinks[kk].k * t.c + j] = xt[j];
                lc_set_row(lp, row, g, P, ind, val);
            }
        } else {
            for (int n = 0; n < N; n++) {
                if (!active[n]) continue;
                if (data->num_classes == 0) {
                    lc_output_grad(&c, theta, n, 0, -1, zo, g);
                    row++;
                    glp_set_row_bnds(lp, row, GLP_LO, 0.0, 0.0);
                    lc_set_row(lp, row, g, P, ind, val);
                    continue;
                }
                /* rows <grad Phi_y - grad Phi_j, d> >= 0 for each tied j */
                const double *zz = c.out + (size_t)n * c.n_out;
                int y = data->cls[n], jc = lc_competitor(data, zz, c.n_out, n);
                double sc = fabs(zz[y]) > fabs(zz[jc]) ? fabs(zz[y]) : fabs(zz[jc]);
                double zjc = zz[jc];
                for (int j = 0; j < c.n_out; j++) {
                    if (j == y || !(zjc - c.out[(size_t)n * c.n_out + j] <= zero_tol * sc))
                        continue;
                    lc_output_grad(&c, theta, n, y, j, zo, g);
                    row++;
                    glp_set_row_bnds(lp, row, GLP_LO, 0.0, 0.0);
                    lc_set_row(lp, row, g, P, ind, val);
                }
            }
        }
    }

    /* ---- the patterns */
    long long n_pat_all = n_vars < 62 ? (1LL << n_vars) : -1;
    int exhaustive = n_pat_all > 0 && n_pat_all <= max_patterns;
    int n_pat = exhaustive ? (int)n_pat_all : max_patterns;
    mf_rng rng;
    mf_rng_seed(&rng, 1);
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    double best = INFINITY;
    int solved = 0;
    for (int p = 0; p < n_pat; p++) {
        for (int v = 0; v < n_vars; v++) {
            if (exhaustive)
                pat[v] = ((p >> v) & 1) ? -1 : 1;
            else
                pat[v] = p == 0 ? 1 : ((mf_rng_next(&rng) >> 63) ? -1 : 1);
        }
        if (two) {
            for (int row = 1; row <= n_rows; row++) {
                if (rowkind[row] == 0) {
                    int n = rowidx[row];
                    lc_two_input(&t, data, n, xt);
                    lc_two_row(&t, theta, z + (size_t)n * t.M, xt, data->y[n],
                               kink_of + (size_t)n * t.M, kinks, pat, g, P);
                    lc_set_row(lp, row, g, P, ind, val);
                } else {
                    if (pat[rowidx[row]] > 0)
                        glp_set_row_bnds(lp, row, GLP_LO, 0.0, 0.0);
                    else
                        glp_set_row_bnds(lp, row, GLP_UP, 0.0, 0.0);
                }
            }
        }
        glp_std_basis(lp);
        int ret = glp_simplex(lp, &parm);
        r->n_patterns++;
        if (ret != 0 || glp_get_status(lp) != GLP_OPT) continue;
        solved++;
        double obj = glp_get_obj_val(lp);
        if (obj < best) {
            best = obj;
            for (size_t i = 0; i < P; i++) best_d[i] = glp_get_col_prim(lp, (int)i + 1);
        }
        if (!two) break; /* one LP */
    }
    r->searched = exhaustive && solved == r->n_patterns;
    if (solved == 0) {
        rc = mf__err(e, MF_ERR_NUMERIC, "%s: GLPK solved none of the %d LPs", who,
                     r->n_patterns);
        goto done;
    }
    /* the exact objective of the returned d (not GLPK's rounded one) */
    {
        double s = 0.0;
        for (size_t i = 0; i < P; i++) s += theta[i] * best_d[i];
        r->best_inner = s;
    }
    double tn = lc_norm(theta, P);
    if (r->best_inner < -1e-9 * tn) {
        r->found = 1;
        r->d = best_d;
        best_d = NULL;
        double g0 = lc_gamma(&c, theta);
        static const double eps[4] = {1e-1, 1e-2, 1e-3, 1e-4};
        for (int i = 0; i < 4; i++) {
            for (size_t j = 0; j < P; j++) c.tmp[j] = theta[j] + eps[i] * r->d[j];
            r->gain[i] = lc_gamma(&c, c.tmp) / g0 - 1.0;
        }
    }
    *out = r;
    r = NULL;
    rc = MF_OK;
    goto done;
nomem:
    rc = mf__err(e, MF_ERR_NOMEM, "%s: out of memory", who);
done:
    if (lp) glp_delete_prob(lp);
    if (term_prev >= 0) glp_term_out(term_prev);
    mf_directional_result_free(r);
    mf__free(active);
    mf__free(kink_of);
    mf__free(pat);
    mf__free(ind);
    mf__free(rowkind);
    mf__free(rowidx);
    mf__free(z);
    mf__free(xt);
    mf__free(xr);
    mf__free(g);
    mf__free(val);
    mf__free(best_d);
    mf__free(zo);
    mf__free(kinks);
    lc_ctx_free(&c);
    return rc;
}

/* ====================================================================== */
/* SLSQP on (P)                                                           */
/* ====================================================================== */

/* Objective of (P): f = 1/2 ||theta||^2, grad f = theta. */
static double lc_objective(unsigned n, const double *x, double *grad, void *data) {
    lc_ctx *c = data;
    double s = 0.0;
    for (unsigned i = 0; i < n; i++) {
        s += x[i] * x[i];
        if (grad) grad[i] = x[i];
    }
    if (!isfinite(s)) {
        c->bad = 1;
        if (c->opt) nlopt_force_stop(c->opt);
    }
    return 0.5 * s;
}

/* Constraints of (P) in NLopt's form c_n(theta) = 1 - q_n(theta) <= 0,
 * gradient row n = -grad q_n (grad is [mcon][n] row-major). */
static void lc_constraints(unsigned mcon, double *result, unsigned n, const double *x,
                           double *grad, void *data) {
    lc_ctx *c = data;
    if (grad) {
        lc_jacobian(c, x);
        for (size_t i = 0; i < (size_t)mcon * n; i++) grad[i] = -c->J[i];
    } else {
        lc_margins(c, x);
    }
    for (unsigned i = 0; i < mcon; i++) {
        result[i] = 1.0 - c->q[i];
        if (!isfinite(result[i])) {
            c->bad = 1;
            if (c->opt) nlopt_force_stop(c->opt);
        }
    }
}

/* One SLSQP run on (P) from x (overwritten): objective 1/2 ||x||^2, one
 * inequality constraint 1 - q_n <= 0 per sample with the margin gradients,
 * xtol_rel 1e-12, at most 2000 evaluations. Returns 0, or -1 when NLopt
 * could not run or a callback saw non-finite values. The NLopt result code
 * is not trusted either way (SLSQP often ends with "roundoff limited" at a
 * good point and with "xtol reached" at a poor one): callers judge x. */
static int lc_slsqp_once(lc_ctx *c, double *x, int maxeval, int *evals) {
    nlopt_opt opt = nlopt_create(NLOPT_LD_SLSQP, (unsigned)c->P);
    if (!opt) return -1;
    int ok = -1;
    c->opt = opt;
    c->bad = 0;
    if (nlopt_set_min_objective(opt, lc_objective, c) >= 0 &&
        nlopt_add_inequality_mconstraint(opt, (unsigned)c->n, lc_constraints, c, c->ctol) >= 0 &&
        nlopt_set_xtol_rel(opt, LC_XTOL_REL) >= 0 && nlopt_set_maxeval(opt, maxeval) >= 0) {
        double f = 0.0;
        (void)nlopt_optimize(opt, x, &f);
        *evals += nlopt_get_numevals(opt);
        ok = c->bad ? -1 : 0;
        for (size_t i = 0; i < c->P && ok == 0; i++)
            if (!isfinite(x[i])) ok = -1;
    }
    c->opt = NULL;
    nlopt_destroy(opt);
    return ok;
}

/* Phase 1 in the variables (theta, t): maximize t subject to t - q_n(theta) <= 0 and
 * ||theta||^2 <= 1 (the normalized margin on the unit ball; feasible from
 * any theta != 0 with t = q_min). Used when a start misclassifies samples. */
static double lc_p1_objective(unsigned n, const double *y, double *grad, void *data) {
    lc_ctx *c = data;
    if (grad) {
        for (unsigned i = 0; i + 1 < n; i++) grad[i] = 0.0;
        grad[n - 1] = -1.0;
    }
    if (!isfinite(y[n - 1])) {
        c->bad = 1;
        if (c->opt) nlopt_force_stop(c->opt);
    }
    return -y[n - 1];
}

static void lc_p1_margins(unsigned mcon, double *result, unsigned n, const double *y,
                          double *grad, void *data) {
    lc_ctx *c = data;
    const double t = y[n - 1];
    if (grad) {
        lc_jacobian(c, y); /* reads the first P = n - 1 entries */
        for (unsigned i = 0; i < mcon; i++) {
            for (unsigned j = 0; j + 1 < n; j++)
                grad[(size_t)i * n + j] = -c->J[(size_t)i * c->P + j];
            grad[(size_t)i * n + n - 1] = 1.0;
        }
    } else {
        lc_margins(c, y);
    }
    for (unsigned i = 0; i < mcon; i++) {
        result[i] = t - c->q[i];
        if (!isfinite(result[i])) {
            c->bad = 1;
            if (c->opt) nlopt_force_stop(c->opt);
        }
    }
}

static double lc_p1_ball(unsigned n, const double *y, double *grad, void *data) {
    (void)data;
    double s = 0.0;
    for (unsigned i = 0; i + 1 < n; i++) {
        s += y[i] * y[i];
        if (grad) grad[i] = 2.0 * y[i];
    }
    if (grad) grad[n - 1] = 0.0;
    return s - 1.0;
}

/* Run phase 1 from x (overwritten with its theta part); 0 or -1 as lc_slsqp_once. */
static int lc_phase1(lc_ctx *c, double *x, int *evals) {
    const size_t P = c->P;
    double nrm = lc_norm(x, P);
    if (!(nrm > 0.0) || !isfinite(nrm)) return -1;
    double *y = c->bak; /* [P + 1] */
    for (size_t i = 0; i < P; i++) y[i] = x[i] / nrm;
    y[P] = lc_margins(c, y);
    if (!isfinite(y[P])) return -1;
    nlopt_opt opt = nlopt_create(NLOPT_LD_SLSQP, (unsigned)P + 1);
    if (!opt) return -1;
    int ok = -1;
    c->opt = opt;
    c->bad = 0;
    if (nlopt_set_min_objective(opt, lc_p1_objective, c) >= 0 &&
        nlopt_add_inequality_mconstraint(opt, (unsigned)c->n, lc_p1_margins, c, c->ctol) >= 0 &&
        nlopt_add_inequality_constraint(opt, lc_p1_ball, c, LC_CTOL) >= 0 &&
        nlopt_set_xtol_rel(opt, LC_XTOL_REL) >= 0 && nlopt_set_maxeval(opt, LC_MAXEVAL) >= 0) {
        double f = 0.0;
        (void)nlopt_optimize(opt, y, &f);
        *evals += nlopt_get_numevals(opt);
        ok = c->bad ? -1 : 0;
        for (size_t i = 0; i < P && ok == 0; i++)
            if (!isfinite(y[i])) ok = -1;
        if (ok == 0) memcpy(x, y, P * sizeof *x);
    }
    c->opt = NULL;
    nlopt_destroy(opt);
    return ok;
}

/*
 * Solve (P) locally by SLSQP (NLopt's NLOPT_LD_SLSQP, Kraft 1988) from x
 * (overwritten by the result). A start with q_min <= 0 first goes through
 * phase 1 (lc_phase1). Then, from x rescaled to q_min = 1 (exact for a
 * homogeneous model), SLSQP is restarted from its own rescaled result until
 * 1/2 ||x||^2 stops decreasing (relative 1e-14) or LC_ROUNDS runs: NLopt's
 * SLSQP often stops early ("xtol reached" after a tiny line-search step),
 * and a restart with a fresh quasi-Newton matrix continues. The restarts
 * share one budget of 2000 evaluations (phase 1 has its own). Returns the
 * normalized margin q_min / ||x||^L of the result, which is feasible for (P)
 * (q_min = 1 to rounding after the rescaling, checked to 1e-9), or NaN when
 * no point with q_min > 0 was reached or values were non-finite (a
 * failure). *evals accumulates the objective evaluations. The callbacks
 * never allocate; nothing here aborts.
 */
#define LC_ROUNDS 30
static double lc_slsqp(lc_ctx *c, double *x, int *evals) {
    const size_t P = c->P;
    double qmin = lc_margins(c, x);
    if (!(qmin > 0.0)) {
        if (lc_phase1(c, x, evals) != 0) return NAN;
        qmin = lc_margins(c, x);
        if (!(qmin > 0.0)) return NAN;
    }
    lc_rescale(c, x, qmin);
    double f = 0.5 * lc_norm(x, P) * lc_norm(x, P);
    const int budget_end = *evals + LC_MAXEVAL;
    for (int round = 0; round < LC_ROUNDS && *evals < budget_end; round++) {
        memcpy(c->bak, x, P * sizeof *x);
        int ok = lc_slsqp_once(c, x, budget_end - *evals, evals);
        double q = ok == 0 ? lc_margins(c, x) : NAN;
        if (!(q > 0.0)) {
            memcpy(x, c->bak, P * sizeof *x);
            break;
        }
        lc_rescale(c, x, q);
        double fn = 0.5 * lc_norm(x, P) * lc_norm(x, P);
        if (!(fn < f)) { /* no progress (or worse): keep the previous point */
            memcpy(x, c->bak, P * sizeof *x);
            break;
        }
        int done = fn >= f * (1.0 - 1e-14);
        f = fn;
        if (done) break;
    }
    qmin = lc_margins(c, x);
    if (!(qmin >= 1.0 - LC_FEAS_TOL)) return NAN;
    double val = lc_gamma(c, x);
    return isfinite(val) ? val : NAN;
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
 * mf_local_search -- local re-solves of (P) near theta (THEORY.md s.3, "any
 * architecture"). theta~ = theta / q_min^{1/L} (q_min(theta~) = 1); for each
 * radius r and trial, start = theta~ + r ||theta~|| xi with xi uniform on the
 * unit sphere (a normalized Gaussian vector from mf_rng seeded by seed; the
 * draws are sequential over radii then trials), then lc_slsqp (which
 * rescales it to q_min = 1, or runs its phase 1 when q_min <= 0). best_gamma[r] is the best normalized
 * margin of a feasible result (NaN if every trial at r failed), best_gain =
 * max_r best_gamma[r] / gamma0 - 1 (NaN if nothing was feasible), best_theta
 * the corresponding point scaled to q_min = 1 (theta~ itself when nothing
 * was feasible). SLSQP failures are skipped and counted in r->failures. Needs a homogeneous model and q_min(theta) > 0.
 */
int mf_local_search(const mf_model *m, const mf_data *data, const double *theta,
                    const double *radii, int n_radii, int trials, uint64_t seed,
                    mf_local_result **out, mf_err *e) {
    static const char *who = "local search";
    if (!out) return mf__err(e, MF_ERR_INVALID, "%s: out must not be NULL", who);
    *out = NULL;
    if (!radii || n_radii < 1 || n_radii > 8)
        return mf__err(e, MF_ERR_INVALID, "%s: n_radii must be in 1..8 (got %d)", who, n_radii);
    for (int i = 0; i < n_radii; i++)
        if (!(radii[i] > 0.0) || !isfinite(radii[i]))
            return mf__err(e, MF_ERR_INVALID, "%s: radii[%d] must be finite and > 0 (got %g)",
                           who, i, radii[i]);
    if (trials < 1)
        return mf__err(e, MF_ERR_INVALID, "%s: trials must be >= 1 (got %d)", who, trials);
    int rc = lc_need_homogeneous(m, who, e);
    if (rc) return rc;
    lc_ctx c;
    rc = lc_ctx_init(&c, m, data, theta, who, e);
    if (rc) return rc;
    const size_t P = c.P;
    mf_local_result *r = mf__calloc(1, sizeof *r);
    double *tt = mf__calloc(P, sizeof *tt), *x = mf__calloc(P, sizeof *x);
    if (r) r->best_theta = mf__calloc(P, sizeof *r->best_theta);
    if (!r || !tt || !x || !r->best_theta) {
        rc = mf__err(e, MF_ERR_NOMEM, "%s: out of memory", who);
        goto done;
    }
    double qmin = lc_margins(&c, theta);
    if (!(qmin > 0.0)) {
        rc = mf__err(e, MF_ERR_INVALID,
                     "%s: theta does not classify every sample correctly (q_min = %g)", who, qmin);
        goto done;
    }
    r->n_radii = n_radii;
    for (int i = 0; i < n_radii; i++) r->radii[i] = radii[i];
    r->trials = trials;
    r->seed = seed;
    r->gamma0 = lc_gamma(&c, theta);
    r->best_gain = NAN;
    memcpy(tt, theta, P * sizeof *tt);
    lc_rescale(&c, tt, qmin);
    memcpy(r->best_theta, tt, P * sizeof *tt);
    double tnorm = lc_norm(tt, P), best_all = NAN;
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    for (int ri = 0; ri < n_radii; ri++) {
        r->best_gamma[ri] = NAN;
        for (int tr = 0; tr < trials; tr++) {
            for (size_t i = 0; i < P; i++) x[i] = mf_rng_normal(&rng);
            double xn = lc_norm(x, P);
            for (size_t i = 0; i < P; i++) x[i] = tt[i] + radii[ri] * tnorm * x[i] / xn;
            double gam = lc_slsqp(&c, x, &r->evaluations);
            if (isnan(gam)) {
                r->failures++;
                continue;
            }
            if (isnan(r->best_gamma[ri]) || gam > r->best_gamma[ri]) r->best_gamma[ri] = gam;
            if (isnan(best_all) || gam > best_all) {
                best_all = gam;
                memcpy(r->best_theta, x, P * sizeof *x);
                lc_rescale(&c, r->best_theta, lc_margins(&c, x));
            }
        }
    }
    if (!isnan(best_all)) r->best_gain = best_all / r->gamma0 - 1.0;
    *out = r;
    r = NULL;
done:
    mf_local_result_free(r);
    mf__free(tt);
    mf__free(x);
    lc_ctx_free(&c);
    return rc;
}

/* ====================================================================== */
/* B.3  Multi-start search for the maximum normalized margin              */
/* ====================================================================== */

void mf_maxmargin_result_free(mf_maxmargin_result *r) {
    if (!r) return;
    mf__free(r->best_theta);
    mf__free(r->values);
    mf__free(r->counts);
    mf__free(r);
}

static int lc_cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/*
 * mf_maxmargin -- multi-start SLSQP on (P) (THEORY.md s.3): start i (i = 0 ..
 * starts-1) is mf_model_init(m, "gauss", 1, rng seeded by seed + i), solved
 * by lc_slsqp (rescaled to q_min = 1 when q_min > 0, otherwise through its
 * phase 1). Starts that reach no feasible point count as failures. The
 * final normalized margins, sorted descending, are grouped greedily: a value
 * joins the current group when it is within rel_tol |v| of the group's first
 * (largest) value v, which is the value reported. best_theta is the best
 * result scaled to q_min = 1 (zeros, and best_gamma = NaN, if every start
 * failed). A SEARCH: nothing here certifies a global optimum.
 */
int mf_maxmargin(const mf_model *m, const mf_data *data, int starts, uint64_t seed, double rel_tol,
                 mf_maxmargin_result **out, mf_err *e) {
    static const char *who = "maxmargin";
    if (!out) return mf__err(e, MF_ERR_INVALID, "%s: out must not be NULL", who);
    *out = NULL;
    if (starts < 1)
        return mf__err(e, MF_ERR_INVALID, "%s: starts must be >= 1 (got %d)", who, starts);
    if (!(rel_tol >= 0.0) || !isfinite(rel_tol))
        return mf__err(e, MF_ERR_INVALID, "%s: rel_tol must be finite and >= 0 (got %g)", who,
                       rel_tol);
    if (!m) return mf__err(e, MF_ERR_INVALID, "%s: model must not be NULL", who);
    int rc = lc_need_homogeneous(m, who, e);
    if (rc) return rc;
    double *x = mf__calloc(m->n_params ? m->n_params : 1, sizeof *x);
    if (!x) return mf__err(e, MF_ERR_NOMEM, "%s: out of memory", who);
    lc_ctx c;
    rc = lc_ctx_init(&c, m, data, x, who, e);
    if (rc) {
        mf__free(x);
        return rc;
    }
    const size_t P = c.P;
    mf_maxmargin_result *r = mf__calloc(1, sizeof *r);
    double *vals = mf__calloc((size_t)starts, sizeof *vals);
    if (r) {
        r->best_theta = mf__calloc(P, sizeof *r->best_theta);
        r->values = mf__calloc((size_t)starts, sizeof *r->values);
        r->counts = mf__calloc((size_t)starts, sizeof *r->counts);
    }
    if (!r || !vals || !r->best_theta || !r->values || !r->counts) {
        rc = mf__err(e, MF_ERR_NOMEM, "%s: out of memory", who);
        goto done;
    }
    r->starts = starts;
    r->seed = seed;
    r->best_gamma = NAN;
    int n_ok = 0, evals = 0;
    for (int s = 0; s < starts; s++) {
        mf_rng rng;
        mf_rng_seed(&rng, seed + (uint64_t)s);
        rc = mf_model_init(m, "gauss", 1.0, &rng, x, e);
        if (rc) goto done;
        double gam = lc_slsqp(&c, x, &evals);
        if (isnan(gam)) {
            r->failures++;
            continue;
        }
        vals[n_ok++] = gam;
        if (isnan(r->best_gamma) || gam > r->best_gamma) {
            r->best_gamma = gam;
            memcpy(r->best_theta, x, P * sizeof *x);
            lc_rescale(&c, r->best_theta, lc_margins(&c, x));
        }
    }
    qsort(vals, (size_t)n_ok, sizeof *vals, lc_cmp_desc);
    for (int i = 0; i < n_ok; i++) {
        if (r->n_values > 0) {
            double v = r->values[r->n_values - 1];
            if (fabs(vals[i] - v) <= rel_tol * fabs(v)) {
                r->counts[r->n_values - 1]++;
                continue;
            }
        }
        r->values[r->n_values] = vals[i];
        r->counts[r->n_values] = 1;
        r->n_values++;
    }
    *out = r;
    r = NULL;
    rc = MF_OK;
done:
    mf_maxmargin_result_free(r);
    mf__free(vals);
    mf__free(x);
    lc_ctx_free(&c);
    return rc;
}

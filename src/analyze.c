/*
 * analyze.c -- KKT certificates and optimality verdicts for the max-margin
 * problem of THEORY.md section 3,
 *     (P)  minimize 1/2 ||theta||^2  subject to  q_n(theta) >= 1 for all n,
 * at a trained parameter vector theta (sections A and C of marginflow.h).
 *
 * What it computes, in order (mf_analyze):
 *  1. the rescaled point theta~ = theta / q_min^{1/L}, the only point of the
 *     ray through theta that is feasible with an active constraint;
 *  2. (eps, delta)-KKT by non-negative least squares over the multipliers
 *     of the active samples (q_n <= 1 + act_tol at theta~; lambda_n = 0 for
 *     the others, so delta <= act_tol max lambda) ([LL20] Def. of approximate
 *     KKT points; [VSS22] sec. 2), with the Clarke coefficients of two-layer
 *     nets free at kinks (as extreme rays: see kkt_columns);
 *  3. Lyu & Li's own certificate from the loss gradient ([LL20] Thm. 4.4:
 *     eps = ||theta~|| sqrt(2 (1 - beta)), beta = cos(theta, -grad Loss));
 *  4. the global optimum where a closed form is known (THEORY.md s.3:
 *     linear, fully-connected linear, diagonal, two-layer leaky ReLU on
 *     symmetric data), from the exact SVM references of marginflow.h;
 *  5. the second-order test at smooth points ([VSS22] sec. 4: the Lagrangian
 *     Hessian on the critical cone), the directional first-order test at
 *     kinks and the local constrained re-solves of local.c;
 *  6. a verdict that says what is certified and what is only searched.
 * The per-layer problem P_l (settings.layer >= 0) replaces 5 by the exact
 * solution of a convex QP (a hard-margin SVM in the layer's features).
 *
 * Linear algebra: LAPACKE (dgelsd for the least-squares subproblems of NNLS,
 * dgesvd for null spaces, dsyev for the reduced Hessian), column-major.
 */
#include "internal.h"

#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Limits beyond which a step is skipped (and the reason says so). */
#define AN_MAX_KINKS_PER_SAMPLE 10   /* 2^10 extreme rays per sample */
#define AN_MAX_COLUMNS 8192          /* NNLS columns in all */
#define AN_MAX_HESS_PARAMS 1500      /* second-order test: P x P Hessian */
#define AN_EIG_TOL 1e-6              /* |eigenvalue| below this is "zero" */
#define AN_GAIN_CERT 1e-9            /* relative margin gain that certifies */
#define AN_SYM_TOL 1e-12             /* symmetric data: (x, y) -> (-x, -y) */

static const double an_radii[4] = {1e-1, 1e-2, 1e-3, 1e-4};
static const double an_eps[4] = {1e-1, 1e-2, 1e-3, 1e-4};

/* ====================================================================== */
/* Settings, names, freeing                                               */
/* ====================================================================== */

void mf_analyze_settings_default(mf_analyze_settings *s) {
    s->kkt_tol = 1e-3;
    s->act_tol = 1e-3;
    s->zero_tol = 1e-3;
    s->global_tol = 1e-4;
    s->hess_h = 1e-5;
    s->local_trials = 8;
    s->seed = 1;
    s->max_patterns = 4096;
    s->layer = -1;
}

/* NULL if every field is in range, else a sentence naming the field. */
const char *mf_analyze_settings_validate(const mf_analyze_settings *s) {
    if (!s) return "settings must not be NULL";
    if (!(s->kkt_tol > 0 && s->kkt_tol < 1)) return "kkt_tol must be a number in (0, 1)";
    if (!(s->act_tol >= 0 && s->act_tol < 1)) return "act_tol must be a number in [0, 1)";
    if (!(s->zero_tol >= 0 && s->zero_tol < 1)) return "zero_tol must be a number in [0, 1)";
    if (!(s->global_tol > 0 && s->global_tol < 1)) return "global_tol must be a number in (0, 1)";
    if (!(s->hess_h > 0 && s->hess_h <= 1e-2)) return "hess_h must be a number in (0, 1e-2]";
    if (s->local_trials < 0 || s->local_trials > 100000)
        return "local_trials must be an integer in [0, 100000]";
    if (s->max_patterns < 1) return "max_patterns must be an integer >= 1";
    if (s->layer < -1 || s->layer >= MF_MAX_LAYERS)
        return "layer must be -1 (whole network) or a layer index in [0, 15]";
    return NULL;
}

const char *mf_verdict_name(mf_verdict v) {
    switch (v) {
    case MF_VERDICT_GLOBAL: return "global";
    case MF_VERDICT_LOCAL_CERTIFIED: return "local-certified";
    case MF_VERDICT_LOCAL_EVIDENCE: return "local-evidence";
    case MF_VERDICT_NOT_LOCAL: return "not-local";
    case MF_VERDICT_NOT_KKT: return "not-kkt";
    case MF_VERDICT_NON_HOMOGENEOUS: return "non-homogeneous";
    }
    return "unknown";
}

void mf_analysis_free(mf_analysis *a) {
    if (!a) return;
    mf__free(a->theta_tilde);
    mf__free(a->lambda);
    mf__free(a->active);
    mf__free(a->dir);
    mf_directional_result_free(a->directional);
    mf_local_result_free(a->local);
    mf__free(a);
}

/* ====================================================================== */
/* Small helpers                                                          */
/* ====================================================================== */

static double dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double nrm2(const double *a, size_t n) { return sqrt(dot(a, a, n)); }

/* ||a||_2 without overflow or underflow of the squares (scaled by max |a_i|). */
static double norm_robust(const double *a, size_t n) {
    double mx = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > mx) mx = fabs(a[i]);
    if (mx == 0.0 || !isfinite(mx)) return mx;
    for (size_t i = 0; i < n; i++) s += (a[i] / mx) * (a[i] / mx);
    return mx * sqrt(s);
}

/* Append a printf-style sentence to a fixed buffer (truncating). */
static void say(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void say(char *buf, size_t cap, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

static int check_inputs(const mf_model *m, const mf_data *data, const double *theta, mf_err *e) {
    if (!m || !data || !theta)
        return mf__err(e, MF_ERR_INVALID, "model, data and theta must not be NULL");
    if (data->n < 1) return mf__err(e, MF_ERR_INVALID, "the data set is empty");
    if (data->d != m->d)
        return mf__err(e, MF_ERR_DIM, "data dimension %d does not match the model's %d (%s)", data->d,
                       m->d, m->spec);
    if ((data->num_classes == 0 ? 1 : data->num_classes) != m->n_out)
        return mf__err(e, MF_ERR_DIM, "data has %d classes but the model %s has %d outputs",
                       data->num_classes, m->spec, m->n_out);
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(theta[i]))
            return mf__err(e, MF_ERR_NUMERIC, "theta[%zu] is not finite", i);
    return MF_OK;
}

/* ====================================================================== */
/* A: margins, Jacobian, pre-activations                                  */
/* ====================================================================== */

/*
 * One-sample margins and gradients in a caller-owned workspace w (max_batch
 * >= 1) with scratch out1, dout1 [n_out]. Binary: q_n = y_n Phi(x_n), so
 * grad q_n = J_n^T y_n (dout = y_n). Multi-class: q_n = Phi_y - Phi_j* with
 * j* the argmax over j != y (lowest index on ties), so dout = e_y - e_j*.
 */
static void jacobian_with(const mf_model *m, const mf_data *data, mf_work *w, const double *theta,
                          double *q, double *J, double *out1, double *dout1) {
    const int d = m->d, C = m->n_out;
    for (int n = 0; n < data->n; n++) {
        const double *x = data->x + (size_t)n * d;
        mf_model_forward(m, w, theta, x, 1, out1);
        int y = 0, jstar = -1;
        double qn;
        if (data->num_classes == 0) {
            qn = data->y[n] * out1[0];
            dout1[0] = data->y[n];
        } else {
            y = data->cls[n];
            for (int j = 0; j < C; j++)
                if (j != y && (jstar < 0 || out1[j] > out1[jstar])) jstar = j;
            qn = out1[y] - out1[jstar];
            for (int j = 0; j < C; j++) dout1[j] = 0.0;
            dout1[y] = 1.0;
            dout1[jstar] = -1.0;
        }
        if (q) q[n] = qn;
        if (J) mf_model_backward(m, w, theta, x, 1, dout1, J + (size_t)n * m->n_params);
    }
}

/* Contract in marginflow.h. J is [N][n_params] row-major. */
int mf_margin_jacobian(const mf_model *m, const mf_data *data, const double *theta, double *q,
                       double *J, mf_err *e) {
    int rc = check_inputs(m, data, theta, e);
    if (rc) return rc;
    mf_work *w = NULL;
    rc = mf_work_new(m, 1, &w, e);
    if (rc) return rc;
    double *buf = mf__malloc(2 * sizeof(double) * (size_t)m->n_out);
    if (!buf) {
        mf_work_free(w);
        return mf__err(e, MF_ERR_NOMEM, "out of memory for the margin Jacobian");
    }
    jacobian_with(m, data, w, theta, q, J, buf, buf + m->n_out);
    mf__free(buf);
    mf_work_free(w);
    return MF_OK;
}

/*
 * Pre-activations pre[n][H] and their scales scale[n][H] (either may be
 * NULL). relu2 / relu2-outbias: z_nk = <w_k, x~_n>, x~ = (x, 1) with bias,
 * scale = ||w_k|| ||x~_n||. mlp: z^l = W_l h^{l-1} (h^0 = x, h^l =
 * sigma(z^l)) for the hidden layers l = 1..K, scale = ||row of W_l|| *
 * ||h^{l-1}||. A pre-activation with |z| <= zero_tol * scale is a kink.
 */
static int preact_scaled(const mf_model *m, const double *theta, const mf_data *data, double *pre,
                         double *scale, mf_err *e) {
    const int H = mf_model_n_hidden(m), d = m->d;
    if (H == 0) return MF_OK;
    if (m->kind != MF_MODEL_MLP) {
        const mf_layer *W = &m->layers[0];
        const int cols = W->cols, bias = cols > d;
        for (int n = 0; n < data->n; n++) {
            const double *x = data->x + (size_t)n * d;
            double xn = dot(x, x, (size_t)d) + (bias ? 1.0 : 0.0);
            for (int k = 0; k < W->rows; k++) {
                const double *wk = theta + W->offset + (size_t)k * cols;
                double z = dot(wk, x, (size_t)d) + (bias ? wk[d] : 0.0);
                if (pre) pre[(size_t)n * H + k] = z;
                if (scale) scale[(size_t)n * H + k] = sqrt(dot(wk, wk, (size_t)cols) * xn);
            }
        }
        return MF_OK;
    }
    int wmax = d;
    for (int l = 0; l < m->depth; l++)
        if (m->widths[l] > wmax) wmax = m->widths[l];
    double *h0 = mf__malloc(2 * sizeof(double) * (size_t)wmax);
    if (!h0) return mf__err(e, MF_ERR_NOMEM, "out of memory for pre-activations");
    double *h1 = h0 + wmax;
    for (int n = 0; n < data->n; n++) {
        memcpy(h0, data->x + (size_t)n * d, sizeof(double) * (size_t)d);
        int prev = d, unit = 0;
        for (int l = 0; l < m->depth; l++) {
            const mf_layer *W = &m->layers[l];
            double hn = nrm2(h0, (size_t)prev);
            for (int k = 0; k < W->rows; k++) {
                const double *wk = theta + W->offset + (size_t)k * W->cols;
                double z = dot(wk, h0, (size_t)prev);
                if (pre) pre[(size_t)n * H + unit + k] = z;
                if (scale) scale[(size_t)n * H + unit + k] = nrm2(wk, (size_t)prev) * hn;
                h1[k] = z > 0 ? z : m->alpha * z;
            }
            unit += W->rows;
            prev = W->rows;
            memcpy(h0, h1, sizeof(double) * (size_t)prev);
        }
    }
    mf__free(h0);
    return MF_OK;
}

/* Contract in marginflow.h. */
int mf_model_preactivations(const mf_model *m, const double *theta, const mf_data *data,
                            double *pre, mf_err *e) {
    int rc = check_inputs(m, data, theta, e);
    if (rc) return rc;
    return preact_scaled(m, theta, data, pre, NULL, e);
}

/* ====================================================================== */
/* Non-negative least squares (Lawson & Hanson 1974, ch. 23, alg. NNLS)    */
/* ====================================================================== */

/*
 * Solve  minimize ||A z - b||_2  subject to  z >= 0,  A [m][nc] column-major
 * (column j at A + j*m), b [m]; z [nc] out. The passive-set least-squares
 * problems are solved by LAPACKE_dgelsd (SVD, minimum norm on rank
 * deficiency). Termination: every w_j = (A^T (b - A z))_j <= tol with
 * tol = 1e-12 ||b|| max_j ||a_j||, or max_iter outer steps. Returns MF_OK,
 * MF_ERR_NOMEM or MF_ERR_NUMERIC (LAPACK failure or no convergence).
 */
static int nnls(int m, int nc, const double *A, const double *b, double *z, mf_err *e) {
    int rc = MF_OK;
    int *passive = mf__calloc((size_t)nc, sizeof(int));
    int *idx = mf__malloc(sizeof(int) * (size_t)nc);
    int *banned = mf__calloc((size_t)nc, sizeof(int));
    double *w = mf__malloc(sizeof(double) * (size_t)nc);
    double *s = mf__calloc((size_t)nc, sizeof(double));
    double *r = mf__malloc(sizeof(double) * (size_t)m);
    int ld = m > nc ? m : nc;
    double *Ap = mf__malloc(sizeof(double) * (size_t)m * (size_t)nc + 1);
    double *bb = mf__malloc(sizeof(double) * (size_t)ld);
    double *sv = mf__malloc(sizeof(double) * (size_t)(m < nc ? m : nc) + sizeof(double));
    if (!passive || !idx || !banned || !w || !s || !r || !Ap || !bb || !sv) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory in NNLS (%d x %d)", m, nc);
        goto done;
    }
    double colmax = 0.0;
    for (int j = 0; j < nc; j++) {
        double cn = nrm2(A + (size_t)j * m, (size_t)m);
        if (cn > colmax) colmax = cn;
    }
    const double tol = 1e-12 * nrm2(b, (size_t)m) * (colmax > 0 ? colmax : 1.0);
    for (int j = 0; j < nc; j++) z[j] = 0.0;
    const int max_iter = 3 * nc + 100;
    int iter = 0;
    for (;;) {
        /* w = A^T (b - A z) */
        memcpy(r, b, sizeof(double) * (size_t)m);
        for (int j = 0; j < nc; j++)
            if (z[j] != 0.0)
                for (int i = 0; i < m; i++) r[i] -= A[(size_t)j * m + i] * z[j];
        int jmax = -1;
        for (int j = 0; j < nc; j++) {
            w[j] = dot(A + (size_t)j * m, r, (size_t)m);
            if (!passive[j] && !banned[j] && w[j] > tol && (jmax < 0 || w[j] > w[jmax])) jmax = j;
        }
        if (jmax < 0) break;
        if (++iter > max_iter) {
            rc = mf__err(e, MF_ERR_NUMERIC, "NNLS did not converge in %d iterations", max_iter);
            goto done;
        }
        passive[jmax] = 1;
        int first = 1;
        for (;;) {
            /* least squares on the passive columns */
            int p = 0;
            for (int j = 0; j < nc; j++)
                if (passive[j]) idx[p++] = j;
            for (int c = 0; c < p; c++)
                memcpy(Ap + (size_t)c * m, A + (size_t)idx[c] * m, sizeof(double) * (size_t)m);
            memcpy(bb, b, sizeof(double) * (size_t)m);
            lapack_int rank = 0;
            int ldb = m > p ? m : p;
            lapack_int info = LAPACKE_dgelsd(LAPACK_COL_MAJOR, m, p, 1, Ap, m, bb, ldb, sv, 1e-13, &rank);
            if (info != 0) {
                rc = mf__err(e, MF_ERR_NUMERIC, "NNLS: LAPACK dgelsd failed (info %d)", (int)info);
                goto done;
            }
            for (int j = 0; j < nc; j++) s[j] = 0.0;
            for (int c = 0; c < p; c++) s[idx[c]] = bb[c];
            if (first && !(s[jmax] > 0.0)) {
                /* rounding: the new column does not help; ban it this round */
                passive[jmax] = 0;
                banned[jmax] = 1;
                break;
            }
            first = 0;
            int feasible = 1;
            for (int c = 0; c < p; c++)
                if (!(s[idx[c]] > 0.0)) feasible = 0;
            if (feasible) {
                for (int j = 0; j < nc; j++) z[j] = s[j];
                for (int j = 0; j < nc; j++) banned[j] = 0;
                break;
            }
            double step = 1.0;
            for (int c = 0; c < p; c++) {
                int j = idx[c];
                if (!(s[j] > 0.0)) {
                    double t = z[j] / (z[j] - s[j]);
                    if (t < step) step = t;
                }
            }
            for (int c = 0; c < p; c++) {
                int j = idx[c];
                z[j] += step * (s[j] - z[j]);
                if (z[j] <= 1e-300 || (!(s[j] > 0.0) && z[j] <= 0.0)) {
                    z[j] = 0.0;
                    passive[j] = 0;
                }
            }
            /* the variable that hit zero first is removed even if rounding left a trace */
            for (int c = 0; c < p; c++) {
                int j = idx[c];
                if (!(s[j] > 0.0) && z[j] != 0.0 && fabs(z[j] / (z[j] - s[j])) < 1e-15) {
                    z[j] = 0.0;
                    passive[j] = 0;
                }
            }
        }
    }
done:
    mf__free(passive);
    mf__free(idx);
    mf__free(banned);
    mf__free(w);
    mf__free(s);
    mf__free(r);
    mf__free(Ap);
    mf__free(bb);
    mf__free(sv);
    return rc;
}

/* ====================================================================== */
/* Workspace of one analysis                                              */
/* ====================================================================== */

typedef struct an_ctx {
    const mf_model *m;
    const mf_data *data;
    int N;
    size_t P;
    mf_work *w1, *wN; /* one-sample and whole-data workspaces */
    double *out1, *dout1, *outN;
} an_ctx;

static void ctx_free(an_ctx *c) {
    mf_work_free(c->w1);
    mf_work_free(c->wN);
    mf__free(c->out1);
    mf__free(c->outN);
}

static int ctx_init(an_ctx *c, const mf_model *m, const mf_data *data, mf_err *e) {
    memset(c, 0, sizeof *c);
    c->m = m;
    c->data = data;
    c->N = data->n;
    c->P = m->n_params;
    int rc = mf_work_new(m, 1, &c->w1, e);
    if (!rc) rc = mf_work_new(m, data->n, &c->wN, e);
    if (rc) return rc;
    c->out1 = mf__malloc(2 * sizeof(double) * (size_t)m->n_out);
    c->outN = mf__malloc(sizeof(double) * (size_t)data->n * (size_t)m->n_out);
    if (!c->out1 || !c->outN) return mf__err(e, MF_ERR_NOMEM, "out of memory for the analysis");
    c->dout1 = c->out1 + m->n_out;
    return MF_OK;
}

/* Normalized margin q_min / ||theta||^L at theta (0 norm -> NAN). */
static double gamma_at(an_ctx *c, const double *theta) {
    mf_model_forward(c->m, c->wN, theta, c->data->x, c->N, c->outN);
    double qmin = mf_margins(c->data, c->outN, c->m->n_out, NULL);
    double nr = nrm2(theta, c->P);
    return qmin / pow(nr, c->m->degree);
}

/* gains[k] = gamma(theta + eps_k d) / gamma(theta) - 1, eps_k = 1e-1..1e-4. */
static int margin_gains(an_ctx *c, const double *theta, const double *d, double gains[4],
                        mf_err *e) {
    double *t = mf__malloc(sizeof(double) * c->P);
    if (!t) return mf__err(e, MF_ERR_NOMEM, "out of memory for margin gains");
    double g0 = gamma_at(c, theta);
    for (int k = 0; k < 4; k++) {
        for (size_t i = 0; i < c->P; i++) t[i] = theta[i] + an_eps[k] * d[i];
        gains[k] = gamma_at(c, t) / g0 - 1.0;
    }
    mf__free(t);
    return MF_OK;
}

/* ====================================================================== */
/* KKT columns: Clarke subgradients at kinks as extreme rays               */
/* ====================================================================== */

/*
 * The columns of the NNLS for the KKT test. For a sample n without kinks the
 * column is h_n = grad q_n(theta~). For a two-layer net (relu2) with kinks
 * K_n = {k : |z_nk| <= zero_tol * scale_nk}, the Clarke subdifferential of
 * q_n is the box image
 *   { b_n + sum_{k in K_n} s_k y_n a_k x~_n e_{w_k} : s_k in [alpha, 1] }
 * with b_n the gradient at s_k = alpha (e_{w_k}: the block of w_k). The
 * multiplier products mu_nk = lambda_n s_k range over the cone
 *   { alpha lambda_n <= mu_nk <= lambda_n }
 * (THEORY.md s.3: convex at depth 2), and that cone is generated by the
 * 2^{|K_n|} extreme rays s in {alpha, 1}^{K_n}. So
 *   min_{lambda >= 0, s in box} ||theta~ - sum lambda_n h_n(s)||
 * is exactly a plain NNLS over the extreme-ray columns; lambda_n is the sum
 * of the coefficients of sample n's columns.
 * cols [P][ncol] column-major (allocated here), owner[ncol] = sample.
 * Returns the number of columns, or -1 on no memory; *fixed set to 1 when a
 * sample had too many kinks (then its kinks use sigma'(0) = alpha).
 */
static int kkt_columns(const an_ctx *c, const double *theta, const double *J, const int *active,
                       const int *kink, double **cols_out, int **owner_out, int *fixed) {
    const mf_model *m = c->m;
    const size_t P = c->P;
    const int H = mf_model_n_hidden(m), d = m->d;
    const int two_layer = (m->kind == MF_MODEL_RELU2);
    int ncol = 0;
    *fixed = 0;
    for (int n = 0; n < c->N; n++) {
        if (!active[n]) continue;
        int kn = 0;
        if (two_layer)
            for (int k = 0; k < H; k++) kn += kink[(size_t)n * H + k];
        if (kn > AN_MAX_KINKS_PER_SAMPLE || ncol + (1 << kn) > AN_MAX_COLUMNS) {
            *fixed = 1;
            kn = 0;
        }
        ncol += 1 << (two_layer ? kn : 0);
    }
    double *cols = mf__calloc(P * (size_t)(ncol ? ncol : 1), sizeof(double));
    int *owner = mf__malloc(sizeof(int) * (size_t)(ncol ? ncol : 1));
    if (!cols || !owner) {
        mf__free(cols);
        mf__free(owner);
        return -1;
    }
    const mf_layer *Wl = &m->layers[0];
    const int wcols = Wl->cols, bias = two_layer && wcols > d;
    int col = 0, budget_used = 0;
    for (int n = 0; n < c->N; n++) {
        if (!active[n]) continue;
        const double *Jn = J + (size_t)n * P;
        int ks[AN_MAX_KINKS_PER_SAMPLE], kn = 0;
        if (two_layer) { /* same rule as the counting loop above */
            int cnt = 0;
            for (int k = 0; k < H; k++) cnt += kink[(size_t)n * H + k];
            if (cnt <= AN_MAX_KINKS_PER_SAMPLE && budget_used + (1 << cnt) <= AN_MAX_COLUMNS)
                for (int k = 0; k < H; k++)
                    if (kink[(size_t)n * H + k]) ks[kn++] = k;
        }
        const int nr = 1 << kn;
        budget_used += nr;
        const double *x = c->data->x + (size_t)n * d;
        const double y = c->data->y ? c->data->y[n] : 1.0;
        for (int r = 0; r < nr; r++) {
            double *h = cols + (size_t)col * P;
            memcpy(h, Jn, sizeof(double) * P);
            for (int t = 0; t < kn; t++) {
                int k = ks[t];
                const double *wk = theta + Wl->offset + (size_t)k * wcols;
                double z = dot(wk, x, (size_t)d) + (bias ? wk[d] : 0.0);
                double used = z > 0 ? 1.0 : m->alpha;        /* what backward used */
                double sk = ((r >> t) & 1) ? 1.0 : m->alpha; /* this extreme ray */
                double ak = m->fix_outer ? ((k % 2 == 0) ? 1.0 : -1.0)
                                         : theta[m->layers[1].offset + k];
                double coef = (sk - used) * y * ak;
                double *hw = h + Wl->offset + (size_t)k * wcols;
                for (int j = 0; j < d; j++) hw[j] += coef * x[j];
                if (bias) hw[d] += coef;
            }
            owner[col++] = n;
        }
    }
    *cols_out = cols;
    *owner_out = owner;
    return ncol;
}

/* ====================================================================== */
/* Global references (THEORY.md s.3)                                      */
/* ====================================================================== */

/* 1 if for every n there is m with x_m = -x_n and y_m = -y_n (to AN_SYM_TOL). */
int mf__data_symmetric(const mf_data *D) {
    if (D->num_classes != 0) return 0;
    for (int n = 0; n < D->n; n++) {
        int found = 0;
        for (int k = 0; k < D->n && !found; k++) {
            if (D->y[k] != -D->y[n]) continue;
            int ok = 1;
            for (int j = 0; j < D->d && ok; j++)
                if (fabs(D->x[(size_t)k * D->d + j] + D->x[(size_t)n * D->d + j]) > AN_SYM_TOL) ok = 0;
            found = ok;
        }
        if (!found) return 0;
    }
    return 1;
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
 * enumerate all C(N + d, d) subsets (our derivation, THEORY.md s.3:
 * "exact only by enumeration for small d"). Returns gamma* or NAN when the
 * enumeration is too large (> max_subsets) or infeasible.
 */
static double diag_enumerate(const mf_data *D, int K, long max_subsets) {
    const int N = D->n, d = D->d, T = N + d;
    /* C(T, d) */
    double cnt = 1;
    for (int i = 1; i <= d; i++) cnt = cnt * (T - d + i) / i;
    if (cnt > (double)max_subsets || d > 16) return NAN;
    int sel[16];
    for (int i = 0; i < d; i++) sel[i] = i;
    double best = INFINITY, M[256], rhs[16];
    lapack_int piv[16];
    const double p = 2.0 / K;
    for (;;) {
        /* rows: constraint t < N: z_t = y_t x_t, rhs 1; t >= N: e_{t-N}, rhs 0 */
        for (int r = 0; r < d; r++) {
            int t = sel[r];
            for (int j = 0; j < d; j++)
                M[(size_t)j * d + r] = t < N ? D->y[t] * D->x[(size_t)t * d + j] : (t - N == j ? 1.0 : 0.0);
            rhs[r] = t < N ? 1.0 : 0.0;
        }
        double Mc[256];
        memcpy(Mc, M, sizeof(double) * (size_t)d * d);
        lapack_int info = LAPACKE_dgesv(LAPACK_COL_MAJOR, d, 1, Mc, d, piv, rhs, d);
        int ok = info == 0;
        /* reject near-singular systems */
        for (int j = 0; j < d && ok; j++)
            if (!isfinite(rhs[j]) || fabs(rhs[j]) > 1e12) ok = 0;
        if (ok) {
            double minq = INFINITY;
            for (int n = 0; n < N; n++) {
                double qn = D->y[n] * dot(D->x + (size_t)n * d, rhs, (size_t)d);
                if (qn < minq) minq = qn;
            }
            if (minq >= 1.0 - 1e-10) {
                double v = 0.0;
                for (int j = 0; j < d; j++) v += pow(fabs(rhs[j]), p);
                v /= minq > 1.0 ? pow(minq, p) : 1.0; /* rescale to q_min = 1 */
                if (v < best) best = v;
            }
        }
        /* next subset */
        int i = d - 1;
        while (i >= 0 && sel[i] == T - d + i) i--;
        if (i < 0) break;
        sel[i]++;
        for (int k = i + 1; k < d; k++) sel[k] = sel[k - 1] + 1;
    }
    if (!isfinite(best) || best <= 0) return NAN;
    return pow(K * best, -K / 2.0);
}

/*
 * Fill a->has_global, gamma_star, global_source, ratio where a closed form is
 * known (THEORY.md s.3). Only binary data. A non-separable or failed SVM
 * leaves has_global = 0 with the reason in note.
 */
static int global_reference(const mf_model *m, const mf_data *data, mf_analysis *a, char *note,
                            size_t note_cap, mf_err *e) {
    a->has_global = 0;
    a->gamma_star = NAN;
    a->ratio = NAN;
    if (data->num_classes != 0 || !m->homogeneous) return MF_OK;
    int need_l2 = 0, need_l1 = 0, sym = 0;
    switch (m->kind) {
    case MF_MODEL_LINEAR:
    case MF_MODEL_FC_LINEAR: need_l2 = 1; break;
    case MF_MODEL_DIAG: need_l1 = m->depth == 2; break;
    case MF_MODEL_RELU2:
        sym = !m->bias && !m->fix_outer && m->alpha > 0 && mf__data_symmetric(data);
        need_l2 = sym;
        break;
    default: break;
    }
    if (m->kind == MF_MODEL_DIAG && m->depth > 2) {
        double g = diag_enumerate(data, m->depth, 200000);
        if (isfinite(g)) {
            a->has_global = 1;
            a->gamma_star = g;
            snprintf(a->global_source, sizeof a->global_source,
                     "depth-%d diagonal: l_{2/%d} problem by vertex enumeration", m->depth, m->depth);
        } else {
            say(note, note_cap, " No global reference: depth-%d diagonal enumeration too large. ",
                m->depth);
        }
        goto ratio;
    }
    if (!need_l2 && !need_l1) return MF_OK;
    mf_svm_result *r = NULL;
    mf_err se;
    se.code = 0;
    se.msg[0] = '\0';
    int rc = mf_svm_solve(data, need_l1 ? MF_SVM_L1 : MF_SVM_L2, NULL, &r, &se);
    if (rc == MF_ERR_NOMEM) return mf__err(e, rc, "%s", se.msg);
    if (rc != MF_OK) {
        say(note, note_cap, " No global reference: SVM failed (%s). ", se.msg);
        return MF_OK;
    }
    if (r->status != MF_SVM_SOLVED) {
        say(note, note_cap, " No global reference: data not linearly separable through the origin. ");
        mf_svm_result_free(r);
        return MF_OK;
    }
    const double gsvm = r->gamma;
    if (need_l1) {
        a->gamma_star = r->gamma_diag2;
        snprintf(a->global_source, sizeof a->global_source,
                 "depth-2 diagonal: 1/(2 ||beta_l1||_1) from the l1 LP");
    } else if (m->kind == MF_MODEL_LINEAR) {
        a->gamma_star = gsvm;
        snprintf(a->global_source, sizeof a->global_source, "hard-margin SVM: gamma_svm");
    } else if (m->kind == MF_MODEL_FC_LINEAR) {
        int k = m->depth;
        a->gamma_star = pow((double)k, -k / 2.0) * gsvm;
        snprintf(a->global_source, sizeof a->global_source, "hard-margin SVM: gamma_svm * %d^{-%d/2}",
                 k, k);
    } else {
        a->gamma_star = (1.0 + m->alpha) * gsvm / 4.0;
        snprintf(a->global_source, sizeof a->global_source,
                 "leaky ReLU on symmetric data: (1 + alpha) gamma_svm / 4");
    }
    a->has_global = 1;
    mf_svm_result_free(r);
ratio:
    if (a->has_global) a->ratio = a->gamma / a->gamma_star;
    return MF_OK;
}

/* ====================================================================== */
/* Per-layer problem P_l                                                   */
/* ====================================================================== */

/* 1 if the margins are linear in layer l (so P_l is a convex QP). */
static int layer_is_linear(const mf_model *m, int l) {
    switch (m->kind) {
    case MF_MODEL_LINEAR:
    case MF_MODEL_FC_LINEAR:
    case MF_MODEL_DIAG: return 1;
    case MF_MODEL_RELU2: return !m->fix_outer && l == 1;
    case MF_MODEL_MLP: return l == m->n_layers - 1;
    default: return 0;
    }
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
static int layer_problem(an_ctx *c, const double *tt, int l, mf_analysis *a, mf_err *e) {
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
    for (int n = 0; n < D->n; n++) {
        const double *x = D->x + (size_t)n * m->d;
        mf_model_forward(m, c->w1, tt, x, 1, c->out1);
        for (int j = 0; j < C; j++) {
            if (D->num_classes) {
                if (j == D->cls[n]) continue;
                for (int t = 0; t < C; t++) c->dout1[t] = 0.0;
                c->dout1[D->cls[n]] = 1.0;
                c->dout1[j] = -1.0;
            } else {
                c->dout1[0] = D->y[n];
            }
            mf_model_backward(m, c->w1, tt, x, 1, c->dout1, g);
            memcpy(F->x + (size_t)r * Pl, g + ly->offset, sizeof(double) * (size_t)Pl);
            F->y[r] = 1.0;
            r++;
        }
    }
    mf__free(g);
    mf_svm_result *s = NULL;
    mf_err se;
    se.code = 0;
    se.msg[0] = '\0';
    rc = mf_svm_solve(F, MF_SVM_L2, NULL, &s, &se);
    mf_data_free(F);
    if (rc) return mf__err(e, rc, "per-layer problem P_%d: %s", l, se.msg);
    double v = 0.0;
    for (int i = 0; i < Pl; i++) v += tt[ly->offset + i] * tt[ly->offset + i];
    a->layer_value = 0.5 * v;
    if (s->status == MF_SVM_SOLVED)
        a->layer_opt = 0.5 * dot(s->w, s->w, (size_t)Pl);
    else
        a->layer_opt = NAN; /* cannot happen at a feasible theta~ */
    mf_svm_result_free(s);
    return MF_OK;
}

/* ====================================================================== */
/* Second order at smooth points                                          */
/* ====================================================================== */

/*
 * Orthonormal basis of the null space of G [r][P] (row-major rows g_i):
 * Z [P][k] column-major, k returned (-1 on no memory, -2 on LAPACK failure).
 * Rank from the singular values > 1e-10 * s_max (LAPACKE_dgesvd, V^T full).
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
    /* A = G^T? we want null(G): SVD of G [r][P] col-major copy */
    double *A = mf__malloc(sizeof(double) * (size_t)r * P);
    double *S = mf__malloc(sizeof(double) * (size_t)(r < P ? r : P));
    double *VT = mf__malloc(sizeof(double) * (size_t)P * P);
    double *sup = mf__malloc(sizeof(double) * (size_t)(r < P ? r : P) + sizeof(double));
    double U1;
    if (!A || !S || !VT || !sup) {
        mf__free(A);
        mf__free(S);
        mf__free(VT);
        mf__free(sup);
        return -1;
    }
    for (int i = 0; i < r; i++)
        for (int j = 0; j < P; j++) A[(size_t)j * r + i] = G[(size_t)i * P + j];
    lapack_int info = LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'N', 'A', r, P, A, r, S, &U1, 1, VT, P, sup);
    int k = -2;
    if (info == 0) {
        int mn = r < P ? r : P, rank = 0;
        for (int i = 0; i < mn; i++)
            if (S[i] > 1e-10 * S[0]) rank++;
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
    if (!HZ || !R || !ev) {
        mf__free(HZ);
        mf__free(R);
        mf__free(ev);
        return -1;
    }
    for (int c = 0; c < k; c++)
        for (int i = 0; i < P; i++) {
            double s = 0.0;
            for (int j = 0; j < P; j++) s += H[(size_t)j * P + i] * Z[(size_t)c * P + j];
            HZ[(size_t)c * P + i] = s;
        }
    for (int c = 0; c < k; c++)
        for (int r = 0; r < k; r++) R[(size_t)c * k + r] = dot(Z + (size_t)r * P, HZ + (size_t)c * P, (size_t)P);
    lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'U', k, R, k, ev);
    int rc = -2;
    if (info == 0) {
        *lam = ev[0];
        for (int i = 0; i < P; i++) {
            double s = 0.0;
            for (int c = 0; c < k; c++) s += Z[(size_t)c * P + i] * R[c];
            dvec[i] = s;
        }
        double nd = nrm2(dvec, (size_t)P);
        if (nd > 0)
            for (int i = 0; i < P; i++) dvec[i] /= nd;
        rc = 0;
    }
    mf__free(HZ);
    mf__free(R);
    mf__free(ev);
    return rc;
}

/*
 * H = I - sum_n lambda_n Hess q_n(theta~) [P][P] (col-major, symmetrized),
 * each Hess q_n by central differences of the exact gradients:
 *   Hess q_n e_i ~ (grad q_n(theta~ + h e_i) - grad q_n(theta~ - h e_i)) / (2h).
 */
static int lagrangian_hessian(an_ctx *c, const double *tt, const double *lambda, double h,
                              double *H, int *crossed, mf_err *e) {
    const size_t P = c->P;
    const int N = c->N, Hn = mf_model_n_hidden(c->m);
    const size_t npre = (size_t)N * (size_t)Hn;
    double *tp = mf__malloc(sizeof(double) * P);
    double *Jp = mf__malloc(sizeof(double) * (size_t)N * P);
    double *Jm = mf__malloc(sizeof(double) * (size_t)N * P);
    double *z0 = mf__malloc(sizeof(double) * (npre ? npre : 1));
    double *z1 = mf__malloc(sizeof(double) * (npre ? npre : 1));
    if (!tp || !Jp || !Jm || !z0 || !z1) {
        mf__free(tp);
        mf__free(Jp);
        mf__free(Jm);
        mf__free(z0);
        mf__free(z1);
        return mf__err(e, MF_ERR_NOMEM, "out of memory for the %zu x %zu Hessian", P, P);
    }
    *crossed = 0;
    int prc = npre ? preact_scaled(c->m, tt, c->data, z0, NULL, NULL) : MF_OK;
    for (size_t i = 0; i < P && prc == MF_OK; i++) {
        memcpy(tp, tt, sizeof(double) * P);
        for (int sgn = 0; sgn < 2; sgn++) {
            tp[i] = sgn ? tt[i] - h : tt[i] + h;
            jacobian_with(c->m, c->data, c->w1, tp, NULL, sgn ? Jm : Jp, c->out1, c->dout1);
            /* the differences are only valid if no pre-activation of a sample with a
               multiplier changes sign within h (a kink crossed) */
            if (npre && (prc = preact_scaled(c->m, tp, c->data, z1, NULL, NULL)) == MF_OK)
                for (int n = 0; n < N; n++)
                    if (lambda[n] != 0.0)
                        for (int k = 0; k < Hn; k++) {
                            size_t t = (size_t)n * Hn + k;
                            if ((z0[t] > 0) != (z1[t] > 0)) *crossed = 1;
                        }
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
    mf__free(tp);
    mf__free(Jp);
    mf__free(Jm);
    mf__free(z0);
    mf__free(z1);
    if (prc) return mf__err(e, MF_ERR_NOMEM, "out of memory for the %zu x %zu Hessian", P, P);
    return MF_OK;
}

/* ====================================================================== */
/* C: the whole analysis                                                  */
/* ====================================================================== */

/* Outcome of the local tests, for the verdict. */
typedef struct an_local {
    int so_not_local;   /* second order certifies not local */
    int so_certified;   /* second-order sufficient condition holds */
    char so_note[200];
    int dir_not_local;
    int search_not_local;
    int search_explained; /* 1 + radius index of a gain within the KKT-defect bound */
} an_local;

/*
 * Second-order test at a smooth point. Critical cone ([VSS22] sec. 4):
 * C = {d : g_n.d = 0 (lambda_n > 0), g_n.d >= 0 (active, lambda_n = 0)}.
 * With S+ = {g_n.d = 0 for lambda_n > 0} ⊇ C ⊇ S0 = {g_n.d = 0 for all
 * active n}: H positive definite on S+ certifies a strict local minimum of
 * (P) (second-order sufficient condition); a direction of negative
 * curvature in S0 -- or in S+ that also satisfies the inequalities -- lies
 * in C and certifies not a local minimum (second-order necessary condition
 * fails). Fills a->min_eig, dir, gain, hessian_method.
 */
static int second_order(an_ctx *c, const double *tt, const double *J, const mf_analysis *ac,
                        const mf_analyze_settings *s, double *dir, double *min_eig, double gains[4],
                        an_local *L, mf_err *e) {
    const int N = c->N, P = (int)c->P;
    double lmax = 0.0;
    for (int n = 0; n < N; n++)
        if (ac->lambda[n] > lmax) lmax = ac->lambda[n];
    const double lam_tol = 1e-6 * (lmax > 1.0 ? lmax : 1.0);
    int rpos = 0, rall = 0, strict = 1;
    double *Gp = mf__malloc(sizeof(double) * (size_t)N * P + 1);
    double *Ga = mf__malloc(sizeof(double) * (size_t)N * P + 1);
    double *H = mf__malloc(sizeof(double) * (size_t)P * P);
    double *d2 = mf__malloc(sizeof(double) * (size_t)P);
    double *Z = NULL;
    int rc = MF_OK;
    if (!Gp || !Ga || !H || !d2) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
        goto done;
    }
    for (int n = 0; n < N; n++) {
        if (!ac->active[n]) continue;
        memcpy(Ga + (size_t)rall++ * P, J + (size_t)n * P, sizeof(double) * P);
        if (ac->lambda[n] > lam_tol)
            memcpy(Gp + (size_t)rpos++ * P, J + (size_t)n * P, sizeof(double) * P);
        else
            strict = 0;
    }
    int crossed = 0;
    rc = lagrangian_hessian(c, tt, ac->lambda, s->hess_h, H, &crossed, e);
    if (rc) goto done;
    if (crossed) {
        *min_eig = NAN;
        snprintf(L->so_note, sizeof L->so_note,
                 "second order not valid: a pre-activation changes sign within h = %.3g (near-kink), "
                 "the difference Hessian is unreliable",
                 s->hess_h);
        goto done;
    }
    int k = null_space(Gp, rpos, P, &Z);
    int er = k < 0 ? k : min_eig_on(H, Z, P, k, min_eig, dir);
    if (er == -1) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
        goto done;
    }
    if (er < 0) {
        rc = mf__err(e, MF_ERR_NUMERIC, "second-order test: LAPACK failed on the critical subspace");
        goto done;
    }
    if (k == 0) {
        L->so_certified = 1;
        snprintf(L->so_note, sizeof L->so_note,
                 "critical subspace is {0} (gradients of the %d positive-multiplier constraints span R^%d)",
                 rpos, P);
        *min_eig = NAN;
        goto done;
    }
    if (*min_eig > AN_EIG_TOL) {
        L->so_certified = 1;
        snprintf(L->so_note, sizeof L->so_note,
                 "H positive definite on the critical subspace (dim %d, min eigenvalue %.6g)%s", k,
                 *min_eig,
                 strict ? "" : "; it contains the critical cone (active constraints with zero "
                               "multiplier), so the sufficient condition holds");
    } else if (*min_eig < -AN_EIG_TOL) {
        int in_cone = 1;
        if (!strict) {
            /* is d (or -d) in the cone: g_n.d >= 0 for active n with lambda_n = 0? */
            int pos = 1, neg = 1;
            for (int n = 0; n < N; n++) {
                if (!ac->active[n] || ac->lambda[n] > lam_tol) continue;
                double gd = dot(J + (size_t)n * P, dir, (size_t)P);
                double gn = nrm2(J + (size_t)n * P, (size_t)P);
                if (gd < -1e-9 * gn) pos = 0;
                if (gd > 1e-9 * gn) neg = 0;
            }
            if (!pos && neg)
                for (int i = 0; i < P; i++) dir[i] = -dir[i];
            in_cone = pos || neg;
            if (!in_cone) {
                /* try the smaller subspace S0 of all active gradients */
                double lam0;
                mf__free(Z);
                Z = NULL;
                int k0 = null_space(Ga, rall, P, &Z);
                int e0 = k0 < 0 ? k0 : k0 == 0 ? 0 : min_eig_on(H, Z, P, k0, &lam0, d2);
                if (e0 == -1) {
                    rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the second-order test");
                    goto done;
                }
                if (k0 > 0 && e0 == 0 && lam0 < -AN_EIG_TOL) {
                    in_cone = 1;
                    *min_eig = lam0;
                    memcpy(dir, d2, sizeof(double) * P);
                }
            }
        }
        if (in_cone) {
            L->so_not_local = 1;
            snprintf(L->so_note, sizeof L->so_note,
                     "second-order certificate: d'Hd = %.6g < 0 for a unit d in the critical cone", *min_eig);
        } else {
            snprintf(L->so_note, sizeof L->so_note,
                     "H has eigenvalue %.6g on the equality relaxation of the critical cone, but its "
                     "direction leaves the cone: inconclusive",
                     *min_eig);
        }
    } else {
        snprintf(L->so_note, sizeof L->so_note,
                 "H is only positive semidefinite on the critical subspace (min eigenvalue %.3g): "
                 "second order inconclusive",
                 *min_eig);
    }
    if (*min_eig < -AN_EIG_TOL) {
        rc = margin_gains(c, tt, dir, gains, e);
        if (rc) goto done;
    }
done:
    mf__free(Gp);
    mf__free(Ga);
    mf__free(H);
    mf__free(d2);
    mf__free(Z);
    return rc;
}

/* Non-fatal failure of an optional step: note it and go on. */
static int soft_fail(int rc, const mf_err *se, char *note, size_t cap, const char *what) {
    if (rc == MF_ERR_NOMEM) return rc;
    say(note, cap, " %s not run (%s: %s).", what, mf_strerror(rc), se->msg);
    return MF_OK;
}

/*
 * mf_analyze -- contract in marginflow.h; the steps are in the file comment.
 * All of the analysis is at theta~ except Lyu & Li's certificate, which uses
 * the loss gradient at the given theta (only its direction matters).
 */
int mf_analyze(const mf_model *m, const mf_data *data, const double *theta, mf_loss_kind loss,
               const mf_analyze_settings *s, mf_analysis **out, mf_err *e) {
    if (out) *out = NULL;
    if (!out) return mf__err(e, MF_ERR_INVALID, "mf_analyze: out must not be NULL");
    mf_analyze_settings defs;
    if (!s) {
        mf_analyze_settings_default(&defs);
        s = &defs;
    }
    const char *bad = mf_analyze_settings_validate(s);
    if (bad) return mf__err(e, MF_ERR_INVALID, "analysis settings: %s", bad);
    int rc = check_inputs(m, data, theta, e);
    if (rc) return rc;
    if (s->layer >= m->n_layers)
        return mf__err(e, MF_ERR_INVALID, "layer %d does not exist: %s has layers 0..%d", s->layer,
                       m->spec, m->n_layers - 1);
    if (s->layer >= 0 && (!m->homogeneous || !layer_is_linear(m, s->layer)))
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "per-layer problem P_%d (%s) is supported only where the margins are linear in "
                       "the layer: every layer of linear, fc-linear and diag nets, and the output layer of "
                       "relu2 (without fix-outer) and mlp",
                       s->layer, m->layers[s->layer].name);

    const int N = data->n, L = m->degree, H = mf_model_n_hidden(m);
    const size_t P = m->n_params;
    an_ctx c;
    mf_analysis *a = NULL;
    double *q = NULL, *J = NULL, *pre = NULL, *scl = NULL, *cols = NULL, *coef = NULL, *g = NULL;
    int *kink = NULL, *owner = NULL;
    char note[512] = "";
    an_local loc;
    memset(&loc, 0, sizeof loc);
    rc = ctx_init(&c, m, data, e);
    if (rc) goto fail;
    a = mf__calloc(1, sizeof *a);
    q = mf__malloc(sizeof(double) * (size_t)N);
    J = mf__malloc(sizeof(double) * (size_t)N * P);
    if (!a || !q || !J) goto nomem;
    a->gamma_polished = NAN;
    a->n = N;
    a->n_params = (int)P;
    a->degree = L;
    a->homogeneous = m->homogeneous;
    a->layer = s->layer;
    a->layer_opt = a->layer_value = NAN;
    a->gamma_star = a->ratio = NAN;
    a->eps = a->delta = a->euler_lhs = a->euler_rhs = NAN;
    a->ll_beta = a->ll_eps = a->ll_delta = NAN;
    a->min_eig = NAN;
    for (int k = 0; k < 4; k++) a->gain[k] = NAN;
    a->theta_tilde = mf__malloc(sizeof(double) * P);
    a->lambda = mf__calloc((size_t)N, sizeof(double));
    a->active = mf__calloc((size_t)N, sizeof(int));
    if (!a->theta_tilde || !a->lambda || !a->active) goto nomem;

    /* ---- margins at theta. Trained parameters can have outputs near the
     * overflow threshold (||theta||^L ~ 1e300 and beyond), so a homogeneous
     * model is evaluated at theta^ = theta / ||theta|| (gamma = q_min(theta^)
     * exactly), and q_min = gamma ||theta||^L is only reported. */
    a->norm = norm_robust(theta, P);
    {
        double prod = 1.0;
        if (m->homogeneous && a->norm > 0 && isfinite(a->norm)) {
            for (size_t i = 0; i < P; i++) a->theta_tilde[i] = theta[i] / a->norm; /* theta^ */
            jacobian_with(m, data, c.w1, a->theta_tilde, q, NULL, c.out1, c.dout1);
            a->gamma = INFINITY;
            for (int n = 0; n < N; n++)
                if (q[n] < a->gamma) a->gamma = q[n];
            a->q_min = a->gamma * pow(a->norm, L);
            for (int l = 0; l < m->n_layers; l++) prod *= mf_layer_norm(m, a->theta_tilde, l);
            a->layer_margin = a->gamma / prod * pow(a->norm, L - m->n_layers);
        } else {
            jacobian_with(m, data, c.w1, theta, q, NULL, c.out1, c.dout1);
            a->q_min = INFINITY;
            for (int n = 0; n < N; n++)
                if (q[n] < a->q_min) a->q_min = q[n];
            a->gamma = a->q_min / pow(a->norm, L);
            for (int l = 0; l < m->n_layers; l++) prod *= mf_layer_norm(m, theta, l);
            a->layer_margin = a->q_min / prod;
        }
    }

    if (!m->homogeneous) {
        memcpy(a->theta_tilde, theta, sizeof(double) * P);
        a->verdict = MF_VERDICT_NON_HOMOGENEOUS;
        snprintf(a->verdict_reason, sizeof a->verdict_reason,
                 "%s is not homogeneous (Phi(c theta) != c^L Phi(theta)): problem (P) and its KKT "
                 "theory [LL20] do not apply; reported: gamma = q_min / ||theta||^%d = %.10g only",
                 m->spec, L, a->gamma);
        goto finish;
    }
    if (!(a->gamma > 0) || !(a->norm > 0) || !isfinite(a->norm)) {
        memcpy(a->theta_tilde, theta, sizeof(double) * P);
        a->verdict = MF_VERDICT_NOT_KKT;
        snprintf(a->verdict_reason, sizeof a->verdict_reason,
                 "not separating: q_min = %.6g <= 0 (||theta|| = %.6g), so theta has no feasible "
                 "rescaling for (P)",
                 a->q_min, a->norm);
        goto finish;
    }

    /* ---- 1. theta~ = theta / q_min^{1/L} = theta^ / gamma^{1/L}; margins,
     * gradients and kinks there */
    const double sc = pow(a->gamma, -1.0 / L);
    for (size_t i = 0; i < P; i++) a->theta_tilde[i] *= sc;
    const double *tt = a->theta_tilde;
    const double ntt = nrm2(tt, P);
    jacobian_with(m, data, c.w1, tt, q, J, c.out1, c.dout1);
    for (int n = 0; n < N; n++) {
        a->active[n] = q[n] <= 1.0 + s->act_tol;
        a->n_active += a->active[n];
    }
    kink = mf__calloc((size_t)N * (H ? H : 1), sizeof(int));
    if (!kink) goto nomem;
    if (H) {
        pre = mf__malloc(sizeof(double) * (size_t)N * H);
        scl = mf__malloc(sizeof(double) * (size_t)N * H);
        if (!pre || !scl) goto nomem;
        rc = preact_scaled(m, tt, data, pre, scl, e);
        if (rc) goto fail;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < H; k++) {
                size_t t = (size_t)n * H + k;
                kink[t] = a->active[n] && fabs(pre[t]) <= s->zero_tol * scl[t];
                a->n_kinks += kink[t];
            }
    }

    /* ---- 2. KKT by NNLS over the extreme rays of the Clarke subdifferentials */
    {
        int fixed = 0;
        int ncol = kkt_columns(&c, tt, J, a->active, kink, &cols, &owner, &fixed);
        if (ncol < 0) goto nomem;
        coef = mf__calloc((size_t)(ncol ? ncol : 1), sizeof(double));
        g = mf__malloc(sizeof(double) * P);
        if (!coef || !g) goto nomem;
        if (ncol > 0) {
            rc = nnls((int)P, ncol, cols, tt, coef, e);
            if (rc) goto fail;
        }
        for (int j = 0; j < ncol; j++) a->lambda[owner[j]] += coef[j];
        memcpy(g, tt, sizeof(double) * P); /* residual theta~ - sum lambda h */
        for (int j = 0; j < ncol; j++)
            if (coef[j] != 0.0)
                for (size_t i = 0; i < P; i++) g[i] -= coef[j] * cols[(size_t)j * P + i];
        a->eps = nrm2(g, P) / ntt;
        /* NNLS verification: its own optimality conditions (A^T r <= 0, = 0 on support) */
        double viol = 0.0, cmax = 0.0;
        for (int j = 0; j < ncol; j++) {
            double cn = nrm2(cols + (size_t)j * P, P), wj = dot(cols + (size_t)j * P, g, P);
            if (cn > cmax) cmax = cn;
            double v = coef[j] > 0 ? fabs(wj) : (wj > 0 ? wj : 0.0);
            if (v > viol) viol = v;
        }
        if (cmax > 0 && viol / (cmax * ntt) > 1e-8)
            say(note, sizeof note, " NNLS optimality residual %.3g (relative).", viol / (cmax * ntt));
        if (fixed)
            say(note, sizeof note,
                " Too many kinks for the exact Clarke treatment: sigma'(0) = alpha used for some samples.");
        if (m->kind == MF_MODEL_MLP && a->n_kinks > 0)
            say(note, sizeof note,
                " mlp kinks use the library's sigma'(0) = alpha (Clarke coefficients not freed at depth > 2).");
        a->delta = 0.0;
        double lsum = 0.0;
        for (int n = 0; n < N; n++) {
            lsum += a->lambda[n];
            double dn = a->lambda[n] * (q[n] - 1.0);
            if (dn > a->delta) a->delta = dn;
        }
        a->euler_lhs = ntt * ntt;
        a->euler_rhs = L * lsum;
    }

    /* ---- 3. Lyu & Li's certificate: lambda proportional to the loss weights */
    {
        double log_loss;
        double *gout = mf__malloc(sizeof(double) * (size_t)N * m->n_out);
        double *wts = mf__malloc(sizeof(double) * (size_t)N);
        if (!gout || !wts) {
            mf__free(gout);
            mf__free(wts);
            goto nomem;
        }
        /* Outputs at theta = ||theta||^L * outputs at theta^ = tt / ||tt||; when that
         * product would overflow, the factor is capped at 1e300 / max|out^|:
         * the loss weights exp(-(q_n - q_min)) then differ only for margin gaps
         * below ~1e-290 of the scale (they are 0 either way). The gradient
         * direction is that of the backward pass at theta^ with those weights. */
        double *th = mf__malloc(sizeof(double) * P);
        if (!th) {
            mf__free(gout);
            mf__free(wts);
            goto nomem;
        }
        for (size_t i = 0; i < P; i++) th[i] = tt[i] / ntt;
        mf_model_forward(m, c.wN, th, data->x, N, c.outN);
        double omax = 0.0;
        const size_t no = (size_t)N * m->n_out;
        for (size_t i = 0; i < no; i++)
            if (fabs(c.outN[i]) > omax) omax = fabs(c.outN[i]);
        if (omax > 0) { /* out_i <- (out_i / omax) * min(omax ||theta||^L, 1e300), in logs */
            double target = exp(fmin(log(omax) + L * log(a->norm), log(1e300)));
            for (size_t i = 0; i < no; i++) c.outN[i] = c.outN[i] / omax * target;
        }
        int lr = mf_loss_eval(loss, data, NULL, N, c.outN, m->n_out, &log_loss, gout, wts);
        if (lr == MF_OK) {
            mf_model_forward(m, c.wN, th, data->x, N, c.outN); /* restore the activations */
            mf_model_backward(m, c.wN, th, data->x, N, gout, g); /* direction of grad Loss */
            double ng = nrm2(g, P), d2 = 0.0, wsum = 0.0;
            for (size_t i = 0; i < P; i++) {
                double t = th[i] + g[i] / ng; /* theta^ - (-grad)^ */
                d2 += t * t;
            }
            a->ll_beta = -dot(th, g, P) / ng;
            a->ll_eps = ntt * sqrt(d2); /* = ||theta~|| sqrt(2 (1 - beta)), stable */
            for (int n = 0; n < N; n++) wsum += wts[n];
            double cst = ntt * ntt / (L * wsum), dl = 0.0;
            for (int n = 0; n < N; n++) {
                double dn = cst * wts[n] * (q[n] - 1.0);
                if (dn > dl) dl = dn;
            }
            a->ll_delta = dl;
            if (!(ng > 0)) a->ll_beta = a->ll_eps = a->ll_delta = NAN;
        } else {
            say(note, sizeof note, " Lyu-Li certificate not computed (non-finite loss).");
        }
        mf__free(th);
        mf__free(gout);
        mf__free(wts);
    }

    /* ---- 4. global reference */
    rc = global_reference(m, data, a, note, sizeof note, e);
    if (rc) goto fail;

    /* ---- per-layer problem P_l */
    if (s->layer >= 0) {
        rc = layer_problem(&c, tt, s->layer, a, e);
        if (rc) goto fail;
        double rel = a->layer_value / a->layer_opt - 1.0;
        if (fabs(rel) <= s->global_tol) {
            a->verdict = MF_VERDICT_GLOBAL;
            snprintf(a->verdict_reason, sizeof a->verdict_reason,
                     "per-layer problem P_%d (%s, other layers frozen) is a convex QP solved exactly "
                     "(hard-margin SVM in the layer features): 1/2||W~||^2 = %.10g vs optimum %.10g "
                     "(relative %.2g <= %.2g): layer %d is optimal for P_%d.",
                     s->layer, m->layers[s->layer].name, a->layer_value, a->layer_opt, rel,
                     s->global_tol, s->layer, s->layer);
        } else {
            a->verdict = MF_VERDICT_NOT_LOCAL;
            snprintf(a->verdict_reason, sizeof a->verdict_reason,
                     "per-layer problem P_%d (%s, other layers frozen) is a convex QP solved exactly: "
                     "1/2||W~||^2 = %.10g exceeds the optimum %.10g by %.3g (relative); in a convex "
                     "problem the better point certifies that layer %d is not even locally optimal.",
                     s->layer, m->layers[s->layer].name, a->layer_value, a->layer_opt, rel, s->layer);
        }
        say(a->verdict_reason, sizeof a->verdict_reason,
            " (Whole network: eps = %.3g, %s.)", a->eps, a->eps <= s->kkt_tol ? "KKT" : "not KKT");
        say(a->verdict_reason, sizeof a->verdict_reason, "%s", note);
        goto finish;
    }

    /* ---- verdict: not KKT? */
    if (!(a->eps <= s->kkt_tol)) {
        a->verdict = MF_VERDICT_NOT_KKT;
        snprintf(a->verdict_reason, sizeof a->verdict_reason,
                 "not a KKT direction yet: eps = %.3g > kkt_tol = %.3g (q_min = %.6g, ||theta|| = %.6g, "
                 "gamma = %.6g",
                 a->eps, s->kkt_tol, a->q_min, a->norm, a->gamma);
        if (a->has_global) say(a->verdict_reason, sizeof a->verdict_reason, ", %.6g of gamma*", a->ratio);
        say(a->verdict_reason, sizeof a->verdict_reason, ").%s", note);
        goto finish;
    }

    if (a->has_global && fabs(a->ratio - 1.0) <= s->global_tol) {
        a->verdict = MF_VERDICT_GLOBAL;
        snprintf(a->verdict_reason, sizeof a->verdict_reason,
                 "KKT (eps = %.3g) and gamma = %.10g equals the closed-form optimum gamma* = %.10g "
                 "(%s) to %.2g (tolerance %.2g): certified global.",
                 a->eps, a->gamma, a->gamma_star, a->global_source, fabs(a->ratio - 1.0), s->global_tol);
        say(a->verdict_reason, sizeof a->verdict_reason, "%s", note);
        goto finish;
    }

    /* ---- 5. second order at smooth points */
    if (a->n_kinks == 0) {
        if (P <= AN_MAX_HESS_PARAMS) {
            a->dir = mf__calloc(P, sizeof(double));
            if (!a->dir) goto nomem;
            snprintf(a->hessian_method, sizeof a->hessian_method,
                     "central differences of exact gradients, h = %.3g", s->hess_h);
            rc = second_order(&c, tt, J, a, s, a->dir, &a->min_eig, a->gain, &loc, e);
            if (rc) goto fail;
            a->second_order_done = 1;
        } else {
            say(note, sizeof note, " Second-order test skipped (%zu parameters > %d).", P,
                AN_MAX_HESS_PARAMS);
        }
    } else {
        /* ---- 6. kinks: the directional first-order test (local.c) */
        mf_err se;
        se.code = 0;
        se.msg[0] = '\0';
        rc = mf_directional_test(m, data, tt, s->act_tol, s->zero_tol, s->max_patterns,
                                 &a->directional, &se);
        if (rc) {
            a->directional = NULL;
            rc = soft_fail(rc, &se, note, sizeof note, "Directional test");
            if (rc) goto nomem;
        } else if (a->directional->found && a->directional->best_inner < 0) {
            loc.dir_not_local = 1;
        }
    }

    /* ---- 7. local constrained re-solves (evidence, or a certificate if they gain) */
    if (!loc.so_not_local && !loc.dir_not_local && s->local_trials > 0) {
        mf_err se;
        se.code = 0;
        se.msg[0] = '\0';
        rc = mf_local_search(m, data, tt, an_radii, 4, s->local_trials, s->seed, &a->local, &se);
        if (rc) {
            a->local = NULL;
            rc = soft_fail(rc, &se, note, sizeof note, "Local search");
            if (rc) goto nomem;
        } else {
            /* A gain certifies only beyond what the trained point's distance from
             * its limit explains. Reference: the KKT point SLSQP reaches from
             * theta~ itself (a re-solve started at radius 1e-14, "polished", and
             * accepted when it stays within relative distance 1e-2);
             * gains are measured against the better of it and theta~. If the
             * polish fails, fall back to a first-order bound: at an
             * (eps, delta)-KKT point the relative gain over a move of relative
             * size s can reach ~ 2 L (eps + delta / sum lambda) s (our bounds; at
             * exact points both reduce to AN_GAIN_CERT). s is the larger of the
             * radius and the distance of the best point found from theta~, since
             * SLSQP re-solves can end far from where they started. */
            const mf_local_result *lr = a->local;
            static const double polish_radius[1] = {1e-14};
            mf_local_result *pol = NULL;
            a->gamma_polished = NAN;
            int prc = mf_local_search(m, data, tt, polish_radius, 1, 1, s->seed, &pol, NULL);
            if (prc == MF_OK) {
                /* only a polish that stays near theta~ (relative distance <= 1e-2)
                 * is a reference; one that wanders off found a better point,
                 * which the gains below then count */
                double pd = 0.0, pn = 0.0;
                for (size_t i = 0; i < (size_t)a->n_params; i++) {
                    double di = pol->best_theta[i] - a->theta_tilde[i];
                    pd += di * di;
                    pn += a->theta_tilde[i] * a->theta_tilde[i];
                }
                if (pn > 0 && sqrt(pd / pn) <= 1e-2) a->gamma_polished = pol->best_gamma[0];
            }
            mf_local_result_free(pol);
            if (prc == MF_ERR_NOMEM) goto nomem;
            double ref = lr->gamma0;
            if (a->gamma_polished > ref) ref = a->gamma_polished;
            double sum_lambda = a->euler_lhs > 0 ? a->euler_lhs / L : 0.0;
            double defect = isnan(a->gamma_polished)
                                ? a->eps + (sum_lambda > 0 ? a->delta / sum_lambda : 0.0)
                                : 0.0;
            double dist = 0.0, tt2 = 0.0;
            for (size_t i = 0; i < (size_t)a->n_params; i++) {
                double di = lr->best_theta[i] - a->theta_tilde[i];
                dist += di * di;
                tt2 += a->theta_tilde[i] * a->theta_tilde[i];
            }
            dist = tt2 > 0 ? sqrt(dist / tt2) : 0.0;
            for (int k = 0; k < lr->n_radii && k < 8; k++) {
                double gk = lr->best_gamma[k] / ref - 1.0;
                double s = lr->radii[k] > dist ? lr->radii[k] : dist;
                double thr = AN_GAIN_CERT + 2.0 * L * defect * s;
                if (gk > thr) loc.search_not_local = 1;
                else if (gk > AN_GAIN_CERT && !loc.search_explained) loc.search_explained = k + 1;
            }
        }
    }

    /* ---- 8. verdict */
    {
        char *vr = a->verdict_reason;
        const size_t cap = sizeof a->verdict_reason;
        vr[0] = '\0';
        if (loc.so_not_local) {
            a->verdict = MF_VERDICT_NOT_LOCAL;
            say(vr, cap, "KKT (eps = %.3g) but %s; margin gain along it %.3g at eps = 1e-3.", a->eps,
                loc.so_note, a->gain[2]);
        } else if (loc.dir_not_local) {
            a->verdict = MF_VERDICT_NOT_LOCAL;
            say(vr, cap,
                "KKT (eps = %.3g) at a non-smooth point (%d kinks); directional certificate: d keeps "
                "q_n'(theta; d) >= 0 on the active set with <theta~, d> = %.6g < 0 (margin gain %.3g "
                "at eps = 1e-3).",
                a->eps, a->n_kinks, a->directional->best_inner, a->directional->gain[2]);
        } else if (loc.search_not_local) {
            a->verdict = MF_VERDICT_NOT_LOCAL;
            say(vr, cap,
                "KKT (eps = %.3g) but the local re-solve found a point with normalized margin %.3g "
                "higher (relative, beyond the 2 L eps r the KKT residual allows; certificate: the "
                "point is in the result).",
                a->eps, a->local->best_gain);
        } else if (loc.so_certified && a->n_kinks == 0) {
            a->verdict = MF_VERDICT_LOCAL_CERTIFIED;
            say(vr, cap, "KKT (eps = %.3g) at a smooth point and %s: strict local optimum of (P).",
                a->eps, loc.so_note);
            if (a->local)
                say(vr, cap, " (SLSQP re-solves at radii 1e-1..1e-4, %d starts each: best gain %.2g.)",
                    a->local->trials, a->local->best_gain);
        } else {
            a->verdict = MF_VERDICT_LOCAL_EVIDENCE;
            say(vr, cap, "KKT (eps = %.3g); no improvement found", a->eps);
            if (a->local)
                say(vr, cap, " by SLSQP re-solves at radii 1e-1..1e-4 with %d starts each (best gain %.2g%s)",
                    a->local->trials, a->local->best_gain,
                    loc.search_explained ? ", explained by the run's distance from its limit" : "");
            if (a->directional)
                say(vr, cap, ", directional test over %d patterns found no descent direction",
                    a->directional->n_patterns);
            if (loc.so_note[0]) say(vr, cap, "; %s", loc.so_note);
            say(vr, cap, ": evidence, not proof.");
        }
        if (a->has_global)
            say(vr, cap, " gamma / gamma* = %.6g (%s).", a->ratio, a->global_source);
        say(vr, cap, "%s", note);
    }

finish:
    *out = a;
    a = NULL;
    rc = MF_OK;
    goto cleanup;
nomem:
    rc = mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
fail:
    mf_analysis_free(a);
cleanup:
    ctx_free(&c);
    mf__free(q);
    mf__free(J);
    mf__free(pre);
    mf__free(scl);
    mf__free(cols);
    mf__free(coef);
    mf__free(g);
    mf__free(kink);
    mf__free(owner);
    return rc;
}

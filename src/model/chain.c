/*
 * chain.c -- the dense "chain" models: linear, fc-linear and mlp.
 *
 *   linear      Phi = W x,                      W [n_out][d];            L = 1
 *   fc-linear   Phi = W_K ... W_2 W_1 x,        W_1 [M][d], W_l [M][M],
 *                                               W_K [n_out][M];          L = K
 *   mlp         Phi = W_{K+1} sigma(W_K ... sigma(W_1 x)),               L = K + 1
 *
 * All three run through one chain of dense layers Z_l = H_l W_l^T,
 * H_{l+1} = act(Z_l), evaluated on the whole batch with cblas_dgemm (plain
 * loops for degenerate sizes, see MF__SMALL_GEMM in dense.h). They are
 * homogeneous ([LL20]); linear and fc-linear have the hard-margin SVM as
 * their global optimum (docs/theory.md s.3), mlp has no closed form.
 *
 * Activation (mlp): sigma(z) = z for z > 0, alpha z otherwise; the derivative
 * used at z == 0 is alpha (the Clarke interval is [alpha, 1]; marginflow.h).
 * Only sigma(z) is stored: since alpha >= 0, sigma(z) > 0 iff z > 0, so
 * sigma'(z) = (sigma(z) > 0 ? 1 : alpha).
 */
#include "model_internal.h"

#include "dense.h"

#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

/* ------------------------------------------------------------ workspace */

typedef struct chain_work {
    int n_dense;
    mf__dense dense[MF_MAX_LAYERS];
    double *h[MF_MAX_LAYERS]; /* h[l] = act(Z_l), [max_batch][dense[l].r], l < n_dense-1 */
    double *g0, *g1;          /* backward ping-pong, [max_batch][max hidden width] */
    size_t maxw;              /* max hidden width */
} chain_work;

/* One dense layer per parameter group; act: sigma after every layer but the
 * last (mlp) or never (linear, fc-linear). Sizes: one activation buffer
 * [B][r_l] per hidden layer and two backward buffers [B][max r_l]. */
static int chain_plan(const mf_model *m, chain_work *w, size_t B, size_t *doubles, int act) {
    const size_t lim = MF__WORK_LIM;
    size_t total = 0, maxw = 0;
    w->n_dense = 0;
    for (int l = 0; l < m->n_layers; l++) {
        mf__dense *D = &w->dense[w->n_dense++];
        D->off = m->layers[l].offset;
        D->r = m->layers[l].rows;
        D->c = m->layers[l].cols;
        D->act = act && l < m->n_layers - 1;
    }
    for (int l = 0; l + 1 < w->n_dense; l++) {
        size_t r = (size_t)w->dense[l].r;
        if (r > lim / B) return -1;
        total += B * r;
        if (r > maxw) maxw = r;
    }
    if (maxw && maxw > lim / B) return -1;
    total += 2 * B * maxw;
    w->maxw = maxw;
    *doubles = total;
    return 0;
}

static int linear_plan(const mf_model *m, void *st, size_t B, size_t *doubles) {
    return chain_plan(m, st, B, doubles, 0);
}

static int mlp_plan(const mf_model *m, void *st, size_t B, size_t *doubles) {
    return chain_plan(m, st, B, doubles, 1);
}

static void chain_bind(const mf_model *m, void *st, double *p, size_t B) {
    chain_work *w = st;
    (void)m;
    for (int l = 0; l + 1 < w->n_dense; l++) {
        w->h[l] = p;
        p += B * (size_t)w->dense[l].r;
    }
    if (w->maxw) {
        w->g0 = p;
        p += B * w->maxw;
        w->g1 = p;
    }
}

/* ---------------------------------------------------- forward, backward */

/*
 * Dense chain forward. With H_0 = x [n][d]:
 *   Z_l = H_l W_l^T            Z_l [n][r_l], W_l [r_l][c_l]
 *   H_{l+1} = act_l(Z_l)       sigma or identity, stored in w->h[l]
 * and the last Z is the output [n][n_out].
 */
static void chain_forward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                          double *out) {
    chain_work *w = st;
    const int L = w->n_dense, d = m->d;
    const double alpha = m->alpha;
    const double *in = x;
    int ldin = d;
    for (int l = 0; l < L; l++) {
        const mf__dense *D = &w->dense[l];
        const double *W = theta + D->off;
        double *Z = (l == L - 1) ? out : w->h[l];
        int k = (l == 0) ? d : D->c; /* inputs actually multiplied */
        if (D->r == 1 && (double)n * k > MF__SMALL_GEMM)        /* Z [n] = in [n][k] w, w = W[0][:k] */
            cblas_dgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0, in, ldin, W, 1, 0.0, Z, 1);
        else
            mm_nt(n, D->r, k, in, ldin, W, D->c, Z, D->r);      /* Z [n][r] = in [n][k] W[:, :k]^T */
        if (D->act) {                                           /* H = sigma(Z), in place */
            size_t cnt = (size_t)n * D->r;
            for (size_t t = 0; t < cnt; t++) Z[t] = Z[t] > 0.0 ? Z[t] : alpha * Z[t];
        }
        in = Z;
        ldin = D->r;
    }
}

/*
 * Dense chain backward: given G_L = dout [n][r_{L-1}] = dPhi-sum / dZ_{L-1},
 * for l = L-1 .. 0:
 *   Z_l = H_l W_l^T          =>  dW_l = G_l^T H_l              [r_l][c_l]
 *                                dH_l = G_l W_l                [n][c_l]
 *   H_l = act_{l-1}(Z_{l-1}) =>  G_{l-1} = dH_l o act'(Z_{l-1})  (o: elementwise)
 * with act' recovered from the stored H_l: sigma' = (H > 0 ? 1 : alpha).
 */
static void chain_backward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                           const double *dout, double *grad) {
    chain_work *w = st;
    const int L = w->n_dense, d = m->d;
    const double alpha = m->alpha;
    const double *G = dout;
    double *bufs[2] = {w->g0, w->g1};
    for (int l = L - 1; l >= 0; l--) {
        const mf__dense *D = &w->dense[l];
        const double *W = theta + D->off;
        const double *Hin = (l == 0) ? x : w->h[l - 1];
        const int ldh = (l == 0) ? d : D->c, k = (l == 0) ? d : D->c;
        double *gW = grad + D->off;
        if (D->r == 1 && (double)n * k > MF__SMALL_GEMM)        /* dw [k] = H_l^T g, g = G [n] */
            cblas_dgemv(CblasRowMajor, CblasTrans, n, k, 1.0, Hin, ldh, G, 1, 0.0, gW, 1);
        else
            mm_tn(D->r, k, n, G, D->r, Hin, ldh, gW, D->c);     /* dW[:, :k] = G^T H_l */
        if (l == 0) break;
        double *Gn = bufs[l % 2];
        const double *H = w->h[l - 1];
        const int c = D->c;
        if (D->r == 1 && w->dense[l - 1].act) {
            /* one output row: dH_l = g w^T is an outer product; fused with the
             * mask, G_{l-1}[i][t] = sigma'(Z_{l-1}[i][t]) g_i w_t (one pass) */
            for (int i = 0; i < n; i++) {
                const double gi = G[i], *hr = H + (size_t)i * c;
                double *gr = Gn + (size_t)i * c;
                for (int t = 0; t < c; t++) {
                    double v = gi * W[t];
                    gr[t] = hr[t] > 0.0 ? v : alpha * v;
                }
            }
        } else {
            mm_nn(n, c, D->r, G, D->r, W, c, Gn, c);            /* dH_l [n][c] = G W */
            if (w->dense[l - 1].act) {                         /* G_{l-1} = dH_l o sigma'(Z_{l-1}) */
                size_t cnt = (size_t)n * c;
                for (size_t t = 0; t < cnt; t++) Gn[t] = H[t] > 0.0 ? Gn[t] : alpha * Gn[t];
            }
        }
        G = Gn;
    }
}

/* --------------------------------------------------------------- layouts */

static void linear_layout(mf_model *m) {
    mf__model_add_layer(m, "W", m->n_out, m->d);
    m->degree = 1;
    m->depth = 1;
    m->homogeneous = 1;
    snprintf(m->spec, sizeof m->spec, "linear");
}

static void fc_linear_defaults(mf_model *m) { m->width = m->d; }

static void fc_linear_layout(mf_model *m) {
    char name[16];
    for (int l = 1; l <= m->depth; l++) {
        snprintf(name, sizeof name, "W%d", l);
        mf__model_add_layer(m, name, l == m->depth ? m->n_out : m->width, l == 1 ? m->d : m->width);
    }
    m->degree = m->depth;
    m->homogeneous = 1;
    snprintf(m->spec, sizeof m->spec, "fc-linear:depth=%d,width=%d", m->depth, m->width);
}

static void mlp_defaults(mf_model *m) { m->depth = 0; }

static int mlp_check(const mf_model *m, const char *spec, mf_err *e) {
    if (m->depth == 0)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": mlp needs widths=M1/M2/... (valid options: %s)",
                       spec, mf__ops_mlp.options_help);
    return MF_OK;
}

/* W1 [M1][d], W_l [M_l][M_{l-1}], W_{K+1} [n_out][M_K]; width = max M_l. */
static void mlp_layout(mf_model *m) {
    char name[16], a[40];
    int prev = m->d;
    size_t len;
    mf__model_fmt_double(a, sizeof a, m->alpha);
    m->width = 0;
    for (int l = 0; l < m->depth; l++) {
        snprintf(name, sizeof name, "W%d", l + 1);
        mf__model_add_layer(m, name, m->widths[l], prev);
        prev = m->widths[l];
        if (prev > m->width) m->width = prev;
    }
    snprintf(name, sizeof name, "W%d", m->depth + 1);
    mf__model_add_layer(m, name, m->n_out, prev);
    m->degree = m->depth + 1;
    m->homogeneous = 1;
    len = (size_t)snprintf(m->spec, sizeof m->spec, "mlp:widths=");
    for (int l = 0; l < m->depth && len < sizeof m->spec; l++)
        len += (size_t)snprintf(m->spec + len, sizeof m->spec - len, "%s%d", l ? "/" : "",
                                m->widths[l]);
    if (len < sizeof m->spec)
        snprintf(m->spec + len, sizeof m->spec - len, ",alpha=%s", a);
}

/* ------------------------------------------------- structure for analysis */

static int mlp_n_hidden(const mf_model *m) {
    int h = 0;
    for (int l = 0; l < m->depth; l++) h += m->widths[l];
    return h;
}

/*
 * mlp pre-activations z^l = W_l h^{l-1} (h^0 = x, h^l = sigma(z^l)) of the
 * hidden layers l = 1..K, unit order layer by layer; scale = ||row of W_l||
 * ||h^{l-1}||. pre, scale [n][H] (either may be NULL).
 */
static int mlp_preact(const mf_model *m, const double *theta, const mf_data *data, double *pre,
                      double *scale, mf_err *e) {
    const int H = mlp_n_hidden(m), d = m->d;
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
            double hn = mf__norm2(h0, (size_t)prev);
            for (int k = 0; k < W->rows; k++) {
                const double *wk = theta + W->offset + (size_t)k * W->cols;
                double z = mf__dot(wk, h0, (size_t)prev);
                if (pre) pre[(size_t)n * H + unit + k] = z;
                if (scale) scale[(size_t)n * H + unit + k] = mf__norm2(wk, (size_t)prev) * hn;
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

/*
 * Clarke data of the mlp (src/kkt.c): the one-sample backward pass of
 * chain_backward, written out for n = 1,
 *   dW_l = g_l h_{l-1}^T,  g_{l-1} = (W_l^T g_l) o s_{l-1},
 * with the derivative s of hidden unit u (units in preact order, layer by
 * layer) taken as 1 / alpha for the listed units by the bits of pattern,
 * and from the stored activations (h > 0 ? 1 : alpha) for the others. This
 * is the gradient of the polynomial piece of the margin on the region of
 * that sign pattern. After chain_forward on the same (theta, x, 1).
 */
static void mlp_piece_grad(const mf_model *m, mf_work *wk, const double *theta, const double *x,
                           const double *dout, const int *units, int nu, unsigned pattern,
                           double *grad) {
    chain_work *w = wk->state;
    const int L = w->n_dense;
    const double alpha = m->alpha;
    int unit_off[MF_MAX_LAYERS + 1];
    unit_off[0] = 0;
    for (int l = 0; l + 1 < L; l++) unit_off[l + 1] = unit_off[l] + w->dense[l].r;
    double *bufs[2] = {w->g0, w->g1};
    const double *G = dout;
    for (int l = L - 1; l >= 0; l--) {
        const mf__dense *D = &w->dense[l];
        const double *W = theta + D->off;
        const double *Hin = l == 0 ? x : w->h[l - 1];
        const int k = l == 0 ? m->d : D->c;
        double *gW = grad + D->off;
        for (int i = 0; i < D->r; i++) /* dW_l [r][k] = g h^T */
            for (int t = 0; t < k; t++) gW[(size_t)i * D->c + t] = G[i] * Hin[t];
        if (l == 0) break;
        double *Gn = bufs[l % 2];
        const double *H = w->h[l - 1];
        for (int t = 0; t < D->c; t++) { /* g_{l-1} = (W^T g) o s */
            double v = 0.0;
            for (int i = 0; i < D->r; i++) v += W[(size_t)i * D->c + t] * G[i];
            double sl = H[t] > 0.0 ? 1.0 : alpha;
            const int u = unit_off[l - 1] + t;
            for (int q = 0; q < nu; q++)
                if (units[q] == u) sl = (pattern >> q) & 1u ? 1.0 : alpha;
            Gn[t] = v * sl;
        }
        G = Gn;
    }
}

/* The margins of linear and fc-linear nets are linear in every layer (the
 * others frozen), those of an mlp only in its output layer. */
static int all_layers_linear(const mf_model *m, int l) {
    (void)m;
    (void)l;
    return 1;
}

static int mlp_layer_is_linear(const mf_model *m, int l) { return l == m->n_layers - 1; }

/* docs/theory.md s.3: the optimum of (P) for a linear predictor is the hard-margin
 * SVM; a depth-K fully-connected linear net reaches gamma_svm * K^{-K/2}
 * (the end-to-end map w = W_K ... W_1 with balanced layers). */
static void linear_global_ref(const mf_model *m, const mf_data *data, mf__global_ref *r) {
    (void)m;
    (void)data;
    r->kind = MF__REF_SVM_L2;
    r->depth = 1;
    r->factor = 1.0;
    snprintf(r->source, sizeof r->source, "hard-margin SVM: gamma_svm");
}

static void fc_linear_global_ref(const mf_model *m, const mf_data *data, mf__global_ref *r) {
    const int k = m->depth;
    (void)data;
    r->kind = MF__REF_SVM_L2;
    r->depth = k;
    r->factor = pow((double)k, -k / 2.0);
    snprintf(r->source, sizeof r->source, "hard-margin SVM: gamma_svm * %d^{-%d/2}", k, k);
}

/* ----------------------------------------------------------------- tables */

static const mf__option fc_linear_options[] = {
    {"width", MF__OPT_INT, MF__MAX_DIM, offsetof(mf_model, width)},
    {"depth", MF__OPT_INT, MF_MAX_LAYERS, offsetof(mf_model, depth)},
    {NULL, MF__OPT_FLAG, 0, 0}};

static const mf__option mlp_options[] = {
    {"widths", MF__OPT_WIDTHS, MF__MAX_DIM, 0},
    {"alpha", MF__OPT_UNIT, 0, offsetof(mf_model, alpha)},
    {NULL, MF__OPT_FLAG, 0, 0}};

static const mf__option no_options[] = {{NULL, MF__OPT_FLAG, 0, 0}};

const mf__model_ops mf__ops_linear = {
    .kind = MF_MODEL_LINEAR,
    .name = "linear",
    .options_help = "none",
    .options = no_options,
    .multiclass = 1,
    .layout = linear_layout,
    .work_state = sizeof(chain_work),
    .work_plan = linear_plan,
    .work_bind = chain_bind,
    .forward = chain_forward,
    .backward = chain_backward,
    .layer_is_linear = all_layers_linear,
    .global_ref = linear_global_ref,
};

const mf__model_ops mf__ops_fc_linear = {
    .kind = MF_MODEL_FC_LINEAR,
    .name = "fc-linear",
    .options_help = "depth=K, width=M",
    .options = fc_linear_options,
    .multiclass = 1,
    .defaults = fc_linear_defaults,
    .layout = fc_linear_layout,
    .work_state = sizeof(chain_work),
    .work_plan = linear_plan,
    .work_bind = chain_bind,
    .forward = chain_forward,
    .backward = chain_backward,
    .layer_is_linear = all_layers_linear,
    .global_ref = fc_linear_global_ref,
};

const mf__model_ops mf__ops_mlp = {
    .kind = MF_MODEL_MLP,
    .name = "mlp",
    .options_help = "widths=M1/M2/... (or M1,M2,...), alpha=A",
    .options = mlp_options,
    .multiclass = 1,
    .defaults = mlp_defaults,
    .check = mlp_check,
    .layout = mlp_layout,
    .work_state = sizeof(chain_work),
    .work_plan = mlp_plan,
    .work_bind = chain_bind,
    .forward = chain_forward,
    .backward = chain_backward,
    .n_hidden = mlp_n_hidden,
    .preact = mlp_preact,
    .piece_grad = mlp_piece_grad,
    .layer_is_linear = mlp_layer_is_linear,
};

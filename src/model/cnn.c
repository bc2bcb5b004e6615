/*
 * cnn.c -- convolutional nets: the family MF_MODEL_CNN (spec grammar and
 * presets in marginflow.h at mf_model_parse; layers at mf_cnn_layer).
 *
 *   Phi(theta; x) = F_L o ... o F_1 (x),  F_l one of
 *     conv  c: Z[co][p] = sum_{ci, kh, kw} W[co][ci k k + kh k + kw] X[ci][p + (kh, kw) - pad]
 *              (+ b[co]), stride 1, SAME zero padding, then ReLU;
 *     pool  p: max over P x P windows, stride P;
 *     fc    f: Z = W h (+ b), then ReLU except at the output layer.
 * Without biases every F_l with weights is positively 1-homogeneous in its
 * weights and ReLU and max-pool are positively 1-homogeneous in their input,
 * so Phi(c theta) = c^L Phi(theta) with L = the number of weight layers
 * ([LL20] sec. 5: the MNIST and CIFAR-10 nets of their experiments); a bias
 * in the first layer keeps that (it scales with the weights of its layer), a
 * bias in a later layer breaks it (`,bias`: the non-homogeneous comparison).
 *
 * Kernels (llm.c style: plain loops and BLAS over flat arrays, shapes in the
 * comments). Inside the workspace, image tensors are kept "CBHW":
 * [channels][batch][height][width], so that one convolution over the whole
 * batch is ONE GEMM (im2col, Chellapilla, Puri & Simard 2006):
 *     cols [K][n*H*W], K = C_in k k       (im2col of the input)
 *     Z    [C_out][n*H*W] = W[:, :K] cols (cblas_dgemm NN)
 * and its backward two more:
 *     dW   [C_out][K]   = dZ cols^T       (NT)
 *     dcols [K][n*H*W]  = W^T dZ          (TN), then col2im adds dcols
 *                                          back into dX [C_in][n][H][W].
 * The input x [n][C][H][W] is transposed to CBHW once; the first fc layer
 * after a conv/pool transposes back to [n][C*H*W] (PyTorch's flatten order).
 * ReLU derivative at 0 is 0 (the library's sigma'(0) = alpha with alpha = 0);
 * a max-pool tie sends the gradient to the first maximal entry of the window
 * (row-major). Both are elements of the Clarke subdifferential; they are not
 * freed as Clarke coefficients by the analysis (kink_note).
 */
#include "model_internal.h"

#include "dense.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- layers */

/* Parse one layer token "cNkK", "pP" or "fN" (N, K, P decimal in
 * [1, MF__MAX_DIM], K and P at most 1024). 0 and *out, or -1. */
int mf__cnn_token(const char *t, mf_cnn_layer *out) {
    char kind = t[0];
    long a = 0, b = 0;
    const char *p = t + 1;
    if (kind != 'c' && kind != 'p' && kind != 'f') return -1;
    if (!isdigit((unsigned char)*p)) return -1;
    for (int nd = 0; isdigit((unsigned char)*p); p++)
        if (++nd > 9 || (a = a * 10 + (*p - '0')) > MF__MAX_DIM) return -1;
    if (kind == 'c') {
        if (*p++ != 'k' || !isdigit((unsigned char)*p)) return -1;
        for (int nd = 0; isdigit((unsigned char)*p); p++)
            if (++nd > 5 || (b = b * 10 + (*p - '0')) > 1024) return -1;
    }
    if (*p || a < 1 || (kind == 'c' && b < 1) || (kind == 'p' && a > 1024)) return -1;
    out->kind = kind;
    out->size = (int)a;
    out->k = (int)b;
    return 0;
}

/* The layers of m: its preset expanded (the output layer has n_out units)
 * or its own list. Returns the count, layers into L. */
static int cnn_layers(const mf_model *m, mf_cnn_layer *L) {
    static const char *const presets[] = {
        NULL, "c32k5 p2 c64k3 p2 f1024", "c8k5 p2 c16k3 p2 f64",
        "c64k3 c64k3 p2 c128k3 c128k3 p2 c256k3 c256k3 c256k3 p2 c512k3 c512k3 c512k3 p2 "
        "c512k3 c512k3 c512k3 p2"};
    if (m->cnn_preset <= 0 || m->cnn_preset > 3) {
        memcpy(L, m->cnn, sizeof(mf_cnn_layer) * (size_t)m->n_cnn);
        return m->n_cnn;
    }
    char buf[256], *save = NULL;
    int n = 0;
    snprintf(buf, sizeof buf, "%s", presets[m->cnn_preset]);
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        mf__cnn_token(t, &L[n++]);
    L[n].kind = 'f', L[n].size = m->n_out, L[n].k = 0;
    return n + 1;
}

/* The input shape (C, H, W) of m: given, or from d = s^2 (1 channel) or
 * d = 3 s^2 (3 channels). 0, or -1 when d is neither. */
static int cnn_input(const mf_model *m, int sh[3]) {
    if (m->in_shape[0] > 0) {
        memcpy(sh, m->in_shape, sizeof(int) * 3);
        return 0;
    }
    for (int c = 1; c <= 3; c += 2) {
        if (m->d % c) continue;
        long s = lround(sqrt((double)(m->d / c)));
        if (s * s * c == m->d) {
            sh[0] = c, sh[1] = sh[2] = (int)s;
            return 0;
        }
    }
    return -1;
}

static void cnn_defaults(mf_model *m) {
    m->depth = 0;
    m->width = 0;
}

/* After the options: one source of layers, an input shape matching d, and a
 * layer list whose shapes work out and that ends in the output layer. */
static int cnn_check(const mf_model *m, const char *spec, mf_err *e) {
    const char *help = "mnist | small | vgg16 | layers=cNkK,pP,fN,...";
    if (!m->cnn_preset && !m->n_cnn)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": cnn needs a preset or layers= (%s)", spec,
                       help);
    if (m->cnn_preset && m->n_cnn)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": give either a preset or layers=, not both",
                       spec);
    int sh[3] = {1, 1, 1};
    if (m->in_shape[0] > 0 && (long long)m->in_shape[0] * m->in_shape[1] * m->in_shape[2] != m->d)
        return mf__err(e, MF_ERR_PARSE,
                       "model spec \"%s\": input=%dx%dx%d has %lld entries but the data has d = %d",
                       spec, m->in_shape[0], m->in_shape[1], m->in_shape[2],
                       (long long)m->in_shape[0] * m->in_shape[1] * m->in_shape[2], m->d);
    if (cnn_input(m, sh))
        return mf__err(e, MF_ERR_PARSE,
                       "model spec \"%s\": d = %d is not a square image of 1 or 3 channels; give "
                       "input=CxHxW",
                       spec, m->d);
    mf_cnn_layer L[MF_MAX_CNN_LAYERS + 1];
    int n = cnn_layers(m, L), weights = 0, fc = 0;
    long long C = sh[0], H = sh[1], W = sh[2], params = 0;
    for (int i = 0; i < n; i++) {
        const mf_cnn_layer *l = &L[i];
        if (l->kind != 'f' && fc)
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": layer %d (%c%d): conv and pool layers must come "
                           "before the fully connected ones",
                           spec, i + 1, l->kind, l->size);
        if (l->kind == 'p') {
            if (l->size > H || l->size > W)
                return mf__err(e, MF_ERR_PARSE,
                               "model spec \"%s\": layer %d (p%d): the window is larger than its "
                               "%lldx%lld input",
                               spec, i + 1, l->size, H, W);
            H /= l->size, W /= l->size;
            continue;
        }
        long long fan = l->kind == 'c' ? C * l->k * l->k : C * H * W;
        if (fan > MF__MAX_DIM || ++weights > MF_MAX_LAYERS)
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": layer %d: %s", spec, i + 1,
                           fan > MF__MAX_DIM ? "fan-in above 2^24" : "more than 16 weight layers");
        params += (long long)l->size * (fan + 1);
        if (params > ((long long)1 << 31))
            return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": more than 2^31 parameters", spec);
        C = l->size;
        if (l->kind == 'f') fc = 1, H = W = 1;
    }
    if (L[n - 1].kind != 'f' || L[n - 1].size != m->n_out)
        return mf__err(e, MF_ERR_PARSE,
                       "model spec \"%s\": the last layer must be the output layer f%d (%s)", spec,
                       m->n_out, m->n_out == 1 ? "binary data" : "one unit per class");
    return MF_OK;
}

/* Groups conv<l> / fc<l> [out][fan_in (+1 bias column)], l the weight layer's
 * number; canonical spec "cnn:input=CxHxW,layers=...[,bias1|,bias]". */
static void cnn_layout(mf_model *m) {
    mf_cnn_layer L[MF_MAX_CNN_LAYERS + 1];
    int n = cnn_layers(m, L), sh[3] = {1, 1, 1};
    cnn_input(m, sh);
    memcpy(m->cnn, L, sizeof(mf_cnn_layer) * (size_t)n);
    m->n_cnn = n;
    m->cnn_preset = 0;
    memcpy(m->in_shape, sh, sizeof sh);
    int C = sh[0], H = sh[1], W = sh[2], nw = 0;
    size_t len = (size_t)snprintf(m->spec, sizeof m->spec, "cnn:input=%dx%dx%d,layers=", C, H, W);
    m->width = 0;
    for (int i = 0; i < n; i++) {
        const mf_cnn_layer *l = &L[i];
        char name[16];
        if (len < sizeof m->spec) {
            if (l->kind == 'c')
                len += (size_t)snprintf(m->spec + len, sizeof m->spec - len, "%sc%dk%d", i ? "," : "",
                                        l->size, l->k);
            else
                len += (size_t)snprintf(m->spec + len, sizeof m->spec - len, "%s%c%d", i ? "," : "",
                                        l->kind, l->size);
        }
        if (l->kind == 'p') {
            H /= l->size, W /= l->size;
            continue;
        }
        int fan = l->kind == 'c' ? C * l->k * l->k : C * H * W;
        int bias = m->cnn_bias == 2 || (m->cnn_bias == 1 && nw == 0);
        nw++;
        snprintf(name, sizeof name, "%s%d", l->kind == 'c' ? "conv" : "fc", nw);
        mf__model_add_layer(m, name, l->size, fan + bias);
        if (l->size > m->width) m->width = l->size;
        C = l->size;
        if (l->kind == 'f') H = W = 1;
    }
    if (m->cnn_bias && len < sizeof m->spec)
        snprintf(m->spec + len, sizeof m->spec - len, ",%s", m->cnn_bias == 1 ? "bias1" : "bias");
    m->degree = nw;
    m->depth = nw;
    m->homogeneous = !(m->cnn_bias == 2 && nw > 1);
}

/* ------------------------------------------------------------ workspace */

/* One layer of the plan with its buffers (for a batch of B samples). */
typedef struct cnn_op {
    char kind;
    int cin, h, w;          /* input: channels, height, width (f: cin = fan-in, h = w = 1) */
    int cout, oh, ow;       /* output */
    int k, pad;             /* c: kernel, zero padding before (after: k - 1 - pad) */
    int relu;               /* ReLU after it */
    int bias;               /* its group has a bias column */
    int K, ldw;             /* c, f: fan-in, row length of W (K + bias) */
    size_t off;             /* c, f: W in theta */
    int flat;               /* f: its input is the previous conv/pool output, flattened */
    double *out;            /* output: c/p [cout][B][oh*ow] (CBHW); f [B][cout]; NULL for the
                               last layer (written into the caller's out) */
    double *cols;           /* c: im2col [K][B*oh*ow] */
    int *arg;               /* p: [cout][B][oh*ow] index of the max in the input tensor */
} cnn_op;

typedef struct cnn_work {
    int n_ops;
    cnn_op op[MF_MAX_CNN_LAYERS];
    int in_chw;             /* the first layer is a conv/pool: x is transposed into x0 */
    double *x0;             /* [C][B][H*W] */
    double *flat;           /* [B][K] input of the first fc layer after a conv/pool */
    double *g0, *g1;        /* backward ping-pong, [B * max_act] */
    double *dcols;          /* [max K * oh*ow * B] */
    size_t max_act;         /* largest per-sample tensor (inputs, outputs, flat) */
    size_t max_dcols;       /* largest per-sample K * oh * ow */
} cnn_work;

/* Build the plan from m's layers (no buffers). */
static void cnn_plan_ops(const mf_model *m, cnn_work *w) {
    int C = m->in_shape[0], H = m->in_shape[1], W = m->in_shape[2], g = 0, nw = 0;
    for (int i = 0; i < m->n_cnn; i++) if (m->cnn[i].kind != 'p') nw++;
    w->n_ops = m->n_cnn;
    w->in_chw = m->cnn[0].kind != 'f';
    w->max_act = (size_t)m->d;
    w->max_dcols = 0;
    for (int i = 0; i < m->n_cnn; i++) {
        const mf_cnn_layer *l = &m->cnn[i];
        cnn_op *o = &w->op[i];
        memset(o, 0, sizeof *o);
        o->kind = l->kind;
        o->cin = C, o->h = H, o->w = W;
        if (l->kind == 'p') {
            o->cout = C, o->oh = H / l->size, o->ow = W / l->size, o->k = l->size;
        } else if (l->kind == 'c') {
            o->cout = l->size, o->oh = H, o->ow = W, o->k = l->k, o->pad = (l->k - 1) / 2;
            o->K = C * l->k * l->k;
        } else {
            o->flat = i > 0 && m->cnn[i - 1].kind != 'f';
            o->K = C * H * W;
            o->cin = o->K, o->h = o->w = 1;
            o->cout = l->size, o->oh = o->ow = 1;
        }
        if (l->kind != 'p') {
            o->off = m->layers[g].offset;
            o->ldw = m->layers[g].cols;
            o->bias = o->ldw > o->K;
            o->relu = g < nw - 1;
            g++;
            if ((size_t)o->K * o->oh * o->ow > w->max_dcols && l->kind == 'c')
                w->max_dcols = (size_t)o->K * o->oh * o->ow;
        }
        size_t in = (size_t)o->cin * o->h * o->w, out = (size_t)o->cout * o->oh * o->ow;
        if (in > w->max_act) w->max_act = in;
        if (out > w->max_act) w->max_act = out;
        C = o->cout, H = o->oh, W = o->ow;
    }
}

/* Add a*b doubles to *t unless it passes the workspace limit (-1). */
static int grow_by(size_t *t, size_t a, size_t b) {
    if (b && a > MF__WORK_LIM / b) return -1;
    if (a * b > MF__WORK_LIM - *t) return -1;
    *t += a * b;
    return 0;
}

static int cnn_plan(const mf_model *m, void *st, size_t B, size_t *doubles) {
    cnn_work *w = st;
    size_t t = 0;
    cnn_plan_ops(m, w);
    if (w->in_chw && grow_by(&t, (size_t)m->d, B)) return -1;
    for (int i = 0; i < w->n_ops; i++) {
        const cnn_op *o = &w->op[i];
        size_t out = (size_t)o->cout * o->oh * o->ow;
        if (i < w->n_ops - 1 && grow_by(&t, out, B)) return -1;
        if ((size_t)o->oh * o->ow > (size_t)INT_MAX / B) return -1; /* GEMM sizes are int */
        if (o->kind == 'c' && grow_by(&t, (size_t)o->K * o->oh * o->ow, B)) return -1;
        if (o->kind == 'p') {
            if (out > (size_t)INT_MAX / B || (size_t)o->cin * o->h * o->w > (size_t)INT_MAX / B) return -1;
            if (grow_by(&t, (out + 1) / 2 + 1, B)) return -1;
        }
        if (o->flat && grow_by(&t, (size_t)o->K, B)) return -1;
    }
    if (grow_by(&t, w->max_act, 2 * B) || grow_by(&t, w->max_dcols, B)) return -1;
    *doubles = t;
    return 0;
}

static void cnn_bind(const mf_model *m, void *st, double *p, size_t B) {
    cnn_work *w = st;
    if (w->in_chw) w->x0 = p, p += (size_t)m->d * B;
    for (int i = 0; i < w->n_ops; i++) {
        cnn_op *o = &w->op[i];
        size_t out = (size_t)o->cout * o->oh * o->ow;
        if (i < w->n_ops - 1) o->out = p, p += out * B;
        if (o->kind == 'c') o->cols = p, p += (size_t)o->K * o->oh * o->ow * B;
        if (o->kind == 'p') o->arg = (int *)p, p += ((out + 1) / 2 + 1) * B;
        if (o->flat) w->flat = p, p += (size_t)o->K * B;
    }
    w->g0 = p, p += w->max_act * B;
    w->g1 = p, p += w->max_act * B;
    w->dcols = p;
}

/* -------------------------------------------------------------- kernels */

/* [n][C][P] -> [C][n][P] (to_cbhw) or back. */
static void transpose_cb(const double *src, double *dst, int n, int C, size_t P, int to_cbhw) {
    for (int b = 0; b < n; b++)
        for (int c = 0; c < C; c++) {
            size_t bc = ((size_t)b * C + c) * P, cb = ((size_t)c * n + b) * P;
            memcpy(dst + (to_cbhw ? cb : bc), src + (to_cbhw ? bc : cb), P * sizeof(double));
        }
}

/* im2col, stride 1, zero padding pad before: in [C][n][H][W] ->
 * cols [(c k + kh) k + kw][(b H + oh) W + ow] = in[c][b][oh + kh - pad][ow + kw - pad]
 * (0 outside the image). */
static void im2col(const double *in, int n, int C, int H, int W, int k, int pad, double *cols) {
    const size_t HW = (size_t)H * W, N = (size_t)n * HW;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                double *row = cols + ((size_t)(c * k + kh) * k + kw) * N;
                const int dw = kw - pad;
                int lo = dw < 0 ? -dw : 0, hi = dw > 0 ? W - dw : W; /* valid ow: [lo, hi) */
                if (lo > W) lo = W;
                if (hi < lo) hi = lo;
                for (int b = 0; b < n; b++) {
                    const double *src = in + ((size_t)c * n + b) * HW;
                    double *dst = row + (size_t)b * HW;
                    for (int oh = 0; oh < H; oh++) {
                        const int ih = oh + kh - pad;
                        double *d = dst + (size_t)oh * W;
                        if (ih < 0 || ih >= H) {
                            memset(d, 0, sizeof(double) * (size_t)W);
                            continue;
                        }
                        const double *s = src + (size_t)ih * W;
                        for (int ow = 0; ow < lo; ow++) d[ow] = 0.0;
                        if (hi > lo) memcpy(d + lo, s + lo + dw, sizeof(double) * (size_t)(hi - lo));
                        for (int ow = hi; ow < W; ow++) d[ow] = 0.0;
                    }
                }
            }
}

/* The adjoint of im2col: din [C][n][H][W] = sum over the entries of dcols
 * that im2col copied from each input pixel (din overwritten). */
static void col2im(const double *dcols, int n, int C, int H, int W, int k, int pad, double *din) {
    const size_t HW = (size_t)H * W, N = (size_t)n * HW;
    memset(din, 0, sizeof(double) * (size_t)C * N);
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                const double *row = dcols + ((size_t)(c * k + kh) * k + kw) * N;
                const int dw = kw - pad;
                int lo = dw < 0 ? -dw : 0, hi = dw > 0 ? W - dw : W;
                if (lo > W) lo = W;
                if (hi < lo) hi = lo;
                for (int b = 0; b < n; b++) {
                    double *dst = din + ((size_t)c * n + b) * HW;
                    const double *src = row + (size_t)b * HW;
                    for (int oh = 0; oh < H; oh++) {
                        const int ih = oh + kh - pad;
                        if (ih < 0 || ih >= H) continue;
                        const double *s = src + (size_t)oh * W;
                        double *d = dst + (size_t)ih * W;
                        for (int ow = lo; ow < hi; ow++) d[ow + dw] += s[ow];
                    }
                }
            }
}

/* Max-pool P x P, stride P: in [C][n][H][W] -> out [C][n][H/P][W/P]; arg =
 * index (in the whole in tensor) of the first maximal entry (row-major). */
static void pool_fwd(const double *in, int Cn, int H, int W, int P, double *out, int *arg) {
    const int OH = H / P, OW = W / P;
    for (int cb = 0; cb < Cn; cb++) {
        const size_t base = (size_t)cb * H * W;
        double *o = out + (size_t)cb * OH * OW;
        int *a = arg + (size_t)cb * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                size_t bi = base + (size_t)oh * P * W + (size_t)ow * P;
                double best = in[bi];
                for (int i = 0; i < P; i++)
                    for (int j = 0; j < P; j++) {
                        size_t idx = base + (size_t)(oh * P + i) * W + (size_t)ow * P + j;
                        if (in[idx] > best) best = in[idx], bi = idx;
                    }
                o[oh * OW + ow] = best;
                a[oh * OW + ow] = (int)bi;
            }
    }
}

/* G *= (H > 0) over cnt entries: the ReLU derivative (0 at 0). */
static void relu_mask(double *G, const double *H, size_t cnt) {
    for (size_t t = 0; t < cnt; t++) G[t] = H[t] > 0.0 ? G[t] : 0.0;
}

static void relu(double *Z, size_t cnt) {
    for (size_t t = 0; t < cnt; t++) Z[t] = Z[t] > 0.0 ? Z[t] : 0.0;
}

/* ------------------------------------------------------ forward, backward */

/* The input matrix [n][K] of fc layer i (and its row stride). */
static const double *fc_input(const cnn_work *w, int i, const double *x, int *ld) {
    const cnn_op *o = &w->op[i];
    *ld = o->K;
    if (o->flat) return w->flat;
    if (i == 0) return x;
    return w->op[i - 1].out;
}

/*
 * Forward over the plan; pre (may be NULL, only with n = 1) receives the
 * pre-activation of every ReLU unit, layer by layer (conv: channel, then
 * row, column).
 */
static void cnn_forward_pre(const mf_model *m, void *st, const double *theta, const double *x, int n,
                            double *out, double *pre) {
    cnn_work *w = st;
    const double *in = x;
    size_t unit = 0;
    if (w->in_chw) {
        transpose_cb(x, w->x0, n, m->in_shape[0], (size_t)m->in_shape[1] * m->in_shape[2], 1);
        in = w->x0;
    }
    for (int i = 0; i < w->n_ops; i++) {
        cnn_op *o = &w->op[i];
        const int last = i == w->n_ops - 1;
        double *Z = last ? out : o->out;
        if (o->kind == 'p') {
            pool_fwd(in, o->cin * n, o->h, o->w, o->k, Z, o->arg);
            in = Z;
            continue;
        }
        const double *W = theta + o->off;
        size_t cnt;
        if (o->kind == 'c') {
            const size_t N = (size_t)n * o->oh * o->ow;
            im2col(in, n, o->cin, o->h, o->w, o->k, o->pad, o->cols);
            /* Z [cout][N] = W[:, :K] cols [K][N] */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o->cout, (int)N, o->K, 1.0, W,
                        o->ldw, o->cols, (int)N, 0.0, Z, (int)N);
            if (o->bias)
                for (int co = 0; co < o->cout; co++) {
                    const double b = W[(size_t)co * o->ldw + o->K];
                    double *z = Z + (size_t)co * N;
                    for (size_t t = 0; t < N; t++) z[t] += b;
                }
            cnt = (size_t)o->cout * N;
        } else {
            int ld;
            if (o->flat)
                transpose_cb(in, w->flat, n, w->op[i - 1].cout,
                             (size_t)w->op[i - 1].oh * w->op[i - 1].ow, 0);
            const double *A = fc_input(w, i, x, &ld);
            mm_nt(n, o->cout, o->K, A, ld, W, o->ldw, Z, o->cout); /* Z [n][cout] = A W^T */
            if (o->bias)
                for (int b = 0; b < n; b++)
                    for (int j = 0; j < o->cout; j++)
                        Z[(size_t)b * o->cout + j] += W[(size_t)j * o->ldw + o->K];
            cnt = (size_t)n * o->cout;
        }
        if (o->relu) {
            if (pre) memcpy(pre + unit, Z, cnt * sizeof(double)), unit += cnt;
            relu(Z, cnt);
        }
        in = Z;
    }
}

static void cnn_forward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                        double *out) {
    cnn_forward_pre(m, st, theta, x, n, out, NULL);
}

/*
 * Backward after the forward pass on (theta, x, n): G = dout [n][n_out] is
 * the gradient with respect to the last layer's output; layer by layer
 * (last to first) it becomes the gradient with respect to that layer's
 * input. grad (want_dw) gets sum_i J_i^T dout_i; gx (may be NULL) the input
 * gradient [n][d].
 */
static void cnn_backprop(const mf_model *m, cnn_work *w, const double *theta, const double *x, int n,
                         const double *dout, double *grad, double *gx) {
    const double *G = dout;
    double *buf[2] = {w->g0, w->g1};
    int cur = 1; /* G lives in buf[cur] once it is ours */
    for (int i = w->n_ops - 1; i >= 0; i--) {
        cnn_op *o = &w->op[i];
        const int need_dx = i > 0 || gx;
        double *dst = buf[1 - cur];
        const double *W = theta + o->off;
        if (o->relu) relu_mask((double *)G, o->out, (size_t)n * o->cout * o->oh * o->ow);
        if (o->kind == 'f') {
            int ld;
            const double *A = fc_input(w, i, x, &ld);
            if (grad) {
                mm_tn(o->cout, o->K, n, G, o->cout, A, ld, grad + o->off, o->ldw); /* dW = G^T A */
                if (o->bias)
                    for (int j = 0; j < o->cout; j++) {
                        double s = 0;
                        for (int b = 0; b < n; b++) s += G[(size_t)b * o->cout + j];
                        grad[o->off + (size_t)j * o->ldw + o->K] = s;
                    }
            }
            if (!need_dx) break;
            double *dA = (i == 0) ? gx : dst;
            mm_nn(n, o->K, o->cout, G, o->cout, W, o->ldw, dA, o->K); /* dA [n][K] = G W[:, :K] */
            if (i == 0) break;
            if (o->flat) { /* back to CBHW for the conv/pool before */
                const cnn_op *p = &w->op[i - 1];
                transpose_cb(dA, buf[cur], n, p->cout, (size_t)p->oh * p->ow, 1);
                G = buf[cur];
                continue;
            }
        } else if (o->kind == 'c') {
            const size_t N = (size_t)n * o->oh * o->ow;
            if (grad) {
                /* dW [cout][K] = G [cout][N] cols^T */
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o->cout, o->K, (int)N, 1.0, G,
                            (int)N, o->cols, (int)N, 0.0, grad + o->off, o->ldw);
                if (o->bias)
                    for (int co = 0; co < o->cout; co++) {
                        double s = 0;
                        const double *g = G + (size_t)co * N;
                        for (size_t t = 0; t < N; t++) s += g[t];
                        grad[o->off + (size_t)co * o->ldw + o->K] = s;
                    }
            }
            if (!need_dx) break;
            /* dcols [K][N] = W[:, :K]^T G */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o->K, (int)N, o->cout, 1.0, W,
                        o->ldw, G, (int)N, 0.0, w->dcols, (int)N);
            col2im(w->dcols, n, o->cin, o->h, o->w, o->k, o->pad, dst);
        } else {
            if (!need_dx) break;
            const size_t cnt = (size_t)n * o->cout * o->oh * o->ow;
            memset(dst, 0, sizeof(double) * (size_t)n * o->cin * o->h * o->w);
            for (size_t t = 0; t < cnt; t++) dst[o->arg[t]] += G[t];
        }
        G = dst;
        cur = 1 - cur;
        if (i == 0) /* the input gradient, back from CBHW */
            transpose_cb(G, gx, n, m->in_shape[0], (size_t)m->in_shape[1] * m->in_shape[2], 0);
    }
}

static void cnn_backward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                         const double *dout, double *grad) {
    cnn_backprop(m, st, theta, x, n, dout, grad, NULL);
}

static void cnn_backward_input(const mf_model *m, void *st, const double *theta, const double *x,
                               int n, const double *dout, double *gx) {
    cnn_backprop(m, st, theta, x, n, dout, NULL, gx);
}

/* -------------------------------------------------------------- analysis */

static int cnn_n_hidden(const mf_model *m) {
    cnn_work w;
    cnn_plan_ops(m, &w);
    size_t h = 0;
    for (int i = 0; i < w.n_ops; i++)
        if (w.op[i].relu) h += (size_t)w.op[i].cout * w.op[i].oh * w.op[i].ow;
    return h > INT_MAX ? INT_MAX : (int)h;
}

/*
 * Pre-activations of the ReLU units (order of cnn_forward_pre) of each
 * sample, one forward pass per sample; scale = ||filter row (with bias)|| x
 * ||input patch (with the bias input 1)||, the bound on |pre| by
 * Cauchy-Schwarz. pre, scale [n][H] (either may be NULL).
 */
static int cnn_preact(const mf_model *m, const double *theta, const mf_data *data, double *pre,
                      double *scale, mf_err *e) {
    mf_work *wk = NULL;
    int rc = mf_work_new(m, 1, &wk, e);
    if (rc) return rc;
    const size_t H = (size_t)cnn_n_hidden(m);
    double *p = mf__malloc(sizeof(double) * (H ? H : 1)), *o = mf__malloc(sizeof(double) * m->n_out);
    if (!p || !o) {
        mf__free(p), mf__free(o), mf_work_free(wk);
        return mf__err(e, MF_ERR_NOMEM, "out of memory for pre-activations");
    }
    cnn_work *w = wk->state;
    for (int s = 0; s < data->n; s++) {
        const double *x = data->x + (size_t)s * m->d;
        cnn_forward_pre(m, w, theta, x, 1, o, p);
        if (pre) memcpy(pre + (size_t)s * H, p, H * sizeof(double));
        if (!scale) continue;
        size_t u = 0;
        for (int i = 0; i < w->n_ops; i++) {
            const cnn_op *op = &w->op[i];
            if (!op->relu) continue;
            const double *W = theta + op->off;
            const size_t P = (size_t)op->oh * op->ow;
            for (int co = 0; co < op->cout; co++) {
                double wn = mf__norm2(W + (size_t)co * op->ldw, (size_t)op->ldw);
                if (op->kind == 'c') {
                    for (size_t q = 0; q < P; q++) {
                        double ss = op->bias ? 1.0 : 0.0;
                        for (int r = 0; r < op->K; r++) ss += op->cols[(size_t)r * P + q] * op->cols[(size_t)r * P + q];
                        scale[(size_t)s * H + u + (size_t)co * P + q] = wn * sqrt(ss);
                    }
                } else {
                    int ld;
                    const double *A = fc_input(w, i, x, &ld);
                    double an = mf__norm2(A, (size_t)op->K);
                    scale[(size_t)s * H + u + co] = wn * sqrt(an * an + (op->bias ? 1.0 : 0.0));
                }
            }
            u += (size_t)op->cout * P;
        }
    }
    mf__free(p);
    mf__free(o);
    mf_work_free(wk);
    return MF_OK;
}

/* The margins are linear in the output layer (the others fixed). */
static int cnn_layer_is_linear(const mf_model *m, int l) { return l == m->n_layers - 1; }

/* He-normal (He, Zhang, Ren & Sun 2015): W ~ N(0, scale^2 2 / fan_in), biases 0. */
static int cnn_init_he(const mf_model *m, double scale, mf_rng *rng, double *theta) {
    cnn_work w;
    cnn_plan_ops(m, &w);
    for (int i = 0; i < w.n_ops; i++) {
        const cnn_op *o = &w.op[i];
        if (o->kind == 'p') continue;
        const double sd = scale * sqrt(2.0 / o->K);
        for (int r = 0; r < o->cout; r++) {
            double *row = theta + o->off + (size_t)r * o->ldw;
            for (int c = 0; c < o->K; c++) row[c] = sd * mf_rng_normal(rng);
            if (o->bias) row[o->K] = 0.0;
        }
    }
    return 0;
}

/* ----------------------------------------------------------------- table */

static const mf__option cnn_options[] = {
    {"mnist", MF__OPT_CHOICE, 1, offsetof(mf_model, cnn_preset)},
    {"small", MF__OPT_CHOICE, 2, offsetof(mf_model, cnn_preset)},
    {"vgg16", MF__OPT_CHOICE, 3, offsetof(mf_model, cnn_preset)},
    {"layers", MF__OPT_LAYERS, 0, 0},
    {"input", MF__OPT_SHAPE, MF__MAX_DIM, offsetof(mf_model, in_shape)},
    {"bias1", MF__OPT_CHOICE, 1, offsetof(mf_model, cnn_bias)},
    {"bias", MF__OPT_CHOICE, 2, offsetof(mf_model, cnn_bias)},
    {NULL, MF__OPT_FLAG, 0, 0}};

const mf__model_ops mf__ops_cnn = {
    .kind = MF_MODEL_CNN,
    .name = "cnn",
    .options_help = "mnist | small | vgg16 | layers=cNkK,pP,...,fN; input=CxHxW; bias1 | bias",
    .options = cnn_options,
    .multiclass = 1,
    .defaults = cnn_defaults,
    .check = cnn_check,
    .layout = cnn_layout,
    .work_state = sizeof(cnn_work),
    .work_plan = cnn_plan,
    .work_bind = cnn_bind,
    .forward = cnn_forward,
    .backward = cnn_backward,
    .backward_input = cnn_backward_input,
    .init_he = cnn_init_he,
    .n_hidden = cnn_n_hidden,
    .preact = cnn_preact,
    .kink_note = "cnn kinks use the library's choices (ReLU'(0) = 0, a max-pool tie's gradient to "
                 "the first maximal entry); they are not freed as Clarke coefficients.",
    .layer_is_linear = cnn_layer_is_linear,
};

/*
 * test_models.c -- correctness evidence for src/models.c.
 *
 * What is measured:
 *  - spec parsing: canonical specs, parameter counts, degrees, layer tables,
 *    and the exact error code and offending token of bad specs;
 *  - forward values against an independent scalar reference written here
 *    from the mf_model_kind definitions, and the known answers of
 *    docs/theory.md section 4 (cases B, C, D, G);
 *  - backward against central finite differences of f(theta) = sum_i <r_i,
 *    out_i> for every architecture (points chosen away from kinks), on the
 *    plain-loop path and on the BLAS path;
 *  - at kinks (a pre-activation exactly 0): the derivative used lies between
 *    the one-sided difference quotients and equals the documented alpha side;
 *  - homogeneity Phi(c theta) = c^L Phi(theta) and Euler's identity
 *    <grad Phi, theta> = L Phi for every homogeneous model, and the failure of
 *    homogeneity for skip-linear and relu2-outbias;
 *  - batched == one sample at a time; batch < max_batch; init determinism
 *    and balance; layout text; norms; allocation failures;
 *  - the registry (row k of the model-ops tables has kind k and parses by its
 *    name) and the two-layer unit view mf_model_units / mf_units_outer;
 *  - forward/backward refuse, without writing anything, a batch beyond the
 *    workspace, NULL arguments and a workspace made for another model.
 */
#include "internal.h"
#include "model/model_internal.h"
#include "marginflow.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

static mf_model *parse_ok(const char *spec, int d, int C) {
    mf_model *m = NULL;
    mf_err e;
    int rc = mf_model_parse(spec, d, C, &m, &e);
    CHECK(rc == MF_OK && m, "parse \"%s\" (d=%d, C=%d): rc %d: %s", spec, d, C, rc,
          rc ? e.msg : "");
    return m;
}

static mf_work *work_ok(const mf_model *m, int max_batch) {
    mf_work *w = NULL;
    mf_err e;
    int rc = mf_work_new(m, max_batch, &w, &e);
    CHECK(rc == MF_OK && w, "work_new: rc %d", rc);
    return w;
}

static void randn(mf_rng *r, double *v, size_t n, double s) {
    for (size_t i = 0; i < n; i++) v[i] = s * mf_rng_normal(r);
}

static double sigma(double z, double a) { return z > 0 ? z : a * z; }

/*
 * Independent reference for cnn, written from the definitions in
 * marginflow.h (mf_cnn_layer) with direct loops, no im2col: x is [C][H][W];
 * SAME padding (k-1)/2 before; pools floor(H/P); fc on the CHW flattening;
 * a group is [out][fan_in (+1 bias)]. *minabs: the smallest |pre-activation|
 * of a ReLU and the smallest gap between the largest and the second largest
 * entry of a pool window whose maximum is > 0 (where max-pool has a tie).
 */
static void ref_cnn(const mf_model *m, const double *th, const double *x, double *out,
                    double *minabs) {
    int C = m->in_shape[0], H = m->in_shape[1], W = m->in_shape[2], nw = 0, wl = 0;
    size_t cap = (size_t)m->d, off = 0;
    for (int i = 0; i < m->n_cnn; i++) {
        if (m->cnn[i].kind != 'p') nw++;
        if ((size_t)m->cnn[i].size * H * W > cap) cap = (size_t)m->cnn[i].size * H * W;
    }
    double *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b), mn = INFINITY;
    memcpy(a, x, sizeof(double) * m->d);
    for (int i = 0; i < m->n_cnn; i++) {
        const mf_cnn_layer *l = &m->cnn[i];
        if (l->kind == 'p') {
            int P = l->size, OH = H / P, OW = W / P;
            for (int c = 0; c < C; c++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        double v1 = -INFINITY, v2 = -INFINITY;
                        for (int u = 0; u < P; u++)
                            for (int v = 0; v < P; v++) {
                                double z = a[(c * H + oh * P + u) * W + ow * P + v];
                                if (z > v1) v2 = v1, v1 = z;
                                else if (z > v2) v2 = z;
                            }
                        if (v1 > 0 && P > 1 && v1 - v2 < mn) mn = v1 - v2;
                        b[(c * OH + oh) * OW + ow] = v1;
                    }
            H = OH, W = OW;
        } else {
            int bias = m->cnn_bias == 2 || (m->cnn_bias == 1 && wl == 0), act = wl < nw - 1;
            int K = l->kind == 'c' ? C * l->k * l->k : C * H * W, ldw = K + bias, k = l->k;
            int OH = l->kind == 'c' ? H : 1, OW = l->kind == 'c' ? W : 1, pad = (k - 1) / 2;
            for (int co = 0; co < l->size; co++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        const double *wr = th + off + (size_t)co * ldw;
                        double z = bias ? wr[K] : 0.0;
                        if (l->kind == 'f') {
                            for (int t = 0; t < K; t++) z += wr[t] * a[t];
                        } else {
                            for (int ci = 0; ci < C; ci++)
                                for (int kh = 0; kh < k; kh++)
                                    for (int kw = 0; kw < k; kw++) {
                                        int ih = oh + kh - pad, iw = ow + kw - pad;
                                        if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                            z += wr[(ci * k + kh) * k + kw] * a[(ci * H + ih) * W + iw];
                                    }
                        }
                        if (act && fabs(z) < mn) mn = fabs(z);
                        b[(co * OH + oh) * OW + ow] = act ? sigma(z, 0.0) : z;
                    }
            off += (size_t)l->size * ldw;
            C = l->size, H = OH, W = OW, wl++;
        }
        double *t = a;
        a = b, b = t;
    }
    for (int j = 0; j < m->n_out; j++) out[j] = a[j];
    free(a);
    free(b);
    if (minabs) *minabs = mn;
}

/*
 * Independent scalar reference: Phi(theta; x) for one sample x [d] written
 * directly from the mf_model_kind definitions, with its own parameter
 * offsets. out [n_out]. *minabs (may be NULL) receives the smallest |pre-
 * activation| of a sigma (INFINITY when there is none).
 */
static void ref_forward(const mf_model *m, const double *th, const double *x, double *out,
                        double *minabs) {
    int d = m->d, C = m->n_out;
    double mn = INFINITY, h[1100], z[1100];
    switch (m->kind) {
    case MF_MODEL_LINEAR:
        for (int j = 0; j < C; j++) {
            out[j] = 0;
            for (int t = 0; t < d; t++) out[j] += th[j * d + t] * x[t];
        }
        break;
    case MF_MODEL_FC_LINEAR: {
        int K = m->depth, M = m->width, in = d;
        size_t off = 0;
        for (int t = 0; t < d; t++) h[t] = x[t];
        for (int l = 1; l <= K; l++) {
            int rows = l == K ? C : M;
            for (int j = 0; j < rows; j++) {
                z[j] = 0;
                for (int t = 0; t < in; t++) z[j] += th[off + (size_t)j * in + t] * h[t];
            }
            off += (size_t)rows * in;
            in = rows;
            for (int j = 0; j < rows; j++) h[j] = z[j];
        }
        for (int j = 0; j < C; j++) out[j] = h[j];
        break;
    }
    case MF_MODEL_DIAG:
        out[0] = 0;
        for (int j = 0; j < d; j++) {
            double p = x[j];
            for (int l = 0; l < m->depth; l++) p *= th[l * d + j];
            out[0] += p;
        }
        break;
    case MF_MODEL_RELU2:
    case MF_MODEL_RELU2_OUTBIAS: {
        int M = m->width, dt = d + (m->bias ? 1 : 0);
        out[0] = 0;
        for (int k = 0; k < M; k++) {
            double zk = m->bias ? th[k * dt + d] : 0.0;
            for (int t = 0; t < d; t++) zk += th[k * dt + t] * x[t];
            if (fabs(zk) < mn) mn = fabs(zk);
            double ak = m->fix_outer ? (k % 2 ? -1.0 : 1.0) : th[M * dt + k];
            out[0] += ak * sigma(zk, m->alpha);
        }
        if (m->kind == MF_MODEL_RELU2_OUTBIAS) out[0] += th[M * d + M];
        break;
    }
    case MF_MODEL_MLP: {
        int in = d;
        size_t off = 0;
        for (int t = 0; t < d; t++) h[t] = x[t];
        for (int l = 0; l <= m->depth; l++) {
            int rows = l == m->depth ? C : m->widths[l];
            for (int j = 0; j < rows; j++) {
                z[j] = 0;
                for (int t = 0; t < in; t++) z[j] += th[off + (size_t)j * in + t] * h[t];
            }
            off += (size_t)rows * in;
            in = rows;
            for (int j = 0; j < rows; j++) {
                if (l < m->depth) {
                    if (fabs(z[j]) < mn) mn = fabs(z[j]);
                    h[j] = sigma(z[j], m->alpha);
                } else {
                    h[j] = z[j];
                }
            }
        }
        for (int j = 0; j < C; j++) out[j] = h[j];
        break;
    }
    case MF_MODEL_SKIP_LINEAR: {
        double s = 0;
        for (int t = 0; t < d; t++) s += th[t] * x[t];
        out[0] = (1 + th[d]) * s;
        break;
    }
    case MF_MODEL_CNN: ref_cnn(m, th, x, out, &mn); break;
    }
    if (minabs) *minabs = mn;
}

/* f(theta) = sum_i <r_i, out_i> over a batch, via mf_model_forward. */
typedef struct fctx {
    const mf_model *m;
    mf_work *w;
    int n;
    const double *x, *r;
    double *out;
} fctx;

static double fval(fctx *c, const double *theta) {
    mf_model_forward(c->m, c->w, theta, c->x, c->n, c->out);
    double s = 0;
    for (int i = 0; i < c->n * c->m->n_out; i++) s += c->r[i] * c->out[i];
    return s;
}

/* A model and data case used by several tests (d = 0: the default 3). */
typedef struct mcase {
    const char *spec;
    int C, d;
} mcase;

static const mcase ALL[] = {
    {"linear", 0, 0},
    {"linear", 3, 0},
    {"fc-linear", 0, 0},
    {"fc-linear:depth=3,width=4", 0, 0},
    {"fc-linear:depth=3,width=4", 3, 0},
    {"fc-linear:depth=1", 3, 0},
    {"diag", 0, 0},
    {"diag:depth=3", 0, 0},
    {"diag:depth=1", 0, 0},
    {"relu2:width=6", 0, 0},
    {"relu2:width=6,alpha=0.3", 0, 0},
    {"relu2:width=6,bias", 0, 0},
    {"relu2:width=6,alpha=0.2,bias", 0, 0},
    {"relu2:width=6,fix-outer", 0, 0},
    {"relu2:width=5,alpha=0.5,bias,fix-outer", 0, 0},
    {"mlp:widths=4", 0, 0},
    {"mlp:widths=5/4,alpha=0.1", 0, 0},
    {"mlp:widths=5,4,3,alpha=0", 3, 0},
    {"mlp:widths=4/4,alpha=0.5", 3, 0},
    {"skip-linear", 0, 0},
    {"relu2-outbias:width=5,alpha=0", 0, 0},
    {"relu2-outbias:width=5,alpha=0.25", 0, 0},
    /* cnn: conv (odd and even kernels, SAME padding), pools (2 and a floor 3
     * on 7x7), flatten, fc; biases first-layer (homogeneous) and everywhere
     * (not); a pool first; fc only */
    {"cnn:layers=c3k3,p2,c4k3,p2,f5,f1", 0, 36},
    {"cnn:layers=c2k3,c3k2,p2,f4,f3,input=2x4x4", 3, 32},
    {"cnn:layers=c3k3,p2,f3,bias1", 3, 27},
    {"cnn:layers=c2k3,p2,f4,f1,bias", 0, 16},
    {"cnn:layers=p2,f3", 3, 16},
    {"cnn:layers=f4,f3,input=1x1x5", 3, 5},
    {"cnn:layers=c2k3,p3,f1", 0, 49},
    {"cnn:layers=c2k4,f2,bias1", 2, 9},
};
#define N_ALL ((int)(sizeof ALL / sizeof ALL[0]))

/* Draw theta (gauss, scale 1) and x [n][d] until every pre-activation of
 * every sample is at least 1e-3 away from 0 (by the reference). Returns the
 * number of redraws. */
static int draw_smooth(const mf_model *m, mf_rng *rng, double *theta, double *x, int n) {
    for (int tries = 0; tries < 1000; tries++) {
        mf_model_init(m, "gauss", 1.0, rng, theta, NULL);
        randn(rng, x, (size_t)n * m->d, 1.0);
        double worst = INFINITY, out[16], mn;
        for (int i = 0; i < n; i++) {
            ref_forward(m, theta, x + (size_t)i * m->d, out, &mn);
            if (mn < worst) worst = mn;
        }
        if (worst >= 1e-3) return tries;
    }
    CHECK(0, "no smooth point found for %s", m->spec);
    return -1;
}

/* Central-difference check of backward on model m at (theta, x); coords
 * (NULL = all) lists which entries to check. Returns max relative error. */
static double gradcheck(const mf_model *m, mf_work *w, double *theta, const double *x, int n,
                        mf_rng *rng, const size_t *coords, size_t n_coords) {
    size_t P = m->n_params, no = (size_t)n * m->n_out;
    double *r = malloc(no * sizeof *r), *out = malloc(no * sizeof *out),
           *g = malloc(P * sizeof *g);
    randn(rng, r, no, 1.0);
    fctx c = {m, w, n, x, r, out};
    fval(&c, theta);
    for (size_t i = 0; i < P; i++) g[i] = NAN; /* backward must overwrite */
    mf_model_backward(m, w, theta, x, n, r, g);
    double worst = 0;
    size_t cnt = coords ? n_coords : P;
    for (size_t q = 0; q < cnt; q++) {
        size_t i = coords ? coords[q] : q;
        double t0 = theta[i], h = 1e-6 * fmax(1.0, fabs(t0));
        theta[i] = t0 + h;
        double fp = fval(&c, theta);
        theta[i] = t0 - h;
        double fm = fval(&c, theta);
        theta[i] = t0;
        double fd = (fp - fm) / (2 * h);
        double rel = fabs(g[i] - fd) / fmax(1.0, fmax(fabs(g[i]), fabs(fd)));
        if (!(rel <= worst)) worst = rel;
        if (!(rel <= 1e-6))
            fprintf(stderr, "  %s: coord %zu: backward %.12g, central difference %.12g\n", m->spec, i,
                    g[i], fd);
    }
    free(r);
    free(out);
    free(g);
    return worst;
}

/* ------------------------------------------------------------- parsing */

typedef struct pcase {
    const char *spec;
    int d, C;
    const char *canon;
    size_t n_params;
    int degree, homog, n_layers;
} pcase;

TEST(parse_canonical) {
    static const pcase T[] = {
        {"linear", 3, 0, "linear", 3, 1, 1, 1},
        {"linear", 3, 3, "linear", 9, 1, 1, 1},
        {"fc-linear", 3, 0, "fc-linear:depth=2,width=3", 12, 2, 1, 2},
        {"fc-linear:depth=3,width=4", 3, 3, "fc-linear:depth=3,width=4", 40, 3, 1, 3},
        {"fc-linear:width=4,depth=1", 3, 0, "fc-linear:depth=1,width=4", 3, 1, 1, 1},
        {"diag", 3, 0, "diag:depth=2", 6, 2, 1, 2},
        {" diag : depth=3 ", 3, 0, "diag:depth=3", 9, 3, 1, 3},
        {"relu2", 3, 0, "relu2:width=10,alpha=0", 40, 2, 1, 2},
        {"relu2:", 3, 0, "relu2:width=10,alpha=0", 40, 2, 1, 2},
        {"relu2:width=4,alpha=0.5,bias", 3, 0, "relu2:width=4,alpha=0.5,bias", 20, 2, 1, 2},
        {"relu2:fix-outer,width=4", 3, 0, "relu2:width=4,alpha=0,fix-outer", 12, 1, 1, 1},
        {"relu2:width=4,bias,fix-outer,alpha=1", 3, 0, "relu2:width=4,alpha=1,bias,fix-outer", 16, 1,
         1, 1},
        {"relu2:width=100,alpha=0.1", 2, 0, "relu2:width=100,alpha=0.1", 300, 2, 1, 2},
        {"mlp:widths=5,4,alpha=0.1", 3, 0, "mlp:widths=5/4,alpha=0.1", 39, 3, 1, 3},
        {"mlp:widths=5/4", 3, 3, "mlp:widths=5/4,alpha=0", 47, 3, 1, 3},
        {"mlp:alpha=0.25,widths=6", 3, 0, "mlp:widths=6,alpha=0.25", 24, 2, 1, 2},
        {"mlp:widths=64/64,alpha=1e-2", 2, 0, "mlp:widths=64/64,alpha=0.01", 4288, 3, 1, 3},
        {"mlp:widths=2/3,4,alpha=0", 1, 0, "mlp:widths=2/3/4,alpha=0", 24, 4, 1, 4},
        {"skip-linear", 3, 0, "skip-linear", 4, 2, 0, 2},
        {"relu2-outbias:width=3,alpha=0.25", 3, 0, "relu2-outbias:width=3,alpha=0.25", 13, 2, 0, 3},
        {"relu2-outbias", 2, 0, "relu2-outbias:width=10,alpha=0", 31, 2, 0, 3},
        /* cnn: the presets as layer lists (parameter counts by hand: 32*25 + 64*288 +
         * 1024*3136 + 10*1024; biases add 32, or 32+64+1024+10) */
        {"cnn:mnist", 784, 10, "cnn:input=1x28x28,layers=c32k5,p2,c64k3,p2,f1024,f10", 3240736, 4,
         1, 4},
        {"cnn:mnist,bias1", 784, 10, "cnn:input=1x28x28,layers=c32k5,p2,c64k3,p2,f1024,f10,bias1",
         3240768, 4, 1, 4},
        {"cnn:bias,mnist", 784, 10, "cnn:input=1x28x28,layers=c32k5,p2,c64k3,p2,f1024,f10,bias",
         3241866, 4, 0, 4},
        {"cnn:mnist", 784, 0, "cnn:input=1x28x28,layers=c32k5,p2,c64k3,p2,f1024,f1", 3231520, 4, 1, 4},
        {"cnn:small", 784, 10, "cnn:input=1x28x28,layers=c8k5,p2,c16k3,p2,f64,f10", 52168, 4, 1, 4},
        {"cnn:vgg16", 3072, 10,
         "cnn:input=3x32x32,layers=c64k3,c64k3,p2,c128k3,c128k3,p2,c256k3,c256k3,c256k3,p2,c512k3,"
         "c512k3,c512k3,p2,c512k3,c512k3,c512k3,p2,f10",
         14715584, 14, 1, 14},
        {"cnn:layers=c4k3,p2,f1", 64, 0, "cnn:input=1x8x8,layers=c4k3,p2,f1", 100, 2, 1, 2},
        {" cnn : layers = c2k3 , p2 , f3 , input = 3x4x4 ", 48, 3, "cnn:input=3x4x4,layers=c2k3,p2,f3",
         78, 2, 1, 2},
    };
    for (size_t t = 0; t < sizeof T / sizeof T[0]; t++) {
        mf_model *m = parse_ok(T[t].spec, T[t].d, T[t].C);
        if (!m) continue;
        CHECK(strcmp(m->spec, T[t].canon) == 0, "\"%s\": canonical \"%s\", want \"%s\"", T[t].spec,
              m->spec, T[t].canon);
        CHECK_EQ_INT(m->n_params, T[t].n_params);
        CHECK_EQ_INT(m->degree, T[t].degree);
        CHECK_EQ_INT(m->homogeneous, T[t].homog);
        CHECK_EQ_INT(m->n_layers, T[t].n_layers);
        CHECK_EQ_INT(m->n_out, T[t].C ? T[t].C : 1);
        /* layers are contiguous and cover theta */
        size_t off = 0;
        for (int l = 0; l < m->n_layers; l++) {
            CHECK_EQ_INT(m->layers[l].offset, off);
            off += (size_t)m->layers[l].rows * m->layers[l].cols;
        }
        CHECK_EQ_INT(off, m->n_params);
        /* the canonical spec parses to itself */
        mf_model *m2 = parse_ok(m->spec, T[t].d, T[t].C);
        if (m2) {
            CHECK(strcmp(m2->spec, m->spec) == 0, "reparse \"%s\" -> \"%s\"", m->spec, m2->spec);
            CHECK_EQ_INT(m2->n_params, m->n_params);
        }
        mf_model_free(m2);
        mf_model_free(m);
    }
}

TEST(layer_tables) {
    mf_model *m = parse_ok("mlp:widths=5/4", 3, 3);
    if (m) {
        static const char *names[] = {"W1", "W2", "W3"};
        static const int rows[] = {5, 4, 3}, cols[] = {3, 5, 4}, offs[] = {0, 15, 35};
        for (int l = 0; l < 3; l++) {
            CHECK(strcmp(m->layers[l].name, names[l]) == 0, "layer %d name %s", l, m->layers[l].name);
            CHECK_EQ_INT(m->layers[l].rows, rows[l]);
            CHECK_EQ_INT(m->layers[l].cols, cols[l]);
            CHECK_EQ_INT(m->layers[l].offset, offs[l]);
        }
        CHECK_EQ_INT(m->depth, 2);
        CHECK_EQ_INT(m->widths[0], 5);
        CHECK_EQ_INT(m->widths[1], 4);
        mf_model_free(m);
    }
    m = parse_ok("relu2:width=4,bias", 3, 0);
    if (m) {
        CHECK(strcmp(m->layers[0].name, "W") == 0 && strcmp(m->layers[1].name, "a") == 0, "names %s %s",
              m->layers[0].name, m->layers[1].name);
        CHECK_EQ_INT(m->layers[0].rows, 4);
        CHECK_EQ_INT(m->layers[0].cols, 4); /* d + 1 */
        CHECK_EQ_INT(m->layers[1].offset, 16);
        CHECK_EQ_INT(m->layers[1].rows, 1);
        CHECK_EQ_INT(m->layers[1].cols, 4);
        CHECK_EQ_INT(m->bias, 1);
        mf_model_free(m);
    }
    m = parse_ok("relu2-outbias:width=3", 2, 0);
    if (m) {
        CHECK(strcmp(m->layers[2].name, "b") == 0, "name %s", m->layers[2].name);
        CHECK_EQ_INT(m->layers[1].offset, 6);
        CHECK_EQ_INT(m->layers[2].offset, 9);
        mf_model_free(m);
    }
    m = parse_ok("fc-linear:depth=3,width=4", 2, 3);
    if (m) {
        CHECK_EQ_INT(m->layers[0].rows, 4);
        CHECK_EQ_INT(m->layers[0].cols, 2);
        CHECK_EQ_INT(m->layers[1].offset, 8);
        CHECK_EQ_INT(m->layers[2].offset, 24);
        CHECK_EQ_INT(m->layers[2].rows, 3);
        CHECK(strcmp(m->layers[2].name, "W3") == 0, "name %s", m->layers[2].name);
        mf_model_free(m);
    }
    m = parse_ok("cnn:mnist,bias1", 784, 10);
    if (m) {
        static const char *names[] = {"conv1", "conv2", "fc3", "fc4"};
        static const int rows[] = {32, 64, 1024, 10}, cols[] = {26, 288, 3136, 1024};
        static const size_t offs[] = {0, 832, 832 + 18432, 832 + 18432 + 3211264};
        for (int l = 0; l < 4; l++) {
            CHECK(strcmp(m->layers[l].name, names[l]) == 0, "layer %d name %s", l, m->layers[l].name);
            CHECK_EQ_INT(m->layers[l].rows, rows[l]);
            CHECK_EQ_INT(m->layers[l].cols, cols[l]);
            CHECK_EQ_INT(m->layers[l].offset, offs[l]);
        }
        CHECK(m->in_shape[0] == 1 && m->in_shape[1] == 28 && m->in_shape[2] == 28 && m->n_cnn == 6 &&
                  m->cnn_preset == 0 && m->cnn_bias == 1,
              "cnn fields: input %dx%dx%d, %d layers, preset %d, bias %d", m->in_shape[0],
              m->in_shape[1], m->in_shape[2], m->n_cnn, m->cnn_preset, m->cnn_bias);
        mf_model_free(m);
    }
    m = parse_ok("skip-linear", 2, 0);
    if (m) {
        CHECK(strcmp(m->layers[0].name, "w1") == 0 && strcmp(m->layers[1].name, "w2") == 0,
              "names %s %s", m->layers[0].name, m->layers[1].name);
        CHECK_EQ_INT(m->layers[1].offset, 2);
        mf_model_free(m);
    }
}

typedef struct ecase {
    const char *spec;
    int d, C, code;
    const char *must1, *must2; /* substrings the message must contain */
} ecase;

TEST(parse_errors) {
    static const ecase T[] = {
        {"foo", 3, 0, MF_ERR_PARSE, "'foo'", "relu2-outbias"},
        {"relu3:width=2", 3, 0, MF_ERR_PARSE, "'relu3'", "mlp"},
        {"relu2:widht=3", 3, 0, MF_ERR_PARSE, "widht", "width=M"},
        {"relu2:width=0", 3, 0, MF_ERR_PARSE, "width=0", "[1,"},
        {"relu2:width=-2", 3, 0, MF_ERR_PARSE, "width=-2", "integer"},
        {"relu2:width=abc", 3, 0, MF_ERR_PARSE, "width=abc", "integer"},
        {"relu2:width=3.5", 3, 0, MF_ERR_PARSE, "width=3.5", "integer"},
        {"relu2:alpha=2", 3, 0, MF_ERR_PARSE, "alpha=2", "[0, 1]"},
        {"relu2:alpha=-0.1", 3, 0, MF_ERR_PARSE, "alpha=-0.1", "[0, 1]"},
        {"relu2:alpha=nan", 3, 0, MF_ERR_PARSE, "alpha=nan", "finite"},
        {"relu2:alpha=0.1x", 3, 0, MF_ERR_PARSE, "alpha=0.1x", "alpha"},
        {"relu2:alpha=", 3, 0, MF_ERR_PARSE, "alpha=", "alpha"},
        {"relu2:bias=1", 3, 0, MF_ERR_PARSE, "bias=1", "flag"},
        {"relu2:width=3,width=4", 3, 0, MF_ERR_PARSE, "width=4", "twice"},
        {"relu2:width=3,,alpha=0", 3, 0, MF_ERR_PARSE, "empty", "width=M"},
        {"relu2:width", 3, 0, MF_ERR_PARSE, "width", "VALUE"},
        {"linear:width=3", 3, 0, MF_ERR_PARSE, "width=3", "none"},
        {"fc-linear:depth=0", 3, 0, MF_ERR_PARSE, "depth=0", "depth"},
        {"fc-linear:depth=17", 3, 0, MF_ERR_PARSE, "depth=17", "16"},
        {"diag:width=3", 3, 0, MF_ERR_PARSE, "width=3", "depth=K"},
        {"mlp", 3, 0, MF_ERR_PARSE, "widths", "mlp"},
        {"mlp:widths=", 3, 0, MF_ERR_PARSE, "widths=", "integer"},
        {"mlp:widths=4/0", 3, 0, MF_ERR_PARSE, "'0'", "[1,"},
        {"mlp:widths=2//3", 3, 0, MF_ERR_PARSE, "bad width ''", "in 'widths=2//3'"},
        {"relu2:wid\033th=3", 3, 0, MF_ERR_PARSE, "'wid\\x1bth=3'", "relu2:wid\\x1bth=3\""},
        {"rel\001u2", 3, 0, MF_ERR_PARSE, "unknown model 'rel\\x01u2'", "\"rel\\x01u2\""},
        {"mlp:widths=4,x", 3, 0, MF_ERR_PARSE, "'x'", "widths"},
        {"mlp:widths=1/1/1/1/1/1/1/1/1/1/1/1/1/1/1/1", 3, 0, MF_ERR_PARSE, "widths", "15"},
        {"mlp:widths=4,alpha=0.5,5", 3, 0, MF_ERR_PARSE, "'5'", "alpha"},
        {"skip-linear:alpha=0", 3, 0, MF_ERR_PARSE, "alpha=0", "none"},
        {"diag", 3, 3, MF_ERR_UNSUPPORTED, "diag", "3 classes"},
        {"relu2", 3, 2, MF_ERR_UNSUPPORTED, "relu2", "binary"},
        {"skip-linear", 3, 4, MF_ERR_UNSUPPORTED, "skip-linear", "binary"},
        {"relu2-outbias", 3, 2, MF_ERR_UNSUPPORTED, "relu2-outbias", "binary"},
        {"cnn", 784, 10, MF_ERR_PARSE, "a preset or layers=", "mnist"},
        {"cnn:mnist,layers=f10", 784, 10, MF_ERR_PARSE, "either a preset or layers=", "not both"},
        {"cnn:mnist,small", 784, 10, MF_ERR_PARSE, "'small'", "earlier option"},
        {"cnn:mnist,bias,bias1", 784, 10, MF_ERR_PARSE, "'bias1'", "earlier option"},
        {"cnn:layers=c32x5", 784, 10, MF_ERR_PARSE, "bad layer 'c32x5'", "cNkK"},
        {"cnn:layers=c0k3,f10", 784, 10, MF_ERR_PARSE, "bad layer 'c0k3'", "pP"},
        {"cnn:layers=c8k3,q2,f10", 784, 10, MF_ERR_PARSE, "'q2'", "valid options"},
        {"cnn:layers=c8k3,p2,f5", 784, 10, MF_ERR_PARSE, "output layer f10", "one unit per class"},
        {"cnn:layers=f3,c2k3,f1", 16, 0, MF_ERR_PARSE, "layer 2 (c2)", "before the fully connected"},
        {"cnn:layers=p8,f1", 16, 0, MF_ERR_PARSE, "(p8)", "larger than its 4x4 input"},
        {"cnn:mnist,input=1x28x27", 784, 10, MF_ERR_PARSE, "input=1x28x27", "d = 784"},
        {"cnn:mnist", 50, 10, MF_ERR_PARSE, "d = 50", "input=CxHxW"},
        {"cnn:mnist,input=1x28", 784, 10, MF_ERR_PARSE, "'input=1x28'", "CxHxW"},
        {"cnn:mnist,bias=1", 784, 10, MF_ERR_PARSE, "bias=1", "flag"},
        {"linear", 0, 0, MF_ERR_INVALID, "d = 0", ">= 1"},
        {"linear", 3, 1, MF_ERR_INVALID, "num_classes = 1", ">= 2"},
    };
    for (size_t t = 0; t < sizeof T / sizeof T[0]; t++) {
        mf_model *m = (mf_model *)&m; /* must be reset to NULL */
        mf_err e;
        memset(&e, 0, sizeof e);
        int rc = mf_model_parse(T[t].spec, T[t].d, T[t].C, &m, &e);
        CHECK(rc == T[t].code, "\"%s\": rc %d (%s), want %d", T[t].spec, rc, e.msg, T[t].code);
        CHECK(e.code == T[t].code, "\"%s\": e.code %d", T[t].spec, e.code);
        CHECK(m == NULL, "\"%s\": *out not NULL on error", T[t].spec);
        CHECK(strstr(e.msg, T[t].must1) && strstr(e.msg, T[t].must2),
              "\"%s\": message \"%s\" lacks \"%s\" or \"%s\"", T[t].spec, e.msg, T[t].must1, T[t].must2);
        if (rc == MF_OK) mf_model_free(m);
    }
    /* e may be NULL */
    mf_model *m = NULL;
    CHECK_EQ_INT(mf_model_parse("foo", 2, 0, &m, NULL), MF_ERR_PARSE);
    CHECK_EQ_INT(mf_model_parse(NULL, 2, 0, &m, NULL), MF_ERR_INVALID);
    mf_model_free(NULL); /* no-op */
    mf_work_free(NULL);
}

/* -------------------------------------------------------- known values */

static double phi1(const char *spec, int d, const double *theta, const double *x) {
    mf_model *m = parse_ok(spec, d, 0);
    if (!m) return NAN;
    mf_work *w = work_ok(m, 1);
    double out = NAN;
    if (w) mf_model_forward(m, w, theta, x, 1, &out);
    mf_work_free(w);
    mf_model_free(m);
    return out;
}

TEST(known_values) {
    /* B: diag depth 2, (u, v) = ((1,1), (1,-1)), x = (1, 2): 1*1*1 + 1*(-1)*2 = -1 */
    double thB[] = {1, 1, 1, -1}, xB[] = {1, 2};
    CHECK_NEAR(phi1("diag", 2, thB, xB), -1.0, 0);
    /* B, GF limit u = v = (1, 0): Phi = 1; global u = v = (0, 2^-1/2): Phi = 1 */
    double thB2[] = {1, 0, 1, 0}, thB3[] = {0, sqrt(0.5), 0, sqrt(0.5)};
    CHECK_NEAR(phi1("diag", 2, thB2, xB), 1.0, 0);
    CHECK_NEAR(phi1("diag", 2, thB3, xB), 1.0, 1e-15);
    /* C: diag depth 3, w_l = (0.5, 0.5), x = (1, 1): 2 * 0.125 */
    double thC[] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, xC[] = {1, 1};
    CHECK_NEAR(phi1("diag:depth=3", 2, thC, xC), 0.25, 0);
    /* D: relu2 width 2, W = [[1,-1],[-1,1]], a = (1,1), x1 = (1,0): Phi = 1; x2 = (0,1): 1 */
    double thD[] = {1, -1, -1, 1, 1, 1}, x1[] = {1, 0}, x2[] = {0, 1};
    CHECK_NEAR(phi1("relu2:width=2,alpha=0", 2, thD, x1), 1.0, 0);
    CHECK_NEAR(phi1("relu2:width=2,alpha=0", 2, thD, x2), 1.0, 0);
    /* leaky alpha = 0.5: 1 + 0.5 * (-1) */
    CHECK_NEAR(phi1("relu2:width=2,alpha=0.5", 2, thD, x1), 0.5, 0);
    /* G: skip-linear theta (2, 1), x = 1: (1 + 1) * 2 = 4 */
    double thG[] = {2, 1}, xG[] = {1};
    CHECK_NEAR(phi1("skip-linear", 1, thG, xG), 4.0, 0);
    /* relu2 with bias: W = [[1, 0, 0.5]], a = (2): 2 * sigma(1*x1 + 0.5) at x = (1, 7) = 3 */
    double thb[] = {1, 0, 0.5, 2}, xb[] = {1, 7};
    CHECK_NEAR(phi1("relu2:width=1,bias", 2, thb, xb), 3.0, 0);
    /* fix-outer: a = (+1, -1): sigma(1) - sigma(2) = -1 at W = [[1],[2]], x = 1 */
    double thf[] = {1, 2}, xf[] = {1};
    CHECK_NEAR(phi1("relu2:width=2,fix-outer", 1, thf, xf), -1.0, 0);
    /* relu2-outbias: W = [[1]], a = (3), b = -0.5 at x = 2: 3*2 - 0.5 */
    double tho[] = {1, 3, -0.5}, xo[] = {2};
    CHECK_NEAR(phi1("relu2-outbias:width=1", 1, tho, xo), 5.5, 0);
    /* R1: fc-linear depth 3 width 3 all-ones weights, x = (1,1): 3*3*2 = 18 */
    double thR[21], xR[] = {1, 1};
    for (int i = 0; i < 21; i++) thR[i] = 1.0;
    CHECK_NEAR(phi1("fc-linear:depth=3,width=3", 2, thR, xR), 18.0, 0);
    /* cnn, 1x2x2 image x = [[1, 2], [3, 4]]: a 1x1 conv (w = 2) -> relu -> 2x2 max-pool
     * -> fc 0.5: 0.5 * 8 = 4 */
    double xi[] = {1, 2, 3, 4}, t1[] = {2, 0.5};
    CHECK_NEAR(phi1("cnn:layers=c1k1,p2,f1", 4, t1, xi), 4.0, 0);
    /* SAME padding of an even kernel is 0 before, 1 after (TensorFlow's): a 2x2
     * all-ones kernel gives [[1+2+3+4, 2+4], [3+4, 4]] = [[10, 6], [7, 4]]; fc
     * weights (1, 10, 100, 1000): 10 + 60 + 700 + 4000 */
    double t2[] = {1, 1, 1, 1, 1, 10, 100, 1000};
    CHECK_NEAR(phi1("cnn:layers=c1k2,f1", 4, t2, xi), 4770.0, 0);
    /* a 3x3 all-ones kernel with padding 1 sums the whole 2x2 image at every
     * position: 10 each; with bias1 (bias 0.5, the last column) 10.5 */
    double t3[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, 1, 2, 3, 4};
    CHECK_NEAR(phi1("cnn:layers=c1k3,f1,bias1", 4, t3, xi), 105.0, 0);
    /* relu: a negative pre-activation is cut: w = -1 gives 0 everywhere */
    double t4[] = {-1, 0.5};
    CHECK_NEAR(phi1("cnn:layers=c1k1,p2,f1", 4, t4, xi), 0.0, 0);
}

/* ------------------------------------------------------------ gradients */

TEST(gradients_all_models) {
    mf_rng rng;
    mf_rng_seed(&rng, 2024);
    const int n = 5;
    int redraws = 0;
    for (int t = 0; t < N_ALL; t++) {
        const int d = ALL[t].d ? ALL[t].d : 3;
        mf_model *m = parse_ok(ALL[t].spec, d, ALL[t].C);
        if (!m) continue;
        mf_work *w = work_ok(m, n);
        double *theta = malloc(m->n_params * sizeof *theta), *x = malloc((size_t)n * d * sizeof *x);
        redraws += draw_smooth(m, &rng, theta, x, n);
        double worst = gradcheck(m, w, theta, x, n, &rng, NULL, 0);
        CHECK(worst <= 1e-6, "%s (C=%d): max rel error %g", m->spec, ALL[t].C, worst);
        printf("  grad %-40s C=%d  n_params %4zu  max rel err %.2e\n", m->spec, ALL[t].C,
               m->n_params, worst);
        free(theta);
        free(x);
        mf_work_free(w);
        mf_model_free(m);
    }
    printf("  (points redrawn to stay >= 1e-3 from kinks: %d times; coordinates skipped: 0)\n",
           redraws);
}

/* Forward agrees with the independent reference; batched == one at a time
 * (forward and backward); batches smaller than max_batch work; n = 0. */
TEST(batch_equals_single) {
    mf_rng rng;
    mf_rng_seed(&rng, 7);
    const int n = 6, maxb = 9;
    for (int t = 0; t < N_ALL; t++) {
        const int d = ALL[t].d ? ALL[t].d : 3;
        mf_model *m = parse_ok(ALL[t].spec, d, ALL[t].C);
        if (!m) continue;
        mf_work *w = work_ok(m, maxb), *w1 = work_ok(m, 1);
        size_t P = m->n_params;
        int C = m->n_out;
        double *theta = malloc(P * sizeof *theta), *g = malloc(P * sizeof *g),
               *g1 = malloc(P * sizeof *g1), *gs = calloc(P, sizeof *gs);
        double *x = malloc((size_t)n * d * sizeof *x), out[18], r[18], o1[3], oref[3];
        mf_model_init(m, "gauss", 1.0, &rng, theta, NULL);
        randn(&rng, x, (size_t)n * d, 1.0);
        randn(&rng, r, (size_t)n * C, 1.0);
        mf_model_forward(m, w, theta, x, n, out);
        mf_model_backward(m, w, theta, x, n, r, g);
        double ef = 0, eref = 0, eg = 0;
        for (int i = 0; i < n; i++) {
            mf_model_forward(m, w1, theta, x + i * d, 1, o1);
            mf_model_backward(m, w1, theta, x + i * d, 1, r + i * C, g1);
            ref_forward(m, theta, x + i * d, oref, NULL);
            for (size_t k = 0; k < P; k++) gs[k] += g1[k];
            for (int j = 0; j < C; j++) {
                ef = fmax(ef, fabs(o1[j] - out[i * C + j]) / fmax(1, fabs(o1[j])));
                eref = fmax(eref, fabs(oref[j] - out[i * C + j]) / fmax(1, fabs(oref[j])));
            }
        }
        for (size_t k = 0; k < P; k++) eg = fmax(eg, fabs(gs[k] - g[k]) / fmax(1, fabs(gs[k])));
        CHECK(ef <= 1e-12, "%s: batched vs single forward %g", m->spec, ef);
        CHECK(eref <= 1e-12, "%s: forward vs reference %g", m->spec, eref);
        CHECK(eg <= 1e-12, "%s: batched vs summed single backward %g", m->spec, eg);
        /* n = 0: grad is zero, output untouched */
        out[0] = 123.0;
        mf_model_forward(m, w, theta, x, 0, out);
        mf_model_backward(m, w, theta, x, 0, r, g);
        double gmax = 0;
        for (size_t k = 0; k < P; k++) gmax = fmax(gmax, fabs(g[k]));
        CHECK(gmax == 0.0 && out[0] == 123.0, "%s: n = 0: max |grad| %g, out %g", m->spec, gmax, out[0]);
        free(theta);
        free(x);
        free(g);
        free(g1);
        free(gs);
        mf_work_free(w);
        mf_work_free(w1);
        mf_model_free(m);
    }
}

/* Batched forward/backward against one sample at a time (the single-sample
 * passes on w1) and the forward against the independent reference: the max
 * relative forward error *eref and the max gradient error *eg relative to the
 * gradient's scale. out [n][n_out], g [P] are the batched results. */
static void batch_vs_single(const mf_model *m, mf_work *w, mf_work *w1, const double *theta,
                            const double *x, int n, const double *r, double *eref, double *eg) {
    size_t P = m->n_params;
    int C = m->n_out, d = m->d;
    double *g = malloc(P * sizeof *g), *g1 = malloc(P * sizeof *g1), *gs = calloc(P, sizeof *gs);
    double *out = malloc((size_t)n * C * sizeof *out), o1[16], oref[16], gscale = 0;
    mf_model_forward(m, w, theta, x, n, out);
    mf_model_backward(m, w, theta, x, n, r, g);
    *eref = *eg = 0;
    for (int i = 0; i < n; i++) {
        mf_model_forward(m, w1, theta, x + (size_t)i * d, 1, o1);
        mf_model_backward(m, w1, theta, x + (size_t)i * d, 1, r + i * C, g1);
        ref_forward(m, theta, x + (size_t)i * d, oref, NULL);
        for (size_t k = 0; k < P; k++) gs[k] += g1[k];
        for (int j = 0; j < C; j++)
            *eref = fmax(*eref, fabs(oref[j] - out[i * C + j]) / fmax(1, fabs(oref[j])));
    }
    for (size_t k = 0; k < P; k++) gscale = fmax(gscale, fabs(gs[k]));
    for (size_t k = 0; k < P; k++) *eg = fmax(*eg, fabs(gs[k] - g[k]) / fmax(1, gscale));
    free(g), free(g1), free(gs), free(out);
}

/* Sizes large enough for the BLAS path (m*n*k well above the loop threshold): forward
 * against the reference, batched against one at a time (the single-sample
 * passes stay on the loop path), finite differences on 80 random coords. */
TEST(blas_path) {
    static const mcase B[] = {
        {"mlp:widths=64/48,alpha=0.2", 3, 0}, {"mlp:widths=40", 0, 0}, {"relu2:width=64,alpha=0.1,bias", 0, 0},
        {"relu2:width=64,fix-outer,bias", 0, 0}, {"relu2-outbias:width=64,alpha=0", 0, 0},
        {"fc-linear:depth=3,width=40", 2, 0}, {"linear", 5, 0}, {"diag:depth=2", 0, 0},
        /* 256 x 121 x 40 = 1.24e6 multiply-adds: above MF__BIG_GEMM (1e6), so
         * relu2's backward takes its large-size (transposed dW) path */
        {"relu2:width=256,alpha=0.1,bias", 0, 0},
    };
    mf_rng rng;
    mf_rng_seed(&rng, 99);
    const int n = 40, d = 120;
    double *x = malloc((size_t)n * d * sizeof *x);
    for (size_t t = 0; t < sizeof B / sizeof B[0]; t++) {
        mf_model *m = parse_ok(B[t].spec, d, B[t].C);
        if (!m) continue;
        size_t P = m->n_params;
        int C = m->n_out;
        mf_work *w = work_ok(m, n), *w1 = work_ok(m, 1);
        double *theta = malloc(P * sizeof *theta), r[200], eref, eg;
        mf_model_init(m, "gauss", 1.0 / sqrt(d), &rng, theta, NULL);
        randn(&rng, x, (size_t)n * d, 1.0);
        randn(&rng, r, (size_t)n * C, 1.0);
        batch_vs_single(m, w, w1, theta, x, n, r, &eref, &eg);
        CHECK(eref <= 1e-12, "%s: forward vs reference %g", m->spec, eref);
        CHECK(eg <= 1e-12, "%s: batched vs summed single backward %g", m->spec, eg);
        size_t coords[80];
        for (int q = 0; q < 80; q++) coords[q] = (size_t)(mf_rng_uniform(&rng) * (double)P);
        double worst = gradcheck(m, w, theta, x, n, &rng, coords, 80);
        CHECK(worst <= 1e-6, "%s: BLAS-path finite differences max rel err %g", m->spec, worst);
        printf("  blas %-36s n_params %6zu  ref %.1e  batch %.1e  fd %.2e\n", m->spec, P, eref, eg,
               worst);
        free(theta);
        mf_work_free(w);
        mf_work_free(w1);
        mf_model_free(m);
    }
    free(x);
}

/* ----------------------------------------------------------------- kinks */

/*
 * At theta with a pre-activation exactly 0, for every coordinate i the
 * backward value g_i must lie in the closed interval between the one-sided
 * quotients (f(theta + h e_i) - f(theta)) / h and (f(theta) - f(theta - h
 * e_i)) / h (tolerance 1e-6). The kink points below have one zero pre-
 * activation per direction, or stacked kinks coupled with a positive weight,
 * where the chain rule with sigma'(0) = alpha picks a one-sided derivative.
 * (With a negative coupling between two stacked kinks the chain-rule value
 * can leave that interval, as for any fixed choice of sigma'(0).)
 * Returns the number of coordinates outside.
 */
static int kink_check(const mf_model *m, const double *theta0, const double *x, int n,
                      const double *r, double *g) {
    size_t P = m->n_params;
    mf_work *w = work_ok(m, n);
    double *theta = malloc(P * sizeof *theta), out[16];
    memcpy(theta, theta0, P * sizeof *theta);
    fctx c = {m, w, n, x, r, out};
    double f0 = fval(&c, theta);
    mf_model_backward(m, w, theta, x, n, r, g);
    int bad = 0;
    const double h = 1e-7;
    for (size_t i = 0; i < P; i++) {
        theta[i] = theta0[i] + h;
        double qp = (fval(&c, theta) - f0) / h;
        theta[i] = theta0[i] - h;
        double qm = (f0 - fval(&c, theta)) / h;
        theta[i] = theta0[i];
        double lo = fmin(qp, qm) - 1e-6, hi = fmax(qp, qm) + 1e-6;
        if (!(g[i] >= lo && g[i] <= hi)) {
            bad++;
            fprintf(stderr, "  kink %s coord %zu: backward %.10g not in [%.10g, %.10g]\n", m->spec, i,
                    g[i], qm, qp);
        }
    }
    free(theta);
    mf_work_free(w);
    return bad;
}

TEST(kinks) {
    static const double alphas[] = {0.0, 0.3, 0.5};
    for (int ai = 0; ai < 3; ai++) {
        double A = alphas[ai];
        char spec[64];
        /* Case D's limit: w1 = (1, 0), w2 = (0, 1), a = (1, 1); x1 = (1, 0) has
         * <w2, x1> = 0 and x2 = (0, 1) has <w1, x2> = 0. */
        snprintf(spec, sizeof spec, "relu2:width=2,alpha=%g", A);
        mf_model *m = parse_ok(spec, 2, 0);
        if (m) {
            double th[] = {1, 0, 0, 1, 1, 1}, x[] = {1, 0, 0, 1}, r[] = {0.7, -1.3}, g[6];
            int bad = kink_check(m, th, x, 2, r, g);
            CHECK_EQ_INT(bad, 0);
            /* W[0][1]: z = <w1, x2> = W01 moves across 0; used slope is alpha:
             * dPhi/dW01 = r2 * a1 * sigma'(0) * x2_1 = -1.3 * alpha */
            CHECK_NEAR(g[1], -1.3 * A, 1e-15);
            CHECK_NEAR(g[2], 0.7 * A, 1e-15); /* W[1][0] at x1 */
            /* a: sigma(z) summed: a1 sees (1, 0), a2 sees (0, 1) */
            CHECK_NEAR(g[4], 0.7, 1e-15);
            CHECK_NEAR(g[5], -1.3, 1e-15);
            mf_model_free(m);
        }
        /* Random-dimension relu2 with bias: w_0 = (2, -1, 0.7), bias 0, is
         * orthogonal to x_0 = (1, 2, 0). */
        snprintf(spec, sizeof spec, "relu2:width=4,alpha=%g,bias", A);
        m = parse_ok(spec, 3, 0);
        if (m) {
            mf_rng rng;
            mf_rng_seed(&rng, 5 + ai);
            double th[20], x[9], r[3], g[20], mn, o;
            mf_model_init(m, "gauss", 1.0, &rng, th, NULL);
            th[0] = 2, th[1] = -1, th[2] = 0.7, th[3] = 0;
            x[0] = 1, x[1] = 2, x[2] = 0;
            randn(&rng, x + 3, 6, 1.0);
            randn(&rng, r, 3, 1.0);
            ref_forward(m, th, x, &o, &mn);
            CHECK(mn == 0.0, "constructed kink: min |z| = %g", mn);
            CHECK_EQ_INT(kink_check(m, th, x, 3, r, g), 0);
            /* dPhi/dW[0][1] at sample 0 only through the kink: r0 * a0 * alpha * x0_1 */
            double other = 0;
            for (int i = 1; i < 3; i++) {
                double z = th[3];
                for (int j = 0; j < 3; j++) z += th[j] * x[i * 3 + j];
                other += r[i] * th[16] * (z > 0 ? 1 : A) * x[i * 3 + 1];
            }
            CHECK_NEAR(g[1], r[0] * th[16] * A * 2 + other, 1e-13);
            mf_model_free(m);
        }
        /* mlp with a kink in each hidden layer: x0 = (1, 2),
         * W1 = [[1,1],[2,-1],[-1,0]]  -> z1 = (3, 0, -1), h1 = (3, 0, -A);
         * W2 = [[A, 7, 3], [0.5, -1, 0.25]] -> u = (0, 1.5 - 0.25 A);
         * W3 = [[1.5, -0.75]]. x1 = (-0.6, 1.3) is smooth. */
        snprintf(spec, sizeof spec, "mlp:widths=3/2,alpha=%g", A);
        m = parse_ok(spec, 2, 0);
        if (m) {
            double th[] = {1, 1, 2, -1, -1, 0, A, 7, 3, 0.5, -1, 0.25, 1.5, -0.75};
            double x[] = {1, 2, -0.6, 1.3}, r[] = {1.0, -0.8}, g[14], o, mn;
            CHECK_EQ_INT(m->n_params, 14);
            ref_forward(m, th, x, &o, &mn);
            CHECK(mn == 0.0, "constructed mlp kink: min |z| = %g", mn);
            ref_forward(m, th, x + 2, &o, &mn);
            CHECK(mn > 0.05, "smooth mlp sample: min |z| = %g", mn);
            CHECK_EQ_INT(kink_check(m, th, x, 2, r, g), 0);
            mf_model_free(m);
        }
    }
}

/* ------------------------------------------------- homogeneity and Euler */

TEST(homogeneity) {
    mf_rng rng;
    mf_rng_seed(&rng, 31);
    const int n = 5;
    static const double cs[] = {0.5, 2.0, 3.7};
    for (int t = 0; t < N_ALL; t++) {
        const int d = ALL[t].d ? ALL[t].d : 3;
        mf_model *m = parse_ok(ALL[t].spec, d, ALL[t].C);
        if (!m) continue;
        size_t P = m->n_params;
        int no = n * m->n_out;
        mf_work *w = work_ok(m, n);
        double *th = malloc(P * sizeof *th), *thc = malloc(P * sizeof *thc),
               *x = malloc((size_t)n * d * sizeof *x), o[15], oc[15];
        mf_model_init(m, "gauss", 1.0, &rng, th, NULL);
        randn(&rng, x, (size_t)n * d, 1.0);
        mf_model_forward(m, w, th, x, n, o);
        double worst = 0, least = INFINITY;
        for (int ci = 0; ci < 3; ci++) {
            double c = cs[ci], cL = pow(c, m->degree);
            for (size_t k = 0; k < P; k++) thc[k] = c * th[k];
            mf_model_forward(m, w, thc, x, n, oc);
            for (int i = 0; i < no; i++) {
                double rel = fabs(oc[i] - cL * o[i]) / fabs(cL * o[i]);
                if (!(rel <= worst)) worst = rel;
                if (rel < least) least = rel;
            }
        }
        if (m->homogeneous)
            CHECK(worst <= 1e-12, "%s: Phi(c theta) vs c^L Phi: max rel err %g", m->spec, worst);
        else
            CHECK(least > 1e-3, "%s (flagged non-homogeneous): min rel deviation %g", m->spec, least);
        printf("  homog %-40s L=%d  %s  rel dev %s %.2e\n", m->spec, m->degree,
               m->homogeneous ? "homogeneous    " : "NOT homogeneous", m->homogeneous ? "max" : "min",
               m->homogeneous ? worst : least);
        free(th);
        free(thc);
        free(x);
        mf_work_free(w);
        mf_model_free(m);
    }
}

/* <grad Phi_j(theta; x), theta> = L Phi_j(theta; x) per sample and output;
 * returns the max relative error. */
static double euler_err(const mf_model *m, const double *th, const double *x, int n) {
    size_t P = m->n_params;
    int C = m->n_out;
    mf_work *w = work_ok(m, 1);
    double *g = malloc(P * sizeof *g), o[16], dout[16], worst = 0;
    for (int i = 0; i < n; i++) {
        mf_model_forward(m, w, th, x + (size_t)i * m->d, 1, o);
        for (int j = 0; j < C; j++) {
            for (int k = 0; k < C; k++) dout[k] = k == j;
            mf_model_backward(m, w, th, x + (size_t)i * m->d, 1, dout, g);
            double s = 0;
            for (size_t k = 0; k < P; k++) s += g[k] * th[k];
            double want = m->degree * o[j];
            double rel = fabs(s - want) / fmax(fabs(want), 1e-300);
            if (!(rel <= worst)) worst = rel;
        }
    }
    free(g);
    mf_work_free(w);
    return worst;
}

TEST(euler_identity) {
    mf_rng rng;
    mf_rng_seed(&rng, 77);
    const int n = 5;
    for (int t = 0; t < N_ALL; t++) {
        const int d = ALL[t].d ? ALL[t].d : 3;
        mf_model *m = parse_ok(ALL[t].spec, d, ALL[t].C);
        if (!m) continue;
        double *th = malloc(m->n_params * sizeof *th), *x = malloc((size_t)n * d * sizeof *x);
        mf_model_init(m, "gauss", 1.0, &rng, th, NULL);
        randn(&rng, x, (size_t)n * d, 1.0);
        double err = euler_err(m, th, x, n);
        if (m->homogeneous) {
            CHECK(err <= 1e-10, "%s: Euler identity max rel err %g", m->spec, err);
        } else {
            CHECK(err > 1e-3, "%s: Euler identity holds (%g) for a non-homogeneous model", m->spec,
                  err);
        }
        free(th);
        free(x);
        mf_model_free(m);
    }
    /* At kink points (pre-activations exactly 0). */
    mf_model *m = parse_ok("relu2:width=2,alpha=0.3", 2, 0);
    if (m) {
        double th[] = {1, 0, 0, 1, 1, -2}, x[] = {1, 0, 0, 1};
        double err = euler_err(m, th, x, 2);
        CHECK(err <= 1e-10, "relu2 at case D kink: Euler max rel err %g", err);
        mf_model_free(m);
    }
    m = parse_ok("mlp:widths=3/2,alpha=0.5", 2, 0);
    if (m) {
        double th[] = {1, 1, 2, -1, -1, 0, 0.5, 7, 3, 0.5, -1, 0.25, 1.5, -0.75}, x[] = {1, 2};
        double err = euler_err(m, th, x, 1);
        CHECK(err <= 1e-10, "mlp at a double kink: Euler max rel err %g", err);
        mf_model_free(m);
    }
}

/* ---------------------------------------------------------------- init */

TEST(init) {
    mf_model *m = parse_ok("relu2:width=5", 3, 0);
    if (m) {
        double a[20], b[20], c[20];
        mf_rng r1, r2, r3, r4;
        mf_rng_seed(&r1, 42);
        mf_rng_seed(&r2, 42);
        mf_rng_seed(&r3, 43);
        CHECK_EQ_INT(mf_model_init(m, "gauss", 0.5, &r1, a, NULL), MF_OK);
        mf_model_init(m, "gauss", 0.5, &r2, b, NULL);
        mf_model_init(m, "gauss", 0.5, &r3, c, NULL);
        CHECK(memcmp(a, b, sizeof a) == 0, "gauss init with the same seed differs");
        CHECK(memcmp(a, c, sizeof a) != 0, "gauss init with another seed is identical");
        /* theta order: entry i is the i-th normal of the stream, times scale */
        mf_rng_seed(&r4, 42);
        double z0 = mf_rng_normal(&r4), z1 = mf_rng_normal(&r4);
        CHECK_NEAR(a[0], 0.5 * z0, 0);
        CHECK_NEAR(a[1], 0.5 * z1, 0);
        mf_err e;
        CHECK_EQ_INT(mf_model_init(m, "uniform", 1.0, &r1, a, &e), MF_ERR_INVALID);
        CHECK(strstr(e.msg, "uniform") != NULL, "message: %s", e.msg);
        CHECK_EQ_INT(mf_model_init(m, "gauss", NAN, &r1, a, &e), MF_ERR_INVALID);
        CHECK_EQ_INT(mf_model_init(m, "gauss", -1.0, &r1, a, &e), MF_ERR_INVALID);
        mf_model_free(m);
    }
    /* moments of gauss on a larger model */
    m = parse_ok("mlp:widths=64/64", 32, 0);
    if (m) {
        size_t P = m->n_params;
        double *th = malloc(P * sizeof *th), s = 0, s2 = 0;
        mf_rng r;
        mf_rng_seed(&r, 1);
        mf_model_init(m, "gauss", 0.1, &r, th, NULL);
        for (size_t i = 0; i < P; i++) s += th[i], s2 += th[i] * th[i];
        double mean = s / P, var = s2 / P;
        CHECK(fabs(mean) < 5 * 0.1 / sqrt((double)P), "gauss mean %g (n=%zu)", mean, P);
        CHECK_NEAR(var, 0.01, 0.01 * 5 * sqrt(2.0 / P));
        free(th);
        mf_model_free(m);
    }
    /* balanced: |a_k| = ||w_k|| (bias column included), both signs, b = 0 */
    static const char *bal[] = {"relu2:width=50,alpha=0.1,bias", "relu2-outbias:width=50"};
    for (int t = 0; t < 2; t++) {
        m = parse_ok(bal[t], 3, 0);
        if (!m) continue;
        size_t P = m->n_params;
        double *th = malloc(P * sizeof *th), *th2 = malloc(P * sizeof *th2);
        mf_rng r, r2;
        mf_rng_seed(&r, 9);
        mf_rng_seed(&r2, 9);
        if (t == 1) th[P - 1] = 5.0;
        CHECK_EQ_INT(mf_model_init(m, "balanced", 0.7, &r, th, NULL), MF_OK);
        mf_model_init(m, "balanced", 0.7, &r2, th2, NULL);
        CHECK(memcmp(th, th2, P * sizeof *th) == 0, "%s: balanced init not deterministic", bal[t]);
        const mf_layer *W = &m->layers[0], *A = &m->layers[1];
        int pos = 0;
        double worst = 0;
        for (int k = 0; k < W->rows; k++) {
            double s = 0;
            const double *wk = th + W->offset + (size_t)k * W->cols;
            for (int j = 0; j < W->cols; j++) s += wk[j] * wk[j];
            double ak = th[A->offset + k];
            worst = fmax(worst, fabs(fabs(ak) - sqrt(s)));
            pos += ak > 0;
        }
        CHECK(worst == 0.0, "%s: max | |a_k| - ||w_k|| | = %g", bal[t], worst);
        CHECK(pos >= 10 && pos <= 40, "%s: %d positive of 50 outer weights", bal[t], pos);
        if (t == 1) CHECK_NEAR(th[P - 1], 0.0, 0);
        /* the W entries are the gauss stream scaled by 0.7 */
        mf_rng_seed(&r2, 9);
        CHECK_NEAR(th[0], 0.7 * mf_rng_normal(&r2), 0);
        free(th);
        free(th2);
        mf_model_free(m);
    }
    static const char *nobal[] = {"mlp:widths=4", "relu2:width=3,fix-outer", "linear", "diag"};
    for (int t = 0; t < 4; t++) {
        m = parse_ok(nobal[t], 3, 0);
        if (!m) continue;
        double th[64];
        mf_rng r;
        mf_err e;
        mf_rng_seed(&r, 1);
        CHECK_EQ_INT(mf_model_init(m, "balanced", 1.0, &r, th, &e), MF_ERR_UNSUPPORTED);
        CHECK(strstr(e.msg, "balanced") != NULL, "message: %s", e.msg);
        mf_model_free(m);
    }
}

/* ------------------------------------------------------- layout, norms */

TEST(layout_and_norms) {
    /* norms stay exact far outside the range of a plain sum of squares */
    mf_model *lin = parse_ok("linear", 2, 0);
    if (lin) {
        static const double scales[4] = {1e200, 1e-200, 1e300, 1};
        for (int k = 0; k < 4; k++) {
            double th[2] = {3 * scales[k], 4 * scales[k]};
            CHECK_NEAR(mf_param_norm(lin, th) / (5 * scales[k]), 1.0, 1e-15);
            CHECK_NEAR(mf_layer_norm(lin, th, 0) / (5 * scales[k]), 1.0, 1e-15);
        }
        mf_model_free(lin);
    }
    mf_model *m = parse_ok("relu2:width=2", 2, 0);
    if (!m) return;
    const char *want = "# model relu2:width=2,alpha=0, n_params 6, degree 2\n"
                       "0 W[0][0]\n1 W[0][1]\n2 W[1][0]\n3 W[1][1]\n4 a[0][0]\n5 a[0][1]\n";
    char buf[512];
    size_t len = mf_model_layout(m, buf, sizeof buf);
    CHECK(strcmp(buf, want) == 0, "layout:\n%s\nwant:\n%s", buf, want);
    CHECK_EQ_INT(len, strlen(want));
    char small[10];
    CHECK_EQ_INT(mf_model_layout(m, small, sizeof small), strlen(want));
    CHECK(strncmp(small, want, 9) == 0 && small[9] == '\0', "truncated: \"%s\"", small);
    CHECK_EQ_INT(mf_model_layout(m, NULL, 0), strlen(want));
    double th[] = {1, -1, -1, 1, 1, 1};
    CHECK_NEAR(mf_layer_norm(m, th, 0), 2.0, 1e-15);
    CHECK_NEAR(mf_layer_norm(m, th, 1), sqrt(2.0), 1e-15);
    CHECK_NEAR(mf_param_norm(m, th), sqrt(6.0), 1e-15);
    CHECK(isnan(mf_layer_norm(m, th, 2)), "out-of-range layer norm should be NaN");
    mf_model_free(m);
    /* line count and a line of a multi-layer model */
    m = parse_ok("mlp:widths=3", 2, 2);
    if (m) {
        size_t need = mf_model_layout(m, NULL, 0);
        char *b = malloc(need + 1);
        CHECK_EQ_INT(mf_model_layout(m, b, need + 1), need);
        int lines = 0;
        for (char *p = b; *p; p++) lines += *p == '\n';
        CHECK_EQ_INT(lines, (long long)m->n_params + 1);
        CHECK(strstr(b, "\n6 W2[0][0]\n") && strstr(b, "\n11 W2[1][2]\n"), "layout:\n%s", b);
        CHECK(strstr(b, "# model mlp:widths=3,alpha=0, n_params 12, degree 2\n") == b, "header: %s", b);
        free(b);
        mf_model_free(m);
    }
}

/* ------------------------------------------------------ allocation hook */

static int g_alloc_left = -1;
static void *fail_malloc(size_t n) {
    if (g_alloc_left == 0) return NULL;
    if (g_alloc_left > 0) g_alloc_left--;
    return malloc(n);
}
static void *fail_realloc(void *p, size_t n) {
    if (g_alloc_left == 0) return NULL;
    if (g_alloc_left > 0) g_alloc_left--;
    return realloc(p, n);
}

TEST(allocation_failures) {
    int failures = 0, k;
    for (k = 0; k < 10; k++) {
        g_alloc_left = k;
        mf_set_allocator(fail_malloc, fail_realloc, free);
        mf_model *m = NULL;
        mf_work *w = NULL;
        mf_err e;
        int rc = mf_model_parse("mlp:widths=4/4", 3, 0, &m, &e);
        if (rc == MF_OK) rc = mf_work_new(m, 8, &w, &e);
        mf_set_allocator(NULL, NULL, NULL);
        if (rc == MF_OK) {
            CHECK(w != NULL, "work NULL on success");
            mf_work_free(w);
            mf_model_free(m);
            break;
        }
        failures++;
        CHECK_EQ_INT(rc, MF_ERR_NOMEM);
        CHECK(w == NULL, "work not NULL after failure %d", k);
        mf_model_free(m);
    }
    CHECK_EQ_INT(failures, 3); /* model, workspace struct, workspace block */
    mf_work *w = (mf_work *)&w;
    mf_model *m = parse_ok("linear", 2, 0);
    CHECK_EQ_INT(mf_work_new(m, 0, &w, NULL), MF_ERR_INVALID);
    CHECK(w == NULL, "work not reset");
    mf_model_free(m);
}

/* relu2's backward by subset-sum tables (relu2_table_dw) equals the dense
 * products on every relu2 variant, for batch sizes around the 4-sample
 * chunks, with table groups of 1, 2 and 3 chunks (many groups, partial last
 * group) and the default; samples with x = 0 put every pre-activation
 * exactly on the kink (sigma'(0) = alpha on both paths). The multi-group path
 * also passes central differences at a smooth point. */
TEST(relu2_tables) {
    static const char *specs[] = {"relu2:width=7",         "relu2:width=6,alpha=0.3",
                                  "relu2:width=5,bias",    "relu2:width=6,alpha=0.2,bias",
                                  "relu2:width=6,fix-outer", "relu2:width=4,alpha=1,bias",
                                  "relu2-outbias:width=5,alpha=0.25"};
    static const int ns[] = {1, 3, 4, 5, 7, 8, 9, 33, 101, 300};
    static const int ds[] = {1, 3, 20};
    mf_rng rng;
    mf_rng_seed(&rng, 11);
    double worst = 0;
    int cases = 0;
    for (size_t t = 0; t < sizeof specs / sizeof *specs; t++)
        for (size_t a = 0; a < sizeof ds / sizeof *ds; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
                const int n = ns[b], d = ds[a];
                mf_model *m = parse_ok(specs[t], d, 0);
                if (!m) continue;
                mf_work *w = work_ok(m, n);
                size_t P = m->n_params;
                double *theta = malloc(P * sizeof *theta), *gd = malloc(P * sizeof *gd),
                       *gt = malloc(P * sizeof *gt), *x = malloc((size_t)n * d * sizeof *x),
                       *r = malloc((size_t)n * sizeof *r), *out = malloc((size_t)n * sizeof *out);
                mf_model_init(m, "gauss", 1.0, &rng, theta, NULL);
                randn(&rng, x, (size_t)n * d, 1.0);
                randn(&rng, r, (size_t)n, 1.0);
                for (int i = 2; i < n; i += 5) memset(x + (size_t)i * d, 0, d * sizeof *x);
                int dflt = mf__work_table_chunks(w, 1); /* the forward writes b_ji */
                CHECK(dflt == 0, "%s: width < 64 uses tables by default", m->spec);
                mf_model_forward(m, w, theta, x, n, out);
                mf__work_table_chunks(w, 0);
                mf_model_backward(m, w, theta, x, n, r, gd);
                static const int chunks[] = {1, 2, 3, 1 << 30};
                for (size_t q = 0; q < 4; q++) {
                    mf__work_table_chunks(w, chunks[q]);
                    for (size_t k = 0; k < P; k++) gt[k] = NAN;
                    mf_model_backward(m, w, theta, x, n, r, gt);
                    double e = 0;
                    for (size_t k = 0; k < P; k++)
                        e = fmax(e, fabs(gt[k] - gd[k]) / fmax(1, fabs(gd[k])));
                    if (!(e <= worst)) worst = e;
                    cases++;
                    CHECK(e <= 1e-12, "%s: n %d, d %d, %d chunks per group: table vs dense %g",
                          m->spec, n, d, chunks[q], e);
                }
                free(theta);
                free(gd);
                free(gt);
                free(x);
                free(r);
                free(out);
                mf_work_free(w);
                mf_model_free(m);
            }
    printf("  relu2 tables vs dense: %d cases, worst rel. diff %.1e\n", cases, worst);
    /* central differences through the multi-group path */
    for (size_t t = 0; t < sizeof specs / sizeof *specs; t++) {
        const int n = 13, d = 3;
        mf_model *m = parse_ok(specs[t], d, 0);
        mf_work *w = work_ok(m, n);
        double *theta = malloc(m->n_params * sizeof *theta), x[13 * 3];
        draw_smooth(m, &rng, theta, x, n);
        mf__work_table_chunks(w, 1);
        double e = gradcheck(m, w, theta, x, n, &rng, NULL, 0);
        CHECK(e <= 1e-6, "%s: table path (1 chunk per group) finite differences %g", m->spec, e);
        free(theta);
        mf_work_free(w);
        mf_model_free(m);
    }
}

/* Row k of the registry is the table of kind k, its name parses to kind k,
 * and every table has the entries a model must have. */
TEST(registry) {
    CHECK_EQ_INT(mf__n_models(), 8);
    for (int k = 0; k < mf__n_models(); k++) {
        const mf__model_ops *o = mf__model_ops_at(k);
        CHECK(o != NULL, "row %d", k);
        if (!o) continue;
        CHECK_EQ_INT(o->kind, k);
        CHECK(o->name && o->options && o->options_help && o->layout && o->work_plan && o->work_bind &&
                  o->forward && o->backward && o->work_state > 0,
              "table %s incomplete", o->name);
        char spec[64];
        snprintf(spec, sizeof spec, "%s%s", o->name,
                 !strcmp(o->name, "mlp") ? ":widths=2" : !strcmp(o->name, "cnn") ? ":layers=f1" : "");
        mf_model *m = parse_ok(spec, 3, 0);
        if (m) {
            CHECK_EQ_INT(m->kind, k);
            CHECK(mf__model_ops_of(m) == o, "ops_of(%s)", o->name);
        }
        mf_model_free(m);
    }
    CHECK(mf__model_ops_at(-1) == NULL && mf__model_ops_at(mf__n_models()) == NULL, "out of range");
}

/* mf_model_units: relu2 (plain, bias, fix-outer) and relu2-outbias are
 * two-layer nets with the documented layers; the others are not. */
TEST(units_view) {
    static const struct {
        const char *spec;
        int is_two, n_units, in_bias, a_layer, b_layer;
    } T[] = {
        {"relu2:width=5", 1, 5, 0, 1, -1},
        {"relu2:width=4,bias", 1, 4, 1, 1, -1},
        {"relu2:width=3,fix-outer", 1, 3, 0, -1, -1},
        {"relu2-outbias:width=6", 1, 6, 0, 1, 2},
        {"linear", 0, 0, 0, -1, -1},
        {"fc-linear", 0, 0, 0, -1, -1},
        {"diag", 0, 0, 0, -1, -1},
        {"mlp:widths=3", 0, 0, 0, -1, -1},
        {"skip-linear", 0, 0, 0, -1, -1},
    };
    for (size_t t = 0; t < sizeof T / sizeof T[0]; t++) {
        mf_model *m = parse_ok(T[t].spec, 3, 0);
        if (!m) continue;
        mf_units u;
        CHECK_EQ_INT(mf_model_units(m, &u), T[t].is_two);
        CHECK_EQ_INT(u.n_units, T[t].n_units);
        CHECK_EQ_INT(u.in_bias, T[t].in_bias);
        CHECK_EQ_INT(u.a_layer, T[t].a_layer);
        CHECK_EQ_INT(u.b_layer, T[t].b_layer);
        CHECK_EQ_INT(u.w_layer, T[t].is_two ? 0 : -1);
        if (T[t].is_two) {
            const mf_layer *W = &m->layers[u.w_layer];
            CHECK_EQ_INT(W->rows, u.n_units);
            CHECK_EQ_INT(W->cols, 3 + u.in_bias);
            double *th = calloc(m->n_params, sizeof *th);
            for (size_t i = 0; i < m->n_params; i++) th[i] = 0.5 + (double)i;
            for (int k = 0; k < u.n_units; k++) {
                double want = u.a_layer >= 0 ? th[m->layers[u.a_layer].offset + (size_t)k]
                                             : (k % 2 == 0 ? 1.0 : -1.0);
                CHECK_NEAR(mf_units_outer(m, &u, th, k), want, 0.0);
            }
            free(th);
        }
        mf_model_free(m);
    }
    CHECK(mf_units_fixed_outer(0) == 1.0 && mf_units_fixed_outer(1) == -1.0 &&
              mf_units_fixed_outer(6) == 1.0 && mf_units_fixed_outer(7) == -1.0,
          "fixed outer weights +1, -1, ...");
}

/* ----------------------------------------------------------------- cnn */

/* The paper-size nets through the BLAS kernels: cnn:mnist (3.2M parameters)
 * and cnn:small on 28x28 images, bias1 and bias variants: forward against the
 * direct-loop reference, batched against one sample at a time, central
 * differences on 60 random coordinates of every layer. */
TEST(cnn_paper_nets) {
    static const mcase B[] = {{"cnn:mnist", 10, 784}, {"cnn:small,bias1", 10, 784},
                              {"cnn:small,bias", 0, 784}};
    if (getenv("MF_VALGRIND")) { /* tests/valgrind: 3.2M parameters take ~15 min under memcheck; the
                                    same kernels run on the small cnn cases of ALL above */
        printf("  cnn paper-size nets: skipped under valgrind (run natively and under ASan)\n");
        return;
    }
    mf_rng rng;
    mf_rng_seed(&rng, 123);
    const int n = 3;
    for (size_t t = 0; t < sizeof B / sizeof B[0]; t++) {
        mf_model *m = parse_ok(B[t].spec, B[t].d, B[t].C);
        if (!m) continue;
        size_t P = m->n_params;
        int C = m->n_out, d = m->d;
        mf_work *w = work_ok(m, n), *w1 = work_ok(m, 1);
        double *theta = malloc(P * sizeof *theta), *x = malloc((size_t)n * d * sizeof *x), r[30];
        double eref, eg;
        mf_model_init(m, "he", 1.0, &rng, theta, NULL);
        for (size_t k = 0; k < P; k++) theta[k] += 0.01 * mf_rng_normal(&rng); /* biases too */
        for (int k = 0; k < n * d; k++) x[k] = mf_rng_uniform(&rng);
        randn(&rng, r, (size_t)n * C, 1.0);
        batch_vs_single(m, w, w1, theta, x, n, r, &eref, &eg);
        CHECK(eref <= 1e-12, "%s: forward vs reference %g", m->spec, eref);
        CHECK(eg <= 1e-12, "%s: batched vs summed single backward %g", m->spec, eg);
        size_t coords[60];
        for (int q = 0; q < 60; q++) { /* 15 per layer */
            const mf_layer *ly = &m->layers[q % m->n_layers];
            coords[q] = ly->offset + (size_t)(mf_rng_uniform(&rng) * ly->rows * ly->cols);
        }
        double worst = gradcheck(m, w, theta, x, n, &rng, coords, 60);
        CHECK(worst <= 1e-6, "%s: finite differences max rel err %g", m->spec, worst);
        printf("  cnn %-22s n_params %8zu  ref %.1e  batch %.1e  fd %.2e\n", B[t].spec, P, eref, eg,
               worst);
        free(theta), free(x);
        mf_work_free(w);
        mf_work_free(w1);
        mf_model_free(m);
    }
}

/* Kinks of a cnn: a max-pool tie and a ReLU pre-activation at exactly 0.
 * The backward value lies between the one-sided difference quotients
 * (kink_check) and is the documented one: the first maximal entry of the
 * window, ReLU'(0) = 0. */
TEST(cnn_kinks) {
    /* input 2x2x2, a 1x1 conv w = (1, 1) over the channels: pixel values
     * (1 + 0, 0 + 1, 0, 0) = (1, 1, 0, 0): the pool window ties at 1. */
    mf_model *m = parse_ok("cnn:layers=c1k1,p2,f1,input=2x2x2", 8, 0);
    if (m) {
        double th[] = {1, 1, 1.5}, x[] = {1, 0, 0, 0, 0, 1, 0, 0}, r[] = {1.0}, g[3];
        CHECK_EQ_INT(kink_check(m, th, x, 1, r, g), 0);
        CHECK_NEAR(g[0], 1.5, 0); /* the first maximal pixel (0, 0) takes the gradient: x = 1 */
        CHECK_NEAR(g[1], 0.0, 0); /* its channel-1 value is 0 */
        CHECK_NEAR(g[2], 1.0, 0);
        mf_model_free(m);
    }
    /* input 2x1x1, conv w = (1, 1) on x = (1, -1): pre-activation 0 exactly */
    m = parse_ok("cnn:layers=c1k1,f1,input=2x1x1", 2, 0);
    if (m) {
        double th[] = {1, 1, 2.0}, x[] = {1, -1}, r[] = {1.0}, g[3];
        CHECK_EQ_INT(kink_check(m, th, x, 1, r, g), 0);
        CHECK(g[0] == 0.0 && g[1] == 0.0 && g[2] == 0.0, "ReLU'(0) = 0: grad %g %g %g", g[0], g[1],
              g[2]);
        mf_model_free(m);
    }
    /* both at once, in a 3x3 conv net with a bias: random theta with the
     * first conv's bias set so that one pre-activation is 0, and two equal
     * pixels in a window of the second layer's input */
    m = parse_ok("cnn:layers=c2k1,p2,f2,bias1,input=1x2x2", 4, 2);
    if (m) {
        /* conv [2][2] (w, b): channel 0 = relu(x - 2): x = (2, 3, 3, 1) -> (0, 1, 1, 0):
         * a zero pre-activation at pixel 0 and a tie (1, 1) at pixels 1, 2 */
        double th[] = {1, -2, 0.5, 0.25, 1, -1, 2, 3}, x[] = {2, 3, 3, 1}, r[] = {0.3, -0.7}, g[8];
        CHECK_EQ_INT(kink_check(m, th, x, 1, r, g), 0);
        mf_model_free(m);
    }
}

/* d out / d x by backward_input against central differences in x, for the
 * cnn cases of ALL and cnn:small; other models answer MF_ERR_UNSUPPORTED. */
TEST(cnn_input_gradient) {
    mf_rng rng;
    mf_rng_seed(&rng, 9);
    for (int t = 0; t <= N_ALL; t++) {
        const int n = t < N_ALL ? 3 : 1; /* cnn:small: one image (fewer redraws to avoid kinks) */
        const char *spec = t < N_ALL ? ALL[t].spec : "cnn:small";
        int C = t < N_ALL ? ALL[t].C : 10, d = t < N_ALL ? ALL[t].d : 784;
        if (strncmp(spec, "cnn:", 4)) continue;
        mf_model *m = parse_ok(spec, d, C);
        if (!m) continue;
        mf_work *w = work_ok(m, n);
        int no = n * m->n_out;
        double *theta = malloc(m->n_params * sizeof *theta), *x = malloc((size_t)n * d * sizeof *x),
               *gx = malloc((size_t)n * d * sizeof *gx), r[30], out[30];
        int tries = draw_smooth(m, &rng, theta, x, t == N_ALL ? 1 : n);
        if (t == N_ALL) printf("  cnn:small input gradient: %d redraws\n", tries);
        if (t == N_ALL) /* cnn:small (no bias): outputs of O(1) for the differences; the
                           signs of all pre-activations stay (homogeneity) */
            for (size_t k = 0; k < m->n_params; k++) theta[k] *= 0.25;
        randn(&rng, r, (size_t)no, 1.0);
        fctx c = {m, w, n, x, r, out};
        fval(&c, theta);
        CHECK_EQ_INT(mf_model_backward_input(m, w, theta, x, n, r, gx), MF_OK);
        double worst = 0;
        int cnt = d * n < 120 ? d * n : 120;
        for (int q = 0; q < cnt; q++) {
            int i = d * n <= 120 ? q : (int)(mf_rng_uniform(&rng) * n * d);
            double x0 = x[i], h = 1e-6;
            x[i] = x0 + h;
            double fp = fval(&c, theta);
            x[i] = x0 - h;
            double fm = fval(&c, theta);
            x[i] = x0;
            double fd = (fp - fm) / (2 * h), rel = fabs(gx[i] - fd) / fmax(1, fabs(fd));
            if (!(rel <= worst)) worst = rel;
        }
        CHECK(worst <= 1e-6, "%s: input gradient vs central differences %g", m->spec, worst);
        free(theta), free(x), free(gx);
        mf_work_free(w);
        mf_model_free(m);
    }
    mf_model *m = parse_ok("mlp:widths=3", 2, 0);
    mf_work *w = work_ok(m, 1);
    double th[9] = {0}, x[2] = {1, 1}, o, r = 1, gx[2];
    mf_model_forward(m, w, th, x, 1, &o);
    CHECK_EQ_INT(mf_model_backward_input(m, w, th, x, 1, &r, gx), MF_ERR_UNSUPPORTED);
    mf_work_free(w);
    mf_model_free(m);
}

/* He init: weights N(0, 2 / fan_in) (standard deviation within 3% on
 * thousands of entries), biases 0; the generic version for other models. */
TEST(he_init) {
    mf_model *m = parse_ok("cnn:small,bias", 784, 10);
    if (m) {
        double *th = malloc(m->n_params * sizeof *th);
        mf_rng r;
        mf_rng_seed(&r, 4);
        CHECK_EQ_INT(mf_model_init(m, "he", 1.0, &r, th, NULL), MF_OK);
        for (int l = 0; l < m->n_layers; l++) {
            const mf_layer *ly = &m->layers[l];
            int fan = ly->cols - 1;
            double ss = 0, bmax = 0;
            for (int i = 0; i < ly->rows; i++) {
                for (int j = 0; j < fan; j++) ss += th[ly->offset + (size_t)i * ly->cols + j] *
                                                     th[ly->offset + (size_t)i * ly->cols + j];
                bmax = fmax(bmax, fabs(th[ly->offset + (size_t)i * ly->cols + fan]));
            }
            double sd = sqrt(ss / ((double)ly->rows * fan)), want = sqrt(2.0 / fan);
            if ((double)ly->rows * fan >= 1000)
                CHECK(fabs(sd / want - 1) < 0.03, "%s: sd %g, want %g", ly->name, sd, want);
            CHECK(bmax == 0.0, "%s: biases start at 0, max |b| %g", ly->name, bmax);
        }
        free(th);
        mf_model_free(m);
    }
    m = parse_ok("mlp:widths=400", 50, 0);
    if (m) {
        double *th = malloc(m->n_params * sizeof *th), ss = 0;
        mf_rng r;
        mf_rng_seed(&r, 5);
        CHECK_EQ_INT(mf_model_init(m, "he", 2.0, &r, th, NULL), MF_OK);
        for (int i = 0; i < 400 * 50; i++) ss += th[i] * th[i];
        CHECK(fabs(sqrt(ss / 20000) / (2.0 * sqrt(2.0 / 50)) - 1) < 0.03, "mlp he sd %g",
              sqrt(ss / 20000));
        free(th);
        mf_model_free(m);
    }
}

/* mf_model_preactivations of a cnn: the ReLU units layer by layer (conv:
 * channel, row, column), equal to the reference's pre-activations, and
 * |pre| <= scale (Cauchy-Schwarz). */
TEST(cnn_preactivations) {
    mf_model *m = parse_ok("cnn:layers=c2k3,p2,c3k2,f4,f2,bias1", 36, 2);
    if (!m) return;
    const int n = 2, H = mf_model_n_hidden(m);
    CHECK_EQ_INT(H, 2 * 36 + 3 * 9 + 4);
    mf_data *D = NULL;
    mf_data_new(n, 36, 2, &D, NULL);
    mf_rng r;
    mf_rng_seed(&r, 8);
    double *th = malloc(m->n_params * sizeof *th), *pre = malloc((size_t)n * H * sizeof *pre),
           *sc = malloc((size_t)n * H * sizeof *sc);
    mf_model_init(m, "gauss", 1.0, &r, th, NULL);
    randn(&r, D->x, (size_t)n * 36, 1.0);
    CHECK_EQ_INT(mf_model_preactivations(m, th, D, pre, NULL), MF_OK);
    const mf__model_ops *ops = mf__model_ops_of(m);
    CHECK_EQ_INT(ops->preact(m, th, D, NULL, sc, NULL), MF_OK);
    /* the first conv layer by hand: unit (c, i, j) of sample s */
    double worst = 0, ratio = 0;
    for (int s = 0; s < n; s++)
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) {
                    double z = th[c * 10 + 9];
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++)
                            if (i + u - 1 >= 0 && i + u - 1 < 6 && j + v - 1 >= 0 && j + v - 1 < 6)
                                z += th[c * 10 + u * 3 + v] * D->x[s * 36 + (i + u - 1) * 6 + j + v - 1];
                    worst = fmax(worst, fabs(pre[(size_t)s * H + c * 36 + i * 6 + j] - z));
                }
    for (int k = 0; k < n * H; k++) ratio = fmax(ratio, fabs(pre[k]) / sc[k]);
    CHECK(worst <= 1e-12, "first-layer pre-activations off by %g", worst);
    CHECK(ratio <= 1 + 1e-12, "max |pre| / scale = %g", ratio);
    free(th), free(pre), free(sc);
    mf_data_free(D);
    mf_model_free(m);
}

/* Forward and backward check their arguments before touching memory: a
 * batch outside [0, max_batch], NULL pointers and a workspace made for
 * another model (another width, input dimension or alpha) are refused with
 * the documented code and nothing written; an equal model parsed again is
 * accepted. */
TEST(pass_checks) {
    mf_model *m = parse_ok("relu2:width=3", 2, 0), *same = parse_ok("relu2:width=3", 2, 0);
    mf_model *wider = parse_ok("relu2:width=4", 2, 0), *d3 = parse_ok("relu2:width=3", 3, 0);
    mf_model *leaky = parse_ok("relu2:width=3,alpha=0.5", 2, 0);
    mf_work *w = NULL;
    mf_err e;
    if (!m || !same || !wider || !d3 || !leaky || mf_work_new(m, 4, &w, &e)) {
        CHECK(0, "setup failed");
        goto done;
    }
    double theta[9], x[10], out[6], grad[10], dout[5] = {1, 1, 1, 1, 1};
    for (int i = 0; i < 9; i++) theta[i] = 0.3 + 0.1 * i;
    for (int i = 0; i < 10; i++) x[i] = 1.0 - 0.25 * i;
    for (int i = 0; i < 6; i++) out[i] = 42;
    CHECK_EQ_INT(mf_model_forward(m, w, theta, x, 5, out), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_forward(m, w, theta, x, -1, out), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_forward(m, w, NULL, x, 1, out), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_forward(m, w, theta, NULL, 1, out), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_forward(m, w, theta, x, 1, NULL), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_forward(m, NULL, theta, x, 1, out), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_forward(NULL, w, theta, x, 1, out), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_forward(wider, w, theta, x, 1, out), MF_ERR_DIM);
    CHECK_EQ_INT(mf_model_forward(d3, w, theta, x, 1, out), MF_ERR_DIM);
    CHECK_EQ_INT(mf_model_forward(leaky, w, theta, x, 1, out), MF_ERR_DIM);
    CHECK_EQ_INT(mf_model_forward(m, w, theta, x, 0, out), MF_OK);
    int untouched = 1;
    for (int i = 0; i < 6; i++) untouched &= out[i] == 42;
    CHECK(untouched, "a refused or empty forward wrote into out");
    CHECK_EQ_INT(mf_model_forward(same, w, theta, x, 4, out), MF_OK);
    CHECK(out[4] == 42, "forward on 4 samples wrote out[4] = %g", out[4]);
    double o1;
    mf_work *w1 = NULL;
    if (mf_work_new(m, 1, &w1, &e) == MF_OK && mf_model_forward(m, w1, theta, x + 6, 1, &o1) == MF_OK)
        CHECK_NEAR(out[3], o1, 1e-15);
    for (int i = 0; i < 10; i++) grad[i] = 42;
    CHECK_EQ_INT(mf_model_backward(m, w, theta, x, 5, dout, grad), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_backward(m, w, theta, x, 4, NULL, grad), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_backward(m, w, theta, x, 0, dout, NULL), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_model_backward(wider, w, theta, x, 4, dout, grad), MF_ERR_DIM);
    untouched = 1;
    for (int i = 0; i < 10; i++) untouched &= grad[i] == 42;
    CHECK(untouched, "a refused backward wrote into grad");
    CHECK_EQ_INT(mf_model_backward(m, w, theta, x, 0, dout, grad), MF_OK);
    CHECK(grad[0] == 0 && grad[8] == 0 && grad[9] == 42, "backward n = 0: grad %g %g %g", grad[0],
          grad[8], grad[9]);
    CHECK_EQ_INT(mf_model_forward(m, w, theta, x, 4, out), MF_OK);
    CHECK_EQ_INT(mf_model_backward(m, w, theta, x, 4, dout, grad), MF_OK);
    CHECK(grad[9] == 42, "backward wrote beyond n_params");
    mf_work_free(w1);
    /* mf_metrics_eval runs the forward pass in the caller's workspace */
    mf_data *sym4 = NULL;
    mf_metrics mt;
    if (mf_data_from_spec("builtin:sym4", NULL, &sym4, &e) == MF_OK) {
        e.msg[0] = '\0';
        CHECK_EQ_INT(mf_metrics_eval(m, w, sym4, MF_LOSS_EXP, theta, NULL, &mt, &e), MF_ERR_INVALID);
        CHECK(strstr(e.msg, "fewer than the n = 8 samples") != NULL, "message: %s", e.msg);
    }
    mf_data_free(sym4);
done:
    mf_work_free(w);
    mf_model_free(m), mf_model_free(same), mf_model_free(wider), mf_model_free(d3);
    mf_model_free(leaky);
}

int main(void) {
    RUN(pass_checks);
    RUN(registry);
    RUN(units_view);
    RUN(parse_canonical);
    RUN(layer_tables);
    RUN(parse_errors);
    RUN(known_values);
    RUN(gradients_all_models);
    RUN(batch_equals_single);
    RUN(blas_path);
    RUN(relu2_tables);
    RUN(kinks);
    RUN(homogeneity);
    RUN(euler_identity);
    RUN(init);
    RUN(layout_and_norms);
    RUN(allocation_failures);
    RUN(cnn_paper_nets);
    RUN(cnn_kinks);
    RUN(cnn_input_gradient);
    RUN(he_init);
    RUN(cnn_preactivations);
    return TEST_REPORT();
}

/*
 * diag.c -- depth-K diagonal linear nets,
 *   Phi(x) = <w_1 o ... o w_K, x>,  w_l [d];  L = K;  binary data only,
 * the sparsity-inducing example of [VSS22] (Vardi, Shamir & Srebro, NeurIPS
 * 2022; docs/theory.md s.3-4, cases B and C). Plain loops (dgemv above
 * MF__SMALL_GEMM). Global optimum: the l1-margin LP at depth 2, an l_{2/K}
 * problem solved by vertex enumeration deeper (src/global_ref.c).
 */
#include "model_internal.h"

#include "dense.h"

#include <stdio.h>
#include <stddef.h>

/* p = prod_l w_l, g = sum_i dout_i x_i, pre/suf products, each [d]. */
typedef struct diag_work {
    double *p, *g, *pre, *suf;
} diag_work;

static int diag_plan(const mf_model *m, void *st, size_t B, size_t *doubles) {
    (void)st;
    (void)B;
    *doubles = 4 * (size_t)m->d;
    return 0;
}

static void diag_bind(const mf_model *m, void *st, double *p, size_t B) {
    diag_work *w = st;
    const size_t dd = (size_t)m->d;
    (void)B;
    w->p = p;
    w->g = p + dd;
    w->pre = p + 2 * dd;
    w->suf = p + 3 * dd;
}

/* Phi(x) = sum_j x_j prod_l w_l[j] = <p, x>, p [d] = w_1 o ... o w_K. */
static void diag_forward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                         double *out) {
    diag_work *w = st;
    const int d = m->d;
    double *p = w->p;
    for (int j = 0; j < d; j++) p[j] = theta[j];
    for (int l = 1; l < m->depth; l++)
        for (int j = 0; j < d; j++) p[j] *= theta[(size_t)l * d + j];
    if ((double)n * d > MF__SMALL_GEMM)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, d, 1.0, x, d, p, 1, 0.0, out, 1);
    else
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int j = 0; j < d; j++) s += x[(size_t)i * d + j] * p[j];
            out[i] = s;
        }
}

/* Phi = sum_j x_j prod_l w_l[j]  =>  dPhi/dw_l[j] = x_j prod_{m != l} w_m[j].
 * g [d] = sum_i dout_i x_i; grad w_l[j] = g[j] * pre_l[j] * suf_l[j] with
 * pre_l = prod_{m < l} w_m, suf_l = prod_{m > l} w_m (no division, exact at zeros). */
static void diag_backward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                          const double *dout, double *grad) {
    diag_work *w = st;
    const int K = m->depth, d = m->d;
    double *g = w->g, *pre = w->pre, *suf = w->suf;
    if ((double)n * d > MF__SMALL_GEMM) {
        cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, x, d, dout, 1, 0.0, g, 1);
    } else {
        for (int j = 0; j < d; j++) g[j] = 0.0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) g[j] += dout[i] * x[(size_t)i * d + j];
    }
    for (int j = 0; j < d; j++) pre[j] = suf[j] = 1.0;
    for (int l = 0; l < K; l++)
        for (int j = 0; j < d; j++) {
            grad[(size_t)l * d + j] = g[j] * pre[j];
            pre[j] *= theta[(size_t)l * d + j];
        }
    for (int l = K - 1; l >= 0; l--)
        for (int j = 0; j < d; j++) {
            grad[(size_t)l * d + j] *= suf[j];
            suf[j] *= theta[(size_t)l * d + j];
        }
}

static void diag_layout(mf_model *m) {
    char name[16];
    for (int l = 1; l <= m->depth; l++) {
        snprintf(name, sizeof name, "w%d", l);
        mf__model_add_layer(m, name, 1, m->d);
    }
    m->degree = m->depth;
    m->homogeneous = 1;
    snprintf(m->spec, sizeof m->spec, "diag:depth=%d", m->depth);
}

/* The margins are linear in each w_l with the others frozen. */
static int diag_layer_is_linear(const mf_model *m, int l) {
    (void)m;
    (void)l;
    return 1;
}

/* docs/theory.md s.3: depth 2 -> gamma* = gamma_l1 / 2 from the l1-margin LP;
 * depth K > 2 -> the l_{2/K} problem, exact only by vertex enumeration. */
static void diag_global_ref(const mf_model *m, const mf_data *data, mf__global_ref *r) {
    (void)data;
    if (m->depth == 2) {
        r->kind = MF__REF_L1_DIAG2;
        snprintf(r->source, sizeof r->source, "depth-2 diagonal: 1/(2 ||beta_l1||_1) from the l1 LP");
    } else if (m->depth > 2) {
        r->kind = MF__REF_DIAG_ENUM;
        r->depth = m->depth;
        snprintf(r->source, sizeof r->source,
                 "depth-%d diagonal: l_{2/%d} problem by vertex enumeration", m->depth, m->depth);
    }
}

static const mf__option diag_options[] = {
    {"depth", MF__OPT_INT, MF_MAX_LAYERS, offsetof(mf_model, depth)},
    {NULL, MF__OPT_FLAG, 0, 0}};

const mf__model_ops mf__ops_diag = {
    .kind = MF_MODEL_DIAG,
    .name = "diag",
    .options_help = "depth=K",
    .options = diag_options,
    .multiclass = 0,
    .layout = diag_layout,
    .work_state = sizeof(diag_work),
    .work_plan = diag_plan,
    .work_bind = diag_bind,
    .forward = diag_forward,
    .backward = diag_backward,
    .layer_is_linear = diag_layer_is_linear,
    .global_ref = diag_global_ref,
};

/*
 * relu2.c -- two-layer (leaky) ReLU nets:
 *
 *   relu2           Phi = sum_k a_k sigma(<w_k, x~>),   W [M][d~], a [M];  L = 2
 *                   (L = 1 with fix-outer: a_k = mf_units_fixed_outer(k) is
 *                   not trained); x~ = (x, 1) with bias, x otherwise
 *   relu2-outbias   Phi = sum_k a_k sigma(<w_k, x>) + b;  NOT homogeneous
 *
 * the objects of [LLWA21] (Lyu, Li, Wang & Arora, NeurIPS 2021) and of the
 * two-layer cases of [VSS22]. Their passes are unit-major (relu2_forward:
 * the hidden layer stored transposed so both products are NN GEMMs, issue
 * 5); from MF__TABLE_MIN_M hidden units on, the backward's product with the
 * 0/1 activity pattern uses subset-sum tables (relu2_table_dw).
 *
 * Activation: sigma(z) = z for z > 0, alpha z otherwise, 0 <= alpha <= 1;
 * sigma'(z) = 1 for z > 0 and alpha for z <= 0 (so alpha at z == 0, inside
 * the Clarke interval [alpha, 1], [LL20] sec. 3, [VSS22] sec. 2). Only
 * sigma(z) is stored: sigma(z) > 0 iff z > 0 because alpha >= 0.
 *
 * For the analysis this file also gives the pre-activations z_nk = <w_k, x~_n>,
 * the Clarke data at kinks (the KKT columns of src/kkt.c), the global
 * reference (the closed form on symmetric data, docs/theory.md s.3, else
 * the certified convex program of mf_global_relu2, s.5), and the unit view.
 */
#include "model_internal.h"

#include "dense.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

/* relu2's backward uses subset-sum tables (relu2_table_dw) from this many
 * hidden units on; one group of tables takes at most MF__TABLE_BYTES.
 * Measured (OpenBLAS 0.3.21, 1 thread, backward alone, bench/notes.md):
 * M = 16, 32: the dense products are faster (1.8 vs 2.9 us, 3.5 vs 4.1 us);
 * M = 64 about even; M = 100 on n = 100, d = 20: 9.2 vs 10.4 us; M = 1000 on
 * n = 1000, d = 100: 2.5-2.7 vs 4.9-5.2 ms; M = 200 on d = 784: 5.7 vs 7.1 ms. */
#ifndef MF__TABLE_MIN_M
#define MF__TABLE_MIN_M 64
#endif
#ifndef MF__TABLE_BYTES
#define MF__TABLE_BYTES (256.0 * 1024)
#endif

/* The fix-outer convention (marginflow.h): a_k = +1 for even k, -1 for odd k.
 * The only place the rule is written; everything else calls this. */
double mf_units_fixed_outer(int k) { return (k % 2 == 0) ? 1.0 : -1.0; }

/* ====================================================================== */
/* Workspace                                                              */
/* ====================================================================== */

typedef struct relu2_work {
    mf__dense dense[2]; /* W [M][c] (c = d or d + 1) and a [1][M] */
    int fixed_last;     /* a is afix, not in theta (fix-outer) */
    int out_bias;       /* a scalar output bias theta[out_bias_off] is added */
    size_t out_bias_off;
    double *ht;         /* Ht = sigma(Zt) [M][max_batch] (relu2_forward) */
    double *g0, *g1;    /* [max_batch][M]: g0 holds Gt (relu2_dense_dw); g1 unused */
    double *xt;         /* x~^T [c][max_batch] (see relu2_forward) */
    double *wt;         /* dW^T [d][M] (see relu2_dense_dw) */
    /* backward by subset-sum tables (relu2_table_dw): rows padded to tpad =
       c rounded up to 8 doubles, 64-byte aligned */
    double *tbl;        /* tables [tbl_alloc][16][tpad] */
    double *racc;       /* per-unit sums [M][tpad] */
    double *tsum;       /* S [tpad] */
    unsigned char *bact;  /* activity bytes [M][max_batch], b_ji = [z_ji > 0] (relu2_forward) */
    unsigned char *tcode; /* one unit's table indices [tbl_alloc] */
    int tpad;
    int tbl_chunks;     /* chunks of 4 samples per table group; 0: tables not used */
    int tbl_alloc;      /* chunks allocated for (tbl_chunks <= tbl_alloc) */
    double *afix;       /* fix-outer weights a_k, [1][M] */
} relu2_work;

/*
 * Sizes for batches of B samples: Ht [M][B], two [B][M] buffers, the fixed
 * outer weights (fix-outer), X~t [c][B], dW^T [d][M], and the tables: as
 * many 4-sample chunks per group as fit MF__TABLE_BYTES (at most the
 * batch's), rows padded to tp, plus the activity bytes.
 */
static int relu2_plan_common(const mf_model *m, relu2_work *w, size_t B, size_t *doubles,
                             int out_bias) {
    const size_t lim = MF__WORK_LIM, M = (size_t)m->width;
    size_t total = 0;
    w->dense[0].off = m->layers[0].offset;
    w->dense[0].r = m->width;
    w->dense[0].c = m->layers[0].cols; /* d, or d + 1 with bias */
    w->dense[0].act = 1;
    w->dense[1].off = m->fix_outer ? 0 : m->layers[1].offset;
    w->dense[1].r = 1;
    w->dense[1].c = m->width;
    w->dense[1].act = 0;
    w->fixed_last = m->fix_outer;
    w->out_bias = out_bias;
    if (out_bias) w->out_bias_off = m->layers[2].offset;
    if (M > lim / B) return -1;
    total += B * M + 2 * B * M;
    if (m->fix_outer) total += M;
    size_t c = (size_t)w->dense[0].c;
    if (c > lim / B) return -1;
    total += B * c + (size_t)m->d * M;
    size_t tp = (c + 7) / 8 * 8;
    size_t g = (size_t)(MF__TABLE_BYTES / (16.0 * sizeof(double) * (double)tp));
    size_t need = (B + 3) / 4;
    if (g < 1) g = 1;
    if (g > need) g = need;
    if (g > 4) g -= g % 4; /* whole passes of add4 */
    w->tbl_alloc = (int)g;
    w->tbl_chunks = m->width >= MF__TABLE_MIN_M ? (int)g : 0;
    w->tpad = (int)tp;
    /* 8 to align, tables, racc, tsum, then M B + g bytes (M checked against
       lim / B above) */
    total += 8 + g * 16 * tp + M * tp + tp + (M * B + g + 7) / 8;
    *doubles = total;
    return 0;
}

static int relu2_plan(const mf_model *m, void *st, size_t B, size_t *doubles) {
    return relu2_plan_common(m, st, B, doubles, 0);
}

static int outbias_plan(const mf_model *m, void *st, size_t B, size_t *doubles) {
    return relu2_plan_common(m, st, B, doubles, 1);
}

static void relu2_bind(const mf_model *m, void *st, double *p, size_t B) {
    relu2_work *w = st;
    const size_t tp = (size_t)w->tpad, g = (size_t)w->tbl_alloc, M = (size_t)m->width;
    w->ht = p;
    p += B * M;
    w->g0 = p;
    p += B * M;
    w->g1 = p;
    p += B * M;
    if (w->fixed_last) {
        w->afix = p;
        for (int k = 0; k < m->width; k++) p[k] = mf_units_fixed_outer(k);
        p += m->width;
    }
    w->xt = p;
    p += B * (size_t)w->dense[0].c;
    w->wt = p;
    p += (size_t)m->d * M;
    p += (8 - (size_t)((uintptr_t)p / sizeof(double) % 8)) % 8; /* 64-byte boundary */
    w->tbl = p;
    p += g * 16 * tp;
    w->racc = p;
    p += M * tp;
    w->tsum = p;
    p += tp;
    w->bact = (unsigned char *)p;
    w->tcode = w->bact + M * B;
}

/* Tests only (internal.h): relu2 kinds run the backward with table groups of
 * `chunks` 4-sample chunks (clamped to what mf_work_new allocated; 0: the
 * dense path). The forward pass writes the activity bytes the tables need
 * only while this is nonzero: set it before mf_model_forward. Returns the
 * previous setting (0 for other models). */
int mf__work_table_chunks(mf_work *wk, int chunks) {
    if (wk->ops != &mf__ops_relu2 && wk->ops != &mf__ops_relu2_outbias) return 0;
    relu2_work *w = wk->state;
    int prev = w->tbl_chunks;
    w->tbl_chunks = chunks < 0 ? 0 : chunks;
    if (w->tbl_chunks > w->tbl_alloc) w->tbl_chunks = w->tbl_alloc;
    return prev;
}

/* ====================================================================== */
/* Forward and backward                                                   */
/* ====================================================================== */

/*
 * relu2 and relu2-outbias, unit-major. Phi(x) = sum_j a_j sigma(<w_j, x~>)
 * (+ b), x~ = x or (x, 1) with bias, W [M][c], c = d or d + 1. The hidden
 * layer is kept transposed, one row per unit over the batch, so that both
 * products are plain row-major NN GEMMs, which OpenBLAS runs without
 * repacking a transposed operand (measured with OpenBLAS 0.3.21, 1 thread,
 * 100 x 100 x 20: NN 7.7-8.8 us against 10.4-12.3 us for the X W^T / G^T X
 * orientations of the generic chain; 1000 x 1000 x 100: 8.0 ms against
 * 8.7 ms for both products):
 *   forward   X~t [c][n] = x~^T                (copy; the bias row is all ones)
 *             Zt [M][n] = W X~t,  Ht = sigma(Zt)           (w->ht, in place)
 *             out_i = sum_j a_j Ht[j][i] (+ b)             (same pass as sigma)
 *   backward  da = Ht g,  g = dout [n]                      (one dgemv)
 *             dW: below MF__TABLE_MIN_M units the dense products below,
 *             from there on relu2_table_dw (same values up to rounding):
 *             Gt[j][i] = sigma'(Zt[j][i]) (g_i a_j)        (w->g0, same pass)
 *             dW[:, :d] = Gt x             ([M][n] [n][d], NN; above MF__BIG_GEMM
 *                                           as dW^T = X~t[:d] Gt^T, transposed)
 *             dW[:, d] = sum_i Gt[:, i]    (bias column, same pass)
 * sigma' is recovered from Ht as in the chain (Ht > 0 ? 1 : alpha).
 * out adds the units four at a time ((a0 h0 + a1 h1) + (a2 h2 + a3 h3)).
 * The bias column's sums over i use LANES independent partial sums combined
 * in a fixed order (a single running sum would be latency-bound), so the
 * result does not depend on the optimization level, only on n.
 */
#define MF__LANES 8
/* Above this many multiply-adds OpenBLAS 0.3.21 leaves its small-matrix
 * kernels for the packed path, where dW^T = X~t Gt^T followed by a transpose
 * beats dW = Gt x (1000 x 1000 x 100: 4.2-4.5 ms against 4.7-5.1 ms; at
 * 100 x 100 x 20 the NN form is 7.4 us against 11.7 us). */
#ifndef MF__BIG_GEMM
#define MF__BIG_GEMM 1e6
#endif

/* sum_i u[i] v[i] over [n] (v == NULL: sum_i u[i]), MF__LANES partial sums
 * s[i mod MF__LANES], added pairwise at the end. */
static double lane_dot(const double *u, const double *v, int n) {
    double s[MF__LANES] = {0};
    int i = 0;
    if (v) {
        for (; i + MF__LANES <= n; i += MF__LANES)
            for (int q = 0; q < MF__LANES; q++) s[q] += u[i + q] * v[i + q];
        for (int q = 0; i < n; i++, q++) s[q] += u[i] * v[i];
    } else {
        for (; i + MF__LANES <= n; i += MF__LANES)
            for (int q = 0; q < MF__LANES; q++) s[q] += u[i + q];
        for (int q = 0; i < n; i++, q++) s[q] += u[i];
    }
    for (int h = MF__LANES / 2; h > 0; h /= 2)
        for (int q = 0; q < h; q++) s[q] += s[q + h];
    return s[0];
}

/* The activity bytes b[i] = [h[i] > 0], i < n, of one unit (sigma(z) > 0
 * iff z > 0, see the top of this file); relu2_table_dw reads them. */
static inline void act_bytes(unsigned char *restrict b, const double *restrict h, int n) {
    for (int i = 0; i < n; i++) b[i] = h[i] > 0.0;
}

/* relu2 forward (unit-major, see above): out [n] = Phi(theta; x_i); leaves
 * Ht in w->ht and X~t in w->xt for relu2_backward. */
static void relu2_forward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                          double *out) {
    relu2_work *w = st;
    const mf__dense *D0 = &w->dense[0];
    const int M = D0->r, c = D0->c, d = m->d;
    const double alpha = m->alpha;
    const double *W = theta + D0->off;
    const double *a = w->fixed_last ? w->afix : theta + w->dense[1].off;
    double *xt = w->xt, *Ht = w->ht;
    for (int t = 0; t < d; t++) /* X~t [c][n] = x~^T */
        for (int i = 0; i < n; i++) xt[(size_t)t * n + i] = x[(size_t)i * d + t];
    if (c > d)
        for (int i = 0; i < n; i++) xt[(size_t)d * n + i] = 1.0;
    mm_nn(M, n, c, W, c, xt, n, Ht, n); /* Zt [M][n] = W X~t */
    for (int i = 0; i < n; i++) out[i] = 0.0;
    int j = 0;
    for (; j + 4 <= M; j += 4) { /* Ht = sigma(Zt); out += sum of 4 a_j Ht[j] */
        double *h0 = Ht + (size_t)j * n, *h1 = h0 + n, *h2 = h1 + n, *h3 = h2 + n;
        const double a0 = a[j], a1 = a[j + 1], a2 = a[j + 2], a3 = a[j + 3];
        for (int i = 0; i < n; i++) {
            double v0 = h0[i] > 0.0 ? h0[i] : alpha * h0[i];
            double v1 = h1[i] > 0.0 ? h1[i] : alpha * h1[i];
            double v2 = h2[i] > 0.0 ? h2[i] : alpha * h2[i];
            double v3 = h3[i] > 0.0 ? h3[i] : alpha * h3[i];
            h0[i] = v0;
            h1[i] = v1;
            h2[i] = v2;
            h3[i] = v3;
            out[i] += (a0 * v0 + a1 * v1) + (a2 * v2 + a3 * v3);
        }
        if (w->tbl_chunks)
            for (int k = 0; k < 4; k++)
                act_bytes(w->bact + (size_t)(j + k) * n, Ht + (size_t)(j + k) * n, n);
    }
    for (; j < M; j++) {
        double *h = Ht + (size_t)j * n;
        const double aj = a[j];
        for (int i = 0; i < n; i++) {
            double v = h[i] > 0.0 ? h[i] : alpha * h[i];
            h[i] = v;
            out[i] += aj * v;
        }
        if (w->tbl_chunks) act_bytes(w->bact + (size_t)j * n, h, n);
    }
    if (w->out_bias) { /* Phi += b */
        double b = theta[w->out_bias_off];
        for (int i = 0; i < n; i++) out[i] += b;
    }
}

/* The table index of 4 activity bytes p[k] in {0, 1}: sum_k p[k] 2^k. On a
 * little-endian machine one multiplication moves byte k's bit to bit 24 + k
 * (0x01020408 = 2^24 + 2^17 + 2^10 + 2^3; the other products land on
 * distinct bits below 24 or beyond 32, so nothing carries). */
static inline unsigned code4(const unsigned char *p) {
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t v;
    memcpy(&v, p, 4);
    return (unsigned)((v * UINT32_C(0x01020408)) >> 24) & 15u;
#else
    return (unsigned)p[0] | (unsigned)p[1] << 1 | (unsigned)p[2] << 2 | (unsigned)p[3] << 3;
#endif
}

/* Row kernels of relu2_table_dw over [c] (rows do not overlap):
 * r = u + v; r += u; r += (t0 + t1) + (t2 + t3). */
static inline void add2(double *restrict r, const double *restrict u, const double *restrict v,
                        int c) {
    for (int t = 0; t < c; t++) r[t] = u[t] + v[t];
}
static inline void add1(double *restrict r, const double *restrict u, int c) {
    for (int t = 0; t < c; t++) r[t] += u[t];
}
static inline void add4(double *restrict r, const double *restrict t0, const double *restrict t1,
                        const double *restrict t2, const double *restrict t3, int c) {
    for (int t = 0; t < c; t++) r[t] += (t0[t] + t1[t]) + (t2[t] + t3[t]);
}

/* relu2_table_dw stays out of line: inlined into relu2_backward (which the
 * ops table calls through a pointer), GCC 12 at -O3 spilled three row
 * pointers of add4's loop to the stack, +2.7% instructions per
 * forward+backward at relu2:width=100, +5.5% at width=1000 (callgrind);
 * out of line it compiles as it did inside models.c's mf_model_backward. */
#if defined(__GNUC__)
#define MF__OUT_OF_LINE __attribute__((noinline))
#else
#define MF__OUT_OF_LINE
#endif

/*
 * The first layer's gradient of relu2 by subset-sum tables: with
 * g = dout, u_i = g_i x~_i [c] and b_ji = [z_ji > 0] in {0, 1} (the bytes
 * w->bact that relu2_forward wrote),
 *   dW[j] = sum_i sigma'(z_ji) a_j u_i
 *         = a_j ((1 - alpha) sum_i b_ji u_i + alpha S),   S = sum_i u_i,
 * since sigma'(z) = alpha + (1 - alpha) [z > 0] (sigma'(0) = alpha, as in the
 * dense path). The product of the 0/1 matrix B [M][n] with U [n][c] uses the
 * method of the "four Russians" (Arlazarov, Dinic, Kronrod & Faradzev 1970):
 * the samples are cut into chunks of 4; chunk q's table holds its 16 subset
 * sums
 *   T_q[s] [c] = sum_{k : bit k of s} u_{4q+k}
 * (4 scaled rows and 11 row additions), and unit j's sum is
 *   sum_q T_q[s_jq],   s_jq = code4(b_j, 4q..4q+3),
 * one row addition per unit and chunk where the dense product spends four
 * multiply-adds. The tables are read from L2, so the gain is about 2x on the
 * product, not 4x (bench/notes.md: 1000 units on n = 1000, d = 100: 2.5-2.7
 * ms against 4.9-5.2 ms for the whole backward). Tables are built for
 * w->tbl_chunks chunks at a time (at most MF__TABLE_BYTES); every unit adds
 * its rows group by group into R [M][tpad] (rows padded to 8 doubles), four
 * chunks per pass. S is the sum of the full-subset rows T_q[15]. The bias
 * column (c = d + 1) is x~'s column of ones, so it needs no extra pass. The
 * additions run in a fixed order: the result depends on n, the group size
 * and the data, not on the optimization level (it differs from the dense
 * products' by rounding only, 1e-14 relative in tests/test_models.c).
 * Overwrites gW [M][c] (row stride c).
 */
MF__OUT_OF_LINE static void relu2_table_dw(const mf_model *m, relu2_work *w, const double *a,
                                           const double *x, int n, const double *dout,
                                           double *gW) {
    const int M = w->dense[0].r, c = w->dense[0].c, d = m->d, tp = w->tpad;
    const double alpha = m->alpha, beta = 1.0 - alpha;
    double *tbl = w->tbl, *R = w->racc, *S = w->tsum;
    unsigned char *code = w->tcode;
    const size_t tps = (size_t)tp;
    memset(R, 0, (size_t)M * tps * sizeof *R);
    memset(S, 0, tps * sizeof *S);
    for (int i0 = 0; i0 < n; i0 += 4 * w->tbl_chunks) {
        const int nq = (n - i0 + 3) / 4 < w->tbl_chunks ? (n - i0 + 3) / 4 : w->tbl_chunks;
        for (int q = 0; q < nq; q++) { /* the tables of this group's chunks */
            double *T = tbl + (size_t)q * 16 * tps;
            const int i = i0 + 4 * q, kq = n - i < 4 ? n - i : 4;
            for (int t = 0; t < tp; t++) T[t] = 0.0;
            for (int k = 0; k < 4; k++) {
                double *Tk = T + ((size_t)1 << k) * tps;
                const double gi = k < kq ? dout[i + k] : 0.0;
                const double *xr = x + (size_t)(k < kq ? i + k : i) * d;
                for (int t = 0; t < d; t++) Tk[t] = gi * xr[t];
                if (c > d) Tk[d] = gi;
                for (int t = c; t < tp; t++) Tk[t] = 0.0;
            }
            for (int s = 3; s < 16; s++) {
                if (!(s & (s - 1))) continue; /* powers of two are the rows above */
                add2(T + (size_t)s * tps, T + (size_t)(s & (s - 1)) * tps,
                     T + (size_t)(s & -s) * tps, tp);
            }
            if (alpha != 0.0) add1(S, T + 15 * tps, tp);
        }
        const int ng = n - i0 < 4 * nq ? n - i0 : 4 * nq; /* samples in the group */
        const int full = ng / 4;                          /* chunks of 4 samples */
        for (int j = 0; j < M; j++) {
            const unsigned char *b = w->bact + (size_t)j * n + i0;
            double *r = R + (size_t)j * tps;
            for (int q = 0; q < full; q++) code[q] = (unsigned char)code4(b + 4 * q);
            if (full < nq) { /* the last chunk has ng % 4 samples */
                unsigned s = 0;
                for (int k = 0; k < ng % 4; k++) s |= (unsigned)b[4 * full + k] << k;
                code[full] = (unsigned char)s;
            }
            int q = 0; /* r += sum_q T_q[code_q], four chunks per pass over r */
            for (; q + 4 <= nq; q += 4)
                add4(r, tbl + ((size_t)q * 16 + code[q]) * tps,
                     tbl + ((size_t)(q + 1) * 16 + code[q + 1]) * tps,
                     tbl + ((size_t)(q + 2) * 16 + code[q + 2]) * tps,
                     tbl + ((size_t)(q + 3) * 16 + code[q + 3]) * tps, tp);
            for (; q < nq; q++) add1(r, tbl + ((size_t)q * 16 + code[q]) * tps, tp);
        }
    }
    for (int j = 0; j < M; j++) {
        const double *r = R + (size_t)j * tps;
        double *o = gW + (size_t)j * c;
        const double aj = a[j];
        if (alpha == 0.0)
            for (int t = 0; t < c; t++) o[t] = aj * r[t];
        else
            for (int t = 0; t < c; t++) o[t] = aj * (beta * r[t] + alpha * S[t]);
    }
}

/* dW of relu2 by dense products (the path below MF__TABLE_MIN_M units;
 * the forms are in the comment above relu2_forward): gW [M][c] is
 * overwritten, w->g0 holds Gt [M][n]. */
static void relu2_dense_dw(const mf_model *m, relu2_work *w, const double *a, const double *x,
                           int n, const double *dout, double *gW) {
    const int M = w->dense[0].r, c = w->dense[0].c, d = m->d;
    const double alpha = m->alpha;
    const double *Ht = w->ht;
    double *Gt = w->g0;
    for (int j = 0; j < M; j++) {
        const double *h = Ht + (size_t)j * n;
        double *gr = Gt + (size_t)j * n;
        const double aj = a[j];
        for (int i = 0; i < n; i++) {                   /* Gt[j] = sigma' o (a_j g) */
            double v = dout[i] * aj;
            gr[i] = h[i] > 0.0 ? v : alpha * v;
        }
        if (c > d) gW[(size_t)j * c + d] = lane_dot(gr, NULL, n); /* bias column */
    }
    if ((double)n * M * d > MF__BIG_GEMM) {
        /* dW^T [d][M] = X~t[:d] Gt^T, then transposed into dW[:, :d] */
        double *wt = w->wt;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, M, n, 1.0, w->xt, n, Gt, n, 0.0,
                    wt, M);
        for (int j = 0; j < M; j++)
            for (int t = 0; t < d; t++) gW[(size_t)j * c + t] = wt[(size_t)t * M + j];
    } else {
        mm_nn(M, d, n, Gt, n, x, d, gW, c); /* dW[:, :d] = Gt x */
    }
}

/* relu2 backward after relu2_forward on the same (theta, x, n):
 * grad [n_params] = sum_i dout_i dPhi(x_i)/dtheta (overwritten). */
static void relu2_backward(const mf_model *m, void *st, const double *theta, const double *x,
                           int n, const double *dout, double *grad) {
    relu2_work *w = st;
    const mf__dense *D0 = &w->dense[0];
    const int M = D0->r;
    const double *a = w->fixed_last ? w->afix : theta + w->dense[1].off;
    const double *Ht = w->ht;
    double *gW = grad + D0->off;
    double *ga = w->fixed_last ? NULL : grad + w->dense[1].off;
    if (ga) cblas_dgemv(CblasRowMajor, CblasNoTrans, M, n, 1.0, Ht, n, dout, 1, 0.0, ga, 1);
    if (w->tbl_chunks)
        relu2_table_dw(m, w, a, x, n, dout, gW);
    else
        relu2_dense_dw(m, w, a, x, n, dout, gW);
    if (w->out_bias) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += dout[i];
        grad[w->out_bias_off] = s;
    }
}


/* ====================================================================== */
/* Layouts and initialization                                             */
/* ====================================================================== */

/* W [M][d (+1 with bias)], then a [1][M] unless fix-outer. */
static void relu2_layout(mf_model *m) {
    char a[40];
    mf__model_fmt_double(a, sizeof a, m->alpha);
    mf__model_add_layer(m, "W", m->width, m->d + (m->bias ? 1 : 0));
    if (!m->fix_outer) mf__model_add_layer(m, "a", 1, m->width);
    m->degree = m->fix_outer ? 1 : 2;
    m->depth = 1;
    m->homogeneous = 1;
    snprintf(m->spec, sizeof m->spec, "relu2:width=%d,alpha=%s%s%s", m->width, a,
             m->bias ? ",bias" : "", m->fix_outer ? ",fix-outer" : "");
}

/* W [M][d], a [1][M], b [1][1]. */
static void outbias_layout(mf_model *m) {
    char a[40];
    mf__model_fmt_double(a, sizeof a, m->alpha);
    mf__model_add_layer(m, "W", m->width, m->d);
    mf__model_add_layer(m, "a", 1, m->width);
    mf__model_add_layer(m, "b", 1, 1);
    m->degree = 2;
    m->depth = 1;
    m->homogeneous = 0;
    snprintf(m->spec, sizeof m->spec, "relu2-outbias:width=%d,alpha=%s", m->width, a);
}

/*
 * "balanced" (mf_model_init): every entry of W (in theta order, bias column
 * included) is scale * N(0, 1); then for k = 0..M-1 a sign s_k = +1 if
 * mf_rng_uniform < 0.5 else -1, and a_k = s_k ||w_k|| (the balanced state
 * gradient flow preserves, [LLWA21] sec. 3); b = 0. -1 with fix-outer.
 */
static int relu2_init_balanced(const mf_model *m, double scale, mf_rng *rng, double *theta) {
    if (m->fix_outer) return -1;
    const mf_layer *W = &m->layers[0], *a = &m->layers[1];
    for (size_t i = 0; i < (size_t)W->rows * W->cols; i++)
        theta[W->offset + i] = scale * mf_rng_normal(rng);
    for (int k = 0; k < W->rows; k++) {
        const double *wk = theta + W->offset + (size_t)k * W->cols;
        double s = mf__dot(wk, wk, (size_t)W->cols);
        double sign = mf_rng_uniform(rng) < 0.5 ? 1.0 : -1.0;
        theta[a->offset + k] = sign * sqrt(s);
    }
    if (m->n_layers > 2) theta[m->layers[2].offset] = 0.0; /* relu2-outbias: b */
    return 0;
}

/* ====================================================================== */
/* Structure for the analysis                                             */
/* ====================================================================== */

static int relu2_n_hidden(const mf_model *m) { return m->width; }

/*
 * Pre-activations z_nk = <w_k, x~_n> (x~ = (x, 1) with bias) and their
 * scales ||w_k|| ||x~_n|| (computed as sqrt(||w_k||^2 ||x~_n||^2)); pre,
 * scale [n][M], either may be NULL.
 */
static int relu2_preact(const mf_model *m, const double *theta, const mf_data *data, double *pre,
                        double *scale, mf_err *e) {
    const int H = m->width, d = m->d;
    const mf_layer *W = &m->layers[0];
    const int cols = W->cols, bias = cols > d;
    (void)e;
    for (int n = 0; n < data->n; n++) {
        const double *x = data->x + (size_t)n * d;
        double xn = mf__dot(x, x, (size_t)d) + (bias ? 1.0 : 0.0);
        for (int k = 0; k < W->rows; k++) {
            const double *wk = theta + W->offset + (size_t)k * cols;
            double z = mf__dot(wk, x, (size_t)d) + (bias ? wk[d] : 0.0);
            if (pre) pre[(size_t)n * H + k] = z;
            if (scale) scale[(size_t)n * H + k] = sqrt(mf__dot(wk, wk, (size_t)cols) * xn);
        }
    }
    return MF_OK;
}

/*
 * Clarke data of relu2 (src/kkt.c): q = dout_0 sum_k a_k sigma(z_k) (dout_0
 * = y_n), so the piece where unit k has derivative s differs from the
 * backward pass only in grad_{w_k} q = dout_0 a_k s x~ (grad_{a_k} q =
 * dout_0 sigma(z_k) does not depend on s): the backward pass, then
 * (s - sigma'_used(z_k)) dout_0 a_k x~ added per listed unit. Exact at
 * depth 2, where the slopes enter linearly.
 */
static void relu2_piece_grad(const mf_model *m, mf_work *wk, const double *theta, const double *x,
                             const double *dout, const int *units, int nu, unsigned pattern,
                             double *grad) {
    const int d = m->d;
    const mf_layer *Wl = &m->layers[0];
    const int wcols = Wl->cols, bias = wcols > d;
    mf_model_backward(m, wk, theta, x, 1, dout, grad);
    for (int t = 0; t < nu; t++) {
        const int k = units[t];
        const double *wkr = theta + Wl->offset + (size_t)k * wcols;
        double z = mf__dot(wkr, x, (size_t)d) + (bias ? wkr[d] : 0.0);
        double used = z > 0 ? 1.0 : m->alpha;              /* what backward used */
        double sk = (pattern >> t) & 1u ? 1.0 : m->alpha;   /* this piece's slope */
        double ak = m->fix_outer ? mf_units_fixed_outer(k) : theta[m->layers[1].offset + k];
        double coef = (sk - used) * dout[0] * ak;
        double *hw = grad + Wl->offset + (size_t)k * wcols;
        for (int j = 0; j < d; j++) hw[j] += coef * x[j];
        if (bias) hw[d] += coef;
    }
}

/* With the hidden layer frozen the margins are linear in a (layer 1). */
static int relu2_layer_is_linear(const mf_model *m, int l) { return !m->fix_outer && l == 1; }

/* The most cells of the arrangement the analysis enumerates for its global
 * reference (mf_global_relu2's own default is 4096; `marginflow global
 * --max-patterns` goes further): the reference is computed in every
 * analysis, so it must stay well below a second. */
#define RELU2_REF_MAX_CELLS 256

/* An upper bound on the number of cells of the central arrangement of the
 * hyperplanes {u : <x_n, u> = 0} in R^d: 2 sum_{i < d} C(N - 1, i) (Cover
 * 1965; attained in general position), 2N for d = 2; INFINITY past 1e9. */
static double relu2_cells_bound(const mf_data *D) {
    if (D->d <= 1) return 2.0;
    double sum = 0, c = 1; /* c = C(N-1, i) */
    for (int i = 0; i < D->d && sum < 1e9; i++) {
        sum += c;
        c = c * (double)(D->n - 1 - i) / (double)(i + 1);
        if (c <= 0) break;
    }
    return sum < 1e9 ? 2.0 * sum : INFINITY;
}

/* The certified global optimum of a bias-free two-layer (leaky) ReLU net
 * over every width (mf_global_relu2, docs/theory.md s.5): the bracket
 * gamma_lower <= gamma* <= gamma_upper, each side re-evaluated by
 * mf_global_relu2 itself (the primal network's forward pass; weak duality
 * with rho over every direction), and the primal network as the reference
 * network. Refused (MF_ERR_UNSUPPORTED, so the analysis has no reference
 * and says why) when the arrangement may have more than
 * RELU2_REF_MAX_CELLS cells or the upper bound is not certified. */
static int relu2_global_solve(const mf_model *m, const mf_data *data, mf__exact_ref *out, mf_err *e) {
    const double cells = relu2_cells_bound(data);
    if (cells > RELU2_REF_MAX_CELLS)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "the arrangement of %d hyperplanes in R^%d may have up to %.3g cells, beyond "
                       "the analysis' limit of %d for the convex program (marginflow global "
                       "--max-patterns solves it)",
                       data->n, data->d, cells, RELU2_REF_MAX_CELLS);
    mf_global_settings gs;
    mf_global_settings_default(&gs);
    gs.max_patterns = RELU2_REF_MAX_CELLS;
    mf_global_result *g = NULL;
    int rc = mf_global_relu2(m, data, &gs, &g, e);
    if (rc) return rc;
    if (!g->upper_certified || !(g->gamma_lower > 0) || !(g->gamma_upper >= g->gamma_lower)) {
        mf_global_result_free(g);
        return mf__err(e, MF_ERR_UNSUPPORTED, "the convex program's upper bound is not certified");
    }
    out->gamma_star = g->gamma_lower;
    out->lower = g->gamma_lower;
    out->upper = g->gamma_upper;
    snprintf(out->source, sizeof out->source,
             "convex program over %d activation patterns (mf_global_relu2, relative gap %.1e)",
             g->n_patterns, fmax(g->gap, 0.0));
    out->theta = mf__malloc(sizeof(double) * (g->n_params ? g->n_params : 1));
    if (!out->theta) {
        mf_global_result_free(g);
        return mf__err(e, MF_ERR_NOMEM, "out of memory for the global reference network");
    }
    memcpy(out->theta, g->theta, sizeof(double) * g->n_params);
    out->n_params = g->n_params;
    snprintf(out->spec, sizeof out->spec, "%s", g->spec);
    mf_global_result_free(g);
    return MF_OK;
}

/* The global reference of a bias-free relu2 net with trained outer weights
 * (docs/theory.md s.3 and s.5): on symmetric data ((x, y) in the set iff
 * (-x, -y) is) with alpha > 0 the closed form (1 + alpha) gamma_svm / 4
 * ([VSS22] / [LLWA21]); otherwise, for binary data and alpha < 1, the
 * certified convex program over the activation patterns (relu2_global_solve). */
static void relu2_global_ref(const mf_model *m, const mf_data *data, mf__global_ref *r) {
    if (m->bias || m->fix_outer) return;
    if (m->alpha > 0 && mf__data_symmetric(data)) {
        r->kind = MF__REF_SVM_L2;
        r->factor = (1.0 + m->alpha) / 4.0;
        snprintf(r->source, sizeof r->source, "leaky ReLU on symmetric data: (1 + alpha) gamma_svm / 4");
        return;
    }
    if (data->num_classes != 0 || !(m->alpha < 1.0)) return;
    r->kind = MF__REF_SOLVER;
    r->solve = relu2_global_solve;
    snprintf(r->source, sizeof r->source, "convex program over the activation patterns (mf_global_relu2)");
}

static int relu2_units(const mf_model *m, mf_units *u) {
    u->n_units = m->width;
    u->w_layer = 0;
    u->in_bias = m->bias;
    u->a_layer = m->fix_outer ? -1 : 1;
    u->b_layer = -1;
    return 1;
}

static int outbias_units(const mf_model *m, mf_units *u) {
    u->n_units = m->width;
    u->w_layer = 0;
    u->in_bias = 0;
    u->a_layer = 1;
    u->b_layer = 2;
    return 1;
}

/* ====================================================================== */
/* Tables                                                                 */
/* ====================================================================== */

static const mf__option relu2_options[] = {
    {"width", MF__OPT_INT, MF__MAX_DIM, offsetof(mf_model, width)},
    {"alpha", MF__OPT_UNIT, 0, offsetof(mf_model, alpha)},
    {"bias", MF__OPT_FLAG, 0, offsetof(mf_model, bias)},
    {"fix-outer", MF__OPT_FLAG, 0, offsetof(mf_model, fix_outer)},
    {NULL, MF__OPT_FLAG, 0, 0}};

static const mf__option outbias_options[] = {
    {"width", MF__OPT_INT, MF__MAX_DIM, offsetof(mf_model, width)},
    {"alpha", MF__OPT_UNIT, 0, offsetof(mf_model, alpha)},
    {NULL, MF__OPT_FLAG, 0, 0}};

const mf__model_ops mf__ops_relu2 = {
    .kind = MF_MODEL_RELU2,
    .name = "relu2",
    .options_help = "width=M, alpha=A, bias, fix-outer",
    .options = relu2_options,
    .multiclass = 0,
    .layout = relu2_layout,
    .work_state = sizeof(relu2_work),
    .work_plan = relu2_plan,
    .work_bind = relu2_bind,
    .forward = relu2_forward,
    .backward = relu2_backward,
    .init_balanced = relu2_init_balanced,
    .n_hidden = relu2_n_hidden,
    .preact = relu2_preact,
    .piece_grad = relu2_piece_grad,
    .layer_is_linear = relu2_layer_is_linear,
    .global_ref = relu2_global_ref,
    .units = relu2_units,
};

/* relu2-outbias is not homogeneous: (P) and its analysis do not apply, so
 * it has no Clarke data, linear layers or global reference. */
const mf__model_ops mf__ops_relu2_outbias = {
    .kind = MF_MODEL_RELU2_OUTBIAS,
    .name = "relu2-outbias",
    .options_help = "width=M, alpha=A",
    .options = outbias_options,
    .multiclass = 0,
    .layout = outbias_layout,
    .work_state = sizeof(relu2_work),
    .work_plan = outbias_plan,
    .work_bind = relu2_bind,
    .forward = relu2_forward,
    .backward = relu2_backward,
    .init_balanced = relu2_init_balanced,
    .n_hidden = relu2_n_hidden,
    .preact = relu2_preact,
    .units = outbias_units,
};

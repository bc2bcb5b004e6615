/*
 * models.c -- the network architectures of marginflow: spec parsing, the flat
 * parameter layout, batched forward and backward passes, initialization,
 * norms and a printable layout.
 *
 * Every model is a function Phi(theta; x) of one flat parameter vector theta
 * (groups stored row-major one after another, named by m->layers[]). The
 * homogeneous ones (Phi(c theta) = c^L Phi(theta), c > 0) are the objects of
 * [LL20] (Lyu & Li, ICLR 2020) and [VSS22] (Vardi, Shamir & Srebro, NeurIPS
 * 2022); skip-linear (THEORY.md construction G) and relu2-outbias are the
 * non-homogeneous counter-examples.
 *
 * The dense architectures linear, fc-linear and mlp run through one "chain"
 * of dense layers Z_l = H_l W_l^T, H_{l+1} = act(Z_l) evaluated on the whole
 * batch with cblas_dgemm (plain loops for degenerate sizes, see
 * MF__SMALL_GEMM). relu2 and relu2-outbias have their own unit-major passes
 * (relu2_forward: the hidden layer stored transposed so both products are
 * NN GEMMs, issue 5; from MF__TABLE_MIN_M hidden units on, the backward's
 * product with the 0/1 activity pattern uses subset-sum tables,
 * relu2_table_dw). diag and skip-linear are plain loops. All
 * buffers live in mf_work, sized at mf_work_new for max_batch samples;
 * forward and backward never allocate. A workspace belongs to the model it
 * was made for; n must not exceed its max_batch.
 *
 * Activation: sigma(z) = z for z > 0, alpha z otherwise, 0 <= alpha <= 1.
 * Derivative: sigma'(z) = 1 for z > 0 and alpha for z <= 0, so at z == 0
 * exactly the value alpha is used (0 for ReLU). It lies in the Clarke
 * interval [alpha, 1] ([LL20] sec. 3, [VSS22] sec. 2). Only sigma(z) is
 * stored; because alpha >= 0, sigma(z) > 0 iff z > 0, so the derivative is
 * recovered from the stored activation: sigma'(z) = (sigma(z) > 0 ? 1 : alpha).
 */
#include "internal.h"

#include <cblas.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest accepted width / depth-independent dimension (keeps every product
 * of two sizes far inside size_t and every size inside int). */
#define MF__MAX_DIM (1 << 24)
/* Products of at most this many multiply-adds (m*n*k) use plain loops, the
 * rest cblas_dgemm. Measured with OpenBLAS 0.3.21 on x86-64 (2 cores): its
 * small-matrix kernels beat our loops already at relu2:width=20 on 8 points
 * of d=2 (0.64 us vs 0.87 us per forward+backward, loops only 1.0 us with a
 * threshold of 4096), so only degenerate products stay on loops. Rebuild
 * with -DMF__SMALL_GEMM=... to retune for another BLAS. */
#ifndef MF__SMALL_GEMM
#define MF__SMALL_GEMM 64.0
#endif

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

/* ====================================================================== */
/* Workspace                                                              */
/* ====================================================================== */

/* One dense layer of the chain: Z [n][r] = H_in [n][c] W^T, W [r][c]. */
typedef struct mf__dense {
    size_t off; /* offset of W in theta (unused when the layer is fixed) */
    int r, c;   /* W is [r][c]; the first layer's c includes the bias column */
    int act;    /* 1: sigma applied after this layer, 0: identity */
} mf__dense;

struct mf_work {
    int max_batch;
    mf_model_kind kind;
    double alpha;
    int d, n_out;
    /* dense chain (linear, fc-linear, relu2, relu2-outbias, mlp) */
    int n_dense;
    mf__dense dense[MF_MAX_LAYERS];
    int in_bias;        /* first layer has a bias column (relu2 bias) */
    int fixed_last;     /* last layer's weights are afix, not in theta (fix-outer) */
    int out_bias;       /* a scalar output bias theta[out_bias_off] is added */
    size_t out_bias_off;
    double *h[MF_MAX_LAYERS]; /* h[l] = act(Z_l), [max_batch][dense[l].r], l < n_dense-1 */
    double *g0, *g1;    /* backward ping-pong, [max_batch][max hidden width] */
    double *xt;         /* relu2 kinds: x~^T [c][max_batch] (see relu2_forward) */
    double *wt;         /* relu2 kinds: dW^T [d][M] (see relu2_dense_dw) */
    /* relu2 kinds, backward by subset-sum tables (relu2_table_dw): rows padded
       to tpad = c rounded up to 8 doubles, 64-byte aligned */
    double *tbl;        /* tables [tbl_alloc][16][tpad] */
    double *racc;       /* per-unit sums [M][tpad] */
    double *tsum;       /* S [tpad] */
    unsigned char *bact;  /* activity bytes [M][max_batch], b_ji = [z_ji > 0] (relu2_forward) */
    unsigned char *tcode; /* one unit's table indices [tbl_alloc] */
    int tpad;
    int tbl_chunks;     /* chunks of 4 samples per table group; 0: tables not used */
    int tbl_alloc;      /* chunks allocated for (tbl_chunks <= tbl_alloc) */
    double *afix;       /* fix-outer weights a_k = (-1)^k, [1][M] */
    /* diag: p = prod_l w_l, g = sum_i dout_i x_i, pre/suf products, each [d];
       skip-linear: s[i] = <w1, x_i>, [max_batch] */
    double *p, *g, *pre, *suf, *s;
    double *block;      /* the single allocation behind every pointer above */
};

/* ====================================================================== */
/* Parsing                                                                */
/* ====================================================================== */

static const char *const kind_names[] = {"linear", "fc-linear", "diag", "relu2",
                                         "mlp", "skip-linear", "relu2-outbias"};
#define MF__N_KINDS ((int)(sizeof kind_names / sizeof kind_names[0]))
#define MF__VALID_NAMES "linear, fc-linear, diag, relu2, mlp, skip-linear, relu2-outbias"

static const char *valid_options(mf_model_kind k) {
    switch (k) {
    case MF_MODEL_LINEAR: return "none";
    case MF_MODEL_FC_LINEAR: return "depth=K, width=M";
    case MF_MODEL_DIAG: return "depth=K";
    case MF_MODEL_RELU2: return "width=M, alpha=A, bias, fix-outer";
    case MF_MODEL_MLP: return "widths=M1/M2/... (or M1,M2,...), alpha=A";
    case MF_MODEL_SKIP_LINEAR: return "none";
    case MF_MODEL_RELU2_OUTBIAS: return "width=M, alpha=A";
    }
    return "none";
}

/* Trim ASCII white space at both ends of s in place; returns the start. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* 1 if s is a non-empty string of decimal digits. */
static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* Parse a decimal integer in [lo, hi]; returns 0 on success. */
static int parse_int(const char *s, int lo, int hi, int *v) {
    if (!all_digits(s) || strlen(s) > 9) return -1;
    long x = strtol(s, NULL, 10);
    if (x < lo || x > hi) return -1;
    *v = (int)x;
    return 0;
}

/* Format a double as the shortest of %.15g/%.16g/%.17g that reads back to the
 * same value, with '.' as the decimal point whatever the locale. */
static void fmt_double(char *buf, size_t cap, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        for (char *c = buf; *c; c++)
            if (*c == ',') *c = '.';
        if (mf__strtod_c(buf, NULL) == v) return;
    }
}

/* Append a parameter group [rows][cols] named name to m's layout. */
static void add_layer(mf_model *m, const char *name, int rows, int cols) {
    mf_layer *ly = &m->layers[m->n_layers++];
    snprintf(ly->name, sizeof ly->name, "%s", name);
    ly->offset = m->n_params;
    ly->rows = rows;
    ly->cols = cols;
    m->n_params += (size_t)rows * (size_t)cols;
}

/* Fill layers[], n_params, degree, homogeneous and the canonical spec from
 * the parsed options in m. */
static void build_layout(mf_model *m) {
    char name[16], a[40];
    int d = m->d, n_out = m->n_out;
    m->n_params = 0;
    m->n_layers = 0;
    fmt_double(a, sizeof a, m->alpha);
    switch (m->kind) {
    case MF_MODEL_LINEAR:
        add_layer(m, "W", n_out, d);
        m->degree = 1;
        m->depth = 1;
        snprintf(m->spec, sizeof m->spec, "linear");
        break;
    case MF_MODEL_FC_LINEAR:
        for (int l = 1; l <= m->depth; l++) {
            snprintf(name, sizeof name, "W%d", l);
            add_layer(m, name, l == m->depth ? n_out : m->width, l == 1 ? d : m->width);
        }
        m->degree = m->depth;
        snprintf(m->spec, sizeof m->spec, "fc-linear:depth=%d,width=%d", m->depth, m->width);
        break;
    case MF_MODEL_DIAG:
        for (int l = 1; l <= m->depth; l++) {
            snprintf(name, sizeof name, "w%d", l);
            add_layer(m, name, 1, d);
        }
        m->degree = m->depth;
        snprintf(m->spec, sizeof m->spec, "diag:depth=%d", m->depth);
        break;
    case MF_MODEL_RELU2:
        add_layer(m, "W", m->width, d + (m->bias ? 1 : 0));
        if (!m->fix_outer) add_layer(m, "a", 1, m->width);
        m->degree = m->fix_outer ? 1 : 2;
        m->depth = 1;
        snprintf(m->spec, sizeof m->spec, "relu2:width=%d,alpha=%s%s%s", m->width, a,
                 m->bias ? ",bias" : "", m->fix_outer ? ",fix-outer" : "");
        break;
    case MF_MODEL_MLP: {
        int prev = d;
        size_t len;
        m->width = 0;
        for (int l = 0; l < m->depth; l++) {
            snprintf(name, sizeof name, "W%d", l + 1);
            add_layer(m, name, m->widths[l], prev);
            prev = m->widths[l];
            if (prev > m->width) m->width = prev;
        }
        snprintf(name, sizeof name, "W%d", m->depth + 1);
        add_layer(m, name, n_out, prev);
        m->degree = m->depth + 1;
        len = (size_t)snprintf(m->spec, sizeof m->spec, "mlp:widths=");
        for (int l = 0; l < m->depth && len < sizeof m->spec; l++)
            len += (size_t)snprintf(m->spec + len, sizeof m->spec - len, "%s%d", l ? "/" : "",
                                    m->widths[l]);
        if (len < sizeof m->spec)
            snprintf(m->spec + len, sizeof m->spec - len, ",alpha=%s", a);
        break;
    }
    case MF_MODEL_SKIP_LINEAR:
        add_layer(m, "w1", 1, d);
        add_layer(m, "w2", 1, 1);
        m->degree = 2;
        m->depth = 1;
        snprintf(m->spec, sizeof m->spec, "skip-linear");
        break;
    case MF_MODEL_RELU2_OUTBIAS:
        add_layer(m, "W", m->width, d);
        add_layer(m, "a", 1, m->width);
        add_layer(m, "b", 1, 1);
        m->degree = 2;
        m->depth = 1;
        snprintf(m->spec, sizeof m->spec, "relu2-outbias:width=%d,alpha=%s", m->width, a);
        break;
    }
    m->homogeneous = !(m->kind == MF_MODEL_SKIP_LINEAR || m->kind == MF_MODEL_RELU2_OUTBIAS);
}

/*
 * Parse a model spec "name[:opt,opt,...]" (grammar in marginflow.h) for data
 * of dimension d and num_classes (0 = binary, C >= 2 classes). Options are
 * key=value or bare flags, separated by ','; white space around tokens is
 * ignored. For mlp, the value of widths= may be '/'-separated, and every
 * pure-integer token that follows widths= also belongs to it. Duplicated
 * options are an error. Returns MF_OK and a new model in *out, or
 * MF_ERR_INVALID (d < 1, num_classes == 1 or < 0), MF_ERR_PARSE (unknown
 * name or option, bad value; the message names the token and lists what is
 * valid), MF_ERR_UNSUPPORTED (multi-class data on a binary-only model),
 * MF_ERR_NOMEM. *out is NULL on error.
 */
int mf_model_parse(const char *spec, int d, int num_classes, mf_model **out, mf_err *e) {
    char buf[1024];
    if (out) *out = NULL;
    if (!spec || !out) return mf__err(e, MF_ERR_INVALID, "mf_model_parse: spec and out must not be NULL");
    if (d < 1 || d > INT_MAX - 1)
        return mf__err(e, MF_ERR_INVALID, "model \"%s\": data dimension d = %d must be >= 1", spec, d);
    if (num_classes < 0 || num_classes == 1)
        return mf__err(e, MF_ERR_INVALID,
                       "model \"%s\": num_classes = %d must be 0 (binary) or >= 2", spec, num_classes);
    if (strlen(spec) >= sizeof buf)
        return mf__err(e, MF_ERR_PARSE, "model spec is too long (%zu characters, at most %zu)",
                       strlen(spec), sizeof buf - 1);
    strcpy(buf, spec);

    char *colon = strchr(buf, ':');
    char *opts = NULL;
    if (colon) {
        *colon = '\0';
        opts = colon + 1;
    }
    char *name = trim(buf);
    int kind = -1;
    for (int k = 0; k < MF__N_KINDS; k++)
        if (strcmp(name, kind_names[k]) == 0) kind = k;
    if (kind < 0)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": unknown model '%s' (valid: %s)", spec,
                       name, MF__VALID_NAMES);

    mf_model m;
    memset(&m, 0, sizeof m);
    m.kind = (mf_model_kind)kind;
    m.d = d;
    m.n_out = num_classes >= 2 ? num_classes : 1;
    /* defaults */
    m.depth = m.kind == MF_MODEL_MLP ? 0 : 2;
    m.width = m.kind == MF_MODEL_FC_LINEAR ? d : 10;
    m.alpha = 0.0;
    int seen_width = 0, seen_depth = 0, seen_alpha = 0, seen_bias = 0, seen_fix = 0,
        seen_widths = 0, in_widths = 0;
    const char *kn = kind_names[kind];

    /* Tokens: split on ','; "name:" alone means no options, any other
     * empty token is an error. */
    if (opts) {
        opts = trim(opts);
        if (!*opts) opts = NULL;
    }
    char *tok = opts;
    while (tok) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        char *t = trim(tok);
        tok = comma ? comma + 1 : NULL;
        if (!*t)
            return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": empty option (valid options for %s: %s)",
                           spec, kn, valid_options(m.kind));
        if (in_widths && all_digits(t)) {
            int v;
            if (m.depth >= MF_MAX_LAYERS - 1)
                return mf__err(e, MF_ERR_PARSE,
                               "model spec \"%s\": bad option '%s': mlp has at most %d hidden layers",
                               spec, t, MF_MAX_LAYERS - 1);
            if (parse_int(t, 1, MF__MAX_DIM, &v))
                return mf__err(e, MF_ERR_PARSE,
                               "model spec \"%s\": bad width '%s' in widths: must be an integer in [1, %d]",
                               spec, t, MF__MAX_DIM);
            m.widths[m.depth++] = v;
            continue;
        }
        in_widths = 0;
        char *eq = strchr(t, '=');
        char *val = NULL;
        char key[64];
        size_t klen = eq ? (size_t)(eq - t) : strlen(t);
        if (klen >= sizeof key) klen = sizeof key - 1;
        memcpy(key, t, klen);
        key[klen] = '\0';
        {
            char *kt = trim(key);
            memmove(key, kt, strlen(kt) + 1);
        }
        if (eq) val = trim(eq + 1);

        int is_width = strcmp(key, "width") == 0, is_depth = strcmp(key, "depth") == 0,
            is_alpha = strcmp(key, "alpha") == 0, is_bias = strcmp(key, "bias") == 0,
            is_fix = strcmp(key, "fix-outer") == 0, is_widths = strcmp(key, "widths") == 0;
        int allowed = 0;
        switch (m.kind) {
        case MF_MODEL_FC_LINEAR: allowed = is_width || is_depth; break;
        case MF_MODEL_DIAG: allowed = is_depth; break;
        case MF_MODEL_RELU2: allowed = is_width || is_alpha || is_bias || is_fix; break;
        case MF_MODEL_MLP: allowed = is_widths || is_alpha; break;
        case MF_MODEL_RELU2_OUTBIAS: allowed = is_width || is_alpha; break;
        default: allowed = 0; break;
        }
        if (!allowed)
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": unknown option '%s' for %s (valid options: %s)", spec, t,
                           kn, valid_options(m.kind));
        if ((is_width && seen_width) || (is_depth && seen_depth) || (is_alpha && seen_alpha) ||
            (is_bias && seen_bias) || (is_fix && seen_fix) || (is_widths && seen_widths))
            return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": option '%s' given twice", spec, t);
        if (is_bias || is_fix) {
            if (eq)
                return mf__err(e, MF_ERR_PARSE,
                               "model spec \"%s\": bad option '%s': '%s' is a flag and takes no value",
                               spec, t, key);
            if (is_bias) seen_bias = m.bias = 1;
            else seen_fix = m.fix_outer = 1;
            continue;
        }
        if (!eq)
            return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": bad option '%s': expected %s=VALUE", spec,
                           t, key);
        if (is_width || is_depth) {
            int hi = is_width ? MF__MAX_DIM : MF_MAX_LAYERS, v;
            if (parse_int(val, 1, hi, &v))
                return mf__err(e, MF_ERR_PARSE,
                               "model spec \"%s\": bad option '%s': %s must be an integer in [1, %d]", spec,
                               t, key, hi);
            if (is_width) {
                m.width = v;
                seen_width = 1;
            } else {
                m.depth = v;
                seen_depth = 1;
            }
        } else if (is_alpha) {
            char *end;
            double a = mf__strtod_c(val, &end);
            if (!*val || *end || !isfinite(a) || a < 0.0 || a > 1.0)
                return mf__err(e, MF_ERR_PARSE,
                               "model spec \"%s\": bad option '%s': alpha must be a finite number in [0, 1]",
                               spec, t);
            m.alpha = a;
            seen_alpha = 1;
        } else { /* widths */
            char *p = val;
            seen_widths = 1;
            if (!*p)
                return mf__err(e, MF_ERR_PARSE,
                               "model spec \"%s\": bad option '%s': widths needs at least one integer", spec, t);
            while (p) {
                char *slash = strchr(p, '/');
                if (slash) *slash = '\0';
                char *w = trim(p);
                int v;
                if (m.depth >= MF_MAX_LAYERS - 1)
                    return mf__err(e, MF_ERR_PARSE,
                                   "model spec \"%s\": bad option '%s': mlp has at most %d hidden layers",
                                   spec, t, MF_MAX_LAYERS - 1);
                if (parse_int(w, 1, MF__MAX_DIM, &v))
                    return mf__err(e, MF_ERR_PARSE,
                                   "model spec \"%s\": bad width '%s' in '%s': must be an integer in [1, %d]",
                                   spec, w, t, MF__MAX_DIM);
                m.widths[m.depth++] = v;
                p = slash ? slash + 1 : NULL;
            }
            in_widths = 1;
        }
    }
    if (m.kind == MF_MODEL_MLP && m.depth == 0)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": mlp needs widths=M1/M2/... (valid options: %s)",
                       spec, valid_options(m.kind));
    if (m.n_out > 1 && (m.kind == MF_MODEL_DIAG || m.kind == MF_MODEL_RELU2 ||
                        m.kind == MF_MODEL_SKIP_LINEAR || m.kind == MF_MODEL_RELU2_OUTBIAS))
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "model %s supports binary data only, but the data has %d classes "
                       "(multi-class models: linear, fc-linear, mlp)",
                       kn, num_classes);
    build_layout(&m);

    mf_model *mm = mf__malloc(sizeof *mm);
    if (!mm) return mf__err(e, MF_ERR_NOMEM, "out of memory allocating the model");
    *mm = m;
    *out = mm;
    return MF_OK;
}

void mf_model_free(mf_model *m) { mf__free(m); }

/* ====================================================================== */
/* Workspace                                                              */
/* ====================================================================== */

/* Describe the dense chain of m in w (no-op for diag and skip-linear). */
static void describe_chain(const mf_model *m, mf_work *w) {
    w->n_dense = 0;
    switch (m->kind) {
    case MF_MODEL_LINEAR:
    case MF_MODEL_FC_LINEAR:
    case MF_MODEL_MLP:
        for (int l = 0; l < m->n_layers; l++) {
            mf__dense *D = &w->dense[w->n_dense++];
            D->off = m->layers[l].offset;
            D->r = m->layers[l].rows;
            D->c = m->layers[l].cols;
            D->act = m->kind == MF_MODEL_MLP && l < m->n_layers - 1;
        }
        break;
    case MF_MODEL_RELU2:
    case MF_MODEL_RELU2_OUTBIAS:
        w->dense[0].off = m->layers[0].offset;
        w->dense[0].r = m->width;
        w->dense[0].c = m->layers[0].cols; /* d, or d + 1 with bias */
        w->dense[0].act = 1;
        w->dense[1].off = m->fix_outer ? 0 : m->layers[1].offset;
        w->dense[1].r = 1;
        w->dense[1].c = m->width;
        w->dense[1].act = 0;
        w->n_dense = 2;
        w->in_bias = m->kind == MF_MODEL_RELU2 && m->bias;
        w->fixed_last = m->kind == MF_MODEL_RELU2 && m->fix_outer;
        if (m->kind == MF_MODEL_RELU2_OUTBIAS) {
            w->out_bias = 1;
            w->out_bias_off = m->layers[2].offset;
        }
        break;
    default: break;
    }
}

/*
 * Allocate a workspace for batches of up to max_batch samples of model m:
 * one activation buffer [max_batch][r_l] per hidden layer, two backward
 * buffers [max_batch][max hidden width], the fixed outer weights (fix-outer)
 * and the small per-model vectors (diag, skip-linear). Two allocations in
 * all. Returns MF_OK, MF_ERR_INVALID (NULL model, max_batch < 1, sizes that
 * overflow) or MF_ERR_NOMEM; *out is NULL on error.
 */
int mf_work_new(const mf_model *m, int max_batch, mf_work **out, mf_err *e) {
    if (out) *out = NULL;
    if (!m || !out) return mf__err(e, MF_ERR_INVALID, "mf_work_new: model and out must not be NULL");
    if (max_batch < 1)
        return mf__err(e, MF_ERR_INVALID, "mf_work_new: max_batch = %d must be >= 1", max_batch);
    mf_work *w = mf__calloc(1, sizeof *w);
    if (!w) return mf__err(e, MF_ERR_NOMEM, "out of memory allocating the model workspace");
    w->max_batch = max_batch;
    w->kind = m->kind;
    w->alpha = m->alpha;
    w->d = m->d;
    w->n_out = m->n_out;
    describe_chain(m, w);

    /* Count the doubles needed, checking for overflow. */
    size_t B = (size_t)max_batch, total = 0, maxw = 0;
    const size_t lim = ((size_t)-1) / 4 / sizeof(double);
    for (int l = 0; l + 1 < w->n_dense; l++) {
        size_t r = (size_t)w->dense[l].r;
        if (r > lim / B) goto too_big;
        total += B * r;
        if (r > maxw) maxw = r;
    }
    if (maxw && maxw > lim / B) goto too_big;
    total += 2 * B * maxw;
    if (m->kind == MF_MODEL_RELU2 && m->fix_outer) total += (size_t)m->width;
    if (m->kind == MF_MODEL_RELU2 || m->kind == MF_MODEL_RELU2_OUTBIAS) {
        size_t c = (size_t)w->dense[0].c;
        if (c > lim / B) goto too_big;
        total += B * c + (size_t)m->d * (size_t)m->width;
        /* relu2_table_dw: as many 4-sample chunks per group as fit
           MF__TABLE_BYTES (at most the batch's), rows padded to tp */
        size_t tp = (c + 7) / 8 * 8;
        size_t g = (size_t)(MF__TABLE_BYTES / (16.0 * sizeof(double) * (double)tp));
        size_t need = (B + 3) / 4, M = (size_t)m->width;
        if (g < 1) g = 1;
        if (g > need) g = need;
        if (g > 4) g -= g % 4; /* whole passes of add4 */
        w->tbl_alloc = (int)g;
        w->tbl_chunks = m->width >= MF__TABLE_MIN_M ? (int)g : 0;
        w->tpad = (int)tp;
        /* 8 to align, tables, racc, tsum, then M B + g bytes (M = dense[0].r,
           checked against lim / B with the hidden layers above) */
        total += 8 + g * 16 * tp + M * tp + tp + (M * B + g + 7) / 8;
    }
    if (m->kind == MF_MODEL_DIAG) total += 4 * (size_t)m->d;
    if (m->kind == MF_MODEL_SKIP_LINEAR) total += B;
    if (total > lim) goto too_big;

    w->block = mf__malloc((total ? total : 1) * sizeof(double));
    if (!w->block) {
        mf__free(w);
        return mf__err(e, MF_ERR_NOMEM, "out of memory allocating the model workspace (%zu doubles)",
                       total);
    }
    double *p = w->block;
    for (int l = 0; l + 1 < w->n_dense; l++) {
        w->h[l] = p;
        p += B * (size_t)w->dense[l].r;
    }
    if (maxw) {
        w->g0 = p;
        p += B * maxw;
        w->g1 = p;
        p += B * maxw;
    }
    if (m->kind == MF_MODEL_RELU2 && m->fix_outer) {
        w->afix = p;
        for (int k = 0; k < m->width; k++) p[k] = (k % 2 == 0) ? 1.0 : -1.0;
        p += m->width;
    }
    if (m->kind == MF_MODEL_RELU2 || m->kind == MF_MODEL_RELU2_OUTBIAS) {
        w->xt = p;
        p += B * (size_t)w->dense[0].c;
        w->wt = p;
        p += (size_t)m->d * (size_t)m->width;
        const size_t tp = (size_t)w->tpad, g = (size_t)w->tbl_alloc, M = (size_t)m->width;
        p += (8 - (size_t)((uintptr_t)p / sizeof(double) % 8)) % 8; /* 64-byte boundary */
        w->tbl = p;
        p += g * 16 * tp;
        w->racc = p;
        p += M * tp;
        w->tsum = p;
        p += tp;
        w->bact = (unsigned char *)p;
        w->tcode = w->bact + M * B;
        p += (M * B + g + 7) / 8;
    }
    if (m->kind == MF_MODEL_DIAG) {
        size_t dd = (size_t)m->d;
        w->p = p;
        w->g = p + dd;
        w->pre = p + 2 * dd;
        w->suf = p + 3 * dd;
        p += 4 * dd;
    }
    if (m->kind == MF_MODEL_SKIP_LINEAR) w->s = p;
    *out = w;
    return MF_OK;
too_big:
    mf__free(w);
    return mf__err(e, MF_ERR_INVALID, "mf_work_new: workspace for max_batch = %d is too large",
                   max_batch);
}

/* Tests only (internal.h): relu2 kinds run the backward with table groups of
 * `chunks` 4-sample chunks (clamped to what mf_work_new allocated; 0: the
 * dense path). The forward pass writes the activity bytes the tables need
 * only while this is nonzero: set it before mf_model_forward. Returns the
 * previous setting. */
int mf__work_table_chunks(mf_work *w, int chunks) {
    int prev = w->tbl_chunks;
    if (!w->tbl) return 0;
    w->tbl_chunks = chunks < 0 ? 0 : chunks;
    if (w->tbl_chunks > w->tbl_alloc) w->tbl_chunks = w->tbl_alloc;
    return prev;
}

void mf_work_free(mf_work *w) {
    if (!w) return;
    mf__free(w->block);
    mf__free(w);
}

/* ====================================================================== */
/* Dense kernels: BLAS above MF__SMALL_GEMM multiply-adds, loops below     */
/* ====================================================================== */

/* Z [n][r] = A [n][k] W^T, W [r][k] (row strides lda, ldw, ldz). */
static void mm_nt(int n, int r, int k, const double *A, int lda, const double *W, int ldw,
                  double *Z, int ldz) {
    if ((double)n * r * k > MF__SMALL_GEMM) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, k, 1.0, A, lda, W, ldw, 0.0, Z,
                    ldz);
        return;
    }
    for (int i = 0; i < n; i++) {
        const double *a = A + (size_t)i * lda;
        double *z = Z + (size_t)i * ldz;
        for (int j = 0; j < r; j++) {
            const double *wr = W + (size_t)j * ldw;
            double s = 0.0;
            for (int t = 0; t < k; t++) s += a[t] * wr[t];
            z[j] = s;
        }
    }
}

/* G [r][k] = D^T A, D [n][r], A [n][k] (row strides ldd, lda, ldg). */
static void mm_tn(int r, int k, int n, const double *D, int ldd, const double *A, int lda,
                  double *G, int ldg) {
    if ((double)n * r * k > MF__SMALL_GEMM) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, k, n, 1.0, D, ldd, A, lda, 0.0, G,
                    ldg);
        return;
    }
    for (int j = 0; j < r; j++) {
        double *g = G + (size_t)j * ldg;
        for (int t = 0; t < k; t++) g[t] = 0.0;
    }
    for (int i = 0; i < n; i++) {
        const double *drow = D + (size_t)i * ldd, *a = A + (size_t)i * lda;
        for (int j = 0; j < r; j++) {
            double dj = drow[j];
            double *g = G + (size_t)j * ldg;
            for (int t = 0; t < k; t++) g[t] += dj * a[t];
        }
    }
}

/* H [n][k] = D W, D [n][r], W [r][k] (row strides ldd, ldw, ldh). */
static void mm_nn(int n, int k, int r, const double *D, int ldd, const double *W, int ldw,
                  double *H, int ldh) {
    if ((double)n * r * k > MF__SMALL_GEMM) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, k, r, 1.0, D, ldd, W, ldw, 0.0,
                    H, ldh);
        return;
    }
    for (int i = 0; i < n; i++) {
        const double *drow = D + (size_t)i * ldd;
        double *h = H + (size_t)i * ldh;
        for (int t = 0; t < k; t++) h[t] = 0.0;
        for (int j = 0; j < r; j++) {
            const double dj = drow[j], *wr = W + (size_t)j * ldw;
            for (int t = 0; t < k; t++) h[t] += dj * wr[t];
        }
    }
}

/* ====================================================================== */
/* Forward and backward                                                   */
/* ====================================================================== */

/*
 * Dense chain forward (linear, fc-linear, mlp; relu2 and relu2-outbias have
 * their own pass below). With H_0 = x [n][d]:
 *   Z_l = H_l W_l^T            Z_l [n][r_l], W_l [r_l][c_l]
 *   H_{l+1} = act_l(Z_l)       sigma or identity, stored in w->h[l]
 * and the last Z is the output [n][n_out].
 */
static void chain_forward(mf_work *w, const double *theta, const double *x, int n, double *out) {
    const int L = w->n_dense, d = w->d;
    const double alpha = w->alpha;
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
static void chain_backward(mf_work *w, const double *theta, const double *x, int n,
                           const double *dout, double *grad) {
    const int L = w->n_dense, d = w->d;
    const double alpha = w->alpha;
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
 *             Zt [M][n] = W X~t,  Ht = sigma(Zt)           (w->h[0], in place)
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
 * Ht in w->h[0] and X~t in w->xt for relu2_backward. */
static void relu2_forward(mf_work *w, const double *theta, const double *x, int n, double *out) {
    const mf__dense *D0 = &w->dense[0];
    const int M = D0->r, c = D0->c, d = w->d;
    const double alpha = w->alpha;
    const double *W = theta + D0->off;
    const double *a = w->fixed_last ? w->afix : theta + w->dense[1].off;
    double *xt = w->xt, *Ht = w->h[0];
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
static void relu2_table_dw(mf_work *w, const double *a, const double *x, int n, const double *dout,
                           double *gW) {
    const int M = w->dense[0].r, c = w->dense[0].c, d = w->d, tp = w->tpad;
    const double alpha = w->alpha, beta = 1.0 - alpha;
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
static void relu2_dense_dw(mf_work *w, const double *a, const double *x, int n, const double *dout,
                           double *gW) {
    const int M = w->dense[0].r, c = w->dense[0].c, d = w->d;
    const double alpha = w->alpha;
    const double *Ht = w->h[0];
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
static void relu2_backward(mf_work *w, const double *theta, const double *x, int n,
                           const double *dout, double *grad) {
    const mf__dense *D0 = &w->dense[0];
    const int M = D0->r;
    const double *a = w->fixed_last ? w->afix : theta + w->dense[1].off;
    const double *Ht = w->h[0];
    double *gW = grad + D0->off;
    double *ga = w->fixed_last ? NULL : grad + w->dense[1].off;
    if (ga) cblas_dgemv(CblasRowMajor, CblasNoTrans, M, n, 1.0, Ht, n, dout, 1, 0.0, ga, 1);
    if (w->tbl_chunks)
        relu2_table_dw(w, a, x, n, dout, gW);
    else
        relu2_dense_dw(w, a, x, n, dout, gW);
    if (w->out_bias) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += dout[i];
        grad[w->out_bias_off] = s;
    }
}

/*
 * Forward pass: out [n][n_out] = Phi(theta; x_i) for the n rows of x [n][d],
 * n <= w->max_batch; keeps what mf_model_backward needs in w.
 */
void mf_model_forward(const mf_model *m, mf_work *w, const double *theta, const double *x, int n,
                      double *out) {
    if (n <= 0) return;
    const int d = m->d;
    switch (m->kind) {
    case MF_MODEL_DIAG: {
        /* Phi(x) = sum_j x_j prod_l w_l[j] = <p, x>, p [d] = w_1 o ... o w_K. */
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
        break;
    }
    case MF_MODEL_SKIP_LINEAR: {
        /* Phi(x) = (1 + w2) s, s = <w1, x>; s kept in w->s [n]. */
        const double c = 1.0 + theta[d];
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int j = 0; j < d; j++) s += x[(size_t)i * d + j] * theta[j];
            w->s[i] = s;
            out[i] = c * s;
        }
        break;
    }
    case MF_MODEL_RELU2:
    case MF_MODEL_RELU2_OUTBIAS: relu2_forward(w, theta, x, n, out); break;
    default: chain_forward(w, theta, x, n, out); break;
    }
}

/*
 * Backward pass after mf_model_forward on the same (theta, x, n):
 * grad [n_params] = sum_i J_i^T dout_i (overwritten, not accumulated),
 * dout [n][n_out].
 */
void mf_model_backward(const mf_model *m, mf_work *w, const double *theta, const double *x, int n,
                       const double *dout, double *grad) {
    if (n <= 0) {
        memset(grad, 0, m->n_params * sizeof *grad);
        return;
    }
    const int d = m->d;
    switch (m->kind) {
    case MF_MODEL_DIAG: {
        /* Phi = sum_j x_j prod_l w_l[j]  =>  dPhi/dw_l[j] = x_j prod_{m != l} w_m[j].
         * g [d] = sum_i dout_i x_i; grad w_l[j] = g[j] * pre_l[j] * suf_l[j] with
         * pre_l = prod_{m < l} w_m, suf_l = prod_{m > l} w_m (no division, exact at zeros). */
        const int K = m->depth;
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
        break;
    }
    case MF_MODEL_SKIP_LINEAR: {
        /* Phi = (1 + w2) <w1, x>  =>  dPhi/dw1 = (1 + w2) x,  dPhi/dw2 = <w1, x> = s. */
        const double c = 1.0 + theta[d];
        double g2 = 0.0;
        for (int j = 0; j < d; j++) grad[j] = 0.0;
        for (int i = 0; i < n; i++) {
            const double di = dout[i];
            for (int j = 0; j < d; j++) grad[j] += c * di * x[(size_t)i * d + j];
            g2 += di * w->s[i];
        }
        grad[d] = g2;
        break;
    }
    case MF_MODEL_RELU2:
    case MF_MODEL_RELU2_OUTBIAS: relu2_backward(w, theta, x, n, dout, grad); break;
    default: chain_backward(w, theta, x, n, dout, grad); break;
    }
}

/* ====================================================================== */
/* Initialization, norms, layout                                          */
/* ====================================================================== */

/*
 * Initialize theta [n_params].
 *  "gauss":    theta_i = scale * N(0, 1), i.i.d., drawn in theta order.
 *  "balanced": relu2 (without fix-outer) and relu2-outbias: every entry of
 *              W (in theta order, bias column included) is scale * N(0, 1);
 *              then for k = 0..M-1 a sign s_k = +1 if mf_rng_uniform < 0.5
 *              else -1, and a_k = s_k ||w_k|| (so |a_k| = ||w_k||, the
 *              balanced state that gradient flow preserves, [LLWA21] sec. 3
 *              and [LL20] for the conservation law); b = 0.
 * scale must be finite and >= 0. Returns MF_OK, MF_ERR_INVALID (unknown kind,
 * bad scale, NULL argument) or MF_ERR_UNSUPPORTED ("balanced" on another model).
 */
int mf_model_init(const mf_model *m, const char *kind, double scale, mf_rng *rng, double *theta,
                  mf_err *e) {
    if (!m || !kind || !rng || !theta)
        return mf__err(e, MF_ERR_INVALID, "mf_model_init: model, kind, rng and theta must not be NULL");
    if (!isfinite(scale) || scale < 0.0)
        return mf__err(e, MF_ERR_INVALID, "init scale %g must be a finite number >= 0", scale);
    if (strcmp(kind, "gauss") == 0) {
        for (size_t i = 0; i < m->n_params; i++) theta[i] = scale * mf_rng_normal(rng);
        return MF_OK;
    }
    if (strcmp(kind, "balanced") == 0) {
        if (!((m->kind == MF_MODEL_RELU2 && !m->fix_outer) || m->kind == MF_MODEL_RELU2_OUTBIAS))
            return mf__err(e, MF_ERR_UNSUPPORTED,
                           "init 'balanced' needs a relu2 (without fix-outer) or relu2-outbias model, "
                           "not %s",
                           m->spec);
        const mf_layer *W = &m->layers[0], *a = &m->layers[1];
        for (size_t i = 0; i < (size_t)W->rows * W->cols; i++)
            theta[W->offset + i] = scale * mf_rng_normal(rng);
        for (int k = 0; k < W->rows; k++) {
            const double *wk = theta + W->offset + (size_t)k * W->cols;
            double s = 0.0;
            for (int j = 0; j < W->cols; j++) s += wk[j] * wk[j];
            double sign = mf_rng_uniform(rng) < 0.5 ? 1.0 : -1.0;
            theta[a->offset + k] = sign * sqrt(s);
        }
        if (m->kind == MF_MODEL_RELU2_OUTBIAS) theta[m->layers[2].offset] = 0.0;
        return MF_OK;
    }
    return mf__err(e, MF_ERR_INVALID, "unknown init '%s' (valid: gauss, balanced)", kind);
}

/* ||theta_l||_2 of parameter group l; NAN if l is out of range. */
double mf_layer_norm(const mf_model *m, const double *theta, int l) {
    if (l < 0 || l >= m->n_layers) return NAN;
    const mf_layer *ly = &m->layers[l];
    return mf__norm2(theta + ly->offset, (size_t)ly->rows * ly->cols);
}

/* ||theta||_2 over all n_params entries, finite up to DBL_MAX (a plain sum
 * of squares overflows once ||theta|| passes ~1e154, which long runs reach). */
double mf_param_norm(const mf_model *m, const double *theta) {
    return mf__norm2(theta, m->n_params);
}

/* Append to buf at *len (snprintf semantics: counts what would be written). */
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *dst = (buf && *len < cap) ? buf + *len : NULL;
    int k = vsnprintf(dst, dst ? cap - *len : 0, fmt, ap);
    va_end(ap);
    if (k > 0) *len += (size_t)k;
}

/*
 * Layout text: "# model SPEC, n_params N, degree L" then one line
 * "index name[row][col]" per entry of theta. Writes at most cap bytes
 * (NUL-terminated when cap > 0) and returns the full length (snprintf).
 */
size_t mf_model_layout(const mf_model *m, char *buf, size_t cap) {
    size_t len = 0;
    if (buf && cap) buf[0] = '\0';
    put(buf, cap, &len, "# model %s, n_params %zu, degree %d\n", m->spec, m->n_params, m->degree);
    for (int l = 0; l < m->n_layers; l++) {
        const mf_layer *ly = &m->layers[l];
        for (int r = 0; r < ly->rows; r++)
            for (int c = 0; c < ly->cols; c++)
                put(buf, cap, &len, "%zu %s[%d][%d]\n", ly->offset + (size_t)r * ly->cols + c,
                    ly->name, r, c);
    }
    return len;
}

/*
 * models.c -- the model registry, the spec parser and the public model API
 * (parse, workspace, forward, backward, init, norms, printable layout, the
 * unit view), dispatched through the model-ops tables of src/model/.
 *
 * Every model is a function Phi(theta; x) of one flat parameter vector theta
 * (groups stored row-major one after another, named by m->layers[]). The
 * homogeneous ones (Phi(c theta) = c^L Phi(theta), c > 0) are the objects of
 * [LL20] (Lyu & Li, ICLR 2020) and [VSS22] (Vardi, Shamir & Srebro, NeurIPS
 * 2022); skip-linear (docs/theory.md s.4, case G) and relu2-outbias are the
 * non-homogeneous counter-examples. What each family computes and how is in
 * its file: src/model/chain.c (linear, fc-linear, mlp), relu2.c (relu2,
 * relu2-outbias), diag.c, skip.c; the table they fill is in
 * src/model/model_internal.h.
 *
 * All buffers live in mf_work, sized at mf_work_new for max_batch samples;
 * forward and backward never allocate. A workspace belongs to the model it
 * was made for; n must not exceed its max_batch.
 */
#include "model/model_internal.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ====================================================================== */
/* Registry                                                               */
/* ====================================================================== */

/* One row per model kind, in mf_model_kind order (tests/test_models.c checks
 * that row k has kind k). A new model adds its row here. */
static const mf__model_ops *const registry[] = {
    &mf__ops_linear, &mf__ops_fc_linear, &mf__ops_diag,          &mf__ops_relu2,
    &mf__ops_mlp,    &mf__ops_skip_linear, &mf__ops_relu2_outbias, &mf__ops_cnn,
};
#define N_MODELS ((int)(sizeof registry / sizeof registry[0]))

int mf__n_models(void) { return N_MODELS; }

const mf__model_ops *mf__model_ops_at(int i) { return i >= 0 && i < N_MODELS ? registry[i] : NULL; }

const mf__model_ops *mf__model_ops_of(const mf_model *m) {
    int k = (int)m->kind;
    return k >= 0 && k < N_MODELS ? registry[k] : NULL;
}

/* The registry's names joined by ", " (only the multi-class ones if
 * multiclass_only), for error messages. */
static void model_names(char *buf, size_t cap, int multiclass_only) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_MODELS && len < cap; i++) {
        if (multiclass_only && !registry[i]->multiclass) continue;
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", registry[i]->name);
    }
}

/* ====================================================================== */
/* Layout helpers (model_internal.h)                                      */
/* ====================================================================== */

void mf__model_add_layer(mf_model *m, const char *name, int rows, int cols) {
    mf_layer *ly = &m->layers[m->n_layers++];
    snprintf(ly->name, sizeof ly->name, "%s", name);
    ly->offset = m->n_params;
    ly->rows = rows;
    ly->cols = cols;
    m->n_params += (size_t)rows * (size_t)cols;
}

void mf__model_fmt_double(char *buf, size_t cap, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        for (char *c = buf; *c; c++)
            if (*c == ',') *c = '.';
        if (mf__strtod_c(buf, NULL) == v) return;
    }
}

/* ====================================================================== */
/* Spec parser                                                            */
/* ====================================================================== */

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

/* Messages show a spec and its tokens as typed but escaped (mf__quote: no
 * raw control byte reaches a terminal), cut with "..." beyond these many
 * bytes. */
#define SPEC_QUOTE 200
#define TOKEN_QUOTE 64
#define QTOK(buf, s) mf__quote((buf), sizeof(buf), (s), strlen(s), TOKEN_QUOTE)

/* What one spec parse has seen so far. */
typedef struct spec_state {
    char spec[MF__QUOTE_CAP(SPEC_QUOTE)]; /* the whole spec, escaped, for messages */
    char tok[MF__QUOTE_CAP(TOKEN_QUOTE)]; /* the current option token as typed, escaped */
    const mf__model_ops *ops;
    const mf__option *widths;  /* the WIDTHS option whose integers may follow, or NULL */
    int layers;                /* 1 right after a LAYERS option: layer tokens may follow */
    unsigned seen;             /* bit i: option i given */
} spec_state;

/* Append the width token w (part of option token t) to m->widths. */
static int add_width(mf_model *m, const spec_state *ps, const mf__option *o, const char *w,
                     int in_list, mf_err *e) {
    int v;
    char qw[MF__QUOTE_CAP(TOKEN_QUOTE)];
    if (m->depth >= MF_MAX_LAYERS - 1)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": bad option '%s': %s has at most %d hidden layers",
                       ps->spec, ps->tok, ps->ops->name, MF_MAX_LAYERS - 1);
    if (parse_int(w, 1, o->hi, &v)) {
        if (in_list)
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": bad width '%s' in '%s': must be an integer in [1, %d]",
                           ps->spec, QTOK(qw, w), ps->tok, o->hi);
        return mf__err(e, MF_ERR_PARSE,
                       "model spec \"%s\": bad width '%s' in %s: must be an integer in [1, %d]",
                       ps->spec, QTOK(qw, w), o->key, o->hi);
    }
    m->widths[m->depth++] = v;
    return MF_OK;
}

/* Append the cnn layer token w (part of the current option token) to m->cnn. */
static int add_cnn_layer(mf_model *m, const spec_state *ps, const char *w, mf_err *e) {
    char qw[MF__QUOTE_CAP(TOKEN_QUOTE)];
    if (m->n_cnn >= MF_MAX_CNN_LAYERS)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": bad option '%s': %s has at most %d layers",
                       ps->spec, ps->tok, ps->ops->name, MF_MAX_CNN_LAYERS);
    if (mf__cnn_token(w, &m->cnn[m->n_cnn]))
        return mf__err(e, MF_ERR_PARSE,
                       "model spec \"%s\": bad layer '%s': expected cNkK (conv, N channels, K x K), "
                       "pP (max-pool P x P) or fN (fully connected, N units), N <= 2^24, K, P <= 1024",
                       ps->spec, QTOK(qw, w));
    m->n_cnn++;
    return MF_OK;
}

/* Store the value val of option o (token t, key key) in m. */
static int set_value(mf_model *m, const spec_state *ps, const mf__option *o, const char *key,
                     char *val, mf_err *e) {
    char *field = (char *)m + o->field;
    if (o->type == MF__OPT_INT) {
        int v;
        if (parse_int(val, 1, o->hi, &v))
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": bad option '%s': %s must be an integer in [1, %d]",
                           ps->spec, ps->tok, key, o->hi);
        memcpy(field, &v, sizeof v);
        return MF_OK;
    }
    if (o->type == MF__OPT_UNIT) {
        char *end;
        double a = mf__strtod_c(val, &end);
        if (!*val || *end || !isfinite(a) || a < 0.0 || a > 1.0)
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": bad option '%s': %s must be a finite number in [0, 1]",
                           ps->spec, ps->tok, key);
        memcpy(field, &a, sizeof a);
        return MF_OK;
    }
    if (o->type == MF__OPT_SHAPE) { /* AxBxC */
        int v[3], k = 0;
        char *p = val;
        for (; k < 3; k++) {
            char *x = strchr(p, 'x');
            if (x) *x = '\0';
            if ((k < 2) != (x != NULL) || parse_int(trim(p), 1, o->hi, &v[k])) break;
            p = x ? x + 1 : p;
        }
        if (k < 3)
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": bad option '%s': %s must be CxHxW, three integers "
                           "in [1, %d]",
                           ps->spec, ps->tok, key, o->hi);
        memcpy(field, v, sizeof v);
        return MF_OK;
    }
    if (o->type == MF__OPT_LAYERS) return add_cnn_layer(m, ps, val, e);
    /* MF__OPT_WIDTHS: '/'-separated integers */
    if (!*val)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": bad option '%s': %s needs at least one integer",
                       ps->spec, ps->tok, key);
    for (char *p = val; p;) {
        char *slash = strchr(p, '/');
        if (slash) *slash = '\0';
        int rc = add_width(m, ps, o, trim(p), 1, e);
        if (rc) return rc;
        p = slash ? slash + 1 : NULL;
    }
    return MF_OK;
}

/*
 * One option token t (trimmed, non-empty) of the spec: a pure integer right
 * after a widths option belongs to it; otherwise "key" or "key=value", key
 * one of the family's options, each at most once.
 */
static int parse_token(mf_model *m, spec_state *ps, char *t, mf_err *e) {
    const mf__model_ops *ops = ps->ops;
    if (ps->widths && all_digits(t)) return add_width(m, ps, ps->widths, t, 0, e);
    ps->widths = NULL;
    {
        mf_cnn_layer tmp;
        if (ps->layers && mf__cnn_token(t, &tmp) == 0) return add_cnn_layer(m, ps, t, e);
    }
    ps->layers = 0;
    char *eq = strchr(t, '=');
    char key[64];
    size_t klen = eq ? (size_t)(eq - t) : strlen(t);
    if (klen >= sizeof key) klen = sizeof key - 1;
    memcpy(key, t, klen);
    key[klen] = '\0';
    {
        char *kt = trim(key);
        memmove(key, kt, strlen(kt) + 1);
    }
    char *val = eq ? trim(eq + 1) : NULL;
    int i = 0;
    while (ops->options[i].key && strcmp(key, ops->options[i].key) != 0) i++;
    const mf__option *o = &ops->options[i];
    if (!o->key)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": unknown option '%s' for %s (valid options: %s)",
                       ps->spec, ps->tok, ops->name, ops->options_help);
    if (ps->seen & (1u << i))
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": option '%s' given twice", ps->spec, ps->tok);
    ps->seen |= 1u << i;
    if (o->type == MF__OPT_FLAG || o->type == MF__OPT_CHOICE) {
        if (eq)
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": bad option '%s': '%s' is a flag and takes no value",
                           ps->spec, ps->tok, key);
        int v = o->type == MF__OPT_FLAG ? 1 : o->hi, old;
        memcpy(&old, (char *)m + o->field, sizeof old);
        if (o->type == MF__OPT_CHOICE && old != 0)
            return mf__err(e, MF_ERR_PARSE,
                           "model spec \"%s\": bad option '%s': an earlier option already made "
                           "this choice (valid options: %s)",
                           ps->spec, ps->tok, ops->options_help);
        memcpy((char *)m + o->field, &v, sizeof v);
        return MF_OK;
    }
    if (!eq)
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": bad option '%s': expected %s=VALUE",
                       ps->spec, ps->tok, key);
    int rc = set_value(m, ps, o, key, val, e);
    if (rc == MF_OK && o->type == MF__OPT_WIDTHS) ps->widths = o;
    if (rc == MF_OK && o->type == MF__OPT_LAYERS) ps->layers = 1;
    return rc;
}

/* The options opts ("opt,opt,...", may be NULL) of the spec into m:
 * "name:" alone means no options, any other empty token is an error. */
static int parse_options(mf_model *m, spec_state *ps, char *opts, mf_err *e) {
    if (opts) {
        opts = trim(opts);
        if (!*opts) opts = NULL;
    }
    for (char *tok = opts; tok;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        char *t = trim(tok);
        tok = comma ? comma + 1 : NULL;
        if (!*t)
            return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": empty option (valid options for %s: %s)",
                           ps->spec, ps->ops->name, ps->ops->options_help);
        QTOK(ps->tok, t); /* before parse_token cuts t at its separators */
        int rc = parse_token(m, ps, t, e);
        if (rc) return rc;
    }
    return MF_OK;
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
    char buf[1024], names[256], qs[MF__QUOTE_CAP(SPEC_QUOTE)], qn[MF__QUOTE_CAP(TOKEN_QUOTE)];
    if (out) *out = NULL;
    if (!spec || !out) return mf__err(e, MF_ERR_INVALID, "mf_model_parse: spec and out must not be NULL");
    mf__quote(qs, sizeof qs, spec, strlen(spec), SPEC_QUOTE);
    if (d < 1 || d > INT_MAX - 1)
        return mf__err(e, MF_ERR_INVALID, "model \"%s\": data dimension d = %d must be >= 1", qs, d);
    if (num_classes < 0 || num_classes == 1)
        return mf__err(e, MF_ERR_INVALID,
                       "model \"%s\": num_classes = %d must be 0 (binary) or >= 2", qs, num_classes);
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
    const mf__model_ops *ops = NULL;
    for (int k = 0; k < N_MODELS; k++)
        if (strcmp(name, registry[k]->name) == 0) ops = registry[k];
    if (!ops) {
        model_names(names, sizeof names, 0);
        return mf__err(e, MF_ERR_PARSE, "model spec \"%s\": unknown model '%s' (valid: %s)", qs,
                       QTOK(qn, name), names);
    }

    mf_model m;
    memset(&m, 0, sizeof m);
    m.kind = ops->kind;
    m.d = d;
    m.n_out = num_classes >= 2 ? num_classes : 1;
    m.depth = 2;
    m.width = 10;
    m.alpha = 0.0;
    if (ops->defaults) ops->defaults(&m);
    spec_state ps;
    memcpy(ps.spec, qs, sizeof ps.spec);
    ps.tok[0] = '\0';
    ps.ops = ops;
    ps.widths = NULL;
    ps.layers = 0;
    ps.seen = 0;
    int rc = parse_options(&m, &ps, opts, e);
    if (!rc && ops->check) rc = ops->check(&m, ps.spec, e);
    if (rc) return rc;
    if (m.n_out > 1 && !ops->multiclass) {
        model_names(names, sizeof names, 1);
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "model %s supports binary data only, but the data has %d classes "
                       "(multi-class models: %s)",
                       ops->name, num_classes, names);
    }
    m.n_params = 0;
    m.n_layers = 0;
    ops->layout(&m);

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

/* Where the family state starts after struct mf_work. */
#define STATE_OFFSET ((sizeof(struct mf_work) + alignof(max_align_t) - 1) / alignof(max_align_t) * \
                      alignof(max_align_t))

/*
 * Allocate a workspace for batches of up to max_batch samples of model m:
 * the family's state (its table's work_state bytes) and one block of doubles
 * for every buffer it plans (work_plan, then work_bind). Two allocations in
 * all. Returns MF_OK, MF_ERR_INVALID (NULL model, max_batch < 1, sizes that
 * overflow) or MF_ERR_NOMEM; *out is NULL on error.
 */
int mf_work_new(const mf_model *m, int max_batch, mf_work **out, mf_err *e) {
    if (out) *out = NULL;
    if (!m || !out) return mf__err(e, MF_ERR_INVALID, "mf_work_new: model and out must not be NULL");
    if (max_batch < 1)
        return mf__err(e, MF_ERR_INVALID, "mf_work_new: max_batch = %d must be >= 1", max_batch);
    const mf__model_ops *ops = mf__model_ops_of(m);
    if (!ops) return mf__err(e, MF_ERR_INVALID, "mf_work_new: unknown model kind %d", (int)m->kind);
    mf_work *w = mf__calloc(1, STATE_OFFSET + ops->work_state);
    if (!w) return mf__err(e, MF_ERR_NOMEM, "out of memory allocating the model workspace");
    w->max_batch = max_batch;
    w->ops = ops;
    w->model = *m;
    w->state = (char *)w + STATE_OFFSET;
    size_t total = 0;
    if (ops->work_plan(m, w->state, (size_t)max_batch, &total) || total > MF__WORK_LIM) {
        mf__free(w);
        return mf__err(e, MF_ERR_INVALID, "mf_work_new: workspace for max_batch = %d is too large",
                       max_batch);
    }
    w->block = mf__malloc((total ? total : 1) * sizeof(double));
    if (!w->block) {
        mf__free(w);
        return mf__err(e, MF_ERR_NOMEM, "out of memory allocating the model workspace (%zu doubles)",
                       total);
    }
    ops->work_bind(m, w->state, w->block, (size_t)max_batch);
    *out = w;
    return MF_OK;
}

/* Contract in model_internal.h. */
double mf__work_bytes(const mf_model *m, size_t max_batch) {
    const mf__model_ops *ops = mf__model_ops_of(m);
    if (!ops || max_batch < 1) return INFINITY;
    void *st = mf__calloc(1, ops->work_state ? ops->work_state : 1);
    if (!st) return -1.0;
    size_t total = 0;
    int bad = ops->work_plan(m, st, max_batch, &total) || total > MF__WORK_LIM;
    mf__free(st);
    return bad ? INFINITY : (double)STATE_OFFSET + ops->work_state + 8.0 * (double)total;
}

void mf_work_free(mf_work *w) {
    if (!w) return;
    mf__free(w->block);
    mf__free(w);
}

/* ====================================================================== */
/* Forward and backward                                                   */
/* ====================================================================== */

/*
 * Whether model m may use workspace w, made for w->model: the same kind,
 * sizes, canonical spec and parameter layout (what the buffers were planned
 * from).
 */
static int work_matches(const mf_model *m, const mf_work *w) {
    const mf_model *a = &w->model;
    if (a->kind != m->kind || a->d != m->d || a->n_out != m->n_out || a->n_params != m->n_params ||
        a->n_layers != m->n_layers || strncmp(a->spec, m->spec, sizeof a->spec) != 0)
        return 0;
    for (int l = 0; l < a->n_layers; l++)
        if (a->layers[l].offset != m->layers[l].offset || a->layers[l].rows != m->layers[l].rows ||
            a->layers[l].cols != m->layers[l].cols)
            return 0;
    return 1;
}

/* The checks forward and backward share (the header lists them): in and
 * res are the pass's other input and its result (out; dout and grad). */
static int check_pass(const mf_model *m, const mf_work *w, const double *theta, const double *x,
                      int n, const double *in, const double *res) {
    if (!m || !w || n < 0 || n > w->max_batch) return MF_ERR_INVALID;
    if (n > 0 && (!theta || !x || !in || !res)) return MF_ERR_INVALID;
    return work_matches(m, w) ? MF_OK : MF_ERR_DIM;
}

/*
 * Forward pass: out [n][n_out] = Phi(theta; x_i) for the n rows of x [n][d],
 * 0 <= n <= w->max_batch; keeps what mf_model_backward needs in w. The
 * arguments are checked first (check_pass); nothing is written on error.
 */
int mf_model_forward(const mf_model *m, mf_work *w, const double *theta, const double *x, int n,
                     double *out) {
    int rc = check_pass(m, w, theta, x, n, x, out);
    if (rc || n == 0) return rc;
    w->ops->forward(m, w->state, theta, x, n, out);
    return MF_OK;
}

/*
 * Backward pass after mf_model_forward on the same (theta, x, n):
 * grad [n_params] = sum_i J_i^T dout_i (overwritten, not accumulated),
 * dout [n][n_out]. Checked as forward, with dout and grad non-NULL.
 */
int mf_model_backward(const mf_model *m, mf_work *w, const double *theta, const double *x, int n,
                      const double *dout, double *grad) {
    int rc = check_pass(m, w, theta, x, n, dout, grad);
    if (!rc && !grad) rc = MF_ERR_INVALID;
    if (rc) return rc;
    if (n == 0) {
        memset(grad, 0, m->n_params * sizeof *grad);
        return MF_OK;
    }
    w->ops->backward(m, w->state, theta, x, n, dout, grad);
    return MF_OK;
}

/* Contract in marginflow.h. */
int mf_model_backward_input(const mf_model *m, mf_work *w, const double *theta, const double *x,
                            int n, const double *dout, double *gx) {
    if (!w->ops->backward_input) return MF_ERR_UNSUPPORTED;
    if (n > 0) w->ops->backward_input(m, w->state, theta, x, n, dout, gx);
    return MF_OK;
}

/* ====================================================================== */
/* Initialization, norms, layout, structure                               */
/* ====================================================================== */

/*
 * Initialize theta [n_params].
 *  "gauss":    theta_i = scale * N(0, 1), i.i.d., drawn in theta order.
 *  "balanced": relu2 (without fix-outer) and relu2-outbias: every entry of
 *              W (in theta order, bias column included) is scale * N(0, 1);
 *              then for k = 0..M-1 a sign s_k = +1 if mf_rng_uniform < 0.5
 *              else -1, and a_k = s_k ||w_k|| (so |a_k| = ||w_k||, the
 *              balanced state that gradient flow preserves, [LLWA21] sec. 3
 *              and [LL20] for the conservation law); b = 0 (the family's
 *              init_balanced).
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
        const mf__model_ops *ops = mf__model_ops_of(m);
        if (!ops || !ops->init_balanced || ops->init_balanced(m, scale, rng, theta) != 0)
            return mf__err(e, MF_ERR_UNSUPPORTED,
                           "init 'balanced' needs a relu2 (without fix-outer) or relu2-outbias model, "
                           "not %s",
                           m->spec);
        return MF_OK;
    }
    if (strcmp(kind, "he") == 0) {
        const mf__model_ops *ops = mf__model_ops_of(m);
        if (ops && ops->init_he) {
            ops->init_he(m, scale, rng, theta);
            return MF_OK;
        }
        for (int l = 0; l < m->n_layers; l++) { /* N(0, scale^2 2 / fan_in), fan_in = cols */
            const mf_layer *ly = &m->layers[l];
            const double sd = scale * sqrt(2.0 / ly->cols);
            for (size_t i = 0; i < (size_t)ly->rows * ly->cols; i++)
                theta[ly->offset + i] = sd * mf_rng_normal(rng);
        }
        return MF_OK;
    }
    return mf__err(e, MF_ERR_INVALID, "unknown init '%s' (valid: gauss, balanced, he)", kind);
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

/* Contract in marginflow.h: the family's units, or none. */
int mf_model_units(const mf_model *m, mf_units *u) {
    mf_units none = {0, -1, 0, -1, -1};
    *u = none;
    const mf__model_ops *ops = m ? mf__model_ops_of(m) : NULL;
    if (!ops || !ops->units) return 0;
    return ops->units(m, u);
}

double mf_units_outer(const mf_model *m, const mf_units *u, const double *theta, int k) {
    if (u->a_layer < 0) return mf_units_fixed_outer(k);
    return theta[m->layers[u->a_layer].offset + (size_t)k];
}

/* Contract in marginflow.h. */
int mf_model_n_hidden(const mf_model *m) {
    const mf__model_ops *ops = m ? mf__model_ops_of(m) : NULL;
    return ops && ops->n_hidden ? ops->n_hidden(m) : 0;
}

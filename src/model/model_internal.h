/*
 * model_internal.h -- the model interface of marginflow: one table of
 * operations (mf__model_ops) per model kind. Not public.
 *
 * A model family lives in one file of src/model/ (chain.c: linear, fc-linear,
 * mlp; relu2.c: relu2, relu2-outbias; diag.c; skip.c) and exports one
 * mf__model_ops per kind; src/models.c holds the registry (the kinds in
 * mf_model_kind order) and the spec parser, and dispatches the public model
 * API (mf_model_parse, mf_work_new, mf_model_forward, ...) through the table.
 * Nothing outside src/model/ tests the model kind: the analysis code
 * (src/analyze.c, kkt.c, global_ref.c, local.c, metrics.c) asks the table
 * (pre-activations, Clarke data, global reference, linear layers) or the
 * public unit view (mf_model_units).
 *
 * Adding a model: one file here with its mf__model_ops, one row in the
 * registry of src/models.c, an mf_model_kind value (and its spec line) in
 * include/marginflow.h, and its tests.
 */
#ifndef MF_MODEL_INTERNAL_H
#define MF_MODEL_INTERNAL_H

#include "internal.h"

#include <stddef.h>

/* Largest accepted width / depth-independent dimension (keeps every product
 * of two sizes far inside size_t and every size inside int). */
#define MF__MAX_DIM (1 << 24)

/* Bound on the doubles of one workspace: every count of doubles stays below
 * it, so every byte count (x sizeof(double)) and sums of a few such counts
 * stay inside size_t. */
#define MF__WORK_LIM (((size_t)-1) / 4 / sizeof(double))

/* ------------------------------------------------------------ spec options */

/* Kinds of spec options (model_parse in src/models.c checks and stores them;
 * the error messages name the key and the allowed range). */
typedef enum mf__opt_type {
    MF__OPT_FLAG = 0, /* bare "key": int field set to 1; a value is an error */
    MF__OPT_INT,      /* "key=N", N in [1, hi]: int field */
    MF__OPT_UNIT,     /* "key=A", finite A in [0, 1]: double field */
    MF__OPT_WIDTHS,   /* "key=M1/M2/..." (and the pure-integer tokens after it):
                         appended to m->widths[m->depth++], each in [1, hi] */
    MF__OPT_CHOICE,   /* bare "key": int field set to hi; an error when an earlier
                         option already set that field (presets, bias kinds) */
    MF__OPT_SHAPE,    /* "key=AxBxC", each in [1, hi]: int field[3] */
    MF__OPT_LAYERS    /* "key=TOKEN" and the layer tokens after it (mf__cnn_token):
                         appended to m->cnn[m->n_cnn++] */
} mf__opt_type;

typedef struct mf__option {
    const char *key;   /* e.g. "width"; NULL ends a list */
    mf__opt_type type;
    int hi;            /* MF__OPT_INT / WIDTHS / SHAPE: largest value; CHOICE: the value */
    size_t field;      /* offsetof(mf_model, ...) of the field it sets (not for WIDTHS) */
} mf__option;

/* ------------------------------------------------------- global references */

/* Which closed-form global optimum of (P) a model has on the data
 * (docs/theory.md s.3); the solvers are in src/global_ref.c. */
typedef enum mf__ref_kind {
    MF__REF_NONE = 0,
    MF__REF_SVM_L2,     /* gamma* = factor * gamma_svm (hard-margin SVM; multi-class:
                           Crammer-Singer, exact for depth 1 and for a rank-one W) */
    MF__REF_L1_DIAG2,   /* gamma* = 1 / (2 ||beta_l1||_1) (l1-margin LP) */
    MF__REF_DIAG_ENUM,  /* depth-K diagonal: l_{2/K} problem by vertex enumeration */
    MF__REF_SOLVER      /* an exact reference computed by `solve` with a certificate */
} mf__ref_kind;

/* What an exact-reference solver (MF__REF_SOLVER) returns: a certified
 * bracket lower <= gamma* <= upper (both re-checked by its own direct
 * evaluation: lower from a feasible point, upper from a dual or relaxation
 * bound), gamma_star its best estimate; the analysis calls it exact when
 * (upper - lower) <= global_tol * upper. */
typedef struct mf__exact_ref {
    double gamma_star, lower, upper;
    char source[128];   /* the method, for the verdict text */
    /* optional: the network attaining `lower` (q_min = 1, re-evaluated by
     * the solver), of model `spec` (its own width) with n_params
     * parameters, allocated with mf__malloc; the analysis takes it over
     * (mf_analysis.global_theta) and says "not global" with it when gamma
     * < lower (1 - global_tol). NULL: none. */
    double *theta;
    size_t n_params;
    char spec[MF_SPEC_LEN];
} mf__exact_ref;

typedef struct mf__global_ref {
    mf__ref_kind kind;
    double factor;      /* MF__REF_SVM_L2 */
    int depth;          /* MF__REF_DIAG_ENUM: K; MF__REF_SVM_L2: the linear depth k */
    char source[128];   /* how gamma* is obtained, for the verdict text */
    /* MF__REF_SOLVER: the solver (e.g. a certified global optimum of
     * two-layer ReLU nets); MF_OK with *out filled, or an error (then no
     * reference, with the message in the note). */
    int (*solve)(const mf_model *m, const mf_data *data, mf__exact_ref *out, mf_err *e);
} mf__global_ref;

/* ------------------------------------------------------------ the table */

/*
 * The operations of one model kind. Required: name, options_help, options,
 * layout, work_state, work_plan, work_bind, forward, backward. Every other
 * entry may be NULL, meaning: the model has no such structure (no hidden
 * units, no free Clarke coefficients, no known global optimum, no layer the
 * margins are linear in, not a two-layer net, no balanced init).
 */
typedef struct mf__model_ops {
    mf_model_kind kind;
    const char *name;          /* spec name, e.g. "relu2" */
    const char *options_help;  /* what the error messages list, e.g. "width=M, alpha=A" */
    const mf__option *options; /* the accepted options, ended by key == NULL */
    int multiclass;            /* 1: n_out = C >= 2 allowed; 0: binary data only */

    /* Defaults beyond depth = 2, width = 10, alpha = 0 (NULL: none). */
    void (*defaults)(mf_model *m);
    /* After the options: MF_OK, or an MF_ERR_PARSE naming what is missing. */
    int (*check)(const mf_model *m, const char *spec, mf_err *e);
    /* Fill layers[], n_params, degree, homogeneous, depth/width where they
     * are derived, and the canonical spec from the parsed options. */
    void (*layout)(mf_model *m);

    /* Workspace: work_state bytes of family state (zeroed); work_plan sets
     * its scalar fields for batches of max_batch samples and the number of
     * doubles its buffers need (-1: too large, checked against
     * MF__WORK_LIM); work_bind points the buffers into block. */
    size_t work_state;
    int (*work_plan)(const mf_model *m, void *st, size_t max_batch, size_t *doubles);
    void (*work_bind)(const mf_model *m, void *st, double *block, size_t max_batch);
    /* out [n][n_out] = Phi(theta; x_i), n <= max_batch; backward after it on
     * the same (theta, x, n): grad [n_params] = sum_i J_i^T dout_i. */
    void (*forward)(const mf_model *m, void *st, const double *theta, const double *x, int n,
                    double *out);
    void (*backward)(const mf_model *m, void *st, const double *theta, const double *x, int n,
                     const double *dout, double *grad);
    /* After forward on (theta, x, n): gx [n][d] = sum over outputs of
     * (d out_i / d x_i)^T dout_i (contract at mf_model_backward_input). */
    void (*backward_input)(const mf_model *m, void *st, const double *theta, const double *x,
                           int n, const double *dout, double *gx);
    /* init "he" when the generic one (N(0, 2 / cols) per group) does not fit,
     * e.g. bias columns that start at 0. 0 on success. */
    int (*init_he)(const mf_model *m, double scale, mf_rng *rng, double *theta);
    /* init "balanced" (contract at mf_model_init): 0, or -1 when this
     * instance does not support it. */
    int (*init_balanced)(const mf_model *m, double scale, mf_rng *rng, double *theta);

    /* Hidden units whose pre-activations exist (contract at mf_model_n_hidden). */
    int (*n_hidden)(const mf_model *m);
    /* pre[n][H] and scale[n][H] (either may be NULL) at theta; a unit with
     * |pre| <= zero_tol * scale is at a kink. MF_OK or MF_ERR_NOMEM. */
    int (*preact)(const mf_model *m, const double *theta, const mf_data *data, double *pre,
                  double *scale, mf_err *e);
    /* Clarke data at kinks. After mf_model_forward(m, w, theta, x, 1, .) on
     * one sample x, grad [n_params] = J^T dout (dout [n_out] the output seed
     * of the margin) of the smooth piece in which hidden unit units[t] (t <
     * nu, indices as in preact) has derivative 1 when bit t of pattern is
     * set and alpha when it is clear, every other unit the derivative the
     * backward pass uses (1 for z > 0, alpha otherwise). Near a point where
     * those pre-activations are zero these pieces are the polynomials the
     * margin equals on the open regions of the sign patterns; the convex
     * hull of their gradients is the Clarke subdifferential (src/kkt.c).
     * NULL: the kink coefficients are not freed (sigma'(0) = alpha is used;
     * kink_note says so). */
    void (*piece_grad)(const mf_model *m, mf_work *w, const double *theta, const double *x,
                       const double *dout, const int *units, int nu, unsigned pattern,
                       double *grad);
    const char *kink_note;     /* sentence for the verdict when kinks are not freed */
    /* 1 if the margins are linear in parameter group l (P_l is a convex QP). */
    int (*layer_is_linear)(const mf_model *m, int l);
    /* The known global optimum of (P) on the data, if any (binary and
     * multi-class; r is zeroed by the caller). */
    void (*global_ref)(const mf_model *m, const mf_data *data, mf__global_ref *r);
    /* Two-layer unit view (contract at mf_model_units); 1 if filled. */
    int (*units)(const mf_model *m, mf_units *u);
} mf__model_ops;

/* The registry (src/models.c): the table of m->kind (NULL for an unknown
 * kind), and the table with index i < mf__n_models (registry order). */
const mf__model_ops *mf__model_ops_of(const mf_model *m);
const mf__model_ops *mf__model_ops_at(int i);
int mf__n_models(void);

/* The families' tables. */
extern const mf__model_ops mf__ops_linear, mf__ops_fc_linear, mf__ops_mlp;  /* chain.c */
extern const mf__model_ops mf__ops_relu2, mf__ops_relu2_outbias;            /* relu2.c */
extern const mf__model_ops mf__ops_diag;                                     /* diag.c */
extern const mf__model_ops mf__ops_skip_linear;                              /* skip.c */
extern const mf__model_ops mf__ops_cnn;                                      /* cnn.c */

/* A cnn layer token "cNkK", "pP" or "fN" into *out: 0, or -1 when t is not
 * one (cnn.c; the spec parser's MF__OPT_LAYERS). */
int mf__cnn_token(const char *t, mf_cnn_layer *out);

/* The workspace: the family's state and the one block of doubles behind its
 * buffers (mf_work_new in src/models.c). */
struct mf_work {
    int max_batch;
    const mf__model_ops *ops;
    mf_model model;  /* the model it was made for: forward/backward refuse another */
    void *state;    /* ops->work_state bytes, right after this struct */
    double *block;
};

/* Bytes a workspace of m for batches of max_batch samples takes (the
 * family's plan, without allocating its buffers); INFINITY when the plan
 * is too large, -1 when the (small) state could not be allocated
 * (src/models.c). */
double mf__work_bytes(const mf_model *m, size_t max_batch);

/* Helpers for layout (src/models.c). */
/* Append a parameter group [rows][cols] named name to m's layout. */
void mf__model_add_layer(mf_model *m, const char *name, int rows, int cols);
/* The shortest of %.15g/%.16g/%.17g that reads back to v, '.' as the
 * decimal point whatever the locale (for canonical specs). */
void mf__model_fmt_double(char *buf, size_t cap, double v);

#endif

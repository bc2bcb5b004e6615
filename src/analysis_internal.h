/*
 * analysis_internal.h -- what the files of the analysis share (not public):
 *   margin.c        margins, margin Jacobian, gamma, gains (the one copy)
 *   kkt.c           (eps, delta)-KKT by NNLS with Clarke columns; Lyu-Li's certificate
 *   global_ref.c    closed-form global optima; the per-layer problem P_l
 *   second_order.c  Lagrangian Hessian on the critical subspace
 *   verdict.c       evidence -> verdict and reason (a pure function)
 *   analyze.c       mf_analyze, the orchestrator; local.c the LP/SLSQP tests
 * with the named constants they are judged by. Problem (P) and the methods
 * are in docs/theory.md section 3 and the file comments.
 */
#ifndef MF_ANALYSIS_INTERNAL_H
#define MF_ANALYSIS_INTERNAL_H

#include "internal.h"
#include "model/model_internal.h"

/* ------------------------------------------------------------ constants */

/* A sample with k kinks has 2^k extreme-ray KKT columns; beyond 2^10 per
 * sample the exact Clarke treatment is given up for that sample (its kinks
 * use sigma'(0) = alpha, and the verdict says so). */
#define MF__MAX_KINKS_PER_SAMPLE 10
/* NNLS columns in all: the column matrix is P x 8192 doubles (64 KiB per
 * parameter); samples that would exceed it are treated as above. */
#define MF__MAX_KKT_COLUMNS 8192
/* The KKT NNLS stops when no column has w_j > MF__KKT_NNLS_TOL ||theta~||
 * max_j ||h_j||: relative 1e-12 is far above the rounding of w (~1e-16)
 * and far below any tolerance a verdict uses (kkt_tol >= 1e-6 in practice). */
#define MF__KKT_NNLS_TOL 1e-12
/* The NNLS optimality residual (max over columns of |w_j| on the support,
 * w_j+ off it, relative to max ||h_j|| ||theta~||) above which the verdict
 * notes it: 1e4 times the stopping tolerance, so only a solve that stopped
 * for another reason (iteration limit, stall) is reported. */
#define MF__KKT_NNLS_CHECK 1e-8
/* Lyu-Li certificate: outputs of theta = ||theta||^L (outputs at theta^) are
 * capped at this magnitude before the loss: below DBL_MAX (1.8e308) with
 * room for the loss's sums; the loss weights e^{-(q_n - q_min)} then change
 * only for margin gaps below ~1e-290 of the scale (0 either way). */
#define MF__LL_OUTPUT_CAP 1e300
/* Second-order test only up to this many parameters: the P x P Hessian costs
 * 2P Jacobians and P^2 doubles (1500: 18 MB, 3000 Jacobian passes). */
#define MF__MAX_HESS_PARAMS 1500
/* |eigenvalue| of the reduced Hessian below this is zero: the difference
 * Hessian with h = 1e-5 has truncation errors ~h^2 = 1e-10 and rounding
 * ~eps/h ~ 1e-11 relative, far below; a curvature of 1e-6 is resolved. */
#define MF__EIG_TOL 1e-6
/* A multiplier below MF__LAMBDA_ZERO max(1, max lambda) counts as zero (the
 * constraint is active without weight: strict complementarity fails). */
#define MF__LAMBDA_ZERO 1e-6
/* g.d within MF__CONE_TOL ||g|| of 0 counts as 0 when testing whether a
 * direction d lies in the critical cone (d is unit; 1e-9 is well above the
 * rounding of g.d and far below any real slope). */
#define MF__CONE_TOL 1e-9
/* Singular values below MF__RANK_TOL s_max are zero in the null space of the
 * active gradients (gradients are exact to ~1e-15 relative). */
#define MF__RANK_TOL 1e-10
/* A relative margin gain above this certifies "not local" (at exact KKT
 * points; rounding of gamma is ~1e-15, so 1e-9 cannot come from it). */
#define MF__GAIN_CERT 1e-9
/* The polish: a local re-solve from theta~ itself, at this radius (a start
 * indistinguishable from theta~ at double precision, 1e-14 relative) ... */
#define MF__POLISH_RADIUS 1e-14
/* ... accepted as the reference when it ends within this relative distance
 * of theta~ (1e-2: near, as the radius-1e-2 searches; one that wanders
 * further found a better point, which the search gains then count). */
#define MF__POLISH_MAX_DIST 1e-2
/* The radii of the local re-solves (mf_local_search), relative to ||theta~||:
 * four decades from a tenth of the norm down. */
#define MF__N_SEARCH_RADII 4
extern const double mf__search_radii[MF__N_SEARCH_RADII];
/* Symmetric data: x_m = -x_n to this much per coordinate (data files are
 * read exactly; generated mirrors are exact negations). */
#define MF__SYM_TOL 1e-12
/* Depth-K diagonal reference: at most this many vertex subsets C(N + d, d)
 * (a fraction of a second) and d <= MF__DIAG_ENUM_MAX_D (fixed arrays). */
#define MF__DIAG_ENUM_MAX_SUBSETS 200000L
#define MF__DIAG_ENUM_MAX_D 16
/* A vertex system whose solution has an entry beyond this is near singular
 * (the data are O(1); a real vertex is O(1 / gamma)). */
#define MF__DIAG_ENUM_MAX_COEF 1e12
/* A vertex is feasible when q_min >= 1 - MF__DIAG_ENUM_FEAS_TOL (rounding of
 * the dgesv solve is ~1e-15 relative). */
#define MF__DIAG_ENUM_FEAS_TOL 1e-10
/* The reason texts quote the second-order and directional gains at
 * eps = mf__gain_steps[MF__GAIN_QUOTED] = 1e-3. */
#define MF__GAIN_QUOTED 2
extern const double mf__gain_steps[MF_N_GAINS];

/* -------------------------------------------------------------- margin.c */

/* NULL pointers, empty data, data/model dimensions, finite theta; the
 * analysis's messages. */
int mf__check_inputs(const mf_model *m, const mf_data *data, const double *theta, mf_err *e);
/* Competing class argmax_{j != y_i} z_j (first on ties); -1 for binary data. */
int mf__competitor(const mf_data *data, const double *z, int n_out, int i);
/* grad [P] = d (Phi_pos - Phi_neg) / d theta at sample i (binary: d (y_i Phi)
 * / d theta), one single-sample forward (outputs into z [n_out]) and
 * backward in w; dout [n_out] scratch. */
void mf__output_grad(const mf_model *m, mf_work *w, const mf_data *data, const double *theta, int i,
                     int pos, int neg, double *z, double *dout, double *grad);
/* q [N] and J [N][P] (either may be NULL) at theta, single-sample passes in
 * w (max_batch >= 1); out1, dout1 [n_out] scratch. */
void mf__margin_jacobian(const mf_model *m, const mf_data *data, mf_work *w, const double *theta,
                         double *q, double *J, double *out1, double *dout1);
/* Pre-activations and scales through the model's table (nothing when it has
 * no hidden units). */
int mf__preact(const mf_model *m, const double *theta, const mf_data *data, double *pre,
               double *scale, mf_err *e);
/* gamma = q_min / ||theta||^L from one batched forward pass in w (max_batch
 * >= N) with outputs in out [N][n_out]; NAN when ||theta|| = 0. */
double mf__gamma(const mf_model *m, mf_work *w, const mf_data *data, const double *theta,
                 double *out);
/* gains[k] = gamma(theta + eps_k d) / gamma(theta) - 1, eps_k = mf__gain_steps;
 * tmp [P] scratch. */
void mf__margin_gains(const mf_model *m, mf_work *w, const mf_data *data, const double *theta,
                      const double *d, double *out, double *tmp, double gains[MF_N_GAINS]);

/* ------------------------------------------------ the analysis context */

typedef struct mf__an_ctx {
    const mf_model *m;
    const mf__model_ops *ops;
    const mf_data *data;
    int N;
    size_t P;
    mf_work *w1, *wN;          /* one-sample and whole-data workspaces */
    double *out1, *dout1;      /* [n_out] each */
    double *outN;              /* [N][n_out] */
    double *tmp;               /* [P] */
} mf__an_ctx;

/* ----------------------------------------------------------------- kkt.c */

/* (eps, delta)-KKT at theta~ = tt by NNLS over the Clarke columns (contract
 * in kkt.c): fills a->lambda, eps, delta, euler_lhs, euler_rhs; caveats are
 * appended to note. */
int mf__kkt_nnls(mf__an_ctx *c, const double *tt, const double *J, const double *q,
                 const int *kink, mf_analysis *a, char *note, size_t cap, mf_err *e);
/* Lyu & Li's certificate from the loss gradient (contract in kkt.c): fills
 * a->ll_beta, ll_eps, ll_delta. */
int mf__kkt_lyu_li(mf__an_ctx *c, const double *tt, const double *q, mf_loss_kind loss,
                   mf_analysis *a, char *note, size_t cap, mf_err *e);

/* ----------------------------------------------------------- global_ref.c */

/* has_global, gamma_star, global_source, ratio (contract in global_ref.c). */
int mf__global_reference(const mf__an_ctx *c, mf_analysis *a, char *note, size_t cap, mf_err *e);
/* layer_opt, layer_value of the per-layer problem P_l at tt. */
int mf__layer_problem(mf__an_ctx *c, const double *tt, int l, mf_analysis *a, mf_err *e);

/* ------------------------------------------------------- second_order.c */

/* What the second-order and search tests found, for the verdict. */
typedef struct mf__local_evidence {
    int so_not_local;     /* second order certifies not local */
    int so_certified;     /* second-order sufficient condition holds */
    char so_note[200];
    int dir_not_local;    /* directional certificate */
    int search_not_local; /* a search gain beyond what the KKT defect explains */
    int search_explained; /* 1 + radius index of a gain within the KKT-defect bound */
} mf__local_evidence;

/* Second-order test at a smooth point (contract in second_order.c): fills
 * a->min_eig, dir, gain (direction of negative curvature) and L. */
int mf__second_order(mf__an_ctx *c, const double *tt, const double *J, mf_analysis *a,
                     const mf_analyze_settings *s, mf__local_evidence *L, mf_err *e);

/* ------------------------------------------------------------- verdict.c */

/* Everything the verdict is decided from (filled by analyze.c). */
typedef struct mf__evidence {
    const char *spec;          /* model spec, for the text */
    int homogeneous, degree;
    double gamma, q_min, norm;
    int kkt_done;              /* KKT, global reference, P_l were evaluated */
    double eps;
    int has_global;
    double gamma_star, ratio;
    const char *global_source;
    int layer;                 /* -1 or the per-layer problem's layer */
    const char *layer_name;
    double layer_value, layer_opt;
    int local_done;            /* second order / directional / search ran (or were skipped) */
    int n_kinks;
    mf__local_evidence loc;
    double so_gain;            /* second-order gain at eps = 1e-3 */
    int has_directional;
    int dir_n_patterns;
    double dir_best_inner, dir_gain;
    int has_local;
    int local_trials;
    double local_best_gain;
    const char *note;          /* caveats appended to the reason */
    double kkt_tol, global_tol;
} mf__evidence;

/* The verdict and its reason from the evidence: 1 when decided, 0 when it
 * needs the local tests (local_done = 0 and nothing so far decides). Pure. */
int mf__verdict(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap);

#endif

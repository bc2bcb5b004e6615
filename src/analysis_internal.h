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

/* A sample with k kinks has 2^k Clarke vertex columns (kkt.c); beyond 2^10
 * per sample the exact Clarke treatment is given up for that sample (its
 * kinks use sigma'(0) = alpha, eps becomes an upper bound, and the verdict
 * says so). */
#define MF__MAX_KINKS_PER_SAMPLE 10
/* NNLS columns in all: at most 8192, and at most 2^26 doubles (512 MiB) of
 * column matrix P x ncol; samples that would exceed it are treated as
 * above. */
#define MF__MAX_KKT_COLUMNS 8192
#define MF__KKT_MAX_DOUBLES 67108864.0
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
/* Second-order test: the reduced Hessian is formed and diagonalized (dense,
 * k Hessian-vector products and 2 P k doubles, k the dimension of the
 * critical subspace) up to k = MF__MAX_HESS_PARAMS and P k =
 * MF__DENSE_MAX_DOUBLES; beyond, ARPACK's Lanczos method finds its
 * smallest eigenvalue from Hessian-vector products alone, up to
 * MF__MAX_ARPACK_PARAMS (memory ~ (MF__ARPACK_NCV + 8) P doubles: 2e5 ->
 * 60 MB). ARPACK: MF__ARPACK_NCV Lanczos vectors, at most MF__ARPACK_MAXIT
 * restarts, relative tolerance MF__ARPACK_TOL of the Ritz value. */
#define MF__MAX_HESS_PARAMS 1500
#define MF__DENSE_MAX_DOUBLES 4194304.0 /* P k doubles of Z and HZ each: 32 MiB */
#define MF__MAX_ARPACK_PARAMS 200000
#define MF__ARPACK_NCV 30
#define MF__ARPACK_MAXIT 300
#define MF__ARPACK_TOL 1e-10
/* The smallest eigenvalue of the reduced Hessian counts as positive
 * (negative) only when it is above (below) max(MF__EIG_TOL, its estimated
 * numerical error) (second_order.c): H = I - sum lambda Hess q is O(1), so
 * 1e-6 is a floor far above the difference Hessian's accuracy (~1e-10)
 * that a real curvature clears. */
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
/* A witness's relative gain must exceed this floor (and 100x the rounding
 * bound of its evaluations; witness.c, mf_witness in marginflow.h). */
#define MF__GAIN_CERT 1e-9
/* Curve and line candidates at parameter r are stated to lie within
 * MF__CURVE_RADIUS r of theta~ (relative): the t^2 correction and the
 * rescaling to q_min = 1 move them by less. */
#define MF__CURVE_RADIUS 2.0
/* The polish: a local re-solve from theta~ itself (a start perturbed by
 * MF__POLISH_RADIUS relative, indistinguishable from theta~) inside the
 * ball of relative radius MF__POLISH_MAX_DIST: the KKT point the run is
 * converging to. It is the reference of the witnesses when it ends inside
 * half the ball; a polish that runs to the ball's edge found a better
 * point, which is then a witness candidate instead. */
#define MF__POLISH_RADIUS 1e-14
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
/* The parameters r = 1e-1 .. 1e-4 of the curve and line candidates
 * (relative to ||theta~||; margin.c). */
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
/* q / ||theta||^L for theta [P], exact (to a few ulps) whatever the size
 * of ||theta||^L: the plain quotient while ||theta||^L is a normal double,
 * else with the norm as mantissa and exponent (mf__norm2_scaled,
 * mf__div_scaled; metrics.c does the same). NAN (absent) when ||theta|| = 0
 * or the quotient is not a normal double; 0 for q = 0. */
double mf__norm_quotient(double q, const double *theta, size_t P, int L);
/* gamma = q_min / ||theta||^L (mf__norm_quotient) from one batched forward
 * pass in w (max_batch >= N) with outputs in out [N][n_out]. */
double mf__gamma(const mf_model *m, mf_work *w, const mf_data *data, const double *theta,
                 double *out);
/* A bound on the relative rounding error of gamma(theta) as mf__gamma
 * computes it, to first order in the unit roundoff u (Higham, Accuracy and
 * Stability of Numerical Algorithms, 2nd ed., sec. 3.1: |fl(x.y) - x.y| <=
 * gamma_k |x|.|y|): each output is a chain of dot products whose lengths
 * sum to at most K = sum_l (cols_l + 2) + 2, so |fl(q_n) - q_n| <= K u A_n
 * with A_n the output of the same network at |theta| on |x_n| (for
 * multi-class margins |Phi_y| + max_{j != y} |Phi_j| of it); ||theta|| has
 * relative error <= (P/2 + 2) u. Returns K u max_n A_n / q_min + L (P/2 +
 * 2) u + (L + 1) u (INFINITY when q_min <= 0). abs_theta [P], abs_x [N][d],
 * out [N][n_out] scratch; w holds N samples. */
double mf__gamma_rounding(const mf_model *m, mf_work *w, const mf_data *data,
                          const double *theta, double qmin, double *abs_theta, double *abs_x,
                          double *out);
/* gains[k] = gamma(theta + eps_k d) / gamma(theta) - 1, eps_k = mf__gain_steps;
 * tmp [P] scratch. */
void mf__margin_gains(const mf_model *m, mf_work *w, const mf_data *data, const double *theta,
                      const double *d, double *out, double *tmp, double gains[MF_N_GAINS]);

/* ------------------------------------------------------------- psolve.c */

/* A solver result is feasible when q_min >= 1 - MF__P_FEAS_TOL after its
 * rescaling (SLSQP's constraint tolerance is 1e-11; rescaling is exact for
 * homogeneous models to rounding). */
#define MF__P_FEAS_TOL 1e-9
/* A ball-constrained result may exceed the radius by this much (relative):
 * the rescaling to q_min = 1 moves it by ~1e-11 ||x||. */
#define MF__P_BALL_SLACK 1e-6

/* The state of the (P) solvers (psolve.c): the model, the data, one
 * workspace for the whole data set and every buffer the callbacks use, so
 * they never allocate. */
typedef struct mf__pctx {
    const mf_model *m;
    const mf_data *data;
    mf_work *w;            /* max_batch = n */
    size_t P;              /* n_params */
    int n, n_out, L;
    double *out;           /* [n][n_out] outputs */
    double *dout;          /* [n][n_out] output seeds */
    double *q;             /* [n] margins */
    double *J;             /* [n][P] margin gradients (SLSQP only; NULL otherwise) */
    double *tmp;           /* [P] */
    double *bak;           /* [P + 1] */
    double *ctol;          /* [n + 1] NLopt constraint tolerances */
    double *lam, *comp;    /* [n + 1], [n]: augmented Lagrangian multipliers, weights */
    double f0, rho_p;      /* augmented Lagrangian objective scale and penalty */
    const double *center;  /* ball center or NULL */
    double rho;            /* ball radius (absolute) */
    void *opt;             /* the nlopt_opt being run, or NULL */
    int bad, stopped;      /* a callback saw a non-finite value; the stop flag fired */
    int (*should_stop)(void *user);
    void *user;
} mf__pctx;

/* Check the data against the model and allocate (J only with
 * need_jacobian); who names the caller in messages. */
int mf__pctx_init(mf__pctx *c, const mf_model *m, const mf_data *data, int need_jacobian,
                  const char *who, mf_err *e);
void mf__pctx_free(mf__pctx *c);
/* Margins c->q at x by one batched forward pass; returns q_min. */
double mf__p_margins(mf__pctx *c, const double *x);
/* gamma(x) (mf__gamma). */
double mf__p_gamma(mf__pctx *c, const double *x);
/* x *= q_min^{-1/L} when q_min > 0 (finite); returns the factor (1 if not). */
double mf__p_rescale(mf__pctx *c, double *x, double qmin);
/* ||x - y|| / ||y|| over P entries (0 when y = 0). */
double mf__rel_dist(const double *x, const double *y, size_t P);
/* Solve (P) locally from x (overwritten with the result), within the ball
 * ||x - center|| <= rho when center is not NULL, by SLSQP (use_slsqp) or
 * the augmented Lagrangian; the result is rescaled to q_min = 1. Returns its
 * normalized margin, or NAN when it is not feasible (q_min < 1 -
 * MF__P_FEAS_TOL), left the ball, or values were non-finite. *evals
 * accumulates the evaluations. */
double mf__p_solve(mf__pctx *c, double *x, const double *center, double rho, int use_slsqp,
                   int *evals);

/* ------------------------------------------------ the analysis context */

typedef struct mf__local_evidence mf__local_evidence;
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
    mf__local_evidence *le;    /* where witness.c records the best candidate */
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

/* What the second-order, directional and search tests found, for the
 * verdict (the witness itself is in mf_analysis.witness). */
struct mf__local_evidence {
    int so_certified;     /* H positive definite on the critical cone beyond its error */
    int so_negative;      /* negative curvature beyond its error in the cone (evidence) */
    char so_note[320];
    int dir_found;        /* the directional LP found a descent direction (evidence) */
    int polished;         /* the polished point is the reference */
    /* the best candidate evaluated (witness or not), for the text */
    const char *cand_kind;
    double cand_gain, cand_noise, cand_radius;
};

/* Tests only: the second-order test takes the dense path up to `limit`
 * parameters and ARPACK beyond (-1 restores MF__MAX_HESS_PARAMS); returns
 * the previous limit. Not thread-safe. */
int mf__so_dense_limit(int limit);

/* Second-order test at a smooth point (contract in second_order.c): fills
 * a->min_eig, min_eig_err, so_dim, min_eig_absent, dir (the eigenvector),
 * hessian_method, second_order_done, and L. */
int mf__second_order(mf__an_ctx *c, const double *tt, const double *J, mf_analysis *a,
                     const mf_analyze_settings *s, mf__local_evidence *L, mf_err *e);

/* ------------------------------------------------------------- witness.c */

/* The reference the witnesses are judged against (witness.c): gamma0 =
 * gamma(theta~) by a fresh batched pass, its rounding bound round0, q0 and
 * norm0 = ||theta~||, reference = max(gamma0, a->gamma_polished), polished
 * = 1 when a polish ran (then defect = 0), else defect = 2 L (eps + delta /
 * sum lambda) per unit of relative distance. */
typedef struct mf__wref {
    double gamma0, round0, q0, norm0, reference, defect;
    int polished;
} mf__wref;

int mf__wref_init(mf__an_ctx *c, const double *tt, const mf_analysis *a, mf__wref *r, mf_err *e);
/* Evaluate candidate cand [P] from scratch (rescaled to q_min >= 1 by a
 * fresh forward pass); when it is a witness (mf_witness in marginflow.h)
 * within `radius` and better than a->witness, store it there. *gain_out
 * (may be NULL) = gamma / gamma0 - 1 of the rescaled candidate, NAN when it
 * had q_min <= 0. MF_OK or MF_ERR_NOMEM. */
int mf__witness_try(mf__an_ctx *c, const double *tt, const mf__wref *ref, const double *cand,
                    double radius, const char *kind, mf_analysis *a, double *gain_out, mf_err *e);
/* The second-order curve along a->dir (witness.c file comment) at r =
 * mf__gain_steps: a->gain[] = its gains; a witness stored as above. */
int mf__witness_curve(mf__an_ctx *c, const double *tt, const double *J, const mf__wref *ref,
                      const mf_analyze_settings *s, mf_analysis *a, mf_err *e);
/* The line theta~ + r ||theta~|| d / ||d|| at r = mf__gain_steps; gains[]
 * its gains. */
int mf__witness_line(mf__an_ctx *c, const double *tt, const double *d, const mf__wref *ref,
                     const char *kind, mf_analysis *a, double gains[MF_N_GAINS], mf_err *e);

/* ------------------------------------------------------------- verdict.c */

/* Everything the verdict is decided from (filled by analyze.c). */
typedef struct mf__evidence {
    const char *spec;          /* model spec, for the text */
    int homogeneous, degree;
    double gamma, q_min, norm;
    int kkt_done;              /* KKT, global reference, P_l were evaluated */
    double eps, delta;
    int kkt_exact;             /* eps over the exact Clarke sets (else an upper bound) */
    int n_kinks;
    int has_global;            /* an exact reference */
    double gamma_star, ratio;
    const char *global_source;
    double gamma_lower, gamma_upper; /* a certified bracket of gamma* (NAN: none) */
    const char *global_spec;   /* the model of the network attaining gamma_lower, or NULL */
    int layer;                 /* -1 or the per-layer problem's layer */
    const char *layer_name;
    double layer_value, layer_opt;
    int local_done;            /* second order / directional / search ran (or were skipped) */
    mf__local_evidence loc;
    int second_order_done, so_dim;
    double min_eig, min_eig_err;
    double kink_distance;      /* mf_analysis.kink_distance (NAN: no hidden units) */
    const char *min_eig_absent;
    int has_directional, dir_n_patterns, dir_searched;
    double dir_best_inner;
    int has_local, local_trials;
    double local_best_gain;
    const char *local_method;
    const mf_witness *witness;
    const char *note;          /* caveats appended to the reason */
    double kkt_tol, global_tol;
} mf__evidence;

/* The verdict and its reason from the evidence: 1 when decided, 0 when it
 * needs the local tests (local_done = 0 and nothing so far decides). Pure. */
int mf__verdict(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap);

#endif

/*
 * mf_analyze.h -- analysis API (issue 3): KKT certificates and optimality
 * verdicts for problem (P) of THEORY.md section 3,
 *     (P)  minimize 1/2 ||theta||^2  subject to  q_n(theta) >= 1 for all n.
 * To be merged into marginflow.h by the lead; same conventions (mf_ prefix,
 * error codes + mf_err, the library never prints).
 *
 * Split of work: src/analyze.c implements everything in sections A and C;
 * src/local.c implements section B (search-based and LP-based local tests).
 */
#ifndef MF_ANALYZE_H
#define MF_ANALYZE_H

#include "marginflow.h"

/* ---------------------------------------------------------------- A: basics */

/* Margins and their gradients at theta: q[n] = margin of sample n (the true
 * margin: y Phi, or Phi_y - max_{j!=y} Phi_j with the argmax j taken as the
 * competing class), J[n][n_params] = grad_theta q_n, with the library's
 * convention sigma'(0) = alpha at ReLU kinks. q or J may be NULL. */
int mf_margin_jacobian(const mf_model *m, const mf_data *data, const double *theta, double *q,
                       double *J, mf_err *e);

/* Number of hidden units whose pre-activations exist (relu2, relu2-outbias:
 * width; mlp: sum of widths; 0 for models without ReLU), and the
 * pre-activations pre[n][H] at theta (unit order: layer by layer, unit by
 * unit). */
int mf_model_n_hidden(const mf_model *m);
int mf_model_preactivations(const mf_model *m, const double *theta, const mf_data *data,
                            double *pre, mf_err *e);

/* ------------------------------------------------- B: local tests (local.c) */

/* Directional first-order test at a non-smooth point ([VSS22]; THEORY.md s.3):
 * search for d with q_n'(theta; d) >= 0 for every active n (q_n <= 1 + act_tol)
 * and <theta, d> < 0, by one LP (GLPK) per sign pattern of the directional
 * derivatives of the pre-activations that are within zero_tol of 0 (at most
 * max_patterns patterns; more -> searched = 0). ||d||_inf <= 1.
 * Supported for relu2 / relu2-outbias-free two-layer nets (relu2 with or
 * without bias/fix-outer) and for models without kinks (one LP). */
typedef struct mf_directional_result {
    int searched;          /* 1 if the test ran over every pattern */
    int n_zero;            /* number of (sample, unit) pre-activations at 0 */
    int n_patterns;        /* LPs solved */
    int found;             /* 1: a feasible descent direction exists (certificate) */
    double best_inner;     /* min <theta, d> found (< 0 means certificate) */
    double *d;             /* [n_params] the direction (when found), owned */
    double gain[4];        /* gamma(theta + eps d) / gamma(theta) - 1 for eps = 1e-1..1e-4 */
} mf_directional_result;

int mf_directional_test(const mf_model *m, const mf_data *data, const double *theta,
                        double act_tol, double zero_tol, int max_patterns,
                        mf_directional_result **out, mf_err *e);
void mf_directional_result_free(mf_directional_result *r);

/* Local constrained re-solve of (P) by NLopt SLSQP from perturbations
 * theta + r xi (xi uniform on the sphere scaled by ||theta||) for each radius r
 * in radii[], `trials` starts per radius, seeded by seed. Reports the best
 * normalized margin found per radius, relative to gamma(theta). A gain > gain_tol is a
 * certificate that theta is not a local optimum (report the point); none
 * found is evidence only. */
typedef struct mf_local_result {
    int n_radii;
    double radii[8];
    int trials;
    uint64_t seed;
    double gamma0;               /* gamma(theta) */
    double best_gamma[8];        /* best normalized margin found at each radius */
    double best_gain;            /* max over radii of best_gamma / gamma0 - 1 */
    double *best_theta;          /* [n_params], owned */
    int evaluations;
    int failures;                /* trials whose SLSQP run reached no feasible point */
} mf_local_result;

int mf_local_search(const mf_model *m, const mf_data *data, const double *theta,
                    const double *radii, int n_radii, int trials, uint64_t seed,
                    mf_local_result **out, mf_err *e);
void mf_local_result_free(mf_local_result *r);

/* Multi-start search for the best normalized margin (`marginflow maxmargin`):
 * SLSQP on (P) from `starts` random gauss inits (seed, seed+1, ...). A SEARCH,
 * not a certificate. values[] are the distinct local values found (within
 * rel_tol) with their counts, sorted descending. */
typedef struct mf_maxmargin_result {
    int starts;
    uint64_t seed;
    double best_gamma;
    double *best_theta;     /* [n_params], owned */
    int n_values;
    double *values;         /* [n_values] */
    int *counts;            /* [n_values] */
    int failures;           /* starts where SLSQP did not reach a feasible point */
} mf_maxmargin_result;

int mf_maxmargin(const mf_model *m, const mf_data *data, int starts, uint64_t seed, double rel_tol,
                 mf_maxmargin_result **out, mf_err *e);
void mf_maxmargin_result_free(mf_maxmargin_result *r);

/* ------------------------------------------------------ C: the whole analysis */

typedef enum mf_verdict {
    MF_VERDICT_GLOBAL = 0,      /* certified: gamma = gamma* within tolerance (closed form) */
    MF_VERDICT_LOCAL_CERTIFIED, /* second-order sufficient condition holds */
    MF_VERDICT_LOCAL_EVIDENCE,  /* KKT, no improvement found by the searches (evidence only) */
    MF_VERDICT_NOT_LOCAL,       /* certificate that it is not a local optimum */
    MF_VERDICT_NOT_KKT,         /* eps above tolerance */
    MF_VERDICT_NON_HOMOGENEOUS  /* (P) theory does not apply */
} mf_verdict;

const char *mf_verdict_name(mf_verdict v); /* "global", "local-certified", ... */

typedef struct mf_analyze_settings {
    double kkt_tol;       /* relative eps tolerance for "is KKT", default 1e-3 */
    double act_tol;       /* active set: q_n <= 1 + act_tol, default 1e-3 */
    double zero_tol;      /* pre-activation treated as 0 if |z| <= zero_tol * scale, default 1e-6 */
    double global_tol;    /* |gamma / gamma* - 1| <= global_tol is "global", default 1e-4 */
    double hess_h;        /* step for Hessians by differences of exact gradients, default 1e-5 */
    int local_trials;     /* SLSQP starts per radius, default 8 */
    uint64_t seed;        /* default 1 */
    int max_patterns;     /* directional test, default 4096 */
    int layer;            /* -1 = whole network (default); l >= 0: per-layer problem P_l */
} mf_analyze_settings;

void mf_analyze_settings_default(mf_analyze_settings *s);
const char *mf_analyze_settings_validate(const mf_analyze_settings *s);

typedef struct mf_analysis {
    int n, n_params, degree, homogeneous;
    double q_min, norm, gamma;      /* at the given theta */
    double layer_margin;
    double *theta_tilde;            /* [n_params] theta / q_min^{1/L} */
    /* KKT by NNLS (Clarke coefficients free at kinks) */
    double *lambda;                 /* [n] */
    int n_active;
    int *active;                    /* [n] 1 if q_n <= 1 + act_tol */
    double eps, delta;              /* eps relative to ||theta~|| */
    double euler_lhs, euler_rhs;    /* ||theta~||^2 and L sum lambda */
    int n_kinks;                    /* pre-activations treated as zero */
    /* Lyu & Li's certificate from the loss gradient at theta */
    double ll_beta, ll_eps, ll_delta;
    /* global reference */
    int has_global;
    double gamma_star;              /* NAN if unknown */
    char global_source[128];        /* e.g. "hard-margin SVM: gamma_svm * k^{-k/2}" */
    double ratio;                   /* gamma / gamma_star */
    /* second order (smooth points) */
    int second_order_done;
    char hessian_method[64];        /* "differences of exact gradients, h = 1e-05" */
    double min_eig;                 /* smallest eigenvalue of H on the critical subspace */
    double *dir;                    /* [n_params] its eigenvector (unit), owned */
    double gain[4];                 /* gamma(theta~ + eps d)/gamma(theta~) - 1, eps = 1e-1..1e-4 */
    /* non-smooth and search-based tests */
    mf_directional_result *directional; /* NULL if not run */
    mf_local_result *local;             /* NULL if not run */
    /* per-layer problem P_l (settings.layer >= 0) */
    int layer;
    double layer_opt;               /* optimal value of the convex per-layer problem, NAN if n/a */
    double layer_value;             /* value at theta~ */
    mf_verdict verdict;
    char verdict_reason[512];       /* what is proved / what is evidence */
} mf_analysis;

int mf_analyze(const mf_model *m, const mf_data *data, const double *theta, mf_loss_kind loss,
               const mf_analyze_settings *s, mf_analysis **out, mf_err *e);
void mf_analysis_free(mf_analysis *a);

#endif

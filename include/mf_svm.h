/*
 * mf_svm.h -- exact max-margin references for linear predictors through the
 * origin: the l2 hard-margin SVM (the global optimum of (P) for linear and
 * fully-connected linear nets) and the l1-margin LP (the global optimum for
 * depth-2 diagonal nets). THEORY.md section 3; [LL20], [VSS22].
 *
 * To be merged into marginflow.h (same conventions: mf_/MF_ names, error
 * codes returned, mf_err filled, the library never prints). Until then it is
 * included after marginflow.h.
 *
 * Notation: z_n = y_n x_n in R^d (n = 1..N), Z = [N][d] with rows z_n,
 * q_n(w) = <w, z_n> the margin of sample n.
 */
#ifndef MF_SVM_H
#define MF_SVM_H

#include "marginflow.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mf_svm_norm {
    MF_SVM_L2 = 0, /* minimize 1/2 ||w||_2^2  s.t. q_n(w) >= 1   (hard-margin SVM, no bias) */
    MF_SVM_L1      /* minimize ||beta||_1      s.t. q_n(beta) >= 1 (l1-margin LP) */
} mf_svm_norm;

/* Outcome of a solve that returned MF_OK. */
typedef enum mf_svm_status {
    MF_SVM_SOLVED = 0,   /* w is optimal; the residuals say to what accuracy */
    MF_SVM_NONSEPARABLE  /* no w with q_n(w) > 0 for all n: see certificate */
} mf_svm_status;

/* Settings; fill with mf_svm_settings_default, then change fields. */
typedef struct mf_svm_settings {
    double sep_tol;      /* data whose min-norm hull point p (below) has
                            ||p|| <= sep_tol * max_n ||x_n|| are reported
                            NONSEPARABLE; default 1e-12, range [0, 1) */
    double support_tol;  /* n is a support vector iff alpha_n > support_tol *
                            max_m alpha_m; default 1e-12, range [0, 1) */
    double active_tol;   /* n is active iff |q_n(w) - 1| <= active_tol;
                            default 1e-9, range [0, 1) */
    int max_iter;        /* NNLS outer iterations, 0 = 3 N + 100 (default) */
    int polish;          /* 1 (default): re-solve the equality system on the
                            identified support set and keep it if its KKT
                            residual is smaller */
} mf_svm_settings;

void mf_svm_settings_default(mf_svm_settings *s);
/* NULL if valid, else a static sentence naming the bad field and its range. */
const char *mf_svm_settings_validate(const mf_svm_settings *s);

/* Result of mf_svm_solve; a plain struct (OSQP "info" style). All arrays are
 * owned by the result and freed by mf_svm_result_free.
 *
 * SOLVED, l2:  w [d] the SVM weights, gamma = 1/||w||_2 = gamma_svm;
 *              alpha [n] the dual variables (alpha >= 0, w = sum alpha_n z_n).
 * SOLVED, l1:  w [d] = beta, gamma = 1/||beta||_1 = gamma_l1 (the l1-normalized
 *              margin max_{||b||_1 = 1} min_n q_n(b)), gamma_diag2 =
 *              gamma_l1 / 2 = 1/(2 ||beta||_1), the global optimum of the
 *              normalized margin of a depth-2 diagonal net <u o v, x>
 *              (THEORY.md s.3); alpha [n] the LP row duals (multipliers of
 *              q_n >= 1; alpha >= 0, ||Z^T alpha||_inf <= 1).
 * NONSEPARABLE: w = alpha = NULL, gamma = gamma_diag2 = 0; certificate [n]
 *              with c_n >= 0, sum c_n = 1 and certificate_norm =
 *              ||sum c_n z_n||_2 ~ 0 (see mf_svm_solve).
 * support [n_support]: indices n with alpha_n > support_tol * max alpha
 *              (SOLVED) or c_n > 0
 *              (NONSEPARABLE), ascending. */
typedef struct mf_svm_result {
    int status;             /* mf_svm_status */
    int norm;               /* mf_svm_norm */
    int d, n;
    double gamma;           /* see above */
    double gamma_diag2;     /* l1 only (0 for l2) */
    double gamma_lower, gamma_upper; /* bracket of the optimal margin (gamma_svm
                                        or gamma_l1) from weak duality, see
                                        mf_svm_solve; 0 when NONSEPARABLE */
    double *w;              /* [d] or NULL */
    double *alpha;          /* [n] or NULL */
    int n_support;
    int *support;           /* [n_support] or NULL */
    int n_active;           /* samples with |q_n(w) - 1| <= active_tol */
    double q_min;           /* min_n q_n(w) (1 at the exact optimum) */
    /* Residuals, all relative (dimensionless); see mf_svm_solve. */
    double primal_residual; /* max(0, 1 - q_min) */
    double dual_residual;   /* l2: ||w - Z^T alpha|| / ||w|| (stationarity);
                               l1: max(0, ||Z^T alpha||_inf - 1) (dual feasibility) */
    double complementarity; /* max_n alpha_n |q_n - 1| / sum_n alpha_n; l1 also
                               max_j |beta_j| |1 - sign(beta_j) (Z^T alpha)_j| / ||beta||_1 */
    double gap;             /* relative duality gap |primal - dual| / primal:
                               l2: P = ||w||^2/2, D = sum alpha - ||Z^T alpha||^2/2;
                               l1: P = ||beta||_1, D = sum alpha */
    double kkt_residual;    /* max of the four above */
    double lp_kkt_primal, lp_kkt_dual; /* l1: GLPK's glp_check_kkt relative
                                          errors (GLP_KKT_PE, GLP_KKT_DE) */
    int iterations;         /* NNLS outer iterations (+ simplex iterations for l1) */
    int polished;           /* 1 if the support-set re-solve was kept */
    double *certificate;    /* [n] or NULL */
    double certificate_norm;
} mf_svm_result;

/* Solve the max-margin problem of the given norm for binary data.
 *
 * Exact problems (z_n = y_n x_n, no bias term):
 *   l2 (Boser, Guyon & Vapnik 1992; Vapnik 1995), primal and dual
 *     (P2)  minimize 1/2 ||w||^2  s.t. <w, z_n> >= 1, n = 1..N
 *     (D2)  maximize sum_n alpha_n - 1/2 ||Z^T alpha||^2  s.t. alpha >= 0
 *   l1  (P1)  minimize ||beta||_1  s.t. <beta, z_n> >= 1
 *       (D1)  maximize sum_n a_n  s.t. ||Z^T a||_inf <= 1, a >= 0.
 *
 * Separability. Both problems are feasible iff the minimum-norm point
 * p = argmin { ||u|| : u in conv{z_1..z_N} } is nonzero (then w = p/||p||^2
 * solves (P2) and gamma_svm = ||p||). p is found exactly (finite active-set
 * method) as least-distance programming (LDP) through NNLS (Lawson & Hanson,
 * Solving Least Squares Problems, 1974, ch. 23, algorithms NNLS and LDP):
 *   minimize || [Z^T; 1^T] u - (0, 1) ||  s.t. u >= 0,
 * whose solution is u = t c with c the simplex weights of p. The least-squares
 * subproblems use LAPACK (dgels, QR/LQ) on the passive set. When polish is set
 * the equality system <w, z_n> = 1 on the support set is re-solved by LAPACK
 * (min-norm w by LQ, then alpha by QR) and kept if its KKT residual is lower.
 *
 * What is certified (up to the floating-point error of evaluating the
 * reported quantities, which the residuals measure):
 *  - SOLVED (l2): w is primal feasible after scaling by 1/q_min, so
 *    gamma_svm >= gamma_lower = q_min / ||w||; by weak duality any feasible
 *    w' has 1/2||w'||^2 >= D2(alpha), so gamma_svm <= gamma_upper =
 *    1 / sqrt(2 D2(alpha)). gamma = 1/||w|| lies in between.
 *  - SOLVED (l1): likewise gamma_l1 >= q_min / ||beta||_1 and, with
 *    a = alpha / max(1, ||Z^T alpha||_inf) dual feasible, ||beta*||_1 >= sum a,
 *    so gamma_l1 <= 1 / sum a.
 *  - NONSEPARABLE: c >= 0, sum c = 1, ||Z^T c|| = certificate_norm.
 *    For every v with ||v||_2 <= 1 (so also every ||v||_1 <= 1),
 *    min_n <v, z_n> <= sum c_n <v, z_n> <= ||Z^T c||: no direction through
 *    the origin classifies the data with normalized margin above ||Z^T c||;
 *    with ||Z^T c|| = 0 (Gordan's alternative) no w has q_n(w) > 0 for all
 *    n. The l1 problem uses the same test and certificate (it is infeasible
 *    exactly when (P2) is).
 *  - l1 method: GLPK's simplex (glp_simplex, dual simplex first, messages
 *    and terminal output off during the call) on (P1) with beta = p - m,
 *    p, m >= 0; the residuals are recomputed here from beta and the row
 *    duals, and GLPK's own glp_check_kkt errors are reported beside them.
 *
 * data: binary (num_classes == 0), n >= 1, d >= 1, finite x, y in {-1, +1}.
 * settings may be NULL (defaults). On MF_OK *out is a new result (free with
 * mf_svm_result_free) whose status says SOLVED or NONSEPARABLE: a
 * non-separable data set is an answer, not an error.
 * Errors: MF_ERR_INVALID (NULL data/out, bad settings, empty data, labels not
 * +-1, non-finite x), MF_ERR_UNSUPPORTED (multi-class data), MF_ERR_NOMEM,
 * MF_ERR_NUMERIC (NNLS or LAPACK or GLPK failed, or no convergence within
 * max_iter). *out is NULL on error. */
int mf_svm_solve(const mf_data *data, mf_svm_norm norm, const mf_svm_settings *settings,
                 mf_svm_result **out, mf_err *e);

void mf_svm_result_free(mf_svm_result *r);

/* "solved", "nonseparable"; "l2", "l1". mf_svm_norm_from_name: MF_OK or
 * MF_ERR_INVALID. */
const char *mf_svm_status_name(int status);
const char *mf_svm_norm_name(int norm);
int mf_svm_norm_from_name(const char *s, mf_svm_norm *norm);

#ifdef __cplusplus
}
#endif
#endif /* MF_SVM_H */

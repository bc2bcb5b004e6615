/*
 * analyze.c -- mf_analyze, the orchestrator of the KKT certificates and
 * optimality verdicts for the max-margin problem of docs/theory.md section 3,
 *     (P)  minimize 1/2 ||theta||^2  subject to  q_n(theta) >= 1 for all n,
 * at a trained parameter vector theta (section C of marginflow.h).
 *
 * The steps, in order, and the file that does each:
 *  1. margins at theta and the rescaled point theta~ = theta / q_min^{1/L},
 *     the only point of the ray through theta that is feasible with an
 *     active constraint; gradients and kinks there (here, margin.c);
 *  2. (eps, delta)-KKT by NNLS with the Clarke coefficients free at kinks
 *     (kkt.c, nnls.c);
 *  3. Lyu & Li's own certificate from the loss gradient (kkt.c);
 *  4. the global optimum where a closed form is known (global_ref.c), or
 *     the per-layer problem P_l (settings.layer >= 0, global_ref.c);
 *  5. the polish: the KKT point a local re-solve reaches from theta~ itself,
 *     the reference of every witness (local.c, witness.c);
 *  6. the second-order test at smooth points (second_order.c) with the
 *     second-order curve along a direction of negative curvature, the
 *     directional first-order test at kinks (local.c) with the line along
 *     its direction, and local re-solves inside balls (local.c): each
 *     candidate point is re-evaluated from scratch and becomes the witness
 *     only beyond the noise bound (witness.c);
 *  7. the verdict and its reason, a pure function of the evidence (verdict.c).
 * The result carries the settings it was judged with (a->settings).
 */
#include "analysis_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const double mf__search_radii[MF__N_SEARCH_RADII] = {1e-1, 1e-2, 1e-3, 1e-4};

/* ====================================================================== */
/* Settings, names, freeing                                               */
/* ====================================================================== */

void mf_analyze_settings_default(mf_analyze_settings *s) {
    s->kkt_tol = 1e-3;
    s->act_tol = 1e-3;
    s->zero_tol = 1e-3;
    s->global_tol = 1e-4;
    s->hess_h = 1e-5;
    s->local_trials = 8;
    s->seed = 1;
    s->max_patterns = 4096;
    s->layer = -1;
    s->always_local = 0;
}

/* NULL if every field is in range, else a sentence naming the field. */
const char *mf_analyze_settings_validate(const mf_analyze_settings *s) {
    if (!s) return "settings must not be NULL";
    if (!(s->kkt_tol > 0 && s->kkt_tol < 1)) return "kkt_tol must be a number in (0, 1)";
    if (!(s->act_tol >= 0 && s->act_tol < 1)) return "act_tol must be a number in [0, 1)";
    if (!(s->zero_tol >= 0 && s->zero_tol < 1)) return "zero_tol must be a number in [0, 1)";
    if (!(s->global_tol > 0 && s->global_tol < 1)) return "global_tol must be a number in (0, 1)";
    if (!(s->hess_h > 0 && s->hess_h <= 1e-2)) return "hess_h must be a number in (0, 1e-2]";
    if (s->local_trials < 0 || s->local_trials > 100000)
        return "local_trials must be an integer in [0, 100000]";
    if (s->max_patterns < 1) return "max_patterns must be an integer >= 1";
    if (s->layer < -1 || s->layer >= MF_MAX_LAYERS)
        return "layer must be -1 (whole network) or a layer index in [0, 15]";
    if (s->always_local != 0 && s->always_local != 1) return "always_local must be 0 or 1";
    return NULL;
}

const char *mf_verdict_name(mf_verdict v) {
    switch (v) {
    case MF_VERDICT_GLOBAL: return "global";
    case MF_VERDICT_LOCAL_CERTIFIED: return "local-certified";
    case MF_VERDICT_INCONCLUSIVE: return "inconclusive";
    case MF_VERDICT_NOT_LOCAL: return "not-local";
    case MF_VERDICT_NOT_KKT: return "not-kkt";
    case MF_VERDICT_NON_HOMOGENEOUS: return "non-homogeneous";
    }
    return "unknown";
}

int mf_verdict_from_name(const char *s, mf_verdict *v) {
    static const mf_verdict all[] = {MF_VERDICT_GLOBAL, MF_VERDICT_LOCAL_CERTIFIED,
                                     MF_VERDICT_INCONCLUSIVE, MF_VERDICT_NOT_LOCAL,
                                     MF_VERDICT_NOT_KKT, MF_VERDICT_NON_HOMOGENEOUS};
    if (!s) return MF_ERR_INVALID;
    if (!strcmp(s, "local-evidence")) { /* the former name of inconclusive */
        if (v) *v = MF_VERDICT_INCONCLUSIVE;
        return MF_OK;
    }
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, mf_verdict_name(all[i]))) {
            if (v) *v = all[i];
            return MF_OK;
        }
    return MF_ERR_INVALID;
}

void mf_analysis_free(mf_analysis *a) {
    if (!a) return;
    mf__free(a->theta_tilde);
    mf__free(a->lambda);
    mf__free(a->active);
    mf__free(a->dir);
    mf__free(a->witness.theta);
    mf__free(a->global_theta);
    mf_directional_result_free(a->directional);
    mf_local_result_free(a->local);
    mf__free(a);
}

/* ====================================================================== */
/* Context, arguments, the result                                         */
/* ====================================================================== */

static void ctx_free(mf__an_ctx *c) {
    mf_work_free(c->w1);
    mf_work_free(c->wN);
    mf__free(c->out1);
    mf__free(c->outN);
    mf__free(c->tmp);
}

static int ctx_init(mf__an_ctx *c, const mf_model *m, const mf_data *data, mf_err *e) {
    memset(c, 0, sizeof *c);
    c->m = m;
    c->ops = mf__model_ops_of(m);
    c->data = data;
    c->N = data->n;
    c->P = m->n_params;
    int rc = mf_work_new(m, 1, &c->w1, e);
    if (!rc) rc = mf_work_new(m, data->n, &c->wN, e);
    if (rc) return rc;
    c->out1 = mf__malloc(2 * sizeof(double) * (size_t)m->n_out);
    c->outN = mf__malloc(sizeof(double) * (size_t)data->n * (size_t)m->n_out);
    c->tmp = mf__malloc(sizeof(double) * (c->P ? c->P : 1));
    if (!c->out1 || !c->outN || !c->tmp) return mf__err(e, MF_ERR_NOMEM, "out of memory for the analysis");
    c->dout1 = c->out1 + m->n_out;
    return MF_OK;
}

/* The arguments of mf_analyze; *s points at the settings used. */
static int check_args(const mf_model *m, const mf_data *data, const double *theta,
                      const mf_analyze_settings **s, mf_analyze_settings *defs, mf_err *e) {
    if (!*s) {
        mf_analyze_settings_default(defs);
        *s = defs;
    }
    const char *bad = mf_analyze_settings_validate(*s);
    if (bad) return mf__err(e, MF_ERR_INVALID, "analysis settings: %s", bad);
    int rc = mf__check_inputs(m, data, theta, e);
    if (rc) return rc;
    const int l = (*s)->layer;
    const mf__model_ops *ops = mf__model_ops_of(m);
    if (l >= m->n_layers)
        return mf__err(e, MF_ERR_INVALID, "layer %d does not exist: %s has layers 0..%d", l, m->spec,
                       m->n_layers - 1);
    if (l >= 0 && (!m->homogeneous || !ops || !ops->layer_is_linear || !ops->layer_is_linear(m, l)))
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "per-layer problem P_%d (%s) is supported only where the margins are linear in "
                       "the layer: every layer of linear, fc-linear and diag nets, and the output layer of "
                       "relu2 (without fix-outer) and mlp",
                       l, m->layers[l].name);
    return MF_OK;
}

/* A result with every quantity "not computed" (NAN) and its arrays. */
static mf_analysis *result_new(const mf_model *m, const mf_data *data, const mf_analyze_settings *s) {
    const size_t P = m->n_params;
    mf_analysis *a = mf__calloc(1, sizeof *a);
    if (!a) return NULL;
    a->settings = *s;
    a->gamma_polished = NAN;
    a->n = data->n;
    a->n_params = (int)P;
    a->degree = m->degree;
    a->homogeneous = m->homogeneous;
    a->layer = s->layer;
    a->layer_opt = a->layer_value = NAN;
    a->gamma_star = a->ratio = NAN;
    a->eps = a->delta = a->euler_lhs = a->euler_rhs = NAN;
    a->ll_beta = a->ll_eps = a->ll_delta = NAN;
    a->min_eig = a->min_eig_err = NAN;
    a->kink_distance = NAN;
    a->so_dim = -1;
    a->kkt_exact = 1;
    a->gamma_lower = a->gamma_upper = NAN;
    for (int k = 0; k < MF_N_GAINS; k++) a->gain[k] = NAN;
    snprintf(a->gain_absent, sizeof a->gain_absent, "no direction of negative curvature");
    snprintf(a->min_eig_absent, sizeof a->min_eig_absent, "second-order test not run");
    a->theta_tilde = mf__malloc(sizeof(double) * P);
    a->lambda = mf__calloc((size_t)data->n, sizeof(double));
    a->active = mf__calloc((size_t)data->n, sizeof(int));
    if (!a->theta_tilde || !a->lambda || !a->active) {
        mf_analysis_free(a);
        return NULL;
    }
    return a;
}

/* ====================================================================== */
/* Steps                                                                  */
/* ====================================================================== */

/*
 * Margins at theta: norm, gamma, q_min, layer margin. Trained parameters
 * can have outputs near the overflow threshold (||theta||^L ~ 1e300 and
 * beyond), so a homogeneous model is evaluated at theta^ = theta / ||theta||
 * (gamma = q_min(theta^) exactly, theta^ left in a->theta_tilde), and q_min
 * = gamma ||theta||^L is only reported. q [N] receives the margins.
 */
static void margins_at(mf__an_ctx *c, const double *theta, mf_analysis *a, double *q) {
    const mf_model *m = c->m;
    const int L = m->degree;
    double prod = 1.0;
    a->norm = mf__norm2(theta, c->P);
    if (m->homogeneous && a->norm > 0 && isfinite(a->norm)) {
        for (size_t i = 0; i < c->P; i++) a->theta_tilde[i] = theta[i] / a->norm; /* theta^ */
        mf__margin_jacobian(m, c->data, c->w1, a->theta_tilde, q, NULL, c->out1, c->dout1);
        a->gamma = INFINITY;
        for (int n = 0; n < c->N; n++)
            if (q[n] < a->gamma) a->gamma = q[n];
        /* q_min = gamma ||theta||^L is only reported: absent (NAN) where the
           product leaves the normal range (it would be inf, or a wrong 0) */
        double qv = a->gamma * pow(a->norm, L);
        a->q_min = isfinite(qv) && (fabs(qv) >= DBL_MIN || a->gamma == 0) ? qv : NAN;
        for (int l = 0; l < m->n_layers; l++) prod *= mf_layer_norm(m, a->theta_tilde, l);
        double f = pow(a->norm, L - m->n_layers), lm = a->gamma / prod * f;
        a->layer_margin = prod > 0 && isfinite(lm) ? lm : NAN;
    } else {
        mf__margin_jacobian(m, c->data, c->w1, theta, q, NULL, c->out1, c->dout1);
        a->q_min = INFINITY;
        for (int n = 0; n < c->N; n++)
            if (q[n] < a->q_min) a->q_min = q[n];
        a->gamma = mf__norm_quotient(a->q_min, theta, c->P, L);
        for (int l = 0; l < m->n_layers; l++) prod *= mf_layer_norm(m, theta, l);
        a->layer_margin = prod > 0 && isfinite(a->q_min / prod) ? a->q_min / prod : NAN;
    }
}

/*
 * a->kink_distance from the pre-activations pre [N][H] and scales scl
 * [N][H] (= ||w_k|| ||h_in||) at theta~: min over active samples and units
 * not at a kink of |z| / ||h_in|| / ||theta~|| = |z| ||w_k|| / scale /
 * ||theta~||, the hidden units being the rows of the layers in order (relu2:
 * W; mlp: the hidden layers), as the model tables number them.
 */
static void kink_distance(const mf__an_ctx *c, const mf_analysis *a, const double *pre,
                          const double *scl, const int *kink) {
    const mf_model *m = c->m;
    const int H = mf_model_n_hidden(m);
    const double nt = mf__norm2(a->theta_tilde, c->P);
    double best = INFINITY;
    for (int l = 0, u0 = 0; l < m->n_layers && u0 < H; u0 += m->layers[l].rows, l++) {
        const mf_layer *W = &m->layers[l];
        for (int k = 0; k < W->rows && u0 + k < H; k++) {
            const double wn = mf__norm2(a->theta_tilde + W->offset + (size_t)k * W->cols, (size_t)W->cols);
            for (int n = 0; n < c->N; n++) {
                const size_t t = (size_t)n * H + u0 + k;
                if (!a->active[n] || kink[t] || !(scl[t] > 0)) continue;
                const double dist = fabs(pre[t]) * wn / scl[t] / nt;
                if (dist < best) best = dist;
            }
        }
    }
    ((mf_analysis *)a)->kink_distance = isfinite(best) ? best : NAN;
}

/*
 * theta~ = theta^ / gamma^{1/L} (= theta / q_min^{1/L}) in a->theta_tilde;
 * margins q [N] and gradients J [N][P] there, the active set (q_n <= 1 +
 * act_tol) and the kinks (*kink [N][H], allocated here): active samples'
 * pre-activations with |z| <= zero_tol * scale; a->kink_distance.
 */
static int rescaled_point(mf__an_ctx *c, const mf_analyze_settings *s, mf_analysis *a, double *q,
                          double *J, int **kink, mf_err *e) {
    const mf_model *m = c->m;
    const int N = c->N, H = mf_model_n_hidden(m);
    const double sc = pow(a->gamma, -1.0 / m->degree);
    for (size_t i = 0; i < c->P; i++) a->theta_tilde[i] *= sc;
    mf__margin_jacobian(m, c->data, c->w1, a->theta_tilde, q, J, c->out1, c->dout1);
    for (int n = 0; n < N; n++) {
        a->active[n] = q[n] <= 1.0 + s->act_tol;
        a->n_active += a->active[n];
    }
    *kink = mf__calloc((size_t)N * (H ? H : 1), sizeof(int));
    if (!*kink) return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    if (!H) return MF_OK;
    double *pre = mf__malloc(sizeof(double) * (size_t)N * H);
    double *scl = mf__malloc(sizeof(double) * (size_t)N * H);
    int rc = pre && scl ? mf__preact(m, a->theta_tilde, c->data, pre, scl, e)
                        : mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    for (int n = 0; n < N && !rc; n++)
        for (int k = 0; k < H; k++) {
            size_t t = (size_t)n * H + k;
            (*kink)[t] = a->active[n] && fabs(pre[t]) <= s->zero_tol * scl[t];
            a->n_kinks += (*kink)[t];
        }
    if (!rc) kink_distance(c, a, pre, scl, *kink);
    mf__free(pre);
    mf__free(scl);
    return rc;
}

/* Non-fatal failure of an optional step: note it and go on. */
static int soft_fail(int rc, const mf_err *se, char *note, size_t cap, const char *what) {
    if (rc == MF_ERR_NOMEM) return rc;
    mf__say(note, cap, " %s not run (%s: %s).", what, mf_strerror(rc), se->msg);
    return MF_OK;
}

/*
 * Step 5, the polish: a local re-solve of (P) from theta~ itself inside the
 * ball of relative radius MF__POLISH_MAX_DIST (psolve.c). Ending inside
 * half the ball it is the KKT point the run converges to: a->gamma_polished,
 * the witnesses' reference. Ending further out it found a better point on
 * the way: *far (allocated here) is then a witness candidate and
 * gamma_polished stays NAN. MF_OK or MF_ERR_NOMEM.
 */
static int polish(mf__an_ctx *c, mf_analysis *a, double **far) {
    const int slsqp = c->P <= MF_SLSQP_MAX_PARAMS;
    mf__pctx pc;
    *far = NULL;
    a->gamma_polished = NAN;
    int rc = mf__pctx_init(&pc, c->m, c->data, slsqp, "polish", NULL);
    if (rc) return rc == MF_ERR_NOMEM ? rc : MF_OK;
    double *x = mf__malloc(sizeof(double) * c->P);
    if (!x) {
        mf__pctx_free(&pc);
        return MF_ERR_NOMEM;
    }
    int evals = 0;
    const double rho = MF__POLISH_MAX_DIST * mf__norm2(a->theta_tilde, c->P);
    memcpy(x, a->theta_tilde, sizeof(double) * c->P);
    double g = mf__p_solve(&pc, x, a->theta_tilde, rho, slsqp, &evals);
    mf__pctx_free(&pc);
    if (!isnan(g) && mf__rel_dist(x, a->theta_tilde, c->P) <= 0.5 * MF__POLISH_MAX_DIST) {
        a->gamma_polished = g;
    } else if (!isnan(g)) {
        *far = x;
        return MF_OK;
    }
    mf__free(x);
    return MF_OK;
}

/* Step 6 for a smooth point: the second-order test; with negative
 * curvature in the cone, the curve along it. */
static int smooth_tests(mf__an_ctx *c, const mf_analyze_settings *s, const double *J,
                        const mf__wref *ref, mf_analysis *a, mf__local_evidence *loc, char *note,
                        size_t cap, mf_err *e) {
    int rc = mf__second_order(c, a->theta_tilde, J, a, s, loc, e);
    if (rc) return rc;
    if (loc->so_negative) {
        a->gain_absent[0] = '\0';
        return mf__witness_curve(c, a->theta_tilde, J, ref, s, a, e);
    }
    (void)note;
    (void)cap;
    return MF_OK;
}

/* Step 6 at kinks: the directional LP, then the line along its direction. */
static int kink_tests(mf__an_ctx *c, const mf_analyze_settings *s, const mf__wref *ref,
                      mf_analysis *a, mf__local_evidence *loc, char *note, size_t cap, mf_err *e) {
    mf_err se = {0, ""};
    snprintf(a->min_eig_absent, sizeof a->min_eig_absent,
             "not a smooth point: %d pre-activations of active samples at a kink", a->n_kinks);
    int rc = mf_directional_test(c->m, c->data, a->theta_tilde, s->act_tol, s->zero_tol,
                                 s->max_patterns, &a->directional, &se);
    if (rc) {
        a->directional = NULL;
        if (soft_fail(rc, &se, note, cap, "Directional test"))
            return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
        return MF_OK;
    }
    if (!(a->directional->found && a->directional->best_inner < 0)) return MF_OK;
    loc->dir_found = 1;
    double gains[MF_N_GAINS];
    return mf__witness_line(c, a->theta_tilde, a->directional->d, ref, "directional", a, gains, e);
}

/* Step 6, the local re-solves; their best point is a candidate. */
static int search_tests(mf__an_ctx *c, const mf_analyze_settings *s, const mf__wref *ref,
                        mf_analysis *a, char *note, size_t cap, mf_err *e) {
    mf_err se = {0, ""};
    int rc = mf_local_search(c->m, c->data, a->theta_tilde, mf__search_radii, MF__N_SEARCH_RADII,
                             s->local_trials, s->seed, &a->local, &se);
    if (rc) {
        a->local = NULL;
        if (soft_fail(rc, &se, note, cap, "Local search"))
            return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
        return MF_OK;
    }
    const mf_local_result *lr = a->local;
    if (lr->best_radius < 0) return MF_OK;
    return mf__witness_try(c, a->theta_tilde, ref, lr->best_theta, lr->radii[lr->best_radius],
                           "local search", a, NULL, e);
}

/* Steps 5 and 6: the polish, the tests for the point's kind, then the
 * searches unless a witness already decided. */
static int local_tests(mf__an_ctx *c, const mf_analyze_settings *s, const double *J, mf_analysis *a,
                       mf__local_evidence *loc, char *note, size_t cap, mf_err *e) {
    double *far = NULL;
    mf__wref ref;
    c->le = loc;
    int rc = s->local_trials > 0 ? polish(c, a, &far) : MF_OK;
    if (rc) return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    rc = mf__wref_init(c, a->theta_tilde, a, &ref, e);
    loc->polished = ref.polished;
    if (!rc && far)
        rc = mf__witness_try(c, a->theta_tilde, &ref, far, MF__POLISH_MAX_DIST, "local search", a,
                             NULL, e);
    mf__free(far);
    if (!rc && a->n_kinks == 0) rc = smooth_tests(c, s, J, &ref, a, loc, note, cap, e);
    else if (!rc) rc = kink_tests(c, s, &ref, a, loc, note, cap, e);
    if (!rc && !a->witness.found && s->local_trials > 0)
        rc = search_tests(c, s, &ref, a, note, cap, e);
    return rc;
}

/* The evidence the verdict reads, from the analysis so far. */
static void evidence_of(const mf_model *m, const mf_analysis *a, const mf__local_evidence *loc,
                        const char *note, int kkt_done, int local_done, mf__evidence *ev) {
    memset(ev, 0, sizeof *ev);
    ev->spec = m->spec;
    ev->homogeneous = a->homogeneous;
    ev->degree = a->degree;
    ev->gamma = a->gamma;
    ev->q_min = a->q_min;
    ev->norm = a->norm;
    ev->kkt_done = kkt_done;
    ev->eps = a->eps;
    ev->delta = a->delta;
    ev->kkt_exact = a->kkt_exact;
    ev->n_kinks = a->n_kinks;
    ev->has_global = a->has_global;
    ev->gamma_star = a->gamma_star;
    ev->ratio = a->ratio;
    ev->global_source = a->global_source;
    ev->gamma_lower = a->gamma_lower;
    ev->gamma_upper = a->gamma_upper;
    ev->global_spec = a->global_theta ? a->global_spec : NULL;
    ev->layer = a->layer;
    ev->layer_name = a->layer >= 0 ? m->layers[a->layer].name : "";
    ev->layer_value = a->layer_value;
    ev->layer_opt = a->layer_opt;
    ev->local_done = local_done;
    ev->loc = *loc;
    ev->second_order_done = a->second_order_done;
    ev->so_dim = a->so_dim;
    ev->min_eig = a->min_eig;
    ev->min_eig_err = a->min_eig_err;
    ev->kink_distance = a->kink_distance;
    ev->min_eig_absent = a->min_eig_absent;
    ev->has_directional = a->directional != NULL;
    if (a->directional) {
        ev->dir_n_patterns = a->directional->n_patterns;
        ev->dir_searched = a->directional->searched;
        ev->dir_best_inner = a->directional->best_inner;
    }
    ev->has_local = a->local != NULL;
    if (a->local) {
        ev->local_trials = a->local->trials;
        ev->local_best_gain = a->local->best_gain;
        ev->local_method = a->local->method;
    }
    ev->witness = &a->witness;
    ev->note = note;
    ev->kkt_tol = a->settings.kkt_tol;
    ev->global_tol = a->settings.global_tol;
}

/* Steps 2-4 at theta~ (J, q its gradients and margins, kink its kinks). */
static int certificates(mf__an_ctx *c, const mf_analyze_settings *s, mf_loss_kind loss,
                        const double *J, const double *q, const int *kink, mf_analysis *a, char *note,
                        size_t cap, mf_err *e) {
    int rc = mf__kkt_nnls(c, a->theta_tilde, J, q, kink, a, note, cap, e);
    if (!rc) rc = mf__kkt_lyu_li(c, a->theta_tilde, q, loss, a, note, cap, e);
    if (!rc) rc = mf__global_reference(c, a, note, cap, e);
    if (!rc && s->layer >= 0) rc = mf__layer_problem(c, a->theta_tilde, s->layer, a, e);
    return rc;
}

/*
 * mf_analyze -- contract in marginflow.h; the steps are in the file comment.
 * All of the analysis is at theta~ except Lyu & Li's certificate, which uses
 * the loss gradient at the given theta (only its direction matters).
 */
int mf_analyze(const mf_model *m, const mf_data *data, const double *theta, mf_loss_kind loss,
               const mf_analyze_settings *s, mf_analysis **out, mf_err *e) {
    if (out) *out = NULL;
    if (!out) return mf__err(e, MF_ERR_INVALID, "mf_analyze: out must not be NULL");
    mf_analyze_settings defs;
    int rc = check_args(m, data, theta, &s, &defs, e);
    if (rc) return rc;
    mf__an_ctx c;
    mf__evidence ev;
    mf__local_evidence loc;
    mf_analysis *a = NULL;
    double *q = NULL, *J = NULL;
    int *kink = NULL;
    char note[768] = "";
    memset(&loc, 0, sizeof loc);
    rc = ctx_init(&c, m, data, e);
    if (rc) goto fail;
    a = result_new(m, data, s);
    q = mf__malloc(sizeof(double) * (size_t)data->n);
    J = mf__malloc(sizeof(double) * (size_t)data->n * c.P);
    if (!a || !q || !J) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
        goto fail;
    }
    margins_at(&c, theta, a, q);
    evidence_of(m, a, &loc, note, 0, 0, &ev);
    if (mf__verdict(&ev, &a->verdict, a->verdict_reason, sizeof a->verdict_reason)) {
        memcpy(a->theta_tilde, theta, sizeof(double) * c.P);
        goto done;
    }
    rc = rescaled_point(&c, s, a, q, J, &kink, e);
    if (!rc) rc = certificates(&c, s, loss, J, q, kink, a, note, sizeof note, e);
    if (rc) goto fail;
    evidence_of(m, a, &loc, note, 1, 0, &ev);
    if (mf__verdict(&ev, &a->verdict, a->verdict_reason, sizeof a->verdict_reason)) {
        /* decided before the local tests; with always_local their evidence is
           still computed and reported (the verdict stands) */
        if (!s->always_local || s->layer >= 0 || !(a->eps <= s->kkt_tol)) goto done;
        rc = local_tests(&c, s, J, a, &loc, note, sizeof note, e);
        if (rc) goto fail;
        goto done;
    }
    rc = local_tests(&c, s, J, a, &loc, note, sizeof note, e);
    if (rc) goto fail;
    evidence_of(m, a, &loc, note, 1, 1, &ev);
    mf__verdict(&ev, &a->verdict, a->verdict_reason, sizeof a->verdict_reason);
done:
    *out = a;
    a = NULL;
    rc = MF_OK;
fail:
    mf_analysis_free(a);
    ctx_free(&c);
    mf__free(q);
    mf__free(J);
    mf__free(kink);
    return rc;
}

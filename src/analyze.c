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
 *  5. the second-order test at smooth points (second_order.c), the
 *     directional first-order test at kinks (local.c);
 *  6. local constrained re-solves (local.c), judged here against what the
 *     run's KKT defect explains;
 *  7. the verdict and its reason, a pure function of the evidence (verdict.c).
 * The result carries the settings it was judged with (a->settings).
 */
#include "analysis_internal.h"

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
    return NULL;
}

const char *mf_verdict_name(mf_verdict v) {
    switch (v) {
    case MF_VERDICT_GLOBAL: return "global";
    case MF_VERDICT_LOCAL_CERTIFIED: return "local-certified";
    case MF_VERDICT_LOCAL_EVIDENCE: return "local-evidence";
    case MF_VERDICT_NOT_LOCAL: return "not-local";
    case MF_VERDICT_NOT_KKT: return "not-kkt";
    case MF_VERDICT_NON_HOMOGENEOUS: return "non-homogeneous";
    }
    return "unknown";
}

void mf_analysis_free(mf_analysis *a) {
    if (!a) return;
    mf__free(a->theta_tilde);
    mf__free(a->lambda);
    mf__free(a->active);
    mf__free(a->dir);
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
    a->min_eig = NAN;
    for (int k = 0; k < MF_N_GAINS; k++) a->gain[k] = NAN;
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
        a->q_min = a->gamma * pow(a->norm, L);
        for (int l = 0; l < m->n_layers; l++) prod *= mf_layer_norm(m, a->theta_tilde, l);
        a->layer_margin = a->gamma / prod * pow(a->norm, L - m->n_layers);
    } else {
        mf__margin_jacobian(m, c->data, c->w1, theta, q, NULL, c->out1, c->dout1);
        a->q_min = INFINITY;
        for (int n = 0; n < c->N; n++)
            if (q[n] < a->q_min) a->q_min = q[n];
        a->gamma = a->q_min / pow(a->norm, L);
        for (int l = 0; l < m->n_layers; l++) prod *= mf_layer_norm(m, theta, l);
        a->layer_margin = a->q_min / prod;
    }
}

/*
 * theta~ = theta^ / gamma^{1/L} (= theta / q_min^{1/L}) in a->theta_tilde;
 * margins q [N] and gradients J [N][P] there, the active set (q_n <= 1 +
 * act_tol) and the kinks (*kink [N][H], allocated here): active samples'
 * pre-activations with |z| <= zero_tol * scale.
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

/* Relative distance ||x - y|| / ||y|| over P entries (0 when y = 0). */
static double rel_dist(const double *x, const double *y, size_t P) {
    double d = 0.0, n = 0.0;
    for (size_t i = 0; i < P; i++) {
        double di = x[i] - y[i];
        d += di * di;
        n += y[i] * y[i];
    }
    return n > 0 ? sqrt(d / n) : 0.0;
}

/*
 * The reference for search gains: the KKT point SLSQP reaches from theta~
 * itself (a re-solve at radius MF__POLISH_RADIUS, "polished"), accepted when
 * it stays within relative distance MF__POLISH_MAX_DIST; a polish that
 * wanders off found a better point, which the gains then count. Sets
 * a->gamma_polished (NAN when not accepted). MF_OK or MF_ERR_NOMEM.
 */
static int polish(const mf__an_ctx *c, const mf_analyze_settings *s, mf_analysis *a) {
    static const double polish_radius[1] = {MF__POLISH_RADIUS};
    mf_local_result *pol = NULL;
    a->gamma_polished = NAN;
    int prc = mf_local_search(c->m, c->data, a->theta_tilde, polish_radius, 1, 1, s->seed, &pol, NULL);
    if (prc == MF_OK && rel_dist(pol->best_theta, a->theta_tilde, c->P) <= MF__POLISH_MAX_DIST)
        a->gamma_polished = pol->best_gamma[0];
    mf_local_result_free(pol);
    return prc == MF_ERR_NOMEM ? prc : MF_OK;
}

/*
 * Judge the local search's gains. A gain certifies only beyond what the
 * trained point's distance from its limit explains. Gains are measured
 * against the better of theta~ and the polished point (polish). If the
 * polish failed, a first-order bound is used instead: at an (eps,
 * delta)-KKT point the relative gain over a move of relative size r can
 * reach ~ 2 L (eps + delta / sum lambda) r (our bound; at exact points it
 * reduces to MF__GAIN_CERT). r is the larger of the radius and the distance
 * of the best point found from theta~, since SLSQP re-solves can end far
 * from where they started.
 */
static void judge_search(const mf_analysis *a, mf__local_evidence *loc) {
    const mf_local_result *lr = a->local;
    const int L = a->degree;
    double ref = lr->gamma0;
    if (a->gamma_polished > ref) ref = a->gamma_polished;
    double sum_lambda = a->euler_lhs > 0 ? a->euler_lhs / L : 0.0;
    double defect = isnan(a->gamma_polished)
                        ? a->eps + (sum_lambda > 0 ? a->delta / sum_lambda : 0.0)
                        : 0.0;
    double dist = rel_dist(lr->best_theta, a->theta_tilde, (size_t)a->n_params);
    for (int k = 0; k < lr->n_radii && k < MF_LOCAL_MAX_RADII; k++) {
        double gk = lr->best_gamma[k] / ref - 1.0;
        double r = lr->radii[k] > dist ? lr->radii[k] : dist;
        double thr = MF__GAIN_CERT + 2.0 * L * defect * r;
        if (gk > thr) loc->search_not_local = 1;
        else if (gk > MF__GAIN_CERT && !loc->search_explained) loc->search_explained = k + 1;
    }
}

/* Step 6: the local constrained re-solves (evidence, or a certificate when
 * they gain beyond the KKT defect). */
static int local_search(const mf__an_ctx *c, const mf_analyze_settings *s, mf_analysis *a,
                        mf__local_evidence *loc, char *note, size_t cap) {
    mf_err se = {0, ""};
    int rc = mf_local_search(c->m, c->data, a->theta_tilde, mf__search_radii, MF__N_SEARCH_RADII,
                             s->local_trials, s->seed, &a->local, &se);
    if (rc) {
        a->local = NULL;
        return soft_fail(rc, &se, note, cap, "Local search");
    }
    rc = polish(c, s, a);
    if (rc) return rc;
    judge_search(a, loc);
    return MF_OK;
}

/* Step 5 and 6: second order at smooth points, the directional test at
 * kinks, then the searches unless a certificate already decided. */
static int local_tests(mf__an_ctx *c, const mf_analyze_settings *s, const double *J, mf_analysis *a,
                       mf__local_evidence *loc, char *note, size_t cap, mf_err *e) {
    int rc = MF_OK;
    if (a->n_kinks == 0) {
        if (c->P <= MF__MAX_HESS_PARAMS)
            rc = mf__second_order(c, a->theta_tilde, J, a, s, loc, e);
        else
            mf__say(note, cap, " Second-order test skipped (%zu parameters > %d).", c->P,
                    MF__MAX_HESS_PARAMS);
        if (rc) return rc;
    } else {
        mf_err se = {0, ""};
        rc = mf_directional_test(c->m, c->data, a->theta_tilde, s->act_tol, s->zero_tol,
                                 s->max_patterns, &a->directional, &se);
        if (rc) {
            a->directional = NULL;
            if (soft_fail(rc, &se, note, cap, "Directional test"))
                return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
        } else if (a->directional->found && a->directional->best_inner < 0) {
            loc->dir_not_local = 1;
        }
    }
    if (!loc->so_not_local && !loc->dir_not_local && s->local_trials > 0 &&
        local_search(c, s, a, loc, note, cap))
        return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    return MF_OK;
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
    ev->has_global = a->has_global;
    ev->gamma_star = a->gamma_star;
    ev->ratio = a->ratio;
    ev->global_source = a->global_source;
    ev->layer = a->layer;
    ev->layer_name = a->layer >= 0 ? m->layers[a->layer].name : "";
    ev->layer_value = a->layer_value;
    ev->layer_opt = a->layer_opt;
    ev->local_done = local_done;
    ev->n_kinks = a->n_kinks;
    ev->loc = *loc;
    ev->so_gain = a->gain[MF__GAIN_QUOTED];
    ev->has_directional = a->directional != NULL;
    if (a->directional) {
        ev->dir_n_patterns = a->directional->n_patterns;
        ev->dir_best_inner = a->directional->best_inner;
        ev->dir_gain = a->directional->gain[MF__GAIN_QUOTED];
    }
    ev->has_local = a->local != NULL;
    if (a->local) {
        ev->local_trials = a->local->trials;
        ev->local_best_gain = a->local->best_gain;
    }
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
    char note[512] = "";
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
    if (mf__verdict(&ev, &a->verdict, a->verdict_reason, sizeof a->verdict_reason)) goto done;
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

/*
 * witness.c -- the only way to a "not-local" verdict: a WITNESS, i.e. a
 * point theta' near theta~ that is feasible for (P) and has a larger
 * normalized margin than the reference by more than a stated noise bound,
 * re-evaluated from scratch (docs/theory.md s.3: "a nearby point with larger
 * normalized margin is a certificate (report it)"). Contract of the bound
 * at mf_witness in marginflow.h.
 *
 * The candidates come from the tests of the analysis:
 *  - the second-order curve theta~ + t d + t^2/2 c along a direction d of
 *    negative curvature in the critical cone, c the minimum-norm correction
 *    with grad q_n . c = -d' Hess q_n d for the constraints that stay
 *    active along d (so they are kept to second order; [VSS22] sec. 4), at
 *    t = r ||theta~|| for r = 1e-1 .. 1e-4. Along it
 *      1/2 ||theta(t)||^2 = 1/2 ||theta~||^2 + t^2/2 d'Hd + O(t^3)
 *    at an exact KKT point (our derivation: <theta~, d> = 0 and <theta~, c>
 *    = -sum lambda_n d' Hess q_n d), so d'Hd < 0 shows as a gain only where
 *    the t^2 term beats the third-order terms and the KKT defect;
 *  - the directional direction of a kinked point ([VSS22]; mf_directional_
 *    test) at the same radii;
 *  - the best point of the local re-solves (each inside its ball) and a
 *    polish that left its ball;
 *  - the per-layer problem's solution (global_ref.c).
 * Each is rescaled to q_min = 1, re-evaluated by a fresh batched forward
 * pass (bumped by 1 + 2^-52 until q_min >= 1 holds in floating point), and
 * compared with the reference.
 */
#include "analysis_internal.h"

#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Contract in analysis_internal.h. */
int mf__wref_init(mf__an_ctx *c, const double *tt, const mf_analysis *a, mf__wref *r, mf_err *e) {
    const size_t P = c->P;
    double *ath = mf__malloc(sizeof(double) * P);
    double *ax = mf__malloc(sizeof(double) * (size_t)c->N * c->data->d + 1);
    if (!ath || !ax) {
        mf__free(ath);
        mf__free(ax);
        return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    }
    mf_model_forward(c->m, c->wN, tt, c->data->x, c->N, c->outN);
    double q0 = mf_margins(c->data, c->outN, c->m->n_out, NULL);
    r->q0 = q0;
    r->norm0 = mf__norm2(tt, P);
    r->gamma0 = mf__norm_quotient(q0, tt, P, c->m->degree);
    r->round0 = mf__gamma_rounding(c->m, c->wN, c->data, tt, q0, ath, ax, c->outN);
    mf__free(ath);
    mf__free(ax);
    r->reference = r->gamma0;
    r->polished = 0;
    if (a->gamma_polished > r->reference) {
        r->reference = a->gamma_polished;
        r->polished = 1;
    } else if (!isnan(a->gamma_polished)) {
        r->polished = 1; /* the polish found nothing better: theta~ is its own limit */
    }
    double sum_lambda = a->euler_rhs > 0 ? a->euler_rhs / a->degree : 0.0;
    r->defect = r->polished ? 0.0
                            : 2.0 * a->degree *
                                  (a->eps + (sum_lambda > 0 ? a->delta / sum_lambda : 0.0));
    return MF_OK;
}

/* Contract in analysis_internal.h. */
int mf__witness_try(mf__an_ctx *c, const double *tt, const mf__wref *ref, const double *cand,
                    double radius, const char *kind, mf_analysis *a, double *gain_out, mf_err *e) {
    const size_t P = c->P;
    const int L = c->m->degree;
    if (gain_out) *gain_out = NAN;
    double *th = mf__malloc(sizeof(double) * P), *ath = mf__malloc(sizeof(double) * P);
    double *ax = mf__malloc(sizeof(double) * (size_t)c->N * c->data->d + 1);
    if (!th || !ath || !ax) {
        mf__free(th), mf__free(ath), mf__free(ax);
        return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    }
    memcpy(th, cand, sizeof(double) * P);
    mf_model_forward(c->m, c->wN, th, c->data->x, c->N, c->outN);
    double q = mf_margins(c->data, c->outN, c->m->n_out, NULL);
    int ok = q > 0 && isfinite(q);
    if (ok) {
        double f = pow(q, -1.0 / L);
        for (size_t i = 0; i < P; i++) th[i] *= f;
        for (int tries = 0; tries < 64; tries++) { /* q_min >= 1 in floating point */
            mf_model_forward(c->m, c->wN, th, c->data->x, c->N, c->outN);
            q = mf_margins(c->data, c->outN, c->m->n_out, NULL);
            if (q >= 1.0) break;
            for (size_t i = 0; i < P; i++) th[i] *= 1.0 + 4.0 * DBL_EPSILON;
        }
        ok = q >= 1.0;
    }
    double gamma = ok ? mf__norm_quotient(q, th, P, L) : NAN;
    double dist = mf__rel_dist(th, tt, P);
    double gain = gamma / ref->gamma0 - 1.0;
    if (gain_out) *gain_out = ok ? gain : NAN;
    if (ok && isfinite(gamma)) {
        double rnd = mf__gamma_rounding(c->m, c->wN, c->data, th, q, ath, ax, c->outN);
        double gref = gamma / ref->reference - 1.0;
        double noise = fmax(MF__GAIN_CERT, 100.0 * (rnd + ref->round0));
        noise = fmax(noise, ref->defect * dist);
        int pass = gref > noise && dist <= radius * (1.0 + MF__P_BALL_SLACK);
        mf__local_evidence *le = c->le;
        if (le && (!le->cand_kind || gref - noise > le->cand_gain - le->cand_noise)) {
            le->cand_kind = kind; /* the best candidate, witness or not, for the text */
            le->cand_gain = gref;
            le->cand_noise = noise;
            le->cand_radius = radius;
        }
        /* the stronger statement wins: the smaller radius, then the larger gain */
        const mf_witness *o = &a->witness;
        int better = !o->found || radius < o->radius * (1.0 - 1e-12) ||
                     (!(radius > o->radius * (1.0 + 1e-12)) && gref > o->gain_ref);
        if (pass && better) {
            mf_witness *w = &a->witness;
            if (!w->theta) w->theta = mf__malloc(sizeof(double) * P);
            if (!w->theta) {
                mf__free(th), mf__free(ath), mf__free(ax);
                return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
            }
            memcpy(w->theta, th, sizeof(double) * P);
            w->found = 1;
            snprintf(w->kind, sizeof w->kind, "%s", kind);
            w->radius = radius;
            w->distance = dist;
            w->q_min = q;
            w->norm = mf__norm2(th, P);
            w->gamma = gamma;
            w->gamma0 = ref->gamma0;
            w->reference = ref->reference;
            w->gain = gain;
            w->gain_ref = gref;
            w->noise = noise;
            w->rounding = rnd + ref->round0;
            w->norm_ratio = w->norm / ref->norm0;
        }
    }
    mf__free(th), mf__free(ath), mf__free(ax);
    return MF_OK;
}

/*
 * The second-order correction c [P]: the minimum-norm solution of
 *   grad q_n . c = -d' Hess q_n d   for the active n with lambda_n > lam_tol
 *   or grad q_n . d = 0 (to MF__CONE_TOL),
 * with d' Hess q_n d = d . (grad q_n(tt + h d) - grad q_n(tt - h d)) / (2h)
 * (single-sample gradients), by LAPACK dgelsd. 0, -1 no memory, -2 LAPACK.
 */
static int curve_correction(mf__an_ctx *c, const double *tt, const double *J, const mf_analysis *a,
                            const double *d, double h, double *corr) {
    const size_t P = c->P;
    const int N = c->N;
    double lmax = 0.0;
    for (int n = 0; n < N; n++)
        if (a->lambda[n] > lmax) lmax = a->lambda[n];
    const double lam_tol = MF__LAMBDA_ZERO * (lmax > 1.0 ? lmax : 1.0);
    int *rows = mf__malloc(sizeof(int) * (size_t)N + 1);
    double *tp = mf__malloc(sizeof(double) * P), *Jp = mf__malloc(sizeof(double) * (size_t)N * P);
    double *Jm = mf__malloc(sizeof(double) * (size_t)N * P);
    double *G = NULL, *b = NULL, *sv = NULL;
    int r = 0, rc = -1;
    if (!rows || !tp || !Jp || !Jm) goto done;
    for (int n = 0; n < N; n++) {
        if (!a->active[n]) continue;
        double gd = mf__dot(J + (size_t)n * P, d, P), gn = mf__norm2(J + (size_t)n * P, P);
        if (a->lambda[n] > lam_tol || fabs(gd) <= MF__CONE_TOL * gn) rows[r++] = n;
    }
    memset(corr, 0, sizeof(double) * P);
    rc = 0;
    if (r == 0) goto done;
    rc = -1;
    for (size_t i = 0; i < P; i++) tp[i] = tt[i] + h * d[i];
    mf__margin_jacobian(c->m, c->data, c->w1, tp, NULL, Jp, c->out1, c->dout1);
    for (size_t i = 0; i < P; i++) tp[i] = tt[i] - h * d[i];
    mf__margin_jacobian(c->m, c->data, c->w1, tp, NULL, Jm, c->out1, c->dout1);
    const size_t ldb = P > (size_t)r ? P : (size_t)r;
    G = mf__malloc(sizeof(double) * (size_t)r * P);
    b = mf__calloc(ldb, sizeof(double));
    sv = mf__malloc(sizeof(double) * (size_t)(r < (int)P ? r : (int)P) + sizeof(double));
    if (!G || !b || !sv) goto done;
    for (int i = 0; i < r; i++) {
        const int n = rows[i];
        double dHd = 0.0;
        for (size_t j = 0; j < P; j++) {
            G[j * (size_t)r + i] = J[(size_t)n * P + j]; /* column-major [r][P] */
            dHd += d[j] * (Jp[(size_t)n * P + j] - Jm[(size_t)n * P + j]) / (2.0 * h);
        }
        b[i] = -dHd;
    }
    lapack_int rank;
    rc = LAPACKE_dgelsd(LAPACK_COL_MAJOR, r, (lapack_int)P, 1, G, r, b, (lapack_int)ldb, sv, 1e-12,
                        &rank) == 0 ? 0 : -2;
    if (rc == 0) memcpy(corr, b, sizeof(double) * P);
done:
    mf__free(rows), mf__free(tp), mf__free(Jp), mf__free(Jm), mf__free(G), mf__free(b), mf__free(sv);
    return rc;
}

/* Contract in analysis_internal.h. */
int mf__witness_curve(mf__an_ctx *c, const double *tt, const double *J, const mf__wref *ref,
                      const mf_analyze_settings *s, mf_analysis *a, mf_err *e) {
    const size_t P = c->P;
    double *corr = mf__malloc(sizeof(double) * P), *x = mf__malloc(sizeof(double) * P);
    if (!corr || !x) {
        mf__free(corr), mf__free(x);
        return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    }
    int rc = curve_correction(c, tt, J, a, a->dir, s->hess_h, corr);
    if (rc == -1) {
        mf__free(corr), mf__free(x);
        return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    }
    if (rc) memset(corr, 0, sizeof(double) * P); /* LAPACK failed: the straight line */
    for (int k = 0; k < MF_N_GAINS && rc >= 0; k++) {
        const double t = mf__gain_steps[k] * ref->norm0;
        for (size_t i = 0; i < P; i++) x[i] = tt[i] + t * a->dir[i] + 0.5 * t * t * corr[i];
        int r2 = mf__witness_try(c, tt, ref, x, MF__CURVE_RADIUS * mf__gain_steps[k],
                                 "second-order curve", a, &a->gain[k], e);
        if (r2) {
            mf__free(corr), mf__free(x);
            return r2;
        }
    }
    int any = 0;
    for (int k = 0; k < MF_N_GAINS; k++) any |= !isnan(a->gain[k]);
    if (!any)
        snprintf(a->gain_absent, sizeof a->gain_absent,
                 "no point of the curve had q_min > 0 after rescaling");
    mf__free(corr), mf__free(x);
    return MF_OK;
}

/* Contract in analysis_internal.h. */
int mf__witness_line(mf__an_ctx *c, const double *tt, const double *d, const mf__wref *ref,
                     const char *kind, mf_analysis *a, double gains[MF_N_GAINS], mf_err *e) {
    const size_t P = c->P;
    double nd = mf__norm2(d, P), *x = mf__malloc(sizeof(double) * P);
    if (!x) return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    for (int k = 0; k < MF_N_GAINS; k++) {
        gains[k] = NAN;
        if (!(nd > 0)) continue;
        const double t = mf__gain_steps[k] * ref->norm0 / nd;
        for (size_t i = 0; i < P; i++) x[i] = tt[i] + t * d[i];
        int rc = mf__witness_try(c, tt, ref, x, MF__CURVE_RADIUS * mf__gain_steps[k], kind, a,
                                 &gains[k], e);
        if (rc) {
            mf__free(x);
            return rc;
        }
    }
    mf__free(x);
    return MF_OK;
}

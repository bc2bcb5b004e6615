/*
 * maxmargin.c -- mf_maxmargin_run: a multi-start SEARCH for the largest
 * normalized margin gamma = q_min / ||theta||^L of a homogeneous model,
 * i.e. for good local solutions of docs/theory.md s.3's
 *     (P)  minimize 1/2 ||theta||^2  subject to  q_n(theta) >= 1,
 * (contract at mf_maxmargin_run in marginflow.h). Nothing here certifies a
 * global optimum; the result says how many starts reached each value.
 *
 * Each start is made feasible before it is optimized, because the local
 * solvers cannot repair a start that leaves ReLU units dead on some sample
 * (with SLSQP's phase 1, 17 of 20 random starts of a width-10 net found no
 * feasible point on separable data): a start that already separates the
 * data is rescaled to q_min = 1; any other is trained for at most
 * flow_steps steps by the library's own training loop (mf_train, exp loss,
 * the default optimizer) until Loss < ell(0) = 1, which for the exponential
 * loss on the sum implies q_n > 0 for every n ([LL20] sec. 4: the training
 * loss below ell(0) separates the data), then rescaled. The solver is
 * psolve.c's SLSQP or augmented Lagrangian, chosen by the parameter count;
 * its memory is estimated first and a search beyond max_bytes refused.
 */
#include "analysis_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The training target of the feasibility run: log10 Loss <= -0.01, i.e.
 * Loss < 1 = ell(0) with room for rounding. */
#define MM_FEAS_LOG10_LOSS (-0.01)

void mf_maxmargin_settings_default(mf_maxmargin_settings *s) {
    memset(s, 0, sizeof *s);
    s->starts = 20;
    s->seed = 1;
    s->rel_tol = 1e-6;
    s->init_scale = 1.0;
    s->flow_steps = 20000;
    s->method = MF_MM_AUTO;
    s->max_bytes = 4.0 * 1024 * 1024 * 1024;
}

const char *mf_maxmargin_settings_validate(const mf_maxmargin_settings *s) {
    if (!s) return "settings must not be NULL";
    if (s->starts < 1) return "starts must be an integer >= 1";
    if (!(s->rel_tol >= 0.0) || !isfinite(s->rel_tol)) return "rel_tol must be a finite number >= 0";
    if (!(s->init_scale > 0.0) || !isfinite(s->init_scale))
        return "init_scale must be a finite number > 0";
    if (s->flow_steps < 1 || s->flow_steps > MF_MAX_STEPS)
        return "flow_steps must be an integer in [1, 2^62]";
    if (s->method != MF_MM_AUTO && s->method != MF_MM_SLSQP && s->method != MF_MM_AUGLAG)
        return "method must be auto, slsqp or auglag";
    if (!(s->max_bytes > 0.0) || !isfinite(s->max_bytes)) return "max_bytes must be a finite number > 0";
    return NULL;
}

void mf_maxmargin_result_free(mf_maxmargin_result *r) {
    if (!r) return;
    mf__free(r->best_theta);
    mf__free(r->values);
    mf__free(r->counts);
    mf__free(r);
}

static int mm_cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* SLSQP's work arrays in NLopt 2.7 (slsqp.c: len_w, len_jw for n
 * variables, m inequality constraints, no equalities), plus the m x n
 * Jacobians NLopt and psolve.c keep: doubles. */
static double mm_slsqp_doubles(double n, double m) {
    double n1 = n + 1, mineq = m + 2 * n1;
    double len_w = (3 * n1 + m) * (n1 + 1) + (n1 + 1) * (mineq + 2) + 2 * mineq +
                   (n1 + mineq) * n1 + n1 + (n + 1) * n / 2 + 2 * m + 3 * n + 3 * n1 + 1;
    return len_w + mineq + 2 * m * n;
}

/* Contract in marginflow.h. The estimate: the solver's workspace for the
 * whole data set (the model family's plan), the training run's own (the
 * same plan again and ~24 parameter vectors: state, gradient, the
 * integrator's stages), the outputs, seeds and margins, 8 parameter
 * vectors of the search, and the method's arrays: SLSQP's (above), or
 * L-BFGS's ~2 x 10 stored pairs and its line search (~30 vectors). */
int mf_maxmargin_plan(const mf_model *m, const mf_data *data, const mf_maxmargin_settings *s,
                      double *bytes, mf_maxmargin_method *method_out, mf_err *e) {
    mf_maxmargin_settings defs;
    if (!s) {
        mf_maxmargin_settings_default(&defs);
        s = &defs;
    }
    if (!m || !data || !bytes)
        return mf__err(e, MF_ERR_INVALID, "maxmargin: model, data and bytes must not be NULL");
    const char *bad = mf_maxmargin_settings_validate(s);
    if (bad) return mf__err(e, MF_ERR_INVALID, "maxmargin settings: %s", bad);
    mf_maxmargin_method meth = s->method;
    if (meth == MF_MM_AUTO) meth = m->n_params <= MF_SLSQP_MAX_PARAMS ? MF_MM_SLSQP : MF_MM_AUGLAG;
    const double P = (double)m->n_params, N = data->n > 0 ? data->n : 1;
    double work = mf__work_bytes(m, (size_t)N);
    if (work < 0) return mf__err(e, MF_ERR_NOMEM, "maxmargin: out of memory");
    double d = 3.0 * N * m->n_out + 3.0 * N + 8.0 * P + 24.0 * P;
    d += meth == MF_MM_SLSQP ? mm_slsqp_doubles(P, N) : 30.0 * P;
    *bytes = 2.0 * work + 8.0 * d;
    if (method_out) *method_out = meth;
    return MF_OK;
}

/* Seconds of wall time since t0. */
static double mm_seconds(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

/* The caller's stop flag for mf_train. */
typedef struct mm_stop {
    const mf_maxmargin_settings *s;
} mm_stop;

static int mm_should_stop(void *user) {
    const mm_stop *st = user;
    return st->s->should_stop ? st->s->should_stop(st->s->user) : 0;
}

/*
 * Make start x feasible (file comment): 0 with x rescaled to q_min = 1;
 * 1 when the training run did not separate the data (*why says so); -1 on
 * an error (*code its mf_error, e filled).
 */
static int mm_feasible(mf__pctx *c, const mf_maxmargin_settings *s, double *x, int *trained,
                       const char **why, int *code, mf_err *e) {
    double q = mf__p_margins(c, x);
    *trained = 0;
    if (!(q > 0.0)) {
        mf_train_settings ts;
        mf_train_settings_default(&ts);
        ts.loss = MF_LOSS_EXP;
        ts.max_steps = s->flow_steps;
        ts.until_log10_loss = MM_FEAS_LOG10_LOSS;
        ts.checkpoint_every = 0;
        ts.log_points = 2;
        mf_train_state *st = NULL;
        int rc = mf_train_state_new(c->P, &st, e);
        *code = rc;
        if (rc) return -1;
        memcpy(st->theta, x, sizeof(double) * c->P);
        mm_stop ms = {s};
        mf_callbacks cb;
        memset(&cb, 0, sizeof cb);
        cb.user = &ms;
        cb.should_stop = mm_should_stop;
        mf_train_result res;
        rc = mf_train(c->m, c->data, &ts, st, &cb, &res, e);
        if (rc == MF_OK) memcpy(x, st->theta, sizeof(double) * c->P);
        mf_train_state_free(st);
        *code = rc;
        if (rc) return -1;
        *trained = 1;
        if (res.outcome == MF_OUT_INTERRUPTED) {
            *why = "interrupted";
            return 1;
        }
        q = mf__p_margins(c, x);
        if (!(q > 0.0)) {
            *why = "a short training run did not separate the data";
            return 1;
        }
    }
    mf__p_rescale(c, x, q);
    return 0;
}

/* Group the sorted values (descending) within rel_tol of each group's
 * first value, which is the one reported. */
static void mm_group(mf_maxmargin_result *r, double *vals, int n_ok, double rel_tol) {
    qsort(vals, (size_t)n_ok, sizeof *vals, mm_cmp_desc);
    for (int i = 0; i < n_ok; i++) {
        if (r->n_values > 0) {
            double v = r->values[r->n_values - 1];
            if (fabs(vals[i] - v) <= rel_tol * fabs(v)) {
                r->counts[r->n_values - 1]++;
                continue;
            }
        }
        r->values[r->n_values] = vals[i];
        r->counts[r->n_values] = 1;
        r->n_values++;
    }
}

static const char *mm_method_name(mf_maxmargin_method meth) {
    return meth == MF_MM_SLSQP ? "SLSQP" : "augmented Lagrangian (L-BFGS)";
}

/* Contract in marginflow.h; the method in the file comment. */
int mf_maxmargin_run(const mf_model *m, const mf_data *data, const mf_maxmargin_settings *s,
                     mf_maxmargin_result **out, mf_err *e) {
    static const char *who = "maxmargin";
    mf_maxmargin_settings defs;
    if (!out) return mf__err(e, MF_ERR_INVALID, "%s: out must not be NULL", who);
    *out = NULL;
    if (!s) {
        mf_maxmargin_settings_default(&defs);
        s = &defs;
    }
    const char *bad = mf_maxmargin_settings_validate(s);
    if (bad) return mf__err(e, MF_ERR_INVALID, "%s: %s", who, bad);
    if (!m || !data) return mf__err(e, MF_ERR_INVALID, "%s: model and data must not be NULL", who);
    if (!m->homogeneous)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "%s: model %s is not homogeneous; problem (P) and the normalized margin "
                       "q_min / ||theta||^L are defined for homogeneous models only",
                       who, m->spec);
    double bytes = 0;
    mf_maxmargin_method meth;
    int rc = mf_maxmargin_plan(m, data, s, &bytes, &meth, e);
    if (rc) return rc;
    if (!(bytes <= s->max_bytes))
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "%s: %s on %d samples (%zu parameters) needs about %.0f MiB for %s, more than "
                       "the limit of %.0f MiB; raise the limit (--max-memory) or use a smaller model",
                       who, m->spec, data->n, m->n_params, bytes / 1048576.0, mm_method_name(meth),
                       s->max_bytes / 1048576.0);
    mf__pctx c;
    rc = mf__pctx_init(&c, m, data, meth == MF_MM_SLSQP, who, e);
    if (rc) return rc;
    c.should_stop = s->should_stop;
    c.user = s->user;
    const size_t P = c.P;
    const int starts = s->starts;
    mf_maxmargin_result *r = mf__calloc(1, sizeof *r);
    double *vals = mf__calloc((size_t)starts, sizeof *vals);
    double *x = mf__calloc(P, sizeof *x);
    if (r) {
        r->best_theta = mf__calloc(P, sizeof *r->best_theta);
        r->values = mf__calloc((size_t)starts, sizeof *r->values);
        r->counts = mf__calloc((size_t)starts, sizeof *r->counts);
    }
    if (!r || !vals || !x || !r->best_theta || !r->values || !r->counts) {
        rc = mf__err(e, MF_ERR_NOMEM, "%s: out of memory", who);
        goto done;
    }
    r->starts = starts;
    r->seed = s->seed;
    r->best_gamma = NAN;
    r->bytes = bytes;
    snprintf(r->method, sizeof r->method, "%s", mm_method_name(meth));
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n_ok = 0, evals = 0;
    for (int i = 0; i < starts; i++) {
        if (s->should_stop && s->should_stop(s->user)) {
            r->interrupted = 1;
            break;
        }
        mf_rng rng;
        mf_rng_seed(&rng, s->seed + (uint64_t)i);
        rc = mf_model_init(m, "gauss", s->init_scale, &rng, x, e);
        if (rc) goto done;
        const char *why = NULL;
        int trained = 0, code = MF_OK;
        int fr = mm_feasible(&c, s, x, &trained, &why, &code, e);
        if (fr < 0) {
            rc = code;
            goto done;
        }
        r->feasibility_runs += trained;
        double gam = NAN;
        if (fr == 0) {
            gam = mf__p_solve(&c, x, NULL, 0.0, meth == MF_MM_SLSQP, &evals);
            if (isnan(gam)) why = c.stopped ? "interrupted" : "the solver reached no feasible point";
        }
        if (c.stopped || (why && !strcmp(why, "interrupted"))) {
            r->interrupted = 1;
            break; /* an interrupted start is not counted */
        }
        r->starts_done++;
        if (isnan(gam)) {
            r->failures++;
        } else {
            vals[n_ok++] = gam;
            if (isnan(r->best_gamma) || gam > r->best_gamma) {
                r->best_gamma = gam;
                memcpy(r->best_theta, x, P * sizeof *x);
            }
        }
        if (s->on_start) {
            mf_maxmargin_progress p = {i, starts, gam, r->best_gamma, r->failures, mm_seconds(&t0),
                                       isnan(gam) ? why : NULL};
            s->on_start(s->user, &p);
        }
    }
    mm_group(r, vals, n_ok, s->rel_tol);
    *out = r;
    r = NULL;
    rc = MF_OK;
done:
    mf_maxmargin_result_free(r);
    mf__free(vals);
    mf__free(x);
    mf__pctx_free(&c);
    return rc;
}

/* Contract in marginflow.h. */
int mf_maxmargin(const mf_model *m, const mf_data *data, int starts, uint64_t seed, double rel_tol,
                 mf_maxmargin_result **out, mf_err *e) {
    mf_maxmargin_settings s;
    mf_maxmargin_settings_default(&s);
    s.starts = starts;
    s.seed = seed;
    s.rel_tol = rel_tol;
    return mf_maxmargin_run(m, data, &s, out, e);
}

/*
 * psolve.c -- local solvers of the max-margin problem of docs/theory.md s.3,
 *     (P)  minimize 1/2 ||x||^2  subject to  q_n(x) >= 1 for all n,
 * optionally restricted to a ball ||x - center|| <= rho (the local searches
 * of the analysis), shared by mf_local_search (local.c) and mf_maxmargin
 * (maxmargin.c):
 *
 *  - SLSQP (NLopt's NLOPT_LD_SLSQP, Kraft 1988) with the margin Jacobian:
 *    accurate, but its dense quasi-Newton matrix and least-squares
 *    subproblems need ~6.5 P^2 + 3 N P doubles and O(P^3) work per
 *    iteration, so it serves small nets (MF_SLSQP_MAX_PARAMS);
 *  - an augmented Lagrangian (Powell-Hestenes-Rockafellar form for
 *    inequalities, Nocedal & Wright, Numerical Optimization, 2nd ed., sec.
 *    17.4; Birgin & Martinez 2014) whose unconstrained subproblems are
 *    solved by NLopt's L-BFGS (NLOPT_LD_LBFGS, Liu & Nocedal 1989). Its
 *    gradient needs only the multiplier-weighted sum of the margin
 *    gradients, i.e. ONE batched backward pass per evaluation, and memory
 *    O(P + N n_out): NLopt's own AUGLAG would ask for the N x P constraint
 *    Jacobian at every evaluation (N single-sample backward passes and N P
 *    doubles), which is what makes large nets slow. The outer loop here is
 *    the textbook one (20 lines); the inner solver is NLopt's.
 *
 * The callbacks never allocate; a non-finite value or the caller's stop
 * flag ends the current NLopt run (nlopt_force_stop). The NLopt result
 * codes are not trusted (SLSQP often ends "roundoff limited" at a good point
 * and "xtol reached" at a poor one): every result is judged by direct
 * evaluation, rescaled to q_min = 1 (exact for homogeneous models) and
 * kept only when q_min >= 1 - MF__P_FEAS_TOL and it lies in the ball.
 */
#include "analysis_internal.h"

#include <math.h>
#include <nlopt.h>
#include <string.h>

/* SLSQP settings. */
#define PS_XTOL_REL 1e-12
#define PS_MAXEVAL 2000
/* Constraint tolerance given to NLopt's SLSQP. It must be > 0: NLopt only
 * returns iterates that satisfy the constraints within it, and SLSQP's
 * iterates sit on the boundary q_n = 1 up to rounding, so with 0 it would
 * hand back the start. Results are rescaled to q_min = 1 afterwards. */
#define PS_CTOL 1e-11
/* SLSQP restarts from its own rescaled result while a round lowers
 * 1/2 ||x||^2 by more than PS_RESTART_GAIN (relative, ~50 ulps), at most
 * PS_ROUNDS times, within one budget of PS_MAXEVAL evaluations: NLopt's
 * SLSQP often stops early ("xtol reached" after a tiny line-search step),
 * and a fresh quasi-Newton matrix continues. */
#define PS_ROUNDS 30
#define PS_RESTART_GAIN 1e-14
/* Augmented Lagrangian: at most PS_AL_OUTER multiplier updates, each
 * subproblem solved inexactly by at most PS_AL_INNER L-BFGS evaluations
 * (PS_AL_BUDGET in all; the margins are only piecewise smooth, so L-BFGS
 * rarely meets a tight tolerance and a capped inner solve with more outer
 * updates is faster); the penalty starts at PS_AL_RHO0 and grows 10x
 * whenever the constraint violation did not halve (Nocedal & Wright Alg.
 * 17.4); it stops when the violation (complementarity included) is below
 * PS_AL_VTOL and the objective changed by less than PS_AL_FTOL (relative)
 * over an outer iteration. The objective is scaled to 1 at the start, the
 * constraints q_n - 1 are O(1): a small initial penalty (measured on relu2
 * width 50, 200 points in 10-d: rho0 = 0.1..1 reaches gamma 0.057, rho0 =
 * 100 only 0.025-0.05) lets the early iterates explore before the penalty
 * pins them to the constraints. */
#define PS_AL_OUTER 100
#define PS_AL_INNER 1000
#define PS_AL_BUDGET 40000
#define PS_AL_RHO0 1.0
#define PS_AL_RHO_MAX 1e12
#define PS_AL_VTOL 1e-9
#define PS_AL_FTOL 1e-10
/* L-BFGS correction pairs: NLopt's heuristic default (0) keeps far more for
 * small problems and spends most of the time in its vector updates
 * (measured: 90% of a relu2 width-10 solve); 10 is the usual choice (Liu &
 * Nocedal 1989: 3 to 20). */
#define PS_LBFGS_M 10

/* ====================================================================== */
/* Context                                                                */
/* ====================================================================== */

void mf__pctx_free(mf__pctx *c) {
    mf_work_free(c->w);
    mf__free(c->out);
    mf__free(c->q);
    mf__free(c->J);
    mf__free(c->dout);
    mf__free(c->tmp);
    mf__free(c->bak);
    mf__free(c->ctol);
    mf__free(c->lam);
    mf__free(c->comp);
    memset(c, 0, sizeof *c);
}

int mf__pctx_init(mf__pctx *c, const mf_model *m, const mf_data *data, int need_jacobian,
                  const char *who, mf_err *e) {
    memset(c, 0, sizeof *c);
    if (!m || !data) return mf__err(e, MF_ERR_INVALID, "%s: model and data must not be NULL", who);
    if (data->d != m->d)
        return mf__err(e, MF_ERR_DIM, "%s: data has d = %d features, the model expects %d", who,
                       data->d, m->d);
    if (data->n < 1) return mf__err(e, MF_ERR_INVALID, "%s: the data set is empty", who);
    if ((data->num_classes == 0 ? 1 : data->num_classes) != m->n_out)
        return mf__err(e, MF_ERR_DIM, "%s: the data has %d classes but the model %d outputs", who,
                       data->num_classes, m->n_out);
    if (m->n_params < 1) return mf__err(e, MF_ERR_INVALID, "%s: the model has no parameters", who);
    c->m = m;
    c->data = data;
    c->P = m->n_params;
    c->n = data->n;
    c->n_out = m->n_out;
    c->L = m->degree;
    int rc = mf_work_new(m, data->n, &c->w, e);
    if (rc) return rc;
    const size_t no = (size_t)c->n * c->n_out;
    c->out = mf__calloc(no, sizeof *c->out);
    c->dout = mf__calloc(no, sizeof *c->dout);
    c->q = mf__calloc((size_t)c->n, sizeof *c->q);
    c->comp = mf__calloc((size_t)c->n, sizeof *c->comp);
    c->lam = mf__calloc((size_t)c->n + 1, sizeof *c->lam);
    c->tmp = mf__calloc(c->P, sizeof *c->tmp);
    c->bak = mf__calloc(c->P + 1, sizeof *c->bak);
    c->ctol = mf__calloc((size_t)c->n + 1, sizeof *c->ctol);
    if (need_jacobian) c->J = mf__calloc((size_t)c->n * c->P, sizeof *c->J);
    if (!c->out || !c->dout || !c->q || !c->comp || !c->lam || !c->tmp || !c->bak || !c->ctol ||
        (need_jacobian && !c->J)) {
        mf__pctx_free(c);
        return mf__err(e, MF_ERR_NOMEM, "%s: out of memory (%zu parameters, %d samples)", who,
                       m->n_params, data->n);
    }
    for (int i = 0; i <= c->n; i++) c->ctol[i] = PS_CTOL;
    return MF_OK;
}

double mf__p_margins(mf__pctx *c, const double *x) {
    mf_model_forward(c->m, c->w, x, c->data->x, c->n, c->out);
    return mf_margins(c->data, c->out, c->n_out, c->q);
}

double mf__p_gamma(mf__pctx *c, const double *x) {
    return mf__gamma(c->m, c->w, c->data, x, c->out);
}

double mf__p_rescale(mf__pctx *c, double *x, double qmin) {
    if (!(qmin > 0.0) || !isfinite(qmin)) return 1.0;
    double f = pow(qmin, -1.0 / c->L);
    for (size_t i = 0; i < c->P; i++) x[i] *= f;
    return f;
}

/* Relative distance ||x - y|| / ||y|| (0 when y = 0). */
double mf__rel_dist(const double *x, const double *y, size_t P) {
    double d = 0.0, n = 0.0;
    for (size_t i = 0; i < P; i++) {
        double di = x[i] - y[i];
        d += di * di;
        n += y[i] * y[i];
    }
    return n > 0 ? sqrt(d / n) : 0.0;
}

/* The caller's stop flag (or a non-finite value seen): force NLopt out. */
static int ps_stopped(mf__pctx *c) {
    if (!c->bad && c->should_stop && c->should_stop(c->user)) c->stopped = 1;
    if ((c->bad || c->stopped) && c->opt) nlopt_force_stop(c->opt);
    return c->bad || c->stopped;
}

/* ====================================================================== */
/* SLSQP                                                                  */
/* ====================================================================== */

/* Objective of (P): f = 1/2 ||x||^2, grad f = x. */
static double ps_objective(unsigned n, const double *x, double *grad, void *data) {
    mf__pctx *c = data;
    double s = 0.0;
    for (unsigned i = 0; i < n; i++) {
        s += x[i] * x[i];
        if (grad) grad[i] = x[i];
    }
    if (!isfinite(s)) c->bad = 1;
    ps_stopped(c);
    return 0.5 * s;
}

/* Constraints of (P) in NLopt's form c_n(x) = 1 - q_n(x) <= 0, gradient row
 * n = -grad q_n (grad is [mcon][n] row-major). */
static void ps_constraints(unsigned mcon, double *result, unsigned n, const double *x,
                           double *grad, void *data) {
    mf__pctx *c = data;
    (void)n;
    if (grad) {
        mf__margin_jacobian(c->m, c->data, c->w, x, c->q, c->J, c->out, c->dout);
        for (size_t i = 0; i < (size_t)mcon * c->P; i++) grad[i] = -c->J[i];
    } else {
        mf__p_margins(c, x);
    }
    for (unsigned i = 0; i < mcon; i++) {
        result[i] = 1.0 - c->q[i];
        if (!isfinite(result[i])) c->bad = 1;
    }
    ps_stopped(c);
}

/* The ball ||x - center||^2 / rho^2 - 1 <= 0. */
static double ps_ball(unsigned n, const double *x, double *grad, void *data) {
    mf__pctx *c = data;
    double s = 0.0, r2 = c->rho * c->rho;
    for (unsigned i = 0; i < n; i++) {
        double t = x[i] - c->center[i];
        s += t * t;
        if (grad) grad[i] = 2.0 * t / r2;
    }
    return s / r2 - 1.0;
}

/* One SLSQP run from x (overwritten); 0, or -1 when NLopt could not run, a
 * callback saw non-finite values or the run was stopped. */
static int ps_slsqp_once(mf__pctx *c, double *x, int maxeval, int *evals) {
    nlopt_opt opt = nlopt_create(NLOPT_LD_SLSQP, (unsigned)c->P);
    if (!opt) return -1;
    int ok = -1;
    c->opt = opt;
    c->bad = 0;
    if (nlopt_set_min_objective(opt, ps_objective, c) >= 0 &&
        nlopt_add_inequality_mconstraint(opt, (unsigned)c->n, ps_constraints, c, c->ctol) >= 0 &&
        (!c->center || nlopt_add_inequality_constraint(opt, ps_ball, c, PS_CTOL) >= 0) &&
        nlopt_set_xtol_rel(opt, PS_XTOL_REL) >= 0 && nlopt_set_maxeval(opt, maxeval) >= 0) {
        double f = 0.0;
        (void)nlopt_optimize(opt, x, &f);
        *evals += nlopt_get_numevals(opt);
        ok = c->bad || c->stopped ? -1 : 0;
        for (size_t i = 0; i < c->P && ok == 0; i++)
            if (!isfinite(x[i])) ok = -1;
    }
    c->opt = NULL;
    nlopt_destroy(opt);
    return ok;
}

/* SLSQP from x with restarts (PS_ROUNDS); x keeps the best accepted point. */
static void ps_slsqp(mf__pctx *c, double *x, int *evals) {
    const size_t P = c->P;
    double q = mf__p_margins(c, x), f = INFINITY;
    if (!c->center && q > 0) { /* without a ball: from the rescaled start */
        mf__p_rescale(c, x, q);
        f = 0.5 * mf__norm2(x, P) * mf__norm2(x, P);
    }
    const int budget_end = *evals + PS_MAXEVAL;
    for (int round = 0; round < PS_ROUNDS && *evals < budget_end && !c->stopped; round++) {
        memcpy(c->bak, x, P * sizeof *x);
        int ok = ps_slsqp_once(c, x, budget_end - *evals, evals);
        q = ok == 0 ? mf__p_margins(c, x) : NAN;
        if (!(q > 0.0)) {
            memcpy(x, c->bak, P * sizeof *x);
            break;
        }
        mf__p_rescale(c, x, q);
        double fn = 0.5 * mf__norm2(x, P) * mf__norm2(x, P);
        if (!(fn < f)) { /* no progress (or worse): keep the previous point */
            if (isfinite(f)) memcpy(x, c->bak, P * sizeof *x);
            break;
        }
        int done = fn >= f * (1.0 - PS_RESTART_GAIN);
        f = fn;
        if (done) break;
    }
}

/* ====================================================================== */
/* Augmented Lagrangian with L-BFGS                                       */
/* ====================================================================== */

/*
 * The PHR augmented Lagrangian of (P) with constraints c_n = q_n - 1 >= 0
 * and, with a ball, c_B = 1 - ||x - center||^2 / rho^2 >= 0 (all O(1)):
 *   Phi(x) = f(x) / f0 + (rho_p / 2) sum_i max(0, lam_i / rho_p - c_i(x))^2
 * (f0 = f at the start, so the objective is O(1) too), with gradient
 *   grad f / f0 - sum_i mu_i grad c_i,   mu_i = rho_p max(0, lam_i / rho_p - c_i),
 * where sum_n mu_n grad q_n is one batched backward pass with output seeds
 * mu_n y_n (binary) or mu_n (e_y - e_j*) (multi-class, j* the competitor).
 */
static double ps_al_value(unsigned n, const double *x, double *grad, void *data) {
    mf__pctx *c = data;
    const int N = c->n, C = c->n_out;
    const double rp = c->rho_p;
    double f = 0.0;
    (void)n;
    for (size_t i = 0; i < c->P; i++) f += x[i] * x[i];
    f = 0.5 * f / c->f0;
    mf__p_margins(c, x);
    double pen = 0.0;
    for (int k = 0; k < N; k++) {
        double t = c->lam[k] / rp - (c->q[k] - 1.0);
        c->comp[k] = t > 0 ? rp * t : 0.0; /* mu_k */
        if (t > 0) pen += t * t;
        if (!isfinite(c->q[k])) c->bad = 1;
    }
    double mub = 0.0, b2 = 0.0;
    if (c->center) {
        for (size_t i = 0; i < c->P; i++) {
            double t = x[i] - c->center[i];
            b2 += t * t;
        }
        double t = c->lam[N] / rp - (1.0 - b2 / (c->rho * c->rho));
        if (t > 0) {
            pen += t * t;
            mub = rp * t;
        }
    }
    double val = f + 0.5 * rp * pen;
    if (!isfinite(val)) c->bad = 1;
    if (grad && !c->bad) {
        memset(c->dout, 0, sizeof(double) * (size_t)N * C);
        for (int k = 0; k < N; k++) {
            if (c->comp[k] == 0.0) continue;
            if (c->data->num_classes == 0) {
                c->dout[k] = -c->comp[k] * c->data->y[k];
            } else {
                const double *zk = c->out + (size_t)k * C;
                int y = c->data->cls[k], j = mf__competitor(c->data, zk, C, k);
                c->dout[(size_t)k * C + y] = -c->comp[k];
                c->dout[(size_t)k * C + j] += c->comp[k];
            }
        }
        mf_model_backward(c->m, c->w, x, c->data->x, N, c->dout, grad);
        const double s2 = 2.0 * mub / (c->rho * c->rho);
        for (size_t i = 0; i < c->P; i++) {
            grad[i] += x[i] / c->f0;
            if (c->center) grad[i] += s2 * (x[i] - c->center[i]);
            if (!isfinite(grad[i])) c->bad = 1;
        }
    }
    ps_stopped(c);
    return val;
}

/* Constraint violation with complementarity, max_i |min(c_i, lam_i / rho)|,
 * at the margins in c->q (and ball value b). */
static double ps_al_violation(const mf__pctx *c, double cb) {
    double v = 0.0;
    for (int k = 0; k <= c->n; k++) {
        double ck = k < c->n ? c->q[k] - 1.0 : cb;
        if (k == c->n && !c->center) break;
        double t = fabs(fmin(ck, c->lam[k] / c->rho_p));
        if (t > v) v = t;
    }
    return v;
}

/* The augmented Lagrangian method from x (overwritten with the last
 * iterate). */
static void ps_auglag(mf__pctx *c, double *x, int *evals) {
    const size_t P = c->P;
    double f = 0.5 * mf__norm2(x, P) * mf__norm2(x, P);
    if (!(f > 0) || !isfinite(f)) return;
    c->f0 = f;
    c->rho_p = PS_AL_RHO0;
    memset(c->lam, 0, sizeof(double) * ((size_t)c->n + 1));
    double vprev = INFINITY, fprev = INFINITY;
    const int budget_end = *evals + PS_AL_BUDGET;
    for (int outer = 0; outer < PS_AL_OUTER && *evals < budget_end && !c->stopped; outer++) {
        nlopt_opt opt = nlopt_create(NLOPT_LD_LBFGS, (unsigned)P);
        if (!opt) return;
        memcpy(c->bak, x, P * sizeof *x);
        c->opt = opt;
        c->bad = 0;
        int left = budget_end - *evals;
        double val = 0.0;
        if (nlopt_set_min_objective(opt, ps_al_value, c) >= 0 &&
            nlopt_set_vector_storage(opt, PS_LBFGS_M) >= 0 &&
            nlopt_set_maxeval(opt, left < PS_AL_INNER ? left : PS_AL_INNER) >= 0 &&
            nlopt_set_ftol_rel(opt, 1e-12) >= 0 && nlopt_set_xtol_rel(opt, 1e-12) >= 0)
            (void)nlopt_optimize(opt, x, &val);
        *evals += nlopt_get_numevals(opt);
        c->opt = NULL;
        nlopt_destroy(opt);
        int finite = !c->bad;
        for (size_t i = 0; i < P && finite; i++) finite = isfinite(x[i]);
        if (!finite) { /* keep the last good iterate */
            memcpy(x, c->bak, P * sizeof *x);
            return;
        }
        /* multiplier update at the subproblem's solution */
        mf__p_margins(c, x);
        double cb = 0.0;
        if (c->center) {
            double b2 = 0.0;
            for (size_t i = 0; i < P; i++) b2 += (x[i] - c->center[i]) * (x[i] - c->center[i]);
            cb = 1.0 - b2 / (c->rho * c->rho);
        }
        double v = ps_al_violation(c, cb);
        for (int k = 0; k <= c->n; k++) {
            if (k == c->n && !c->center) break;
            double ck = k < c->n ? c->q[k] - 1.0 : cb;
            c->lam[k] = fmax(0.0, c->lam[k] - c->rho_p * ck);
        }
        double fn = 0.5 * mf__norm2(x, P) * mf__norm2(x, P) / c->f0;
        if (v < PS_AL_VTOL && fabs(fn - fprev) <= PS_AL_FTOL * fn) break;
        if (v > 0.5 * vprev && c->rho_p < PS_AL_RHO_MAX) c->rho_p *= 10.0;
        vprev = v;
        fprev = fn;
    }
}

/* ====================================================================== */
/* The solver                                                             */
/* ====================================================================== */

/* Contract in analysis_internal.h. */
double mf__p_solve(mf__pctx *c, double *x, const double *center, double rho, int use_slsqp,
                   int *evals) {
    const size_t P = c->P;
    c->center = center;
    c->rho = rho;
    c->stopped = 0;
    if (use_slsqp) ps_slsqp(c, x, evals);
    else ps_auglag(c, x, evals);
    c->center = NULL;
    for (size_t i = 0; i < P; i++)
        if (!isfinite(x[i])) return NAN;
    double qmin = mf__p_margins(c, x);
    if (!(qmin > 0.0)) return NAN;
    mf__p_rescale(c, x, qmin);
    qmin = mf__p_margins(c, x);
    if (!(qmin >= 1.0 - MF__P_FEAS_TOL)) return NAN;
    if (center && mf__norm2(center, P) > 0) { /* still in the ball after the rescaling? */
        double d = 0.0;
        for (size_t i = 0; i < P; i++) d += (x[i] - center[i]) * (x[i] - center[i]);
        if (!(sqrt(d) <= rho * (1.0 + MF__P_BALL_SLACK))) return NAN;
    }
    double g = mf__p_gamma(c, x);
    return isfinite(g) ? g : NAN;
}

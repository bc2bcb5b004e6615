/*
 * train.c -- the training loop: constant-step GD, loss-scaled GD, the Lyu-Li
 * loss-based schedule with rollback, gradient flow (the integrator is in
 * flow.c), and mini-batch SGD; the discretization indicators every run
 * records (smoothed-margin decrease, loss increase, Lyu-Li beta, margin
 * change over the last decade of log t) and the stopping criteria.
 *
 * Everything is driven by G(theta) = grad Loss / Loss, which mf_loss_eval and
 * mf_model_backward give exactly at any loss level (docs/theory.md section 2).
 * The real gradient-flow time t (dtheta/dt = -grad Loss) is kept as log t,
 * because t ~ 1/Loss runs past the largest double long before training ends.
 *
 * The step loop never allocates: all buffers are made once in trainer_init.
 * Evaluations write into one of two buffer sets (current / candidate) and an
 * accepted step swaps them, so a rejected or non-finite step rolls back
 * without recomputation.
 */
#include "internal.h"


#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ----------------------------------------------------------- settings */

void mf_train_settings_default(mf_train_settings *s) {
    memset(s, 0, sizeof *s);
    s->loss = MF_LOSS_EXP;
    s->optimizer = MF_OPT_FLOW;
    s->lr = 0.1;
    s->tol = 1e-6;
    s->lr_up = pow(2.0, 1.0 / 5.0);
    s->lr_down = pow(2.0, 1.0 / 10.0);
    s->max_rel_step = 0.1;
    s->batch = 32;
    s->max_steps = 10000;
    s->until_log10_loss = NAN;
    s->until_margin_gap = NAN;
    s->until_time = NAN;
    s->wall_seconds = NAN;
    s->log_points = 200;
    s->checkpoint_every = 0;
    s->seed = 1;
    mf__epoch_settings_default(s); /* the epoch-run fields (src/epoch.c) */
}

const char *mf_train_settings_validate(const mf_train_settings *s) {
    if (s->loss < MF_LOSS_EXP || s->loss > MF_LOSS_CE) return "loss: must be exp, logistic or ce";
    if (s->optimizer < MF_OPT_GD || s->optimizer > MF_OPT_SGD_LYU_LI)
        return "optimizer: must be gd, scaled, lyu-li, flow, sgd or sgd-lyu-li";
    if (!(s->lr > 0) || !isfinite(s->lr)) return "lr: must be a finite number > 0";
    if (!(s->tol > 0) || !(s->tol < 1)) return "tol: must be in (0, 1)";
    if (!(s->lr_up > 1) || !isfinite(s->lr_up)) return "lr_up: must be a finite number > 1";
    if (!(s->lr_down > 1) || !isfinite(s->lr_down)) return "lr_down: must be a finite number > 1";
    if (!(s->max_rel_step >= 0) || !isfinite(s->max_rel_step))
        return "max_rel_step: must be a finite number >= 0 (0 = off)";
    if (s->batch < 1) return "batch: must be >= 1";
    if (s->max_steps < 0) return "max_steps: must be >= 0 (0 = unlimited)";
    if (!isnan(s->until_log10_loss) && !isfinite(s->until_log10_loss))
        return "until_log10_loss: must be a finite number (or unset)";
    if (s->until_log10_loss > 0 && s->until_log10_loss < 1)
        return "until_log10_loss: is log10 of the loss, so a value in (0, 1) asks for a loss "
               "of about 1; for Loss <= 1e-300 give -300";
    if (!isnan(s->until_margin_gap) && !(s->until_margin_gap > 0 && s->until_margin_gap < 1))
        return "until_margin_gap: must be a number in (0, 1) (or unset)";
    if (!isnan(s->until_time) && !(s->until_time > 0 && isfinite(s->until_time)))
        return "until_time: must be a finite number > 0 (or unset)";
    if (!isnan(s->wall_seconds) && !(s->wall_seconds > 0 && isfinite(s->wall_seconds)))
        return "wall_seconds: must be a finite number > 0 (or unset)";
    if (s->log_points < 0) return "log_points: must be >= 0";
    if (s->log_horizon < 0) return "log_horizon: must be >= 0 (0 = max_steps)";
    if (s->checkpoint_every < 0) return "checkpoint_every: must be >= 0 (0 = off)";
    const char *why_epoch = mf__epoch_settings_validate(s);
    if (why_epoch) return why_epoch;
    if (s->max_steps == 0 && isnan(s->until_log10_loss) && isnan(s->until_time) &&
        isnan(s->wall_seconds) && isnan(s->until_margin_gap) && s->max_epochs == 0)
        return "max_steps: 0 (unlimited) needs another stopping criterion "
               "(until_log10_loss, until_margin_gap, until_time, wall_seconds or max_epochs)";
    return NULL;
}

const char *mf_outcome_name(mf_outcome o) {
    switch (o) {
    case MF_OUT_RUNNING: return "running";
    case MF_OUT_LOSS_TARGET: return "loss-target";
    case MF_OUT_STEP_BUDGET: return "step-budget";
    case MF_OUT_TIME_TARGET: return "time-target";
    case MF_OUT_WALL_BUDGET: return "wall-budget";
    case MF_OUT_NONFINITE: return "non-finite";
    case MF_OUT_STALLED: return "stalled";
    case MF_OUT_INTERRUPTED: return "interrupted";
    case MF_OUT_MARGIN_GAP: return "margin-gap";
    }
    return "?";
}

const char *mf_optimizer_name(mf_optimizer_kind k) {
    switch (k) {
    case MF_OPT_GD: return "gd";
    case MF_OPT_SCALED: return "scaled";
    case MF_OPT_LYU_LI: return "lyu-li";
    case MF_OPT_FLOW: return "flow";
    case MF_OPT_SGD: return "sgd";
    case MF_OPT_SGD_LYU_LI: return "sgd-lyu-li";
    }
    return "?";
}

int mf_optimizer_from_name(const char *s, mf_optimizer_kind *k) {
    for (int i = MF_OPT_GD; i <= MF_OPT_SGD_LYU_LI; i++)
        if (strcmp(s, mf_optimizer_name((mf_optimizer_kind)i)) == 0) {
            *k = (mf_optimizer_kind)i;
            return MF_OK;
        }
    return MF_ERR_INVALID;
}

/* Log-spaced schedule: step 0 and every round(10^(i/k)), i = 0, 1, ...,
 * with k points per decade (see marginflow.h). */
static double points_per_decade(const mf_train_settings *s) {
    long long h = s->log_horizon > 0 ? s->log_horizon : s->max_steps;
    double decades = h > 1 ? log10((double)h) : 6.0;
    return s->log_points / decades;
}

int mf_is_log_step(const mf_train_settings *s, long long step) {
    if (step == 0) return 1;
    if (s->log_points <= 0 || step < 0) return 0;
    double k = points_per_decade(s);
    long long i0 = (long long)floor(k * log10((double)step));
    for (long long i = i0 - 1; i <= i0 + 1; i++) {
        if (i < 0) continue;
        if (llround(pow(10.0, (double)i / k)) == step) return 1;
    }
    return 0;
}

/* A lower bound on the first log step after step (>= 1), so the step loop
 * calls mf_is_log_step (three pow() calls) only at the log steps instead of
 * at every step. Every log step is v_i = round(10^(i/k)) for some i >= 0 and
 * v_i does not decrease with i, so scanning i upwards from an index with
 * v_i <= step, the first v_i > step that mf_is_log_step accepts is the next
 * log step. The scan is cut after 64 indices (many points per decade at small
 * steps), and step + 1 is returned then: always a safe lower bound. */
static long long next_log_step(const mf_train_settings *s, long long step) {
    if (s->log_points <= 0) return LLONG_MAX;
    double k = points_per_decade(s);
    long long i = (long long)floor(k * log10((double)step + 1.0)) - 2;
    if (i < 0) i = 0;
    while (i > 0 && llround(pow(10.0, (double)i / k)) > step) i--;
    for (int tries = 0; tries < 64; tries++, i++) {
        long long v = llround(pow(10.0, (double)i / k));
        if (v > step && mf_is_log_step(s, v)) return v;
    }
    return step + 1;
}

/* ---------------------------------------------------------- trainer */

typedef struct {
    const mf_model *m;
    const mf_data *data;
    const mf_train_settings *s;
    const mf_callbacks *cb;
    mf_work *w;
    mf__evalset cur, cand;
    mf__flow *flow;     /* flow: the integrator */
    double *theta_prev; /* [P] */
    double time_prev;   /* sgd: time_log of the state in theta_prev */
    long long prev_step;/* sgd: step of the state in theta_prev, -1 if none */
    int *perm;          /* [n] sgd order */
    double *xb;         /* [batch][d] sgd batch */
    int batch;          /* sgd: samples per step, min(settings.batch, n) */
    long long per_epoch;/* sgd: steps per epoch, ceil(n / batch) */
    double log_n;
    double t0;
    long long steps_at_start;
    /* indicators: the last full-data state they were updated at */
    double ind_log_loss, ind_smoothed;
    int ind_valid;
    int warned;         /* the one warning line of this call was printed */
    double gamma_now, mchange_now; /* normalized margin and margin_change at the state */
    mf_metrics last;
    long long last_emitted;
    const char *reason; /* why the run stalled (static text), or NULL */
} trainer;

static void trainer_free(trainer *t) {
    mf_work_free(t->w);
    mf__evalset *sets[2] = {&t->cur, &t->cand};
    for (int i = 0; i < 2; i++) {
        mf__free(sets[i]->out);
        mf__free(sets[i]->gout);
        mf__free(sets[i]->grad);
    }
    mf__flow_free(t->flow);
    mf__free(t->theta_prev);
    mf__free(t->perm);
    mf__free(t->xb);
}

static int trainer_init(trainer *t, mf_err *e) {
    size_t P = t->m->n_params, no = (size_t)t->data->n * t->m->n_out;
    int rc = mf_work_new(t->m, t->data->n, &t->w, e);
    if (rc) return rc;
    mf__evalset *sets[2] = {&t->cur, &t->cand};
    for (int i = 0; i < 2; i++) {
        sets[i]->out = mf__calloc(no, sizeof(double));
        sets[i]->gout = mf__calloc(no, sizeof(double));
        sets[i]->grad = mf__calloc(P, sizeof(double));
        if (!sets[i]->out || !sets[i]->gout || !sets[i]->grad) goto nomem;
    }
    t->theta_prev = mf__calloc(P, sizeof(double));
    if (!t->theta_prev) goto nomem;
    if (t->s->optimizer == MF_OPT_FLOW) {
        rc = mf__flow_new(t->m, t->data, t->s->loss, &t->flow, e);
        if (rc) return rc;
    }
    if (t->s->optimizer == MF_OPT_SGD) {
        t->batch = t->s->batch < t->data->n ? t->s->batch : t->data->n;
        t->per_epoch = (t->data->n + t->batch - 1) / t->batch;
        t->perm = mf__calloc((size_t)t->data->n, sizeof(int));
        t->xb = mf__calloc((size_t)t->batch * t->data->d, sizeof(double));
        if (!t->perm || !t->xb) goto nomem;
    }
    return MF_OK;
nomem:
    return mf__err(e, MF_ERR_NOMEM, "out of memory allocating training buffers (%zu parameters)", P);
}

/* 1 if every v[i] is finite. v[i] * 0 is +-0 for a finite v[i] and NaN for
 * an infinite or NaN one; 8 independent sums keep the loop branch-free and
 * vectorizable (this runs on every gradient). */
int mf__all_finite(const double *v, size_t n) {
    double s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++) s[q] += v[i + q] * 0.0;
    for (; i < n; i++) s[0] += v[i] * 0.0;
    return (s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7]) == 0.0;
}

/* mf__evaluate -- contract in internal.h. with_grad = 0 skips the backward
 * pass (gout is still filled). */
int mf__evaluate(const mf_model *m, mf_work *w, const mf_data *data, mf_loss_kind loss,
                 const double *theta, mf__evalset *es, int with_grad) {
    if (with_grad) es->n_grad++;
    else es->n_fwd++;
    mf_model_forward(m, w, theta, data->x, data->n, es->out);
    if (mf_loss_eval(loss, data, NULL, data->n, es->out, m->n_out, &es->log_loss, es->gout,
                     NULL) != MF_OK)
        return 0;
    if (!isfinite(es->log_loss) && es->log_loss != -INFINITY) return 0;
    if (!with_grad) return 1;
    mf_model_backward(m, w, theta, data->x, data->n, es->gout, es->grad);
    return mf__all_finite(es->grad, m->n_params);
}

void mf__evalset_swap(mf__evalset *a, mf__evalset *b) {
    mf__evalset tmp = *a;
    *a = *b;
    *b = tmp;
}

/* Evaluate at theta on the full data into es (see mf__evaluate). */
static int evaluate(trainer *t, const double *theta, mf__evalset *es, int with_grad) {
    return mf__evaluate(t->m, t->w, t->data, t->s->loss, theta, es, with_grad);
}

static void swap_sets(trainer *t) { mf__evalset_swap(&t->cur, &t->cand); }

/* Most consecutive rejected attempts of one step (lyu-li, flow) before the
 * run stalls. Shrinking the step size from DBL_MAX to the smallest
 * subnormal takes about 10 * 2100 = 21000 rejections at lyu-li's default
 * r_d = 2^(1/10) and 6600 at flow's factor <= 0.9, so the budget is reached
 * only when no step size gives an acceptable step (with features near the
 * overflow edge a subnormal step size can stop shrinking while still
 * changing theta: without a budget the loop never ends). */
#define MAX_REJECTS_PER_STEP 100000

/* Why a run stalls (mf_train_result.reason; internal.h). */
const char *const mf__stall_no_change = "the step no longer changes theta";
const char *const mf__stall_lr = "the step size no longer shrinks (it underflowed)";
static const char *const STALL_REJECTS = "100000 attempts in a row were rejected";
#define STALL_NO_CHANGE mf__stall_no_change
#define STALL_LR mf__stall_lr

/* After a rejected attempt of a retry loop (the step size shrunk from
 * lr_before to lr; *tries counts the rejections of this step; t0 is
 * mf__now() at the start of mf_train): stop the loop whatever the
 * numerics do -- MF_OUT_STALLED (*reason set) when the step size did not
 * shrink or the budget of rejections is spent, MF_OUT_WALL_BUDGET when the
 * wall budget is spent, MF_OUT_INTERRUPTED when should_stop asks -- or
 * MF_OUT_RUNNING to try again. lyu-li here and flow (src/flow.c) use it. */
mf_outcome mf__retry_stop(const mf_train_settings *s, const mf_callbacks *cb, double t0,
                          double lr_before, double lr, long long *tries, const char **reason) {
    if (!(lr < lr_before)) {
        *reason = STALL_LR;
        return MF_OUT_STALLED;
    }
    if (++*tries >= MAX_REJECTS_PER_STEP) {
        *reason = STALL_REJECTS;
        return MF_OUT_STALLED;
    }
    if (!isnan(s->wall_seconds) && mf__now() - t0 >= s->wall_seconds)
        return MF_OUT_WALL_BUDGET;
    if (cb && cb->should_stop && cb->should_stop(cb->user)) return MF_OUT_INTERRUPTED;
    return MF_OUT_RUNNING;
}

static mf_outcome retry_stop(trainer *t, const mf_train_state *st, double lr_before,
                             long long *tries) {
    return mf__retry_stop(t->s, t->cb, t->t0, lr_before, st->lr, tries, &t->reason);
}

/* theta_new = base - a * G; returns whether any coordinate changed. */
static int axpy_changed(double *theta, const double *base, double a, const double *G, size_t P) {
    int changed = 0;
    for (size_t i = 0; i < P; i++) {
        double v = base[i] - a * G[i];
        changed |= v != base[i];
        theta[i] = v;
    }
    return changed;
}

/* Add dt = e^{log_dt} to t = e^{time_log}. */
static void add_time(mf_train_state *st, double log_dt) { st->time_log = mf__lse2(st->time_log, log_dt); }

/*
 * One step of gd / scaled:
 *   gd:     theta -= lr * grad Loss = (lr * Loss) * G;  flow time += lr
 *   scaled: theta -= lr * G  ([LL20] loss-based rate eta = lr / Loss);  time += lr / Loss
 * A non-finite result rolls back to the previous point and ends the run.
 */
static mf_outcome step_plain(trainer *t, mf_train_state *st) {
    size_t P = t->m->n_params;
    int gd = t->s->optimizer == MF_OPT_GD;
    double a = gd ? st->lr * exp(st->log_loss) : st->lr;
    memcpy(t->theta_prev, st->theta, P * sizeof(double));
    if (!axpy_changed(st->theta, t->theta_prev, a, t->cur.grad, P)) {
        t->reason = STALL_NO_CHANGE;
        return MF_OUT_STALLED;
    }
    if (!evaluate(t, st->theta, &t->cand, 1)) {
        memcpy(st->theta, t->theta_prev, P * sizeof(double));
        return MF_OUT_NONFINITE;
    }
    add_time(st, gd ? log(st->lr) : log(st->lr) - st->log_loss);
    swap_sets(t);
    st->log_loss = t->cur.log_loss;
    st->step++;
    return MF_OUT_RUNNING;
}

/*
 * One accepted step of the [LL20] loss-based schedule (their App. K/L):
 * theta' = theta - alpha G; if Loss(theta') < Loss(theta) (and everything is
 * finite) accept and alpha *= r_u, otherwise roll back, alpha /= r_d, retry.
 * Rejections are counted in st->rejected. Stalls when alpha is too small to
 * move theta.
 */
static mf_outcome step_lyu_li(trainer *t, mf_train_state *st) {
    size_t P = t->m->n_params;
    memcpy(t->theta_prev, st->theta, P * sizeof(double));
    double gn = mf__norm2(t->cur.grad, P), tn = mf_param_norm(t->m, st->theta);
    long long tries = 0;
    for (;;) {
        if (!axpy_changed(st->theta, t->theta_prev, st->lr, t->cur.grad, P)) {
            memcpy(st->theta, t->theta_prev, P * sizeof(double));
            t->reason = STALL_NO_CHANGE;
            return MF_OUT_STALLED;
        }
        /* Our safeguard (not in [LL20]): on a homogeneous net the loss keeps
         * falling along any step that mostly scales theta up, so alpha would
         * grow without bound and the norm explode (for L >= 3 in finitely many
         * steps). A step longer than max_rel_step ||theta|| is rejected like a
         * loss increase. */
        int too_long = t->s->max_rel_step > 0 && tn > 0 && st->lr * gn > t->s->max_rel_step * tn;
        if (!too_long && evaluate(t, st->theta, &t->cand, 1) && t->cand.log_loss < st->log_loss) {
            add_time(st, log(st->lr) - st->log_loss);
            st->lr *= t->s->lr_up;
            if (st->lr > DBL_MAX) st->lr = DBL_MAX; /* inf / lr_down would stay inf */
            swap_sets(t);
            st->log_loss = t->cur.log_loss;
            st->step++;
            return MF_OUT_RUNNING;
        }
        st->rejected++;
        double lr_before = st->lr;
        st->lr /= t->s->lr_down;
        mf_outcome stop = retry_stop(t, st, lr_before, &tries);
        if (stop != MF_OUT_RUNNING) {
            memcpy(st->theta, t->theta_prev, P * sizeof(double));
            return stop;
        }
    }
}

/* SGD found a non-finite value at the current state (checked only on a batch,
 * or on the full data at log/checkpoint/epoch steps): undo the step that
 * produced it when theta_prev still holds its predecessor, so the run ends at
 * the last state whose loss was finite. */
static mf_outcome sgd_undo(trainer *t, mf_train_state *st) {
    if (t->prev_step >= 0 && t->prev_step == st->step - 1) {
        memcpy(st->theta, t->theta_prev, t->m->n_params * sizeof(double));
        st->time_log = t->time_prev;
        st->step--;
        t->prev_step = -1;
    }
    return MF_OUT_NONFINITE;
}

/*
 * One step of mini-batch SGD on the batch MEAN loss (PyTorch's convention):
 *   theta -= lr * grad (1/B) sum_{n in batch} ell(q_n)
 *          = lr * (Loss_batch / B) * G_batch.
 * Since E[grad of the batch mean] = grad Loss / N, the flow time advances by
 * lr / N. Epoch e visits the samples in a permutation drawn from an RNG seeded
 * by (seed, e), so a resumed run sees the same batches. The full-data loss
 * (for stopping and metrics) is refreshed at the end of each epoch and
 * whenever metrics, checkpoints or the end need it (see mf_train).
 */
static mf_outcome step_sgd(trainer *t, mf_train_state *st) {
    const mf_data *D = t->data;
    const mf_model *m = t->m;
    size_t P = m->n_params;
    int B = t->batch;
    long long epoch = st->step / t->per_epoch, pos = st->step % t->per_epoch;
    if (pos == 0 || st->step == t->steps_at_start) {
        mf_rng r;
        mf_rng_seed(&r, t->s->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)epoch);
        for (int i = 0; i < D->n; i++) t->perm[i] = i;
        for (int i = D->n - 1; i > 0; i--) {
            int j = (int)(mf_rng_next(&r) % (uint64_t)(i + 1));
            int tmp = t->perm[i];
            t->perm[i] = t->perm[j];
            t->perm[j] = tmp;
        }
    }
    int start = (int)(pos * B), nb = D->n - start < B ? D->n - start : B;
    const int *idx = t->perm + start;
    for (int i = 0; i < nb; i++)
        memcpy(t->xb + (size_t)i * D->d, D->x + (size_t)idx[i] * D->d, sizeof(double) * D->d);
    double lb;
    mf_model_forward(m, t->w, st->theta, t->xb, nb, t->cand.out);
    if (mf_loss_eval(t->s->loss, D, idx, nb, t->cand.out, m->n_out, &lb, t->cand.gout, NULL) ||
        !(lb < INFINITY))
        return sgd_undo(t, st);
    mf_model_backward(m, t->w, st->theta, t->xb, nb, t->cand.gout, t->cand.grad);
    if (!mf__all_finite(t->cand.grad, P)) return sgd_undo(t, st);
    memcpy(t->theta_prev, st->theta, P * sizeof(double));
    t->time_prev = st->time_log;
    t->prev_step = -1;
    double a = st->lr * exp(lb - log((double)nb));
    if (!axpy_changed(st->theta, t->theta_prev, a, t->cand.grad, P)) {
        t->reason = STALL_NO_CHANGE;
        return MF_OUT_STALLED;
    }
    if (!mf__all_finite(st->theta, P)) { /* the step itself overflowed: never accept it */
        memcpy(st->theta, t->theta_prev, P * sizeof(double));
        return MF_OUT_NONFINITE;
    }
    add_time(st, log(st->lr) - t->log_n);
    st->step++;
    t->prev_step = st->step - 1;
    return MF_OUT_RUNNING;
}

/* ------------------------------------------------------- indicators */

static void logf_cb(const mf_callbacks *cb, int level, const char *msg) {
    if (cb && cb->log) cb->log(cb->user, level, msg);
}

/* Normalized margin q_min / ||theta||^L of the state (outputs in t->cur);
 * NAN where the data is not separated or theta = 0. */
static double state_gamma(const trainer *t, const mf_train_state *st) {
    double qmin = mf_margins(t->data, t->cur.out, t->m->n_out, NULL);
    double nl = pow(mf_param_norm(t->m, st->theta), t->m->degree);
    return qmin > 0 && nl > 0 && isfinite(qmin / nl) ? qmin / nl : NAN;
}

/* Record (log t, gamma) in the margin history when log t has reached the
 * next grid point 10^(k/16), k = hist_next_k (the first at log t = 1). */
static void record_margin(mf_train_state *st, double gamma) {
    if (!(st->time_log >= 1) || isnan(gamma) || !isfinite(st->time_log)) return;
    if (st->time_log < pow(10.0, (double)st->hist_next_k / 16.0)) return;
    int at = (st->hist_start + st->hist_n) % MF_MARGIN_HIST;
    if (st->hist_n == MF_MARGIN_HIST) st->hist_start = (st->hist_start + 1) % MF_MARGIN_HIST;
    else st->hist_n++;
    st->hist_logt[at] = st->time_log;
    st->hist_gamma[at] = gamma;
    st->hist_next_k = (long long)floor(16.0 * log10(st->time_log)) + 1;
}

/* margin_change (marginflow.h) at the state with normalized margin gamma:
 * gamma at log t' = (log t) / 10 by linear interpolation in log log t
 * between the history samples and the state itself; NAN until the history
 * reaches back to log t' (which needs log t >= 10). */
static double margin_change(const mf_train_state *st, double gamma) {
    if (isnan(gamma) || !(st->time_log >= 10) || st->hist_n == 0 || !isfinite(st->time_log))
        return NAN;
    double target = st->time_log / 10;
    double lx = log(target);
    double pl = NAN, pg = NAN; /* previous node */
    for (int i = 0; i <= st->hist_n; i++) {
        double l, g;
        if (i < st->hist_n) {
            int k = (st->hist_start + i) % MF_MARGIN_HIST;
            l = st->hist_logt[k];
            g = st->hist_gamma[k];
        } else {
            l = st->time_log;
            g = gamma;
        }
        if (l >= target) {
            if (isnan(pl)) return l == target ? fabs(gamma - g) / gamma : NAN;
            double a = log(pl), b = log(l), u = b > a ? (lx - a) / (b - a) : 1.0;
            double gi = pg + u * (g - pg);
            return fabs(gamma - gi) / gamma;
        }
        pl = l;
        pg = g;
    }
    return NAN;
}

/* One warning line per mf_train call, the first time an indicator shows
 * what gradient flow never does: a smoothed-margin decrease beyond 1e-9
 * relative once Loss < ell(0), or a loss rise by more than 10x in one step. */
static void maybe_warn(trainer *t, const mf_train_state *st) {
    if (t->warned) return;
    const char *opt = mf_optimizer_name(t->s->optimizer);
    const char *fix = t->s->optimizer == MF_OPT_FLOW
                          ? "lower --tol"
                          : "see beta, smoothed_decrease and loss_increase in metrics.csv; "
                            "--optimizer flow follows the flow to --tol";
    char msg[512];
    if (st->smoothed_decrease > 1e-9) {
        snprintf(msg, sizeof msg,
                 "%s: the smoothed margin decreased by %.2g (relative) in step %lld with Loss < "
                 "ell(0), which gradient flow never does ([LL20] Thm 4.1): this run's margins "
                 "carry discretization error (%s)",
                 opt, st->smoothed_decrease, st->smoothed_decrease_step, fix);
    } else if (st->loss_increase > 1) {
        snprintf(msg, sizeof msg,
                 "%s: the loss rose by a factor of 10^%.3g in step %lld, which gradient flow "
                 "never does: this run's margins carry discretization error (%s)",
                 opt, st->loss_increase, st->loss_increase_step, fix);
    } else {
        return;
    }
    t->warned = 1;
    logf_cb(t->cb, MF_LOG_WARN, msg);
}

/* Update the indicators and the margin history at the full-data state in
 * t->cur (after an accepted step; sgd: after a full-data evaluation). The
 * pair compared is this state and the last one this was called at. */
static void update_indicators(trainer *t, mf_train_state *st) {
    double norm = mf_param_norm(t->m, st->theta);
    double sm = mf_smoothed_margin(t->s->loss, st->log_loss, norm, t->m->degree);
    double ell0 = mf_loss_log_ell0(t->s->loss);
    if (t->ind_valid && isfinite(st->log_loss)) {
        double rise = (st->log_loss - t->ind_log_loss) / log(10.0);
        if (rise > st->loss_increase) {
            st->loss_increase = rise;
            st->loss_increase_step = st->step;
        }
        if (st->log_loss < ell0 && t->ind_log_loss < ell0 && sm < t->ind_smoothed) {
            double d = (t->ind_smoothed - sm) / fabs(t->ind_smoothed);
            if (d > st->smoothed_decrease) {
                st->smoothed_decrease = d;
                st->smoothed_decrease_step = st->step;
            }
        }
    }
    t->ind_log_loss = st->log_loss;
    t->ind_smoothed = sm;
    t->ind_valid = isfinite(st->log_loss) && isfinite(sm);
    t->gamma_now = state_gamma(t, st);
    record_margin(st, t->gamma_now);
    t->mchange_now = margin_change(st, t->gamma_now);
    maybe_warn(t, st);
}

/* Metrics at the current state (t->cur.out must be the outputs at theta,
 * t->cur.grad G there when has_grad). */
static int current_metrics(trainer *t, const mf_train_state *st, mf_metrics *mt, int has_grad,
                           mf_err *e) {
    int rc = mf_metrics_eval(t->m, t->w, t->data, t->s->loss, st->theta, t->cur.out, mt, e);
    mt->step = st->step;
    mt->time_log = st->time_log;
    mt->lr = st->lr;
    mt->beta = NAN;
    if (has_grad) {
        size_t P = t->m->n_params;
        double dot = 0;
        for (size_t i = 0; i < P; i++) dot -= st->theta[i] * t->cur.grad[i];
        double den = mf__norm2(st->theta, P) * mf__norm2(t->cur.grad, P);
        if (den > 0 && isfinite(den)) mt->beta = dot / den;
    }
    mt->smoothed_decrease = st->smoothed_decrease;
    mt->loss_increase = st->loss_increase;
    mt->margin_change = t->mchange_now;
    return rc;
}

static int emit(trainer *t, const mf_train_state *st, int has_grad, mf_err *e) {
    int rc = current_metrics(t, st, &t->last, has_grad, e);
    if (rc) return rc;
    t->last_emitted = st->step;
    if (t->cb && t->cb->on_metrics && t->cb->on_metrics(t->cb->user, &t->last))
        return mf__err(e, MF_ERR_CALLBACK, "the metrics callback failed at step %lld", st->step);
    if (t->cb && t->cb->on_snapshot && t->cb->on_snapshot(t->cb->user, &t->last, st->theta))
        return mf__err(e, MF_ERR_CALLBACK, "the snapshot callback failed at step %lld", st->step);
    return MF_OK;
}

static mf_outcome check_stop(trainer *t, const mf_train_state *st) {
    const mf_train_settings *s = t->s;
    if (!isnan(s->until_log10_loss) && st->log_loss / log(10.0) <= s->until_log10_loss)
        return MF_OUT_LOSS_TARGET;
    if (!isnan(s->until_margin_gap) && t->mchange_now <= s->until_margin_gap)
        return MF_OUT_MARGIN_GAP;
    if (!isnan(s->until_time) && st->time_log >= log(s->until_time)) return MF_OUT_TIME_TARGET;
    if (s->max_steps > 0 && st->step >= s->max_steps) return MF_OUT_STEP_BUDGET;
    if (!isnan(s->wall_seconds) && mf__now() - t->t0 >= s->wall_seconds)
        return MF_OUT_WALL_BUDGET;
    if (t->cb && t->cb->should_stop && t->cb->should_stop(t->cb->user)) return MF_OUT_INTERRUPTED;
    return MF_OUT_RUNNING;
}

/*
 * mf_train -- contract in marginflow.h.
 * Loop: [stop checks] -> one step -> [indicators] -> [metrics at log steps]
 * -> [checkpoint] -> [progress]. The state at entry is evaluated first, and
 * its row emitted if its step is a log step, so a resumed run re-emits
 * exactly the row the interrupted run emitted at the checkpoint step.
 */
int mf_train(const mf_model *m, const mf_data *data, const mf_train_settings *s,
             mf_train_state *st, const mf_callbacks *cb, mf_train_result *result, mf_err *e) {
    memset(result, 0, sizeof *result);
    const char *why = mf_train_settings_validate(s);
    if (why) return mf__err(e, MF_ERR_INVALID, "invalid training settings: %s", why);
    if (data->d != m->d)
        return mf__err(e, MF_ERR_DIM, "data has dimension %d but the model %s expects %d", data->d,
                       m->spec, m->d);
    if ((data->num_classes == 0 ? 1 : data->num_classes) != m->n_out)
        return mf__err(e, MF_ERR_DIM, "data has %d classes but the model %s has %d outputs",
                       data->num_classes == 0 ? 2 : data->num_classes, m->spec, m->n_out);
    if (st->n_params != m->n_params)
        return mf__err(e, MF_ERR_DIM, "state has %zu parameters but the model %s has %zu",
                       st->n_params, m->spec, m->n_params);
    if (data->n < 1) return mf__err(e, MF_ERR_INVALID, "the data set is empty");
    if (!mf__all_finite(st->theta, m->n_params))
        return mf__err(e, MF_ERR_INVALID, "the initial parameters contain NaN or Inf");
    const char *bad = mf_train_state_validate(st); /* a state built by hand, not read */
    if (bad) return mf__err(e, MF_ERR_INVALID, "invalid training state: %s", bad);
    if (mf_train_is_epoch_run(s)) return mf__train_epochs(m, data, s, st, cb, result, e);

    trainer t;
    memset(&t, 0, sizeof t);
    t.m = m;
    t.data = data;
    t.s = s;
    t.cb = cb;
    t.log_n = log((double)data->n);
    t.last_emitted = -1;
    t.steps_at_start = st->step;
    t.prev_step = -1;
    t.gamma_now = t.mchange_now = NAN;
    int rc = trainer_init(&t, e);
    if (rc) {
        trainer_free(&t);
        return rc;
    }
    if (st->lr == 0) st->lr = s->lr; /* a fresh state (mf_train_state_new) */
    /* a resumed run that already showed its warning does not repeat it */
    t.warned = st->smoothed_decrease > 1e-9 || st->loss_increase > 1;

    double progress_every = cb && cb->progress_seconds > 0 ? cb->progress_seconds : 0.5;
    t.t0 = mf__now();
    double next_progress = t.t0 + progress_every;
    long long steps_done = 0;
    double t0_loop = t.t0;
    long long next_log = st->step + 1; /* first step the loop checks for a log row */
    mf_outcome out = MF_OUT_RUNNING;

    if (!evaluate(&t, st->theta, &t.cur, 1)) {
        logf_cb(cb, MF_LOG_ERROR, "non-finite loss or gradient at the initial parameters");
        out = MF_OUT_NONFINITE;
        st->log_loss = t.cur.log_loss;
    } else {
        st->log_loss = t.cur.log_loss;
        t.ind_log_loss = st->log_loss;
        t.ind_smoothed = mf_smoothed_margin(s->loss, st->log_loss, mf_param_norm(m, st->theta),
                                            m->degree);
        t.ind_valid = isfinite(t.ind_smoothed);
        t.gamma_now = state_gamma(&t, st);
        t.mchange_now = margin_change(st, t.gamma_now);
        if (mf_is_log_step(s, st->step) && (rc = emit(&t, st, 1, e))) goto done;
    }
    t0_loop = mf__now(); /* steps_per_second: the step loop only, not the setup */

    while (out == MF_OUT_RUNNING) {
        out = check_stop(&t, st);
        if (out != MF_OUT_RUNNING) break;
        switch (s->optimizer) {
        case MF_OPT_GD:
        case MF_OPT_SCALED: out = step_plain(&t, st); break;
        case MF_OPT_LYU_LI: out = step_lyu_li(&t, st); break;
        case MF_OPT_FLOW:
            out = mf__flow_step(t.flow, s, t.w, st, &t.cur, &t.cand, cb, t.t0, &t.reason);
            break;
        case MF_OPT_SGD: out = step_sgd(&t, st); break;
        case MF_OPT_SGD_LYU_LI: out = MF_OUT_STALLED; break; /* epoch runs: mf__train_epochs */
        }
        if (out == MF_OUT_NONFINITE) {
            char msg[160];
            snprintf(msg, sizeof msg, "non-finite loss or gradient in step %lld; stopped at the "
                     "last good state (step %lld)", st->step + 1, st->step);
            logf_cb(cb, MF_LOG_ERROR, msg);
        }
        if (out != MF_OUT_RUNNING) break;
        steps_done++;
        int log_now = 0;
        if (st->step >= next_log) { /* only then can st->step be a log step */
            log_now = mf_is_log_step(s, st->step);
            next_log = next_log_step(s, st->step);
        }
        int ckpt_now = s->checkpoint_every > 0 && st->step % s->checkpoint_every == 0;
        int has_grad = 1;
        if (s->optimizer == MF_OPT_SGD) {
            has_grad = log_now;
            if (log_now || ckpt_now || st->step % t.per_epoch == 0) {
                if (!evaluate(&t, st->theta, &t.cur, log_now)) {
                    out = sgd_undo(&t, st); /* back to the state before this step */
                    char msg[160];
                    snprintf(msg, sizeof msg, "non-finite loss at step %lld; stopped at the last "
                             "good state (step %lld)", st->step + 1, st->step);
                    logf_cb(cb, MF_LOG_ERROR, msg);
                    break;
                }
                st->log_loss = t.cur.log_loss;
                update_indicators(&t, st);
            }
        } else {
            update_indicators(&t, st);
        }
        if (log_now && (rc = emit(&t, st, has_grad, e))) goto done;
        if (ckpt_now && cb && cb->on_checkpoint && cb->on_checkpoint(cb->user, st)) {
            rc = mf__err(e, MF_ERR_CALLBACK, "the checkpoint callback failed at step %lld", st->step);
            goto done;
        }
        if (cb && cb->on_progress) {
            double now = mf__now();
            if (now >= next_progress) {
                mf_metrics pm;
                if (current_metrics(&t, st, &pm, 0, NULL) == MF_OK)
                    cb->on_progress(cb->user, &pm, steps_done / (now - t.t0));
                next_progress = now + progress_every;
            }
        }
    }
    if (s->optimizer == MF_OPT_SGD) { /* the full-data loss at the final theta */
        if (evaluate(&t, st->theta, &t.cur, 1)) {
            st->log_loss = t.cur.log_loss;
            update_indicators(&t, st);
        } else {
            st->log_loss = t.cur.log_loss;
        }
    }
    if (t.last_emitted != st->step) {
        if (out == MF_OUT_NONFINITE && !isfinite(t.cur.log_loss)) {
            /* nothing finite to report at this state: every metric absent */
            memset(&t.last, 0, sizeof t.last);
            t.last.log10_loss = t.last.norm = t.last.q_min = t.last.normalized_margin = NAN;
            t.last.smoothed_margin = t.last.layer_margin = t.last.train_error = NAN;
            t.last.balancedness = NAN;
            t.last.step = st->step;
            t.last.time_log = st->time_log;
            t.last.lr = st->lr;
            t.last.beta = t.last.margin_change = NAN;
            t.last.smoothed_decrease = st->smoothed_decrease;
            t.last.loss_increase = st->loss_increase;
        } else if ((rc = emit(&t, st, 1, e))) {
            goto done;
        }
    }
    rc = MF_OK;
done:
    result->outcome = out == MF_OUT_RUNNING ? MF_OUT_INTERRUPTED : out;
    result->reason = out == MF_OUT_STALLED ? t.reason : NULL;
    result->final = t.last;
    result->steps = st->step;
    result->rejected = st->rejected;
    result->smoothed_decrease_step = st->smoothed_decrease_step;
    result->loss_increase_step = st->loss_increase_step;
    result->stiff_steps = st->flow_stiff_steps;
    result->gradient_evals = t.cur.n_grad + t.cand.n_grad;
    result->forward_evals = t.cur.n_fwd + t.cand.n_fwd;
    if (t.flow) {
        long long fw = 0, tg = 0;
        mf__flow_counts(t.flow, &fw, &tg);
        result->forward_evals += fw;
        result->term_gradients = tg;
    }
    result->wall_seconds = mf__now() - t.t0;
    {
        double loop_seconds = mf__now() - t0_loop;
        result->steps_per_second = loop_seconds > 0 ? steps_done / loop_seconds : 0;
    }
    trainer_free(&t);
    return rc;
}

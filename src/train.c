/*
 * train.c -- the training loop: constant-step GD, loss-scaled GD, the Lyu-Li
 * loss-based schedule with rollback, gradient flow by an adaptive embedded
 * Runge-Kutta method in rescaled time, and mini-batch SGD.
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
#include <time.h>

/* ----------------------------------------------------------- settings */

void mf_train_settings_default(mf_train_settings *s) {
    memset(s, 0, sizeof *s);
    s->loss = MF_LOSS_EXP;
    s->optimizer = MF_OPT_LYU_LI;
    s->lr = 0.1;
    s->tol = 1e-6;
    s->lr_up = pow(2.0, 1.0 / 5.0);
    s->lr_down = pow(2.0, 1.0 / 10.0);
    s->max_rel_step = 0.1;
    s->batch = 32;
    s->max_steps = 10000;
    s->until_log10_loss = NAN;
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
        isnan(s->wall_seconds) && s->max_epochs == 0)
        return "max_steps: 0 (unlimited) needs another stopping criterion "
               "(until_log10_loss, until_time, wall_seconds or max_epochs)";
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
    double *out;   /* [n][n_out] outputs on the full data */
    double *gout;  /* [n][n_out] dLoss/dout / Loss */
    double *grad;  /* [P] G = grad Loss / Loss */
    double log_loss;
} evalset;

typedef struct {
    const mf_model *m;
    const mf_data *data;
    const mf_train_settings *s;
    const mf_callbacks *cb;
    mf_work *w;
    evalset cur, cand;
    double *theta_prev; /* [P] */
    double time_prev;   /* sgd: time_log of the state in theta_prev */
    long long prev_step;/* sgd: step of the state in theta_prev, -1 if none */
    double *k2, *k3;    /* [P] flow stages */
    int *perm;          /* [n] sgd order */
    double *xb;         /* [batch][d] sgd batch */
    int batch;          /* sgd: samples per step, min(settings.batch, n) */
    long long per_epoch;/* sgd: steps per epoch, ceil(n / batch) */
    double log_n;
    double t0;
    long long steps_at_start;
    mf_metrics last;
    long long last_emitted;
    const char *reason; /* why the run stalled (static text), or NULL */
} trainer;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void trainer_free(trainer *t) {
    mf_work_free(t->w);
    evalset *sets[2] = {&t->cur, &t->cand};
    for (int i = 0; i < 2; i++) {
        mf__free(sets[i]->out);
        mf__free(sets[i]->gout);
        mf__free(sets[i]->grad);
    }
    mf__free(t->theta_prev);
    mf__free(t->k2);
    mf__free(t->k3);
    mf__free(t->perm);
    mf__free(t->xb);
}

static int trainer_init(trainer *t, mf_err *e) {
    size_t P = t->m->n_params, no = (size_t)t->data->n * t->m->n_out;
    int rc = mf_work_new(t->m, t->data->n, &t->w, e);
    if (rc) return rc;
    evalset *sets[2] = {&t->cur, &t->cand};
    for (int i = 0; i < 2; i++) {
        sets[i]->out = mf__calloc(no, sizeof(double));
        sets[i]->gout = mf__calloc(no, sizeof(double));
        sets[i]->grad = mf__calloc(P, sizeof(double));
        if (!sets[i]->out || !sets[i]->gout || !sets[i]->grad) goto nomem;
    }
    t->theta_prev = mf__calloc(P, sizeof(double));
    if (!t->theta_prev) goto nomem;
    if (t->s->optimizer == MF_OPT_FLOW) {
        t->k2 = mf__calloc(P, sizeof(double));
        t->k3 = mf__calloc(P, sizeof(double));
        if (!t->k2 || !t->k3) goto nomem;
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
static int all_finite(const double *v, size_t n) {
    double s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++) s[q] += v[i + q] * 0.0;
    for (; i < n; i++) s[0] += v[i] * 0.0;
    return (s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7]) == 0.0;
}

/* Evaluate log Loss and G at theta on the full data into es. Returns 1 if
 * everything is finite, 0 otherwise. with_grad = 0 skips the backward pass. */
static int evaluate(trainer *t, const double *theta, evalset *es, int with_grad) {
    const mf_model *m = t->m;
    mf_model_forward(m, t->w, theta, t->data->x, t->data->n, es->out);
    if (mf_loss_eval(t->s->loss, t->data, NULL, t->data->n, es->out, m->n_out, &es->log_loss,
                     with_grad ? es->gout : NULL, NULL) != MF_OK)
        return 0;
    if (!isfinite(es->log_loss) && es->log_loss != -INFINITY) return 0;
    if (!with_grad) return 1;
    mf_model_backward(m, t->w, theta, t->data->x, t->data->n, es->gout, es->grad);
    return all_finite(es->grad, m->n_params);
}

static void swap_sets(trainer *t) {
    evalset tmp = t->cur;
    t->cur = t->cand;
    t->cand = tmp;
}

/* Most consecutive rejected attempts of one step (lyu-li, flow) before the
 * run stalls. Shrinking the step size from DBL_MAX to the smallest
 * subnormal takes about 10 * 2100 = 21000 rejections at lyu-li's default
 * r_d = 2^(1/10) and 6600 at flow's factor <= 0.9, so the budget is reached
 * only when no step size gives an acceptable step (with features near the
 * overflow edge a subnormal step size can stop shrinking while still
 * changing theta: without a budget the loop never ends). */
#define MAX_REJECTS_PER_STEP 100000

/* Why a run stalls (mf_train_result.reason). */
static const char *const STALL_NO_CHANGE = "the step no longer changes theta";
static const char *const STALL_LR = "the step size no longer shrinks (it underflowed)";
static const char *const STALL_REJECTS = "100000 attempts in a row were rejected";

/* After a rejected attempt of a retry loop (the step size shrunk from
 * lr_before to st->lr; *tries counts the rejections of this step): stop the
 * loop whatever the numerics do -- MF_OUT_STALLED (t->reason set) when the
 * step size did not shrink or the budget of rejections is spent,
 * MF_OUT_WALL_BUDGET when the wall budget is spent, MF_OUT_INTERRUPTED when
 * should_stop asks -- or MF_OUT_RUNNING to try again. */
static mf_outcome retry_stop(trainer *t, const mf_train_state *st, double lr_before,
                             long long *tries) {
    if (!(st->lr < lr_before)) {
        t->reason = STALL_LR;
        return MF_OUT_STALLED;
    }
    if (++*tries >= MAX_REJECTS_PER_STEP) {
        t->reason = STALL_REJECTS;
        return MF_OUT_STALLED;
    }
    if (!isnan(t->s->wall_seconds) && now_seconds() - t->t0 >= t->s->wall_seconds)
        return MF_OUT_WALL_BUDGET;
    if (t->cb && t->cb->should_stop && t->cb->should_stop(t->cb->user)) return MF_OUT_INTERRUPTED;
    return MF_OUT_RUNNING;
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

/*
 * One accepted step of gradient flow, integrated in the rescaled time tau
 * with dtau = Loss dt, where the flow reads
 *     dtheta/dtau = -G(theta) = -grad Loss / Loss,
 * whose speed does not vanish as the loss falls (for an L-homogeneous net
 * ||G|| ~ ||theta||^{L-1}). Integrator: Bogacki & Shampine's embedded
 * 3(2) pair (Appl. Math. Lett. 2 (1989) 321-325), first-same-as-last, with
 * the local error estimate ||y3 - y2|| <= tol (1 + ||theta||) per step and the
 * usual step controller h *= clamp(0.9 err^{-1/3}, 0.2, 4).
 * The real time of the step is dt = int dtau / Loss(tau); with log Loss taken
 * linear in tau across the step (from l0 to l1, delta = l0 - l1 >= 0):
 *     dt = h e^{-l1} (1 - e^{-delta}) / delta,
 * computed in logs. st->lr holds the current h.
 */
static mf_outcome step_flow(trainer *t, mf_train_state *st) {
    size_t P = t->m->n_params;
    double *th = st->theta, *y = t->theta_prev;
    const double *k1 = t->cur.grad; /* the stage values are -G; signs folded below */
    double tnorm = mf_param_norm(t->m, th);
    long long tries = 0;
    for (;;) {
        double h = st->lr;
        int ok;
        /* stage 2: y = theta + h/2 k1 */
        for (size_t i = 0; i < P; i++) y[i] = th[i] - 0.5 * h * k1[i];
        ok = evaluate(t, y, &t->cand, 1);
        if (ok) {
            memcpy(t->k2, t->cand.grad, P * sizeof(double));
            /* stage 3: y = theta + 3h/4 k2 */
            for (size_t i = 0; i < P; i++) y[i] = th[i] - 0.75 * h * t->k2[i];
            ok = evaluate(t, y, &t->cand, 1);
        }
        if (ok) {
            memcpy(t->k3, t->cand.grad, P * sizeof(double));
            /* third-order solution y1 = theta + h (2/9 k1 + 1/3 k2 + 4/9 k3) */
            int changed = 0;
            for (size_t i = 0; i < P; i++) {
                y[i] = th[i] - h * (2.0 / 9.0 * k1[i] + 1.0 / 3.0 * t->k2[i] + 4.0 / 9.0 * t->k3[i]);
                changed |= y[i] != th[i];
            }
            if (!changed) {
                t->reason = STALL_NO_CHANGE;
                return MF_OUT_STALLED;
            }
            ok = evaluate(t, y, &t->cand, 1); /* k4 = FSAL stage */
        }
        double err = INFINITY;
        if (ok) {
            /* y1 - y1hat = h (-5/72 k1 + 1/12 k2 + 1/9 k3 - 1/8 k4) */
            double s = 0;
            const double *k4 = t->cand.grad;
            for (size_t i = 0; i < P; i++) {
                double d = h * (-5.0 / 72.0 * k1[i] + 1.0 / 12.0 * t->k2[i] + 1.0 / 9.0 * t->k3[i] -
                                0.125 * k4[i]);
                s += d * d;
            }
            err = sqrt(s) / (t->s->tol * (1.0 + tnorm));
        }
        if (ok && err <= 1.0) {
            double l0 = st->log_loss, l1 = t->cand.log_loss, delta = l0 - l1;
            double log_dt = log(h) - l1;
            if (delta > 0) log_dt += log(-expm1(-delta) / delta);
            add_time(st, log_dt);
            memcpy(th, y, P * sizeof(double));
            swap_sets(t);
            st->log_loss = t->cur.log_loss;
            st->step++;
            double f = err > 0 ? 0.9 * pow(err, -1.0 / 3.0) : 4.0;
            st->lr = h * (f > 4.0 ? 4.0 : f < 0.2 ? 0.2 : f);
            if (st->lr > DBL_MAX) st->lr = DBL_MAX; /* inf * 0.25 would stay inf */
            return MF_OUT_RUNNING;
        }
        st->rejected++;
        double f = isfinite(err) ? 0.9 * pow(err, -1.0 / 3.0) : 0.25;
        st->lr = h * (f < 0.2 ? 0.2 : f > 0.9 ? 0.9 : f);
        if (!(st->lr > 1e-300)) {
            t->reason = STALL_LR;
            return MF_OUT_STALLED;
        }
        mf_outcome stop = retry_stop(t, st, h, &tries);
        if (stop != MF_OUT_RUNNING) return stop;
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
    if (!all_finite(t->cand.grad, P)) return sgd_undo(t, st);
    memcpy(t->theta_prev, st->theta, P * sizeof(double));
    t->time_prev = st->time_log;
    t->prev_step = -1;
    double a = st->lr * exp(lb - log((double)nb));
    if (!axpy_changed(st->theta, t->theta_prev, a, t->cand.grad, P)) {
        t->reason = STALL_NO_CHANGE;
        return MF_OUT_STALLED;
    }
    if (!all_finite(st->theta, P)) { /* the step itself overflowed: never accept it */
        memcpy(st->theta, t->theta_prev, P * sizeof(double));
        return MF_OUT_NONFINITE;
    }
    add_time(st, log(st->lr) - t->log_n);
    st->step++;
    t->prev_step = st->step - 1;
    return MF_OUT_RUNNING;
}

/* Metrics at the current state (t->cur.out must be the outputs at theta). */
static int current_metrics(trainer *t, const mf_train_state *st, mf_metrics *mt, mf_err *e) {
    int rc = mf_metrics_eval(t->m, t->w, t->data, t->s->loss, st->theta, t->cur.out, mt, e);
    mt->step = st->step;
    mt->time_log = st->time_log;
    mt->lr = st->lr;
    return rc;
}

static int emit(trainer *t, const mf_train_state *st, mf_err *e) {
    int rc = current_metrics(t, st, &t->last, e);
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
    if (!isnan(s->until_time) && st->time_log >= log(s->until_time)) return MF_OUT_TIME_TARGET;
    if (s->max_steps > 0 && st->step >= s->max_steps) return MF_OUT_STEP_BUDGET;
    if (!isnan(s->wall_seconds) && now_seconds() - t->t0 >= s->wall_seconds)
        return MF_OUT_WALL_BUDGET;
    if (t->cb && t->cb->should_stop && t->cb->should_stop(t->cb->user)) return MF_OUT_INTERRUPTED;
    return MF_OUT_RUNNING;
}

static void logf_cb(const mf_callbacks *cb, int level, const char *msg) {
    if (cb && cb->log) cb->log(cb->user, level, msg);
}

/*
 * mf_train -- contract in marginflow.h.
 * Loop: [stop checks] -> one step -> [metrics at log steps] -> [checkpoint]
 * -> [progress]. The state at entry is evaluated first, and its row emitted
 * if its step is a log step, so a resumed run re-emits exactly the row the
 * interrupted run emitted at the checkpoint step.
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
    if (!all_finite(st->theta, m->n_params))
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
    int rc = trainer_init(&t, e);
    if (rc) {
        trainer_free(&t);
        return rc;
    }
    if (st->lr == 0) st->lr = s->lr; /* a fresh state (mf_train_state_new) */

    double progress_every = cb && cb->progress_seconds > 0 ? cb->progress_seconds : 0.5;
    t.t0 = now_seconds();
    double next_progress = t.t0 + progress_every;
    long long steps_done = 0;
    double t0_loop = t.t0;
    long long next_log = st->step + 1; /* first step the loop checks for a log row */
    mf_outcome out = MF_OUT_RUNNING;

    if (!evaluate(&t, st->theta, &t.cur, s->optimizer != MF_OPT_SGD)) {
        logf_cb(cb, MF_LOG_ERROR, "non-finite loss or gradient at the initial parameters");
        out = MF_OUT_NONFINITE;
        st->log_loss = t.cur.log_loss;
    } else {
        st->log_loss = t.cur.log_loss;
        if (mf_is_log_step(s, st->step) && (rc = emit(&t, st, e))) goto done;
    }
    t0_loop = now_seconds(); /* steps_per_second: the step loop only, not the setup */

    while (out == MF_OUT_RUNNING) {
        out = check_stop(&t, st);
        if (out != MF_OUT_RUNNING) break;
        switch (s->optimizer) {
        case MF_OPT_GD:
        case MF_OPT_SCALED: out = step_plain(&t, st); break;
        case MF_OPT_LYU_LI: out = step_lyu_li(&t, st); break;
        case MF_OPT_FLOW: out = step_flow(&t, st); break;
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
        if (s->optimizer == MF_OPT_SGD) {
            if (log_now || ckpt_now || st->step % t.per_epoch == 0) {
                if (!evaluate(&t, st->theta, &t.cur, 0)) {
                    out = sgd_undo(&t, st); /* back to the state before this step */
                    char msg[160];
                    snprintf(msg, sizeof msg, "non-finite loss at step %lld; stopped at the last "
                             "good state (step %lld)", st->step + 1, st->step);
                    logf_cb(cb, MF_LOG_ERROR, msg);
                    break;
                }
                st->log_loss = t.cur.log_loss;
            }
        }
        if (log_now && (rc = emit(&t, st, e))) goto done;
        if (ckpt_now && cb && cb->on_checkpoint && cb->on_checkpoint(cb->user, st)) {
            rc = mf__err(e, MF_ERR_CALLBACK, "the checkpoint callback failed at step %lld", st->step);
            goto done;
        }
        if (cb && cb->on_progress) {
            double now = now_seconds();
            if (now >= next_progress) {
                mf_metrics pm;
                if (current_metrics(&t, st, &pm, NULL) == MF_OK)
                    cb->on_progress(cb->user, &pm, steps_done / (now - t.t0));
                next_progress = now + progress_every;
            }
        }
    }
    if (s->optimizer == MF_OPT_SGD) { /* the full-data loss at the final theta */
        evaluate(&t, st->theta, &t.cur, 0);
        st->log_loss = t.cur.log_loss;
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
        } else if ((rc = emit(&t, st, e))) {
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
    result->wall_seconds = now_seconds() - t.t0;
    {
        double loop_seconds = now_seconds() - t0_loop;
        result->steps_per_second = loop_seconds > 0 ? steps_done / loop_seconds : 0;
    }
    trainer_free(&t);
    return rc;
}

/*
 * epoch.c -- the epoch driver behind mf_train for mini-batch SGD by epochs:
 * constant lr (optimizer sgd with max_epochs > 0) and Lyu & Li's loss-based
 * epoch schedule (sgd-lyu-li), the setting of their CNN experiments ([LL20]
 * sec. 5 and App. K/L). Contract at mf_train_is_epoch_run (marginflow.h).
 *
 * Everything stays in the log domain (docs/theory.md s.2): the reference mean
 * loss Lbar of an epoch is kept as log Lbar, a batch's mean loss as
 * log Lbar_B, and the loss-based step
 *     theta -= (alpha / Lbar) grad Lbar_B = alpha exp(log Lbar_B - log Lbar) G_B,
 *     G_B = grad Loss_B / Loss_B   (exact softmax weights, mf_loss_eval)
 * is a product of finite numbers at any loss level: the batch check
 * (Lbar_B <= loss_cap Lbar) bounds the exponent by log(loss_cap), so the run
 * goes on far below 10^-308 with finite steps and metrics.
 *
 * An epoch is one attempt over a permutation of the data; a rejected attempt
 * restores the epoch-start parameters and flow time exactly (memcpy), so the
 * accepted trajectory is the same as if the attempt had not been made, and a
 * state saved at an epoch boundary (step = accepted epochs x steps per epoch)
 * resumes bit for bit: the permutation depends only on (seed, epoch,
 * rejected), the reference loss is re-evaluated from theta by the same code.
 * Buffers are allocated once; the epoch loop never allocates.
 */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define LN10 2.302585092994045684017991454684364208

/* ------------------------------------------------------------ settings */

void mf__epoch_settings_default(mf_train_settings *s) {
    s->max_epochs = 0;
    s->alpha_min = 1e-50;
    s->loss_cap = 600.0;
    s->archive_decades = 5.0;
    s->n_archive_epochs = 0;
    memset(s->archive_epochs, 0, sizeof s->archive_epochs);
    s->test = NULL;
}

const char *mf__epoch_settings_validate(const mf_train_settings *s) {
    if (s->max_epochs < 0 || s->max_epochs > MF_MAX_STEPS)
        return "max_epochs: must be an integer in [0, 2^62] (0 = no epoch limit)";
    if (!(s->alpha_min > 0) || !isfinite(s->alpha_min)) return "alpha_min: must be a finite number > 0";
    if (!(s->loss_cap > 1) || !isfinite(s->loss_cap)) return "loss_cap: must be a finite number > 1";
    if (!(s->archive_decades >= 0) || !isfinite(s->archive_decades))
        return "archive_decades: must be a finite number >= 0 (0 = off)";
    if (s->n_archive_epochs < 0 || s->n_archive_epochs > MF_MAX_ARCHIVE_EPOCHS)
        return "n_archive_epochs: must be in [0, MF_MAX_ARCHIVE_EPOCHS]";
    for (int i = 0; i < s->n_archive_epochs; i++)
        if (s->archive_epochs[i] < 0 || (i && s->archive_epochs[i] <= s->archive_epochs[i - 1]))
            return "archive_epochs: must be ascending integers >= 0";
    if (s->test && (s->test->n < 1 || !s->test->x)) return "test: an empty test set";
    if (mf_train_is_epoch_run(s) && s->max_steps == 0 && s->max_epochs == 0 &&
        isnan(s->until_log10_loss) && isnan(s->wall_seconds))
        return "max_epochs: an epoch run needs a stopping criterion (max_epochs, max_steps, "
               "until_log10_loss or wall_seconds; until_time does not apply)";
    return NULL;
}

int mf_train_is_epoch_run(const mf_train_settings *s) {
    return s->optimizer == MF_OPT_SGD_LYU_LI || (s->optimizer == MF_OPT_SGD && s->max_epochs > 0);
}

/* Contract in marginflow.h. */
void mf_epoch_permutation(uint64_t seed, long long epoch, long long rejected, int n, int *perm) {
    mf_rng r;
    mf_rng_seed(&r, seed * 0x9e3779b97f4a7c15ULL + (uint64_t)epoch * 0xd1b54a32d192ed03ULL +
                        (uint64_t)rejected);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(mf_rng_next(&r) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ------------------------------------------------------------- CSV */

const char *mf_epoch_csv_header(void) {
    return "step,epoch,log10_loss,log10_mean_loss,train_acc,test_acc,normalized_margin,"
           "layer_margin,smoothed_margin,norm,q_min,lr,rejected,epoch_seconds,wall_seconds,time,"
           "log10_time";
}

void mf_epoch_csv_row(const mf_metrics *m, char *buf, size_t cap) {
    const double v[12] = {m->log10_loss,       m->log10_mean_loss,  1.0 - m->train_error,
                          1.0 - m->test_error, m->normalized_margin, m->layer_margin,
                          m->smoothed_margin,  m->norm,             m->q_min,
                          m->lr,               m->epoch_seconds,    m->wall_seconds};
    char f[12][40], t[MF_LOG_VALUE_LEN], lt[40];
    for (int i = 0; i < 12; i++) {
        if (isfinite(v[i])) mf_format_double(f[i], sizeof f[i], v[i]);
        else f[i][0] = '\0';
    }
    if (isnan(m->time_log) || m->time_log == INFINITY) t[0] = '\0';
    else mf_format_log_value(t, sizeof t, m->time_log);
    if (isfinite(m->time_log)) mf_format_double(lt, sizeof lt, m->time_log / LN10);
    else lt[0] = '\0';
    snprintf(buf, cap, "%lld,%lld,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%lld,%s,%s,%s,%s", m->step, m->epoch,
             f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], m->rejected, f[10], f[11], t,
             lt);
}

/* ------------------------------------------------------------- driver */

typedef struct driver {
    const mf_model *m;
    const mf_data *D, *T;       /* training and (optional) test data */
    const mf_train_settings *s;
    const mf_callbacks *cb;
    mf_work *w;                 /* batches of B */
    int B, lyu_li;
    long long per_epoch;        /* steps per epoch: ceil(N / B) */
    double *theta0;             /* [P] the epoch-start parameters */
    double *out;                /* [N][n_out] outputs on the training data */
    double *tout;               /* [NT][n_out] outputs on the test data */
    double *xb;                 /* [B][d] one batch */
    double *bout, *gout;        /* [B][n_out] */
    double *grad;               /* [P] */
    int *perm;                  /* [N] */
    double t0, t_epoch;         /* wall clock: call start, epoch start */
    int next_ae;                /* next index into archive_epochs */
    double next_level;          /* archive when log10 Loss <= next_level */
    long long archived;         /* epoch of the last archive, -1 */
    mf_metrics last;
} driver;

static int finite_all(const double *v, size_t n) {
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += v[i] * 0.0;
    return acc == 0.0;
}

static void driver_free(driver *d) {
    mf_work_free(d->w);
    mf__free(d->theta0);
    mf__free(d->out);
    mf__free(d->tout);
    mf__free(d->xb);
    mf__free(d->bout);
    mf__free(d->gout);
    mf__free(d->grad);
    mf__free(d->perm);
}

static int driver_init(driver *d, mf_err *e) {
    const size_t P = d->m->n_params, C = (size_t)d->m->n_out;
    int rc = mf_work_new(d->m, d->B, &d->w, e);
    if (rc) return rc;
    d->theta0 = mf__malloc(sizeof(double) * (P ? P : 1));
    d->grad = mf__malloc(sizeof(double) * (P ? P : 1));
    d->out = mf__malloc(sizeof(double) * (size_t)d->D->n * C);
    d->tout = d->T ? mf__malloc(sizeof(double) * (size_t)d->T->n * C) : NULL;
    d->xb = mf__malloc(sizeof(double) * (size_t)d->B * d->D->d);
    d->bout = mf__malloc(sizeof(double) * (size_t)d->B * C);
    d->gout = mf__malloc(sizeof(double) * (size_t)d->B * C);
    d->perm = mf__malloc(sizeof(int) * (size_t)d->D->n);
    if (!d->theta0 || !d->grad || !d->out || (d->T && !d->tout) || !d->xb || !d->bout || !d->gout ||
        !d->perm)
        return mf__err(e, MF_ERR_NOMEM, "out of memory allocating the epoch buffers");
    return MF_OK;
}

/* out [n][n_out] = Phi(theta; X) in batches of B. */
static void forward_all(driver *d, const double *theta, const mf_data *X, double *out) {
    for (int i = 0; i < X->n; i += d->B) {
        int nb = X->n - i < d->B ? X->n - i : d->B;
        mf_model_forward(d->m, d->w, theta, X->x + (size_t)i * X->d, nb, out + (size_t)i * d->m->n_out);
    }
}

/* log Loss on the training data at theta (d->out filled); NAN when not finite. */
static double train_log_loss(driver *d, const double *theta) {
    double ll;
    forward_all(d, theta, d->D, d->out);
    if (mf_loss_eval(d->s->loss, d->D, NULL, d->D->n, d->out, d->m->n_out, &ll, NULL, NULL) != MF_OK)
        return NAN;
    return isfinite(ll) || ll == -INFINITY ? ll : NAN;
}

/* The metrics row of the state (d->out = outputs at st->theta). */
static int row(driver *d, const mf_train_state *st, mf_metrics *mt, mf_err *e) {
    int rc = mf_metrics_eval(d->m, d->w, d->D, d->s->loss, st->theta, d->out, mt, e);
    if (rc) return rc;
    mt->step = st->step;
    mt->time_log = st->time_log;
    mt->lr = st->lr;
    mt->epoch = st->step / d->per_epoch;
    mt->rejected = st->rejected;
    mt->test_error = NAN;
    if (d->T) {
        forward_all(d, st->theta, d->T, d->tout);
        int wrong = 0;
        for (int i = 0; i < d->T->n; i++) wrong += !(mf__margin(d->T, d->tout, d->m->n_out, i) > 0);
        mt->test_error = (double)wrong / d->T->n;
    }
    double t = mf__now();
    mt->epoch_seconds = t - d->t_epoch;
    mt->wall_seconds = t - d->t0;
    return MF_OK;
}

/* First archive level below log10 Loss = l: -decades * k, k = floor(-l / decades) + 1. */
static double level_below(double decades, double l) {
    if (!(decades > 0)) return -INFINITY;
    return -decades * (floor(-l / decades) + 1.0);
}

/* Emit the row of the state (on_metrics, on_snapshot), archive it if the
 * policy says so (or force), checkpoint, progress. */
static int emit(driver *d, const mf_train_state *st, int accepted, int force_archive, mf_err *e) {
    const mf_callbacks *cb = d->cb;
    int rc = row(d, st, &d->last, e);
    if (rc) return rc;
    const mf_metrics *mt = &d->last;
    if (cb && cb->on_metrics && cb->on_metrics(cb->user, mt))
        return mf__err(e, MF_ERR_CALLBACK, "the metrics callback failed at epoch %lld", mt->epoch);
    if (cb && cb->on_snapshot && cb->on_snapshot(cb->user, mt, st->theta))
        return mf__err(e, MF_ERR_CALLBACK, "the snapshot callback failed at epoch %lld", mt->epoch);
    int arch = force_archive;
    while (d->next_ae < d->s->n_archive_epochs && d->s->archive_epochs[d->next_ae] < mt->epoch)
        d->next_ae++;
    if (d->next_ae < d->s->n_archive_epochs && d->s->archive_epochs[d->next_ae] == mt->epoch)
        arch = 1, d->next_ae++;
    if (accepted && mt->log10_loss <= d->next_level) {
        arch = 1;
        d->next_level = level_below(d->s->archive_decades, mt->log10_loss);
    }
    if (arch && d->archived != mt->epoch && cb && cb->on_archive) {
        if (cb->on_archive(cb->user, st, mt))
            return mf__err(e, MF_ERR_CALLBACK, "the archive callback failed at epoch %lld", mt->epoch);
        d->archived = mt->epoch;
    }
    if (accepted && d->s->checkpoint_every > 0 && mt->epoch % d->s->checkpoint_every == 0 && cb &&
        cb->on_checkpoint && cb->on_checkpoint(cb->user, st))
        return mf__err(e, MF_ERR_CALLBACK, "the checkpoint callback failed at epoch %lld", mt->epoch);
    if (accepted && cb && cb->on_progress) {
        double sps = mt->epoch_seconds > 0 ? d->per_epoch / mt->epoch_seconds : 0;
        cb->on_progress(cb->user, mt, sps);
    }
    return MF_OK;
}

/* Why the run stops before the next epoch, or MF_OUT_RUNNING. */
static mf_outcome stop_reason(const driver *d, const mf_train_state *st) {
    const mf_train_settings *s = d->s;
    long long epoch = st->step / d->per_epoch;
    if (!isnan(s->until_log10_loss) && st->log_loss / LN10 <= s->until_log10_loss)
        return MF_OUT_LOSS_TARGET;
    if (s->max_epochs > 0 && epoch >= s->max_epochs) return MF_OUT_STEP_BUDGET;
    if (s->max_steps > 0 && st->step >= s->max_steps) return MF_OUT_STEP_BUDGET;
    if (!isnan(s->wall_seconds) && mf__now() - d->t0 >= s->wall_seconds) return MF_OUT_WALL_BUDGET;
    if (d->cb && d->cb->should_stop && d->cb->should_stop(d->cb->user)) return MF_OUT_INTERRUPTED;
    return MF_OUT_RUNNING;
}

/*
 * One attempt at epoch `epoch` from st (theta = theta0 on entry). Returns 1
 * when every batch was finite (and, lyu-li, under the loss cap), with theta
 * and time advanced; 0 when it was cut short; -1 when should_stop asked to
 * stop (theta not restored here).
 */
static int run_epoch(driver *d, mf_train_state *st, long long epoch, double log_ref) {
    const mf_model *m = d->m;
    const mf_data *D = d->D;
    const size_t P = m->n_params;
    const double log_cap = log(d->s->loss_cap), log_n = log((double)D->n);
    const double log_ref_mean = log_ref - log_n;
    mf_epoch_permutation(d->s->seed, epoch, st->rejected, D->n, d->perm);
    for (int start = 0; start < D->n; start += d->B) {
        const int nb = D->n - start < d->B ? D->n - start : d->B;
        const int *idx = d->perm + start;
        for (int i = 0; i < nb; i++)
            memcpy(d->xb + (size_t)i * D->d, D->x + (size_t)idx[i] * D->d, sizeof(double) * D->d);
        double lb;
        mf_model_forward(m, d->w, st->theta, d->xb, nb, d->bout);
        if (mf_loss_eval(d->s->loss, D, idx, nb, d->bout, m->n_out, &lb, d->gout, NULL) != MF_OK ||
            !(lb < INFINITY))
            return 0;
        const double lbm = lb - log((double)nb); /* log of the batch mean loss */
        double a, log_eta;
        if (d->lyu_li) {
            if (!(lbm <= log_ref_mean + log_cap)) return 0;
            a = st->lr * exp(lbm - log_ref_mean);
            log_eta = log(st->lr) - log_ref_mean;
        } else {
            a = st->lr * exp(lbm);
            log_eta = log(st->lr);
        }
        mf_model_backward(m, d->w, st->theta, d->xb, nb, d->gout, d->grad);
        if (!finite_all(d->grad, P)) return 0;
        for (size_t k = 0; k < P; k++) st->theta[k] -= a * d->grad[k];
        if (!finite_all(st->theta, P)) return 0;
        st->time_log = mf__lse2(st->time_log, log_eta - log_n);
        if (d->cb && d->cb->should_stop && d->cb->should_stop(d->cb->user)) return -1;
    }
    return 1;
}

/* Contract at mf_train_is_epoch_run (marginflow.h); called by mf_train after
 * its argument checks. */
int mf__train_epochs(const mf_model *m, const mf_data *data, const mf_train_settings *s,
                     mf_train_state *st, const mf_callbacks *cb, mf_train_result *result,
                     mf_err *e) {
    const mf_data *T = s->test;
    if (T && (T->d != m->d || T->num_classes != data->num_classes))
        return mf__err(e, MF_ERR_DIM,
                       "the test set has dimension %d and %d classes, the training set %d and %d",
                       T->d, T->num_classes ? T->num_classes : 2, data->d,
                       data->num_classes ? data->num_classes : 2);
    driver d;
    memset(&d, 0, sizeof d);
    d.m = m, d.D = data, d.T = T, d.s = s, d.cb = cb;
    d.B = s->batch < data->n ? s->batch : data->n;
    d.per_epoch = (data->n + d.B - 1) / d.B;
    d.lyu_li = s->optimizer == MF_OPT_SGD_LYU_LI;
    d.archived = -1;
    if (st->step % d.per_epoch)
        return mf__err(e, MF_ERR_INVALID,
                       "the state is at step %lld, not at an epoch boundary (%lld steps an epoch)",
                       st->step, d.per_epoch);
    int rc = driver_init(&d, e);
    if (rc) {
        driver_free(&d);
        return rc;
    }
    if (st->lr == 0) st->lr = s->lr;
    d.t0 = d.t_epoch = mf__now();
    long long steps_done = 0;
    mf_outcome out = MF_OUT_RUNNING;
    double log_ref = train_log_loss(&d, st->theta);
    st->log_loss = log_ref;
    if (isnan(log_ref)) {
        if (cb && cb->log) cb->log(cb->user, MF_LOG_ERROR, "non-finite loss at the initial parameters");
        out = MF_OUT_NONFINITE;
    } else {
        d.next_level = level_below(s->archive_decades, log_ref / LN10);
        if ((rc = emit(&d, st, 0, 0, e))) goto done;
    }
    while (out == MF_OUT_RUNNING) {
        if ((out = stop_reason(&d, st)) != MF_OUT_RUNNING) break;
        const long long epoch = st->step / d.per_epoch;
        const double time0 = st->time_log;
        memcpy(d.theta0, st->theta, sizeof(double) * m->n_params);
        int ok = run_epoch(&d, st, epoch, log_ref);
        if (ok < 0) { /* stop asked mid-epoch: back to the epoch start */
            memcpy(st->theta, d.theta0, sizeof(double) * m->n_params);
            st->time_log = time0;
            out = MF_OUT_INTERRUPTED;
            break;
        }
        double log_new = ok ? train_log_loss(&d, st->theta) : NAN;
        int accept = ok && !isnan(log_new) && (!d.lyu_li || log_new < log_ref);
        if (accept) {
            st->step += d.per_epoch;
            steps_done += d.per_epoch;
            st->log_loss = log_ref = log_new;
            if (d.lyu_li) {
                st->lr *= s->lr_up;
                if (st->lr > DBL_MAX) st->lr = DBL_MAX;
            }
            if ((rc = emit(&d, st, 1, 0, e))) goto done;
            d.t_epoch = mf__now();
            continue;
        }
        memcpy(st->theta, d.theta0, sizeof(double) * m->n_params);
        st->time_log = time0;
        if (!d.lyu_li) { /* constant lr: a non-finite epoch ends the run at its start */
            if (cb && cb->log) cb->log(cb->user, MF_LOG_ERROR, "non-finite loss or gradient; stopped "
                                       "at the start of the epoch");
            out = MF_OUT_NONFINITE;
            break;
        }
        st->rejected++;
        st->lr /= s->lr_down;
        if (st->lr < s->alpha_min) out = MF_OUT_STALLED;
    }
    /* the final state is the one of the last row emitted (a rejected epoch
     * restores it): archive it unless that row was archived */
    if (d.last.step == st->step && d.archived != d.last.epoch && cb && cb->on_archive &&
        out != MF_OUT_NONFINITE && cb->on_archive(cb->user, st, &d.last)) {
        rc = mf__err(e, MF_ERR_CALLBACK, "the archive callback failed at the final epoch");
        goto done;
    }
    rc = MF_OK;
done:
    result->outcome = out == MF_OUT_RUNNING ? MF_OUT_INTERRUPTED : out;
    result->reason = result->outcome == MF_OUT_STALLED ? "alpha fell below alpha_min" : NULL;
    result->final = d.last;
    result->steps = st->step;
    result->rejected = st->rejected;
    result->wall_seconds = mf__now() - d.t0;
    result->steps_per_second = result->wall_seconds > 0 ? steps_done / result->wall_seconds : 0;
    driver_free(&d);
    return rc;
}

/*
 * metrics.c -- the quantities of the margin theory at a parameter vector:
 * q_min, normalized margin q_min / ||theta||^L, smoothed margin, per-layer
 * margin q_min / prod_l ||W_l|| ([LL20] plots), training error and the
 * balancedness invariant of gradient flow (for two-layer nets a_k^2 - ||w_k||^2
 * is conserved along gradient flow; for deeper nets ||W_{l+1}||^2 - ||W_l||^2
 * is, [LL20] / Du, Hu & Lee 2018), whose drift shows discretization error.
 */
#include "internal.h"

#include <float.h>
#include <math.h>

/* Row k of a layer group as a vector of length cols. */
static double row_sqnorm(const double *p, int cols) {
    double s = 0;
    for (int j = 0; j < cols; j++) s += p[j] * p[j];
    return s;
}

static double layer_sqnorm(const mf_model *m, const double *theta, int l) {
    const mf_layer *ly = &m->layers[l];
    return row_sqnorm(theta + ly->offset, ly->rows * ly->cols);
}

/* Balancedness: see the file comment. Two-layer nets with trained outer
 * weights (mf_model_units, a_layer >= 0): max_k |a_k^2 - ||w_k||^2|
 * (||w_k|| with the hidden-bias column); other models with several
 * parameter groups: max_l | ||W_{l+1}||^2 - ||W_l||^2 |; else 0. */
static double balancedness(const mf_model *m, const double *theta) {
    mf_units u;
    if (mf_model_units(m, &u) && u.a_layer >= 0) {
        const mf_layer *W = &m->layers[u.w_layer], *a = &m->layers[u.a_layer];
        double worst = 0;
        for (int k = 0; k < W->rows; k++) {
            double ak = theta[a->offset + k];
            double d = fabs(ak * ak - row_sqnorm(theta + W->offset + (size_t)k * W->cols, W->cols));
            if (d > worst) worst = d;
        }
        return worst;
    }
    double worst = 0;
    for (int l = 0; l + 1 < m->n_layers; l++) {
        double d = fabs(layer_sqnorm(m, theta, l + 1) - layer_sqnorm(m, theta, l));
        if (d > worst) worst = d;
    }
    return worst;
}

/* q / D for a denominator D > 0 whose double value d may have overflowed or
 * underflowed: while d is a normal double, the plain quotient (to the bit
 * what earlier versions wrote); otherwise q / (f 2^e) by mf__div_scaled with
 * D = f 2^e from scaled() (called only then). NAN (absent) wherever the
 * quotient is not a normal double, 0 for q = 0. */
static double margin_quotient(double q, double d, const mf_model *m, const double *theta,
                              double (*scaled)(const mf_model *, const double *, long *)) {
    if (isfinite(d) && d >= DBL_MIN) {
        double r = q / d;
        return q == 0 || (isfinite(r) && fabs(r) >= DBL_MIN) ? r : NAN;
    }
    long e;
    double f = scaled(m, theta, &e);
    return mf__div_scaled(q, f, e);
}

/* ||theta||^L as f 2^e (f = g^L in [2^-L, 1] for ||theta|| = g 2^k). */
static double norm_pow_scaled(const mf_model *m, const double *theta, long *e) {
    int k;
    double g = mf__norm2_scaled(theta, m->n_params, &k);
    *e = (long)k * m->degree;
    return pow(g, m->degree);
}

/* prod_l ||W_l|| as f 2^e (f = prod of mantissas, >= 2^-16). */
static double layer_prod_scaled(const mf_model *m, const double *theta, long *e) {
    double f = 1;
    *e = 0;
    for (int l = 0; l < m->n_layers; l++) {
        int k;
        f *= mf__norm2_scaled(theta + m->layers[l].offset,
                              (size_t)m->layers[l].rows * (size_t)m->layers[l].cols, &k);
        *e += k;
    }
    return f;
}

/*
 * mf_metrics_eval -- contract in marginflow.h. Margins are the true
 * (non-smooth) margins q_n = y_n Phi or Phi_y - max_{j!=y} Phi_j; the loss
 * is recomputed from the outputs in the log domain. Where ||theta|| = 0 the
 * margins are reported as 0 (not 0/0). The normalized, smoothed and layer
 * margins are quotients q / ||theta||^L, -log Loss / ||theta||^L and
 * q / prod_l ||W_l||: once a denominator leaves the range of normal doubles
 * (||theta||^2 overflows near ||theta|| = 1.3e154) they are computed with
 * the norms as mantissa and exponent (margin_quotient), so they stay exact
 * to a few ulps; a quotient that is itself not a normal double is absent
 * (NAN), never a wrong finite number such as 0.
 */
int mf_metrics_eval(const mf_model *m, mf_work *w, const mf_data *data, mf_loss_kind loss,
                    const double *theta, const double *out, mf_metrics *mt, mf_err *e) {
    double *own = NULL;
    if (!out) {
        own = mf__malloc(sizeof(double) * (size_t)data->n * m->n_out);
        if (!own) return mf__err(e, MF_ERR_NOMEM, "out of memory evaluating metrics");
        int fr = mf_model_forward(m, w, theta, data->x, data->n, own);
        if (fr) {
            mf__free(own);
            if (fr == MF_ERR_DIM)
                return mf__err(e, fr, "mf_metrics_eval: the workspace was made for another model");
            return mf__err(e, fr, "mf_metrics_eval: the workspace holds fewer than the n = %d "
                           "samples", data->n);
        }
        out = own;
    }
    double log_loss;
    int rc = mf_loss_eval(loss, data, NULL, data->n, out, m->n_out, &log_loss, NULL, NULL);
    int wrong = 0;
    double qmin = INFINITY;
    for (int i = 0; i < data->n; i++) {
        double qi = mf__margin(data, out, m->n_out, i);
        if (!(qi > 0)) wrong++;
        if (!(qi >= qmin)) qmin = qi;
    }
    mf__free(own);
    if (rc != MF_OK) return mf__err(e, MF_ERR_NUMERIC, "non-finite network output");

    double norm = mf_param_norm(m, theta);
    double prod = 1;
    int zero_layer = 0; /* prod may underflow to 0 with no layer at 0 */
    for (int l = 0; l < m->n_layers; l++) {
        double ln = mf_layer_norm(m, theta, l);
        zero_layer |= ln == 0;
        prod *= ln;
    }
    double nl = pow(norm, m->degree);

    mt->log10_loss = log_loss / log(10.0);
    mt->norm = norm;
    mt->q_min = qmin;
    mt->normalized_margin = norm > 0 ? margin_quotient(qmin, nl, m, theta, norm_pow_scaled) : 0.0;
    if (norm > 0 && !isfinite(norm)) { /* ||theta|| > DBL_MAX: its mantissa and exponent */
        int k;
        double g = mf__norm2_scaled(theta, m->n_params, &k);
        mt->smoothed_margin = mf__smoothed_margin_scaled(loss, log_loss, g, k, m->degree);
    } else {
        mt->smoothed_margin = mf_smoothed_margin(loss, log_loss, norm, m->degree);
    }
    mt->layer_margin =
        zero_layer ? 0.0 : margin_quotient(qmin, prod, m, theta, layer_prod_scaled);
    mt->train_error = data->n ? (double)wrong / data->n : 0.0;
    mt->balancedness = balancedness(m, theta);
    mt->beta = NAN; /* the run's indicators: mf_train fills them */
    mt->smoothed_decrease = 0;
    mt->loss_increase = 0;
    mt->margin_change = NAN;
    mt->log10_mean_loss = mt->log10_loss - log10((double)(data->n > 0 ? data->n : 1));
    mt->epoch = -1; /* the epoch fields: set by epoch runs (src/epoch.c) */
    mt->rejected = 0;
    mt->test_error = NAN;
    mt->epoch_seconds = NAN;
    mt->wall_seconds = NAN;
    return MF_OK;
}

/*
 * metrics.c -- the quantities of the margin theory at a parameter vector:
 * q_min, normalized margin q_min / ||theta||^L, smoothed margin, per-layer
 * margin q_min / prod_l ||W_l|| ([LL20] plots), training error and the
 * balancedness invariant of gradient flow (for two-layer nets a_k^2 - ||w_k||^2
 * is conserved along gradient flow; for deeper nets ||W_{l+1}||^2 - ||W_l||^2
 * is, [LL20] / Du, Hu & Lee 2018), whose drift shows discretization error.
 */
#include "internal.h"

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

/* Balancedness: see the file comment. Two-layer nets (relu2, relu2-outbias,
 * with trained outer weights): max_k |a_k^2 - ||w_k||^2|; other models with
 * several parameter groups: max_l | ||W_{l+1}||^2 - ||W_l||^2 |; else 0. */
static double balancedness(const mf_model *m, const double *theta) {
    if ((m->kind == MF_MODEL_RELU2 || m->kind == MF_MODEL_RELU2_OUTBIAS) && !m->fix_outer) {
        const mf_layer *W = &m->layers[0], *a = &m->layers[1];
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

/*
 * mf_metrics_eval -- contract in marginflow.h. Margins are the true
 * (non-smooth) margins q_n = y_n Phi or Phi_y - max_{j!=y} Phi_j; the loss
 * is recomputed from the outputs in the log domain. Where ||theta|| = 0 the
 * margins are reported as 0 (not 0/0).
 */
int mf_metrics_eval(const mf_model *m, mf_work *w, const mf_data *data, mf_loss_kind loss,
                    const double *theta, const double *out, mf_metrics *mt, mf_err *e) {
    double *own = NULL;
    if (!out) {
        own = mf__malloc(sizeof(double) * (size_t)data->n * m->n_out);
        if (!own) return mf__err(e, MF_ERR_NOMEM, "out of memory evaluating metrics");
        mf_model_forward(m, w, theta, data->x, data->n, own);
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
    for (int l = 0; l < m->n_layers; l++) prod *= mf_layer_norm(m, theta, l);
    double nl = pow(norm, m->degree);

    mt->log10_loss = log_loss / log(10.0);
    mt->norm = norm;
    mt->q_min = qmin;
    mt->normalized_margin = nl > 0 ? qmin / nl : 0.0;
    mt->smoothed_margin = mf_smoothed_margin(loss, log_loss, norm, m->degree);
    mt->layer_margin = prod > 0 ? qmin / prod : 0.0;
    mt->train_error = data->n ? (double)wrong / data->n : 0.0;
    mt->balancedness = balancedness(m, theta);
    mt->beta = NAN; /* the run's indicators: mf_train fills them */
    mt->smoothed_decrease = 0;
    mt->loss_increase = 0;
    mt->margin_change = NAN;
    return MF_OK;
}

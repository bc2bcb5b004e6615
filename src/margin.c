/*
 * margin.c -- margins and their gradients, the one place they are computed
 * for the analysis (section A of marginflow.h; analyze.c, kkt.c,
 * second_order.c, global_ref.c and local.c all call these):
 *   q_n = y_n Phi(theta; x_n)                     (binary)
 *   q_n = Phi_y(theta; x_n) - Phi_j*(theta; x_n)  (multi-class, j* the first
 *                                                  maximizing class j != y)
 *   grad q_n by one single-sample backward pass with the library's
 *   sigma'(0) = alpha at kinks ([LL20] sec. 3, [VSS22] sec. 2);
 *   gamma(theta) = q_min / ||theta||^L (exact at any magnitude of
 *   ||theta||^L: mantissa and exponent once it leaves the normal range) and
 *   its gains along a direction, and a bound on gamma's rounding error.
 * Workspaces are the caller's, so the SLSQP callbacks of local.c never
 * allocate.
 */
#include "analysis_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* The steps eps of margin gains (mf__margin_gains): first-order directions
 * give gains linear in eps for small eps, four decades show it. */
const double mf__gain_steps[MF_N_GAINS] = {1e-1, 1e-2, 1e-3, 1e-4};

int mf__check_inputs(const mf_model *m, const mf_data *data, const double *theta, mf_err *e) {
    if (!m || !data || !theta)
        return mf__err(e, MF_ERR_INVALID, "model, data and theta must not be NULL");
    if (data->n < 1) return mf__err(e, MF_ERR_INVALID, "the data set is empty");
    if (data->d != m->d)
        return mf__err(e, MF_ERR_DIM, "data dimension %d does not match the model's %d (%s)", data->d,
                       m->d, m->spec);
    if ((data->num_classes == 0 ? 1 : data->num_classes) != m->n_out)
        return mf__err(e, MF_ERR_DIM, "data has %d classes but the model %s has %d outputs",
                       data->num_classes, m->spec, m->n_out);
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(theta[i]))
            return mf__err(e, MF_ERR_NUMERIC, "theta[%zu] is not finite", i);
    return MF_OK;
}

int mf__competitor(const mf_data *data, const double *z, int n_out, int i) {
    if (data->num_classes == 0) return -1;
    int y = data->cls[i], best = -1;
    for (int j = 0; j < n_out; j++)
        if (j != y && (best < 0 || z[j] > z[best])) best = j;
    return best;
}

/* The output seed of d (Phi_pos - Phi_neg) / d theta for sample i (binary:
 * y_i, whatever pos and neg). */
static void output_seed(const mf_data *data, int i, int pos, int neg, int n_out, double *dout) {
    for (int j = 0; j < n_out; j++) dout[j] = 0.0;
    if (data->num_classes == 0) {
        dout[0] = data->y[i];
    } else {
        dout[pos] = 1.0;
        if (neg >= 0) dout[neg] -= 1.0;
    }
}

void mf__output_grad(const mf_model *m, mf_work *w, const mf_data *data, const double *theta, int i,
                     int pos, int neg, double *z, double *dout, double *grad) {
    const double *xi = data->x + (size_t)i * data->d;
    mf_model_forward(m, w, theta, xi, 1, z);
    output_seed(data, i, pos, neg, m->n_out, dout);
    mf_model_backward(m, w, theta, xi, 1, dout, grad);
}

void mf__margin_jacobian(const mf_model *m, const mf_data *data, mf_work *w, const double *theta,
                         double *q, double *J, double *out1, double *dout1) {
    for (int n = 0; n < data->n; n++) {
        const double *x = data->x + (size_t)n * m->d;
        mf_model_forward(m, w, theta, x, 1, out1);
        int y = data->num_classes ? data->cls[n] : 0, jc = mf__competitor(data, out1, m->n_out, n);
        if (q) q[n] = data->num_classes ? out1[y] - out1[jc] : data->y[n] * out1[0];
        if (J) {
            output_seed(data, n, y, jc, m->n_out, dout1);
            mf_model_backward(m, w, theta, x, 1, dout1, J + (size_t)n * m->n_params);
        }
    }
}

/* Contract in marginflow.h. J is [N][n_params] row-major. */
int mf_margin_jacobian(const mf_model *m, const mf_data *data, const double *theta, double *q,
                       double *J, mf_err *e) {
    int rc = mf__check_inputs(m, data, theta, e);
    if (rc) return rc;
    mf_work *w = NULL;
    rc = mf_work_new(m, 1, &w, e);
    if (rc) return rc;
    double *buf = mf__malloc(2 * sizeof(double) * (size_t)m->n_out);
    if (!buf) {
        mf_work_free(w);
        return mf__err(e, MF_ERR_NOMEM, "out of memory for the margin Jacobian");
    }
    mf__margin_jacobian(m, data, w, theta, q, J, buf, buf + m->n_out);
    mf__free(buf);
    mf_work_free(w);
    return MF_OK;
}

/* Contract in marginflow.h: the model's pre-activations (its ops table). */
int mf_model_preactivations(const mf_model *m, const double *theta, const mf_data *data,
                            double *pre, mf_err *e) {
    int rc = mf__check_inputs(m, data, theta, e);
    if (rc) return rc;
    return mf__preact(m, theta, data, pre, NULL, e);
}

int mf__preact(const mf_model *m, const double *theta, const mf_data *data, double *pre,
               double *scale, mf_err *e) {
    const mf__model_ops *ops = mf__model_ops_of(m);
    if (!ops || !ops->preact || mf_model_n_hidden(m) == 0) return MF_OK;
    return ops->preact(m, theta, data, pre, scale, e);
}

double mf__norm_quotient(double q, const double *theta, size_t P, int L) {
    double nrm = mf__norm2(theta, P), d = pow(nrm, L);
    if (!(nrm > 0.0)) return NAN;
    if (isfinite(d) && d >= DBL_MIN) {
        double r = q / d;
        return q == 0 || (isfinite(r) && fabs(r) >= DBL_MIN) ? r : NAN;
    }
    int k; /* ||theta||^L beyond the normal range: mantissa and exponent */
    double g = mf__norm2_scaled(theta, P, &k);
    return mf__div_scaled(q, pow(g, L), (long)k * L);
}

double mf__gamma(const mf_model *m, mf_work *w, const mf_data *data, const double *theta,
                 double *out) {
    mf_model_forward(m, w, theta, data->x, data->n, out);
    double qmin = mf_margins(data, out, m->n_out, NULL);
    return mf__norm_quotient(qmin, theta, m->n_params, m->degree);
}

double mf__gamma_rounding(const mf_model *m, mf_work *w, const mf_data *data,
                          const double *theta, double qmin, double *abs_theta, double *abs_x,
                          double *out) {
    const size_t P = m->n_params, nx = (size_t)data->n * data->d;
    const int C = m->n_out;
    for (size_t i = 0; i < P; i++) abs_theta[i] = fabs(theta[i]);
    for (size_t i = 0; i < nx; i++) abs_x[i] = fabs(data->x[i]);
    mf_model_forward(m, w, abs_theta, abs_x, data->n, out);
    double amax = 0.0;
    for (int n = 0; n < data->n; n++) {
        const double *o = out + (size_t)n * C;
        double an;
        if (data->num_classes == 0) {
            an = fabs(o[0]);
        } else { /* |Phi_y| + max_{j != y} |Phi_j| bounds both outputs' errors */
            double mj = 0.0;
            for (int j = 0; j < C; j++)
                if (j != data->cls[n] && fabs(o[j]) > mj) mj = fabs(o[j]);
            an = fabs(o[data->cls[n]]) + mj;
        }
        if (an > amax) amax = an;
    }
    double K = 2.0;
    for (int l = 0; l < m->n_layers; l++) K += m->layers[l].cols + 2.0;
    const double u = DBL_EPSILON / 2;
    if (!(qmin > 0.0)) return INFINITY;
    return K * u * amax / fabs(qmin) + m->degree * ((double)P / 2 + 2) * u + (m->degree + 1) * u;
}

void mf__margin_gains(const mf_model *m, mf_work *w, const mf_data *data, const double *theta,
                      const double *d, double *out, double *tmp, double gains[MF_N_GAINS]) {
    double g0 = mf__gamma(m, w, data, theta, out);
    for (int k = 0; k < MF_N_GAINS; k++) {
        for (size_t i = 0; i < m->n_params; i++) tmp[i] = theta[i] + mf__gain_steps[k] * d[i];
        gains[k] = mf__gamma(m, w, data, tmp, out) / g0 - 1.0;
    }
}

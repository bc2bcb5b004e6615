/*
 * loss.c -- losses in the log domain, margins, smoothed margins.
 *
 * Training runs to losses of 10^-10000 and below, far under the smallest
 * double. Following docs/theory.md section 2 ([LL20] section 2 and App. K), the
 * loss is never materialized: we keep log Loss = LSE_n log ell(s_n) and the
 * per-sample weights w_n = -ell'(s_n) / Loss as a softmax, so the gradient
 * direction grad Loss / Loss is exact at any loss level. No exp() is taken
 * of a positive argument: every exp() below has an argument <= 0.
 */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* log(softplus(z)) = log log(1 + e^z), exact for all finite z.
 *   z <= 0:  u = e^z <= 1, log1p(u) = u (1 - u/2 + ...), so
 *            log log1p(u) = z + log(log1p(u) / u)  (the ratio is in
 *            [log 2, 1]; once u underflows to 0 the correction is 0).
 *   z > 0:   softplus(z) = z + log1p(e^{-z}) >= z, no overflow. */
static double log_softplus(double z) {
    if (z <= 0) {
        double u = exp(z);
        if (u == 0) return z;
        return z + log(log1p(u) / u);
    }
    return log(z + log1p(exp(-z)));
}

/* softplus(z) = log(1 + e^z) without overflow. */
static double softplus(double z) {
    return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
}

/* Per-sample loss pieces for the smooth margin s:
 *   *log_ell  = log ell(s)
 *   returns     log(-ell'(s))
 * exp:      ell = e^{-s},            -ell' = e^{-s}
 * logistic: ell = softplus(-s),      -ell' = 1 / (1 + e^{s}) = e^{-softplus(s)} */
static double loss_terms(mf_loss_kind loss, double s, double *log_ell) {
    if (loss == MF_LOSS_EXP) {
        *log_ell = -s;
        return -s;
    }
    *log_ell = log_softplus(-s);
    return -softplus(s);
}

/* Streaming log-sum-exp accumulator: value = m + log(acc). */
typedef struct {
    double m, acc;
} lse_acc;

static void lse_add(lse_acc *a, double v) {
    if (v == -INFINITY) return;
    if (a->acc == 0) {
        a->m = v;
        a->acc = 1;
    } else if (v <= a->m) {
        a->acc += exp(v - a->m);
    } else {
        a->acc = a->acc * exp(a->m - v) + 1;
        a->m = v;
    }
}

static double lse_value(const lse_acc *a) { return a->acc == 0 ? -INFINITY : a->m + log(a->acc); }

/* Label of batch row i. */
static int sample_index(const int *idx, int i) { return idx ? idx[i] : i; }

/* Smooth margin of one multi-class row z[C] with label y:
 *   s = -log sum_{j != y} e^{z_j - z_y}
 * and, when p != NULL, p[j] = softmax_{j != y}(z_j - z_y) (p[y] = 0). */
static double multiclass_smooth_margin(const double *z, int C, int y, double *p) {
    double mx = -INFINITY;
    for (int j = 0; j < C; j++)
        if (j != y && z[j] > mx) mx = z[j];
    double acc = 0;
    for (int j = 0; j < C; j++)
        if (j != y) acc += exp(z[j] - mx);
    if (p) {
        for (int j = 0; j < C; j++) p[j] = j == y ? 0.0 : exp(z[j] - mx) / acc;
    }
    return -((mx - z[y]) + log(acc));
}

/* True margin of sample i: y_i Phi(x_i), or Phi_y - max_{j != y} Phi_j. */
double mf__margin(const mf_data *data, const double *out, int n_out, int i) {
    if (data->num_classes == 0) return data->y[i] * out[(size_t)i * n_out];
    const double *z = out + (size_t)i * n_out;
    int y = data->cls[i];
    double mx = -INFINITY;
    for (int j = 0; j < n_out; j++)
        if (j != y && z[j] > mx) mx = z[j];
    return z[y] - mx;
}

double mf_margins(const mf_data *data, const double *out, int n_out, double *q) {
    double qmin = INFINITY;
    for (int i = 0; i < data->n; i++) {
        double qi = mf__margin(data, out, n_out, i);
        if (q) q[i] = qi;
        if (!(qi >= qmin)) qmin = qi;
    }
    return qmin;
}

/*
 * mf_loss_eval -- see the contract in marginflow.h.
 * Two passes over the batch: the first computes log ell_n (streamed into a
 * log-sum-exp) and stores log(-ell'_n) in wts (or in gout); the second turns
 * those into weights w_n = exp(log(-ell'_n) - log Loss) <= 1 and gradients
 * with respect to the outputs:
 *   binary:       dLoss/dz_n / Loss = -w_n y_n
 *   multi-class:  ds_n/dz_y = 1, ds_n/dz_j = -p_j (j != y), so
 *                 gout[n][y] = -w_n, gout[n][j] = w_n p_j.
 */
int mf_loss_eval(mf_loss_kind loss, const mf_data *data, const int *idx, int n,
                 const double *out, int n_out, double *log_loss, double *gout,
                 double *wts) {
    lse_acc acc = {0, 0};
    int multi = data->num_classes != 0;
    for (int i = 0; i < n; i++) {
        int si = sample_index(idx, i);
        const double *z = out + (size_t)i * n_out;
        double s;
        if (!multi) {
            s = data->y[si] * z[0];
        } else {
            for (int j = 0; j < n_out; j++)
                if (!isfinite(z[j])) goto nonfinite;
            s = multiclass_smooth_margin(z, n_out, data->cls[si], NULL);
        }
        if (!isfinite(s)) goto nonfinite;
        double log_ell, log_w = loss_terms(loss, s, &log_ell);
        lse_add(&acc, log_ell);
        if (wts) wts[i] = log_w;
        else if (gout) gout[(size_t)i * n_out + (multi ? data->cls[si] : 0)] = log_w;
    }
    *log_loss = lse_value(&acc);
    if (!gout && !wts) return MF_OK;
    for (int i = 0; i < n; i++) {
        int si = sample_index(idx, i);
        double *g = gout ? gout + (size_t)i * n_out : NULL;
        double log_w = wts ? wts[i] : g[multi ? data->cls[si] : 0];
        double w = exp(log_w - *log_loss);
        if (wts) wts[i] = w;
        if (!g) continue;
        if (!multi) {
            g[0] = -w * data->y[si];
        } else {
            int y = data->cls[si];
            multiclass_smooth_margin(out + (size_t)i * n_out, n_out, y, g);
            for (int j = 0; j < n_out; j++) g[j] *= w;
            g[y] = -w;
        }
    }
    return MF_OK;
nonfinite:
    *log_loss = NAN;
    return MF_ERR_NUMERIC;
}

double mf_loss_log_ell0(mf_loss_kind loss) { return loss == MF_LOSS_EXP ? 0.0 : log(log(2.0)); }

/*
 * Smoothed normalized margin gamma~ ([LL20] Def. of tilde-gamma; docs/theory.md s.1):
 *   exp:       log(1/Loss) / ||theta||^L
 *   logistic:  -log(expm1(Loss)) / ||theta||^L   (Loss summed over samples)
 * For logistic with log Loss = l: log(expm1(e^l)) = l + log(expm1(e^l) / e^l);
 * the ratio is 1 + e^l/2 + ... and is computed as expm1(L)/L when L > 0 is
 * representable, exactly 1 once e^l underflows. For large Loss (e^l > 700)
 * log(expm1(L)) = L + log1p(-e^{-L}).
 * The numerator -log(...) is returned here; the division is by the callers.
 */
static double smoothed_numerator(mf_loss_kind loss, double log_loss) {
    double lg;
    if (loss == MF_LOSS_EXP) {
        lg = log_loss;
    } else if (log_loss > log(700.0)) {
        double L = exp(log_loss);
        lg = L + log1p(-exp(-L));
    } else {
        double L = exp(log_loss);
        lg = L == 0 ? log_loss : log_loss + log(expm1(L) / L);
    }
    return -lg;
}

/* The smoothed margin with ||theta|| = f * 2^e (f > 0 finite, any
 * magnitude; see mf__norm2_scaled): numerator / (f^L 2^{eL}) by
 * mf__div_scaled, so it is exact to a few ulps whatever ||theta||^L is;
 * NAN (absent) where the quotient is not a normal double. */
double mf__smoothed_margin_scaled(mf_loss_kind loss, double log_loss, double f, long e,
                                  int degree) {
    return mf__div_scaled(smoothed_numerator(loss, log_loss), pow(f, degree), e * degree);
}

/* mf_smoothed_margin -- contract in marginflow.h. While norm^L is a normal
 * double the plain quotient (what earlier versions computed, to the bit);
 * beyond that, in the scaled (log2) domain. norm = 0: 0. */
double mf_smoothed_margin(mf_loss_kind loss, double log_loss, double norm, int degree) {
    if (norm == 0) return 0.0;
    if (!(norm > 0) || !isfinite(norm)) return NAN;
    double num = smoothed_numerator(loss, log_loss);
    double denom = pow(norm, degree);
    if (isfinite(denom) && denom >= DBL_MIN) {
        double r = num / denom;
        return num == 0 || (isfinite(r) && fabs(r) >= DBL_MIN) ? r : NAN;
    }
    int e;
    double f = frexp(norm, &e);
    return mf__smoothed_margin_scaled(loss, log_loss, f, e, degree);
}

const char *mf_loss_name(mf_loss_kind k) {
    switch (k) {
    case MF_LOSS_EXP: return "exp";
    case MF_LOSS_LOGISTIC: return "logistic";
    case MF_LOSS_CE: return "ce";
    }
    return "?";
}

int mf_loss_from_name(const char *s, mf_loss_kind *k) {
    static const mf_loss_kind all[] = {MF_LOSS_EXP, MF_LOSS_LOGISTIC, MF_LOSS_CE};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, mf_loss_name(all[i])) == 0) {
            *k = all[i];
            return MF_OK;
        }
    return MF_ERR_INVALID;
}

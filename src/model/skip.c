/*
 * skip.c -- skip-linear, docs/theory.md s.4, case G:
 *   Phi(x) = (1 + w2) <w1, x>,  w1 [d], w2 scalar;  binary data only.
 * NOT homogeneous (the "1 +" is a skip connection), nominal L = 2: the
 * counter-example where the normalized margin can decrease ([VSS22]).
 */
#include "model_internal.h"

#include <stdio.h>

/* s[i] = <w1, x_i>, [max_batch]. */
typedef struct skip_work {
    double *s;
} skip_work;

static int skip_plan(const mf_model *m, void *st, size_t B, size_t *doubles) {
    (void)m;
    (void)st;
    *doubles = B;
    return 0;
}

static void skip_bind(const mf_model *m, void *st, double *p, size_t B) {
    skip_work *w = st;
    (void)m;
    (void)B;
    w->s = p;
}

/* Phi(x) = (1 + w2) s, s = <w1, x>; s kept in w->s [n]. */
static void skip_forward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                         double *out) {
    skip_work *w = st;
    const int d = m->d;
    const double c = 1.0 + theta[d];
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < d; j++) s += x[(size_t)i * d + j] * theta[j];
        w->s[i] = s;
        out[i] = c * s;
    }
}

/* Phi = (1 + w2) <w1, x>  =>  dPhi/dw1 = (1 + w2) x,  dPhi/dw2 = <w1, x> = s. */
static void skip_backward(const mf_model *m, void *st, const double *theta, const double *x, int n,
                          const double *dout, double *grad) {
    skip_work *w = st;
    const int d = m->d;
    const double c = 1.0 + theta[d];
    double g2 = 0.0;
    for (int j = 0; j < d; j++) grad[j] = 0.0;
    for (int i = 0; i < n; i++) {
        const double di = dout[i];
        for (int j = 0; j < d; j++) grad[j] += c * di * x[(size_t)i * d + j];
        g2 += di * w->s[i];
    }
    grad[d] = g2;
}

static void skip_layout(mf_model *m) {
    mf__model_add_layer(m, "w1", 1, m->d);
    mf__model_add_layer(m, "w2", 1, 1);
    m->degree = 2;
    m->depth = 1;
    m->homogeneous = 0;
    snprintf(m->spec, sizeof m->spec, "skip-linear");
}

static const mf__option skip_options[] = {{NULL, MF__OPT_FLAG, 0, 0}};

const mf__model_ops mf__ops_skip_linear = {
    .kind = MF_MODEL_SKIP_LINEAR,
    .name = "skip-linear",
    .options_help = "none",
    .options = skip_options,
    .multiclass = 0,
    .layout = skip_layout,
    .work_state = sizeof(skip_work),
    .work_plan = skip_plan,
    .work_bind = skip_bind,
    .forward = skip_forward,
    .backward = skip_backward,
};

/*
 * trained.h -- what the end-to-end tests of the analysis share
 * (test_science.c, test_verdicts.c, test_analyze.c): a run trained with
 * mf_train to a loss level, and the independent re-check of a not-local
 * witness. Static functions: each test program includes it once.
 */
#ifndef MF_TESTS_TRAINED_H
#define MF_TESTS_TRAINED_H

#include "marginflow.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mf_data *data;
    mf_model *model;
    mf_train_state *st;
    mf_train_result res;
} trained;

/* Train model on data from init (explicit values, or gauss with the scale
 * and seed) with optimizer opt (default settings otherwise) until log10
 * Loss <= target. MF_OK, or the error (printed). */
static inline int train_to(trained *t, const char *data, const char *model, const double *init,
                    double scale, uint64_t seed, mf_optimizer_kind opt, double target) {
    memset(t, 0, sizeof *t);
    mf_err e = {0, ""};
    int rc = mf_data_from_spec(data, NULL, &t->data, &e);
    if (!rc) rc = mf_model_parse(model, t->data->d, t->data->num_classes, &t->model, &e);
    if (!rc) rc = mf_train_state_new(t->model->n_params, &t->st, &e);
    if (!rc && init) memcpy(t->st->theta, init, sizeof(double) * t->model->n_params);
    if (!rc && !init) {
        mf_rng r;
        mf_rng_seed(&r, seed);
        rc = mf_model_init(t->model, "gauss", scale, &r, t->st->theta, &e);
    }
    mf_train_settings s;
    mf_train_settings_default(&s);
    s.optimizer = opt;
    s.max_steps = 0;
    s.until_log10_loss = target;
    if (!rc) rc = mf_train(t->model, t->data, &s, t->st, NULL, &t->res, &e);
    if (rc) fprintf(stderr, "train %s %s: %s\n", data, model, e.msg);
    return rc;
}

static inline void trained_free(trained *t) {
    mf_train_state_free(t->st);
    mf_model_free(t->model);
    mf_data_free(t->data);
}

/* The witness of a not-local verdict re-evaluated independently of the
 * analysis (mf_margin_jacobian's single-sample passes, a plain norm): a
 * feasible point (q_min >= 1), within its stated radius, with a larger
 * normalized margin than theta~, as the analysis reported it; kind (may be
 * NULL) the kind of witness expected. */
static inline void check_witness(const mf_model *m, const mf_data *D, const mf_analysis *a,
                          const char *kind) {
    const mf_witness *w = &a->witness;
    CHECK(w->found && w->theta, "no witness: %s", a->verdict_reason);
    if (!w->found || !w->theta) return;
    if (kind) CHECK(strcmp(w->kind, kind) == 0, "witness kind %s, want %s", w->kind, kind);
    double *q = malloc(sizeof(double) * (size_t)D->n), *q0 = malloc(sizeof(double) * (size_t)D->n);
    mf_margin_jacobian(m, D, w->theta, q, NULL, NULL);
    mf_margin_jacobian(m, D, a->theta_tilde, q0, NULL, NULL);
    double qm = INFINITY, qm0 = INFINITY, n2 = 0, n20 = 0;
    for (int n = 0; n < D->n; n++) {
        if (q[n] < qm) qm = q[n];
        if (q0[n] < qm0) qm0 = q0[n];
    }
    for (size_t i = 0; i < m->n_params; i++) {
        n2 += w->theta[i] * w->theta[i];
        n20 += a->theta_tilde[i] * a->theta_tilde[i];
    }
    double g = qm / pow(sqrt(n2), m->degree), g0 = qm0 / pow(sqrt(n20), m->degree);
    CHECK(qm >= 1.0 - 1e-12, "witness q_min %.17g < 1", qm);
    CHECK(g > g0 * (1 + 1e-9), "witness gamma %.17g not above gamma(theta~) %.17g", g, g0);
    CHECK(fabs(g - w->gamma) <= 1e-12 * g, "witness gamma %.17g, reported %.17g", g, w->gamma);
    CHECK(w->gain_ref > w->noise && w->noise >= 1e-9, "gain %g vs noise %g", w->gain_ref, w->noise);
    CHECK(w->distance <= w->radius * (1 + 1e-6), "witness at %g outside its radius %g", w->distance,
          w->radius);
    free(q);
    free(q0);
}

#endif

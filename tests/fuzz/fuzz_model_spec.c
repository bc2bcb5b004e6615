/*
 * fuzz_model_spec.c -- libFuzzer harness for model spec strings
 * (mf_model_parse). Input: byte 0 picks the data dimension d = 1..64, byte 1
 * the classes (0 = binary or 2..5), the rest is the spec.
 * Checks: failures are MF_ERR_PARSE / MF_ERR_UNSUPPORTED (or NOMEM) with a
 * message; a parsed model has a consistent layout (groups contiguous,
 * n_params their sum, at most MF_MAX_LAYERS), its canonical spec parses to
 * the same model, and for models of at most 20000 parameters the layout text
 * has one line per parameter and a forward/backward pass on 3 points is
 * finite and, for homogeneous models, Phi(2 theta) = 2^L Phi(theta) to 1e-9
 * relative.
 */
#include "fuzz.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("model-spec");
    return 0;
}

/* Forward/backward on 3 random points; homogeneity check. */
static void exercise(const mf_model *m) {
    enum { NB = 3 };
    mf_work *w = NULL;
    mf_err e = {0, ""};
    int rc = mf_work_new(m, NB, &w, &e);
    if (rc) {
        FUZZ_ASSERT(rc == MF_ERR_NOMEM || rc == MF_ERR_INVALID);
        return;
    }
    size_t P = m->n_params, no = (size_t)NB * m->n_out;
    double *theta = calloc(P ? P : 1, sizeof *theta), *t2 = calloc(P ? P : 1, sizeof *t2);
    double *x = calloc((size_t)NB * m->d, sizeof *x), *out = calloc(no, sizeof *out);
    double *out2 = calloc(no, sizeof *out2), *dout = calloc(no, sizeof *dout);
    double *grad = calloc(P ? P : 1, sizeof *grad);
    if (!theta || !t2 || !x || !out || !out2 || !dout || !grad) abort();
    mf_rng rng;
    mf_rng_seed(&rng, 7);
    FUZZ_ASSERT(mf_model_init(m, "gauss", 0.5, &rng, theta, &e) == MF_OK);
    for (size_t i = 0; i < (size_t)NB * m->d; i++) x[i] = mf_rng_normal(&rng);
    for (size_t i = 0; i < no; i++) dout[i] = 1.0;
    mf_model_forward(m, w, theta, x, NB, out);
    for (size_t i = 0; i < no; i++) FUZZ_ASSERT(isfinite(out[i]));
    mf_model_backward(m, w, theta, x, NB, dout, grad);
    for (size_t i = 0; i < P; i++) FUZZ_ASSERT(isfinite(grad[i]));
    if (m->homogeneous) {
        for (size_t i = 0; i < P; i++) t2[i] = 2.0 * theta[i];
        mf_model_forward(m, w, t2, x, NB, out2);
        double c = ldexp(1.0, m->degree);
        for (size_t i = 0; i < no; i++)
            FUZZ_ASSERT(fabs(out2[i] - c * out[i]) <= 1e-9 * (fabs(c * out[i]) + 1e-300) + 1e-290);
    }
    free(theta), free(t2), free(x), free(out), free(out2), free(dout), free(grad);
    mf_work_free(w);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 2) return 0;
    int d = 1 + data[0] % 64, c = data[1] % 6;
    int nc = c < 2 ? 0 : c;
    char *spec = fuzz_string(data + 2, size - 2);
    mf_model *m = NULL;
    mf_err e = {0, ""};
    int rc = mf_model_parse(spec, d, nc, &m, &e);
    if (rc != MF_OK) {
        fuzz_check_error(rc, &e);
        FUZZ_ASSERT(m == NULL);
        FUZZ_ASSERT(rc == MF_ERR_PARSE || rc == MF_ERR_UNSUPPORTED || rc == MF_ERR_NOMEM);
        free(spec);
        return 0;
    }
    FUZZ_ASSERT(m->d == d && m->n_out == (nc ? nc : 1));
    FUZZ_ASSERT(m->n_layers >= 1 && m->n_layers <= MF_MAX_LAYERS);
    FUZZ_ASSERT(m->degree >= 1 && m->spec[0] != '\0');
    size_t off = 0;
    for (int l = 0; l < m->n_layers; l++) {
        FUZZ_ASSERT(m->layers[l].offset == off);
        FUZZ_ASSERT(m->layers[l].rows >= 1 && m->layers[l].cols >= 1);
        off += (size_t)m->layers[l].rows * (size_t)m->layers[l].cols;
    }
    FUZZ_ASSERT(off == m->n_params);
    /* the canonical spec is a fixed point */
    mf_model *m2 = NULL;
    rc = mf_model_parse(m->spec, d, nc, &m2, &e);
    FUZZ_ASSERT(rc == MF_OK || rc == MF_ERR_NOMEM);
    if (rc == MF_OK) {
        FUZZ_ASSERT(strcmp(m2->spec, m->spec) == 0);
        FUZZ_ASSERT(m2->n_params == m->n_params && m2->n_layers == m->n_layers);
        FUZZ_ASSERT(m2->kind == m->kind && m2->alpha == m->alpha);
    }
    mf_model_free(m2);
    if (m->n_params <= 20000) {
        size_t need = mf_model_layout(m, NULL, 0);
        char *buf = malloc(need + 1);
        if (!buf) abort();
        FUZZ_ASSERT(mf_model_layout(m, buf, need + 1) == need && strlen(buf) == need);
        size_t lines = 0;
        for (size_t i = 0; i < need; i++) lines += buf[i] == '\n';
        FUZZ_ASSERT(lines == m->n_params + 1);
        free(buf);
        exercise(m);
    }
    mf_model_free(m);
    free(spec);
    return 0;
}

/*
 * mfexport.c -- bench helper: writes what the PyTorch side of bench/run needs
 * to train exactly the problem marginflow trains.
 *
 *   mfexport DATASPEC MODELSPEC SEED SCALE OUTDIR
 *
 * writes into OUTDIR (which must exist):
 *   data.csv    one sample per line: label, then the d features, %.17g in the
 *               C locale (so float() in Python reads back the same doubles);
 *               the data set is the one mf_data_from_spec builds from DATASPEC
 *   layout.txt  line 1: the canonical model spec; then one line per parameter
 *               group "name offset rows cols" (the flat theta layout)
 *   init.txt    initial parameters in marginflow's params format (for
 *               marginflow train --init-file and for Python): every group l
 *               drawn i.i.d. N(0, SCALE^2 / cols_l) (fan-in scaling, so wide
 *               and deep workloads start with O(1) outputs), one mf_rng seeded
 *               with SEED, drawn in theta order.
 * Exit status 0 on success, 1 on any error (printed to stderr).
 */
#include "marginflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const mf_err *e) {
    fprintf(stderr, "mfexport: %s: %s\n", what, e ? e->msg : "failed");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: mfexport DATASPEC MODELSPEC SEED SCALE OUTDIR\n");
        return 2;
    }
    const char *dir = argv[5];
    double scale = strtod(argv[4], NULL);
    unsigned long long seed = strtoull(argv[3], NULL, 10);
    mf_err e = {0, ""};
    mf_data *data = NULL;
    mf_model *m = NULL;
    if (mf_data_from_spec(argv[1], NULL, &data, &e)) return fail(argv[1], &e);
    if (mf_model_parse(argv[2], data->d, data->num_classes, &m, &e)) return fail(argv[2], &e);

    char path[4096];
    char num[64];
    snprintf(path, sizeof path, "%s/data.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return fail(path, NULL);
    for (int i = 0; i < data->n; i++) {
        mf_format_double(num, sizeof num, data->num_classes ? (double)data->cls[i] : data->y[i]);
        fputs(num, f);
        for (int j = 0; j < data->d; j++) {
            mf_format_double(num, sizeof num, data->x[(size_t)i * data->d + j]);
            fputc(',', f);
            fputs(num, f);
        }
        fputc('\n', f);
    }
    if (fclose(f)) return fail(path, NULL);

    snprintf(path, sizeof path, "%s/layout.txt", dir);
    f = fopen(path, "w");
    if (!f) return fail(path, NULL);
    fprintf(f, "%s\n", m->spec);
    for (int l = 0; l < m->n_layers; l++)
        fprintf(f, "%s %zu %d %d\n", m->layers[l].name, m->layers[l].offset, m->layers[l].rows,
                m->layers[l].cols);
    if (fclose(f)) return fail(path, NULL);

    double *theta = malloc(m->n_params * sizeof *theta);
    if (!theta) return fail("out of memory", NULL);
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    for (int l = 0; l < m->n_layers; l++) {
        const mf_layer *ly = &m->layers[l];
        double s = scale / sqrt((double)ly->cols);
        for (size_t i = 0; i < (size_t)ly->rows * ly->cols; i++)
            theta[ly->offset + i] = s * mf_rng_normal(&rng);
    }
    snprintf(path, sizeof path, "%s/init.txt", dir);
    if (mf_params_write(path, m, theta, &e)) return fail(path, &e);
    free(theta);
    mf_model_free(m);
    mf_data_free(data);
    return 0;
}

/*
 * mfexport.c -- bench helper: writes what the PyTorch side of bench/run needs
 * to train exactly the problem marginflow trains.
 *
 *   mfexport DATASPEC MODELSPEC SEED SCALE OUTDIR [LIMIT]
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
 * With LIMIT (image workloads, e.g. the CNN epoch benchmark): the data set is
 * mf_data_select's class-balanced subset of LIMIT samples (data seed 1, as
 * `marginflow train --train-limit LIMIT`), and instead of data.csv:
 *   x.bin       the features, float64 little-endian [n][d]
 *   y.bin       the class indices, int32 little-endian [n]
 *   perm.bin    mf_epoch_permutation(SEED, 0, 0, n), int32 [n]: the order of
 *               epoch 0 of an epoch run with --seed SEED
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
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: mfexport DATASPEC MODELSPEC SEED SCALE OUTDIR [LIMIT]\n");
        return 2;
    }
    int limit = argc == 7 ? atoi(argv[6]) : 0;
    const char *dir = argv[5];
    double scale = strtod(argv[4], NULL);
    unsigned long long seed = strtoull(argv[3], NULL, 10);
    mf_err e = {0, ""};
    mf_data *data = NULL;
    mf_model *m = NULL;
    if (mf_data_from_spec(argv[1], NULL, &data, &e)) return fail(argv[1], &e);
    if (limit > 0) {
        mf_data *sub = NULL;
        if (mf_data_select(data, NULL, limit, 1, &sub, &e)) return fail("subset", &e);
        mf_data_free(data);
        data = sub;
    }
    if (mf_model_parse(argv[2], data->d, data->num_classes, &m, &e)) return fail(argv[2], &e);

    char path[4096];
    char num[64];
    FILE *f;
    if (limit > 0) { /* binary files (a little-endian host, as the benchmark machines) */
        int *perm = malloc(sizeof(int) * (size_t)data->n);
        if (!perm) return fail("out of memory", NULL);
        mf_epoch_permutation(seed, 0, 0, data->n, perm);
        struct {
            const char *name;
            const void *p;
            size_t bytes;
        } out[3] = {{"x.bin", data->x, sizeof(double) * (size_t)data->n * data->d},
                    {"y.bin", data->cls, sizeof(int) * (size_t)data->n},
                    {"perm.bin", perm, sizeof(int) * (size_t)data->n}};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, out[k].name);
            f = fopen(path, "wb");
            if (!f || fwrite(out[k].p, 1, out[k].bytes, f) != out[k].bytes || fclose(f))
                return fail(path, NULL);
        }
        free(perm);
    }
    snprintf(path, sizeof path, "%s/data.csv", dir);
    f = limit > 0 ? NULL : fopen(path, "w");
    if (!f && limit <= 0) return fail(path, NULL);
    for (int i = 0; f && i < data->n; i++) {
        mf_format_double(num, sizeof num, data->num_classes ? (double)data->cls[i] : data->y[i]);
        fputs(num, f);
        for (int j = 0; j < data->d; j++) {
            mf_format_double(num, sizeof num, data->x[(size_t)i * data->d + j]);
            fputc(',', f);
            fputs(num, f);
        }
        fputc('\n', f);
    }
    if (f && fclose(f)) return fail(path, NULL);

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

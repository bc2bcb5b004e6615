/*
 * fuzz_data_spec.c -- libFuzzer harness for data spec strings
 * (mf_data_from_spec with builtin:, gauss: and symmetric:). The first input
 * byte picks the prefix (so the fuzzer never reaches the file-path branch,
 * which could name /dev/zero), the rest is the text after it.
 * Checks: failures are MF_ERR_INVALID (bad name, key or value, or a set
 * larger than the library's limit) or a clean MF_ERR_NOMEM; a built set
 * satisfies the data contract, a symmetric set is its own mirror image, and
 * its canonical description (desc) is itself a spec that rebuilds the very
 * same set bit for bit.
 */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("data-spec");
    return 0;
}

static void same_data(const mf_data *a, const mf_data *b) {
    FUZZ_ASSERT(a->n == b->n && a->d == b->d && a->num_classes == b->num_classes);
    FUZZ_ASSERT(memcmp(a->x, b->x, (size_t)a->n * (size_t)a->d * sizeof *a->x) == 0);
    FUZZ_ASSERT(memcmp(a->y, b->y, (size_t)a->n * sizeof *a->y) == 0);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static const char *const prefix[] = {"builtin:", "gauss:", "symmetric:", "gauss",
                                         "symmetric"};
    if (size < 1) return 0;
    int k = data[0] % 5;
    if (k >= 3 && size > 1) k -= 2; /* the bare names take no text after them */
    char *rest = fuzz_string(data + 1, size - 1);
    size_t pl = strlen(prefix[k]);
    char *spec = malloc(pl + strlen(rest) + 1);
    if (!spec) abort();
    memcpy(spec, prefix[k], pl);
    strcpy(spec + pl, rest);
    free(rest);

    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_from_spec(spec, NULL, &D, &e);
    if (rc == MF_OK) {
        fuzz_check_data(D);
        FUZZ_ASSERT(D->num_classes == 0);
        FUZZ_ASSERT(D->desc[0] != '\0');
        if (k == 2 || k == 4) { /* symmetric: sample n/2 + i is (-x_i, -y_i) */
            int h = D->n / 2;
            FUZZ_ASSERT(D->n == 2 * h);
            for (int i = 0; i < h; i++) {
                FUZZ_ASSERT(D->y[h + i] == -D->y[i]);
                for (int j = 0; j < D->d; j++)
                    FUZZ_ASSERT(D->x[(size_t)(h + i) * D->d + j] == -D->x[(size_t)i * D->d + j]);
            }
        }
        mf_data *D2 = NULL;
        mf_err e2 = {0, ""};
        int rc2 = mf_data_from_spec(D->desc, NULL, &D2, &e2);
        FUZZ_ASSERT(rc2 == MF_OK || rc2 == MF_ERR_NOMEM);
        if (rc2 == MF_OK) same_data(D, D2);
        mf_data_free(D2);
    } else {
        fuzz_check_error(rc, &e);
        FUZZ_ASSERT(D == NULL);
        FUZZ_ASSERT(rc == MF_ERR_INVALID || rc == MF_ERR_NOMEM);
    }
    mf_data_free(D);
    free(spec);
    return 0;
}

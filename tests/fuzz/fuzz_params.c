/*
 * fuzz_params.c -- libFuzzer harness for parameter lists and files
 * (mf_params_parse, mf_params_read, mf_params_read_for). Input: byte 0 picks
 * the expected count n = 0..15, the rest is the text (the file gets every
 * byte, NULs included; the list stops at the first NUL).
 * Checks: failures are MF_ERR_PARSE / MF_ERR_DIM (and for a file whose
 * header names another count, MF_ERR_FOREIGN) with a message; on success
 * every value is finite, list and file agree on NUL-free text without a
 * "# marginflow params" header (a list does not read headers), and writing
 * the values with mf_params_write and reading them back, also with the
 * model's header checked, gives the same bits.
 */
#include "fuzz.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("params");
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    size_t n = data[0] % 16;
    double a[16], b[16];
    mf_err e = {0, ""};
    char *list = fuzz_string(data + 1, size - 1);
    int rc1 = mf_params_parse(list, n, a, &e);
    if (rc1) {
        fuzz_check_error(rc1, &e);
        FUZZ_ASSERT(rc1 == MF_ERR_PARSE || rc1 == MF_ERR_DIM);
    } else {
        for (size_t i = 0; i < n; i++) FUZZ_ASSERT(isfinite(a[i]));
    }
    const char *path = fuzz_file(data + 1, size - 1);
    int rc2 = mf_params_read(path, n, b, &e);
    if (rc2) {
        fuzz_check_error(rc2, &e);
        FUZZ_ASSERT(rc2 == MF_ERR_PARSE || rc2 == MF_ERR_DIM || rc2 == MF_ERR_NOMEM ||
                    rc2 == MF_ERR_FOREIGN);
    }
    /* no NUL and no header: the file and the list are the same text */
    if (strlen(list) == size - 1 && strncmp(list, "# marginflow params", 19) != 0) {
        FUZZ_ASSERT(rc1 == rc2 || rc2 == MF_ERR_NOMEM);
        if (rc1 == MF_OK && rc2 == MF_OK) FUZZ_ASSERT(memcmp(a, b, n * sizeof *a) == 0);
    }
    if (rc1 == MF_OK && n >= 1) { /* round trip through a params file */
        mf_model *m = NULL;
        if (mf_model_parse("linear", (int)n, 0, &m, &e) == MF_OK) {
            FUZZ_ASSERT(m->n_params == n);
            int rc = mf_params_write(path, m, a, &e);
            FUZZ_ASSERT(rc == MF_OK || rc == MF_ERR_NOMEM);
            if (rc == MF_OK) {
                rc = mf_params_read(path, n, b, &e);
                FUZZ_ASSERT(rc == MF_OK || rc == MF_ERR_NOMEM);
                if (rc == MF_OK) FUZZ_ASSERT(memcmp(a, b, n * sizeof *a) == 0);
                rc = mf_params_read_for(path, m, b, &e);
                FUZZ_ASSERT(rc == MF_OK || rc == MF_ERR_NOMEM);
                if (rc == MF_OK) FUZZ_ASSERT(memcmp(a, b, n * sizeof *a) == 0);
            }
            mf_model_free(m);
        }
    }
    free(list);
    return 0;
}

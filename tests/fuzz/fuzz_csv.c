/*
 * fuzz_csv.c -- libFuzzer harness for the csv reader (mf_data_load with
 * format "csv"). The input bytes are the file. On success the data set must
 * satisfy its contract (fuzz_check_data); on failure the error must be
 * MF_ERR_PARSE naming "PATH:LINE:COL: " or a clean MF_ERR_NOMEM (inputs that
 * ask for more than the harness allocator allows).
 */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("csv");
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    const char *path = fuzz_file(data, size);
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(path, "csv", 0, &D, &e);
    if (rc == MF_OK) {
        fuzz_check_data(D);
    } else {
        fuzz_check_error(rc, &e);
        FUZZ_ASSERT(D == NULL);
        FUZZ_ASSERT(rc == MF_ERR_PARSE || rc == MF_ERR_NOMEM);
        if (rc == MF_ERR_PARSE) fuzz_check_position(&e, path);
    }
    mf_data_free(D);
    return 0;
}

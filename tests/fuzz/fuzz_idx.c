/*
 * fuzz_idx.c -- libFuzzer harness for the image readers of src/idx.c.
 * Input: byte 0 chooses the reader (even: an IDX pair, odd: one CIFAR-10
 * batch as DIR/test_batch.bin), bytes 1-2 (little-endian) the length of the
 * image file's bytes for IDX (the rest is the label file). Either file may
 * be plain or gzip (gzread passes both); the corpus has both.
 * Checks: a loaded set satisfies fuzz_check_data, its pixels lie in [0, 1],
 * IDX n equals the label count; a failure is MF_ERR_PARSE, MF_ERR_CORRUPT,
 * MF_ERR_DIM, MF_ERR_IO or MF_ERR_NOMEM with a message that starts with the
 * path of one of the files (or names both, for a count mismatch).
 */
#include "fuzz.h"

#include <sys/stat.h>

static char dir[300], im[400], lb[400], cifar[400];

static void cleanup(void) {
    remove(im), remove(lb), remove(cifar);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("idx");
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mf-fuzz-idx-%ld", t && *t ? t : "/tmp", (long)getpid());
    mkdir(dir, 0700);
    snprintf(im, sizeof im, "%s/images", dir);
    snprintf(lb, sizeof lb, "%s/labels", dir);
    snprintf(cifar, sizeof cifar, "%s/test_batch.bin", dir);
    atexit(cleanup);
    return 0;
}

static void put(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(b, 1, n, f) != n) || fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 3) return 0;
    int use_cifar = data[0] & 1;
    size_t split = (size_t)data[1] | (size_t)data[2] << 8;
    const unsigned char *p = data + 3;
    size_t n = size - 3;
    if (split > n) split = n;
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc;
    if (use_cifar) {
        put(cifar, p, n);
        rc = mf_data_load_cifar10(dir, 1, &D, &e);
    } else {
        put(im, p, split);
        put(lb, p + split, n - split);
        rc = mf_data_load_idx(im, lb, &D, &e);
    }
    if (rc == MF_OK) {
        fuzz_check_data(D);
        for (size_t i = 0; i < (size_t)D->n * (size_t)D->d; i++) FUZZ_ASSERT(D->x[i] >= 0 && D->x[i] <= 1);
        if (use_cifar) FUZZ_ASSERT(D->d == 3072 && D->num_classes == 10);
        mf_data_free(D);
        return 0;
    }
    fuzz_check_error(rc, &e);
    FUZZ_ASSERT(D == NULL);
    FUZZ_ASSERT(rc == MF_ERR_PARSE || rc == MF_ERR_CORRUPT || rc == MF_ERR_DIM || rc == MF_ERR_IO ||
                rc == MF_ERR_NOMEM);
    FUZZ_ASSERT(strstr(e.msg, dir) != NULL);
    return 0;
}

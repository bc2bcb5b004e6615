/*
 * fuzz.h -- what every libFuzzer harness in tests/fuzz/ shares.
 *
 * Each harness (fuzz_<name>.c) defines LLVMFuzzerTestOneInput and feeds one
 * parser of the library with the fuzzer's bytes; it is built by `make fuzz`
 * with clang -fsanitize=fuzzer,address,undefined, so any memory error,
 * undefined behaviour, leak, crash or hang is a finding. Besides "no crash",
 * harnesses check the parser's contract on success (invariants that a silent
 * mis-read would break) and abort() when it is violated.
 *
 * fuzz_setup() installs an allocator that refuses any single allocation above
 * FUZZ_ALLOC_CAP bytes, so an input that asks for gigabytes (a libsvm index
 * of 10^9, gauss:n=10^6) exercises the library's clean MF_ERR_NOMEM path
 * instead of exhausting the fuzzer's memory limit.
 * fuzz_file() writes the input to one private temporary file (for the
 * parsers that read files), removed at exit.
 */
#ifndef MF_FUZZ_H
#define MF_FUZZ_H

#include "marginflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest single allocation the harnesses allow the library (bytes). */
#define FUZZ_ALLOC_CAP ((size_t)64 << 20)

static inline void *fuzz_malloc(size_t n) { return n > FUZZ_ALLOC_CAP ? NULL : malloc(n); }
static inline void *fuzz_realloc(void *p, size_t n) { return n > FUZZ_ALLOC_CAP ? NULL : realloc(p, n); }

static char fuzz_path[256];

static inline void fuzz_cleanup(void) {
    if (fuzz_path[0]) remove(fuzz_path);
}

/* Install the capped allocator and choose the temporary file name
 * ($TMPDIR or /tmp, "mf-fuzz-<tag>-<pid>"). */
static inline void fuzz_setup(const char *tag) {
    mf_set_allocator(fuzz_malloc, fuzz_realloc, free);
    const char *dir = getenv("TMPDIR");
    snprintf(fuzz_path, sizeof fuzz_path, "%s/mf-fuzz-%s-%ld", dir && *dir ? dir : "/tmp", tag,
             (long)getpid());
    atexit(fuzz_cleanup);
}

/* Write data[size] to the temporary file; returns its path (abort on failure:
 * a harness that cannot write its file tests nothing). */
static inline const char *fuzz_file(const unsigned char *data, size_t size) {
    FILE *f = fopen(fuzz_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(fuzz_path);
        abort();
    }
    return fuzz_path;
}

/* A NUL-terminated copy of data[size] (cut at the first NUL byte). */
static inline char *fuzz_string(const unsigned char *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Stop with a message when a contract check fails (libFuzzer reports the
 * abort as a crash and saves the input). */
#define FUZZ_ASSERT(cond)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz contract violated: %s (%s:%d)\n", #cond, __FILE__,       \
                    __LINE__);                                                             \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* Every failure must come with a known code and a non-empty message. */
static inline void fuzz_check_error(int rc, const mf_err *e) {
    FUZZ_ASSERT(rc > MF_OK && rc <= MF_ERR_CALLBACK);
    FUZZ_ASSERT(e->code == rc);
    FUZZ_ASSERT(e->msg[0] != '\0');
    FUZZ_ASSERT(memchr(e->msg, '\0', sizeof e->msg) != NULL);
}

/* The contract of a data set that loaded: sizes >= 1, finite features,
 * labels -1/+1 (binary) or class indices in [0, C), C >= 2 (multi-class). */
static inline void fuzz_check_data(const mf_data *D) {
    FUZZ_ASSERT(D && D->n >= 1 && D->d >= 1 && D->x);
    for (size_t i = 0; i < (size_t)D->n * (size_t)D->d; i++)
        FUZZ_ASSERT(D->x[i] - D->x[i] == 0); /* finite */
    if (D->num_classes == 0) {
        FUZZ_ASSERT(D->y && !D->cls);
        for (int i = 0; i < D->n; i++) FUZZ_ASSERT(D->y[i] == 1.0 || D->y[i] == -1.0);
    } else {
        FUZZ_ASSERT(D->num_classes >= 2 && D->cls && !D->y);
        for (int i = 0; i < D->n; i++) FUZZ_ASSERT(D->cls[i] >= 0 && D->cls[i] < D->num_classes);
    }
}

/* A file parse error names the file, line and column: "PATH:LINE:COL: ". */
static inline void fuzz_check_position(const mf_err *e, const char *path) {
    size_t pl = strlen(path);
    FUZZ_ASSERT(strncmp(e->msg, path, pl) == 0 && e->msg[pl] == ':');
    const char *p = e->msg + pl + 1;
    for (int k = 0; k < 2; k++) {
        FUZZ_ASSERT(*p >= '1' && *p <= '9');
        while (*p >= '0' && *p <= '9') p++;
        FUZZ_ASSERT(*p == ':');
        p++;
    }
    FUZZ_ASSERT(*p == ' ');
}

/* One input of a data-file harness: the bytes are a file in `format`. On
 * success the data set must satisfy its contract; on failure the error must
 * be MF_ERR_PARSE naming "PATH:LINE:COL: " or a clean MF_ERR_NOMEM (inputs
 * that ask for more than the harness allocator allows). */
static inline void fuzz_data_file(const char *format, const unsigned char *data, size_t size) {
    const char *path = fuzz_file(data, size);
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(path, format, 0, &D, &e);
    if (rc == MF_OK) {
        fuzz_check_data(D);
    } else {
        fuzz_check_error(rc, &e);
        FUZZ_ASSERT(D == NULL);
        FUZZ_ASSERT(rc == MF_ERR_PARSE || rc == MF_ERR_NOMEM);
        if (rc == MF_ERR_PARSE) fuzz_check_position(&e, path);
    }
    mf_data_free(D);
}

#endif

/*
 * fuzz_checkpoint.c -- libFuzzer harness for checkpoints (mf_checkpoint_read).
 * The input is the file. It is read twice: as given (expecting fingerprint
 * 0x12345678 and 3 parameters), and with the header's fingerprint, the
 * payload's parameter count and a recomputed CRC-32 patched in, so that the
 * mutated payload gets past the checksum and the decoding after it is
 * fuzzed too.
 * Checks: failures are MF_ERR_CORRUPT / MF_ERR_FOREIGN (or NOMEM) with a
 * message; a state that loads has the expected n_params, and writing it with
 * mf_checkpoint_write gives the same bytes (a version-1 file: the current
 * version, which reads back to the same state bit for bit).
 */
#include "fuzz.h"

#include <zlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("checkpoint");
    return 0;
}

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void check_read(const unsigned char *buf, size_t size, uint32_t fp, size_t np) {
    const char *path = fuzz_file(buf, size);
    mf_train_state *s = NULL;
    mf_err e = {0, ""};
    int rc = mf_checkpoint_read(path, fp, np, &s, &e);
    if (rc) {
        fuzz_check_error(rc, &e);
        FUZZ_ASSERT(s == NULL);
        FUZZ_ASSERT(rc == MF_ERR_CORRUPT || rc == MF_ERR_FOREIGN || rc == MF_ERR_NOMEM);
        return;
    }
    FUZZ_ASSERT(s && s->n_params == np && s->theta);
    /* re-serialize: the same bytes as the file */
    rc = mf_checkpoint_write(path, s, fp, &e);
    FUZZ_ASSERT(rc == MF_OK || rc == MF_ERR_NOMEM);
    if (rc == MF_OK) {
        FILE *f = fopen(path, "rb");
        FUZZ_ASSERT(f);
        unsigned char *back = malloc(size + 1);
        if (!back) abort();
        size_t got = fread(back, 1, size + 1, f);
        fclose(f);
        uint32_t version = (uint32_t)(le64(buf + 8) & 0xffffffffu); /* size >= 12: it loaded */
        if (version != 1) {
            FUZZ_ASSERT(got == size && memcmp(back, buf, size) == 0);
        } else { /* a version-1 file is written back as the current version */
            mf_train_state *s2 = NULL;
            rc = mf_checkpoint_read(path, fp, np, &s2, &e);
            FUZZ_ASSERT(rc == MF_OK || rc == MF_ERR_NOMEM);
            if (rc == MF_OK) {
                FUZZ_ASSERT(s2->step == s->step && s2->rejected == s->rejected &&
                            memcmp(&s2->time_log, &s->time_log, sizeof(double)) == 0 &&
                            memcmp(&s2->lr, &s->lr, sizeof(double)) == 0 &&
                            memcmp(&s2->log_loss, &s->log_loss, sizeof(double)) == 0 &&
                            memcmp(s2->rng.s, s->rng.s, sizeof s->rng.s) == 0 &&
                            memcmp(s2->theta, s->theta, np * sizeof(double)) == 0);
            }
            mf_train_state_free(s2);
        }
        free(back);
    }
    mf_train_state_free(s);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    check_read(data, size, 0x12345678u, 3);
    if (size < 24 + 80 + 4) return 0;
    unsigned char *b = malloc(size);
    if (!b) abort();
    memcpy(b, data, size);
    uint32_t fp = (uint32_t)b[12] | (uint32_t)b[13] << 8 | (uint32_t)b[14] << 16 |
                  (uint32_t)b[15] << 24;
    uint64_t np = le64(b + 24 + 72);
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(size - 4));
    for (int i = 0; i < 4; i++) b[size - 4 + i] = (unsigned char)(crc >> (8 * i));
    check_read(b, size, fp, np > (uint64_t)1 << 40 ? 3 : (size_t)np);
    free(b);
    return 0;
}

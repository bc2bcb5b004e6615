/*
 * fuzz_checkpoint_fields.c -- libFuzzer harness for the field checks of
 * mf_checkpoint_read, behind a valid checksum.
 *
 * The input is not a file but the values of a training state: byte 0 gives
 * n_params (0..7), then each field (step, rejected, time_log, lr, log_loss,
 * rng.s[0..3], theta[0..n_params-1]) takes one selector byte and 8 value
 * bytes: a selector divisible by 4 picks a boundary value from a table
 * (0, -0, +-1, -5, 2^62, 2^62 + 1, INT64_MAX, NaN, +-inf, DBL_MAX, DBL_MIN,
 * 5e-324, ...), any other uses the 8 bytes (little-endian) as they are;
 * missing bytes are 0. From these the harness writes a checkpoint byte by
 * byte in the documented layout with a correct CRC-32, so every input gets
 * past magic, version, length and checksum and the parser's field checks are
 * what is exercised.
 * Contract, against a reference written here from the documentation
 * (marginflow.h, mf_train_state_validate): the read succeeds exactly when
 * every field is in range; then the state holds the written bits, passes
 * mf_train_state_validate, and what mf_checkpoint_write writes (the current
 * version) reads back to the same state bit for bit (checked for one input
 * in 8, the write being fsync-bound). Otherwise the error is MF_ERR_CORRUPT and its message names the
 * first bad field in the documented order ("checkpoint field <name> = ").
 */
#include "fuzz.h"

#include <float.h>
#include <math.h>
#include <zlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("checkpoint-fields");
    return 0;
}

static const uint64_t int_table[] = {
    0, 1, (uint64_t)-1, (uint64_t)-5, (uint64_t)1 << 62, ((uint64_t)1 << 62) + 1,
    ((uint64_t)1 << 62) - 1, (uint64_t)INT64_MAX, (uint64_t)INT64_MIN, 123456789012ULL};

static uint64_t bits(double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    return v;
}

static double dbl(uint64_t v) {
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* Field k of the input (k = 0 step, 1 rejected, 2..4 doubles, 5..8 rng,
 * 9.. theta): the selector/value pair at 1 + 9 k. */
static uint64_t field(const unsigned char *data, size_t size, int k, int is_double) {
    size_t at = 1 + 9 * (size_t)k;
    unsigned sel = at < size ? data[at] : 1;
    uint64_t raw = 0;
    for (int i = 0; i < 8; i++)
        if (at + 1 + i < size) raw |= (uint64_t)data[at + 1 + i] << (8 * i);
    if (sel % 4 != 0) return raw;
    sel /= 4;
    if (!is_double) return int_table[sel % (sizeof int_table / sizeof int_table[0])];
    const double dtab[] = {0.0,      -0.0,     1.0,     -1.0,     NAN,     INFINITY,
                           -INFINITY, DBL_MAX, -DBL_MAX, DBL_MIN, 5e-324,  -5e-324,
                           1e300,    -1e-300,  0.1,     -1e308};
    unsigned n = sizeof dtab / sizeof dtab[0];
    if (sel % (n + 1) == n) return 0x7ff0000000000123ULL; /* a NaN with a payload */
    return bits(dtab[sel % (n + 1)]);
}

static void put(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    size_t np = data[0] % 8;
    uint64_t v[9 + 8];
    for (int k = 0; k < 9 + (int)np; k++) v[k] = field(data, size, k, k >= 2 && k <= 4 ? 1 : k >= 9);

    /* the file, as the layout in src/io.c says */
    const uint32_t fp = 0x5eedf00du;
    size_t payload = 80 + 8 * np, total = 24 + payload + 4;
    unsigned char b[24 + 80 + 8 * 8 + 4];
    memcpy(b, "MFCKPT\r\n", 8);
    put(b + 8, 1, 4);
    put(b + 12, fp, 4);
    put(b + 16, payload, 8);
    for (int k = 0; k < 9; k++) put(b + 24 + 8 * k, v[k], 8);
    put(b + 24 + 72, np, 8);
    for (size_t i = 0; i < np; i++) put(b + 24 + 80 + 8 * i, v[9 + i], 8);
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(total - 4));
    put(b + total - 4, crc, 4);

    /* the reference: the first field out of its documented range */
    const char *bad = NULL;
    char badname[32];
    int64_t step = (int64_t)v[0], rej = (int64_t)v[1];
    double tl = dbl(v[2]), lr = dbl(v[3]), ll = dbl(v[4]);
    const int64_t maxs = (int64_t)1 << 62;
    if (step < 0 || step > maxs) bad = "step";
    else if (rej < 0 || rej > maxs) bad = "rejected";
    else if (!(tl == -INFINITY || isfinite(tl))) bad = "time_log";
    else if (!(v[3] == 0 || (lr > 0 && isfinite(lr)))) bad = "lr";
    else if (!(isfinite(ll) || isnan(ll))) bad = "log_loss";
    else if (!(v[5] | v[6] | v[7] | v[8])) bad = "rng";
    else
        for (size_t i = 0; i < np && !bad; i++)
            if (!isfinite(dbl(v[9 + i]))) {
                snprintf(badname, sizeof badname, "theta[%zu]", i);
                bad = badname;
            }

    const char *path = fuzz_file(b, total);
    mf_train_state *s = NULL;
    mf_err e = {0, ""};
    int rc = mf_checkpoint_read(path, fp, np, &s, &e);
    if (rc == MF_ERR_NOMEM) {
        fuzz_check_error(rc, &e);
        FUZZ_ASSERT(s == NULL);
        return 0;
    }
    if (bad) {
        fuzz_check_error(rc, &e);
        FUZZ_ASSERT(rc == MF_ERR_CORRUPT && s == NULL);
        char want[64];
        snprintf(want, sizeof want, "checkpoint field %s = ", bad);
        FUZZ_ASSERT(strstr(e.msg, want) != NULL);
        return 0;
    }
    FUZZ_ASSERT(rc == MF_OK && s && s->n_params == np);
    FUZZ_ASSERT(mf_train_state_validate(s) == NULL);
    FUZZ_ASSERT((uint64_t)s->step == v[0] && (uint64_t)s->rejected == v[1]);
    FUZZ_ASSERT(bits(s->time_log) == v[2] && bits(s->lr) == v[3] && bits(s->log_loss) == v[4]);
    for (int i = 0; i < 4; i++) FUZZ_ASSERT(s->rng.s[i] == v[5 + i]);
    for (size_t i = 0; i < np; i++) FUZZ_ASSERT(bits(s->theta[i]) == v[9 + i]);
    /* written back: the same bytes (for one input in 8: the atomic write
     * fsyncs, which would dominate the run time) */
    rc = (data[0] & 0x38) == 0 ? mf_checkpoint_write(path, s, fp, &e) : -1;
    FUZZ_ASSERT(rc == MF_OK || rc == MF_ERR_NOMEM || rc == -1);
    if (rc == MF_OK) {
        /* the input is a version-1 file; the write is the current version
         * (with the flow and indicator fields after theta), so the check is
         * that reading it back gives the same state, bit for bit */
        mf_train_state *s2 = NULL;
        rc = mf_checkpoint_read(path, fp, np, &s2, &e);
        FUZZ_ASSERT(rc == MF_OK || rc == MF_ERR_NOMEM);
        if (rc == MF_OK) {
            FUZZ_ASSERT(s2->n_params == np && s2->step == s->step && s2->rejected == s->rejected);
            FUZZ_ASSERT(bits(s2->time_log) == bits(s->time_log) && bits(s2->lr) == bits(s->lr) &&
                        bits(s2->log_loss) == bits(s->log_loss));
            for (int i = 0; i < 4; i++) FUZZ_ASSERT(s2->rng.s[i] == s->rng.s[i]);
            for (size_t i = 0; i < np; i++) FUZZ_ASSERT(bits(s2->theta[i]) == bits(s->theta[i]));
        }
        mf_train_state_free(s2);
    }
    mf_train_state_free(s);
    return 0;
}

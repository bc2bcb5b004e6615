/*
 * test_idx.c -- the image readers (src/idx.c): IDX pairs (plain and gzip),
 * CIFAR-10 binary batches, the data specs idx: and cifar10:, and
 * class-balanced subsets (mf_data_select). Every file is a tiny one the test
 * writes itself (into a private temporary folder); every bad file gets the
 * exact error code and a message that names the file and the fault.
 */
#include "internal.h"
#include "marginflow.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];

static const char *path_of(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Write bytes to name (gzip-compressed when gz). */
static void write_bytes(const char *name, const unsigned char *b, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path_of(name), "wb");
        gzwrite(f, b, (unsigned)n);
        gzclose(f);
        return;
    }
    FILE *f = fopen(path_of(name), "wb");
    if (n) fwrite(b, 1, n, f);
    fclose(f);
}

/* An IDX image file of n images rows x cols (pixel (i, k) = (7 i + k) mod 256),
 * with the header's count `hdr_n` and `extra` bytes after the data. */
static void write_images(const char *name, int n, int rows, int cols, uint32_t hdr_n, int extra,
                         uint32_t magic, int gz) {
    size_t len = 16 + (size_t)n * rows * cols + (size_t)extra;
    unsigned char *b = calloc(len, 1);
    put_be32(b, magic);
    put_be32(b + 4, hdr_n);
    put_be32(b + 8, (uint32_t)rows);
    put_be32(b + 12, (uint32_t)cols);
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t k = 0; k < (size_t)rows * cols; k++)
            b[16 + i * rows * cols + k] = (unsigned char)((7 * i + k) % 256);
    write_bytes(name, b, len, gz);
    free(b);
}

static void write_labels(const char *name, int n, const unsigned char *lab, int gz) {
    unsigned char *b = calloc(8 + (size_t)n, 1);
    put_be32(b, 0x00000801);
    put_be32(b + 4, (uint32_t)n);
    memcpy(b + 8, lab, (size_t)n);
    write_bytes(name, b, 8 + (size_t)n, gz);
    free(b);
}

/* Load images/labels and expect code with both substrings in the message. */
static void expect_idx(const char *im, const char *lb, int code, const char *must1, const char *must2) {
    mf_data *D = (mf_data *)&D;
    mf_err e;
    memset(&e, 0, sizeof e);
    int rc = mf_data_load_idx(path_of(im), path_of(lb), &D, &e);
    CHECK(rc == code, "%s/%s: rc %d (%s), want %d", im, lb, rc, e.msg, code);
    CHECK(D == NULL || rc == MF_OK, "%s: *out not NULL on error", im);
    CHECK(strstr(e.msg, must1) && strstr(e.msg, must2), "%s: message \"%s\" lacks \"%s\" / \"%s\"", im,
          e.msg, must1, must2);
    if (rc == MF_OK) mf_data_free(D);
}

static const unsigned char LAB[6] = {0, 1, 2, 1, 0, 2};

TEST(idx_good) {
    for (int gz = 0; gz < 2; gz++) {
        write_images("im", 6, 3, 2, 6, 0, 0x803, gz);
        write_labels("lb", 6, LAB, gz);
        mf_data *D = NULL;
        mf_err e;
        int rc = mf_data_load_idx(path_of("im"), path_of("lb"), &D, &e);
        CHECK(rc == MF_OK, "gz %d: %s", gz, rc ? e.msg : "");
        if (rc) continue;
        CHECK(D->n == 6 && D->d == 6 && D->num_classes == 3 && D->y == NULL, "n %d d %d C %d", D->n,
              D->d, D->num_classes);
        double worst = 0;
        for (int i = 0; i < 6; i++)
            for (int k = 0; k < 6; k++) worst = fmax(worst, fabs(D->x[i * 6 + k] - ((7 * i + k) % 256) / 255.0));
        CHECK(worst == 0.0, "pixels / 255 exactly: off by %g", worst);
        for (int i = 0; i < 6; i++) CHECK_EQ_INT(D->cls[i], LAB[i]);
        CHECK(strstr(D->desc, "idx:") == D->desc && strstr(D->desc, "3x2 images"), "desc %s", D->desc);
        /* through the spec */
        char spec[1100];
        snprintf(spec, sizeof spec, "idx:%s,%s", path_of("im"), path_of("lb"));
        mf_data *D2 = NULL;
        CHECK_EQ_INT(mf_data_from_spec(spec, NULL, &D2, &e), MF_OK);
        CHECK(D2 && mf_data_hash(D2) == mf_data_hash(D), "spec loads the same data");
        mf_data_free(D2);
        mf_data_free(D);
    }
    /* pixel 255 -> 1, 0 -> 0: the range [0, 1] */
    unsigned char b[16 + 2] = {0};
    put_be32(b, 0x803), put_be32(b + 4, 2), put_be32(b + 8, 1), put_be32(b + 12, 1);
    b[16] = 255, b[17] = 0;
    write_bytes("im2", b, sizeof b, 0);
    unsigned char l2[2] = {1, 0};
    write_labels("lb2", 2, l2, 0);
    mf_data *D = NULL;
    if (mf_data_load_idx(path_of("im2"), path_of("lb2"), &D, NULL) == MF_OK) {
        CHECK(D->x[0] == 1.0 && D->x[1] == 0.0 && D->num_classes == 2, "%g %g", D->x[0], D->x[1]);
        mf_data_free(D);
    } else {
        CHECK(0, "two-image file not read");
    }
}

TEST(idx_errors) {
    write_labels("lb", 6, LAB, 0);
    write_images("ok", 6, 3, 2, 6, 0, 0x803, 0);
    expect_idx("nosuch", "lb", MF_ERR_IO, "nosuch: cannot open", "No such file");
    expect_idx("ok", "nosuch", MF_ERR_IO, "nosuch: cannot open", "No such file");
    write_images("magic", 6, 3, 2, 6, 0, 0x801, 0);
    expect_idx("magic", "lb", MF_ERR_PARSE, "not an IDX image file: magic 0x00000801",
               "expected 0x00000803");
    expect_idx("ok", "ok", MF_ERR_PARSE, "not an IDX label file: magic 0x00000803", "1 dimension)");
    write_images("trunc", 5, 3, 2, 6, 0, 0x803, 0); /* the header promises 6 */
    expect_idx("trunc", "lb", MF_ERR_PARSE, "truncated: the header promises 36 image bytes",
               "holds 30");
    write_images("truncgz", 5, 3, 2, 6, 0, 0x803, 1);
    expect_idx("truncgz", "lb", MF_ERR_PARSE, "truncated", "holds 30");
    write_images("extra", 6, 3, 2, 6, 3, 0x803, 0);
    expect_idx("extra", "lb", MF_ERR_PARSE, "extra: bytes after the 36 image bytes", "header");
    write_images("zero", 0, 3, 2, 0, 0, 0x803, 0);
    expect_idx("zero", "lb", MF_ERR_PARSE, "bad dimension 1", ": 0");
    write_images("huge", 1, 3, 2, 100000000, 0, 0x803, 0);
    expect_idx("huge", "lb", MF_ERR_PARSE, "exceed the limit", "2^28");
    unsigned char h[10] = {0, 0, 8, 3, 0, 0};
    write_bytes("short", h, 6, 0);
    expect_idx("short", "lb", MF_ERR_PARSE, "truncated: the IDX image header has 16 bytes", "the file 6");
    write_bytes("empty", h, 0, 0);
    expect_idx("empty", "lb", MF_ERR_PARSE, "truncated: an IDX file starts", "has 0 bytes");
    unsigned char l7[7] = {0, 1, 0, 1, 0, 1, 0};
    write_labels("lb7", 7, l7, 0);
    expect_idx("ok", "lb7", MF_ERR_DIM, "holds 6 images", "holds 7 labels");
    unsigned char l0[6] = {0};
    write_labels("lb0", 6, l0, 0);
    expect_idx("ok", "lb0", MF_ERR_PARSE, "every label is 0", "at least 2 classes");
    /* a damaged gzip stream: a flipped byte in the deflate data / the CRC, and a cut file */
    write_images("gz", 6, 3, 2, 6, 0, 0x803, 1);
    FILE *f = fopen(path_of("gz"), "rb");
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    unsigned char bad[4096];
    memcpy(bad, buf, n);
    bad[n - 6] ^= 0x5a; /* inside the CRC-32 trailer */
    write_bytes("gzcrc", bad, n, 0);
    expect_idx("gzcrc", "lb", MF_ERR_CORRUPT, "gzcrc: damaged gzip stream", "(");
    write_bytes("gzcut", buf, n - 12, 0);
    expect_idx("gzcut", "lb", MF_ERR_CORRUPT, "gzcut: damaged gzip stream", "end of file");
    /* bad specs */
    mf_data *D = NULL;
    mf_err e;
    CHECK_EQ_INT(mf_data_from_spec("idx:onlyone", NULL, &D, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "idx:IMAGES,LABELS") != NULL, "%s", e.msg);
    CHECK_EQ_INT(mf_data_from_spec("idx:a,b,c", NULL, &D, &e), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_data_from_spec("fashion-mnist:valid", NULL, &D, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "fashion-mnist:test") != NULL, "%s", e.msg);
    CHECK_EQ_INT(mf_data_from_spec("cifar10:", NULL, &D, &e), MF_ERR_INVALID);
    CHECK(D == NULL, "no data on error");
}

/* CIFAR-10: records of a label and 3 x 1024 pixels. */
static void write_cifar(const char *name, int n, int label0, int cut) {
    size_t len = (size_t)n * 3073 - (size_t)cut;
    unsigned char *b = calloc(len + 1, 1);
    for (int r = 0; r < n; r++) {
        b[(size_t)r * 3073] = (unsigned char)((label0 + r) % 10);
        for (int k = 0; k < 3072; k++)
            if ((size_t)r * 3073 + 1 + k < len) b[(size_t)r * 3073 + 1 + k] = (unsigned char)((r + 3 * k) % 256);
    }
    write_bytes(name, b, len, 0);
    free(b);
}

TEST(cifar10) {
    for (int f = 1; f <= 5; f++) {
        char nm[32];
        snprintf(nm, sizeof nm, "data_batch_%d.bin", f);
        write_cifar(nm, f, f, 0); /* 1 + 2 + ... + 5 = 15 records */
    }
    write_cifar("test_batch.bin", 4, 7, 0);
    mf_data *D = NULL;
    mf_err e;
    int rc = mf_data_load_cifar10(dir, 0, &D, &e);
    CHECK(rc == MF_OK, "%s", rc ? e.msg : "");
    if (D) {
        CHECK(D->n == 15 && D->d == 3072 && D->num_classes == 10, "n %d d %d C %d", D->n, D->d,
              D->num_classes);
        /* record 0 of batch 3 is sample 1 + 2 = 3: label 3, pixel k = (3 k) mod 256 */
        CHECK_EQ_INT(D->cls[3], 3);
        CHECK_NEAR(D->x[3 * 3072 + 1024 + 5], ((3 * 1029) % 256) / 255.0, 0);
        mf_data_free(D);
    }
    char spec[600];
    snprintf(spec, sizeof spec, "cifar10:%s:test", dir);
    rc = mf_data_from_spec(spec, NULL, &D, &e);
    CHECK(rc == MF_OK && D && D->n == 4 && D->cls[0] == 7 && D->cls[3] == 0, "test batch: %s",
          rc ? e.msg : "");
    mf_data_free(D);
    D = NULL;
    write_cifar("test_batch.bin", 2, 0, 100);
    CHECK_EQ_INT(mf_data_load_cifar10(dir, 1, &D, &e), MF_ERR_PARSE);
    CHECK(strstr(e.msg, "test_batch.bin: 6046 bytes is not a whole number") != NULL, "%s", e.msg);
    write_cifar("test_batch.bin", 2, 0, 0);
    FILE *f = fopen(path_of("test_batch.bin"), "r+b");
    fseek(f, 3073, SEEK_SET);
    fputc(10, f);
    fclose(f);
    CHECK_EQ_INT(mf_data_load_cifar10(dir, 1, &D, &e), MF_ERR_PARSE);
    CHECK(strstr(e.msg, "record 2 has label 10") != NULL, "%s", e.msg);
    remove(path_of("data_batch_4.bin"));
    CHECK_EQ_INT(mf_data_load_cifar10(dir, 0, &D, &e), MF_ERR_IO);
    CHECK(strstr(e.msg, "data_batch_4.bin: cannot open") != NULL, "%s", e.msg);
    CHECK(D == NULL, "no data on error");
}

/* Subsets: class balance, determinism, order, binary labels, errors. */
TEST(select) {
    mf_data *src = NULL;
    mf_data_new(100, 2, 4, &src, NULL);
    int per[4] = {0};
    for (int i = 0; i < 100; i++) {
        int c = i < 10 ? 3 : i % 3; /* class 3: 10 samples; 0, 1, 2: 30 each */
        src->cls[i] = c;
        per[c]++;
        src->x[2 * i] = i, src->x[2 * i + 1] = -i;
    }
    snprintf(src->desc, sizeof src->desc, "src");
    mf_data *a = NULL, *b = NULL, *c = NULL;
    mf_err e;
    CHECK_EQ_INT(mf_data_select(src, NULL, 50, 7, &a, &e), MF_OK);
    CHECK_EQ_INT(mf_data_select(src, NULL, 50, 7, &b, &e), MF_OK);
    CHECK_EQ_INT(mf_data_select(src, NULL, 50, 8, &c, &e), MF_OK);
    if (a && b && c) {
        int cnt[4] = {0}, ordered = 1, same_rows = 1;
        for (int i = 0; i < 50; i++) {
            cnt[a->cls[i]]++;
            if (i && a->x[2 * i] <= a->x[2 * (i - 1)]) ordered = 0;
            int orig = (int)a->x[2 * i];
            if (src->cls[orig] != a->cls[i] || a->x[2 * i + 1] != -orig) same_rows = 0;
        }
        CHECK(cnt[0] == 14 && cnt[1] == 13 && cnt[2] == 13 && cnt[3] == per[3],
              "quotas one each in class order, class 3 runs out at 10: 14/13/13/10, got %d %d %d %d",
              cnt[0], cnt[1], cnt[2], cnt[3]);
        CHECK(ordered && same_rows, "original order and rows kept");
        CHECK(mf_data_hash(a) == mf_data_hash(b), "same seed, same subset");
        CHECK(mf_data_hash(a) != mf_data_hash(c), "another seed, another subset");
        CHECK(strstr(a->desc, "src, 50 balanced (seed 7)") != NULL, "desc %s", a->desc);
    }
    mf_data_free(a), mf_data_free(b), mf_data_free(c);
    a = b = NULL;
    int cls[2] = {2, 0};
    CHECK_EQ_INT(mf_data_select(src, cls, 0, 1, &a, &e), MF_OK);
    if (a) {
        int pos = 0, ok = 1;
        for (int i = 0; i < a->n; i++) {
            int orig = (int)a->x[2 * i];
            pos += a->y[i] > 0;
            ok &= (src->cls[orig] == 2 && a->y[i] == 1.0) || (src->cls[orig] == 0 && a->y[i] == -1.0);
        }
        CHECK(a->n == 60 && a->num_classes == 0 && a->cls == NULL && pos == 30 && ok,
              "binary: n %d, %d positive, labels ok %d", a->n, pos, ok);
    }
    mf_data_free(a);
    CHECK_EQ_INT(mf_data_select(src, cls, 7, 1, &b, &e), MF_OK);
    if (b) {
        int pos = 0;
        for (int i = 0; i < b->n; i++) pos += b->y[i] > 0;
        CHECK(b->n == 7 && pos == 3, "7 of classes 0 and 2 (in class order: 4 of 0, 3 of 2 = +1): %d "
              "positive", pos);
    }
    mf_data_free(b);
    b = NULL;
    int badc[2] = {1, 1}, outc[2] = {0, 4};
    CHECK_EQ_INT(mf_data_select(src, badc, 0, 1, &b, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "two different classes in 0..3") != NULL, "%s", e.msg);
    CHECK_EQ_INT(mf_data_select(src, outc, 0, 1, &b, &e), MF_ERR_INVALID);
    CHECK_EQ_INT(mf_data_select(src, NULL, -1, 1, &b, &e), MF_ERR_INVALID);
    mf_data *bin = NULL;
    mf_data_new(3, 1, 0, &bin, NULL);
    CHECK_EQ_INT(mf_data_select(bin, NULL, 2, 1, &b, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "multi-class") != NULL && b == NULL, "%s", e.msg);
    mf_data_free(bin);
    mf_data_free(src);
}

/* Every allocation of a load may fail: the error is MF_ERR_NOMEM, nothing leaks. */
static int g_left = -1;
static void *fail_malloc(size_t n) {
    if (g_left == 0) return NULL;
    if (g_left > 0) g_left--;
    return malloc(n);
}
static void *fail_realloc(void *p, size_t n) {
    if (g_left == 0) return NULL;
    if (g_left > 0) g_left--;
    return realloc(p, n);
}

TEST(allocation_failures) {
    write_images("im", 6, 3, 2, 6, 0, 0x803, 1);
    write_labels("lb", 6, LAB, 1);
    int fails = 0;
    for (int k = 0; k < 40; k++) {
        g_left = k;
        mf_set_allocator(fail_malloc, fail_realloc, free);
        mf_data *D = NULL, *S = NULL;
        mf_err e;
        int rc = mf_data_load_idx(path_of("im"), path_of("lb"), &D, &e);
        if (rc == MF_OK) rc = mf_data_select(D, NULL, 4, 1, &S, &e);
        mf_set_allocator(NULL, NULL, NULL);
        mf_data_free(S);
        mf_data_free(D);
        if (rc == MF_OK) break;
        CHECK(rc == MF_ERR_NOMEM || rc == MF_ERR_IO, "failure %d: rc %d (%s)", k, rc, e.msg);
        fails++;
    }
    CHECK(fails >= 5, "allocations seen: %d", fails);
}

int main(void) {
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mf-test-idx-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(idx_good);
    RUN(idx_errors);
    RUN(cifar10);
    RUN(select);
    RUN(allocation_failures);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return TEST_REPORT();
}

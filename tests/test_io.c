/*
 * test_io.c -- files round-trip exactly and bad files are refused with the
 * right code: checkpoints (bit-exact state, corrupt / truncated / foreign
 * files), atomic writes, parameter text files (awkward doubles, also under a
 * comma-decimal locale when one is installed), the decimal form of
 * t = exp(time_log) beyond double range, and metrics CSV rows.
 */
#include "marginflow.h"
#include "test.h"

#include <dirent.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];

static const char *tpath(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Read a whole file (small) into buf; returns its length or -1. */
static long slurp(const char *path, unsigned char *buf, long cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long n = (long)fread(buf, 1, (size_t)cap, f);
    fclose(f);
    return n;
}

static void spit(const char *path, const unsigned char *buf, long n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, (size_t)n, f);
    fclose(f);
}

static mf_train_state *make_state(size_t n) {
    mf_train_state *s = NULL;
    mf_err e;
    if (mf_train_state_new(n, &s, &e)) return NULL;
    s->step = 123456789012LL;
    s->rejected = 7;
    s->time_log = 23026.5;
    s->lr = 0.1;
    s->log_loss = -1e4 * 2.302585092994046;
    mf_rng_seed(&s->rng, 42);
    for (int i = 0; i < 3; i++) mf_rng_next(&s->rng);
    for (size_t i = 0; i < n; i++) s->theta[i] = (i % 2 ? -1.0 : 1.0) / (double)(i + 3);
    if (n > 1) s->theta[1] = -0.0;
    if (n > 2) s->theta[2] = 5e-324;
    s->flow_mode = 1;
    s->flow_lambda = 3.75e5;
    s->smoothed_decrease = 6.9e-3;
    s->smoothed_decrease_step = 120;
    s->loss_increase = 54.5;
    s->loss_increase_step = 830;
    s->hist_n = 3;
    s->hist_start = 38;
    s->hist_next_k = 77;
    s->flow_stiff_steps = 4321;
    for (int i = 0; i < MF_MARGIN_HIST; i++) {
        s->hist_logt[i] = 10.0 + i / 7.0;
        s->hist_gamma[i] = 0.4 - 1.0 / (i + 3.0);
    }
    return s;
}

/* Little-endian u32 / u64 into a buffer, and the CRC-32 (zlib's polynomial,
 * bitwise) to build version-1 checkpoints by hand. */
static void le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t crc32_bits(const unsigned char *b, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= b[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

TEST(checkpoint_round_trip) {
    mf_err e = {0, ""};
    mf_train_state *s = make_state(9), *r = NULL;
    CHECK(s != NULL, "state allocation failed");
    if (!s) return;
    int rc = mf_checkpoint_write(tpath("a.bin"), s, 0xdeadbeefu, &e);
    CHECK_EQ_INT(rc, MF_OK);
    rc = mf_checkpoint_read(tpath("a.bin"), 0xdeadbeefu, 9, &r, &e);
    CHECK(rc == MF_OK, "read: %d %s", rc, e.msg);
    if (r) {
        CHECK_EQ_INT(r->step, s->step);
        CHECK_EQ_INT(r->rejected, s->rejected);
        CHECK(same_bits(r->time_log, s->time_log), "time_log %.17g", r->time_log);
        CHECK(same_bits(r->lr, s->lr), "lr %.17g", r->lr);
        CHECK(same_bits(r->log_loss, s->log_loss), "log_loss %.17g", r->log_loss);
        CHECK(memcmp(r->rng.s, s->rng.s, sizeof s->rng.s) == 0, "rng state differs");
        /* the restored generator continues the same stream */
        CHECK(mf_rng_next(&r->rng) == mf_rng_next(&s->rng), "rng stream differs");
        CHECK_EQ_INT(r->n_params, 9);
        int same = 1;
        for (int i = 0; i < 9; i++) same &= same_bits(r->theta[i], s->theta[i]);
        CHECK(same, "theta differs after round trip");
        /* version 2: the flow mode, the indicators and the margin history */
        CHECK_EQ_INT(r->flow_mode, 1);
        CHECK(same_bits(r->flow_lambda, 3.75e5), "flow_lambda %.17g", r->flow_lambda);
        CHECK(same_bits(r->smoothed_decrease, 6.9e-3), "smoothed_decrease %.17g",
              r->smoothed_decrease);
        CHECK_EQ_INT(r->smoothed_decrease_step, 120);
        CHECK(same_bits(r->loss_increase, 54.5), "loss_increase %.17g", r->loss_increase);
        CHECK_EQ_INT(r->loss_increase_step, 830);
        CHECK_EQ_INT(r->hist_n, 3);
        CHECK_EQ_INT(r->hist_start, 38);
        CHECK_EQ_INT(r->hist_next_k, 77);
        CHECK_EQ_INT(r->flow_stiff_steps, 4321);
        same = 1;
        for (int i = 0; i < MF_MARGIN_HIST; i++)
            same &= same_bits(r->hist_logt[i], s->hist_logt[i]) &&
                    same_bits(r->hist_gamma[i], s->hist_gamma[i]);
        CHECK(same, "margin history differs after round trip");
    }
    mf_train_state_free(r);
    r = NULL;

    /* -INFINITY time_log (t = 0) and NaN log_loss survive too */
    s->time_log = -INFINITY;
    s->step = 0;
    rc = mf_checkpoint_write(tpath("b.bin"), s, 1u, &e);
    CHECK_EQ_INT(rc, MF_OK);
    rc = mf_checkpoint_read(tpath("b.bin"), 1u, 9, &r, &e);
    CHECK(rc == MF_OK, "read: %d %s", rc, e.msg);
    if (r) CHECK(r->time_log == -INFINITY, "time_log %g, want -inf", r->time_log);
    mf_train_state_free(r);

    /* size: 24 header + 80 fixed + 8*9 theta + 720 version-2 tail + 4 crc */
    unsigned char buf[2048];
    CHECK_EQ_INT(slurp(tpath("a.bin"), buf, sizeof buf), 24 + 80 + 72 + 720 + 4);
    CHECK(memcmp(buf, "MFCKPT\r\n", 8) == 0, "magic");
    CHECK_EQ_INT(buf[8], 2); /* version 2, little-endian */
    CHECK_EQ_INT(buf[12], 0xef); /* fingerprint LE */
    mf_train_state_free(s);

    /* no temporary files left behind */
    DIR *d = opendir(g_dir);
    int tmps = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".tmp.")) tmps++;
    if (d) closedir(d);
    CHECK_EQ_INT(tmps, 0);
}

TEST(checkpoint_refusals) {
    mf_err e = {0, ""};
    mf_train_state *s = make_state(5), *r = NULL;
    if (!s) return;
    const char *p = tpath("c.bin");
    CHECK_EQ_INT(mf_checkpoint_write(p, s, 77u, &e), MF_OK);
    unsigned char good[2048], bad[2048];
    long n = slurp(p, good, sizeof good);
    CHECK_EQ_INT(n, 24 + 80 + 40 + 720 + 4);

    /* each corrupt byte position (header, payload, theta, crc) is caught */
    const long pos[] = {12, 16, 30, 24 + 80 + 3, n - 1};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        memcpy(bad, good, (size_t)n);
        bad[pos[i]] ^= 0x10;
        spit(p, bad, n);
        int rc = mf_checkpoint_read(p, 77u, 5, &r, &e);
        CHECK(rc == MF_ERR_CORRUPT && r == NULL, "flip at %ld: rc %d (%s)", pos[i], rc, e.msg);
    }
    memcpy(bad, good, (size_t)n);
    bad[24 + 80 + 3] ^= 0x10;
    spit(p, bad, n);
    mf_checkpoint_read(p, 77u, 5, &r, &e);
    CHECK(strstr(e.msg, "checksum") && strstr(e.msg, p), "message: %s", e.msg);

    /* truncated by 5 bytes; truncated to 10 bytes */
    spit(p, good, n - 5);
    int rc = mf_checkpoint_read(p, 77u, 5, &r, &e);
    CHECK(rc == MF_ERR_CORRUPT, "truncated: rc %d (%s)", rc, e.msg);
    CHECK(strstr(e.msg, "length") != NULL, "message: %s", e.msg);
    spit(p, good, 10);
    rc = mf_checkpoint_read(p, 77u, 5, &r, &e);
    CHECK(rc == MF_ERR_CORRUPT && strstr(e.msg, "short"), "short: rc %d (%s)", rc, e.msg);

    /* wrong magic, unknown version */
    memcpy(bad, good, (size_t)n);
    bad[2] = 'X';
    spit(p, bad, n);
    rc = mf_checkpoint_read(p, 77u, 5, &r, &e);
    CHECK(rc == MF_ERR_CORRUPT && strstr(e.msg, "not a marginflow checkpoint"),
          "magic: rc %d (%s)", rc, e.msg);
    memcpy(bad, good, (size_t)n);
    bad[8] = 3;
    spit(p, bad, n);
    rc = mf_checkpoint_read(p, 77u, 5, &r, &e);
    CHECK(rc == MF_ERR_CORRUPT && strstr(e.msg, "version 3, expected 1 or 2"),
          "version: rc %d (%s)", rc, e.msg);
    /* a version-2 file with an impossible flow mode (CRC intact) */
    memcpy(bad, good, (size_t)n);
    bad[24 + 80 + 40] = 7;
    le32(bad + n - 4, crc32_bits(bad, (size_t)n - 4));
    spit(p, bad, n);
    rc = mf_checkpoint_read(p, 77u, 5, &r, &e);
    CHECK(rc == MF_ERR_CORRUPT && r == NULL && strstr(e.msg, "field flow_mode = 7"),
          "bad flow mode: rc %d (%s)", rc, e.msg);

    /* intact file, but another fingerprint or parameter count */
    spit(p, good, n);
    rc = mf_checkpoint_read(p, 78u, 5, &r, &e);
    CHECK(rc == MF_ERR_FOREIGN && strstr(e.msg, "0000004e") && strstr(e.msg, "0000004d"),
          "fingerprint: rc %d (%s)", rc, e.msg);
    rc = mf_checkpoint_read(p, 77u, 6, &r, &e);
    CHECK(rc == MF_ERR_FOREIGN && strstr(e.msg, "5 parameters, expected 6"),
          "n_params: rc %d (%s)", rc, e.msg);
    rc = mf_checkpoint_read(p, 77u, 5, &r, &e);
    CHECK(rc == MF_OK && r != NULL, "intact: rc %d (%s)", rc, e.msg);
    mf_train_state_free(r);
    r = NULL;

    rc = mf_checkpoint_read(tpath("missing.bin"), 77u, 5, &r, &e);
    CHECK(rc == MF_ERR_IO && strstr(e.msg, "missing.bin"), "missing: rc %d (%s)", rc, e.msg);
    mf_train_state_free(s);
}

/* Version-1 checkpoints (before the indicators and the flow mode existed)
 * are still read: the common fields exactly, the new ones at their fresh
 * values (mode 0, no indicator, empty margin history). */
TEST(checkpoint_version1) {
    mf_err e = {0, ""};
    const size_t n = 3;
    unsigned char b[24 + 80 + 24 + 4];
    memset(b, 0, sizeof b);
    memcpy(b, "MFCKPT\r\n", 8);
    le32(b + 8, 1);
    le32(b + 12, 0x1234u);
    le64(b + 16, 80 + 8 * n);
    unsigned char *p = b + 24;
    double tl = 17.25, lr = 0.05, ll = -99.5, th[3] = {0.5, -0.25, 1e-300};
    le64(p, 4000);
    le64(p + 8, 12);
    memcpy(p + 16, &tl, 8); /* the test machine is little-endian, as the format */
    memcpy(p + 24, &lr, 8);
    memcpy(p + 32, &ll, 8);
    for (int i = 0; i < 4; i++) le64(p + 40 + 8 * i, 1000u + (unsigned)i);
    le64(p + 72, n);
    memcpy(p + 80, th, sizeof th);
    le32(b + sizeof b - 4, crc32_bits(b, sizeof b - 4));
    const char *path = tpath("v1.bin");
    spit(path, b, (long)sizeof b);
    mf_train_state *r = NULL;
    int rc = mf_checkpoint_read(path, 0x1234u, n, &r, &e);
    CHECK(rc == MF_OK && r, "version 1: rc %d (%s)", rc, e.msg);
    if (r) {
        CHECK_EQ_INT(r->step, 4000);
        CHECK_EQ_INT(r->rejected, 12);
        CHECK(same_bits(r->time_log, tl) && same_bits(r->lr, lr) && same_bits(r->log_loss, ll),
              "time_log %g lr %g log_loss %g", r->time_log, r->lr, r->log_loss);
        CHECK(r->rng.s[0] == 1000u && r->rng.s[3] == 1003u, "rng");
        CHECK(same_bits(r->theta[0], 0.5) && same_bits(r->theta[2], 1e-300), "theta");
        CHECK_EQ_INT(r->flow_mode, 0);
        CHECK(r->flow_lambda == 0, "flow_lambda %g", r->flow_lambda);
        CHECK(r->smoothed_decrease == 0 && r->loss_increase == 0, "indicators %g %g",
              r->smoothed_decrease, r->loss_increase);
        CHECK_EQ_INT(r->smoothed_decrease_step, -1);
        CHECK_EQ_INT(r->hist_n, 0);
    }
    mf_train_state_free(r);
}

TEST(atomic_write) {
    mf_err e = {0, ""};
    const char *p = tpath("w.txt");
    CHECK_EQ_INT(mf_write_file_atomic(p, "first\n", 6, &e), MF_OK);
    CHECK_EQ_INT(mf_write_file_atomic(p, "second", 6, &e), MF_OK);
    unsigned char buf[64];
    long n = slurp(p, buf, sizeof buf);
    CHECK(n == 6 && memcmp(buf, "second", 6) == 0, "content after replace: %ld bytes", n);
    int rc = mf_write_file_atomic(tpath("no/such/dir/x"), "x", 1, &e);
    CHECK(rc == MF_ERR_IO && strstr(e.msg, "no/such/dir/x"), "rc %d (%s)", rc, e.msg);
}

static const double awkward[] = {1.0 / 3.0, 1e-300, -0.0, 5e-324, 1.7976931348623157e308,
                                 -2.5e-310, 0.1, 123456789.125};
#define N_AWK (sizeof awkward / sizeof awkward[0])

static void params_round_trip(const char *label) {
    mf_err e = {0, ""};
    mf_model m;
    memset(&m, 0, sizeof m);
    snprintf(m.spec, sizeof m.spec, "linear");
    m.n_params = N_AWK;
    const char *p = tpath("p.txt");
    int rc = mf_params_write(p, &m, awkward, &e);
    CHECK(rc == MF_OK, "%s: write rc %d (%s)", label, rc, e.msg);
    double back[N_AWK];
    rc = mf_params_read(p, N_AWK, back, &e);
    CHECK(rc == MF_OK, "%s: read rc %d (%s)", label, rc, e.msg);
    for (size_t i = 0; i < N_AWK; i++)
        CHECK(same_bits(back[i], awkward[i]), "%s: value %zu: got %.17g want %.17g", label, i,
              back[i], awkward[i]);
    unsigned char buf[512];
    long n = slurp(p, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strncmp((char *)buf, "# marginflow params v1 n=8 model=linear\n", 40) == 0,
          "%s: first line: %.60s", label, buf);
    CHECK(strstr((char *)buf, "\n0.33333333333333331\n") != NULL, "%s: 1/3 as %%.17g: %s", label,
          buf);
    CHECK(strchr((char *)buf + 40, ',') == NULL, "%s: decimal comma in %s", label, buf);

    /* comma separated list */
    rc = mf_params_parse("0.33333333333333331, -0 ,5e-324,1.7976931348623157e308", 4, back, &e);
    CHECK(rc == MF_OK, "%s: parse rc %d (%s)", label, rc, e.msg);
    CHECK(same_bits(back[0], 1.0 / 3.0) && same_bits(back[1], -0.0) &&
              same_bits(back[2], 5e-324) && same_bits(back[3], 1.7976931348623157e308),
          "%s: parsed %.17g %.17g %.17g %.17g", label, back[0], back[1], back[2], back[3]);
}

TEST(params_files) {
    params_round_trip("C locale");
    const char *locs[] = {"de_DE.UTF-8", "de_DE.utf8", "de_DE", "fr_FR.UTF-8", "fr_FR.utf8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof locs / sizeof locs[0] && !got; i++)
        got = setlocale(LC_NUMERIC, locs[i]);
    if (got) {
        char b[32];
        snprintf(b, sizeof b, "%g", 0.5);
        CHECK(strcmp(b, "0,5") == 0, "locale %s formats 0.5 as %s", got, b);
        params_round_trip(got);
        char f[40];
        mf_format_double(f, sizeof f, 0.5);
        CHECK(strcmp(f, "0.5") == 0, "mf_format_double under %s: %s", got, f);
        setlocale(LC_NUMERIC, "C");
    } else {
        printf("note: no de_DE/fr_FR locale installed; comma-locale round trip skipped\n");
    }
}

TEST(params_errors) {
    mf_err e = {0, ""};
    double th[4];
    const char *p = tpath("bad.txt");
    const char *text = "# comment\n1 2\n3, 4x5\n";
    spit(p, (const unsigned char *)text, (long)strlen(text));
    int rc = mf_params_read(p, 4, th, &e);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "bad.txt:3:4:") && strstr(e.msg, "'4x5'"),
          "rc %d (%s)", rc, e.msg);

    text = "1\n2\nnan\n";
    spit(p, (const unsigned char *)text, (long)strlen(text));
    rc = mf_params_read(p, 3, th, &e);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, ":3:1:") && strstr(e.msg, "not finite"),
          "rc %d (%s)", rc, e.msg);
    rc = mf_params_parse("1,inf", 2, th, &e);
    CHECK(rc == MF_ERR_PARSE, "inf: rc %d (%s)", rc, e.msg);

    text = "# marginflow params v1 n=4 model=linear\n1\n2\n3\n";
    spit(p, (const unsigned char *)text, (long)strlen(text));
    rc = mf_params_read(p, 4, th, &e);
    CHECK(rc == MF_ERR_DIM && strstr(e.msg, "expected 4 values, found 3"), "rc %d (%s)", rc,
          e.msg);
    rc = mf_params_parse("1,2,3,4,5", 4, th, &e);
    CHECK(rc == MF_ERR_DIM && strstr(e.msg, "expected 4 values, found 5"), "rc %d (%s)", rc,
          e.msg);
    rc = mf_params_parse("1,1,1,-1", 4, th, &e);
    CHECK(rc == MF_OK && th[3] == -1.0 && th[0] == 1.0, "rc %d (%s)", rc, e.msg);
    rc = mf_params_read(tpath("nope.txt"), 4, th, &e);
    CHECK(rc == MF_ERR_IO && strstr(e.msg, "nope.txt"), "rc %d (%s)", rc, e.msg);
}

TEST(log_values) {
    char b[64];
    mf_format_log_value(b, sizeof b, -INFINITY);
    CHECK(strcmp(b, "0") == 0, "t = 0 gives '%s'", b);

    /* inside double range: %.17g of exp(time_log) */
    double tl = log(1e5);
    mf_format_log_value(b, sizeof b, tl);
    char want[64];
    snprintf(want, sizeof want, "%.17g", exp(tl));
    CHECK(strcmp(b, want) == 0, "got '%s' want '%s'", b, want);
    CHECK_NEAR(strtod(b, NULL), 1e5, 1e-9);

    /* t = e^23026: log10 t = 23026 / ln 10 = 10000.0708...; the mantissa is
     * 10^0.0708... Reference mantissa from long double arithmetic. */
    mf_format_log_value(b, sizeof b, 23026.0);
    const char *ex = strchr(b, 'e');
    CHECK(ex && strcmp(ex, "e+10000") == 0, "exponent of '%s'", b);
    long double l10 = 23026.0L / 2.302585092994045684017991454684364208L;
    double mant_want = (double)powl(10.0L, l10 - 10000.0L);
    char mb[40];
    snprintf(mb, sizeof mb, "%.*s", ex ? (int)(ex - b) : 0, b);
    double mant = strtod(mb, NULL);
    CHECK_NEAR(mant, mant_want, 1e-11);
    CHECK(ex && ex - b == 18, "mantissa has 17 significant digits: '%s'", b);

    /* pi * 10^10000 in, same digits out (to the precision of time_log) */
    double tl_pi = log(3.14159265358979323846) + 10000.0 * 2.302585092994045684;
    mf_format_log_value(b, sizeof b, tl_pi);
    CHECK(strncmp(b, "3.141592653", 11) == 0 && strstr(b, "e+10000"), "pi e10000: '%s'", b);

    /* tiny t below double range */
    mf_format_log_value(b, sizeof b, -23026.0);
    CHECK(strstr(b, "e-10001") != NULL, "tiny: '%s'", b);

    /* exponents beyond long long (time_log ~ 1e300 after a loss near
     * -1e300 in logs): exact digits of the exponent, no overflow */
    char big[MF_LOG_VALUE_LEN];
    mf_format_log_value(big, sizeof big, 1e300);
    CHECK(strstr(big, "e+434294481903251") != NULL && !strstr(big, "--"), "huge: '%s'", big);
    mf_format_log_value(big, sizeof big, -1.7e308);
    CHECK(strncmp(big, "1.0000000000000000e-73830061923552", 34) == 0 && strlen(big) == 328,
          "huge negative (%zu chars): '%s'", strlen(big), big);
}

/* Split a CSV line in place into at most 16 fields; returns the count. */
static int split(char *s, char **f) {
    int k = 0;
    f[k++] = s;
    for (; *s; s++)
        if (*s == ',' && k < 20) {
            *s = '\0';
            f[k++] = s + 1;
        }
    return k;
}

TEST(metrics_csv) {
    CHECK(strcmp(mf_metrics_csv_header(),
                 "step,time,log10_time,log10_loss,norm,q_min,normalized_margin,smoothed_margin,"
                 "layer_margin,lr,train_error,balancedness,beta,smoothed_decrease,loss_increase,"
                 "margin_change") == 0,
          "header: %s", mf_metrics_csv_header());
    mf_metrics m = {0, -INFINITY, -0.5, 1.0 / 3.0, 0.25, 0.125, 1e-300, 2.0, 0.1, 0.0, 1e300,
                    NAN, 0, 0, NAN, -1, 0, NAN, NAN, NAN, NAN};
    char row[1024];
    mf_metrics_csv_row(&m, row, sizeof row);
    const char *want0 = "0,0,,-0.5,0.33333333333333331,0.25,0.125,1e-300,2,0.10000000000000001,0,"
                        "1.0000000000000001e+300,,0,0,";
    CHECK(strcmp(row, want0) == 0, "row t=0: %s", row);
    char *f[20];
    CHECK_EQ_INT(split(row, f), 16);

    mf_metrics m2 = {123456789012345LL, log(2.0), -12345.678, 7.5, 3, 0.5, 0.49, 0.5, 0.1, 0.25,
                     1e-17, 0.999, 2.5e-3, 54.25, 1e-7, -1, 0, NAN, NAN, NAN, NAN};
    mf_metrics_csv_row(&m2, row, sizeof row);
    int k = split(row, f);
    CHECK_EQ_INT(k, 16);
    if (k == 16) {
        CHECK(strcmp(f[0], "123456789012345") == 0, "step '%s'", f[0]);
        CHECK(strtod(f[1], NULL) == exp(log(2.0)), "time '%s'", f[1]);
        CHECK(strtod(f[2], NULL) == log(2.0) / 2.302585092994045684, "log10_time '%s'", f[2]);
        CHECK(strtod(f[3], NULL) == -12345.678, "log10_loss '%s'", f[3]);
        CHECK(strtod(f[11], NULL) == 1e-17, "balancedness '%s'", f[11]);
        CHECK(strtod(f[9], NULL) == 0.1, "lr '%s'", f[9]);
        CHECK(strtod(f[12], NULL) == 0.999, "beta '%s'", f[12]);
        CHECK(strtod(f[13], NULL) == 2.5e-3, "smoothed_decrease '%s'", f[13]);
        CHECK(strtod(f[14], NULL) == 54.25, "loss_increase '%s'", f[14]);
        CHECK(strtod(f[15], NULL) == 1e-7, "margin_change '%s'", f[15]);
    }
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/mf-test-io-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(checkpoint_round_trip);
    RUN(checkpoint_refusals);
    RUN(checkpoint_version1);
    RUN(atomic_write);
    RUN(params_files);
    RUN(params_errors);
    RUN(log_values);
    RUN(metrics_csv);
    /* clean up the scratch folder */
    DIR *d = opendir(g_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') remove(tpath(de->d_name));
    if (d) closedir(d);
    rmdir(g_dir);
    return TEST_REPORT();
}

/*
 * test_data.c -- data sets: the builtin known-answer sets of
 * docs/theory.md section 4 value by value, the gauss/symmetric generators (determinism,
 * planted margin re-derived from the documented RNG order, mirror), libsvm
 * and CSV readers (exact round trips, sparse zeros, CRLF, headers, long
 * lines, the example files in tests/data), one test per bad-input class
 * checking the code, the "PATH:LINE:COL: " prefix and a key phrase, failure
 * of every allocation in turn, and a 20000 x 100 file load.
 *
 * Temporary files are made with mkstemp under /tmp and removed afterwards.
 * The tests/data files are looked up from the repository root (where
 * tests/run-tests runs) or from build/tests.
 */
#define _POSIX_C_SOURCE 200809L
#include "marginflow.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static char tmp_paths[64][64];
static int n_tmp;

/* Remember a temp path for remove_tmp_all(); returns the stored copy. */
static const char *register_tmp(const char *path) {
    char *dst = tmp_paths[n_tmp++ % 64];
    snprintf(dst, 64, "%s", path);
    return dst;
}

/* Write content (len bytes) to a new temp file; suffix (e.g. ".csv", or "")
 * is appended by renaming. Returns the path (static storage). */
static const char *write_tmp_n(const char *content, size_t len, const char *suffix) {
    char tmpl[64] = "/tmp/mf_test_data_XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    FILE *f = fdopen(fd, "wb");
    if (!f || fwrite(content, 1, len, f) != len || fclose(f) != 0) {
        perror("write temp file");
        exit(2);
    }
    char want[64];
    snprintf(want, sizeof want, "%s%s", tmpl, suffix);
    const char *dst = register_tmp(want);
    if (suffix[0] && rename(tmpl, dst) != 0) {
        perror("rename");
        exit(2);
    }
    return dst;
}

static const char *write_tmp(const char *content, const char *suffix) {
    return write_tmp_n(content, strlen(content), suffix);
}

static void remove_tmp_all(void) {
    for (int i = 0; i < n_tmp && i < 64; i++) remove(tmp_paths[i]);
    n_tmp = 0;
}

/* Path of an example file in tests/data. */
static const char *data_path(const char *name) {
    static char buf[256];
    const char *roots[] = {"tests/data/", "../../tests/data/", "../tests/data/"};
    for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
        snprintf(buf, sizeof buf, "%s%s", roots[i], name);
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, sizeof buf, "tests/data/%s", name);
    return buf;
}

/* Load content written to a temp file (suffix, format) and expect failure
 * with code, the message starting "PATH:LINE:COL: " and containing phrase. */
static void expect_fail(const char *content, const char *suffix, const char *format, int code,
                        int line, int col, const char *phrase) {
    const char *p = write_tmp(content, suffix);
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(p, format, 0, &D, &e);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", p, line, col);
    CHECK_EQ_INT(rc, code);
    CHECK_EQ_INT(e.code, code);
    CHECK(D == NULL, "data returned on failure");
    CHECK(strncmp(e.msg, prefix, strlen(prefix)) == 0, "message '%s' lacks prefix '%s'", e.msg,
          prefix);
    CHECK(strstr(e.msg, phrase) != NULL, "message '%s' lacks '%s'", e.msg, phrase);
    mf_data_free(D);
    remove(p);
}

static void check_x(const mf_data *D, const double *want, int n, int d) {
    CHECK_EQ_INT(D->n, n);
    CHECK_EQ_INT(D->d, d);
    if (D->n != n || D->d != d) return;
    for (int i = 0; i < n * d; i++)
        CHECK(D->x[i] == want[i], "x[%d] = %.17g, want %.17g", i, D->x[i], want[i]);
}

static void check_y(const mf_data *D, const double *want, int n) {
    CHECK_EQ_INT(D->num_classes, 0);
    CHECK(D->y != NULL && D->cls == NULL, "binary set must have y and no cls");
    if (!D->y || D->n != n) return;
    for (int i = 0; i < n; i++) CHECK(D->y[i] == want[i], "y[%d] = %g, want %g", i, D->y[i], want[i]);
}

/* --------------------------------------------------------------- builtins */

static mf_data *spec_ok(const char *spec) {
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_from_spec(spec, NULL, &D, &e);
    CHECK(rc == MF_OK && D, "%s: rc %d: %s", spec, rc, e.msg);
    return rc == MF_OK ? D : NULL;
}

TEST(builtins_exact) {
    static const struct {
        const char *name;
        int n, d;
        double x[16], y[8];
    } T[] = {
        {"B", 1, 2, {1, 2}, {1}},
        {"C", 1, 2, {1, 1}, {1}},
        {"D", 2, 2, {1, 0, 0, 1}, {1, 1}},
        {"G", 1, 1, {1}, {1}},
        {"R1", 2, 2, {1, 1, -1, 1}, {1, -1}},
        {"sym4", 8, 2, {1, 0.5, 2, -1, 0.6, 1.5, 3, 2, -1, -0.5, -2, 1, -0.6, -1.5, -3, -2},
         {1, 1, 1, 1, -1, -1, -1, -1}},
    };
    for (size_t k = 0; k < sizeof T / sizeof *T; k++) {
        char spec[64];
        snprintf(spec, sizeof spec, "builtin:%s", T[k].name);
        mf_data *D = spec_ok(spec);
        if (!D) continue;
        check_x(D, T[k].x, T[k].n, T[k].d);
        check_y(D, T[k].y, T[k].n);
        CHECK(strcmp(D->desc, spec) == 0, "desc '%s', want '%s'", D->desc, spec);
        mf_data_free(D);
    }
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_from_spec("builtin:XYZ", NULL, &D, &e);
    CHECK_EQ_INT(rc, MF_ERR_INVALID);
    CHECK(D == NULL, "no data on error");
    CHECK(strstr(e.msg, "'XYZ'") && strstr(e.msg, "B, C, D, G, R1, sym4"), "msg '%s'", e.msg);
}

/* ------------------------------------------------------------------ gauss */

/* Independent re-derivation of the documented construction: w* from d
 * normals, normalized; each x from d normals, y = sign(<w*, x>) (0 -> +1),
 * moved along y w* to margin when y <w*, x> < margin. Writes x [n][d],
 * y [n] and w [d] into the caller's arrays. */
static void rederive(int n, int d, double margin, uint64_t seed, double *x, double *y,
                     double *w) {
    mf_rng r;
    mf_rng_seed(&r, seed);
    double nrm = 0;
    for (int j = 0; j < d; j++) {
        w[j] = mf_rng_normal(&r);
        nrm += w[j] * w[j];
    }
    nrm = sqrt(nrm);
    for (int j = 0; j < d; j++) w[j] /= nrm;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            x[i * d + j] = mf_rng_normal(&r);
            s += w[j] * x[i * d + j];
        }
        y[i] = s >= 0 ? 1 : -1;
        if (y[i] * s < margin)
            for (int j = 0; j < d; j++) x[i * d + j] += (margin - y[i] * s) * y[i] * w[j];
    }
}

TEST(gauss_planted_margin) {
    const int n = 100, d = 10;
    const double M = 0.1;
    mf_data *D = spec_ok("gauss:n=100,d=10,margin=0.1,seed=1");
    if (!D) return;
    CHECK(strcmp(D->desc, "gauss:n=100,d=10,margin=0.1,seed=1") == 0, "desc '%s'", D->desc);
    CHECK_EQ_INT(D->n, n);
    CHECK_EQ_INT(D->d, d);
    CHECK_EQ_INT(D->num_classes, 0);
    double x[100 * 10], y[100], w[10];
    rederive(n, d, M, 1, x, y, w);
    double maxdiff = 0, qmin = INFINITY;
    int moved = 0, ybad = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            maxdiff = fmax(maxdiff, fabs(D->x[i * d + j] - x[i * d + j]));
            s += w[j] * D->x[i * d + j];
        }
        ybad += D->y[i] != y[i] || (D->y[i] != 1 && D->y[i] != -1);
        qmin = fmin(qmin, D->y[i] * s);
        moved += fabs(D->y[i] * s - M) <= 1e-12;
    }
    CHECK_NEAR(maxdiff, 0, 0);
    CHECK_EQ_INT(ybad, 0);
    /* separable through the origin by w* with margin exactly M at the moved points */
    CHECK(qmin >= M - 1e-12, "min y<w*,x> = %.17g < margin %g", qmin, M);
    CHECK_NEAR(qmin, M, 1e-12);
    CHECK(moved >= 1, "no point was moved onto the margin (%d)", moved);
    mf_data_free(D);

    /* defaults, any key order, same seed -> identical; other seed -> different */
    mf_data *A = spec_ok("gauss"), *B = spec_ok("gauss:seed=1,margin=0.1,d=10,n=100"),
            *C = spec_ok("gauss:seed=2");
    if (A && B && C) {
        CHECK(strcmp(A->desc, "gauss:n=100,d=10,margin=0.1,seed=1") == 0, "desc '%s'", A->desc);
        CHECK(strcmp(B->desc, A->desc) == 0, "desc '%s'", B->desc);
        CHECK(strcmp(C->desc, "gauss:n=100,d=10,margin=0.1,seed=2") == 0, "desc '%s'", C->desc);
        CHECK(memcmp(A->x, B->x, sizeof(double) * 1000) == 0, "same seed, different x");
        CHECK(memcmp(A->y, B->y, sizeof(double) * 100) == 0, "same seed, different y");
        int same = 0;
        for (int i = 0; i < 1000; i++) same += A->x[i] == C->x[i];
        CHECK_EQ_INT(same, 0);
    }
    mf_data_free(A);
    mf_data_free(B);
    mf_data_free(C);

    /* moments of a larger set: N(0, 1) entries up to the small margin moves */
    D = spec_ok("gauss:n=4000,d=5,margin=0.01,seed=7");
    if (D) {
        double s1 = 0, s2 = 0, npos = 0;
        for (int i = 0; i < 20000; i++) {
            s1 += D->x[i];
            s2 += D->x[i] * D->x[i];
        }
        for (int i = 0; i < 4000; i++) npos += D->y[i] > 0;
        CHECK_NEAR(s1 / 20000, 0, 0.03);
        CHECK_NEAR(s2 / 20000, 1, 0.05);
        CHECK_NEAR(npos / 4000, 0.5, 0.04);
        CHECK(strcmp(D->desc, "gauss:n=4000,d=5,margin=0.01,seed=7") == 0, "desc '%s'", D->desc);
    }
    mf_data_free(D);
}

TEST(symmetric_mirror) {
    mf_data *S = spec_ok("symmetric:n=30,d=4,margin=0.2,seed=5");
    mf_data *G = spec_ok("gauss:n=30,d=4,margin=0.2,seed=5");
    if (!S || !G || S->n != 60) {
        CHECK(S && G && S->n == 60, "symmetric: n = %d, want 60", S ? S->n : -1);
        mf_data_free(S);
        mf_data_free(G);
        return;
    }
    CHECK_EQ_INT(S->d, 4);
    CHECK(strcmp(S->desc, "symmetric:n=30,d=4,margin=0.2,seed=5") == 0, "desc '%s'", S->desc);
    int bad = 0;
    for (int i = 0; i < 30; i++) {
        bad += S->y[i] != G->y[i] || S->y[30 + i] != -G->y[i];
        for (int j = 0; j < 4; j++)
            bad += S->x[i * 4 + j] != G->x[i * 4 + j] || S->x[(30 + i) * 4 + j] != -G->x[i * 4 + j];
    }
    CHECK_EQ_INT(bad, 0);
    mf_data_free(S);
    mf_data_free(G);
}

TEST(spec_errors) {
    static const struct {
        const char *spec, *phrase;
    } T[] = {
        {"gauss:n=abc", "n must be"},     {"gauss:n=0", "n must be"},
        {"gauss:d=-1", "d must be"},      {"gauss:margin=-0.1", "margin must be"},
        {"gauss:margin=nan", "margin must be"}, {"gauss:seed=x", "seed must be"},
        {"gauss:foo=1", "unknown key 'foo'"},   {"symmetric:n=3,bar=2", "unknown key 'bar'"},
        {"gauss:n=5,n=6", "'n' given twice"},   {"gauss:n", "expected key=value"},
        {"gauss:n=5,", "trailing ','"},
    };
    for (size_t k = 0; k < sizeof T / sizeof *T; k++) {
        mf_data *D = NULL;
        mf_err e = {0, ""};
        int rc = mf_data_from_spec(T[k].spec, NULL, &D, &e);
        CHECK(rc == MF_ERR_INVALID, "%s: rc %d", T[k].spec, rc);
        CHECK(D == NULL, "%s: data on error", T[k].spec);
        CHECK(strstr(e.msg, T[k].phrase) != NULL, "%s: message '%s' lacks '%s'", T[k].spec, e.msg,
              T[k].phrase);
        mf_data_free(D);
    }
}

/* ---------------------------------------------------------------- readers */

TEST(libsvm_round_trip) {
    const char *txt = "# comment line\n"
                      "+1 1:0.1 3:-2.5e-3 4:1e300\n"
                      "\n"
                      "   \t\n"
                      "-1 2:7 4:0\n"
                      "1.0\n"
                      "-1\t1:-0 4:4.9406564584124654e-324   \n";
    const double wx[] = {0.1, 0, -2.5e-3, 1e300, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                         4.9406564584124654e-324};
    const double wy[] = {1, -1, 1, -1};
    /* LF, CRLF (same bytes with \r before each \n), no final newline */
    char crlf[512], *q = crlf;
    for (const char *p = txt; *p; p++) {
        if (*p == '\n') *q++ = '\r';
        *q++ = *p;
    }
    *q = '\0';
    const char *variants[3] = {txt, crlf, "+1 1:0.1 3:-2.5e-3 4:1e300\n-1 2:7\n1.0\n-1 4:4.9406564584124654e-324"};
    for (int v = 0; v < 3; v++) {
        const char *p = write_tmp(variants[v], "");
        mf_data *D = NULL;
        mf_err e = {0, ""};
        int rc = mf_data_load(p, NULL, 0, &D, &e);
        CHECK(rc == MF_OK, "variant %d: %s", v, e.msg);
        if (D) {
            check_x(D, wx, 4, 4);
            check_y(D, wy, 4);
            char want[128];
            snprintf(want, sizeof want, "file:%s (libsvm)", p);
            CHECK(strcmp(D->desc, want) == 0, "desc '%s'", D->desc);
        }
        mf_data_free(D);
        /* min_d pads with zero features */
        D = NULL;
        rc = mf_data_load(p, "libsvm", 6, &D, &e);
        CHECK(rc == MF_OK && D && D->d == 6, "min_d=6: rc %d d %d", rc, D ? D->d : -1);
        if (D) CHECK(D->x[6 + 1] == 7 && D->x[5] == 0 && D->x[3] == 1e300, "padded row values");
        mf_data_free(D);
        remove(p);
    }
}

TEST(csv_round_trip) {
    const char *txt = "label , a,b\r\n"
                      " 1 , 0.5,-3\r\n"
                      "\r\n"
                      "-1,0 , 2e-3\r\n"
                      "+1,\t1e-300,0.1\r\n";
    const double wx[] = {0.5, -3, 0, 2e-3, 1e-300, 0.1};
    const double wy[] = {1, -1, 1};
    /* by extension, and forced on a file without extension */
    const char *p1 = write_tmp(txt, ".csv"), *p2 = write_tmp(txt + 13, "");
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(p1, NULL, 0, &D, &e);
    CHECK(rc == MF_OK, "%s", e.msg);
    if (D) {
        check_x(D, wx, 3, 2);
        check_y(D, wy, 3);
        char want[128];
        snprintf(want, sizeof want, "file:%s (csv)", p1);
        CHECK(strcmp(D->desc, want) == 0, "desc '%s'", D->desc);
    }
    mf_data_free(D);
    D = NULL;
    rc = mf_data_from_spec(p2, "csv", &D, &e); /* headerless, via the spec path */
    CHECK(rc == MF_OK, "%s", e.msg);
    if (D) {
        check_x(D, wx, 3, 2);
        check_y(D, wy, 3);
    }
    mf_data_free(D);
    /* the same headerless file read as libsvm fails on its first label */
    D = NULL;
    rc = mf_data_load(p2, NULL, 0, &D, &e);
    CHECK_EQ_INT(rc, MF_ERR_PARSE);
    mf_data_free(D);
    /* unknown format string */
    D = NULL;
    rc = mf_data_load(p2, "arff", 0, &D, &e);
    CHECK_EQ_INT(rc, MF_ERR_INVALID);
    CHECK(strstr(e.msg, "'arff'") != NULL, "msg '%s'", e.msg);
    remove_tmp_all();
}

TEST(labels_multiclass) {
    const char *p = write_tmp("2 1:1\n0 2:1\n1 1:0.5\n2.0 2:3\n", "");
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(p, NULL, 0, &D, &e);
    CHECK(rc == MF_OK, "%s", e.msg);
    if (D) {
        CHECK_EQ_INT(D->num_classes, 3);
        CHECK(D->y == NULL && D->cls != NULL, "multi-class must have cls and no y");
        if (D->cls) {
            CHECK_EQ_INT(D->cls[0], 2);
            CHECK_EQ_INT(D->cls[1], 0);
            CHECK_EQ_INT(D->cls[2], 1);
            CHECK_EQ_INT(D->cls[3], 2);
        }
    }
    mf_data_free(D);
    /* {0, 1} is a two-class multi-class set, not binary */
    p = write_tmp("0,1,2\n1,3,4\n1,5,6\n", ".csv");
    D = NULL;
    rc = mf_data_load(p, NULL, 0, &D, &e);
    CHECK(rc == MF_OK, "%s", e.msg);
    if (D) {
        CHECK_EQ_INT(D->num_classes, 2);
        CHECK(D->cls && D->cls[0] == 0 && D->cls[1] == 1 && D->cls[2] == 1, "cls values");
    }
    mf_data_free(D);
    /* all +1 is binary (like the builtin sets) */
    p = write_tmp("1 1:1\n+1 1:2\n1.0 1:3\n", "");
    D = NULL;
    rc = mf_data_load(p, NULL, 0, &D, &e);
    CHECK(rc == MF_OK && D && D->num_classes == 0 && D->y[2] == 1, "all +1: %s", e.msg);
    mf_data_free(D);
    remove_tmp_all();
}

TEST(example_files) {
    mf_data *S = NULL, *C = NULL, *M = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_from_spec(data_path("tiny.svm"), NULL, &S, &e);
    CHECK(rc == MF_OK, "%s", e.msg);
    rc = mf_data_from_spec(data_path("tiny.csv"), NULL, &C, &e);
    CHECK(rc == MF_OK, "%s", e.msg);
    rc = mf_data_from_spec(data_path("multi3.svm"), NULL, &M, &e);
    CHECK(rc == MF_OK, "%s", e.msg);
    if (S && C) {
        const double wy[] = {1, 1, 1, -1, -1, -1};
        check_y(S, wy, 6);
        check_y(C, wy, 6);
        CHECK_EQ_INT(S->d, 3);
        CHECK(S->n == C->n && S->d == C->d &&
                  memcmp(S->x, C->x, sizeof(double) * (size_t)(S->n * S->d)) == 0,
              "tiny.svm and tiny.csv differ");
        /* separable through the origin by w = e1 with margin 0.5 */
        double qmin = INFINITY;
        for (int i = 0; i < S->n; i++) qmin = fmin(qmin, S->y[i] * S->x[i * 3]);
        CHECK_NEAR(qmin, 0.5, 0);
        CHECK_NEAR(S->x[2 * 3 + 1], -0.25, 0);
    }
    if (M) {
        CHECK_EQ_INT(M->num_classes, 3);
        CHECK_EQ_INT(M->n, 6);
        CHECK_EQ_INT(M->d, 2);
        const int wc[] = {0, 0, 1, 1, 2, 2};
        for (int i = 0; i < 6 && M->cls; i++) CHECK_EQ_INT(M->cls[i], wc[i]);
        CHECK_NEAR(M->x[1 * 2 + 1], 0, 0); /* sparse zero */
        CHECK_NEAR(M->x[4 * 2 + 1], -1.7, 0);
    }
    mf_data_free(S);
    mf_data_free(C);
    mf_data_free(M);
}

TEST(long_lines) {
    /* two samples of 30000 features each (~250 KB per line) */
    const int d = 30000;
    size_t cap = (size_t)d * 40, len = 0;
    char *buf = malloc(cap);
    for (int s = 0; s < 2; s++) {
        len += (size_t)snprintf(buf + len, cap - len, "%s", s ? "-1" : "+1");
        for (int j = 1; j <= d; j++)
            len += (size_t)snprintf(buf + len, cap - len, " %d:%d.25", j, (j * 7 + s) % 13);
        len += (size_t)snprintf(buf + len, cap - len, "\n");
    }
    const char *p = write_tmp_n(buf, len, "");
    free(buf);
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(p, NULL, 0, &D, &e);
    CHECK(rc == MF_OK, "%s", e.msg);
    if (D) {
        CHECK_EQ_INT(D->n, 2);
        CHECK_EQ_INT(D->d, d);
        int bad = 0;
        for (int s = 0; s < 2; s++)
            for (int j = 1; j <= d; j++) bad += D->x[(size_t)s * d + j - 1] != (j * 7 + s) % 13 + 0.25;
        CHECK_EQ_INT(bad, 0);
    }
    mf_data_free(D);
    remove(p);
}

/* ------------------------------------------------------------- bad input */

TEST(bad_unreadable) {
    mf_data *D = NULL;
    mf_err e = {0, ""};
    const char *p = "/tmp/mf_no_such_dir_for_test_data/none.svm";
    int rc = mf_data_load(p, NULL, 0, &D, &e);
    CHECK_EQ_INT(rc, MF_ERR_IO);
    CHECK(strncmp(e.msg, "/tmp/mf_no_such_dir_for_test_data/none.svm:1:1: ",
                  strlen("/tmp/mf_no_such_dir_for_test_data/none.svm:1:1: ")) == 0 &&
              strstr(e.msg, "No such file or directory"),
          "msg '%s'", e.msg);
    /* a directory opens but cannot be read */
    rc = mf_data_load("/tmp", NULL, 0, &D, &e);
    CHECK_EQ_INT(rc, MF_ERR_IO);
    CHECK(strncmp(e.msg, "/tmp:1:1: ", 10) == 0 && strstr(e.msg, "cannot read"), "msg '%s'",
          e.msg);
}

TEST(bad_empty) {
    expect_fail("", "", NULL, MF_ERR_PARSE, 1, 1, "no samples");
    expect_fail("# only\n\n# comments\n", "", NULL, MF_ERR_PARSE, 4, 1, "no samples");
    expect_fail("label,a,b\n", ".csv", NULL, MF_ERR_PARSE, 2, 1, "no samples");
}

TEST(bad_ragged_csv) {
    expect_fail("1,2,3\n-1,4\n", ".csv", NULL, MF_ERR_PARSE, 2, 5, "expected 3 fields (as on line 1), got 2");
    expect_fail("y,a\n1,2\r\n-1,4,5\r\n", ".csv", NULL, MF_ERR_PARSE, 3, 6, "expected 2 fields (as on line 1), got 3");
    expect_fail("1\n", ".csv", NULL, MF_ERR_PARSE, 1, 1, "expected at least 2 fields");
}

TEST(bad_non_numeric) {
    expect_fail("1,2,3\n1, 2,abc\n", ".csv", NULL, MF_ERR_PARSE, 2, 6, "expected a number in field 3, got 'abc'");
    expect_fail("1,2,3\n1,,3\n", ".csv", NULL, MF_ERR_PARSE, 2, 3, "got an empty field");
    expect_fail("1 1:2\n1 1:3\n-1 2:1 3:abc\n", "", NULL, MF_ERR_PARSE, 3, 10,
                "expected a number after ':' in 'idx:val', got 'abc'");
    expect_fail("1 1:\n", "", NULL, MF_ERR_PARSE, 1, 5, "expected a number after ':'");
}

TEST(bad_nonfinite) {
    expect_fail("1 1:nan\n", "", NULL, MF_ERR_PARSE, 1, 5, "finite number");
    expect_fail("1 1:1 2:-inf\n", "", NULL, MF_ERR_PARSE, 1, 9, "finite number");
    expect_fail("1 1:1e999\n", "", NULL, MF_ERR_PARSE, 1, 5, "overflows to infinity");
    expect_fail("1,0.5,NaN\n", ".csv", NULL, MF_ERR_PARSE, 1, 7, "finite number");
    expect_fail("1,-1e400,2\n", ".csv", NULL, MF_ERR_PARSE, 1, 3, "overflows to infinity");
}

TEST(bad_labels) {
    expect_fail("1 1:1\n0.5 1:2\n", "", NULL, MF_ERR_PARSE, 2, 1, "bad label '0.5'");
    expect_fail("  -2 1:1\n", "", NULL, MF_ERR_PARSE, 1, 3, "bad label '-2'");
    expect_fail("abc 1:1\n", "", NULL, MF_ERR_PARSE, 1, 1, "expected a label (a number), got 'abc'");
    expect_fail("1,2\n 0.5 ,3\n", ".csv", NULL, MF_ERR_PARSE, 2, 2, "bad label '0.5'");
    expect_fail("1 1:1\nnan 1:1\n", "", NULL, MF_ERR_PARSE, 2, 1, "bad label 'nan'");
    /* -1 mixed with class indices: the first -1 is named */
    expect_fail("1 1:1\n2 1:1\n-1 1:1\n", "", NULL, MF_ERR_PARSE, 3, 1, "bad label '-1'");
    /* a single class is not a multi-class set */
    expect_fail("# c\n0 1:1\n0 1:2\n", "", NULL, MF_ERR_PARSE, 2, 1, "at least 2 classes");
}

TEST(bad_index) {
    expect_fail("1 0:1\n", "", NULL, MF_ERR_PARSE, 1, 3, "an integer >= 1");
    expect_fail("1 1:1 x:2\n", "", NULL, MF_ERR_PARSE, 1, 7, "got 'x'");
    expect_fail("1 1.5:2\n", "", NULL, MF_ERR_PARSE, 1, 3, "an integer >= 1");
    expect_fail("1 -3:2\n", "", NULL, MF_ERR_PARSE, 1, 3, "an integer >= 1");
    expect_fail("1 99999999999:2\n", "", NULL, MF_ERR_PARSE, 1, 3, "an integer >= 1");
}

TEST(bad_duplicate_index) {
    expect_fail("1 1:1 2:1 2:3\n", "", NULL, MF_ERR_PARSE, 1, 11, "duplicate feature index 2");
}

TEST(bad_unsorted_index) {
    expect_fail("-1 1:1\r\n1 3:1 2:1\r\n", "", NULL, MF_ERR_PARSE, 2, 7,
                "strictly increasing, got 2 after 3");
}

TEST(bad_missing_colon) {
    expect_fail("1 1:2 5\n", "", NULL, MF_ERR_PARSE, 1, 7, "got '5' (missing ':')");
    expect_fail("1 1:2 -1 3:1\n", "", "libsvm", MF_ERR_PARSE, 1, 7, "missing ':'");
}

TEST(bad_trailing_garbage) {
    expect_fail("1 1:2.5x\n", "", NULL, MF_ERR_PARSE, 1, 5, "trailing characters");
    expect_fail("1 1:2:3\n", "", NULL, MF_ERR_PARSE, 1, 5, "trailing characters");
    expect_fail("1,2,3\n-1,2.5.1,3\n", ".csv", NULL, MF_ERR_PARSE, 2, 4, "trailing characters");
    expect_fail("1x 1:2\n", "", NULL, MF_ERR_PARSE, 1, 1, "expected a label");
    /* an embedded NUL byte is named, at its own column */
    const char bytes[] = "1 1:2\0x\n";
    const char *p = write_tmp_n(bytes, sizeof bytes - 1, "");
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(p, NULL, 0, &D, &e);
    CHECK_EQ_INT(rc, MF_ERR_PARSE);
    CHECK(strstr(e.msg, ":1:6: NUL byte"), "msg '%s'", e.msg);
    remove(p);
}

/* ---------------------------------------------------- allocation failures */

static long fail_at, n_alloc;
static void *failing_malloc(size_t n) { return n_alloc++ == fail_at ? NULL : malloc(n); }
static void *failing_realloc(void *p, size_t n) {
    return n_alloc++ == fail_at ? NULL : realloc(p, n);
}

/* Fail the k-th allocation for k = 0, 1, ... until the call succeeds: every
 * earlier call must return MF_ERR_NOMEM (ASan reports any leak). */
static void alloc_sweep(const char *spec, const char *format) {
    int rc = -1;
    long k;
    for (k = 0; k < 10000 && rc != MF_OK; k++) {
        fail_at = k;
        n_alloc = 0;
        mf_data *D = NULL;
        mf_err e = {0, ""};
        mf_set_allocator(failing_malloc, failing_realloc, free);
        rc = mf_data_from_spec(spec, format, &D, &e);
        mf_set_allocator(NULL, NULL, NULL);
        if (rc != MF_OK) {
            CHECK(rc == MF_ERR_NOMEM, "%s: allocation %ld failed gave rc %d (%s)", spec, k, rc,
                  e.msg);
            CHECK(D == NULL, "data on failure");
        }
        mf_data_free(D);
        if (rc != MF_OK && rc != MF_ERR_NOMEM) return;
    }
    CHECK(rc == MF_OK && k >= 2, "%s: never succeeded or no allocations (k = %ld)", spec, k);
}

TEST(allocation_failures) {
    alloc_sweep(data_path("tiny.svm"), NULL);
    alloc_sweep(data_path("tiny.csv"), NULL);
    alloc_sweep("gauss:n=5,d=3", NULL);
    alloc_sweep("symmetric:n=5,d=3", NULL);
    alloc_sweep("builtin:sym4", NULL);
}

/* ------------------------------------------------------------------ large */

TEST(large_libsvm) {
    const int n = 20000, d = 100;
    const char *p;
    {
        char tmpl[] = "/tmp/mf_test_data_XXXXXX";
        int fd = mkstemp(tmpl);
        FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
        CHECK(f != NULL, "cannot create temp file");
        if (!f) return;
        for (int i = 0; i < n; i++) {
            fprintf(f, "%d", i % 3 == 1 ? -1 : 1);
            for (int j = 0; j < d; j++) {
                int v = (i * 31 + j * 17) % 29 - 14;
                if (v) fprintf(f, " %d:%d.125", j + 1, v);
            }
            fputc('\n', f);
        }
        fclose(f);
        p = register_tmp(tmpl);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(p, NULL, 0, &D, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("large_libsvm: %d x %d loaded in %.3f s\n", n, d, secs);
    CHECK(rc == MF_OK, "%s", e.msg);
    if (D) {
        CHECK_EQ_INT(D->n, n);
        CHECK_EQ_INT(D->d, d);
        int bad = 0;
        for (int i = 0; i < n; i += 997)
            for (int j = 0; j < d; j++) {
                int v = (i * 31 + j * 17) % 29 - 14;
                double want = v ? v + (v > 0 ? 0.125 : -0.125) : 0;
                /* "%d.125" of a negative v prints "-3.125" = v - 0.125 */
                bad += D->x[(size_t)i * d + j] != want;
            }
        CHECK_EQ_INT(bad, 0);
        CHECK(D->y[0] == 1 && D->y[1] == -1 && D->y[2] == 1 && D->y[n - 1] == (n % 3 == 2 ? -1 : 1),
              "labels %g %g %g", D->y[0], D->y[1], D->y[2]);
    }
    mf_data_free(D);
    remove_tmp_all();
}

int main(void) {
    RUN(builtins_exact);
    RUN(gauss_planted_margin);
    RUN(symmetric_mirror);
    RUN(spec_errors);
    RUN(libsvm_round_trip);
    RUN(csv_round_trip);
    RUN(labels_multiclass);
    RUN(example_files);
    RUN(long_lines);
    RUN(bad_unreadable);
    RUN(bad_empty);
    RUN(bad_ragged_csv);
    RUN(bad_non_numeric);
    RUN(bad_nonfinite);
    RUN(bad_labels);
    RUN(bad_index);
    RUN(bad_duplicate_index);
    RUN(bad_unsorted_index);
    RUN(bad_missing_colon);
    RUN(bad_trailing_garbage);
    RUN(allocation_failures);
    RUN(large_libsvm);
    remove_tmp_all();
    return TEST_REPORT();
}

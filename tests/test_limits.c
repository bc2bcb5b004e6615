/*
 * test_limits.c -- what the library's readers do with hostile input: every
 * reader stops at its stated size limit (docs/limits.md) with a clear error,
 * also on endless inputs (/dev/zero, a symlink to it, a FIFO fed forever),
 * and never holds more memory than that limit allows (counted through
 * mf_set_allocator); every field of a checkpoint is validated after its
 * checksum (forged files with a valid CRC); a params file's header is
 * checked against the model; NUL bytes and control characters are named,
 * never echoed raw; and mf_data_hash covers the contents of a data set.
 *
 * Scratch files live in a mkdtemp folder under /tmp, removed at the end. A
 * watchdog alarm ends the program if a reader loops on an endless input.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"
#include "marginflow.h"
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static char g_dir[64];

static const char *tpath(const char *name) {
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(buf, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static void spits(const char *path, const char *text) { spit(path, text, strlen(text)); }

/* No byte below 0x20 (other than none at all) and no DEL in a message. */
static int printable(const char *msg) {
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

/* ------------------------------------------------ a counting allocator */

/* Every block carries its size in a 16-byte header; live and peak bytes are
 * counted, and a request that would take the live total past g_budget fails
 * (so a reader that grows without bound meets MF_ERR_NOMEM instead of
 * exhausting the machine). */
static size_t g_live, g_peak, g_budget = (size_t)1 << 30;

static void *c_malloc(size_t n) {
    if (n > g_budget || g_live > g_budget - n) return NULL;
    unsigned char *p = malloc(n + 16);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    g_live += n;
    if (g_live > g_peak) g_peak = g_live;
    return p + 16;
}

static void c_free(void *q) {
    if (!q) return;
    unsigned char *p = (unsigned char *)q - 16;
    size_t n;
    memcpy(&n, p, sizeof n);
    g_live -= n;
    free(p);
}

static void *c_realloc(void *q, size_t n) {
    if (!q) return c_malloc(n);
    size_t old;
    memcpy(&old, (unsigned char *)q - 16, sizeof old);
    if (n > old && (n - old > g_budget || g_live > g_budget - (n - old))) return NULL;
    unsigned char *p = realloc((unsigned char *)q - 16, n + 16);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    g_live = g_live - old + n;
    if (g_live > g_peak) g_peak = g_live;
    return p + 16;
}

/* Start counting with the given budget (bytes). */
static void count_start(size_t budget) {
    g_live = g_peak = 0;
    g_budget = budget;
    mf_set_allocator(c_malloc, c_realloc, c_free);
}

static void count_stop(void) { mf_set_allocator(NULL, NULL, NULL); }

/* ------------------------------------------------ endless inputs */

/* Make a FIFO at path and fork a writer that opens it and writes unit[ulen]
 * over and over until the reader goes away (EPIPE). Returns the pid. */
static pid_t fifo_feed(const char *path, const char *unit, size_t ulen) {
    remove(path);
    if (mkfifo(path, 0600) != 0) {
        perror("mkfifo");
        exit(2);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        static char buf[1 << 16];
        size_t n = 0;
        while (n + ulen <= sizeof buf) {
            memcpy(buf + n, unit, ulen);
            n += ulen;
        }
        int fd = open(path, O_WRONLY);
        if (fd < 0) _exit(1);
        for (;;)
            if (write(fd, buf, n) < 0) _exit(0);
    }
    return pid;
}

static void fifo_done(pid_t pid, const char *path) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    remove(path);
}

/* One data load under the counting allocator (budget 1 GiB, watchdog 120 s). */
static int load_counted(const char *path, const char *format, mf_err *e) {
    mf_data *D = NULL;
    count_start((size_t)1 << 30);
    alarm(120);
    int rc = mf_data_load(path, format, 0, &D, e);
    alarm(0);
    count_stop();
    mf_data_free(D);
    return rc;
}

/* Bytes of a version-2 checkpoint of 3 parameters: header 24, fixed 80,
 * theta 24, the indicators and margin history 80 + 16 x 40, CRC 4. */
#define CKPT3_BYTES (24 + 80 + 24 + 720 + 4)

/* /dev/zero (and a symlink to it) through every reader: each is refused at
 * once (a NUL byte in text, no checkpoint magic) holding at most 1 MiB. */
TEST(dev_zero_every_reader) {
    const size_t small = (size_t)1 << 20;
    const char *fmts[] = {"libsvm", "csv"};
    for (int k = 0; k < 2; k++) {
        mf_err e = {0, ""};
        int rc = load_counted("/dev/zero", fmts[k], &e);
        CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "/dev/zero:1:1: NUL byte"),
              "%s: rc %d (%s)", fmts[k], rc, e.msg);
        CHECK(g_peak <= small, "%s: the reader held %zu bytes", fmts[k], g_peak);
    }

    double th[3];
    mf_err e = {0, ""};
    count_start((size_t)1 << 30);
    alarm(120);
    int rc = mf_params_read("/dev/zero", 3, th, &e);
    alarm(0);
    count_stop();
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "/dev/zero:1:1: NUL byte"), "params: rc %d (%s)", rc,
          e.msg);
    CHECK(g_peak <= small, "params: the reader held %zu bytes", g_peak);

    const char *link = tpath("zero.bin");
    remove(link);
    CHECK(symlink("/dev/zero", link) == 0, "symlink failed");
    mf_train_state *s = NULL;
    count_start((size_t)1 << 30);
    alarm(120);
    rc = mf_checkpoint_read(link, 1u, 3, &s, &e);
    alarm(0);
    count_stop();
    CHECK(rc == MF_ERR_CORRUPT && strstr(e.msg, "not a marginflow checkpoint") && !s,
          "checkpoint: rc %d (%s)", rc, e.msg);
    CHECK(g_peak <= small, "checkpoint: the reader held %zu bytes", g_peak);
    mf_train_state_free(s);
    remove(link);
}

/* A FIFO that sends one endless line: refused at the line limit
 * (MF_DATA_MAX_LINE_BYTES, the real one), holding no more than the limit
 * plus one read chunk. */
TEST(fifo_endless_line) {
    const char *p = tpath("endless.svm");
    pid_t pid = fifo_feed(p, "1 ", 2);
    mf_err e = {0, ""};
    int rc = load_counted(p, "libsvm", &e);
    fifo_done(pid, p);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, ":1:1: line 1 is longer than 67108864 bytes"),
          "rc %d (%s)", rc, e.msg);
    CHECK(g_peak <= MF_DATA_MAX_LINE_BYTES + ((size_t)1 << 20), "the reader held %zu bytes",
          g_peak);

    /* the same with a lowered limit, for CSV */
    mf__data_set_limits(0, (size_t)1 << 20);
    p = tpath("endless.csv");
    pid = fifo_feed(p, "1,", 2);
    rc = load_counted(p, "csv", &e);
    fifo_done(pid, p);
    mf__data_set_limits(0, 0);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, ":1:1: line 1 is longer than 1048576 bytes"),
          "csv: rc %d (%s)", rc, e.msg);
    CHECK(g_peak <= ((size_t)3 << 20), "csv: the reader held %zu bytes", g_peak);
}

/* Endless blank lines (no memory growth, but no end either) and endless
 * samples: stopped by the file-size limit (lowered here to 4 MiB). What the
 * reader holds is one line and, per sample kept, a label and a row start
 * (16 bytes) plus 12 bytes per non-zero entry, in arrays that grow by
 * doubling: for "+1 1:1\n" (7 bytes, one entry) at most 2 * 28 bytes per 7
 * bytes read, plus the line buffer. */
TEST(fifo_endless_lines) {
    mf__data_set_limits((uint64_t)4 << 20, 0);
    const char *units[] = {"\n", "# a comment\n", "+1 1:1\n"};
    for (int k = 0; k < 3; k++) {
        const char *p = tpath("lines.svm");
        pid_t pid = fifo_feed(p, units[k], strlen(units[k]));
        mf_err e = {0, ""};
        int rc = load_counted(p, "libsvm", &e);
        fifo_done(pid, p);
        CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "more than 4194304 bytes"),
              "unit %d: rc %d (%s)", k, rc, e.msg);
        size_t bound = 2 * 28 * (((size_t)4 << 20) / 7) + ((size_t)1 << 20);
        CHECK(g_peak <= bound, "unit %d: the reader held %zu bytes (bound %zu)", k, g_peak,
              bound);
    }
    mf__data_set_limits(0, 0);
}

/* A regular file beyond the limits is refused from its size, before
 * anything is read (sparse files: no disk space used). */
TEST(regular_files_beyond_the_limit) {
    const char *p = tpath("huge.svm");
    int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)(MF_DATA_MAX_FILE_BYTES + 1)) == 0,
          "cannot make a sparse file");
    if (fd >= 0) close(fd);
    mf_err e = {0, ""};
    int rc = load_counted(p, "libsvm", &e);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "huge.svm:1:1: the file is 17179869185 bytes") &&
              strstr(e.msg, "17179869184"),
          "rc %d (%s)", rc, e.msg);
    CHECK(g_peak <= 4096, "read %zu bytes' worth before refusing", g_peak);
    remove(p);

    /* params: at most 1 MiB + 64 bytes per value */
    p = tpath("huge.txt");
    fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)2 << 20) == 0, "cannot make a sparse file");
    if (fd >= 0) close(fd);
    double th[2];
    count_start((size_t)1 << 30);
    rc = mf_params_read(p, 2, th, &e);
    count_stop();
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "huge.txt: the file is 2097152 bytes") &&
              strstr(e.msg, "1048704"),
          "params: rc %d (%s)", rc, e.msg);
    CHECK(g_peak <= 4096, "params: read %zu bytes' worth before refusing", g_peak);
    remove(p);
}

/* Endless params text and an endless checkpoint stream. */
TEST(fifo_params_and_checkpoint) {
    const char *p = tpath("endless.txt");
    pid_t pid = fifo_feed(p, "1 ", 2);
    double th[2];
    mf_err e = {0, ""};
    count_start((size_t)1 << 30);
    alarm(120);
    int rc = mf_params_read(p, 2, th, &e);
    alarm(0);
    count_stop();
    fifo_done(pid, p);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "more than 1048704 bytes"), "params: rc %d (%s)",
          rc, e.msg);
    CHECK(g_peak <= ((size_t)3 << 20), "params: the reader held %zu bytes", g_peak);

    /* a stream of a valid checkpoint's header followed by endless bytes */
    mf_train_state *s = NULL;
    CHECK_EQ_INT(mf_train_state_new(3, &s, &e), MF_OK);
    const char *good = tpath("good.bin");
    CHECK_EQ_INT(mf_checkpoint_write(good, s, 5u, &e), MF_OK);
    unsigned char head[CKPT3_BYTES];
    FILE *f = fopen(good, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    CHECK_EQ_INT(got, sizeof head);
    mf_train_state_free(s);
    s = NULL;
    p = tpath("endless.bin");
    pid = fifo_feed(p, (const char *)head, sizeof head);
    count_start((size_t)1 << 30);
    alarm(120);
    rc = mf_checkpoint_read(p, 5u, 3, &s, &e);
    alarm(0);
    count_stop();
    fifo_done(pid, p);
    CHECK(rc == MF_ERR_CORRUPT && strstr(e.msg, "longer than the 852 bytes") && !s,
          "checkpoint: rc %d (%s)", rc, e.msg);
    CHECK(g_peak <= 4096, "checkpoint: the reader held %zu bytes", g_peak);
    mf_train_state_free(s);
}

/* A checkpoint of another model with more parameters is still named as
 * foreign (from its header, without reading all of it). */
TEST(checkpoint_of_a_bigger_model) {
    mf_train_state *s = NULL, *r = NULL;
    mf_err e = {0, ""};
    CHECK_EQ_INT(mf_train_state_new(1000, &s, &e), MF_OK);
    const char *p = tpath("big.bin");
    CHECK_EQ_INT(mf_checkpoint_write(p, s, 5u, &e), MF_OK);
    int rc = mf_checkpoint_read(p, 5u, 3, &r, &e);
    CHECK(rc == MF_ERR_FOREIGN && strstr(e.msg, "holds 1000 parameters, expected 3") && !r,
          "rc %d (%s)", rc, e.msg);
    rc = mf_checkpoint_read(p, 6u, 3, &r, &e);
    CHECK(rc == MF_ERR_FOREIGN && strstr(e.msg, "fingerprint 00000005, expected 00000006"),
          "rc %d (%s)", rc, e.msg);
    mf_train_state_free(s);
}

/* ------------------------------------------------ checkpoint fields */

static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t dbits(double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    return v;
}

/* Write a checkpoint of 3 parameters whose payload word at byte offset off
 * (from the payload start) is replaced by v, with the CRC recomputed: the
 * file is intact, only its content is out of range. */
static const char *forge(size_t off, uint64_t v) {
    mf_train_state *s = NULL;
    mf_err e = {0, ""};
    if (mf_train_state_new(3, &s, &e)) exit(2);
    s->step = 10;
    s->rejected = 2;
    s->time_log = 1.5;
    s->lr = 0.25;
    s->log_loss = -3;
    for (int i = 0; i < 3; i++) s->theta[i] = i + 0.5;
    const char *p = tpath("forged.bin");
    if (mf_checkpoint_write(p, s, 9u, &e)) exit(2);
    mf_train_state_free(s);
    unsigned char b[CKPT3_BYTES];
    FILE *f = fopen(p, "rb");
    if (!f || fread(b, 1, sizeof b, f) != sizeof b) exit(2);
    fclose(f);
    put64(b + 24 + off, v);
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)(sizeof b - 4));
    for (int i = 0; i < 4; i++) b[sizeof b - 4 + i] = (unsigned char)(crc >> (8 * i));
    spit(p, b, sizeof b);
    return p;
}

TEST(checkpoint_forged_fields) {
    struct {
        size_t off;
        uint64_t v;
        const char *want; /* in the message */
    } bad[] = {
        {0, (uint64_t)-5, "field step = -5"},
        {0, (uint64_t)INT64_MAX, "field step = 9223372036854775807"},
        {0, ((uint64_t)1 << 62) + 1, "field step = 4611686018427387905"},
        {8, (uint64_t)-1, "field rejected = -1"},
        {8, (uint64_t)INT64_MAX, "field rejected = 9223372036854775807"},
        {16, dbits(NAN), "field time_log = nan"},
        {16, dbits(INFINITY), "field time_log = inf"},
        {24, dbits(NAN), "field lr = nan"},
        {24, dbits(-1.0), "field lr = -1"},
        {24, dbits(-INFINITY), "field lr = -inf"},
        {24, dbits(INFINITY), "field lr = inf"},
        {24, dbits(-0.0), "field lr = -0"},
        {32, dbits(INFINITY), "field log_loss = inf"},
        {32, dbits(-INFINITY), "field log_loss = -inf"},
        {80, dbits(NAN), "field theta[0] = nan"},
        {96, dbits(-INFINITY), "field theta[2] = -inf"},
        {104, 3, "field flow_mode = 3"},
        {104, (uint64_t)-1, "field flow_mode = -1"},
        {112, dbits(NAN), "field flow_lambda = nan"},
        {112, dbits(-1.0), "field flow_lambda = -1"},
        {152, 41, "hist_n = 41"},
        {160, 40, "hist_start = 40"},
        {168, (uint64_t)-2, "hist_next_k = -2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = forge(bad[i].off, bad[i].v);
        mf_train_state *s = NULL;
        mf_err e = {0, ""};
        int rc = mf_checkpoint_read(p, 9u, 3, &s, &e);
        CHECK(rc == MF_ERR_CORRUPT && s == NULL && strstr(e.msg, bad[i].want) &&
                  strstr(e.msg, "forged.bin: checkpoint"),
              "case %zu: rc %d (%s), want '%s'", i, rc, e.msg, bad[i].want);
        mf_train_state_free(s);
    }
    /* the all-zero generator state (xoshiro256** would output only zeros) */
    mf_train_state *s = NULL;
    mf_err e = {0, ""};
    if (mf_train_state_new(3, &s, &e)) return;
    memset(s->rng.s, 0, sizeof s->rng.s);
    const char *p = tpath("zero-rng.bin");
    CHECK_EQ_INT(mf_checkpoint_write(p, s, 9u, &e), MF_OK);
    mf_train_state_free(s);
    s = NULL;
    int rc = mf_checkpoint_read(p, 9u, 3, &s, &e);
    CHECK(rc == MF_ERR_CORRUPT && strstr(e.msg, "field rng") && !s, "rng: rc %d (%s)", rc,
          e.msg);
    mf_train_state_free(s);
}

/* What a run really writes is accepted: the step-0 state of a fresh run
 * (lr 0, log_loss NaN, t = 0) and the extremes of each range. */
TEST(checkpoint_valid_extremes) {
    struct {
        size_t off;
        uint64_t v;
    } ok[] = {
        {0, 0},
        {0, (uint64_t)1 << 62},
        {8, (uint64_t)1 << 62},
        {16, dbits(-INFINITY)},
        {16, dbits(-1e308)},
        {16, dbits(1e308)},
        {24, dbits(0.0)},
        {24, dbits(5e-324)},
        {24, dbits(1.7976931348623157e308)},
        {32, dbits(NAN)},
        {32, dbits(-1e308)},
        {80, dbits(-1.7976931348623157e308)},
        {104, 2},
        {112, dbits(1.7976931348623157e308)},
        {152, 40},
        {160, 39},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *p = forge(ok[i].off, ok[i].v);
        mf_train_state *s = NULL;
        mf_err e = {0, ""};
        int rc = mf_checkpoint_read(p, 9u, 3, &s, &e);
        CHECK(rc == MF_OK && s, "case %zu: rc %d (%s)", i, rc, e.msg);
        mf_train_state_free(s);
    }
    mf_train_state *s = NULL;
    mf_err e = {0, ""};
    CHECK_EQ_INT(mf_train_state_new(4, &s, &e), MF_OK);
    CHECK(mf_train_state_validate(s) == NULL, "a fresh state is valid: %s",
          mf_train_state_validate(s));
    s->step = -1;
    const char *why = mf_train_state_validate(s);
    CHECK(why && strncmp(why, "step:", 5) == 0, "step -1: %s", why ? why : "(null)");
    s->step = 0;
    s->lr = NAN;
    why = mf_train_state_validate(s);
    CHECK(why && strncmp(why, "lr:", 3) == 0, "lr NaN: %s", why ? why : "(null)");
    s->lr = 0.1;
    s->theta[3] = INFINITY;
    why = mf_train_state_validate(s);
    CHECK(why && strncmp(why, "theta:", 6) == 0, "theta inf: %s", why ? why : "(null)");
    mf_train_state_free(s);
}

/* ------------------------------------------------ params files */

TEST(params_header) {
    mf_err e = {0, ""};
    mf_data *D = NULL;
    mf_model *lin = NULL, *skip = NULL, *relu = NULL;
    CHECK_EQ_INT(mf_data_from_spec("gauss:n=4,d=3,seed=2", NULL, &D, &e), MF_OK);
    if (!D) return;
    CHECK_EQ_INT(mf_model_parse("linear", 3, 0, &lin, &e), MF_OK);
    CHECK_EQ_INT(mf_model_parse("diag:depth=1", 3, 0, &skip, &e), MF_OK);
    CHECK_EQ_INT(mf_model_parse("relu2:width=1", 3, 0, &relu, &e), MF_OK);
    if (!lin || !skip || !relu) return;
    double th[4] = {0.5, -0.25, 2, 0}, back[4];
    const char *p = tpath("lin.txt");
    CHECK_EQ_INT(mf_params_write(p, lin, th, &e), MF_OK);

    /* its own model, and the plain reader with the right count */
    int rc = mf_params_read_for(p, lin, back, &e);
    CHECK(rc == MF_OK && back[0] == 0.5 && back[2] == 2, "own model: rc %d (%s)", rc, e.msg);
    CHECK_EQ_INT(mf_params_read(p, 3, back, &e), MF_OK);
    /* another model with the same count (diag:depth=1 has 3 parameters) */
    rc = mf_params_read_for(p, skip, back, &e);
    CHECK(rc == MF_ERR_FOREIGN && strstr(e.msg, "lin.txt:1:") && strstr(e.msg, "'linear'") &&
              strstr(e.msg, "'diag:depth=1'"),
          "other model: rc %d (%s)", rc, e.msg);
    /* another count: the header is named, not just the count */
    rc = mf_params_read_for(p, relu, back, &e);
    CHECK(rc == MF_ERR_FOREIGN && strstr(e.msg, "n=3") && strstr(e.msg, "4 parameters"),
          "other n: rc %d (%s)", rc, e.msg);
    rc = mf_params_read(p, 4, back, &e);
    CHECK(rc == MF_ERR_FOREIGN && strstr(e.msg, "n=3") && strstr(e.msg, "4 parameters"),
          "plain reader, other n: rc %d (%s)", rc, e.msg);

    /* a hand-written header with a non-canonical spec of the same model */
    spits(p, "# marginflow params v1 n=4 model=relu2:width=1\n1\n2\n3\n4\n");
    rc = mf_params_read_for(p, relu, back, &e);
    CHECK(rc == MF_OK && back[3] == 4, "non-canonical spec: rc %d (%s)", rc, e.msg);
    /* a header whose count disagrees with the values below it */
    spits(p, "# marginflow params v1 n=4 model=relu2:width=1,alpha=0\n1\n2\n3\n");
    rc = mf_params_read_for(p, relu, back, &e);
    CHECK(rc == MF_ERR_DIM && strstr(e.msg, "expected 4 values, found 3"), "short: rc %d (%s)", rc,
          e.msg);
    /* malformed or unknown headers */
    const char *bad[][2] = {
        {"# marginflow params v2 n=3 model=linear\n1 2 3\n", "version 'v2'"},
        {"# marginflow params v1 n=x model=linear\n1 2 3\n", "n=<count>"},
        {"# marginflow params v1 n=3\n1 2 3\n", "model=<spec>"},
        {"# marginflow params v1 n=3 model=resnet\n1 2 3\n", "'resnet'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        spits(p, bad[i][0]);
        rc = mf_params_read_for(p, lin, back, &e);
        CHECK(rc != MF_OK && strstr(e.msg, "lin.txt:1:") && strstr(e.msg, bad[i][1]),
              "bad header %zu: rc %d (%s), want '%s'", i, rc, e.msg, bad[i][1]);
    }
    /* plain lists and other comments stay accepted */
    spits(p, "# my numbers\n0.5, 1\n\n2\n");
    CHECK_EQ_INT(mf_params_read_for(p, lin, back, &e), MF_OK);
    CHECK(back[2] == 2, "plain list: %g", back[2]);
    mf_model_free(lin);
    mf_model_free(skip);
    mf_model_free(relu);
    mf_data_free(D);
}

TEST(params_messages) {
    mf_err e = {0, ""};
    double th[4];
    int rc = mf_params_parse("1;2", 2, th, &e);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "'1;2'") && strstr(e.msg, "expected a number"),
          "1;2: rc %d (%s)", rc, e.msg);
    /* control characters are named and escaped, never echoed */
    rc = mf_params_parse("1,\x1b[2J", 2, th, &e);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, ":1:3: control character 0x1b") && printable(e.msg),
          "ESC: rc %d (%s)", rc, e.msg);
    /* a NUL byte in a file: line and column */
    const char *p = tpath("nul.txt");
    spit(p, "1\n2 \0 3\n", 8);
    rc = mf_params_read(p, 3, th, &e);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "nul.txt:2:3: NUL byte"), "NUL: rc %d (%s)", rc,
          e.msg);
    /* a long but valid number is a number */
    char num[400] = "0.";
    for (int i = 0; i < 300; i++) strcat(num, "0");
    strcat(num, "125e300");
    rc = mf_params_parse(num, 1, th, &e);
    CHECK(rc == MF_OK && th[0] == 0.125, "a 307-character number: rc %d (%s) %g", rc, e.msg,
          th[0]);
    /* a long token that is not a number is quoted with a cut */
    char junk[400];
    memset(junk, 'z', 300);
    junk[300] = '\0';
    rc = mf_params_parse(junk, 1, th, &e);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "zzz...'"), "junk: rc %d (%s)", rc, e.msg);
    /* bytes of invalid UTF-8 are escaped */
    rc = mf_params_parse("\xff\xfe", 1, th, &e);
    CHECK(rc == MF_ERR_PARSE && strstr(e.msg, "'\\xff\\xfe'"), "bytes: rc %d (%s)", rc, e.msg);
}

/* ------------------------------------------------ data files: messages */

static void data_fail(const char *name, const void *content, size_t len, const char *format,
                      const char *want) {
    const char *p = tpath(name);
    spit(p, content, len);
    mf_data *D = NULL;
    mf_err e = {0, ""};
    int rc = mf_data_load(p, format, 0, &D, &e);
    char w[256];
    snprintf(w, sizeof w, "%s:%s", name, want);
    CHECK(rc == MF_ERR_PARSE && !D && strstr(e.msg, w) && printable(e.msg), "%s: rc %d (%s), want '%s'",
          name, rc, e.msg, w);
    mf_data_free(D);
    remove(p);
}

TEST(data_messages) {
    data_fail("nul.svm", "+1 1:1\n-1 1:2\n+1 2:3\0\n", 22, "libsvm", "3:7: NUL byte");
    data_fail("nul.csv", "1,2\n1,\0", 7, "csv", "2:3: NUL byte");
    data_fail("esc.svm", "+1 1:1\n-1 \x1b[31m1:2\n", 19, "libsvm", "2:4: control character 0x1b");
    data_fail("bel.csv", "1,2\x07\n", 5, "csv", "1:4: control character 0x07");
    data_fail("del.svm", "+1 1:1\x7f\n", 8, "libsvm", "1:7: control character 0x7f");
    /* a token with invalid UTF-8 is quoted with escapes */
    data_fail("bytes.svm", "+1 1:\xc3\x28\n", 8, "libsvm", "1:6: expected a number after ':' in "
                                                            "'idx:val', got '\\xc3('");
    /* valid UTF-8 is shown as it is */
    data_fail("utf8.svm", "+1 1:\xc3\xa9\n", 8, "libsvm", "1:6: expected a number after ':' in "
                                                           "'idx:val', got '\xc3\xa9'");
    /* tab, CR, VT, FF remain blanks */
    const char *p = tpath("blanks.svm");
    spits(p, "+1\t1:1\v2:2\f\r\n-1 1:3\n");
    mf_data *D = NULL;
    mf_err e = {0, ""};
    CHECK_EQ_INT(mf_data_load(p, "libsvm", 0, &D, &e), MF_OK);
    mf_data_free(D);
    /* a path or spec with control characters is escaped in messages */
    int rc = mf_data_from_spec("gauss:n=\x1b[2J", NULL, &D, &e);
    CHECK(rc == MF_ERR_INVALID && printable(e.msg) && strstr(e.msg, "\\x1b[2J"), "spec: rc %d (%s)",
          rc, e.msg);
    /* a message too long for mf_err is cut visibly */
    char longp[700] = "/tmp/";
    memset(longp + 5, 'q', 600);
    longp[605] = '\0';
    rc = mf_data_load(longp, NULL, 0, &D, &e);
    CHECK(rc == MF_ERR_IO && strstr(e.msg, "qqq...:1:1: cannot open file"),
          "long path (%zu bytes) '%s'", strlen(e.msg), e.msg);
    memset(longp + 5, 0x7f, 600); /* each shown as \x7f: 2400 bytes of message */
    rc = mf_data_load(longp, NULL, 0, &D, &e);
    CHECK(rc == MF_ERR_IO && strlen(e.msg) == MF_ERR_LEN - 1 &&
              strcmp(e.msg + MF_ERR_LEN - 4, "...") == 0 && printable(e.msg),
          "long message (%zu bytes) '%s'", strlen(e.msg), e.msg);
    rc = mf_data_load("/tmp/no\x1b[2Jsuch.svm", NULL, 0, &D, &e);
    CHECK(rc == MF_ERR_IO && printable(e.msg) && strstr(e.msg, "/tmp/no\\x1b[2Jsuch.svm:1:1:"),
          "path: rc %d (%s)", rc, e.msg);
    rc = mf_data_from_spec("builtin:\x01", NULL, &D, &e);
    CHECK(rc == MF_ERR_INVALID && printable(e.msg), "builtin: rc %d (%s)", rc, e.msg);

    /* the description of a loaded file: escaped, and a long path cut visibly */
    p = tpath("a\x1b[2Jb.svm");
    spits(p, "+1 1:1\n");
    rc = mf_data_load(p, NULL, 0, &D, &e);
    CHECK(rc == MF_OK && D && printable(D->desc) && strstr(D->desc, "a\\x1b[2Jb.svm (libsvm)"),
          "desc '%s'", D ? D->desc : "");
    mf_data_free(D);
    D = NULL;
    remove(p);
    char name[251];
    memset(name, 'n', 250);
    name[250] = '\0';
    p = tpath(name);
    spits(p, "+1 1:1\n");
    rc = mf_data_load(p, NULL, 0, &D, &e);
    CHECK(rc == MF_OK && D && strstr(D->desc, "nnn... (libsvm)") &&
              strlen(D->desc) < sizeof D->desc - 1,
          "long desc '%s'", D ? D->desc : "");
    mf_data_free(D);
    remove(p);
}

/* ------------------------------------------------ the data fingerprint */

/* The documented serialization, hashed here with zlib directly: "MFDATA1",
 * NUL, then n, d, num_classes as little-endian i64, x as LE IEEE-754 bits,
 * then y (LE bits) or cls (LE i32). */
static uint32_t ref_hash(const mf_data *D) {
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, (const Bytef *)"MFDATA1", 8);
    unsigned char b[8];
    int64_t hdr[3] = {D->n, D->d, D->num_classes};
    for (int k = 0; k < 3; k++) {
        put64(b, (uint64_t)hdr[k]);
        c = crc32(c, b, 8);
    }
    for (size_t i = 0; i < (size_t)D->n * D->d; i++) {
        put64(b, dbits(D->x[i]));
        c = crc32(c, b, 8);
    }
    for (int i = 0; i < D->n; i++) {
        if (D->num_classes == 0) {
            put64(b, dbits(D->y[i]));
            c = crc32(c, b, 8);
        } else {
            uint32_t v = (uint32_t)D->cls[i];
            for (int k = 0; k < 4; k++) b[k] = (unsigned char)(v >> (8 * k));
            c = crc32(c, b, 4);
        }
    }
    return (uint32_t)c;
}

TEST(data_hash) {
    mf_err e = {0, ""};
    mf_data *A = NULL, *B = NULL;
    CHECK_EQ_INT(mf_data_from_spec("gauss:n=50,d=7,seed=3", NULL, &A, &e), MF_OK);
    CHECK_EQ_INT(mf_data_from_spec("gauss:n=50,d=7,seed=3", NULL, &B, &e), MF_OK);
    if (!A || !B) return;
    uint32_t h = mf_data_hash(A);
    CHECK(h == ref_hash(A), "hash %08x, reference %08x", (unsigned)h, (unsigned)ref_hash(A));
    CHECK(mf_data_hash(B) == h, "same contents, other hash");
    snprintf(B->desc, sizeof B->desc, "file:elsewhere.svm (libsvm)");
    CHECK(mf_data_hash(B) == h, "the description is not part of the contents");
    /* one bit of one feature */
    uint64_t v = dbits(B->x[123]) ^ 1u;
    memcpy(&B->x[123], &v, sizeof v);
    CHECK(mf_data_hash(B) != h, "a flipped mantissa bit is not seen");
    B->x[123] = A->x[123];
    /* -0 and +0 are different bit patterns */
    double z = A->x[5];
    A->x[5] = 0.0;
    uint32_t h0 = mf_data_hash(A);
    A->x[5] = -0.0;
    CHECK(mf_data_hash(A) != h0, "-0 hashes as +0");
    A->x[5] = z;
    /* a label */
    B->y[49] = -B->y[49];
    CHECK(mf_data_hash(B) != h, "a flipped label is not seen");
    B->y[49] = A->y[49];
    /* two rows swapped */
    for (int j = 0; j < 7; j++) {
        double t = B->x[j];
        B->x[j] = B->x[7 + j];
        B->x[7 + j] = t;
    }
    double ty = B->y[0];
    B->y[0] = B->y[1];
    B->y[1] = ty;
    CHECK(mf_data_hash(B) != h || (memcmp(B->x, A->x, 7 * sizeof(double)) == 0),
          "a row swap is not seen");
    mf_data_free(B);
    /* the same bytes in another shape */
    mf_data *S1 = NULL, *S2 = NULL;
    CHECK_EQ_INT(mf_data_new(2, 3, 0, &S1, &e), MF_OK);
    CHECK_EQ_INT(mf_data_new(3, 2, 0, &S2, &e), MF_OK);
    if (S1 && S2) {
        for (int i = 0; i < 6; i++) S1->x[i] = S2->x[i] = i + 1;
        S1->y[0] = S1->y[1] = S2->y[0] = S2->y[1] = S2->y[2] = 1;
        CHECK(mf_data_hash(S1) != mf_data_hash(S2), "2x3 and 3x2 hash alike");
        CHECK(mf_data_hash(S1) == ref_hash(S1) && mf_data_hash(S2) == ref_hash(S2),
              "reference hash differs");
    }
    mf_data_free(S1);
    mf_data_free(S2);
    /* multi-class */
    const char *p = tpath("multi.svm");
    spits(p, "0 1:1\n1 2:1\n2 1:1 2:1\n");
    mf_data *M = NULL;
    CHECK_EQ_INT(mf_data_load(p, "libsvm", 0, &M, &e), MF_OK);
    if (M) {
        uint32_t hm = mf_data_hash(M);
        CHECK(hm == ref_hash(M), "multi-class: %08x vs %08x", (unsigned)hm, (unsigned)ref_hash(M));
        M->cls[2] = 0;
        CHECK(mf_data_hash(M) != hm, "a class index change is not seen");
    }
    mf_data_free(M);
    CHECK_EQ_INT(mf_data_hash(NULL), 0);
    /* a known value, so the format cannot drift: builtin:B (x = (1, 2), y = 1),
     * from Python: zlib.crc32(b"MFDATA1\0" + struct.pack("<qqqddd", 1, 2, 0,
     * 1.0, 2.0, 1.0)) = 0xc8794acb */
    mf_data *Bb = NULL;
    CHECK_EQ_INT(mf_data_from_spec("builtin:B", NULL, &Bb, &e), MF_OK);
    if (Bb) CHECK(mf_data_hash(Bb) == 0xc8794acbu, "builtin:B %08x", (unsigned)mf_data_hash(Bb));
    mf_data_free(Bb);
    mf_data_free(A);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/mf-test-limits-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(dev_zero_every_reader);
    RUN(fifo_endless_line);
    RUN(fifo_endless_lines);
    RUN(regular_files_beyond_the_limit);
    RUN(fifo_params_and_checkpoint);
    RUN(checkpoint_of_a_bigger_model);
    RUN(checkpoint_forged_fields);
    RUN(checkpoint_valid_extremes);
    RUN(params_header);
    RUN(params_messages);
    RUN(data_messages);
    RUN(data_hash);
    DIR *d = opendir(g_dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') remove(tpath(de->d_name));
    if (d) closedir(d);
    rmdir(g_dir);
    return TEST_REPORT();
}

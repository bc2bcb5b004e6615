/*
 * io.c -- the files marginflow writes and reads: binary checkpoints, text
 * parameter files, metrics CSV rows, and the atomic-write primitive under all
 * of them. Also the training state object a checkpoint holds.
 *
 * Every file round-trips exactly (STYLE.md 13): text numbers are %.17g under
 * the C locale whatever the process locale is, so strtod reads back the same
 * bits; binary numbers are the raw IEEE-754 / two's complement bytes in
 * little-endian order, so a checkpoint restores a run bit for bit. Binary
 * files carry a magic string, a version and a CRC-32; every file is written
 * to a temporary name, fsync'ed and renamed over the target, so a crash
 * leaves either the old or the new file, never a torn one.
 */
#include "internal.h"

#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MF_LN10 2.302585092994045684017991454684364208

/* ------------------------------------------------------------ train state */

/* A state with a zeroed theta[n_params]: step 0, t = 0 (time_log =
 * -INFINITY), lr 0, log_loss NAN, rng seeded with 1 (a valid, non-zero
 * xoshiro state). The caller (or mf_train) sets lr and rng for its run. */
int mf_train_state_new(size_t n_params, mf_train_state **out, mf_err *e) {
    *out = NULL;
    mf_train_state *s = mf__calloc(1, sizeof *s);
    if (!s) return mf__err(e, MF_ERR_NOMEM, "out of memory allocating a training state");
    s->theta = mf__calloc(n_params ? n_params : 1, sizeof *s->theta);
    if (!s->theta) {
        mf__free(s);
        return mf__err(e, MF_ERR_NOMEM, "out of memory allocating %zu parameters", n_params);
    }
    s->n_params = n_params;
    s->time_log = -INFINITY;
    s->lr = 0.0;
    s->log_loss = NAN;
    mf_rng_seed(&s->rng, 1);
    s->smoothed_decrease_step = -1;
    s->loss_increase_step = -1;
    *out = s;
    return MF_OK;
}

void mf_train_state_free(mf_train_state *s) {
    if (!s) return;
    mf__free(s->theta);
    mf__free(s);
}

/* ----------------------------------------------------------- atomic write */

/* Write buf[len] to path atomically: the bytes go to "path.tmp.<pid>" in the
 * same folder, which is flushed, fsync'ed, closed and renamed over path; the
 * folder is then fsync'ed so the rename itself is durable (best effort: some
 * file systems refuse fsync on a directory). On any failure the temporary
 * file is removed and MF_ERR_IO names the path and strerror(errno). */
int mf_write_file_atomic(const char *path, const void *buf, size_t len, mf_err *e) {
    size_t plen = strlen(path);
    char *tmp = mf__malloc(plen + 32);
    if (!tmp) return mf__err(e, MF_ERR_NOMEM, "out of memory writing %s", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());

    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = mf__err(e, MF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        mf__free(tmp);
        return rc;
    }
    int err = 0;
    const char *what = "write";
    if (len && fwrite(buf, 1, len, f) != len) err = errno ? errno : EIO;
    if (!err && fflush(f) != 0) err = errno, what = "flush";
    if (!err && fsync(fileno(f)) != 0) err = errno, what = "fsync";
    if (fclose(f) != 0 && !err) err = errno, what = "close";
    if (!err && rename(tmp, path) != 0) err = errno, what = "rename";
    if (err) {
        remove(tmp);
        mf__free(tmp);
        return mf__err(e, MF_ERR_IO, "cannot write %s (%s failed): %s", path, what,
                       strerror(err));
    }
    mf__free(tmp);

    /* fsync the containing folder so the new directory entry is on disk. */
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (slash) {
        size_t dl = (size_t)(slash - path);
        dir = mf__malloc(dl + 2);
        if (dir) {
            if (dl == 0) {
                dir[0] = '/';
                dir[1] = '\0';
            } else {
                memcpy(dir, path, dl);
                dir[dl] = '\0';
            }
        }
    }
    int fd = open(dir ? dir : ".", O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    mf__free(dir);
    return MF_OK;
}

/* Read a whole file into a new buffer (NUL-terminated, *len excludes the NUL). */
static int read_file(const char *path, unsigned char **out, size_t *len, mf_err *e) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mf__err(e, MF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    unsigned char *b = mf__malloc(cap);
    if (!b) {
        fclose(f);
        return mf__err(e, MF_ERR_NOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            unsigned char *nb = mf__realloc(b, cap * 2);
            if (!nb) {
                mf__free(b);
                fclose(f);
                return mf__err(e, MF_ERR_NOMEM, "out of memory reading %s", path);
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        mf__free(b);
        return mf__err(e, MF_ERR_IO, "cannot read %s", path);
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return MF_OK;
}

/* ------------------------------------------------------------- checkpoint */

/* Layout (all little-endian):
 *   0   magic "MFCKPT\r\n"                    8 bytes
 *   8   u32 version (2; 1 is still read)
 *   12  u32 fingerprint
 *   16  u64 payload length P
 *   24  payload: i64 step, i64 rejected, f64 time_log, f64 lr, f64 log_loss,
 *                u64 rng.s[4], u64 n_params, f64 theta[n_params]
 *                (version 1 ends here: P = 80 + 8 n_params), then
 *                i64 flow_mode, f64 flow_lambda, f64 smoothed_decrease,
 *                i64 its step, f64 loss_increase, i64 its step, i64 hist_n,
 *                i64 hist_start, i64 hist_next_k, i64 flow_stiff_steps,
 *                f64 hist_logt[40], f64 hist_gamma[40]
 *                (version 2: P = 80 + 8 n_params + 720)
 *   24+P u32 CRC-32 of bytes [0, 24+P)
 * The "\r\n" in the magic catches text-mode / newline-translating copies. */
static const unsigned char ckpt_magic[8] = {'M', 'F', 'C', 'K', 'P', 'T', '\r', '\n'};
#define CKPT_VERSION 2u
#define CKPT_HEADER 24u
#define CKPT_FIXED 80u
#define CKPT_TAIL (80u + 16u * MF_MARGIN_HIST) /* version 2 fields after theta */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_f64(unsigned char *p, double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_u64(p, v);
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static double get_f64(const unsigned char *p) {
    uint64_t v = get_u64(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* Serialize s with the given fingerprint and write it atomically to path. */
int mf_checkpoint_write(const char *path, const mf_train_state *s, uint32_t fingerprint,
                        mf_err *e) {
    if (s->n_params > ((size_t)-1 - CKPT_HEADER - CKPT_FIXED - CKPT_TAIL - 4) / 8)
        return mf__err(e, MF_ERR_INVALID, "%s: too many parameters (%zu)", path, s->n_params);
    size_t payload = CKPT_FIXED + 8 * s->n_params + CKPT_TAIL;
    size_t total = CKPT_HEADER + payload + 4;
    unsigned char *b = mf__malloc(total);
    if (!b) return mf__err(e, MF_ERR_NOMEM, "out of memory writing %s", path);
    memcpy(b, ckpt_magic, 8);
    put_u32(b + 8, CKPT_VERSION);
    put_u32(b + 12, fingerprint);
    put_u64(b + 16, (uint64_t)payload);
    unsigned char *p = b + CKPT_HEADER;
    put_u64(p, (uint64_t)s->step);
    put_u64(p + 8, (uint64_t)s->rejected);
    put_f64(p + 16, s->time_log);
    put_f64(p + 24, s->lr);
    put_f64(p + 32, s->log_loss);
    for (int i = 0; i < 4; i++) put_u64(p + 40 + 8 * i, s->rng.s[i]);
    put_u64(p + 72, (uint64_t)s->n_params);
    for (size_t i = 0; i < s->n_params; i++) put_f64(p + CKPT_FIXED + 8 * i, s->theta[i]);
    unsigned char *q = p + CKPT_FIXED + 8 * s->n_params;
    put_u64(q, (uint64_t)(int64_t)s->flow_mode);
    put_f64(q + 8, s->flow_lambda);
    put_f64(q + 16, s->smoothed_decrease);
    put_u64(q + 24, (uint64_t)s->smoothed_decrease_step);
    put_f64(q + 32, s->loss_increase);
    put_u64(q + 40, (uint64_t)s->loss_increase_step);
    put_u64(q + 48, (uint64_t)(int64_t)s->hist_n);
    put_u64(q + 56, (uint64_t)(int64_t)s->hist_start);
    put_u64(q + 64, (uint64_t)s->hist_next_k);
    put_u64(q + 72, (uint64_t)s->flow_stiff_steps);
    for (int i = 0; i < MF_MARGIN_HIST; i++) {
        put_f64(q + 80 + 8 * i, s->hist_logt[i]);
        put_f64(q + 80 + 8 * MF_MARGIN_HIST + 8 * i, s->hist_gamma[i]);
    }
    put_u32(b + CKPT_HEADER + payload, mf__crc32(b, CKPT_HEADER + payload));
    int rc = mf_write_file_atomic(path, b, total, e);
    mf__free(b);
    return rc;
}

/* Read and verify a checkpoint. Checks, in order: length of the file, magic,
 * version, payload length vs file size, CRC (all MF_ERR_CORRUPT), then the
 * fingerprint and n_params against the caller's expectation (MF_ERR_FOREIGN).
 * The CRC is checked before the fingerprint so a flipped bit in the header is
 * reported as corruption, not as a foreign file. */
int mf_checkpoint_read(const char *path, uint32_t expect_fingerprint, size_t expect_n_params,
                       mf_train_state **out, mf_err *e) {
    *out = NULL;
    unsigned char *b;
    size_t n;
    int rc = read_file(path, &b, &n, e);
    if (rc) return rc;
    if (n < CKPT_HEADER + CKPT_FIXED + 4) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint too short: %zu bytes, expected at least %u", path, n,
                     CKPT_HEADER + CKPT_FIXED + 4);
        goto done;
    }
    if (memcmp(b, ckpt_magic, 8) != 0) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: not a marginflow checkpoint (expected magic \"MFCKPT\\r\\n\")", path);
        goto done;
    }
    uint32_t version = get_u32(b + 8);
    if (version != CKPT_VERSION && version != 1) {
        rc = mf__err(e, MF_ERR_CORRUPT, "%s: unknown checkpoint version %u, expected 1 or %u",
                     path, version, CKPT_VERSION);
        goto done;
    }
    size_t tail = version == 1 ? 0 : CKPT_TAIL;
    uint64_t payload = get_u64(b + 16);
    if (payload != (uint64_t)(n - CKPT_HEADER - 4)) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint length mismatch: header says %llu payload bytes, file "
                     "holds %zu (truncated or damaged)",
                     path, (unsigned long long)payload, n - CKPT_HEADER - 4);
        goto done;
    }
    uint32_t stored = get_u32(b + n - 4), crc = mf__crc32(b, n - 4);
    if (stored != crc) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint checksum mismatch: stored %08x, computed %08x (file is "
                     "corrupt)",
                     path, (unsigned)stored, (unsigned)crc);
        goto done;
    }
    const unsigned char *p = b + CKPT_HEADER;
    uint64_t np = get_u64(p + 72);
    if (payload < CKPT_FIXED + tail || np > (payload - CKPT_FIXED - tail) / 8 ||
        CKPT_FIXED + 8 * np + tail != payload) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint says %llu parameters but holds %llu payload bytes", path,
                     (unsigned long long)np, (unsigned long long)payload);
        goto done;
    }
    uint32_t fp = get_u32(b + 12);
    if (fp != expect_fingerprint) {
        rc = mf__err(e, MF_ERR_FOREIGN,
                     "%s: checkpoint belongs to another configuration: fingerprint %08x, "
                     "expected %08x",
                     path, (unsigned)fp, (unsigned)expect_fingerprint);
        goto done;
    }
    if (np != (uint64_t)expect_n_params) {
        rc = mf__err(e, MF_ERR_FOREIGN,
                     "%s: checkpoint holds %llu parameters, expected %zu for this model", path,
                     (unsigned long long)np, expect_n_params);
        goto done;
    }
    mf_train_state *s;
    rc = mf_train_state_new((size_t)np, &s, e);
    if (rc) goto done;
    s->step = (long long)get_u64(p);
    s->rejected = (long long)get_u64(p + 8);
    s->time_log = get_f64(p + 16);
    s->lr = get_f64(p + 24);
    s->log_loss = get_f64(p + 32);
    for (int i = 0; i < 4; i++) s->rng.s[i] = get_u64(p + 40 + 8 * i);
    for (size_t i = 0; i < s->n_params; i++) s->theta[i] = get_f64(p + CKPT_FIXED + 8 * i);
    if (version >= 2) {
        const unsigned char *q = p + CKPT_FIXED + 8 * s->n_params;
        int64_t mode = (int64_t)get_u64(q), hn = (int64_t)get_u64(q + 48),
                hs = (int64_t)get_u64(q + 56), hk = (int64_t)get_u64(q + 64);
        double lam = get_f64(q + 8);
        if (mode < 0 || mode > 2 || !(lam >= 0 && lam <= DBL_MAX) || hn < 0 ||
            hn > MF_MARGIN_HIST || hs < 0 || hs >= MF_MARGIN_HIST || hk < 0) {
            mf_train_state_free(s);
            rc = mf__err(e, MF_ERR_CORRUPT,
                         "%s: checkpoint holds an invalid flow mode or margin history", path);
            goto done;
        }
        s->flow_mode = (int)mode;
        s->flow_lambda = lam;
        s->smoothed_decrease = get_f64(q + 16);
        s->smoothed_decrease_step = (long long)get_u64(q + 24);
        s->loss_increase = get_f64(q + 32);
        s->loss_increase_step = (long long)get_u64(q + 40);
        s->hist_n = (int)hn;
        s->hist_start = (int)hs;
        s->hist_next_k = (long long)hk;
        s->flow_stiff_steps = (long long)get_u64(q + 72);
        for (int i = 0; i < MF_MARGIN_HIST; i++) {
            s->hist_logt[i] = get_f64(q + 80 + 8 * i);
            s->hist_gamma[i] = get_f64(q + 80 + 8 * MF_MARGIN_HIST + 8 * i);
        }
    }
    *out = s;
    rc = MF_OK;
done:
    mf__free(b);
    return rc;
}

/* ------------------------------------------------------ number formatting */

static locale_t c_locale(void) {
    static locale_t cloc = (locale_t)0;
    if (cloc == (locale_t)0) cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    return cloc;
}

/* %.17g under the C locale: the shortest fixed-width form that strtod reads
 * back to the same double, with '.' as decimal point. */
void mf_format_double(char *buf, size_t cap, double v) {
    locale_t cloc = c_locale();
    locale_t old = cloc ? uselocale(cloc) : (locale_t)0;
    snprintf(buf, cap, "%.17g", v);
    if (cloc) uselocale(old);
}

/* t = exp(time_log) as a decimal string. Inside double range
 * (|time_log| < 690) that is %.17g of exp(time_log). Beyond it, with
 * l = time_log / ln 10, E = floor(l): t = 10^(l - E) * 10^E, written as the
 * mantissa with 16 decimals and the exponent ("3.1415926535897931e+10000").
 * The mantissa carries the absolute error of l - E, about 1e-16 |l|: this is
 * the best a double time_log can say. "0" for time_log = -INFINITY. */
void mf_format_log_value(char *buf, size_t cap, double time_log) {
    if (time_log == -INFINITY) {
        snprintf(buf, cap, "0");
        return;
    }
    if (isnan(time_log) || time_log == INFINITY || fabs(time_log) < 690.0) {
        mf_format_double(buf, cap, exp(time_log));
        return;
    }
    double l = time_log / MF_LN10;
    double E = floor(l);
    double mant = pow(10.0, l - E);
    char m[64];
    locale_t cloc = c_locale();
    locale_t old = cloc ? uselocale(cloc) : (locale_t)0;
    snprintf(m, sizeof m, "%.16f", mant);
    if (m[0] == '1' && m[1] == '0') { /* 9.99999... rounded up to 10 */
        E += 1.0;
        snprintf(m, sizeof m, "%.16f", 1.0);
    }
    /* E is an integer-valued double, possibly beyond long long (time_log up
     * to ~1e308 when the loss itself is near -1e308 in logs): print it with
     * %.0f, which is exact for integer-valued doubles. */
    snprintf(buf, cap, "%se%c%02.0f", m, E < 0 ? '-' : '+', fabs(E));
    if (cloc) uselocale(old);
}

/* ---------------------------------------------------------------- params */

/* Append the text form of theta to a growing buffer; returns 0 on NOMEM. */
static int append(char **b, size_t *n, size_t *cap, const char *s) {
    size_t l = strlen(s);
    if (*n + l + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (*n + l + 1 > nc) nc *= 2;
        char *nb = mf__realloc(*b, nc);
        if (!nb) return 0;
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *n, s, l + 1);
    *n += l;
    return 1;
}

/* Write "# marginflow params v1 n=<n> model=<spec>" and one %.17g value per
 * line, atomically. */
int mf_params_write(const char *path, const mf_model *m, const double *theta, mf_err *e) {
    char *b = NULL;
    size_t n = 0, cap = 0;
    char line[MF_SPEC_LEN + 64];
    snprintf(line, sizeof line, "# marginflow params v1 n=%zu model=%s\n", m->n_params, m->spec);
    int ok = append(&b, &n, &cap, line);
    for (size_t i = 0; ok && i < m->n_params; i++) {
        mf_format_double(line, sizeof line - 1, theta[i]);
        strcat(line, "\n");
        ok = append(&b, &n, &cap, line);
    }
    if (!ok) {
        mf__free(b);
        return mf__err(e, MF_ERR_NOMEM, "out of memory writing %s", path);
    }
    int rc = mf_write_file_atomic(path, b, n, e);
    mf__free(b);
    return rc;
}

/* Parse a list of numbers separated by whitespace and commas, '#' starting a
 * comment to the end of the line. Writes the first n_params values into
 * theta and counts all of them. Errors: a token that is not a number, or a
 * NaN/Inf value (MF_ERR_PARSE, "<where>:<line>:<col>: ..."), a count other
 * than n_params (MF_ERR_DIM "expected N values, found M"). where names the
 * source (a path, or "--init-params"). */
static int parse_numbers(const char *where, const char *text, size_t n_params, double *theta,
                         mf_err *e) {
    size_t count = 0;
    int line = 1;
    const char *line_start = text;
    const char *p = text;
    while (*p) {
        char c = *p;
        if (c == '\n') {
            line++;
            p++;
            line_start = p;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == ',' || c == '\f' || c == '\v') {
            p++;
            continue;
        }
        if (c == '#') {
            while (*p && *p != '\n') p++;
            continue;
        }
        const char *tok = p;
        while (*p && !strchr(" \t\r\n,#\f\v", *p)) p++;
        size_t tl = (size_t)(p - tok);
        int col = (int)(tok - line_start) + 1;
        char tbuf[128];
        size_t cl = tl < sizeof tbuf - 1 ? tl : sizeof tbuf - 1;
        memcpy(tbuf, tok, cl);
        tbuf[cl] = '\0';
        char *end;
        double v = mf__strtod_c(tbuf, &end);
        if (tl >= sizeof tbuf - 1 || end != tbuf + tl || tl == 0)
            return mf__err(e, MF_ERR_PARSE, "%s:%d:%d: expected a number, found '%s'", where,
                           line, col, tbuf);
        if (!isfinite(v))
            return mf__err(e, MF_ERR_PARSE, "%s:%d:%d: value '%s' is not finite", where, line,
                           col, tbuf);
        if (count < n_params) theta[count] = v;
        count++;
    }
    if (count != n_params)
        return mf__err(e, MF_ERR_DIM, "%s: expected %zu values, found %zu", where, n_params,
                       count);
    return MF_OK;
}

int mf_params_read(const char *path, size_t n_params, double *theta, mf_err *e) {
    unsigned char *b;
    size_t n;
    int rc = read_file(path, &b, &n, e);
    if (rc) return rc;
    if (strlen((const char *)b) != n) {
        mf__free(b);
        return mf__err(e, MF_ERR_PARSE, "%s: contains a NUL byte; not a text file", path);
    }
    rc = parse_numbers(path, (const char *)b, n_params, theta, e);
    mf__free(b);
    return rc;
}

int mf_params_parse(const char *list, size_t n_params, double *theta, mf_err *e) {
    return parse_numbers("parameter list", list, n_params, theta, e);
}

/* ------------------------------------------------------------ metrics CSV */

const char *mf_metrics_csv_header(void) {
    return "step,time,log10_time,log10_loss,norm,q_min,normalized_margin,smoothed_margin,"
           "layer_margin,lr,train_error,balancedness,beta,smoothed_decrease,loss_increase,"
           "margin_change";
}

/* One CSV row: step as an integer, time via mf_format_log_value, log10_time =
 * time_log / ln 10 (empty when t = 0), every other column %.17g; a NAN
 * (beta, margin_change where undefined) is an empty field. */
void mf_metrics_csv_row(const mf_metrics *m, char *buf, size_t cap) {
    char t[MF_LOG_VALUE_LEN], lt[40];
    char v[13][40];
    mf_format_log_value(t, sizeof t, m->time_log);
    if (m->time_log == -INFINITY)
        lt[0] = '\0';
    else
        mf_format_double(lt, sizeof lt, m->time_log / MF_LN10);
    const double vals[13] = {m->log10_loss,        m->norm,          m->q_min,
                             m->normalized_margin, m->smoothed_margin, m->layer_margin,
                             m->lr,                m->train_error,   m->balancedness,
                             m->beta,              m->smoothed_decrease, m->loss_increase,
                             m->margin_change};
    for (int i = 0; i < 13; i++) {
        if (isnan(vals[i]) && i >= 9) v[i][0] = '\0';
        else mf_format_double(v[i], sizeof v[i], vals[i]);
    }
    snprintf(buf, cap, "%lld,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s", m->step, t, lt, v[0],
             v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]);
}

/*
 * io.c -- the files marginflow writes and reads: binary checkpoints, text
 * parameter files, metrics CSV rows, and the atomic-write primitive under all
 * of them. Also the training state object a checkpoint holds.
 *
 * Every file round-trips exactly (docs/file-formats.md): text numbers are %.17g under
 * the C locale whatever the process locale is, so strtod reads back the same
 * bits; binary numbers are the raw IEEE-754 / two's complement bytes in
 * little-endian order, so a checkpoint restores a run bit for bit. Binary
 * files carry a magic string, a version and a CRC-32; every file is written
 * to a temporary name, fsync'ed and renamed over the target, so a crash
 * leaves either the old or the new file, never a torn one.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

/* Longest path quoted in a message (mf__quote: escaped, cut with "..."). */
#define QUOTE_PATH 300
#define QUOTE_TOKEN 48

/* A bounded read. Reads at most cap bytes of path into a new buffer
 * (NUL-terminated, *len excludes the NUL); *more is set when the file holds
 * more than cap bytes: known from fstat for a regular file (which is then not
 * read at all unless prefix is set), or found by reading one byte past cap
 * (a pipe, FIFO or device, which may never end). *fsize is the size of a
 * regular file, -1 for other kinds. Memory: at most cap + 2 bytes. text: a
 * NUL byte is MF_ERR_PARSE "QP:LINE:COL: NUL byte; <what> is text" as soon as
 * the chunk holding it arrives (/dev/zero is refused after one chunk). qp is
 * the path as messages show it. */
static int read_capped(const char *path, const char *qp, size_t cap, int text, int prefix,
                       const char *what, unsigned char **out, size_t *len, int *more,
                       long long *fsize, mf_err *e) {
    *out = NULL;
    *len = 0;
    *more = 0;
    *fsize = -1;
    if (cap > (size_t)-1 / 2) cap = (size_t)-1 / 2;
    FILE *f = fopen(path, "rb");
    if (!f) return mf__err(e, MF_ERR_IO, "cannot open %s: %s", qp, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        *fsize = (long long)st.st_size;
        if ((uint64_t)st.st_size > (uint64_t)cap) {
            *more = 1;
            if (!prefix) {
                fclose(f);
                return MF_OK;
            }
        }
    }
    size_t limit = cap + 1; /* read one byte past cap */
    size_t bcap = limit + 1 < 4096 ? limit + 1 : 4096, n = 0;
    unsigned char *b = mf__malloc(bcap);
    if (!b) {
        fclose(f);
        return mf__err(e, MF_ERR_NOMEM, "out of memory reading %s", qp);
    }
    long line = 1;
    size_t line_start = 0; /* offset of the current line (text) */
    int rc = MF_OK;
    for (;;) {
        if (n + 1 >= bcap && bcap < limit + 1) {
            size_t nc = bcap > (limit + 1) / 2 ? limit + 1 : 2 * bcap;
            unsigned char *nb = mf__realloc(b, nc);
            if (!nb) {
                rc = mf__err(e, MF_ERR_NOMEM, "out of memory reading %s", qp);
                break;
            }
            b = nb;
            bcap = nc;
        }
        size_t want = (bcap - 1 < limit ? bcap - 1 : limit) - n;
        if (want == 0) break; /* limit bytes are in */
        size_t got = fread(b + n, 1, want, f);
        if (text && got) {
            unsigned char *z = memchr(b + n, '\0', got);
            size_t stop = z ? (size_t)(z - b) : n + got;
            for (size_t i = n; i < stop; i++)
                if (b[i] == '\n') line++, line_start = i + 1;
            if (z) {
                rc = mf__err(e, MF_ERR_PARSE, "%s:%ld:%zu: NUL byte; %s is text", qp, line,
                             stop - line_start + 1, what);
                break;
            }
        }
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (rc == MF_OK && bad) rc = mf__err(e, MF_ERR_IO, "cannot read %s", qp);
    if (rc) {
        mf__free(b);
        return rc;
    }
    if (n > cap) {
        *more = 1;
        n = cap;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return MF_OK;
}

/* ------------------------------------------------------------- checkpoint */

/* Layout (all little-endian):
 *   0   magic "MFCKPT\r\n"                    8 bytes
 *   8   u32 version (1)
 *   12  u32 fingerprint
 *   16  u64 payload length P
 *   24  payload: i64 step, i64 rejected, f64 time_log, f64 lr, f64 log_loss,
 *                u64 rng.s[4], u64 n_params, f64 theta[n_params]
 *                (P = 80 + 8 n_params)
 *   24+P u32 CRC-32 of bytes [0, 24+P)
 * The "\r\n" in the magic catches text-mode / newline-translating copies. */
static const unsigned char ckpt_magic[8] = {'M', 'F', 'C', 'K', 'P', 'T', '\r', '\n'};
#define CKPT_VERSION 1u
#define CKPT_HEADER 24u
#define CKPT_FIXED 80u

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
    if (s->n_params > ((size_t)-1 - CKPT_HEADER - CKPT_FIXED - 4) / 8)
        return mf__err(e, MF_ERR_INVALID, "%s: too many parameters (%zu)", path, s->n_params);
    size_t payload = CKPT_FIXED + 8 * s->n_params;
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
    put_u32(b + CKPT_HEADER + payload, mf__crc32(b, CKPT_HEADER + payload));
    int rc = mf_write_file_atomic(path, b, total, e);
    mf__free(b);
    return rc;
}

/* ------------------------------------------------------ state validation */

/* Largest step / rejected count (MF_MAX_STEPS) and the rules of
 * mf_train_state_validate, one per field, in checking order. */
static const char *const why_step = "step: must be an integer in [0, 2^62]";
static const char *const why_rejected = "rejected: must be an integer in [0, 2^62]";
static const char *const why_time = "time_log: must be -inf (t = 0) or a finite number";
static const char *const why_lr = "lr: must be 0 (not started) or a finite number > 0";
static const char *const why_loss = "log_loss: must be a finite number or NaN (not evaluated)";
static const char *const why_rng = "rng: the all-zero state is not a valid xoshiro256** state";
static const char *const why_theta = "theta: every parameter must be a finite number";

/* The first bad field of s: its rule, and in *bad_theta the index of the
 * first non-finite parameter (theta's rule only). NULL if all are valid. */
static const char *state_check(const mf_train_state *s, size_t *bad_theta) {
    if (s->step < 0 || s->step > MF_MAX_STEPS) return why_step;
    if (s->rejected < 0 || s->rejected > MF_MAX_STEPS) return why_rejected;
    if (!(s->time_log == -INFINITY || isfinite(s->time_log))) return why_time;
    /* 0 compares equal to -0, which the writer never produces: the bits say */
    uint64_t lr_bits;
    memcpy(&lr_bits, &s->lr, sizeof lr_bits);
    if (!(lr_bits == 0 || (s->lr > 0 && isfinite(s->lr)))) return why_lr;
    if (!(isfinite(s->log_loss) || isnan(s->log_loss))) return why_loss;
    if (!(s->rng.s[0] | s->rng.s[1] | s->rng.s[2] | s->rng.s[3])) return why_rng;
    for (size_t i = 0; i < s->n_params; i++)
        if (!isfinite(s->theta[i])) {
            if (bad_theta) *bad_theta = i;
            return why_theta;
        }
    return NULL;
}

const char *mf_train_state_validate(const mf_train_state *s) {
    if (!s) return "state: is NULL";
    if (s->n_params && !s->theta) return "theta: is NULL";
    return state_check(s, NULL);
}

/* "field = value" of the field whose rule is why, into buf. */
static void state_field(const mf_train_state *s, const char *why, size_t i, char *buf,
                        size_t cap) {
    char v[40];
    if (why == why_step || why == why_rejected) {
        snprintf(buf, cap, "%s = %lld", why == why_step ? "step" : "rejected",
                 why == why_step ? s->step : s->rejected);
        return;
    }
    if (why == why_rng) {
        snprintf(buf, cap, "rng = {0, 0, 0, 0}");
        return;
    }
    double x = why == why_time ? s->time_log : why == why_lr ? s->lr : why == why_loss
                                                                          ? s->log_loss
                                                                          : s->theta[i];
    mf_format_double(v, sizeof v, x);
    if (why == why_theta)
        snprintf(buf, cap, "theta[%zu] = %s", i, v);
    else
        snprintf(buf, cap, "%s = %s",
                 why == why_time ? "time_log" : why == why_lr ? "lr" : "log_loss", v);
}

/* Read and verify a checkpoint. Reads at most the size of a checkpoint of
 * expect_n_params parameters (see the layout above). Checks, in order:
 * length of the file, magic, version, payload length vs file size, CRC (all
 * MF_ERR_CORRUPT), then the fingerprint and n_params against the caller's
 * expectation (MF_ERR_FOREIGN), then every field of the state
 * (mf_train_state_validate; MF_ERR_CORRUPT naming the field and its value).
 * The CRC is checked before the fingerprint so a flipped bit in the header is
 * reported as corruption, not as a foreign file. A file longer than expected
 * is not read further: if its header (magic, version and a payload length
 * matching its parameter count) describes a checkpoint of another run, that
 * is MF_ERR_FOREIGN (from the unverified header), else MF_ERR_CORRUPT. */
int mf_checkpoint_read(const char *path, uint32_t expect_fingerprint, size_t expect_n_params,
                       mf_train_state **out, mf_err *e) {
    *out = NULL;
    char qp[MF__QUOTE_CAP(QUOTE_PATH)];
    mf__quote(qp, sizeof qp, path, strlen(path), QUOTE_PATH);
    if (expect_n_params > ((size_t)-1 / 2 - CKPT_HEADER - CKPT_FIXED - 4) / 8)
        return mf__err(e, MF_ERR_INVALID, "%s: cannot expect %zu parameters", qp,
                       expect_n_params);
    size_t cap = CKPT_HEADER + CKPT_FIXED + 8 * expect_n_params + 4;
    unsigned char *b;
    size_t n;
    int more;
    long long fsize;
    int rc = read_capped(path, qp, cap, 0, 1, "a checkpoint", &b, &n, &more, &fsize, e);
    if (rc) return rc;
    if (n < CKPT_HEADER + CKPT_FIXED + 4) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint too short: %zu bytes, expected at least %u", qp, n,
                     CKPT_HEADER + CKPT_FIXED + 4);
        goto done;
    }
    if (memcmp(b, ckpt_magic, 8) != 0) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: not a marginflow checkpoint (expected magic \"MFCKPT\\r\\n\")", qp);
        goto done;
    }
    uint32_t version = get_u32(b + 8);
    if (version != CKPT_VERSION) {
        rc = mf__err(e, MF_ERR_CORRUPT, "%s: unknown checkpoint version %u, expected %u", qp,
                     version, CKPT_VERSION);
        goto done;
    }
    uint64_t payload = get_u64(b + 16);
    const unsigned char *p = b + CKPT_HEADER;
    uint64_t np = get_u64(p + 72);
    uint32_t fp = get_u32(b + 12);
    if (more) {
        int sane = np <= (UINT64_MAX - CKPT_FIXED) / 8 && payload == CKPT_FIXED + 8 * np &&
                   np != (uint64_t)expect_n_params;
        if (sane && fp != expect_fingerprint)
            rc = mf__err(e, MF_ERR_FOREIGN,
                         "%s: checkpoint belongs to another configuration: fingerprint %08x, "
                         "expected %08x",
                         qp, (unsigned)fp, (unsigned)expect_fingerprint);
        else if (sane)
            rc = mf__err(e, MF_ERR_FOREIGN,
                         "%s: checkpoint holds %llu parameters, expected %zu for this model", qp,
                         (unsigned long long)np, expect_n_params);
        else
            rc = mf__err(e, MF_ERR_CORRUPT,
                         "%s: checkpoint is longer than the %zu bytes of a checkpoint of %zu "
                         "parameters (its header says %llu payload bytes)",
                         qp, cap, expect_n_params, (unsigned long long)payload);
        goto done;
    }
    if (payload != (uint64_t)(n - CKPT_HEADER - 4)) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint length mismatch: header says %llu payload bytes, file "
                     "holds %zu (truncated or damaged)",
                     qp, (unsigned long long)payload, n - CKPT_HEADER - 4);
        goto done;
    }
    uint32_t stored = get_u32(b + n - 4), crc = mf__crc32(b, n - 4);
    if (stored != crc) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint checksum mismatch: stored %08x, computed %08x (file is "
                     "corrupt)",
                     qp, (unsigned)stored, (unsigned)crc);
        goto done;
    }
    if (np > (payload - CKPT_FIXED) / 8 || CKPT_FIXED + 8 * np != payload) {
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint says %llu parameters but holds %llu payload bytes", qp,
                     (unsigned long long)np, (unsigned long long)payload);
        goto done;
    }
    if (fp != expect_fingerprint) {
        rc = mf__err(e, MF_ERR_FOREIGN,
                     "%s: checkpoint belongs to another configuration: fingerprint %08x, "
                     "expected %08x",
                     qp, (unsigned)fp, (unsigned)expect_fingerprint);
        goto done;
    }
    if (np != (uint64_t)expect_n_params) {
        rc = mf__err(e, MF_ERR_FOREIGN,
                     "%s: checkpoint holds %llu parameters, expected %zu for this model", qp,
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
    size_t bad_i = 0;
    const char *why = state_check(s, &bad_i);
    if (why) {
        char field[96];
        state_field(s, why, bad_i, field, sizeof field);
        mf_train_state_free(s);
        rc = mf__err(e, MF_ERR_CORRUPT,
                     "%s: checkpoint field %s is out of range (%s); the checksum is valid, so "
                     "the file was forged or written by other software",
                     qp, field, why);
        goto done;
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

/* Position (1-based line and column) of the first control character in
 * text: a byte below 0x20 other than the blanks tab, LF, VT, FF and CR, or
 * DEL; 0 if there is none. */
static int control_at(const char *text, int *line, int *col) {
    int ln = 1;
    const char *ls = text;
    for (const char *p = text; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n') {
            ln++;
            ls = p + 1;
        } else if ((c < 0x20 && !strchr("\t\v\f\r", c)) || c == 0x7f) {
            *line = ln;
            *col = (int)(p - ls) + 1;
            return c;
        }
    }
    return 0;
}

/* Parse a list of numbers separated by whitespace and commas, '#' starting a
 * comment to the end of the line. Writes the first n_params values into
 * theta and counts all of them. Errors: a control character anywhere, a
 * token that is not a number (quoted, escaped and cut after 48 bytes), or a
 * NaN/Inf value (MF_ERR_PARSE, "<where>:<line>:<col>: ..."), a count other
 * than n_params (MF_ERR_DIM "expected N values, found M"). where names the
 * source (a path as messages show it, or "parameter list"). Tokens of any
 * length are read (strtod on the text itself). */
static int parse_numbers(const char *where, const char *text, size_t n_params, double *theta,
                         mf_err *e) {
    int cl, cc, ctl = control_at(text, &cl, &cc);
    if (ctl)
        return mf__err(e, MF_ERR_PARSE,
                       "%s:%d:%d: control character 0x%02x; expected numbers separated by "
                       "commas or blanks",
                       where, cl, cc, (unsigned)ctl);
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
        char *end;
        double v = mf__strtod_c(tok, &end);
        if (end != p) {
            char q[MF__QUOTE_CAP(QUOTE_TOKEN)];
            return mf__err(e, MF_ERR_PARSE, "%s:%d:%d: expected a number, found '%s'", where,
                           line, col, mf__quote(q, sizeof q, tok, tl, QUOTE_TOKEN));
        }
        if (!isfinite(v)) {
            char q[MF__QUOTE_CAP(QUOTE_TOKEN)];
            return mf__err(e, MF_ERR_PARSE, "%s:%d:%d: value '%s' is not finite", where, line,
                           col, mf__quote(q, sizeof q, tok, tl, QUOTE_TOKEN));
        }
        if (count < n_params) theta[count] = v;
        count++;
    }
    if (count != n_params)
        return mf__err(e, MF_ERR_DIM, "%s: expected %zu values, found %zu", where, n_params,
                       count);
    return MF_OK;
}

/* The header of a params file: its first line, when that starts with
 * "# marginflow params", must read "# marginflow params v1 n=<count>
 * model=<spec>" (what mf_params_write writes; blanks between the fields).
 * Checks, in order: the version, the n= and model= fields (MF_ERR_PARSE
 * naming the column), n against n_params, and, when m is given, the model:
 * the header's spec parsed for m's data (m->d, and m->n_out classes when
 * above 1) must give m's canonical spec (MF_ERR_FOREIGN naming both). A
 * file without a header passes. qp: the path as messages show it. */
static int check_header(const char *qp, const char *text, size_t n_params, const mf_model *m,
                        mf_err *e) {
    static const char tag[] = "# marginflow params";
    if (strncmp(text, tag, sizeof tag - 1) != 0) return MF_OK;
    size_t ll = strcspn(text, "\n");
    while (ll > 0 && strchr(" \t\r", text[ll - 1])) ll--;
    size_t i = sizeof tag - 1;
    const char *f[3]; /* version, n=, model= */
    size_t fl[3];
    for (int k = 0; k < 3; k++) {
        while (i < ll && (text[i] == ' ' || text[i] == '\t')) i++;
        f[k] = text + i;
        while (i < ll && (k == 2 || (text[i] != ' ' && text[i] != '\t'))) i++;
        fl[k] = (size_t)(text + i - f[k]);
    }
    char q[MF__QUOTE_CAP(QUOTE_TOKEN)], q2[MF__QUOTE_CAP(MF_SPEC_LEN)];
#define COL(k) ((int)(f[k] - text) + 1)
    if (!(fl[0] == 2 && strncmp(f[0], "v1", 2) == 0))
        return mf__err(e, MF_ERR_PARSE,
                       "%s:1:%d: unsupported params file version '%s' (this build reads v1)", qp,
                       COL(0), mf__quote(q, sizeof q, f[0], fl[0], QUOTE_TOKEN));
    unsigned long long n = 0;
    int ok = fl[1] > 2 && strncmp(f[1], "n=", 2) == 0;
    for (size_t k = 2; ok && k < fl[1]; k++) {
        unsigned dg = (unsigned)(f[1][k] - '0');
        if (dg > 9 || n > (ULLONG_MAX - dg) / 10) ok = 0;
        else n = n * 10 + dg;
    }
    if (!ok)
        return mf__err(e, MF_ERR_PARSE,
                       "%s:1:%d: expected n=<count> in the params header, found '%s'", qp, COL(1),
                       mf__quote(q, sizeof q, f[1], fl[1], QUOTE_TOKEN));
    if (!(fl[2] > 6 && strncmp(f[2], "model=", 6) == 0))
        return mf__err(e, MF_ERR_PARSE,
                       "%s:1:%d: expected model=<spec> in the params header, found '%s'", qp,
                       COL(2), mf__quote(q, sizeof q, f[2], fl[2], QUOTE_TOKEN));
    const char *spec = f[2] + 6;
    size_t sl = fl[2] - 6;
    mf__quote(q2, sizeof q2, spec, sl, MF_SPEC_LEN);
    if (n != (unsigned long long)n_params) {
        if (m)
            return mf__err(e, MF_ERR_FOREIGN,
                           "%s:1:%d: the file holds parameters of model '%s' (n=%llu), but "
                           "model '%s' has %zu parameters",
                           qp, COL(1), q2, n, m->spec, n_params);
        return mf__err(e, MF_ERR_FOREIGN,
                       "%s:1:%d: the file holds parameters of model '%s' (n=%llu), but %zu "
                       "parameters are expected",
                       qp, COL(1), q2, n, n_params);
    }
    if (!m) return MF_OK;
    if (sl >= MF_SPEC_LEN)
        return mf__err(e, MF_ERR_PARSE, "%s:1:%d: the header's model spec is longer than %d bytes",
                       qp, COL(2), MF_SPEC_LEN - 1);
    char hs[MF_SPEC_LEN];
    memcpy(hs, spec, sl);
    hs[sl] = '\0';
    mf_model *hm = NULL;
    mf_err pe = {0, ""};
    if (mf_model_parse(hs, m->d, m->n_out > 1 ? m->n_out : 0, &hm, &pe) != MF_OK) {
        mf_model_free(hm);
        if (pe.code == MF_ERR_NOMEM) return mf__err(e, MF_ERR_NOMEM, "out of memory reading %s", qp);
        char q3[MF__QUOTE_CAP(200)];
        return mf__err(e, MF_ERR_FOREIGN,
                       "%s:1:%d: the file holds parameters of model '%s', which is not a model "
                       "for this data (%s); expected '%s'",
                       qp, COL(2), q2, mf__quote(q3, sizeof q3, pe.msg, strlen(pe.msg), 200),
                       m->spec);
    }
    int same = strcmp(hm->spec, m->spec) == 0;
    mf_model_free(hm);
    if (!same)
        return mf__err(e, MF_ERR_FOREIGN,
                       "%s:1:%d: the file holds parameters of model '%s', not of '%s'", qp,
                       COL(2), q2, m->spec);
#undef COL
    return MF_OK;
}

/* mf_params_read / mf_params_read_for: the bounded text read
 * (MF_PARAMS_MAX_BYTES), the header check, the numbers. */
static int read_params(const char *path, size_t n_params, const mf_model *m, double *theta,
                       mf_err *e) {
    char qp[MF__QUOTE_CAP(QUOTE_PATH)];
    mf__quote(qp, sizeof qp, path, strlen(path), QUOTE_PATH);
    size_t cap = MF_PARAMS_MAX_BYTES(n_params);
    unsigned char *b;
    size_t n;
    int more;
    long long fsize;
    int rc = read_capped(path, qp, cap, 1, 0, "a params file", &b, &n, &more, &fsize, e);
    if (rc) return rc;
    if (more) {
        mf__free(b);
        if (fsize >= 0)
            return mf__err(e, MF_ERR_PARSE,
                           "%s: the file is %lld bytes, beyond the limit of %zu bytes for a "
                           "params file of %zu values (1 MiB and 64 bytes a value)",
                           qp, fsize, cap, n_params);
        return mf__err(e, MF_ERR_PARSE,
                       "%s: the file holds more than %zu bytes, the limit for a params file of "
                       "%zu values (1 MiB and 64 bytes a value); an endless input?",
                       qp, cap, n_params);
    }
    rc = check_header(qp, (const char *)b, n_params, m, e);
    if (rc == MF_OK) rc = parse_numbers(qp, (const char *)b, n_params, theta, e);
    mf__free(b);
    return rc;
}

int mf_params_read(const char *path, size_t n_params, double *theta, mf_err *e) {
    return read_params(path, n_params, NULL, theta, e);
}

int mf_params_read_for(const char *path, const mf_model *m, double *theta, mf_err *e) {
    return read_params(path, m->n_params, m, theta, e);
}

int mf_params_parse(const char *list, size_t n_params, double *theta, mf_err *e) {
    return parse_numbers("parameter list", list, n_params, theta, e);
}

/* ------------------------------------------------------------ metrics CSV */

const char *mf_metrics_csv_header(void) {
    return "step,time,log10_time,log10_loss,norm,q_min,normalized_margin,smoothed_margin,"
           "layer_margin,lr,train_error,balancedness";
}

/* One CSV row: step as an integer, time via mf_format_log_value, log10_time =
 * time_log / ln 10 (empty when t = 0), every other column %.17g. A value
 * that is absent (NaN: undefined or not representable) or infinite is an
 * empty field, never "nan" or "inf" (marginflow.h). */
void mf_metrics_csv_row(const mf_metrics *m, char *buf, size_t cap) {
    char t[MF_LOG_VALUE_LEN], lt[40];
    char v[9][40];
    if (isnan(m->time_log) || m->time_log == INFINITY)
        t[0] = '\0';
    else
        mf_format_log_value(t, sizeof t, m->time_log);
    if (!isfinite(m->time_log))
        lt[0] = '\0';
    else
        mf_format_double(lt, sizeof lt, m->time_log / MF_LN10);
    const double vals[9] = {m->log10_loss,      m->norm,         m->q_min,
                            m->normalized_margin, m->smoothed_margin, m->layer_margin,
                            m->lr,              m->train_error,  m->balancedness};
    for (int i = 0; i < 9; i++) {
        if (isfinite(vals[i]))
            mf_format_double(v[i], sizeof v[i], vals[i]);
        else
            v[i][0] = '\0';
    }
    snprintf(buf, cap, "%lld,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s", m->step, t, lt, v[0], v[1], v[2],
             v[3], v[4], v[5], v[6], v[7], v[8]);
}

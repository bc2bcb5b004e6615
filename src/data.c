/*
 * data.c -- labelled data sets: allocation, the libsvm/liblinear and CSV
 * readers, the known-answer sets of docs/theory.md section 4 and the synthetic
 * separable generators (gauss, symmetric).
 *
 * Readers make one pass over the file with a chunked line reader (any line
 * length, CRLF or LF), collecting samples into growable arrays, then build
 * the dense [n][d] matrix. Every error message starts "PATH:LINE:COL: "
 * (1-based; COL is the byte column of the offending field) and says what was
 * expected and what was found. Numbers are parsed in the C locale.
 *
 * Labels (both formats): all -1/+1 gives a binary set (y[]); otherwise every
 * label must be a non-negative integer class index (cls[], C = max + 1 >= 2).
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Largest class index accepted in a multi-class file (C <= 1e6 outputs). */
#define MAX_CLASS_INDEX 999999
/* Longest token quoted in an error message before it is cut with "...",
 * and longest path. */
#define QUOTE_MAX 48
#define QUOTE_PATH 300
/* Largest dense data matrix: n * d <= 2^28 entries (2 GiB of doubles, e.g.
 * CIFAR-10's 50000 x 3072 = 1.5e8 fits). Checked by mf_data_new
 * (MF_ERR_INVALID), and earlier, with a message naming the cause, by the
 * generators and the file readers (at the line that passes it), so that a
 * 15-byte libsvm line "1 2000000000:1" or the spec gauss:n=1000000,d=100000
 * is refused at once instead of asking for gigabytes. */
#define MAX_ENTRIES MF_DATA_MAX_ENTRIES

/* The reader's file and line limits (marginflow.h); tests lower them. */
static uint64_t g_max_file = MF_DATA_MAX_FILE_BYTES;
static size_t g_max_line = MF_DATA_MAX_LINE_BYTES;

void mf__data_set_limits(uint64_t file_bytes, size_t line_bytes) {
    g_max_file = file_bytes ? file_bytes : MF_DATA_MAX_FILE_BYTES;
    g_max_line = line_bytes ? line_bytes : MF_DATA_MAX_LINE_BYTES;
}

/* ------------------------------------------------------------ allocation */

/* Allocate an n x d data set with zeroed x and y (num_classes == 0) or cls
 * (num_classes >= 2). n >= 0, d >= 0, n * d <= MAX_ENTRIES. MF_ERR_INVALID
 * for bad sizes, MF_ERR_NOMEM when an allocation fails (nothing leaks). */
int mf_data_new(int n, int d, int num_classes, mf_data **out, mf_err *e) {
    if (!out) return mf__err(e, MF_ERR_INVALID, "mf_data_new: out is NULL");
    *out = NULL;
    if (n < 0 || d < 0)
        return mf__err(e, MF_ERR_INVALID, "mf_data_new: n and d must be >= 0, got n=%d d=%d",
                       n, d);
    if (num_classes != 0 && num_classes < 2)
        return mf__err(e, MF_ERR_INVALID,
                       "mf_data_new: num_classes must be 0 (binary) or >= 2, got %d",
                       num_classes);
    if ((size_t)n * (size_t)d > MAX_ENTRIES)
        return mf__err(e, MF_ERR_INVALID,
                       "mf_data_new: %d x %d = %zu entries exceed the limit of %zu (2^28)", n, d,
                       (size_t)n * (size_t)d, MAX_ENTRIES);
    mf_data *D = mf__calloc(1, sizeof *D);
    if (!D) return mf__err(e, MF_ERR_NOMEM, "mf_data_new: out of memory");
    D->n = n;
    D->d = d;
    D->num_classes = num_classes;
    D->x = mf__calloc((size_t)n * (size_t)d, sizeof *D->x);
    if (num_classes == 0)
        D->y = mf__calloc((size_t)(n ? n : 1), sizeof *D->y);
    else
        D->cls = mf__calloc((size_t)(n ? n : 1), sizeof *D->cls);
    if (!D->x || (num_classes == 0 ? !D->y : !D->cls)) {
        mf_data_free(D);
        return mf__err(e, MF_ERR_NOMEM, "mf_data_new: out of memory for %d x %d samples", n, d);
    }
    *out = D;
    return MF_OK;
}

void mf_data_free(mf_data *data) {
    if (!data) return;
    mf__free(data->x);
    mf__free(data->y);
    mf__free(data->cls);
    mf__free(data);
}

/* Make room for need elements of size el in *p (capacity *cap, in
 * elements), growing geometrically. Returns 0, or -1 when out of memory. */
static int grow(void **p, size_t *cap, size_t need, size_t el) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > ((size_t)-1 / 2) / el) return -1;
        nc *= 2;
    }
    void *q = mf__realloc(*p, nc * el);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/* ------------------------------------------------------- number helpers */

/* Shortest %.Ng (N = 1..17) that reads back to v, with a '.' decimal point
 * whatever the process locale. v must be finite. */
static void fmt_short(char *buf, size_t cap, double v) {
    const char *dp = localeconv()->decimal_point;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (dp && strcmp(dp, ".") != 0) {
            char *p = strstr(buf, dp);
            if (p) {
                size_t dl = strlen(dp);
                *p = '.';
                memmove(p + 1, p + dl, strlen(p + dl) + 1);
            }
        }
        if (mf__strtod_c(buf, NULL) == v) return;
    }
}

enum { NUM_OK = 0, NUM_EMPTY, NUM_NOT_NUMBER, NUM_TRAILING, NUM_NONFINITE };

/* Parse the whole of s[0..len) (len bytes, s[len] == '\0') as a double in
 * the C locale. Leading whitespace is not allowed (the caller trims).
 * Returns NUM_OK with *v, or why it failed; *v is set for NUM_NONFINITE and
 * *end_off is the offset where the number stopped for NUM_TRAILING. */
static int parse_num(const char *s, size_t len, double *v, size_t *end_off) {
    if (len == 0) return NUM_EMPTY;
    if (s[0] == ' ' || s[0] == '\t') return NUM_NOT_NUMBER;
    /* Fast path, exact: an optionally signed integer of at most 15 digits
     * (< 2^53, so the double is exact; pixel-valued files are mostly these). */
    if (len <= 16) {
        size_t i = (s[0] == '-' || s[0] == '+');
        if (i < len) {
            int64_t acc = 0;
            size_t k = i;
            while (k < len && s[k] >= '0' && s[k] <= '9') acc = acc * 10 + (s[k++] - '0');
            if (k == len && len - i <= 15) {
                *v = s[0] == '-' ? -(double)acc : (double)acc;
                return NUM_OK;
            }
        }
    }
    char *end = NULL;
    double x = mf__strtod_c(s, &end);
    if (end == s) return NUM_NOT_NUMBER;
    *v = x;
    if ((size_t)(end - s) != len) {
        if (end_off) *end_off = (size_t)(end - s);
        return NUM_TRAILING;
    }
    if (!isfinite(x)) return NUM_NONFINITE;
    return NUM_OK;
}

/* ------------------------------------------------------------ line reader */

/* Reads a FILE line by line into one growable buffer (mf__realloc), so
 * lines may be of any length up to max_line bytes. Each returned line is
 * NUL-terminated with its '\n' and one trailing '\r' removed; the pointer is
 * valid until the next call. Every byte is looked at once for '\n' and NUL,
 * as it arrives, so an endless input is stopped at the first NUL byte, at the
 * line limit or at the file limit, whichever comes first; the buffer never
 * holds more than one line and one read chunk (64 KiB). */
typedef struct line_reader {
    FILE *f;
    char *buf;
    size_t cap, len, pos; /* valid bytes buf[pos..len) */
    int eof;
    int err;              /* errno of a read error, 0 if none */
    long line;            /* number of the line last returned (1-based) */
    long nul_col;         /* -3: column of the NUL byte on line `line` */
    uint64_t total;       /* bytes read so far */
    uint64_t max_total;   /* file limit (bytes) */
    size_t max_line;      /* line limit (bytes, without the '\n') */
} line_reader;

#define READ_CHUNK 65536

/* Returns 1 with *line and *len set, 0 at end of file, -1 out of memory,
 * -2 on a read error (r->err), -3 a NUL byte (r->line is its line, r->nul_col
 * its column), -4 a line longer than max_line (r->line is that line), -5 more
 * than max_total bytes in the file. */
static int next_line(line_reader *r, char **line, size_t *len) {
    size_t scan = r->pos;
    for (;;) {
        char *nl = scan < r->len ? memchr(r->buf + scan, '\n', r->len - scan) : NULL;
        size_t end = nl ? (size_t)(nl - r->buf) : r->len;
        char *z = end > scan ? memchr(r->buf + scan, '\0', end - scan) : NULL;
        if (z) {
            r->line++;
            r->nul_col = (long)(z - (r->buf + r->pos)) + 1;
            return -3;
        }
        if (nl || (r->eof && r->pos < r->len)) {
            char *start = r->buf + r->pos;
            size_t n;
            if (nl) {
                n = (size_t)(nl - start);
                r->pos += n + 1;
            } else { /* last line without '\n'; len < cap holds (room for NUL) */
                n = r->len - r->pos;
                r->pos = r->len;
            }
            if (n > r->max_line) {
                r->line++;
                return -4;
            }
            if (n > 0 && start[n - 1] == '\r') n--;
            start[n] = '\0';
            *line = start;
            *len = n;
            r->line++;
            return 1;
        }
        if (r->eof) return 0;
        if (r->len - r->pos > r->max_line) { /* no '\n' within the limit */
            r->line++;
            return -4;
        }
        /* Need more bytes: slide the partial line to the front, grow if full
         * (geometrically, but to no more than the line limit and a chunk). */
        if (r->pos > 0) {
            memmove(r->buf, r->buf + r->pos, r->len - r->pos);
            r->len -= r->pos;
            r->pos = 0;
        }
        scan = r->len;
        if (r->cap - r->len < 4096 + 1) {
            size_t want = r->len + READ_CHUNK + 1, most = r->max_line + READ_CHUNK + 1;
            size_t nc = r->cap ? r->cap : want;
            while (nc < want) nc = nc > (size_t)-1 / 2 ? want : 2 * nc;
            if (nc > most) nc = most > want ? most : want;
            char *nb = mf__realloc(r->buf, nc);
            if (!nb) return -1;
            r->buf = nb;
            r->cap = nc;
        }
        errno = 0;
        size_t got = fread(r->buf + r->len, 1, r->cap - r->len - 1, r->f);
        r->len += got;
        r->total += got;
        if (r->total > r->max_total) return -5;
        if (got == 0) {
            if (ferror(r->f)) {
                r->err = errno ? errno : EIO;
                return -2;
            }
            r->eof = 1;
        }
    }
}

/* ------------------------------------------------------------ file reader */

/* State shared by the libsvm and CSV readers. */
typedef struct loader {
    const char *path;
    char qpath[MF__QUOTE_CAP(QUOTE_PATH)]; /* path as messages show it */
    char qtok[MF__QUOTE_CAP(QUOTE_MAX)];   /* the token a message quotes */
    mf_err *e;
    int min_d;
    line_reader r;
    /* per sample */
    double *label;
    size_t label_cap;
    int n;
    /* label classification */
    int seen_nonpm1;            /* some label is not -1/+1 */
    long nonpm1_line, nonpm1_col;
    double nonpm1_val;
    int seen_m1;                /* some label is -1 */
    long m1_line, m1_col;
    int max_label;
    long first_line, first_col; /* position of the first label */
    /* libsvm: entries of all samples, rows delimited by row_start[n] */
    size_t *row_start;
    size_t row_cap;
    int *idx;
    double *val;
    size_t nnz, idx_cap, val_cap;
    int max_index;
    long max_index_line, max_index_col; /* where max_index was seen */
    /* csv: values of all samples, [n][d] */
    int csv_fields;             /* fields per row, 0 until the first row */
    long csv_fields_line;
} loader;

/* tok[0..len) quoted for a message (escaped, cut after QUOTE_MAX bytes). */
static const char *qt(loader *L, const char *tok, size_t len) {
    return mf__quote(L->qtok, sizeof L->qtok, tok, len, QUOTE_MAX);
}

static int lerr(loader *L, int code, long col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Error at the current line, column col: "PATH:LINE:COL: <message>". */
static int lerr(loader *L, int code, long col, const char *fmt, ...) {
    if (L->e) {
        char msg[MF_ERR_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        mf__err(L->e, code, "%s:%ld:%ld: %s", L->qpath, L->r.line > 0 ? L->r.line : 1, col, msg);
    }
    return code;
}

static int nomem(loader *L) { return lerr(L, MF_ERR_NOMEM, 1, "out of memory while reading"); }

/* Record the label tok[0..len) of a new sample at column col: checks that
 * it is a finite number that is -1, +1 or a non-negative integer, and
 * tracks what is needed to classify the set at the end. */
static int add_label(loader *L, const char *tok, size_t len, long col) {
    double v = 0;
    size_t eo = 0;
    int st = parse_num(tok, len, &v, &eo);
    if (st == NUM_EMPTY)
        return lerr(L, MF_ERR_PARSE, col, "expected a label (a number), got an empty field");
    if (st == NUM_NOT_NUMBER || st == NUM_TRAILING)
        return lerr(L, MF_ERR_PARSE, col, "expected a label (a number), got '%s'",
                    qt(L, tok, len));
    int pm1 = (v == 1.0 || v == -1.0);
    int cls_ok = st == NUM_OK && v >= 0 && v <= MAX_CLASS_INDEX && v == floor(v);
    if (!pm1 && !cls_ok)
        return lerr(L, MF_ERR_PARSE, col,
                    "bad label '%s': expected -1/+1 (binary) or a non-negative integer "
                    "class index <= %d",
                    qt(L, tok, len), MAX_CLASS_INDEX);
    if (L->n == INT_MAX - 1)
        return lerr(L, MF_ERR_PARSE, col, "too many samples (more than %d)", INT_MAX - 1);
    if (grow((void **)&L->label, &L->label_cap, (size_t)L->n + 1, sizeof *L->label))
        return nomem(L);
    if (L->n == 0) {
        L->first_line = L->r.line;
        L->first_col = col;
    }
    if (v == -1.0 && !L->seen_m1) {
        L->seen_m1 = 1;
        L->m1_line = L->r.line;
        L->m1_col = col;
    }
    if (!pm1 && !L->seen_nonpm1) {
        L->seen_nonpm1 = 1;
        L->nonpm1_line = L->r.line;
        L->nonpm1_col = col;
        L->nonpm1_val = v;
    }
    if (v >= 0 && (int)v > L->max_label) L->max_label = (int)v;
    L->label[L->n++] = v;
    return MF_OK;
}

/* Decide binary vs multi-class from the labels read; returns the number of
 * classes (0 = binary) or an error naming the first offending label. */
static int classify_labels(loader *L, int *num_classes) {
    if (!L->seen_nonpm1) {
        *num_classes = 0;
        return MF_OK;
    }
    if (L->seen_m1) {
        L->r.line = L->m1_line;
        return lerr(L, MF_ERR_PARSE, L->m1_col,
                    "bad label '-1': labels must be all -1/+1 (binary) or all non-negative "
                    "integer class indices, and line %ld has class index %d",
                    L->nonpm1_line, (int)L->nonpm1_val);
    }
    if (L->max_label + 1 < 2) {
        L->r.line = L->first_line;
        return lerr(L, MF_ERR_PARSE, L->first_col,
                    "bad labels: every label is class 0; a multi-class file needs at least "
                    "2 classes");
    }
    *num_classes = L->max_label + 1;
    return MF_OK;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Column (1-based) of the first control character in s[0..len): a byte
 * below 0x20 other than the blanks tab, CR, VT and FF, or DEL (0x7f); 0 if
 * there is none. */
static size_t control_col(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t' && c != '\r' && c != '\v' && c != '\f') || c == 0x7f)
            return i + 1;
    }
    return 0;
}

/* Whether a line is blank or a '#' comment (to be skipped). */
static int skip_line(const char *s, size_t len) {
    size_t i = 0;
    while (i < len && is_space(s[i])) i++;
    return i == len || s[i] == '#';
}

/* The dense limit while reading libsvm: n samples so far with d =
 * max(largest index, min_d, 1) features must fit MAX_ENTRIES; else an error
 * at column col of the current line (the check at the end of the file would
 * come only after memory for every sample was taken). */
static int libsvm_entries(loader *L, long col) {
    uint64_t d = (uint64_t)(L->max_index > L->min_d ? L->max_index : L->min_d);
    if (d < 1) d = 1;
    if ((uint64_t)L->n * d <= MAX_ENTRIES) return MF_OK;
    return lerr(L, MF_ERR_PARSE, col,
                "%d samples x %llu features = %llu entries exceed the limit of %zu (2^28) for "
                "a dense data set",
                L->n, (unsigned long long)d, (unsigned long long)((uint64_t)L->n * d),
                MAX_ENTRIES);
}

/* Parse one libsvm line "label idx:val idx:val ..." (s[len] == '\0'; the
 * line buffer is modified: token ends are overwritten with '\0'). */
static int libsvm_line(loader *L, char *s, size_t len) {
    size_t i = 0;
    while (i < len && is_space(s[i])) i++;
    size_t t0 = i;
    while (i < len && !is_space(s[i])) i++;
    size_t tl = i - t0;
    if (i < len) s[i++] = '\0';
    int rc = add_label(L, s + t0, tl, (long)t0 + 1);
    if (rc == MF_OK) rc = libsvm_entries(L, (long)t0 + 1);
    if (rc) return rc;
    if (grow((void **)&L->row_start, &L->row_cap, (size_t)L->n + 1, sizeof *L->row_start))
        return nomem(L);
    L->row_start[L->n - 1] = L->nnz;
    int prev = 0;
    long prev_col = 0;
    for (;;) {
        while (i < len && is_space(s[i])) i++;
        if (i >= len) break;
        t0 = i;
        while (i < len && !is_space(s[i])) i++;
        tl = i - t0;
        if (i < len) s[i++] = '\0';
        char *tok = s + t0;
        long col = (long)t0 + 1;
        char *colon = memchr(tok, ':', tl);
        if (!colon)
            return lerr(L, MF_ERR_PARSE, col, "expected 'idx:val', got '%s' (missing ':')",
                        qt(L, tok, tl));
        size_t il = (size_t)(colon - tok);
        long long index = 0;
        int ok = il > 0;
        for (size_t k = 0; k < il && ok; k++) {
            if (tok[k] < '0' || tok[k] > '9') ok = 0;
            else if ((index = index * 10 + (tok[k] - '0')) > INT_MAX) ok = 0;
        }
        if (!ok || index < 1)
            return lerr(L, MF_ERR_PARSE, col,
                        "expected a feature index (an integer >= 1) before ':', got '%s'",
                        qt(L, tok, il));
        if (index == prev)
            return lerr(L, MF_ERR_PARSE, col,
                        "duplicate feature index %lld (already given at column %ld)", index,
                        prev_col);
        if (index < prev)
            return lerr(L, MF_ERR_PARSE, col,
                        "feature indices must be strictly increasing, got %lld after %d", index,
                        prev);
        prev = (int)index;
        prev_col = col;
        const char *vs = colon + 1;
        size_t vl = tl - il - 1;
        long vcol = col + (long)il + 1;
        double v = 0;
        size_t eo = 0;
        int st = parse_num(vs, vl, &v, &eo);
        if (st == NUM_EMPTY || st == NUM_NOT_NUMBER)
            return lerr(L, MF_ERR_PARSE, vcol,
                        "expected a number after ':' in 'idx:val', got '%s'", qt(L, vs, vl));
        if (st == NUM_TRAILING)
            return lerr(L, MF_ERR_PARSE, vcol,
                        "expected a number after ':' in 'idx:val', got '%s' (trailing "
                        "characters after the number)",
                        qt(L, vs, vl));
        if (st == NUM_NONFINITE)
            return lerr(L, MF_ERR_PARSE, vcol,
                        "expected a finite number after ':' in 'idx:val', got '%s'%s",
                        qt(L, vs, vl),
                        isinf(v) && vl > 0 && (vs[vl - 1] >= '0' && vs[vl - 1] <= '9')
                            ? " (overflows to infinity)"
                            : "");
        if (prev > L->max_index) {
            L->max_index = prev;
            L->max_index_line = L->r.line;
            L->max_index_col = col;
            if ((rc = libsvm_entries(L, col))) return rc;
        }
        if (v != 0.0) {
            if (grow((void **)&L->idx, &L->idx_cap, L->nnz + 1, sizeof *L->idx) ||
                grow((void **)&L->val, &L->val_cap, L->nnz + 1, sizeof *L->val))
                return nomem(L);
            L->idx[L->nnz] = prev - 1;
            L->val[L->nnz] = v;
            L->nnz++;
        }
    }
    return MF_OK;
}

/* Trim spaces/tabs around s[a..b); returns the trimmed bounds. */
static void trim(const char *s, size_t *a, size_t *b) {
    while (*a < *b && is_space(s[*a])) (*a)++;
    while (*b > *a && is_space(s[*b - 1])) (*b)--;
}

/* Count the comma-separated fields of a line and tell whether none of them
 * is a number (then, on the first line, it is a header). */
static int csv_is_header(const char *s, size_t len) {
    size_t a = 0;
    for (;;) {
        const char *c = memchr(s + a, ',', len - a);
        size_t b = c ? (size_t)(c - s) : len;
        size_t fa = a, fb = b;
        trim(s, &fa, &fb);
        if (fb > fa) {
            char tmp[64];
            size_t fl = fb - fa;
            if (fl < sizeof tmp) { /* a number never needs 63 characters here */
                memcpy(tmp, s + fa, fl);
                tmp[fl] = '\0';
                double v;
                size_t eo;
                int st = parse_num(tmp, fl, &v, &eo);
                if (st == NUM_OK || st == NUM_NONFINITE) return 0;
            }
        }
        if (!c) return 1;
        a = b + 1;
    }
}

static size_t csv_count_fields(const char *s, size_t len) {
    size_t k = 1;
    for (size_t i = 0; i < len; i++) k += s[i] == ',';
    return k;
}

/* Parse one CSV line "label, x1, ..., xd" into L->val (grown by d). */
static int csv_line(loader *L, char *s, size_t len) {
    size_t nf = csv_count_fields(s, len);
    if (L->csv_fields == 0) {
        if (nf < 2)
            return lerr(L, MF_ERR_PARSE, 1,
                        "expected at least 2 fields (label, then features), got %zu", nf);
        if (nf > (size_t)INT_MAX) return lerr(L, MF_ERR_PARSE, 1, "too many fields (%zu)", nf);
        L->csv_fields = (int)nf;
        L->csv_fields_line = L->r.line;
        if (csv_is_header(s, len)) return MF_OK;
    }
    if (nf != (size_t)L->csv_fields) {
        /* column: the first extra field, or the end of a short line */
        long col = (long)len + 1;
        if (nf > (size_t)L->csv_fields) {
            size_t k = 0, i = 0;
            for (; i < len; i++)
                if (s[i] == ',' && ++k == (size_t)L->csv_fields) break;
            col = (long)i + 2;
        }
        return lerr(L, MF_ERR_PARSE, col, "expected %d fields (as on line %ld), got %zu",
                    L->csv_fields, L->csv_fields_line, nf);
    }
    size_t d = (size_t)L->csv_fields - 1;
    uint64_t rows = (uint64_t)L->n + 1; /* rows, d < 2^31: no overflow */
    if (rows * d > MAX_ENTRIES)
        return lerr(L, MF_ERR_PARSE, 1,
                    "%llu samples x %zu features = %llu entries exceed the limit of %zu (2^28) "
                    "for a dense data set",
                    (unsigned long long)rows, d, (unsigned long long)(rows * d), MAX_ENTRIES);
    if (grow((void **)&L->val, &L->val_cap, ((size_t)L->n + 1) * d, sizeof *L->val))
        return nomem(L);
    double *row = L->val + (size_t)L->n * d;
    size_t a = 0;
    for (size_t f = 0; f < nf; f++) {
        char *c = memchr(s + a, ',', len - a);
        size_t b = c ? (size_t)(c - s) : len;
        size_t fa = a, fb = b;
        trim(s, &fa, &fb);
        s[fb] = '\0'; /* fb <= b: overwrites the ',' or a trailing blank */
        const char *tok = s + fa;
        size_t tl = fb - fa;
        long col = (long)fa + 1;
        if (f == 0) {
            int rc = add_label(L, tok, tl, col);
            if (rc) return rc;
        } else {
            double v = 0;
            size_t eo = 0;
            int st = parse_num(tok, tl, &v, &eo);
            if (st == NUM_EMPTY)
                return lerr(L, MF_ERR_PARSE, col, "expected a number in field %zu, got an empty field",
                            f + 1);
            if (st == NUM_NOT_NUMBER)
                return lerr(L, MF_ERR_PARSE, col, "expected a number in field %zu, got '%s'",
                            f + 1, qt(L, tok, tl));
            if (st == NUM_TRAILING)
                return lerr(L, MF_ERR_PARSE, col,
                            "expected a number in field %zu, got '%s' (trailing characters "
                            "after the number)",
                            f + 1, qt(L, tok, tl));
            if (st == NUM_NONFINITE)
                return lerr(L, MF_ERR_PARSE, col,
                            "expected a finite number in field %zu, got '%s'%s", f + 1,
                            qt(L, tok, tl),
                            isinf(v) && tl > 0 && tok[tl - 1] >= '0' && tok[tl - 1] <= '9'
                                ? " (overflows to infinity)"
                                : "");
            row[f - 1] = v;
        }
        a = b + 1;
    }
    return MF_OK;
}

static void loader_free(loader *L) {
    mf__free(L->r.buf);
    mf__free(L->label);
    mf__free(L->row_start);
    mf__free(L->idx);
    mf__free(L->val);
}

/* Lower-case ASCII suffix test. */
static int ends_with_ci(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    if (m > n) return 0;
    for (size_t i = 0; i < m; i++) {
        char c = s[n - m + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != suf[i]) return 0;
    }
    return 1;
}

/* Load a libsvm or CSV file (see marginflow.h and the file comment).
 * One pass: samples go into growable arrays (libsvm: sparse entries,
 * scattered into the dense x at the end; CSV: dense rows, whose array becomes
 * x without a copy). min_d pads libsvm data with zero features up to min_d;
 * CSV's d is its column count minus one and min_d is ignored. Errors: see
 * the file comment (MF_ERR_IO unreadable, MF_ERR_PARSE content,
 * MF_ERR_INVALID arguments or format, MF_ERR_NOMEM). */
int mf_data_load(const char *path, const char *format, int min_d, mf_data **out, mf_err *e) {
    if (!out) return mf__err(e, MF_ERR_INVALID, "mf_data_load: out is NULL");
    *out = NULL;
    if (!path) return mf__err(e, MF_ERR_INVALID, "mf_data_load: path is NULL");
    if (min_d < 0)
        return mf__err(e, MF_ERR_INVALID, "mf_data_load: min_d must be >= 0, got %d", min_d);
    int csv;
    if (!format)
        csv = ends_with_ci(path, ".csv");
    else if (strcmp(format, "csv") == 0)
        csv = 1;
    else if (strcmp(format, "libsvm") == 0)
        csv = 0;
    else {
        char qf[MF__QUOTE_CAP(QUOTE_MAX)];
        return mf__err(e, MF_ERR_INVALID,
                       "unknown data format '%s' (expected 'libsvm' or 'csv')",
                       mf__quote(qf, sizeof qf, format, strlen(format), QUOTE_MAX));
    }

    loader L;
    memset(&L, 0, sizeof L);
    L.path = path;
    mf__quote(L.qpath, sizeof L.qpath, path, strlen(path), QUOTE_PATH);
    L.e = e;
    L.min_d = min_d;
    L.r.max_total = g_max_file;
    L.r.max_line = g_max_line;
    L.r.f = fopen(path, "rb");
    if (!L.r.f)
        return mf__err(e, MF_ERR_IO, "%s:1:1: cannot open file: %s", L.qpath, strerror(errno));

    int rc = MF_OK;
    struct stat st;
    if (fstat(fileno(L.r.f), &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size > L.r.max_total)
        rc = lerr(&L, MF_ERR_PARSE, 1,
                  "the file is %llu bytes, beyond the limit of %llu bytes for a data file",
                  (unsigned long long)st.st_size, (unsigned long long)L.r.max_total);
    char *s;
    size_t len;
    int got = 0;
    while (rc == MF_OK && (got = next_line(&L.r, &s, &len)) == 1) {
        if (L.r.line == 1 && len >= 3 && (unsigned char)s[0] == 0xEF &&
            (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF) {
            s += 3; /* UTF-8 byte order mark */
            len -= 3;
        }
        size_t cc = control_col(s, len);
        if (cc) {
            rc = lerr(&L, MF_ERR_PARSE, (long)cc,
                      "control character 0x%02x; a data file is text (numbers, ',' ':' and "
                      "blanks)",
                      (unsigned)(unsigned char)s[cc - 1]);
            break;
        }
        if (skip_line(s, len)) continue;
        rc = csv ? csv_line(&L, s, len) : libsvm_line(&L, s, len);
        if (rc) break;
    }
    if (got == -1) rc = nomem(&L);
    if (got == -2)
        rc = lerr(&L, MF_ERR_IO, 1, "cannot read file: %s", strerror(L.r.err));
    if (got == -3)
        rc = lerr(&L, MF_ERR_PARSE, L.r.nul_col,
                  "NUL byte; a data file is text (libsvm or CSV), not binary");
    if (got == -4)
        rc = lerr(&L, MF_ERR_PARSE, 1,
                  "line %ld is longer than %zu bytes, the limit for one line of a data file",
                  L.r.line, L.r.max_line);
    if (got == -5) {
        L.r.line++;
        rc = lerr(&L, MF_ERR_PARSE, 1,
                  "the file holds more than %llu bytes, the limit for a data file (an endless "
                  "input?)",
                  (unsigned long long)L.r.max_total);
    }
    fclose(L.r.f);
    L.r.f = NULL;

    int num_classes = 0;
    if (rc == MF_OK && L.n == 0) {
        L.r.line = L.r.line + 1;
        rc = lerr(&L, MF_ERR_PARSE, 1, "no samples in the file (%s)",
                  L.r.line == 1 ? "it is empty" : "only blank, comment or header lines");
    }
    if (rc == MF_OK) rc = classify_labels(&L, &num_classes);
    int d = 0;
    if (rc == MF_OK) {
        d = csv ? L.csv_fields - 1 : (L.max_index > min_d ? L.max_index : min_d);
        if (d < 1) {
            L.r.line = L.first_line;
            rc = lerr(&L, MF_ERR_PARSE, 1,
                      "no features: every sample is empty (give min_d or 'idx:val' entries)");
        } else if ((size_t)L.n * (size_t)d > MAX_ENTRIES) {
            long col = 1;
            if (!csv && d == L.max_index) {
                L.r.line = L.max_index_line;
                col = L.max_index_col;
            }
            rc = lerr(&L, MF_ERR_PARSE, col,
                      "%d samples x %d features = %zu entries exceed the limit of %zu (2^28) "
                      "for a dense data set",
                      L.n, d, (size_t)L.n * (size_t)d, MAX_ENTRIES);
        }
    }
    mf_data *D = NULL;
    if (rc == MF_OK) {
        /* CSV: x is replaced by the value array below, so allocate it empty */
        rc = mf_data_new(L.n, csv ? 0 : d, num_classes, &D, e);
        if (rc) rc = lerr(&L, rc, 1, "out of memory for a %d x %d data matrix", L.n, d);
    }
    if (rc == MF_OK) {
        if (csv) {
            /* hand the [n][d] value array over instead of copying it */
            size_t bytes = (size_t)L.n * (size_t)d * sizeof *D->x;
            double *shrunk = mf__realloc(L.val, bytes);
            mf__free(D->x);
            D->x = shrunk ? shrunk : L.val;
            D->d = d;
            L.val = NULL;
        } else {
            for (int i = 0; i < L.n; i++) {
                size_t k1 = i + 1 < L.n ? L.row_start[i + 1] : L.nnz;
                double *row = D->x + (size_t)i * (size_t)d;
                for (size_t k = L.row_start[i]; k < k1; k++) row[L.idx[k]] = L.val[k];
            }
        }
        for (int i = 0; i < L.n; i++) {
            if (num_classes == 0)
                D->y[i] = L.label[i];
            else
                D->cls[i] = (int)L.label[i];
        }
        /* for display: the path escaped (mf__quote), and cut with "..." where
         * it would not fit, never silently */
        char qd[sizeof D->desc - sizeof "file: (libsvm)"];
        snprintf(D->desc, sizeof D->desc, "file:%s (%s)",
                 mf__quote(qd, sizeof qd, path, strlen(path), strlen(path)), csv ? "csv" : "libsvm");
        *out = D;
    }
    loader_free(&L);
    return rc;
}

/* ------------------------------------------------------------------ specs */

/* Known-answer sets of docs/theory.md section 4 (all labels +1 unless given). */
static int builtin(const char *name, mf_data **out, mf_err *e) {
    static const double B[] = {1, 2}, C[] = {1, 1}, Dd[] = {1, 0, 0, 1}, G[] = {1},
                        R1[] = {1, 1, -1, 1}, R1y[] = {1, -1},
                        P[] = {1, 0.5, 2, -1, 0.6, 1.5, 3, 2};
    const double *x = NULL, *y = NULL;
    int n = 0, d = 0, mirror = 0;
    if (strcmp(name, "B") == 0) { x = B; n = 1; d = 2; }
    else if (strcmp(name, "C") == 0) { x = C; n = 1; d = 2; }
    else if (strcmp(name, "D") == 0) { x = Dd; n = 2; d = 2; }
    else if (strcmp(name, "G") == 0) { x = G; n = 1; d = 1; }
    else if (strcmp(name, "R1") == 0) { x = R1; y = R1y; n = 2; d = 2; }
    else if (strcmp(name, "sym4") == 0) { x = P; n = 4; d = 2; mirror = 1; }
    else {
        char qn[MF__QUOTE_CAP(QUOTE_MAX)];
        return mf__err(e, MF_ERR_INVALID,
                       "unknown builtin data set '%s' (valid: B, C, D, G, R1, sym4)",
                       mf__quote(qn, sizeof qn, name, strlen(name), QUOTE_MAX));
    }
    mf_data *D = NULL;
    int rc = mf_data_new(mirror ? 2 * n : n, d, 0, &D, e);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) {
            D->x[i * d + j] = x[i * d + j];
            if (mirror) D->x[(n + i) * d + j] = -x[i * d + j];
        }
        D->y[i] = y ? y[i] : 1.0;
        if (mirror) D->y[n + i] = -D->y[i];
    }
    snprintf(D->desc, sizeof D->desc, "builtin:%s", name);
    *out = D;
    return MF_OK;
}

/* Parse a decimal integer in [lo, hi] from s[0..len). */
static int parse_uint(const char *s, size_t len, unsigned long long hi, unsigned long long *v) {
    if (len == 0) return -1;
    unsigned long long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned dg = (unsigned)(s[i] - '0');
        if (x > (hi - dg) / 10) return -1;
        x = x * 10 + dg;
    }
    *v = x;
    return 0;
}

/* Planted-margin separable data, the "gauss" spec.
 * Exact construction (the RNG call order is part of the contract, tests
 * re-derive w* from it): seed mf_rng with seed; draw d normals and
 * normalize them to w* (redraw in the measure-zero case of a zero vector);
 * then for each sample draw d normals x ~ N(0, I_d), set s = <w*, x>,
 * y = +1 if s >= 0 else -1, and if y s < margin add (margin - y s) y w* to x,
 * so that y <w*, x> = margin. The set is linearly separable through the
 * origin with margin >= margin (hence gamma_svm >= margin). With mirror,
 * samples n..2n-1 are (-x_i, -y_i). */
static int gauss_set(int n, int d, double margin, unsigned long long seed, int mirror,
                     mf_data **out, mf_err *e) {
    mf_data *D = NULL;
    int rc = mf_data_new(mirror ? 2 * n : n, d, 0, &D, e);
    if (rc) return rc;
    double *w = mf__malloc((size_t)d * sizeof *w);
    if (!w) {
        mf_data_free(D);
        return mf__err(e, MF_ERR_NOMEM, "out of memory for the gauss data set");
    }
    mf_rng rng;
    mf_rng_seed(&rng, (uint64_t)seed);
    double nrm = 0;
    while (nrm == 0) {
        nrm = 0;
        for (int j = 0; j < d; j++) {
            w[j] = mf_rng_normal(&rng);
            nrm += w[j] * w[j];
        }
        nrm = sqrt(nrm);
    }
    for (int j = 0; j < d; j++) w[j] /= nrm;
    for (int i = 0; i < n; i++) {
        double *x = D->x + (size_t)i * (size_t)d; /* [d] */
        double s = 0;
        for (int j = 0; j < d; j++) {
            x[j] = mf_rng_normal(&rng);
            s += w[j] * x[j];
        }
        double y = s >= 0 ? 1.0 : -1.0;
        if (y * s < margin) {
            double c = (margin - y * s) * y;
            for (int j = 0; j < d; j++) x[j] += c * w[j];
        }
        D->y[i] = y;
        if (mirror) {
            double *xm = D->x + (size_t)(n + i) * (size_t)d;
            for (int j = 0; j < d; j++) xm[j] = -x[j];
            D->y[n + i] = -y;
        }
    }
    mf__free(w);
    *out = D;
    return MF_OK;
}

/* Parse "key=value,..." after "gauss:" / "symmetric:" and build the set. */
static int gauss_spec(const char *spec, const char *kind, const char *args, int mirror,
                      mf_data **out, mf_err *e) {
    unsigned long long n = 100, d = 10, seed = 1;
    double margin = 0.1;
    int have[4] = {0, 0, 0, 0};
    const char *p = args;
    unsigned long long nmax = mirror ? INT_MAX / 2 : INT_MAX;
    /* messages quote the spec and its parts escaped (mf__quote) */
    char qs[MF__QUOTE_CAP(QUOTE_PATH)], qa[MF__QUOTE_CAP(QUOTE_MAX)], qb[MF__QUOTE_CAP(QUOTE_MAX)];
    mf__quote(qs, sizeof qs, spec, strlen(spec), QUOTE_PATH);
#define QA(t, l) mf__quote(qa, sizeof qa, (t), (l), QUOTE_MAX)
#define QB(t, l) mf__quote(qb, sizeof qb, (t), (l), QUOTE_MAX)
    while (*p) {
        const char *c = strchr(p, ',');
        size_t il = c ? (size_t)(c - p) : strlen(p);
        const char *eq = memchr(p, '=', il);
        if (!eq)
            return mf__err(e, MF_ERR_INVALID, "data spec '%s': expected key=value, got '%s'",
                           qs, QA(p, il));
        size_t kl = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vl = il - kl - 1;
        int key = kl == 1 && p[0] == 'n' ? 0
                  : kl == 1 && p[0] == 'd' ? 1
                  : kl == 6 && strncmp(p, "margin", 6) == 0 ? 2
                  : kl == 4 && strncmp(p, "seed", 4) == 0 ? 3
                                                          : -1;
        if (key < 0)
            return mf__err(e, MF_ERR_INVALID,
                           "data spec '%s': unknown key '%s' (valid: n, d, margin, seed)", qs,
                           QA(p, kl));
        if (have[key])
            return mf__err(e, MF_ERR_INVALID, "data spec '%s': key '%s' given twice", qs,
                           QA(p, kl));
        have[key] = 1;
        int bad = 0;
        if (key == 0) bad = parse_uint(v, vl, nmax, &n) || n < 1;
        else if (key == 1) bad = parse_uint(v, vl, INT_MAX, &d) || d < 1;
        else if (key == 3) bad = parse_uint(v, vl, ~0ULL, &seed);
        else {
            char tmp[64];
            bad = vl == 0 || vl >= sizeof tmp;
            if (!bad) {
                memcpy(tmp, v, vl);
                tmp[vl] = '\0';
                size_t eo;
                bad = parse_num(tmp, vl, &margin, &eo) != NUM_OK || !(margin >= 0);
            }
        }
        if (bad) {
            char range[64];
            if (key <= 1)
                snprintf(range, sizeof range, "an integer in 1..%llu",
                         key == 0 ? nmax : (unsigned long long)INT_MAX);
            else
                snprintf(range, sizeof range, "%s",
                         key == 2 ? "a finite number >= 0" : "an integer in 0..2^64-1");
            return mf__err(e, MF_ERR_INVALID, "data spec '%s': %s must be %s, got '%s'", qs,
                           QA(p, kl), range, QB(v, vl));
        }
        if (!c) break;
        p = c + 1;
        if (!*p)
            return mf__err(e, MF_ERR_INVALID, "data spec '%s': trailing ','", qs);
    }
#undef QA
#undef QB
    unsigned long long rows = mirror ? 2 * n : n;
    if (rows * d > (unsigned long long)MAX_ENTRIES) /* n, d < 2^31: no overflow */
        return mf__err(e, MF_ERR_INVALID,
                       "data spec '%s': %llu samples x %llu features = %llu entries exceed the "
                       "limit of %zu (2^28)",
                       qs, rows, d, rows * d, MAX_ENTRIES);
    mf_data *D = NULL;
    int rc = gauss_set((int)n, (int)d, margin, seed, mirror, &D, e);
    if (rc) return rc;
    char mbuf[40];
    fmt_short(mbuf, sizeof mbuf, margin);
    snprintf(D->desc, sizeof D->desc, "%s:n=%llu,d=%llu,margin=%s,seed=%llu", kind, n, d, mbuf,
             seed);
    *out = D;
    return MF_OK;
}

/* Build a data set from a spec (see marginflow.h). Builtin names and
 * gauss/symmetric keys are validated with MF_ERR_INVALID naming the bad
 * name or key; other specs are file paths for mf_data_load. */
int mf_data_from_spec(const char *spec, const char *format, mf_data **out, mf_err *e) {
    if (!out) return mf__err(e, MF_ERR_INVALID, "mf_data_from_spec: out is NULL");
    *out = NULL;
    if (!spec || !*spec) return mf__err(e, MF_ERR_INVALID, "empty data spec");
    int generated = strncmp(spec, "builtin:", 8) == 0 || strcmp(spec, "gauss") == 0 ||
                    strncmp(spec, "gauss:", 6) == 0 || strcmp(spec, "symmetric") == 0 ||
                    strncmp(spec, "symmetric:", 10) == 0;
    size_t cc = generated ? control_col(spec, strlen(spec)) : 0;
    if (cc) {
        char qs[MF__QUOTE_CAP(QUOTE_PATH)];
        return mf__err(e, MF_ERR_INVALID, "data spec '%s': control character 0x%02x at column %zu",
                       mf__quote(qs, sizeof qs, spec, strlen(spec), QUOTE_PATH),
                       (unsigned)(unsigned char)spec[cc - 1], cc);
    }
    if (strncmp(spec, "builtin:", 8) == 0) return builtin(spec + 8, out, e);
    if (strcmp(spec, "gauss") == 0) return gauss_spec(spec, "gauss", "", 0, out, e);
    if (strncmp(spec, "gauss:", 6) == 0) return gauss_spec(spec, "gauss", spec + 6, 0, out, e);
    if (strcmp(spec, "symmetric") == 0) return gauss_spec(spec, "symmetric", "", 1, out, e);
    if (strncmp(spec, "symmetric:", 10) == 0)
        return gauss_spec(spec, "symmetric", spec + 10, 1, out, e);
    int rc;
    if (mf__image_spec(spec, out, e, &rc)) return rc; /* fashion-mnist, idx:, cifar10: (idx.c) */
    return mf_data_load(spec, format, 0, out, e);
}

/* ------------------------------------------------------------ fingerprint */

/* mf_data_hash -- contract in marginflow.h. The values are serialized in
 * chunks of 512 words into a little-endian buffer, so the hash is the same
 * on every host. */
uint32_t mf_data_hash(const mf_data *data) {
    if (!data) return 0;
    unsigned char b[8 * 512];
    size_t k = 0;
    uint32_t crc = mf__crc32("MFDATA1", 8); /* the tag and its NUL */
#define PUT64(v)                                                                   \
    do {                                                                           \
        uint64_t v_ = (v);                                                         \
        for (int i_ = 0; i_ < 8; i_++) b[k++] = (unsigned char)(v_ >> (8 * i_));   \
        if (k == sizeof b) crc = mf__crc32_more(crc, b, k), k = 0;                 \
    } while (0)
    PUT64((uint64_t)(int64_t)data->n);
    PUT64((uint64_t)(int64_t)data->d);
    PUT64((uint64_t)(int64_t)data->num_classes);
    size_t nd = data->x ? (size_t)data->n * (size_t)data->d : 0;
    for (size_t i = 0; i < nd; i++) {
        uint64_t v;
        memcpy(&v, &data->x[i], sizeof v);
        PUT64(v);
    }
    for (int i = 0; i < data->n; i++) {
        if (data->num_classes == 0 && data->y) {
            uint64_t v;
            memcpy(&v, &data->y[i], sizeof v);
            PUT64(v);
        } else if (data->cls) {
            uint32_t v = (uint32_t)data->cls[i];
            for (int j = 0; j < 4; j++) b[k++] = (unsigned char)(v >> (8 * j));
            if (k > sizeof b - 4) crc = mf__crc32_more(crc, b, k), k = 0;
        }
    }
#undef PUT64
    return mf__crc32_more(crc, b, k);
}

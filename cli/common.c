/*
 * common.c -- helpers every marginflow subcommand uses: option matching,
 * strict number parsing, error printing and exit codes, shell quoting,
 * mkdir -p, reading a whole file. (The JSON helpers are in json.c.)
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_error(const char *fmt, ...) {
    va_list ap;
    fflush(stdout); /* what was printed before comes before the error, on its own line */
    fputs("marginflow: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_exit_for(int code, int input_io) {
    switch (code) {
    case MF_OK: return CLI_EXIT_OK;
    case MF_ERR_PARSE:
    case MF_ERR_INVALID:
    case MF_ERR_DIM:
    case MF_ERR_CORRUPT:
    case MF_ERR_FOREIGN:
    case MF_ERR_UNSUPPORTED:
    case MF_ERR_NONSEPARABLE: return CLI_EXIT_USAGE;
    case MF_ERR_IO: return input_io ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    default: return CLI_EXIT_ERROR;
    }
}

int cli_check_text(const char *opt, const char *s, int lines) {
    for (size_t k = 0; s[k]; k++) {
        unsigned char c = (unsigned char)s[k];
        if ((c < 0x20 && !(lines && (c == '\t' || c == '\n' || c == '\r'))) || c == 0x7f) {
            cli_error("%s: control character 0x%02x at character %zu", opt, (unsigned)c, k + 1);
            return -1;
        }
    }
    return 0;
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return cli_check_text(name, *val, 0) ? -1 : 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        cli_error("%s needs a value (see --help)", name);
        return -1;
    }
    *val = argv[++*i];
    return cli_check_text(name, *val, 0) ? -1 : 1;
}

/* strtod in the C locale (the CLI never calls setlocale, so the process
 * locale is "C"); the whole string must be one finite number. */
int cli_parse_double(const char *opt, const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(x)) {
        cli_error("%s: expected a finite number, got '%s'", opt, cli_q(s));
        return -1;
    }
    *v = x;
    return 0;
}

int cli_parse_ll(const char *opt, const char *s, long long lo, long long hi, long long *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE) {
        cli_error("%s: expected an integer, got '%s'", opt, cli_q(s));
        return -1;
    }
    if (x < lo || x > hi) {
        cli_error("%s: %lld is out of range [%lld, %lld]", opt, x, lo, hi);
        return -1;
    }
    *v = x;
    return 0;
}

/* POSIX shell quoting: words of safe characters stay bare, anything else is
 * wrapped in single quotes with each ' written as '\''. */
char *cli_shell_quote(int argc, char *const *argv) {
    size_t cap = 1;
    for (int i = 0; i < argc; i++) cap += 4 * strlen(argv[i]) + 3;
    char *out = malloc(cap), *p = out;
    if (!out) return NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i) *p++ = ' ';
        int safe = a[0] != '\0';
        for (const char *c = a; *c; c++)
            if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                        "_@%+=:,./-",
                        *c))
                safe = 0;
        if (safe) {
            size_t l = strlen(a);
            memcpy(p, a, l);
            p += l;
            continue;
        }
        *p++ = '\'';
        for (const char *c = a; *c; c++) {
            if (*c == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *c;
            }
        }
        *p++ = '\'';
    }
    *p = '\0';
    return out;
}

int cli_mkdirs(const char *path) {
    char *p = malloc(strlen(path) + 1);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    strcpy(p, path);
    for (char *c = p + 1; ; c++) {
        if (*c == '/' || *c == '\0') {
            char save = *c;
            *c = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                free(p);
                return -1;
            }
            *c = save;
            if (save == '\0') break;
        }
    }
    struct stat st;
    int ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    if (!ok) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

char *cli_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* cli_read_text -- contract in cli.h. Reads in chunks of 64 KiB into a
 * buffer grown by doubling (so at most 2 max + 64 KiB are held), scanning
 * each chunk for a NUL byte as it arrives. */
char *cli_read_text(const char *path, size_t max, size_t *len, char *why, size_t cap) {
    const char *qp = cli_q(path);
    if (max == 0) max = CLI_MAX_JSON_BYTES; /* never unlimited */
    FILE *f = fopen(path, "rb");
    if (!f) {
        int en = errno;
        cli_fmt(why, cap, "%s: cannot open: %s", qp, strerror(en));
        errno = en == ENOMEM ? ENOMEM : EINVAL;
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max) {
        cli_fmt(why, cap, "%s: the file is %jd bytes, beyond the limit of %zu bytes", qp,
                (intmax_t)st.st_size, max);
        fclose(f);
        errno = EFBIG;
        return NULL;
    }
    size_t n = 0, tcap = 0;
    long line = 1, col = 1;
    char *t = NULL;
    int failed = 0; /* 1 memory, 2 too big, 3 NUL, 4 read error */
    for (;;) {
        if (tcap - n < (1 << 16) + 1) {
            size_t nc = tcap ? 2 * tcap : (1 << 16) + 1;
            char *t2 = realloc(t, nc);
            if (!t2) {
                failed = 1;
                break;
            }
            t = t2, tcap = nc;
        }
        size_t got = fread(t + n, 1, 1 << 16, f);
        const char *nul = got ? memchr(t + n, '\0', got) : NULL;
        for (const char *c = t + n, *e = nul ? nul : t + n + got; c < e; c++) {
            if (*c == '\n') line++, col = 1;
            else col++;
        }
        n += got;
        if (nul) {
            failed = 3;
            break;
        }
        if (n > max) {
            failed = 2;
            break;
        }
        if (got == 0) {
            if (ferror(f)) failed = 4;
            break;
        }
    }
    int en = errno;
    fclose(f);
    if (failed) {
        free(t);
        if (failed == 1) cli_fmt(why, cap, "%s: out of memory", qp);
        if (failed == 2) cli_fmt(why, cap, "%s: holds more than %zu bytes (the limit)", qp, max);
        if (failed == 3) cli_fmt(why, cap, "%s:%ld:%ld: NUL byte; not a text file", qp, line, col);
        if (failed == 4) cli_fmt(why, cap, "%s: read error: %s", qp, strerror(en));
        errno = failed == 1 ? ENOMEM : failed == 2 ? EFBIG : EINVAL;
        return NULL;
    }
    t[n] = '\0';
    if (len) *len = n;
    return t;
}

/* Rotating static buffers of cli_q and cli_g. */
#define CLI_QUOTE_MAX 300
static char *rotating(void) {
    static char bufs[8][MF_QUOTE_CAP(CLI_QUOTE_MAX)];
    static unsigned next;
    return bufs[next++ % 8];
}

const char *cli_q(const char *s) {
    return mf_quote(rotating(), MF_QUOTE_CAP(CLI_QUOTE_MAX), s, CLI_QUOTE_MAX);
}

const char *cli_g(double v, int digits) {
    char *b = rotating();
    if (!isfinite(v)) return strcpy(b, "absent");
    snprintf(b, MF_QUOTE_CAP(CLI_QUOTE_MAX), "%.*g", digits, v);
    return b;
}

const char *cli_f(double v, int decimals) {
    char *b = rotating();
    if (!isfinite(v)) return strcpy(b, "absent");
    snprintf(b, MF_QUOTE_CAP(CLI_QUOTE_MAX), "%.*f", decimals, v); /* |v| < 1e309: it fits */
    return b;
}

char *cli_aprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* snprintf that truncates silently, for messages (a plain snprintf there
 * trips -Wformat-truncation under -Werror); never for paths (cli.h). */
void cli_fmt(char *buf, size_t cap, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, cap, f, ap);
    va_end(ap);
}

void cli_cat(char *buf, size_t cap, const char *fmt, ...) {
    size_t l = strlen(buf);
    if (l + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, cap - l, fmt, ap);
    va_end(ap);
}

int cli_load_data(const char *spec, const char *format, mf_data **out, char *why, size_t cap) {
    mf_err e = {0, ""};
    *out = NULL;
    int rc = mf_data_from_spec(spec, format, out, &e);
    if (rc) {
        cli_fmt(why, cap, "%s", e.msg);
        return cli_exit_for(rc, 1);
    }
    const mf_data *d = *out;
    int C = d->num_classes, missing = -1;
    if (C > 0) {
        /* the first class without a sample is below m (for C > n: n labels
         * cannot cover 0..n) */
        size_t m = C <= d->n ? (size_t)C : (size_t)d->n + 1;
        unsigned char *seen = calloc(m, 1);
        if (!seen) {
            mf_data_free(*out);
            *out = NULL;
            cli_fmt(why, cap, "out of memory");
            return CLI_EXIT_ERROR;
        }
        for (int i = 0; i < d->n; i++)
            if ((size_t)d->cls[i] < m) seen[d->cls[i]] = 1;
        for (size_t k = 0; k < m && missing < 0; k++)
            if (!seen[k]) missing = (int)k;
        free(seen);
    }
    if (missing < 0) return 0;
    cli_fmt(why, cap, "the data %s have class labels up to %d (C = %d classes) but no sample of "
            "class %d (n = %d); multi-class labels must be 0..C-1 with every class present",
            cli_q(d->desc), C - 1, C, missing, d->n);
    mf_data_free(*out);
    *out = NULL;
    return CLI_EXIT_USAGE;
}

int cli_load_problem(const char *data_spec, const char *format, const char *model_spec,
                     mf_data **data, mf_model **model, char *why, size_t cap) {
    mf_err e = {0, ""};
    *model = NULL;
    int code = cli_load_data(data_spec, format, data, why, cap);
    if (code) return code;
    int rc = mf_model_parse(model_spec, (*data)->d, (*data)->num_classes, model, &e);
    if (!rc) return 0;
    cli_fmt(why, cap, "%s", e.msg);
    mf_data_free(*data);
    *data = NULL;
    return cli_exit_for(rc, 1);
}

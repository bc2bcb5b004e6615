/*
 * common.c -- helpers every marginflow subcommand uses: option matching,
 * strict number parsing, error printing and exit codes, shell quoting,
 * mkdir -p, reading a whole file. (The JSON helpers are in json.c.)
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
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

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        cli_error("%s needs a value (see --help)", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

/* strtod in the C locale (the CLI never calls setlocale, so the process
 * locale is "C"); the whole string must be one finite number. */
int cli_parse_double(const char *opt, const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(x)) {
        cli_error("%s: expected a finite number, got '%s'", opt, s);
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
        cli_error("%s: expected an integer, got '%s'", opt, s);
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

/* Read a whole file into a malloc'd, NUL-terminated buffer (*len = its
 * length when len is not NULL). NULL with errno set when the file cannot
 * be opened or read (EIO), memory runs out (ENOMEM), or it holds more than
 * max bytes (EFBIG; max 0 = no limit: then it is read to its end). */
char *cli_read_text(const char *path, size_t max, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 14, n = 0;
    char *t = malloc(cap);
    int big = 0;
    while (t) {
        size_t got = fread(t + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
        if (max && n > max) {
            big = 1;
            break;
        }
        if (n + 1 == cap) {
            char *t2 = realloc(t, cap *= 2);
            if (!t2) free(t);
            t = t2;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (!t || failed || big) {
        free(t);
        errno = !t ? ENOMEM : big ? EFBIG : EIO;
        return NULL;
    }
    t[n] = '\0';
    if (len) *len = n;
    return t;
}

/* snprintf that truncates silently, for messages and paths that may be long
 * (a plain snprintf there trips -Wformat-truncation under -Werror). */
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

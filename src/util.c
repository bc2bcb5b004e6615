/*
 * util.c -- errors, the allocation hook, the random number generator, small
 * numeric helpers. Everything here is plain C11 plus zlib's crc32.
 */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

/* ---------------------------------------------------------------- errors */

const char *mf_strerror(int code) {
    switch (code) {
    case MF_OK: return "ok";
    case MF_ERR_NOMEM: return "out of memory";
    case MF_ERR_IO: return "input/output error";
    case MF_ERR_PARSE: return "parse error";
    case MF_ERR_INVALID: return "invalid argument";
    case MF_ERR_DIM: return "dimension mismatch";
    case MF_ERR_CORRUPT: return "corrupt file";
    case MF_ERR_FOREIGN: return "file belongs to another run";
    case MF_ERR_UNSUPPORTED: return "unsupported";
    case MF_ERR_NONSEPARABLE: return "data not linearly separable";
    case MF_ERR_NUMERIC: return "numerical failure";
    case MF_ERR_CALLBACK: return "callback failed";
    default: return "unknown error";
    }
}

/* A message longer than MF_ERR_LEN - 1 bytes is cut at a character boundary
 * and ends in "...", so a cut is never silent. */
int mf__err(mf_err *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        e->code = code;
        va_start(ap, fmt);
        int k = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        if (k >= (int)sizeof e->msg) {
            size_t at = sizeof e->msg - 4;
            while (at > 0 && ((unsigned char)e->msg[at] & 0xC0u) == 0x80u) at--; /* UTF-8 */
            memcpy(e->msg + at, "...", 4);
        }
    }
    return code;
}

/* ------------------------------------------------------------ allocation */

static void *(*g_malloc)(size_t) = malloc;
static void *(*g_realloc)(void *, size_t) = realloc;
static void (*g_free)(void *) = free;

void mf_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                      void (*free_fn)(void *)) {
    if (!malloc_fn || !realloc_fn || !free_fn) {
        g_malloc = malloc;
        g_realloc = realloc;
        g_free = free;
        return;
    }
    g_malloc = malloc_fn;
    g_realloc = realloc_fn;
    g_free = free_fn;
}

void *mf__malloc(size_t size) { return g_malloc(size ? size : 1); }

void *mf__calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size) return NULL;
    size_t bytes = n * size;
    void *p = g_malloc(bytes ? bytes : 1);
    if (p) memset(p, 0, bytes);
    return p;
}

void *mf__realloc(void *p, size_t size) { return g_realloc(p, size ? size : 1); }

void mf__free(void *p) {
    if (p) g_free(p);
}

char *mf__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = mf__malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* ------------------------------------------------------------------- rng */

/* splitmix64 (Steele, Lea, Flood 2014) expands the seed into the state of
 * xoshiro256** (Blackman & Vigna 2018). */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void mf_rng_seed(mf_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mf_rng_next(mf_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mf_rng_uniform(mf_rng *r) { return (double)(mf_rng_next(r) >> 11) * 0x1.0p-53; }

double mf_rng_normal(mf_rng *r) {
    /* Box-Muller with u1 in (0, 1] so log(u1) is finite. */
    double u1 = 1.0 - mf_rng_uniform(r);
    double u2 = mf_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* --------------------------------------------------------------- numeric */

double mf__now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double mf__lse2(double a, double b) {
    if (a < b) {
        double t = a;
        a = b;
        b = t;
    }
    if (a == -INFINITY) return -INFINITY;
    return a + log1p(exp(b - a));
}

/* ||x||_2 without overflow or underflow: the plain sum of squares, and when
 * that is not a normal finite number (||x|| beyond ~1e154 or below ~1e-154)
 * a second pass scaled by max |x_i|. (OpenBLAS's x86-64 dnrm2 relies on x87
 * extended range instead of scaling, which valgrind does not emulate, so the
 * result would depend on where the code runs.) */
double mf__norm2(const double *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i] * x[i];
    if (isfinite(s) && s >= DBL_MIN) return sqrt(s);
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > mx) mx = fabs(x[i]);
    if (mx == 0.0 || !isfinite(mx)) return mx;
    s = 0.0;
    for (size_t i = 0; i < n; i++) s += (x[i] / mx) * (x[i] / mx);
    return mx * sqrt(s);
}

double mf__dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void mf__say(char *buf, size_t cap, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* mf__norm2_scaled -- contract in internal.h. */
double mf__norm2_scaled(const double *x, size_t n, int *e) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > mx) mx = fabs(x[i]);
    *e = 0;
    if (mx == 0.0 || !isfinite(mx)) return mx;
    int k;
    frexp(mx, &k); /* mx = m 2^k, m in [0.5, 1): entries scaled by 2^-k are <= 1 */
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double t = ldexp(x[i], -k);
        s += t * t;
    }
    int k2;
    double f = frexp(sqrt(s), &k2);
    *e = k + k2;
    return f;
}

/* mf__div_scaled -- contract in internal.h. */
double mf__div_scaled(double a, double f, long e) {
    if (a == 0.0) return 0.0;
    if (!isfinite(a) || !(f > 0) || !isfinite(f)) return NAN;
    int ea, ef, et;
    double ma = frexp(a, &ea), mf = frexp(f, &ef);
    double t = frexp(ma / mf, &et); /* |ma / mf| in (0.5, 2) */
    long E = (long)et + ea - ef - e;
    if (E > DBL_MAX_EXP || E < DBL_MIN_EXP) return NAN; /* beyond a normal double */
    double r = ldexp(t, (int)E);
    return isfinite(r) && fabs(r) >= DBL_MIN ? r : NAN;
}

uint32_t mf__crc32_more(uint32_t crc, const void *buf, size_t len) {
    uLong c = crc;
    const unsigned char *p = buf;
    while (len > 0) {
        uInt chunk = len > 0x40000000u ? 0x40000000u : (uInt)len;
        c = crc32(c, p, chunk);
        p += chunk;
        len -= chunk;
    }
    return (uint32_t)c;
}

uint32_t mf__crc32(const void *buf, size_t len) {
    return mf__crc32_more((uint32_t)crc32(0L, Z_NULL, 0), buf, len);
}

/* ------------------------------------------------------ quoting for errors */

/* Length of the well-formed UTF-8 sequence at s[0..n) when it encodes a
 * printable character: a code point from U+00A0 up, not a surrogate, not
 * above U+10FFFF, and not one of the invisible layout controls that can make
 * a message read differently from its bytes (U+200B..U+200F, U+2028..U+202E,
 * U+2066..U+2069: zero-width, line/paragraph separators, bidi overrides).
 * 0 otherwise. (RFC 3629 for the well-formedness rules.) */
static size_t utf8_printable(const unsigned char *s, size_t n) {
    static const unsigned least[5] = {0, 0, 0x80, 0x800, 0x10000}; /* no overlong forms */
    unsigned c = s[0], cp;
    size_t k;
    if (c >= 0xC2 && c <= 0xDF) k = 2, cp = c & 0x1Fu;
    else if (c >= 0xE0 && c <= 0xEF) k = 3, cp = c & 0x0Fu;
    else if (c >= 0xF0 && c <= 0xF4) k = 4, cp = c & 0x07u;
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0u) != 0x80u) return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if (cp < least[k] || cp < 0xA0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    if ((cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
        (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return k;
}

/* mf__quote -- contract in internal.h. */
char *mf__quote(char *dst, size_t cap, const char *s, size_t len, size_t max) {
    if (cap == 0) return dst;
    if (cap < 4) {
        dst[0] = '\0';
        return dst;
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, i = 0;
    int cut = 0;
    while (i < len) {
        if (i >= max) {
            cut = 1;
            break;
        }
        size_t k = u[i] >= 0x20 && u[i] < 0x7f ? 1 : utf8_printable(u + i, len - i);
        char tmp[8];
        size_t tl;
        if (k) {
            memcpy(tmp, u + i, k);
            tl = k;
        } else {
            snprintf(tmp, sizeof tmp, "\\x%02x", u[i]);
            tl = 4;
            k = 1;
        }
        if (o + tl + 4 > cap) { /* keep room for "..." and the NUL */
            cut = 1;
            break;
        }
        memcpy(dst + o, tmp, tl);
        o += tl;
        i += k;
    }
    if (cut) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

char *mf_quote(char *dst, size_t cap, const char *s, size_t max) {
    return mf__quote(dst, cap, s ? s : "", s ? strlen(s) : 0, max);
}

double mf__strtod_c(const char *s, char **end) {
    /* strtod_l would be POSIX-2008 + glibc; newlocale/uselocale is POSIX. */
    static locale_t cloc = (locale_t)0;
    if (cloc == (locale_t)0) cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    locale_t old = uselocale(cloc);
    double v = strtod(s, end);
    uselocale(old);
    return v;
}

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

int mf__err(mf_err *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
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

uint32_t mf__crc32(const void *buf, size_t len) {
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *p = buf;
    while (len > 0) {
        uInt chunk = len > 0x40000000u ? 0x40000000u : (uInt)len;
        c = crc32(c, p, chunk);
        p += chunk;
        len -= chunk;
    }
    return (uint32_t)c;
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

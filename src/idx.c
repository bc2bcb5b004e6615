/*
 * idx.c -- image data sets: the IDX reader (MNIST, Fashion-MNIST; gzip
 * through zlib), the CIFAR-10 binary reader, the data specs that name them
 * (fashion-mnist, idx:, cifar10:) and class-balanced subsets (mf_data_select).
 * Contracts in marginflow.h.
 *
 * Formats:
 *   IDX (LeCun, Cortes & Burges, "The MNIST database"): a 4-byte big-endian
 *   magic 0x0000TTDD (TT = 0x08: unsigned bytes, DD = number of dimensions),
 *   DD big-endian 32-bit sizes, then the data in row-major order.
 *   CIFAR-10 binary (Krizhevsky, "Learning Multiple Layers of Features from
 *   Tiny Images", 2009): records of 1 label byte and 3 x 1024 pixel bytes.
 *
 * Every file is read in chunks of at most READ_CHUNK bytes into a buffer that
 * grows with what actually arrives (never with what a header promises), and
 * every error names the file: "PATH: what is wrong".
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define QUOTE_PATH 300
#define READ_CHUNK (1 << 20)
#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define CIFAR_RECORD 3073
#define CIFAR_PIXELS 3072

/* ------------------------------------------------------------ reading */

/* A whole (possibly gzip-compressed) file read by zlib's gzread, which
 * passes plain files through unchanged. want: the number of bytes the
 * caller expects after the first `head` bytes have told it (0 = read to
 * the end). */
typedef struct gzfile {
    const char *path;
    char qpath[MF__QUOTE_CAP(QUOTE_PATH)];
    gzFile f;
    unsigned char *buf;
    size_t len, cap;
} gzfile;

/* Open path; MF_OK or MF_ERR_IO naming it. */
static int gz_open(gzfile *g, const char *path, mf_err *e) {
    memset(g, 0, sizeof *g);
    g->path = path;
    mf__quote(g->qpath, sizeof g->qpath, path, strlen(path), QUOTE_PATH);
    errno = 0;
    g->f = gzopen(path, "rb");
    if (!g->f)
        return mf__err(e, MF_ERR_IO, "%s: cannot open: %s", g->qpath,
                       errno ? strerror(errno) : "out of memory");
    return MF_OK;
}

static void gz_close(gzfile *g) {
    if (g->f) gzclose(g->f);
    mf__free(g->buf);
    g->f = NULL;
    g->buf = NULL;
}

/* Read until g->len >= upto or the end of the file; the buffer grows with
 * the bytes that arrive. MF_OK (check g->len), MF_ERR_CORRUPT for a damaged
 * gzip stream, MF_ERR_IO for a read error, MF_ERR_NOMEM. */
static int gz_fill(gzfile *g, size_t upto, mf_err *e) {
    while (g->len < upto) {
        size_t want = upto - g->len;
        if (want > READ_CHUNK) want = READ_CHUNK;
        if (g->cap - g->len < want) {
            size_t nc = g->cap ? g->cap : 4096;
            while (nc - g->len < want) nc = nc > ((size_t)-1) / 2 ? g->len + want : 2 * nc;
            if (nc > upto) nc = upto;
            unsigned char *nb = mf__realloc(g->buf, nc);
            if (!nb) return mf__err(e, MF_ERR_NOMEM, "%s: out of memory reading %zu bytes", g->qpath, nc);
            g->buf = nb;
            g->cap = nc;
        }
        int got = gzread(g->f, g->buf + g->len, (unsigned)want);
        int zerr = Z_OK;
        const char *msg = got < 0 ? gzerror(g->f, &zerr) : NULL;
        if (got < 0) {
            if (zerr == Z_ERRNO)
                return mf__err(e, MF_ERR_IO, "%s: cannot read: %s", g->qpath, strerror(errno));
            /* zlib's message is "PATH: what"; the path is said already */
            size_t pl = strlen(g->path);
            if (msg && !strncmp(msg, g->path, pl) && msg[pl] == ':' && msg[pl + 1] == ' ') msg += pl + 2;
            return mf__err(e, MF_ERR_CORRUPT, "%s: damaged gzip stream (%s)", g->qpath,
                           msg && *msg ? msg : "zlib error");
        }
        if (got == 0) {
            /* a gzip stream cut short reports Z_BUF_ERROR at its end */
            gzerror(g->f, &zerr);
            if (zerr == Z_BUF_ERROR || zerr == Z_DATA_ERROR)
                return mf__err(e, MF_ERR_CORRUPT, "%s: damaged gzip stream (%s)", g->qpath,
                               zerr == Z_BUF_ERROR ? "unexpected end of file" : "data error");
            return MF_OK;
        }
        g->len += (size_t)got;
    }
    return MF_OK;
}

/* 1 if bytes follow the first g->len (the end of the data): reads one more. */
static int gz_more(gzfile *g) {
    unsigned char b;
    return gzread(g->f, &b, 1) > 0;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read an IDX file of `dims` dimensions (1 or 3) with the given magic:
 * sizes into dim[], the data bytes into g->buf[hdr .. hdr + count). */
static int idx_read(gzfile *g, uint32_t magic, int dims, uint32_t *dim, size_t *hdr, mf_err *e) {
    const char *what = dims == 3 ? "image" : "label";
    size_t h = 4 + 4 * (size_t)dims;
    int rc = gz_fill(g, h, e);
    if (rc) return rc;
    if (g->len < 4)
        return mf__err(e, MF_ERR_PARSE, "%s: truncated: an IDX file starts with a 4-byte magic, "
                       "the file has %zu bytes", g->qpath, g->len);
    if (be32(g->buf) != magic)
        return mf__err(e, MF_ERR_PARSE,
                       "%s: not an IDX %s file: magic 0x%08x, expected 0x%08x (unsigned bytes, "
                       "%d dimension%s)",
                       g->qpath, what, (unsigned)be32(g->buf), (unsigned)magic, dims,
                       dims == 1 ? "" : "s");
    if (g->len < h)
        return mf__err(e, MF_ERR_PARSE, "%s: truncated: the IDX %s header has %zu bytes, the file %zu",
                       g->qpath, what, h, g->len);
    size_t count = 1;
    for (int i = 0; i < dims; i++) {
        dim[i] = be32(g->buf + 4 + 4 * i);
        if (dim[i] == 0 || dim[i] > (uint32_t)INT_MAX)
            return mf__err(e, MF_ERR_PARSE, "%s: bad dimension %d of the IDX %s header: %u",
                           g->qpath, i + 1, what, (unsigned)dim[i]);
        if (count > MF_DATA_MAX_ENTRIES / dim[i])
            return mf__err(e, MF_ERR_PARSE,
                           "%s: the IDX header's sizes exceed the limit of %zu (2^28) entries",
                           g->qpath, MF_DATA_MAX_ENTRIES);
        count *= dim[i];
    }
    if ((rc = gz_fill(g, h + count, e))) return rc;
    if (g->len < h + count)
        return mf__err(e, MF_ERR_PARSE,
                       "%s: truncated: the header promises %zu %s bytes, the file holds %zu",
                       g->qpath, count, what, g->len - h);
    if (gz_more(g))
        return mf__err(e, MF_ERR_PARSE, "%s: bytes after the %zu %s bytes the header promises",
                       g->qpath, count, what);
    *hdr = h;
    return MF_OK;
}

/* Contract in marginflow.h. */
int mf_data_load_idx(const char *images, const char *labels, mf_data **out, mf_err *e) {
    if (!out) return mf__err(e, MF_ERR_INVALID, "mf_data_load_idx: out is NULL");
    *out = NULL;
    if (!images || !labels)
        return mf__err(e, MF_ERR_INVALID, "mf_data_load_idx: images and labels must be given");
    gzfile gi, gl;
    uint32_t di[3] = {0, 0, 0}, dl[1] = {0};
    size_t hi = 0, hl = 0;
    memset(&gl, 0, sizeof gl);
    int rc = gz_open(&gi, images, e);
    if (!rc) rc = idx_read(&gi, IDX_IMAGES_MAGIC, 3, di, &hi, e);
    if (!rc) rc = gz_open(&gl, labels, e);
    if (!rc) rc = idx_read(&gl, IDX_LABELS_MAGIC, 1, dl, &hl, e);
    if (!rc && di[0] != dl[0])
        rc = mf__err(e, MF_ERR_DIM, "%s holds %u images but %s holds %u labels", gi.qpath,
                     (unsigned)di[0], gl.qpath, (unsigned)dl[0]);
    int C = 0;
    if (!rc) {
        for (uint32_t i = 0; i < dl[0]; i++)
            if (gl.buf[hl + i] + 1 > C) C = gl.buf[hl + i] + 1;
        if (C < 2)
            rc = mf__err(e, MF_ERR_PARSE, "%s: every label is 0; a data set needs at least 2 classes",
                         gl.qpath);
    }
    mf_data *D = NULL;
    if (!rc) rc = mf_data_new((int)di[0], (int)(di[1] * di[2]), C, &D, e);
    if (!rc) {
        size_t cnt = (size_t)di[0] * di[1] * di[2];
        for (size_t k = 0; k < cnt; k++) D->x[k] = gi.buf[hi + k] / 255.0;
        for (uint32_t i = 0; i < dl[0]; i++) D->cls[i] = gl.buf[hl + i];
        char a[96], b[96];
        mf__quote(a, sizeof a, images, strlen(images), 20);
        mf__quote(b, sizeof b, labels, strlen(labels), 20);
        snprintf(D->desc, sizeof D->desc, "idx:%s,%s (%ux%u images)", a, b, (unsigned)di[1],
                 (unsigned)di[2]);
        *out = D;
    }
    gz_close(&gi);
    gz_close(&gl);
    return rc;
}

/* Contract in marginflow.h. */
int mf_data_load_cifar10(const char *dir, int test, mf_data **out, mf_err *e) {
    if (!out) return mf__err(e, MF_ERR_INVALID, "mf_data_load_cifar10: out is NULL");
    *out = NULL;
    if (!dir) return mf__err(e, MF_ERR_INVALID, "mf_data_load_cifar10: dir is NULL");
    const int nfiles = test ? 1 : 5;
    gzfile g[5];
    size_t recs[5] = {0}, total = 0;
    int rc = MF_OK, opened = 0;
    for (int f = 0; f < nfiles && !rc; f++) {
        char path[4096];
        if (test) snprintf(path, sizeof path, "%s/test_batch.bin", dir);
        else snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, f + 1);
        rc = gz_open(&g[f], path, e);
        if (rc) break;
        opened++;
        size_t lim = (MF_DATA_MAX_ENTRIES / CIFAR_PIXELS) * (size_t)CIFAR_RECORD;
        if (!(rc = gz_fill(&g[f], lim + 1, e)) && g[f].len > lim)
            rc = mf__err(e, MF_ERR_PARSE, "%s: more than %zu records, the limit of a data set",
                         g[f].qpath, lim / CIFAR_RECORD);
        if (rc) break;
        if (g[f].len == 0 || g[f].len % CIFAR_RECORD)
            rc = mf__err(e, MF_ERR_PARSE,
                         "%s: %zu bytes is not a whole number of CIFAR-10 records (%d bytes each: "
                         "a label and 3 x 32 x 32 pixels)",
                         g[f].qpath, g[f].len, CIFAR_RECORD);
        recs[f] = g[f].len / CIFAR_RECORD;
        for (size_t r = 0; !rc && r < recs[f]; r++)
            if (g[f].buf[r * CIFAR_RECORD] > 9)
                rc = mf__err(e, MF_ERR_PARSE, "%s: record %zu has label %d; CIFAR-10 labels are 0..9",
                             g[f].qpath, r + 1, g[f].buf[r * CIFAR_RECORD]);
        total += recs[f];
    }
    if (!rc && total * CIFAR_PIXELS > MF_DATA_MAX_ENTRIES)
        rc = mf__err(e, MF_ERR_PARSE, "%s: %zu records exceed the limit of %zu (2^28) entries", dir,
                     total, MF_DATA_MAX_ENTRIES);
    mf_data *D = NULL;
    if (!rc) rc = mf_data_new((int)total, CIFAR_PIXELS, 10, &D, e);
    if (!rc) {
        size_t i = 0;
        for (int f = 0; f < nfiles; f++)
            for (size_t r = 0; r < recs[f]; r++, i++) {
                const unsigned char *p = g[f].buf + r * CIFAR_RECORD;
                D->cls[i] = p[0];
                for (int k = 0; k < CIFAR_PIXELS; k++) D->x[i * CIFAR_PIXELS + k] = p[1 + k] / 255.0;
            }
        char q[96];
        snprintf(D->desc, sizeof D->desc, "cifar10:%s%s", mf__quote(q, sizeof q, dir, strlen(dir), 40),
                 test ? ":test" : "");
        *out = D;
    }
    for (int f = 0; f < opened; f++) gz_close(&g[f]);
    return rc;
}

/* ------------------------------------------------------------ specs */

/* The image data specs of mf_data_from_spec (fashion-mnist, idx:, cifar10:):
 * 1 and the result in rc when spec is one of them, 0 otherwise. */
int mf__image_spec(const char *spec, mf_data **out, mf_err *e, int *rc) {
    char qs[MF__QUOTE_CAP(QUOTE_PATH)];
    if (!strcmp(spec, "fashion-mnist") || !strcmp(spec, "fashion-mnist:train") ||
        !strcmp(spec, "fashion-mnist:test")) {
        int test = !strcmp(spec, "fashion-mnist:test");
        const char *pre = test ? "t10k" : "train";
        char im[512], lb[512];
        snprintf(im, sizeof im, "%s/%s-images-idx3-ubyte.gz", MF_FASHION_MNIST_DIR, pre);
        snprintf(lb, sizeof lb, "%s/%s-labels-idx1-ubyte.gz", MF_FASHION_MNIST_DIR, pre);
        *rc = mf_data_load_idx(im, lb, out, e);
        if (*rc == MF_ERR_IO && e)
            mf__say(e->msg, sizeof e->msg, " (install Debian's dataset-fashion-mnist, e.g. by "
                    "scripts/install-deps, or give the files as idx:IMAGES,LABELS)");
        if (!*rc) snprintf((*out)->desc, sizeof (*out)->desc, "%s", spec);
        return 1;
    }
    if (!strncmp(spec, "fashion-mnist:", 14)) {
        *rc = mf__err(e, MF_ERR_INVALID, "data spec '%s': expected fashion-mnist, "
                      "fashion-mnist:train or fashion-mnist:test",
                      mf__quote(qs, sizeof qs, spec, strlen(spec), QUOTE_PATH));
        return 1;
    }
    if (!strncmp(spec, "idx:", 4)) {
        const char *comma = strchr(spec + 4, ',');
        if (!comma || comma == spec + 4 || !comma[1] || strchr(comma + 1, ',')) {
            *rc = mf__err(e, MF_ERR_INVALID, "data spec '%s': expected idx:IMAGES,LABELS (two paths)",
                          mf__quote(qs, sizeof qs, spec, strlen(spec), QUOTE_PATH));
            return 1;
        }
        size_t n = (size_t)(comma - (spec + 4));
        char *im = mf__malloc(n + 1);
        if (!im) {
            *rc = mf__err(e, MF_ERR_NOMEM, "out of memory");
            return 1;
        }
        memcpy(im, spec + 4, n);
        im[n] = '\0';
        *rc = mf_data_load_idx(im, comma + 1, out, e);
        mf__free(im);
        return 1;
    }
    if (!strncmp(spec, "cifar10:", 8)) {
        size_t n = strlen(spec + 8);
        int test = n > 5 && !strcmp(spec + 8 + n - 5, ":test");
        if (test) n -= 5;
        if (n == 0) {
            *rc = mf__err(e, MF_ERR_INVALID, "data spec '%s': expected cifar10:DIR or cifar10:DIR:test",
                          mf__quote(qs, sizeof qs, spec, strlen(spec), QUOTE_PATH));
            return 1;
        }
        char *dir = mf__malloc(n + 1);
        if (!dir) {
            *rc = mf__err(e, MF_ERR_NOMEM, "out of memory");
            return 1;
        }
        memcpy(dir, spec + 8, n);
        dir[n] = '\0';
        *rc = mf_data_load_cifar10(dir, test, out, e);
        mf__free(dir);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ subsets */

/* Contract in marginflow.h. Quotas: one sample per class in turn (class
 * order) while the class has samples left, until `limit` are given out, so
 * quotas differ by at most one unless a class runs out. */
int mf_data_select(const mf_data *src, const int *classes, int limit, uint64_t seed,
                   mf_data **out, mf_err *e) {
    if (!out) return mf__err(e, MF_ERR_INVALID, "mf_data_select: out is NULL");
    *out = NULL;
    if (!src || src->num_classes < 2)
        return mf__err(e, MF_ERR_INVALID, "a subset by class needs multi-class data (class "
                       "indices as labels)");
    const int C = src->num_classes;
    if (limit < 0) return mf__err(e, MF_ERR_INVALID, "limit %d must be >= 0", limit);
    if (classes && (classes[0] < 0 || classes[0] >= C || classes[1] < 0 || classes[1] >= C ||
                    classes[0] == classes[1]))
        return mf__err(e, MF_ERR_INVALID, "classes %d,%d: expected two different classes in 0..%d",
                       classes[0], classes[1], C - 1);
    int rc = MF_OK;
    int *count = mf__calloc((size_t)C, sizeof *count), *quota = mf__calloc((size_t)C, sizeof *quota);
    int *start = mf__calloc((size_t)C + 1, sizeof *start);
    int *byc = mf__calloc((size_t)(src->n ? src->n : 1), sizeof *byc);
    unsigned char *keep = mf__calloc((size_t)(src->n ? src->n : 1), 1);
    mf_data *D = NULL;
    if (!count || !quota || !start || !byc || !keep) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory selecting a subset");
        goto done;
    }
    for (int i = 0; i < src->n; i++) {
        int c = src->cls[i];
        if (!classes || c == classes[0] || c == classes[1]) count[c]++;
    }
    int avail = 0;
    for (int c = 0; c < C; c++) avail += count[c];
    if (avail == 0) {
        rc = mf__err(e, MF_ERR_INVALID, "no sample of classes %d,%d in %s", classes ? classes[0] : 0,
                     classes ? classes[1] : 0, src->desc);
        goto done;
    }
    int take = limit > 0 && limit < avail ? limit : avail;
    for (int given = 0; given < take;)
        for (int c = 0; c < C && given < take; c++)
            if (quota[c] < count[c]) quota[c]++, given++;
    /* per class: its sample indices in order, shuffled, the first quota kept */
    for (int c = 0; c < C; c++) start[c + 1] = start[c] + count[c];
    {
        int *fill = count; /* reused as the fill position */
        for (int c = 0; c < C; c++) fill[c] = start[c];
        for (int i = 0; i < src->n; i++) {
            int c = src->cls[i];
            if (!classes || c == classes[0] || c == classes[1]) byc[fill[c]++] = i;
        }
    }
    for (int c = 0; c < C; c++) {
        int n = start[c + 1] - start[c], *v = byc + start[c];
        if (quota[c] < n) {
            mf_rng r;
            mf_rng_seed(&r, seed * 0x9e3779b97f4a7c15ULL + (uint64_t)c);
            for (int i = n - 1; i > 0; i--) {
                int j = (int)(mf_rng_next(&r) % (uint64_t)(i + 1)), t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
        }
        for (int i = 0; i < quota[c]; i++) keep[v[i]] = 1;
    }
    if ((rc = mf_data_new(take, src->d, classes ? 0 : C, &D, e))) goto done;
    for (int i = 0, k = 0; i < src->n; i++) {
        if (!keep[i]) continue;
        memcpy(D->x + (size_t)k * src->d, src->x + (size_t)i * src->d, sizeof(double) * src->d);
        if (classes) D->y[k] = src->cls[i] == classes[0] ? 1.0 : -1.0;
        else D->cls[k] = src->cls[i];
        k++;
    }
    {
        char tail[96] = "";
        if (classes) snprintf(tail, sizeof tail, ", classes %d(+1)/%d(-1)", classes[0], classes[1]);
        if (take < avail) mf__say(tail, sizeof tail, ", %d balanced (seed %llu)", take,
                                  (unsigned long long)seed);
        size_t tl = strlen(tail), room = sizeof D->desc - 1 - tl;
        snprintf(D->desc, sizeof D->desc, "%.*s%s", (int)(strlen(src->desc) < room ? strlen(src->desc) : room),
                 src->desc, tail);
    }
    *out = D;
done:
    mf__free(count);
    mf__free(quota);
    mf__free(start);
    mf__free(byc);
    mf__free(keep);
    return rc;
}

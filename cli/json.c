/*
 * json.c -- the JSON number convention, atomic writes, strict parsing and
 * the typed getters of the CLI (contract: json.h). Every JSON file the CLI
 * reads goes through these getters, so a wrong field is reported the same
 * way everywhere: "FILE: FIELD: what is wrong".
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- writing */

cJSON *cli_json_num(cJSON *obj, const char *name, double v) {
    if (!isfinite(v)) return cJSON_AddNullToObject(obj, name);
    char b[40];
    mf_format_double(b, sizeof b, v);
    return cJSON_AddRawToObject(obj, name, b);
}

int cli_json_num_or(cJSON *obj, const char *name, double v, cJSON *absent, const char *path,
                    const char *reason) {
    if (isfinite(v)) return cli_json_num(obj, name, v) != NULL;
    if (!absent) return 1;
    char key[160];
    snprintf(key, sizeof key, "%s%s%s", path ? path : "", path && path[0] ? "." : "", name);
    return cJSON_AddStringToObject(absent, key, reason ? reason : "not computed") != NULL;
}

cJSON *cli_json_int(cJSON *obj, const char *name, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    return cJSON_AddRawToObject(obj, name, b);
}

cJSON *cli_json_str(cJSON *obj, const char *name, const char *s) {
    return s ? cJSON_AddStringToObject(obj, name, s) : cJSON_AddNullToObject(obj, name);
}

cJSON *cli_json_num_array(cJSON *obj, const char *name, const double *v, int n) {
    cJSON *arr = cJSON_AddArrayToObject(obj, name);
    for (int i = 0; arr && i < n; i++) {
        char b[40];
        cJSON *x = NULL;
        if (isfinite(v[i])) {
            mf_format_double(b, sizeof b, v[i]);
            x = cJSON_CreateRaw(b);
        } else {
            x = cJSON_CreateNull();
        }
        if (!x || !cJSON_AddItemToArray(arr, x)) {
            cJSON_Delete(x);
            return NULL;
        }
    }
    return arr;
}

cJSON *cli_json_argv(int argc, char *const *argv) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < argc; i++) {
        cJSON *s = cJSON_CreateString(argv[i]);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

int cli_json_write(const char *path, const cJSON *root, mf_err *e) {
    char *text = cJSON_Print(root);
    size_t n = text ? strlen(text) : 0;
    char *buf = text ? malloc(n + 2) : NULL;
    if (!buf) {
        cJSON_free(text);
        e->code = MF_ERR_NOMEM;
        snprintf(e->msg, sizeof e->msg, "out of memory writing %s", path);
        return MF_ERR_NOMEM;
    }
    memcpy(buf, text, n);
    buf[n] = '\n';
    cJSON_free(text);
    int rc = mf_write_file_atomic(path, buf, n + 1, e);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------- reading */

int cli_jbad(cli_jr *r, const char *field, const char *fmt, ...) {
    if (r->failed) return -1;
    r->failed = 1;
    if (!r->cap) return -1;
    int l = snprintf(r->why, r->cap, "%s: %s: ", cli_q(r->file), cli_q(field));
    if (l >= 0 && (size_t)l < r->cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why + l, r->cap - (size_t)l, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int cli_jbadk(cli_jr *r, const char *path, const char *key, const char *fmt, ...) {
    if (r->failed) return -1;
    char f[200], what[MF_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    r->key = key;
    return cli_jbad(r, cli_jfield(f, sizeof f, path, key, 0), "%s", what);
}

const char *cli_jfield(char *buf, size_t cap, const char *path, const char *key, int i) {
    int n = key ? snprintf(buf, cap, "%s%s%s", path, path[0] ? "." : "", key)
                : snprintf(buf, cap, "%s[%d]", path, i);
    if (n < 0 || (size_t)n >= cap) memcpy(buf + cap - 4, "...", 4);
    return buf;
}

const cJSON *cli_jget(const cJSON *o, const char *key) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

const char *cli_jstr_or(const cJSON *o, const char *key, const char *def) {
    const cJSON *v = cli_jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : def;
}

double cli_jnum_or(const cJSON *o, const char *key, double def) {
    const cJSON *v = cli_jget(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

int cli_jkeys(cli_jr *r, const cJSON *o, const char *path, const char *const *keys) {
    int seen[64] = {0};
    const cJSON *kv;
    cJSON_ArrayForEach(kv, o) {
        const char *name = kv->string ? kv->string : "";
        int k = 0;
        while (keys[k] && strcmp(keys[k], name)) k++;
        char f[160];
        cli_jfield(f, sizeof f, path, kv->string ? kv->string : "?", 0);
        if (!keys[k]) {
            char list[512] = "";
            for (int j = 0; keys[j]; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", keys[j]);
            }
            return cli_jbad(r, f, "unknown key (known here: %s)", list);
        }
        if (k < 64 && seen[k]++) return cli_jbad(r, f, "appears twice");
    }
    return 0;
}

/* The item at key, with the absent / null rules of flags: returns 1 with
 * *v set when there is a value to check, 0 absent, 2 null accepted, -1
 * error (absent but required). */
static int lookup(cli_jr *r, const cJSON *o, const char *path, const char *key, unsigned flags,
                  const cJSON **v) {
    *v = cli_jget(o, key);
    if (!*v) return flags & CLI_J_REQUIRED ? cli_jbadk(r, path, key, "is required") : 0;
    if ((flags & CLI_J_NULL) && cJSON_IsNull(*v)) return 2;
    return 1;
}

int cli_jnum(cli_jr *r, const cJSON *o, const char *path, const char *key, unsigned flags,
             double *out) {
    const cJSON *v;
    int g = lookup(r, o, path, key, flags, &v);
    if (g == 2) *out = NAN;
    if (g != 1) return g < 0 ? -1 : g ? 1 : 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return cli_jbadk(r, path, key, "must be a finite number");
    *out = v->valuedouble;
    return 1;
}

int cli_jint_ok(cli_jr *r, const char *field, double x, double lo, double hi) {
    if (!(x >= lo && x <= hi) || x != floor(x))
        return cli_jbad(r, field, "%.17g is not an integer in [%.17g, %.17g]", x, lo, hi);
    return 0;
}

int cli_jint(cli_jr *r, const cJSON *o, const char *path, const char *key, unsigned flags,
             double lo, double hi, double *out) {
    char f[200];
    int g = cli_jnum(r, o, path, key, flags & ~CLI_J_NULL, out);
    if (g == 1 && !(*out >= lo && *out <= hi && *out == floor(*out))) {
        if (!r->failed) r->key = key;
        return cli_jint_ok(r, cli_jfield(f, sizeof f, path, key, 0), *out, lo, hi);
    }
    return g;
}

int cli_jstr(cli_jr *r, const cJSON *o, const char *path, const char *key, unsigned flags,
             size_t maxlen, const char **out) {
    const cJSON *v;
    int g = lookup(r, o, path, key, flags, &v);
    if (g == 2) *out = NULL;
    if (g != 1) return g < 0 ? -1 : g ? 1 : 0;
    if (!cJSON_IsString(v)) return cli_jbadk(r, path, key, "must be a string");
    size_t n = strlen(v->valuestring);
    if (n > maxlen) return cli_jbadk(r, path, key, "longer than %zu characters", maxlen);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v->valuestring[i];
        if (c < 0x20 || c == 0x7f)
            return cli_jbadk(r, path, key, "control character 0x%02x at character %zu", (unsigned)c,
                             i + 1);
    }
    *out = v->valuestring;
    return 1;
}

int cli_jbool(cli_jr *r, const cJSON *o, const char *path, const char *key, int *out) {
    const cJSON *v = cli_jget(o, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return cli_jbadk(r, path, key, "must be true or false");
    if (out) *out = cJSON_IsTrue(v);
    return 1;
}

int cli_jnumarr(cli_jr *r, const cJSON *o, const char *path, const char *key, int maxn,
                double *vals, int *n) {
    const cJSON *a = cli_jget(o, key), *v;
    char f[160], fi[200];
    if (!a) return 0;
    cli_jfield(f, sizeof f, path, key, 0);
    if (!cJSON_IsArray(a)) return cli_jbad(r, f, "must be an array of numbers");
    int k = 0;
    cJSON_ArrayForEach(v, a) {
        if (k >= maxn) return cli_jbad(r, f, "more than %d values", maxn);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return cli_jbad(r, cli_jfield(fi, sizeof fi, f, NULL, k), "must be a finite number");
        if (vals) vals[k] = v->valuedouble;
        k++;
    }
    if (k == 0) return cli_jbad(r, f, "must not be empty");
    *n = k;
    return 1;
}

/* The first byte of text[len] that a JSON text must not hold, for a message
 * that names it: a NUL byte or a control character (below 0x20 but tab, LF
 * and CR, or DEL) anywhere -- cJSON would take them into strings -- or an
 * escaped NUL (\u0000) inside a string, which cJSON would silently cut the
 * string at. Returns 0 and sets *at, or -1 when there is none. *what is 0 for
 * an escaped NUL, else the byte. */
static int bad_json_byte(const char *text, size_t len, size_t *at, int *what) {
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
            *at = i, *what = c;
            return 0;
        }
        if (c == '"') in_str = !in_str;
        else if (in_str && c == '\\' && i + 1 < len) {
            if (text[i + 1] == 'u' && i + 5 < len && !strncmp(text + i + 2, "0000", 4)) {
                *at = i, *what = 0;
                return 0;
            }
            i++; /* the escaped character */
        }
    }
    return -1;
}

cJSON *cli_json_parse(cli_jr *r, const char *text, size_t len) {
    const char *end = NULL;
    size_t at = 0;
    int what = 0, bad = bad_json_byte(text, len, &at, &what) == 0;
    cJSON *root = bad ? NULL : cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root) /* only white space may follow the value */
        while (end && end < text + len &&
               (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
    if (root && !(end && end < text + len)) return root;
    long line = 1, col = 1;
    if (bad) end = text + at;
    if (!end || end < text || end > text + len) end = text;
    for (const char *c = text; c < end; c++) {
        if (*c == '\n') line++, col = 1;
        else col++;
    }
    char why[64];
    if (bad && what == 0 && text[at] == '\\') snprintf(why, sizeof why, "escaped NUL (\\u0000) in a string");
    else if (bad && what == 0) snprintf(why, sizeof why, "NUL byte; not a text file");
    else if (bad) snprintf(why, sizeof why, "control character 0x%02x; not valid JSON", (unsigned)what);
    else snprintf(why, sizeof why, "%s", root ? "text after the JSON value" : "not valid JSON");
    if (!r->failed && r->cap) snprintf(r->why, r->cap, "%s:%ld:%ld: %s", cli_q(r->file), line, col, why);
    r->failed = 1;
    cJSON_Delete(root);
    return NULL;
}

char *cli_jread(cli_jr *r, const char *path, size_t max, size_t *len) {
    char w[MF_ERR_LEN];
    char *t = cli_read_text(path, max, len, w, sizeof w);
    if (!t && !r->failed && r->cap) snprintf(r->why, r->cap, "%s", w);
    if (!t) r->failed = 1;
    return t;
}

cJSON *cli_json_load(cli_jr *r, const char *path, size_t max) {
    size_t n = 0;
    char *t = cli_jread(r, path, max, &n);
    cJSON *root = t ? cli_json_parse(r, t, n) : NULL;
    free(t);
    return root;
}

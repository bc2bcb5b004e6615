/*
 * experiment.c -- reading and validating the experiment (claim) files of
 * `marginflow reproduce` (format: experiments/README.md; interface:
 * experiment.h).
 *
 * A claim file describes training runs (expanded over a "vary" list and a
 * "seeds" list), checks and figures. It is user input and may be hand-edited,
 * generated or downloaded, so nothing is trusted: the whole file is checked
 * before the first run is trained, and every refusal names the file and the
 * field. In particular
 *   - the JSON must be one value with nothing but white space after it;
 *   - keys must be known (a misspelt "tolerance" would otherwise be silently
 *     ignored and the default used) and may appear only once;
 *   - numbers must be finite, and integers (seeds, steps, counts) integral
 *     and inside their ranges before they are converted (a C cast of a NaN,
 *     negative or huge double to an integer type is undefined behaviour);
 *   - arrays of numbers hold only numbers (a string in init.params is not 0);
 *   - a claim expands to at most RP_MAX_RUNS runs, each with valid train
 *     settings and its own directory name; spec strings and names must fit
 *     their buffers (no silent truncation).
 * Only the public library API and cJSON are used, so the fuzz harness
 * tests/fuzz/fuzz_experiment.c links this file alone with the library.
 */
#define _XOPEN_SOURCE 700
#include "experiment.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN10 2.302585092994045684

const char *const rp_check_quantities[] = {
    "final", "monotone", "decreasing", "converges", "rate_loss", "rate_norm",
    "verdict", "kkt", "fraction", "align", "escape_slope", "trend",
    "nonzero_global", "linear", "below_best", "kkt_horizons", NULL};

const char *const rp_figure_kinds[] = {"margin", "loss",    "norm",    "cosine",       "neurons",
                                       "sweep",  "kkt",     "regions", "layer-margin", NULL};

double rp_col(const mf_metrics *m, const char *col) {
    if (!strcmp(col, "step")) return (double)m->step;
    if (!strcmp(col, "log_time")) return m->time_log;
    if (!strcmp(col, "log10_time")) return m->time_log / LN10;
    if (!strcmp(col, "log10_loss")) return m->log10_loss;
    if (!strcmp(col, "norm")) return m->norm;
    if (!strcmp(col, "q_min")) return m->q_min;
    if (!strcmp(col, "normalized_margin")) return m->normalized_margin;
    if (!strcmp(col, "smoothed_margin")) return m->smoothed_margin;
    if (!strcmp(col, "layer_margin")) return m->layer_margin;
    if (!strcmp(col, "lr")) return m->lr;
    if (!strcmp(col, "train_error")) return m->train_error;
    if (!strcmp(col, "balancedness")) return m->balancedness;
    if (!strcmp(col, "beta")) return m->beta;
    if (!strcmp(col, "smoothed_decrease")) return m->smoothed_decrease;
    if (!strcmp(col, "loss_increase")) return m->loss_increase;
    if (!strcmp(col, "margin_change")) return m->margin_change;
    return NAN;
}

static int known_col(const char *c) {
    mf_metrics z;
    memset(&z, 0, sizeof z);
    return !isnan(rp_col(&z, c));
}

static int in_list(const char *const *list, const char *s) {
    for (; *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
}

/* ------------------------------------------------------------ messages */

/* The parse context: the file's name for messages and the message buffer. */
typedef struct pctx {
    const char *file;
    char *why;
    size_t wcap;
} pctx;

/* "FILE: FIELD: <printf text>" into p->why; returns -1. */
static int bad(pctx *p, const char *field, const char *f, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int bad(pctx *p, const char *field, const char *f, ...) {
    int l = snprintf(p->why, p->wcap, "%s: %s: ", p->file, field);
    if (l >= 0 && (size_t)l < p->wcap) {
        va_list ap;
        va_start(ap, f);
        vsnprintf(p->why + l, p->wcap - (size_t)l, f, ap);
        va_end(ap);
    }
    return -1;
}

/* path + "." + key (or path + "[i]" when key is NULL) into buf (cap >= 4).
 * A name longer than buf ends in "..." (only error messages use it). */
static const char *field(char *buf, size_t cap, const char *path, const char *key, int i) {
    int r = key ? snprintf(buf, cap, "%s%s%s", path, path[0] ? "." : "", key)
                : snprintf(buf, cap, "%s[%d]", path, i);
    if (r < 0 || (size_t)r >= cap) memcpy(buf + cap - 4, "...", 4);
    return buf;
}

/* ------------------------------------------------------------ typed fields */

static const cJSON *jget(const cJSON *o, const char *k) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

/* Every key of object o must be in keys[] (NULL-terminated) and appear once. */
static int check_keys(pctx *p, const cJSON *o, const char *path, const char *const *keys) {
    int seen[64] = {0};
    const cJSON *kv;
    cJSON_ArrayForEach(kv, o) {
        int k = 0;
        while (keys[k] && strcmp(keys[k], kv->string ? kv->string : "")) k++;
        char f[160];
        field(f, sizeof f, path, kv->string ? kv->string : "?", 0);
        if (!keys[k]) {
            char list[512] = "";
            for (int j = 0; keys[j]; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", keys[j]);
            }
            return bad(p, f, "unknown key (known here: %s)", list);
        }
        if (k < 64 && seen[k]++) return bad(p, f, "appears twice");
    }
    return 0;
}

/* A finite number field: 0 absent, 1 present (*out set), -1 error. */
static int get_num(pctx *p, const cJSON *o, const char *path, const char *key, double *out) {
    const cJSON *v = jget(o, key);
    char f[160];
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad(p, field(f, sizeof f, path, key, 0), "must be a finite number");
    *out = v->valuedouble;
    return 1;
}

/* Check that x is an integer in [lo, hi] before any conversion. */
static int int_ok(pctx *p, const char *f, double x, double lo, double hi) {
    if (!(x >= lo && x <= hi) || x != floor(x))
        return bad(p, f, "%.17g is not an integer in [%.17g, %.17g]", x, lo, hi);
    return 0;
}

/* An integer field in [lo, hi]: 0 absent, 1 present (*out set), -1 error. */
static int get_int(pctx *p, const cJSON *o, const char *path, const char *key, double lo,
                   double hi, double *out) {
    char f[160];
    int g = get_num(p, o, path, key, out);
    if (g == 1 && int_ok(p, field(f, sizeof f, path, key, 0), *out, lo, hi)) return -1;
    return g;
}

/* A string field of at most maxlen bytes: 0 absent, 1 present, -1 error. */
static int get_str(pctx *p, const cJSON *o, const char *path, const char *key, size_t maxlen,
                   const char **out) {
    const cJSON *v = jget(o, key);
    char f[160];
    if (!v) return 0;
    if (!cJSON_IsString(v)) return bad(p, field(f, sizeof f, path, key, 0), "must be a string");
    if (strlen(v->valuestring) > maxlen)
        return bad(p, field(f, sizeof f, path, key, 0), "longer than %zu characters", maxlen);
    *out = v->valuestring;
    return 1;
}

static int get_bool(pctx *p, const cJSON *o, const char *path, const char *key) {
    const cJSON *v = jget(o, key);
    char f[160];
    if (v && !cJSON_IsBool(v))
        return bad(p, field(f, sizeof f, path, key, 0), "must be true or false");
    return 0;
}

/* An array of finite numbers with 1..maxn entries: 0 absent, 1 present
 * (*n set; the values into vals[] when vals is not NULL), -1 error. */
static int get_numarr(pctx *p, const cJSON *o, const char *path, const char *key, int maxn,
                      double *vals, int *n) {
    const cJSON *a = jget(o, key), *v;
    char f[160], fi[200];
    if (!a) return 0;
    field(f, sizeof f, path, key, 0);
    if (!cJSON_IsArray(a)) return bad(p, f, "must be an array of numbers");
    int k = 0;
    cJSON_ArrayForEach(v, a) {
        if (k >= maxn) return bad(p, f, "more than %d values", maxn);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return bad(p, field(fi, sizeof fi, f, NULL, k), "must be a finite number");
        if (vals) vals[k] = v->valuedouble;
        k++;
    }
    if (k == 0) return bad(p, f, "must not be empty");
    *n = k;
    return 1;
}

/* ------------------------------------------------------------ templates */

/* Replace every "{var}" in src by the value (%.10g) into dst[cap]. Returns 0,
 * or -1 if the result does not fit. */
static int subst(char *dst, size_t cap, const char *src, const char *var, int has, double val) {
    char key[80], num[40];
    snprintf(key, sizeof key, "{%s}", var ? var : "");
    snprintf(num, sizeof num, "%.10g", val);
    size_t kl = strlen(key), o = 0;
    for (const char *p = src; *p;) {
        const char *q = p;
        size_t ql = 1;
        if (has && var && strncmp(p, key, kl) == 0) q = num, ql = strlen(num), p += kl;
        else p++;
        if (o + ql >= cap) return -1;
        memcpy(dst + o, q, ql);
        o += ql;
    }
    dst[o] = '\0';
    return 0;
}

/* A number field that may be a template string ("{sigma}"): 0 absent, 1
 * present (*out finite), -1 error. */
static int get_tnum(pctx *p, const cJSON *o, const char *path, const char *key, const char *var,
                    int has, double val, double *out) {
    const cJSON *v = jget(o, key);
    char f[160];
    if (!v) return 0;
    field(f, sizeof f, path, key, 0);
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble)) return bad(p, f, "must be a finite number");
        *out = v->valuedouble;
        return 1;
    }
    if (cJSON_IsString(v)) {
        char b[128], *end;
        if (subst(b, sizeof b, v->valuestring, var, has, val))
            return bad(p, f, "longer than %zu characters", sizeof b - 1);
        double x = strtod(b, &end);
        if (end == b || *end || !isfinite(x))
            return bad(p, f, "'%s' is not a finite number%s", b,
                       strchr(b, '{') ? " (no vary of that name)" : "");
        *out = x;
        return 1;
    }
    return bad(p, f, "must be a number or a \"{var}\" template");
}

/* ------------------------------------------------------------ runs */

static const char *const run_keys[] = {"name",  "data",  "model", "init", "seeds", "vary",
                                       "loss",  "optimizer", "lr", "tol", "steps",
                                       "until_log10_loss", "until_time", "wall_seconds",
                                       "log_points", "log_horizon", "snapshots", "comment", NULL};
static const char *const init_keys[] = {"params", "kind", "scale", "seed", "comment", NULL};
static const char *const vary_keys[] = {"name", "values", "comment", NULL};

#define MAX_LOG_POINTS 1000000.0
#define MAX_INIT_VALUES 1000000.0 /* init.params values over all runs of a claim */

/* Fill one rp_run from the JSON run object r (at path) for vary value v and
 * seed. Returns 0, or -1 with the message set and nothing owned by *out. */
static int make_run(pctx *p, const cJSON *r, const char *path, const char *var, int has,
                    double v, int has_seed, double seed, rp_run *out) {
    char f[200];
    const char *name = "run", *ds = NULL, *ms = "linear", *ls = "exp", *os = "flow";
    memset(out, 0, sizeof *out);
    if (get_str(p, r, path, "name", sizeof out->base - 1, &name) < 0) return -1;
    if (!name[0]) return bad(p, field(f, sizeof f, path, "name", 0), "must not be empty");
    snprintf(out->base, sizeof out->base, "%s", name);
    snprintf(out->name, sizeof out->name, "%s", out->base);
    size_t l = strlen(out->name);
    if (has) snprintf(out->name + l, sizeof out->name - l, "-%s%.6g", var, v);
    l = strlen(out->name);
    if (has_seed) snprintf(out->name + l, sizeof out->name - l, "-s%.0f", seed);
    for (char *c = out->name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.') *c = '_';
    out->has_vary = has;
    out->vary = v;
    if (get_str(p, r, path, "data", 100000, &ds) < 0) return -1;
    if (!ds) return bad(p, path, "\"data\" is required");
    if (get_str(p, r, path, "model", 100000, &ms) < 0) return -1;
    struct {
        const char *key, *src;
        char *dst;
    } specs[] = {{"data", ds, out->data_spec}, {"model", ms, out->model_spec}};
    for (int i = 0; i < 2; i++) {
        field(f, sizeof f, path, specs[i].key, 0);
        if (subst(specs[i].dst, MF_SPEC_LEN, specs[i].src, var, has, v))
            return bad(p, f, "longer than %d characters", MF_SPEC_LEN - 1);
        if (!specs[i].dst[0]) return bad(p, f, "must not be empty");
        const char *br = strchr(specs[i].dst, '{');
        if (br) return bad(p, f, "'%s' has a template that no vary replaces", specs[i].dst);
    }
    mf_train_settings *s = &out->s;
    mf_train_settings_default(s);
    s->max_steps = 0;
    if (get_str(p, r, path, "loss", 64, &ls) < 0 || get_str(p, r, path, "optimizer", 64, &os) < 0)
        return -1;
    if (mf_loss_from_name(ls, &s->loss))
        return bad(p, field(f, sizeof f, path, "loss", 0), "unknown loss '%s' (exp, logistic, ce)",
                   ls);
    if (mf_optimizer_from_name(os, &s->optimizer))
        return bad(p, field(f, sizeof f, path, "optimizer", 0),
                   "unknown optimizer '%s' (gd, scaled, lyu-li, flow, sgd)", os);
    struct {
        const char *k;
        double *dst;
    } nums[] = {{"lr", &s->lr}, {"tol", &s->tol}, {"until_log10_loss", &s->until_log10_loss},
                {"until_time", &s->until_time}, {"wall_seconds", &s->wall_seconds}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (get_tnum(p, r, path, nums[i].k, var, has, v, nums[i].dst) < 0) return -1;
    /* integers: range first, then the conversion */
    double x;
    int g;
    if ((g = get_tnum(p, r, path, "steps", var, has, v, &x)) < 0) return -1;
    if (g && int_ok(p, field(f, sizeof f, path, "steps", 0), x, 0, RP_MAX_SEED)) return -1;
    if (g) s->max_steps = (long long)x;
    if ((g = get_tnum(p, r, path, "log_points", var, has, v, &x)) < 0) return -1;
    if (g && int_ok(p, field(f, sizeof f, path, "log_points", 0), x, 0, MAX_LOG_POINTS)) return -1;
    if (g) s->log_points = (int)x;
    if ((g = get_tnum(p, r, path, "log_horizon", var, has, v, &x)) < 0) return -1;
    if (g && int_ok(p, field(f, sizeof f, path, "log_horizon", 0), x, 0, RP_MAX_SEED)) return -1;
    if (g) s->log_horizon = (long long)x;
    if (s->log_horizon == 0) s->log_horizon = s->max_steps > 1 ? s->max_steps : 1000000;
    s->checkpoint_every = 0;
    if (get_bool(p, r, path, "snapshots")) return -1;
    out->snapshots = cJSON_IsTrue(jget(r, "snapshots"));

    const cJSON *init = jget(r, "init");
    char ip[160];
    field(ip, sizeof ip, path, "init", 0);
    if (init && !cJSON_IsObject(init)) return bad(p, ip, "must be an object");
    if (init && check_keys(p, init, ip, init_keys)) return -1;
    double iseed = 1;
    if (get_int(p, init, ip, "seed", 0, RP_MAX_SEED, &iseed) < 0) return -1;
    out->seed = (uint64_t)(has_seed ? seed : iseed);
    s->seed = out->seed;
    const cJSON *params = jget(init, "params");
    if (params) {
        int n = 0;
        if (get_numarr(p, init, ip, "params", 1 << 24, NULL, &n) < 0) return -1;
        out->init_params = calloc((size_t)n + 1, sizeof(double));
        if (!out->init_params) return bad(p, ip, "out of memory for %d parameters", n);
        get_numarr(p, init, ip, "params", n, out->init_params, &out->n_init);
        snprintf(out->init_desc, sizeof out->init_desc, "params ");
        for (int k = 0; k < n; k++) {
            size_t dl = strlen(out->init_desc);
            if (dl + 1 >= sizeof out->init_desc) break; /* full: a description only */
            snprintf(out->init_desc + dl, sizeof out->init_desc - dl, "%s%.6g", k ? "," : "",
                     out->init_params[k]);
        }
        if (jget(init, "kind") || jget(init, "scale")) {
            free(out->init_params);
            out->init_params = NULL;
            return bad(p, ip, "\"params\" excludes \"kind\" and \"scale\"");
        }
    } else {
        const char *kind = "gauss";
        if (get_str(p, init, ip, "kind", sizeof out->init_kind - 1, &kind) < 0) return -1;
        snprintf(out->init_kind, sizeof out->init_kind, "%s", kind);
        out->init_scale = 0.1;
        if (get_tnum(p, init, ip, "scale", var, has, v, &out->init_scale) < 0) return -1;
        snprintf(out->init_desc, sizeof out->init_desc, "%s scale %.3g seed %llu", out->init_kind,
                 out->init_scale, (unsigned long long)out->seed);
    }
    const char *why = mf_train_settings_validate(s);
    if (why) {
        free(out->init_params);
        out->init_params = NULL;
        return bad(p, path, "run '%s': %s", out->base, why);
    }
    return 0;
}

static int cmp_run_name(const void *a, const void *b) {
    const rp_run *x = *(rp_run *const *)a, *y = *(rp_run *const *)b;
    return strcmp(x->name, y->name);
}

/* All runs of a claim: runs x vary values x seeds, at most RP_MAX_RUNS, with
 * unique names. Returns 0 or -1 (message set, nothing allocated). */
static int expand_runs(pctx *p, const cJSON *root, rp_run **out, int *n) {
    const cJSON *runs = jget(root, "runs"), *r;
    rp_run *list = NULL;
    double *vals = NULL, *seeds = NULL, init_total = 0;
    int k = 0, ri = -1, rc = -1;
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(runs) || cJSON_GetArraySize(runs) == 0)
        return bad(p, "runs", "must be a non-empty array of run objects");
    cJSON_ArrayForEach(r, runs) {
        char path[40], f[200];
        snprintf(path, sizeof path, "runs[%d]", ++ri);
        if (!cJSON_IsObject(r)) {
            bad(p, path, "must be an object");
            goto out;
        }
        if (check_keys(p, r, path, run_keys)) goto out;
        /* vary */
        const cJSON *vary = jget(r, "vary");
        const char *var = NULL;
        int nv = 0, ns = 0;
        free(vals), free(seeds);
        vals = seeds = NULL;
        if (vary) {
            char vp[80];
            field(vp, sizeof vp, path, "vary", 0);
            if (!cJSON_IsObject(vary)) {
                bad(p, vp, "must be an object {\"name\": ..., \"values\": [...]}");
                goto out;
            }
            if (check_keys(p, vary, vp, vary_keys) || get_str(p, vary, vp, "name", 32, &var) < 0)
                goto out;
            if (!var || !var[0]) {
                bad(p, field(f, sizeof f, vp, "name", 0), "is required (1 to 32 characters)");
                goto out;
            }
            const cJSON *va = jget(vary, "values");
            if (!va) {
                bad(p, field(f, sizeof f, vp, "values", 0), "is required");
                goto out;
            }
            int cnt = cJSON_IsArray(va) ? cJSON_GetArraySize(va) : 0;
            if (cnt > RP_MAX_RUNS) {
                bad(p, field(f, sizeof f, vp, "values", 0),
                    "%d values is more than the limit of %d runs per claim", cnt, RP_MAX_RUNS);
                goto out;
            }
            vals = malloc(sizeof *vals * (size_t)(cnt + 1));
            if (!vals) {
                bad(p, vp, "out of memory");
                goto out;
            }
            if (get_numarr(p, vary, vp, "values", RP_MAX_RUNS, vals, &nv) < 0) goto out;
        }
        /* seeds: a count K (seeds 1..K) or a list */
        const cJSON *sj = jget(r, "seeds");
        field(f, sizeof f, path, "seeds", 0);
        if (sj && cJSON_IsNumber(sj)) {
            double K = sj->valuedouble;
            if (K > RP_MAX_RUNS) {
                bad(p, f, "%.17g seeds is more than the limit of %d runs per claim", K, RP_MAX_RUNS);
                goto out;
            }
            if (int_ok(p, f, K, 1, RP_MAX_RUNS)) goto out;
            ns = (int)K;
            seeds = malloc(sizeof *seeds * (size_t)ns);
            if (!seeds) {
                bad(p, f, "out of memory");
                goto out;
            }
            for (int i = 0; i < ns; i++) seeds[i] = i + 1;
        } else if (sj) {
            int cnt = cJSON_IsArray(sj) ? cJSON_GetArraySize(sj) : 0;
            if (!cJSON_IsArray(sj)) {
                bad(p, f, "must be a count K (seeds 1..K) or a list of seeds");
                goto out;
            }
            if (cnt > RP_MAX_RUNS) {
                bad(p, f, "%d seeds is more than the limit of %d runs per claim", cnt, RP_MAX_RUNS);
                goto out;
            }
            seeds = malloc(sizeof *seeds * (size_t)(cnt + 1));
            if (!seeds) {
                bad(p, f, "out of memory");
                goto out;
            }
            if (get_numarr(p, r, path, "seeds", RP_MAX_RUNS, seeds, &ns) < 0) goto out;
            for (int i = 0; i < ns; i++) {
                char fi[220];
                if (int_ok(p, field(fi, sizeof fi, f, NULL, i), seeds[i], 0, RP_MAX_SEED)) goto out;
            }
        }
        double total = (double)k + (double)(nv ? nv : 1) * (ns ? ns : 1);
        if (total > RP_MAX_RUNS) {
            bad(p, path, "%d vary values x %d seeds makes %.0f runs in the claim, more than the "
                "limit of %d runs per claim", nv ? nv : 1, ns ? ns : 1, total, RP_MAX_RUNS);
            goto out;
        }
        int np = cJSON_IsArray(jget(jget(r, "init"), "params"))
                     ? cJSON_GetArraySize(jget(jget(r, "init"), "params")) : 0;
        init_total += (double)np * (total - k);
        if (init_total > MAX_INIT_VALUES) {
            bad(p, field(f, sizeof f, path, "init.params", 0), "the claim's runs would hold more "
                "than %.0f initial parameter values", MAX_INIT_VALUES);
            goto out;
        }
        rp_run *l2 = realloc(list, sizeof *list * (size_t)total);
        if (!l2) {
            bad(p, path, "out of memory for %.0f runs", total);
            goto out;
        }
        list = l2;
        for (int iv = 0; iv < (nv ? nv : 1); iv++)
            for (int is = 0; is < (ns ? ns : 1); is++) {
                if (make_run(p, r, path, var, nv > 0, nv ? vals[iv] : 0, ns > 0, ns ? seeds[is] : 0,
                             &list[k]))
                    goto out;
                k++;
            }
    }
    /* every run needs its own directory */
    rp_run **by = malloc(sizeof *by * (size_t)k);
    if (!by) {
        bad(p, "runs", "out of memory");
        goto out;
    }
    for (int i = 0; i < k; i++) by[i] = &list[i];
    qsort(by, (size_t)k, sizeof *by, cmp_run_name);
    for (int i = 1; i < k; i++)
        if (!strcmp(by[i]->name, by[i - 1]->name)) {
            bad(p, "runs", "two runs expand to the same name '%s' (give each run its own \"name\"; "
                "vary values and seeds must be distinct)", by[i]->name);
            free(by);
            goto out;
        }
    free(by);
    rc = 0;
out:
    free(vals);
    free(seeds);
    if (rc) {
        rp_runs_free(list, k);
        return -1;
    }
    *out = list;
    *n = k;
    return 0;
}

void rp_runs_free(rp_run *r, int n) {
    for (int i = 0; r && i < n; i++) {
        free(r[i].init_params);
        free(r[i].theta);
        free(r[i].rows);
        free(r[i].snaps);
        mf_model_free(r[i].model);
        mf_data_free(r[i].data);
    }
    free(r);
}

/* ------------------------------------------------------------ checks */

static const char *const check_keys_all[] = {
    "quantity", "column", "run", "op", "label", "pooled", "expect", "layer", "local_trials",
    "starts", "seed", "groups", "horizons", "tol", "gap_tol", "from_log10_time", "eps_tol",
    "delta_tol", "below", "gt", "threshold", "t_max", "level", "rel_tol", "target",
    "gamma_star", "nz_tol", "cos_min", "collinear_min", "max_ratio", "limit", "limit_tol",
    "comment", NULL};

/* The first entries of check_keys_all that are not plain finite numbers. */
#define CHECK_SPECIAL_KEYS 13

/* Validate check object ck (at path) against the runs' names. */
static int check_one(pctx *p, const cJSON *ck, const char *path, const rp_run *runs, int nruns,
                     rp_check *out) {
    char f[200];
    const char *q = NULL, *col = NULL, *sel = NULL, *op = "near", *label = NULL;
    if (!cJSON_IsObject(ck)) return bad(p, path, "must be an object");
    if (check_keys(p, ck, path, check_keys_all)) return -1;
    if (get_str(p, ck, path, "quantity", 64, &q) < 0) return -1;
    if (!q) return bad(p, path, "\"quantity\" is required");
    if (!in_list(rp_check_quantities, q)) {
        char list[512] = "";
        for (int j = 0; rp_check_quantities[j]; j++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", rp_check_quantities[j]);
        }
        return bad(p, field(f, sizeof f, path, "quantity", 0), "unknown quantity '%s' (known: %s)",
                   q, list);
    }
    if (get_str(p, ck, path, "column", 64, &col) < 0) return -1;
    if (col && !known_col(col))
        return bad(p, field(f, sizeof f, path, "column", 0), "unknown column '%s'", col);
    if (get_str(p, ck, path, "run", 64, &sel) < 0) return -1;
    if (sel) {
        int found = 0;
        for (int i = 0; i < nruns && !found; i++) found = !strcmp(runs[i].base, sel);
        if (!found) return bad(p, field(f, sizeof f, path, "run", 0), "no run is named '%s'", sel);
    }
    if (get_str(p, ck, path, "op", 8, &op) < 0) return -1;
    if (strcmp(op, "near") && strcmp(op, "le") && strcmp(op, "ge"))
        return bad(p, field(f, sizeof f, path, "op", 0), "'%s' is not near, le or ge", op);
    if (get_str(p, ck, path, "label", 64, &label) < 0 || get_bool(p, ck, path, "pooled")) return -1;
    /* expect: a number, or for verdict a name or a list of names */
    const cJSON *ex = jget(ck, "expect");
    field(f, sizeof f, path, "expect", 0);
    if (!strcmp(q, "verdict")) {
        const cJSON *e1;
        int ne = 0;
        if (!ex) return bad(p, f, "is required for verdict");
        if (cJSON_IsArray(ex)) {
            cJSON_ArrayForEach(e1, ex) {
                if (!cJSON_IsString(e1)) return bad(p, f, "must be a verdict name or a list of names");
                ne++;
            }
        }
        if (!cJSON_IsString(ex) && ne == 0) return bad(p, f, "must be a verdict name or a list of names");
    } else if (ex && (!cJSON_IsNumber(ex) || !isfinite(ex->valuedouble))) {
        return bad(p, f, "must be a finite number");
    } else if (!ex && !strcmp(q, "final")) {
        return bad(p, f, "is required for final");
    }
    /* integer parameters: range first, the evaluators convert them */
    double x;
    const cJSON *ly = jget(ck, "layer");
    if (cJSON_IsString(ly)) {
        if (strcmp(ly->valuestring, "all"))
            return bad(p, field(f, sizeof f, path, "layer", 0), "must be a layer index or \"all\"");
    } else if (get_int(p, ck, path, "layer", -1, 4096, &x) < 0) {
        return -1;
    }
    if (get_int(p, ck, path, "local_trials", 0, 100000, &x) < 0 ||
        get_int(p, ck, path, "starts", 1, 100000, &x) < 0 ||
        get_int(p, ck, path, "seed", 0, RP_MAX_SEED, &x) < 0)
        return -1;
    int n;
    if (get_numarr(p, ck, path, "groups", RP_MAX_RUNS, NULL, &n) < 0 ||
        get_numarr(p, ck, path, "horizons", 1000, NULL, &n) < 0)
        return -1;
    for (int k = CHECK_SPECIAL_KEYS; check_keys_all[k]; k++)
        if (strcmp(check_keys_all[k], "comment") && get_num(p, ck, path, check_keys_all[k], &x) < 0)
            return -1;
    if (get_str(p, ck, path, "comment", 100000, &label) < 0) return -1;
    /* what a quantity cannot do without */
    static const struct {
        const char *q, *key;
    } need[] = {{"kkt_horizons", "horizons"}, {"fraction", "below"}, {"trend", "target"},
                {"nonzero_global", "gamma_star"}};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!strcmp(q, need[i].q) && !jget(ck, need[i].key))
            return bad(p, field(f, sizeof f, path, need[i].key, 0), "is required for %s", q);
    out->spec = ck;
    out->quantity = q;
    out->column = col;
    return 0;
}

/* ------------------------------------------------------------ the file */

static const char *const top_keys[] = {"name",  "title",  "paper",   "reference", "statement",
                                       "gamma_star", "w_ref", "runs", "checks", "figures",
                                       "quick", "comment", NULL};
static const char *const quick_keys[] = {"runs", "checks", "comment", NULL};

/* Merge quick.runs into every run and let quick.checks replace checks
 * (both validated for shape first). */
static int apply_quick(pctx *p, cJSON *root, int merge) {
    cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quick");
    if (!q) return 0;
    if (!cJSON_IsObject(q)) return bad(p, "quick", "must be an object");
    if (check_keys(p, q, "quick", quick_keys)) return -1;
    cJSON *qr = cJSON_GetObjectItemCaseSensitive(q, "runs");
    cJSON *qc = cJSON_GetObjectItemCaseSensitive(q, "checks");
    if (qr && !cJSON_IsObject(qr)) return bad(p, "quick.runs", "must be an object of run keys");
    if (qr && check_keys(p, qr, "quick.runs", run_keys)) return -1;
    if (qc && !cJSON_IsArray(qc)) return bad(p, "quick.checks", "must be an array of checks");
    if (!merge) return 0;
    cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
    if (qr && cJSON_IsArray(runs)) {
        cJSON *r;
        cJSON_ArrayForEach(r, runs) {
            cJSON *kv;
            if (!cJSON_IsObject(r)) continue; /* reported by expand_runs */
            cJSON_ArrayForEach(kv, qr) {
                cJSON *dup = cJSON_Duplicate(kv, 1);
                if (!dup) return bad(p, "quick.runs", "out of memory");
                if (cJSON_GetObjectItemCaseSensitive(r, kv->string))
                    cJSON_ReplaceItemInObjectCaseSensitive(r, kv->string, dup);
                else
                    cJSON_AddItemToObject(r, kv->string, dup);
            }
        }
    }
    if (qc) {
        cJSON *dup = cJSON_Duplicate(qc, 1);
        if (!dup) return bad(p, "quick.checks", "out of memory");
        if (cJSON_GetObjectItemCaseSensitive(root, "checks"))
            cJSON_ReplaceItemInObjectCaseSensitive(root, "checks", dup);
        else
            cJSON_AddItemToObject(root, "checks", dup);
    }
    return 0;
}

static int validate(pctx *p, rp_experiment *x, int quick) {
    cJSON *root = x->root;
    if (!cJSON_IsObject(root)) return bad(p, "(top level)", "must be a JSON object");
    if (check_keys(p, root, "", top_keys)) return -1;
    const char *nm = NULL;
    if (get_str(p, root, "", "name", 127, &nm) < 0 || get_str(p, root, "", "title", 100000, &x->title) < 0 ||
        get_str(p, root, "", "paper", 100000, &x->paper) < 0 ||
        get_str(p, root, "", "reference", 100000, &x->reference) < 0 ||
        get_str(p, root, "", "statement", 100000, &x->statement) < 0 ||
        get_str(p, root, "", "comment", 100000, &nm) < 0)
        return -1;
    if (get_num(p, root, "", "gamma_star", &x->gamma_star) < 0) return -1;
    if (get_numarr(p, root, "", "w_ref", RP_MAX_WREF, x->wref, &x->n_wref) < 0) return -1;
    const cJSON *figs = jget(root, "figures"), *fg;
    if (figs && !cJSON_IsArray(figs)) return bad(p, "figures", "must be an array of figure kinds");
    cJSON_ArrayForEach(fg, figs) {
        char f[40];
        snprintf(f, sizeof f, "figures[%d]", x->nfigures);
        if (x->nfigures >= RP_MAX_FIGURES) return bad(p, "figures", "more than %d entries", RP_MAX_FIGURES);
        if (!cJSON_IsString(fg) || !in_list(rp_figure_kinds, fg->valuestring)) {
            char list[256] = "";
            for (int j = 0; rp_figure_kinds[j]; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", rp_figure_kinds[j]);
            }
            return bad(p, f, "not a figure kind (%s)", list);
        }
        x->figures[x->nfigures++] = fg->valuestring;
    }
    if (apply_quick(p, root, quick)) return -1;
    if (expand_runs(p, root, &x->runs, &x->nruns)) return -1;
    const cJSON *checks = jget(root, "checks"), *ck;
    int nc = cJSON_IsArray(checks) ? cJSON_GetArraySize(checks) : 0;
    if (nc == 0) return bad(p, "checks", "must be a non-empty array of checks");
    if (nc > RP_MAX_CHECKS) return bad(p, "checks", "%d checks is more than the limit of %d", nc, RP_MAX_CHECKS);
    x->checks = calloc((size_t)nc, sizeof *x->checks);
    if (!x->checks) return bad(p, "checks", "out of memory");
    cJSON_ArrayForEach(ck, checks) {
        char path[40];
        snprintf(path, sizeof path, "checks[%d]", x->nchecks);
        if (check_one(p, ck, path, x->runs, x->nruns, &x->checks[x->nchecks])) return -1;
        x->nchecks++;
    }
    return 0;
}

int rp_experiment_parse(const char *text, size_t len, const char *file, int quick,
                        rp_experiment *x, char *why, size_t wcap) {
    pctx p = {file ? file : "(experiment)", why, wcap};
    memset(x, 0, sizeof *x);
    x->title = x->paper = x->reference = x->statement = "";
    x->gamma_star = NAN;
    if (wcap) why[0] = '\0';
    if (len > RP_MAX_FILE) return bad(&p, "(file)", "larger than %zu bytes", RP_MAX_FILE);
    const char *end = NULL;
    x->root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (x->root) /* only white space may follow the value */
        while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
    if (!x->root || (end && end < text + len)) {
        long line = 1, col = 1;
        if (!end || end < text || end > text + len) end = text;
        for (const char *c = text; c < end; c++) {
            if (*c == '\n') line++, col = 1;
            else col++;
        }
        snprintf(why, wcap, "%s:%ld:%ld: %s", p.file, line, col,
                 x->root ? "text after the JSON value" : "not valid JSON");
        cJSON_Delete(x->root);
        x->root = NULL;
        return -1;
    }
    if (validate(&p, x, quick)) {
        cJSON *root = x->root;
        const char *t = x->title, *pa = x->paper, *re = x->reference, *st = x->statement;
        double gs = x->gamma_star;
        x->root = NULL;
        rp_experiment_free(x);
        x->root = root; /* kept for the descriptive strings */
        x->title = t, x->paper = pa, x->reference = re, x->statement = st;
        x->gamma_star = gs;
        if (!why[0]) snprintf(why, wcap, "%s: invalid", p.file);
        return -1;
    }
    return 0;
}

int rp_experiment_read(const char *path, int quick, rp_experiment *x, char *why, size_t wcap) {
    memset(x, 0, sizeof *x);
    x->title = x->paper = x->reference = x->statement = "";
    x->gamma_star = NAN;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, wcap, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *t = malloc(cap);
    int err = 0;
    while (t) {
        size_t got = fread(t + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (n > RP_MAX_FILE) break;
        if (n == cap) {
            char *t2 = realloc(t, cap *= 2);
            if (!t2) free(t);
            t = t2;
        }
    }
    err = ferror(f);
    fclose(f);
    if (!t || err) {
        snprintf(why, wcap, "%s: cannot read: %s", path, t ? "read error" : "out of memory");
        free(t);
        return -1;
    }
    int rc = rp_experiment_parse(t, n, path, quick, x, why, wcap);
    free(t);
    return rc;
}

void rp_experiment_free(rp_experiment *x) {
    if (!x) return;
    rp_runs_free(x->runs, x->nruns);
    free(x->checks);
    cJSON_Delete(x->root);
    memset(x, 0, sizeof *x);
    x->title = x->paper = x->reference = x->statement = "";
    x->gamma_star = NAN;
}

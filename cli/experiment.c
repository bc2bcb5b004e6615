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
#include "checks.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN10 2.302585092994045684

const char *const rp_figure_kinds[] = {"margin", "loss",    "norm",    "cosine",       "neurons",
                                       "sweep",  "kkt",     "regions", "layer-margin", "epochs",
                                       "robust", "odd-even", NULL};

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
    /* epoch runs */
    if (!strcmp(col, "epoch")) return (double)m->epoch;
    if (!strcmp(col, "rejected")) return (double)m->rejected;
    if (!strcmp(col, "log10_mean_loss")) return m->log10_mean_loss;
    if (!strcmp(col, "train_acc")) return 1.0 - m->train_error;
    if (!strcmp(col, "test_acc")) return 1.0 - m->test_error;
    if (!strcmp(col, "epoch_seconds")) return m->epoch_seconds;
    if (!strcmp(col, "wall_seconds")) return m->wall_seconds;
    return NAN;
}

static int in_list(const char *const *list, const char *s) {
    for (; *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
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
static int get_tnum(cli_jr *p, const cJSON *o, const char *path, const char *key, const char *var,
                    int has, double val, double *out) {
    const cJSON *v = cli_jget(o, key);
    char f[160];
    if (!v) return 0;
    cli_jfield(f, sizeof f, path, key, 0);
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble)) return cli_jbad(p, f, "must be a finite number");
        *out = v->valuedouble;
        return 1;
    }
    if (cJSON_IsString(v)) {
        char b[128], *end;
        if (subst(b, sizeof b, v->valuestring, var, has, val))
            return cli_jbad(p, f, "longer than %zu characters", sizeof b - 1);
        double x = strtod(b, &end);
        if (end == b || *end || !isfinite(x))
            return cli_jbad(p, f, "'%s' is not a finite number%s", cli_q(b),
                       strchr(b, '{') ? " (no vary of that name)" : "");
        *out = x;
        return 1;
    }
    return cli_jbad(p, f, "must be a number or a \"{var}\" template");
}

/* ------------------------------------------------------------ runs */

static const char *const run_keys[] = {"name",  "data",  "model", "init", "seeds", "vary",
                                       "loss",  "optimizer", "lr", "tol", "max_rel_step", "steps",
                                       "until_log10_loss", "until_time", "wall_seconds",
                                       "log_points", "log_horizon", "snapshots", "test_data",
                                       "train_limit", "test_limit", "classes", "data_seed",
                                       "epochs", "batch", "archive_epochs", "archive_decades",
                                       "loss_cap", "alpha_min", "comment", NULL};
static const char *const init_keys[] = {"params", "kind", "scale", "seed", "from_run", "multiply",
                                        "comment", NULL};
static const char *const vary_keys[] = {"name", "values", "comment", NULL};

#define MAX_LOG_POINTS 1000000.0
#define MAX_INIT_VALUES 1000000.0 /* init.params values over all runs of a claim */

/* Fill one rp_run from the JSON run object r (at path) for vary value v and
 * seed. Returns 0, or -1 with the message set and nothing owned by *out. */
static int make_run(cli_jr *p, const cJSON *r, const char *path, const char *var, int has,
                    double v, int has_seed, double seed, rp_run *out) {
    char f[200];
    const char *name = "run", *ds = NULL, *ms = "linear", *ls = "exp", *os = "flow";
    memset(out, 0, sizeof *out);
    if (cli_jstr(p, r, path, "name", 0, sizeof out->base - 1, &name) < 0) return -1;
    if (!name[0]) return cli_jbad(p, cli_jfield(f, sizeof f, path, "name", 0), "must not be empty");
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
    if (has) snprintf(out->var, sizeof out->var, "%s", var);
    if (cli_jstr(p, r, path, "data", 0, 100000, &ds) < 0) return -1;
    if (!ds) return cli_jbad(p, path, "\"data\" is required");
    if (cli_jstr(p, r, path, "model", 0, 100000, &ms) < 0) return -1;
    struct {
        const char *key, *src;
        char *dst;
    } specs[] = {{"data", ds, out->data_spec}, {"model", ms, out->model_spec}};
    for (int i = 0; i < 2; i++) {
        cli_jfield(f, sizeof f, path, specs[i].key, 0);
        if (subst(specs[i].dst, MF_SPEC_LEN, specs[i].src, var, has, v))
            return cli_jbad(p, f, "longer than %d characters", MF_SPEC_LEN - 1);
        if (!specs[i].dst[0]) return cli_jbad(p, f, "must not be empty");
        const char *br = strchr(specs[i].dst, '{');
        if (br) return cli_jbad(p, f, "'%s' has a template that no vary replaces", cli_q(specs[i].dst));
    }
    mf_train_settings *s = &out->s;
    mf_train_settings_default(s);
    s->max_steps = 0;
    if (cli_jstr(p, r, path, "loss", 0, 64, &ls) < 0 || cli_jstr(p, r, path, "optimizer", 0, 64, &os) < 0)
        return -1;
    if (mf_loss_from_name(ls, &s->loss))
        return cli_jbad(p, cli_jfield(f, sizeof f, path, "loss", 0), "unknown loss '%s' (exp, logistic, ce)",
                   cli_q(ls));
    if (mf_optimizer_from_name(os, &s->optimizer))
        return cli_jbad(p, cli_jfield(f, sizeof f, path, "optimizer", 0),
                   "unknown optimizer '%s' (gd, scaled, lyu-li, flow, sgd, sgd-lyu-li)", cli_q(os));
    struct {
        const char *k;
        double *dst;
    } nums[] = {{"lr", &s->lr}, {"tol", &s->tol}, {"max_rel_step", &s->max_rel_step},
                {"until_log10_loss", &s->until_log10_loss},
                {"until_time", &s->until_time}, {"wall_seconds", &s->wall_seconds},
                {"archive_decades", &s->archive_decades}, {"loss_cap", &s->loss_cap},
                {"alpha_min", &s->alpha_min}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (get_tnum(p, r, path, nums[i].k, var, has, v, nums[i].dst) < 0) return -1;
    /* integers: range first, then the conversion */
    double x;
    int g;
    if ((g = get_tnum(p, r, path, "steps", var, has, v, &x)) < 0) return -1;
    if (g && cli_jint_ok(p, cli_jfield(f, sizeof f, path, "steps", 0), x, 0, RP_MAX_SEED)) return -1;
    if (g) s->max_steps = (long long)x;
    if ((g = get_tnum(p, r, path, "log_points", var, has, v, &x)) < 0) return -1;
    if (g && cli_jint_ok(p, cli_jfield(f, sizeof f, path, "log_points", 0), x, 0, MAX_LOG_POINTS)) return -1;
    if (g) s->log_points = (int)x;
    if ((g = get_tnum(p, r, path, "log_horizon", var, has, v, &x)) < 0) return -1;
    if (g && cli_jint_ok(p, cli_jfield(f, sizeof f, path, "log_horizon", 0), x, 0, RP_MAX_SEED)) return -1;
    if (g) s->log_horizon = (long long)x;
    if (s->log_horizon == 0) s->log_horizon = s->max_steps > 1 ? s->max_steps : 1000000;
    s->checkpoint_every = 0;
    /* image data and epoch runs */
    const char *ts = NULL;
    if (cli_jstr(p, r, path, "test_data", 0, MF_SPEC_LEN - 1, &ts) < 0) return -1;
    if (ts) snprintf(out->test_spec, sizeof out->test_spec, "%s", ts);
    struct {
        const char *k;
        double hi;
    } ints[] = {{"train_limit", 1e9}, {"test_limit", 1e9}, {"data_seed", RP_MAX_SEED},
                {"epochs", RP_MAX_SEED}, {"batch", 1e9}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if ((g = get_tnum(p, r, path, ints[i].k, var, has, v, &x)) < 0) return -1;
        if (!g) continue;
        if (cli_jint_ok(p, cli_jfield(f, sizeof f, path, ints[i].k, 0), x, i == 4 ? 1 : 0, ints[i].hi))
            return -1;
        if (i == 0) out->train_limit = (int)x;
        if (i == 1) out->test_limit = (int)x;
        if (i == 2) out->data_seed = (uint64_t)x;
        if (i == 3) s->max_epochs = (long long)x;
        if (i == 4) s->batch = (int)x;
    }
    if (!cli_jget(r, "data_seed")) out->data_seed = 1;
    double av[MF_MAX_ARCHIVE_EPOCHS];
    int na = 0;
    if (cli_jget(r, "classes")) {
        if (cli_jnumarr(p, r, path, "classes", 2, av, &na) < 0) return -1;
        if (na != 2 || cli_jint_ok(p, cli_jfield(f, sizeof f, path, "classes", 0), av[0], 0, 255) ||
            cli_jint_ok(p, cli_jfield(f, sizeof f, path, "classes", 0), av[1], 0, 255) || av[0] == av[1])
            return cli_jbad(p, cli_jfield(f, sizeof f, path, "classes", 0), "must be two different class indices");
        out->n_classes = 2, out->classes[0] = (int)av[0], out->classes[1] = (int)av[1];
    }
    if (cli_jget(r, "archive_epochs")) {
        if (cli_jnumarr(p, r, path, "archive_epochs", MF_MAX_ARCHIVE_EPOCHS, av, &na) < 0) return -1;
        for (int i = 0; i < na; i++) {
            if (cli_jint_ok(p, cli_jfield(f, sizeof f, path, "archive_epochs", 0), av[i], 0, RP_MAX_SEED))
                return -1;
            s->archive_epochs[i] = (long long)av[i];
        }
        s->n_archive_epochs = na;
    }
    if ((cli_jbool(p, r, path, "snapshots", NULL) < 0)) return -1;
    out->snapshots = cJSON_IsTrue(cli_jget(r, "snapshots"));

    const cJSON *init = cli_jget(r, "init");
    char ip[160];
    cli_jfield(ip, sizeof ip, path, "init", 0);
    if (init && !cJSON_IsObject(init)) return cli_jbad(p, ip, "must be an object");
    if (init && cli_jkeys(p, init, ip, init_keys)) return -1;
    double iseed = 1;
    if (cli_jint(p, init, ip, "seed", 0, 0, RP_MAX_SEED, &iseed) < 0) return -1;
    out->seed = (uint64_t)(has_seed ? seed : iseed);
    s->seed = out->seed;
    const cJSON *params = cli_jget(init, "params");
    out->init_multiply = 1.0;
    out->init_from_index = -1; /* set by expand_runs, which knows the other runs */
    if (get_tnum(p, init, ip, "multiply", var, has, v, &out->init_multiply) < 0) return -1;
    if (!(out->init_multiply > 0)) {
        char fm[200];
        return cli_jbad(p, cli_jfield(fm, sizeof fm, ip, "multiply", 0), "must be > 0, got %g",
                        out->init_multiply);
    }
    const char *from = NULL;
    if (cli_jstr(p, init, ip, "from_run", 0, sizeof out->init_from - 1, &from) < 0) return -1;
    if (from) {
        if (params || cli_jget(init, "kind") || cli_jget(init, "scale"))
            return cli_jbad(p, ip, "\"from_run\" excludes \"params\", \"kind\" and \"scale\"");
        snprintf(out->init_from, sizeof out->init_from, "%s", from);
        snprintf(out->init_kind, sizeof out->init_kind, "file");
        snprintf(out->init_desc, sizeof out->init_desc, "run %s's final parameters x %.6g",
                 out->init_from, out->init_multiply);
    } else if (params) {
        int n = 0;
        if (cli_jnumarr(p, init, ip, "params", 1 << 24, NULL, &n) < 0) return -1;
        out->init_params = calloc((size_t)n + 1, sizeof(double));
        if (!out->init_params) return cli_jbad(p, ip, "out of memory for %d parameters", n);
        cli_jnumarr(p, init, ip, "params", n, out->init_params, &out->n_init);
        snprintf(out->init_desc, sizeof out->init_desc, "params ");
        for (int k = 0; k < n; k++) {
            size_t dl = strlen(out->init_desc);
            if (dl + 1 >= sizeof out->init_desc) break; /* full: a description only */
            snprintf(out->init_desc + dl, sizeof out->init_desc - dl, "%s%.6g", k ? "," : "",
                     out->init_params[k]);
        }
        if (cli_jget(init, "kind") || cli_jget(init, "scale")) {
            free(out->init_params);
            out->init_params = NULL;
            return cli_jbad(p, ip, "\"params\" excludes \"kind\" and \"scale\"");
        }
    } else {
        const char *kind = "gauss";
        if (cli_jstr(p, init, ip, "kind", 0, sizeof out->init_kind - 1, &kind) < 0) return -1;
        if (strcmp(kind, "gauss") && strcmp(kind, "balanced") && strcmp(kind, "he")) {
            char fk[200];
            return cli_jbad(p, cli_jfield(fk, sizeof fk, ip, "kind", 0),
                            "'%s' is not an init kind (gauss, balanced, he)", cli_q(kind));
        }
        snprintf(out->init_kind, sizeof out->init_kind, "%s", kind);
        out->init_scale = 0.1;
        if (get_tnum(p, init, ip, "scale", var, has, v, &out->init_scale) < 0) return -1;
        snprintf(out->init_desc, sizeof out->init_desc, "%s scale %.3g seed %llu", out->init_kind,
                 out->init_scale, (unsigned long long)out->seed);
    }
    if (!from && out->init_multiply != 1.0) {
        size_t dl = strlen(out->init_desc);
        snprintf(out->init_desc + dl, sizeof out->init_desc - dl, " x %.6g", out->init_multiply);
    }
    const char *why = mf_train_settings_validate(s);
    if (why) {
        free(out->init_params);
        out->init_params = NULL;
        return cli_jbad(p, path, "run '%s': %s", out->base, why);
    }
    return 0;
}

int rp_run_parse(cli_jr *p, const cJSON *r, const char *path, rp_run *out) {
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(r)) return cli_jbad(p, path, "must be an object");
    if (cli_jkeys(p, r, path, run_keys)) return -1;
    return make_run(p, r, path, NULL, 0, 0, 0, 0, out);
}

static int cmp_run_name(const void *a, const void *b) {
    const rp_run *x = *(rp_run *const *)a, *y = *(rp_run *const *)b;
    return strcmp(x->name, y->name);
}

/* All runs of a claim: runs x vary values x seeds, at most RP_MAX_RUNS, with
 * unique names. Returns 0 or -1 (message set, nothing allocated). */
static int expand_runs(cli_jr *p, const cJSON *root, rp_run **out, int *n) {
    const cJSON *runs = cli_jget(root, "runs"), *r;
    rp_run *list = NULL;
    double *vals = NULL, *seeds = NULL, init_total = 0;
    int k = 0, ri = -1, rc = -1;
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(runs) || cJSON_GetArraySize(runs) == 0)
        return cli_jbad(p, "runs", "must be a non-empty array of run objects");
    cJSON_ArrayForEach(r, runs) {
        char path[40], f[200];
        snprintf(path, sizeof path, "runs[%d]", ++ri);
        if (!cJSON_IsObject(r)) {
            cli_jbad(p, path, "must be an object");
            goto out;
        }
        if (cli_jkeys(p, r, path, run_keys)) goto out;
        /* vary */
        const cJSON *vary = cli_jget(r, "vary");
        const char *var = NULL;
        int nv = 0, ns = 0;
        free(vals), free(seeds);
        vals = seeds = NULL;
        if (vary) {
            char vp[80];
            cli_jfield(vp, sizeof vp, path, "vary", 0);
            if (!cJSON_IsObject(vary)) {
                cli_jbad(p, vp, "must be an object {\"name\": ..., \"values\": [...]}");
                goto out;
            }
            if (cli_jkeys(p, vary, vp, vary_keys) || cli_jstr(p, vary, vp, "name", 0, 32, &var) < 0)
                goto out;
            if (!var || !var[0]) {
                cli_jbad(p, cli_jfield(f, sizeof f, vp, "name", 0), "is required (1 to 32 characters)");
                goto out;
            }
            const cJSON *va = cli_jget(vary, "values");
            if (!va) {
                cli_jbad(p, cli_jfield(f, sizeof f, vp, "values", 0), "is required");
                goto out;
            }
            int cnt = cJSON_IsArray(va) ? cJSON_GetArraySize(va) : 0;
            if (cnt > RP_MAX_RUNS) {
                cli_jbad(p, cli_jfield(f, sizeof f, vp, "values", 0),
                    "%d values is more than the limit of %d runs per claim", cnt, RP_MAX_RUNS);
                goto out;
            }
            vals = malloc(sizeof *vals * (size_t)(cnt + 1));
            if (!vals) {
                cli_jbad(p, vp, "out of memory");
                goto out;
            }
            if (cli_jnumarr(p, vary, vp, "values", RP_MAX_RUNS, vals, &nv) < 0) goto out;
        }
        /* seeds: a count K (seeds 1..K) or a list */
        const cJSON *sj = cli_jget(r, "seeds");
        cli_jfield(f, sizeof f, path, "seeds", 0);
        if (sj && cJSON_IsNumber(sj)) {
            double K = sj->valuedouble;
            if (K > RP_MAX_RUNS) {
                cli_jbad(p, f, "%.17g seeds is more than the limit of %d runs per claim", K, RP_MAX_RUNS);
                goto out;
            }
            if (cli_jint_ok(p, f, K, 1, RP_MAX_RUNS)) goto out;
            ns = (int)K;
            seeds = malloc(sizeof *seeds * (size_t)ns);
            if (!seeds) {
                cli_jbad(p, f, "out of memory");
                goto out;
            }
            for (int i = 0; i < ns; i++) seeds[i] = i + 1;
        } else if (sj) {
            int cnt = cJSON_IsArray(sj) ? cJSON_GetArraySize(sj) : 0;
            if (!cJSON_IsArray(sj)) {
                cli_jbad(p, f, "must be a count K (seeds 1..K) or a list of seeds");
                goto out;
            }
            if (cnt > RP_MAX_RUNS) {
                cli_jbad(p, f, "%d seeds is more than the limit of %d runs per claim", cnt, RP_MAX_RUNS);
                goto out;
            }
            seeds = malloc(sizeof *seeds * (size_t)(cnt + 1));
            if (!seeds) {
                cli_jbad(p, f, "out of memory");
                goto out;
            }
            if (cli_jnumarr(p, r, path, "seeds", RP_MAX_RUNS, seeds, &ns) < 0) goto out;
            for (int i = 0; i < ns; i++) {
                char fi[220];
                if (cli_jint_ok(p, cli_jfield(fi, sizeof fi, f, NULL, i), seeds[i], 0, RP_MAX_SEED)) goto out;
            }
        }
        double total = (double)k + (double)(nv ? nv : 1) * (ns ? ns : 1);
        if (total > RP_MAX_RUNS) {
            cli_jbad(p, path, "%d vary values x %d seeds makes %.0f runs in the claim, more than the "
                "limit of %d runs per claim", nv ? nv : 1, ns ? ns : 1, total, RP_MAX_RUNS);
            goto out;
        }
        int np = cJSON_IsArray(cli_jget(cli_jget(r, "init"), "params"))
                     ? cJSON_GetArraySize(cli_jget(cli_jget(r, "init"), "params")) : 0;
        init_total += (double)np * (total - k);
        if (init_total > MAX_INIT_VALUES) {
            cli_jbad(p, cli_jfield(f, sizeof f, path, "init.params", 0), "the claim's runs would hold more "
                "than %.0f initial parameter values", MAX_INIT_VALUES);
            goto out;
        }
        rp_run *l2 = realloc(list, sizeof *list * (size_t)total);
        if (!l2) {
            cli_jbad(p, path, "out of memory for %.0f runs", total);
            goto out;
        }
        list = l2;
        for (int iv = 0; iv < (nv ? nv : 1); iv++)
            for (int is = 0; is < (ns ? ns : 1); is++) {
                if (make_run(p, r, path, var, nv > 0, nv ? vals[iv] : 0, ns > 0, ns ? seeds[is] : 0,
                             &list[k]))
                    goto out;
                snprintf(list[k].path, sizeof list[k].path, "%s", path);
                k++;
            }
    }
    /* every run needs its own directory */
    rp_run **by = malloc(sizeof *by * (size_t)k);
    if (!by) {
        cli_jbad(p, "runs", "out of memory");
        goto out;
    }
    for (int i = 0; i < k; i++) by[i] = &list[i];
    qsort(by, (size_t)k, sizeof *by, cmp_run_name);
    for (int i = 1; i < k; i++)
        if (!strcmp(by[i]->name, by[i - 1]->name)) {
            cli_jbad(p, "runs", "two runs expand to the same name '%s' (give each run its own \"name\"; "
                "vary values and seeds must be distinct)", cli_q(by[i]->name));
            free(by);
            goto out;
        }
    free(by);
    /* a run that starts from another's final parameters: that run comes first */
    for (int i = 0; i < k; i++) {
        if (!list[i].init_from[0]) continue;
        int j = 0;
        while (j < i && strcmp(list[j].name, list[i].init_from)) j++;
        if (j == i) {
            char fr[200];
            cli_jbad(p, cli_jfield(fr, sizeof fr, list[i].path, "init.from_run", 0),
                     "'%s' is not an earlier run of the claim (runs train in order; name one "
                     "listed before this one)", cli_q(list[i].init_from));
            goto out;
        }
        list[i].init_from_index = j;
    }
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

/* ------------------------------------------------------------ the file */

static const char *const top_keys[] = {"name",  "title",  "paper",   "reference", "statement",
                                       "paper_result", "gamma_star", "w_ref", "runs", "checks",
                                       "figures", "quick", "comment", NULL};
static const char *const quick_keys[] = {"runs", "checks", "comment", NULL};

/* Merge quick.runs into every run and let quick.checks replace checks
 * (both validated for shape first). */
static int apply_quick(cli_jr *p, cJSON *root, int merge) {
    cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quick");
    if (!q) return 0;
    if (!cJSON_IsObject(q)) return cli_jbad(p, "quick", "must be an object");
    if (cli_jkeys(p, q, "quick", quick_keys)) return -1;
    cJSON *qr = cJSON_GetObjectItemCaseSensitive(q, "runs");
    cJSON *qc = cJSON_GetObjectItemCaseSensitive(q, "checks");
    if (qr && !cJSON_IsObject(qr)) return cli_jbad(p, "quick.runs", "must be an object of run keys");
    if (qr && cli_jkeys(p, qr, "quick.runs", run_keys)) return -1;
    if (qc && !cJSON_IsArray(qc)) return cli_jbad(p, "quick.checks", "must be an array of checks");
    if (!merge) return 0;
    cJSON *runs = cJSON_GetObjectItemCaseSensitive(root, "runs");
    if (qr && cJSON_IsArray(runs)) {
        cJSON *r;
        cJSON_ArrayForEach(r, runs) {
            cJSON *kv;
            if (!cJSON_IsObject(r)) continue; /* reported by expand_runs */
            cJSON_ArrayForEach(kv, qr) {
                cJSON *dup = cJSON_Duplicate(kv, 1);
                if (!dup) return cli_jbad(p, "quick.runs", "out of memory");
                if (cJSON_GetObjectItemCaseSensitive(r, kv->string))
                    cJSON_ReplaceItemInObjectCaseSensitive(r, kv->string, dup);
                else
                    cJSON_AddItemToObject(r, kv->string, dup);
            }
        }
    }
    if (qc) {
        cJSON *dup = cJSON_Duplicate(qc, 1);
        if (!dup) return cli_jbad(p, "quick.checks", "out of memory");
        if (cJSON_GetObjectItemCaseSensitive(root, "checks"))
            cJSON_ReplaceItemInObjectCaseSensitive(root, "checks", dup);
        else
            cJSON_AddItemToObject(root, "checks", dup);
    }
    return 0;
}

static int validate(cli_jr *p, rp_experiment *x, int quick) {
    cJSON *root = x->root;
    if (!cJSON_IsObject(root)) return cli_jbad(p, "(top level)", "must be a JSON object");
    if (cli_jkeys(p, root, "", top_keys)) return -1;
    const char *nm = NULL;
    if (cli_jstr(p, root, "", "name", 0, 127, &nm) < 0 || cli_jstr(p, root, "", "title", 0, 100000, &x->title) < 0 ||
        cli_jstr(p, root, "", "paper", 0, 100000, &x->paper) < 0 ||
        cli_jstr(p, root, "", "reference", 0, 100000, &x->reference) < 0 ||
        cli_jstr(p, root, "", "statement", 0, 100000, &x->statement) < 0 ||
        cli_jstr(p, root, "", "paper_result", 0, 1000, &x->paper_result) < 0 ||
        cli_jstr(p, root, "", "comment", 0, 100000, &nm) < 0)
        return -1;
    if (cli_jnum(p, root, "", "gamma_star", 0, &x->gamma_star) < 0) return -1;
    if (cli_jnumarr(p, root, "", "w_ref", RP_MAX_WREF, x->wref, &x->n_wref) < 0) return -1;
    const cJSON *figs = cli_jget(root, "figures"), *fg;
    if (figs && !cJSON_IsArray(figs)) return cli_jbad(p, "figures", "must be an array of figure kinds");
    cJSON_ArrayForEach(fg, figs) {
        char f[40];
        snprintf(f, sizeof f, "figures[%d]", x->nfigures);
        if (x->nfigures >= RP_MAX_FIGURES) return cli_jbad(p, "figures", "more than %d entries", RP_MAX_FIGURES);
        if (!cJSON_IsString(fg) || !in_list(rp_figure_kinds, fg->valuestring)) {
            char list[256] = "";
            for (int j = 0; rp_figure_kinds[j]; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", rp_figure_kinds[j]);
            }
            return cli_jbad(p, f, "not a figure kind (%s)", list);
        }
        x->figures[x->nfigures++] = fg->valuestring;
    }
    if (apply_quick(p, root, quick)) return -1;
    if (expand_runs(p, root, &x->runs, &x->nruns)) return -1;
    const cJSON *checks = cli_jget(root, "checks"), *ck;
    int nc = cJSON_IsArray(checks) ? cJSON_GetArraySize(checks) : 0;
    if (nc == 0) return cli_jbad(p, "checks", "must be a non-empty array of checks");
    if (nc > RP_MAX_CHECKS) return cli_jbad(p, "checks", "%d checks is more than the limit of %d", nc, RP_MAX_CHECKS);
    x->checks = calloc((size_t)nc, sizeof *x->checks);
    if (!x->checks) return cli_jbad(p, "checks", "out of memory");
    cJSON_ArrayForEach(ck, checks) {
        char path[40];
        snprintf(path, sizeof path, "checks[%d]", x->nchecks);
        if (rp_check_parse(p, ck, path, x->runs, x->nruns, &x->checks[x->nchecks])) return -1;
        x->nchecks++;
    }
    return 0;
}

/* Start *x empty: no runs or checks, empty descriptive strings. */
static void experiment_init(rp_experiment *x) {
    memset(x, 0, sizeof *x);
    x->title = x->paper = x->reference = x->statement = x->paper_result = "";
    x->gamma_star = NAN;
}

int rp_experiment_parse(const char *text, size_t len, const char *file, int quick,
                        rp_experiment *x, char *why, size_t wcap) {
    cli_jr p = {file ? file : "(experiment)", why, wcap, NULL, 0};
    experiment_init(x);
    if (wcap) why[0] = '\0';
    if (len > RP_MAX_FILE)
        return cli_jbad(&p, "(file)", "%zu bytes, beyond the limit of %zu bytes for experiment files",
                        len, RP_MAX_FILE);
    x->root = cli_json_parse(&p, text, len);
    if (!x->root) return -1;
    if (validate(&p, x, quick)) {
        cJSON *root = x->root;
        const char *t = x->title, *pa = x->paper, *re = x->reference, *st = x->statement;
        const char *pr = x->paper_result;
        double gs = x->gamma_star;
        x->root = NULL;
        rp_experiment_free(x);
        x->root = root; /* kept for the descriptive strings */
        x->title = t, x->paper = pa, x->reference = re, x->statement = st;
        x->paper_result = pr;
        x->gamma_star = gs;
        if (!why[0]) snprintf(why, wcap, "%s: invalid", p.file);
        return -1;
    }
    return 0;
}

int rp_experiment_read(const char *path, int quick, rp_experiment *x, char *why, size_t wcap) {
    cli_jr p = {path, why, wcap, NULL, 0};
    size_t n = 0;
    experiment_init(x);
    char *t = cli_jread(&p, path, RP_MAX_FILE, &n);
    if (!t) return -1;
    int rc = rp_experiment_parse(t, n, path, quick, x, why, wcap);
    free(t);
    return rc;
}

int rp_experiment_check_runs(const rp_experiment *x, const char *file, char *why, size_t wcap) {
    cli_jr p = {file ? file : "(experiment)", why, wcap, NULL, 0};
    mf_data *d = NULL;
    const char *loaded = NULL; /* the spec d was loaded from: runs in a row share it */
    for (int i = 0; i < x->nruns && !p.failed; i++) {
        const rp_run *r = &x->runs[i];
        char f[200], w[MF_ERR_LEN];
        mf_err e = {0, ""};
        if (!loaded || strcmp(loaded, r->data_spec)) {
            mf_data_free(d);
            loaded = NULL;
            if (cli_load_data(r->data_spec, NULL, &d, w, sizeof w)) {
                cli_jbad(&p, cli_jfield(f, sizeof f, r->path, "data", 0), "%s", w);
                break;
            }
            loaded = r->data_spec;
        }
        mf_model *m = NULL; /* (the data are loaded once for runs in a row: not cli_load_problem) */
        if (mf_model_parse(r->model_spec, d->d, d->num_classes, &m, &e)) {
            cli_jbad(&p, cli_jfield(f, sizeof f, r->path, "model", 0), "%s", e.msg);
            break;
        }
        if (r->init_params && (size_t)r->n_init != m->n_params)
            cli_jbad(&p, cli_jfield(f, sizeof f, r->path, "init.params", 0),
                     "%d values, but %s on %s has %zu parameters (see marginflow layout)",
                     r->n_init, m->spec, d->desc, m->n_params);
        mf_model_free(m);
    }
    mf_data_free(d);
    return p.failed ? -1 : 0;
}

void rp_experiment_free(rp_experiment *x) {
    if (!x) return;
    rp_runs_free(x->runs, x->nruns);
    free(x->checks);
    cJSON_Delete(x->root);
    experiment_init(x);
}

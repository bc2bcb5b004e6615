/*
 * grid.c -- reading, validating and expanding the grid files of `marginflow
 * sweep` (format: docs/sweeps.md; interface and the id contract: grid.h).
 *
 * A grid file is user input (hand-written, generated, copied between
 * clusters), so nothing in it is trusted, and nothing runs before all of it
 * has been checked: known keys only (each once), finite numbers, integers
 * in range before any conversion, axis names that are identifiers and not
 * result columns, every "{name}" template of the base naming an axis and
 * every axis used by the base, at most GRID_MAX_POINTS points, every point
 * a valid run (the claim parser's checks, rp_run_parse) and no two points
 * with the same settings. Refusals are one sentence naming file and field.
 */
#define _XOPEN_SOURCE 700
#include "grid.h"
#include "rundir.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEED 9007199254740992.0 /* 2^53 */
#define MAX_STRING 100000           /* bytes of a base string after substitution */

const char *const grid_columns[] = {
    "steps", "log10_time", "log10_loss", "norm", "q_min", "normalized_margin",
    "smoothed_margin", "layer_margin", "train_error", "balancedness", "eps", "delta",
    "ll_eps", "n_kinks", "gamma_star", "ratio", "wall_seconds", NULL};

/* results.csv columns besides the axes and grid_columns */
static const char *const fixed_columns[] = {"index", "id", "status", "outcome", "verdict",
                                            "class", NULL};

static const char *const top_keys[] = {"name", "title", "paper", "reference", "statement",
                                       "comment", "base", "axes", "checkpoint_every", "analyze",
                                       "gamma_star", "class_tol", "figures", NULL};
static const char *const axis_keys[] = {"name", "values", "range", "logrange", "seeds",
                                        "comment", NULL};
static const char *const range_keys[] = {"from", "to", "num", "comment", NULL};
static const char *const analyze_keys[] = {"local_trials", "kkt_tol", "act_tol", "zero_tol",
                                           "global_tol", "seed", "comment", NULL};
static const char *const figure_keys[] = {"kind", "of", "x", "y", "group", "xscale", "title",
                                          "points", "comment", NULL};
static const char *const fraction_of[] = {"class", "verdict", "outcome", NULL};
static const char *const xscales[] = {"auto", "linear", "log", "ln-inverse", NULL};

static int in_list(const char *const *list, const char *s) {
    for (; *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
}

/* "a, b, c" of a NULL-terminated list into buf. */
static const char *list_text(char *buf, size_t cap, const char *const *list) {
    buf[0] = '\0';
    for (int i = 0; list[i]; i++) cli_cat(buf, cap, "%s%s", i ? ", " : "", list[i]);
    return buf;
}

void grid_num_text(char *b, size_t cap, double v) {
    if (v == floor(v) && fabs(v) < MAX_SEED) { /* integers as integers: width=10, not 1e+01 */
        snprintf(b, cap, "%.0f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(b, cap, "%.*g", p, v);
        if (strtod(b, NULL) == v) return;
    }
}

/* v rounded to 15 significant digits (range values: 0.1 steps give 0.3,
 * 10^(-3) is the double nearest 0.001). */
static double round15(double v) {
    char b[40];
    snprintf(b, sizeof b, "%.15g", v);
    return strtod(b, NULL);
}

/* ------------------------------------------------------------ templates */

/* The length of the identifier of a template "{ident}" starting at s, or 0. */
static size_t template_at(const char *s) {
    if (s[0] != '{' || !(isalpha((unsigned char)s[1]) || s[1] == '_')) return 0;
    size_t k = 1;
    while (isalnum((unsigned char)s[k]) || s[k] == '_') k++;
    return s[k] == '}' ? k - 1 : 0;
}

/* The axis named s[0..len), or -1. */
static int axis_n(const sweep_grid *g, const char *s, size_t len) {
    for (int a = 0; a < g->naxes; a++)
        if (strlen(g->axes[a].name) == len && !strncmp(g->axes[a].name, s, len)) return a;
    return -1;
}

int grid_axis_find(const sweep_grid *g, const char *name) {
    return axis_n(g, name, strlen(name));
}

/* Check every template in the strings under node (at path): it must name an
 * axis; used[a] counts the uses of axis a. Returns 0 or -1 (why set). */
static int scan_templates(cli_jr *p, const sweep_grid *g, const cJSON *node, const char *path,
                          int *used) {
    int k = 0;
    for (const cJSON *c = node->child; c; c = c->next, k++) {
        char f[256];
        if (c->string) cli_jfield(f, sizeof f, path, c->string, 0);
        else cli_jfield(f, sizeof f, path, NULL, k);
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            if (scan_templates(p, g, c, f, used)) return -1;
            continue;
        }
        if (!cJSON_IsString(c)) continue;
        for (const char *s = c->valuestring; *s; s++) {
            size_t l = template_at(s);
            if (!l) continue;
            int a = axis_n(g, s + 1, l);
            if (a < 0) {
                char names[512] = "";
                for (int b = 0; b < g->naxes; b++)
                    cli_cat(names, sizeof names, "%s%s", b ? ", " : "", g->axes[b].name);
                return cli_jbad(p, f, "'{%.*s}' names no axis (axes: %s)", (int)l, s + 1,
                                names[0] ? names : "none");
            }
            used[a]++;
        }
    }
    return 0;
}

void grid_value_text(const sweep_grid *g, int i, int a, char *buf, size_t cap) {
    const grid_axis *ax = &g->axes[a];
    int k = g->vidx[(size_t)i * (size_t)g->naxes + (size_t)a];
    if (ax->str) cli_fmt(buf, cap, "%s", ax->str[k]);
    else grid_num_text(buf, cap, ax->num[k]);
}

void grid_point_desc(const sweep_grid *g, int i, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int a = 0; a < g->naxes; a++) {
        char v[64];
        grid_value_text(g, i, a, v, sizeof v);
        cli_cat(buf, cap, "%s%s=%s", a ? ", " : "", g->axes[a].name, v);
    }
}

/* src with every "{axis}" replaced by point i's value; malloc'd (cJSON's
 * allocator), NULL when out of memory or longer than MAX_STRING. */
static char *subst_string(const sweep_grid *g, int i, const char *src) {
    size_t cap = strlen(src) + 1, o = 0;
    char *out = cJSON_malloc(cap);
    for (const char *s = src; out && *s;) {
        char v[256];
        const char *piece = s;
        size_t pl = 1, l = template_at(s);
        int a = l ? axis_n(g, s + 1, l) : -1;
        if (a >= 0) {
            grid_value_text(g, i, a, v, sizeof v);
            piece = v, pl = strlen(v);
            s += l + 2;
        } else {
            s++;
        }
        if (o + pl + 1 > cap) {
            size_t nc = 2 * (o + pl + 1);
            char *n2 = nc <= MAX_STRING + 1 ? cJSON_malloc(nc) : NULL;
            if (n2) memcpy(n2, out, o);
            cJSON_free(out);
            out = n2, cap = nc;
            if (!out) break;
        }
        memcpy(out + o, piece, pl);
        o += pl;
    }
    if (out) out[o] = '\0';
    return out;
}

/* Substitute point i's values in every string under node, in place. A
 * string that is exactly "{axis}" of a numeric axis becomes that number
 * (so integer fields such as init.seed take templates). Returns 0 or -1
 * (out of memory or too long). */
static int subst_tree(const sweep_grid *g, int i, cJSON *node) {
    for (cJSON *c = node->child; c; c = c->next) {
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            if (subst_tree(g, i, c)) return -1;
            continue;
        }
        if (!cJSON_IsString(c) || !strchr(c->valuestring, '{')) continue;
        const char *s = c->valuestring;
        size_t l = template_at(s);
        int a = l ? axis_n(g, s + 1, l) : -1;
        if (a >= 0 && s[l + 2] == '\0' && g->axes[a].num) {
            double v = g->axes[a].num[g->vidx[(size_t)i * (size_t)g->naxes + (size_t)a]];
            cJSON_free(c->valuestring);
            c->valuestring = NULL;
            c->type = cJSON_Number;
            cJSON_SetNumberHelper(c, v);
            continue;
        }
        char *ns = subst_string(g, i, s);
        if (!ns) return -1;
        cJSON_free(c->valuestring);
        c->valuestring = ns;
    }
    return 0;
}

/* ------------------------------------------------------------ points */

int grid_point(const sweep_grid *g, int i, rp_run *out, char *why, size_t cap) {
    cli_jr p = {g->file ? g->file : "(grid)", why, cap, NULL, 0};
    memset(out, 0, sizeof *out);
    cJSON *t = cJSON_Duplicate(g->base, 1);
    if (!t || subst_tree(g, i, t)) {
        cJSON_Delete(t);
        return cli_jbad(&p, "base", "out of memory, or a string longer than %d bytes after "
                        "substituting the axes", MAX_STRING);
    }
    for (int a = 0; a < g->naxes; a++) {
        if (!g->axes[a].seeds) continue;
        double v = g->axes[a].num[g->vidx[(size_t)i * (size_t)g->naxes + (size_t)a]];
        cJSON *init = cJSON_GetObjectItemCaseSensitive(t, "init");
        if (!init) init = cJSON_AddObjectToObject(t, "init");
        if (!cJSON_IsObject(init)) break; /* rp_run_parse says so */
        cJSON *num = cJSON_CreateNumber(v);
        if (!num) break;
        if (cJSON_GetObjectItemCaseSensitive(init, "seed"))
            cJSON_ReplaceItemInObjectCaseSensitive(init, "seed", num);
        else
            cJSON_AddItemToObject(init, "seed", num);
    }
    int rc = rp_run_parse(&p, t, "base", out);
    cJSON_Delete(t);
    if (rc) {
        char d[512];
        grid_point_desc(g, i, d, sizeof d);
        if (cap) cli_cat(why, cap, " (point %d: %s)", i, d);
        return -1;
    }
    if (out->init_from[0]) {
        free(out->init_params);
        out->init_params = NULL;
        return cli_jbad(&p, "base.init.from_run", "applies to claims only (a sweep point has no "
                        "earlier run)");
    }
    out->s.checkpoint_every = g->checkpoint_every;
    return 0;
}

cJSON *grid_identity(const sweep_grid *g, const rp_run *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cli_json_str(o, "data", r->data_spec);
    cli_json_str(o, "model", r->model_spec);
    cJSON *ij = cJSON_AddObjectToObject(o, "init");
    if (ij && r->init_params) {
        cli_json_str(ij, "kind", "params");
        cli_json_num_array(ij, "params", r->init_params, r->n_init);
    } else if (ij) {
        cli_json_str(ij, "kind", r->init_kind);
        cli_json_num(ij, "scale", r->init_scale);
    }
    if (ij && r->init_multiply != 1.0) cli_json_num(ij, "multiply", r->init_multiply);
    cJSON *sj = run_settings_json(&r->s, 1);
    if (!sj || !cJSON_AddItemToObject(o, "settings", sj)) {
        cJSON_Delete(sj);
        cJSON_Delete(o);
        return NULL;
    }
    if (!g->analyze) {
        cJSON_AddFalseToObject(o, "analyze");
        return o;
    }
    cJSON *aj = cJSON_AddObjectToObject(o, "analyze");
    if (aj) {
        cli_json_num(aj, "kkt_tol", g->as.kkt_tol);
        cli_json_num(aj, "act_tol", g->as.act_tol);
        cli_json_num(aj, "zero_tol", g->as.zero_tol);
        cli_json_num(aj, "global_tol", g->as.global_tol);
        cli_json_num(aj, "hess_h", g->as.hess_h);
        cli_json_int(aj, "local_trials", g->as.local_trials);
        cli_json_int(aj, "seed", (long long)g->as.seed);
        cli_json_int(aj, "max_patterns", g->as.max_patterns);
    }
    return o;
}

/* FNV-1a, 64 bits (Fowler, Noll & Vo: offset basis 14695981039346656037,
 * prime 1099511628211) of the NUL-terminated text. */
static uint64_t fnv1a64(const char *s) {
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Expand every point: value indices, run, id. Returns 0 or -1. */
static int expand(cli_jr *p, sweep_grid *g) {
    size_t n = (size_t)g->npoints, na = (size_t)g->naxes;
    g->vidx = calloc(n * (na ? na : 1), sizeof *g->vidx);
    g->ids = calloc(n, sizeof *g->ids);
    if (!g->vidx || !g->ids) return cli_jbad(p, "axes", "out of memory for %zu points", n);
    for (size_t i = 0; i < n; i++) {
        size_t rest = i;
        for (size_t a = na; a-- > 0;) {
            g->vidx[i * na + a] = (int)(rest % (size_t)g->axes[a].n);
            rest /= (size_t)g->axes[a].n;
        }
        rp_run r;
        if (grid_point(g, (int)i, &r, p->why, p->cap)) {
            p->failed = 1;
            return -1;
        }
        cJSON *id = grid_identity(g, &r);
        char *text = id ? cJSON_PrintUnformatted(id) : NULL;
        free(r.init_params);
        cJSON_Delete(id);
        if (!text) return cli_jbad(p, "axes", "out of memory");
        snprintf(g->ids[i], GRID_ID_LEN, "%016llx", (unsigned long long)fnv1a64(text));
        cJSON_free(text);
    }
    return 0;
}

static const sweep_grid *g_sort; /* qsort has no context argument */

static int cmp_point(const void *a, const void *b) {
    return strcmp(g_sort->ids[*(const int *)a], g_sort->ids[*(const int *)b]);
}

/* No two points with one id (one identity: an axis value that changes
 * nothing, or two values that are equal). Returns 0 or -1. */
static int unique_ids(cli_jr *p, const sweep_grid *g) {
    int *ord = malloc(sizeof *ord * (size_t)(g->npoints + 1));
    if (!ord) return cli_jbad(p, "axes", "out of memory");
    for (int i = 0; i < g->npoints; i++) ord[i] = i;
    g_sort = g;
    qsort(ord, (size_t)g->npoints, sizeof *ord, cmp_point);
    int rc = 0;
    for (int k = 1; k < g->npoints && !rc; k++) {
        int i = ord[k - 1] < ord[k] ? ord[k - 1] : ord[k], j = ord[k - 1] ^ ord[k] ^ i;
        if (strcmp(g->ids[i], g->ids[j])) continue;
        char di[512], dj[512];
        grid_point_desc(g, i, di, sizeof di);
        grid_point_desc(g, j, dj, sizeof dj);
        rc = cli_jbad(p, "axes", "points %d (%s) and %d (%s) have the same settings (id %s): "
                      "repeated axis values, or an axis value that changes nothing",
                      i, di, j, dj, g->ids[i]);
    }
    free(ord);
    return rc;
}

/* ------------------------------------------------------------ parsing */

/* An axis name: an identifier of at most 32 characters, not a result column,
 * not taken. Returns 0 or -1. */
static int check_axis_name(cli_jr *p, const sweep_grid *g, const char *f, const char *name) {
    size_t l = strlen(name);
    int ok = l >= 1 && l <= 32 && (isalpha((unsigned char)name[0]) || name[0] == '_');
    for (size_t k = 1; ok && k < l; k++) ok = isalnum((unsigned char)name[k]) || name[k] == '_';
    if (!ok)
        return cli_jbad(p, f, "'%s' is not a name (1 to 32 letters, digits or '_', not starting "
                        "with a digit)", name);
    if (in_list(fixed_columns, name) || in_list(grid_columns, name))
        return cli_jbad(p, f, "'%s' is a column of results.csv; call the axis otherwise", name);
    if (grid_axis_find(g, name) >= 0) return cli_jbad(p, f, "two axes are called '%s'", name);
    return 0;
}

/* "range" / "logrange": {"from", "to", "num"} into ax->num. */
static int parse_range(cli_jr *p, const cJSON *rj, const char *f, int logr, grid_axis *ax) {
    double from = NAN, to = NAN, num = NAN;
    char ff[240];
    if (!cJSON_IsObject(rj))
        return cli_jbad(p, f, "must be an object {\"from\": x, \"to\": y, \"num\": n}");
    if (cli_jkeys(p, rj, f, range_keys) || cli_jnum(p, rj, f, "from", CLI_J_REQUIRED, &from) < 0 ||
        cli_jnum(p, rj, f, "to", CLI_J_REQUIRED, &to) < 0 ||
        cli_jint(p, rj, f, "num", CLI_J_REQUIRED, 1, GRID_MAX_VALUES, &num) < 0)
        return -1;
    if (logr && !(from > 0))
        return cli_jbad(p, cli_jfield(ff, sizeof ff, f, "from", 0), "must be > 0 for a logrange");
    if (logr && !(to > 0))
        return cli_jbad(p, cli_jfield(ff, sizeof ff, f, "to", 0), "must be > 0 for a logrange");
    ax->n = (int)num;
    ax->num = malloc(sizeof *ax->num * (size_t)ax->n);
    if (!ax->num) return cli_jbad(p, f, "out of memory");
    double l0 = logr ? log10(from) : from, l1 = logr ? log10(to) : to;
    for (int k = 0; k < ax->n; k++) {
        double u = ax->n > 1 ? (double)k / (ax->n - 1) : 0;
        double v = k == 0 ? l0 : k == ax->n - 1 ? l1 : l0 + (l1 - l0) * u;
        ax->num[k] = k == 0 ? from : k == ax->n - 1 ? to : round15(logr ? pow(10.0, v) : v);
        if (!isfinite(ax->num[k])) return cli_jbad(p, f, "value %d is not finite", k);
    }
    return 0;
}

/* "seeds": K (seeds 1..K) or a list of integers in [0, 2^53]. */
static int parse_seeds(cli_jr *p, const cJSON *sj, const char *f, grid_axis *ax) {
    char fi[240];
    if (cJSON_IsNumber(sj)) {
        if (cli_jint_ok(p, f, sj->valuedouble, 1, GRID_MAX_VALUES)) return -1;
        ax->n = (int)sj->valuedouble;
        ax->num = malloc(sizeof *ax->num * (size_t)ax->n);
        if (!ax->num) return cli_jbad(p, f, "out of memory");
        for (int k = 0; k < ax->n; k++) ax->num[k] = k + 1;
        return 0;
    }
    if (!cJSON_IsArray(sj)) return cli_jbad(p, f, "must be a count K (seeds 1..K) or a list of seeds");
    int cnt = cJSON_GetArraySize(sj);
    if (cnt < 1 || cnt > GRID_MAX_VALUES)
        return cli_jbad(p, f, "must hold 1 to %d seeds", GRID_MAX_VALUES);
    ax->num = malloc(sizeof *ax->num * (size_t)cnt);
    if (!ax->num) return cli_jbad(p, f, "out of memory");
    const cJSON *v;
    cJSON_ArrayForEach(v, sj) {
        cli_jfield(fi, sizeof fi, f, NULL, ax->n);
        if (!cJSON_IsNumber(v)) return cli_jbad(p, fi, "must be an integer seed");
        if (cli_jint_ok(p, fi, v->valuedouble, 0, MAX_SEED)) return -1;
        ax->num[ax->n++] = v->valuedouble;
    }
    return 0;
}

/* "values": a list of numbers or a list of strings. */
static int parse_values(cli_jr *p, const cJSON *vj, const char *f, grid_axis *ax) {
    char fi[240];
    int cnt = cJSON_IsArray(vj) ? cJSON_GetArraySize(vj) : 0;
    if (!cJSON_IsArray(vj) || cnt < 1 || cnt > GRID_MAX_VALUES)
        return cli_jbad(p, f, "must be a list of 1 to %d numbers or strings", GRID_MAX_VALUES);
    int strs = cJSON_IsString(vj->child);
    if (strs) ax->str = malloc(sizeof *ax->str * (size_t)cnt);
    else ax->num = malloc(sizeof *ax->num * (size_t)cnt);
    if (!ax->str && !ax->num) return cli_jbad(p, f, "out of memory");
    const cJSON *v;
    cJSON_ArrayForEach(v, vj) {
        cli_jfield(fi, sizeof fi, f, NULL, ax->n);
        if (strs) {
            if (!cJSON_IsString(v)) return cli_jbad(p, fi, "must be a string like values[0]");
            if (!v->valuestring[0] || strlen(v->valuestring) > 200)
                return cli_jbad(p, fi, "must be 1 to 200 characters");
            for (const char *c = v->valuestring; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == '"' || *c == ',' || *c == '\\')
                    return cli_jbad(p, fi, "must not hold control characters, '\"', ',' or '\\'");
            ax->str[ax->n++] = v->valuestring;
        } else {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
                return cli_jbad(p, fi, "must be a finite number like values[0]");
            ax->num[ax->n++] = v->valuedouble;
        }
    }
    return 0;
}

static int parse_axes(cli_jr *p, sweep_grid *g) {
    const cJSON *axes = cli_jget(g->root, "axes"), *aj;
    int cnt = cJSON_IsArray(axes) ? cJSON_GetArraySize(axes) : 0;
    if (!cJSON_IsArray(axes) || cnt < 1)
        return cli_jbad(p, "axes", "must be a non-empty list of axes {\"name\": ..., \"values\": [...]}");
    if (cnt > GRID_MAX_AXES) return cli_jbad(p, "axes", "more than %d axes", GRID_MAX_AXES);
    double total = 1;
    int nseeds = 0;
    cJSON_ArrayForEach(aj, axes) {
        char path[40], f[120];
        snprintf(path, sizeof path, "axes[%d]", g->naxes);
        grid_axis *ax = &g->axes[g->naxes];
        if (!cJSON_IsObject(aj)) return cli_jbad(p, path, "must be an object");
        if (cli_jkeys(p, aj, path, axis_keys)) return -1;
        const char *name = NULL;
        if (cli_jstr(p, aj, path, "name", CLI_J_REQUIRED, 64, &name) < 0) return -1;
        if (check_axis_name(p, g, cli_jfield(f, sizeof f, path, "name", 0), name)) return -1;
        const char *kinds[] = {"values", "range", "logrange", "seeds"};
        int which = -1;
        for (int k = 0; k < 4; k++)
            if (cli_jget(aj, kinds[k])) {
                if (which >= 0)
                    return cli_jbad(p, path, "give one of values, range, logrange, seeds (not "
                                    "both %s and %s)", kinds[which], kinds[k]);
                which = k;
            }
        if (which < 0) return cli_jbad(p, path, "needs one of values, range, logrange, seeds");
        g->naxes++; /* from here on grid_free releases its values */
        ax->name = name;
        cli_jfield(f, sizeof f, path, kinds[which], 0);
        const cJSON *vj = cli_jget(aj, kinds[which]);
        int rc = which == 0 ? parse_values(p, vj, f, ax)
                 : which == 3 ? parse_seeds(p, vj, f, ax)
                              : parse_range(p, vj, f, which == 2, ax);
        if (rc) return -1;
        ax->seeds = which == 3;
        if (ax->seeds && ++nseeds > 1) return cli_jbad(p, path, "only one axis may give seeds");
        total *= ax->n;
        if (total > g->max_points)
            return cli_jbad(p, "axes", "the grid has more than %d points (%.17g with axes[0..%d])",
                            g->max_points, total, g->naxes - 1);
    }
    g->npoints = (int)total;
    return 0;
}

/* "analyze": absent (defaults), false (off) or an object of settings. */
static int parse_analyze(cli_jr *p, sweep_grid *g) {
    const cJSON *aj = cli_jget(g->root, "analyze");
    double x;
    mf_analyze_settings_default(&g->as);
    g->analyze = !cJSON_IsFalse(aj);
    if (!aj || cJSON_IsBool(aj)) return 0;
    if (!cJSON_IsObject(aj)) return cli_jbad(p, "analyze", "must be false or an object of settings");
    if (cli_jkeys(p, aj, "analyze", analyze_keys)) return -1;
    if (cli_jint(p, aj, "analyze", "local_trials", 0, 0, 100000, &x) < 0) return -1;
    if (cli_jget(aj, "local_trials")) g->as.local_trials = (int)x;
    if (cli_jint(p, aj, "analyze", "seed", 0, 0, MAX_SEED, &x) < 0) return -1;
    if (cli_jget(aj, "seed")) g->as.seed = (uint64_t)x;
    if (cli_jnum(p, aj, "analyze", "kkt_tol", 0, &g->as.kkt_tol) < 0 ||
        cli_jnum(p, aj, "analyze", "act_tol", 0, &g->as.act_tol) < 0 ||
        cli_jnum(p, aj, "analyze", "zero_tol", 0, &g->as.zero_tol) < 0 ||
        cli_jnum(p, aj, "analyze", "global_tol", 0, &g->as.global_tol) < 0)
        return -1;
    const char *why = mf_analyze_settings_validate(&g->as);
    return why ? cli_jbad(p, "analyze", "%s", why) : 0;
}

/* An axis named by figure field key (required or not); *out the name. */
static int figure_axis(cli_jr *p, const sweep_grid *g, const cJSON *fj, const char *path,
                       const char *key, int required, const char **out) {
    char f[120], names[512] = "";
    if (cli_jstr(p, fj, path, key, required ? CLI_J_REQUIRED : 0, 64, out) < 0) return -1;
    if (!*out || grid_axis_find(g, *out) >= 0) return 0;
    for (int b = 0; b < g->naxes; b++)
        cli_cat(names, sizeof names, "%s%s", b ? ", " : "", g->axes[b].name);
    return cli_jbad(p, cli_jfield(f, sizeof f, path, key, 0), "'%s' is not an axis (axes: %s)",
                    *out, names);
}

static int parse_figures(cli_jr *p, sweep_grid *g) {
    const cJSON *figs = cli_jget(g->root, "figures"), *fj;
    char list[512], f[120];
    if (!figs) { /* default: the classes against the first axis that is not seeds */
        for (int a = 0; a < g->naxes && !g->nfigures; a++)
            if (!g->axes[a].seeds) {
                grid_figure *fg = &g->figures[g->nfigures++];
                memset(fg, 0, sizeof *fg);
                fg->kind = "fractions", fg->of = "class", fg->x = g->axes[a].name;
            }
        return 0;
    }
    if (!cJSON_IsArray(figs)) return cli_jbad(p, "figures", "must be a list of figure objects");
    cJSON_ArrayForEach(fj, figs) {
        char path[40];
        snprintf(path, sizeof path, "figures[%d]", g->nfigures);
        if (g->nfigures >= GRID_MAX_FIGURES)
            return cli_jbad(p, "figures", "more than %d figures", GRID_MAX_FIGURES);
        grid_figure *fg = &g->figures[g->nfigures];
        memset(fg, 0, sizeof *fg);
        if (!cJSON_IsObject(fj)) return cli_jbad(p, path, "must be an object");
        if (cli_jkeys(p, fj, path, figure_keys)) return -1;
        const char *xs = "auto";
        if (cli_jstr(p, fj, path, "kind", CLI_J_REQUIRED, 64, &fg->kind) < 0 ||
            cli_jstr(p, fj, path, "title", 0, 200, &fg->title) < 0 ||
            cli_jstr(p, fj, path, "xscale", 0, 64, &xs) < 0 ||
            figure_axis(p, g, fj, path, "x", 1, &fg->x) < 0 ||
            figure_axis(p, g, fj, path, "group", 0, &fg->group) < 0)
            return -1;
        cli_jfield(f, sizeof f, path, "kind", 0);
        int fr = !strcmp(fg->kind, "fractions");
        if (!fr && strcmp(fg->kind, "metric"))
            return cli_jbad(p, f, "unknown figure kind '%s' (fractions, metric)", fg->kind);
        for (int k = 0; xscales[k]; k++)
            if (!strcmp(xs, xscales[k])) fg->xscale = k;
        if (strcmp(xs, xscales[fg->xscale]))
            return cli_jbad(p, cli_jfield(f, sizeof f, path, "xscale", 0), "unknown scale '%s' (%s)",
                            xs, list_text(list, sizeof list, xscales));
        const grid_axis *xa = &g->axes[grid_axis_find(g, fg->x)];
        if (fg->xscale >= GRID_X_LOG)
            for (int k = 0; k < xa->n; k++)
                if (!xa->num || !(xa->num[k] > 0))
                    return cli_jbad(p, cli_jfield(f, sizeof f, path, "xscale", 0),
                                    "%s needs an axis of positive numbers ('%s' is not)", xs, fg->x);
        if (fg->group && !strcmp(fg->group, fg->x))
            return cli_jbad(p, cli_jfield(f, sizeof f, path, "group", 0), "must differ from x");
        if (fr) {
            fg->of = "class";
            if (cli_jget(fj, "y"))
                return cli_jbad(p, cli_jfield(f, sizeof f, path, "y", 0), "not used by fractions");
            if (fg->group)
                return cli_jbad(p, cli_jfield(f, sizeof f, path, "group", 0), "not used by fractions");
            if (cli_jstr(p, fj, path, "of", 0, 64, &fg->of) < 0) return -1;
            if (!in_list(fraction_of, fg->of))
                return cli_jbad(p, cli_jfield(f, sizeof f, path, "of", 0), "unknown '%s' (%s)", fg->of,
                                list_text(list, sizeof list, fraction_of));
            if (cli_jget(fj, "points"))
                return cli_jbad(p, cli_jfield(f, sizeof f, path, "points", 0), "not used by fractions");
        } else {
            if (cli_jget(fj, "of"))
                return cli_jbad(p, cli_jfield(f, sizeof f, path, "of", 0), "not used by metric");
            if (cli_jbool(p, fj, path, "points", &fg->points) < 0) return -1;
            if (cli_jstr(p, fj, path, "y", CLI_J_REQUIRED, 64, &fg->y) < 0) return -1;
            if (!in_list(grid_columns, fg->y))
                return cli_jbad(p, cli_jfield(f, sizeof f, path, "y", 0), "'%s' is not a numeric "
                                "column (%s)", fg->y, list_text(list, sizeof list, grid_columns));
        }
        g->nfigures++;
    }
    return 0;
}

/* The base run object: an object without "seeds" / "vary" (axes replace
 * them) whose templates all name axes, every axis but seeds used. */
static int check_base(cli_jr *p, sweep_grid *g) {
    g->base = cli_jget(g->root, "base");
    if (!cJSON_IsObject(g->base))
        return cli_jbad(p, "base", "is required: a run object (data, model, init, loss, ...)");
    if (cli_jget(g->base, "seeds"))
        return cli_jbad(p, "base.seeds", "give seeds as an axis {\"name\": \"seed\", \"seeds\": K}");
    if (cli_jget(g->base, "vary"))
        return cli_jbad(p, "base.vary", "give varied values as axes (\"{name}\" in the base)");
    int used[GRID_MAX_AXES] = {0};
    if (scan_templates(p, g, g->base, "base", used)) return -1;
    for (int a = 0; a < g->naxes; a++)
        if (!used[a] && !g->axes[a].seeds) {
            char f[40];
            snprintf(f, sizeof f, "axes[%d]", a);
            return cli_jbad(p, f, "no \"{%s}\" in base: the axis '%s' would change nothing",
                            g->axes[a].name, g->axes[a].name);
        }
    return 0;
}

static int validate(cli_jr *p, sweep_grid *g) {
    const cJSON *root = g->root;
    double x;
    if (!cJSON_IsObject(root)) return cli_jbad(p, "(top level)", "must be a JSON object");
    if (cli_jkeys(p, root, "", top_keys)) return -1;
    const char *skip = NULL;
    if (cli_jstr(p, root, "", "name", 0, 64, &g->name) < 0 ||
        cli_jstr(p, root, "", "title", 0, 1000, &g->title) < 0 ||
        cli_jstr(p, root, "", "paper", 0, 100000, &g->paper) < 0 ||
        cli_jstr(p, root, "", "reference", 0, 100000, &skip) < 0 ||
        cli_jstr(p, root, "", "statement", 0, 100000, &g->statement) < 0 ||
        cli_jstr(p, root, "", "comment", 0, 100000, &skip) < 0)
        return -1;
    for (const char *c = g->name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
            return cli_jbad(p, "name", "'%s': use letters, digits, '-', '_' and '.' only", g->name);
    if (cli_jint(p, root, "", "checkpoint_every", 0, 0, MAX_SEED, &x) < 0) return -1;
    if (cli_jget(root, "checkpoint_every")) g->checkpoint_every = (long long)x;
    if (cli_jnum(p, root, "", "gamma_star", 0, &g->gamma_star) < 0) return -1;
    if (cli_jget(root, "gamma_star") && !(g->gamma_star > 0))
        return cli_jbad(p, "gamma_star", "must be > 0");
    if (cli_jnum(p, root, "", "class_tol", 0, &g->class_tol) < 0) return -1;
    if (!(g->class_tol > 0 && g->class_tol < 1)) return cli_jbad(p, "class_tol", "must be in (0, 1)");
    if (parse_axes(p, g) || check_base(p, g) || parse_analyze(p, g) || parse_figures(p, g))
        return -1;
    if (expand(p, g) || unique_ids(p, g)) return -1;
    return 0;
}

static void grid_init(sweep_grid *g) {
    memset(g, 0, sizeof *g);
    g->name = g->title = g->paper = g->statement = "";
    g->gamma_star = NAN;
    g->class_tol = 0.01;
    g->checkpoint_every = 100000;
}

int grid_parse(const char *text, size_t len, const char *file, int max_points, sweep_grid *g,
               char *why, size_t cap) {
    grid_init(g);
    g->max_points = max_points > 0 && max_points < GRID_MAX_POINTS ? max_points : GRID_MAX_POINTS;
    if (cap) why[0] = '\0';
    g->file = malloc(strlen(file ? file : "(grid)") + 1);
    cli_jr p = {g->file ? g->file : "(grid)", why, cap, NULL, 0};
    if (!g->file) return cli_jbad(&p, "(file)", "out of memory");
    strcpy(g->file, file ? file : "(grid)");
    if (len > GRID_MAX_FILE) return cli_jbad(&p, "(file)", "larger than %zu bytes", GRID_MAX_FILE);
    g->root = cli_json_parse(&p, text, len);
    if (!g->root) return -1;
    if (validate(&p, g)) {
        if (cap && !why[0]) cli_fmt(why, cap, "%s: invalid", p.file);
        return -1;
    }
    return 0;
}

int grid_read(const char *path, sweep_grid *g, char *why, size_t cap) {
    cli_jr p = {path, why, cap, NULL, 0};
    size_t n = 0;
    grid_init(g);
    char *t = cli_jread(&p, path, GRID_MAX_FILE, &n);
    if (!t) return -1;
    int rc = grid_parse(t, n, path, 0, g, why, cap);
    free(t);
    return rc;
}

/* ------------------------------------------------------------ run checks */

/* The data sets of a grid, loaded once per distinct spec. */
typedef struct data_cache {
    int n, cap;
    char **spec;
    mf_data **data;
} data_cache;

static void cache_free(data_cache *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->spec[i]);
        mf_data_free(c->data[i]);
    }
    free(c->spec);
    free(c->data);
}

/* The data of spec (loaded on first use); NULL with e filled. */
static const mf_data *cache_get(data_cache *c, const char *spec, mf_err *e) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->spec[i], spec)) return c->data[i];
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 8;
        char **s2 = realloc(c->spec, sizeof *s2 * (size_t)nc);
        if (s2) c->spec = s2;
        mf_data **d2 = s2 ? realloc(c->data, sizeof *d2 * (size_t)nc) : NULL;
        if (d2) c->data = d2;
        if (!s2 || !d2) {
            cli_fmt(e->msg, sizeof e->msg, "out of memory");
            return NULL;
        }
        c->cap = nc;
    }
    mf_data *d = NULL;
    if (mf_data_from_spec(spec, NULL, &d, e)) return NULL;
    c->spec[c->n] = malloc(strlen(spec) + 1);
    if (!c->spec[c->n]) {
        mf_data_free(d);
        cli_fmt(e->msg, sizeof e->msg, "out of memory");
        return NULL;
    }
    strcpy(c->spec[c->n], spec);
    c->data[c->n++] = d;
    return d;
}

/* Can run r start: its model on its data, its initial values? 0 or -1 (e). */
static int check_run(data_cache *c, const rp_run *r, mf_err *e) {
    const mf_data *d = cache_get(c, r->data_spec, e);
    mf_model *m = NULL;
    if (!d || mf_model_parse(r->model_spec, d->d, d->num_classes, &m, e)) return -1;
    int rc = 0;
    if (r->init_params && (size_t)r->n_init != m->n_params) {
        cli_fmt(e->msg, sizeof e->msg, "init.params has %d values, %s needs %zu (see marginflow "
                "layout --model '%s' --data '%s')", r->n_init, m->spec, m->n_params, m->spec,
                r->data_spec);
        rc = -1;
    } else if (!r->init_params) {
        double *theta = malloc(sizeof *theta * (m->n_params ? m->n_params : 1));
        mf_rng rng;
        mf_rng_seed(&rng, r->seed);
        if (!theta) cli_fmt(e->msg, sizeof e->msg, "out of memory");
        rc = !theta || mf_model_init(m, r->init_kind, r->init_scale, &rng, theta, e) ? -1 : 0;
        free(theta);
    }
    mf_model_free(m);
    return rc;
}

int grid_check_runs(const sweep_grid *g, const char *file, char *why, size_t cap) {
    data_cache c = {0, 0, NULL, NULL};
    cli_jr p = {file, why, cap, NULL, 0};
    int rc = 0;
    for (int i = 0; i < g->npoints && !rc; i++) {
        rp_run r;
        mf_err e = {0, ""};
        if (grid_point(g, i, &r, why, cap)) {
            rc = -1;
            break;
        }
        if (check_run(&c, &r, &e)) {
            char d[512];
            grid_point_desc(g, i, d, sizeof d);
            rc = cli_jbad(&p, "base", "point %d (%s): %s", i, d, e.msg);
        }
        free(r.init_params);
    }
    cache_free(&c);
    return rc;
}

void grid_free(sweep_grid *g) {
    if (!g) return;
    for (int a = 0; a < g->naxes; a++) {
        free(g->axes[a].num);
        free((void *)g->axes[a].str);
    }
    free(g->vidx);
    free(g->ids);
    free(g->file);
    cJSON_Delete(g->root);
    grid_init(g);
}

/*
 * plot.c -- `marginflow plot RUN_DIR...`: figures of one's own runs, without
 * a claim file.
 *
 * Each argument is a run directory (config.json and metrics.csv, as
 * `marginflow train`, reproduce and sweep write it; docs/run-directory.md),
 * a sweep point (DIR/points/<id>: its run/), or a whole sweep directory
 * (every point that has a run). For every --y column (a metrics.csv
 * column, found by name in each run's own header, or `ratio` = gamma /
 * gamma* with gamma* from the run's analysis.json) one panel, stacked, all
 * against the same --x:
 *   log10-time    log10 t (the log10_time column; t = 0 is left out)
 *   step          the step, on a log axis (step 0 left out)
 *   log10-loss    log10 Loss, reversed so that training runs left to right
 *   log-log-time  log10 log10 t (t > 1), for horizons far beyond 10^100
 * Runs share a colour and a key entry per value of --group-by (default:
 * each run its own): a sweep axis (point.json), a field of config.json by
 * dotted path or short name (model, data, loss, optimizer, lr, seed, init,
 * init_scale), verdict (analysis.json) or outcome (summary.json).
 * The figure goes through cli/gp.h (the look of every marginflow figure):
 * FILE.pdf / .svg / .png at 300 dpi as --out says, and the script FILE.gp
 * next to it, which reads the runs' metrics.csv by absolute path. The y
 * range follows the data (gp_range), so one early negative margin does not
 * squash the rest.
 */
#define _XOPEN_SOURCE 700
#include "cli.h"

#include "gp.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_RUNS 100000
#define MAX_Y 8
#define MAX_OUT 3

enum { X_LOG10_TIME, X_STEP, X_LOG10_LOSS, X_LOGLOG_TIME, X_AUTO };
static const char *const x_names[] = {"log10-time", "step", "log10-loss", "log-log-time", "auto", NULL};

/* One run: where it is, what it is, and the values drawn. */
typedef struct prun {
    char *dir;           /* absolute path of the run directory */
    char *label;         /* default key label */
    cJSON *config, *summary, *analysis, *axes; /* NULL when absent (axes: point.json) */
    char *header;        /* metrics.csv's first line */
    int ncols;
    int xcol, ycol[MAX_Y]; /* 1-based columns in metrics.csv (0: derived / absent) */
    double gamma_star;   /* from analysis.json, NAN if unknown */
    int nrows;
    double *x, *y;       /* [nrows] and [MAX_Y][nrows]: what is drawn (NAN: left out) */
    char group[256];     /* the --group-by value */
    int gi;              /* its group index */
    int order;           /* its place on the command line (runs are drawn by group, then order) */
} prun;

typedef struct popts {
    int x;
    const char *ylist, *group_by, *title;
    const char *outs[MAX_OUT];
    int nout;
    double w, h;
    int quiet;
} popts;

static void plot_help(void) {
    printf("usage: marginflow plot RUN_DIR... [options]\n"
           "\n"
           "Figures of your own runs, without a claim file: one panel per --y column against\n"
           "--x, every run a line, one colour per value of --group-by. Writes FILE (and the\n"
           "gnuplot script FILE.gp next to it, to edit and re-run).\n"
           "\n"
           "  RUN_DIR...      run directories (marginflow train, reproduce runs), sweep points\n"
           "                  (DIR/points/ID) or sweep directories (every point with a run)\n"
           "  --x X           log10-time | step | log10-loss | log-log-time | auto\n"
           "                  (default auto: log10-time, or log-log-time = log10 log10 t when\n"
           "                  a run's flow time passes 10^100)\n"
           "  --y LIST        comma-separated metrics.csv columns, one panel each\n"
           "                  (default normalized_margin): step, time, log10_time, log10_loss, norm,\n"
           "                  q_min, normalized_margin, smoothed_margin, layer_margin, lr,\n"
           "                  train_error, balancedness (any column a run's metrics.csv has),\n"
           "                  and ratio = normalized_margin / gamma* (gamma* from the run's\n"
           "                  analysis.json: run marginflow analyze first)\n"
           "  --group-by F    one colour and key entry per value of F (default run: every run\n"
           "                  its own): a sweep axis (width, seed, ...), model, data, loss,\n"
           "                  optimizer, lr, seed, init, init_scale, any config.json field by\n"
           "                  dotted path (settings.tol), verdict (analysis.json) or outcome\n"
           "                  (summary.json)\n"
           "  --out FILE      FILE.pdf, FILE.svg or FILE.png (default plot.pdf); give it up to\n"
           "                  three times for one name in several formats (a.pdf --out a.png)\n"
           "  --title T       the figure's title (default: what the runs have in common)\n"
           "  --size WxH      inches per panel (default %gx%g; PNG at 300 dpi)\n"
           "  -q, --quiet     print only errors\n"
           "  -h, --help      this help\n"
           "\n"
           "exit codes: 0 written, 1 I/O error or gnuplot failed (the script is kept),\n"
           "            2 bad usage or bad input (not a run directory, unknown column or field)\n",
           GP_W, GP_H);
}

/* ------------------------------------------------------------ reading runs */

static void prun_free(prun *r) {
    free(r->dir), free(r->label), free(r->header), free(r->x), free(r->y);
    cJSON_Delete(r->config), cJSON_Delete(r->summary), cJSON_Delete(r->analysis);
    cJSON_Delete(r->axes);
    memset(r, 0, sizeof *r);
}

static int is_file(const char *dir, const char *name) {
    char *p = cli_join(dir, name);
    struct stat st;
    int ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

/* dir/name parsed, NULL when absent; *bad set (message printed) when
 * present but unreadable or not JSON. */
static cJSON *load_opt(const char *dir, const char *name, int *bad) {
    if (!is_file(dir, name)) return NULL;
    char *p = cli_join(dir, name), why[MF_ERR_LEN];
    cli_jr jr = {p, why, sizeof why, NULL, 0};
    cJSON *j = p ? cli_json_load(&jr, p, 0) : NULL;
    if (!j) {
        cli_error("plot: %s", p ? why : "out of memory");
        *bad = 1;
    }
    free(p);
    return j;
}

/* A list of runs being collected. */
typedef struct plist {
    prun *r;
    int n, cap;
} plist;

/* Add the run directory dir (label: its default key label; axes: the
 * point's axes or NULL, owned by the run). 0, or an exit code (message
 * printed). */
static int add_run(plist *L, const char *dir, const char *label, cJSON *axes) {
    if (L->n == MAX_RUNS) {
        cli_error("plot: more than %d runs", MAX_RUNS);
        cJSON_Delete(axes);
        return CLI_EXIT_USAGE;
    }
    if (L->n == L->cap) {
        int nc = L->cap ? 2 * L->cap : 16;
        prun *p = realloc(L->r, sizeof *p * (size_t)nc);
        if (!p) {
            cJSON_Delete(axes);
            return CLI_EXIT_ERROR;
        }
        L->r = p, L->cap = nc;
    }
    prun *r = &L->r[L->n];
    memset(r, 0, sizeof *r);
    r->dir = realpath(dir, NULL);
    r->label = cli_aprintf("%s", label);
    r->axes = axes;
    r->gamma_star = NAN;
    L->n++;
    if (!r->dir || !r->label) {
        cli_error("plot: %s: %s", cli_q(dir), r->label ? strerror(errno) : "out of memory");
        return r->label ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
    }
    int bad = 0;
    r->config = load_opt(dir, "config.json", &bad);
    r->summary = load_opt(dir, "summary.json", &bad);
    r->analysis = load_opt(dir, "analysis.json", &bad);
    if (bad) return CLI_EXIT_USAGE;
    const cJSON *gl = cli_jget(r->analysis, "global");
    if (gl) r->gamma_star = cli_jnum_or(gl, "gamma_star", NAN);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The axes of a sweep point ("width=4, seed=3") for its key label. */
static void axes_text(const cJSON *axes, char *b, size_t cap) {
    const cJSON *it;
    b[0] = '\0';
    cJSON_ArrayForEach(it, axes) {
        if (cJSON_IsNumber(it)) cli_cat(b, cap, "%s%s=%s", b[0] ? ", " : "", it->string, cli_g(it->valuedouble, 6));
        else if (cJSON_IsString(it)) cli_cat(b, cap, "%s%s=%s", b[0] ? ", " : "", it->string, it->valuestring);
    }
}

/* The grid's gamma_star of the sweep a point dir DIR/points/ID belongs to
 * (DIR/sweep.json), NAN when there is none. */
static double sweep_gamma_star(const char *pdir) {
    char *sj = cli_aprintf("%s/../../sweep.json", pdir);
    double g = NAN;
    if (sj && is_file(pdir, "../../sweep.json")) {
        char why[MF_ERR_LEN];
        cli_jr jr = {sj, why, sizeof why, NULL, 0};
        cJSON *j = cli_json_load(&jr, sj, 0);
        g = cli_jnum_or(cli_jget(j, "grid"), "gamma_star", NAN);
        cJSON_Delete(j);
    }
    free(sj);
    return g;
}

/* Add a sweep point's run (pdir = DIR/points/ID; none: quiet skip when
 * skip_missing). Its gamma* is the analysis' closed form, else the grid's
 * gamma_star (as sweep-report's results.csv has it). */
static int add_point(plist *L, const char *pdir, int skip_missing) {
    char *run = cli_join(pdir, "run");
    if (!run) return CLI_EXIT_ERROR;
    if (!is_file(run, "metrics.csv")) {
        int rc = 0;
        if (!skip_missing) {
            cli_error("plot: %s is a sweep point that has no run yet (no run/metrics.csv)", cli_q(pdir));
            rc = CLI_EXIT_USAGE;
        }
        free(run);
        return rc;
    }
    int bad = 0;
    cJSON *pj = load_opt(pdir, "point.json", &bad);
    cJSON *axes = pj ? cJSON_DetachItemFromObjectCaseSensitive(pj, "axes") : NULL;
    cJSON_Delete(pj);
    char lab[512];
    if (axes) axes_text(axes, lab, sizeof lab);
    else cli_fmt(lab, sizeof lab, "%s", pdir);
    int rc = bad ? (cJSON_Delete(axes), CLI_EXIT_USAGE) : add_run(L, run, lab, axes);
    if (!rc && !isfinite(L->r[L->n - 1].gamma_star)) L->r[L->n - 1].gamma_star = sweep_gamma_star(pdir);
    free(run);
    return rc;
}

/* The last path component of p (for a key label). */
static const char *base_name(const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    const char *s = p + n;
    while (s > p && s[-1] != '/') s--;
    static char b[PATH_MAX];
    cli_fmt(b, sizeof b, "%.*s", (int)(p + n - s), s);
    return b;
}

/* Expand one argument into runs. 0 or an exit code (message printed). */
static int add_arg(plist *L, const char *a) {
    struct stat st;
    if (stat(a, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_error("plot: %s: %s", cli_q(a), stat(a, &st) != 0 ? strerror(errno) : "not a directory");
        return CLI_EXIT_USAGE;
    }
    if (is_file(a, "metrics.csv")) return add_run(L, a, base_name(a), NULL);
    if (is_file(a, "point.json")) return add_point(L, a, 0);
    if (is_file(a, "sweep.json")) {
        char *pd = cli_join(a, "points");
        DIR *d = pd ? opendir(pd) : NULL;
        if (!d) {
            cli_error("plot: %s is a sweep directory without points yet", cli_q(a));
            free(pd);
            return CLI_EXIT_USAGE;
        }
        char **ids = NULL;
        int n = 0, cap = 0, rc = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                char **p = realloc(ids, sizeof *p * (size_t)cap);
                if (!p) { rc = CLI_EXIT_ERROR; break; }
                ids = p;
            }
            if (!(ids[n] = cli_join(pd, e->d_name))) { rc = CLI_EXIT_ERROR; break; }
            n++;
        }
        closedir(d);
        if (ids) qsort(ids, (size_t)n, sizeof *ids, cmp_str); /* a stable order */
        int before = L->n;
        for (int i = 0; i < n && !rc; i++) rc = add_point(L, ids[i], 1);
        for (int i = 0; i < n; i++) free(ids[i]);
        free(ids);
        free(pd);
        if (!rc && L->n == before) {
            cli_error("plot: the sweep in %s has no point with a run yet", cli_q(a));
            rc = CLI_EXIT_USAGE;
        }
        if (rc == CLI_EXIT_ERROR) cli_error("plot: out of memory");
        return rc;
    }
    cli_error("plot: %s is not a run directory (no metrics.csv), a sweep point (no point.json) or "
              "a sweep (no sweep.json)", cli_q(a));
    return CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------ metrics.csv */

/* The columns of header (comma-separated) as a list for messages. */
static void columns_text(const char *header, char *b, size_t cap) {
    cli_fmt(b, cap, "%s", header);
    for (char *p = b; *p; p++)
        if (*p == ',') *p = ' ';
}

/* Field k (1-based) of a CSV line as a double; NAN when empty or not a number. */
static double field(const char *line, int k) {
    const char *p = line;
    for (int i = 1; i < k && p; i++) {
        p = strchr(p, ',');
        if (p) p++;
    }
    if (!p || *p == ',' || *p == '\n' || *p == '\r' || !*p) return NAN;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* The x value of a row (NAN: left out) from the raw column value. */
static double x_of(int mode, double v) {
    switch (mode) {
    case X_STEP: return v > 0 ? v : NAN;
    case X_LOGLOG_TIME: return v > 0 ? log10(v) : NAN;
    default: return v;
    }
}

/* Read run r's metrics.csv: the header, then for each row the x value and
 * the y columns ys[0..ny). 0, or an exit code (message printed). */
static int read_metrics(prun *r, const popts *o, char *const *ys, int ny) {
    char *p = cli_join(r->dir, "metrics.csv");
    FILE *f = p ? fopen(p, "r") : NULL;
    if (!f) {
        cli_error("plot: cannot open %s: %s", p ? cli_q(p) : "metrics.csv", strerror(errno));
        free(p);
        return CLI_EXIT_USAGE;
    }
    char *line = malloc(CLI_MAX_METRICS_LINE + 2);
    int rc = line ? 0 : CLI_EXIT_ERROR, cap = 0, lineno = 0;
    while (!rc && fgets(line, CLI_MAX_METRICS_LINE + 2, f)) {
        lineno++;
        size_t l = strlen(line);
        if (l > CLI_MAX_METRICS_LINE) {
            cli_error("plot: %s:%d: a line longer than " CLI_MAX_METRICS_LINE_TEXT " bytes", cli_q(p), lineno);
            rc = CLI_EXIT_USAGE;
            break;
        }
        if (lineno == 1) {
            line[strcspn(line, "\r\n")] = '\0';
            r->header = cli_aprintf("%s", line);
            if (!r->header) { rc = CLI_EXIT_ERROR; break; }
            static const char *const xcol[] = {"log10_time", "step", "log10_loss", "log10_time"};
            r->xcol = gp_csv_col(line, xcol[o->x]);
            char cols[2048];
            columns_text(line, cols, sizeof cols);
            if (!r->xcol) {
                cli_error("plot: %s has no %s column (--x %s); its columns: %s", cli_q(p), xcol[o->x],
                          x_names[o->x], cols);
                rc = CLI_EXIT_USAGE;
            }
            for (int j = 0; j < ny && !rc; j++) {
                int want = !strcmp(ys[j], "ratio") ? gp_csv_col(line, "normalized_margin") : gp_csv_col(line, ys[j]);
                r->ycol[j] = want;
                if (!want) {
                    cli_error("plot: --y %s: %s has no such column; its columns: %s%s", cli_q(ys[j]), cli_q(p),
                              cols, strcmp(ys[j], "ratio") ? ", and ratio (with analysis.json)" : "");
                    rc = CLI_EXIT_USAGE;
                } else if (!strcmp(ys[j], "ratio") && !(r->gamma_star > 0)) {
                    if (r->analysis)
                        cli_error("plot: --y ratio needs gamma* of %s: its analysis.json knows no "
                                  "closed-form gamma* (and it is not a sweep point with a grid "
                                  "gamma_star)", cli_q(r->dir));
                    else
                        cli_error("plot: --y ratio needs gamma* of %s: it has no analysis.json (run "
                                  "marginflow analyze %s first)", cli_q(r->dir), cli_q(r->dir));
                    rc = CLI_EXIT_USAGE;
                }
            }
            continue;
        }
        if (r->nrows == cap) {
            cap = cap ? 2 * cap : 256;
            double *x = realloc(r->x, sizeof *x * (size_t)cap);
            if (x) r->x = x;
            double *y = x ? realloc(r->y, sizeof *y * (size_t)cap * MAX_Y) : NULL;
            if (!y) { rc = CLI_EXIT_ERROR; break; }
            r->y = y;
        }
        r->x[r->nrows] = x_of(o->x, field(line, r->xcol));
        for (int j = 0; j < ny; j++) {
            double v = field(line, r->ycol[j]);
            if (!strcmp(ys[j], "ratio")) v /= r->gamma_star;
            r->y[(size_t)r->nrows * MAX_Y + (size_t)j] = v;
        }
        r->nrows++;
    }
    if (!rc && ferror(f)) {
        cli_error("plot: read error on %s: %s", cli_q(p), strerror(errno));
        rc = CLI_EXIT_ERROR;
    }
    if (!rc && lineno == 0) {
        cli_error("plot: %s is empty", cli_q(p));
        rc = CLI_EXIT_USAGE;
    }
    if (!rc && r->nrows == 0) {
        cli_error("plot: %s has no rows yet (a run that has not logged a step)", cli_q(p));
        rc = CLI_EXIT_USAGE;
    }
    if (rc == CLI_EXIT_ERROR) cli_error("plot: out of memory reading %s", cli_q(p));
    free(line);
    fclose(f);
    free(p);
    return rc;
}

/* ------------------------------------------------------------ groups */

/* The short names of --group-by and their config.json paths. */
static const char *const group_alias[][2] = {
    {"model", "model.spec"},     {"data", "data.spec"},        {"loss", "settings.loss"},
    {"optimizer", "settings.optimizer"}, {"lr", "settings.lr"}, {"seed", "settings.seed"},
    {"init", "init.kind"},       {"init_scale", "init.scale"}, {"steps", "settings.max_steps"},
};

/* The item at dotted path p in o, NULL when absent. */
static const cJSON *at_path(const cJSON *o, const char *p) {
    char key[128];
    while (o && *p) {
        size_t l = strcspn(p, ".");
        if (l >= sizeof key) return NULL;
        memcpy(key, p, l);
        key[l] = '\0';
        o = cli_jget(o, key);
        p += l;
        if (*p == '.') p++;
    }
    return o;
}

/* The value of field F for run r into b ("" and -1 when r has none). */
static int group_value(const prun *r, const char *F, char *b, size_t cap) {
    const cJSON *it = NULL;
    b[0] = '\0';
    if (!strcmp(F, "run")) {
        cli_fmt(b, cap, "%s", r->label);
        return 0;
    }
    if (!strcmp(F, "verdict")) it = cli_jget(r->analysis, "verdict");
    else if (!strcmp(F, "outcome")) it = cli_jget(r->summary, "outcome");
    if (!it) it = cli_jget(r->axes, F);
    for (size_t k = 0; !it && k < sizeof group_alias / sizeof group_alias[0]; k++)
        if (!strcmp(F, group_alias[k][0])) it = at_path(r->config, group_alias[k][1]);
    if (!it) it = at_path(r->config, F);
    if (!it || cJSON_IsObject(it) || cJSON_IsArray(it)) return -1;
    if (cJSON_IsString(it)) cli_fmt(b, cap, "%s", it->valuestring);
    else if (cJSON_IsNumber(it)) cli_fmt(b, cap, "%s", cli_g(it->valuedouble, 6));
    else if (cJSON_IsBool(it)) cli_fmt(b, cap, "%s", cJSON_IsTrue(it) ? "true" : "false");
    else cli_fmt(b, cap, "none");
    return 0;
}

static int by_group(const void *a, const void *b) {
    const prun *x = a, *y = b;
    return x->gi != y->gi ? (x->gi > y->gi) - (x->gi < y->gi) : (x->order > y->order) - (x->order < y->order);
}

/* Number the groups in the order of their first run, numeric values in
 * numeric order, and sort the runs by group (then command-line order).
 * Returns the number of groups, with *names_out their values (pointers
 * into the runs: valid until they are freed), or -1 out of memory. */
static int number_groups(prun *r, int n, char ***names_out) {
    char **names = calloc((size_t)n, sizeof *names);
    int ng = 0;
    if (!names) return -1;
    for (int i = 0; i < n; i++) {
        int g;
        for (g = 0; g < ng && strcmp(names[g], r[i].group); g++) {}
        if (g == ng) names[ng++] = r[i].group;
    }
    int numeric = 1;
    for (int g = 0; g < ng && numeric; g++) {
        char *end;
        strtod(names[g], &end);
        numeric = end != names[g] && *end == '\0';
    }
    if (numeric) /* insertion sort by value: a few groups */
        for (int a = 1; a < ng; a++)
            for (int b = a; b > 0 && strtod(names[b - 1], NULL) > strtod(names[b], NULL); b--) {
                char *t = names[b];
                names[b] = names[b - 1], names[b - 1] = t;
            }
    for (int i = 0; i < n; i++) {
        r[i].order = i;
        for (int g = 0; g < ng; g++)
            if (!strcmp(names[g], r[i].group)) r[i].gi = g;
    }
    /* the names point into the runs' group fields: copy them before the sort moves those */
    char **copies = calloc((size_t)(ng ? ng : 1), sizeof *copies);
    int okc = copies != NULL;
    for (int g = 0; okc && g < ng; g++) okc = (copies[g] = cli_aprintf("%s", names[g])) != NULL;
    free(names);
    if (!okc) {
        for (int g = 0; copies && g < ng; g++) free(copies[g]);
        free(copies);
        return -1;
    }
    qsort(r, (size_t)n, sizeof *r, by_group);
    *names_out = copies;
    return ng;
}

/* ------------------------------------------------------------ the figure */

/* What the runs have in common, for the subtitle ("relu2:width=20,alpha=0.5
 * on builtin:sym4, exp loss, flow; 3 runs"). */
static void common_text(const prun *r, int n, char *b, size_t cap) {
    static const char *const what[][2] = {{"model.spec", ""}, {"data.spec", "on "},
                                          {"settings.loss", ""}, {"settings.optimizer", ""}};
    b[0] = '\0';
    for (size_t k = 0; k < sizeof what / sizeof what[0]; k++) {
        const cJSON *v0 = at_path(r[0].config, what[k][0]);
        int same = cJSON_IsString(v0);
        for (int i = 1; i < n && same; i++) {
            const cJSON *v = at_path(r[i].config, what[k][0]);
            same = cJSON_IsString(v) && !strcmp(v->valuestring, v0->valuestring);
        }
        if (!same) continue;
        cli_cat(b, cap, "%s%s%s%s", b[0] ? (k == 1 ? " " : ", ") : "", what[k][1], v0->valuestring,
                k == 2 ? " loss" : k == 3 ? " optimizer" : "");
    }
    cli_cat(b, cap, "%s%d run%s", b[0] ? "; " : "", n, n == 1 ? "" : "s");
}

/* Whether column y is a margin (its range starts at 0 when positive). */
static int is_margin(const char *y) {
    return !strcmp(y, "normalized_margin") || !strcmp(y, "smoothed_margin") ||
           !strcmp(y, "layer_margin") || !strcmp(y, "ratio");
}

/* The x expression of run r in the script. */
static void x_expr(FILE *b, const prun *r, int mode) {
    int c = r->xcol;
    if (mode == X_STEP) fprintf(b, "($%d > 0 ? $%d : 1/0)", c, c);
    else if (mode == X_LOGLOG_TIME) fprintf(b, "($%d > 0 ? log10($%d) : 1/0)", c, c);
    else fprintf(b, "%d", c);
}

static int draw(prun *r, int n, const popts *o, char *const *ys, int ny, char **gnames, int ng) {
    const char *first = o->outs[0];
    /* the output: dir, base name and formats (one name, several extensions) */
    char *dup = cli_aprintf("%s", first);
    if (!dup) return CLI_EXIT_ERROR;
    char *slash = strrchr(dup, '/'), *dir = slash ? dup : ".", *base = slash ? slash + 1 : dup;
    if (slash) *slash = '\0';
    if (slash == dup) dir = "/";
    char *dot = strrchr(base, '.');
    *dot = '\0';
    int formats = 0;
    for (int k = 0; k < o->nout; k++) {
        const char *e = strrchr(o->outs[k], '.') + 1;
        formats |= !strcmp(e, "pdf") ? GP_PDF : !strcmp(e, "svg") ? GP_SVG : GP_PNG;
    }
    double w = o->w > 0 ? o->w : GP_W, hp = o->h > 0 ? o->h : GP_H;
    gp_fig g;
    if (gp_begin(&g, dir, base, "marginflow plot", w, hp * ny + (ny > 1 ? 0.4 : 0), formats)) {
        cli_error("plot: cannot write %s.gp: %s", cli_q(first), strerror(errno));
        free(dup);
        return CLI_EXIT_ERROR;
    }
    FILE *b = GP_BODY(&g);
    char common[1024];
    common_text(r, n, common, sizeof common);
    const char *t0 = gp_column_title(ys[0]);
    char main_t[256];
    if (ny == 1 && t0) cli_fmt(main_t, sizeof main_t, "%s", t0);
    else cli_fmt(main_t, sizeof main_t, "Training runs");
    if (ny > 1) gp_multiplot(&g, ny, 1, o->title ? o->title : main_t, o->title != NULL, common);
    else if (o->title) gp_title_literal(&g, o->title, common);
    else gp_title(&g, main_t, common);
    /* x */
    static const char *const xlab[] = {GP_LABEL_LOG10_T, "step", "log_{10} Loss   (sum over samples; "
                                       "training runs left to right)", GP_LABEL_LOGLOG_T};
    double xlo = INFINITY, xhi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < r[i].nrows; k++)
            if (isfinite(r[i].x[k])) xlo = fmin(xlo, r[i].x[k]), xhi = fmax(xhi, r[i].x[k]);
    if (!(xhi >= xlo)) {
        cli_error("plot: no row of the runs has an x value for --x %s%s", x_names[o->x],
                  o->x == X_LOGLOG_TIME ? " (it needs t > 1)" : "");
        gp_cancel(&g);
        free(dup);
        return CLI_EXIT_USAGE;
    }
    fprintf(b, "set xlabel '%s'\n", xlab[o->x]);
    if (o->x == X_STEP) fprintf(b, "set logscale x\nset format x '10^{%%T}'\n");
    if (o->x == X_LOG10_LOSS && xhi > xlo) fprintf(b, "set xrange [%s:%s]\n", gp_num(xhi), gp_num(xlo));
    if (ny > 1) /* the panels' axes line up whatever their tic labels */
        fprintf(b, "set lmargin at screen %.4g\nset rmargin at screen 0.97\n", 0.75 / w + 0.02);
    int keyed = ng > 1 || n > 1;
    int all_gs = isfinite(r[0].gamma_star);
    for (int i = 1; i < n; i++) all_gs &= r[i].gamma_star == r[0].gamma_star;
    for (int j = 0; j < ny; j++) {
        /* the y range of this panel: the rows drawn */
        size_t m = 0;
        for (int i = 0; i < n; i++) m += (size_t)r[i].nrows;
        double *v = malloc(sizeof *v * (m + 2)), lo = 0, hi = 1;
        if (!v) {
            gp_cancel(&g);
            free(dup);
            return CLI_EXIT_ERROR;
        }
        m = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < r[i].nrows; k++)
                if (isfinite(r[i].x[k])) v[m++] = r[i].y[(size_t)k * MAX_Y + (size_t)j];
        int gs_line = !strcmp(ys[j], "normalized_margin") && all_gs;
        if (gs_line) v[m++] = r[0].gamma_star;
        if (!strcmp(ys[j], "ratio")) v[m++] = 1;
        int ranged = gp_range(v, m, is_margin(ys[j]) ? GP_RANGE_ROBUST : 0, &lo, &hi) == 0;
        free(v);
        if (ranged && is_margin(ys[j]) && lo > 0 && lo < 0.35 * hi) lo = 0;
        if (ranged) fprintf(b, "set yrange [%s:%s]\n", gp_num(lo), gp_num(hi));
        else fprintf(b, "set autoscale y\n");
        gp_ylabel(b, ys[j]);
        if (ny > 1 && j < ny - 1) fprintf(b, "unset xlabel\nset format x ''\n");
        else if (ny > 1 && o->x != X_STEP) fprintf(b, "set xlabel '%s'\nset format x '%%g'\n", xlab[o->x]);
        else if (ny > 1) fprintf(b, "set xlabel '%s'\nset format x '10^{%%T}'\n", xlab[o->x]);
        int last = j == ny - 1;
        if (last && keyed) gp_key_below(b, ng + gs_line, ng > 8 ? 4 : 3);
        else if (gs_line && last) gp_key_below(b, 1, 1);
        else fprintf(b, "set key off\n");
        fprintf(b, "plot ");
        for (int i = 0; i < n; i++) { /* sorted by group: the key lists them in order */
            fprintf(b, "%s'", i ? ", \\\n     " : "");
            char *mp = cli_join(r[i].dir, "metrics.csv");
            gp_str(b, mp ? mp : "");
            free(mp);
            fprintf(b, "' skip 1 using ");
            x_expr(b, &r[i], o->x);
            if (!strcmp(ys[j], "ratio")) fprintf(b, ":($%d / %s)", r[i].ycol[j], gp_num(r[i].gamma_star));
            else fprintf(b, ":%d", r[i].ycol[j]);
            fprintf(b, " lt %d", r[i].gi + 1);
            int first_of = 1; /* the group's first run carries its key entry */
            for (int q = 0; q < i && first_of; q++) first_of = r[q].gi != r[i].gi;
            if (keyed && first_of) {
                fprintf(b, " title '");
                if (o->group_by && strcmp(o->group_by, "run")) {
                    gp_str(b, o->group_by);
                    fprintf(b, " = ");
                }
                gp_str(b, gnames[r[i].gi]);
                fprintf(b, "' noenhanced");
            } else {
                fprintf(b, " notitle");
            }
        }
        if (gs_line)
            fprintf(b, ", \\\n     %s lc rgb 'black' lw 1 dt 3 title 'γ* = %.6g'", gp_num(r[0].gamma_star),
                    r[0].gamma_star);
        if (!strcmp(ys[j], "ratio")) fprintf(b, ", \\\n     1 lc rgb 'black' lw 1 dt 3 notitle");
        fputc('\n', b);
    }
    int rc = gp_end(&g);
    if (rc) {
        cli_error("plot: gnuplot failed or is missing; the script is %s/%s.gp (and its messages %s/%s.log)",
                  cli_q(dir), base, cli_q(dir), base);
    } else if (!o->quiet) {
        for (int k = 0; k < o->nout; k++) printf("%s\n", o->outs[k]);
        printf("%s/%s.gp (the gnuplot script)\n", dir, base);
    }
    free(dup);
    return rc ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

/* ------------------------------------------------------------ command */

/* "WxH" in inches into w, h: 0 or -1 (message printed). */
static int parse_size(const char *s, double *w, double *h) {
    char *end;
    *w = strtod(s, &end);
    if (end == s || (*end != 'x' && *end != 'X')) goto bad;
    const char *t = end + 1;
    *h = strtod(t, &end);
    if (end == t || *end) goto bad;
    if (!(*w >= 1 && *w <= 40 && *h >= 1 && *h <= 40)) goto bad;
    return 0;
bad:
    cli_error("plot: --size: expected WxH in inches, each in [1, 40] (e.g. 4.5x3), got '%s'", cli_q(s));
    return -1;
}

/* Check --out: an extension pdf, svg or png, and one name for all. */
static int check_outs(const popts *o) {
    for (int k = 0; k < o->nout; k++) {
        const char *s = o->outs[k], *dot = strrchr(s, '.'), *sl = strrchr(s, '/');
        if (!dot || (sl && dot < sl) || dot == s || (sl && dot == sl + 1) ||
            (strcmp(dot, ".pdf") && strcmp(dot, ".svg") && strcmp(dot, ".png"))) {
            cli_error("plot: --out %s: the file name must end in .pdf, .svg or .png", cli_q(s));
            return -1;
        }
        size_t l0 = strrchr(o->outs[0], '.') - o->outs[0], l = (size_t)(dot - s);
        if (l != l0 || strncmp(s, o->outs[0], l)) {
            cli_error("plot: --out %s and %s: several outputs must share one name (a.pdf, a.png)",
                      cli_q(o->outs[0]), cli_q(s));
            return -1;
        }
        for (int q = 0; q < k; q++)
            if (!strcmp(o->outs[q], s)) {
                cli_error("plot: --out %s given twice", cli_q(s));
                return -1;
            }
    }
    return 0;
}

int cli_plot(int argc, char **argv) {
    popts o;
    memset(&o, 0, sizeof o);
    o.x = X_AUTO;
    o.ylist = "normalized_margin";
    const char **args = calloc((size_t)argc + 1, sizeof *args);
    int na = 0;
    if (!args) return CLI_EXIT_ERROR;
    int rc = -1;
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i], *v;
        int r;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            plot_help();
            rc = CLI_EXIT_OK;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.quiet = 1;
        } else if ((r = cli_opt(argc, argv, &i, "--x", &v)) != 0) {
            int k = -1;
            for (int q = 0; r > 0 && x_names[q] && k < 0; q++)
                if (!strcmp(v, x_names[q])) k = q;
            if (r > 0 && k < 0)
                cli_error("plot: --x: expected log10-time, step, log10-loss, log-log-time or auto, "
                          "got '%s'", cli_q(v));
            if (k < 0) rc = CLI_EXIT_USAGE;
            else o.x = k;
        } else if ((r = cli_opt(argc, argv, &i, "--y", &v)) != 0) {
            if (r < 0) rc = CLI_EXIT_USAGE;
            else o.ylist = v;
        } else if ((r = cli_opt(argc, argv, &i, "--group-by", &v)) != 0) {
            if (r < 0) rc = CLI_EXIT_USAGE;
            else o.group_by = v;
        } else if ((r = cli_opt(argc, argv, &i, "--title", &v)) != 0) {
            if (r < 0) rc = CLI_EXIT_USAGE;
            else o.title = v;
        } else if ((r = cli_opt(argc, argv, &i, "--size", &v)) != 0) {
            if (r < 0 || parse_size(v, &o.w, &o.h)) rc = CLI_EXIT_USAGE;
        } else if ((r = cli_opt(argc, argv, &i, "--out", &v)) != 0) {
            if (r < 0) rc = CLI_EXIT_USAGE;
            else if (o.nout == MAX_OUT) {
                cli_error("plot: --out: at most %d (one name in pdf, svg and png)", MAX_OUT);
                rc = CLI_EXIT_USAGE;
            } else {
                o.outs[o.nout++] = v;
            }
        } else if (a[0] == '-' && a[1]) {
            cli_error("plot: unknown option '%s'; see marginflow plot --help", cli_q(a));
            rc = CLI_EXIT_USAGE;
        } else if (!a[0]) {
            cli_error("plot: an empty run directory name");
            rc = CLI_EXIT_USAGE;
        } else if (cli_check_text("plot: RUN_DIR", a, 0)) {
            rc = CLI_EXIT_USAGE;
        } else {
            args[na++] = a;
        }
    }
    if (rc >= 0) {
        free(args);
        return rc;
    }
    if (!na) {
        cli_error("plot: give one or more run directories (see marginflow plot --help)");
        free(args);
        return CLI_EXIT_USAGE;
    }
    if (!o.nout) o.outs[o.nout++] = "plot.pdf";
    if (check_outs(&o)) {
        free(args);
        return CLI_EXIT_USAGE;
    }
    /* --y */
    char *ycopy = cli_aprintf("%s", o.ylist), *ys[MAX_Y];
    int ny = 0;
    rc = ycopy ? 0 : CLI_EXIT_ERROR;
    for (char *t = ycopy, *save = NULL; !rc && (t = strtok_r(t, ",", &save)); t = NULL) {
        if (ny == MAX_Y) {
            cli_error("plot: --y: at most %d columns (panels)", MAX_Y);
            rc = CLI_EXIT_USAGE;
        } else {
            ys[ny++] = t;
        }
    }
    if (!rc && !ny) {
        cli_error("plot: --y: no column given");
        rc = CLI_EXIT_USAGE;
    }
    plist L = {NULL, 0, 0};
    for (int i = 0; i < na && !rc; i++) rc = add_arg(&L, args[i]);
    int automatic = o.x == X_AUTO;
    if (automatic) o.x = X_LOG10_TIME;
    for (int i = 0; i < L.n && !rc; i++) rc = read_metrics(&L.r[i], &o, ys, ny);
    if (!rc && automatic) { /* log-log time once a horizon passes 10^100 */
        double xmax = -INFINITY;
        for (int i = 0; i < L.n; i++)
            for (int k = 0; k < L.r[i].nrows; k++)
                if (isfinite(L.r[i].x[k])) xmax = fmax(xmax, L.r[i].x[k]);
        if (xmax > 100) {
            o.x = X_LOGLOG_TIME;
            for (int i = 0; i < L.n; i++)
                for (int k = 0; k < L.r[i].nrows; k++) L.r[i].x[k] = x_of(X_LOGLOG_TIME, L.r[i].x[k]);
        }
    }
    const char *F = o.group_by ? o.group_by : "run";
    for (int i = 0; i < L.n && !rc; i++)
        if (group_value(&L.r[i], F, L.r[i].group, sizeof L.r[i].group)) {
            char ax[256] = "";
            const cJSON *it;
            cJSON_ArrayForEach(it, L.r[i].axes) cli_cat(ax, sizeof ax, "%s%s", ax[0] ? ", " : "", it->string);
            cli_error("plot: --group-by %s: %s has no such field (fields: run, model, data, loss, "
                      "optimizer, lr, seed, init, init_scale, steps, verdict, outcome, a config.json "
                      "path such as settings.tol%s%s)", cli_q(F), cli_q(L.r[i].dir), ax[0] ? ", axes: " : "", ax);
            rc = CLI_EXIT_USAGE;
        }
    char **gnames = NULL;
    int ng = rc ? 0 : number_groups(L.r, L.n, &gnames);
    if (!rc && ng < 0) rc = CLI_EXIT_ERROR;
    if (!rc) rc = draw(L.r, L.n, &o, ys, ny, gnames, ng);
    for (int g = 0; g < ng; g++) free(gnames[g]);
    free(gnames);
    for (int i = 0; i < L.n; i++) prun_free(&L.r[i]);
    free(L.r);
    free(ycopy);
    free(args);
    return rc;
}

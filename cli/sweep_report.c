/*
 * sweep_report.c -- `marginflow sweep-report DIR`: the table and the figures
 * of a sweep directory (layout: sweep.h; columns and figure kinds:
 * docs/sweeps.md).
 *
 *   DIR/results.csv   one row per point of the grid (finished or not), in
 *                     point order: index, id, the axes, status, outcome,
 *                     verdict, class, then grid_columns (numbers %.17g, C
 *                     locale; absent values empty, so pandas reads NaN)
 *   DIR/fig<k>-*.gp   one gnuplot script per figure of the grid, with the
 *                     .dat file it reads and its .png / .svg
 *
 * Derived columns. gamma_star is the analysis' closed-form gamma* when it
 * knows one (mf_analyze: has_global), else the grid's "gamma_star"; ratio =
 * normalized_margin / gamma_star. class sorts a finished point into
 *   not-separated    training error > 0 at the end (did not separate the
 *                    data within the budget)
 *   global           verdict global, or ratio >= 1 - class_tol (a margin
 *                    test, not a certificate: the verdict column says which)
 *   suboptimal-kkt   a KKT verdict (local-certified, not-local, or
 *                    inconclusive with eps <= the analysis' kkt_tol; the
 *                    former name local-evidence too) below gamma*: a
 *                    non-optimal KKT point
 *   kkt              the same where no gamma* is known
 *   not-kkt          not a KKT point within the tolerance at the end of the
 *                    budget (the run had not converged in direction)
 *   non-homogeneous, analysis-error, and without analysis below-global /
 *   separated.
 * Fractions carry 95% Wilson score intervals (Wilson 1927): for k of n,
 * (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.96 --
 * unlike p +- z sqrt(p(1-p)/n) they stay inside [0, 1] and are not empty
 * at k = 0 or k = n.
 */
#define _XOPEN_SOURCE 700
#include "sweep.h"

#include "gp.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One point's row: its text fields and the numeric columns. */
typedef struct row {
    int finished;
    char outcome[32], verdict[32], klass[32];
    double v[32];              /* grid_columns order */
    double kkt_tol;            /* the analysis' kkt_tol (NAN: not recorded) */
} row;

static int col_index(const char *name) {
    for (int k = 0; grid_columns[k]; k++)
        if (!strcmp(grid_columns[k], name)) return k;
    return -1;
}

#define COL(r, name) ((r)->v[col_index(name)])

/* The class of a finished row (see the top of the file). */
static void classify(row *r, const sweep_grid *g) {
    const char *v = r->verdict, *c;
    double ratio = COL(r, "ratio");
    /* an inconclusive verdict is KKT only when eps passed (it is also given
       when eps is only an upper bound above kkt_tol); results written
       before kkt_tol was recorded use the default 1e-3 */
    double tol = isfinite(r->kkt_tol) ? r->kkt_tol : 1e-3;
    int kkt = !strcmp(v, "local-certified") || !strcmp(v, "local-evidence") || !strcmp(v, "not-local") ||
              (!strcmp(v, "inconclusive") && COL(r, "eps") <= tol);
    if (COL(r, "train_error") > 0) c = "not-separated";
    else if (!strcmp(v, "global") || (isfinite(ratio) && ratio >= 1 - g->class_tol)) c = "global";
    else if (!strcmp(v, "non-homogeneous")) c = "non-homogeneous";
    else if (kkt) c = isfinite(ratio) ? "suboptimal-kkt" : "kkt";
    else if (!strcmp(v, "not-kkt")) c = "not-kkt";
    else if (!strcmp(v, "error")) c = "analysis-error";
    else c = isfinite(ratio) ? "below-global" : "separated";
    cli_fmt(r->klass, sizeof r->klass, "%s", c);
}

/* The row of point i from its result.json (none: not finished). */
static void load_row(const sweep_grid *g, const char *dir, int i, row *r) {
    memset(r, 0, sizeof *r);
    for (int k = 0; grid_columns[k]; k++) r->v[k] = NAN;
    r->kkt_tol = NAN;
    cJSON *j = sweep_result_read(dir, g->ids[i]);
    if (!j) return;
    const cJSON *fin = cli_jget(j, "final"), *an = cli_jget(j, "analysis");
    r->finished = 1;
    cli_fmt(r->outcome, sizeof r->outcome, "%s", cli_jstr_or(j, "outcome", "?"));
    COL(r, "steps") = cli_jnum_or(j, "steps", NAN);
    static const char *const fin_cols[] = {"log10_time", "log10_loss", "norm", "q_min",
                                           "normalized_margin", "smoothed_margin", "layer_margin",
                                           "train_error", "balancedness", NULL};
    for (int k = 0; fin_cols[k]; k++) COL(r, fin_cols[k]) = cli_jnum_or(fin, fin_cols[k], NAN);
    if (cJSON_IsObject(an)) {
        cli_fmt(r->verdict, sizeof r->verdict, "%s", cli_jstr_or(an, "verdict", "error"));
        static const char *const an_cols[] = {"eps", "delta", "ll_eps", "n_kinks", NULL};
        for (int k = 0; an_cols[k]; k++) COL(r, an_cols[k]) = cli_jnum_or(an, an_cols[k], NAN);
        COL(r, "gamma_star") = cli_jnum_or(an, "gamma_star", NAN);
        r->kkt_tol = cli_jnum_or(an, "kkt_tol", NAN);
    }
    if (!isfinite(COL(r, "gamma_star"))) COL(r, "gamma_star") = g->gamma_star;
    COL(r, "ratio") = COL(r, "normalized_margin") / COL(r, "gamma_star");
    COL(r, "wall_seconds") = cli_jnum_or(j, "train_seconds", NAN) + cli_jnum_or(j, "analyze_seconds", 0);
    classify(r, g);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------ results.csv */

static void csv_num(FILE *f, double v) {
    char b[40] = "";
    if (isfinite(v)) mf_format_double(b, sizeof b, v);
    fprintf(f, ",%s", b);
}

/* DIR/results.csv (atomically). Returns 0 or -1 (message printed). */
static int write_csv(const sweep_grid *g, const char *dir, const row *rows) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return -1;
    fprintf(f, "index,id");
    for (int a = 0; a < g->naxes; a++) fprintf(f, ",%s", g->axes[a].name);
    fprintf(f, ",status,outcome,verdict,class");
    for (int k = 0; grid_columns[k]; k++) fprintf(f, ",%s", grid_columns[k]);
    fputc('\n', f);
    for (int i = 0; i < g->npoints; i++) {
        const row *r = &rows[i];
        fprintf(f, "%d,%s", i, g->ids[i]);
        for (int a = 0; a < g->naxes; a++) {
            char v[256];
            grid_value_text(g, i, a, v, sizeof v); /* no ',' or '"': grid.c refuses them */
            fprintf(f, ",%s", v);
        }
        fprintf(f, ",%s,%s,%s,%s", r->finished ? "finished" : "missing", r->outcome, r->verdict,
                r->klass);
        for (int k = 0; grid_columns[k]; k++) csv_num(f, r->v[k]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    fclose(f);
    char *p = cli_join(dir, "results.csv");
    mf_err e = {0, "out of memory"};
    int rc = !bad && p && buf ? mf_write_file_atomic(p, buf, len, &e) : MF_ERR_NOMEM;
    if (rc) cli_error("sweep-report: %s", e.msg);
    free(p);
    free(buf);
    return rc ? -1 : 0;
}

/* ------------------------------------------------------------ figures */

/* The x coordinate of value k of the figure's axis: the number (ln-inverse:
 * ln(1/v)), or k for a string axis. */
static double x_val(const sweep_grid *g, const grid_figure *fg, int ax, int k) {
    const grid_axis *a = &g->axes[ax];
    if (!a->num) return k;
    return fg->xscale == GRID_X_LN_INV ? log(1 / a->num[k]) : a->num[k];
}

/* The x coordinate of point i. */
static double x_of(const sweep_grid *g, const grid_figure *fg, int ax, int i) {
    return x_val(g, fg, ax, g->vidx[(size_t)i * (size_t)g->naxes + (size_t)ax]);
}

/* For an ln-inverse axis: the axis values as tics on the top axis. */
static void gp_x2_values(FILE *b, const sweep_grid *g, const grid_figure *fg, int ax) {
    const grid_axis *a = &g->axes[ax];
    if (fg->xscale != GRID_X_LN_INV || a->n > 16) return;
    fprintf(b, "set x2label '%s'\nset x2tics (", fg->x);
    for (int k = 0; k < a->n; k++) {
        char v[40];
        grid_num_text(v, sizeof v, a->num[k]);
        fprintf(b, "%s'%s' %.17g", k ? ", " : "", v, x_val(g, fg, ax, k));
    }
    fprintf(b, ")\nset xtics nomirror\nset link x2\n");
}

/* Line q of nq drawn at x, moved sideways so that lines with equal values
 * stay apart: by a factor on a log axis, by a share of the axis span on a
 * linear one. */
static double dodge(double x, int q, int nq, int logx, double span, double share) {
    double u = (q - (nq - 1) / 2.0) * share;
    return logx ? x * exp(u) : x + u * (span > 0 ? span : 1);
}

/* Log x for numeric axes of positive values spanning a factor of more than 4
 * (widths 2..16, scales 1e-1..1e-8) under "auto"; "log" always. */
static int use_logx(const sweep_grid *g, const grid_figure *fg, int ax) {
    const grid_axis *a = &g->axes[ax];
    if (fg->xscale == GRID_X_LOG) return 1;
    if (fg->xscale != GRID_X_AUTO || !a->num) return 0;
    double lo = INFINITY, hi = 0;
    for (int k = 0; k < a->n; k++) {
        if (!(a->num[k] > 0)) return 0;
        lo = fmin(lo, a->num[k]), hi = fmax(hi, a->num[k]);
    }
    return hi / lo > 4;
}

static const char *x_label(const grid_figure *fg) {
    static char b[96];
    if (fg->xscale == GRID_X_LN_INV) cli_fmt(b, sizeof b, "ln(1/%s)", fg->x);
    else cli_fmt(b, sizeof b, "%s", fg->x);
    return b;
}

/* Start figure `name` of the sweep in dir (cli/gp.h: the shared look),
 * titled with the grid's title (or name) and, below it, what the figure
 * shows and how many points are finished. 0 or -1. */
static int fig_begin(gp_fig *p, const sweep_grid *g, const char *dir, const char *name,
                     const char *what, int done) {
    if (gp_begin(p, dir, name, "marginflow sweep-report", GP_W, 3.4, GP_ALL)) return -1;
    char sub[600];
    cli_fmt(sub, sizeof sub, "%s; %d of %d points finished", what, done, g->npoints);
    gp_title_literal(p, g->title[0] ? g->title : g->name, sub);
    return 0;
}

/* The categories of a fractions figure, in a fixed order (then as met). */
static const char *const cat_order[] = {
    "global", "suboptimal-kkt", "kkt", "not-kkt", "not-separated", "non-homogeneous",
    "analysis-error", "below-global", "separated", "local-certified", "inconclusive",
    "not-local", "loss-target", "step-budget", "time-target", "wall-budget", "stalled",
    "non-finite", "error", NULL};
/* one colour per category, the same in every figure */
static const char *const cat_color[] = {
    "#1a9850", "#d73027", "#f46d43", "#fc8d59", "#4575b4", "#984ea3",
    "#7f7f7f", "#d73027", "#1a9850", "#762a83", "#a6611a",
    "#b2182b", "#1a9850", "#4575b4", "#66c2a5", "#8da0cb", "#e78ac3",
    "#7f7f7f", "#7f7f7f"};

static const char *color_of(const char *cat, int q) {
    static const char *const spare[] = {"#000000", "#e6ab02", "#66a61e", "#e7298a"};
    for (int k = 0; cat_order[k]; k++)
        if (!strcmp(cat_order[k], cat)) return cat_color[k];
    return spare[q % 4];
}

static const char *cat_of(const row *r, const char *of) {
    return !strcmp(of, "class") ? r->klass : !strcmp(of, "verdict") ? r->verdict : r->outcome;
}

/* What a category means, for the key (of: class, verdict or outcome). */
static const char *cat_note(const sweep_grid *g, const char *of, const char *c, char *b,
                            size_t cap) {
    if (strcmp(of, "class")) {
        if (!strcmp(of, "verdict") && !strcmp(c, "global"))
            cli_fmt(b, cap, "global (certified against a closed-form γ*)");
        else if (!strcmp(of, "verdict") && !strcmp(c, "not-kkt"))
            cli_fmt(b, cap, "not-kkt (not yet KKT at the end of the budget)");
        else cli_fmt(b, cap, "%s", c);
        return b;
    }
    if (!strcmp(c, "global"))
        cli_fmt(b, cap, "global: γ ≥ %.3g γ* or verdict global", 1 - g->class_tol);
    else if (!strcmp(c, "suboptimal-kkt")) cli_fmt(b, cap, "non-optimal KKT point (γ < γ*)");
    else if (!strcmp(c, "not-kkt")) cli_fmt(b, cap, "not yet KKT at the end of the budget");
    else if (!strcmp(c, "not-separated")) cli_fmt(b, cap, "did not separate the data");
    else cli_fmt(b, cap, "%s", c);
    return b;
}

/* Figure k, kind fractions: per x value the fraction of finished points in
 * each category with its Wilson interval and count; a table on stdout. */
static int fig_fractions(const sweep_grid *g, const char *dir, const row *rows, int k, int quiet,
                         char *name, size_t ncap) {
    const grid_figure *fg = &g->figures[k];
    int ax = grid_axis_find(g, fg->x), nx = g->axes[ax].n, logx = use_logx(g, fg, ax);
    const char *cats[64];
    int nc = 0, done = 0;
    for (int pass = 0; pass < 2; pass++) /* the known ones in order, then the others */
        for (int i = 0; i < g->npoints; i++) {
            if (!rows[i].finished) continue;
            const char *c = cat_of(&rows[i], fg->of);
            int known = 0, have = 0;
            for (int q = 0; cat_order[q]; q++) known |= !strcmp(cat_order[q], c);
            for (int q = 0; q < nc; q++) have |= !strcmp(cats[q], c);
            if (have || nc == 64 || (pass == 0) != known) continue;
            cats[nc++] = c;
        }
    /* order the known ones as cat_order */
    for (int a = 0; a < nc; a++)
        for (int b = a + 1; b < nc; b++) {
            int ia = 99, ib = 99;
            for (int q = 0; cat_order[q]; q++) {
                if (!strcmp(cat_order[q], cats[a])) ia = q;
                if (!strcmp(cat_order[q], cats[b])) ib = q;
            }
            if (ib < ia) {
                const char *t = cats[a];
                cats[a] = cats[b], cats[b] = t;
            }
        }
    cli_fmt(name, ncap, "fig%d-%s-vs-%s", k + 1, fg->of, fg->x);
    char *dp = cli_join(dir, name), dat[4200];
    if (!dp) return -1;
    cli_fmt(dat, sizeof dat, "%s.dat", dp);
    free(dp);
    FILE *d = fopen(dat, "w");
    if (!d) return -1;
    int *cnt = calloc((size_t)nx * (size_t)(nc + 1), sizeof *cnt), *tot = calloc((size_t)nx, sizeof *tot);
    if (!cnt || !tot) {
        fclose(d);
        free(cnt), free(tot);
        return -1;
    }
    for (int i = 0; i < g->npoints; i++) {
        if (!rows[i].finished) continue;
        int xi = g->vidx[(size_t)i * (size_t)g->naxes + (size_t)ax];
        const char *c = cat_of(&rows[i], fg->of);
        for (int q = 0; q < nc; q++)
            if (!strcmp(cats[q], c)) cnt[xi * nc + q]++;
        tot[xi]++;
        done++;
    }
    fprintf(d, "# x,xtic,n then per category: position,fraction,low,high,count (95%% Wilson)\n");
    if (!quiet) {
        printf("%s: fraction of points per %s (95%% Wilson interval)\n  %-12s", name, fg->of, fg->x);
        for (int q = 0; q < nc; q++) printf(" %22s", cats[q]);
        printf("\n");
    }
    int same_n = 1, n0 = nx > 0 ? tot[0] : 0; /* the same n for every value: n goes in the title */
    for (int xi = 1; xi < nx; xi++) same_n &= tot[xi] == n0;
    for (int xi = 0; xi < nx; xi++) {
        char xv[128];
        int i0 = -1;
        for (int i = 0; i < g->npoints && i0 < 0; i++)
            if (g->vidx[(size_t)i * (size_t)g->naxes + (size_t)ax] == xi) i0 = i;
        grid_value_text(g, i0, ax, xv, sizeof xv);
        double x = x_of(g, fg, ax, i0);
        if (same_n) fprintf(d, "%.17g,%s,%d", x, xv, tot[xi]);
        else fprintf(d, "%.17g,%s (n=%d),%d", x, xv, tot[xi], tot[xi]);
        if (!quiet) printf("  %-12s", xv);
        for (int q = 0; q < nc; q++) {
            int kq = cnt[xi * nc + q];
            double pos = dodge(x, q, nc, logx, 1, 0.07);
            double p = tot[xi] ? (double)kq / tot[xi] : NAN, lo = NAN, hi = NAN;
            if (tot[xi]) gp_wilson(kq, tot[xi], &lo, &hi);
            if (tot[xi]) fprintf(d, ",%.17g,%.17g,%.17g,%.17g,%d", pos, p, lo, hi, kq);
            else fprintf(d, ",,,,,");
            if (!quiet) {
                char cell[64];
                cli_fmt(cell, sizeof cell, "%d/%d [%.2f, %.2f]", kq, tot[xi], lo, hi);
                printf(" %22s", tot[xi] ? cell : "-");
            }
        }
        fputc('\n', d);
        if (!quiet) printf("\n");
    }
    fclose(d);
    free(cnt), free(tot);
    char what[256];
    cli_fmt(what, sizeof what, "fraction of points per %s vs %s, bars 95%% Wilson intervals, "
            "labels counts", fg->of, fg->x);
    if (same_n && nx > 0) cli_cat(what, sizeof what, ", n = %d per value", n0);
    gp_fig fig;
    if (fig_begin(&fig, g, dir, name, fg->title ? fg->title : what, done)) return -1;
    FILE *b = GP_BODY(&fig);
    fprintf(b, "set xlabel '");
    gp_str(b, fg->x); /* the tic labels are the axis values, whatever the spacing */
    fprintf(b, "%s' noenhanced\nset ylabel 'fraction of the finished points'\n"
               "set yrange [-0.02:1.08]\nset ytics 0.2\n",
            fg->xscale == GRID_X_LN_INV ? "   (spaced as ln(1/value))" : "");
    size_t widest = 0; /* tic labels that would not fit side by side are slanted */
    for (int i = 0; i < g->npoints; i++) {
        char v[128];
        grid_value_text(g, i, ax, v, sizeof v);
        widest = strlen(v) > widest ? strlen(v) : widest;
    }
    if ((double)nx * (double)(widest + (same_n ? 2 : 9)) > 14 * GP_W)
        fprintf(b, "set xtics rotate by 30 right\n");
    if (logx) {
        double lo = INFINITY, hi = 0;
        for (int xi = 0; xi < nx; xi++) lo = fmin(lo, g->axes[ax].num[xi]), hi = fmax(hi, g->axes[ax].num[xi]);
        fprintf(b, "set logscale x 2\nset xrange [%.6g:%.6g]\n", lo / 1.35, hi * 1.35);
    } else {
        fprintf(b, "set offsets 0.3, 0.3, 0, 0\n");
    }
    gp_key_below(b, nc, 2);
    fprintf(b, "plot ");
    for (int q = 0; q < nc; q++) {
        int c0 = 4 + 5 * q;
        char note[160];
        cat_note(g, fg->of, cats[q], note, sizeof note);
        fprintf(b, "%s'%s.dat' using %d:%d:%d:%d%s with yerrorlines lw 1.5 pt 7 ps 0.7 lc rgb '%s' "
                   "title '", q ? ", \\\n     " : "", name, c0, c0 + 1, c0 + 2, c0 + 3,
                q == 0 ? ":xticlabels(2)" : "", color_of(cats[q], q));
        gp_str(b, note);
        fprintf(b, "' noenhanced, '' using %d:(column(%d) > 0 ? column(%d) : 1/0):%d with labels "
                   "offset char 1.2,0.5 font ',7' tc rgb '%s' notitle",
                c0, c0 + 4, c0 + 1, c0 + 4, color_of(cats[q], q));
    }
    if (nc == 0) fprintf(b, "NaN notitle");
    fprintf(b, "\n");
    return gp_end(&fig);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Figure k, kind metric: column y against axis x, one line per value of
 * axis group: the median over the points of each (group, x) cell (the
 * other axes: seeds, ...), bars from the smallest to the largest value. */
static int fig_metric(const sweep_grid *g, const char *dir, const row *rows, int k, char *name,
                      size_t ncap) {
    const grid_figure *fg = &g->figures[k];
    int ax = grid_axis_find(g, fg->x), gx = fg->group ? grid_axis_find(g, fg->group) : -1;
    int nx = g->axes[ax].n, ng = gx >= 0 ? g->axes[gx].n : 1, col = col_index(fg->y), done = 0;
    int logx = use_logx(g, fg, ax);
    if (fg->group) cli_fmt(name, ncap, "fig%d-%s-vs-%s-by-%s", k + 1, fg->y, fg->x, fg->group);
    else cli_fmt(name, ncap, "fig%d-%s-vs-%s", k + 1, fg->y, fg->x);
    char *dp = cli_join(dir, name), dat[4200];
    if (!dp) return -1;
    cli_fmt(dat, sizeof dat, "%s.dat", dp);
    free(dp);
    char pdat[4300];
    cli_fmt(pdat, sizeof pdat, "%.*s-points.dat", (int)(strlen(dat) - 4), dat);
    double *vals = malloc(sizeof *vals * (size_t)(g->npoints + 1));
    FILE *d = vals ? fopen(dat, "w") : NULL, *pd = d && fg->points ? fopen(pdat, "w") : NULL;
    if (!d || (fg->points && !pd)) {
        if (d) fclose(d);
        free(vals);
        return -1;
    }
    if (pd) fprintf(pd, "# one block per %s: x (jittered),%s of every finished point\n",
                    fg->group ? fg->group : "(all)", fg->y);
    for (int i = 0; i < g->npoints; i++) done += rows[i].finished;
    fprintf(d, "# one block per %s: x,median,min,max,count of %s\n", fg->group ? fg->group : "(all)",
            fg->y);
    int blocks = 0;
    char labels[64][128];
    double xlo = INFINITY, xhi = -INFINITY;
    for (int xi = 0; xi < nx; xi++) {
        xlo = fmin(xlo, x_val(g, fg, ax, xi));
        xhi = fmax(xhi, x_val(g, fg, ax, xi));
    }
    for (int gi = 0; gi < ng && blocks < 64; gi++) {
        int wrote = 0, gi0 = -1;
        for (int xi = 0; xi < nx; xi++) {
            int m = 0, i0 = -1;
            for (int i = 0; i < g->npoints; i++) {
                const int *vi = &g->vidx[(size_t)i * (size_t)g->naxes];
                if (vi[ax] != xi || (gx >= 0 && vi[gx] != gi)) continue;
                if (i0 < 0) i0 = i;
                if (gi0 < 0) gi0 = i;
                if (!rows[i].finished || !isfinite(rows[i].v[col])) continue;
                vals[m++] = rows[i].v[col];
                if (pd) { /* a deterministic jitter of +-0.025 (log: a factor), by index */
                    double u = (double)(((unsigned)i * 2654435761u) % 1000u) / 1000.0 - 0.5;
                    double xc = dodge(x_of(g, fg, ax, i), gi, ng, logx, xhi - xlo, ng > 1 ? 0.012 : 0);
                    double xj = logx ? xc * exp(0.05 * u) : xc + 0.05 * u * (xhi > xlo ? xhi - xlo : 1);
                    fprintf(pd, "%.17g,%.17g\n", xj, rows[i].v[col]);
                }
            }
            if (!m) continue;
            qsort(vals, (size_t)m, sizeof *vals, cmp_double);
            double med = m % 2 ? vals[m / 2] : 0.5 * (vals[m / 2 - 1] + vals[m / 2]);
            double x = dodge(x_of(g, fg, ax, i0), gi, ng, logx, xhi - xlo, ng > 1 ? 0.012 : 0);
            fprintf(d, "%.17g,%.17g,%.17g,%.17g,%d\n", x, med, vals[0], vals[m - 1], m);
            wrote++;
        }
        if (!wrote) continue;
        fprintf(d, "\n\n");
        if (pd) fprintf(pd, "\n\n");
        if (gx >= 0) {
            char v[96];
            grid_value_text(g, gi0, gx, v, sizeof v);
            cli_fmt(labels[blocks], sizeof labels[blocks], "%s = %s", fg->group, v);
        } else {
            cli_fmt(labels[blocks], sizeof labels[blocks], "%s", fg->y);
        }
        blocks++;
    }
    fclose(d);
    if (pd) fclose(pd);
    free(vals);
    char what[256];
    cli_fmt(what, sizeof what, "%s vs %s%s%s: median over the other axes, bars min to max%s", fg->y,
            x_label(fg), fg->group ? " by " : "", fg->group ? fg->group : "",
            fg->points ? ", dots every point" : "");
    gp_fig fig;
    if (fig_begin(&fig, g, dir, name, fg->title ? fg->title : what, done)) return -1;
    FILE *b = GP_BODY(&fig);
    fprintf(b, "set xlabel '");
    gp_str(b, x_label(fg));
    fprintf(b, "' noenhanced\n");
    gp_ylabel(b, fg->y);
    /* the y range follows the finished points' values (gp_range), with 1
     * in it for the ratio */
    double *yv = malloc(sizeof *yv * (size_t)(g->npoints + 2)), ylo, yhi;
    size_t ny = 0;
    for (int i = 0; yv && i < g->npoints; i++)
        if (rows[i].finished) yv[ny++] = rows[i].v[col];
    if (yv && !strcmp(fg->y, "ratio")) yv[ny++] = 1;
    if (yv && gp_range(yv, ny, 0, &ylo, &yhi) == 0)
        fprintf(b, "set yrange [%s:%s]\n", gp_num(ylo), gp_num(yhi));
    free(yv);
    if (logx) fprintf(b, "set logscale x\nset format x '%%g'\nset xrange [%.9g:%.9g]\n", xlo / 1.4,
                      xhi * 1.4);
    if (!logx) fprintf(b, "set offsets graph 0.04, graph 0.04, 0, 0\n");
    gp_x2_values(b, g, fg, ax);
    if (!g->axes[ax].num || (nx <= 16 && fg->xscale != GRID_X_LN_INV)) { /* a tic per value */
        fprintf(b, "set xtics (");
        for (int xi = 0; xi < nx; xi++) {
            char v[96];
            if (g->axes[ax].str) cli_fmt(v, sizeof v, "%s", g->axes[ax].str[xi]);
            else grid_num_text(v, sizeof v, g->axes[ax].num[xi]);
            fprintf(b, "%s'", xi ? ", " : "");
            gp_str(b, v);
            fprintf(b, "' %.17g", g->axes[ax].num ? g->axes[ax].num[xi] : xi);
        }
        fprintf(b, ")\n");
    }
    if (!strcmp(fg->y, "ratio"))
        fprintf(b, "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 3 lw 1 lc rgb 'black'\n");
    gp_key_below(b, blocks > 1 ? blocks : 0, 4);
    fprintf(b, "plot ");
    for (int q = 0; fg->points && q < blocks; q++)
        fprintf(b, "'%s-points.dat' index %d using 1:2 with points pt 7 ps 0.3 lt %d notitle, ", name,
                q, q + 1);
    for (int q = 0; q < blocks; q++) {
        fprintf(b, "%s'%s.dat' index %d using 1:2:3:4 with yerrorlines lw 1.5 pt %d ps 0.7 lt %d "
                   "title '", q ? ", \\\n     " : "", name, q, 5 + 2 * (q % 4), q + 1);
        gp_str(b, labels[q]);
        fprintf(b, "' noenhanced");
    }
    if (!blocks) fprintf(b, "NaN notitle");
    fprintf(b, "\n");
    return gp_end(&fig);
}

/* ------------------------------------------------------------ command */

static void report_help(void) {
    printf("usage: marginflow sweep-report DIR [-q]\n"
           "\n"
           "The table and figures of the sweep in DIR (made by marginflow sweep; the grid is\n"
           "read from DIR/sweep.json). Writes\n"
           "  DIR/results.csv   one row per point: index, id, the axes, status (finished |\n"
           "                    missing), outcome, verdict, class, steps, log10_time,\n"
           "                    log10_loss, norm, q_min, normalized_margin, smoothed_margin,\n"
           "                    layer_margin, train_error, balancedness, eps, delta, ll_eps,\n"
           "                    n_kinks, gamma_star, ratio, wall_seconds (docs/sweeps.md);\n"
           "                    pandas.read_csv reads it as is\n"
           "  DIR/fig<k>-*.gp   the grid's figures (gnuplot scripts with .dat, .png, .svg):\n"
           "                    fractions per class / verdict / outcome with 95%% Wilson\n"
           "                    intervals, and any column against an axis, grouped by another\n"
           "and prints the fraction tables. It may run while the sweep still runs (missing\n"
           "points are rows with status missing, left out of the figures).\n"
           "\n"
           "  -q, --quiet   print only errors\n"
           "  -h, --help    this help\n"
           "\n"
           "exit codes: 0 written, 1 I/O error or gnuplot failed (scripts kept),\n"
           "            2 bad usage or DIR is not a sweep directory\n");
}

int cli_sweep_report(int argc, char **argv) {
    const char *dir = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            report_help();
            return CLI_EXIT_OK;
        }
        if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) quiet = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("sweep-report: unknown option '%s'; see marginflow sweep-report --help", argv[i]);
            return CLI_EXIT_USAGE;
        } else if (dir) {
            cli_error("sweep-report: more than one directory ('%s' and '%s')", dir, argv[i]);
            return CLI_EXIT_USAGE;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        cli_error("sweep-report: give the sweep directory (see marginflow sweep-report --help)");
        return CLI_EXIT_USAGE;
    }
    sweep_grid g;
    char why[MF_ERR_LEN];
    if (sweep_grid_read(dir, &g, why, sizeof why)) {
        cli_error("sweep-report: %s", why);
        grid_free(&g);
        return CLI_EXIT_USAGE;
    }
    row *rows = calloc((size_t)g.npoints, sizeof *rows);
    if (!rows) {
        cli_error("sweep-report: out of memory");
        grid_free(&g);
        return CLI_EXIT_ERROR;
    }
    int done = 0, code = CLI_EXIT_OK;
    for (int i = 0; i < g.npoints; i++) {
        load_row(&g, dir, i, &rows[i]);
        done += rows[i].finished;
    }
    if (write_csv(&g, dir, rows)) code = CLI_EXIT_ERROR;
    else if (!quiet) printf("%s/results.csv: %d rows, %d finished\n", dir, g.npoints, done);
    for (int k = 0; k < g.nfigures; k++) {
        char name[256];
        int rc = !strcmp(g.figures[k].kind, "fractions")
                     ? fig_fractions(&g, dir, rows, k, quiet, name, sizeof name)
                     : fig_metric(&g, dir, rows, k, name, sizeof name);
        if (rc) {
            cli_error("sweep-report: figure %s failed (gnuplot missing or failing; see %s/%s.log)",
                      name, dir, name);
            code = CLI_EXIT_ERROR;
        } else if (!quiet) {
            printf("%s/%s.png (and .pdf, .svg, .gp)\n", dir, name);
        }
    }
    free(rows);
    grid_free(&g);
    return code;
}

/*
 * figures.c -- the figures and the report of `marginflow reproduce`.
 *
 * Every figure is a gnuplot script DIR/<claim>/fig-<kind>.gp written
 * through cli/gp.h (the look every marginflow figure shares: 4.5 x 3 in
 * panels, 9 pt text, PDF, SVG and PNG at 300 dpi, the colour-blind safe
 * palette, the key below the plot). It reads the run directories'
 * metrics.csv (columns found by name in the header) or a small .dat file
 * written next to it, and is kept so that it can be edited and re-run
 * (`cd DIR/<claim> && gnuplot fig-margin.gp`). Flow times reach 10^10000
 * and beyond, so time axes are log10 t taken from the log10_time column
 * (never t itself), and log10 log10 t once the horizon passes t = 10^100.
 * Runs of one group (the same run of the claim file and vary value, seeds
 * apart) share a colour and one key entry. Titles say what a figure shows,
 * with the claim's title below.
 *   margin   normalized (solid) and smoothed (dashed) margin vs log10 t, gamma*
 *   loss     log10 Loss vs log10 t with the [LL20] reference
 *            Loss ~ 1 / (t (ln t)^{2-2/L}); below it log10(Loss t) vs
 *            log10 ln t, where the reference is a line of slope -(2-2/L)
 *   norm     log10 ||theta|| vs log10 ln t with the reference slope 1/L
 *   cosine   [LLWA21] cos(w_k, mu) of every hidden unit vs log10 t (and with
 *            w_svm when the claim gives "w_ref")
 *   neurons  2-D data: the data points and the unit directions w_k (arrows,
 *            length ||w_k|| / max ||w||, colour = sign of a_k) at the start,
 *            at alignment and at the end
 *   sweep    outcome fractions per group with 95% Wilson intervals, or the
 *            escape times vs ln(1/sigma) with the fitted and predicted slope
 *   layer-margin  the per-layer margin q_min / prod_l ||W_l|| vs log10 t
 *   kkt      NNLS eps, delta and Lyu & Li's eps (mf_analyze) at up to 16
 *            logged snapshots vs log10 t (runs with snapshots); values below
 *            the range that the others set are marks on the bottom axis
 *   regions  2-D data: Phi(x) / q_min of the final parameters over a grid
 *            (sign = decision region, |.| >= 1 beyond the margin), data on top
 *   epochs   epoch runs, [LL20] Fig. 1's panels against the epoch: log10 of the
 *            mean training loss, the per-layer normalized margin
 *            q_min / prod_l ||W_l||, q_min / ||theta||^L, the test accuracy
 *   robust   drawn by the `robust` check (robust accuracy vs eps per archived
 *            state, and vs epoch): fig-robust-eps / fig-robust-epoch
 * The report (report.md, report.html) is assembled from the claims'
 * result.json files.
 */
#define _XOPEN_SOURCE 700
#include "reproduce.h"

#include "gp.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MADE_BY "marginflow reproduce"

static FILE *open_in(const rp_claim *c, const char *name) {
    char *p = cli_join(c->dir, name);
    FILE *f = p ? fopen(p, "w") : NULL;
    free(p);
    return f;
}

/* Remove c->dir/name (a figure's data file when the figure does not apply). */
static void remove_in(const rp_claim *c, const char *name) {
    char *p = cli_join(c->dir, name);
    if (p) remove(p);
    free(p);
}

/* One field of a figure's data file: sep, then v (%.*g) or nothing when v is
 * absent (NaN or infinite): "set datafile missing ''" makes gnuplot skip
 * it, and no "nan" is written (the metrics.csv convention). */
static void dat(FILE *d, const char *sep, double v, int digits) {
    fputs(sep, d);
    if (isfinite(v)) fprintf(d, "%.*g", digits, v);
}

/* The column of metrics.csv holding `name` (this build wrote the runs). */
static int mcol(const char *name) { return gp_csv_col(mf_metrics_csv_header(), name); }

/* The runs drawn: at most 24 (the first ones). */
static int n_drawn(const rp_claim *c) { return c->nruns < 24 ? c->nruns : 24; }

/* Whether runs i and j are of one group: the same run of the claim file
 * and the same vary value (seeds apart). */
static int same_group(const rp_run *a, const rp_run *b) {
    return !strcmp(a->base, b->base) && a->has_vary == b->has_vary &&
           (!a->has_vary || a->vary == b->vary);
}

/* Whether run i is the first run of its group (it carries the key entry). */
static int first_of_group(const rp_claim *c, int i) {
    for (int j = 0; j < i; j++)
        if (same_group(&c->runs[j], &c->runs[i])) return 0;
    return 1;
}

/* The group index of run i (groups numbered in the order of their first
 * runs), and the number of groups among the drawn runs. */
static int group_of(const rp_claim *c, int i) {
    int g = 0;
    for (int j = 0; j < i; j++) {
        if (!first_of_group(c, j)) continue;
        if (same_group(&c->runs[j], &c->runs[i])) return g;
        g++;
    }
    return g;
}

static int n_groups(const rp_claim *c) {
    int n = 0;
    for (int i = 0; i < n_drawn(c); i++) n += first_of_group(c, i);
    return n;
}

/* A human key label of run r's group: the run's name in the claim file
 * when the claim has several, the varied quantity and its value ("sigma =
 * 1e-05"), "n seeds" when seeds are pooled. */
static void group_label(const rp_claim *c, const rp_run *r, char *b, size_t cap) {
    int bases = 0, seeds = 0;
    for (int i = 0; i < c->nruns; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++) first = strcmp(c->runs[i].base, c->runs[j].base) != 0;
        bases += first;
        seeds += same_group(&c->runs[i], r);
    }
    b[0] = '\0';
    if (bases > 1) cli_cat(b, cap, "%s", r->base);
    if (r->has_vary) cli_cat(b, cap, "%s%s = %g", b[0] ? ", " : "", r->var, r->vary);
    if (seeds > 1) cli_cat(b, cap, "%s%d seeds", b[0] ? ", " : "", seeds);
    if (!b[0]) cli_cat(b, cap, "%s", r->model_spec);
}

/* The plot-clause title of drawn run i: its group's label for the first
 * run of a group when there are several groups, else notitle. */
static void clause_title(FILE *b, const rp_claim *c, int i, int groups, const char *suffix) {
    if (groups < 2 || !first_of_group(c, i)) {
        fputs(" notitle", b);
        return;
    }
    char lab[200];
    group_label(c, &c->runs[i], lab, sizeof lab);
    fputs(" title '", b);
    gp_str(b, lab);
    gp_str(b, suffix);
    fputs("' noenhanced", b);
}

/* One plot clause per finished drawn run reading its metrics.csv with
 * `using x:y` (gnuplot using fields), coloured by group, comma-separated
 * (the caller writes "plot " before and what follows after). epochs: x is
 * the number of the epoch column, and a run that starts from another's
 * final parameters (init.from_run) is its continuation, drawn from that
 * run's last epoch on. */
static void run_lines(FILE *b, const rp_claim *c, int groups, const char *x, const char *y,
                      int epochs) {
    for (int i = 0, k = 0; i < n_drawn(c); i++) {
        const rp_run *r = &c->runs[i];
        if (!r->done) continue;
        const int src = epochs ? r->init_from_index : -1;
        fprintf(b, "%s'", k++ ? ", " : "");
        gp_str(b, r->name);
        if (src >= 0 && c->runs[src].done)
            fprintf(b, "/metrics.csv' skip 1 using ($%s + %lld):%s lt %d", x,
                    c->runs[src].res.final.epoch, y, group_of(c, i) + 1);
        else
            fprintf(b, "/metrics.csv' skip 1 using %s:%s lt %d", x, y, group_of(c, i) + 1);
        clause_title(b, c, i, groups, src >= 0 ? " (continued)" : "");
    }
}

/* The largest log10 t of the drawn runs' last rows (0 when none). */
static double max_log10_t(const rp_claim *c) {
    double xmax = 0;
    for (int i = 0; i < n_drawn(c); i++)
        if (c->runs[i].done && c->runs[i].nrows)
            xmax = fmax(xmax, c->runs[i].rows[c->runs[i].nrows - 1].time_log / LN10);
    return xmax;
}

/* Normalized (and smoothed) margin vs log10 t; layer != 0: the per-layer
 * margin q_min / prod_l ||W_l|| instead. The y range follows the margins
 * (gp_range over every drawn value, smoothed margins only where positive,
 * and gamma*), starting at 0 when they are positive. */
static int fig_margin(const rp_claim *c, gp_fig *g, int layer) {
    FILE *b = GP_BODY(g);
    double xmax = max_log10_t(c);
    int lt = mcol("log10_time"), cn = mcol(layer ? "layer_margin" : "normalized_margin");
    int cs = mcol("smoothed_margin"), groups = n_groups(c), smooth = !layer && n_drawn(c) <= 4;
    char xe[128];
    if (xmax > 100) cli_fmt(xe, sizeof xe, "($%d > 0 ? log10($%d) : 1/0)", lt, lt);
    else cli_fmt(xe, sizeof xe, "%d", lt);
    /* the values drawn, for the range */
    size_t nv = 0, cap = 1;
    for (int i = 0; i < n_drawn(c); i++) cap += 2 * (size_t)c->runs[i].nrows;
    double *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    int any = 0;
    for (int i = 0; i < n_drawn(c); i++) {
        const rp_run *r = &c->runs[i];
        if (!r->done) continue;
        any = 1;
        for (int k = 0; k < r->nrows; k++) {
            double tl = r->rows[k].time_log; /* only the rows drawn: x finite */
            if (!isfinite(tl) || (xmax > 100 && !(tl > 0))) continue;
            v[nv++] = layer ? r->rows[k].layer_margin : r->rows[k].normalized_margin;
            /* gamma~ > 0 exactly where Loss < ell(0), the regime of [LL20]'s
             * theorem; before it gamma~ can be far below 0 (-17 on sym4 from
             * a 1e-6 init) and is left to the frame, not the range */
            if (smooth && r->rows[k].smoothed_margin > 0) v[nv++] = r->rows[k].smoothed_margin;
        }
    }
    double lo, hi;
    int ranged = any && gp_range(v, nv, GP_RANGE_ROBUST, &lo, &hi) == 0;
    free(v);
    if (!any) return 1;
    int gs = isfinite(c->gamma_star) && !layer;
    if (ranged) {
        if (gs) { /* gamma* inside, and the data still 4% of the range off the frame */
            double dlo = lo, dhi = hi;
            lo = fmin(lo, 0.96 * c->gamma_star), hi = fmax(hi, 1.04 * c->gamma_star);
            lo = fmin(lo, dlo - 0.04 * (hi - lo)), hi = fmax(hi, dhi + 0.04 * (hi - lo));
        }
        if (lo > 0 && lo < 0.35 * hi) lo = 0;
        fprintf(b, "set yrange [%s:%s]\n", gp_num(lo), gp_num(hi));
    }
    gp_title(g, layer ? "Per-layer margin" : smooth ? "Normalized and smoothed margin" : "Normalized margin",
             c->title);
    fprintf(b, "set xlabel '%s'\nset ylabel '%s'\n", xmax > 100 ? GP_LABEL_LOGLOG_T : GP_LABEL_LOG10_T,
            layer ? "per-layer margin q_{min} / ∏_l ‖W_l‖" : GP_LABEL_GAMMA);
    int entries = (groups > 1 ? groups : 0) + (smooth ? 2 : 0) + gs;
    gp_key_below(b, entries, 3);
    fprintf(b, "plot ");
    int k = 0;
    for (int i = 0; i < n_drawn(c); i++) {
        const rp_run *r = &c->runs[i];
        if (!r->done) continue;
        int col = group_of(c, i) + 1;
        fprintf(b, "%s'", k++ ? ", \\\n     " : "");
        gp_str(b, r->name);
        fprintf(b, "/metrics.csv' skip 1 using %s:%d lt %d", xe, cn, col);
        clause_title(b, c, i, groups, "");
        if (smooth) {
            fprintf(b, ", '");
            gp_str(b, r->name);
            fprintf(b, "/metrics.csv' skip 1 using %s:%d lt %d dt 2 notitle", xe, cs, col);
        }
    }
    if (smooth)
        fprintf(b, ", \\\n     NaN lc rgb '#404040' title 'γ (normalized)', NaN lc rgb '#404040' dt 2 "
                   "title 'γ̃ (smoothed)'");
    if (gs) {
        int hom = c->nruns > 0 && c->runs[0].model && c->runs[0].model->homogeneous;
        fprintf(b, ", \\\n     %s lc rgb 'black' lw 1 dt 3 title '%s = %.6g'", gp_num(c->gamma_star),
                hom ? "γ*" : "reference", c->gamma_star);
    }
    fputc('\n', b);
    return 0;
}

/* Epoch runs ([LL20] Fig. 1): four panels against the epoch from the epoch
 * metrics.csv (columns 2 epoch, 4 log10 mean loss, 6 test accuracy, 7
 * normalized margin, 8 per-layer margin). */
static int fig_epochs(const rp_claim *c, gp_fig *g) {
    static const struct {
        const char *col, *label;
    } panel[4] = {{"log10_mean_loss", "log_{10} training loss (mean)"},
                  {"layer_margin", "q_{min} / ∏_l ‖W_l‖"},
                  {"normalized_margin", "q_{min} / ‖θ‖^L"},
                  {"test_acc", "test accuracy"}};
    int k = 0, groups = n_groups(c);
    for (int i = 0; i < n_drawn(c); i++) k += c->runs[i].done && c->runs[i].rows && c->runs[i].rows[0].epoch >= 0;
    if (!k || k != n_drawn(c)) return 1; /* every drawn run an epoch run: one column layout */
    FILE *b = GP_BODY(g);
    const char *hdr = mf_epoch_csv_header();
    gp_key_below(b, (groups > 1 ? groups : k), 3);
    gp_multiplot(g, 2, 2, "Loss and margins per epoch ([LL20] Fig. 1)", 0, c->title);
    fprintf(b, "set xlabel 'epoch'\n");
    char x[16];
    cli_fmt(x, sizeof x, "%d", gp_csv_col(hdr, "epoch"));
    for (int p = 0; p < 4; p++) {
        char y[16];
        cli_fmt(y, sizeof y, "%d", gp_csv_col(hdr, panel[p].col));
        fprintf(b, "set ylabel '%s'\nplot ", panel[p].label);
        run_lines(b, c, groups, x, y, 1);
        fprintf(b, "\n");
    }
    return 0;
}

/* KKT residuals over time: for up to 4 runs with snapshots, mf_analyze's NNLS
 * eps and delta and Lyu & Li's certificate eps at up to 16 separating logged
 * rows evenly spaced in row index (the rows are log-spaced in steps). The
 * y range follows the residuals (gp_range in log10); a value below it (a
 * delta of 1e-16: zero up to rounding) is a mark on the bottom axis. */
static int fig_kkt(const rp_claim *c, gp_fig *g) {
    FILE *d = open_in(c, "fig-kkt.dat");
    if (!d) return -1;
    int blocks = 0, rows = 0;
    double xmax = 0, vals[4 * 16 * 3];
    size_t nv = 0;
    int runi[4];
    fprintf(d, "log10_time,eps,delta,lyu_li_eps\n");
    for (int i = 0; i < c->nruns && blocks < 4; i++) {
        const rp_run *r = &c->runs[i];
        if (!r->done || !r->snapshots || r->nrows < 2) continue;
        int k0 = 0;
        while (k0 < r->nrows && !(r->rows[k0].q_min > 0)) k0++;
        if (r->nrows - k0 < 2) continue;
        int npick = r->nrows - k0 < 16 ? r->nrows - k0 : 16, wrote = 0, last = -1;
        for (int p = 0; p < npick; p++) {
            int k = k0 + (int)((double)p * (r->nrows - 1 - k0) / (npick - 1) + 0.5);
            if (k == last) continue;
            last = k;
            double ep, de, ll;
            if (rp_kkt_at(c, r, k, &ep, &de, &ll)) continue;
            dat(d, "", r->rows[k].time_log / LN10, 9), dat(d, ",", ep, 9), dat(d, ",", de, 9);
            dat(d, ",", ll, 9), fputc('\n', d);
            vals[nv++] = ep, vals[nv++] = de, vals[nv++] = ll;
            xmax = fmax(xmax, r->rows[k].time_log / LN10);
            wrote++;
        }
        fprintf(d, "\n\n");
        if (wrote) runi[blocks++] = i, rows += wrote;
        else break; /* an empty block would shift the indices: stop here */
    }
    fclose(d);
    /* a relative residual below 1e-10 is zero up to rounding: it is a mark
     * on the bottom axis, and the range follows the others */
    double lo, hi, kept[4 * 16 * 3];
    size_t nk = 0;
    int tiny = 0;
    for (size_t k = 0; k < nv; k++) {
        if (vals[k] >= 1e-10) kept[nk++] = vals[k];
        else tiny |= vals[k] >= 0;
    }
    if (!blocks || gp_range(kept, nk, GP_RANGE_LOG, &lo, &hi)) {
        remove_in(c, "fig-kkt.dat");
        return 1;
    }
    int below = 0;
    for (size_t k = 0; k < nv; k++) below |= vals[k] >= 0 && vals[k] < lo;
    FILE *b = GP_BODY(g);
    char xe[64];
    cli_fmt(xe, sizeof xe, xmax > 100 ? "($1 > 0 ? log10($1) : 1/0)" : "1");
    gp_title(g, "KKT residuals of (P) along the run", c->title);
    fprintf(b, "set xlabel '%s'\nset ylabel 'KKT residual'\nset logscale y\nset format y '10^{%%T}'\n"
               "set mytics 10\nset yrange [%s:%s]\n",
            xmax > 100 ? GP_LABEL_LOGLOG_T : GP_LABEL_LOG10_T, gp_num(lo), gp_num(hi));
    gp_key_below(b, (blocks > 1 ? blocks : 0) + 3 + below, 4);
    fprintf(b, "plot ");
    for (int q = 0; q < blocks; q++) {
        const rp_run *r = &c->runs[runi[q]];
        int col = q + 1;
        fprintf(b, "%s'fig-kkt.dat' skip 1 index %d using %s:($2 >= %s ? $2 : 1/0) with linespoints "
                   "pt 7 lt %d",
                q ? ", \\\n     " : "", q, xe, gp_num(lo), col);
        if (blocks > 1) {
            fprintf(b, " title '");
            gp_str(b, r->name);
            fprintf(b, "' noenhanced");
        }
        fprintf(b, ", '' skip 1 index %d using %s:($3 >= %s ? $3 : 1/0) with linespoints pt 6 dt 2 lt %d "
                   "notitle, '' skip 1 index %d using %s:($4 >= %s ? $4 : 1/0) with lines dt 3 lt %d notitle",
                q, xe, gp_num(lo), col, q, xe, gp_num(lo), col);
        if (below)
            fprintf(b, ", '' skip 1 index %d using %s:(($2 >= 0 && $2 < %s) || ($3 >= 0 && $3 < %s) || "
                       "($4 >= 0 && $4 < %s) ? %s : 1/0) with points pt 11 ps 0.6 lt %d notitle",
                    q, xe, gp_num(lo), gp_num(lo), gp_num(lo), gp_num(lo * 1.15), col);
    }
    fprintf(b, ", \\\n     NaN with linespoints pt 7 lc rgb '#404040' title 'ε (NNLS)', NaN with "
               "linespoints pt 6 dt 2 lc rgb '#404040' title 'δ (NNLS)', NaN dt 3 lc rgb '#404040' "
               "title 'ε (Lyu & Li)' noenhanced");
    if (below)
        fprintf(b, ", NaN with points pt 11 ps 0.6 lc rgb '#404040' title '%s' noenhanced",
                tiny ? "≈ 0 (< 1e-10)" : "below the axis");
    fputc('\n', b);
    (void)rows;
    return 0;
}

/* Decision regions of the first finished run on 2-D binary data: Phi(x) / q_min
 * of the final parameters over a 161 x 161 grid (clipped to [-2, 2]; |value|
 * >= 1 is beyond the margin), the data (filled: +1, open: -1) on top. */
static int fig_regions(const rp_claim *c, gp_fig *g) {
    const rp_run *r = NULL;
    for (int i = 0; i < c->nruns && !r; i++)
        if (c->runs[i].done && c->runs[i].data->d == 2 && c->runs[i].data->num_classes == 0)
            r = &c->runs[i];
    if (!r) return 1;
    enum { G = 161 };
    double xmax = 0;
    for (int n = 0; n < r->data->n; n++)
        for (int j = 0; j < 2; j++) xmax = fmax(xmax, fabs(r->data->x[2 * n + j]));
    double lim = 1.25 * (xmax > 0 ? xmax : 1), qm = r->res.final.q_min;
    if (!(qm > 0)) qm = 1;
    mf_work *w = NULL;
    mf_err e = {0, ""};
    double *xs = malloc(sizeof(double) * 2 * G), *out = malloc(sizeof(double) * G);
    FILE *d = open_in(c, "fig-regions.dat");
    if (!xs || !out || !d || mf_work_new(r->model, G, &w, &e)) {
        free(xs), free(out), mf_work_free(w);
        if (d) fclose(d);
        return -1;
    }
    int bad = 0;
    for (int iy = 0; iy < G && !bad; iy++) {
        double y = -lim + 2 * lim * iy / (G - 1);
        for (int ix = 0; ix < G; ix++) xs[2 * ix] = -lim + 2 * lim * ix / (G - 1), xs[2 * ix + 1] = y;
        bad = mf_model_forward(r->model, w, r->theta, xs, G, out) != MF_OK;
        for (int ix = 0; ix < G && !bad; ix++) {
            dat(d, "", xs[2 * ix], 6), dat(d, ",", y, 6), dat(d, ",", fmax(-2, fmin(2, out[ix] / qm)), 6);
            fputc('\n', d);
        }
        fputc('\n', d);
    }
    fprintf(d, "\n# data x1,x2,label\n");
    for (int n = 0; n < r->data->n; n++)
        fprintf(d, "%.9g,%.9g,%d\n", r->data->x[2 * n], r->data->x[2 * n + 1], r->data->y[n] > 0 ? 1 : 2);
    fclose(d);
    free(xs), free(out), mf_work_free(w);
    if (bad) return -1;
    FILE *b = GP_BODY(g);
    char sub[600];
    cli_fmt(sub, sizeof sub, "%s%sfinal parameters of run %s; filled: y = +1, open: y = -1", c->title,
            c->title[0] ? " -- " : "", r->name);
    gp_title(g, "Decision regions Φ(x) / q_{min}", sub);
    fprintf(b, "set size ratio -1\nset xrange [%s:%s]\nset yrange [%s:%s]\nset xlabel 'x_1'\n"
               "set ylabel 'x_2'\nset key off\nset grid front\nset cbrange [-2:2]\nset cbtics 1\n"
               "set cblabel 'Φ(x) / q_{min}   (|·| ≥ 1: beyond the margin)'\n"
               "set palette defined (-2 '#b2182b', -1 '#ef8a62', -0.001 '#fddbc7', 0.001 '#d1e5f0', "
               "1 '#67a9cf', 2 '#2166ac')\n"
               "plot 'fig-regions.dat' index 0 using 1:2:3 with image, "
               "'' index 1 using 1:2:($3 == 1 ? 7 : 6) with points pt variable ps 1.2 lc rgb 'black'\n",
            gp_num(-lim), gp_num(lim), gp_num(-lim), gp_num(lim));
    return 0;
}

/* The loss (norm = 0: two panels) or norm figure of the first run with
 * enough rows, against the rates of [LL20] through its last row. */
static int fig_loss(const rp_claim *c, gp_fig *g, int norm) {
    const rp_run *r = NULL;
    for (int i = 0; i < c->nruns && !r; i++)
        if (c->runs[i].done && c->runs[i].nrows > 2) r = &c->runs[i];
    if (!r) return 1;
    const mf_metrics *e = &r->rows[r->nrows - 1];
    if (!(e->time_log > LN10)) return 1; /* needs t > 10 */
    int L = r->model->degree, groups = n_groups(c);
    int lt = mcol("log10_time"), ll = mcol("log10_loss"), ln = mcol("norm");
    double p = 2.0 - 2.0 / L;
    double xe = e->time_log / LN10, le = e->log10_loss;
    double xl = log10(e->time_log); /* log10 ln t at the end */
    /* the reference lines go through the last row: it needs its values (a
     * NaN would reach the script as "nan") */
    int ends = isfinite(xe) && isfinite(xl) &&
               (norm ? e->norm > 0 && isfinite(e->norm) : isfinite(le) != 0);
    if (!ends) return 1;
    FILE *b = GP_BODY(g);
    char lnt[96];
    cli_fmt(lnt, sizeof lnt, "($%d > 0.5 ? log10($%d * log(10)) : 1/0)", lt, lt);
    gp_key_below(b, (groups > 1 ? groups : 0) + 1, 3);
    if (!norm) {
        /* reference through the last row: log10 L = -x - p log10(x ln10) + c */
        double c0 = le + xe + p * xl;
        gp_multiplot(g, 2, 1, "Loss rate of [LL20]: Loss = Θ(1 / (t (ln t)^{2-2/L}))", 0, c->title);
        fprintf(b, "set format x '%%h'\nset format y '%%h'\nset xlabel '%s'\nset ylabel 'log_{10} Loss'\n",
                GP_LABEL_LOG10_T);
        fprintf(b, "plot [0:*] ");
        char u[16], v[96];
        cli_fmt(u, sizeof u, "%d", lt);
        cli_fmt(v, sizeof v, "%d", ll);
        run_lines(b, c, groups, u, v, 0);
        fprintf(b, ", x > 0 ? -x - %s * log10(x * log(10)) + %s : 1/0 lc rgb 'black' lw 1 dt 2 "
                   "title 'Θ(1 / (t (ln t)^{%.3g}))'\n",
                gp_num(p), gp_num(c0), p);
        fprintf(b, "set xlabel '%s'\nset ylabel 'log_{10} (Loss · t)'\nplot ", GP_LABEL_LOG10_LN_T);
        cli_fmt(v, sizeof v, "($%d + $%d)", ll, lt);
        run_lines(b, c, groups, lnt, v, 0);
        fprintf(b, ", %s - %s * (x - %s) lc rgb 'black' lw 1 dt 2 title 'slope -(2 - 2/L) = %.3g'\n",
                gp_num(le + xe), gp_num(p), gp_num(xl), -p);
    } else {
        double ne = log10(e->norm);
        gp_title(g, "Norm growth of [LL20]: ‖θ‖ = Θ((ln t)^{1/L})", c->title);
        fprintf(b, "set xlabel '%s'\nset ylabel 'log_{10} ‖θ‖'\nplot ", GP_LABEL_LOG10_LN_T);
        char v[96];
        cli_fmt(v, sizeof v, "(log10($%d))", ln);
        run_lines(b, c, groups, lnt, v, 0);
        fprintf(b, ", %s + (x - %s) / %d.0 lc rgb 'black' lw 1 dt 2 title 'slope 1/L, L = %d'\n",
                gp_num(ne), gp_num(xl), L, L);
    }
    return 0;
}

/* The first run with snapshots of a relu2 model (a two-layer net without
 * output bias, at most 64 units). */
static const rp_run *snap_run(const rp_claim *c) {
    mf_units u;
    for (int i = 0; i < c->nruns; i++)
        if (c->runs[i].done && c->runs[i].snapshots && mf_model_units(c->runs[i].model, &u) &&
            u.b_layer < 0 && u.n_units <= 64)
            return &c->runs[i];
    return NULL;
}

static int fig_cosine(const rp_claim *c, gp_fig *g) {
    const rp_run *r = snap_run(c);
    mf_units u;
    if (!r || !c->has_mu || !mf_model_units(r->model, &u)) return 1;
    int M = u.n_units;
    FILE *d = open_in(c, "fig-cosine.dat");
    if (!d) return -1;
    double cs[64], cw[64];
    fprintf(d, "# log10_time,cos(w_k,mu) k=1..%d%s\n", M, c->has_wref ? ",cos(w_k,w_ref) k=1..M" : "");
    for (int k = 0; k < r->nrows; k++) {
        if (!isfinite(r->rows[k].time_log)) continue;
        const double *th = r->snaps + (size_t)k * r->model->n_params;
        rp_unit_cosines(r->model, th, c->mu, cs);
        if (c->has_wref) rp_unit_cosines(r->model, th, c->wref, cw);
        dat(d, "", r->rows[k].time_log / LN10, 9);
        for (int j = 0; j < M; j++) dat(d, ",", cs[j], 9);
        for (int j = 0; c->has_wref && j < M; j++) dat(d, ",", cw[j], 9);
        fputc('\n', d);
    }
    fclose(d);
    /* the x range ends where the cosines stop changing (every one within
     * 0.002 of its final value from there on), plus a fifth of the span */
    int settle = 0, first = -1;
    double cf[64], wf[64];
    const double *thf = r->snaps + (size_t)(r->nrows - 1) * r->model->n_params;
    rp_unit_cosines(r->model, thf, c->mu, cf);
    if (c->has_wref) rp_unit_cosines(r->model, thf, c->wref, wf);
    for (int k = 0; k < r->nrows; k++) {
        if (!isfinite(r->rows[k].time_log)) continue;
        if (first < 0) first = k;
        const double *th = r->snaps + (size_t)k * r->model->n_params;
        rp_unit_cosines(r->model, th, c->mu, cs);
        if (c->has_wref) rp_unit_cosines(r->model, th, c->wref, cw);
        for (int j = 0; j < M; j++)
            if (fabs(cs[j] - cf[j]) > 0.002 || (c->has_wref && fabs(cw[j] - wf[j]) > 0.002)) settle = k + 1;
    }
    double x0 = first >= 0 ? r->rows[first].time_log / LN10 : 0;
    double x1 = r->rows[r->nrows - 1].time_log / LN10;
    double xs = settle < r->nrows ? r->rows[settle].time_log / LN10 : x1;
    double xcut = fmin(x1, xs + 0.2 * (xs - x0));
    FILE *b = GP_BODY(g);
    char sub[700];
    cli_fmt(sub, sizeof sub, "%s%s%d hidden units of run %s", c->title, c->title[0] ? " -- " : "", M,
            r->name);
    if (xcut < x1 && x1 > x0) {
        cli_cat(sub, sizeof sub, "; after log10 t = %.3g every cosine stays within 0.002 of its final "
                "value (the run ends at log10 t = %.4g)", xs, x1);
        fprintf(b, "set xrange [%s:%s]\n", gp_num(x0), gp_num(xcut));
    }
    gp_title(g, "Alignment of the hidden units: cos(w_{k}, μ), μ = Σ_{n} y_{n} x_{n} / N", sub);
    fprintf(b, "set xlabel '%s'\nset ylabel 'cosine'\nset yrange [-1.05:1.05]\nset ytics 0.5\n",
            GP_LABEL_LOG10_T);
    gp_key_below(b, c->has_wref ? 2 : 1, 2);
    fprintf(b, "plot for [k=2:%d] 'fig-cosine.dat' skip 1 using 1:k lc rgb '%s' lw 1 notitle", M + 1,
            gp_color(0));
    if (c->has_wref)
        fprintf(b, ", for [k=%d:%d] 'fig-cosine.dat' skip 1 using 1:k lc rgb '%s' lw 1 dt 2 notitle",
                M + 2, 2 * M + 1, gp_color(1));
    fprintf(b, ", NaN lc rgb '%s' title 'cos(w_k, μ)'", gp_color(0));
    if (c->has_wref) fprintf(b, ", NaN lc rgb '%s' dt 2 title 'cos(w_k, w_{ref})'", gp_color(1));
    fputc('\n', b);
    return 0;
}

/* [LLWA21] odd/even split over time (rp_odd_even) of the first relu2 run
 * with snapshots: 1 - cos(v, w_svm), v = sum_k a_k w_k (top), and the
 * nonlinearity ratio max_n |E(x_n)| / max_n |L(x_n)| (bottom), both on log
 * scales, against the logged step on a log scale (the flow times span
 * 10^-2 .. 10^(10^4): the step count shows both phases; the times are
 * column 2 of fig-odd-even.dat). */
static int fig_odd_even(const rp_claim *c, gp_fig *g) {
    const rp_run *r = snap_run(c);
    double ws[64];
    if (!r || r->data->num_classes != 0 || r->data->d > 64 || isnan(rp_svm_unit(r->data, ws))) return 1;
    FILE *d = open_in(c, "fig-odd-even.dat");
    if (!d) return -1;
    fprintf(d, "# step,log10_time,1-cos(v,w_svm),max|E|/max|L|\n");
    for (int k = 0; k < r->nrows; k++) {
        double cs, rt;
        if (r->rows[k].step < 1 ||
            rp_odd_even(r->model, r->data, r->snaps + (size_t)k * r->model->n_params, ws, &cs, &rt))
            continue;
        fprintf(d, "%lld", r->rows[k].step);
        dat(d, ",", r->rows[k].time_log / LN10, 9);
        dat(d, ",", 1 - cs, 9);
        dat(d, ",", rt, 9);
        fputc('\n', d);
    }
    fclose(d);
    FILE *b = GP_BODY(g);
    char sub[700];
    cli_fmt(sub, sizeof sub, "%s%srun %s; x: the logged steps (flow times in fig-odd-even.dat)", c->title,
            c->title[0] ? " -- " : "", r->name);
    gp_multiplot(g, 2, 1, "Odd/even split Φ = L + E of [LLWA21]", 0, sub);
    fprintf(b, "set logscale x\nset logscale y\nset format y '10^{%%L}'\nset key off\n"
               "set xlabel 'step'\nset ylabel '1 - cos(v, w_{svm}),  v = Σ_{k} a_{k} w_{k}'\n"
               "plot 'fig-odd-even.dat' skip 1 using 1:($3 > 0 ? $3 : 1/0) lc rgb '%s' lw 1.5\n"
               "set ylabel 'max_{n} |E(x_{n})| / max_{n} |L(x_{n})|'\n"
               "plot 'fig-odd-even.dat' skip 1 using 1:($4 > 0 ? $4 : 1/0) lc rgb '%s' lw 1.5\n",
            gp_color(0), gp_color(1));
    return 0;
}

static int fig_neurons(const rp_claim *c, gp_fig *g) {
    const rp_run *r = snap_run(c);
    mf_units u;
    if (!r || r->data->d != 2 || r->nrows < 2 || !mf_model_units(r->model, &u)) return 1;
    const int M = u.n_units;
    const mf_layer *W = &r->model->layers[u.w_layer];
    /* three moments: start, first row where every |cos| >= align_thr (or the
     * middle), end */
    int pick[3] = {0, r->nrows / 2, r->nrows - 1};
    double cs[64];
    for (int k = 0; k < r->nrows && c->has_mu; k++) {
        rp_unit_cosines(r->model, r->snaps + (size_t)k * r->model->n_params, c->mu, cs);
        double mn = 1;
        for (int j = 0; j < M; j++) mn = fmin(mn, fabs(cs[j]));
        if (mn >= (c->align_thr > 0 ? c->align_thr : 0.9999)) {
            pick[1] = k;
            break;
        }
    }
    FILE *d = open_in(c, "fig-neurons.dat");
    if (!d) return -1;
    double xmax = 0;
    for (int n = 0; n < r->data->n; n++)
        for (int j = 0; j < 2; j++) xmax = fmax(xmax, fabs(r->data->x[2 * n + j]));
    for (int p = 0; p < 3; p++) {
        const double *th = r->snaps + (size_t)pick[p] * r->model->n_params;
        double wmax = 0;
        for (int k = 0; k < M; k++) {
            const double *w = th + W->offset + (size_t)k * W->cols;
            wmax = fmax(wmax, hypot(w[0], w[1]));
        }
        fprintf(d, "# block %d: step %lld\n", p, r->rows[pick[p]].step);
        for (int k = 0; k < M; k++) {
            const double *w = th + W->offset + (size_t)k * W->cols;
            double s = wmax > 0 ? xmax / wmax : 0;
            dat(d, "0,0,", w[0] * s, 9), dat(d, ",", w[1] * s, 9);
            fprintf(d, ",%d\n", mf_units_outer(r->model, &u, th, k) >= 0 ? 1 : 2);
        }
        fprintf(d, "\n\n");
    }
    fprintf(d, "# block 3: data x1,x2,label\n");
    for (int n = 0; n < r->data->n; n++)
        fprintf(d, "%.9g,%.9g,%d\n", r->data->x[2 * n], r->data->x[2 * n + 1], r->data->y[n] > 0 ? 1 : 2);
    fclose(d);
    FILE *b = GP_BODY(g);
    double lim = 1.15 * xmax;
    char sub[700];
    cli_fmt(sub, sizeof sub, "%s%srun %s; arrows: w_k scaled to the data, blue: a_k > 0, orange: "
            "a_k < 0; points: filled y = +1, open y = -1", c->title, c->title[0] ? " -- " : "", r->name);
    gp_multiplot(g, 1, 3, "Directions of the hidden units", 0, sub);
    fprintf(b, "set size ratio -1\nset key off\n");
    fprintf(b, "set xrange [%s:%s]\nset yrange [%s:%s]\n", gp_num(-lim), gp_num(lim), gp_num(-lim),
            gp_num(lim));
    for (int p = 0; p < 3; p++) {
        /* a short t for the title, also beyond double range: 3 digits and
         * the full exponent ("3.98e+99994") */
        char tb[64];
        double tl = r->rows[pick[p]].time_log;
        if (tl == -INFINITY) {
            snprintf(tb, sizeof tb, "0");
        } else {
            double l10 = tl / log(10.0), E = floor(l10);
            if (fabs(l10) < 4) snprintf(tb, sizeof tb, "%.3g", pow(10.0, l10));
            else snprintf(tb, sizeof tb, "%.3ge%+.0f", pow(10.0, l10 - E), E);
        }
        fprintf(b, "set title \"%s, t = %s\" noenhanced\n", p == 0 ? "start" : p == 1 ? "aligned" : "end",
                tb);
        fprintf(b, "plot 'fig-neurons.dat' index 3 using 1:2:($3 == 1 ? 7 : 6) with points pt variable "
                   "lc rgb '#505050' ps 0.9, '' index %d using 1:2:3:4:($5 == 1 ? 0x%s : 0x%s) with "
                   "vectors head size screen 0.008,20 filled lw 1 lc rgb variable\n",
                p, gp_color(0) + 1, gp_color(1) + 1);
    }
    return 0;
}

static int fig_sweep(const rp_claim *c, gp_fig *g) {
    if (c->n_groups == 0 || !c->sweep_kind[0]) return 1;
    FILE *d = open_in(c, "fig-sweep.dat");
    if (!d) return -1;
    const char *var = "value"; /* the varied quantity of the first run that varies one */
    for (int i = c->nruns - 1; i >= 0; i--)
        if (c->runs[i].has_vary && c->runs[i].var[0]) var = c->runs[i].var;
    int frac = !strcmp(c->sweep_kind, "fraction");
    fprintf(d, "# x,y%s\n", frac ? ",low,high,k,n (95% Wilson)" : "");
    for (int q = 0; q < c->n_groups; q++) {
        dat(d, "", c->group_x[q], 9), dat(d, ",", c->group_y[q], 9);
        if (frac) {
            int n = (int)c->group_y2[q], k = (int)llround(c->group_y[q] * n);
            double lo, hi;
            gp_wilson(k, n, &lo, &hi);
            dat(d, ",", lo, 9), dat(d, ",", hi, 9), fprintf(d, ",%d,%d", k, n);
        }
        fputc('\n', d);
    }
    fclose(d);
    FILE *b = GP_BODY(g);
    if (frac) {
        gp_title(g, "Fraction of runs that end at a suboptimal limit", c->title);
        fprintf(b, "set xlabel '%s' noenhanced\nset ylabel 'runs ending at γ < %s (of those that separate)'\n"
                   "set yrange [0:1.05]\nset boxwidth 0.6\nset style fill solid 0.35 border\n"
                   "set xtics ()\nset offsets 0.6, 0.6, 0, 0\nset key off\n"
                   "plot 'fig-sweep.dat' skip 1 using 0:2:xticlabels(stringcolumn(1)) with boxes lc rgb '%s', "
                   "'' skip 1 using 0:2:3:4 with yerrorbars pt 0 lw 1 lc rgb 'black', "
                   "'' skip 1 using 0:4:(sprintf('%%d/%%d', $5, $6)) with labels offset 0,0.7 font ',8'\n",
                var, gp_num(c->frac_below), gp_color(0));
    } else if (!strcmp(c->sweep_kind, "invariant")) {
        /* drift of a_k^2 - ||w_k||^2 against the step (checks_relu2.c): log-log,
         * the fit ln drift = icpt + slope ln step and the expected slope
         * through the geometric mean of the points */
        double mx = 0, my = 0;
        for (int q = 0; q < c->n_groups; q++) mx += log(c->group_x[q]), my += log(c->group_y[q]);
        mx /= c->n_groups, my /= c->n_groups;
        gp_title(g, "Drift of the flow invariant a_{k}^2 - ‖w_{k}‖^2 under gradient descent", c->title);
        fprintf(b, "set logscale xy\nset xlabel '%s' noenhanced\n"
                   "set ylabel 'max_{k} |Δ(a_{k}^2 - ‖w_{k}‖^2)| / ‖θ‖^2'\n"
                   "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n", var);
        /* tics at the measured points: the range spans less than a decade */
        fprintf(b, "set format y '%%.2g'\nset xtics (");
        for (int q = 0; q < c->n_groups; q++) fprintf(b, "%s%s", q ? ", " : "", gp_num(c->group_x[q]));
        fprintf(b, ")\nset ytics (");
        for (int q = 0; q < c->n_groups; q++) fprintf(b, "%s%s", q ? ", " : "", gp_num(c->group_y[q]));
        fprintf(b, ")\n");
        gp_key_below(b, 3, 3);
        fprintf(b, "plot 'fig-sweep.dat' skip 1 using 1:2 with points pt 7 ps 1 lt 1 title 'measured', "
                   "exp(%s) * x**%s lt 2 lw 1.2 title 'fit, slope %.3g', "
                   "exp(%s + %s * (log(x) - %s)) lc rgb 'black' lw 1 dt 2 title 'expected slope %.3g'\n",
                gp_num(c->fit_icpt), gp_num(c->fit_slope), c->fit_slope, gp_num(my), gp_num(c->pred_slope),
                gp_num(mx), c->pred_slope);
    } else if (!(isfinite(c->fit_icpt) && isfinite(c->fit_slope) && isfinite(c->pred_slope))) {
        gp_title(g, "Escape time of the small-initialization phase", c->title);
        fprintf(b, "set xlabel 'ln(1/σ_{init})'\nset ylabel 'escape time t_{esc} (flow time, sum loss)'\n"
                   "set key off\nplot 'fig-sweep.dat' skip 1 using 1:2 with points pt 7 ps 1 lt 1\n");
    } else {
        double mx = 0, my = 0;
        for (int q = 0; q < c->n_groups; q++) mx += c->group_x[q], my += c->group_y[q];
        mx /= c->n_groups, my /= c->n_groups;
        gp_title(g, "Escape time of the small-initialization phase: t_{esc} ≈ ln(1/σ) / λ", c->title);
        fprintf(b, "set xlabel 'ln(1/σ_{init})'\nset ylabel 't_{esc}   (flow time, sum loss)'\n"
                   "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n");
        gp_key_below(b, 3, 3);
        fprintf(b, "plot 'fig-sweep.dat' skip 1 using 1:2 with points pt 7 ps 1 lt 1 title 'measured', "
                   "%s + %s * x lt 2 lw 1.2 title 'fit, slope %.4g', "
                   "%s + %s * (x - %s) lc rgb 'black' lw 1 dt 2 title 'predicted slope 1/λ = %.4g'\n",
                gp_num(c->fit_icpt), gp_num(c->fit_slope), c->fit_slope, gp_num(my), gp_num(c->pred_slope),
                gp_num(mx), c->pred_slope);
    }
    return 0;
}

int rp_figure(const rp_claim *c, const char *kind) {
    char name[64];
    if (!strcmp(kind, "robust")) { /* drawn by the robust check: there or not */
        char p[1400];
        struct stat st;
        cli_fmt(p, sizeof p, "%s/fig-robust-eps.png", c->dir);
        return stat(p, &st) == 0 ? 0 : 1;
    }
    cli_fmt(name, sizeof name, "fig-%s", kind); /* kind: one of rp_figure_kinds */
    double w = GP_W, h = GP_H;
    if (!strcmp(kind, "loss")) h = 5.2;
    if (!strcmp(kind, "neurons")) w = 7.5, h = 3.2;
    if (!strcmp(kind, "regions")) w = 4.5, h = 3.8;
    if (!strcmp(kind, "odd-even")) h = 5.2;
    if (!strcmp(kind, "margin") || !strcmp(kind, "kkt")) h = 3.3;
    if (!strcmp(kind, "epochs")) w = 7.0, h = 5.6;
    gp_fig g;
    if (gp_begin(&g, c->dir, name, MADE_BY, w, h, GP_ALL)) return -1;
    int r;
    if (!strcmp(kind, "margin")) r = fig_margin(c, &g, 0);
    else if (!strcmp(kind, "layer-margin")) r = fig_margin(c, &g, 1);
    else if (!strcmp(kind, "kkt")) r = fig_kkt(c, &g);
    else if (!strcmp(kind, "regions")) r = fig_regions(c, &g);
    else if (!strcmp(kind, "loss")) r = fig_loss(c, &g, 0);
    else if (!strcmp(kind, "norm")) r = fig_loss(c, &g, 1);
    else if (!strcmp(kind, "cosine")) r = fig_cosine(c, &g);
    else if (!strcmp(kind, "neurons")) r = fig_neurons(c, &g);
    else if (!strcmp(kind, "odd-even")) r = fig_odd_even(c, &g);
    else if (!strcmp(kind, "sweep")) r = fig_sweep(c, &g);
    else if (!strcmp(kind, "epochs")) r = fig_epochs(c, &g);
    else r = 1;
    if (r != 0) {
        gp_cancel(&g);
        return r;
    }
    return gp_end(&g);
}

/* ------------------------------------------------------------ report */

static void html_esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

/* s as one Markdown table cell: '|' escaped, so a measured "|gamma - gamma~|"
 * or "||theta||" does not split the cell. */
static void md_cell(FILE *f, const char *s) {
    fputs(" ", f);
    for (; s && *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
    fputs(" |", f);
}

/* A string field of a result.json object, "" when absent. */
static const char *js(const cJSON *o, const char *k) {
    return cli_jstr_or(o, k, "");
}

static void setting_line(const cJSON *r, char *b, size_t cap) {
    double u = cli_jnum_or(r, "until_log10_loss", NAN), steps = cli_jnum_or(r, "steps_budget", 0);
    char bud[96] = "";
    if (!isnan(u)) cli_fmt(bud, sizeof bud, "until log10 Loss <= %g", u);
    if (steps > 0) cli_cat(bud, sizeof bud, "%s%.0f steps", bud[0] ? ", " : "", steps);
    cli_fmt(b, cap, "data %s, model %s, init %s, %s loss, %s lr %g, %s", js(r, "data"), js(r, "model"),
             js(r, "init"), js(r, "loss"), js(r, "optimizer"), cli_jnum_or(r, "lr", 0), bud);
}

int rp_report(const char *dir, char *const *names, int n, int quick) {
    char *pm = cli_join(dir, "report.md"), *ph = cli_join(dir, "report.html");
    FILE *md = pm ? fopen(pm, "w") : NULL, *h = ph ? fopen(ph, "w") : NULL;
    if (!md || !h) {
        if (md) fclose(md);
        if (h) fclose(h);
        cli_error("cannot write %s", pm ? cli_q(pm) : "the report (out of memory)");
        free(pm);
        free(ph);
        return -1;
    }
    free(pm);
    free(ph);
    fprintf(md, "# marginflow reproduce%s\n\nmarginflow %s. Each claim: statement, setting, measured "
                "vs expected, verdict, figures. Run directories are under each claim's folder.\n\n",
            quick ? " (quick)" : "", MF_VERSION);
    fprintf(h, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>marginflow reproduce</title>\n"
               "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
               ".PASS{color:#070}.FAIL{color:#b00}.ERROR{color:#b60}img{max-width:100%%}"
               "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%%}table{border-collapse:collapse}"
               "</style></head><body>\n<h1>marginflow reproduce%s</h1>\n<p>marginflow %s</p>\n"
               "<table><tr><th>claim</th><th>verdict</th><th>paper result</th><th>paper</th></tr>\n",
            quick ? " (quick)" : "", MF_VERSION);
    cJSON **res = calloc((size_t)n + 1, sizeof *res);
    fprintf(md, "| claim | verdict | paper result | paper |\n|---|---|---|---|\n");
    for (int i = 0; res && i < n; i++) {
        char *p = cli_aprintf("%s/%s/result.json", dir, names[i]);
        cli_jr jr = {p, NULL, 0, NULL, 0};
        res[i] = p ? cli_json_load(&jr, p, CLI_MAX_JSON_BYTES) : NULL;
        free(p);
        const char *st = res[i] ? js(res[i], "status") : "ERROR";
        fprintf(md, "| [%s](#%s) | %s |", names[i], names[i], st);
        md_cell(md, res[i] ? js(res[i], "paper_result") : "");
        md_cell(md, res[i] ? js(res[i], "paper") : "");
        fputc('\n', md);
        fprintf(h, "<tr><td><a href=\"#%s\">%s</a></td><td class=\"%s\">%s</td><td>", names[i], names[i],
                st, st);
        html_esc(h, res[i] ? js(res[i], "paper_result") : "");
        fprintf(h, "</td><td>");
        html_esc(h, res[i] ? js(res[i], "paper") : "");
        fprintf(h, "</td></tr>\n");
    }
    fprintf(md, "\n");
    fprintf(h, "</table>\n");
    for (int i = 0; res && i < n; i++) {
        const cJSON *r = res[i];
        fprintf(md, "## <a id=\"%s\"></a>%s: %s\n\n", names[i], names[i], r ? js(r, "title") : "");
        fprintf(h, "<h2 id=\"%s\">%s: ", names[i], names[i]);
        html_esc(h, r ? js(r, "title") : "");
        fprintf(h, "</h2>\n");
        if (!r) {
            fprintf(md, "No result (the claim did not run).\n\n");
            fprintf(h, "<p class=\"ERROR\">No result.</p>\n");
            continue;
        }
        const char *st = js(r, "status");
        fprintf(md, "**%s** -- %s (%s)\n\n%s\n\n", st, js(r, "paper"), js(r, "reference"), js(r, "statement"));
        fprintf(md, "- measured: %s\n- expected: %s\n\n", js(r, "measured"), js(r, "expected"));
        fprintf(h, "<p><b class=\"%s\">%s</b> &mdash; ", st, st);
        html_esc(h, js(r, "paper"));
        fprintf(h, " (");
        html_esc(h, js(r, "reference"));
        fprintf(h, ")</p>\n<p>");
        html_esc(h, js(r, "statement"));
        fprintf(h, "</p>\n<ul><li>measured: ");
        html_esc(h, js(r, "measured"));
        fprintf(h, "</li><li>expected: ");
        html_esc(h, js(r, "expected"));
        fprintf(h, "</li></ul>\n");
        const cJSON *checks = cJSON_GetObjectItemCaseSensitive(r, "checks"), *ck;
        if (cJSON_GetArraySize(checks) > 1) {
            fprintf(md, "| check | status | measured | expected |\n|---|---|---|---|\n");
            fprintf(h, "<table><tr><th>check</th><th>status</th><th>measured</th><th>expected</th></tr>\n");
            cJSON_ArrayForEach(ck, checks) {
                fprintf(md, "| %s | %s |", js(ck, "quantity"), js(ck, "status"));
                md_cell(md, js(ck, "measured"));
                md_cell(md, js(ck, "expected"));
                fputc('\n', md);
                fprintf(h, "<tr><td>%s</td><td class=\"%s\">%s</td><td>", js(ck, "quantity"),
                        js(ck, "status"), js(ck, "status"));
                html_esc(h, js(ck, "measured"));
                fprintf(h, "</td><td>");
                html_esc(h, js(ck, "expected"));
                fprintf(h, "</td></tr>\n");
            }
            fprintf(md, "\n");
            fprintf(h, "</table>\n");
        }
        const cJSON *runs = cJSON_GetObjectItemCaseSensitive(r, "runs"), *ru;
        int nr = cJSON_GetArraySize(runs), k = 0;
        fprintf(md, "Setting (%d run%s):\n\n| run | setting | outcome | steps | log10 t | log10 Loss | "
                    "normalized margin |\n|---|---|---|---|---|---|---|\n",
                nr, nr == 1 ? "" : "s");
        fprintf(h, "<table><tr><th>run</th><th>setting</th><th>outcome</th><th>steps</th><th>log10 t</th>"
                   "<th>log10 Loss</th><th>normalized margin</th></tr>\n");
        cJSON_ArrayForEach(ru, runs) {
            if (k++ >= 24) {
                fprintf(md, "| ... | %d more runs in %s/ | | | | | |\n", nr - 24, names[i]);
                fprintf(h, "<tr><td colspan=7>... %d more runs</td></tr>\n", nr - 24);
                break;
            }
            char set[1024];
            setting_line(ru, set, sizeof set);
            /* a value null in result.json (absent, or a run that failed) reads "absent" */
            const char *steps = cli_f(cli_jnum_or(ru, "steps", NAN), 0);
            const char *lt = cli_g(cli_jnum_or(ru, "log10_time", NAN), 6);
            const char *ll = cli_g(cli_jnum_or(ru, "log10_loss", NAN), 6);
            const char *nm = cli_g(cli_jnum_or(ru, "normalized_margin", NAN), 9);
            fprintf(md, "| [%s](%s/%s/) | %s | %s | %s | %s | %s | %s |\n", js(ru, "name"), names[i],
                    js(ru, "name"), set, js(ru, "outcome"), steps, lt, ll, nm);
            fprintf(h, "<tr><td><a href=\"%s/%s/\">%s</a></td><td>", names[i], js(ru, "name"), js(ru, "name"));
            html_esc(h, set);
            fprintf(h, "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
                    js(ru, "outcome"), steps, lt, ll, nm);
        }
        fprintf(md, "\n");
        fprintf(h, "</table>\n");
        const cJSON *figs = cJSON_GetObjectItemCaseSensitive(r, "figures"), *fg;
        cJSON_ArrayForEach(fg, figs) {
            if (!cJSON_IsString(fg)) continue;
            const char *fv = fg->valuestring, *nm = names[i];
            fprintf(md, "![%s](%s/%s.png) ([pdf](%s/%s.pdf), [svg](%s/%s.svg), [script](%s/%s.gp))\n\n",
                    fv, nm, fv, nm, fv, nm, fv, nm, fv);
            fprintf(h, "<p><img src=\"%s/%s.png\" alt=\"%s\" style=\"max-width:720px\"><br>"
                       "<a href=\"%s/%s.pdf\">pdf</a> <a href=\"%s/%s.svg\">svg</a> "
                       "<a href=\"%s/%s.gp\">script</a></p>\n",
                    nm, fv, fv, nm, fv, nm, fv, nm, fv);
        }
    }
    fprintf(h, "</body></html>\n");
    for (int i = 0; res && i < n; i++) cJSON_Delete(res[i]);
    free(res);
    int bad = fclose(md) != 0;
    bad |= fclose(h) != 0;
    if (bad) cli_error("cannot write %s/report.md and report.html", cli_q(dir));
    return bad ? -1 : 0;
}

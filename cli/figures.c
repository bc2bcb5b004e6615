/*
 * figures.c -- the figures and the report of `marginflow reproduce`.
 *
 * Every figure is a gnuplot script DIR/<claim>/fig-<kind>.gp that reads the
 * run directories' metrics.csv (or a small .dat file written next to it) and
 * writes fig-<kind>.png and fig-<kind>.svg; the script is kept so it can be
 * edited and re-run (`cd DIR/<claim> && gnuplot fig-margin.gp`). Flow times
 * reach 10^10000 and beyond, so time axes are log10 t taken from the
 * log10_time column (never t itself):
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
 *   sweep    outcome fractions per group, or the escape times vs ln(1/sigma)
 *            with the fitted and the predicted slope
 *   layer-margin  the per-layer margin q_min / prod_l ||W_l|| vs log10 t
 *   kkt      NNLS eps, delta and Lyu & Li's eps (mf_analyze) at up to 16
 *            logged snapshots vs log10 t (runs with snapshots)
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

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static FILE *open_in(const rp_claim *c, const char *name) {
    char *p = cli_join(c->dir, name);
    FILE *f = p ? fopen(p, "w") : NULL;
    free(p);
    return f;
}

/* Remove c->dir/name (a figure that does not apply, a log not needed). */
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

/* Common header: PNG first; the caller's plot is replayed for SVG. */
static void gp_head(FILE *f, const char *title, const char *kind) {
    fprintf(f, "# marginflow reproduce figure; edit and re-run: gnuplot fig-%s.gp\n", kind);
    fprintf(f, "set datafile separator ','\nset datafile missing ''\nset key outside right\n");
    fprintf(f, "set grid\nset title \"%s\" noenhanced\n", title);
}

/* Emit `body` twice: once for PNG, once for SVG. */
static void gp_both(FILE *f, const char *kind, const char *body, int tall) {
    fprintf(f, "set terminal pngcairo size 1000,%d font ',10'\nset output 'fig-%s.png'\nset termoption noenhanced\n%s",
            tall ? 900 : 560, kind, body);
    fprintf(f, "unset multiplot\nset terminal svg size 1000,%d dynamic font 'Helvetica,11'\n"
               "set output 'fig-%s.svg'\nset termoption noenhanced\n%s",
            tall ? 900 : 560, kind, body);
    fprintf(f, "unset multiplot\nset output\n");
}

static int run_gnuplot(const rp_claim *c, const char *kind) {
    char *dp = (char *)c->dir;
    char *q = cli_shell_quote(1, &dp);
    char *cmd = q ? cli_aprintf("cd %s && gnuplot fig-%s.gp >/dev/null 2>fig-%s.log", q, kind, kind)
                  : NULL;
    free(q);
    int rc = cmd ? system(cmd) : -1;
    free(cmd);
    if (rc == 0) { /* keep gnuplot's log only when it failed */
        char lp[64];
        cli_fmt(lp, sizeof lp, "fig-%s.log", kind); /* kind: one of rp_figure_kinds */
        remove_in(c, lp);
    }
    return rc == 0 ? 0 : -1;
}

/* Append to a growing body string. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = (b->cap + (size_t)k + 1) * 2;
        char *p2 = realloc(b->p, nc);
        if (!p2) return;
        b->p = p2;
        b->cap = nc;
    }
}

/* The runs drawn: at most 12 (the first ones). */
static int n_drawn(const rp_claim *c) {
    return c->nruns < 12 ? c->nruns : 12;
}

/* Normalized (and smoothed) margin vs log10 t; layer != 0: the per-layer
 * margin q_min / prod_l ||W_l|| (metrics.csv column 9) instead. */
static int fig_margin(const rp_claim *c, FILE *f, int layer) {
    sbuf b = {0};
    /* horizons beyond t = 10^100 are drawn against log10 log10 t */
    double xmax = 0;
    for (int i = 0; i < n_drawn(c); i++)
        if (c->runs[i].done && c->runs[i].nrows)
            xmax = fmax(xmax, c->runs[i].rows[c->runs[i].nrows - 1].time_log / LN10);
    const char *xe = xmax > 100 ? "($3 > 0 ? log10($3) : 1/0)" : "3";
    sb(&b, "set xlabel '%s'\nset ylabel '%s'\n",
       xmax > 100 ? "log10 log10 t (flow time; t > 1)" : "log10 t (flow time)",
       layer ? "per-layer margin q_min / prod_l ||W_l||" : "margin");
    if (isfinite(c->gamma_star) && !layer) sb(&b, "set yrange [0:%.6g]\n", 1.15 * c->gamma_star);
    sb(&b, "plot ");
    int k = 0;
    for (int i = 0; i < n_drawn(c); i++) {
        if (!c->runs[i].done) continue;
        sb(&b, "%s'%s/metrics.csv' skip 1 using %s:%d with lines lw 2 lc %d title '%s %s'",
           k ? ", \\\n     " : "", c->runs[i].name, xe, layer ? 9 : 7, i + 1, c->runs[i].name,
           layer ? "per-layer" : "normalized");
        if (c->nruns <= 4 && !layer)
            sb(&b, ", '%s/metrics.csv' skip 1 using %s:8 with lines dt 2 lc %d title '%s smoothed'",
               c->runs[i].name, xe, i + 1, c->runs[i].name);
        k++;
    }
    if (isfinite(c->gamma_star) && !layer)
        sb(&b, ", %.9g with lines lc rgb 'black' dt 3 title 'gamma* = %.6g'", c->gamma_star, c->gamma_star);
    sb(&b, "\n");
    if (k) gp_both(f, layer ? "layer-margin" : "margin", b.p, 0);
    free(b.p);
    return k ? 0 : 1;
}

/* Epoch runs ([LL20] Fig. 1): four panels against the epoch from the epoch
 * metrics.csv (columns 2 epoch, 4 log10 mean loss, 6 test accuracy, 7
 * normalized margin, 8 per-layer margin). */
static int fig_epochs(const rp_claim *c, FILE *f) {
    sbuf b = {0};
    int k = 0;
    static const struct {
        int col;
        const char *label;
    } panel[4] = {{4, "log10 training loss (mean)"},
                  {8, "normalized margin q_min / prod_l ||W_l||"},
                  {7, "q_min / ||theta||^L"},
                  {6, "test accuracy"}};
    for (int i = 0; i < n_drawn(c); i++) k += c->runs[i].done && c->runs[i].rows && c->runs[i].rows[0].epoch >= 0;
    if (!k) return 1;
    sb(&b, "set multiplot layout 2,2\nset xlabel 'epoch'\n");
    for (int p = 0; p < 4; p++) {
        sb(&b, "set ylabel '%s'\nset title '%s'\nplot ", panel[p].label, panel[p].label);
        int j = 0;
        for (int i = 0; i < n_drawn(c); i++) {
            if (!c->runs[i].done || !c->runs[i].rows || c->runs[i].rows[0].epoch < 0) continue;
            sb(&b, "%s'%s/metrics.csv' skip 1 using 2:%d with lines lw 2 lc %d title '%s'", j++ ? ", " : "",
               c->runs[i].name, panel[p].col, i + 1, c->runs[i].name);
        }
        sb(&b, "\n");
    }
    gp_both(f, "epochs", b.p, 1);
    free(b.p);
    return 0;
}

/* KKT residuals over time: for up to 4 runs with snapshots, mf_analyze's NNLS
 * eps and delta and Lyu & Li's certificate eps at up to 16 separating logged
 * rows evenly spaced in row index (the rows are log-spaced in steps). */
static int fig_kkt(const rp_claim *c, FILE *f) {
    FILE *d = open_in(c, "fig-kkt.dat");
    if (!d) return -1;
    int blocks = 0;
    double xmax = 0;
    char names[4][160];
    for (int i = 0; i < c->nruns && blocks < 4; i++) {
        const rp_run *r = &c->runs[i];
        if (!r->done || !r->snapshots || r->nrows < 2) continue;
        int k0 = 0;
        while (k0 < r->nrows && !(r->rows[k0].q_min > 0)) k0++;
        if (r->nrows - k0 < 2) continue;
        fprintf(d, "# block %d: %s; log10_time,eps,delta,lyu_li_eps\n", blocks, r->name);
        int npick = r->nrows - k0 < 16 ? r->nrows - k0 : 16, wrote = 0, last = -1;
        for (int p = 0; p < npick; p++) {
            int k = k0 + (int)((double)p * (r->nrows - 1 - k0) / (npick - 1) + 0.5);
            if (k == last) continue;
            last = k;
            double ep, de, ll;
            if (rp_kkt_at(c, r, k, &ep, &de, &ll)) continue;
            dat(d, "", r->rows[k].time_log / LN10, 9), dat(d, ",", ep, 9), dat(d, ",", de, 9);
            dat(d, ",", ll, 9), fputc('\n', d);
            xmax = fmax(xmax, r->rows[k].time_log / LN10);
            wrote++;
        }
        fprintf(d, "\n\n");
        if (wrote) cli_fmt(names[blocks], sizeof names[blocks], "%s", r->name), blocks++;
    }
    fclose(d);
    if (!blocks) {
        remove_in(c, "fig-kkt.dat");
        return 1;
    }
    const char *xe = xmax > 100 ? "($1 > 0 ? log10($1) : 1/0)" : "1";
    sbuf b = {0};
    sb(&b, "set xlabel '%s'\nset ylabel 'residual'\nset logscale y\nset format y '10^{%%T}'\n"
           "set termoption enhanced\nplot ",
       xmax > 100 ? "log10 log10 t (flow time; t > 1)" : "log10 t (flow time)");
    for (int i = 0; i < blocks; i++)
        sb(&b, "%s'fig-kkt.dat' index %d using %s:($2 > 0 ? $2 : 1/0) with linespoints pt 7 lw 2 lc %d "
               "title '%s NNLS eps', '' index %d using %s:($3 > 0 ? $3 : 1/0) with linespoints pt 6 dt 2 "
               "lc %d title '%s delta', '' index %d using %s:($4 > 0 ? $4 : 1/0) with lines dt 3 lc %d "
               "title '%s Lyu-Li eps'",
           i ? ", \\\n     " : "", i, xe, i + 1, names[i], i, xe, i + 1, names[i], i, xe, i + 1, names[i]);
    sb(&b, "\n");
    gp_both(f, "kkt", b.p, 0);
    free(b.p);
    return 0;
}

/* Decision regions of the first finished run on 2-D binary data: Phi(x) / q_min
 * of the final parameters over a 161 x 161 grid (clipped to [-2, 2]; |value|
 * >= 1 is beyond the margin), the data (filled: +1, open: -1) on top. */
static int fig_regions(const rp_claim *c, FILE *f) {
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
    for (int iy = 0; iy < G; iy++) {
        double y = -lim + 2 * lim * iy / (G - 1);
        for (int ix = 0; ix < G; ix++) xs[2 * ix] = -lim + 2 * lim * ix / (G - 1), xs[2 * ix + 1] = y;
        mf_model_forward(r->model, w, r->theta, xs, G, out);
        for (int ix = 0; ix < G; ix++) {
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
    sbuf b = {0};
    sb(&b, "set size ratio -1\nset xrange [%.4g:%.4g]\nset yrange [%.4g:%.4g]\nset xlabel 'x1'\n"
           "set ylabel 'x2'\nset key top left opaque box\nset cbrange [-2:2]\nset cblabel 'Phi(x) / q_min'\n"
           "set palette defined (-2 '#d62728', -1 '#f4b6b6', -0.001 '#fbe5e5', 0.001 '#e3eef9', 1 '#a9c9ec', 2 "
           "'#1f77b4')\nset title \"%s: decision regions of %s (final parameters)\" noenhanced\n"
           "plot 'fig-regions.dat' index 0 using 1:2:3 with image notitle, "
           "'' index 1 using 1:2:($3 == 1 ? 7 : 6) with points pt variable ps 1.5 lc rgb 'black' "
           "title 'data (filled: +1, open: -1)'\n",
       -lim, lim, -lim, lim, c->name, r->name);
    gp_both(f, "regions", b.p, 0);
    free(b.p);
    return 0;
}

static int fig_loss(const rp_claim *c, FILE *f, int norm) {
    const rp_run *r = NULL;
    for (int i = 0; i < c->nruns && !r; i++)
        if (c->runs[i].done && c->runs[i].nrows > 2) r = &c->runs[i];
    if (!r) return 1;
    const mf_metrics *e = &r->rows[r->nrows - 1];
    if (!(e->time_log > LN10)) return 1; /* needs t > 10 */
    int L = r->model->degree;
    double p = 2.0 - 2.0 / L;
    double xe = e->time_log / LN10, le = e->log10_loss;
    double xl = log10(e->time_log); /* log10 ln t at the end */
    /* the reference lines go through the last row: it needs its values (a
     * NaN would reach the script as "nan") */
    int ends = isfinite(xe) && isfinite(xl) &&
               (norm ? e->norm > 0 && isfinite(e->norm) : isfinite(le) != 0);
    if (!ends) return 1;
    sbuf b = {0};
    if (!norm) {
        /* reference through the last row: log10 L = -x - p log10(x ln10) + c */
        double c0 = le + xe + p * xl;
        sb(&b, "set multiplot layout 2,1\n");
        sb(&b, "set xlabel 'log10 t'\nset ylabel 'log10 Loss'\n");
        sb(&b, "plot [0:*] ");
        for (int i = 0, k = 0; i < n_drawn(c); i++)
            if (c->runs[i].done)
                sb(&b, "%s'%s/metrics.csv' skip 1 using 3:4 with lines lw 2 lc %d title '%s'",
                   k++ ? ", " : "", c->runs[i].name, i + 1, c->runs[i].name);
        sb(&b, ", x > 0 ? -x - %.6g * log10(x * log(10)) + %.9g : 1/0 with lines dt 2 lc rgb "
               "'black' title 'Theta(1 / (t (ln t)^%.3g))'\n",
           p, c0, p);
        sb(&b, "set xlabel 'log10 ln t'\nset ylabel 'log10 (Loss t)'\n");
        sb(&b, "plot ");
        for (int i = 0, k = 0; i < n_drawn(c); i++)
            if (c->runs[i].done)
                sb(&b, "%s'%s/metrics.csv' skip 1 using ($3 > 0.5 ? log10($3 * log(10)) : 1/0):($4 + "
                       "$3) with lines lw 2 lc %d title '%s'",
                   k++ ? ", " : "", c->runs[i].name, i + 1, c->runs[i].name);
        sb(&b, ", %.9g - %.6g * (x - %.9g) with lines dt 2 lc rgb 'black' title 'slope -(2-2/L) = "
               "%.3g'\n",
           le + xe, p, xl, -p);
    } else {
        double ne = log10(e->norm);
        sb(&b, "set xlabel 'log10 ln t'\nset ylabel 'log10 ||theta||'\nplot ");
        for (int i = 0, k = 0; i < n_drawn(c); i++)
            if (c->runs[i].done)
                sb(&b, "%s'%s/metrics.csv' skip 1 using ($3 > 0.5 ? log10($3 * log(10)) : 1/0):(log10($5)) "
                       "with lines lw 2 lc %d title '%s'",
                   k++ ? ", " : "", c->runs[i].name, i + 1, c->runs[i].name);
        sb(&b, ", %.9g + (x - %.9g) / %d.0 with lines dt 2 lc rgb 'black' title '(ln t)^{1/L}, L = %d'\n",
           ne, xl, L, L);
    }
    gp_both(f, norm ? "norm" : "loss", b.p, !norm);
    free(b.p);
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

static int fig_cosine(const rp_claim *c, FILE *f) {
    const rp_run *r = snap_run(c);
    mf_units u;
    if (!r || !c->has_mu || !mf_model_units(r->model, &u)) return 1;
    int M = u.n_units;
    char dn[256];
    cli_fmt(dn, sizeof dn, "fig-cosine.dat");
    FILE *d = open_in(c, dn);
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
    sbuf b = {0};
    sb(&b, "set xlabel 'log10 t'\nset ylabel 'cosine'\nset yrange [-1.05:1.05]\n");
    sb(&b, "plot for [k=2:%d] 'fig-cosine.dat' skip 1 using 1:k with lines lc rgb '#1f77b4' notitle", M + 1);
    if (c->has_wref)
        sb(&b, ", for [k=%d:%d] 'fig-cosine.dat' skip 1 using 1:k with lines lc rgb '#d62728' dt 2 "
               "notitle, NaN lc rgb '#1f77b4' title 'cos(w_k, mu)', NaN lc rgb '#d62728' dt 2 title "
               "'cos(w_k, w_svm)'",
           M + 2, 2 * M + 1);
    else
        sb(&b, ", NaN lc rgb '#1f77b4' title 'cos(w_k, mu)'");
    sb(&b, "\n");
    gp_both(f, "cosine", b.p, 0);
    free(b.p);
    return 0;
}

static int fig_neurons(const rp_claim *c, FILE *f) {
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
    sbuf b = {0};
    double lim = 1.15 * xmax;
    sb(&b, "set multiplot layout 1,3\nset size ratio -1\nset key off\nunset title\n");
    sb(&b, "set xrange [%.4g:%.4g]\nset yrange [%.4g:%.4g]\n", -lim, lim, -lim, lim);
    for (int p = 0; p < 3; p++) {
        /* a short t for the title, also beyond double range: 4 digits and
         * the full exponent ("3.978e+99994") */
        char tb[64];
        double tl = r->rows[pick[p]].time_log;
        if (tl == -INFINITY) {
            snprintf(tb, sizeof tb, "0");
        } else {
            double l10 = tl / log(10.0), E = floor(l10);
            snprintf(tb, sizeof tb, "%.4ge%+.0f", pow(10.0, l10 - E), E);
        }
        sb(&b, "set title \"%s: step %lld, t = %s\" noenhanced\n",
           p == 0 ? "start" : p == 1 ? "aligned" : "end", r->rows[pick[p]].step, tb);
        sb(&b, "plot 'fig-neurons.dat' index 3 using 1:2:($3 == 1 ? 7 : 6) with points pt variable "
               "lc rgb 'gray40' ps 1.2, 'fig-neurons.dat' index %d using 1:2:3:4:($5 == 1 ? 0x1f77b4 : "
               "0xd62728) with vectors lw 1.5 lc rgb variable\n",
           p);
    }
    gp_both(f, "neurons", b.p, 0);
    free(b.p);
    return 0;
}

static int fig_sweep(const rp_claim *c, FILE *f) {
    if (c->n_groups == 0 || !c->sweep_kind[0]) return 1;
    FILE *d = open_in(c, "fig-sweep.dat");
    if (!d) return -1;
    for (int g = 0; g < c->n_groups; g++)
        dat(d, "", c->group_x[g], 9), dat(d, ",", c->group_y[g], 9), fputc('\n', d);
    fclose(d);
    sbuf b = {0};
    if (!strcmp(c->sweep_kind, "fraction")) {
        sb(&b, "set xlabel 'group (vary value)'\nset ylabel 'fraction reaching a suboptimal limit'\n"
               "set yrange [0:1.05]\nset boxwidth 0.6 relative\nset style fill solid 0.5\n"
               "plot 'fig-sweep.dat' using 0:2:xticlabels(1) with boxes lc rgb '#1f77b4' title "
               "'fraction'\n");
    } else if (!(isfinite(c->fit_icpt) && isfinite(c->fit_slope) && isfinite(c->pred_slope))) {
        sb(&b, "set xlabel 'ln(1/sigma_init)'\nset ylabel 'escape time t_esc'\n"
               "plot 'fig-sweep.dat' using 1:2 with points pt 7 ps 1.5 title 'measured (no fit)'\n");
    } else {
        double mx = 0, my = 0;
        for (int g = 0; g < c->n_groups; g++) mx += c->group_x[g], my += c->group_y[g];
        mx /= c->n_groups, my /= c->n_groups;
        sb(&b, "set xlabel 'ln(1/sigma_init)'\nset ylabel 'escape time t_esc'\n"
               "plot 'fig-sweep.dat' using 1:2 with points pt 7 ps 1.5 title 'measured', "
               "%.9g + %.9g * x with lines lw 2 title 'fit, slope %.4g', "
               "%.9g + %.9g * (x - %.9g) with lines dt 2 lc rgb 'black' title 'predicted slope 1/lambda "
               "= %.4g'\n",
           c->fit_icpt, c->fit_slope, c->fit_slope, my, c->pred_slope, mx, c->pred_slope);
    }
    gp_both(f, "sweep", b.p, 0);
    free(b.p);
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
    cli_fmt(name, sizeof name, "fig-%s.gp", kind); /* kind: one of rp_figure_kinds */
    char *title = cli_aprintf("%s: %s", c->name, kind);
    FILE *f = title ? open_in(c, name) : NULL;
    if (!f) {
        free(title);
        return -1;
    }
    gp_head(f, title, kind);
    free(title);
    int r;
    if (!strcmp(kind, "margin")) r = fig_margin(c, f, 0);
    else if (!strcmp(kind, "layer-margin")) r = fig_margin(c, f, 1);
    else if (!strcmp(kind, "kkt")) r = fig_kkt(c, f);
    else if (!strcmp(kind, "regions")) r = fig_regions(c, f);
    else if (!strcmp(kind, "loss")) r = fig_loss(c, f, 0);
    else if (!strcmp(kind, "norm")) r = fig_loss(c, f, 1);
    else if (!strcmp(kind, "cosine")) r = fig_cosine(c, f);
    else if (!strcmp(kind, "neurons")) r = fig_neurons(c, f);
    else if (!strcmp(kind, "sweep")) r = fig_sweep(c, f);
    else if (!strcmp(kind, "epochs")) r = fig_epochs(c, f);
    else r = 1;
    fclose(f);
    if (r != 0) {
        remove_in(c, name);
        return r;
    }
    return run_gnuplot(c, kind);
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
               "<table><tr><th>claim</th><th>verdict</th><th>paper</th></tr>\n",
            quick ? " (quick)" : "", MF_VERSION);
    cJSON **res = calloc((size_t)n + 1, sizeof *res);
    fprintf(md, "| claim | verdict | paper |\n|---|---|---|\n");
    for (int i = 0; res && i < n; i++) {
        char *p = cli_aprintf("%s/%s/result.json", dir, names[i]);
        cli_jr jr = {p, NULL, 0, NULL, 0};
        res[i] = p ? cli_json_load(&jr, p, CLI_MAX_JSON_BYTES) : NULL;
        free(p);
        const char *st = res[i] ? js(res[i], "status") : "ERROR";
        fprintf(md, "| [%s](#%s) | %s | %s |\n", names[i], names[i], st, res[i] ? js(res[i], "paper") : "");
        fprintf(h, "<tr><td><a href=\"#%s\">%s</a></td><td class=\"%s\">%s</td><td>", names[i], names[i],
                st, st);
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
                fprintf(md, "| %s | %s | %s | %s |\n", js(ck, "quantity"), js(ck, "status"),
                        js(ck, "measured"), js(ck, "expected"));
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
            fprintf(md, "![%s](%s/%s.png) ([svg](%s/%s.svg), [script](%s/%s.gp))\n\n", fg->valuestring,
                    names[i], fg->valuestring, names[i], fg->valuestring, names[i], fg->valuestring);
            fprintf(h, "<p><img src=\"%s/%s.png\" alt=\"%s\"><br><a href=\"%s/%s.svg\">svg</a> "
                       "<a href=\"%s/%s.gp\">script</a></p>\n",
                    names[i], fg->valuestring, fg->valuestring, names[i], fg->valuestring, names[i],
                    fg->valuestring);
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

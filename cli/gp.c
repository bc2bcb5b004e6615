/*
 * gp.c -- the shared gnuplot styling and plumbing of every figure (gp.h).
 *
 * The calibration of the three terminals (measured with gnuplot 5.4, its
 * cairo terminals and pango): pdfcairo draws fonts at their point size and
 * a line of width 1 at about half a point; pngcairo assumes 72 dpi and
 * draws a font of size s about 1.33 times larger than pdfcairo, so at 300
 * dpi the PNG needs fontscale 300 / 128 and line and point scales 300 / 144
 * to look like the PDF rasterized at 300 dpi; the svg terminal takes its
 * size in pixels (96 per inch in every SVG viewer) with fonts in points.
 */
#define _XOPEN_SOURCE 700
#include "gp.h"

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GP_FONT "Sans"
#define GP_FONT_PT 9
#define GP_DPI 300.0

static const char *const palette[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
                                      "#56b4e9", "#000000", "#8c564b", "#7f7f7f", "#b8860b"};
#define N_PALETTE (int)(sizeof palette / sizeof palette[0])

const char *gp_color(int k) {
    if (k < 0) k = -k;
    return palette[k % N_PALETTE];
}

void gp_str(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
}

void gp_dstr(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
}

/* Width in printed characters of the byte s[i]: 0 for a UTF-8 continuation
 * byte (a character counts once, at its lead byte) and, when markup (the
 * text is gnuplot enhanced text), 0 for the markup characters _ ^ { } that
 * do not print; 1 otherwise. */
static size_t printed(const char *s, size_t i, int markup) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xC0) == 0x80) return 0;
    return markup && strchr("_^{}", c) ? 0 : 1;
}

/* 1 if the space s[i] may end a line: not one beside an '=' ("y = -1"
 * stays on one line). */
static int cut_point(const char *s, size_t i) {
    return s[i] == ' ' && s[i + 1] != '=' && (i == 0 || s[i - 1] != '=');
}

/* s cut at about `max` printed characters (printed() above) at a space,
 * in gnuplot double-quote form, lines joined by "\n". UTF-8 sequences are
 * never split: only an ASCII space is a cut point (cut_point), and a long
 * word is cut before a lead byte. */
static void wrapped(FILE *f, const char *s, size_t max, int markup) {
    size_t n = strlen(s), start = 0;
    while (start < n) {
        size_t lim = start, v = 0; /* lim: first byte past what fits */
        while (lim < n && v + printed(s, lim, markup) <= max) v += printed(s, lim++, markup);
        size_t end = n;
        if (lim < n) {
            end = lim;
            while (end > start && !cut_point(s, end)) end--;
            if (end == start) { /* one long word: cut it (at least one character) */
                end = lim > start ? lim : start + 1;
                while (end < n && ((unsigned char)s[end] & 0xC0) == 0x80) end++;
            }
        }
        char *piece = cli_aprintf("%.*s", (int)(end - start), s + start);
        if (start) fputs("\\n", f);
        gp_dstr(f, piece ? piece : "");
        free(piece);
        start = end;
        while (start < n && s[start] == ' ') start++;
    }
}

/* wrapped(s, max) written to b; when enh (s is literal text shown in an
 * enhanced-mode string) what enhanced text mode would read (^ _ @ & ~ { })
 * is escaped, and every character counts for the width. */
static void wrapped_text(FILE *b, const char *s, size_t max, int enh) {
    char *w = NULL;
    size_t wl = 0;
    FILE *m = open_memstream(&w, &wl);
    if (!m) return;
    wrapped(m, s ? s : "", max, !enh);
    fclose(m);
    for (const char *p = w; p && *p; p++) {
        if (enh && strchr("^_@&~{}", *p)) fputs("\\\\", b);
        fputc(*p, b);
    }
    free(w);
}

/* The quoted text of a title and its enhanced flag: s is the figure's own
 * words in enhanced text (q_{min}, ‖θ‖^L) unless s_literal, sub (text from
 * a user or a claim file) literal, in smaller lines below it; either may
 * be empty. Lines are cut to what fits the figure's width w (inches): about
 * 15 printed characters an inch at 9 pt, 18 at the subtitle's size. */
static void title_text(FILE *b, double w, const char *s, int s_literal, const char *sub) {
    int has_s = s && s[0], has_sub = sub && sub[0];
    size_t main_chars = (size_t)(15 * w), sub_chars = (size_t)(18 * w);
    fputc('"', b);
    if (has_s) wrapped_text(b, s, main_chars, s_literal);
    if (has_sub) {
        char *t = NULL;
        size_t tl = 0;
        FILE *m = has_s ? open_memstream(&t, &tl) : NULL;
        if (m) { /* each line its own size group: enhanced text ends a group at a line break */
            wrapped_text(m, sub, sub_chars, 1);
            fclose(m);
            for (char *line = t, *nl; line; line = nl) {
                nl = strstr(line, "\\n");
                if (nl) *nl = '\0', nl += 2;
                fprintf(b, "\\n{/*0.85 %s}", line);
            }
        } else if (!has_s) {
            wrapped_text(b, sub, main_chars, 1);
        }
        free(t);
    }
    fputs("\" enhanced", b);
}

void gp_title(gp_fig *g, const char *s, const char *sub) {
    fputs("set title ", g->b);
    title_text(g->b, g->w, s, 0, sub);
    fputc('\n', g->b);
}

void gp_title_literal(gp_fig *g, const char *s, const char *sub) {
    fputs("set title ", g->b);
    title_text(g->b, g->w, s, 1, sub);
    fputc('\n', g->b);
}

void gp_multiplot(gp_fig *g, int rows, int cols, const char *s, int s_literal, const char *sub) {
    fprintf(g->b, "set multiplot layout %d,%d title ", rows, cols);
    title_text(g->b, g->w, s, s_literal, sub);
    fputc('\n', g->b);
}

int gp_csv_col(const char *header, const char *name) {
    size_t n = strlen(name);
    int k = 1;
    for (const char *p = header; p && *p; k++) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strcspn(p, "\r\n");
        if (l == n && !strncmp(p, name, n)) return k;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

void gp_wilson(int k, int n, double *lo, double *hi) {
    const double z = 1.959963984540054; /* the 97.5% quantile of the standard normal */
    if (n <= 0) {
        *lo = *hi = NAN;
        return;
    }
    double p = (double)k / n, z2 = z * z, d = 1 + z2 / n;
    double c = (p + z2 / (2.0 * n)) / d, h = z * sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / d;
    *lo = fmax(0, c - h), *hi = fmin(1, c + h);
}

void gp_key_below(FILE *b, int entries, int cols) {
    if (entries <= 0) {
        fputs("set key off\n", b);
        return;
    }
    if (cols < 1) cols = 1;
    int rows = (entries + cols - 1) / cols;
    fprintf(b, "set key below center horizontal Left reverse noautotitle maxrows %d "
               "samplen 2.5 spacing 1.05 width 1 font ',8'\n",
            rows);
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int gp_range(const double *v, size_t n, int flags, double *lo, double *hi) {
    int logy = (flags & GP_RANGE_LOG) != 0, robust = (flags & GP_RANGE_ROBUST) != 0;
    double *s = malloc(sizeof *s * (n ? n : 1));
    size_t m = 0;
    if (!s) return -1;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]) && (!logy || v[i] > 0)) s[m++] = logy ? log10(v[i]) : v[i];
    if (!m) {
        free(s);
        return -1;
    }
    qsort(s, m, sizeof *s, cmp_dbl);
    double q0 = s[0], q1 = s[m - 1];
    if (robust) q0 = s[(size_t)floor(0.02 * (double)(m - 1))], q1 = s[(size_t)ceil(0.98 * (double)(m - 1))];
    double spread = q1 - q0, a = fmax(s[0], q0 - 0.15 * spread), z = fmin(s[m - 1], q1 + 0.15 * spread);
    free(s);
    if (!(z > a)) { /* one value: a band around it */
        double w = fabs(a) > 0 ? 0.1 * fabs(a) : 1;
        if (logy) w = 0.5;
        a -= w, z += w;
    }
    double pad = logy ? 0.02 : 0.04 * (z - a); /* log: a fiftieth of a decade, then whole decades */
    a -= pad, z += pad;
    if (logy) a = floor(a), z = ceil(z);
    *lo = logy ? pow(10, a) : a;
    *hi = logy ? pow(10, z) : z;
    return 0;
}

/* Axis labels of the columns of metrics.csv and results.csv (enhanced
 * text), and the short name a figure of that column is titled with. */
static const char *const labels[][3] = {
    {"step", "step", "Step"},
    {"steps", "steps", "Steps"},
    {"time", "t   (gradient-flow time on the sum loss)", "Flow time"},
    {"log10_time", GP_LABEL_LOG10_T, "Flow time"},
    {"log10_loss", "log_{10} Loss   (sum over samples)", "Loss"},
    {"norm", "‖θ‖", "Parameter norm"},
    {"q_min", "q_{min} = min_n y_n Φ(θ; x_n)", "Smallest margin"},
    {"normalized_margin", GP_LABEL_GAMMA, "Normalized margin"},
    {"smoothed_margin", "smoothed margin γ̃", "Smoothed margin"},
    {"layer_margin", "per-layer margin q_{min} / ∏_l ‖W_l‖", "Per-layer margin"},
    {"lr", "step size", "Step size"},
    {"train_error", "training error (fraction of samples)", "Training error"},
    {"balancedness", "balancedness (max_k |a_k^2 - ‖w_k‖^2|)", "Balancedness"},
    {"ratio", "γ / γ*   (normalized margin / optimum)", "Normalized margin over the optimum"},
    {"eps", "KKT residual ε (NNLS, relative)", "KKT residual"},
    {"delta", "KKT residual δ (NNLS)", "KKT residual δ"},
    {"ll_eps", "ε of Lyu & Li's certificate", "Lyu & Li's certificate"},
    {"n_kinks", "pre-activations at a kink", "Kinks"},
    {"gamma_star", "γ*", "Optimal margin"},
    {"wall_seconds", "wall time (s)", "Wall time"},
};

const char *gp_column_label(const char *col) {
    for (size_t k = 0; col && k < sizeof labels / sizeof labels[0]; k++)
        if (!strcmp(labels[k][0], col)) return labels[k][1];
    return NULL;
}

const char *gp_column_title(const char *col) {
    for (size_t k = 0; col && k < sizeof labels / sizeof labels[0]; k++)
        if (!strcmp(labels[k][0], col)) return labels[k][2];
    return NULL;
}

static void axis_label(FILE *b, const char *axis, const char *col) {
    const char *l = gp_column_label(col);
    fprintf(b, "set %slabel '", axis);
    gp_str(b, l ? l : col);
    fprintf(b, "' %s\n", l ? "enhanced" : "noenhanced");
}

void gp_xlabel(FILE *b, const char *col) { axis_label(b, "x", col); }
void gp_ylabel(FILE *b, const char *col) { axis_label(b, "y", col); }

const char *gp_num(double v) {
    static char buf[8][32];
    static int k;
    char *b = buf[k++ % 8];
    if (!isfinite(v)) snprintf(b, 32, "NaN");
    else snprintf(b, 32, "%.9g", v);
    return b;
}

/* The style every figure shares (before the body). */
static void style(FILE *f) {
    fprintf(f, "set encoding utf8\n"
               "set datafile separator ','\n"
               "set datafile missing ''\n"
               "set border 3 lw 1\n"
               "set tics nomirror out scale 0.6\n"
               "set grid xtics ytics lc rgb '#e4e4e4' lw 0.6 dt solid\n"
               "set autoscale xfix\n"
               "set autoscale yfix\n"
               "set offsets 0, 0, graph 0.04, graph 0.04\n"
               "set key noautotitle\n"
               "set style data lines\n");
    for (int k = 0; k < N_PALETTE; k++)
        fprintf(f, "set linetype %d lc rgb '%s' lw 1.5 dt solid pt 7 ps 0.55\n", k + 1, palette[k]);
    fprintf(f, "set linetype cycle %d\n", N_PALETTE);
}

int gp_begin(gp_fig *g, const char *dir, const char *name, const char *made_by, double w,
             double h, int formats) {
    memset(g, 0, sizeof *g);
    g->dir = cli_aprintf("%s", dir && dir[0] ? dir : ".");
    g->name = cli_aprintf("%s", name);
    g->script = g->dir && g->name ? cli_aprintf("%s/%s.gp", g->dir, g->name) : NULL;
    g->w = w > 0 ? w : GP_W;
    g->h = h > 0 ? h : GP_H;
    g->formats = formats & GP_ALL ? formats & GP_ALL : GP_ALL;
    g->f = g->script ? fopen(g->script, "w") : NULL;
    g->b = g->f ? open_memstream(&g->body, &g->blen) : NULL;
    if (!g->b) {
        int err = errno ? errno : ENOMEM;
        if (g->f) fclose(g->f), remove(g->script);
        free(g->dir), free(g->name), free(g->script);
        memset(g, 0, sizeof *g);
        errno = err;
        return -1;
    }
    fprintf(g->f, "# %s figure; edit and re-run: gnuplot ", made_by ? made_by : "marginflow");
    gp_str(g->f, g->name);
    fprintf(g->f, ".gp\n# writes");
    static const char *const ext[] = {"pdf", "svg", "png"};
    for (int k = 0; k < 3; k++)
        if (g->formats & (1 << k)) fprintf(g->f, " %s.%s", g->name, ext[k]);
    fprintf(g->f, " (%.3g x %.3g in; PNG at 300 dpi)\n", g->w, g->h);
    style(g->f);
    return 0;
}

static void release(gp_fig *g) {
    if (g->b) fclose(g->b);
    free(g->body), free(g->dir), free(g->name), free(g->script);
    memset(g, 0, sizeof *g);
}

void gp_cancel(gp_fig *g) {
    if (g->f) {
        fclose(g->f);
        remove(g->script);
    }
    g->f = NULL;
    release(g);
}

int gp_end(gp_fig *g) {
    FILE *f = g->f;
    fflush(g->b);
    const char *body = g->body ? g->body : "";
    for (int k = 0; k < 3; k++) {
        if (!(g->formats & (1 << k))) continue;
        if (k == 0)
            fprintf(f, "set terminal pdfcairo enhanced color size %.4gin,%.4gin font '%s,%d'\n",
                    g->w, g->h, GP_FONT, GP_FONT_PT);
        else if (k == 1)
            fprintf(f, "set terminal svg enhanced size %.0f,%.0f fixed font '%s,%d' linewidth 0.7\n",
                    g->w * 96, g->h * 96, GP_FONT, GP_FONT_PT);
        else
            fprintf(f, "set terminal pngcairo enhanced color size %.0f,%.0f font '%s,%d' "
                       "fontscale %.4g linewidth %.4g pointscale %.4g\n",
                    g->w * GP_DPI, g->h * GP_DPI, GP_FONT, GP_FONT_PT, GP_DPI / 128, GP_DPI / 144,
                    GP_DPI / 144);
        fprintf(f, "set output '");
        gp_str(f, g->name);
        fprintf(f, ".%s'\n%s", k == 0 ? "pdf" : k == 1 ? "svg" : "png", body);
        if (body[0] && body[strlen(body) - 1] != '\n') fputc('\n', f);
        fprintf(f, "unset multiplot\nset output\n");
    }
    int bad = ferror(f) != 0;
    bad |= fclose(f) != 0;
    g->f = NULL;
    int rc = -1;
    if (!bad) {
        char *script = cli_aprintf("%s.gp", g->name), *log = cli_aprintf("%s.log", g->name);
        char *dq = g->dir, *qd = cli_shell_quote(1, &dq);
        char *qs = script ? cli_shell_quote(1, &script) : NULL;
        char *ql = log ? cli_shell_quote(1, &log) : NULL;
        char *cmd = qd && qs && ql ? cli_aprintf("cd %s && gnuplot %s >/dev/null 2>%s", qd, qs, ql)
                                   : NULL;
        rc = cmd && system(cmd) == 0 ? 0 : -1;
        if (rc == 0) { /* keep gnuplot's log only when it failed */
            char *lp = cli_aprintf("%s/%s", g->dir, log);
            if (lp) remove(lp);
            free(lp);
        }
        free(cmd), free(qd), free(qs), free(ql), free(script), free(log);
    }
    release(g);
    return rc;
}

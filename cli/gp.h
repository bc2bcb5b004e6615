/*
 * gp.h -- the one place where marginflow's figures get their look: every
 * figure of `marginflow reproduce` (figures.c), `sweep-report`
 * (sweep_report.c) and `plot` (plot.c) is a gnuplot script written through
 * these helpers, so they share fonts, sizes, colours, line widths, key
 * placement, the terminals and how gnuplot is run.
 *
 * A figure is a script NAME.gp in a folder: a header (what made it, how to
 * re-run it), the common style, then the caller's plot commands (the
 * "body", collected in memory) replayed once per output format:
 *   PDF  pdfcairo, W x H inches, fonts in points (9 pt text, 8 pt key)
 *   SVG  svg, W x H inches at 96 px per inch, the same fonts
 *   PNG  pngcairo at 300 dpi (300 W x 300 H pixels), font, line and point
 *        scales calibrated so that the PNG is the PDF rasterized at 300 dpi
 * The script is kept next to its outputs, so a figure can be edited and
 * re-run (`gnuplot NAME.gp` in that folder).
 *
 * Text: the terminals are enhanced (x_{n}, ||theta||^L and UTF-8 Greek in
 * axis labels); everything that comes from a user (titles, run names, axis
 * values, paths) is written through gp_str / gp_dstr and marked
 * noenhanced, so an underscore in a run name stays an underscore.
 */
#ifndef MF_CLI_GP_H
#define MF_CLI_GP_H

#include <stddef.h>
#include <stdio.h>

/* Output formats (a bit set). */
enum { GP_PDF = 1, GP_SVG = 2, GP_PNG = 4, GP_ALL = 7 };

/* The default size of one panel, inches (a figure that fits a paper's
 * column pair at 9 pt, or one column scaled to 70%). */
#define GP_W 4.5
#define GP_H 3.0

/* Axis labels shared by every figure that draws them (enhanced text). */
#define GP_LABEL_LOG10_T "log_{10} t   (t: gradient-flow time on the sum loss)"
#define GP_LABEL_LOGLOG_T "log_{10} log_{10} t   (t: gradient-flow time on the sum loss)"
#define GP_LABEL_LOG10_LN_T "log_{10} ln t   (t: gradient-flow time on the sum loss)"
#define GP_LABEL_GAMMA "normalized margin γ = q_{min} / ‖θ‖^L"

/* A figure being written. */
typedef struct gp_fig {
    FILE *f;            /* the script */
    FILE *b;            /* the body: plot commands, replayed per format */
    char *body;
    size_t blen;
    char *dir;          /* the folder gnuplot runs in (owned) */
    char *name;         /* output base name inside dir (owned) */
    char *script;       /* dir/name.gp (owned) */
    double w, h;        /* size in inches */
    int formats;        /* GP_* */
} gp_fig;

/* Start figure dir/name.gp (outputs dir/name.pdf, .svg, .png as formats
 * says) of w x h inches; made_by names the command in the header comment
 * ("marginflow reproduce"). Writes the common style. Returns 0, or -1 when
 * the script cannot be created (errno set; nothing left open). */
int gp_begin(gp_fig *g, const char *dir, const char *name, const char *made_by, double w,
             double h, int formats);

/* Where the caller writes its plot commands (set ..., plot ...). */
#define GP_BODY(g) ((g)->b)

/* Finish: write the terminals with the body after each, run gnuplot in
 * g->dir (its messages go to name.log, removed when it succeeds). Returns
 * 0, or -1 when writing failed or gnuplot failed or is missing (the
 * script and the log are kept). Frees what g owns either way. */
int gp_end(gp_fig *g);

/* Drop a figure that does not apply: close and remove the script. */
void gp_cancel(gp_fig *g);

/* The body of a gnuplot single-quoted string ('' for '), and of a
 * double-quoted one (" and \ escaped; "\n" in s stays a line break). */
void gp_str(FILE *f, const char *s);
void gp_dstr(FILE *f, const char *s);

/* set title: s, the figure's own words as enhanced text (q_{min},
 * ‖θ‖^L), then sub (a user's or a claim file's text, written literally) in
 * smaller lines below; lines cut on a word boundary to what fits the
 * figure's width. Either may be NULL or empty (sub alone is then full
 * size). */
void gp_title(gp_fig *g, const char *s, const char *sub);

/* gp_title with s literal too (a user's title, a grid's). */
void gp_title_literal(gp_fig *g, const char *s, const char *sub);

/* set multiplot layout rows,cols with the title of gp_title (s_literal: of
 * gp_title_literal); the panels then have their own set title, or none. */
void gp_multiplot(gp_fig *g, int rows, int cols, const char *s, int s_literal, const char *sub);

/* The 1-based column of `name` in a CSV header line, 0 when absent (so a
 * figure reads metrics.csv by column name, whatever columns a build adds). */
int gp_csv_col(const char *header, const char *name);

/* The 95% Wilson score interval [lo, hi] of k successes in n trials
 * (Wilson 1927): (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),
 * z = 1.96; unlike p +- z sqrt(p(1-p)/n) it stays in [0, 1] and is not
 * empty at k = 0 or k = n. NAN for n <= 0. */
void gp_wilson(int k, int n, double *lo, double *hi);

/* Colour k of the qualitative palette (Okabe & Ito's colour-blind safe
 * set, then greys), cycling: "#0072b2", ... */
const char *gp_color(int k);

/* The key below the plot in up to `cols` columns, or no key at all when
 * there are no entries. */
void gp_key_below(FILE *b, int entries, int cols);

/* A y range that follows the data that matters, from the finite values v[n]
 * (the positive ones with GP_RANGE_LOG, in log10 and rounded out to whole
 * decades). Without GP_RANGE_ROBUST: min to max, padded by 4%. With it:
 * the 2% and 98% quantiles widened by 15% of their spread (never beyond the
 * data), padded by 4%, so that a few stray points (a margin of -3 before
 * the data are separated, a residual of 1e-16 among values near 1e-4) do
 * not set the scale; such points are drawn at the edge or left out. Use it
 * where the dynamics' start is not what the figure is about (margins); a
 * loss or a norm keeps its whole range. Returns 0 with *lo < *hi, or -1
 * when there is no value. */
enum { GP_RANGE_LOG = 1, GP_RANGE_ROBUST = 2 };
int gp_range(const double *v, size_t n, int flags, double *lo, double *hi);

/* The axis label (enhanced text, with its math name and units) of a column
 * of metrics.csv or results.csv ("normalized_margin" -> "normalized margin
 * γ = q_{min} / ‖θ‖^L"), NULL for another name; gp_xlabel / gp_ylabel
 * write set xlabel / ylabel with it, or with the name itself (literal)
 * when there is none. */
const char *gp_column_label(const char *col);
/* The short title of a figure of that column ("Normalized margin"), NULL
 * for another name. */
const char *gp_column_title(const char *col);
void gp_xlabel(FILE *b, const char *col);
void gp_ylabel(FILE *b, const char *col);

/* A number for a gnuplot script ("%.9g"); NaN or infinite -> "NaN". In one
 * of 8 rotating static buffers. */
const char *gp_num(double v);

#endif

/*
 * grid.h -- the grid files of `marginflow sweep` (format: docs/sweeps.md):
 * reading and validating a grid, expanding it into its points, and the
 * stable id of every point. Internal to the CLI (cli/grid.c); used by
 * cli/sweep.c, cli/sweep_report.c and the fuzz harness tests/fuzz/fuzz_grid.c.
 *
 * A grid is a base run -- the RUN object of experiments/README.md, parsed
 * by the claim parser (rp_run_parse, cli/experiment.c) -- and axes. Each
 * axis has a name and values (a list, a linear or a logarithmic range, or
 * seeds); "{name}" in any string of the base is replaced by the point's
 * value ("relu2:width={width},alpha=0"; "scale": "{sigma}"), a seeds axis
 * also sets the run's seed. The points are the product of the axes, in
 * order, the last axis varying fastest: point i has the value index
 * vidx[i * naxes + a] on axis a.
 *
 * Every field is checked before anything runs, and every point is expanded
 * and parsed at grid_parse time (grid_check_runs also loads each data set
 * once and parses every point's model), so a sweep never stops halfway on
 * a bad point. A refused file gets one sentence naming the file and field,
 * e.g. "g.json: axes[1].logrange.from: must be > 0".
 *
 * Point ids. The id of a point is the 64-bit FNV-1a hash (16 hex digits) of
 * the unformatted JSON of its identity (grid_identity): data, model, init,
 * every train setting including the stopping criteria and checkpoint_every,
 * and the analysis settings. It depends on nothing else -- not on the
 * point's index, the task, the grid's name or the other points -- so a grid
 * that gains a value or an axis keeps the ids (and finished results) of the
 * points it had. Two points with the same identity are refused.
 */
#ifndef MF_CLI_GRID_H
#define MF_CLI_GRID_H

#include "experiment.h"
#include "cli.h"

#define GRID_MAX_AXES 16
#define GRID_MAX_VALUES 10000   /* values of one axis */
#define GRID_MAX_POINTS 100000  /* points of a grid */
#define GRID_MAX_FIGURES 32
#define GRID_MAX_FILE ((size_t)16 << 20)
#define GRID_ID_LEN 17          /* 16 hex digits and the NUL */

/* One axis. Values are numbers (num) or strings (str), never both. */
typedef struct grid_axis {
    const char *name;           /* into root */
    int n;                      /* 1..GRID_MAX_VALUES values */
    int seeds;                  /* a seeds axis: sets init.seed (the run's seed) */
    double *num;                /* [n] or NULL */
    const char **str;           /* [n] (into root) or NULL */
} grid_axis;

/* x axis scale of a figure. */
enum { GRID_X_AUTO, GRID_X_LINEAR, GRID_X_LOG, GRID_X_LN_INV };

/* One figure of sweep-report. kind "fractions": the fraction of points per
 * value of `of` (class, verdict or outcome) against axis x; kind "metric":
 * column y against axis x, one line per value of axis group (NULL: one
 * line), with points: every point drawn too. Strings point into root. */
typedef struct grid_figure {
    const char *kind, *of, *x, *y, *group, *title;
    int xscale;                 /* GRID_X_* */
    int points;                 /* metric: also every point (jittered dots) */
} grid_figure;

/* A parsed grid. Strings point into root. */
typedef struct sweep_grid {
    cJSON *root;                /* the file; NULL if not JSON */
    char *file;                 /* the file's name as given (messages) */
    int max_points;             /* the limit it was parsed with */
    const char *name, *title, *paper, *statement;
    const cJSON *base;
    int naxes;
    grid_axis axes[GRID_MAX_AXES];
    int npoints;
    int *vidx;                  /* [npoints][naxes] */
    char (*ids)[GRID_ID_LEN];   /* [npoints] */
    long long checkpoint_every; /* steps between checkpoints of a point's run */
    int analyze;                /* mf_analyze each final theta */
    mf_analyze_settings as;
    double gamma_star;          /* reference gamma* for ratio and class; NAN: none */
    double class_tol;           /* "global" when gamma / gamma* >= 1 - class_tol */
    int nfigures;
    grid_figure figures[GRID_MAX_FIGURES];
} sweep_grid;

/* The numeric result columns a "metric" figure may draw (NULL-terminated;
 * also the columns of results.csv after the axes, status and outcome). */
extern const char *const grid_columns[];

/* Parse and validate text[len] (any bytes) as the grid file `file` (used in
 * messages), expanding every point and computing its id; more than
 * max_points points (0: GRID_MAX_POINTS) is an error. Returns 0 with *g
 * filled, or -1 with why (cap bytes) one sentence "FILE: FIELD: what is
 * wrong". Either way release *g with grid_free. */
int grid_parse(const char *text, size_t len, const char *file, int max_points, sweep_grid *g,
               char *why, size_t cap);

/* Read the file at path (at most GRID_MAX_FILE bytes) and grid_parse it. */
int grid_read(const char *path, sweep_grid *g, char *why, size_t cap);

/* Check that every point can run: each distinct data spec is loaded once,
 * each point's model parsed against it, explicit init values counted and a
 * random init drawn. Returns 0, or -1 with why "FILE: base: point I
 * (AXES): what is wrong". */
int grid_check_runs(const sweep_grid *g, const char *file, char *why, size_t cap);

/* The run of point i (0 <= i < npoints) into *out (release out->init_params
 * with free). Returns 0, or -1 with why set (only when memory runs out: the
 * point was parsed by grid_parse). */
int grid_point(const sweep_grid *g, int i, rp_run *out, char *why, size_t cap);

/* The identity object of run r (see above); NULL when out of memory. */
cJSON *grid_identity(const sweep_grid *g, const rp_run *r);

/* Point i's value on axis a as text: the string, or the number in the
 * shortest form that reads back to the same double. */
void grid_value_text(const sweep_grid *g, int i, int a, char *buf, size_t cap);

/* v as text that reads back to v: an integer below 2^53 in plain digits
 * ("10", never "1e+01": it goes into model specs), else the shortest %.Ng
 * (N = 1..17). */
void grid_num_text(char *buf, size_t cap, double v);

/* "width=2, seed=3" for point i into buf. */
void grid_point_desc(const sweep_grid *g, int i, char *buf, size_t cap);

/* The index of the axis called name, or -1. */
int grid_axis_find(const sweep_grid *g, const char *name);

/* Free everything *g owns and zero it; safe on a zeroed or freed grid. */
void grid_free(sweep_grid *g);

#endif

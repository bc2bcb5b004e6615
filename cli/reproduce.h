/*
 * reproduce.h -- what cli/reproduce.c (claims, runs), cli/checks.c (the
 * check quantities) and cli/figures.c (gnuplot figures, report.md /
 * report.html) share; the experiment files and the rp_run type are in
 * experiment.h. Internal to the CLI; the names are rp_ to keep them apart
 * from the library's mf_.
 */
#ifndef MF_CLI_REPRODUCE_H
#define MF_CLI_REPRODUCE_H

#include "cli.h"

#define LN10 2.302585092994045684 /* log(10) */
#include "experiment.h" /* rp_run, rp_col, the experiment files */

typedef struct rp_memo rp_memo; /* analyses of a claim, computed once (checks.h) */

/* Everything the figures need from a claim. */
typedef struct rp_claim {
    const char *name;         /* the claim's name (not owned) */
    const char *title;        /* its title, for the figures ("" when none; not owned) */
    const char *dir;          /* DIR/<claim> (not owned) */
    double gamma_star;        /* NAN if none */
    int nruns;
    rp_run *runs;
    /* cosine data: the reference directions, d entries each, or NULL */
    int has_mu, has_wref;
    double mu[64], wref[64];
    double align_thr;
    /* sweep data (fraction / escape checks) */
    int n_groups;
    double group_x[64], group_y[64], group_y2[64];
    int n_dead;               /* fraction: runs that never separated the data */
    double frac_below;        /* fraction: the margin a run ends below to count (NAN if none) */
    char sweep_kind[32];      /* "fraction" or "escape" or "" */
    double fit_slope, fit_icpt, pred_slope;
    int degree;               /* homogeneity order of the first run's model */
    rp_memo *memo;            /* the analyses made for the claim (checks.h) */
} rp_claim;

/* The run_config (cli/rundir.h) of the parsed run r: data (and test data,
 * subset, classes), model, init and
 * train settings; made_by "marginflow train" and no claim until the caller
 * sets them. The strings and init values point into r. */
struct run_config;
void rp_run_config(const rp_run *r, struct run_config *c);

/* Write fig-<kind>.gp in c->dir and run gnuplot on it (PNG and SVG next to
 * it). kind: margin, loss, norm, cosine, neurons, sweep. Returns 0 if the
 * figure was drawn, 1 if it does not apply to the claim (nothing written),
 * -1 if gnuplot failed or is missing (the script is kept). */
int rp_figure(const rp_claim *c, const char *kind);

/* Assemble DIR/report.md and DIR/report.html from DIR/<claim>/result.json of
 * the claims named in names[]. Returns 0 or -1 (message printed). */
int rp_report(const char *dir, char *const *names, int n, int quick);

/* Cosines of every hidden unit's incoming weights with ref (first d
 * coordinates) for a relu2 model: cos[M]. Units with zero weights get 0. */
void rp_unit_cosines(const mf_model *m, const double *theta, const double *ref, double *cos);

/* gamma_svm and the unit w_svm (d entries; wsvm may be NULL) of binary data
 * by mf_svm_solve (cli/checks.c); returns gamma_svm, or NAN when not solved. */
double rp_svm_unit(const mf_data *d, double *wsvm);

/* [LLWA21]'s odd/even split (cli/checks_relu2.c) of a bias-free relu2 net
 * at theta on binary data D (d <= 64): *cosv = cos(v, wsvm), v = sum_k a_k
 * w_k (wsvm a unit vector), *ratio = max_n |E(x_n)| / max_n |L(x_n)| (NAN
 * when undefined).
 * Returns 0, or -1 for another model. */
int rp_odd_even(const mf_model *m, const mf_data *D, const double *theta, const double *wsvm,
                double *cosv, double *ratio);

/* NNLS (eps, delta) of (P) and Lyu & Li's certificate eps relative to
 * ||theta~||, sqrt(2 (1 - beta)) (lleps may be NULL; like eps it is
 * relative, so the two share an axis), 
 * for the snapshot of logged row k of run r of claim c (mf_analyze without
 * the local search, through the claim's memo: a row a check analysed is not
 * analysed again). Returns 0, or -1 if the row is not separating, has no
 * snapshot or the analysis fails. */
int rp_kkt_at(const rp_claim *c, const rp_run *r, int k, double *eps, double *delta,
              double *lleps);

#endif

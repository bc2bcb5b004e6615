/*
 * experiment.h -- the experiment (claim) files of `marginflow reproduce`:
 * reading, validating and expanding experiments/<claim>.json (format:
 * experiments/README.md) into a plain description of its runs, checks and
 * figures. Internal to the CLI (cli/experiment.c); used by cli/reproduce.c
 * and by the fuzz harness tests/fuzz/fuzz_experiment.c, which links it with
 * cli/json.c (typed getters), cli/checks.c (the check quantities: each check
 * is validated against their table) and cli/common.c.
 *
 * Every field is checked before anything is trained: types, finite numbers,
 * integers inside their ranges (no out-of-range float-to-integer casts),
 * known keys, quantities, columns and figure kinds, and the number of runs a
 * claim expands to (at most RP_MAX_RUNS). A refused file gets one sentence
 * naming the file and the field, e.g.
 *   "x.json: runs[0].seeds: 1e+18 seeds is more than the limit of 10000 runs per claim".
 */
#ifndef MF_CLI_EXPERIMENT_H
#define MF_CLI_EXPERIMENT_H

#include "marginflow.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define RP_MAX_RUNS 10000          /* expanded runs per claim */
#define RP_MAX_CHECKS 1000         /* checks per claim */
#define RP_MAX_FIGURES 32          /* entries of "figures" */
#define RP_MAX_FILE ((size_t)16 << 20) /* bytes of one experiment file */
#define RP_MAX_SEED 9007199254740992.0 /* 2^53: every seed is exact in a JSON double */
#define RP_MAX_WREF 64             /* entries of "w_ref" */

/* One expanded training run of a claim: its setting (filled by the parser)
 * and what came out (filled by cli/reproduce.c). */
typedef struct rp_run {
    char name[160];           /* directory name under DIR/<claim>/, unique in the claim */
    char path[40];            /* where it is in the file ("runs[3]"), for messages */
    char base[64];            /* the run's name in the experiment file */
    char data_spec[MF_SPEC_LEN];
    char model_spec[MF_SPEC_LEN];
    char init_desc[256];      /* "params 1,1,1,-1" or "gauss scale 1e-06 seed 3" */
    double *init_params;      /* [n_init] or NULL */
    int n_init;
    char init_kind[32];
    double init_scale;
    char init_from[160];      /* "" or an earlier run of the claim: start from its final
                                 parameters (its params.txt), times init_multiply */
    int init_from_index;      /* that run's index in the claim's runs (set by the parser), -1 */
    double init_multiply;     /* the initial parameters times this (default 1) */
    uint64_t seed;
    int has_vary;
    double vary;              /* value of the claim's varied quantity */
    char var[40];             /* its name (the vary's "name"), "" without */
    int snapshots;            /* keep theta at every logged step */
    /* image data: the test set ("" for none), subsets (as run_config) */
    char test_spec[MF_SPEC_LEN];
    int train_limit, test_limit, n_classes, classes[2];
    uint64_t data_seed;
    mf_train_settings s;      /* valid (mf_train_settings_validate) */
    /* results */
    int done;                 /* trained without error */
    char err[MF_ERR_LEN];
    mf_data *data;
    mf_model *model;
    double *theta;            /* [n_params] final parameters */
    mf_train_result res;
    int nrows, caprows;
    mf_metrics *rows;         /* one per logged step */
    double *snaps;            /* [nrows][n_params] when snapshots */
} rp_run;

/* One check of a claim. Its parameters stay in the JSON object `spec` (part
 * of the experiment's root); the parser (rp_check_parse, cli/checks.c) has
 * checked that every key is one its quantity reads, of its type, finite, and
 * that integer parameters (local_trials, layer, starts, seed) are integers
 * in range, so evaluators may read them directly. */
struct rp_quantity;
typedef struct rp_check {
    const cJSON *spec;               /* the check object */
    const char *quantity;            /* its quantity's name */
    const struct rp_quantity *def;   /* its row of rp_quantities (checks.h) */
    const char *column;              /* a known metrics column, or NULL when absent */
} rp_check;

/* A parsed experiment file. Strings point into root (or are ""). */
typedef struct rp_experiment {
    cJSON *root;              /* the file, quick overrides merged; NULL if not JSON */
    const char *title, *paper, *reference, *statement;
    const char *paper_result; /* which result of which paper the claim checks ("" if absent) */
    double gamma_star;        /* NAN when absent */
    int n_wref;               /* 0 when absent */
    double wref[RP_MAX_WREF];
    int nruns;                /* 1..RP_MAX_RUNS on success */
    rp_run *runs;
    int nchecks;              /* 1..RP_MAX_CHECKS on success */
    rp_check *checks;
    int nfigures;
    const char *figures[RP_MAX_FIGURES]; /* each one of rp_figure_kinds */
} rp_experiment;

/* NULL-terminated list of the figure kinds (the check quantities are the
 * table rp_quantities of checks.h). */
extern const char *const rp_figure_kinds[];

/* The value of metrics column `col` ("step", "log10_time", "normalized_margin",
 * ... : the names of metrics.csv plus log_time), NAN for an unknown name. */
double rp_col(const mf_metrics *m, const char *col);

/* Parse and validate text[len] (any bytes; it need not be NUL-terminated)
 * as the experiment file `file` (used only in messages). With quick, the
 * file's "quick" overrides are merged first (quick.runs into every run,
 * quick.checks replaces checks) and the merged file is validated. Expands
 * the runs (runs x vary values x seeds, each with valid train settings and a
 * unique directory name).
 * Returns 0 with *x filled, or -1 with why (cap wcap) holding one sentence
 * "FILE: FIELD: what is wrong" (or "FILE:LINE:COL: not valid JSON"); on
 * failure *x holds no runs or checks, but root and the descriptive strings
 * when the text was JSON. Either way release *x with rp_experiment_free. */
int rp_experiment_parse(const char *text, size_t len, const char *file, int quick,
                        rp_experiment *x, char *why, size_t wcap);

/* Read the file at path (at most RP_MAX_FILE bytes) and rp_experiment_parse
 * it. Same return and error contract; an unreadable file is "PATH: cannot
 * read: <strerror>". */
int rp_experiment_read(const char *path, int quick, rp_experiment *x, char *why, size_t wcap);

/* The runs of a parsed experiment checked against their data, as training
 * them would: each run's data spec loads (cli_load_data), its model spec
 * parses for that data, and explicit init.params have the model's
 * parameter count. Kept out of rp_experiment_parse (which the fuzz harness
 * drives with arbitrary text) because it reads the data files a claim
 * names. Returns 0, or -1 with why "FILE: runs[K].FIELD: what is wrong". */
int rp_experiment_check_runs(const rp_experiment *x, const char *file, char *why, size_t wcap);

/* Free everything *x owns (runs with their results, checks, root) and zero
 * it. Safe on a zeroed or already freed experiment. */
void rp_experiment_free(rp_experiment *x);

/* Parse the single run object r at path (the RUN keys of experiments/README.md;
 * "seeds" and "vary" are not expanded here: the caller's own axes replace
 * them, and "{var}" templates must already be substituted) into *out, with
 * the same checks as a claim's runs: known keys, types, ranges, valid train
 * settings. Returns 0, or -1 with p->why set and nothing owned by *out
 * (release a parsed run's init_params with free). */
struct cli_jr;
int rp_run_parse(struct cli_jr *p, const cJSON *r, const char *path, rp_run *out);

/* Free the run list r[n] with every result the runs own. */
void rp_runs_free(rp_run *r, int n);

#endif

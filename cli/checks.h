/*
 * checks.h -- the check quantities of `marginflow reproduce`, in one table
 * (cli/checks.c): for each quantity its name, the keys a check of it may
 * carry, the keys it needs, and its evaluator. The experiment parser
 * (cli/experiment.c) validates every check against the table, the claim
 * runner (cli/reproduce.c) evaluates it through the table, so a quantity is
 * added in one place and a key that its quantity does not read is refused
 * ("FILE: checks[2].tol: key 'tol' is not used by quantity 'verdict'
 * (allowed: ...)") instead of being ignored.
 *
 * Analyses (mf_analyze) are kept per claim (rp_analysis): a check and a
 * figure that ask for the same run, snapshot and settings share one.
 */
#ifndef MF_CLI_CHECKS_H
#define MF_CLI_CHECKS_H

#include "reproduce.h"

/* What one check found: pass 1, fail 0, error -1, and the text of the
 * claim's "PASS|FAIL|ERROR name: measured vs expected" line. */
typedef struct rp_check_out {
    int pass;
    char measured[512];
    char expected[256];
} rp_check_out;

/* One check quantity. keys: what a check of it may carry besides
 * "quantity" and "comment"; required: what it must carry (a subset). */
typedef struct rp_quantity {
    const char *name;
    const char *const *keys;
    const char *const *required;
    void (*eval)(const cJSON *check, rp_claim *c, rp_check_out *o);
} rp_quantity;

/* The quantities, ending with a {NULL} entry. */
extern const rp_quantity rp_quantities[];

/* The quantity called name, or NULL. */
const rp_quantity *rp_quantity_find(const char *name);

/* Validate the check object ck at path (e.g. "checks[2]") of the file
 * named in r against the table and the claim's runs (a "run" key must name
 * one of them): known quantity, only its keys, each of its type (finite
 * numbers; integers in range before any conversion), required keys present.
 * Returns 0 with *out filled, or -1 with r->why set. */
int rp_check_parse(cli_jr *r, const cJSON *ck, const char *path, const rp_run *runs, int nruns,
                   rp_check *out);

/* Evaluate a parsed check on the claim's runs (c->runs, c->nruns); fills o,
 * and the figure data of c (sweeps, alignment threshold, degree). */
void rp_check_eval(const rp_check *ck, rp_claim *c, rp_check_out *o);

/* The analyses of a claim, computed at most once each. */
rp_memo *rp_memo_new(void);
void rp_memo_free(rp_memo *m); /* NULL: no-op */

/* mf_analyze (loss of the run, default settings but layer and
 * local_trials) of run r of claim c: its final parameters when row < 0,
 * else its snapshot at logged row `row` (a run with snapshots). The first
 * request computes it; later ones get the same analysis (mf_analyze is
 * deterministic given its inputs), valid until rp_memo_free(c->memo).
 * NULL on failure with err (cap bytes) saying why. */
const mf_analysis *rp_analysis(const rp_claim *c, const rp_run *r, int row, int layer,
                               int local_trials, char *err, size_t cap);

/* mu = (1/N) sum_n y_n x_n of binary data ([LLWA21]); d entries. */
void rp_data_mu(const mf_data *d, double *mu);

/* The evaluators of cli/checks_relu2.c (two-layer ReLU nets: the certified
 * global reference, the first-layer problem P_0, [LLWA21]'s mechanisms);
 * their rows are in rp_quantities[]. */
void rp_ck_global_relu2(const cJSON *ck, rp_claim *c, rp_check_out *o);
void rp_ck_layer0_relu2(const cJSON *ck, rp_claim *c, rp_check_out *o);
void rp_ck_odd_even(const cJSON *ck, rp_claim *c, rp_check_out *o);
void rp_ck_sign_init(const cJSON *ck, rp_claim *c, rp_check_out *o);
void rp_ck_invariant(const cJSON *ck, rp_claim *c, rp_check_out *o);

#endif

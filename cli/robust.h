/*
 * robust.h -- `marginflow robust` and what reproduce's robustness check
 * shares with it (cli/robust.c): evaluate the archived states of a run
 * (DIR/archive/epoch-N.bin, or DIR/checkpoint.bin) on its test set with
 * mf_robust_eval, and write the table, the JSON and the figures.
 */
#ifndef MF_CLI_ROBUST_H
#define MF_CLI_ROBUST_H

#include "cli.h"

/* One evaluated state. */
typedef struct robust_point {
    long long epoch;          /* -1: a run without archives (its final checkpoint) */
    long long step;
    double log10_loss;        /* training loss of the state (its checkpoint) */
    mf_robust_result *r;
} robust_point;

typedef struct robust_table {
    int n;
    robust_point *p;          /* in epoch order */
    mf_robust_settings s;
    int n_test;               /* test inputs evaluated */
    char model[MF_SPEC_LEN];
} robust_table;

/* Evaluate the states of the run in run_dir chosen by which ("all", "first,last",
 * "final" = the last, or a list of epochs "1,10,100") on the first n_test inputs of
 * its test set (n_test 0: all; data: another data spec instead of the run's test
 * set, NULL for none), with settings s. progress: a line per state on stderr.
 * Returns 0 with *t filled, or a CLI exit code with why filled. */
int robust_run(const char *run_dir, const char *which, const mf_robust_settings *s, int n_test,
               const char *data, int progress, robust_table *t, char *why, size_t cap);

/* Write into dir: <prefix>.csv (one row per state and radius: epoch, step, log10_loss,
 * eps, clean, pgd, cw, min), <prefix>.json (settings, per state the accuracies and
 * the median norms), and the figures <prefix>-eps (robust accuracy vs eps, one
 * line per state) and <prefix>-epoch (vs epoch, one line per radius; only with two
 * or more archived states) as .gp, .png and .svg (gnuplot; the script is kept
 * when gnuplot is missing). Returns 0 or -1 with why filled. */
int robust_write(const char *dir, const char *prefix, const robust_table *t, char *why, size_t cap);

void robust_table_free(robust_table *t);

#endif

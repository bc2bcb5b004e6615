/*
 * rundir.h -- the run directory: what a run is (run_config), how it is
 * written to and read from config.json (one schema, one writer, one reader,
 * versioned), the directory itself (create / open; a lock goes there), the
 * files in it, and run_execute, the one place where a run is trained:
 * `marginflow train`, `train --resume` and `marginflow reproduce` all call
 * it (and a sweep will).
 *
 * A run directory holds
 *   config.json     the run_config (format "marginflow-config", version 2;
 *                   docs/run-directory.md) plus where it came from: argv,
 *                   resumes, made_by, claim, library_version
 *   metrics.csv     one row per logged step, flushed as it is written
 *   params.txt      the final parameters (mf_params_write)
 *   summary.json    outcome, final metrics, speed (written atomically)
 *   checkpoint.bin  the full state (train: every --checkpoint-every steps and
 *                   at the end; what --resume continues from)
 *   command.txt     the shell-quoted command lines (train)
 *   snapshots.csv   theta at every logged step (reproduce runs that ask)
 * The checkpoint's fingerprint is the CRC-32 of the run's identity: the
 * config without the stopping criteria and the descriptive fields, so only
 * the stopping criteria may change on resume.
 *
 * config.json version 1 was written by two writers with two schemas (train:
 * init.params a string, init.kind always gauss/balanced, a scale even with
 * params; reproduce: init.kind "params" with an array, init.seed, no argv).
 * The reader accepts both, and a version-1 train run still resumes: its
 * checkpoint is checked against the fingerprint it was written with, then
 * re-stamped with the version-2 one before config.json is rewritten as
 * version 2 (run_execute).
 */
#ifndef MF_CLI_RUNDIR_H
#define MF_CLI_RUNDIR_H

#include "cli.h"

#include <signal.h>
#include <stdint.h>

#define RUN_CONFIG_VERSION 2

/* Everything that defines a run, plus where it came from. Strings are not
 * owned: they point into argv, into the caller's buffers, or into `tree`
 * (run_config_read). */
typedef struct run_config {
    const char *data_spec;      /* as given */
    const char *data_path;      /* what to load: absolute path for files, else the spec */
    const char *format;         /* libsvm | csv | NULL = by extension */
    /* subsets (mf_data_select) of the training and test data: train_limit /
     * test_limit samples (0 = all), the two classes when n_classes = 2 (a
     * binary problem), chosen with data_seed */
    int train_limit, test_limit, n_classes, classes[2];
    uint64_t data_seed;
    const char *test_spec;      /* the test set as given, or NULL (epoch runs: its error) */
    const char *test_path;      /* what to load (absolute for files), else test_spec */
    const char *model_spec;
    const char *init_kind;      /* gauss | balanced (random, init_scale), params, file */
    double init_scale;          /* gauss / balanced: the standard deviation */
    const double *init_values;  /* params: n_init values in the order of marginflow layout */
    int n_init;
    const char *init_text;      /* params as typed (--init-params "v1,v2,.."): run_execute
                                   parses it into values, which config.json then holds */
    const char *init_file;      /* file: the path, read once when the run starts */
    double init_multiply;       /* the initial parameters (any kind) times this, > 0
                                   (default 1; config.json records it only when not 1) */
    /* data.data_hash (mf_data_hash, "%08x" in config.json; part of the
     * identity): NEW computed from the data loaded (a new run), RECORDED
     * read from config.json (a resume or analysis refuses data with another
     * hash), ABSENT in runs written before data hashes (a warning; such a
     * run keeps no hash, so its checkpoint fingerprint stays valid) */
    enum { RUN_HASH_NEW, RUN_HASH_RECORDED, RUN_HASH_ABSENT } hash;
    uint32_t data_hash;
    uint32_t test_hash;         /* data.test.data_hash: the same for the (subset) test set */
    mf_train_settings s;
    /* descriptive: not part of the fingerprint */
    const char *made_by;        /* "marginflow train" | "marginflow reproduce" */
    const char *claim;          /* reproduce: the claim; NULL otherwise */
    const cJSON *argv;          /* the command that made the run; NULL: this process */
    const cJSON *resumes;       /* the commands that resumed it; NULL: none */
    int version;                /* schema version read (RUN_CONFIG_VERSION when new) */
    const char *loss_name;      /* settings.loss as written (run_config_read), or NULL */
    /* a version-1 config written by train: its init object as written, from
     * which that run's checkpoint fingerprint was computed */
    struct {
        int present;
        const char *kind, *params, *file;
        double scale;
    } v1;
    /* owned by run_config_read, released by run_config_free */
    cJSON *tree;
    double *values;
    char *path;
} run_config;

/* Library training defaults; model linear, init gauss with scale 0.1, made
 * by train, version RUN_CONFIG_VERSION, nothing owned. */
void run_config_default(run_config *c);

/* Free what run_config_read allocated; c is reset to run_config_default. */
void run_config_free(run_config *c);

/* What a reader needs: RUN_READ_RESUME everything to continue training;
 * RUN_READ_DESCRIBE only what identifies the model and data (data.path or
 * data.spec, data.format, model.spec; settings.loss when present). */
enum { RUN_READ_RESUME, RUN_READ_DESCRIBE };

/* Why run_config_read failed (RUN_READ_OK = it did not); why always holds
 * one sentence naming the file. */
typedef struct run_read_error {
    enum { RUN_READ_OK, RUN_READ_OPEN, RUN_READ_JSON, RUN_READ_FIELD } kind;
    int errnum;                 /* RUN_READ_OPEN: errno (ENOMEM: out of memory) */
    char field[64];             /* RUN_READ_FIELD: the first missing or invalid key */
    char why[MF_ERR_LEN];       /* OPEN: "FILE: cannot open: ...", "FILE: the file is N bytes,
                                   beyond the limit ...", "FILE:L:C: NUL byte ..." (cli_read_text);
                                   JSON: "FILE:L:C: not valid JSON"; FIELD: "FILE: FIELD: what
                                   is wrong" */
} run_read_error;

/* Read dir/config.json (version 1 of either writer, or version 2) into c,
 * starting from run_config_default (settings it does not record keep their
 * defaults). c->path is the file's path, c->loss_name the loss as written.
 * Returns 0, or -1 with *err filled (c then owns
 * nothing but its path). */
int run_config_read(const char *dir, int purpose, run_config *c, run_read_error *err);

/* Compare the data d (and test, the test set, when the run has one; NULL
 * otherwise) loaded for the run of c (read from dir/config.json), subsets
 * applied, with the data_hash values the run recorded: 0 when they match
 * (or c is a new run); 1 when the run records none (written before data
 * hashes: why holds a warning sentence starting "warning: "); -1 when one
 * differs (why holds the error, naming the data set and both hashes). */
int run_data_hash_check(const run_config *c, const mf_data *d, const mf_data *test,
                        const char *dir, char *why, size_t cap);

/* The run's settings as a JSON object (with_stopping 0 leaves out the
 * stopping criteria, as the fingerprint does). The epoch-run fields are
 * written only for epoch runs, so that every other run keeps the identity
 * (and checkpoint fingerprint) it had before they existed. NULL when out
 * of memory. */
cJSON *run_settings_json(const mf_train_settings *s, int with_stopping);

/* ----------------------------------------------------------- directory */

/* The lock file of a run directory (an fcntl write lock, held for the
 * run's life by the process that writes it). */
#define RUN_LOCK_FILE "run.lock"

/* An open run directory: its path and the run's lock, taken in
 * run_dir_create / run_dir_open and released in run_dir_close. */
typedef struct run_dir {
    char *path;
    int lock_fd;                /* -1: no lock held */
} run_dir;

/* runs/<prefix>-YYYYmmdd-HHMMSS (or -2, -3, .. when taken); malloc'd. */
char *run_dir_default_path(const char *prefix);

/* Make path (mkdir -p) the directory of a new run and lock it. Refused
 * (exit 2) when the name is empty; when it already holds a run (a
 * marginflow config.json) unless replace (reproduce's folders, which it
 * rewrites on every call); when it holds anything that is not marginflow's
 * (a user's params.txt is a marginflow name, but a user's notes.txt, or
 * `/`, is not: nothing a user owns is overwritten); and when another
 * process holds its lock. A folder holding only marginflow's files and no
 * config.json (a run killed before it was marked) is reused. Returns 0 or a
 * CLI exit code, why filled. */
int run_dir_create(run_dir *rd, const char *path, int replace, char *why, size_t cap);

/* Open the existing run in path to continue it: lock it (exit 2 when
 * another process holds the lock: a run being trained is never touched),
 * then remove the temporary files an atomic write killed before its rename
 * left. Returns 0 or a CLI exit code, why filled. */
int run_dir_open(run_dir *rd, const char *path, char *why, size_t cap);

void run_dir_close(run_dir *rd); /* zeroed or closed: no-op */

/* The training and test data of c (c->data_path, c->test_path) with its
 * subsets applied: *train always, *test when c has a test set. Returns 0 or
 * a CLI exit code with why filled. */
int run_load_data(const run_config *c, mf_data **train, mf_data **test, char *why, size_t cap);

/* The checkpoint fingerprint of the run c on its (loaded, subset) training
 * data d and model m: what every checkpoint and archive of it carries. */
uint32_t run_fingerprint(const run_config *c, const mf_data *d, const mf_model *m);

/* DIR/archive/epoch-NNNNNNNN.bin of an epoch run's archived state. */
#define RUN_ARCHIVE_DIR "archive"

/* --------------------------------------------------------------- files */

/* dir/summary.json (atomically) of a finished run: format name and
 * version, outcome, steps, speed, final metrics (t both as an exact decimal
 * string and as log t), model, data and settings. Returns an mf_error code,
 * why filled. */
int run_write_summary(const char *dir, const mf_train_settings *s, const mf_data *d,
                      const mf_model *m, const mf_train_result *r, char *why, size_t cap);

/* ------------------------------------------------------------- execute */

enum { RUN_LOG_NONE, RUN_LOG_ERRORS, RUN_LOG_WARNINGS };

/* How run_execute runs and what it keeps. */
typedef struct run_exec {
    const char *dir;            /* the run directory */
    int resume;                 /* continue the run in dir from its checkpoint */
    int replace;                /* new run: dir may hold an earlier run, replaced */
    int checkpoint;             /* keep checkpoint.bin (at step 0, every
                                   s.checkpoint_every steps, at the end) */
    int command;                /* record the command line in command.txt */
    int snapshots;              /* theta at every logged row: kept and in snapshots.csv */
    int archive;                /* epoch runs: the archive states in DIR/archive/epoch-N.bin */
    int keep;                   /* keep the rows, the final theta, data and model in out */
    int log;                    /* library messages printed: RUN_LOG_* */
    int progress;               /* a progress line on stderr */
    int signals;                /* SIGINT / SIGTERM stop the run cleanly (outcome
                                   interrupted: checkpoint, params, summary written) */
    const volatile sig_atomic_t *stop; /* optional: non-zero stops the run cleanly as
                                   a signal does (the caller's own handlers set it) */
} run_exec;

/* What run_execute leaves: data, model and training result always (when it
 * got that far); with keep the rows, snapshots and final theta. */
typedef struct run_output {
    mf_data *data;
    mf_data *test;              /* the test set, or NULL */
    mf_model *model;
    mf_train_result res;
    double *theta;              /* keep: the final parameters [n_params] */
    mf_metrics *rows;           /* keep: one per logged step */
    int nrows, caprows;
    double *snaps;              /* snapshots: [nrows][n_params], NAN rows never filled */
    uint32_t fingerprint;
    long long start_step;       /* the step training started from (0, or the checkpoint's) */
    char err[MF_ERR_LEN];       /* why it failed (also the message train prints) */
} run_output;

/* Build the run of c (data, model, initial or resumed state), write its
 * directory and train it with mf_train, writing every file as it goes
 * (the order makes a run killed at any moment resumable or absent: the
 * step-0 checkpoint and the metrics header come before config.json marks
 * the folder as a run). Returns 0 when the run trained -- whatever its
 * outcome (out->res.outcome) -- or a CLI exit code (2 bad input, 1 I/O or
 * memory) with out->err one sentence. Release out with run_output_free. */
int run_execute(const run_config *c, const run_exec *x, run_output *out);

void run_output_free(run_output *o); /* zeroed or freed: no-op */

#endif

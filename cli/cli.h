/*
 * cli.h -- what the marginflow subcommands share: the dispatch table entry,
 * option parsing, error printing, exit codes, paths and JSON helpers.
 * The CLI uses only the public API (marginflow.h) plus cJSON and zlib.
 */
#ifndef MF_CLI_H
#define MF_CLI_H

#include "marginflow.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Exit codes of every subcommand (documented in each --help). */
enum {
    CLI_EXIT_OK = 0,          /* finished: any stopping criterion, or stalled */
    CLI_EXIT_ERROR = 1,       /* I/O or other failure */
    CLI_EXIT_USAGE = 2,       /* bad usage or bad input */
    CLI_EXIT_NONFINITE = 4,   /* the run ended non-finite */
    CLI_EXIT_INTERRUPTED = 130
};

/* One subcommand: argv[0] is the subcommand's name. */
typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cli_command;

/* The whole command line as main() got it (for config.json, command.txt). */
extern int cli_argc;
extern char **cli_argv;

int cli_train(int argc, char **argv);
int cli_layout(int argc, char **argv);
int cli_reproduce(int argc, char **argv);
int mf_cli_maxmargin(int argc, char **argv);
int mf_cli_global(int argc, char **argv);
int cli_svm(int argc, char **argv);
int mf_cli_analyze(int argc, char **argv);

/* Print "marginflow: <message>\n" to stderr. */
void cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Exit code for a library error code: bad input (parse, invalid, dim,
 * corrupt, foreign, unsupported, io while reading inputs when input_io) -> 2;
 * out of memory, write failures, callbacks -> 1. */
int cli_exit_for(int code, int input_io);

/* Match argv[*i] against an option taking a value, as "--name VALUE" or
 * "--name=VALUE". Returns 1 and sets *val (advancing *i past a separate
 * value), 0 if argv[*i] is another option, -1 (message printed) if the value
 * is missing. */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* Strict number parsing; print "marginflow: OPT: ..." and return -1 on error. */
int cli_parse_double(const char *opt, const char *s, double *v);
int cli_parse_ll(const char *opt, const char *s, long long lo, long long hi, long long *v);

/* Single string of the arguments, each shell-quoted where needed; malloc'd. */
char *cli_shell_quote(int argc, char *const *argv);

/* snprintf that truncates silently (no -Wformat-truncation trouble). */
void cli_fmt(char *buf, size_t cap, const char *f, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A whole file as a malloc'd NUL-terminated string (*len its length, may be
 * NULL); NULL with errno set on failure. */
char *cli_read_text(const char *path, size_t *len);

/* mkdir -p; returns 0 or -1 with errno set. */
int cli_mkdirs(const char *path);

/* dir + "/" + name in a malloc'd string (NULL on no memory). */
char *cli_join(const char *dir, const char *name);

/* JSON helpers: a finite number written as %.17g (C locale) raw text, NaN /
 * Inf as null; integers exactly. Return the added item or NULL. */
cJSON *cli_json_num(cJSON *obj, const char *name, double v);
cJSON *cli_json_int(cJSON *obj, const char *name, long long v);
cJSON *cli_json_str(cJSON *obj, const char *name, const char *s); /* NULL -> null */

/* Write a cJSON tree (formatted, trailing newline) atomically. */
int cli_json_write(const char *path, const cJSON *root, mf_err *e);

/* Run-directory files shared by train and reproduce (rundir.c): the settings
 * as a JSON object (with_stopping = 0 leaves out the stopping criteria), and
 * DIR/summary.json of a finished run (error printed; returns an mf_error). */
cJSON *cli_settings_json(const mf_train_settings *s, int with_stopping);
int cli_write_summary(const char *dir, const mf_train_settings *s, const mf_data *d,
                      const mf_model *m, const mf_train_result *r);

#endif

/*
 * cli.h -- what the marginflow subcommands share: the dispatch table entry,
 * option parsing, error printing, exit codes, paths (JSON: json.h).
 * The CLI uses only the public API (marginflow.h) plus cJSON and zlib.
 */
#ifndef MF_CLI_H
#define MF_CLI_H

#include "marginflow.h"

#include "json.h"

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
int cli_svm(int argc, char **argv);
int mf_cli_analyze(int argc, char **argv);
int cli_robust(int argc, char **argv);

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
 * NULL); NULL with errno set on failure: EFBIG when it holds more than max
 * bytes (max 0: no limit), ENOMEM, EIO, or fopen's errno. */
char *cli_read_text(const char *path, size_t max, size_t *len);

/* Append printf text to the NUL-terminated string in buf[cap] (truncating). */
void cli_cat(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* mkdir -p; returns 0 or -1 with errno set. */
int cli_mkdirs(const char *path);

/* dir + "/" + name in a malloc'd string (NULL on no memory). */
char *cli_join(const char *dir, const char *name);

#endif

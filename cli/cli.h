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
int mf_cli_global(int argc, char **argv);
int cli_svm(int argc, char **argv);
int mf_cli_analyze(int argc, char **argv);
int cli_robust(int argc, char **argv);
int cli_sweep(int argc, char **argv);
int cli_sweep_report(int argc, char **argv);
int cli_plot(int argc, char **argv);

/* The analysis.json object of `marginflow analyze` (format
 * "marginflow-analysis" version 1) for analysis a of model m on data d with
 * settings s; NULL when out of memory. */
cJSON *cli_analysis_json(const mf_analysis *a, const mf_model *m, const mf_data *d,
                         mf_loss_kind loss, const mf_analyze_settings *s);

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
 * is missing or holds a control character (cli_check_text). */
int cli_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* Whether s (the value of option opt, or an argument) is text: no control
 * character (a byte below 0x20 or DEL; with lines != 0 tab, LF and CR are
 * allowed, as in --init-params). Returns 0, or -1 after printing
 * "marginflow: OPT: control character 0xNN at character K" -- a spec is
 * never handed on with a control byte that a message would echo. cli_opt
 * checks every value it returns. */
int cli_check_text(const char *opt, const char *s, int lines);

/* Strict number parsing; print "marginflow: OPT: ..." and return -1 on error. */
int cli_parse_double(const char *opt, const char *s, double *v);
int cli_parse_ll(const char *opt, const char *s, long long lo, long long hi, long long *v);

/* Single string of the arguments, each shell-quoted where needed; malloc'd. */
char *cli_shell_quote(int argc, char *const *argv);

/* printf into a malloc'd string of the length it needs (NULL when out of
 * memory): for paths and names, which are never cut (cli_fmt cuts). */
char *cli_aprintf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* snprintf that truncates silently (no -Wformat-truncation trouble): only
 * for messages and for text whose length the caller has bounded, never for
 * a path or a name (cli_aprintf, cli_join). */
void cli_fmt(char *buf, size_t cap, const char *f, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Limits of the files the CLI reads whole (docs/limits.md): config.json and
 * the result.json files of reproduce (CLI_MAX_JSON_BYTES); experiment files
 * have theirs (RP_MAX_FILE, experiment.h); metrics.csv is read line by line,
 * each line at most CLI_MAX_METRICS_LINE bytes. */
#define CLI_MAX_JSON_BYTES ((size_t)64 << 20)
#define CLI_MAX_METRICS_LINE ((size_t)64 << 10)
#define CLI_MAX_METRICS_LINE_TEXT "65536"

/* The text file at path as a malloc'd NUL-terminated string (*len its
 * length, len may be NULL), at most max bytes (max 0: CLI_MAX_JSON_BYTES;
 * there is no unlimited read). A regular file
 * larger than max is refused from its size before anything is read; any
 * other input (a pipe, a FIFO, /dev/zero) once it passes max; a NUL byte
 * as soon as the chunk holding it is read. NULL on failure with why[cap]
 * one sentence naming the file (quoted as cli_q does):
 *   "PATH: cannot open: <strerror>" / "PATH: read error: <strerror>"
 *   "PATH: the file is N bytes, beyond the limit of MAX bytes"
 *   "PATH: holds more than MAX bytes (the limit)"
 *   "PATH:L:C: NUL byte; not a text file"
 *   "PATH: out of memory"   (errno ENOMEM; any other failure leaves errno
 *                            non-ENOMEM: bad input). */
char *cli_read_text(const char *path, size_t max, size_t *len, char *why, size_t cap);

/* Load the data set of spec (mf_data_from_spec) and check what every
 * command asks of data beyond the library's checks (docs/limits.md): a
 * multi-class set has labels 0..C-1 with every class present, so a stray
 * label (999999 in a two-line file) cannot make a model with 10^6 outputs.
 * Returns 0 with *out set, or an exit code with why filled (*out NULL). */
int cli_load_data(const char *spec, const char *format, mf_data **out, char *why, size_t cap);

/* cli_load_data, then the model of model_spec parsed for those data.
 * Returns 0 with both set, or an exit code with why filled and both NULL. */
int cli_load_problem(const char *data_spec, const char *format, const char *model_spec,
                     mf_data **data, mf_model **model, char *why, size_t cap);

/* s as library messages show what a user typed (mf_quote: every byte that is
 * not printable ASCII or printable UTF-8 written as \xNN, cut with "..."
 * after 300 bytes), for messages that quote a path, spec, option value or
 * name. The result lives in one of 8 rotating static buffers, so up to 8
 * may appear in one message (the CLI is single-threaded). */
const char *cli_q(const char *s);

/* v for a text line: printf "%.*g" with `digits` significant digits, or
 * "absent" when v is NaN or infinite (no NaN reaches a user). In one of 8
 * rotating static buffers like cli_q. */
const char *cli_g(double v, int digits);
/* The same with `decimals` digits after the point ("%.*f"). */
const char *cli_f(double v, int decimals);

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

/*
 * json.h -- JSON in the marginflow CLI, in one place: the number convention
 * of every file the CLI writes (finite numbers as %.17g in the C locale, so
 * they read back to the same double; NaN / Inf as null; integers exactly),
 * atomic writes, strict parsing with FILE:LINE:COL errors, and typed getters
 * whose errors name the file and the field.
 *
 * Getter contract. A getter looks key up in the object o (which may be NULL
 * or not an object: then nothing is there). It returns
 *    1  present and valid (*out set),
 *    0  absent (out untouched) -- or present as null with CLI_J_NULL, *out
 *       set to NAN / NULL and 1 returned,
 *   -1  invalid, or absent with CLI_J_REQUIRED: r->why holds one sentence
 *       "FILE: FIELD: what is wrong" (FIELD is path.key) and r->key the bare
 *       key, for callers whose messages name only the key.
 * path is where o sits in the file ("", "runs[0]", "settings"), used only
 * in messages. After an error r keeps the first message; later getters
 * still work (so a reader may fetch every field and test once).
 *
 * Needs cJSON, the public library and cli/common.c (cli_read_text), so the
 * fuzz harness of the experiment parser links it with cli/experiment.c.
 */
#ifndef MF_CLI_JSON_H
#define MF_CLI_JSON_H

#include "marginflow.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* ------------------------------------------------------------- writing */

/* Add a number (finite: %.17g raw text; NaN / Inf: null), an integer
 * (exact), a string (NULL: null), or an array of n numbers (each as
 * cli_json_num) to obj. Return the added item, NULL when out of memory. */
cJSON *cli_json_num(cJSON *obj, const char *name, double v);
cJSON *cli_json_int(cJSON *obj, const char *name, long long v);
cJSON *cli_json_str(cJSON *obj, const char *name, const char *s);
cJSON *cli_json_num_array(cJSON *obj, const char *name, const double *v, int n);

/* A number that may be undefined: finite v is added as cli_json_num does;
 * otherwise nothing is added to obj and absent (when not NULL) gets the
 * string "PATH.NAME": reason (the file says why a quantity is missing
 * instead of writing NaN or null). Returns 0 only when out of memory. */
int cli_json_num_or(cJSON *obj, const char *name, double v, cJSON *absent, const char *path,
                    const char *reason);

/* An array holding argv[0..argc) as strings; NULL when out of memory. */
cJSON *cli_json_argv(int argc, char *const *argv);

/* Write the tree (formatted, trailing newline) to path atomically (temp
 * file, fsync, rename). Returns an mf_error code with e filled. */
int cli_json_write(const char *path, const cJSON *root, mf_err *e);

/* ------------------------------------------------------------- reading */

/* The reader context: the file named in messages and the message buffer. */
typedef struct cli_jr {
    const char *file;   /* as it should appear in messages */
    char *why;          /* the first error; cap bytes */
    size_t cap;
    const char *key;    /* the bare key of the first error, or NULL */
    int failed;         /* an error has been recorded */
} cli_jr;

/* Getter flags. */
#define CLI_J_REQUIRED 1u /* absent is an error ("is required") */
#define CLI_J_NULL 2u     /* null is accepted: *out = NAN / NULL, returns 1 */

/* Record "FILE: FIELD: <printf text>" (the first error only); returns -1. */
int cli_jbad(cli_jr *r, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* cli_jbad for the field path.key, remembering key in r->key. */
int cli_jbadk(cli_jr *r, const char *path, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* path + "." + key (key NULL: path + "[i]") into buf; a name longer than
 * buf (cap >= 4) ends in "...". Returns buf. */
const char *cli_jfield(char *buf, size_t cap, const char *path, const char *key, int i);

/* Item key of object o; NULL when o is not an object or has no such key. */
const cJSON *cli_jget(const cJSON *o, const char *key);

/* Unchecked reads for trees validated before (or written by marginflow):
 * the string / number at key, or def when absent or of another type. */
const char *cli_jstr_or(const cJSON *o, const char *key, const char *def);
double cli_jnum_or(const cJSON *o, const char *key, double def);

/* Every key of object o must be in keys[] (NULL-terminated, at most 64)
 * and appear once: 0, or -1 "unknown key (known here: ...)" / "appears
 * twice". */
int cli_jkeys(cli_jr *r, const cJSON *o, const char *path, const char *const *keys);

/* Typed fields (contract above). */
int cli_jnum(cli_jr *r, const cJSON *o, const char *path, const char *key, unsigned flags,
             double *out);                               /* a finite number */
int cli_jint(cli_jr *r, const cJSON *o, const char *path, const char *key, unsigned flags,
             double lo, double hi, double *out);         /* an integer in [lo, hi] */
/* a string of at most maxlen bytes with no control character (decoded
 * from a \u escape: "control character 0xNN at character K") */
int cli_jstr(cli_jr *r, const cJSON *o, const char *path, const char *key, unsigned flags,
             size_t maxlen, const char **out);
int cli_jbool(cli_jr *r, const cJSON *o, const char *path, const char *key, int *out);
/* An array of 1..maxn finite numbers; *n their count, the values into
 * vals[] when vals is not NULL. */
int cli_jnumarr(cli_jr *r, const cJSON *o, const char *path, const char *key, int maxn,
                double *vals, int *n);

/* Check that x is an integer in [lo, hi] before any conversion to an
 * integer type (a C cast of a NaN or out-of-range double is undefined):
 * 0, or -1 "X is not an integer in [LO, HI]" at field. */
int cli_jint_ok(cli_jr *r, const char *field, double x, double lo, double hi);

/* Parse text[len] (any bytes, not necessarily NUL-terminated) as exactly
 * one JSON value followed only by white space. NULL on failure with
 * r->why = "FILE:LINE:COL: not valid JSON", "...: text after the JSON
 * value", "...: NUL byte; not a text file", "...: control character 0xNN;
 * not valid JSON" (raw control bytes are refused anywhere, since cJSON
 * would take them into strings) or "...: escaped NUL (\u0000) in a string"
 * (cJSON would cut the string there). */
cJSON *cli_json_parse(cli_jr *r, const char *text, size_t len);

/* The file at path as a malloc'd NUL-terminated string of *len bytes, at
 * most max (0: CLI_MAX_JSON_BYTES) -- cli_read_text. NULL on failure with r->why its
 * sentence ("FILE: the file is N bytes, beyond the limit of MAX bytes",
 * "FILE:L:C: NUL byte; not a text file", "FILE: cannot open: ...", ...). */
char *cli_jread(cli_jr *r, const char *path, size_t max, size_t *len);

/* Read and cli_json_parse the file at path (at most max bytes; 0:
 * CLI_MAX_JSON_BYTES). NULL on
 * failure with r->why naming the file (cli_jread's sentences or the parse
 * error). */
cJSON *cli_json_load(cli_jr *r, const char *path, size_t max);

#endif

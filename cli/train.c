/*
 * train.c -- `marginflow train` and `marginflow layout`.
 *
 * train builds the data set and the model from their spec strings, sets the
 * initial parameters, runs mf_train and keeps everything in a run directory:
 *   config.json     argv, resolved settings, model, data, init, version
 *   command.txt     the shell-quoted command line (and any resume lines)
 *   metrics.csv     one row per logged step, flushed as it is written
 *   params.txt      the final parameters (mf_params_write)
 *   checkpoint.bin  the full state, every --checkpoint-every steps and at the end
 *   summary.json    outcome, final metrics, speed (written atomically)
 * --resume DIR rebuilds the run from DIR/config.json and DIR/checkpoint.bin.
 * The checkpoint's fingerprint is the CRC-32 of the configuration text without
 * the stopping criteria, so only those may change on resume; metrics.csv is
 * cut back to the rows before the checkpoint step, and since mf_train
 * re-emits the row at the checkpoint step, the resumed metrics.csv is
 * byte-identical to that of an uninterrupted run with the same settings.
 * (The log-step schedule depends on --steps: change only the other criteria
 * if the rows must match a run with other --steps.)
 */
#define _XOPEN_SOURCE 700 /* realpath, localtime_r (POSIX 2008 XSI) */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_JSON_INT 9007199254740992LL /* 2^53: integers round-trip through JSON numbers */

/* Everything that defines a run. Strings point into argv or into the parsed
 * config.json tree (kept alive for the whole command). */
typedef struct train_opts {
    const char *data_spec;   /* as given */
    const char *data_path;   /* what to load: absolute path for files, else the spec */
    const char *format;      /* NULL = by extension */
    const char *model_spec;
    const char *init_kind;
    double init_scale;
    const char *init_params;
    const char *init_file;
    const char *out_dir;
    const char *resume_dir;
    int quiet;
    mf_train_settings s;
} train_opts;

/* State shared with the training callbacks. */
typedef struct run_ctx {
    const train_opts *o;
    const char *dir;
    char *ckpt_path;
    uint32_t fingerprint;
    FILE *metrics;
    int progress;          /* print the progress line */
    int progress_shown;
    char err[MF_ERR_LEN];  /* why a callback failed */
} run_ctx;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void train_help(void) {
    printf(
        "usage: marginflow train --data SPEC [options]\n"
        "       marginflow train --resume DIR [stopping criteria] [-q]\n"
        "\n"
        "Train a model; all outputs go to a run directory (config.json, command.txt,\n"
        "metrics.csv, params.txt, checkpoint.bin, summary.json).\n"
        "\n"
        "data and model:\n"
        "  --data SPEC            required: builtin:B|C|D|G|R1|sym4, gauss:n=,d=,margin=,seed=,\n"
        "                         symmetric:n=,d=,margin=,seed=, or a data file\n"
        "  --format F             libsvm|csv for data files (default: by extension)\n"
        "  --model SPEC           linear, fc-linear:depth=K,width=M, diag:depth=K,\n"
        "                         relu2:width=M,alpha=A[,bias][,fix-outer], mlp:widths=..,\n"
        "                         skip-linear, relu2-outbias:width=M,alpha=A (default linear)\n"
        "training:\n"
        "  --loss L               exp|logistic|ce (default exp)\n"
        "  --optimizer O          flow|lyu-li|scaled|gd|sgd (default flow). flow is gradient\n"
        "                         flow, the object of the theorems, to the accuracy --tol;\n"
        "                         the others are the papers' discrete algorithms, whose\n"
        "                         discretization error metrics.csv shows (beta,\n"
        "                         smoothed_decrease, loss_increase; one warning line)\n"
        "  --lr X                 step size / alpha / initial dtau (default 0.1)\n"
        "  --tol X                flow: every step's local error is at most X (1 + ||theta||)\n"
        "                         in theta and, where the flow is stiff (deep in training),\n"
        "                         at most X in the loss weights (l1), i.e. in the margin\n"
        "                         differences q_n - q_min that set them; at the default the\n"
        "                         margins agree with a run at 1e-4 X to 1e-6 or better (check\n"
        "                         it: rerun with --tol 1e-10) (default 1e-6)\n"
        "  --max-rel-step X       lyu-li: roll back steps longer than X ||theta||\n"
        "                         (our safeguard; 0 = off, default 0.1)\n"
        "  --batch N              sgd: batch size (default 32)\n"
        "  --seed N               init and sgd order, 0..2^53 (default 1)\n"
        );
    printf(
        "stopping (the first criterion met ends the run):\n"
        "  --steps N              step budget; 0 = unlimited (default 10000)\n"
        "  --until-log10-loss X   stop when log10 Loss <= X, e.g. -300 for Loss <= 1e-300\n"
        "                         (default off)\n"
        "  --until-margin-gap X   stop when the normalized margin changed by less than X\n"
        "                         (relative) over the last decade of log t, i.e. from\n"
        "                         t^(1/10) to t (margin_change in metrics.csv; default off)\n"
        "  --until-time T         stop when the flow time t >= T (default off)\n"
        "  --wall-seconds S       stop after S seconds of wall time (default off)\n"
        "                         ('off' unsets any of the last four)\n"
        "logging:\n"
        "  --log-points N         metrics rows, log-spaced in the step (default 200)\n"
        "  --log-horizon N        steps the rows are spread over; fixed for the run,\n"
        "                         so resumes log the same rows (default: --steps,\n"
        "                         or 10^6 when --steps is 0)\n"
        "  --checkpoint-every N   checkpoint every N steps; 0 = only at the end\n"
        "                         (default 1000)\n"
        "initial parameters:\n"
        "  --init K               gauss|balanced (default gauss)\n"
        "  --init-scale S         standard deviation of the init (default 0.1)\n"
        "  --init-params v1,v2,.. explicit values, in the order of marginflow layout\n"
        "  --init-file F          values from a file (params.txt format or a plain list)\n"
        "output:\n"
        "  --out DIR              run directory (default runs/train-YYYYmmdd-HHMMSS)\n"
        "  -q, --quiet            no progress line and no summary\n"
        "  --resume DIR           continue the run in DIR from its checkpoint; only\n"
        "                         --steps, --until-log10-loss, --until-margin-gap,\n"
        "                         --until-time, --wall-seconds and -q may be given with it\n"
        "  -h, --help             this help\n"
        "\n"
        "SIGINT/SIGTERM stop the run cleanly: checkpoint, params and summary are\n"
        "written and the command to resume is printed.\n"
        "\n"
        "exit codes: 0 finished (loss target, step budget, time target, wall budget,\n"
        "            stalled), 1 I/O or other error, 2 bad usage or bad input,\n"
        "            4 run ended non-finite, 130 interrupted\n");
}

/* ----------------------------------------------------------- config text */

/* The configuration as JSON (settings through cli_settings_json, rundir.c).
 * full = 0 leaves out the stopping criteria (and argv, version, data
 * description): its unformatted text is what the checkpoint fingerprint is
 * computed from, so it must be built the same way from the command line and
 * from config.json. */
static cJSON *config_json(const train_opts *o, const mf_data *d, const mf_model *m,
                          int full) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cli_json_str(root, "format", "marginflow-config");
    cli_json_int(root, "version", 1);
    if (full) {
        cli_json_str(root, "library_version", MF_VERSION);
        cJSON *av = cJSON_AddArrayToObject(root, "argv");
        for (int i = 0; av && i < cli_argc; i++)
            cJSON_AddItemToArray(av, cJSON_CreateString(cli_argv[i]));
    }
    cJSON *dj = cJSON_AddObjectToObject(root, "data");
    if (dj) {
        cli_json_str(dj, "spec", o->data_spec);
        if (full) cli_json_str(dj, "path", o->data_path);
        cli_json_str(dj, "format", o->format);
        if (full) cli_json_str(dj, "desc", d->desc);
        cli_json_int(dj, "n", d->n);
        cli_json_int(dj, "d", d->d);
        cli_json_int(dj, "num_classes", d->num_classes);
    }
    cJSON *mj = cJSON_AddObjectToObject(root, "model");
    if (mj) {
        cli_json_str(mj, "spec", m->spec);
        cli_json_int(mj, "n_params", (long long)m->n_params);
        cli_json_int(mj, "degree", m->degree);
    }
    cJSON *ij = cJSON_AddObjectToObject(root, "init");
    if (ij) {
        cli_json_str(ij, "kind", o->init_kind);
        cli_json_num(ij, "scale", o->init_scale);
        cli_json_str(ij, "params", o->init_params);
        cli_json_str(ij, "file", o->init_file);
    }
    cJSON_AddItemToObject(root, "settings", cli_settings_json(&o->s, full));
    return root;
}

static uint32_t fingerprint(const train_opts *o, const mf_data *d, const mf_model *m) {
    cJSON *c = config_json(o, d, m, 0);
    char *text = c ? cJSON_PrintUnformatted(c) : NULL;
    uint32_t fp = 0;
    if (text) fp = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)text, (uInt)strlen(text));
    cJSON_free(text);
    cJSON_Delete(c);
    return fp;
}

/* ------------------------------------------------------ reading a config */

static const cJSON *jget(const cJSON *o, const char *name) {
    return o ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

/* Fetch a field; *err names the first missing / mistyped one. */
static const char *jstr(const cJSON *o, const char *name, int nullable, const char **err) {
    const cJSON *v = jget(o, name);
    if (v && cJSON_IsString(v)) return v->valuestring;
    if (nullable && v && cJSON_IsNull(v)) return NULL;
    if (!*err) *err = name;
    return NULL;
}

static double jnum(const cJSON *o, const char *name, int nullable, const char **err) {
    const cJSON *v = jget(o, name);
    if (v && cJSON_IsNumber(v)) return v->valuedouble;
    if (nullable && v && cJSON_IsNull(v)) return NAN;
    if (!*err) *err = name;
    return NAN;
}

/* An integer field in [lo, hi]; 0 and *err set otherwise. */
static long long jll(const cJSON *o, const char *name, long long lo, long long hi,
                     const char **err) {
    double v = jnum(o, name, 0, err);
    if (!(v >= (double)lo && v <= (double)hi) || v != floor(v)) {
        if (!*err) *err = name;
        return 0;
    }
    return (long long)v;
}

/* Rebuild the options of the run in dir from its config.json (tree kept in
 * *tree for the strings). Returns 0 or an exit code. */
static int load_config(const char *dir, train_opts *o, cJSON **tree) {
    char *path = cli_join(dir, "config.json");
    char *text = path ? cli_read_text(path, NULL) : NULL;
    if (!text) {
        int nomem = errno == ENOMEM;
        cli_error("cannot resume: cannot open %s: %s", path ? path : dir, strerror(errno));
        free(path);
        return nomem ? CLI_EXIT_ERROR : CLI_EXIT_USAGE;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) {
        cli_error("cannot resume: %s is not valid JSON", path);
        free(path);
        return CLI_EXIT_USAGE;
    }
    const char *err = NULL;
    const cJSON *dj = jget(root, "data"), *mj = jget(root, "model"), *ij = jget(root, "init"),
                *sj = jget(root, "settings");
    if (!dj || !mj || !ij || !sj) err = "data/model/init/settings";
    o->data_spec = jstr(dj, "spec", 0, &err);
    o->data_path = jstr(dj, "path", 0, &err);
    o->format = jstr(dj, "format", 1, &err);
    o->model_spec = jstr(mj, "spec", 0, &err);
    o->init_kind = jstr(ij, "kind", 0, &err);
    o->init_scale = jnum(ij, "scale", 0, &err);
    o->init_params = jstr(ij, "params", 1, &err);
    o->init_file = jstr(ij, "file", 1, &err);
    mf_train_settings *s = &o->s;
    const char *ls = jstr(sj, "loss", 0, &err), *os = jstr(sj, "optimizer", 0, &err);
    if (ls && mf_loss_from_name(ls, &s->loss) != MF_OK && !err) err = "loss";
    if (os && mf_optimizer_from_name(os, &s->optimizer) != MF_OK && !err) err = "optimizer";
    s->lr = jnum(sj, "lr", 0, &err);
    s->tol = jnum(sj, "tol", 0, &err);
    s->lr_up = jnum(sj, "lr_up", 0, &err);
    s->lr_down = jnum(sj, "lr_down", 0, &err);
    if (jget(sj, "max_rel_step")) s->max_rel_step = jnum(sj, "max_rel_step", 0, &err);
    s->batch = (int)jll(sj, "batch", -1000000000, 1000000000, &err);
    s->log_points = (int)jll(sj, "log_points", -1000000000, 1000000000, &err);
    s->log_horizon = jll(sj, "log_horizon", 0, MAX_JSON_INT, &err);
    s->checkpoint_every = jll(sj, "checkpoint_every", 0, MAX_JSON_INT, &err);
    s->seed = (uint64_t)jll(sj, "seed", 0, MAX_JSON_INT, &err);
    s->max_steps = jll(sj, "max_steps", 0, MAX_JSON_INT, &err);
    s->until_log10_loss = jnum(sj, "until_log10_loss", 1, &err);
    s->until_time = jnum(sj, "until_time", 1, &err);
    s->wall_seconds = jnum(sj, "wall_seconds", 1, &err);
    if (jget(sj, "until_margin_gap")) /* absent in runs made before it existed */
        s->until_margin_gap = jnum(sj, "until_margin_gap", 1, &err);
    if (err) {
        cli_error("cannot resume: %s: missing or invalid field '%s'", path, err);
        cJSON_Delete(root);
        free(path);
        return CLI_EXIT_USAGE;
    }
    free(path);
    *tree = root;
    return 0;
}

/* ------------------------------------------------------------- callbacks */

static void cb_log(void *user, int level, const char *msg) {
    run_ctx *c = user;
    if (level <= MF_LOG_ERROR || (level <= MF_LOG_WARN && !c->o->quiet)) {
        if (c->progress_shown) fputc('\n', stderr), c->progress_shown = 0;
        cli_error("%s%s", level == MF_LOG_WARN ? "warning: " : "", msg);
    }
}

static int cb_metrics(void *user, const mf_metrics *m) {
    run_ctx *c = user;
    char row[1024];
    mf_metrics_csv_row(m, row, sizeof row);
    if (fputs(row, c->metrics) < 0 || fputc('\n', c->metrics) == EOF || fflush(c->metrics)) {
        snprintf(c->err, sizeof c->err, "cannot write %s/metrics.csv: %s", c->dir,
                 strerror(errno));
        return 1;
    }
    return 0;
}

static int cb_checkpoint(void *user, const mf_train_state *s) {
    run_ctx *c = user;
    mf_err e = {0, ""};
    if (mf_checkpoint_write(c->ckpt_path, s, c->fingerprint, &e) != MF_OK) {
        snprintf(c->err, sizeof c->err, "%s", e.msg);
        return 1;
    }
    return 0;
}

static int cb_should_stop(void *user) {
    (void)user;
    return g_stop != 0;
}

/* Compact t for the progress line: 4 significant digits at any size. */
static void short_time(char *b, size_t cap, double time_log) {
    if (time_log == -INFINITY) {
        snprintf(b, cap, "0");
        return;
    }
    double l = time_log / 2.302585092994045684;
    if (fabs(l) < 300) {
        snprintf(b, cap, "%.4g", exp(time_log));
        return;
    }
    double E = floor(l), mant = pow(10.0, l - E);
    snprintf(b, cap, "%.3fe%+.0f", mant, E);
}

static void cb_progress(void *user, const mf_metrics *m, double sps) {
    run_ctx *c = user;
    char t[48];
    short_time(t, sizeof t, m->time_log);
    fprintf(stderr, "\rstep %lld  t %s  log10L %.6g  gamma %.6g  %.0f steps/s    ", m->step, t,
            m->log10_loss, m->normalized_margin, sps);
    fflush(stderr);
    c->progress_shown = 1;
}

/* ------------------------------------------------------------ run files */

/* Keep the header and the rows with step < step of DIR/metrics.csv
 * (rewritten atomically), so the resumed run appends exactly what an
 * uninterrupted run would have written from there on. */
static int truncate_metrics(const char *path, long long step) {
    size_t n = 0, keep = 0;
    char *text = cli_read_text(path, &n);
    if (!text) {
        int nomem = errno == ENOMEM;
        cli_error("cannot resume: cannot open %s: %s", path, strerror(errno));
        return nomem ? CLI_EXIT_ERROR : CLI_EXIT_USAGE;
    }
    const char *hdr = mf_metrics_csv_header();
    size_t hl = strlen(hdr);
    if (strncmp(text, hdr, hl) != 0 || text[hl] != '\n') {
        cli_error("cannot resume: %s:1:1: not a marginflow metrics file (header differs)", path);
        free(text);
        return CLI_EXIT_USAGE;
    }
    keep = hl + 1;
    while (keep < n) {
        char *nl = strchr(text + keep, '\n');
        if (!nl) break; /* a torn last line is dropped */
        char *end;
        long long s = strtoll(text + keep, &end, 10);
        if (end == text + keep || *end != ',' || s >= step) break;
        keep = (size_t)(nl - text) + 1;
    }
    mf_err e = {0, ""};
    int rc = mf_write_file_atomic(path, text, keep, &e);
    free(text);
    if (rc) {
        cli_error("%s", e.msg);
        return CLI_EXIT_ERROR;
    }
    return 0;
}

/* Count the values in an --init-params list. */
static size_t count_values(const char *s) {
    size_t k = 0;
    int in = 0;
    for (; *s; s++) {
        int sep = *s == ',' || *s == ' ' || *s == '\t' || *s == '\n';
        if (!sep && !in) k++;
        in = !sep;
    }
    return k;
}

/* Options that take a value. The stopping criteria may be given with
 * --resume; the others are fixed by the run's config.json. */
enum {
    O_RESUME, O_STEPS, O_UNTIL_LOSS, O_UNTIL_TIME, O_WALL, O_UNTIL_GAP, O_DATA, O_FORMAT, O_MODEL,
    O_LOSS,
    O_OPTIMIZER, O_LR, O_TOL, O_BATCH, O_LOG_POINTS, O_CKPT, O_SEED, O_INIT, O_INIT_SCALE,
    O_INIT_PARAMS, O_INIT_FILE, O_OUT, O_LOG_HORIZON, O_MAX_REL_STEP
};
static const char *const opt_names[] = {
    "--resume", "--steps", "--until-log10-loss", "--until-time", "--wall-seconds",
    "--until-margin-gap", "--data",
    "--format", "--model", "--loss", "--optimizer", "--lr", "--tol", "--batch", "--log-points",
    "--checkpoint-every", "--seed", "--init", "--init-scale", "--init-params", "--init-file",
    "--out", "--log-horizon", "--max-rel-step"};
#define N_OPTS (int)(sizeof opt_names / sizeof opt_names[0])

/* Parse the command line into o. Returns -1 to continue, else an exit code.
 * *set_mask records which stopping criteria were given (1 steps, 2 loss,
 * 4 time, 8 wall, 16 margin gap); *given_other names the first option
 * --resume forbids. */
static int parse_args(int argc, char **argv, train_opts *o, int *set_mask,
                      const char **given_other) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            train_help();
            return CLI_EXIT_OK;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        int id = -1;
        for (int k = 0; k < N_OPTS && id < 0; k++)
            if (strlen(opt_names[k]) == nl && strncmp(a, opt_names[k], nl) == 0) id = k;
        if (id < 0) {
            cli_error("train: unknown option '%s'; see marginflow train --help", a);
            return CLI_EXIT_USAGE;
        }
        const char *name = opt_names[id], *v;
        if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            cli_error("%s needs a value; see marginflow train --help", name);
            return CLI_EXIT_USAGE;
        }
        if (id > O_UNTIL_GAP && !*given_other) *given_other = name;
        long long ll;
        double x;
        switch (id) {
        case O_RESUME: o->resume_dir = v; break;
        case O_STEPS:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            o->s.max_steps = ll;
            *set_mask |= 1;
            break;
        case O_UNTIL_LOSS:
        case O_UNTIL_TIME:
        case O_WALL:
        case O_UNTIL_GAP:
            x = NAN;
            if (strcmp(v, "off") != 0 && cli_parse_double(name, v, &x)) return CLI_EXIT_USAGE;
            if (id == O_UNTIL_LOSS && x > 0 && x < 1) {
                cli_error("--until-log10-loss %s: the value is log10 of the loss, so this asks "
                          "for Loss <= 10^%s, about 1; for Loss <= %s give --until-log10-loss %.6g",
                          v, v, v, log10(x));
                return CLI_EXIT_USAGE;
            }
            if (id == O_UNTIL_LOSS) o->s.until_log10_loss = x, *set_mask |= 2;
            if (id == O_UNTIL_TIME) o->s.until_time = x, *set_mask |= 4;
            if (id == O_WALL) o->s.wall_seconds = x, *set_mask |= 8;
            if (id == O_UNTIL_GAP) o->s.until_margin_gap = x, *set_mask |= 16;
            break;
        case O_DATA: o->data_spec = v; break;
        case O_FORMAT:
            if (strcmp(v, "libsvm") && strcmp(v, "csv")) {
                cli_error("--format: expected libsvm or csv, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
            o->format = v;
            break;
        case O_MODEL: o->model_spec = v; break;
        case O_LOSS:
            if (mf_loss_from_name(v, &o->s.loss) != MF_OK) {
                cli_error("--loss: expected exp, logistic or ce, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
            break;
        case O_OPTIMIZER:
            if (mf_optimizer_from_name(v, &o->s.optimizer) != MF_OK) {
                cli_error("--optimizer: expected gd, scaled, lyu-li, flow or sgd, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
            break;
        case O_LR:
            if (cli_parse_double(name, v, &o->s.lr)) return CLI_EXIT_USAGE;
            break;
        case O_TOL:
            if (cli_parse_double(name, v, &o->s.tol)) return CLI_EXIT_USAGE;
            break;
        case O_MAX_REL_STEP:
            if (cli_parse_double(name, v, &o->s.max_rel_step)) return CLI_EXIT_USAGE;
            break;
        case O_BATCH:
        case O_LOG_POINTS:
            if (cli_parse_ll(name, v, -1000000000, 1000000000, &ll)) return CLI_EXIT_USAGE;
            if (id == O_BATCH) o->s.batch = (int)ll;
            else o->s.log_points = (int)ll;
            break;
        case O_LOG_HORIZON:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            o->s.log_horizon = ll;
            break;
        case O_CKPT:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            o->s.checkpoint_every = ll;
            break;
        case O_SEED:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            o->s.seed = (uint64_t)ll;
            break;
        case O_INIT:
            if (strcmp(v, "gauss") && strcmp(v, "balanced")) {
                cli_error("--init: expected gauss or balanced, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
            o->init_kind = v;
            break;
        case O_INIT_SCALE:
            if (cli_parse_double(name, v, &o->init_scale)) return CLI_EXIT_USAGE;
            if (!(o->init_scale >= 0)) {
                cli_error("--init-scale: must be >= 0, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
            break;
        case O_INIT_PARAMS: o->init_params = v; break;
        case O_INIT_FILE: o->init_file = v; break;
        case O_OUT: o->out_dir = v; break;
        }
    }
    return -1;
}

/* Choose and create the run directory; fills *dir (malloc'd). */
static int make_run_dir(const train_opts *o, char **dir) {
    char buf[512];
    if (o->out_dir) {
        snprintf(buf, sizeof buf, "%s", o->out_dir);
    } else {
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
        snprintf(buf, sizeof buf, "runs/train-%s", stamp);
        struct stat st;
        for (int k = 2; stat(buf, &st) == 0 && k < 100; k++)
            snprintf(buf, sizeof buf, "runs/train-%s-%d", stamp, k);
    }
    char *cfg = cli_join(buf, "config.json");
    struct stat st;
    int exists = cfg && stat(cfg, &st) == 0;
    free(cfg);
    if (exists) {
        cli_error("%s already holds a run; continue it with --resume %s or choose another --out",
                  buf, buf);
        return CLI_EXIT_USAGE;
    }
    if (cli_mkdirs(buf) != 0) {
        cli_error("cannot create run directory %s: %s", buf, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    *dir = malloc(strlen(buf) + 1);
    if (!*dir) return CLI_EXIT_ERROR;
    strcpy(*dir, buf);
    return 0;
}

/* Append a line to DIR/command.txt (created on a fresh run). */
static int write_command(const char *dir, const char *prefix, int fresh) {
    char *q = cli_shell_quote(cli_argc, cli_argv);
    char *path = cli_join(dir, "command.txt");
    int rc = 0;
    if (!q || !path) {
        rc = CLI_EXIT_ERROR;
    } else {
        FILE *f = fopen(path, fresh ? "w" : "a");
        if (!f || fprintf(f, "%s%s\n", prefix, q) < 0 || fclose(f) != 0) {
            cli_error("cannot write %s: %s", path, strerror(errno));
            rc = CLI_EXIT_ERROR;
        }
    }
    free(q);
    free(path);
    return rc;
}

/* Remove the temporary files "NAME.tmp.<pid>" that an atomic write killed
 * before its rename left in the run directory dir (a SIGKILL during a
 * checkpoint write). Only called on --resume, when no writer of this run can
 * be alive. Failures are ignored: the files are garbage either way. */
static void remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *t = strstr(ent->d_name, ".tmp.");
        if (!t || t == ent->d_name || !t[5]) continue;
        const char *p = t + 5;
        while (*p >= '0' && *p <= '9') p++;
        if (*p) continue; /* not NAME.tmp.<digits> */
        char *path = cli_join(dir, ent->d_name);
        if (path) remove(path);
        free(path);
    }
    closedir(d);
}

/* The achieved accuracy of a finished run, one line: the flow's tolerance
 * or the discrete method's indicators, and the margin's change over the
 * last decade of log t (what --until-margin-gap tests). */
static void print_accuracy(const mf_train_settings *s, const mf_train_result *r) {
    const mf_metrics *f = &r->final;
    char mc[64];
    if (isnan(f->margin_change))
        snprintf(mc, sizeof mc, "not yet defined (needs log t >= 10)");
    else
        snprintf(mc, sizeof mc, "%.3g relative", f->margin_change);
    if (s->optimizer == MF_OPT_FLOW)
        printf("accuracy: gradient flow, local error per step <= %g (theta: times 1 + ||theta||; "
               "loss weights in stiff steps: l1); beta %.10g; margin change over the last decade "
               "of log t %s\n",
               s->tol, f->beta, mc);
    else
        printf("accuracy: %s is a discrete method: beta %.10g, largest smoothed-margin decrease "
               "%.3g, largest loss increase 10^%.3g; margin change over the last decade of log "
               "t %s\n",
               mf_optimizer_name(s->optimizer), f->beta, f->smoothed_decrease, f->loss_increase,
               mc);
}

/* --------------------------------------------------------------- train */

int cli_train(int argc, char **argv) {
    train_opts o;
    memset(&o, 0, sizeof o);
    mf_train_settings_default(&o.s);
    o.s.checkpoint_every = 1000;
    o.model_spec = "linear";
    o.init_kind = "gauss";
    o.init_scale = 0.1;
    int set_mask = 0;
    const char *other = NULL;
    int rc = parse_args(argc, argv, &o, &set_mask, &other);
    if (rc >= 0) return rc;

    cJSON *cfg_tree = NULL;
    mf_data *data = NULL;
    mf_model *model = NULL;
    mf_train_state *state = NULL;
    char *dir = NULL, *abs_data = NULL, *metrics_path = NULL;
    run_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    mf_err e = {0, ""};
    int exit_code = CLI_EXIT_ERROR;

    if (o.resume_dir) {
        if (other) {
            cli_error("%s cannot be combined with --resume: the run's configuration is fixed "
                      "by %s/config.json; only --steps, --until-log10-loss, "
                      "--until-margin-gap, --until-time, --wall-seconds and -q may be given",
                      other, o.resume_dir);
            return CLI_EXIT_USAGE;
        }
        train_opts fromcfg;
        memset(&fromcfg, 0, sizeof fromcfg);
        /* settings config.json does not record (e.g. max_rel_step, which no
         * option sets) keep their defaults, as in the original run */
        mf_train_settings_default(&fromcfg.s);
        rc = load_config(o.resume_dir, &fromcfg, &cfg_tree);
        if (rc) return rc;
        if (set_mask & 1) fromcfg.s.max_steps = o.s.max_steps;
        if (set_mask & 2) fromcfg.s.until_log10_loss = o.s.until_log10_loss;
        if (set_mask & 4) fromcfg.s.until_time = o.s.until_time;
        if (set_mask & 8) fromcfg.s.wall_seconds = o.s.wall_seconds;
        if (set_mask & 16) fromcfg.s.until_margin_gap = o.s.until_margin_gap;
        fromcfg.quiet = o.quiet;
        fromcfg.resume_dir = o.resume_dir;
        o = fromcfg;
    } else {
        if (!o.data_spec) {
            cli_error("train: --data is required; see marginflow train --help");
            return CLI_EXIT_USAGE;
        }
        if (o.init_params && o.init_file) {
            cli_error("--init-params and --init-file cannot both be given");
            return CLI_EXIT_USAGE;
        }
        /* files are recorded by absolute path so --resume works from anywhere */
        o.data_path = o.data_spec;
        struct stat st;
        if (strncmp(o.data_spec, "builtin:", 8) && strncmp(o.data_spec, "gauss:", 6) &&
            strncmp(o.data_spec, "symmetric:", 10) && stat(o.data_spec, &st) == 0) {
            abs_data = realpath(o.data_spec, NULL);
            if (abs_data) o.data_path = abs_data;
        }
        /* fix the logging schedule now, so a resume with other stopping
         * criteria logs exactly the rows an uninterrupted run would */
        if (o.s.log_horizon == 0) o.s.log_horizon = o.s.max_steps > 1 ? o.s.max_steps : 1000000;
    }

    const char *why = mf_train_settings_validate(&o.s);
    if (why) {
        cli_error("%s", why);
        exit_code = CLI_EXIT_USAGE;
        goto out;
    }
    rc = mf_data_from_spec(o.data_path, o.format, &data, &e);
    if (rc) {
        cli_error("%s", e.msg);
        exit_code = cli_exit_for(rc, 1);
        goto out;
    }
    rc = mf_model_parse(o.model_spec, data->d, data->num_classes, &model, &e);
    if (rc) {
        cli_error("%s", e.msg);
        exit_code = cli_exit_for(rc, 1);
        goto out;
    }
    uint32_t fp = fingerprint(&o, data, model);

    if (o.resume_dir) {
        dir = malloc(strlen(o.resume_dir) + 1);
        if (!dir) goto out;
        strcpy(dir, o.resume_dir);
        remove_stale_tmp(dir);
        char *cp = cli_join(dir, "checkpoint.bin");
        rc = cp ? mf_checkpoint_read(cp, fp, model->n_params, &state, &e) : MF_ERR_NOMEM;
        free(cp);
        if (rc) {
            cli_error("cannot resume: %s", e.msg);
            exit_code = cli_exit_for(rc, 1);
            goto out;
        }
    } else {
        rc = mf_train_state_new(model->n_params, &state, &e);
        if (rc) {
            cli_error("%s", e.msg);
            goto out;
        }
        if (o.init_params) {
            size_t got = count_values(o.init_params);
            if (got != model->n_params) {
                cli_error("--init-params: expected %zu values for %s, got %zu; see marginflow "
                          "layout --model '%s' --data '%s'",
                          model->n_params, model->spec, got, model->spec, o.data_spec);
                exit_code = CLI_EXIT_USAGE;
                goto out;
            }
            rc = mf_params_parse(o.init_params, model->n_params, state->theta, &e);
        } else if (o.init_file) {
            rc = mf_params_read(o.init_file, model->n_params, state->theta, &e);
        } else {
            mf_rng rng;
            mf_rng_seed(&rng, o.s.seed);
            rc = mf_model_init(model, o.init_kind, o.init_scale, &rng, state->theta, &e);
        }
        if (rc) {
            cli_error("%s%s", o.init_params ? "--init-params: " : "", e.msg);
            exit_code = cli_exit_for(rc, 1);
            goto out;
        }
        rc = make_run_dir(&o, &dir);
        if (rc) {
            exit_code = rc;
            goto out;
        }
        /* Before config.json marks the folder as a run, write (atomically)
         * what --resume needs: the step-0 checkpoint and the metrics header.
         * A SIGKILL at any later moment leaves a resumable run; one before it
         * leaves no config.json, and the same command starts afresh. */
        char *cp0 = cli_join(dir, "checkpoint.bin"), *mp0 = cli_join(dir, "metrics.csv");
        char hdr[512];
        snprintf(hdr, sizeof hdr, "%s\n", mf_metrics_csv_header());
        rc = cp0 && mp0 ? mf_checkpoint_write(cp0, state, fp, &e) : MF_ERR_NOMEM;
        if (rc == MF_OK) rc = mf_write_file_atomic(mp0, hdr, strlen(hdr), &e);
        free(cp0);
        free(mp0);
        if (rc) {
            cli_error("%s", e.msg);
            goto out;
        }
    }

    /* config.json (rewritten on resume: the stopping criteria may change) */
    {
        cJSON *c = config_json(&o, data, model, 1);
        if (o.resume_dir && c) {
            const cJSON *av = jget(cfg_tree, "argv"), *rs = jget(cfg_tree, "resumes");
            cJSON_ReplaceItemInObjectCaseSensitive(c, "argv", cJSON_Duplicate(av, 1));
            cJSON *list = rs ? cJSON_Duplicate(rs, 1) : cJSON_CreateArray();
            cJSON *me = cJSON_CreateArray();
            for (int i = 0; me && i < cli_argc; i++)
                cJSON_AddItemToArray(me, cJSON_CreateString(cli_argv[i]));
            cJSON_AddItemToArray(list, me);
            cJSON_AddItemToObject(c, "resumes", list);
        }
        char *path = cli_join(dir, "config.json");
        rc = c && path ? cli_json_write(path, c, &e) : MF_ERR_NOMEM;
        free(path);
        cJSON_Delete(c);
        if (rc) {
            cli_error("%s", e.msg);
            goto out;
        }
    }
    if ((rc = write_command(dir, o.resume_dir ? "# resumed: " : "", !o.resume_dir))) goto out;

    metrics_path = cli_join(dir, "metrics.csv");
    if (!metrics_path) goto out;
    if (o.resume_dir && (rc = truncate_metrics(metrics_path, state->step))) {
        exit_code = rc;
        goto out;
    }
    ctx.metrics = fopen(metrics_path, "ab"); /* the header is already there */
    if (!ctx.metrics) {
        cli_error("cannot open %s: %s", metrics_path, strerror(errno));
        goto out;
    }

    ctx.o = &o;
    ctx.dir = dir;
    ctx.ckpt_path = cli_join(dir, "checkpoint.bin");
    ctx.fingerprint = fp;
    ctx.progress = !o.quiet && isatty(STDERR_FILENO);
    if (!ctx.ckpt_path) goto out;

    mf_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.user = &ctx;
    cb.log = cb_log;
    cb.on_metrics = cb_metrics;
    cb.on_checkpoint = cb_checkpoint;
    cb.should_stop = cb_should_stop;
    if (ctx.progress) cb.on_progress = cb_progress;
    cb.progress_seconds = 0.5;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    mf_train_result res;
    rc = mf_train(model, data, &o.s, state, &cb, &res, &e);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (ctx.progress_shown) fputc('\n', stderr);
    if (fclose(ctx.metrics) != 0 && rc == MF_OK) {
        cli_error("cannot write %s: %s", metrics_path, strerror(errno));
        ctx.metrics = NULL;
        goto out;
    }
    ctx.metrics = NULL;
    if (rc) {
        cli_error("%s", rc == MF_ERR_CALLBACK && ctx.err[0] ? ctx.err : e.msg);
        exit_code = cli_exit_for(rc, 0);
        goto out;
    }

    /* final checkpoint, parameters and summary */
    if (mf_checkpoint_write(ctx.ckpt_path, state, fp, &e) != MF_OK) {
        cli_error("%s", e.msg);
        goto out;
    }
    {
        char *pp = cli_join(dir, "params.txt");
        rc = pp ? mf_params_write(pp, model, state->theta, &e) : MF_ERR_NOMEM;
        free(pp);
        if (rc) {
            cli_error("%s", e.msg);
            goto out;
        }
    }
    if (cli_write_summary(dir, &o.s, data, model, &res)) goto out;

    char *qdir = cli_shell_quote(1, &dir);
    if (res.outcome == MF_OUT_INTERRUPTED) {
        fprintf(stderr, "marginflow: interrupted at step %lld; resume with: marginflow train "
                        "--resume %s\n",
                res.steps, qdir ? qdir : dir);
        exit_code = CLI_EXIT_INTERRUPTED;
    } else if (res.outcome == MF_OUT_NONFINITE) {
        fprintf(stderr, "marginflow: the loss or gradient became non-finite (NaN or Inf) in "
                        "step %lld; the last good state (step %lld) is saved in %s/params.txt "
                        "and %s/checkpoint.bin\n",
                res.steps + 1, res.steps, dir, dir);
        exit_code = CLI_EXIT_NONFINITE;
    } else {
        exit_code = CLI_EXIT_OK;
    }
    if (!o.quiet && exit_code != CLI_EXIT_INTERRUPTED) {
        printf("%s after %lld steps (%lld rejected) in %.3g s (%.4g steps/s)\n",
               mf_outcome_name(res.outcome), res.steps, res.rejected, res.wall_seconds,
               res.steps_per_second);
        if (!(res.outcome == MF_OUT_NONFINITE && res.final.norm == 0)) {
            printf("final: log10 loss %.10g, normalized margin %.10g, smoothed margin %.10g\n",
                   res.final.log10_loss, res.final.normalized_margin,
                   res.final.smoothed_margin);
            print_accuracy(&o.s, &res);
        }
        printf("outputs in %s (metrics.csv, params.txt, checkpoint.bin, summary.json)\n", dir);
    }
    free(qdir);

out:
    if (ctx.metrics) fclose(ctx.metrics);
    free(ctx.ckpt_path);
    free(metrics_path);
    free(dir);
    free(abs_data);
    mf_train_state_free(state);
    mf_model_free(model);
    mf_data_free(data);
    cJSON_Delete(cfg_tree);
    return exit_code;
}

/* -------------------------------------------------------------- layout */

int cli_layout(int argc, char **argv) {
    const char *model_spec = NULL, *data_spec = NULL, *format = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: marginflow layout --model SPEC --data SPEC [--format libsvm|csv]\n"
                   "\n"
                   "Print the number of parameters of the model on that data and the order\n"
                   "of theta (one 'index name[row][col]' line each): the order --init-params\n"
                   "and params.txt use.\n"
                   "\n"
                   "  --model SPEC   model spec (default linear)\n"
                   "  --data SPEC    data spec (required: the model's shape depends on it)\n"
                   "  --format F     libsvm|csv for data files (default: by extension)\n"
                   "\n"
                   "exit codes: 0 ok, 1 other error, 2 bad usage or bad input\n");
            return CLI_EXIT_OK;
        }
        if ((r = cli_opt(argc, argv, &i, "--model", &v)) == 1) model_spec = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--data", &v)) == 1) data_spec = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--format", &v)) == 1) format = v;
        else if (r < 0) return CLI_EXIT_USAGE;
        else {
            cli_error("layout: unknown option '%s'; see marginflow layout --help", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (!data_spec) {
        cli_error("layout: --data is required; see marginflow layout --help");
        return CLI_EXIT_USAGE;
    }
    if (!model_spec) model_spec = "linear";
    mf_err e = {0, ""};
    mf_data *data = NULL;
    mf_model *m = NULL;
    int rc = mf_data_from_spec(data_spec, format, &data, &e);
    if (!rc) rc = mf_model_parse(model_spec, data->d, data->num_classes, &m, &e);
    if (rc) {
        cli_error("%s", e.msg);
        mf_data_free(data);
        return cli_exit_for(rc, 1);
    }
    char one[1];
    size_t need = mf_model_layout(m, one, sizeof one);
    char *buf = malloc(need + 1);
    int code = CLI_EXIT_ERROR;
    if (buf) {
        mf_model_layout(m, buf, need + 1);
        fputs(buf, stdout);
        if (need && buf[need - 1] != '\n') fputc('\n', stdout);
        code = CLI_EXIT_OK;
    }
    free(buf);
    mf_model_free(m);
    mf_data_free(data);
    return code;
}

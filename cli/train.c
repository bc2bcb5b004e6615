/*
 * train.c -- `marginflow train` and `marginflow layout`.
 *
 * train turns its options into a run_config (cli/rundir.h) and hands it to
 * run_execute, which builds the data set and the model from their spec
 * strings, sets the initial parameters, runs mf_train and keeps everything
 * in a run directory (config.json, command.txt, metrics.csv, params.txt,
 * checkpoint.bin, summary.json; see rundir.h).
 * --resume DIR rebuilds the run from DIR/config.json (run_config_read) and
 * DIR/checkpoint.bin. The checkpoint's fingerprint covers the configuration
 * without the stopping criteria, so only those may change on resume;
 * metrics.csv is cut back to the rows before the checkpoint step, and since
 * mf_train re-emits the row at the checkpoint step, the resumed metrics.csv
 * is byte-identical to that of an uninterrupted run with the same settings.
 * (The log-step schedule depends on --steps: change only the other criteria
 * if the rows must match a run with other --steps.)
 */
#define _XOPEN_SOURCE 700 /* realpath (POSIX 2008 XSI) */
#include "rundir.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_INT 9007199254740992LL /* 2^53: integers round-trip through JSON numbers */

/* The command line: the run (cfg) and what is not part of it. */
typedef struct train_opts {
    run_config cfg;
    const char *out_dir;
    const char *resume_dir;
    int quiet;
} train_opts;

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
        "                         symmetric:n=,d=,margin=,seed=, fashion-mnist[:test] (Debian's\n"
        "                         dataset-fashion-mnist), idx:IMAGES,LABELS (any IDX pair, gzip\n"
        "                         or not), cifar10:DIR[:test] (CIFAR-10 binary batches), or a\n"
        "                         data file; images are scaled to [0, 1]\n"
        "  --test-data SPEC       a test set (same specs; epoch runs report its accuracy per\n"
        "                         epoch; default none)\n"
        "  --train-limit N        a class-balanced subset of N training samples (default 0 = all)\n"
        "  --test-limit N         the same for the test set (default 0 = all)\n"
        "  --classes A,B          only classes A and B, as a binary problem: A = +1, B = -1\n"
        "                         (default: all classes)\n"
        "  --data-seed N          seed of the subsets (default 1)\n"
        "  --format F             libsvm|csv for data files (default: by extension)\n"
        "  --model SPEC           linear, fc-linear:depth=K,width=M, diag:depth=K,\n"
        "                         relu2:width=M,alpha=A[,bias][,fix-outer], mlp:widths=..,\n"
        "                         skip-linear, relu2-outbias:width=M,alpha=A, cnn:mnist|small|\n"
        "                         vgg16[,bias1|,bias], cnn:layers=c32k5,p2,...,f10 (default linear)\n"
        );
    printf(
        "training:\n"
        "  --loss L               exp|logistic|ce (default exp)\n"
        "  --optimizer O          flow|lyu-li|scaled|gd|sgd|sgd-lyu-li (default flow). flow is\n"
        "                         gradient flow, the object of the theorems, to the accuracy\n"
        "                         --tol; the others are the papers' discrete algorithms, whose\n"
        "                         discretization error metrics.csv shows (beta,\n"
        "                         smoothed_decrease, loss_increase; one warning line);\n"
        "                         sgd-lyu-li, and sgd with --epochs, train by epochs\n"
        "  --lr X                 step size / alpha / initial dtau (default 0.1)\n"
        "  --tol X                flow: every step's local error is at most X (1 + ||theta||)\n"
        "                         in theta and, where the flow is stiff (deep in training),\n"
        "                         at most X in the loss weights (l1), i.e. in the margin\n"
        "                         differences q_n - q_min that set them; at X = 1e-6 the\n"
        "                         margins agree with a run at 1e-4 X to 1e-6 or better (check\n"
        "                         it: rerun with --tol 1e-10) (default 1e-6)\n"
        "  --max-rel-step X       lyu-li: roll back steps longer than X ||theta||\n"
        "                         (our safeguard; 0 = off, default 0.1)\n"
        "  --batch N              sgd: batch size (default 32)\n"
        "epoch runs (sgd-lyu-li: eta = alpha / mean loss of the epoch start; accepted epoch:\n"
        "alpha *= 2^(1/5), rejected: restore, alpha /= 2^(1/10); metrics.csv one row an epoch):\n"
        "  --epochs N             stop after N accepted epochs (default 0 = no epoch limit)\n"
        "  --loss-cap X           sgd-lyu-li: a batch mean loss above X times the epoch's\n"
        "                         reference rejects the epoch (default 600)\n"
        "  --alpha-min X          sgd-lyu-li: stop once alpha < X (default 1e-50)\n"
        "  --archive-decades X    keep the state (DIR/archive/epoch-N.bin) when log10 Loss first\n"
        "                         reaches -X k, k = 1, 2, ... (default 5; 0 = off), and at the end\n"
        "  --archive-epochs LIST  also at these epochs (ascending, e.g. 1,10,100; default none)\n"
        "  --seed N               init and sgd order, 0..2^53 (default 1)\n"
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
        "  --checkpoint-every N   checkpoint every N steps (epoch runs: accepted epochs);\n"
        "                         0 = only at the end (default 1000; epoch runs 10)\n"
        );
    printf(
        "initial parameters:\n"
        "  --init K               gauss|balanced|he (default gauss; he: N(0, 2 s^2 / fan_in))\n"
        "  --init-scale S         standard deviation of the init (default 0.1)\n"
        "  --init-params v1,v2,.. explicit values, in the order of marginflow layout\n"
        "  --init-file F          values from a file (params.txt format or a plain list)\n"
        "  --init-multiply C      multiply the initial parameters (any of the above) by\n"
        "                         C > 0: an L-homogeneous net's outputs and margins by C^L,\n"
        "                         its normalized margins and predictions unchanged; e.g.\n"
        "                         a trained params.txt times C continues it deeper in the\n"
        "                         loss (default 1)\n"
        "output:\n"
        "  --out DIR              run directory (default runs/train-YYYYmmdd-HHMMSS); it\n"
        "                         must be new or empty: a folder holding other files\n"
        "                         is refused, and a run being written is locked\n"
        "  -q, --quiet            no progress line and no summary\n"
        "  --resume DIR           continue the run in DIR from its checkpoint; only\n"
        "                         --steps, --epochs, --until-log10-loss, --until-margin-gap,\n"
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

/* Options that take a value. The stopping criteria may be given with
 * --resume; the others are fixed by the run's config.json. */
enum {
    O_RESUME, O_STEPS, O_UNTIL_LOSS, O_UNTIL_TIME, O_WALL, O_UNTIL_GAP, O_EPOCHS, O_DATA, O_FORMAT,
    O_MODEL, O_LOSS, O_OPTIMIZER, O_LR, O_TOL, O_BATCH, O_LOG_POINTS, O_CKPT, O_SEED, O_INIT,
    O_INIT_SCALE, O_INIT_PARAMS, O_INIT_FILE, O_OUT, O_LOG_HORIZON, O_MAX_REL_STEP, O_TEST_DATA,
    O_TRAIN_LIMIT, O_TEST_LIMIT, O_CLASSES, O_DATA_SEED, O_LOSS_CAP, O_ALPHA_MIN, O_ARCH_DECADES,
    O_ARCH_EPOCHS, O_INIT_MULT
};
static const char *const opt_names[] = {
    "--resume", "--steps", "--until-log10-loss", "--until-time", "--wall-seconds",
    "--until-margin-gap", "--epochs", "--data", "--format", "--model", "--loss", "--optimizer",
    "--lr", "--tol", "--batch", "--log-points", "--checkpoint-every", "--seed", "--init",
    "--init-scale", "--init-params", "--init-file", "--out", "--log-horizon", "--max-rel-step",
    "--test-data", "--train-limit", "--test-limit", "--classes", "--data-seed", "--loss-cap",
    "--alpha-min", "--archive-decades", "--archive-epochs", "--init-multiply"};
#define N_OPTS (int)(sizeof opt_names / sizeof opt_names[0])

/* "A,B,..." (at most max integers in [lo, hi], ascending when asc) into v;
 * the count, or -1 (message printed). */
static int parse_int_list(const char *opt, const char *s, long long lo, long long hi, int asc,
                          long long *v, int max) {
    int n = 0;
    char buf[1024];
    cli_fmt(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max) {
            cli_error("%s: at most %d values", opt, max);
            return -1;
        }
        if (cli_parse_ll(opt, t, lo, hi, &v[n])) return -1;
        if (asc && n && v[n] <= v[n - 1]) {
            cli_error("%s: values must be ascending, got '%s'", opt, cli_q(s));
            return -1;
        }
        n++;
    }
    if (n == 0) cli_error("%s: expected a list of integers, got '%s'", opt, cli_q(s));
    return n ? n : -1;
}

/* Parse the command line into o. Returns -1 to continue, else an exit code.
 * *set_mask records which stopping criteria were given (1 steps, 2 loss,
 * 4 time, 8 wall, 16 margin gap, 32 epochs, 64 checkpoint-every);
 * *given_other names the first option --resume forbids. */
static int parse_args(int argc, char **argv, train_opts *o, int *set_mask,
                      const char **given_other) {
    run_config *c = &o->cfg;
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
            cli_error("train: unknown option '%s'; see marginflow train --help", cli_q(a));
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
        if (cli_check_text(name, v, id == O_INIT_PARAMS)) return CLI_EXIT_USAGE;
        if (id > O_EPOCHS && !*given_other) *given_other = name;
        long long ll;
        double x;
        switch (id) {
        case O_RESUME: o->resume_dir = v; break;
        case O_STEPS:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            c->s.max_steps = ll;
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
                          cli_q(v), cli_q(v), cli_q(v), log10(x));
                return CLI_EXIT_USAGE;
            }
            if (id == O_UNTIL_LOSS) c->s.until_log10_loss = x, *set_mask |= 2;
            if (id == O_UNTIL_TIME) c->s.until_time = x, *set_mask |= 4;
            if (id == O_WALL) c->s.wall_seconds = x, *set_mask |= 8;
            if (id == O_UNTIL_GAP) c->s.until_margin_gap = x, *set_mask |= 16;
            break;
        case O_EPOCHS:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            c->s.max_epochs = ll;
            *set_mask |= 32;
            break;
        case O_TEST_DATA: c->test_spec = v; break;
        case O_TRAIN_LIMIT:
        case O_TEST_LIMIT:
        case O_DATA_SEED:
            if (cli_parse_ll(name, v, 0, id == O_DATA_SEED ? MAX_JSON_INT : 1000000000, &ll))
                return CLI_EXIT_USAGE;
            if (id == O_TRAIN_LIMIT) c->train_limit = (int)ll;
            else if (id == O_TEST_LIMIT) c->test_limit = (int)ll;
            else c->data_seed = (uint64_t)ll;
            break;
        case O_CLASSES: {
            long long cv[2];
            int k = parse_int_list(name, v, 0, 255, 0, cv, 2);
            if (k < 0) return CLI_EXIT_USAGE;
            if (k != 2 || cv[0] == cv[1]) {
                cli_error("--classes: expected two different class indices A,B, got '%s'", cli_q(v));
                return CLI_EXIT_USAGE;
            }
            c->n_classes = 2, c->classes[0] = (int)cv[0], c->classes[1] = (int)cv[1];
            break;
        }
        case O_LOSS_CAP:
            if (cli_parse_double(name, v, &c->s.loss_cap)) return CLI_EXIT_USAGE;
            break;
        case O_ALPHA_MIN:
            if (cli_parse_double(name, v, &c->s.alpha_min)) return CLI_EXIT_USAGE;
            break;
        case O_ARCH_DECADES:
            if (cli_parse_double(name, v, &c->s.archive_decades)) return CLI_EXIT_USAGE;
            break;
        case O_ARCH_EPOCHS: {
            int k = parse_int_list(name, v, 0, MAX_JSON_INT, 1, c->s.archive_epochs,
                                   MF_MAX_ARCHIVE_EPOCHS);
            if (k < 0) return CLI_EXIT_USAGE;
            c->s.n_archive_epochs = k;
            break;
        }
        case O_DATA: c->data_spec = v; break;
        case O_FORMAT:
            if (strcmp(v, "libsvm") && strcmp(v, "csv")) {
                cli_error("--format: expected libsvm or csv, got '%s'", cli_q(v));
                return CLI_EXIT_USAGE;
            }
            c->format = v;
            break;
        case O_MODEL: c->model_spec = v; break;
        case O_LOSS:
            if (mf_loss_from_name(v, &c->s.loss) != MF_OK) {
                cli_error("--loss: expected exp, logistic or ce, got '%s'", cli_q(v));
                return CLI_EXIT_USAGE;
            }
            break;
        case O_OPTIMIZER:
            if (mf_optimizer_from_name(v, &c->s.optimizer) != MF_OK) {
                cli_error("--optimizer: expected gd, scaled, lyu-li, flow, sgd or sgd-lyu-li, got "
                          "'%s'", cli_q(v));
                return CLI_EXIT_USAGE;
            }
            break;
        case O_LR:
            if (cli_parse_double(name, v, &c->s.lr)) return CLI_EXIT_USAGE;
            break;
        case O_TOL:
            if (cli_parse_double(name, v, &c->s.tol)) return CLI_EXIT_USAGE;
            break;
        case O_MAX_REL_STEP:
            if (cli_parse_double(name, v, &c->s.max_rel_step)) return CLI_EXIT_USAGE;
            break;
        case O_BATCH:
        case O_LOG_POINTS:
            if (cli_parse_ll(name, v, -1000000000, 1000000000, &ll)) return CLI_EXIT_USAGE;
            if (id == O_BATCH) c->s.batch = (int)ll;
            else c->s.log_points = (int)ll;
            break;
        case O_LOG_HORIZON:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            c->s.log_horizon = ll;
            break;
        case O_CKPT:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            c->s.checkpoint_every = ll;
            *set_mask |= 64;
            break;
        case O_SEED:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            c->s.seed = (uint64_t)ll;
            break;
        case O_INIT:
            if (strcmp(v, "gauss") && strcmp(v, "balanced") && strcmp(v, "he")) {
                cli_error("--init: expected gauss, balanced or he, got '%s'", cli_q(v));
                return CLI_EXIT_USAGE;
            }
            c->init_kind = v;
            break;
        case O_INIT_SCALE:
            if (cli_parse_double(name, v, &c->init_scale)) return CLI_EXIT_USAGE;
            if (!(c->init_scale >= 0)) {
                cli_error("--init-scale: must be >= 0, got '%s'", cli_q(v));
                return CLI_EXIT_USAGE;
            }
            break;
        case O_INIT_PARAMS: c->init_text = v; break;
        case O_INIT_FILE: c->init_file = v; break;
        case O_INIT_MULT:
            if (cli_parse_double(name, v, &c->init_multiply)) return CLI_EXIT_USAGE;
            if (!(c->init_multiply > 0) || !isfinite(c->init_multiply)) {
                cli_error("--init-multiply: must be a finite number > 0, got '%s'", cli_q(v));
                return CLI_EXIT_USAGE;
            }
            break;
        case O_OUT:
            if (!v[0]) {
                cli_error("--out: the run directory name is empty");
                return CLI_EXIT_USAGE;
            }
            o->out_dir = v;
            break;
        }
    }
    return -1;
}

/* The run of --resume DIR: DIR/config.json with the stopping criteria given
 * on the command line (set_mask: 1 steps, 2 loss, 4 time, 8 wall, 16 margin
 * gap, 32 epochs) applied.
 * Returns 0 or an exit code (message printed). */
static int resume_config(const train_opts *o, int set_mask, run_config *c) {
    run_read_error re;
    if (!o->resume_dir[0]) {
        cli_error("--resume: the run directory name is empty");
        return CLI_EXIT_USAGE;
    }
    if (run_config_read(o->resume_dir, RUN_READ_RESUME, c, &re)) {
        int code = re.kind == RUN_READ_OPEN && re.errnum == ENOMEM ? CLI_EXIT_ERROR : CLI_EXIT_USAGE;
        cli_error("cannot resume: %s", re.why);
        run_config_free(c);
        return code;
    }
    const mf_train_settings *g = &o->cfg.s;
    if (set_mask & 1) c->s.max_steps = g->max_steps;
    if (set_mask & 2) c->s.until_log10_loss = g->until_log10_loss;
    if (set_mask & 4) c->s.until_time = g->until_time;
    if (set_mask & 8) c->s.wall_seconds = g->wall_seconds;
    if (set_mask & 16) c->s.until_margin_gap = g->until_margin_gap;
    if (set_mask & 32) {
        int was = mf_train_is_epoch_run(&c->s);
        c->s.max_epochs = g->max_epochs;
        if (was != mf_train_is_epoch_run(&c->s)) {
            cli_error("cannot resume: --epochs %lld would make %s no longer an epoch run",
                      g->max_epochs, o->resume_dir);
            run_config_free(c);
            return CLI_EXIT_USAGE;
        }
    }
    return 0;
}

/* The spec with its file paths made absolute (so --resume works from
 * anywhere): a data file, both files of idx:A,B, the folder of
 * cifar10:DIR[:test]; NULL (use the spec as it is) for generated sets,
 * fashion-mnist, or a path that does not exist (the loader says so).
 * malloc'd. */
static char *abs_spec(const char *spec) {
    struct stat st;
    if (!strncmp(spec, "builtin:", 8) || !strncmp(spec, "gauss", 5) ||
        !strncmp(spec, "symmetric", 9) || !strncmp(spec, "fashion-mnist", 13))
        return NULL;
    if (!strncmp(spec, "idx:", 4)) {
        const char *comma = strchr(spec + 4, ',');
        if (!comma) return NULL;
        char *a = malloc((size_t)(comma - spec)), *ra = NULL, *rb = NULL, *out = NULL;
        if (!a) return NULL;
        memcpy(a, spec + 4, (size_t)(comma - spec - 4));
        a[comma - spec - 4] = '\0';
        ra = realpath(a, NULL), rb = realpath(comma + 1, NULL);
        if (ra && rb && (out = malloc(strlen(ra) + strlen(rb) + 6)))
            sprintf(out, "idx:%s,%s", ra, rb);
        free(a), free(ra), free(rb);
        return out;
    }
    if (!strncmp(spec, "cifar10:", 8)) {
        size_t n = strlen(spec + 8);
        int test = n > 5 && !strcmp(spec + 8 + n - 5, ":test");
        char *d = malloc(n + 1), *rd = NULL, *out = NULL;
        if (!d) return NULL;
        memcpy(d, spec + 8, n - (test ? 5 : 0));
        d[n - (test ? 5 : 0)] = '\0';
        if ((rd = realpath(d, NULL)) && (out = malloc(strlen(rd) + 16)))
            sprintf(out, "cifar10:%s%s", rd, test ? ":test" : "");
        free(d), free(rd);
        return out;
    }
    return stat(spec, &st) == 0 ? realpath(spec, NULL) : NULL;
}

/* Complete the run of a fresh command line: data files by absolute path
 * (*abs, *abs_test malloc'd) so --resume works from anywhere, the init kind,
 * and the logging schedule fixed now, so a resume with other stopping
 * criteria logs exactly the rows an uninterrupted run would. Returns 0 or
 * an exit code. */
static int fresh_config(run_config *c, char **abs, char **abs_test, int set_mask) {
    if (!c->data_spec) {
        cli_error("train: --data is required; see marginflow train --help");
        return CLI_EXIT_USAGE;
    }
    if (c->init_text && c->init_file) {
        cli_error("--init-params and --init-file cannot both be given");
        return CLI_EXIT_USAGE;
    }
    c->data_path = (*abs = abs_spec(c->data_spec)) ? *abs : c->data_spec;
    if (c->test_spec) c->test_path = (*abs_test = abs_spec(c->test_spec)) ? *abs_test : c->test_spec;
    if (mf_train_is_epoch_run(&c->s)) { /* epoch runs: epochs, not the step defaults */
        if (!(set_mask & 64)) c->s.checkpoint_every = 10;
        if (!(set_mask & 1)) c->s.max_steps = 0;
    }
    if (c->init_text) c->init_kind = "params";
    else if (c->init_file) c->init_kind = "file";
    if (c->s.log_horizon == 0) c->s.log_horizon = c->s.max_steps > 1 ? c->s.max_steps : 1000000;
    return 0;
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
        snprintf(mc, sizeof mc, "%s relative", cli_g(f->margin_change, 3));
    if (s->optimizer == MF_OPT_FLOW)
        printf("accuracy: gradient flow, local error per step <= %g (theta: times 1 + ||theta||; "
               "loss weights in stiff steps: l1); beta %s; margin change over the last decade "
               "of log t %s\n",
               s->tol, cli_g(f->beta, 10), mc);
    else
        printf("accuracy: %s is a discrete method: beta %s, largest smoothed-margin decrease "
               "%s, largest loss increase 10^%s; margin change over the last decade of log "
               "t %s\n",
               mf_optimizer_name(s->optimizer), cli_g(f->beta, 10), cli_g(f->smoothed_decrease, 3),
               cli_g(f->loss_increase, 3), mc);
}

/* How the run ended, for the user: the resume hint (interrupted), where the
 * last good state is (non-finite after some steps; a run whose loss is
 * non-finite where it started has no good state to save), the summary
 * lines with why it stalled (unless -q); epoch runs count epochs. Absent
 * values are written "absent", never "nan". Returns the exit code of the
 * outcome. */
static int report(const char *dir, const mf_train_settings *s, const run_output *out, int quiet) {
    const mf_train_result *res = &out->res;
    int code = CLI_EXIT_OK;
    const char *qd = cli_q(dir);
    char *qdir = cli_shell_quote(1, (char *const *)&dir);
    if (res->outcome == MF_OUT_INTERRUPTED) {
        fprintf(stderr, "marginflow: interrupted at step %lld; resume with: marginflow train "
                        "--resume %s\n",
                res->steps, qdir ? cli_q(qdir) : qd);
        code = CLI_EXIT_INTERRUPTED;
    } else if (res->outcome == MF_OUT_NONFINITE && isfinite(res->final.log10_loss)) {
        fprintf(stderr, "marginflow: the loss or gradient became non-finite (NaN or Inf) in "
                        "step %lld; the last good state (step %lld) is saved in %s/params.txt "
                        "and %s/checkpoint.bin\n",
                res->steps + 1, res->steps, qd, qd);
        code = CLI_EXIT_NONFINITE;
    } else if (res->outcome == MF_OUT_NONFINITE) {
        if (res->steps == out->start_step)
            fprintf(stderr, "marginflow: the loss or gradient is non-finite (NaN or Inf) at the "
                            "initial parameters (step %lld): nothing was trained, and there is "
                            "no good state to save\n",
                    res->steps);
        else
            fprintf(stderr, "marginflow: the loss became non-finite (NaN or Inf) at step %lld and "
                            "no earlier state was kept: there is no good state to save\n",
                    res->steps);
        code = CLI_EXIT_NONFINITE;
    }
    if (!quiet && code != CLI_EXIT_INTERRUPTED) {
        const char *r = res->reason;
        if (mf_train_is_epoch_run(s))
            printf("%s%s%s%s after %lld epochs (%lld steps, %lld epochs rejected) in %.3g s\n",
                   mf_outcome_name(res->outcome), r ? " (" : "", r ? r : "", r ? ")" : "",
                   res->final.epoch, res->steps, res->rejected, res->wall_seconds);
        else
            printf("%s%s%s%s after %lld steps (%lld rejected) in %.3g s (%.4g steps/s)\n",
                   mf_outcome_name(res->outcome), r ? " (" : "", r ? r : "", r ? ")" : "",
                   res->steps, res->rejected, res->wall_seconds, res->steps_per_second);
        if (isfinite(res->final.log10_loss))
            printf("final: log10 loss %s, normalized margin %s, smoothed margin %s\n",
                   cli_g(res->final.log10_loss, 10), cli_g(res->final.normalized_margin, 10),
                   cli_g(res->final.smoothed_margin, 10));
        if (isfinite(res->final.log10_loss)) print_accuracy(s, res);
        printf("outputs in %s (metrics.csv, params.txt, checkpoint.bin, summary.json)\n", qd);
    }
    free(qdir);
    return code;
}

int cli_train(int argc, char **argv) {
    train_opts o;
    memset(&o, 0, sizeof o);
    run_config_default(&o.cfg);
    o.cfg.s.checkpoint_every = 1000;
    int set_mask = 0;
    const char *other = NULL;
    int rc = parse_args(argc, argv, &o, &set_mask, &other);
    if (rc >= 0) return rc;
    if (o.resume_dir && other) {
        cli_error("%s cannot be combined with --resume: the run's configuration is fixed by "
                  "%s/config.json; only --steps, --until-log10-loss, --until-margin-gap, "
                  "--until-time, --wall-seconds and -q may be given",
                  other, cli_q(o.resume_dir));
        return CLI_EXIT_USAGE;
    }
    run_config cfg = o.cfg;
    char *abs_data = NULL, *abs_test = NULL, *default_dir = NULL;
    rc = o.resume_dir ? resume_config(&o, set_mask, &cfg)
                      : fresh_config(&cfg, &abs_data, &abs_test, set_mask);
    const char *dir = o.resume_dir ? o.resume_dir : o.out_dir;
    if (!rc && !dir && !(dir = default_dir = run_dir_default_path("train"))) {
        cli_error("out of memory");
        rc = CLI_EXIT_ERROR;
    }
    if (!rc) {
        run_exec x;
        memset(&x, 0, sizeof x);
        x.dir = dir;
        x.resume = o.resume_dir != NULL;
        x.checkpoint = x.command = x.signals = x.archive = 1;
        x.log = o.quiet ? RUN_LOG_ERRORS : RUN_LOG_WARNINGS;
        x.progress = !o.quiet && isatty(STDERR_FILENO);
        run_output out;
        rc = run_execute(&cfg, &x, &out);
        if (rc) cli_error("%s", out.err);
        else rc = report(dir, &cfg.s, &out, o.quiet);
        run_output_free(&out);
    }
    if (o.resume_dir) run_config_free(&cfg);
    free(abs_data);
    free(abs_test);
    free(default_dir);
    return rc;
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
            cli_error("layout: unknown option '%s'; see marginflow layout --help", cli_q(argv[i]));
            return CLI_EXIT_USAGE;
        }
    }
    if (!data_spec) {
        cli_error("layout: --data is required; see marginflow layout --help");
        return CLI_EXIT_USAGE;
    }
    if (!model_spec) model_spec = "linear";
    mf_data *data = NULL;
    mf_model *m = NULL;
    char why[MF_ERR_LEN];
    int code = cli_load_problem(data_spec, format, model_spec, &data, &m, why, sizeof why);
    if (code) {
        cli_error("%s", why);
        return code;
    }
    char one[1];
    size_t need = mf_model_layout(m, one, sizeof one);
    char *buf = malloc(need + 1);
    code = CLI_EXIT_ERROR;
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

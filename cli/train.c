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
        "                         differences q_n - q_min that set them; at X = 1e-6 the\n"
        "                         margins agree with a run at 1e-4 X to 1e-6 or better (check\n"
        "                         it: rerun with --tol 1e-10) (default 1e-6)\n"
        "  --max-rel-step X       lyu-li: roll back steps longer than X ||theta||\n"
        "                         (our safeguard; 0 = off, default 0.1)\n"
        "  --batch N              sgd: batch size (default 32)\n"
        "  --seed N               init and sgd order, 0..2^53 (default 1)\n");
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
        "  --out DIR              run directory (default runs/train-YYYYmmdd-HHMMSS); it\n"
        "                         must be new or empty: a folder holding other files\n"
        "                         is refused, and a run being written is locked\n"
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
        if (id > O_UNTIL_GAP && !*given_other) *given_other = name;
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
                cli_error("--optimizer: expected gd, scaled, lyu-li, flow or sgd, got '%s'", cli_q(v));
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
            break;
        case O_SEED:
            if (cli_parse_ll(name, v, 0, MAX_JSON_INT, &ll)) return CLI_EXIT_USAGE;
            c->s.seed = (uint64_t)ll;
            break;
        case O_INIT:
            if (strcmp(v, "gauss") && strcmp(v, "balanced")) {
                cli_error("--init: expected gauss or balanced, got '%s'", cli_q(v));
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
 * gap) applied.
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
    return 0;
}

/* Complete the run of a fresh command line: data files by absolute path
 * (*abs, malloc'd) so --resume works from anywhere, the init kind, and the
 * logging schedule fixed now, so a resume with other stopping criteria logs
 * exactly the rows an uninterrupted run would. Returns 0 or an exit code. */
static int fresh_config(run_config *c, char **abs) {
    if (!c->data_spec) {
        cli_error("train: --data is required; see marginflow train --help");
        return CLI_EXIT_USAGE;
    }
    if (c->init_text && c->init_file) {
        cli_error("--init-params and --init-file cannot both be given");
        return CLI_EXIT_USAGE;
    }
    c->data_path = c->data_spec;
    struct stat st;
    if (strncmp(c->data_spec, "builtin:", 8) && strncmp(c->data_spec, "gauss:", 6) &&
        strncmp(c->data_spec, "symmetric:", 10) && stat(c->data_spec, &st) == 0) {
        *abs = realpath(c->data_spec, NULL);
        if (*abs) c->data_path = *abs;
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
 * lines with why it stalled (unless -q). Absent values are written "absent", never
 * "nan". Returns the exit code of the outcome. */
static int report(const char *dir, const mf_train_settings *s, const run_output *out,
                  int quiet) {
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
        printf("%s%s%s%s after %lld steps (%lld rejected) in %.3g s (%.4g steps/s)\n",
               mf_outcome_name(res->outcome), res->reason ? " (" : "",
               res->reason ? res->reason : "", res->reason ? ")" : "", res->steps, res->rejected,
               res->wall_seconds, res->steps_per_second);
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
    char *abs_data = NULL, *default_dir = NULL;
    rc = o.resume_dir ? resume_config(&o, set_mask, &cfg) : fresh_config(&cfg, &abs_data);
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
        x.checkpoint = x.command = x.signals = 1;
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

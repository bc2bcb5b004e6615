/*
 * reproduce.c -- `marginflow reproduce`: every claim of the three papers as a
 * runnable check.
 *
 * Each experiments/<claim>.json (format: experiments/README.md; read and
 * validated whole by cli/experiment.c before anything is trained) names a claim
 * of [LL20], [VSS22] or [LLWA21] (docs/theory.md), the training runs that test it,
 * the quantities checked with their expected values and tolerances, and the
 * figures to draw. For every claim this command
 *   1. expands the runs (a "seeds" list and a "vary" list multiply them),
 *   2. trains each through run_execute (cli/rundir.c, the same code as
 *      `marginflow train`) into a normal run directory DIR/<claim>/<run>/
 *      (config.json, metrics.csv, params.txt, summary.json, plus
 *      snapshots.csv, the parameters at every logged step, for runs with
 *      "snapshots": true),
 *   3. evaluates the checks (cli/checks.c), writes DIR/<claim>/result.json
 *      and draws the figures (cli/figures.c),
 * prints `PASS|FAIL|ERROR name: measured vs expected` per claim in claim
 * order, and finally writes DIR/report.md / report.html and prints `N
 * passed, N failed`. --jobs N runs the claims as tasks of the cli/jobs.c
 * pool, N at once in forked processes; every claim is deterministic given
 * its seeds, so the results do not depend on N.
 *
 * A claim that the implementation cannot meet is reported as FAIL with its
 * numbers: nothing here is tuned to the outcome.
 */
#define _XOPEN_SOURCE 700
#include "checks.h"
#include "jobs.h"
#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ training */

void rp_run_config(const rp_run *r, run_config *c) {
    run_config_default(c);
    c->data_spec = c->data_path = r->data_spec;
    c->format = NULL;
    c->model_spec = r->model_spec;
    if (r->init_params) {
        c->init_kind = "params";
        c->init_values = r->init_params;
        c->n_init = r->n_init;
    } else {
        c->init_kind = r->init_kind;
        c->init_scale = r->init_scale;
    }
    c->init_multiply = r->init_multiply;
    c->s = r->s;
    if (r->test_spec[0]) c->test_spec = c->test_path = r->test_spec;
    c->train_limit = r->train_limit, c->test_limit = r->test_limit, c->data_seed = r->data_seed;
    c->n_classes = r->n_classes, c->classes[0] = r->classes[0], c->classes[1] = r->classes[1];
}

/* Train run r of claim `claim` into dir (a reproduce folder: an earlier
 * run there is replaced). On success r->done is set and r holds the data,
 * model, final theta, logged rows and snapshots; else r->err says why. */
static void train_run(rp_run *r, const char *dir, const char *claim) {
    run_config c;
    rp_run_config(r, &c);
    char *from = NULL; /* init.from_run: the earlier run's params.txt, beside dir */
    if (r->init_from[0]) {
        const char *slash = strrchr(dir, '/');
        int len = slash ? (int)(slash - dir) : 1;
        from = cli_aprintf("%.*s/%s/params.txt", len, slash ? dir : ".", r->init_from);
        if (!from) {
            cli_fmt(r->err, sizeof r->err, "out of memory");
            return;
        }
        c.init_kind = "file";
        c.init_file = from;
    }
    c.made_by = "marginflow reproduce";
    c.claim = claim;
    run_exec x;
    memset(&x, 0, sizeof x);
    x.dir = dir;
    x.replace = 1;
    x.snapshots = r->snapshots;
    x.archive = 1; /* epoch runs: the states the robustness checks evaluate */
    x.keep = 1;
    x.log = RUN_LOG_NONE; /* the run's outcome carries what matters */
    run_output out;
    if (run_execute(&c, &x, &out)) cli_fmt(r->err, sizeof r->err, "%s", out.err);
    else r->done = 1;
    free(from);
    mf_data_free(out.test); /* robustness checks reload it with the archives */
    r->data = out.data, r->model = out.model, r->theta = out.theta, r->res = out.res;
    r->rows = out.rows, r->nrows = out.nrows, r->caprows = out.caprows, r->snaps = out.snaps;
}

/* ------------------------------------------------------------ one claim */

/* Evaluate every check of x on the claim's runs: one entry per check in
 * checks_out, the claim's joined measured / expected texts, and its status
 * (1 pass, 0 fail, -1 error). */
static int claim_checks(const rp_experiment *x, rp_claim *cl, cJSON *checks_out, char *measured,
                        size_t mcap, char *expected, size_t ecap) {
    int status = 1;
    for (int ci = 0; ci < x->nchecks; ci++) {
        rp_check_out o;
        rp_check_eval(&x->checks[ci], cl, &o);
        if (o.pass < 0) status = -1;
        else if (o.pass == 0 && status > 0) status = 0;
        cli_cat(measured, mcap, "%s%s", measured[0] ? "; " : "", o.measured);
        cli_cat(expected, ecap, "%s%s", expected[0] ? "; " : "", o.expected);
        cJSON *co = cJSON_CreateObject();
        cli_json_str(co, "quantity", x->checks[ci].quantity);
        cli_json_str(co, "status", o.pass > 0 ? "PASS" : o.pass == 0 ? "FAIL" : "ERROR");
        cli_json_str(co, "measured", o.measured);
        cli_json_str(co, "expected", o.expected);
        cJSON_AddItemToArray(checks_out, co);
    }
    return status;
}

/* The claim's figures (those that apply) as a list of "fig-<kind>" names. */
static cJSON *claim_figures(const rp_experiment *x, rp_claim *cl, int status) {
    const rp_run *r0 = cl->nruns > 0 ? &cl->runs[0] : NULL;
    /* figure data for cosines: mu and the reference direction */
    if (r0 && r0->done && r0->data->num_classes == 0 && r0->data->d <= 64) {
        rp_data_mu(r0->data, cl->mu);
        cl->has_mu = 1;
        if (x->n_wref == r0->data->d) {
            for (int j = 0; j < r0->data->d; j++) cl->wref[j] = x->wref[j];
            cl->has_wref = 1;
        }
        if (!cl->degree) cl->degree = r0->model->degree;
    }
    cJSON *figs = cJSON_CreateArray();
    for (int fi = 0; fi < x->nfigures && status != -1; fi++) {
        int drawn = rp_figure(cl, x->figures[fi]) == 0;
        if (drawn && !strcmp(x->figures[fi], "robust")) {
            /* the robust check's two figures (the second only with >= 2 states) */
            char p[1400];
            cJSON_AddItemToArray(figs, cJSON_CreateString("fig-robust-eps"));
            cli_fmt(p, sizeof p, "%s/fig-robust-epoch.png", cl->dir);
            FILE *t = fopen(p, "rb");
            if (t) fclose(t), cJSON_AddItemToArray(figs, cJSON_CreateString("fig-robust-epoch"));
        } else if (drawn) {
            char b[64];
            cli_fmt(b, sizeof b, "fig-%s", x->figures[fi]);
            cJSON_AddItemToArray(figs, cJSON_CreateString(b));
        }
    }
    return figs;
}

/* The "runs" list of result.json: setting and outcome of each run. */
static cJSON *claim_runs(const rp_run *runs, int nruns) {
    cJSON *rl = cJSON_CreateArray();
    for (int i = 0; rl && i < nruns; i++) {
        const rp_run *r = &runs[i];
        cJSON *o = cJSON_CreateObject();
        cli_json_str(o, "name", r->name);
        cli_json_str(o, "data", r->data_spec);
        cli_json_str(o, "model", r->model_spec);
        cli_json_str(o, "init", r->init_desc);
        cli_json_str(o, "loss", mf_loss_name(r->s.loss));
        cli_json_str(o, "optimizer", mf_optimizer_name(r->s.optimizer));
        cli_json_num(o, "lr", r->s.lr);
        cli_json_int(o, "steps_budget", r->s.max_steps);
        cli_json_num(o, "until_log10_loss", r->s.until_log10_loss);
        if (r->done) {
            cli_json_str(o, "outcome", mf_outcome_name(r->res.outcome));
            cli_json_int(o, "steps", r->res.steps);
            cli_json_num(o, "wall_seconds", r->res.wall_seconds);
            cli_json_num(o, "log10_time", r->res.final.time_log / LN10);
            cli_json_num(o, "log10_loss", r->res.final.log10_loss);
            cli_json_num(o, "normalized_margin", r->res.final.normalized_margin);
            cli_json_num(o, "smoothed_margin", r->res.final.smoothed_margin);
        } else {
            cli_json_str(o, "error", r->err);
        }
        cJSON_AddItemToArray(rl, o);
    }
    return rl;
}

/* Write DIR/<claim>/result.json: status, the joined measured / expected
 * texts (or why the claim could not run), the claim's description, the
 * checks, figures and runs. */
static void write_result(const char *cdir, const char *name, const rp_experiment *x, int quick,
                         int status, const char *measured, const char *expected,
                         cJSON *checks, cJSON *figs, cJSON *runs) {
    cJSON *res = cJSON_CreateObject();
    cli_json_str(res, "format", "marginflow-claim-result");
    cli_json_int(res, "version", 1);
    cli_json_str(res, "name", name);
    cli_json_str(res, "status", status > 0 ? "PASS" : status == 0 ? "FAIL" : "ERROR");
    cli_json_str(res, "measured", measured);
    cli_json_str(res, "expected", expected);
    cJSON_AddBoolToObject(res, "quick", quick != 0);
    cli_json_str(res, "title", x->title);
    cli_json_str(res, "paper", x->paper);
    cli_json_str(res, "reference", x->reference);
    cli_json_str(res, "paper_result", x->paper_result);
    cli_json_str(res, "statement", x->statement);
    cJSON_AddItemToObject(res, "checks", checks);
    cJSON_AddItemToObject(res, "figures", figs);
    cJSON_AddItemToObject(res, "runs", runs);
    char *rp = cli_join(cdir, "result.json");
    mf_err e = {0, ""};
    if (!rp) cli_error("out of memory writing the result of %s", cli_q(name));
    else if (cli_json_write(rp, res, &e)) cli_error("%s", e.msg);
    free(rp);
    cJSON_Delete(res);
}

/* Run claim `name` from its file; write DIR/<name>/result.json. Returns 0.
 * The file is read and validated whole (cli/experiment.c) before the first
 * run is trained; a refused file is an ERROR with the parser's sentence. */
static int run_claim(const char *expdir, const char *name, const char *outdir, int quick) {
    char why[MF_ERR_LEN] = "";
    char *path = cli_aprintf("%s/%s.json", expdir, name), *cdir = cli_join(outdir, name);
    if (!path || !cdir) {
        free(path);
        free(cdir);
        return 1; /* no result.json: print_result reports the claim's process failed */
    }
    rp_experiment x;
    int parsed = rp_experiment_read(path, quick, &x, why, sizeof why) == 0, status = -1;
    if (parsed && rp_experiment_check_runs(&x, path, why, sizeof why)) parsed = 0;
    rp_claim cl;
    memset(&cl, 0, sizeof cl);
    cl.name = name;
    cl.title = x.title ? x.title : "";
    cl.dir = cdir;
    cl.gamma_star = x.gamma_star;
    cl.runs = x.runs;
    cl.nruns = x.nruns;
    cl.memo = rp_memo_new();
    cJSON *checks_out = cJSON_CreateArray();
    char measured[2048] = "", expected[1024] = "";
    if (cli_mkdirs(cdir) != 0) {
        char w2[MF_ERR_LEN];
        cli_fmt(w2, sizeof w2, "cannot create %s: %s", cli_q(cdir), strerror(errno));
        if (parsed) cli_fmt(why, sizeof why, "%s", w2);
        parsed = 0;
    }
    for (int i = 0; parsed && i < x.nruns; i++) {
        char *rdir = cli_join(cdir, x.runs[i].name);
        if (rdir) train_run(&x.runs[i], rdir, name);
        else cli_fmt(x.runs[i].err, sizeof x.runs[i].err, "out of memory");
        free(rdir);
        if (!x.runs[i].done) {
            cli_fmt(why, sizeof why, "run %s: %s", x.runs[i].name, x.runs[i].err);
            break;
        }
    }
    if (!why[0] && !cl.memo) cli_fmt(why, sizeof why, "out of memory");
    if (!why[0])
        status = claim_checks(&x, &cl, checks_out, measured, sizeof measured, expected,
                              sizeof expected);
    cJSON *figs = claim_figures(&x, &cl, status);
    write_result(cdir, name, &x, quick, status, why[0] ? why : measured, expected, checks_out,
                 figs, claim_runs(x.runs, x.nruns));
    rp_memo_free(cl.memo);
    rp_experiment_free(&x);
    free(path);
    free(cdir);
    return 0;
}

/* ------------------------------------------------------------ command */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted claim names (file stems) of DIR/<name>.json; NULL-free array of *n. */
static char **list_claims(const char *dir, int *n) {
    DIR *d = opendir(dir);
    char **names = NULL;
    int k = 0, cap = 0;
    if (!d) return NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") || de->d_name[0] == '.') continue;
        if (k == cap) {
            char **n2 = realloc(names, sizeof *n2 * (size_t)(cap = cap ? 2 * cap : 32));
            if (!n2) break;
            names = n2;
        }
        names[k] = malloc(l - 4);
        if (!names[k]) break;
        memcpy(names[k], de->d_name, l - 5);
        names[k][l - 5] = '\0';
        k++;
    }
    closedir(d);
    if (names) qsort(names, (size_t)k, sizeof *names, cmp_str);
    *n = k;
    return names;
}

/* Print the claim's line from its result.json; returns 1 pass, 0 fail/error. */
static int print_result(const char *outdir, const char *name) {
    char *p = cli_aprintf("%s/%s/result.json", outdir, name);
    cli_jr jr = {p, NULL, 0, NULL, 0};
    cJSON *r = p ? cli_json_load(&jr, p, CLI_MAX_JSON_BYTES) : NULL;
    free(p);
    if (!r) {
        printf("ERROR %s: no result (the claim's process failed)\n", name);
        fflush(stdout);
        return 0;
    }
    const char *st = cli_jstr_or(r, "status", "ERROR");
    printf("%s %s: %s vs %s\n", st, name, cli_jstr_or(r, "measured", "?"), cli_jstr_or(r, "expected", "?"));
    fflush(stdout);
    int ok = !strcmp(st, "PASS");
    cJSON_Delete(r);
    return ok;
}

/* The defaults, printed by the help from here (one place). */
#define RP_DEFAULT_OUT "runs/reproduce"
#define RP_DEFAULT_EXPERIMENTS "experiments"
#define RP_DEFAULT_JOBS 1

static void reproduce_help(void) {
    printf("usage: marginflow reproduce [CLAIM ...] [--quick] [--out DIR] [--jobs N]\n"
           "                            [--experiments DIR] [--list]\n"
           "\n"
           "Run the claims of [LL20], [VSS22] and [LLWA21] (docs/theory.md) as checks. Each\n"
           "claim is a file experiments/<claim>.json (format: experiments/README.md): its\n"
           "runs, the quantities checked with expected values and tolerances, and its\n"
           "figures. Prints 'PASS|FAIL|ERROR claim: measured vs expected' per claim, then\n"
           "'N passed, N failed'.\n"
           "\n"
           "  CLAIM ...           claims to run (default: every file in the experiments folder)\n"
           "  --quick             the claims' quick variants (smaller budgets, fewer seeds)\n"
           "  --out DIR           output folder (default " RP_DEFAULT_OUT "): DIR/<claim>/<run>/ are\n"
           "                      run directories (config.json, metrics.csv, params.txt,\n"
           "                      summary.json, snapshots.csv), DIR/<claim>/result.json and\n"
           "                      fig-*.gp/.pdf/.svg/.png, DIR/report.md and DIR/report.html\n"
           "  --jobs N            run N claims at once in separate processes (default %d);\n"
           "                      results do not depend on N\n"
           "  --experiments DIR   folder of claim files (default " RP_DEFAULT_EXPERIMENTS ")\n"
           "  --list              list the claims and exit\n"
           "  -h, --help          this help\n"
           "\n"
           "Figures need gnuplot (scripts/install-deps); without it the .gp scripts are kept.\n"
           "\n"
           "exit codes: 0 every claim passed, 1 a claim failed or could not run,\n"
           "            2 bad usage or an unknown claim\n",
           RP_DEFAULT_JOBS);
}

/* The claims of one reproduce call, run as pool tasks; results are
 * printed in claim order as soon as a claim and all before it are done. */
typedef struct claims_ctx {
    const char *expdir, *outdir;
    char **names;
    int n, quick;
    char *fin;          /* fin[i]: claim i has ended */
    int printed, passed, failed;
} claims_ctx;

static int claim_task(int i, void *ctx) {
    claims_ctx *c = ctx;
    return run_claim(c->expdir, c->names[i], c->outdir, c->quick);
}

static void claim_done(int i, const jobs_status *st, void *ctx) {
    claims_ctx *c = ctx;
    (void)st; /* a claim that died has no result.json: print_result says so */
    c->fin[i] = 1;
    while (c->printed < c->n && c->fin[c->printed]) {
        if (print_result(c->outdir, c->names[c->printed])) c->passed++;
        else c->failed++;
        c->printed++;
    }
}

/* Run the claims names[n] with `jobs` workers; print each result line,
 * the report and "N passed, N failed". Returns the exit code. */
static int run_claims(const char *expdir, const char *outdir, char **names, int n, int quick,
                      int jobs) {
    if (cli_mkdirs(outdir) != 0) {
        cli_error("cannot create %s: %s", cli_q(outdir), strerror(errno));
        return CLI_EXIT_ERROR;
    }
    for (int i = 0; i < n; i++) { /* a claim that dies must not leave an old result */
        char *p = cli_aprintf("%s/%s/result.json", outdir, names[i]);
        if (p) remove(p);
        free(p);
    }
    claims_ctx c = {expdir, outdir, names, n, quick, calloc((size_t)n + 1, 1), 0, 0, 0};
    jobs_status *st = calloc((size_t)n + 1, sizeof *st);
    jobs_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.n_tasks = n;
    spec.task = claim_task;
    spec.ctx = &c;
    spec.workers = jobs;
    spec.on_done = claim_done;
    spec.done_ctx = &c;
    if (c.fin && st) jobs_run_spec(NULL, &spec, st);
    for (int i = 0; c.fin && i < n; i++) /* never started or not waited for */
        if (!c.fin[i]) claim_done(i, &st[i], &c);
    int failed = c.failed + (c.fin ? 0 : n);
    free(c.fin);
    free(st);
    rp_report(outdir, names, n, quick);
    printf("%d passed, %d failed\n", c.passed, failed);
    return failed ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

/* Read and validate every claim file names[n] whole -- its JSON, every
 * field, and each run's data and model spec against that data -- before
 * anything trains: one line per refused file on stderr. Returns 0 when all
 * are valid, else CLI_EXIT_USAGE (nothing is run: bad input, like any
 * other). */
static int validate_claims(const char *expdir, char **names, int n, int quick) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char why[MF_ERR_LEN] = "";
        char *p = cli_aprintf("%s/%s.json", expdir, names[i]);
        rp_experiment x;
        if (!p) {
            cli_error("out of memory");
            return CLI_EXIT_ERROR;
        }
        if (rp_experiment_read(p, quick, &x, why, sizeof why) ||
            rp_experiment_check_runs(&x, p, why, sizeof why)) {
            cli_error("%s", why);
            bad++;
        }
        rp_experiment_free(&x);
        free(p);
    }
    if (bad) cli_error("reproduce: %d claim file%s refused; nothing was run", bad, bad > 1 ? "s" : "");
    return bad ? CLI_EXIT_USAGE : 0;
}

/* --list: each claim's name, title and paper. */
static void list(const char *expdir, char **names, int n) {
    for (int i = 0; i < n; i++) {
        char *p = cli_aprintf("%s/%s.json", expdir, names[i]);
        cli_jr r = {p, NULL, 0, NULL, 0};
        cJSON *j = p ? cli_json_load(&r, p, RP_MAX_FILE) : NULL;
        free(p);
        printf("%-34s %s [%s]\n", names[i], cli_jstr_or(j, "title", "(unreadable)"),
               cli_jstr_or(j, "paper", ""));
        cJSON_Delete(j);
    }
}

/* Options into *outdir, *expdir, *quick, *list, *jobs and the claim names
 * want[*nwant]. Returns -1 to go on, else an exit code. */
static int reproduce_args(int argc, char **argv, const char **outdir, const char **expdir,
                          int *quick, int *listing, long long *jobs, char **want, int *nwant) {
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = 0;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            reproduce_help();
            return CLI_EXIT_OK;
        }
        if (!strcmp(argv[i], "--quick")) *quick = 1;
        else if (!strcmp(argv[i], "--list")) *listing = 1;
        else if ((r = cli_opt(argc, argv, &i, "--out", &v)) == 1) *outdir = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--experiments", &v)) == 1) *expdir = v;
        if (r == 1 && !v[0]) {
            cli_error("reproduce: %s: the folder name is empty", v == *outdir ? "--out" : "--experiments");
            return CLI_EXIT_USAGE;
        }
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--jobs", &v)) == 1) {
            if (cli_parse_ll("--jobs", v, 1, 256, jobs)) r = -1;
        }
        if (r < 0) return CLI_EXIT_USAGE;
        if (r == 1 || !strcmp(argv[i], "--quick") || !strcmp(argv[i], "--list")) continue;
        if (argv[i][0] == '-') {
            cli_error("reproduce: unknown option '%s'; see marginflow reproduce --help", cli_q(argv[i]));
            return CLI_EXIT_USAGE;
        }
        if (cli_check_text("reproduce: CLAIM", argv[i], 0)) return CLI_EXIT_USAGE;
        want[(*nwant)++] = argv[i];
    }
    return -1;
}

int cli_reproduce(int argc, char **argv) {
    const char *outdir = RP_DEFAULT_OUT, *expdir = RP_DEFAULT_EXPERIMENTS;
    int quick = 0, listing = 0, nwant = 0, nall = 0;
    long long jobs = RP_DEFAULT_JOBS;
    char **want = calloc((size_t)argc + 1, sizeof *want);
    if (!want) return CLI_EXIT_ERROR;
    int code = reproduce_args(argc, argv, &outdir, &expdir, &quick, &listing, &jobs, want, &nwant);
    if (code >= 0) {
        free(want);
        return code;
    }
    code = CLI_EXIT_OK;
    char **all = list_claims(expdir, &nall), **names = want;
    if (!all || nall == 0) {
        cli_error("reproduce: no claim files (*.json) in %s", cli_q(expdir));
        free(want);
        free(all);
        return CLI_EXIT_USAGE;
    }
    if (nwant == 0) names = all, nwant = nall;
    for (int i = 0; names == want && i < nwant; i++) {
        size_t l = strlen(want[i]);
        if (l > 5 && !strcmp(want[i] + l - 5, ".json")) want[i][l - 5] = '\0';
        int found = 0;
        for (int k = 0; k < nall; k++) found |= !strcmp(all[k], want[i]);
        if (!found) {
            cli_error("reproduce: unknown claim '%s'; see marginflow reproduce --list", cli_q(want[i]));
            code = CLI_EXIT_USAGE;
        }
    }
    if (code == CLI_EXIT_OK && listing) list(expdir, names, nwant);
    else if (code == CLI_EXIT_OK && !(code = validate_claims(expdir, names, nwant, quick)))
        code = run_claims(expdir, outdir, names, nwant, quick, (int)jobs);
    for (int i = 0; i < nall; i++) free(all[i]);
    free(all);
    free(want);
    return code;
}

/*
 * robust.c -- `marginflow robust RUN_DIR`: L2 robustness of a run's
 * archived states on its test set (PGD-L2 and Carlini-Wagner L2 through
 * mf_robust_eval, src/robust.c), as a table, a JSON file and two figures
 * (interface: robust.h). reproduce's `robust` check calls the same
 * robust_run / robust_write.
 *
 * The states are DIR/archive/epoch-N.bin (epoch runs keep them at chosen
 * epochs, at every 10^-5k crossing of the loss and at the end), read with
 * the run's checkpoint fingerprint, so a file from another run is refused;
 * a run without archives contributes its checkpoint.bin.
 */
#define _XOPEN_SOURCE 700
#include "gp.h"
#include "robust.h"

#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STATES 4096

/* ------------------------------------------------------------ states */

typedef struct state_file {
    long long epoch;
    char *path;
} state_file;

static int cmp_state(const void *a, const void *b) {
    long long x = ((const state_file *)a)->epoch, y = ((const state_file *)b)->epoch;
    return x < y ? -1 : x > y;
}

/* The archived states of run_dir in epoch order (*n of them); none: the
 * checkpoint (epoch -1). NULL when out of memory. */
static state_file *list_states(const char *run_dir, int *n) {
    char *ad = cli_join(run_dir, RUN_ARCHIVE_DIR);
    state_file *v = calloc(MAX_STATES, sizeof *v);
    *n = 0;
    DIR *d = ad ? opendir(ad) : NULL;
    struct dirent *de;
    while (v && d && (de = readdir(d)) && *n < MAX_STATES) {
        long long ep;
        char tail[8];
        if (sscanf(de->d_name, "epoch-%lld%7s", &ep, tail) != 2 || strcmp(tail, ".bin") || ep < 0) continue;
        v[*n].epoch = ep;
        v[(*n)++].path = cli_join(ad, de->d_name);
    }
    if (d) closedir(d);
    free(ad);
    if (v && *n == 0) {
        v[0].epoch = -1;
        v[0].path = cli_join(run_dir, "checkpoint.bin");
        *n = 1;
    }
    if (v) qsort(v, (size_t)*n, sizeof *v, cmp_state);
    return v;
}

/* Mark the states chosen by which; 0, or -1 with why filled. */
static int choose(state_file *v, int n, const char *which, unsigned char *pick, char *why, size_t cap) {
    memset(pick, 0, (size_t)n);
    if (!strcmp(which, "all")) {
        memset(pick, 1, (size_t)n);
        return 0;
    }
    if (!strcmp(which, "final") || !strcmp(which, "last")) {
        pick[n - 1] = 1;
        return 0;
    }
    if (!strcmp(which, "first,last")) {
        pick[0] = pick[n - 1] = 1;
        return 0;
    }
    char buf[1024];
    cli_fmt(buf, sizeof buf, "%s", which);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        long long ep = strtoll(t, &end, 10);
        int found = 0;
        for (int i = 0; i < n && *end == '\0' && end != t; i++)
            if (v[i].epoch == ep) pick[i] = 1, found = 1;
        if (!found) {
            cli_fmt(why, cap, "--checkpoints: no archived state of epoch '%s' (archived:", t);
            for (int i = 0; i < n && i < 20; i++) cli_cat(why, cap, " %lld", v[i].epoch);
            cli_cat(why, cap, "%s)", n > 20 ? " ..." : "");
            return -1;
        }
    }
    return 0;
}

void robust_table_free(robust_table *t) {
    for (int i = 0; t && i < t->n; i++) mf_robust_result_free(t->p[i].r);
    if (t) free(t->p);
    if (t) memset(t, 0, sizeof *t);
}

/* The first n inputs of D as a data set of their own (a copy). */
static mf_data *first_n(const mf_data *D, int n) {
    mf_data *S = NULL;
    if (n <= 0 || n > D->n) n = D->n;
    if (mf_data_new(n, D->d, D->num_classes, &S, NULL)) return NULL;
    memcpy(S->x, D->x, sizeof(double) * (size_t)n * D->d);
    if (D->num_classes == 0) memcpy(S->y, D->y, sizeof(double) * (size_t)n);
    else memcpy(S->cls, D->cls, sizeof(int) * (size_t)n);
    cli_fmt(S->desc, sizeof S->desc, "%s (first %d)", D->desc, n);
    return S;
}

int robust_run(const char *run_dir, const char *which, const mf_robust_settings *s, int n_test,
               const char *data, int progress, robust_table *t, char *why, size_t cap) {
    memset(t, 0, sizeof *t);
    t->s = *s;
    run_config c;
    run_read_error re;
    if (run_config_read(run_dir, RUN_READ_RESUME, &c, &re)) {
        if (re.kind != RUN_READ_FIELD)
            cli_fmt(why, cap, "%s", re.why);
        else
            cli_fmt(why, cap, "%s: missing or invalid field '%s'", cli_q(c.path), re.field);
        run_config_free(&c);
        return CLI_EXIT_USAGE;
    }
    mf_data *train = NULL, *test = NULL, *eval = NULL;
    mf_model *m = NULL;
    mf_err e = {0, ""};
    state_file *v = NULL;
    unsigned char *pick = NULL;
    int nv = 0, code = run_load_data(&c, &train, &test, why, cap);
    if (!code) { /* the data the run was trained (and tested) on, or a refusal */
        int hc = run_data_hash_check(&c, train, test, run_dir, why, cap);
        if (hc < 0) code = CLI_EXIT_USAGE;
        else if (hc > 0 && progress) cli_error("%s", why);
    }
    if (!code && data) {
        mf_data_free(test);
        test = NULL;
        int rc = mf_data_from_spec(data, NULL, &test, &e);
        if (rc) cli_fmt(why, cap, "--data: %s", e.msg), code = cli_exit_for(rc, 1);
    }
    if (!code && !test) {
        cli_fmt(why, cap, "%s has no test set (train with --test-data); give --data SPEC", cli_q(run_dir));
        code = CLI_EXIT_USAGE;
    }
    if (!code) {
        int rc = mf_model_parse(c.model_spec, train->d, train->num_classes, &m, &e);
        if (rc) cli_fmt(why, cap, "%s", e.msg), code = cli_exit_for(rc, 1);
    }
    if (!code && !(eval = first_n(test, n_test))) cli_fmt(why, cap, "out of memory"), code = CLI_EXIT_ERROR;
    if (!code && (!(v = list_states(run_dir, &nv)) || !(pick = malloc((size_t)nv))))
        cli_fmt(why, cap, "out of memory"), code = CLI_EXIT_ERROR;
    if (!code && choose(v, nv, which, pick, why, cap)) code = CLI_EXIT_USAGE;
    if (!code && !(t->p = calloc((size_t)nv, sizeof *t->p))) cli_fmt(why, cap, "out of memory"), code = CLI_EXIT_ERROR;
    uint32_t fp = code ? 0 : run_fingerprint(&c, train, m);
    if (!code) {
        t->n_test = eval->n;
        cli_fmt(t->model, sizeof t->model, "%s", m->spec);
    }
    for (int i = 0; !code && i < nv; i++) {
        if (!pick[i]) continue;
        mf_train_state *st = NULL;
        int rc = mf_checkpoint_read(v[i].path, fp, m->n_params, &st, &e);
        if (!rc) rc = mf_robust_eval(m, eval, st->theta, s, &t->p[t->n].r, &e);
        if (rc) {
            cli_fmt(why, cap, "%s: %s", v[i].path, e.msg);
            code = cli_exit_for(rc, 1);
        } else {
            robust_point *p = &t->p[t->n++];
            p->epoch = v[i].epoch, p->step = st->step, p->log10_loss = st->log_loss / 2.302585092994046;
            if (progress)
                fprintf(stderr, "robust: epoch %lld (log10 loss %s): clean %.4f, at eps %g: %.4f "
                                "(PGD %.4f, CW %.4f), median norm %s\n",
                        p->epoch, cli_g(p->log10_loss, 4), p->r->clean_accuracy, s->eps[s->n_eps - 1],
                        p->r->acc_min[s->n_eps - 1], p->r->acc_pgd[s->n_eps - 1],
                        p->r->acc_cw[s->n_eps - 1], cli_g(p->r->median_norm, 4));
        }
        mf_train_state_free(st);
    }
    for (int i = 0; v && i < nv; i++) free(v[i].path);
    free(v);
    free(pick);
    mf_model_free(m);
    mf_data_free(train);
    mf_data_free(test);
    mf_data_free(eval);
    run_config_free(&c);
    if (code) robust_table_free(t);
    return code;
}

/* ------------------------------------------------------------ output */

static double finite_or_nan(double v) { return isfinite(v) ? v : NAN; }

/* A text file built in memory (open_memstream) and written atomically to
 * path (temp file, fsync, rename: mf_write_file_atomic). */
typedef struct mem_file {
    FILE *f;
    char *buf;
    size_t len;
} mem_file;

static FILE *mem_open(mem_file *m) {
    memset(m, 0, sizeof *m);
    return m->f = open_memstream(&m->buf, &m->len);
}

/* Close m and write it to path; 0, or -1 with why filled. */
static int mem_commit(mem_file *m, const char *path, char *why, size_t cap) {
    int bad = !m->f || fclose(m->f) != 0;
    mf_err e = {0, ""};
    if (bad) cli_fmt(why, cap, "cannot write %s: out of memory", cli_q(path));
    else if (mf_write_file_atomic(path, m->buf, m->len, &e)) cli_fmt(why, cap, "%s", e.msg), bad = 1;
    free(m->buf);
    memset(m, 0, sizeof *m);
    return bad ? -1 : 0;
}

/* The figures of table t in dir, drawn through cli/gp (the look of every
 * marginflow figure; PDF, SVG and PNG, the script kept to re-run):
 * PREFIX-eps (robust accuracy, min over the attacks, vs eps, one line per
 * state; log x) and, with two or more archived states, PREFIX-epoch (vs
 * epoch, one line per eps). eps reads PREFIX.csv (columns 1 epoch, 4 eps,
 * 8 min), epoch PREFIX-epoch.dat (a block per eps, so its lines join).
 * Without gnuplot the scripts stay. All of robust's figure code. */
static void robust_figures(const char *dir, const char *prefix, const robust_table *t) {
    char p[1400], why[MF_ERR_LEN], name[300], sub[200];
    cli_fmt(sub, sizeof sub, "%s, %d test inputs", t->model, t->n_test);
    for (int fig = 0; fig < 2; fig++) {
        if (fig == 1 && (t->n < 2 || t->p[0].epoch < 0)) break;
        const char *kind = fig ? "epoch" : "eps";
        if (fig) { /* PREFIX-epoch.dat: one block (index l) per eps of "epoch,min" rows */
            mem_file mf;
            FILE *g = mem_open(&mf);
            if (!g) continue;
            fprintf(g, "# robust accuracy (min over the attacks) per epoch, one block per eps\n");
            for (int l = 0; l < t->s.n_eps; l++) {
                fprintf(g, "%s# eps %.17g\n", l ? "\n\n" : "", t->s.eps[l]);
                for (int i = 0; i < t->n; i++)
                    fprintf(g, "%lld,%.17g\n", t->p[i].epoch, t->p[i].r->acc_min[l]);
            }
            cli_fmt(p, sizeof p, "%s/%s-epoch.dat", dir, prefix);
            if (mem_commit(&mf, p, why, sizeof why)) continue;
        }
        cli_fmt(name, sizeof name, "%s-%s", prefix, kind);
        gp_fig gf;
        if (gp_begin(&gf, dir, name, "marginflow robust", GP_W, GP_H, GP_ALL)) continue;
        FILE *b = GP_BODY(&gf);
        gp_title(&gf, fig ? "L2 robust accuracy per epoch" : "L2 robust accuracy vs radius", sub);
        fprintf(b, "set datafile separator ','\nset yrange [-0.03:1.03]\n"
                   "set ylabel 'robust accuracy (min over PGD-L2, CW-L2)'\n");
        gp_key_below(b, fig ? t->s.n_eps : t->n, 2);
        if (!fig) {
            fprintf(b, "set xlabel 'ε (L2 radius)'\nset logscale x\nset autoscale xfix\nplot ");
            for (int i = 0; i < t->n; i++) {
                char tl[120];
                cli_fmt(tl, sizeof tl, "epoch %lld (log10 Loss %s)", t->p[i].epoch,
                        cli_g(t->p[i].log10_loss, 3));
                fprintf(b, "%s'", i ? ", " : "");
                gp_str(b, prefix);
                fprintf(b, ".csv' using ($1 == %lld ? $4 : 1/0):8 with linespoints lt %d title '",
                        t->p[i].epoch, i + 1);
                gp_str(b, tl);
                fprintf(b, "' noenhanced");
            }
        } else {
            fprintf(b, "set xlabel 'epoch'\nplot ");
            for (int l = 0; l < t->s.n_eps; l++) {
                fprintf(b, "%s'", l ? ", " : "");
                gp_str(b, prefix);
                fprintf(b, "-epoch.dat' index %d using 1:2 with linespoints lt %d title 'ε = %s'", l,
                        l + 1, gp_num(t->s.eps[l]));
            }
        }
        fprintf(b, "\n");
        gp_end(&gf); /* without gnuplot the script stays */
    }
}

int robust_write(const char *dir, const char *prefix, const robust_table *t, char *why, size_t cap) {
    char p[1400];
    mem_file mf;
    FILE *f = mem_open(&mf);
    if (f) {
        fprintf(f, "epoch,step,log10_loss,eps,clean,pgd,cw,min\n");
        for (int i = 0; i < t->n; i++)
            for (int l = 0; l < t->s.n_eps; l++) {
                const mf_robust_result *r = t->p[i].r;
                fprintf(f, "%lld,%lld,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", t->p[i].epoch,
                        t->p[i].step, t->p[i].log10_loss, t->s.eps[l], r->clean_accuracy,
                        r->acc_pgd[l], r->acc_cw[l], r->acc_min[l]);
            }
    }
    cli_fmt(p, sizeof p, "%s/%s.csv", dir, prefix);
    if (mem_commit(&mf, p, why, cap)) return -1;
    /* JSON */
    cJSON *root = cJSON_CreateObject(), *st = cJSON_AddArrayToObject(root, "states");
    cli_json_str(root, "format", "marginflow-robust");
    cli_json_int(root, "version", 1);
    cli_json_str(root, "model", t->model);
    cli_json_int(root, "test_inputs", t->n_test);
    cJSON *sj = cJSON_AddObjectToObject(root, "settings");
    cli_json_num_array(sj, "eps", t->s.eps, t->s.n_eps);
    cli_json_int(sj, "pgd_steps", t->s.pgd_steps);
    cli_json_int(sj, "pgd_restarts", t->s.pgd_restarts);
    cli_json_num(sj, "pgd_step", t->s.pgd_step);
    cli_json_int(sj, "cw_steps", t->s.cw_steps);
    cli_json_int(sj, "cw_search", t->s.cw_search);
    cli_json_num(sj, "cw_c0", t->s.cw_c0);
    cli_json_num(sj, "cw_lr", t->s.cw_lr);
    cli_json_int(sj, "seed", (long long)t->s.seed);
    for (int i = 0; i < t->n; i++) {
        const mf_robust_result *r = t->p[i].r;
        cJSON *o = cJSON_CreateObject();
        cli_json_int(o, "epoch", t->p[i].epoch);
        cli_json_int(o, "step", t->p[i].step);
        cli_json_num(o, "log10_loss", t->p[i].log10_loss);
        cli_json_num(o, "clean_accuracy", r->clean_accuracy);
        cli_json_num_array(o, "robust_pgd", r->acc_pgd, r->n_eps);
        cli_json_num_array(o, "robust_cw", r->acc_cw, r->n_eps);
        cli_json_num_array(o, "robust_min", r->acc_min, r->n_eps);
        cli_json_num(o, "median_norm", finite_or_nan(r->median_norm));
        cli_json_num(o, "median_norm_cw", finite_or_nan(r->median_norm_cw));
        if (!isfinite(r->median_norm))
            cli_json_str(o, "median_norm_note", "more than half of the inputs were never broken");
        cJSON_AddItemToArray(st, o);
    }
    cli_fmt(p, sizeof p, "%s/%s.json", dir, prefix);
    mf_err e = {0, ""};
    int rc = cli_json_write(p, root, &e);
    cJSON_Delete(root);
    if (rc) {
        cli_fmt(why, cap, "%s", e.msg);
        return -1;
    }
    robust_figures(dir, prefix, t);
    return 0;
}

/* ------------------------------------------------------------ command */

static void robust_help(void) {
    printf("usage: marginflow robust RUN_DIR [options]\n"
           "\n"
           "L2 robustness of a run's archived states (RUN_DIR/archive/epoch-N.bin, or its\n"
           "checkpoint.bin) on its test set: robust accuracy per radius under PGD-L2 and under\n"
           "Carlini-Wagner L2, and under both (the minimum over the attacks, per input), and\n"
           "the median smallest perturbation found. Attacks are searches: a robust accuracy is\n"
           "an upper bound. Writes RUN_DIR/robust/robust.csv, robust.json, robust-eps.png\n"
           "(accuracy vs eps per state) and robust-epoch.png (vs epoch per eps).\n"
           "\n"
           "  --eps LIST          L2 radii, ascending (default 0.1,0.3,0.5,1,2)\n"
           "  --checkpoints W     all | first,last | final | a list of epochs (default all)\n"
           "  --n N               the first N test inputs (default 0 = all)\n"
           "  --data SPEC         evaluate on this data instead of the run's test set\n"
           "  --pgd-steps K       PGD steps per start (default 50)\n"
           "  --restarts R        PGD starts per radius: clean, then random (default 2)\n"
           "  --cw-steps S        Carlini-Wagner Adam steps per constant (default 100)\n"
           "  --cw-search B       binary-search rounds on the constant (default 8)\n"
           "  --cw-lr X           Carlini-Wagner Adam step (default 0.01)\n"
           "  --seed N            PGD random starts (default 1)\n"
           "  --out DIR           output folder (default RUN_DIR/robust)\n"
           "  -q, --quiet         no progress lines\n"
           "  -h, --help          this help\n"
           "\n"
           "exit codes: 0 ok, 1 I/O or other error, 2 bad usage or bad input\n");
}

int cli_robust(int argc, char **argv) {
    mf_robust_settings s;
    mf_robust_settings_default(&s);
    const char *run_dir = NULL, *which = "all", *data = NULL, *out = NULL, *v;
    long long n = 0, x;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        int r = 0;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            robust_help();
            return CLI_EXIT_OK;
        }
        if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = 1;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "--eps", &v)) == 1) {
            char buf[1024];
            cli_fmt(buf, sizeof buf, "%s", v);
            s.n_eps = 0;
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (s.n_eps == MF_ROBUST_MAX_EPS) {
                    cli_error("--eps: at most %d radii", MF_ROBUST_MAX_EPS);
                    return CLI_EXIT_USAGE;
                }
                if (cli_parse_double("--eps", t, &s.eps[s.n_eps++])) return CLI_EXIT_USAGE;
            }
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--checkpoints", &v)) == 1) which = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--data", &v)) == 1) data = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--out", &v)) == 1) out = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--n", &v)) == 1) {
            if (cli_parse_ll("--n", v, 0, 1000000000, &n)) return CLI_EXIT_USAGE;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--pgd-steps", &v)) == 1) {
            if (cli_parse_ll("--pgd-steps", v, 0, 100000, &x)) return CLI_EXIT_USAGE;
            s.pgd_steps = (int)x;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--restarts", &v)) == 1) {
            if (cli_parse_ll("--restarts", v, 0, 1000, &x)) return CLI_EXIT_USAGE;
            s.pgd_restarts = (int)x;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--cw-steps", &v)) == 1) {
            if (cli_parse_ll("--cw-steps", v, 0, 100000, &x)) return CLI_EXIT_USAGE;
            s.cw_steps = (int)x;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--cw-search", &v)) == 1) {
            if (cli_parse_ll("--cw-search", v, 0, 100, &x)) return CLI_EXIT_USAGE;
            s.cw_search = (int)x;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--cw-lr", &v)) == 1) {
            if (cli_parse_double("--cw-lr", v, &s.cw_lr)) return CLI_EXIT_USAGE;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--seed", &v)) == 1) {
            if (cli_parse_ll("--seed", v, 0, 9007199254740992LL, &x)) return CLI_EXIT_USAGE;
            s.seed = (uint64_t)x;
        } else if (r < 0) {
            return CLI_EXIT_USAGE;
        } else if (argv[i][0] == '-' || run_dir) {
            cli_error("robust: unexpected argument '%s'; see marginflow robust --help", argv[i]);
            return CLI_EXIT_USAGE;
        } else {
            run_dir = argv[i];
        }
    }
    if (!run_dir) {
        cli_error("robust: RUN_DIR is required; see marginflow robust --help");
        return CLI_EXIT_USAGE;
    }
    const char *bad = mf_robust_settings_validate(&s);
    if (bad) {
        cli_error("robust: %s", bad);
        return CLI_EXIT_USAGE;
    }
    char why[MF_ERR_LEN] = "", *def = NULL;
    robust_table t;
    int code = robust_run(run_dir, which, &s, (int)n, data, !quiet, &t, why, sizeof why);
    if (!code && !out && !(out = def = cli_join(run_dir, "robust"))) code = CLI_EXIT_ERROR;
    if (!code && cli_mkdirs(out) != 0) {
        cli_fmt(why, sizeof why, "cannot create %s: %s", out, strerror(errno));
        code = CLI_EXIT_ERROR;
    }
    if (!code && robust_write(out, "robust", &t, why, sizeof why)) code = CLI_EXIT_ERROR;
    if (code) cli_error("robust: %s", why);
    else if (!quiet) printf("robust: %d states, outputs in %s (robust.csv, robust.json, robust-eps.png)\n", t.n, out);
    robust_table_free(&t);
    free(def);
    return code;
}

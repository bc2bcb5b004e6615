/*
 * analyze.c -- `marginflow analyze`: KKT certificate and optimality verdict
 * of a trained parameter vector for the max-margin problem (P) of
 * docs/theory.md section 3 (library: mf_analyze in src/analyze.c).
 *
 *   marginflow analyze RUN_DIR [options]
 *       reads RUN_DIR/config.json (model spec, data path/format, loss, as
 *       written by `marginflow train`) and RUN_DIR/params.txt, writes
 *       RUN_DIR/analysis.json (atomically) and prints a short summary.
 *   marginflow analyze --model M --data D [--format F] --params FILE [--loss L]
 *       the same without a run directory (analysis.json only with --out).
 * Every number in analysis.json is written %.17g in the C locale (exact
 * round trip); non-finite values are null. Exit status: 0 whatever the
 * verdict, 1 on I/O or memory failure, 2 on bad usage or bad input.
 */
#include "rundir.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mf_cli_analyze(int argc, char **argv);

static void analyze_help(void) {
    printf(
        "usage: marginflow analyze RUN_DIR [options]\n"
        "       marginflow analyze --model M --data D --params FILE [options]\n"
        "\n"
        "Is theta a KKT point of the max-margin problem (P) (docs/theory.md s.3), and is\n"
        "it a global optimum, a local optimum, or neither? Rescales theta to q_min = 1,\n"
        "solves the multiplier NNLS (Clarke coefficients free at ReLU kinks), compares\n"
        "with the closed-form optimum where one is known, and runs the second-order test\n"
        "(smooth points), the directional test (kinks) and local SLSQP re-solves.\n"
        "\n"
        "inputs (a run directory, or all of --model/--data/--params):\n"
        "  RUN_DIR              a directory written by `marginflow train`: reads\n"
        "                       config.json and params.txt, writes analysis.json\n"
        "  --model SPEC         model spec (as for train)\n"
        "  --data SPEC          data spec or file (as for train)\n"
        "  --format F           data file format: libsvm | csv (default: by extension)\n"
        "  --params FILE        parameters (params.txt format or a plain list)\n"
        "  --loss L             exp | logistic | ce, for Lyu & Li's certificate\n"
        "                       (default: the run's loss, else exp)\n"
        "options:\n"
        "  --layer L            per-layer problem P_L, other layers frozen (default -1:\n"
        "                       the whole network); a convex QP for linear nets and the\n"
        "                       output layer of relu2/mlp, other layers are refused\n"
        "  --kkt-tol X          relative KKT residual accepted as KKT (default 1e-3)\n"
        "  --act-tol X          active set q_n <= 1 + X (default 1e-3)\n"
        "  --zero-tol X         pre-activation |z| <= X ||w|| ||x|| is a kink (default 1e-6)\n"
        "  --global-tol X       |gamma / gamma* - 1| <= X is global (default 1e-4)\n"
        "  --trials N           SLSQP starts per radius in the local search (default 8)\n"
        "  --seed N             seed of the local search (default 1)\n"
        "  --out FILE           write the analysis JSON to FILE (default:\n"
        "                       RUN_DIR/analysis.json with a run directory, none otherwise)\n"
        "  --json               print the analysis JSON to stdout instead of the summary\n"
        "  -q, --quiet          print nothing (files are still written)\n"
        "  -h, --help           this help\n"
        "\n"
        "verdicts: global, local-certified, local-evidence, not-local, not-kkt,\n"
        "          non-homogeneous (see the reason line for what is proved).\n"
        "exit codes: 0 analysed (any verdict), 1 I/O or other error, 2 bad usage or input\n");
}

/* ------------------------------------------------------------- helpers */

static cJSON *analysis_json(const mf_analysis *a, const mf_model *m, const mf_data *d,
                            mf_loss_kind loss, const mf_analyze_settings *s) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cli_json_str(r, "format", "marginflow-analysis");
    cli_json_int(r, "version", 1);
    cli_json_str(r, "library_version", MF_VERSION);
    cli_json_str(r, "model", m->spec);
    cli_json_str(r, "data", d->desc);
    cli_json_str(r, "loss", mf_loss_name(loss));
    cJSON *sj = cJSON_AddObjectToObject(r, "settings");
    if (sj) {
        cli_json_num(sj, "kkt_tol", s->kkt_tol);
        cli_json_num(sj, "act_tol", s->act_tol);
        cli_json_num(sj, "zero_tol", s->zero_tol);
        cli_json_num(sj, "global_tol", s->global_tol);
        cli_json_num(sj, "hess_h", s->hess_h);
        cli_json_int(sj, "local_trials", s->local_trials);
        cli_json_int(sj, "seed", (long long)s->seed);
        cli_json_int(sj, "max_patterns", s->max_patterns);
        cli_json_int(sj, "layer", s->layer);
    }
    cli_json_str(r, "verdict", mf_verdict_name(a->verdict));
    cli_json_str(r, "verdict_reason", a->verdict_reason);
    cli_json_int(r, "n", a->n);
    cli_json_int(r, "n_params", a->n_params);
    cli_json_int(r, "degree", a->degree);
    cJSON_AddBoolToObject(r, "homogeneous", a->homogeneous != 0);
    cli_json_num(r, "q_min", a->q_min);
    cli_json_num(r, "norm", a->norm);
    cli_json_num(r, "gamma", a->gamma);
    cli_json_num(r, "layer_margin", a->layer_margin);
    cli_json_num_array(r, "theta_tilde", a->theta_tilde, a->n_params);
    cJSON *k = cJSON_AddObjectToObject(r, "kkt");
    if (k) {
        cli_json_num(k, "eps", a->eps);
        cli_json_num(k, "delta", a->delta);
        cli_json_num(k, "euler_lhs", a->euler_lhs);
        cli_json_num(k, "euler_rhs", a->euler_rhs);
        cli_json_int(k, "n_active", a->n_active);
        cli_json_int(k, "n_kinks", a->n_kinks);
        cli_json_num_array(k, "lambda", a->lambda, a->n);
        cJSON *act = cJSON_AddArrayToObject(k, "active");
        for (int i = 0; act && i < a->n; i++)
            if (a->active[i]) cJSON_AddItemToArray(act, cJSON_CreateNumber(i));
    }
    cJSON *ll = cJSON_AddObjectToObject(r, "lyu_li");
    if (ll) {
        cli_json_num(ll, "beta", a->ll_beta);
        cli_json_num(ll, "eps", a->ll_eps);
        cli_json_num(ll, "delta", a->ll_delta);
    }
    cJSON *g = cJSON_AddObjectToObject(r, "global");
    if (g) {
        cJSON_AddBoolToObject(g, "known", a->has_global != 0);
        cli_json_num(g, "gamma_star", a->gamma_star);
        cli_json_str(g, "source", a->has_global ? a->global_source : NULL);
        cli_json_num(g, "ratio", a->ratio);
    }
    cJSON *so = cJSON_AddObjectToObject(r, "second_order");
    if (so) {
        cJSON_AddBoolToObject(so, "done", a->second_order_done != 0);
        cli_json_str(so, "hessian_method", a->second_order_done ? a->hessian_method : NULL);
        cli_json_num(so, "min_eig", a->min_eig);
        if (a->dir) cli_json_num_array(so, "dir", a->dir, a->n_params);
        else cJSON_AddNullToObject(so, "dir");
        cli_json_num_array(so, "gain", a->gain, 4);
    }
    if (a->directional) {
        const mf_directional_result *dr = a->directional;
        cJSON *dj = cJSON_AddObjectToObject(r, "directional");
        if (dj) {
            cJSON_AddBoolToObject(dj, "searched", dr->searched != 0);
            cli_json_int(dj, "n_zero", dr->n_zero);
            cli_json_int(dj, "n_patterns", dr->n_patterns);
            cJSON_AddBoolToObject(dj, "found", dr->found != 0);
            cli_json_num(dj, "best_inner", dr->best_inner);
            if (dr->d) cli_json_num_array(dj, "d", dr->d, a->n_params);
            else cJSON_AddNullToObject(dj, "d");
            cli_json_num_array(dj, "gain", dr->gain, 4);
        }
    } else {
        cJSON_AddNullToObject(r, "directional");
    }
    if (a->local) {
        const mf_local_result *lr = a->local;
        cJSON *lj = cJSON_AddObjectToObject(r, "local_search");
        if (lj) {
            cli_json_num_array(lj, "radii", lr->radii, lr->n_radii);
            cli_json_int(lj, "trials", lr->trials);
            cli_json_int(lj, "seed", (long long)lr->seed);
            cli_json_num(lj, "gamma0", lr->gamma0);
            cli_json_num_array(lj, "best_gamma", lr->best_gamma, lr->n_radii);
            cli_json_num(lj, "best_gain", lr->best_gain);
            cli_json_int(lj, "evaluations", lr->evaluations);
            cli_json_int(lj, "failures", lr->failures);
            cli_json_num(lj, "gamma_polished", a->gamma_polished);
            if (lr->best_theta) cli_json_num_array(lj, "best_theta", lr->best_theta, a->n_params);
        }
    } else {
        cJSON_AddNullToObject(r, "local_search");
    }
    cJSON *lj = cJSON_AddObjectToObject(r, "layer");
    if (lj) {
        cli_json_int(lj, "layer", a->layer);
        cli_json_num(lj, "opt", a->layer_opt);
        cli_json_num(lj, "value", a->layer_value);
    }
    return r;
}

/* The text summary; every value through cli_g, so an undefined one reads
 * "absent", never "nan". */
static void print_summary(const mf_analysis *a, const mf_model *m, const mf_data *d,
                          const mf_analyze_settings *s) {
    printf("analysis of %s on %s\n", m->spec, d->desc);
    printf("  gamma         %s  (q_min %s, ||theta|| %s, layer margin %s)\n", cli_g(a->gamma, 10),
           cli_g(a->q_min, 6), cli_g(a->norm, 6), cli_g(a->layer_margin, 6));
    if (a->has_global)
        printf("  gamma*        %s  (%s)  ratio %s\n", cli_g(a->gamma_star, 10), a->global_source,
               cli_g(a->ratio, 8));
    else
        printf("  gamma*        unknown\n");
    if (a->homogeneous && isfinite(a->eps)) {
        printf("  KKT           eps %s (tol %s), delta %s, active %d of %d, kinks %d\n",
               cli_g(a->eps, 3), cli_g(s->kkt_tol, 3), cli_g(a->delta, 3), a->n_active, a->n,
               a->n_kinks);
        printf("  Euler         ||theta~||^2 = %s  vs  L sum lambda = %s\n", cli_g(a->euler_lhs, 10),
               cli_g(a->euler_rhs, 10));
        printf("  Lyu-Li        beta %s, eps %s (relative %s), delta %s\n", cli_g(a->ll_beta, 12),
               cli_g(a->ll_eps, 3), cli_g(a->ll_eps / sqrt(a->euler_lhs), 3), cli_g(a->ll_delta, 3));
    }
    if (a->second_order_done)
        printf("  second order  min eigenvalue %s on the critical subspace (%s); gains %s %s "
               "%s %s at eps 1e-1..1e-4\n",
               cli_g(a->min_eig, 6), a->hessian_method, cli_g(a->gain[0], 3), cli_g(a->gain[1], 3),
               cli_g(a->gain[2], 3), cli_g(a->gain[3], 3));
    if (a->directional)
        printf("  directional   %s (%d zero pre-activations, %d patterns), min <theta, d> %s\n",
               a->directional->found ? "descent direction found" : "no descent direction",
               a->directional->n_zero, a->directional->n_patterns,
               cli_g(a->directional->best_inner, 6));
    if (a->local)
        printf("  local search  best gain %s over radii 1e-1..1e-4, %d starts each (seed %llu); "
               "polished from theta~: %s\n",
               cli_g(a->local->best_gain, 3), a->local->trials, (unsigned long long)a->local->seed,
               cli_g(a->gamma_polished, 10));
    if (a->layer >= 0)
        printf("  layer %d       P_%d optimum %s, value at theta~ %s\n", a->layer, a->layer,
               cli_g(a->layer_opt, 10), cli_g(a->layer_value, 10));
    printf("  verdict       %s\n", mf_verdict_name(a->verdict));
    printf("  reason        %s\n", a->verdict_reason);
}

/* ---------------------------------------------------------------- main */

/* The command line. */
typedef struct analyze_opts {
    const char *run_dir, *model_spec, *data_spec, *format, *params, *loss_name, *out_path;
    int json, quiet;
    mf_analyze_settings s;
} analyze_opts;

/* Parse the options into *o. Returns -1 to go on, else an exit code. */
static int analyze_args(int argc, char **argv, analyze_opts *o) {
    const char *val;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        long long ll;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            analyze_help();
            return CLI_EXIT_OK;
        }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { o->quiet = 1; continue; }
#define STR_OPT(name, var)                                                                   \
    if ((r = cli_opt(argc, argv, &i, name, &val)) != 0) {                                    \
        if (r < 0) return CLI_EXIT_USAGE;                                                    \
        var = val;                                                                           \
        continue;                                                                            \
    }
#define NUM_OPT(name, var)                                                                   \
    if ((r = cli_opt(argc, argv, &i, name, &val)) != 0) {                                    \
        if (r < 0 || cli_parse_double(name, val, &var)) return CLI_EXIT_USAGE;               \
        continue;                                                                            \
    }
        STR_OPT("--model", o->model_spec)
        STR_OPT("--data", o->data_spec)
        STR_OPT("--format", o->format)
        STR_OPT("--params", o->params)
        STR_OPT("--loss", o->loss_name)
        STR_OPT("--out", o->out_path)
        NUM_OPT("--kkt-tol", o->s.kkt_tol)
        NUM_OPT("--act-tol", o->s.act_tol)
        NUM_OPT("--zero-tol", o->s.zero_tol)
        NUM_OPT("--global-tol", o->s.global_tol)
#undef STR_OPT
#undef NUM_OPT
        if ((r = cli_opt(argc, argv, &i, "--layer", &val)) != 0) {
            if (r < 0 || cli_parse_ll("--layer", val, -1, MF_MAX_LAYERS - 1, &ll)) return CLI_EXIT_USAGE;
            o->s.layer = (int)ll;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "--trials", &val)) != 0) {
            if (r < 0 || cli_parse_ll("--trials", val, 0, 100000, &ll)) return CLI_EXIT_USAGE;
            o->s.local_trials = (int)ll;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "--seed", &val)) != 0) {
            if (r < 0 || cli_parse_ll("--seed", val, 0, 9007199254740992LL, &ll)) return CLI_EXIT_USAGE;
            o->s.seed = (uint64_t)ll;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0') {
            cli_error("analyze: unknown option '%s' (see marginflow analyze --help)", cli_q(a));
            return CLI_EXIT_USAGE;
        }
        if (!a[0]) {
            cli_error("analyze: the run directory name is empty");
            return CLI_EXIT_USAGE;
        }
        if (cli_check_text("analyze: RUN_DIR", a, 0)) return CLI_EXIT_USAGE;
        if (o->run_dir) {
            cli_error("analyze: more than one run directory ('%s' and '%s')", cli_q(o->run_dir), cli_q(a));
            return CLI_EXIT_USAGE;
        }
        o->run_dir = a;
    }
    return -1;
}

int mf_cli_analyze(int argc, char **argv) {
    analyze_opts o;
    memset(&o, 0, sizeof o);
    mf_analyze_settings_default(&o.s);
    int arc = analyze_args(argc, argv, &o);
    if (arc >= 0) return arc;
    const char *run_dir = o.run_dir, *model_spec = o.model_spec, *data_spec = o.data_spec,
               *format = o.format, *params = o.params, *loss_name = o.loss_name,
               *out_path = o.out_path;
    int json = o.json, quiet = o.quiet;
    mf_analyze_settings s = o.s;
    if (out_path && !out_path[0]) {
        cli_error("analyze: --out: the file name is empty");
        return CLI_EXIT_USAGE;
    }
    const char *bad = mf_analyze_settings_validate(&s);
    if (bad) {
        cli_error("analyze: %s", bad);
        return CLI_EXIT_USAGE;
    }

    int rc = CLI_EXIT_OK;
    run_config config;
    run_config_default(&config);
    char *params_path = NULL, *analysis_path = NULL;
    mf_data *data = NULL;
    mf_model *m = NULL;
    double *theta = NULL;
    mf_analysis *an = NULL;
    mf_err e;
    e.code = 0;
    e.msg[0] = '\0';
    mf_loss_kind loss = MF_LOSS_EXP;
    const char *cfg_loss = NULL;

    if (run_dir) {
        if (model_spec || data_spec || params) {
            cli_error("analyze: give either RUN_DIR or --model/--data/--params, not both");
            return CLI_EXIT_USAGE;
        }
        run_read_error re;
        if (run_config_read(run_dir, RUN_READ_DESCRIBE, &config, &re)) {
            if (re.kind == RUN_READ_FIELD)
                cli_error("analyze: %s is not a marginflow config (needs data.path or data.spec "
                          "and model.spec): %s", cli_q(config.path), re.why);
            else
                cli_error("analyze: %s", re.why);
            int code = re.kind == RUN_READ_OPEN && re.errnum == ENOMEM ? CLI_EXIT_ERROR
                                                                        : CLI_EXIT_USAGE;
            run_config_free(&config);
            return code;
        }
        data_spec = config.data_path;
        model_spec = config.model_spec;
        if (!format) format = config.format;
        cfg_loss = config.loss_name;
        params_path = cli_join(run_dir, "params.txt");
        params = params_path;
        if (!out_path) out_path = analysis_path = cli_join(run_dir, "analysis.json");
    } else if (!model_spec || !data_spec || !params) {
        cli_error("analyze: give a RUN_DIR, or all of --model, --data and --params (see --help)");
        return CLI_EXIT_USAGE;
    }
    if (!loss_name) loss_name = cfg_loss;
    if (loss_name && mf_loss_from_name(loss_name, &loss) != MF_OK) {
        cli_error("analyze: --loss: unknown loss '%s' (valid: exp, logistic, ce)", cli_q(loss_name));
        rc = CLI_EXIT_USAGE;
        goto done;
    }

    char why[MF_ERR_LEN];
    mf_data *test = NULL; /* a run's test set: only its hash is checked */
    if (run_dir) { /* the run's own data: its subset (--train-limit, --classes) too */
        config.format = format;
        rc = run_load_data(&config, &data, &test, why, sizeof why);
        int pr = rc ? MF_OK : mf_model_parse(model_spec, data->d, data->num_classes, &m, &e);
        if (pr) cli_fmt(why, sizeof why, "%s", e.msg), rc = cli_exit_for(pr, 1);
    } else {
        rc = cli_load_problem(data_spec, format, model_spec, &data, &m, why, sizeof why);
    }
    if (rc) {
        mf_data_free(test);
        cli_error("analyze: %s", why);
        goto done;
    }
    /* a run's data must be the data it was trained on (data_hash) */
    int hc = run_dir ? run_data_hash_check(&config, data, test, run_dir, why, sizeof why) : 0;
    mf_data_free(test);
    if (hc < 0) {
        cli_error("analyze: %s", why);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if (hc > 0 && !quiet) cli_error("%s", why);
    theta = malloc(sizeof(double) * (m->n_params ? m->n_params : 1));
    if (!theta) {
        cli_error("analyze: out of memory");
        rc = CLI_EXIT_ERROR;
        goto done;
    }
    int lr = mf_params_read_for(params, m, theta, &e); /* a params file of this model */
    if (!lr) lr = mf_analyze(m, data, theta, loss, &s, &an, &e);
    if (lr) {
        cli_error("analyze: %s", e.msg[0] ? e.msg : mf_strerror(lr));
        rc = cli_exit_for(lr, 1);
        goto done;
    }
    cJSON *aj = analysis_json(an, m, data, loss, &s);
    if (!aj) {
        cli_error("analyze: out of memory building the JSON");
        rc = CLI_EXIT_ERROR;
        goto done;
    }
    if (out_path && cli_json_write(out_path, aj, &e) != MF_OK) {
        cli_error("analyze: %s", e.msg);
        rc = CLI_EXIT_ERROR;
    }
    if (!quiet) {
        if (json) {
            char *t = cJSON_Print(aj);
            if (t) puts(t);
            cJSON_free(t);
        } else {
            print_summary(an, m, data, &s);
            if (out_path && rc == CLI_EXIT_OK) printf("  written       %s\n", cli_q(out_path));
        }
    }
    cJSON_Delete(aj);
done:
    mf_analysis_free(an);
    free(theta);
    mf_model_free(m);
    mf_data_free(data);
    run_config_free(&config);
    free(params_path);
    free(analysis_path);
    return rc;
}

cJSON *cli_analysis_json(const mf_analysis *a, const mf_model *m, const mf_data *d,
                         mf_loss_kind loss, const mf_analyze_settings *s) {
    return analysis_json(a, m, d, loss, s);
}

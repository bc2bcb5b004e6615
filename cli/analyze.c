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
 * round trip); an undefined quantity is left out and named, with the
 * reason, in the "absent" object (no NaN, no null for numbers). Exit status: 0 whatever the
 * verdict, 1 on I/O or memory failure, 2 on bad usage or bad input.
 */
#include "rundir.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mf_cli_analyze(int argc, char **argv);

/* The help; every default is printed from mf_analyze_settings_default. */
static void analyze_help(void) {
    mf_analyze_settings d;
    mf_analyze_settings_default(&d);
    printf(
        "usage: marginflow analyze RUN_DIR [options]\n"
        "       marginflow analyze --model M --data D --params FILE [options]\n"
        "\n"
        "Is theta a KKT point of the max-margin problem (P) (docs/theory.md s.3), and is\n"
        "it a global optimum, a local optimum, or neither? Rescales theta to q_min = 1, solves\n"
        "the multiplier NNLS over the exact Clarke sets at ReLU kinks (any depth), compares\n"
        "with an exact reference where one is known, and runs the second-order test\n"
        "(smooth points), the directional test (kinks) and local re-solves in balls; a\n"
        "not-local verdict needs a witness point, re-evaluated, written to the JSON.\n"
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
        "options:\n");
    printf("  --layer L            per-layer problem P_L, other layers frozen (default %d:\n"
           "                       the whole network); a convex QP for linear nets and the\n"
           "                       output layer of relu2/mlp, other layers are refused\n",
           d.layer);
    printf("  --kkt-tol X          relative KKT residual accepted as KKT (default %g)\n", d.kkt_tol);
    printf("  --act-tol X          active set q_n <= 1 + X (default %g)\n", d.act_tol);
    printf("  --zero-tol X         pre-activation |z| <= X ||w|| ||x|| is a kink (default %g)\n",
           d.zero_tol);
    printf("  --global-tol X       |gamma / gamma* - 1| <= X is global (default %g)\n", d.global_tol);
    printf("  --hess-h X           difference step of the Hessian-vector products (default %g)\n",
           d.hess_h);
    printf("  --trials N           starts per radius in the local re-solves, 0 = none (default %d)\n",
           d.local_trials);
    printf("  --max-patterns N     sign patterns of the directional test (default %d)\n",
           d.max_patterns);
    printf("  --seed N             seed of the local search (default %llu)\n",
           (unsigned long long)d.seed);
    printf("  --always-local       run and report the local tests also when the global\n"
           "                       reference decided the verdict (default %s)\n",
           d.always_local ? "on" : "off");
    printf(
        "  --out FILE           write the analysis JSON to FILE (default:\n"
        "                       RUN_DIR/analysis.json with a run directory, none otherwise)\n"
        "  --json               print the analysis JSON to stdout instead of the summary\n"
        "  -q, --quiet          print nothing (files are still written)\n"
        "  -h, --help           this help\n"
        "\n"
        "verdicts (README \"Verdicts\"): global (exact reference), local-certified\n"
        "(second-order sufficient condition beyond its error), not-local (a re-evaluated\n"
        "witness, in analysis.json), inconclusive (the evidence, nothing certified;\n"
        "formerly local-evidence), not-kkt, non-homogeneous.\n"
        "exit codes: 0 analysed (any verdict), 1 I/O or other error, 2 bad usage or input\n");
}

/* ------------------------------------------------------------- helpers */

/* Why the global reference is missing, for the "absent" map. */
static const char *why_no_global(const mf_analysis *a) {
    if (!a->homogeneous) return "problem (P) does not apply (not homogeneous)";
    if (isfinite(a->gamma_lower)) return "only a bracket of gamma* is known (global.gamma_lower, gamma_upper)";
    return "no exact reference for this model and data (see verdict_reason)";
}

/* Gains at the radii r = 1e-1..1e-4 as [{"r": r, "gain": g} | {"r": r,
 * "absent": why}]. 0 only when out of memory. */
static int gains_json(cJSON *o, const char *name, const double *g, const char *why) {
    static const double r[4] = {1e-1, 1e-2, 1e-3, 1e-4};
    cJSON *arr = cJSON_AddArrayToObject(o, name);
    for (int i = 0; arr && i < 4; i++) {
        cJSON *x = cJSON_CreateObject();
        if (!x || !cJSON_AddItemToArray(arr, x)) return 0;
        cli_json_num(x, "r", r[i]);
        if (isfinite(g[i])) cli_json_num(x, "gain", g[i]);
        else cli_json_str(x, "absent", why);
    }
    return arr != NULL;
}

static void witness_json(cJSON *r, const mf_analysis *a) {
    const mf_witness *w = &a->witness;
    cJSON *wj = cJSON_AddObjectToObject(r, "witness");
    if (!wj) return;
    cJSON_AddBoolToObject(wj, "found", w->found != 0);
    if (!w->found) return;
    cli_json_str(wj, "kind", w->kind);
    cli_json_num(wj, "radius", w->radius);
    cli_json_num(wj, "distance", w->distance);
    cli_json_num(wj, "q_min", w->q_min);
    cli_json_num(wj, "norm", w->norm);
    cli_json_num(wj, "gamma", w->gamma);
    cli_json_num(wj, "gamma_theta_tilde", w->gamma0);
    cli_json_num(wj, "reference", w->reference);
    cli_json_num(wj, "gain", w->gain);
    cli_json_num(wj, "gain_vs_reference", w->gain_ref);
    cli_json_num(wj, "noise_bound", w->noise);
    cli_json_num(wj, "rounding_bound", w->rounding);
    cli_json_num(wj, "norm_ratio", w->norm_ratio);
    cli_json_num_array(wj, "theta", w->theta, a->n_params);
}

static cJSON *analysis_json(const mf_analysis *a, const mf_model *m, const mf_data *d,
                            mf_loss_kind loss, const mf_analyze_settings *s) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON *ab = cJSON_CreateObject(); /* "absent": what is undefined, and why */
    cli_json_str(r, "format", "marginflow-analysis");
    cli_json_int(r, "version", 2);
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
        cJSON_AddBoolToObject(sj, "always_local", s->always_local != 0);
    }
    cli_json_str(r, "verdict", mf_verdict_name(a->verdict));
    cli_json_str(r, "verdict_reason", a->verdict_reason);
    cli_json_int(r, "n", a->n);
    cli_json_int(r, "n_params", a->n_params);
    cli_json_int(r, "degree", a->degree);
    cJSON_AddBoolToObject(r, "homogeneous", a->homogeneous != 0);
    cli_json_num_or(r, "q_min", a->q_min, ab, "", "q_min = gamma ||theta||^L is beyond the double range");
    cli_json_num(r, "norm", a->norm);
    cli_json_num_or(r, "gamma", a->gamma, ab, "", "||theta|| = 0 or the quotient is not a normal double");
    cli_json_num_or(r, "layer_margin", a->layer_margin, ab, "", "a layer is zero or the quotient is out of range");
    cli_json_num_array(r, "theta_tilde", a->theta_tilde, a->n_params);
    const char *nk = a->homogeneous ? "not computed: theta does not separate the data" : "problem (P) does not apply";
    cJSON *k = cJSON_AddObjectToObject(r, "kkt");
    if (k) {
        cli_json_num_or(k, "eps", a->eps, ab, "kkt", nk);
        cli_json_num_or(k, "delta", a->delta, ab, "kkt", nk);
        cli_json_num_or(k, "euler_lhs", a->euler_lhs, ab, "kkt", nk);
        cli_json_num_or(k, "euler_rhs", a->euler_rhs, ab, "kkt", nk);
        cli_json_int(k, "n_active", a->n_active);
        cli_json_int(k, "n_kinks", a->n_kinks);
        cJSON_AddBoolToObject(k, "exact_clarke", a->kkt_exact != 0);
        cli_json_num_array(k, "lambda", a->lambda, a->n);
        cJSON *act = cJSON_AddArrayToObject(k, "active");
        for (int i = 0; act && i < a->n; i++)
            if (a->active[i]) cJSON_AddItemToArray(act, cJSON_CreateNumber(i));
    }
    cJSON *ll = cJSON_AddObjectToObject(r, "lyu_li");
    if (ll) {
        const char *why = isnan(a->eps) ? nk : "the loss gradient vanishes or the loss is not finite";
        cli_json_num_or(ll, "beta", a->ll_beta, ab, "lyu_li", why);
        cli_json_num_or(ll, "eps", a->ll_eps, ab, "lyu_li", why);
        cli_json_num_or(ll, "delta", a->ll_delta, ab, "lyu_li", why);
    }
    cJSON *g = cJSON_AddObjectToObject(r, "global");
    if (g) {
        cJSON_AddBoolToObject(g, "known", a->has_global != 0);
        cli_json_num_or(g, "gamma_star", a->gamma_star, ab, "global", why_no_global(a));
        if (a->has_global || isfinite(a->gamma_lower)) cli_json_str(g, "source", a->global_source);
        cli_json_num_or(g, "ratio", a->ratio, ab, "global", why_no_global(a));
        if (isfinite(a->gamma_lower)) cli_json_num(g, "gamma_lower", a->gamma_lower);
        if (isfinite(a->gamma_upper)) cli_json_num(g, "gamma_upper", a->gamma_upper);
        if (a->global_theta) { /* the reference's network attaining gamma_lower */
            cli_json_str(g, "spec", a->global_spec);
            cli_json_num_array(g, "theta", a->global_theta, (int)a->global_n_params);
        }
    }
    cJSON *so = cJSON_AddObjectToObject(r, "second_order");
    if (so) {
        cJSON_AddBoolToObject(so, "done", a->second_order_done != 0);
        cli_json_num_or(so, "kink_distance", a->kink_distance, ab, "second_order",
                        "no hidden units, or every active pre-activation is at a kink");
        if (a->hessian_method[0]) cli_json_str(so, "hessian_method", a->hessian_method);
        if (a->so_dim >= 0) cli_json_int(so, "dim", a->so_dim);
        cli_json_num_or(so, "min_eig", a->min_eig, ab, "second_order", a->min_eig_absent);
        cli_json_num_or(so, "min_eig_err", a->min_eig_err, ab, "second_order", a->min_eig_absent);
        if (a->dir && isfinite(a->min_eig)) cli_json_num_array(so, "dir", a->dir, a->n_params);
        gains_json(so, "gain", a->gain, a->gain_absent[0] ? a->gain_absent : "q_min <= 0 on the curve");
    }
    if (a->directional) {
        const mf_directional_result *dr = a->directional;
        cJSON *dj = cJSON_AddObjectToObject(r, "directional");
        if (dj) {
            cJSON_AddBoolToObject(dj, "searched", dr->searched != 0);
            cli_json_int(dj, "n_zero", dr->n_zero);
            cli_json_int(dj, "n_patterns", dr->n_patterns);
            cJSON_AddBoolToObject(dj, "found", dr->found != 0);
            cli_json_num_or(dj, "best_inner", dr->best_inner, ab, "directional", "no LP solved");
            if (dr->d) cli_json_num_array(dj, "d", dr->d, a->n_params);
            if (dr->found) gains_json(dj, "gain", dr->gain, "q_min <= 0 along d");
        }
    } else {
        cJSON_AddStringToObject(ab, "directional",
                                a->n_kinks ? "not run (see verdict_reason)" : "not run: a smooth point");
    }
    if (a->local) {
        const mf_local_result *lr = a->local;
        cJSON *lj = cJSON_AddObjectToObject(r, "local_search");
        if (lj) {
            cli_json_str(lj, "method", lr->method);
            cJSON *arr = cJSON_AddArrayToObject(lj, "radii");
            for (int i = 0; arr && i < lr->n_radii; i++) {
                cJSON *x = cJSON_CreateObject();
                if (!x || !cJSON_AddItemToArray(arr, x)) break;
                cli_json_num(x, "radius", lr->radii[i]);
                if (isfinite(lr->best_gamma[i])) cli_json_num(x, "best_gamma", lr->best_gamma[i]);
                else cli_json_str(x, "absent", "no trial reached a feasible point in the ball");
            }
            cli_json_int(lj, "trials", lr->trials);
            cli_json_int(lj, "seed", (long long)lr->seed);
            cli_json_num(lj, "gamma0", lr->gamma0);
            cli_json_num_or(lj, "best_gain", lr->best_gain, ab, "local_search", "no trial was feasible");
            cli_json_int(lj, "evaluations", lr->evaluations);
            cli_json_int(lj, "failures", lr->failures);
            cli_json_num_or(lj, "gamma_polished", a->gamma_polished, ab, "local_search",
                            "the polish did not end within half its ball (or failed)");
            if (lr->best_radius >= 0) {
                cli_json_num(lj, "best_distance", lr->best_dist);
                cli_json_num_array(lj, "best_theta", lr->best_theta, a->n_params);
            }
        }
    } else {
        cJSON_AddStringToObject(ab, "local_search",
                                a->witness.found ? "not run: a witness was already found"
                                                 : "not run (local_trials 0, or see verdict_reason)");
    }
    witness_json(r, a);
    cJSON *lj = cJSON_AddObjectToObject(r, "layer");
    if (lj) {
        cli_json_int(lj, "layer", a->layer);
        const char *why = a->layer < 0 ? "no per-layer problem (settings.layer = -1)" : "not solved";
        cli_json_num_or(lj, "opt", a->layer_opt, ab, "layer", why);
        cli_json_num_or(lj, "value", a->layer_value, ab, "layer", why);
    }
    if (ab) cJSON_AddItemToObject(r, "absent", ab);
    return r;
}

/* A number for the summary, or "absent (why)" (cli_g says only "absent"). */
static const char *num_or(char *buf, size_t cap, const char *fmt, double v, const char *why) {
    if (isfinite(v)) snprintf(buf, cap, fmt, v);
    else snprintf(buf, cap, "absent (%s)", why);
    return buf;
}

/* The text summary: every value through num_or or cli_g, so an undefined
 * one reads "absent", never "nan". */
static void print_summary(const mf_analysis *a, const mf_model *m, const mf_data *d,
                          const mf_analyze_settings *s) {
    char b1[200], b2[200], b3[200];
    printf("analysis of %s on %s\n", m->spec, d->desc);
    printf("  gamma         %s  (q_min %s, ||theta|| %s, layer margin %s)\n",
           num_or(b1, sizeof b1, "%.10g", a->gamma, "undefined"),
           num_or(b2, sizeof b2, "%.6g", a->q_min, "beyond the double range"), cli_g(a->norm, 6),
           num_or(b3, sizeof b3, "%.6g", a->layer_margin, "undefined"));
    if (a->has_global)
        printf("  gamma*        %s  (%s)  ratio %s\n", cli_g(a->gamma_star, 10), a->global_source,
               cli_g(a->ratio, 8));
    else if (isfinite(a->gamma_lower))
        printf("  gamma*        in [%s, %s] (bracket, not exact)\n", cli_g(a->gamma_lower, 10),
               cli_g(a->gamma_upper, 10));
    else
        printf("  gamma*        unknown (no exact reference for this model and data)\n");
    if (a->homogeneous && isfinite(a->eps)) {
        printf("  KKT           eps %s (tol %s%s), delta %s, active %d of %d, kinks %d\n",
               cli_g(a->eps, 3), cli_g(s->kkt_tol, 3),
               a->kkt_exact ? "" : "; an upper bound: some kinks not enumerated", cli_g(a->delta, 3),
               a->n_active, a->n, a->n_kinks);
        printf("  Euler         ||theta~||^2 = %s  vs  L sum lambda = %s\n", cli_g(a->euler_lhs, 10),
               cli_g(a->euler_rhs, 10));
        if (isfinite(a->ll_eps))
            printf("  Lyu-Li        beta %s, eps %s (relative %s), delta %s\n", cli_g(a->ll_beta, 12),
                   cli_g(a->ll_eps, 3), cli_g(a->ll_eps / sqrt(a->euler_lhs), 3),
                   cli_g(a->ll_delta, 3));
        else
            printf("  Lyu-Li        absent (the loss gradient vanishes or the loss is not finite)\n");
    }
    if (a->second_order_done || a->so_dim >= 0 || a->min_eig_absent[0]) {
        if (isfinite(a->min_eig))
            printf("  second order  min eigenvalue %s +- %s on the critical subspace (dim %d; %s)\n",
                   cli_g(a->min_eig, 6), cli_g(a->min_eig_err, 2), a->so_dim, a->hessian_method);
        else
            printf("  second order  min eigenvalue absent (%s)\n", a->min_eig_absent);
        int any = 0;
        for (int i = 0; i < MF_N_GAINS; i++) any |= isfinite(a->gain[i]);
        if (any) {
            printf("  curve gains  ");
            for (int i = 0; i < MF_N_GAINS; i++)
                printf(" %s", num_or(b1, sizeof b1, "%.3g", a->gain[i], "q_min <= 0"));
            printf(" at r = 1e-1..1e-4\n");
        } else if (a->gain_absent[0]) {
            printf("  curve gains   absent (%s)\n", a->gain_absent);
        }
    }
    if (a->directional)
        printf("  directional   %s (%d zero pre-activations, %d patterns), min <theta, d> %s\n",
               a->directional->found ? "descent direction found" : "no descent direction",
               a->directional->n_zero, a->directional->n_patterns,
               num_or(b1, sizeof b1, "%.6g", a->directional->best_inner, "no LP solved"));
    if (a->local)
        printf("  local search  %s, best gain %s over radii 1e-1..1e-4, %d starts each (seed %llu); "
               "polished from theta~: %s\n",
               a->local->method, num_or(b1, sizeof b1, "%.3g", a->local->best_gain, "no trial feasible"),
               a->local->trials, (unsigned long long)a->local->seed,
               num_or(b2, sizeof b2, "%.10g", a->gamma_polished, "not within half its ball"));
    if (a->witness.found)
        printf("  witness       %s at distance %s: gamma %s vs reference %s (gain %s > noise %s)\n",
               a->witness.kind, cli_g(a->witness.distance, 3), cli_g(a->witness.gamma, 10),
               cli_g(a->witness.reference, 10), cli_g(a->witness.gain_ref, 3),
               cli_g(a->witness.noise, 2));
    if (a->layer >= 0)
        printf("  layer %d       P_%d optimum %s, value at theta~ %s\n", a->layer, a->layer,
               num_or(b1, sizeof b1, "%.10g", a->layer_opt, "not solved"), cli_g(a->layer_value, 10));
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
        if (!strcmp(a, "--always-local")) { o->s.always_local = 1; continue; }
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
        NUM_OPT("--hess-h", o->s.hess_h)
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
        if ((r = cli_opt(argc, argv, &i, "--max-patterns", &val)) != 0) {
            if (r < 0 || cli_parse_ll("--max-patterns", val, 1, 1 << 30, &ll)) return CLI_EXIT_USAGE;
            o->s.max_patterns = (int)ll;
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

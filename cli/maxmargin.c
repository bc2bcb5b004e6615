/*
 * maxmargin.c -- `marginflow maxmargin`: a multi-start search for the largest
 * normalized margin gamma = q_min / ||theta||^L a homogeneous network
 * reaches on a data set (library: mf_maxmargin_run in src/maxmargin.c: each
 * random Gaussian start made feasible, then solved for the max-margin
 * problem (P) of docs/theory.md section 3 by SLSQP for small nets or an
 * augmented Lagrangian with L-BFGS for large ones). It is a SEARCH, not a
 * certificate, and says so in its output: the best value found, the
 * distinct local values with how many starts reached each, the seeds used
 * and the starts that reached no feasible point. Used where no closed form
 * for gamma* exists.
 *
 *   marginflow maxmargin --model M --data D [--format F] [--starts N]
 *                        [--seed S] [--rel-tol T] [--method M] [--json] ...
 *
 * A progress line per start goes to stderr (not with -q); SIGINT/SIGTERM
 * stop the search after the current evaluation and the best so far is
 * printed (exit 130). Exit status: 0 when at least one start reached a
 * feasible point, 1 when none did (or on memory failure), 2 on bad usage or
 * bad input (a search the memory limit refuses included), 130 interrupted.
 */
#include "cli.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mf_cli_maxmargin(int argc, char **argv);

static const char *method_name(mf_maxmargin_method m) {
    return m == MF_MM_SLSQP ? "slsqp" : m == MF_MM_AUGLAG ? "auglag" : "auto";
}

/* The certified reference for a bias-free two-layer (leaky) ReLU net with
 * trained outer weights on binary data: gamma* over every width by
 * mf_global_relu2 (the convex program over activation patterns,
 * docs/theory.md s.5), against which the search's best value is reported.
 * NULL with why set when the model has none or the program is refused
 * (too many cells: `marginflow global --max-patterns`). */
static mf_global_result *relu2_reference(const mf_model *m, const mf_data *data, char *why, size_t cap) {
    mf_units u;
    why[0] = '\0';
    if (!mf_model_units(m, &u) || u.in_bias || u.b_layer >= 0 || u.a_layer < 0 || !(m->alpha < 1) ||
        data->num_classes != 0)
        return NULL; /* no reference for this model: nothing to say */
    mf_global_result *g = NULL;
    mf_err e = {0, ""};
    if (mf_global_relu2(m, data, NULL, &g, &e)) {
        cli_fmt(why, cap, "%s", e.msg);
        return NULL;
    }
    return g;
}

/* The help; every default is printed from mf_maxmargin_settings_default. */
static void maxmargin_help(void) {
    mf_maxmargin_settings d;
    mf_maxmargin_settings_default(&d);
    printf("usage: marginflow maxmargin --model M --data D [options]\n"
           "\n"
           "Multi-start search for the best normalized margin q_min / ||theta||^L of a\n"
           "homogeneous model on (P) of docs/theory.md s.3 (min 1/2 ||theta||^2, q_n >= 1).\n"
           "Each start (N(0, S^2) entries, seeds S, S+1, ...) is made feasible first: rescaled\n"
           "when it separates the data, else trained briefly (exp loss) until Loss < 1, which\n"
           "separates it; then solved by SLSQP (up to %d parameters) or by an augmented\n"
           "Lagrangian with L-BFGS (any size: one batched gradient per evaluation). Prints the\n"
           "best value, the distinct local values (within --rel-tol) with how many starts\n"
           "reached each, and the failures. A SEARCH, not a certificate: a larger margin may\n"
           "exist. The memory a search needs is estimated first; beyond --max-memory it is\n"
           "refused with the estimate.\n"
           "\n"
           "  --model SPEC      model spec (required; homogeneous models only)\n"
           "  --data SPEC       data spec (required): builtin:B|C|D|R1|sym4, gauss:..., a file\n"
           "  --format F        libsvm|csv for data files (default: by extension)\n",
           MF_SLSQP_MAX_PARAMS);
    printf("  --starts N        number of random starts (default %d)\n", d.starts);
    printf("  --seed S          seed of the first start (default %llu)\n", (unsigned long long)d.seed);
    printf("  --rel-tol T       values within T relative are one local value (default %g)\n",
           d.rel_tol);
    printf("  --init-scale S    standard deviation of the starts (default %g)\n", d.init_scale);
    printf("  --flow-steps N    training steps allowed to make a start feasible (default %lld)\n",
           d.flow_steps);
    printf("  --method M        auto|slsqp|auglag (default %s)\n", method_name(d.method));
    printf("  --max-memory MB   memory limit of the search in MiB (default %g)\n",
           d.max_bytes / 1048576.0);
    printf("  --json            print the result as JSON instead of text\n"
           "  -q, --quiet       no progress lines\n"
           "  -h, --help        this help\n"
           "\n"
           "SIGINT/SIGTERM stop the search; the best point so far is printed.\n"
           "exit codes: 0 ok, 1 no start reached a feasible point or other error,\n"
           "            2 bad usage or bad input, 130 interrupted\n");
}

/* The result as a JSON object (NULL on no memory). */
static cJSON *maxmargin_json(const mf_model *m, const mf_data *data, const mf_maxmargin_result *r,
                             double rel_tol, const mf_global_result *g, const char *gwhy) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    int ok = cli_json_str(root, "kind", "search (not a certificate)") &&
             cli_json_str(root, "model", m->spec) && cli_json_str(root, "data", data->desc) &&
             cli_json_str(root, "method", r->method) && cli_json_int(root, "starts", r->starts) &&
             cli_json_int(root, "starts_done", r->starts_done) &&
             cJSON_AddBoolToObject(root, "interrupted", r->interrupted != 0) &&
             cli_json_int(root, "seed_first", (long long)r->seed) &&
             cli_json_int(root, "seed_last", (long long)(r->seed + (uint64_t)r->starts - 1)) &&
             cli_json_num(root, "rel_tol", rel_tol) &&
             cli_json_int(root, "failures", r->failures) &&
             cli_json_int(root, "feasibility_runs", r->feasibility_runs) &&
             cli_json_num(root, "memory_estimate_bytes", r->bytes);
    if (ok && r->n_values > 0) ok = cli_json_num(root, "best_normalized_margin", r->best_gamma) != NULL;
    else if (ok) ok = cli_json_str(root, "best_normalized_margin_absent", "no start reached a feasible point") != NULL;
    cJSON *vals = ok ? cJSON_AddArrayToObject(root, "values") : NULL;
    for (int i = 0; vals && i < r->n_values; i++) {
        cJSON *v = cJSON_CreateObject();
        if (!v || !cJSON_AddItemToArray(vals, v) || !cli_json_num(v, "normalized_margin",
                                                                   r->values[i]) ||
            !cli_json_int(v, "count", r->counts[i]))
            vals = NULL;
    }
    /* numbers as everywhere (cli_json_num: a non-finite entry is null) */
    cJSON *th = !vals ? NULL
                : r->n_values > 0 ? cli_json_num_array(root, "best_theta", r->best_theta,
                                                       (int)m->n_params)
                                  : cJSON_AddArrayToObject(root, "best_theta");
    if (ok && vals && th && g) { /* the certified reference (relu2_reference) */
        cJSON *ref = cJSON_AddObjectToObject(root, "reference");
        ok = ref && cli_json_str(ref, "kind", g->upper_certified ? "certified global optimum"
                                                                 : "certified lower bound") &&
             cli_json_str(ref, "method", "convex program over activation patterns (mf_global_relu2)") &&
             cli_json_num(ref, "gamma_star", g->gamma_lower) &&
             cli_json_num(ref, "gamma_lower", g->gamma_lower) &&
             cli_json_num(ref, "gamma_upper", g->gamma_upper) &&
             cli_json_int(ref, "upper_certified", g->upper_certified) &&
             cli_json_str(ref, "network_model", g->spec) &&
             cli_json_num_array(ref, "theta", g->theta, (int)g->n_params) &&
             (r->n_values == 0 || cli_json_num(ref, "best_over_gamma_star", r->best_gamma / g->gamma_lower));
    } else if (ok && vals && th && gwhy && gwhy[0]) {
        ok = cli_json_str(root, "reference_absent", gwhy) != NULL;
    }
    if (!ok || !vals || !th) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* The text report (values through cli_g: "absent", never "nan"). */
static void maxmargin_text(const mf_model *m, const mf_data *data, const mf_maxmargin_result *r,
                           double rel_tol, const mf_global_result *g, const char *gwhy) {
    printf("SEARCH (not a certificate): best normalized margin %s over %d%s starts "
           "(seeds %llu..%llu), %s\n",
           r->n_values > 0 ? cli_g(r->best_gamma, 17) : "none", r->starts_done,
           r->interrupted ? " (interrupted)" : "", (unsigned long long)r->seed,
           (unsigned long long)(r->seed + (uint64_t)(r->starts_done ? r->starts_done : 1) - 1),
           r->method);
    printf("model %s, data %s\n", m->spec, data->desc);
    printf("distinct local values (rel-tol %g), with the number of starts reaching each:\n",
           rel_tol);
    for (int i = 0; i < r->n_values; i++) printf("  %-24s x %d\n", cli_g(r->values[i], 17), r->counts[i]);
    printf("failures: %d of %d starts reached no feasible point (%d needed a training run to "
           "separate the data)\n",
           r->failures, r->starts_done, r->feasibility_runs);
    if (g) {
        printf("REFERENCE (%s): gamma* %s %s over every width (bracket [%s, %s], relative gap %.2e; "
               "convex program over %d activation patterns, mf_global_relu2; network %s, "
               "`marginflow global --out` writes it)\n",
               g->upper_certified ? "certified" : "lower bound certified, upper evidence only",
               g->upper_certified ? "=" : ">=", cli_g(g->gamma_lower, 17), cli_g(g->gamma_lower, 12),
               cli_g(g->gamma_upper, 12), fmax(g->gap, 0.0), g->n_patterns, g->spec);
        if (r->n_values > 0) printf("best found / gamma* = %s\n", cli_f(r->best_gamma / g->gamma_lower, 9));
    } else if (gwhy && gwhy[0]) {
        printf("reference: none (%s)\n", gwhy);
    }
    if (r->n_values > 0 && m->n_params <= 64) {
        printf("best theta (q_min = 1; order of `marginflow layout`):");
        for (size_t i = 0; i < m->n_params; i++) printf("%s%s", i ? "," : " ", cli_g(r->best_theta[i], 17));
        printf("\n");
    }
}

static volatile sig_atomic_t g_mm_stop;

static void mm_on_signal(int sig) {
    (void)sig;
    g_mm_stop = 1;
}

static int mm_should_stop(void *user) {
    (void)user;
    return g_mm_stop != 0;
}

/* One progress line per start on stderr. */
static void mm_progress(void *user, const mf_maxmargin_progress *p) {
    (void)user;
    char g[40], b[40];
    mf_format_double(g, sizeof g, p->gamma);
    mf_format_double(b, sizeof b, p->best);
    fprintf(stderr, "maxmargin: start %d/%d: %s%s, best %s, %d failed, %.1f s\n", p->start + 1,
            p->starts, isnan(p->gamma) ? "failed: " : "gamma ", isnan(p->gamma) ? p->why : g,
            isnan(p->best) ? "none" : b, p->failures, p->seconds);
}

int mf_cli_maxmargin(int argc, char **argv) {
    const char *model_spec = NULL, *data_spec = NULL, *format = NULL;
    mf_maxmargin_settings s;
    mf_maxmargin_settings_default(&s);
    long long ll;
    double mb = s.max_bytes / 1048576.0;
    int json = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            maxmargin_help();
            return CLI_EXIT_OK;
        }
        if (!strcmp(argv[i], "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = 1;
            continue;
        }
        if ((r = cli_opt(argc, argv, &i, "--model", &v)) == 1) {
            model_spec = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--data", &v)) == 1) {
            data_spec = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--format", &v)) == 1) {
            format = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--starts", &v)) == 1) {
            if (cli_parse_ll("--starts", v, 1, 1000000, &ll)) return CLI_EXIT_USAGE;
            s.starts = (int)ll;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--seed", &v)) == 1) {
            if (cli_parse_ll("--seed", v, 0, (long long)9e18, &ll)) return CLI_EXIT_USAGE;
            s.seed = (uint64_t)ll;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--flow-steps", &v)) == 1) {
            if (cli_parse_ll("--flow-steps", v, 1, (long long)1 << 62, &ll)) return CLI_EXIT_USAGE;
            s.flow_steps = ll;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--rel-tol", &v)) == 1) {
            if (cli_parse_double("--rel-tol", v, &s.rel_tol)) return CLI_EXIT_USAGE;
            if (s.rel_tol < 0.0) {
                cli_error("--rel-tol: must be >= 0, got %s", v);
                return CLI_EXIT_USAGE;
            }
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--init-scale", &v)) == 1) {
            if (cli_parse_double("--init-scale", v, &s.init_scale)) return CLI_EXIT_USAGE;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--max-memory", &v)) == 1) {
            if (cli_parse_double("--max-memory", v, &mb)) return CLI_EXIT_USAGE;
            s.max_bytes = mb * 1048576.0;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--method", &v)) == 1) {
            if (!strcmp(v, "auto")) s.method = MF_MM_AUTO;
            else if (!strcmp(v, "slsqp")) s.method = MF_MM_SLSQP;
            else if (!strcmp(v, "auglag")) s.method = MF_MM_AUGLAG;
            else {
                cli_error("--method: expected auto, slsqp or auglag, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (r < 0) {
            return CLI_EXIT_USAGE;
        } else {
            cli_error("maxmargin: unknown option '%s'; see marginflow maxmargin --help", cli_q(argv[i]));
            return CLI_EXIT_USAGE;
        }
    }
    if (!model_spec || !data_spec) {
        cli_error("maxmargin: --model and --data are required; see marginflow maxmargin --help");
        return CLI_EXIT_USAGE;
    }
    const char *bad = mf_maxmargin_settings_validate(&s);
    if (bad) {
        cli_error("maxmargin: %s", bad);
        return CLI_EXIT_USAGE;
    }
    mf_err e = {0, ""};
    mf_data *data = NULL;
    mf_model *m = NULL;
    mf_maxmargin_result *res = NULL;
    char why[MF_ERR_LEN];
    int code = cli_load_problem(data_spec, format, model_spec, &data, &m, why, sizeof why);
    if (code) {
        cli_error("%s", why);
        return code;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = mm_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_mm_stop = 0;
    s.should_stop = mm_should_stop;
    if (!quiet) s.on_start = mm_progress;
    int rc = mf_maxmargin_run(m, data, &s, &res, &e);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc) {
        cli_error("%s", e.msg);
        mf_model_free(m);
        mf_data_free(data);
        return cli_exit_for(rc, 1);
    }
    code = res->interrupted ? CLI_EXIT_INTERRUPTED : res->n_values > 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    char gwhy[MF_ERR_LEN];
    mf_global_result *g = relu2_reference(m, data, gwhy, sizeof gwhy);
    if (json) {
        cJSON *root = maxmargin_json(m, data, res, s.rel_tol, g, gwhy);
        char *text = root ? cJSON_Print(root) : NULL;
        if (text) {
            printf("%s\n", text);
            cJSON_free(text);
        } else {
            cli_error("out of memory writing the JSON result");
            code = CLI_EXIT_ERROR;
        }
        cJSON_Delete(root);
    } else {
        maxmargin_text(m, data, res, s.rel_tol, g, gwhy);
    }
    mf_global_result_free(g);
    if (res->interrupted) cli_error("maxmargin: interrupted after %d of %d starts; the best so far is above",
                                    res->starts_done, res->starts);
    else if (res->n_values == 0) cli_error("maxmargin: no start reached a feasible point");
    mf_maxmargin_result_free(res);
    mf_model_free(m);
    mf_data_free(data);
    return code;
}

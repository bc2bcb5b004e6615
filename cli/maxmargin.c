/*
 * maxmargin.c -- `marginflow maxmargin`: a multi-start search for the largest
 * normalized margin gamma = q_min / ||theta||^L a small homogeneous network
 * reaches on a data set (library: mf_maxmargin in src/local.c; NLopt SLSQP on
 * the max-margin problem (P) of docs/theory.md section 3 from random Gaussian
 * starts). It is a SEARCH, not a certificate, and says so in its output:
 * the best value found, the distinct local values with how many starts
 * reached each, the seeds used and the starts that reached no feasible
 * point. Used where no closed form for gamma* exists.
 *
 *   marginflow maxmargin --model M --data D [--format F] [--starts N]
 *                        [--seed S] [--rel-tol T] [--json]
 *
 * Exit status: 0 when at least one start reached a feasible point, 1 when
 * none did (or on memory failure), 2 on bad usage or bad input.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mf_cli_maxmargin(int argc, char **argv);

static void maxmargin_help(void) {
    printf("usage: marginflow maxmargin --model M --data D [options]\n"
           "\n"
           "Multi-start search for the best normalized margin q_min / ||theta||^L of a\n"
           "homogeneous model: NLopt SLSQP on (P) min 1/2 ||theta||^2 s.t. q_n >= 1\n"
           "(docs/theory.md s.3) from N random Gaussian starts (N(0, 1) entries, seeds\n"
           "S, S+1, ..., S+N-1). Prints the best value found, the distinct local values\n"
           "(within --rel-tol) with how many starts reached each, and the failures\n"
           "(starts that reached no feasible point, e.g. ReLU units dead on a sample).\n"
           "A SEARCH, not a certificate: a larger margin may exist.\n"
           "\n"
           "  --model SPEC     model spec (required; homogeneous models only)\n"
           "  --data SPEC      data spec (required): builtin:B|C|D|R1|sym4, gauss:..., a file\n"
           "  --format F       libsvm|csv for data files (default: by extension)\n"
           "  --starts N       number of random starts (default 20)\n"
           "  --seed S         seed of the first start (default 1)\n"
           "  --rel-tol T      values within T relative are one local value (default 1e-6)\n"
           "  --json           print the result as JSON instead of text\n"
           "  -h, --help       this help\n"
           "\n"
           "exit codes: 0 ok, 1 no start reached a feasible point or other error,\n"
           "            2 bad usage or bad input\n");
}

/* The result as a JSON object (NULL on no memory). */
static cJSON *maxmargin_json(const mf_model *m, const mf_data *data,
                             const mf_maxmargin_result *r, double rel_tol) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    int ok = cli_json_str(root, "kind", "search (not a certificate)") &&
             cli_json_str(root, "model", m->spec) && cli_json_str(root, "data", data->desc) &&
             cli_json_int(root, "starts", r->starts) &&
             cli_json_int(root, "seed_first", (long long)r->seed) &&
             cli_json_int(root, "seed_last", (long long)(r->seed + (uint64_t)r->starts - 1)) &&
             cli_json_num(root, "rel_tol", rel_tol) &&
             cli_json_num(root, "best_normalized_margin", r->best_gamma) &&
             cli_json_int(root, "failures", r->failures);
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
    if (!ok || !vals || !th) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* The text report (values through cli_g: "absent", never "nan"). */
static void maxmargin_text(const mf_model *m, const mf_data *data, const mf_maxmargin_result *r,
                           double rel_tol) {
    printf("SEARCH (not a certificate): best normalized margin %s over %d starts "
           "(seeds %llu..%llu)\n",
           r->n_values > 0 ? cli_g(r->best_gamma, 17) : "none", r->starts, (unsigned long long)r->seed,
           (unsigned long long)(r->seed + (uint64_t)r->starts - 1));
    printf("model %s, data %s\n", m->spec, data->desc);
    printf("distinct local values (rel-tol %g), with the number of starts reaching each:\n",
           rel_tol);
    for (int i = 0; i < r->n_values; i++) printf("  %-24s x %d\n", cli_g(r->values[i], 17), r->counts[i]);
    printf("failures: %d of %d starts reached no feasible point\n", r->failures, r->starts);
    if (r->n_values > 0 && m->n_params <= 64) {
        printf("best theta (q_min = 1; order of `marginflow layout`):");
        for (size_t i = 0; i < m->n_params; i++) printf("%s%s", i ? "," : " ", cli_g(r->best_theta[i], 17));
        printf("\n");
    }
}

int mf_cli_maxmargin(int argc, char **argv) {
    const char *model_spec = NULL, *data_spec = NULL, *format = NULL;
    long long starts = 20, seed = 1;
    double rel_tol = 1e-6;
    int json = 0;
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
        if ((r = cli_opt(argc, argv, &i, "--model", &v)) == 1) {
            model_spec = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--data", &v)) == 1) {
            data_spec = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--format", &v)) == 1) {
            format = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--starts", &v)) == 1) {
            if (cli_parse_ll("--starts", v, 1, 1000000, &starts)) return CLI_EXIT_USAGE;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--seed", &v)) == 1) {
            if (cli_parse_ll("--seed", v, 0, (long long)9e18, &seed)) return CLI_EXIT_USAGE;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--rel-tol", &v)) == 1) {
            if (cli_parse_double("--rel-tol", v, &rel_tol)) return CLI_EXIT_USAGE;
            if (rel_tol < 0.0) {
                cli_error("--rel-tol: must be >= 0, got %s", v);
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
    int rc = mf_maxmargin(m, data, (int)starts, (uint64_t)seed, rel_tol, &res, &e);
    if (rc) {
        cli_error("%s", e.msg);
        mf_model_free(m);
        mf_data_free(data);
        return cli_exit_for(rc, 1);
    }
    code = res->n_values > 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    if (json) {
        cJSON *root = maxmargin_json(m, data, res, rel_tol);
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
        maxmargin_text(m, data, res, rel_tol);
    }
    if (res->n_values == 0) cli_error("maxmargin: no start reached a feasible point");
    mf_maxmargin_result_free(res);
    mf_model_free(m);
    mf_data_free(data);
    return code;
}

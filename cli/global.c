/*
 * global.c -- `marginflow global`: the certified global max-margin value
 * gamma* of a bias-free two-layer (leaky) ReLU net over every width
 * (library: mf_global_relu2 in src/global_relu2.c; derivation in
 * docs/theory.md). Prints the bracket gamma_lower <= gamma* <= gamma_upper,
 * its relative gap and what each side rests on, the width of the primal
 * network, the activation patterns (enumerated or sampled), the solver and
 * the timings; --out writes the primal network as a params file for
 * `marginflow train --init-file`.
 *
 *   marginflow global --data D [--model relu2:alpha=A] [--format F]
 *                     [--out FILE] [--max-patterns N] [--sample K] [--seed S]
 *                     [--tol T] [--max-iter N] [--max-seconds S] [--json] [-q]
 *
 * Exit status: 0 solved (read the gap), 1 I/O or other error, 2 bad usage
 * or bad input (including enumeration beyond --max-patterns), 3 the data
 * are not separable by any such network.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CLI_EXIT_NONSEPARABLE 3

int mf_cli_global(int argc, char **argv);

static void global_help(void) {
    mf_global_settings s;
    mf_global_settings_default(&s);
    printf("usage: marginflow global --data D [options]\n"
           "\n"
           "The certified global optimum gamma* of the normalized margin q_min / ||theta||^2 of\n"
           "a bias-free two-layer (leaky) ReLU net sum_k a_k sigma(<w_k, x>), over every width:\n"
           "the convex program of Pilanci & Ergen (ICML 2020) over the activation patterns of\n"
           "the data, solved by IPOPT in its dual form, with the primal network re-weighted by\n"
           "GLPK. Both bounds are evaluated directly: the lower one is the margin of the\n"
           "returned network (forward pass), the upper one is weak duality for the returned\n"
           "dual variables, proved when every direction was covered (d <= 2 always; d >= 3 when\n"
           "every cell of the arrangement was enumerated) and evidence only otherwise.\n"
           "See docs/theory.md, \"Global optimum of two-layer ReLU nets\".\n"
           "\n"
           "  --data SPEC       data spec (required): builtin:D|sym4|..., gauss:..., a file\n"
           "  --model SPEC      relu2[:alpha=A] without bias or fix-outer, 0 <= A < 1; the width\n"
           "                    is ignored (default relu2:alpha=0)\n"
           "  --format F        libsvm|csv for data files (default: by extension)\n"
           "  --out FILE        write the primal network (q_min = 1) as a params file for\n"
           "                    marginflow train --model <its spec> --init-file FILE (default: none)\n"
           "  --max-patterns N  refuse to enumerate more than N cells (default %d)\n"
           "  --sample K        use the patterns of K random directions instead of enumerating\n"
           "                    (default 0 = enumerate); in d >= 3 only the lower bound is then\n"
           "                    certified\n"
           "  --seed S          sampling seed (default %llu)\n"
           "  --tol T           IPOPT tolerance (default %g)\n"
           "  --max-iter N      IPOPT iterations (default %d)\n"
           "  --max-seconds S   IPOPT CPU-time limit (default %g)\n"
           "  --json            print the result as JSON instead of text\n"
           "  -q, --quiet       no progress line on stderr\n"
           "  -h, --help        this help\n"
           "\n"
           "exit codes: 0 solved (read the gap), 1 I/O or other error, 2 bad usage or bad input\n"
           "            (also more cells than --max-patterns), 3 data not separable by any\n"
           "            bias-free two-layer net\n",
           s.max_patterns, (unsigned long long)s.seed, s.tol, s.max_iter, s.max_seconds);
}

/* IPOPT's ApplicationReturnStatus in words (the codes of IpReturnCodes.h). */
static const char *ipopt_status_name(int st) {
    switch (st) {
    case 0: return "solved";
    case 1: return "solved to acceptable level";
    case 3: return "search direction too small";
    case -1: return "maximum iterations reached";
    case -2: return "restoration failed";
    case -3: return "error in step computation";
    case -4: return "maximum CPU time reached";
    default: return "other";
    }
}

static const char *upper_basis(const mf_global_result *r) {
    if (r->d <= 2) return "certified: weak duality, rho by an exact sweep of every direction";
    if (r->upper_certified)
        return "certified: weak duality, rho bounded on every cell of the arrangement";
    return "EVIDENCE ONLY: rho bounded on the sampled cells, not on every direction";
}

/* The result as a JSON object (NULL on no memory). */
static cJSON *global_json(const mf_model *m, const mf_data *data, const mf_global_result *r,
                          const char *out_path) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    int ok = cli_json_str(root, "kind", r->upper_certified ? "certified global optimum"
                                                           : "certified lower bound; upper "
                                                             "bound evidence only") &&
             cli_json_str(root, "model", m->spec) && cli_json_str(root, "data", data->desc) &&
             cli_json_int(root, "n", r->n) && cli_json_int(root, "d", r->d) &&
             cli_json_num(root, "alpha", r->alpha) && cli_json_num(root, "gamma", r->gamma) &&
             cli_json_num(root, "gamma_lower", r->gamma_lower) &&
             cli_json_num(root, "gamma_upper", r->gamma_upper) &&
             cli_json_int(root, "upper_certified", r->upper_certified) &&
             cli_json_num(root, "gap", r->gap) && cli_json_str(root, "upper_basis", upper_basis(r)) &&
             cli_json_int(root, "width", r->width) && cli_json_str(root, "network_model", r->spec) &&
             cli_json_num(root, "q_min", r->q_min) && cli_json_num(root, "path_norm", r->path_norm) &&
             cli_json_str(root, "out", out_path);
    cJSON *pat = ok ? cJSON_AddObjectToObject(root, "patterns") : NULL;
    ok = pat && cli_json_int(pat, "count", r->n_patterns) &&
         cli_json_int(pat, "lines", r->n_lines) &&
         cli_json_str(pat, "how", r->enumerated ? "enumerated" : "sampled") &&
         cli_json_int(pat, "samples", r->n_samples);
    cJSON *sol = ok ? cJSON_AddObjectToObject(root, "solver") : NULL;
    ok = sol && cli_json_str(sol, "name", r->solver) && cli_json_int(sol, "status", r->solver_status) &&
         cli_json_str(sol, "status_name", ipopt_status_name(r->solver_status)) &&
         cli_json_int(sol, "iterations", r->iterations) &&
         cli_json_num(sol, "reported_objective", r->solver_objective) &&
         cli_json_num(sol, "lp_objective", r->lp_objective) && cli_json_num(sol, "rho", r->rho) &&
         cli_json_num(sol, "rho_cells", r->rho_cells) &&
         cli_json_int(sol, "n_support", r->n_support);
    cJSON *sec = ok ? cJSON_AddObjectToObject(root, "seconds") : NULL;
    ok = sec && cli_json_num(sec, "patterns", r->seconds_patterns) &&
         cli_json_num(sec, "solve", r->seconds_solve) &&
         cli_json_num(sec, "certify", r->seconds_certify);
    const double *arrs[2] = {r->theta, r->lambda};
    const char *names[2] = {"theta", "lambda"};
    size_t lens[2] = {r->n_params, (size_t)r->n};
    for (int a = 0; ok && a < 2; a++) {
        cJSON *arr = cJSON_AddArrayToObject(root, names[a]);
        for (size_t i = 0; arr && i < lens[a]; i++) {
            char b[40];
            mf_format_double(b, sizeof b, arrs[a][i]);
            cJSON *x = cJSON_CreateRaw(b);
            if (!x || !cJSON_AddItemToArray(arr, x)) arr = NULL;
        }
        ok = arr != NULL;
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static void global_text(const mf_data *data, const mf_global_result *r,
                        const char *out_path) {
    char lo[40], up[40];
    mf_format_double(lo, sizeof lo, r->gamma_lower);
    mf_format_double(up, sizeof up, r->gamma_upper);
    if (r->upper_certified)
        printf("CERTIFIED: gamma* = %s (relative gap %.2e to the upper bound)\n", lo, r->gap);
    else
        printf("LOWER BOUND CERTIFIED: gamma* >= %s; upper bound %s is evidence only "
               "(relative gap %.2e)\n",
               lo, up, r->gap);
    printf("  lower bound %s  (certified: the margin of the network below, by the forward pass)\n",
           lo);
    printf("  upper bound %s  (%s)\n", up, upper_basis(r));
    char a[40];
    mf_format_double(a, sizeof a, r->alpha);
    printf("two-layer net, alpha = %s, no bias: the optimum of every width >= %d; data %s "
           "(n = %d, d = %d)\n",
           a, r->width, data->desc, r->n, r->d);
    if (r->enumerated)
        printf("patterns: %d cells of the arrangement of %d distinct lines (enumerated)\n",
               r->n_patterns, r->n_lines);
    else
        printf("patterns: %d distinct patterns of %d random directions (sampled)\n",
               r->n_patterns, r->n_samples);
    printf("network: %s, q_min = %.17g, sum_k |a_k| ||w_k|| = %.17g\n", r->spec, r->q_min,
           r->path_norm);
    printf("solver: %s; IPOPT status %d (%s), %d iterations\n", r->solver, r->solver_status,
           ipopt_status_name(r->solver_status), r->iterations);
    printf("time: patterns %.3f s, solve %.3f s, certify %.3f s\n", r->seconds_patterns,
           r->seconds_solve, r->seconds_certify);
    if (out_path)
        printf("wrote %s: marginflow train --model %s --init-file %s ...\n", out_path, r->spec,
               out_path);
}

int mf_cli_global(int argc, char **argv) {
    const char *model_spec = "relu2:alpha=0", *data_spec = NULL, *format = NULL, *out_path = NULL;
    mf_global_settings s;
    mf_global_settings_default(&s);
    int json = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        long long ll;
        int r;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            global_help();
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
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--out", &v)) == 1) {
            out_path = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--max-patterns", &v)) == 1) {
            if (cli_parse_ll("--max-patterns", v, 2, 1000000, &ll)) return CLI_EXIT_USAGE;
            s.max_patterns = (int)ll;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--sample", &v)) == 1) {
            if (cli_parse_ll("--sample", v, 0, 100000000, &ll)) return CLI_EXIT_USAGE;
            s.sample = (int)ll;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--seed", &v)) == 1) {
            if (cli_parse_ll("--seed", v, 0, (long long)9e18, &ll)) return CLI_EXIT_USAGE;
            s.seed = (uint64_t)ll;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--tol", &v)) == 1) {
            if (cli_parse_double("--tol", v, &s.tol)) return CLI_EXIT_USAGE;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--max-iter", &v)) == 1) {
            if (cli_parse_ll("--max-iter", v, 1, 1000000, &ll)) return CLI_EXIT_USAGE;
            s.max_iter = (int)ll;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--max-seconds", &v)) == 1) {
            if (cli_parse_double("--max-seconds", v, &s.max_seconds)) return CLI_EXIT_USAGE;
        } else if (r < 0) {
            return CLI_EXIT_USAGE;
        } else {
            cli_error("global: unknown option '%s'; see marginflow global --help", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (!data_spec) {
        cli_error("global: --data is required; see marginflow global --help");
        return CLI_EXIT_USAGE;
    }
    const char *why = mf_global_settings_validate(&s);
    if (why) {
        cli_error("global: %s", why);
        return CLI_EXIT_USAGE;
    }
    mf_err e = {0, ""};
    mf_data *data = NULL;
    mf_model *m = NULL, *net = NULL;
    mf_global_result *res = NULL;
    int rc = mf_data_from_spec(data_spec, format, &data, &e);
    if (!rc) rc = mf_model_parse(model_spec, data->d, data->num_classes, &m, &e);
    if (!rc && !quiet && !json)
        fprintf(stderr, "global: %s on %s (n = %d, d = %d): %s patterns, then IPOPT ...\n",
                m->spec, data->desc, data->n, data->d, s.sample ? "sampling" : "enumerating");
    if (!rc) rc = mf_global_relu2(m, data, &s, &res, &e);
    if (!rc && out_path) {
        rc = mf_model_parse(res->spec, data->d, 0, &net, &e);
        if (!rc) rc = mf_params_write(out_path, net, res->theta, &e);
        if (rc) {
            cli_error("%s", e.msg);
            rc = -1;
        }
    }
    int code = CLI_EXIT_OK;
    if (rc > 0) {
        cli_error("%s", e.msg);
        code = rc == MF_ERR_NONSEPARABLE ? CLI_EXIT_NONSEPARABLE : cli_exit_for(rc, 1);
    } else if (rc < 0) {
        code = CLI_EXIT_ERROR;
    } else if (json) {
        cJSON *root = global_json(m, data, res, out_path);
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
        global_text(data, res, out_path);
    }
    mf_global_result_free(res);
    mf_model_free(net);
    mf_model_free(m);
    mf_data_free(data);
    return code;
}

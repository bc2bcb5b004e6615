/*
 * svm.c -- `marginflow svm`: the exact max-margin reference of a data set
 * for linear predictors through the origin (mf_svm_solve): the l2 hard-margin
 * SVM (gamma_svm, the global optimum for linear and fully-connected linear
 * nets) or the l1-margin LP (the global optimum for depth-2 diagonal nets),
 * with the support vectors, the residuals that certify the answer, or, for
 * data that is not separable through the origin, the Gordan certificate.
 * Uses only the public API (marginflow.h) and cJSON.
 */
#include "cli.h"
#include "marginflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_svm(int argc, char **argv);

/* The default norm, printed by the help from here. */
#define SVM_DEFAULT_NORM "l2"

/* Exit code for non-separable data (documented in --help). */
#define CLI_EXIT_NONSEPARABLE 3

static void usage(FILE *f) {
    fprintf(f,
            "usage: marginflow svm --data D [--format libsvm|csv] [--norm l2|l1] [--json]\n"
            "\n"
            "Exact max-margin classifier through the origin (no bias), z_n = y_n x_n:\n"
            "  l2: minimize ||w||^2/2  s.t. <w, z_n> >= 1   (hard-margin SVM; gamma_svm = 1/||w||_2,\n"
            "      the global optimum for linear and fully-connected linear nets)\n"
            "  l1: minimize ||beta||_1  s.t. <beta, z_n> >= 1 (LP, GLPK; gamma_l1 = 1/||beta||_1;\n"
            "      a depth-2 diagonal net's global optimum is gamma_l1 / 2)\n"
            "Solved exactly (NNLS active set + LAPACK polish for l2; simplex for l1) and certified\n"
            "by its KKT residuals and a weak-duality bracket of the optimal margin.\n"
            "\n"
            "Multi-class data: the Crammer-Singer form min ||W||^2/2 s.t. <w_y - w_j, x_n> >= 1\n"
            "(the global optimum of a linear multi-class model), solved as the binary problem\n"
            "on the lifted samples (e_y - e_j) (x) x_n, with the same certificates.\n"
            "\n"
            "options:\n"
            "  --data D        data file or spec (builtin:B, gauss:n=..,d=.., ...); required\n"
            "  --format F      libsvm or csv (default: by extension)\n"
            "  --norm N        l2 or l1 (default " SVM_DEFAULT_NORM ")\n"
            "  --json          print one JSON object instead of text\n"
            "  --help          this text\n"
            "\n"
            "Samples are numbered from 1 (the line order of the data file).\n"
            "exit codes: 0 solved, 1 numerical or other failure, 2 bad usage or bad input,\n"
            "            3 not linearly separable through the origin (certificate printed)\n");
}

/* The margin of sample n: y_n <w, x_n> (binary), min_{j != y} <w_y - w_j,
 * x_n> (multi-class, w = W [C][d]). */
static double margin(const mf_data *D, const double *w, int n) {
    const double *x = D->x + (size_t)n * D->d;
    if (D->num_classes == 0) {
        double s = 0;
        for (int j = 0; j < D->d; j++) s += w[j] * x[j];
        return D->y[n] * s;
    }
    const int y = D->cls[n];
    double best = INFINITY;
    for (int c = 0; c < D->num_classes; c++) {
        if (c == y) continue;
        double s = 0;
        for (int j = 0; j < D->d; j++) s += (w[(size_t)y * D->d + j] - w[(size_t)c * D->d + j]) * x[j];
        if (s < best) best = s;
    }
    return best;
}

/* Sample n's multiplier: alpha_n (binary) or sum_j alpha_nj (multi-class). */
static double alpha_of(const mf_svm_result *r, const double *a, int n) {
    if (!r->classes) return a[n];
    double s = 0;
    for (int j = 0; j < r->classes; j++) s += a[(size_t)n * r->classes + j];
    return s;
}

static cJSON *num(double v) {
    char b[40];
    if (!isfinite(v)) return cJSON_CreateNull();
    mf_format_double(b, sizeof b, v);
    return cJSON_CreateRaw(b);
}

static cJSON *to_json(const mf_data *D, const mf_svm_result *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = 1;
    ok &= cli_json_str(o, "data", D->desc) != NULL;
    ok &= cli_json_int(o, "n", r->n) != NULL;
    ok &= cli_json_int(o, "d", r->d) != NULL;
    ok &= cli_json_str(o, "norm", mf_svm_norm_name(r->norm)) != NULL;
    if (r->classes) {
        ok &= cli_json_int(o, "classes", r->classes) != NULL;
        ok &= cli_json_str(o, "form", "Crammer-Singer through the origin: <w_y - w_j, x> >= 1") != NULL;
    }
    ok &= cli_json_str(o, "status", mf_svm_status_name(r->status)) != NULL;
    ok &= cli_json_int(o, "iterations", r->iterations) != NULL;
    if (r->status == MF_SVM_SOLVED) {
        ok &= cli_json_num(o, "gamma", r->gamma) != NULL;
        if (r->norm == MF_SVM_L1) ok &= cli_json_num(o, "gamma_diag2", r->gamma_diag2) != NULL;
        ok &= cli_json_num(o, "gamma_lower", r->gamma_lower) != NULL;
        ok &= cli_json_num(o, "gamma_upper", r->gamma_upper) != NULL;
        cJSON *w = cJSON_AddArrayToObject(o, "w");
        ok &= w != NULL;
        if (!r->classes) {
            for (int j = 0; w && j < r->d; j++) ok &= cJSON_AddItemToArray(w, num(r->w[j]));
        } else { /* W [C][d]: one row per class */
            for (int c = 0; w && c < r->classes; c++) {
                cJSON *row = cJSON_CreateArray();
                ok &= row && cJSON_AddItemToArray(w, row);
                for (int j = 0; row && j < r->d; j++)
                    ok &= cJSON_AddItemToArray(row, num(r->w[(size_t)c * r->d + j]));
            }
        }
        cJSON *sv = cJSON_AddArrayToObject(o, "support");
        ok &= sv != NULL;
        for (int k = 0; sv && k < r->n_support; k++) {
            int n = r->support[k];
            cJSON *s = cJSON_CreateObject();
            ok &= s && cJSON_AddItemToArray(sv, s);
            if (!s) break;
            ok &= cli_json_int(s, "sample", n + 1) != NULL;
            ok &= cli_json_num(s, "alpha", alpha_of(r, r->alpha, n)) != NULL;
            if (r->classes) {
                cJSON *pa = cJSON_AddArrayToObject(s, "alpha_per_class");
                for (int j = 0; pa && j < r->classes; j++)
                    ok &= cJSON_AddItemToArray(pa, num(r->alpha[(size_t)n * r->classes + j]));
            }
            ok &= cli_json_num(s, "margin", margin(D, r->w, n)) != NULL;
        }
        ok &= cli_json_int(o, "n_active", r->n_active) != NULL;
        ok &= cli_json_num(o, "q_min", r->q_min) != NULL;
        cJSON *res = cJSON_AddObjectToObject(o, "residuals");
        ok &= res != NULL;
        if (res) {
            ok &= cli_json_num(res, "primal", r->primal_residual) != NULL;
            ok &= cli_json_num(res, "dual", r->dual_residual) != NULL;
            ok &= cli_json_num(res, "complementarity", r->complementarity) != NULL;
            ok &= cli_json_num(res, "gap", r->gap) != NULL;
            ok &= cli_json_num(res, "kkt", r->kkt_residual) != NULL;
            if (r->norm == MF_SVM_L1) {
                ok &= cli_json_num(res, "glpk_primal", r->lp_kkt_primal) != NULL;
                ok &= cli_json_num(res, "glpk_dual", r->lp_kkt_dual) != NULL;
            }
        }
        ok &= cJSON_AddBoolToObject(o, "polished", r->polished) != NULL;
    } else {
        cJSON *c = cJSON_AddObjectToObject(o, "certificate");
        ok &= c != NULL;
        if (c) {
            ok &= cli_json_num(c, "norm", r->certificate_norm) != NULL;
            cJSON *wt = cJSON_AddArrayToObject(c, "weights");
            ok &= wt != NULL;
            for (int k = 0; wt && k < r->n_support; k++) {
                cJSON *s = cJSON_CreateObject();
                ok &= s && cJSON_AddItemToArray(wt, s);
                if (!s) break;
                ok &= cli_json_int(s, "sample", r->support[k] + 1) != NULL;
                ok &= cli_json_num(s, "c", alpha_of(r, r->certificate, r->support[k])) != NULL;
            }
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The text report; every value through cli_g (17 digits, exact), so an
 * entry that is absent (beyond the double range at the data's scale) reads
 * "absent", never "nan". */
static void print_text(const mf_data *D, const mf_svm_result *r) {
    int l1 = r->norm == MF_SVM_L1;
    printf("data: %s (n = %d, d = %d)\n", D->desc, r->n, r->d);
    if (r->classes)
        printf("classes: %d (hard-margin multi-class SVM through the origin, Crammer-Singer form:\n"
               "  minimize ||W||_F^2/2 s.t. <w_y - w_j, x_n> >= 1 for j != y_n; gamma = 1/||W||_F)\n",
               r->classes);
    printf("norm: %s\n", mf_svm_norm_name(r->norm));
    printf("status: %s\n", mf_svm_status_name(r->status));
    if (r->status == MF_SVM_NONSEPARABLE) {
        printf("not linearly separable through the origin. certificate: c >= 0, sum c = 1,\n"
               "||sum_n c_n y_n x_n|| = %s, so no direction has normalized margin above that:\n",
               cli_g(r->certificate_norm, 17));
        printf("  %8s  %s\n", "sample", "c");
        for (int k = 0; k < r->n_support; k++)
            printf("  %8d  %s\n", r->support[k] + 1, cli_g(alpha_of(r, r->certificate, r->support[k]), 17));
        printf("iterations: %d\n", r->iterations);
        return;
    }
    printf("gamma: %s   (%s)\n", cli_g(r->gamma, 17),
           l1 ? "gamma_l1 = 1/||beta||_1" : "gamma_svm = 1/||w||_2");
    if (l1)
        printf("gamma_diag2: %s   (depth-2 diagonal net global optimum = 1/(2 ||beta||_1))\n",
               cli_g(r->gamma_diag2, 17));
    printf("gamma bracket: [%s, %s]   (weak duality)\n", cli_g(r->gamma_lower, 17),
           cli_g(r->gamma_upper, 17));
    if (!r->classes) {
        printf("%s:", l1 ? "beta" : "w");
        for (int j = 0; j < r->d; j++) printf(" %s", cli_g(r->w[j], 17));
        printf("\n");
    } else {
        for (int c = 0; c < r->classes; c++) {
            printf("W[%d]:", c);
            for (int j = 0; j < r->d; j++) printf(" %s", cli_g(r->w[(size_t)c * r->d + j], 17));
            printf("\n");
        }
    }
    printf("support vectors: %d (active %s: %d)\n", r->n_support, r->classes ? "samples" : "constraints",
           r->n_active);
    printf("  %8s  %-24s  %s\n", "sample", r->classes ? "sum_j alpha_nj" : "alpha",
           r->classes ? "margin min_j <w_y - w_j, x>" : "margin y<w,x>");
    for (int k = 0; k < r->n_support; k++) {
        int n = r->support[k];
        printf("  %8d  %-24s  %s\n", n + 1, cli_g(alpha_of(r, r->alpha, n), 17),
               cli_g(margin(D, r->w, n), 17));
    }
    printf("residuals (relative): primal %s, dual %s, complementarity %s, gap %s, kkt %s\n",
           cli_g(r->primal_residual, 3), cli_g(r->dual_residual, 3), cli_g(r->complementarity, 3),
           cli_g(r->gap, 3), cli_g(r->kkt_residual, 3));
    if (l1)
        printf("GLPK glp_check_kkt (relative): primal %s, dual %s\n", cli_g(r->lp_kkt_primal, 3),
               cli_g(r->lp_kkt_dual, 3));
    printf("iterations: %d%s\n", r->iterations, r->polished ? " (polished on the support set)" : "");
}

int cli_svm(int argc, char **argv) {
    const char *data = NULL, *format = NULL, *norm_s = SVM_DEFAULT_NORM, *v;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        int m;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if ((m = cli_opt(argc, argv, &i, "--data", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            data = v;
        } else if ((m = cli_opt(argc, argv, &i, "--format", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            format = v;
        } else if ((m = cli_opt(argc, argv, &i, "--norm", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            norm_s = v;
        } else {
            cli_error("svm: unknown option '%s' (see marginflow svm --help)", cli_q(argv[i]));
            return CLI_EXIT_USAGE;
        }
    }
    if (!data) {
        cli_error("svm: --data is required (see marginflow svm --help)");
        return CLI_EXIT_USAGE;
    }
    if (format && strcmp(format, "libsvm") && strcmp(format, "csv")) {
        cli_error("svm: --format must be libsvm or csv, got '%s'", cli_q(format));
        return CLI_EXIT_USAGE;
    }
    mf_svm_norm norm;
    if (mf_svm_norm_from_name(norm_s, &norm) != MF_OK) {
        cli_error("svm: --norm must be l2 or l1, got '%s'", cli_q(norm_s));
        return CLI_EXIT_USAGE;
    }
    mf_err e = {0, ""};
    mf_data *D = NULL;
    char why[MF_ERR_LEN];
    int rc = cli_load_data(data, format, &D, why, sizeof why);
    if (rc) {
        cli_error("svm: %s", why);
        return rc;
    }
    mf_svm_result *r = NULL;
    rc = mf_svm_solve(D, norm, NULL, &r, &e);
    if (rc != MF_OK) {
        cli_error("%s", e.msg); /* the library's message starts with "svm" */
        mf_data_free(D);
        return rc == MF_ERR_NUMERIC ? CLI_EXIT_ERROR : cli_exit_for(rc, 1);
    }
    int exit_code = r->status == MF_SVM_SOLVED ? CLI_EXIT_OK : CLI_EXIT_NONSEPARABLE;
    if (json) {
        cJSON *o = to_json(D, r);
        char *text = o ? cJSON_Print(o) : NULL;
        if (!text) {
            cli_error("svm: out of memory writing JSON");
            exit_code = CLI_EXIT_ERROR;
        } else {
            printf("%s\n", text);
        }
        cJSON_free(text);
        cJSON_Delete(o);
    } else {
        print_text(D, r);
    }
    mf_svm_result_free(r);
    mf_data_free(D);
    return exit_code;
}

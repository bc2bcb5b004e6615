/*
 * global_solvers.c -- bench: which solver for the convex program of
 * src/global_relu2.c? (issue 17; the numbers go into that file's header).
 *
 *   global_solvers [REPS]
 *
 * For a few 2-d data sets, side by side in one run, medians of REPS (default
 * 5) wall times:
 *   ipopt: mf_global_relu2 (IPOPT on the dual QCQP, GLPK re-weighting), its
 *          certified relative gap;
 *   cg:    column generation with GLPK (Kelley's cutting planes on the dual):
 *          the LP min sum_j c_j s.t. sum_j c_j s_j y_n sigma(<x_n, u_j>) >= 1
 *          over a growing set of unit neurons (u_j, s_j), started from every
 *          arc midpoint with both signs; each round adds the maximizer of
 *          |sum_n lambda_n y_n sigma(<x_n, u>)| over the circle for the LP's
 *          row duals lambda (exact on each arc), until the certified gap
 *          (LP value - sum lambda / rho) / LP value <= 1e-9 or 500 rounds.
 * Both gaps are certified the same way (a network's value above, weak
 * duality below). Prints one table row per set. Timings on a shared 2-core
 * machine are noisy; compare within a row.
 */
#include "marginflow.h"

#include <glpk.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PI 3.14159265358979323846

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double sig(double z, double a) { return z > 0 ? z : a * z; }

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sorted boundary angles of the 2-d arrangement; returns their count */
static int angles(const mf_data *D, double *ang) {
    int m = 0;
    for (int k = 0; k < D->n; k++) {
        double p = atan2(D->x[2 * k + 1], D->x[2 * k]);
        for (int s = -1; s <= 1; s += 2) ang[m++] = fmod(p + s * PI / 2 + 4 * PI, 2 * PI);
    }
    qsort(ang, (size_t)m, sizeof(double), cmpd);
    return m;
}

/* max over the circle of s f(u), f = sum c_k sigma(<x_k, u>): value, u, s */
static double oracle(const mf_data *D, const double *c, double a, const double *ang, int m,
                     double *ub, int *sb) {
    double best = -1;
    for (int i = 0; i < m; i++) {
        double t0 = ang[i], t1 = i + 1 < m ? ang[i + 1] : ang[0] + 2 * PI, tm = 0.5 * (t0 + t1);
        double g[2] = {0, 0};
        for (int k = 0; k < D->n; k++) {
            double z = D->x[2 * k] * cos(tm) + D->x[2 * k + 1] * sin(tm), t = z > 0 ? 1 : a;
            g[0] += c[k] * t * D->x[2 * k];
            g[1] += c[k] * t * D->x[2 * k + 1];
        }
        for (int s = -1; s <= 1; s += 2) {
            double psi = atan2(s * g[1], s * g[0]), tt[3] = {t0, t1, 0};
            int nt = 2;
            while (psi < t0) psi += 2 * PI;
            if (psi <= t1) tt[nt++] = psi;
            for (int q = 0; q < nt; q++) {
                double v = s * (g[0] * cos(tt[q]) + g[1] * sin(tt[q]));
                if (v > best) best = v, ub[0] = cos(tt[q]), ub[1] = sin(tt[q]), *sb = s;
            }
        }
    }
    return best;
}

/* column generation; returns the certified gap, *rounds */
static double cg(const mf_data *D, double a, int *rounds) {
    int n = D->n, cap = 4 * n + 600, J = 0;
    double *ang = malloc(sizeof(double) * 2 * n), *U = malloc(sizeof(double) * 2 * cap);
    int *S = malloc(sizeof(int) * cap), m = angles(D, ang);
    double *lam = malloc(sizeof(double) * n), *col = malloc(sizeof(double) * (n + 1));
    int *idx = malloc(sizeof(int) * (n + 1));
    for (int i = 0; i < m; i++) {
        double t1 = i + 1 < m ? ang[i + 1] : ang[0] + 2 * PI, tm = 0.5 * (ang[i] + t1);
        for (int s = -1; s <= 1; s += 2) U[2 * J] = cos(tm), U[2 * J + 1] = sin(tm), S[J++] = s;
    }
    glp_term_out(GLP_OFF);
    glp_prob *lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    glp_add_rows(lp, n);
    for (int k = 1; k <= n; k++) glp_set_row_bnds(lp, k, GLP_LO, 1, 0);
    double gap = INFINITY;
    int added = 0;
    glp_smcp p;
    glp_init_smcp(&p);
    p.msg_lev = GLP_MSG_OFF;
    p.meth = GLP_DUALP;
    for (*rounds = 0; *rounds < 500; ++*rounds) {
        for (; added < J; added++) { /* new columns */
            int j = glp_add_cols(lp, 1), nz = 0;
            glp_set_col_bnds(lp, j, GLP_LO, 0, 0);
            glp_set_obj_coef(lp, j, 1);
            for (int k = 0; k < n; k++) {
                double v = S[added] * D->y[k] *
                           sig(D->x[2 * k] * U[2 * added] + D->x[2 * k + 1] * U[2 * added + 1], a);
                if (v != 0) idx[++nz] = k + 1, col[nz] = v;
            }
            glp_set_mat_col(lp, j, nz, idx, col);
        }
        if (glp_simplex(lp, &p) || glp_get_status(lp) != GLP_OPT) break;
        double obj = glp_get_obj_val(lp), sum = 0, u[2] = {1, 0};
        for (int k = 0; k < n; k++) {
            double l = glp_get_row_dual(lp, k + 1);
            lam[k] = (l > 0 ? l : 0) * D->y[k];
            sum += l > 0 ? l : 0;
        }
        int s = 1;
        double rho = oracle(D, lam, a, ang, m, u, &s);
        gap = (obj - sum / rho) / obj;
        if (gap <= 1e-9 || J == cap) break;
        U[2 * J] = u[0], U[2 * J + 1] = u[1], S[J++] = s;
    }
    glp_delete_prob(lp);
    free(ang), free(U), free(S), free(lam), free(col), free(idx);
    return gap;
}

static int cmp(const void *a, const void *b) { return cmpd(a, b); }

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    const char *sets[][2] = {{"builtin:sym4", "relu2:alpha=0.5"},
                             {"builtin:D", "relu2"},
                             {"gauss:n=20,d=2,margin=0.05,seed=3", "relu2"},
                             {"gauss:n=60,d=2,margin=0.05,seed=3", "relu2:alpha=0.2"}};
    printf("| set | model | cells | IPOPT gap | IPOPT s | CG gap | CG rounds | CG s |\n"
           "|---|---|---|---|---|---|---|---|\n");
    for (int t = 0; t < 4; t++) {
        mf_data *D = NULL;
        mf_model *M = NULL;
        if (mf_data_from_spec(sets[t][0], NULL, &D, NULL) ||
            mf_model_parse(sets[t][1], D->d, 0, &M, NULL))
            return 1;
        double ti[64], tc[64], gi = 0, gc = 0;
        int cells = 0, rounds = 0;
        for (int r = 0; r < reps && r < 64; r++) {
            double t0 = now();
            mf_global_result *res = NULL;
            if (mf_global_relu2(M, D, NULL, &res, NULL)) return 1;
            ti[r] = now() - t0;
            gi = res->gap, cells = res->n_patterns;
            mf_global_result_free(res);
            t0 = now();
            gc = cg(D, M->alpha, &rounds);
            tc[r] = now() - t0;
        }
        qsort(ti, (size_t)reps, sizeof(double), cmp);
        qsort(tc, (size_t)reps, sizeof(double), cmp);
        printf("| %s | %s | %d | %.1e | %.3f | %.1e | %d | %.3f |\n", sets[t][0], sets[t][1],
               cells, gi, ti[reps / 2], gc, rounds, tc[reps / 2]);
        mf_model_free(M);
        mf_data_free(D);
    }
    return 0;
}

/*
 * p_solvers.c -- bench: NLopt SLSQP (what src/local.c uses for the local
 * re-solves of (P)) against IPOPT on the same re-solves, for relu2 nets of
 * growing width (issue 17 asks for the measurement; local.c is unchanged).
 *
 *   p_solvers [REPS] [WIDTHS...]      (defaults: 3; 10 40 160)
 *
 * Problem (P): minimize 1/2 ||theta||^2 s.t. q_n(theta) >= 1 (n = 1..N), on
 * gauss:n=100,d=10,margin=0.1,seed=1 with relu2:width=M,alpha=0. Start: a
 * 3000-step lyu-li run from a N(0, 0.1^2) init, scaled to q_min = 1, then
 * perturbed by 5% of its norm in a random direction (seed 7) -- a
 * mf_local_search trial. Both solvers get the exact margins and Jacobian
 * from mf_margin_jacobian:
 *   SLSQP: xtol_rel 1e-12, at most 2000 evaluations, 120 s (local.c's
 *          settings, plus the time cap);
 *   IPOPT: dense Jacobian, limited-memory (L-BFGS) Hessian, tol 1e-9, at
 *          most 2000 iterations, 120 s.
 * Reported per width: medians of REPS wall times, the normalized margin
 * q_min / ||theta||^2 each reaches (evaluated here) and its evaluations /
 * iterations. Timings on a shared 2-core machine are noisy.
 *
 * Measured (REPS 1; the machine shared with other jobs):
 *   width params start gamma  SLSQP gamma evals    s    IPOPT gamma evals    s
 *     10    110   0.056150085  0.077900774  2000   3.5   0.070024931  3449  11.1
 *     40    440   0.065048890  0.080083479  1317 120.6   0.067845927  3001  67.6
 *    160   1760   (not finished within 600 s: one SLSQP step on 1760 unknowns
 *                 is a dense O(P^3) least-squares problem and NLopt checks its
 *                 time limit only between evaluations)
 * IPOPT with an L-BFGS Hessian stops at lower margins than SLSQP on these
 * non-smooth problems (ReLU kinks make the constraint Jacobian jump), though
 * SLSQP's cost grows as P^3: IPOPT is not a drop-in replacement for local.c's
 * re-solves without exact second derivatives.
 */
#include "marginflow.h"

#include <coin/IpStdCInterface.h>
#include <math.h>
#include <nlopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ctx {
    const mf_model *m;
    const mf_data *d;
    double *q, *J; /* [N], [N][P] */
    int evals;
} ctx;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double obj(unsigned P, const double *x, double *g, void *u) {
    (void)u;
    double s = 0;
    for (unsigned i = 0; i < P; i++) {
        s += x[i] * x[i];
        if (g) g[i] = x[i];
    }
    return 0.5 * s;
}

/* NLopt: c_n = 1 - q_n <= 0 */
static void cons(unsigned N, double *c, unsigned P, const double *x, double *g, void *u) {
    ctx *C = u;
    C->evals++;
    mf_margin_jacobian(C->m, C->d, x, C->q, g ? C->J : NULL, NULL);
    for (unsigned n = 0; n < N; n++) {
        c[n] = 1 - C->q[n];
        if (g)
            for (unsigned i = 0; i < P; i++) g[(size_t)n * P + i] = -C->J[(size_t)n * P + i];
    }
}

static Bool i_f(Index P, Number *x, Bool nx, Number *o, UserDataPtr u) {
    (void)nx;
    *o = obj((unsigned)P, x, NULL, u);
    return TRUE;
}
static Bool i_gf(Index P, Number *x, Bool nx, Number *g, UserDataPtr u) {
    (void)nx, (void)u;
    memcpy(g, x, sizeof(double) * (size_t)P);
    return TRUE;
}
static Bool i_g(Index P, Number *x, Bool nx, Index N, Number *g, UserDataPtr u) {
    (void)P, (void)nx, (void)N;
    ctx *C = u;
    C->evals++;
    mf_margin_jacobian(C->m, C->d, x, g, NULL, NULL);
    return TRUE;
}
static Bool i_jac(Index P, Number *x, Bool nx, Index N, Index ne, Index *r, Index *c, Number *v,
                  UserDataPtr u) {
    (void)nx, (void)ne;
    ctx *C = u;
    if (!v) {
        for (Index n = 0, t = 0; n < N; n++)
            for (Index i = 0; i < P; i++, t++) r[t] = n, c[t] = i;
        return TRUE;
    }
    mf_margin_jacobian(C->m, C->d, x, C->q, v, NULL);
    return TRUE;
}
static Bool i_h(Index P, Number *x, Bool nx, Number of, Index N, Number *l, Bool nl, Index ne,
                Index *r, Index *c, Number *v, UserDataPtr u) {
    (void)P, (void)x, (void)nx, (void)of, (void)N, (void)l, (void)nl, (void)ne, (void)r, (void)c;
    (void)v, (void)u;
    return FALSE; /* limited-memory Hessian: never called */
}

static double gamma_at(ctx *C, const double *x) {
    mf_margin_jacobian(C->m, C->d, x, C->q, NULL, NULL);
    double qm = INFINITY, s = 0;
    for (int n = 0; n < C->d->n; n++) qm = fmin(qm, C->q[n]);
    for (size_t i = 0; i < C->m->n_params; i++) s += x[i] * x[i];
    return qm / s;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 3;
    int widths[8] = {10, 40, 160}, nw = 3;
    if (argc > 2)
        for (nw = 0; nw < 8 && nw + 2 < argc; nw++) widths[nw] = atoi(argv[nw + 2]);
    mf_data *D = NULL;
    if (mf_data_from_spec("gauss:n=100,d=10,margin=0.1,seed=1", NULL, &D, NULL)) return 1;
    printf("| width | params | start gamma | SLSQP gamma | SLSQP evals | SLSQP s | IPOPT gamma "
           "| IPOPT evals | IPOPT s |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int w = 0; w < nw; w++) {
        char spec[64];
        snprintf(spec, sizeof spec, "relu2:width=%d,alpha=0", widths[w]);
        mf_model *M = NULL;
        mf_train_state *st = NULL;
        if (mf_model_parse(spec, D->d, 0, &M, NULL) || mf_train_state_new(M->n_params, &st, NULL))
            return 1;
        size_t P = M->n_params;
        mf_rng rng;
        mf_rng_seed(&rng, 1);
        mf_model_init(M, "gauss", 0.1, &rng, st->theta, NULL);
        mf_train_settings s;
        mf_train_settings_default(&s);
        s.max_steps = 3000;
        mf_train_result tr;
        if (mf_train(M, D, &s, st, NULL, &tr, NULL)) return 1;
        ctx C = {M, D, malloc(sizeof(double) * D->n), malloc(sizeof(double) * D->n * P), 0};
        double *x0 = malloc(sizeof(double) * P), *x = malloc(sizeof(double) * P), nrm = 0, xi = 0;
        double g0 = gamma_at(&C, st->theta), qm = INFINITY;
        for (int n = 0; n < D->n; n++) qm = fmin(qm, C.q[n]);
        mf_rng_seed(&rng, 7);
        for (size_t i = 0; i < P; i++) {
            x0[i] = st->theta[i] / sqrt(qm);
            nrm += x0[i] * x0[i];
            x[i] = mf_rng_normal(&rng);
            xi += x[i] * x[i];
        }
        for (size_t i = 0; i < P; i++) x0[i] += 0.05 * sqrt(nrm / xi) * x[i];
        double ts[16], ti[16], gs = 0, gi = 0;
        int es = 0, ei = 0;
        for (int r = 0; r < reps && r < 16; r++) {
            memcpy(x, x0, sizeof(double) * P);
            nlopt_opt o = nlopt_create(NLOPT_LD_SLSQP, (unsigned)P);
            double tol[100], f;
            for (int n = 0; n < 100; n++) tol[n] = 1e-10;
            nlopt_set_min_objective(o, obj, NULL);
            nlopt_add_inequality_mconstraint(o, (unsigned)D->n, cons, &C, tol);
            nlopt_set_xtol_rel(o, 1e-12);
            nlopt_set_maxeval(o, 2000);
            nlopt_set_maxtime(o, 120);
            C.evals = 0;
            double t0 = now();
            nlopt_optimize(o, x, &f);
            ts[r] = now() - t0;
            nlopt_destroy(o);
            gs = gamma_at(&C, x), es = C.evals;

            memcpy(x, x0, sizeof(double) * P);
            double *xl = malloc(sizeof(double) * P), *xu = malloc(sizeof(double) * P);
            double gl[100], gu[100];
            for (size_t i = 0; i < P; i++) xl[i] = -2e19, xu[i] = 2e19;
            for (int n = 0; n < 100; n++) gl[n] = 1, gu[n] = 2e19;
            IpoptProblem ip = CreateIpoptProblem((Index)P, xl, xu, D->n, gl, gu,
                                                 (Index)(D->n * P), 0, 0, i_f, i_g, i_gf, i_jac,
                                                 i_h);
            AddIpoptStrOption(ip, "sb", "yes");
            AddIpoptIntOption(ip, "print_level", 0);
            AddIpoptStrOption(ip, "hessian_approximation", "limited-memory");
            AddIpoptNumOption(ip, "tol", 1e-9);
            AddIpoptIntOption(ip, "max_iter", 2000);
            AddIpoptNumOption(ip, "max_cpu_time", 120);
            C.evals = 0;
            t0 = now();
            IpoptSolve(ip, x, NULL, &f, NULL, NULL, NULL, &C);
            ti[r] = now() - t0;
            FreeIpoptProblem(ip);
            free(xl), free(xu);
            gi = gamma_at(&C, x), ei = C.evals;
        }
        qsort(ts, (size_t)reps, sizeof(double), cmpd);
        qsort(ti, (size_t)reps, sizeof(double), cmpd);
        printf("| %d | %zu | %.9f | %.9f | %d | %.2f | %.9f | %d | %.2f |\n", widths[w], P,
               gamma_at(&C, x0), gs, es, ts[reps / 2], gi, ei, ti[reps / 2]);
        (void)g0;
        free(C.q), free(C.J), free(x0), free(x);
        mf_train_state_free(st);
        mf_model_free(M);
    }
    mf_data_free(D);
    return 0;
}

/*
 * flowsun.c -- the loss-normalized gradient flow of a marginflow problem
 * integrated by SUNDIALS (issue 11's evaluation: bench/flow-compare).
 *
 * The problem is the one src/flow.c solves: dtheta/dtau = -G(theta),
 * G = grad Loss / Loss, from the same data, model and initialization as
 * `marginflow train`, exponential loss, until log10 Loss reaches a target.
 * The state is theta itself; the tolerance is the same local-error test as
 * flow's explicit steps, ||e||_2 <= tol (1 + ||theta||), given to SUNDIALS as
 * an error-weight function (every weight sqrt(P) / (tol (1 + ||theta||)), so
 * that SUNDIALS' weighted RMS norm of e is exactly ||e|| / (tol (1 + ||theta||))).
 * Methods:
 *   erk:N   ARKODE ERKStep with its built-in explicit table N
 *           (1 Bogacki-Shampine 4-2-3, 3 Zonneveld 5-3-4, 8 Dormand-Prince 7-4-5)
 *   dirk:N  ARKODE ARKStep, fully implicit with DIRK table N, dense
 *           difference-quotient Jacobian, Newton
 *   bdf     CVODE, variable-order BDF, dense difference-quotient Jacobian
 * The crossing of the target is found on SUNDIALS' dense output (bisection),
 * so the state reported is at log10 Loss = target to 1e-12.
 *
 * Usage: flowsun METHOD TOL TARGET DATA MODEL SCALE SEED
 * Prints one JSON object: method, tol, ok, steps, error test failures,
 * right-hand-side evaluations (every call, the difference-quotient Jacobian
 * columns included), wall seconds, log10 Loss, normalized margin and the
 * per-sample normalized margins at the target.
 */
#include "marginflow.h"

#include <arkode/arkode_arkstep.h>
#include <arkode/arkode_erkstep.h>
#include <cvode/cvode.h>
#include <math.h>
#include <nvector/nvector_serial.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <time.h>

typedef struct {
    mf_model *m;
    mf_data *d;
    mf_work *w;
    double *out, *gout;
    size_t P;
    double tol;
    long nrhs;
} prob;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* log Loss at th; with G != NULL also G = grad Loss / Loss (counted) */
static double eval(prob *p, const double *th, double *G) {
    mf_model_forward(p->m, p->w, th, p->d->x, p->d->n, p->out);
    double ll;
    if (mf_loss_eval(MF_LOSS_EXP, p->d, NULL, p->d->n, p->out, 1, &ll, G ? p->gout : NULL, NULL))
        return NAN;
    if (G) {
        mf_model_backward(p->m, p->w, th, p->d->x, p->d->n, p->gout, G);
        p->nrhs++;
    }
    return ll;
}

/* f = -G */
static int rhs(realtype t, N_Vector y, N_Vector yd, void *ud) {
    (void)t;
    prob *p = ud;
    double *f = N_VGetArrayPointer(yd);
    if (!isfinite(eval(p, N_VGetArrayPointer(y), f))) return 1;
    for (size_t i = 0; i < p->P; i++) f[i] = -f[i];
    return 0;
}

/* weights sqrt(P) / (tol (1 + ||theta||)): WRMS(e) = ||e|| / (tol (1 + ||theta||)) */
static int ewt(N_Vector y, N_Vector w, void *ud) {
    prob *p = ud;
    double c = sqrt((double)p->P) / (p->tol * (1.0 + mf_param_norm(p->m, N_VGetArrayPointer(y))));
    for (size_t i = 0; i < p->P; i++) N_VGetArrayPointer(w)[i] = c;
    return 0;
}

typedef int (*dky_fn)(void *mem, realtype t, int k, N_Vector dky);

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: flowsun METHOD TOL TARGET DATA MODEL SCALE SEED\n");
        return 2;
    }
    const char *method = argv[1];
    prob p;
    memset(&p, 0, sizeof p);
    p.tol = atof(argv[2]);
    double target = atof(argv[3]) * log(10.0);
    mf_err e;
    if (mf_data_from_spec(argv[4], NULL, &p.d, &e) ||
        mf_model_parse(argv[5], p.d->d, p.d->num_classes, &p.m, &e) ||
        mf_work_new(p.m, p.d->n, &p.w, &e)) {
        fprintf(stderr, "flowsun: %s\n", e.msg);
        return 1;
    }
    p.P = p.m->n_params;
    p.out = calloc((size_t)p.d->n, sizeof(double));
    p.gout = calloc((size_t)p.d->n, sizeof(double));
    double *th = calloc(p.P, sizeof(double));
    mf_rng rng;
    mf_rng_seed(&rng, (uint64_t)atoll(argv[7]));
    mf_model_init(p.m, "gauss", atof(argv[6]), &rng, th, &e);

    SUNContext ctx;
    SUNContext_Create(NULL, &ctx);
    N_Vector y = N_VNew_Serial((sunindextype)p.P, ctx);
    memcpy(N_VGetArrayPointer(y), th, p.P * sizeof(double));
    void *mem = NULL;
    SUNMatrix A = NULL;
    SUNLinearSolver LS = NULL;
    int kind = 0; /* 0 ERKStep, 1 ARKStep, 2 CVODE */
    dky_fn dky = (dky_fn)ERKStepGetDky;
    double t0 = now();
    if (!strncmp(method, "erk:", 4)) {
        mem = ERKStepCreate(rhs, 0.0, y, ctx);
        ERKStepSetUserData(mem, &p);
        ERKStepWFtolerances(mem, ewt);
        ERKStepSetTableNum(mem, (ARKODE_ERKTableID)atoi(method + 4));
        ERKStepSetMaxNumSteps(mem, -1);
        ERKStepSetInitStep(mem, 0.1);
    } else if (!strncmp(method, "dirk:", 5)) {
        kind = 1;
        dky = (dky_fn)ARKStepGetDky;
        mem = ARKStepCreate(NULL, rhs, 0.0, y, ctx);
        ARKStepSetUserData(mem, &p);
        ARKStepWFtolerances(mem, ewt);
        ARKStepSetTableNum(mem, (ARKODE_DIRKTableID)atoi(method + 5), ARKODE_ERK_NONE);
        A = SUNDenseMatrix((sunindextype)p.P, (sunindextype)p.P, ctx);
        LS = SUNLinSol_Dense(y, A, ctx);
        ARKStepSetLinearSolver(mem, LS, A);
        ARKStepSetMaxNumSteps(mem, -1);
        ARKStepSetInitStep(mem, 0.1);
    } else if (!strcmp(method, "bdf")) {
        kind = 2;
        dky = (dky_fn)CVodeGetDky;
        mem = CVodeCreate(CV_BDF, ctx);
        CVodeInit(mem, rhs, 0.0, y);
        CVodeSetUserData(mem, &p);
        CVodeWFtolerances(mem, ewt);
        A = SUNDenseMatrix((sunindextype)p.P, (sunindextype)p.P, ctx);
        LS = SUNLinSol_Dense(y, A, ctx);
        CVodeSetLinearSolver(mem, LS, A);
        CVodeSetMaxNumSteps(mem, -1);
        CVodeSetInitStep(mem, 0.1);
    } else {
        fprintf(stderr, "flowsun: unknown method %s\n", method);
        return 2;
    }
    double t = 0, tp = 0, ll = eval(&p, th, NULL);
    int ok = 1;
    while (ll > target) {
        tp = t;
        int flag = kind == 0   ? ERKStepEvolve(mem, 1e300, y, &t, ARK_ONE_STEP)
                   : kind == 1 ? ARKStepEvolve(mem, 1e300, y, &t, ARK_ONE_STEP)
                               : CVode(mem, 1e300, y, &t, CV_ONE_STEP);
        if (flag < 0 || now() - t0 > 300) { /* gave up: "ok": 0 */
            ok = 0;
            break;
        }
        ll = eval(&p, N_VGetArrayPointer(y), NULL);
    }
    if (ok) { /* bisection on the dense output for log Loss = target */
        double a = tp, b = t;
        for (int it = 0; it < 80; it++) {
            double c = 0.5 * (a + b);
            dky(mem, c, 0, y);
            if (eval(&p, N_VGetArrayPointer(y), NULL) > target) a = c;
            else b = c;
        }
        dky(mem, b, 0, y);
        ll = eval(&p, N_VGetArrayPointer(y), NULL);
    }
    double wall = now() - t0;
    long ns = 0, nef = 0;
    if (kind == 0) {
        ERKStepGetNumSteps(mem, &ns);
        ERKStepGetNumErrTestFails(mem, &nef);
    } else if (kind == 1) {
        ARKStepGetNumSteps(mem, &ns);
        ARKStepGetNumErrTestFails(mem, &nef);
    } else {
        CVodeGetNumSteps(mem, &ns);
        CVodeGetNumErrTestFails(mem, &nef);
    }
    const double *yy = N_VGetArrayPointer(y);
    double qmin = mf_margins(p.d, p.out, 1, NULL);
    double nl = pow(mf_param_norm(p.m, yy), p.m->degree);
    printf("{\"method\": \"%s\", \"tol\": %g, \"ok\": %d, \"steps\": %ld, \"error_test_failures\": %ld, "
           "\"rhs\": %ld, \"wall\": %.6g, \"log10_loss\": %.17g, \"gamma\": %.17g, \"gn\": [",
           method, p.tol, ok, ns, nef, p.nrhs, wall, ll / log(10.0), qmin / nl);
    for (int n = 0; n < p.d->n; n++) printf("%s%.17g", n ? ", " : "", p.d->y[n] * p.out[n] / nl);
    printf("]}\n");
    if (kind == 0) ERKStepFree(&mem);
    else if (kind == 1) ARKStepFree(&mem);
    else CVodeFree(&mem);
    if (LS) SUNLinSolFree(LS);
    if (A) SUNMatDestroy(A);
    N_VDestroy(y);
    SUNContext_Free(&ctx);
    free(th);
    free(p.out);
    free(p.gout);
    mf_work_free(p.w);
    mf_model_free(p.m);
    mf_data_free(p.d);
    return ok ? 0 : 3;
}

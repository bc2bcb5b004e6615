/*
 * dgemm_peak.c -- bench helper: the machine's double-precision GEMM rate with
 * the BLAS marginflow links (OpenBLAS), the reference against which bench/run
 * reports each workload's achieved GFLOP/s.
 *
 *   dgemm_peak [N [TRIALS]]      (defaults N = 2048, TRIALS = 5)
 *
 * Times C = A B for square N x N row-major matrices (2 N^3 flops per call),
 * repeating calls until a trial lasts >= 0.5 s, TRIALS trials after one
 * warm-up call. Thread count: OPENBLAS_NUM_THREADS, as for marginflow.
 * Prints one line: "N <N> median_gflops <g> max_gflops <g>".
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2048, trials = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 1 || trials < 1 || trials > 100) {
        fprintf(stderr, "usage: dgemm_peak [N [TRIALS]]\n");
        return 2;
    }
    size_t nn = (size_t)n * n;
    double *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double g[100];
    if (!a || !b || !c) return 1;
    for (size_t i = 0; i < nn; i++) {
        a[i] = (double)(i % 17) / 17.0 - 0.5;
        b[i] = (double)(i % 13) / 13.0 - 0.5;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
    for (int t = 0; t < trials; t++) {
        int calls = 0;
        double t0 = now(), el;
        do {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c,
                        n);
            calls++;
            el = now() - t0;
        } while (el < 0.5);
        g[t] = 2.0 * n * (double)n * n * calls / el * 1e-9;
    }
    qsort(g, (size_t)trials, sizeof g[0], cmp);
    double med = trials % 2 ? g[trials / 2] : 0.5 * (g[trials / 2 - 1] + g[trials / 2]);
    printf("N %d median_gflops %.3f max_gflops %.3f check %.6g\n", n, med, g[trials - 1], c[nn / 3]);
    free(a);
    free(b);
    free(c);
    return 0;
}

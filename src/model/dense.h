/*
 * dense.h -- the dense matrix products of the model passes (chain.c,
 * relu2.c): cblas_dgemm above MF__SMALL_GEMM multiply-adds, plain loops
 * below. static inline so each pass keeps them inlinable, as they were when
 * all passes lived in one file.
 */
#ifndef MF_MODEL_DENSE_H
#define MF_MODEL_DENSE_H

#include <cblas.h>
#include <stddef.h>

/* Products of at most this many multiply-adds (m*n*k) use plain loops, the
 * rest cblas_dgemm. Measured with OpenBLAS 0.3.21 on x86-64 (2 cores): its
 * small-matrix kernels beat our loops already at relu2:width=20 on 8 points
 * of d=2 (0.64 us vs 0.87 us per forward+backward, loops only 1.0 us with a
 * threshold of 4096), so only degenerate products stay on loops. Rebuild
 * with -DMF__SMALL_GEMM=... to retune for another BLAS. */
#ifndef MF__SMALL_GEMM
#define MF__SMALL_GEMM 64.0
#endif

/* One dense layer: Z [n][r] = H_in [n][c] W^T, W [r][c]. */
typedef struct mf__dense {
    size_t off; /* offset of W in theta (unused when the layer is fixed) */
    int r, c;   /* W is [r][c]; the first layer's c includes the bias column */
    int act;    /* 1: sigma applied after this layer, 0: identity */
} mf__dense;

/* Z [n][r] = A [n][k] W^T, W [r][k] (row strides lda, ldw, ldz). */
static inline void mm_nt(int n, int r, int k, const double *A, int lda, const double *W, int ldw,
                         double *Z, int ldz) {
    if ((double)n * r * k > MF__SMALL_GEMM) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, k, 1.0, A, lda, W, ldw, 0.0, Z,
                    ldz);
        return;
    }
    for (int i = 0; i < n; i++) {
        const double *a = A + (size_t)i * lda;
        double *z = Z + (size_t)i * ldz;
        for (int j = 0; j < r; j++) {
            const double *wr = W + (size_t)j * ldw;
            double s = 0.0;
            for (int t = 0; t < k; t++) s += a[t] * wr[t];
            z[j] = s;
        }
    }
}

/* G [r][k] = D^T A, D [n][r], A [n][k] (row strides ldd, lda, ldg). */
static inline void mm_tn(int r, int k, int n, const double *D, int ldd, const double *A, int lda,
                         double *G, int ldg) {
    if ((double)n * r * k > MF__SMALL_GEMM) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, k, n, 1.0, D, ldd, A, lda, 0.0, G,
                    ldg);
        return;
    }
    for (int j = 0; j < r; j++) {
        double *g = G + (size_t)j * ldg;
        for (int t = 0; t < k; t++) g[t] = 0.0;
    }
    for (int i = 0; i < n; i++) {
        const double *drow = D + (size_t)i * ldd, *a = A + (size_t)i * lda;
        for (int j = 0; j < r; j++) {
            double dj = drow[j];
            double *g = G + (size_t)j * ldg;
            for (int t = 0; t < k; t++) g[t] += dj * a[t];
        }
    }
}

/* H [n][k] = D W, D [n][r], W [r][k] (row strides ldd, ldw, ldh). */
static inline void mm_nn(int n, int k, int r, const double *D, int ldd, const double *W, int ldw,
                         double *H, int ldh) {
    if ((double)n * r * k > MF__SMALL_GEMM) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, k, r, 1.0, D, ldd, W, ldw, 0.0,
                    H, ldh);
        return;
    }
    for (int i = 0; i < n; i++) {
        const double *drow = D + (size_t)i * ldd;
        double *h = H + (size_t)i * ldh;
        for (int t = 0; t < k; t++) h[t] = 0.0;
        for (int j = 0; j < r; j++) {
            const double dj = drow[j], *wr = W + (size_t)j * ldw;
            for (int t = 0; t < k; t++) h[t] += dj * wr[t];
        }
    }
}

#endif

/*
 * global_relu2.c -- the certified global max-margin value gamma* of a
 * bias-free two-layer (leaky) ReLU net Phi(x) = sum_k a_k sigma(<w_k, x>),
 * sigma(z) = max(z, alpha z), 0 <= alpha < 1, over every width (marginflow.h,
 * mf_global_relu2; the derivation is docs/theory.md, "Global optimum of
 * two-layer ReLU nets").
 *
 * Problem (P) min 1/2 ||theta||^2 s.t. y_n Phi(x_n) >= 1 has optimum
 * 1/2 gamma*^{-2/L} = 1 / (2 gamma*) (L = 2). Balancing every neuron
 * (|a_k| = ||w_k||, which leaves Phi unchanged) gives OPT(P) = min sum_k
 * |a_k| ||w_k|| = min sum_k ||u_k|| over signed neurons u_k = |a_k| w_k,
 * and grouping neurons by their activation pattern D_i = diag(1[X u >= 0])
 * turns it into the convex program of Pilanci & Ergen ("Neural Networks are
 * Convex Regularizers", ICML 2020), with slopes Dt_i = alpha I + (1 - alpha)
 * D_i for the leaky unit:
 *   (C)  min sum_i ||v_i|| + ||w_i||  s.t.  y o sum_i Dt_i X (v_i - w_i) >= 1,
 *        A_i v_i >= 0, A_i w_i >= 0,  A_i = (2 D_i - I) X,
 *   (C*) max 1^T lambda  s.t.  lambda >= 0, ||s g_i(lambda) + A_i^T mu_{i,s}|| <= 1,
 *        mu >= 0, g_i(lambda) = X^T Dt_i (y o lambda), s = +-1,
 * i.e. rho(lambda) = max_{||u|| <= 1} |sum_n lambda_n y_n sigma(<x_n, u>)| <= 1.
 *
 * Steps (each states its tolerance):
 *  1. Patterns. d = 2: the 2L boundary angles phi_l +- pi/2 of the L
 *     distinct lines sorted on the circle; one pattern per arc (its
 *     midpoint's signs). d = 1 or d >= 3: incremental enumeration of the
 *     cells of the central arrangement (Edelsbrunner, Algorithms in
 *     Combinatorial Geometry, 1987, ch. 7, the incremental method): a new
 *     hyperplane splits a cell iff an LP (GLPK) finds a point strictly on its
 *     other side, and that point is re-checked by direct evaluation (strict
 *     signs); a cell with inscribed radius below the LP tolerance (~1e-9 in
 *     the unit box) can be missed. Or sampling: the patterns of random
 *     Gaussian directions.
 *  2. Separability: (C) is feasible iff the lifted data (Dt_i x_n)_i in
 *     R^{P d} are linearly separable through the origin (each cone A_i u >= 0
 *     is full-dimensional, so v_i - w_i ranges over R^d); decided exactly by
 *     mf_svm_solve's NNLS (Gordan certificate when not).
 *  3. IPOPT (Waechter & Biegler, Math. Prog. 106, 2006) on (C*) written as a
 *     smooth convex QCQP with h_b = s_b g_i + A_i^T mu_b, ||h_b||^2 <= 1
 *     (blocks b = (i, s_b)): linear equalities, one convex quadratic per
 *     block, a diagonal Hessian. In d = 2 only the two facet rows of each
 *     cone A_i carry a mu (gr_facets; the others are redundant): 2 + d
 *     variables per block instead of n + d (gauss n = 100: 5 s instead of
 *     > 5 min; on the n = 60 set below it takes 210 IPOPT iterations instead
 *     of 31, 5 s instead of 3.3 s: the smaller program is less well
 *     conditioned there). The equality multipliers are the primal
 *     neurons: u_b = -eta_b (from stationarity in h, lambda and mu: y o
 *     sum_b s_b Dt_i X u_b >= 1 and A_i u_b >= 0, see docs/theory.md).
 *  4. GLPK simplex on  min sum_j c_j s.t. sum_j c_j s_j y_n sigma(<x_n, u^_j>)
 *     >= 1, c >= 0  over those unit directions: a vertex, at most n neurons,
 *     never worse than IPOPT's own weights.
 *  5. Certificate, evaluated here: gamma_lower = q_min / ||theta||^2 of the
 *     balanced net by mf_model_forward; gamma_upper = rho(lambda) / (2 sum
 *     lambda) with rho by the exact sweep (d <= 2) or, d >= 3, the cell bound
 *     max_b ||s_b g_i + A_i^T mu_b|| (valid for any mu >= 0, since
 *     <g, u> <= <g + A^T mu, u> on A u >= 0), certified iff every cell was
 *     enumerated.
 *
 * Why IPOPT on the dual. Measured side by side in one run on this machine
 * (bench/global_solvers.c, medians of 3 wall times, 2 shared cores: noisy),
 * the certified relative gap each reaches (both evaluated as in step 5):
 *   set                     cells  IPOPT dual QCQP      GLPK cutting planes
 *   sym4, alpha 0.5             8  7.0e-13   0.029 s    1.9e-16     5 rounds 0.000 s
 *   D, ReLU                     4  0         0.023 s    7.4e-08   500 rounds 0.017 s
 *   gauss n 20 d 2, ReLU       40  3.3e-13   0.144 s    5.0e-15     2 rounds 0.000 s
 *   gauss n 60 d 2, alpha 0.2 120  4.8e-13   7.168 s    7.2e-08   500 rounds 0.217 s
 * Column generation (GLPK on (C) over a growing set of neurons, each round
 * adding the exact maximizer of the current dual over the circle) is far
 * faster when it converges, but the LP's duals are a vertex of a degenerate
 * dual face (on D every split of lambda_1 + lambda_2 = sqrt 2 is LP-optimal
 * and only the equal one has rho = 1), and it stalls near 1e-7 on two of the
 * four sets; its exact oracle is also 2-d only. The interior point returns
 * the central dual and meets the 1e-9 target everywhere. IPOPT on a primal
 * smooth form (t_b^2 >= ||v_b||^2) is degenerate at the zero blocks that make
 * up most of an optimum (no constraint qualification there); the dual form
 * has none. Debian 12 ships no C conic solver (ECOS, SCS, Clarabel); DSDP /
 * CSDP would treat each second-order cone as an SDP block. IPOPT options:
 * bound_relax_factor 0 (the default 1e-8 relaxation showed as 1e-8 gaps),
 * mumps_pivot_order 6 (QAMD, for lambda's dense coupling: 0.14 s instead of
 * 1.6 s on the n = 20 set).
 *
 * Not reached by the allocation hook: IPOPT (C++ new), MUMPS, GLPK and
 * OpenBLAS allocate on their own.
 */
#include "internal.h"

#include <cblas.h>
#include <coin/IpStdCInterface.h>
#include <coin/IpoptConfig.h>
#include <glpk.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GR_PI 3.14159265358979323846

/* Same line: ||x^_a -+ x^_b|| <= GR_PARALLEL (unit vectors; an angle below
 * ~1e-12 rad), and in d = 2 boundary angles closer than GR_PARALLEL are one
 * (x and -x differ by rounding in atan2). The sliver cell between two such
 * lines is not a pattern of its own. */
#define GR_PARALLEL 1e-12
/* An LP interior point must have every strict sign above this (unit box). */
#define GR_INTERIOR 1e-10
/* Neurons from IPOPT with ||u_b|| <= GR_DROP max_b ||u_b|| are not columns. */
#define GR_DROP 1e-12

static double gr_dot(int d, const double *a, const double *b) {
    double s = 0.0;
    for (int j = 0; j < d; j++) s += a[j] * b[j];
    return s;
}

/* sigma(z) = z for z > 0, alpha z otherwise. */
static double gr_sigma(double z, double alpha) { return z > 0.0 ? z : alpha * z; }

void mf_global_settings_default(mf_global_settings *s) {
    s->sample = 0;
    s->max_patterns = 4096;
    s->seed = 1;
    s->tol = 1e-12;
    s->max_iter = 3000;
    s->max_seconds = 600.0;
}

const char *mf_global_settings_validate(const mf_global_settings *s) {
    if (!s) return "settings must not be NULL";
    if (s->sample < 0 || s->sample > 100000000)
        return "sample must be 0 (enumerate the arrangement) or a number of directions in "
               "[1, 10^8]";
    if (s->max_patterns < 2 || s->max_patterns > 1000000)
        return "max_patterns must be in [2, 10^6]";
    if (!(s->tol > 0.0 && s->tol <= 1e-2)) return "tol must be in (0, 1e-2]";
    if (s->max_iter < 1 || s->max_iter > 1000000) return "max_iter must be in [1, 10^6]";
    if (!(s->max_seconds > 0.0 && isfinite(s->max_seconds)))
        return "max_seconds must be a finite number > 0";
    return NULL;
}

void mf_global_result_free(mf_global_result *r) {
    if (!r) return;
    mf__free(r->theta);
    mf__free(r->lambda);
    mf__free(r);
}

/* ------------------------------------------------------------ patterns */

/* A set of distinct activation patterns D[i][k] = 1[<x_k, u> >= 0] on the
 * cell i, with a hash table (FNV-1a, open addressing, -1 = empty) for the
 * duplicate test. */
typedef struct gr_pats {
    int n, P, cap;
    unsigned char *D; /* [cap][n] */
    int *table;       /* [tcap] */
    size_t tcap;      /* power of two, >= 2 cap */
} gr_pats;

static void gr_pats_free(gr_pats *s) {
    mf__free(s->D);
    mf__free(s->table);
}

static uint64_t gr_hash(const unsigned char *p, int n) {
    uint64_t h = 1469598103934665603ULL;
    for (int k = 0; k < n; k++) h = (h ^ p[k]) * 1099511628211ULL;
    return h;
}

static void gr_pats_insert(gr_pats *s, int i) {
    size_t mask = s->tcap - 1, j = (size_t)gr_hash(s->D + (size_t)i * s->n, s->n) & mask;
    while (s->table[j] >= 0) j = (j + 1) & mask;
    s->table[j] = i;
}

/* Add pattern p [n] unless present. Returns 1 added, 0 already there,
 * MF_ERR_NOMEM (negated) on no memory: -MF_ERR_NOMEM. */
static int gr_pats_add(gr_pats *s, const unsigned char *p) {
    size_t n = (size_t)s->n;
    if (s->tcap) {
        size_t mask = s->tcap - 1, j = (size_t)gr_hash(p, s->n) & mask;
        for (; s->table[j] >= 0; j = (j + 1) & mask)
            if (!memcmp(s->D + (size_t)s->table[j] * n, p, n)) return 0;
    }
    if (s->P == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        unsigned char *D = mf__realloc(s->D, (size_t)cap * n);
        if (!D) return -MF_ERR_NOMEM;
        s->D = D;
        size_t tcap = 4 * (size_t)cap;
        int *t = mf__malloc(sizeof(int) * tcap);
        if (!t) return -MF_ERR_NOMEM;
        mf__free(s->table);
        s->table = t;
        s->tcap = tcap;
        s->cap = cap;
        for (size_t j = 0; j < tcap; j++) t[j] = -1;
        for (int i = 0; i < s->P; i++) gr_pats_insert(s, i);
    }
    memcpy(s->D + (size_t)s->P * n, p, n);
    gr_pats_insert(s, s->P++);
    return 1;
}

/* Add the pattern 1[<x_k, u> >= 0] of direction u [d], d = data->d (passed
 * so that a caller's fixed-size u is visibly large enough); p [n] workspace.
 * MF_OK or MF_ERR_NOMEM (with the message). */
static int gr_pats_add_dir(gr_pats *s, const mf_data *data, const double *u, int d,
                           unsigned char *p, mf_err *e) {
    for (int k = 0; k < data->n; k++) p[k] = gr_dot(d, data->x + (size_t)k * d, u) >= 0.0;
    if (gr_pats_add(s, p) < 0)
        return mf__err(e, MF_ERR_NOMEM, "global: out of memory storing patterns");
    return MF_OK;
}

static int gr_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* d = 2: the boundary angles of the arrangement, sorted in [0, 2 pi),
 * exact duplicates removed: each nonzero x_k gives atan2(x_k) +- pi/2.
 * ang: [2n]. Returns the number of angles (even: 2 per distinct line, up to
 * rounding of atan2 for parallel x). */
static int gr_angles(const double *x, int n, double *ang) {
    int m = 0;
    for (int k = 0; k < n; k++) {
        const double *p = x + 2 * (size_t)k;
        if (p[0] == 0.0 && p[1] == 0.0) continue;
        double phi = atan2(p[1], p[0]);
        for (int s = -1; s <= 1; s += 2) {
            double a = phi + s * (GR_PI / 2);
            if (a < 0) a += 2 * GR_PI;
            if (a >= 2 * GR_PI) a -= 2 * GR_PI;
            ang[m++] = a;
        }
    }
    qsort(ang, (size_t)m, sizeof(double), gr_cmp_double);
    int u = 0;
    for (int i = 0; i < m; i++)
        if (u == 0 || ang[i] - ang[u - 1] > GR_PARALLEL) ang[u++] = ang[i];
    if (u > 1 && ang[u - 1] - ang[0] >= 2 * GR_PI - GR_PARALLEL) u--;
    return u;
}

/* The arc i of the sorted angles ang[m]: [ang[i], ang[i+1]] (wrapping). */
static void gr_arc(const double *ang, int m, int i, double *t0, double *t1) {
    *t0 = ang[i];
    *t1 = i + 1 < m ? ang[i + 1] : ang[0] + 2 * GR_PI;
}

/* d = 2 enumeration: one pattern per arc, from the arc's midpoint. */
static int gr_enum_2d(const mf_data *data, gr_pats *s, int max_patterns, mf_err *e) {
    int n = data->n, rc = MF_OK;
    double *ang = mf__malloc(sizeof(double) * 2 * (size_t)n);
    unsigned char *p = mf__malloc((size_t)n);
    if (!ang || !p) {
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory enumerating patterns (n = %d)", n);
        goto done;
    }
    int m = gr_angles(data->x, n, ang);
    if (m > max_patterns) {
        rc = mf__err(e, MF_ERR_UNSUPPORTED,
                     "global: the arrangement has %d cells, more than max_patterns = %d; raise "
                     "max_patterns (--max-patterns)",
                     m, max_patterns);
        goto done;
    }
    for (int i = 0; i < m; i++) {
        double t0, t1;
        gr_arc(ang, m, i, &t0, &t1);
        double u[2] = {cos(0.5 * (t0 + t1)), sin(0.5 * (t0 + t1))};
        if ((rc = gr_pats_add_dir(s, data, u, 2, p, e))) goto done;
    }
done:
    mf__free(ang);
    mf__free(p);
    return rc;
}

/* The distinct lines of the data: r [L][d] unit normals, line[k] the line of
 * x_k and ori[k] = +-1 with x_k / ||x_k|| = ori[k] r[line[k]]. x_k != 0. */
static int gr_lines(const mf_data *data, double *r, int *line, int *ori) {
    int n = data->n, d = data->d, L = 0;
    for (int k = 0; k < n; k++) {
        const double *x = data->x + (size_t)k * d;
        double nx = mf__norm2(x, (size_t)d);
        int l = 0;
        for (; l < L; l++) {
            const double *rl = r + (size_t)l * d;
            double dm = 0.0, dp = 0.0;
            for (int j = 0; j < d; j++) {
                dm += (x[j] / nx - rl[j]) * (x[j] / nx - rl[j]);
                dp += (x[j] / nx + rl[j]) * (x[j] / nx + rl[j]);
            }
            if (fmin(dm, dp) <= GR_PARALLEL * GR_PARALLEL) {
                ori[k] = dm <= dp ? 1 : -1;
                break;
            }
        }
        if (l == L) {
            for (int j = 0; j < d; j++) r[(size_t)L * d + j] = x[j] / nx;
            ori[k] = 1;
            L++;
        }
        line[k] = l;
    }
    return L;
}

/* The number of distinct lines of the data (parallel x_n merged). */
static int gr_n_lines(const mf_data *data, int *L, mf_err *e) {
    int n = data->n;
    double *r = mf__malloc(sizeof(double) * (size_t)n * data->d);
    int *line = mf__malloc(sizeof(int) * (size_t)n), *ori = mf__malloc(sizeof(int) * (size_t)n);
    int rc = MF_OK;
    if (r && line && ori)
        *L = gr_lines(data, r, line, ori);
    else
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory counting lines (n = %d)", n);
    mf__free(r);
    mf__free(line);
    mf__free(ori);
    return rc;
}

/* max t s.t. sig_j <r_j, u> >= t (j < l), side <r_l, u> >= t, |u_i| <= 1,
 * t <= 1 by GLPK's simplex; on success (status optimal and every strict sign
 * re-checked > GR_INTERIOR by direct evaluation) u [d] is a point of the
 * cell and 1 is returned, else 0; -1 when GLPK fails outright. */
static int gr_cell_lp(const double *r, int d, const signed char *sig, int l, int side, double *u,
                      int *ia, int *ja, double *ar) {
    glp_prob *lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MAX);
    glp_add_cols(lp, d + 1);
    for (int j = 1; j <= d; j++) glp_set_col_bnds(lp, j, GLP_DB, -1.0, 1.0);
    glp_set_col_bnds(lp, d + 1, GLP_UP, 0.0, 1.0);
    glp_set_obj_coef(lp, d + 1, 1.0);
    glp_add_rows(lp, l + 1);
    int nz = 0;
    for (int i = 0; i <= l; i++) {
        double s = i < l ? sig[i] : side;
        glp_set_row_bnds(lp, i + 1, GLP_LO, 0.0, 0.0);
        for (int j = 0; j < d; j++) {
            ++nz;
            ia[nz] = i + 1, ja[nz] = j + 1, ar[nz] = s * r[(size_t)i * d + j];
        }
        ++nz;
        ia[nz] = i + 1, ja[nz] = d + 1, ar[nz] = -1.0;
    }
    glp_load_matrix(lp, nz, ia, ja, ar);
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    int ret = glp_simplex(lp, &parm), found = 0;
    if (ret != 0) {
        glp_delete_prob(lp);
        return -1;
    }
    if (glp_get_status(lp) == GLP_OPT && glp_get_obj_val(lp) > GR_INTERIOR) {
        for (int j = 0; j < d; j++) u[j] = glp_get_col_prim(lp, j + 1);
        found = 1;
        for (int i = 0; i <= l && found; i++) {
            double s = i < l ? sig[i] : side;
            if (!(s * gr_dot(d, r + (size_t)i * d, u) > GR_INTERIOR)) found = 0;
        }
    }
    glp_delete_prob(lp);
    return found;
}

/* d = 1 or d >= 3: the cells of the central arrangement of the L lines,
 * adding one hyperplane at a time; cells whose count would pass
 * max_patterns stop the enumeration with MF_ERR_UNSUPPORTED. */
static int gr_enum_lp(const mf_data *data, gr_pats *s, int max_patterns, int *n_lines, mf_err *e) {
    int n = data->n, d = data->d, rc = MF_OK, term = glp_term_out(GLP_OFF);
    double *r = mf__malloc(sizeof(double) * (size_t)n * d);
    int *line = mf__malloc(sizeof(int) * (size_t)n), *ori = mf__malloc(sizeof(int) * (size_t)n);
    /* cells: sign vectors [cap][n] (first l entries used) and points [cap][d] */
    size_t cap = 2 * (size_t)max_patterns + 2;
    signed char *sig = mf__malloc(cap * (size_t)n);
    double *pt = mf__malloc(sizeof(double) * cap * (size_t)d);
    size_t nzmax = (size_t)(n + 1) * (d + 1) + 1;
    int *ia = mf__malloc(sizeof(int) * nzmax), *ja = mf__malloc(sizeof(int) * nzmax);
    double *ar = mf__malloc(sizeof(double) * nzmax), *u = mf__malloc(sizeof(double) * d);
    unsigned char *p = mf__malloc((size_t)n);
    if (!r || !line || !ori || !sig || !pt || !ia || !ja || !ar || !u || !p) {
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory enumerating patterns (n = %d, d = %d)",
                     n, d);
        goto done;
    }
    int L = gr_lines(data, r, line, ori);
    *n_lines = L;
    size_t C = 1; /* the whole space, no signs yet; a point off every line */
    for (int j = 0; j < d; j++) pt[j] = 0.0;
    pt[0] = 1.0;
    for (int l = 0; l < L; l++) {
        const double *rl = r + (size_t)l * d;
        size_t C0 = C;
        for (size_t c = 0; c < C0; c++) {
            signed char *sc = sig + c * n;
            double *pc = pt + c * d, v = gr_dot(d, rl, pc);
            int keep = v > GR_INTERIOR ? 1 : v < -GR_INTERIOR ? -1 : 0;
            for (int side = -1; side <= 1; side += 2) {
                if (side == keep) continue;
                int f = gr_cell_lp(r, d, sc, l, side, u, ia, ja, ar);
                if (f < 0) {
                    rc = mf__err(e, MF_ERR_NUMERIC,
                                 "global: GLPK failed on a cell test (hyperplane %d of %d)", l + 1,
                                 L);
                    goto done;
                }
                if (!f) continue;
                if (keep == 0) { /* the cell's own point is on the line: move it */
                    keep = side;
                    memcpy(pc, u, sizeof(double) * d);
                    continue;
                }
                if (C == cap || (int)C >= max_patterns) {
                    rc = mf__err(e, MF_ERR_UNSUPPORTED,
                                 "global: the arrangement of the %d distinct data hyperplanes in "
                                 "R^%d has more than max_patterns = %d cells (found after %d "
                                 "hyperplanes); raise max_patterns (--max-patterns) or sample "
                                 "patterns (--sample K), which certifies only the lower bound",
                                 L, d, max_patterns, l + 1);
                    goto done;
                }
                memcpy(sig + C * n, sc, (size_t)l);
                sig[C * n + l] = (signed char)side;
                memcpy(pt + C * d, u, sizeof(double) * d);
                C++;
            }
            sc[l] = (signed char)(keep ? keep : 1);
        }
    }
    for (size_t c = 0; c < C; c++) {
        for (int k = 0; k < n; k++) p[k] = ori[k] * sig[c * n + line[k]] > 0;
        if (gr_pats_add(s, p) < 0) {
            rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory storing patterns");
            goto done;
        }
    }
done:
    glp_term_out(term);
    mf__free(r);
    mf__free(line);
    mf__free(ori);
    mf__free(sig);
    mf__free(pt);
    mf__free(ia);
    mf__free(ja);
    mf__free(ar);
    mf__free(u);
    mf__free(p);
    return rc;
}

/* Sampling: the patterns of K Gaussian directions (seed), stopping at
 * max_patterns distinct ones; *drawn the directions used. */
static int gr_sample(const mf_data *data, gr_pats *s, int K, uint64_t seed, int max_patterns,
                     int *drawn, mf_err *e) {
    int n = data->n, d = data->d, rc = MF_OK;
    double *u = mf__malloc(sizeof(double) * d);
    unsigned char *p = mf__malloc((size_t)n);
    mf_rng rng;
    mf_rng_seed(&rng, seed);
    *drawn = 0;
    if (!u || !p) {
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory sampling patterns");
        goto done;
    }
    for (int t = 0; t < K && s->P < max_patterns; t++) {
        for (int j = 0; j < d; j++) u[j] = mf_rng_normal(&rng);
        ++*drawn;
        if ((rc = gr_pats_add_dir(s, data, u, d, p, e))) goto done;
    }
done:
    mf__free(u);
    mf__free(p);
    return rc;
}

/* ------------------------------------------------------------ separability */

/* (C) is feasible iff the lifted points (Dt_i x_n)_{i=1..P} in R^{P d}, with
 * labels y, are linearly separable through the origin (docs/theory.md).
 * Decided by mf_svm_solve (exact NNLS, Gordan certificate). Returns MF_OK,
 * MF_ERR_NONSEPARABLE with a sentence, or the error of the solve. */
static int gr_separable(const mf_data *data, const gr_pats *s, double alpha, int enumerated,
                        mf_err *e) {
    int n = data->n, d = data->d, P = s->P;
    if ((size_t)P * d > (size_t)1 << 26)
        return mf__err(e, MF_ERR_UNSUPPORTED, "global: %d patterns in R^%d are too many", P, d);
    mf_data *lift = NULL;
    mf_svm_result *sv = NULL;
    int rc = mf_data_new(n, P * d, 0, &lift, e);
    if (rc) return rc;
    for (int k = 0; k < n; k++) {
        lift->y[k] = data->y[k];
        const double *x = data->x + (size_t)k * d;
        double *z = lift->x + (size_t)k * P * d;
        for (int i = 0; i < P; i++) {
            double t = s->D[(size_t)i * n + k] ? 1.0 : alpha;
            for (int j = 0; j < d; j++) z[(size_t)i * d + j] = t * x[j];
        }
    }
    rc = mf_svm_solve(lift, MF_SVM_L2, NULL, &sv, e);
    if (!rc && sv->status == MF_SVM_NONSEPARABLE)
        rc = mf__err(e, MF_ERR_NONSEPARABLE,
                     "global: %s is not separable by any bias-free two-layer net with this "
                     "activation%s: %d samples carry weights c >= 0, sum c = 1, with "
                     "sum_n c_n y_n sigma(<x_n, u>) = 0 for every u (|.| <= %.3g; Gordan)",
                     data->desc, enumerated ? "" : " and the sampled patterns", sv->n_support,
                     sv->certificate_norm);
    mf_svm_result_free(sv);
    mf_data_free(lift);
    return rc;
}

/* ------------------------------------------------------------ IPOPT on (C*) */

/* The dual QCQP (scaled data xs = x / S):
 *   variables  z = [lambda (n) | per block b: mu_b (n), h_b (d)],
 *              blocks b = 2 i + t: pattern i, sign s_b = +1 (t = 0) / -1 (t = 1)
 *   minimize   -sum_n lambda_n
 *   s.t.       E_b = h_b - s_b X^T Dt_i (y o lambda) - A_i^T mu_b = 0   (d rows)
 *              ||h_b||^2 <= 1                                            (1 row)
 *              lambda >= 0, mu >= 0.
 * Rows of block b: b (d + 1) + j (j < d) and b (d + 1) + d. */
typedef struct gr_qp {
    int n, d, P, B;
    const double *x, *y; /* xs [n][d], y [n] */
    const unsigned char *D;
    double alpha;
    double *coef;        /* [P][n]: y_n dt_{i,n} */
    int *nr, *rows;      /* cone rows of pattern i: rows[i n .. i n + nr[i]) (see gr_facets) */
    size_t *off;         /* [B + 1]: mu_b at z[off[b]], h_b right after it; off[B] = nv */
    int iters;           /* IPOPT iterations (intermediate callback) */
} gr_qp;

static size_t gr_mu(const gr_qp *q, int b) { return q->off[b]; }

/* The rows of A_i that define the cone K_i = {u : A_i u >= 0}. d = 2: its two
 * facets, the rows a_k = (2 D_ik - 1) x_k of extreme angle about their mean
 * direction (K_i has an interior, so the a_k span a pointed cone of angle
 * < pi and every a_k is a nonnegative combination of the two extremes; the
 * other rows are redundant and their mu are 0). Otherwise (or if the mean
 * direction is 0) every row. Smaller mu blocks only: the cone, the program's
 * value and the validity of the cell bound (any mu >= 0) are unchanged. */
static void gr_facets(gr_qp *q, int i) {
    int n = q->n, d = q->d, *rw = q->rows + (size_t)i * n;
    const unsigned char *Di = q->D + (size_t)i * n;
    q->nr[i] = n;
    for (int k = 0; k < n; k++) rw[k] = k;
    if (d != 2 || n <= 2) return;
    double r[2] = {0.0, 0.0};
    for (int k = 0; k < n; k++) {
        const double *x = q->x + 2 * (size_t)k;
        double sk = (Di[k] ? 1.0 : -1.0) / hypot(x[0], x[1]);
        r[0] += sk * x[0], r[1] += sk * x[1];
    }
    if (!(hypot(r[0], r[1]) > 1e-9)) return;
    int lo = -1, hi = -1;
    double alo = 0.0, ahi = 0.0;
    for (int k = 0; k < n; k++) {
        const double *x = q->x + 2 * (size_t)k;
        double sk = Di[k] ? 1.0 : -1.0;
        double a = atan2(sk * (r[0] * x[1] - r[1] * x[0]), sk * (r[0] * x[0] + r[1] * x[1]));
        if (lo < 0 || a < alo) lo = k, alo = a;
        if (hi < 0 || a > ahi) hi = k, ahi = a;
    }
    rw[0] = lo;
    rw[1] = hi;
    q->nr[i] = lo == hi ? 1 : 2;
}

static Bool gr_f(Index nv, Number *z, Bool nz, Number *obj, UserDataPtr up) {
    (void)nv, (void)nz;
    const gr_qp *q = up;
    double s = 0.0;
    for (int k = 0; k < q->n; k++) s -= z[k];
    *obj = s;
    return TRUE;
}

static Bool gr_grad_f(Index nv, Number *z, Bool nz, Number *g, UserDataPtr up) {
    (void)z, (void)nz;
    const gr_qp *q = up;
    for (Index i = 0; i < nv; i++) g[i] = i < q->n ? -1.0 : 0.0;
    return TRUE;
}

static Bool gr_g(Index nv, Number *z, Bool nz, Index m, Number *g, UserDataPtr up) {
    (void)nv, (void)nz, (void)m;
    const gr_qp *q = up;
    int n = q->n, d = q->d;
    for (int b = 0; b < q->B; b++) {
        int i = b / 2;
        double sb = b % 2 ? -1.0 : 1.0;
        const double *c = q->coef + (size_t)i * n, *mu = z + gr_mu(q, b), *h = mu + q->nr[i];
        const unsigned char *Di = q->D + (size_t)i * n;
        const int *rw = q->rows + (size_t)i * n;
        double *gb = g + (size_t)b * (d + 1);
        for (int j = 0; j < d; j++) gb[j] = h[j];
        for (int k = 0; k < n; k++)
            cblas_daxpy(d, -sb * c[k] * z[k], q->x + (size_t)k * d, 1, gb, 1);
        for (int a = 0; a < q->nr[i]; a++) {
            int k = rw[a];
            cblas_daxpy(d, Di[k] ? -mu[a] : mu[a], q->x + (size_t)k * d, 1, gb, 1);
        }
        gb[d] = gr_dot(d, h, h);
    }
    return TRUE;
}

/* Jacobian: equality row (b, j): h_bj 1; lambda_k -s_b c_ik x_kj;
 * mu_ba -(2 D_ik - 1) x_kj for the cone row k = rows_i[a]. Quadratic row b:
 * h_bj 2 h_bj. */
static Bool gr_jac(Index nv, Number *z, Bool nz, Index m, Index ne, Index *iR, Index *jC,
                   Number *val, UserDataPtr up) {
    (void)nv, (void)nz, (void)m, (void)ne;
    const gr_qp *q = up;
    int n = q->n, d = q->d;
    size_t t = 0;
    for (int b = 0; b < q->B; b++) {
        int i = b / 2, row = b * (d + 1);
        double sb = b % 2 ? -1.0 : 1.0;
        int nr = q->nr[i];
        size_t mu = gr_mu(q, b), h = mu + (size_t)nr;
        const double *c = q->coef + (size_t)i * n;
        const unsigned char *Di = q->D + (size_t)i * n;
        const int *rw = q->rows + (size_t)i * n;
        for (int j = 0; j < d; j++) {
            if (!val) {
                iR[t] = row + j, jC[t++] = (Index)(h + j);
                for (int k = 0; k < n; k++) iR[t] = row + j, jC[t++] = k;
                for (int a = 0; a < nr; a++) iR[t] = row + j, jC[t++] = (Index)(mu + a);
            } else {
                val[t++] = 1.0;
                for (int k = 0; k < n; k++) val[t++] = -sb * c[k] * q->x[(size_t)k * d + j];
                for (int a = 0; a < nr; a++)
                    val[t++] = (Di[rw[a]] ? -1.0 : 1.0) * q->x[(size_t)rw[a] * d + j];
            }
        }
        for (int j = 0; j < d; j++) {
            if (!val)
                iR[t] = row + d, jC[t++] = (Index)(h + j);
            else
                val[t++] = 2.0 * z[h + j];
        }
    }
    return TRUE;
}

/* Hessian of the Lagrangian: 2 kappa_b on the diagonal entries of h_b. */
static Bool gr_hess(Index nv, Number *z, Bool nz, Number of, Index m, Number *mult, Bool nl,
                    Index ne, Index *iR, Index *jC, Number *val, UserDataPtr up) {
    (void)nv, (void)z, (void)nz, (void)of, (void)m, (void)nl, (void)ne;
    const gr_qp *q = up;
    int d = q->d;
    size_t t = 0;
    for (int b = 0; b < q->B; b++) {
        size_t h = gr_mu(q, b) + (size_t)q->nr[b / 2];
        for (int j = 0; j < d; j++, t++) {
            if (!val)
                iR[t] = jC[t] = (Index)(h + j);
            else
                val[t] = 2.0 * mult[b * (d + 1) + d];
        }
    }
    return TRUE;
}

/* IPOPT's per-iteration callback: records the iteration count. */
static Bool gr_iter(Index mode, Index it, Number obj, Number ipr, Number idu, Number mu, Number dn,
                    Number reg, Number adu, Number apr, Index ls, UserDataPtr up) {
    (void)mode, (void)obj, (void)ipr, (void)idu, (void)mu, (void)dn, (void)reg, (void)adu;
    (void)apr, (void)ls;
    ((gr_qp *)up)->iters = it;
    return TRUE;
}

/* Run IPOPT; z [nv] is the solution, mult [B (d + 1)] the constraint
 * multipliers. Returns MF_OK (whatever IPOPT's status: the certificate says
 * how good the point is) or an error for a hard failure. */
static int gr_ipopt(gr_qp *q, const mf_global_settings *s, double *z, double *mult, int *status,
                    int *iters, double *obj, mf_err *e) {
    int n = q->n, d = q->d, B = q->B;
    size_t nv = q->off[B], m = (size_t)B * (d + 1), nh = (size_t)B * d;
    size_t nj = (size_t)B * ((size_t)d * ((size_t)n + 1) + d) + (nv - (size_t)n - nh) * d;
    if (nv > INT32_MAX / 2 || nj > INT32_MAX / 2)
        return mf__err(e, MF_ERR_UNSUPPORTED, "global: the dual program is too large for IPOPT "
                                              "(%zu variables, %zu Jacobian entries)",
                       nv, nj);
    double *xl = mf__malloc(sizeof(double) * nv), *xu = mf__malloc(sizeof(double) * nv);
    double *gl = mf__malloc(sizeof(double) * m), *gu = mf__malloc(sizeof(double) * m);
    int rc = MF_OK;
    if (!xl || !xu || !gl || !gu) {
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory setting up IPOPT (%zu variables)", nv);
        goto done;
    }
    for (size_t i = 0; i < nv; i++) {
        xl[i] = 0.0;
        xu[i] = 2e19;
    }
    for (int b = 0; b < B; b++) {
        size_t h = gr_mu(q, b) + (size_t)q->nr[b / 2];
        for (int j = 0; j < d; j++) xl[h + j] = -2e19;
        for (int j = 0; j <= d; j++) {
            gl[(size_t)b * (d + 1) + j] = j < d ? 0.0 : -2e19;
            gu[(size_t)b * (d + 1) + j] = j < d ? 0.0 : 1.0;
        }
    }
    IpoptProblem ip = CreateIpoptProblem((Index)nv, xl, xu, (Index)m, gl, gu, (Index)nj, (Index)nh,
                                         0, gr_f, gr_g, gr_grad_f, gr_jac, gr_hess);
    if (!ip) {
        rc = mf__err(e, MF_ERR_NUMERIC, "global: IPOPT refused the problem (%zu variables)", nv);
        goto done;
    }
    AddIpoptStrOption(ip, "sb", "yes");
    AddIpoptIntOption(ip, "print_level", 0);
    AddIpoptNumOption(ip, "tol", s->tol);
    AddIpoptIntOption(ip, "max_iter", s->max_iter);
    AddIpoptNumOption(ip, "max_cpu_time", s->max_seconds);
    AddIpoptStrOption(ip, "mu_strategy", "adaptive");
    AddIpoptStrOption(ip, "jac_c_constant", "yes");
    SetIntermediateCallback(ip, gr_iter);
    AddIpoptIntOption(ip, "mumps_pivot_order", 6);
    AddIpoptNumOption(ip, "bound_relax_factor", 0.0);
    for (size_t i = 0; i < nv; i++) z[i] = 0.0;
    for (int k = 0; k < n; k++) z[k] = 1.0 / n;
    Number f = 0.0;
    int st = IpoptSolve(ip, z, NULL, &f, mult, NULL, NULL, q);
    FreeIpoptProblem(ip);
    *status = st;
    *obj = f;
    *iters = q->iters;
    if (st == Insufficient_Memory)
        rc = mf__err(e, MF_ERR_NOMEM, "global: IPOPT ran out of memory (%zu variables)", nv);
    else if (st <= Not_Enough_Degrees_Of_Freedom)
        rc = mf__err(e, MF_ERR_NUMERIC, "global: IPOPT failed on the dual program (status %d)", st);
done:
    mf__free(xl);
    mf__free(xu);
    mf__free(gl);
    mf__free(gu);
    return rc;
}

/* ------------------------------------------------------------ certificate */

/* rho(c) = max_{||u|| <= 1} |sum_k c_k sigma(<x_k, u>)| exactly (up to
 * rounding) for d <= 2. d = 1: the larger of |f(1)|, |f(-1)|. d = 2: on
 * each arc of the arrangement f(u) = <g, u> with g = sum_k c_k t_k x_k,
 * t_k = 1 or alpha by the side of x_k; its maximum on the arc is ||g|| when
 * the direction of g lies in the arc, else at an end point (f is evaluated
 * there directly too). ang: [2n] workspace. */
static double gr_rho_exact(const double *x, int n, int d, const double *c, double alpha,
                           double *ang) {
    double best = 0.0;
    if (d == 1) {
        for (int s = -1; s <= 1; s += 2) {
            double f = 0.0;
            for (int k = 0; k < n; k++) f += c[k] * gr_sigma(s * x[k], alpha);
            best = fmax(best, fabs(f));
        }
        return best;
    }
    int m = gr_angles(x, n, ang);
    for (int i = 0; i < m; i++) {
        double t0, t1, g[2] = {0.0, 0.0}, f0 = 0.0;
        gr_arc(ang, m, i, &t0, &t1);
        double um[2] = {cos(0.5 * (t0 + t1)), sin(0.5 * (t0 + t1))};
        double u0[2] = {cos(t0), sin(t0)}, u1[2] = {cos(t1), sin(t1)};
        for (int k = 0; k < n; k++) {
            const double *xk = x + 2 * (size_t)k;
            double t = gr_dot(2, xk, um) > 0.0 ? 1.0 : alpha;
            g[0] += c[k] * t * xk[0];
            g[1] += c[k] * t * xk[1];
            f0 += c[k] * gr_sigma(gr_dot(2, xk, u0), alpha);
        }
        best = fmax(best, fabs(f0));
        for (int s = -1; s <= 1; s += 2) {
            double gv[2] = {s * g[0], s * g[1]}, psi = atan2(gv[1], gv[0]);
            while (psi < t0) psi += 2 * GR_PI;
            while (psi >= t0 + 2 * GR_PI) psi -= 2 * GR_PI;
            double v = psi <= t1 ? hypot(gv[0], gv[1]) : fmax(gr_dot(2, gv, u0), gr_dot(2, gv, u1));
            best = fmax(best, v);
        }
    }
    return best;
}

/* The cell bound max_b ||s_b X^T Dt_i (y o lambda) + A_i^T mu_b|| on the
 * original data, mu_b = max(0, IPOPT's mu_b). h: [d] workspace. */
static double gr_rho_cells(const gr_qp *q, const mf_data *data, const double *lambda,
                           const double *z, double *h) {
    int n = q->n, d = q->d;
    double best = 0.0;
    for (int b = 0; b < q->B; b++) {
        int i = b / 2;
        double sb = b % 2 ? -1.0 : 1.0;
        const double *c = q->coef + (size_t)i * n, *mu = z + gr_mu(q, b);
        const unsigned char *Di = q->D + (size_t)i * n;
        const int *rw = q->rows + (size_t)i * n;
        for (int j = 0; j < d; j++) h[j] = 0.0;
        for (int k = 0; k < n; k++)
            cblas_daxpy(d, sb * c[k] * lambda[k], data->x + (size_t)k * d, 1, h, 1);
        for (int a = 0; a < q->nr[i]; a++) {
            double mk = mu[a] > 0.0 ? mu[a] : 0.0;
            cblas_daxpy(d, Di[rw[a]] ? mk : -mk, data->x + (size_t)rw[a] * d, 1, h, 1);
        }
        best = fmax(best, mf__norm2(h, (size_t)d));
    }
    return best;
}

/* The balanced network of the neurons j with c[j] > 0: u_j = c_j dir_j
 * (dir_j unit [d], sign sg[j]), w_j = sqrt(c_j) dir_j, a_j = sg_j sqrt(c_j),
 * as relu2:width=M,alpha=alpha (M = number of such j). Its margins are
 * evaluated by mf_model_forward; *gamma = q_min / ||theta||^2, then theta
 * is rescaled to q_min = 1 and *qmin is re-evaluated. *theta (new) and
 * *model (new) on MF_OK; M = 0 or q_min <= 0 give *gamma = 0, *theta NULL. */
static int gr_network(const mf_data *data, double alpha, int J, const double *dir, const double *c,
                      const signed char *sg, mf_model **model, double **theta, double *gamma,
                      double *qmin, mf_err *e) {
    int n = data->n, d = data->d, M = 0;
    *model = NULL;
    *theta = NULL;
    *gamma = 0.0;
    *qmin = 0.0;
    for (int j = 0; j < J; j++) M += c[j] > 0.0;
    if (M == 0) return MF_OK;
    char spec[MF_SPEC_LEN], a[40];
    mf_format_double(a, sizeof a, alpha);
    snprintf(spec, sizeof spec, "relu2:width=%d,alpha=%s", M, a);
    mf_model *mo = NULL;
    mf_work *w = NULL;
    double *th = NULL, *out = NULL;
    int rc = mf_model_parse(spec, d, 0, &mo, e);
    if (rc) return rc;
    th = mf__malloc(sizeof(double) * mo->n_params);
    out = mf__malloc(sizeof(double) * (size_t)n);
    if (!th || !out) {
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory building the network (width %d)", M);
        goto done;
    }
    rc = mf_work_new(mo, n, &w, e);
    if (rc) goto done;
    double *W = th + mo->layers[0].offset, *av = th + mo->layers[1].offset;
    for (int j = 0, k = 0; j < J; j++) {
        if (!(c[j] > 0.0)) continue;
        double r = sqrt(c[j]);
        for (int i = 0; i < d; i++) W[(size_t)k * d + i] = r * dir[(size_t)j * d + i];
        av[k++] = sg[j] * r;
    }
    mf_model_forward(mo, w, th, data->x, n, out);
    double q = mf_margins(data, out, 1, NULL), nn = mf_param_norm(mo, th);
    if (q > 0.0 && nn > 0.0 && isfinite(q)) {
        *gamma = q / (nn * nn);
        double f = 1.0 / sqrt(q);
        for (size_t i = 0; i < mo->n_params; i++) th[i] *= f;
        mf_model_forward(mo, w, th, data->x, n, out);
        *qmin = mf_margins(data, out, 1, NULL);
        *model = mo;
        *theta = th;
        mo = NULL;
        th = NULL;
    }
done:
    mf_work_free(w);
    mf_model_free(mo);
    mf__free(th);
    mf__free(out);
    return rc;
}

/* The LP matrix entry of neuron j on sample k: s_j y_k sigma(<x_k, dir_j>). */
static double gr_entry(const mf_data *data, double alpha, const double *dir,
                       const signed char *sg, int j, int k) {
    int d = data->d;
    return sg[j] * data->y[k] *
           gr_sigma(gr_dot(d, data->x + (size_t)k * d, dir + (size_t)j * d), alpha);
}

/*
 * Re-weight fixed neuron directions: GLPK's dual simplex on
 *   min sum_j c_j  s.t.  sum_j c_j s_j y_k sigma(<x_k, dir_j>) >= 1, c >= 0
 * (original data; the all-zero basis is dual feasible), a vertex with at
 * most n nonzero c_j. GLPK's answer satisfies the rows only to its
 * tolerance (~1e-9 relative, basic c_j can come out slightly negative), so
 * the vertex is polished: with S = {j : c_j > 1e-12 max c} and the rows T
 * whose activity is within 1e-7 of 1, c_S = argmin ||A_TS c_S - 1|| by
 * LAPACK dgels (QR; the minimum-norm solution when |T| < |S|), kept in cp
 * when every entry is positive (else cp = 0). c, cp [J] out (c clipped at
 * 0). Returns 1 when GLPK solved the LP (*obj its value), 0 when not, -1 on
 * no memory.
 */
static int gr_reweight(const mf_data *data, double alpha, int J, const double *dir,
                       const signed char *sg, double *c, double *cp, double *obj) {
    int n = data->n, term = glp_term_out(GLP_OFF), ok = 0;
    size_t cap = (size_t)n * J + 1;
    int *ia = mf__malloc(sizeof(int) * cap), *ja = mf__malloc(sizeof(int) * cap);
    double *ar = mf__malloc(sizeof(double) * cap);
    int *S = mf__malloc(sizeof(int) * (size_t)J), *T = mf__malloc(sizeof(int) * (size_t)n);
    double *A = mf__malloc(sizeof(double) * cap);
    double *rhs = mf__malloc(sizeof(double) * (size_t)(n > J ? n : J));
    glp_prob *lp = NULL;
    for (int j = 0; j < J; j++) cp[j] = 0.0;
    if (!ia || !ja || !ar || !S || !T || !A || !rhs) {
        ok = -1;
        goto done;
    }
    lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    glp_add_rows(lp, n);
    for (int k = 1; k <= n; k++) glp_set_row_bnds(lp, k, GLP_LO, 1.0, 0.0);
    glp_add_cols(lp, J);
    int nz = 0;
    for (int j = 0; j < J; j++) {
        glp_set_col_bnds(lp, j + 1, GLP_LO, 0.0, 0.0);
        glp_set_obj_coef(lp, j + 1, 1.0);
        for (int k = 0; k < n; k++) {
            double v = gr_entry(data, alpha, dir, sg, j, k);
            if (v == 0.0) continue;
            ++nz;
            ia[nz] = k + 1, ja[nz] = j + 1, ar[nz] = v;
        }
    }
    glp_load_matrix(lp, nz, ia, ja, ar);
    glp_scale_prob(lp, GLP_SF_AUTO);
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.meth = GLP_DUALP;
    if (glp_simplex(lp, &parm) != 0 || glp_get_status(lp) != GLP_OPT) goto done;
    ok = 1;
    *obj = glp_get_obj_val(lp);
    double cmax = 0.0;
    for (int j = 0; j < J; j++) {
        double v = glp_get_col_prim(lp, j + 1);
        c[j] = v > 0.0 ? v : 0.0;
        cmax = fmax(cmax, c[j]);
    }
    int ns = 0, nt = 0;
    for (int j = 0; j < J; j++)
        if (c[j] > 1e-12 * cmax) S[ns++] = j;
    for (int k = 0; k < n; k++)
        if (glp_get_row_prim(lp, k + 1) <= 1.0 + 1e-7) T[nt++] = k;
    if (ns == 0 || nt == 0) goto done;
    /* A_TS column-major [nt][ns], rhs [max(nt, ns)] */
    for (int a = 0; a < ns; a++)
        for (int b = 0; b < nt; b++)
            A[(size_t)a * nt + b] = gr_entry(data, alpha, dir, sg, S[a], T[b]);
    for (int b = 0; b < (nt > ns ? nt : ns); b++) rhs[b] = b < nt ? 1.0 : 0.0;
    if (LAPACKE_dgels(LAPACK_COL_MAJOR, 'N', nt, ns, 1, A, nt, rhs, nt > ns ? nt : ns) != 0)
        goto done;
    int pos = 1;
    for (int a = 0; a < ns; a++) pos &= rhs[a] > 0.0 && isfinite(rhs[a]);
    for (int a = 0; pos && a < ns; a++) cp[S[a]] = rhs[a];
done:
    if (lp) glp_delete_prob(lp);
    glp_term_out(term);
    mf__free(ia);
    mf__free(ja);
    mf__free(ar);
    mf__free(S);
    mf__free(T);
    mf__free(A);
    mf__free(rhs);
    return ok;
}

/* ------------------------------------------------------------ the solve */

static int gr_check(const mf_model *m, const mf_data *data, mf_err *e) {
    if (!m || !data) return mf__err(e, MF_ERR_INVALID, "global: model and data must not be NULL");
    if (m->kind != MF_MODEL_RELU2)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "global: the certified global optimum is for relu2 models only (got %s)",
                       m->spec);
    if (m->bias)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "global: %s has a hidden bias; the convex program needs a bias-free net",
                       m->spec);
    if (m->fix_outer)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "global: %s has fixed outer weights (degree 1), not problem (P) of a "
                       "two-layer net with trained outer weights",
                       m->spec);
    if (!(m->alpha >= 0.0 && m->alpha < 1.0))
        return mf__err(e, MF_ERR_INVALID,
                       "global: alpha = %.17g must be in [0, 1) (alpha = 1 is a linear model: "
                       "use marginflow svm)",
                       m->alpha);
    if (data->num_classes != 0 || !data->y)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "global: needs binary data with labels -1/+1 (%s has %d classes)",
                       data->desc, data->num_classes);
    if (data->n < 1 || data->d < 1 || !data->x)
        return mf__err(e, MF_ERR_INVALID, "global: empty data set (n = %d, d = %d)", data->n,
                       data->d);
    if (m->d != data->d)
        return mf__err(e, MF_ERR_DIM, "global: model input dimension %d, data dimension %d", m->d,
                       data->d);
    for (int k = 0; k < data->n; k++) {
        if (data->y[k] != 1.0 && data->y[k] != -1.0)
            return mf__err(e, MF_ERR_INVALID, "global: label of sample %d is %.17g, not -1 or +1",
                           k + 1, data->y[k]);
        const double *x = data->x + (size_t)k * data->d;
        int zero = 1;
        for (int j = 0; j < data->d; j++) {
            if (!isfinite(x[j]))
                return mf__err(e, MF_ERR_INVALID, "global: feature %d of sample %d is not finite",
                               j + 1, k + 1);
            if (x[j] != 0.0) zero = 0;
        }
        if (zero)
            return mf__err(e, MF_ERR_NONSEPARABLE,
                           "global: sample %d is x = 0, where every bias-free net outputs 0: no "
                           "margin is possible",
                           k + 1);
    }
    return MF_OK;
}

int mf_global_relu2(const mf_model *m, const mf_data *data, const mf_global_settings *settings,
                    mf_global_result **out, mf_err *e) {
    if (out) *out = NULL;
    if (!out) return mf__err(e, MF_ERR_INVALID, "global: out must not be NULL");
    int rc = gr_check(m, data, e);
    if (rc) return rc;
    mf_global_settings def;
    mf_global_settings_default(&def);
    const mf_global_settings *s = settings ? settings : &def;
    const char *why = mf_global_settings_validate(s);
    if (why) return mf__err(e, MF_ERR_INVALID, "global settings: %s", why);

    int n = data->n, d = data->d;
    double alpha = m->alpha, t0 = mf__now();
    gr_pats pats = {n, 0, 0, NULL, NULL, 0};
    gr_qp q = {0};
    mf_global_result *r = mf__calloc(1, sizeof *r);
    double *xs = NULL, *z = NULL, *mult = NULL, *dir = NULL, *cw = NULL, *cl = NULL, *ws = NULL;
    double *cp = NULL, *net_th[3] = {NULL, NULL, NULL};
    signed char *sg = NULL;
    mf_model *net_m[3] = {NULL, NULL, NULL};
    if (!r) return mf__err(e, MF_ERR_NOMEM, "global: out of memory");
    r->n = n;
    r->d = d;
    r->alpha = alpha;
    r->enumerated = s->sample == 0;
    if (s->sample)
        rc = gr_sample(data, &pats, s->sample, s->seed, s->max_patterns, &r->n_samples, e);
    else if (d == 2)
        rc = gr_enum_2d(data, &pats, s->max_patterns, e);
    else
        rc = gr_enum_lp(data, &pats, s->max_patterns, &r->n_lines, e);
    if (rc) goto done;
    r->n_patterns = pats.P;
    if (!r->n_lines) rc = gr_n_lines(data, &r->n_lines, e);
    if (!rc) rc = gr_separable(data, &pats, alpha, r->enumerated, e);
    if (rc) goto done;
    double t1 = mf__now();
    r->seconds_patterns = t1 - t0;

    /* (C*) on data scaled to max_n ||x_n|| = 1 */
    int P = pats.P, B = 2 * P;
    size_t nv = 0, nm = (size_t)B * (d + 1);
    double S = 0.0;
    for (int k = 0; k < n; k++) S = fmax(S, mf__norm2(data->x + (size_t)k * d, (size_t)d));
    xs = mf__malloc(sizeof(double) * (size_t)n * d);
    q.coef = mf__malloc(sizeof(double) * (size_t)P * n);
    q.nr = mf__malloc(sizeof(int) * (size_t)P);
    q.rows = mf__malloc(sizeof(int) * (size_t)P * n);
    q.off = mf__malloc(sizeof(size_t) * ((size_t)B + 1));
    mult = mf__malloc(sizeof(double) * nm);
    dir = mf__malloc(sizeof(double) * (size_t)B * d);
    cw = mf__malloc(sizeof(double) * (size_t)B);
    cl = mf__malloc(sizeof(double) * (size_t)B);
    cp = mf__malloc(sizeof(double) * (size_t)B);
    sg = mf__malloc((size_t)B);
    ws = mf__malloc(sizeof(double) * (3 * (size_t)n + d)); /* c [n], then angles [2n] or h [d] */
    r->lambda = mf__malloc(sizeof(double) * (size_t)n);
    if (!xs || !q.coef || !q.nr || !q.rows || !q.off || !mult || !dir || !cw || !cl || !cp || !sg || !ws || !r->lambda) {
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory for the dual program (%d patterns)",
                     P);
        goto done;
    }
    for (size_t i = 0; i < (size_t)n * d; i++) xs[i] = data->x[i] / S;
    for (int i = 0; i < P; i++)
        for (int k = 0; k < n; k++)
            q.coef[(size_t)i * n + k] = data->y[k] * (pats.D[(size_t)i * n + k] ? 1.0 : alpha);
    q.n = n, q.d = d, q.P = P, q.B = B, q.x = xs, q.y = data->y, q.D = pats.D, q.alpha = alpha;
    nv = (size_t)n;
    for (int b = 0; b < B; b++) {
        if (b % 2 == 0) gr_facets(&q, b / 2);
        q.off[b] = nv;
        nv += (size_t)q.nr[b / 2] + (size_t)d;
    }
    q.off[B] = nv;
    z = mf__malloc(sizeof(double) * nv);
    if (!z) {
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory for the dual program (%zu variables)",
                     nv);
        goto done;
    }
    rc = gr_ipopt(&q, s, z, mult, &r->solver_status, &r->iterations, &r->solver_objective, e);
    if (rc) goto done;
    snprintf(r->solver, sizeof r->solver,
             "IPOPT %s (MUMPS) on the dual QCQP; GLPK %d.%d simplex re-weighting", IPOPT_VERSION,
             GLP_MAJOR_VERSION, GLP_MINOR_VERSION);

    /* primal neurons u_b = -eta_b (scaled data; the same directions for x) */
    double umax = 0.0;
    for (int b = 0; b < B; b++) {
        double *u = dir + (size_t)b * d;
        for (int j = 0; j < d; j++) u[j] = -mult[(size_t)b * (d + 1) + j];
        cw[b] = mf__norm2(u, (size_t)d);
        umax = fmax(umax, cw[b]);
        sg[b] = b % 2 ? -1 : 1;
    }
    int J = 0;
    for (int b = 0; b < B; b++) {
        if (!(cw[b] > GR_DROP * umax) || !isfinite(cw[b])) continue;
        for (int j = 0; j < d; j++) dir[(size_t)J * d + j] = dir[(size_t)b * d + j] / cw[b];
        cw[J] = cw[b] / S; /* ||u|| in the units of x: f_u(x) = f_{u S}(x / S) */
        sg[J++] = sg[b];
    }
    /* candidates: IPOPT's weights, the LP vertex, the polished vertex; the
     * best by evaluated gamma, a vertex (width <= n) unless IPOPT's weights
     * are better beyond rounding (1e-13 relative) */
    int lp = J ? gr_reweight(data, alpha, J, dir, sg, cl, cp, &r->lp_objective) : 0;
    if (lp < 0) {
        rc = mf__err(e, MF_ERR_NOMEM, "global: out of memory for the re-weighting LP");
        goto done;
    }
    const double *cand[3] = {cw, lp ? cl : NULL, lp ? cp : NULL};
    double g[3] = {0, 0, 0}, qm[3] = {0, 0, 0};
    for (int k = 0; k < 3 && !rc; k++)
        if (cand[k]) rc = gr_network(data, alpha, J, dir, cand[k], sg, &net_m[k], &net_th[k], &g[k], &qm[k], e);
    if (rc) goto done;
    int best = g[2] > g[1] ? 2 : 1;
    if (!net_th[best] || g[best] < g[0] * (1.0 - 1e-13)) best = 0;
    mf_model *mo = net_m[best];
    if (!mo) {
        rc = mf__err(e, MF_ERR_NUMERIC,
                     "global: IPOPT (status %d) returned no network with positive margins",
                     r->solver_status);
        goto done;
    }
    r->theta = net_th[best];
    net_th[best] = NULL;
    r->gamma = r->gamma_lower = g[best];
    r->q_min = qm[best];
    r->width = mo->width;
    r->n_params = mo->n_params;
    snprintf(r->spec, sizeof r->spec, "%s", mo->spec);
    double nn = mf_param_norm(mo, r->theta);
    r->path_norm = 0.5 * nn * nn;
    double t2 = mf__now();
    r->seconds_solve = t2 - t1;

    /* dual bound from IPOPT's lambda, evaluated on the original data */
    double sum = 0.0, lmax = 0.0;
    for (int k = 0; k < n; k++) {
        r->lambda[k] = z[k] > 0.0 ? z[k] : 0.0;
        sum += r->lambda[k];
        lmax = fmax(lmax, r->lambda[k]);
    }
    for (int k = 0; k < n; k++) ws[k] = r->lambda[k] * data->y[k];
    r->rho_cells = gr_rho_cells(&q, data, r->lambda, z, ws + n);
    r->rho = d <= 2 ? gr_rho_exact(data->x, n, d, ws, alpha, ws + n) : r->rho_cells;
    r->upper_certified = d <= 2 || r->enumerated;
    if (!(sum > 0.0) || !(r->rho > 0.0) || !isfinite(r->rho) || !isfinite(sum)) {
        rc = mf__err(e, MF_ERR_NUMERIC,
                     "global: the dual point of IPOPT (status %d) gives no finite bound (sum "
                     "lambda = %g, rho = %g)",
                     r->solver_status, sum, r->rho);
        goto done;
    }
    r->gamma_upper = r->rho / (2.0 * sum);
    r->gap = (r->gamma_upper - r->gamma_lower) / r->gamma_upper;
    for (int k = 0; k < n; k++) {
        r->n_support += r->lambda[k] > 1e-9 * lmax;
        r->lambda[k] /= r->rho;
    }
    r->seconds_certify = mf__now() - t2;
done:
    gr_pats_free(&pats);
    mf__free(q.coef);
    mf__free(q.nr);
    mf__free(q.rows);
    mf__free(q.off);
    mf__free(xs);
    mf__free(z);
    mf__free(mult);
    mf__free(dir);
    mf__free(cw);
    mf__free(cl);
    mf__free(sg);
    mf__free(ws);
    mf__free(cp);
    for (int k = 0; k < 3; k++) {
        mf__free(net_th[k]);
        mf_model_free(net_m[k]);
    }
    if (rc) {
        mf_global_result_free(r);
        return rc;
    }
    *out = r;
    return MF_OK;
}

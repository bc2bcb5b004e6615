/*
 * flow.c -- gradient flow of the training loss, integrated to a stated
 * accuracy at any loss level (optimizer `flow`, issue 11).
 *
 * The problem. Gradient flow dtheta/dt = -grad Loss ([LL20] sec. 4) is
 * integrated in the rescaled time tau, dtau = Loss dt, where it reads
 *     dtheta/dtau = f(theta) = -G(theta),   G = grad Loss / Loss = grad log Loss,
 * i.e. the gradient flow of log Loss, whose speed does not vanish as the loss
 * falls (docs/theory.md sec. 2). With the softmax weights w_n = -ell'(q_n) / Loss
 * (mf_loss_eval), G = -sum_n w_n grad q_n.
 *
 * What decides the dynamics deep in training are the loss weights w_n, and
 * they depend on the margin differences q_n - q_min in absolute units: for
 * an L-homogeneous net q_n - q_min = ||theta||^L (gamma_n - gamma_min), so a
 * direction error that is small relative to theta is huge for the weights.
 * Each step's local error is therefore controlled in two metrics:
 *   (a) ||y - yhat|| <= tol (1 + ||theta||)    (the parameters, as before),
 *   (b) sum_n |w_n(y) - w_n(yhat)| <= tol_w     (the loss weights, l1),
 * where y, yhat are the two solutions of an embedded pair and
 * tol_w = max(tol, 32 eps (1 + |q_min|)): weights computed in double carry a
 * rounding error of about eps |q_min| (from the margins themselves), so
 * below that floor the weights are not defined to more digits. (b) is the
 * l1 distance of two probability vectors; since dw_n = -w_n (dq_n - sum_k
 * w_k dq_k), it bounds the weighted error of the margin differences
 * q_n - q_min, in absolute units, of every sample that carries weight: what
 * (a) alone misses once ||theta||^L is large. For multi-class data the
 * weights are those of the (sample, class) terms of the loss (the entries
 * of dLoss/dout / Loss off the label), the same construction.
 * (a) holds for every step, (b) for the stiff steps below. What made the
 * former integrator drift at deep losses (issue 11) was not the size of its
 * local errors but an explicit method running at the edge of its stability
 * region, where the relaxation of the weights is not damped and their errors
 * persist; here explicit steps are only taken well inside it (h lambda <= 2,
 * where the stiff components shrink by 3x per step) and everything stiffer
 * is integrated by an L-stable method, so errors of the weights decay, and
 * (b) controls them directly where they matter. (b) is not applied to
 * explicit steps: at ReLU kinks the right-hand side is discontinuous, every
 * embedded pair is first order, and where pre-activations slide along a
 * kink (b) alone would shrink steps 10-100x below (a) for no measured gain
 * in the margins (bench/notes.md). (a) keeps the absolute part 1 of the
 * former control: from a tiny initialization the escape from the origin is
 * a linear flow whose errors in the non-growing directions decay, and a
 * purely relative control there costs 3x the steps for no measured gain.
 *
 * Stiffness. The Jacobian of f is -Hess log Loss = -(S - sum_n w_n Hess q_n)
 * with S = sum_n w_n (grad q_n - gbar)(grad q_n - gbar)^T, the covariance of
 * the margin gradients under the loss weights (gbar = sum_n w_n grad q_n).
 * For an L-homogeneous net S grows like ||theta||^(2L-2) while the motion of
 * the direction is of order ||theta||^(L-2): the ratio, ||theta||^L ~
 * log(1/Loss) / gamma, makes the flow stiff without bound as training goes
 * on (S is what makes the weights of the support vectors relax to their
 * quasi-equilibrium). An explicit method's steps are then bounded by
 * stability, not accuracy, and their number grows linearly in log(1/Loss).
 *
 * Method. Two embedded 3(2) pairs with one error control and one step-size
 * controller (h *= clamp(0.9 err^(-1/3), 0.2, 4); rejected: clamp(.., 0.2, 0.9)):
 *  - explicit: Bogacki & Shampine's pair (Appl. Math. Lett. 2 (1989)
 *    321-325), first-same-as-last;
 *  - stiff: the Rosenbrock-W method ROS34PW2 of Rang & Angermann (BIT 45
 *    (2005) 761-787), 4 stages, order 3 with an embedded order-2 solution,
 *    L-stable and stiffly accurate, whose order holds for ANY matrix W =
 *    I - h gamma A (the W property). We take A = -S, the exact stiff part,
 *    built from the per-term gradients of the terms that carry weight
 *    (rows K_t = sqrt(w_t) (grad q_t - gbar), S = K^T K, A v = -K^T (K v));
 *    the non-stiff rest (sum w Hess q) is handled explicitly by the method.
 *    W is factored by Cholesky (LAPACK dpotrf) either directly (P x P:
 *    I + c K^T K) or, when fewer terms than parameters carry weight, through
 *    the push-through identity (I + c K^T K)^{-1} = I - K^T (I/c + K K^T)^{-1} K
 *    (a T x T system), c = h gamma.
 * Switching (our heuristic): every FLOW_PROBE steps the explicit mode
 * estimates lambda, the largest eigenvalue of Hess log Loss, by a few power
 * iterations on difference quotients of G (st->flow_lambda keeps it), and
 * explicit steps are only taken with h lambda <= 2 (Bogacki-Shampine's real
 * stability interval is [-2.51, 0]); a step that would need a larger h is
 * taken stiff. Stiff steps cost several explicit ones (the per-term
 * gradients, the factoring), so a stiff step that does not reach
 * h lambda_max(S) > FLOW_GAIN * 2 (kinks or the weights' accuracy limit
 * it) hands over to explicit steps for up to FLOW_HOLD probes (mode 2,
 * lifted at steps divisible by FLOW_PROBE * FLOW_HOLD). The mode
 * and lambda are part of the training state (and of checkpoints), so runs
 * resume bit for bit. Models whose terms do not fit the buffers (more than
 * FLOW_MAX_K_DOUBLES / n_params terms carrying weight) stay explicit.
 *
 * The real time of a step is dt = int dtau / Loss; with log Loss taken linear
 * in tau across the step (from l0 to l1, delta = l0 - l1):
 *     dt = h e^{-l1} (1 - e^{-delta}) / delta   (computed in logs).
 */
#include "internal.h"

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

/* At most this many doubles for the rows of K (32 MiB). */
#define FLOW_MAX_K_DOUBLES ((size_t)1 << 22)
/* A term carries weight when w_t > FLOW_ACTIVE w_max (its share of S is
 * below 1e-16 otherwise). */
#define FLOW_ACTIVE 1e-16
/* Switching thresholds, see the file comment. */
#define FLOW_TO_STIFF 2.0
#define FLOW_GAIN 4.0
#define FLOW_PROBE 16
#define FLOW_PROBE_ITERS 4
#define FLOW_HOLD 16

/* ROS34PW2 (Rang & Angermann 2005): alpha (stage points), gamma (off-
 * diagonal stage couplings), gamma_ii, weights b and embedded bhat. */
static const double ros_g = 4.3586652150845900e-01;
static const double ros_a[4][3] = {{0, 0, 0},
                                   {8.7173304301691801e-01, 0, 0},
                                   {8.4457060015369423e-01, -1.1299064236484185e-01, 0},
                                   {0, 0, 1}};
static const double ros_c[4][3] = {{0, 0, 0},
                                   {-8.7173304301691801e-01, 0, 0},
                                   {-9.0338057013044082e-01, 5.4180672388095326e-02, 0},
                                   {2.4212380706095346e-01, -1.2232505839045147e+00,
                                    5.4526025533510214e-01}};
static const double ros_b[4] = {2.4212380706095346e-01, -1.2232505839045147e+00,
                                1.5452602553351020e+00, 4.3586652150845900e-01};
static const double ros_bh[4] = {3.7810903145819369e-01, -9.6042292212423178e-02, 0.5,
                                 2.1793326075422950e-01};

struct mf__flow {
    const mf_model *m;
    const mf_data *data;
    mf_loss_kind loss;
    size_t P;
    int N, C;          /* samples, outputs per sample */
    int terms;         /* loss terms: N (binary) or N (C - 1) */
    double *k[4];      /* [P] stage vectors */
    double *y, *yh, *Y, *acc; /* [P] */
    double *outh, *gouth;     /* [N][C] outputs and dLoss/dout / Loss at yhat */
    /* stiff part */
    int cap;           /* rows of K available */
    int nk;            /* rows of K in use */
    double *K;         /* [cap][P] */
    int gdim;          /* order of the factored system: nk (push-through) or P */
    double *gram;      /* [g][g] K K^T or K^T K, g = min(cap, P) */
    double *M;         /* [g][g] its shifted Cholesky factor */
    double *tv;        /* [2 max(cap, P)] */
    double snorm;      /* lambda_max(S) estimate (power iteration on gram) */
    mf_work *w1;       /* batch-1 workspace for per-term gradients */
    long long n_fwd, n_term; /* forward passes at yhat, batch-1 backward passes */
    double *o1, *d1, *g1; /* [C], [C], [P] */
};

void mf__flow_free(mf__flow *f) {
    if (!f) return;
    for (int i = 0; i < 4; i++) mf__free(f->k[i]);
    mf__free(f->y);
    mf__free(f->yh);
    mf__free(f->Y);
    mf__free(f->acc);
    mf__free(f->outh);
    mf__free(f->gouth);
    mf__free(f->K);
    mf__free(f->gram);
    mf__free(f->M);
    mf__free(f->tv);
    mf_work_free(f->w1);
    mf__free(f->o1);
    mf__free(f->d1);
    mf__free(f->g1);
    mf__free(f);
}

void mf__flow_counts(const mf__flow *f, long long *forward, long long *terms) {
    *forward = f->n_fwd;
    *terms = f->n_term;
}

int mf__flow_new(const mf_model *m, const mf_data *data, mf_loss_kind loss, mf__flow **out,
                 mf_err *e) {
    *out = NULL;
    mf__flow *f = mf__calloc(1, sizeof *f);
    if (!f) return mf__err(e, MF_ERR_NOMEM, "out of memory allocating the flow integrator");
    f->m = m;
    f->data = data;
    f->loss = loss;
    f->P = m->n_params;
    f->N = data->n;
    f->C = m->n_out;
    f->terms = data->num_classes == 0 ? data->n : data->n * (m->n_out - 1);
    size_t P = f->P ? f->P : 1, no = (size_t)f->N * f->C;
    size_t cap = FLOW_MAX_K_DOUBLES / P;
    if (cap > (size_t)f->terms) cap = (size_t)f->terms;
    f->cap = f->terms >= 2 ? (int)cap : 0; /* one term: S = 0, never stiff */
    size_t g = (size_t)f->cap < P ? (size_t)f->cap : P;
    int rc = f->cap > 0 ? mf_work_new(m, 1, &f->w1, e) : MF_OK;
    if (rc) {
        mf__flow_free(f);
        return rc;
    }
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= (f->k[i] = mf__calloc(P, sizeof(double))) != NULL;
    ok &= (f->y = mf__calloc(P, sizeof(double))) != NULL;
    ok &= (f->yh = mf__calloc(P, sizeof(double))) != NULL;
    ok &= (f->Y = mf__calloc(P, sizeof(double))) != NULL;
    ok &= (f->acc = mf__calloc(P, sizeof(double))) != NULL;
    ok &= (f->outh = mf__calloc(no, sizeof(double))) != NULL;
    ok &= (f->gouth = mf__calloc(no, sizeof(double))) != NULL;
    if (ok && f->cap > 0) {
        ok &= (f->K = mf__calloc((size_t)f->cap * P, sizeof(double))) != NULL;
        ok &= (f->gram = mf__calloc(g * g, sizeof(double))) != NULL;
        ok &= (f->M = mf__calloc(g * g, sizeof(double))) != NULL;
        ok &= (f->tv = mf__calloc(2 * ((size_t)f->cap > P ? (size_t)f->cap : P), sizeof(double))) != NULL;
        ok &= (f->o1 = mf__calloc((size_t)f->C, sizeof(double))) != NULL;
        ok &= (f->d1 = mf__calloc((size_t)f->C, sizeof(double))) != NULL;
        ok &= (f->g1 = mf__calloc(P, sizeof(double))) != NULL;
    }
    if (!ok) {
        mf__flow_free(f);
        return mf__err(e, MF_ERR_NOMEM,
                       "out of memory allocating the flow integrator (%zu parameters)", P);
    }
    *out = f;
    return MF_OK;
}

/* Weight of term t from dLoss/dout / Loss (gout [N][C]): binary, the sample's
 * w_n = |gout_n|; multi-class, term (n, j) with j the (t mod (C-1))-th class
 * other than the label, w_nj = gout[n][j] >= 0. Sets *n and *j (class). */
static double term_weight(const mf__flow *f, const double *gout, int t, int *n, int *j) {
    if (f->data->num_classes == 0) {
        *n = t;
        *j = 0;
        return fabs(gout[t]);
    }
    int per = f->C - 1, s = t / per, c = t % per, y = f->data->cls[s];
    if (c >= y) c++;
    *n = s;
    *j = c;
    return fabs(gout[(size_t)s * f->C + c]);
}

/* l1 distance of the normalized term weights of two evaluations. */
static double weight_distance(const mf__flow *f, const double *ga, const double *gb) {
    double sa = 0, sb = 0;
    int n, j;
    for (int t = 0; t < f->terms; t++) {
        sa += term_weight(f, ga, t, &n, &j);
        sb += term_weight(f, gb, t, &n, &j);
    }
    if (!(sa > 0) || !(sb > 0)) return sa == sb ? 0.0 : INFINITY;
    double d = 0;
    for (int t = 0; t < f->terms; t++) d += fabs(term_weight(f, ga, t, &n, &j) / sa -
                                                 term_weight(f, gb, t, &n, &j) / sb);
    return d;
}

/* Error of a step in units of the tolerances: max of (a) and (b) of the file
 * comment. e = y1 - yhat [P], rho = ||theta|| at the start, gout1 the
 * normalized output gradient at y1 and out1 its outputs; yhat's outputs and
 * output gradient are computed here (one forward pass, no backward). Returns
 * INFINITY when yhat is not finite. */
static double step_error(mf__flow *f, const mf_train_settings *s, mf_work *w, const double *yhat,
                         const double *e, double rho, const double *out1, const double *gout1,
                         int weights) {
    double en = mf__norm2(e, f->P);
    double er = en / (s->tol * (1.0 + rho));
    if (!weights || f->terms < 2) return er; /* one term: its weight is 1 whatever theta */
    mf_model_forward(f->m, w, yhat, f->data->x, f->N, f->outh);
    f->n_fwd++;
    double llh;
    if (mf_loss_eval(s->loss, f->data, NULL, f->N, f->outh, f->C, &llh, f->gouth, NULL) != MF_OK ||
        !(llh < INFINITY))
        return INFINITY;
    double qmin = mf_margins(f->data, out1, f->C, NULL);
    double tw = 32.0 * DBL_EPSILON * (1.0 + fabs(qmin));
    if (tw < s->tol) tw = s->tol;
    double ew = weight_distance(f, gout1, f->gouth) / tw;
    return er > ew ? er : ew;
}

/* Next step size from err (accepted: growth up to 4; rejected: 0.2..0.9). */
static double next_h(double h, double err, int accepted) {
    double fct;
    if (accepted) {
        fct = err > 0 ? 0.9 * pow(err, -1.0 / 3.0) : 4.0;
        fct = fct > 4.0 ? 4.0 : fct < 0.2 ? 0.2 : fct;
    } else {
        fct = isfinite(err) ? 0.9 * pow(err, -1.0 / 3.0) : 0.25;
        fct = fct < 0.2 ? 0.2 : fct > 0.9 ? 0.9 : fct;
    }
    double hn = h * fct;
    return hn > DBL_MAX ? DBL_MAX : hn;
}

/* Add the real time of an accepted step (file comment) to st->time_log. */
static void add_step_time(mf_train_state *st, double h, double l0, double l1) {
    double delta = l0 - l1, log_dt = log(h) - l1;
    if (delta > 0) log_dt += log(-expm1(-delta) / delta);
    st->time_log = mf__lse2(st->time_log, log_dt);
}

/* ----------------------------------------------------------- stiff part */

/* Rows K_t = sqrt(w_t) (grad q_t - gbar) for the terms that carry weight at
 * theta, from the evaluation cur (outputs, dLoss/dout / Loss, G). grad q_t
 * is one batch-1 backward pass: binary, dout = y_n (q_n = y_n Phi); multi-
 * class term (n, j): dout = e_y - e_j (q_nj = Phi_y - Phi_j). gbar =
 * sum_t w_t grad q_t / sum_t w_t = -G / sum_t w_t. Returns 0 (explicit only)
 * when fewer than 2 or more than cap terms carry weight. */
static int build_stiff(mf__flow *f, const double *theta, const mf__evalset *cur) {
    f->nk = 0;
    if (f->cap < 2) return 0;
    double wmax = 0, wsum = 0;
    int n, j, active = 0;
    for (int t = 0; t < f->terms; t++) {
        double wt = term_weight(f, cur->gout, t, &n, &j);
        wsum += wt;
        if (wt > wmax) wmax = wt;
    }
    if (!(wmax > 0)) return 0;
    for (int t = 0; t < f->terms; t++)
        if (term_weight(f, cur->gout, t, &n, &j) > FLOW_ACTIVE * wmax) active++;
    if (active < 2 || active > f->cap) return 0;
    size_t P = f->P;
    const int d = f->data->d;
    for (int t = 0; t < f->terms; t++) {
        double wt = term_weight(f, cur->gout, t, &n, &j);
        if (!(wt > FLOW_ACTIVE * wmax)) continue;
        const double *xn = f->data->x + (size_t)n * d;
        mf_model_forward(f->m, f->w1, theta, xn, 1, f->o1);
        if (f->data->num_classes == 0) {
            f->d1[0] = f->data->y[n];
        } else {
            memset(f->d1, 0, sizeof(double) * (size_t)f->C);
            f->d1[f->data->cls[n]] = 1.0;
            f->d1[j] = -1.0;
        }
        mf_model_backward(f->m, f->w1, theta, xn, 1, f->d1, f->g1);
        f->n_term++;
        double sw = sqrt(wt), *kr = f->K + (size_t)f->nk * P;
        for (size_t i = 0; i < P; i++) kr[i] = sw * (f->g1[i] + cur->grad[i] / wsum);
        f->nk++;
    }
    /* gram = K K^T [nk][nk] (push-through) or K^T K [P][P], lower triangle */
    int nk = f->nk;
    f->gdim = (size_t)nk <= P ? nk : (int)P;
    int g = f->gdim;
    if (g == nk)
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, nk, (int)P, 1.0, f->K, (int)P, 0.0,
                    f->gram, g);
    else
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)P, nk, 1.0, f->K, (int)P, 0.0,
                    f->gram, g);
    /* lambda_max(S) (= that of gram): 30 power iterations from a fixed
     * start, Rayleigh quotient (a lower bound that converges from below) */
    double *v = f->tv, *u = f->tv + g, lam = 0;
    for (int a = 0; a < g; a++) v[a] = 1.0 + 0.5 * sin(1.0 + a);
    for (int it = 0; it < 30; it++) {
        double vv = 0, uv = 0;
        for (int a = 0; a < g; a++) {
            double r = 0;
            for (int b = 0; b < g; b++) r += (b <= a ? f->gram[a * g + b] : f->gram[b * g + a]) * v[b];
            u[a] = r;
        }
        for (int a = 0; a < g; a++) vv += v[a] * v[a], uv += u[a] * v[a];
        lam = vv > 0 ? uv / vv : 0;
        double un = mf__norm2(u, (size_t)g);
        if (!(un > 0) || !isfinite(un)) break;
        for (int a = 0; a < g; a++) v[a] = u[a] / un;
    }
    f->snorm = lam;
    return isfinite(lam);
}

/* Factor the shifted system for c = h gamma: push-through M = I/c + K K^T,
 * direct M = I + c K^T K (lower Cholesky). Returns 0 on success. */
static int factor_stiff(mf__flow *f, double c) {
    int g = f->gdim, push = g == f->nk && (size_t)f->nk <= f->P;
    for (int a = 0; a < g; a++)
        for (int b = 0; b <= a; b++) {
            double v = f->gram[a * g + b];
            f->M[a * g + b] = push ? v + (a == b ? 1.0 / c : 0.0) : c * v + (a == b ? 1.0 : 0.0);
        }
    /* the row-major lower triangle is the column-major upper one: no copy */
    return LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', g, f->M, g) != 0;
}

/* x := (I + c K^T K)^{-1} x with the factor of factor_stiff. */
static void solve_stiff(mf__flow *f, double *x) {
    int g = f->gdim, nk = f->nk, P = (int)f->P;
    if (g == nk && (size_t)nk <= f->P) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, nk, P, 1.0, f->K, P, x, 1, 0.0, f->tv, 1);
        LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'U', nk, 1, f->M, g, f->tv, nk);
        cblas_dgemv(CblasRowMajor, CblasTrans, nk, P, -1.0, f->K, P, f->tv, 1, 1.0, x, 1);
    } else {
        LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'U', g, 1, f->M, g, x, g);
    }
}

/* y += s A v = -s K^T (K v). */
static void add_Av(mf__flow *f, double s, const double *v, double *y) {
    int nk = f->nk, P = (int)f->P;
    cblas_dgemv(CblasRowMajor, CblasNoTrans, nk, P, 1.0, f->K, P, v, 1, 0.0, f->tv, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, nk, P, -s, f->K, P, f->tv, 1, 1.0, y, 1);
}

/* lambda_max of the Jacobian of G (= Hess log Loss, symmetric) at theta
 * by FLOW_PROBE_ITERS power iterations on difference quotients
 * (G(theta + e v) - G(theta)) / e, e = 1e-7 (1 + ||theta||) / ||v||, from a
 * fixed start vector: FLOW_PROBE_ITERS gradient evaluations into cand
 * (scratch), no per-term passes. Returns the Rayleigh quotient (0 when an
 * evaluation is not finite). */
static double probe_lambda(mf__flow *f, const mf_train_settings *s, mf_work *w,
                           const double *theta, const mf__evalset *cur, mf__evalset *cand,
                           double rho) {
    size_t P = f->P;
    double *v = f->acc, *y = f->Y, lam = 0;
    for (size_t i = 0; i < P; i++) v[i] = 1.0 + 0.5 * sin(1.0 + (double)i);
    for (int it = 0; it < FLOW_PROBE_ITERS; it++) {
        double vn = mf__norm2(v, P);
        if (!(vn > 0) || !isfinite(vn)) return 0;
        double eps = 1e-7 * (1.0 + rho) / vn;
        for (size_t i = 0; i < P; i++) y[i] = theta[i] + eps * v[i];
        if (!mf__evaluate(f->m, w, f->data, s->loss, y, cand, 1)) return 0;
        double vv = 0, uv = 0;
        for (size_t i = 0; i < P; i++) {
            double u = (cand->grad[i] - cur->grad[i]) / eps;
            uv += u * v[i];
            vv += v[i] * v[i];
            v[i] = u;
        }
        lam = uv / vv;
    }
    return lam > 0 && isfinite(lam) ? lam : 0;
}

/* ------------------------------------------------------------- the step */

/* Accept the step to y1 whose evaluation is in cand: theta = y1, swap the
 * evaluations, advance time and counters, set the next h. */
static void accept(mf__flow *f, mf_train_state *st, mf__evalset *cur, mf__evalset *cand,
                   double h, double err) {
    add_step_time(st, h, cur->log_loss, cand->log_loss);
    memcpy(st->theta, f->y, f->P * sizeof(double));
    mf__evalset_swap(cur, cand);
    st->log_loss = cur->log_loss;
    st->step++;
    st->lr = next_h(h, err, 1);
}

/*
 * mf__flow_step -- one accepted step of the flow (contract in internal.h).
 * Explicit mode (st->flow_mode == 0): Bogacki-Shampine with f = -G,
 *   k1 = f(theta), k2 = f(theta + h/2 k1), k3 = f(theta + 3h/4 k2),
 *   y1 = theta + h (2/9 k1 + 1/3 k2 + 4/9 k3), k4 = f(y1),
 *   y1 - yhat = h (-5/72 k1 + 1/12 k2 + 1/9 k3 - 1/8 k4).
 * Stiff mode (1): ROS34PW2 with W = I - h gamma A, A = -K^T K:
 *   W k_i = h f(theta + sum_j a_ij k_j) + h A sum_j c_ij k_j,  i = 1..4,
 *   y1 = theta + sum b_i k_i,  yhat = theta + sum bhat_i k_i.
 */
mf_outcome mf__flow_step(mf__flow *f, const mf_train_settings *s, mf_work *w, mf_train_state *st,
                         mf__evalset *cur, mf__evalset *cand, const mf_callbacks *cb, double t0,
                         const char **reason) {
    size_t P = f->P;
    const double *th = st->theta;
    double rho = mf_param_norm(f->m, th);
    const double *G = cur->grad; /* f(theta) = -G */
    /* Stiff steps rebuild S at every step. Explicit ones probe lambda_max(S)
     * every FLOW_PROBE steps (st->flow_lambda keeps the last value) and are
     * only taken with h lambda <= FLOW_TO_STIFF, where Bogacki-Shampine
     * damps the stiff components (|R(-2)| = 1/3); a step that would need a
     * larger h is taken stiff instead. */
    int stiff = 0;
    double hcap = DBL_MAX; /* explicit steps: h lambda <= FLOW_TO_STIFF */
    if (st->flow_mode == 1) {
        stiff = build_stiff(f, th, cur);
        if (stiff) st->flow_lambda = f->snorm;
    } else if (f->cap >= 2) {
        if (st->step % FLOW_PROBE == 0)
            st->flow_lambda = probe_lambda(f, s, w, th, cur, cand, rho);
        if (st->step % (FLOW_PROBE * FLOW_HOLD) == 0) st->flow_mode = 0; /* lifts mode 2 */
        if (st->lr * st->flow_lambda > FLOW_TO_STIFF) {
            if (st->flow_mode == 0) stiff = build_stiff(f, th, cur);
            if (stiff) {
                st->flow_mode = 1;
                st->flow_lambda = f->snorm;
            } else {
                hcap = FLOW_TO_STIFF / st->flow_lambda;
            }
        }
    }
    long long tries = 0; /* rejections of this step (mf__retry_stop) */
    for (;;) {
        double h = st->lr < hcap ? st->lr : hcap, err = INFINITY;
        int ok = 1, changed = 0;
        if (!stiff) {
            double *k2 = f->k[1], *k3 = f->k[2], *Y = f->Y, *y = f->y;
            for (size_t i = 0; i < P; i++) Y[i] = th[i] - 0.5 * h * G[i];
            ok = mf__evaluate(f->m, w, f->data, s->loss, Y, cand, 1);
            if (ok) {
                for (size_t i = 0; i < P; i++) k2[i] = -cand->grad[i];
                for (size_t i = 0; i < P; i++) Y[i] = th[i] + 0.75 * h * k2[i];
                ok = mf__evaluate(f->m, w, f->data, s->loss, Y, cand, 1);
            }
            if (ok) {
                for (size_t i = 0; i < P; i++) k3[i] = -cand->grad[i];
                for (size_t i = 0; i < P; i++) {
                    y[i] = th[i] + h * (-2.0 / 9.0 * G[i] + 1.0 / 3.0 * k2[i] + 4.0 / 9.0 * k3[i]);
                    changed |= y[i] != th[i];
                }
                if (!changed) {
                    *reason = mf__stall_no_change;
                    return MF_OUT_STALLED;
                }
                ok = mf__evaluate(f->m, w, f->data, s->loss, y, cand, 1); /* k4 = -cand->grad */
            }
            if (ok) {
                double *e = f->acc;
                for (size_t i = 0; i < P; i++) {
                    e[i] = h * (5.0 / 72.0 * G[i] + 1.0 / 12.0 * k2[i] + 1.0 / 9.0 * k3[i] +
                                0.125 * cand->grad[i]);
                    f->yh[i] = y[i] - e[i];
                }
                err = step_error(f, s, w, f->yh, e, rho, cand->out, cand->gout, 0);
            }
            if (ok && err <= 1.0) {
                accept(f, st, cur, cand, h, err);
                if (st->flow_mode == 1) st->flow_mode = 2; /* a stiff step fell back */
                return MF_OUT_RUNNING;
            }
        } else {
            ok = factor_stiff(f, h * ros_g) == 0;
            double *y = f->y;
            for (int i = 0; ok && i < 4; i++) {
                double *ki = f->k[i];
                if (i == 0) {
                    for (size_t q = 0; q < P; q++) ki[q] = -h * G[q];
                } else {
                    for (size_t q = 0; q < P; q++) {
                        double v = th[q];
                        for (int r = 0; r < i; r++) v += ros_a[i][r] * f->k[r][q];
                        f->Y[q] = v;
                    }
                    ok = mf__evaluate(f->m, w, f->data, s->loss, f->Y, cand, 1);
                    if (!ok) break;
                    for (size_t q = 0; q < P; q++) {
                        double v = 0;
                        for (int r = 0; r < i; r++) v += ros_c[i][r] * f->k[r][q];
                        f->acc[q] = v;
                    }
                    for (size_t q = 0; q < P; q++) ki[q] = -h * cand->grad[q];
                    add_Av(f, h, f->acc, ki);
                }
                solve_stiff(f, ki);
                if (!mf__all_finite(ki, P)) ok = 0;
            }
            if (ok) {
                for (size_t q = 0; q < P; q++) {
                    double a = th[q], b = th[q];
                    for (int r = 0; r < 4; r++) a += ros_b[r] * f->k[r][q], b += ros_bh[r] * f->k[r][q];
                    y[q] = a;
                    f->yh[q] = b;
                    f->acc[q] = a - b;
                    changed |= a != th[q];
                }
                if (!changed) {
                    *reason = mf__stall_no_change;
                    return MF_OUT_STALLED;
                }
                ok = mf__evaluate(f->m, w, f->data, s->loss, y, cand, 1);
            }
            if (ok) err = step_error(f, s, w, f->yh, f->acc, rho, cand->out, cand->gout, 1);
            if (ok && err <= 1.0) {
                /* back to explicit when the stiff step no longer gains
                 * FLOW_GAIN x over the explicit limit (a stiff step costs
                 * that much more: the per-term gradients and the factoring);
                 * mode 2 stays explicit for a while (file comment) */
                int to_explicit = next_h(h, err, 1) * f->snorm <= FLOW_GAIN * FLOW_TO_STIFF;
                accept(f, st, cur, cand, h, err);
                st->flow_mode = to_explicit ? 2 : 1;
                st->flow_stiff_steps++;
                return MF_OUT_RUNNING;
            }
        }
        st->rejected++;
        st->lr = next_h(h, err, 0);
        if (stiff && st->lr * f->snorm <= FLOW_GAIN * FLOW_TO_STIFF) {
            /* the stiff step would not gain over an explicit one (kinks
             * or the weights' accuracy limit it): retry explicitly */
            stiff = 0;
            st->flow_mode = 2;
            st->flow_lambda = f->snorm;
            hcap = FLOW_TO_STIFF / f->snorm;
        }
        if (!(st->lr > 1e-300)) {
            *reason = mf__stall_lr;
            return MF_OUT_STALLED;
        }
        mf_outcome stop = mf__retry_stop(s, cb, t0, h, st->lr, &tries, reason);
        if (stop != MF_OUT_RUNNING) return stop;
    }
}

/*
 * kkt.c -- approximate KKT certificates for the max-margin problem
 *     (P)  minimize 1/2 ||theta||^2  subject to  q_n(theta) >= 1 for all n
 * at the rescaled point theta~ (docs/theory.md section 3):
 *  - (eps, delta)-KKT by non-negative least squares over the multipliers of
 *    the active samples ([LL20] Def. of approximate KKT points; [VSS22]
 *    sec. 2), over the exact Clarke subdifferential of each kinked margin
 *    at any depth: the convex hull of the gradients of the smooth pieces
 *    that meet at theta~ (kkt_columns);
 *  - Lyu & Li's own certificate from the direction of the loss gradient
 *    ([LL20] Thm. 4.4: eps = ||theta~|| sqrt(2 (1 - beta)), beta =
 *    cos(theta, -grad Loss)).
 */
#include "analysis_internal.h"

#include <math.h>
#include <string.h>

/* How many kinks of sample n the Clarke treatment frees: all of them when
 * the model has Clarke data and the budgets allow (ks receives their units),
 * else 0 (*fixed = 1 when kinks had to be left at sigma'(0) = alpha). The
 * column budget is MF__MAX_KKT_COLUMNS and MF__KKT_MAX_DOUBLES / P. */
static int sample_kinks(const mf__an_ctx *c, int n, const int *kink, int used, int *ks, int *fixed) {
    const int H = mf_model_n_hidden(c->m);
    const double cap = fmin((double)MF__MAX_KKT_COLUMNS, MF__KKT_MAX_DOUBLES / (double)c->P);
    int cnt = 0, kn = 0;
    for (int k = 0; k < H; k++) cnt += kink[(size_t)n * H + k];
    if (cnt == 0) return 0;
    if (!c->ops->piece_grad || cnt > MF__MAX_KINKS_PER_SAMPLE || used + (1 << cnt) > cap) {
        *fixed = 1;
        return 0;
    }
    for (int k = 0; k < H; k++)
        if (kink[(size_t)n * H + k]) {
            if (ks) ks[kn] = k;
            kn++;
        }
    return kn;
}

/* The output seed of sample n's margin at the outputs z [n_out] (binary:
 * y_n; multi-class e_y - e_j*, j* the competitor). */
static void margin_seed(const mf__an_ctx *c, int n, const double *z, double *dout) {
    const mf_data *D = c->data;
    for (int j = 0; j < c->m->n_out; j++) dout[j] = 0.0;
    if (D->num_classes == 0) {
        dout[0] = D->y[n];
    } else {
        dout[D->cls[n]] = 1.0;
        dout[mf__competitor(D, z, c->m->n_out, n)] -= 1.0;
    }
}

/*
 * The columns of the NNLS for the KKT test. For a sample n without kinks the
 * column is h_n = grad q_n(theta~). With kinks K_n = {k : |z_nk| <= zero_tol
 * * scale_nk} the margin is, near theta~, the polynomial piece q_n^s on the
 * open region where the kinked pre-activations have signs s (the slopes of
 * those units fixed at 1 or alpha). For an active sample (q_n > 0 in a
 * bias-free net, so every layer's input h^{l-1}_n is nonzero) every one of
 * the 2^{|K_n|} sign patterns is realized arbitrarily close to theta~: the
 * rows of the kinked units can be moved, layer by layer, each along its own
 * input h^{l-1}_n, by amounts that dominate what the lower layers' moves
 * induce. By Clarke's theorem (Clarke 1983, Thm. 2.5.1: the convex hull of
 * the limits of gradients at points of differentiability) the Clarke
 * subdifferential of q_n is therefore exactly
 *   conv { grad q_n^s(theta~) : s in {alpha, 1}^{K_n} },
 * at any depth (our derivation; docs/theory.md s.3). At depth 2 these gradients
 * are affine in s and the hull is the box image [alpha, 1]^{K_n}; deeper the
 * slopes multiply along paths and the hull is not a product of intervals,
 * so the vertices are enumerated. Writing lambda_n h_n = sum_s mu_ns grad
 * q_n^s with mu >= 0,
 *   min_{lambda >= 0, h_n in Clarke set} ||theta~ - sum lambda_n h_n||
 * is exactly a plain NNLS over the vertex columns; lambda_n is the sum of
 * sample n's coefficients. cols [P][ncol] column-major (allocated here),
 * owner[ncol] = sample. Returns the number of columns, or -1 on no memory;
 * *fixed set to 1 when a sample's kinks exceeded the budgets (then they use
 * sigma'(0) = alpha and eps is an upper bound of the exact residual).
 */
static int kkt_columns(const mf__an_ctx *c, const double *theta, const double *J, const int *active,
                       const int *kink, double **cols_out, int **owner_out, int *fixed) {
    const size_t P = c->P;
    int ncol = 0;
    *fixed = 0;
    for (int n = 0; n < c->N; n++)
        if (active[n]) ncol += 1 << sample_kinks(c, n, kink, ncol, NULL, fixed);
    double *cols = mf__calloc(P * (size_t)(ncol ? ncol : 1), sizeof(double));
    int *owner = mf__malloc(sizeof(int) * (size_t)(ncol ? ncol : 1));
    if (!cols || !owner) {
        mf__free(cols);
        mf__free(owner);
        return -1;
    }
    int col = 0, budget_used = 0, ignored = 0;
    for (int n = 0; n < c->N; n++) {
        if (!active[n]) continue;
        int ks[MF__MAX_KINKS_PER_SAMPLE];
        const int kn = sample_kinks(c, n, kink, budget_used, ks, &ignored); /* same rule as above */
        const int nr = 1 << kn;
        budget_used += nr;
        if (kn == 0) {
            memcpy(cols + (size_t)col * P, J + (size_t)n * P, sizeof(double) * P);
            owner[col++] = n;
            continue;
        }
        const double *xn = c->data->x + (size_t)n * c->data->d;
        mf_model_forward(c->m, c->w1, theta, xn, 1, c->out1);
        margin_seed(c, n, c->out1, c->dout1);
        for (int r = 0; r < nr; r++) {
            c->ops->piece_grad(c->m, c->w1, theta, xn, c->dout1, ks, kn, (unsigned)r,
                               cols + (size_t)col * P);
            owner[col++] = n;
        }
    }
    *cols_out = cols;
    *owner_out = owner;
    return ncol;
}

/* The NNLS's own optimality conditions at its solution coef (A^T r <= 0, = 0
 * on the support), relative to max ||h_j|| ||theta~||; g is the residual. */
static double nnls_check(const double *cols, const double *coef, int ncol, size_t P,
                         const double *g, double ntt) {
    double viol = 0.0, cmax = 0.0;
    for (int j = 0; j < ncol; j++) {
        double cn = mf__norm2(cols + (size_t)j * P, P), wj = mf__dot(cols + (size_t)j * P, g, P);
        if (cn > cmax) cmax = cn;
        double v = coef[j] > 0 ? fabs(wj) : (wj > 0 ? wj : 0.0);
        if (v > viol) viol = v;
    }
    return cmax > 0 ? viol / (cmax * ntt) : 0.0;
}

/* The KKT NNLS on the columns: minimize ||tt - cols coef||, coef >= 0, with
 * the stopping tolerance MF__KKT_NNLS_TOL ||tt|| max ||h_j||. */
static int kkt_solve(const double *cols, int ncol, size_t P, const double *tt, double *coef,
                     mf_err *e) {
    double colmax = 0.0;
    for (int j = 0; j < ncol; j++) {
        double cn = mf__norm2(cols + (size_t)j * P, P);
        if (cn > colmax) colmax = cn;
    }
    const double tol = MF__KKT_NNLS_TOL * mf__norm2(tt, P) * (colmax > 0 ? colmax : 1.0);
    return mf__nnls((int)P, ncol, cols, tt, tol, 3 * ncol + 100, coef, NULL, e);
}

/*
 * (eps, delta)-KKT at theta~ = tt: lambda >= 0 minimizing ||tt - sum lambda_n
 * h_n|| over the Clarke columns of the active samples (lambda_n = 0 for the
 * others), eps = that residual / ||tt||, delta = max_n lambda_n (q_n - 1);
 * the Euler identity ||tt||^2 = L sum lambda_n (exact at a KKT point of a
 * homogeneous net) as euler_lhs, euler_rhs. J [N][P] gradients and q [N]
 * margins at tt; kink [N][H] the kinked pre-activations. Caveats (the NNLS
 * optimality residual when large, kinks not freed) go to note.
 */
int mf__kkt_nnls(mf__an_ctx *c, const double *tt, const double *J, const double *q,
                 const int *kink, mf_analysis *a, char *note, size_t cap, mf_err *e) {
    const size_t P = c->P;
    const int N = c->N;
    const double ntt = mf__norm2(tt, P);
    double *cols = NULL, *coef = NULL, *g = NULL;
    int *owner = NULL, fixed = 0, rc = MF_OK;
    int ncol = kkt_columns(c, tt, J, a->active, kink, &cols, &owner, &fixed);
    if (ncol < 0) return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    coef = mf__calloc((size_t)(ncol ? ncol : 1), sizeof(double));
    g = mf__malloc(sizeof(double) * P);
    if (!coef || !g) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
        goto done;
    }
    if (ncol > 0 && (rc = kkt_solve(cols, ncol, P, tt, coef, e)) != MF_OK) goto done;
    for (int j = 0; j < ncol; j++) a->lambda[owner[j]] += coef[j];
    memcpy(g, tt, sizeof(double) * P); /* residual theta~ - sum lambda h */
    for (int j = 0; j < ncol; j++)
        if (coef[j] != 0.0)
            for (size_t i = 0; i < P; i++) g[i] -= coef[j] * cols[(size_t)j * P + i];
    a->eps = mf__norm2(g, P) / ntt;
    double viol = nnls_check(cols, coef, ncol, P, g, ntt);
    if (viol > MF__KKT_NNLS_CHECK) mf__say(note, cap, " NNLS optimality residual %.3g (relative).", viol);
    a->kkt_exact = !fixed;
    if (fixed && c->ops->piece_grad)
        mf__say(note, cap,
                " Too many kinks for the exact Clarke treatment (more than %d on a sample or %d "
                "columns): sigma'(0) = alpha used for some samples, so eps is an upper bound.",
                MF__MAX_KINKS_PER_SAMPLE, MF__MAX_KKT_COLUMNS);
    if (fixed && !c->ops->piece_grad)
        mf__say(note, cap, " %s", c->ops->kink_note ? c->ops->kink_note
                                                   : "kinks use the library's sigma'(0) = alpha "
                                                     "(no Clarke data for this model): eps is an "
                                                     "upper bound.");
    a->delta = 0.0;
    double lsum = 0.0;
    for (int n = 0; n < N; n++) {
        lsum += a->lambda[n];
        double dn = a->lambda[n] * (q[n] - 1.0);
        if (dn > a->delta) a->delta = dn;
    }
    a->euler_lhs = ntt * ntt;
    a->euler_rhs = a->degree * lsum;
done:
    mf__free(cols);
    mf__free(owner);
    mf__free(coef);
    mf__free(g);
    return rc;
}

/* Outputs at theta = ||theta||^L * outputs at theta^ (in c->outN), capped at
 * MF__LL_OUTPUT_CAP / max |out^| (see the constant), so the loss sees the
 * margins of theta wherever they are representable. */
static void outputs_at_theta(const mf__an_ctx *c, double norm, int L) {
    const size_t no = (size_t)c->N * c->m->n_out;
    double omax = 0.0;
    for (size_t i = 0; i < no; i++)
        if (fabs(c->outN[i]) > omax) omax = fabs(c->outN[i]);
    if (omax > 0) { /* out_i <- (out_i / omax) * min(omax ||theta||^L, cap), in logs */
        double target = exp(fmin(log(omax) + L * log(norm), log(MF__LL_OUTPUT_CAP)));
        for (size_t i = 0; i < no; i++) c->outN[i] = c->outN[i] / omax * target;
    }
}

/*
 * Lyu & Li's certificate ([LL20] Thm. 4.4): lambda proportional to the loss
 * weights w_n = -ell'(q_n) / Loss at theta, scaled by the Euler identity
 * (lambda = ||tt||^2 w / (L sum w)); with theta^ = tt / ||tt|| and the
 * direction g of grad Loss (the backward pass at theta^ with those weights),
 * beta = -<theta^, g> / ||g||, eps = ||tt|| ||theta^ + g / ||g|| || (=
 * ||tt|| sqrt(2 (1 - beta)), stable), delta = max_n lambda_n (q_n - 1).
 * All NAN when the gradient vanishes; a non-finite loss leaves them NAN with
 * a note.
 */
int mf__kkt_lyu_li(mf__an_ctx *c, const double *tt, const double *q, mf_loss_kind loss,
                   mf_analysis *a, char *note, size_t cap, mf_err *e) {
    const mf_model *m = c->m;
    const size_t P = c->P;
    const int N = c->N, L = m->degree;
    const double ntt = mf__norm2(tt, P);
    double log_loss;
    double *gout = mf__malloc(sizeof(double) * (size_t)N * m->n_out);
    double *wts = mf__malloc(sizeof(double) * (size_t)N);
    double *th = mf__malloc(sizeof(double) * P), *g = mf__malloc(sizeof(double) * P);
    if (!gout || !wts || !th || !g) {
        mf__free(gout), mf__free(wts), mf__free(th), mf__free(g);
        return mf__err(e, MF_ERR_NOMEM, "out of memory in the analysis");
    }
    for (size_t i = 0; i < P; i++) th[i] = tt[i] / ntt;
    mf_model_forward(m, c->wN, th, c->data->x, N, c->outN);
    outputs_at_theta(c, a->norm, L);
    int lr = mf_loss_eval(loss, c->data, NULL, N, c->outN, m->n_out, &log_loss, gout, wts);
    if (lr == MF_OK) {
        mf_model_forward(m, c->wN, th, c->data->x, N, c->outN);  /* restore the activations */
        mf_model_backward(m, c->wN, th, c->data->x, N, gout, g); /* direction of grad Loss */
        double ng = mf__norm2(g, P), d2 = 0.0, wsum = 0.0;
        for (size_t i = 0; i < P; i++) {
            double t = th[i] + g[i] / ng; /* theta^ - (-grad)^ */
            d2 += t * t;
        }
        a->ll_beta = -mf__dot(th, g, P) / ng;
        a->ll_eps = ntt * sqrt(d2);
        for (int n = 0; n < N; n++) wsum += wts[n];
        double cst = ntt * ntt / (L * wsum), dl = 0.0;
        for (int n = 0; n < N; n++) {
            double dn = cst * wts[n] * (q[n] - 1.0);
            if (dn > dl) dl = dn;
        }
        a->ll_delta = dl;
        if (!(ng > 0)) a->ll_beta = a->ll_eps = a->ll_delta = NAN;
    } else {
        mf__say(note, cap, " Lyu-Li certificate not computed (non-finite loss).");
    }
    mf__free(th), mf__free(g), mf__free(gout), mf__free(wts);
    return MF_OK;
}

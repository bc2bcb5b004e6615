/*
 * checks_relu2.c -- the check quantities of `marginflow reproduce` that
 * study bias-free two-layer (leaky) ReLU nets Phi(x) = sum_k a_k sigma(<w_k, x>),
 * sigma(z) = max(z, alpha z): the certified global reference, the
 * first-layer per-layer problem, and [LLWA21]'s mechanisms on symmetric
 * data. Their rows are in the one table of cli/checks.c (rp_quantities[]);
 * what each measures and when it passes is in experiments/README.md; the
 * mathematics is in docs/theory.md (section 5, the global optimum of
 * two-layer ReLU nets; section 7.4, the derivations behind these checks).
 *
 *   global_relu2   the run's normalized margin against gamma* of
 *                  mf_global_relu2 (certified bracket), with the witness
 *                  network written next to the claim  ([VSS22], [LLWA21])
 *   layer0_relu2   the per-layer problem P_0 of the first layer (output
 *                  weights frozen): local optimality by the exact QP of the
 *                  activation pattern, a first-order descent certificate at
 *                  kinks, and a better first layer built from the global
 *                  network ([VSS22] per-layer results)
 *   odd_even       [LLWA21] odd/even split Phi = L + E: cos(v, w_svm),
 *                  v = sum_k a_k w_k, and max|E(x_n)| / max|L(x_n)| over time
 *   sign_init      [LLWA21] the sign of each neuron predicted from its init
 *   invariant      the flow invariant a_k^2 - ||w_k||^2 and its drift
 *
 * Every "certified" statement is re-checked here by direct evaluation of
 * margins (forward passes); what is only searched says so.
 */
#define _XOPEN_SOURCE 700
#include "checks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

/* A bias-free relu2 model with trainable outer weights: 1 and *u filled. */
static int plain_relu2(const mf_model *m, mf_units *u) {
    return mf_model_units(m, u) && !u->in_bias && u->b_layer < 0 && u->a_layer >= 0;
}

/* q_min of theta over the data by the forward pass (mf_margin_jacobian
 * without J); NAN on failure. */
static double qmin_of(const mf_model *m, const mf_data *d, const double *theta, double *q) {
    mf_err e = {0, ""};
    if (mf_margin_jacobian(m, d, theta, q, NULL, &e)) return NAN;
    double mn = INFINITY;
    for (int n = 0; n < d->n; n++) mn = fmin(mn, q[n]);
    return mn;
}

/* 1 when r is a bias-free relu2 run with trainable outer weights (u
 * filled); else 0 with o an ERROR naming the run and what quantity q needs. */
static int relu2_run(const rp_run *r, mf_units *u, const char *q, rp_check_out *o) {
    if (plain_relu2(r->model, u)) return 1;
    o->pass = -1;
    cli_fmt(o->measured, sizeof o->measured, "run %s: %s needs a bias-free relu2 model", r->name, q);
    return 0;
}

/* Does the expectation ex (a check's "expect": a name or a list of
 * names) contain name? */
static int expects(const cJSON *ex, const char *name) {
    const cJSON *e1;
    if (cJSON_IsString(ex)) return !strcmp(ex->valuestring, name);
    cJSON_ArrayForEach(e1, ex) if (cJSON_IsString(e1) && !strcmp(e1->valuestring, name)) return 1;
    return 0;
}

/* "a and b and c" of the expectation ex into buf. */
static void expect_text(const cJSON *ex, char *buf, size_t cap) {
    const cJSON *e1;
    buf[0] = '\0';
    if (cJSON_IsString(ex)) cli_cat(buf, cap, "%s", ex->valuestring);
    int k = 0;
    cJSON_ArrayForEach(e1, ex) cli_cat(buf, cap, "%s%s", k++ ? " and " : "",
                                       cJSON_IsString(e1) ? e1->valuestring : "?");
}

/* ------------------------------------------------------- global_relu2 */

/* [VSS22] / [LLWA21] against the certified global optimum: for each run
 * (bias-free relu2), gamma* of its data and alpha by mf_global_relu2 (the
 * convex program over activation patterns, docs/theory.md), the certified
 * bracket gamma_lower <= gamma* <= gamma_upper, and the run's final
 * normalized margin gamma. expect "global": gamma >= gamma_lower (1 - tol)
 * with a certified upper bound (the run attains gamma* within tol + gap);
 * "not-global": gamma_lower > gamma (1 + tol) (the witness network, whose
 * margin is evaluated by a forward pass, beats the run: proved). The
 * witness is written as DIR/<claim>/global-<run>.txt (a params file for
 * `marginflow train --model <its spec> --init-file`). A margin above the
 * certified upper bound is a contradiction and fails the check. */
void rp_ck_global_relu2(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double tol = cli_jnum_or(ck, "tol", 1e-4);
    int want_global = expects(cli_jget(ck, "expect"), "global"), cnt = 0, ok = 1;
    mf_global_result *g = NULL;
    const rp_run *gr = NULL; /* the run g was computed for */
    o->measured[0] = '\0';
    for (int i = 0; i < c->nruns; i++) {
        const rp_run *r = &c->runs[i];
        mf_units u;
        if (!r->done || (sel && strcmp(sel, r->base))) continue;
        if (!relu2_run(r, &u, "global_relu2", o)) {
            mf_global_result_free(g);
            return;
        }
        if (!gr || strcmp(gr->data_spec, r->data_spec) || gr->model->alpha != r->model->alpha) {
            mf_err e = {0, ""};
            mf_global_result_free(g);
            g = NULL;
            if (mf_global_relu2(r->model, r->data, NULL, &g, &e)) {
                o->pass = -1;
                cli_fmt(o->measured, sizeof o->measured, "run %s: mf_global_relu2: %s", r->name, e.msg);
                return;
            }
            gr = r;
        }
        double gam = r->res.final.normalized_margin, ratio = gam / g->gamma_lower;
        int hit = want_global ? g->upper_certified && gam >= g->gamma_lower * (1 - tol)
                              : g->gamma_lower > gam * (1 + tol);
        if (g->upper_certified && gam > g->gamma_upper * (1 + 1e-9)) hit = 0; /* contradiction */
        ok &= hit;
        cnt++;
        /* the witness network as a params file */
        char wpath[256] = "";
        mf_model *wm = NULL;
        mf_err e = {0, ""};
        char *p = cli_aprintf("%s/global-%s.txt", c->dir, r->name);
        if (p && mf_model_parse(g->spec, r->data->d, 0, &wm, &e) == 0 &&
            mf_params_write(p, wm, g->theta, &e) == 0)
            cli_fmt(wpath, sizeof wpath, "global-%s.txt", r->name);
        mf_model_free(wm);
        free(p);
        if (cnt <= 4)
            cli_cat(o->measured, sizeof o->measured,
                    "%s%s: gamma %s vs certified gamma* in [%s, %s]%s, gamma / gamma* %s; witness %s (%s)",
                    cnt > 1 ? "; " : "", r->name, cli_g(gam, 9), cli_g(g->gamma_lower, 12),
                    cli_g(g->gamma_upper, 12), g->upper_certified ? "" : " (upper bound evidence only)",
                    cli_f(ratio, 6), g->spec, wpath[0] ? wpath : "not written");
    }
    mf_global_result_free(g);
    if (cnt > 4) cli_cat(o->measured, sizeof o->measured, "; ... (%d runs)", cnt);
    o->pass = cnt ? ok : -1;
    if (want_global)
        cli_fmt(o->expected, sizeof o->expected, "global: gamma >= gamma*_lower (1 - %.3g), upper bound certified",
                tol);
    else
        cli_fmt(o->expected, sizeof o->expected, "not global: certified gamma* > gamma (1 + %.3g)", tol);
}

/* ------------------------------------------------------- layer0_relu2 */

/* The per-layer value of first layer W (rows w_k, [M][d]) with the outer
 * weights a[M] frozen: P_0 is min 1/2 ||W||^2 s.t. q_n(W) >= 1, and q is
 * homogeneous of degree 1 in W, so the best feasible multiple of W has
 * value 1/2 ||W||^2 / q_min(W)^2 (INFINITY if q_min <= 0). Margins by a
 * direct forward pass. */
static double p0_value(const mf_data *D, const double *W, const double *a, int M, double alpha) {
    double qmin = INFINITY, nw = 0;
    const int d = D->d;
    for (int k = 0; k < M * d; k++) nw += W[k] * W[k];
    for (int n = 0; n < D->n; n++) {
        double phi = 0;
        for (int k = 0; k < M; k++) {
            double z = 0;
            for (int j = 0; j < d; j++) z += W[k * d + j] * D->x[(size_t)n * d + j];
            phi += a[k] * (z > 0 ? z : alpha * z);
        }
        qmin = fmin(qmin, D->y[n] * phi);
    }
    return qmin > 0 ? 0.5 * nw / (qmin * qmin) : INFINITY;
}

/* The hard-margin SVM of the P_0 features of one activation pattern:
 * feature of sample n, block k: y_n a_k s_kn x_n with s_kn = sigma' of
 * the pattern (1 or alpha). On success returns 0 with the optimal W* in
 * wstar[M d] and its value 1/2 ||W*||^2 in *opt. */
static int p0_qp(const mf_data *D, const double *a, const double *slope, int M, double *wstar,
                 double *opt) {
    const int d = D->d, P = M * d;
    mf_data *F = NULL;
    mf_err e = {0, ""};
    if (mf_data_new(D->n, P, 0, &F, &e)) return -1;
    for (int n = 0; n < D->n; n++) {
        for (int k = 0; k < M; k++)
            for (int j = 0; j < d; j++)
                F->x[(size_t)n * P + k * d + j] = D->y[n] * a[k] * slope[n * M + k] * D->x[(size_t)n * d + j];
        F->y[n] = 1;
    }
    mf_svm_result *s = NULL;
    int rc = mf_svm_solve(F, MF_SVM_L2, NULL, &s, &e);
    mf_data_free(F);
    if (rc || s->status != MF_SVM_SOLVED) {
        mf_svm_result_free(s);
        return -1;
    }
    double v = 0;
    for (int i = 0; i < P; i++) wstar[i] = s->w[i], v += s->w[i] * s->w[i];
    *opt = 0.5 * v;
    mf_svm_result_free(s);
    return 0;
}

/* A first layer for the frozen outer weights a[M] that computes the
 * global network gt (relu2, [width][d] then [width]) exactly: each signed
 * global neuron s_j sigma(<u_j, x>), u_j = |b_j| v_j, is split over a group
 * G_j of the run's neurons with sign(a_k) = s_j as w_k = (|a_k| / A_j) u_j,
 * A_j = sum_{G_j} a_k^2 (the cheapest split: cost ||u_j||^2 / A_j), groups
 * filled greedily. Neurons left over get w_k = 0. Returns 0, or -1 when the
 * run has fewer neurons of some sign than the global network. */
static int p0_witness(const mf_global_result *g, const double *a, int M, int d, double *W) {
    const int m = g->width;
    int *grp = malloc(sizeof(int) * (size_t)(M + 1));
    double *A = calloc((size_t)m + 1, sizeof(double)), *un = calloc((size_t)m + 1, sizeof(double));
    int *used = calloc((size_t)M + 1, sizeof(int)), rc = 0;
    if (!grp || !A || !un || !used) rc = -1;
    for (int j = 0; !rc && j < m; j++) {
        double b = g->theta[m * d + j], nv = 0;
        for (int i = 0; i < d; i++) nv += g->theta[j * d + i] * g->theta[j * d + i];
        un[j] = fabs(b) * sqrt(nv);
    }
    for (int k = 0; k < M; k++) grp[k] = -1;
    /* one run neuron per global neuron: the largest free a_k^2 of the same sign */
    for (int j = 0; !rc && j < m; j++) {
        double s = g->theta[m * d + j] >= 0 ? 1 : -1;
        int best = -1;
        for (int k = 0; k < M; k++)
            if (!used[k] && a[k] * s > 0 && (best < 0 || a[k] * a[k] > a[best] * a[best])) best = k;
        if (best < 0) rc = -1;
        else used[best] = 1, grp[best] = j, A[j] += a[best] * a[best];
    }
    /* the rest where they lower sum_j ||u_j||^2 / A_j the most */
    for (int k = 0; !rc && k < M; k++) {
        if (used[k] || a[k] == 0) continue;
        int best = -1;
        double gain = 0;
        for (int j = 0; j < m; j++) {
            double s = g->theta[m * d + j] >= 0 ? 1 : -1;
            if (a[k] * s <= 0 || !(A[j] > 0)) continue;
            double gj = un[j] * un[j] * (1 / A[j] - 1 / (A[j] + a[k] * a[k]));
            if (gj > gain) gain = gj, best = j;
        }
        if (best >= 0) grp[k] = best, A[best] += a[k] * a[k];
    }
    for (int k = 0; !rc && k < M; k++) {
        int j = grp[k];
        for (int i = 0; i < d; i++) W[k * d + i] = 0;
        if (j < 0) continue;
        double b = g->theta[m * d + j];
        for (int i = 0; i < d; i++) W[k * d + i] = fabs(a[k]) / A[j] * fabs(b) * g->theta[j * d + i];
    }
    free(grp);
    free(A);
    free(un);
    free(used);
    return rc;
}

#define P0_MAX_KINKS 12

/* [VSS22] per-layer results for the first layer of a two-layer (leaky)
 * ReLU net: P_0 = min 1/2 ||W||^2 s.t. q_n(W, a) >= 1 with a frozen at
 * theta~ = theta / sqrt(q_min). Facts established (each re-checked by
 * direct evaluation):
 *  - local-certified: no kink (|<w_k, x_n>| > zero_tol ||w_k|| ||x_n|| for
 *    all k, n), so near W~ the margins are linear in W and P_0 coincides
 *    with the QP of its activation pattern; that QP's optimum W* (exact,
 *    hard-margin SVM in the features y_n a_k sigma'_kn x_n) has the same
 *    activation pattern and value within tol of W~'s: W* is a strict
 *    local optimum of P_0 next to W~, which W~ approximates.
 *  - not-local: at kinks, for each side of each kink (at most 2^12
 *    patterns) the QP optimum W*_s gives a direction d = W*_s - W~
 *    (scaled to ||W~||); the value of W~ + t d, by a forward pass, drops
 *    at t = 1e-2 and t = 1e-3 at a rate (1 - V(t)/V(0)) / t above
 *    gain_min: a first-order descent direction, not a finite-run defect.
 *  - not-global: the global network of mf_global_relu2 rebuilt on the
 *    frozen a (p0_witness) has a smaller P_0 value by more than tol.
 *  - inconclusive: kinks, and no pattern gives descent (a search).
 * Passes when every fact in "expect" holds for every selected run. */
void rp_ck_layer0_relu2(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double tol = cli_jnum_or(ck, "tol", 1e-3), ztol = cli_jnum_or(ck, "zero_tol", 1e-3);
    double gmin = cli_jnum_or(ck, "gain_min", 0.01);
    const cJSON *ex = cli_jget(ck, "expect");
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    char ext[128];
    expect_text(ex, ext, sizeof ext);
    cli_fmt(o->expected, sizeof o->expected, "first layer (P_0): %s", ext);
    for (int i = 0; i < c->nruns; i++) {
        const rp_run *r = &c->runs[i];
        mf_units u;
        if (!r->done || (sel && strcmp(sel, r->base))) continue;
        if (!relu2_run(r, &u, "layer0_relu2", o)) return;
        const mf_data *D = r->data;
        const int M = u.n_units, d = D->d, N = D->n, P = M * d;
        const mf_layer *WL = &r->model->layers[u.w_layer];
        double *q = malloc(sizeof(double) * (size_t)N), *a = malloc(sizeof(double) * (size_t)M);
        double *W = malloc(sizeof(double) * (size_t)P), *Ws = malloc(sizeof(double) * (size_t)P);
        double *Wt = malloc(sizeof(double) * (size_t)P), *slope = malloc(sizeof(double) * (size_t)(N * M));
        int *kink = malloc(sizeof(int) * (size_t)(N * M));
        double qm = q ? qmin_of(r->model, D, r->theta, q) : NAN;
        if (!q || !a || !W || !Ws || !Wt || !slope || !kink || !(qm > 0)) {
            free(q), free(a), free(W), free(Ws), free(Wt), free(slope), free(kink);
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured, "run %s: %s", r->name,
                    qm > 0 || isnan(qm) ? "out of memory or margins failed" : "q_min <= 0 (not separating)");
            return;
        }
        const double sc = 1 / sqrt(qm), alpha = r->model->alpha;
        for (int k = 0; k < M; k++) {
            a[k] = mf_units_outer(r->model, &u, r->theta, k) * sc;
            for (int j = 0; j < d; j++) W[k * d + j] = r->theta[WL->offset + (size_t)k * WL->cols + j] * sc;
        }
        /* pattern and kinks */
        int nk = 0, kidx[P0_MAX_KINKS];
        for (int n = 0; n < N; n++)
            for (int k = 0; k < M; k++) {
                double z = 0, nw = 0, nx = 0;
                for (int j = 0; j < d; j++) {
                    double x = D->x[(size_t)n * d + j];
                    z += W[k * d + j] * x, nw += W[k * d + j] * W[k * d + j], nx += x * x;
                }
                kink[n * M + k] = fabs(z) <= ztol * sqrt(nw * nx);
                slope[n * M + k] = z > 0 ? 1 : alpha;
                if (kink[n * M + k] && a[k] != 0) {
                    if (nk < P0_MAX_KINKS) kidx[nk] = n * M + k;
                    nk++;
                }
            }
        const double V0 = p0_value(D, W, a, M, alpha);
        int local_cert = 0, not_local = 0, not_global = 0, searched = nk <= P0_MAX_KINKS;
        double opt0 = NAN, best_rate = 0;
        /* every side of every kink (one pattern when there is none) */
        for (long s = 0; searched && s < (1L << nk); s++) {
            for (int b = 0; b < nk; b++) slope[kidx[b]] = (s >> b) & 1 ? 1 : alpha;
            double opt;
            if (p0_qp(D, a, slope, M, Ws, &opt)) continue;
            if (nk == 0) {
                opt0 = opt;
                int same = 1; /* W* in the same activation pattern as W~ */
                for (int n = 0; n < N && same; n++)
                    for (int k = 0; k < M && same; k++) {
                        double z = 0, z0 = 0;
                        for (int j = 0; j < d; j++)
                            z += Ws[k * d + j] * D->x[(size_t)n * d + j], z0 += W[k * d + j] * D->x[(size_t)n * d + j];
                        same = a[k] == 0 || (z > 0) == (z0 > 0);
                    }
                double vs = p0_value(D, Ws, a, M, alpha);
                local_cert = same && fabs(vs / opt - 1) <= 1e-9 && V0 <= opt * (1 + tol);
            }
            double nd = 0, nw = 0;
            for (int p = 0; p < P; p++) Ws[p] -= W[p], nd += Ws[p] * Ws[p], nw += W[p] * W[p];
            if (!(nd > 0)) continue;
            double rate[2];
            const double ts[2] = {1e-2, 1e-3};
            for (int ti = 0; ti < 2; ti++) {
                double t = ts[ti] * sqrt(nw / nd);
                for (int p = 0; p < P; p++) Wt[p] = W[p] + t * Ws[p];
                rate[ti] = (1 - p0_value(D, Wt, a, M, alpha) / V0) / ts[ti];
            }
            double rt = fmin(rate[0], rate[1]);
            if (rt > best_rate) best_rate = rt;
            if (rt > gmin && nk > 0) not_local = 1;
        }
        /* the global network on the frozen outer weights */
        mf_global_result *g = NULL;
        mf_err e = {0, ""};
        double Vw = NAN;
        int grc = mf_global_relu2(r->model, D, NULL, &g, &e);
        if (!grc && p0_witness(g, a, M, d, Wt) == 0) Vw = p0_value(D, Wt, a, M, alpha);
        not_global = Vw < V0 * (1 - tol);
        int inconc = nk > 0 && searched && !not_local;
        int hit = (!expects(ex, "local-certified") || local_cert) && (!expects(ex, "not-local") || not_local) &&
                  (!expects(ex, "not-global") || not_global) && (!expects(ex, "inconclusive") || inconc);
        ok &= hit;
        cnt++;
        if (cnt <= 3) {
            cli_cat(o->measured, sizeof o->measured, "%s%s: P_0 value %s, kinks %d", cnt > 1 ? "; " : "",
                    r->name, cli_g(V0, 9), nk);
            if (nk == 0)
                cli_cat(o->measured, sizeof o->measured, ", QP of the pattern: optimum %s%s", cli_g(opt0, 9),
                        local_cert ? " in the same pattern (local-certified)" : " (not certified)");
            else if (!searched)
                cli_cat(o->measured, sizeof o->measured, " (more than %d: sides not searched)", P0_MAX_KINKS);
            else
                cli_cat(o->measured, sizeof o->measured, ", best first-order descent rate %s over %ld patterns%s",
                        cli_g(best_rate, 3), 1L << nk, not_local ? " (not-local)" : " (inconclusive)");
            if (grc)
                cli_cat(o->measured, sizeof o->measured, ", global network: %s", e.msg);
            else
                cli_cat(o->measured, sizeof o->measured, ", first layer from the global network (%s): %s%s",
                        g->spec, isnan(Vw) ? "not buildable (too few neurons of a sign)" : cli_g(Vw, 9),
                        not_global ? " (not-global)" : "");
        }
        mf_global_result_free(g);
        free(q), free(a), free(W), free(Ws), free(Wt), free(slope), free(kink);
    }
    if (cnt > 3) cli_cat(o->measured, sizeof o->measured, "; ... (%d runs)", cnt);
    o->pass = cnt ? ok : -1;
}

/* ------------------------------------------------------ LLWA21 mechanisms */

int rp_odd_even(const mf_model *m, const mf_data *D, const double *theta, const double *wsvm,
                double *cosv, double *ratio) {
    mf_units u;
    if (!plain_relu2(m, &u) || D->d > 64) return -1;
    const mf_layer *WL = &m->layers[u.w_layer];
    const int d = D->d;
    double v[64] = {0}, nv = 0, dot = 0, emax = 0, lmax = 0, al = m->alpha;
    for (int k = 0; k < u.n_units; k++) {
        double ak = mf_units_outer(m, &u, theta, k);
        for (int j = 0; j < d; j++) v[j] += ak * theta[WL->offset + (size_t)k * WL->cols + j];
    }
    for (int j = 0; j < d; j++) nv += v[j] * v[j], dot += v[j] * wsvm[j];
    for (int n = 0; n < D->n; n++) {
        const double *x = D->x + (size_t)n * d;
        double L = 0, E = 0;
        for (int j = 0; j < d; j++) L += v[j] * x[j];
        for (int k = 0; k < u.n_units; k++) {
            double z = 0;
            for (int j = 0; j < d; j++) z += theta[WL->offset + (size_t)k * WL->cols + j] * x[j];
            E += mf_units_outer(m, &u, theta, k) * fabs(z);
        }
        lmax = fmax(lmax, fabs((1 + al) / 2 * L));
        emax = fmax(emax, fabs((1 - al) / 2 * E));
    }
    *cosv = nv > 0 ? dot / sqrt(nv) : NAN;
    *ratio = lmax > 0 ? emax / lmax : NAN;
    return 0;
}

/* [LLWA21] the odd/even split. sigma(z) = (1+alpha)/2 z + (1-alpha)/2 |z|,
 * so Phi = L + E with the odd part L(x) = (1+alpha)/2 <v, x>,
 * v = sum_k a_k w_k, and the even part E(x) = (1-alpha)/2 sum_k a_k |<w_k, x>|.
 * On symmetric data the margin of a mirrored pair is y L(x) - |E(x)|, so a
 * max-margin net has E = 0 on the data and v along w_svm. Measured from the
 * snapshots: cos(v, w_svm) and the nonlinearity ratio max_n |E(x_n)| /
 * max_n |L(x_n)| at the start, the middle row (in ln t) and the end.
 * Passes when the final cos >= cos_min and the final ratio <= ratio_max
 * (each when given) and cos at the end exceeds cos at the middle row
 * (the direction still turns towards w_svm). */
void rp_ck_odd_even(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double cmin = cli_jnum_or(ck, "cos_min", NAN), rmax = cli_jnum_or(ck, "ratio_max", NAN);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    for (int i = 0; i < c->nruns; i++) {
        const rp_run *r = &c->runs[i];
        mf_units u;
        if (!r->done || (sel && strcmp(sel, r->base))) continue;
        double ws[64];
        if (!r->snapshots || !plain_relu2(r->model, &u) || r->data->d > 64 || isnan(rp_svm_unit(r->data, ws)) ||
            r->nrows < 3) {
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured,
                    "run %s: odd_even needs snapshots of a bias-free relu2 model on separable binary data",
                    r->name);
            return;
        }
        int k1 = 1, km = 1, ke = r->nrows - 1;
        double xs = r->rows[k1].time_log, xe = r->rows[ke].time_log;
        while (km + 1 < ke && r->rows[km + 1].time_log <= (xs + xe) / 2) km++;
        double cs[3], rt[3];
        const int ks[3] = {k1, km, ke};
        for (int p = 0; p < 3; p++)
            rp_odd_even(r->model, r->data, r->snaps + (size_t)ks[p] * r->model->n_params, ws, &cs[p], &rt[p]);
        ok &= (isnan(cmin) || cs[2] >= cmin) && (isnan(rmax) || rt[2] <= rmax) && cs[2] > cs[1];
        cnt++;
        if (cnt <= 3)
            cli_cat(o->measured, sizeof o->measured,
                    "%scos(v, w_svm) %s (log10 t %s) -> %s (mid) -> %s (end); max|E| / max|L| %s -> %s -> %s",
                    cnt > 1 ? "; " : "", cli_f(cs[0], 6), cli_g(xs / LN10, 3), cli_f(cs[1], 6),
                    cli_f(cs[2], 9), cli_g(rt[0], 3), cli_g(rt[1], 3), cli_g(rt[2], 3));
    }
    o->pass = cnt ? ok : -1;
    o->expected[0] = '\0';
    cli_cat(o->expected, sizeof o->expected, "cos(v, w_svm) rising to the end");
    if (!isnan(cmin)) cli_cat(o->expected, sizeof o->expected, ", final cos >= %.9g", cmin);
    if (!isnan(rmax)) cli_cat(o->expected, sizeof o->expected, ", final ratio <= %.3g", rmax);
}

/* [LLWA21] small-init phase: on symmetric data the hidden units follow
 * dw_k/dt = lambda a_k mu^, da_k/dt = lambda <w_k, mu^> (mu^ = mu / ||mu||,
 * derivation in experiments/README.md), so a_k + <w_k, mu^> grows like
 * e^{lambda t} and a_k - <w_k, mu^> decays: neuron k ends with
 * sign(a_k) = sign(<w_k, mu>) = s_k := sign(a_k(0) + <w_k(0), mu^>).
 * Measured (snapshot row 0 is the init): how many neurons have
 * sign(a_k(end)) = s_k and sign(<w_k(end), mu>) = s_k, against how many
 * a naive rule sign(a_k(0)) gets right. Passes when every neuron of every
 * selected run matches s_k both ways. */
void rp_ck_sign_init(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    const char *sel = cli_jstr_or(ck, "run", NULL);
    int cnt = 0, ok = 1, tot = 0, hit_a = 0, hit_w = 0, naive = 0;
    for (int i = 0; i < c->nruns; i++) {
        const rp_run *r = &c->runs[i];
        mf_units u;
        if (!r->done || (sel && strcmp(sel, r->base))) continue;
        if (!r->snapshots || !plain_relu2(r->model, &u) || r->data->d > 64 || r->nrows < 1 ||
            r->rows[0].step != 0) {
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured,
                    "run %s: sign_init needs snapshots (from step 0) of a bias-free relu2 model", r->name);
            return;
        }
        const mf_layer *WL = &r->model->layers[u.w_layer];
        double mu[64], nm = 0;
        rp_data_mu(r->data, mu);
        for (int j = 0; j < r->data->d; j++) nm += mu[j] * mu[j];
        nm = sqrt(nm);
        const double *t0 = r->snaps, *t1 = r->theta;
        for (int k = 0; k < u.n_units; k++) {
            double p0 = 0, p1 = 0;
            for (int j = 0; j < r->data->d; j++) {
                p0 += t0[WL->offset + (size_t)k * WL->cols + j] * mu[j] / nm;
                p1 += t1[WL->offset + (size_t)k * WL->cols + j] * mu[j];
            }
            double a0 = mf_units_outer(r->model, &u, t0, k), a1 = mf_units_outer(r->model, &u, t1, k);
            int s = a0 + p0 > 0 ? 1 : -1;
            hit_a += (a1 > 0 ? 1 : -1) == s;
            hit_w += (p1 > 0 ? 1 : -1) == s;
            naive += (a0 > 0 ? 1 : -1) == (a1 > 0 ? 1 : -1);
            tot++;
        }
        cnt++;
    }
    ok = tot > 0 && hit_a == tot && hit_w == tot;
    o->pass = cnt ? ok : -1;
    cli_fmt(o->measured, sizeof o->measured,
            "%d/%d neurons end with sign(a_k) = sign(a_k(0) + <w_k(0), mu^>), %d/%d with sign(<w_k, mu>) "
            "= that sign (%d run%s); the naive rule sign(a_k(0)) gets %d/%d",
            hit_a, tot, hit_w, tot, cnt, cnt == 1 ? "" : "s", naive, tot);
    cli_fmt(o->expected, sizeof o->expected, "every neuron as predicted from its init");
}

/* The flow invariant of a two-layer net: for each neuron, by homogeneity
 * a_k dPhi/da_k = <w_k, dPhi/dw_k>, so under gradient flow on any loss
 * d/dt (a_k^2 - ||w_k||^2) = 0 ([LLWA21]; Du, Hu & Lee 2018). A
 * discretization does not keep it: gradient descent changes it by
 * O(step^2) per step, so the drift over a fixed stretch of training is
 * O(step), a direct measure of the integration error. Measured per run:
 * drift = max_k |c_k(end) - c_k(0)| / ||theta(end)||^2 with
 * c_k = a_k^2 - ||w_k||^2 (snapshot row 0 = init). Passes when every
 * selected run has drift <= tol and, with "slope", when the least-squares
 * slope of ln drift against ln of the vary value (the step) is within
 * slope_tol of slope (then the sweep figure draws drift against the step). */
void rp_ck_invariant(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double tol = cli_jnum_or(ck, "tol", INFINITY), sl = cli_jnum_or(ck, "slope", NAN);
    double stol = cli_jnum_or(ck, "slope_tol", 0.25);
    double xs[64], ys[64];
    int cnt = 0, ok = 1, m = 0;
    o->measured[0] = '\0';
    for (int i = 0; i < c->nruns; i++) {
        const rp_run *r = &c->runs[i];
        mf_units u;
        if (!r->done || (sel && strcmp(sel, r->base))) continue;
        if (!r->snapshots || !mf_model_units(r->model, &u) || u.a_layer < 0 || r->nrows < 1 ||
            r->rows[0].step != 0) {
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured,
                    "run %s: invariant needs snapshots (from step 0) of a relu2 model with trained outer "
                    "weights", r->name);
            return;
        }
        const mf_layer *WL = &r->model->layers[u.w_layer];
        double nt = mf_param_norm(r->model, r->theta), drift = 0;
        for (int k = 0; k < u.n_units; k++) {
            double cc[2];
            const double *th[2] = {r->snaps, r->theta};
            for (int s = 0; s < 2; s++) {
                double a = mf_units_outer(r->model, &u, th[s], k), nw = 0;
                for (int j = 0; j < WL->cols; j++) {
                    double w = th[s][WL->offset + (size_t)k * WL->cols + j];
                    nw += w * w;
                }
                cc[s] = a * a - nw;
            }
            drift = fmax(drift, fabs(cc[1] - cc[0]));
        }
        drift /= nt * nt;
        ok &= drift <= tol;
        if (r->has_vary && m < 64 && drift > 0) xs[m] = log(r->vary), ys[m] = log(drift), m++;
        cnt++;
        if (cnt <= 6)
            cli_cat(o->measured, sizeof o->measured, "%s%s drift %s", cnt > 1 ? ", " : "", r->name,
                    cli_g(drift, 3));
    }
    if (cnt > 6) cli_cat(o->measured, sizeof o->measured, ", ... (%d runs)", cnt);
    o->expected[0] = '\0';
    if (!isinf(tol)) cli_cat(o->expected, sizeof o->expected, "drift <= %.3g", tol);
    if (!isnan(sl)) {
        double sx = 0, sy = 0, sxx = 0, sxy = 0, b = NAN;
        for (int k = 0; k < m; k++) sx += xs[k], sy += ys[k];
        for (int k = 0; k < m; k++)
            sxx += (xs[k] - sx / m) * (xs[k] - sx / m), sxy += (xs[k] - sx / m) * (ys[k] - sy / m);
        if (m >= 2 && sxx > 0) b = sxy / sxx;
        ok &= fabs(b - sl) <= stol;
        /* the sweep figure: drift against the step, log-log, with the fit */
        cli_fmt(c->sweep_kind, sizeof c->sweep_kind, "invariant");
        c->n_groups = m;
        for (int k = 0; k < m; k++) c->group_x[k] = exp(xs[k]), c->group_y[k] = exp(ys[k]);
        c->fit_slope = b, c->fit_icpt = m > 0 ? sy / m - b * sx / m : NAN, c->pred_slope = sl;
        cli_cat(o->measured, sizeof o->measured, "; slope of ln drift vs ln step %s (%d runs)", cli_f(b, 3), m);
        cli_cat(o->expected, sizeof o->expected, "%sslope %.3g +- %.3g", o->expected[0] ? ", " : "", sl, stol);
    }
    o->pass = cnt ? ok : -1;
}

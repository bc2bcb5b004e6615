/*
 * test_science.c -- end-to-end known answers: train with mf_train, then
 * judge the limit with mf_analyze (issue 3's trained-run cases; the
 * constructed limit points are in test_analyze.c).
 *   C asymmetric init (0.5 vs 0.49) -> the global 3^{-3/2} = 0.192450.
 *   sym4, two-layer leaky ReLU from a tiny init: small KKT residual, and the
 *   ratio to (1 + alpha) gamma_svm / 4 grows towards 1 with the horizon.
 *   B trained from docs/theory.md's init -> not-local with d'Hd = -2.
 * And issue 11's acceptance: flow at default settings is within 1e-6 of the
 * exact gradient flow (a run at 1e-4 x the tolerance) at log10 Loss -1e3,
 * -1e4, -1e5 on the known-answer sets, never lowers the smoothed margin,
 * and on sym4 ends within 1e-6 of the limit.
 */
#include "marginflow.h"
#include "test.h"
#include "trained.h"

#include <math.h>
#include <string.h>

static mf_analysis *analyze(const trained *t, int search) {
    mf_analyze_settings as;
    mf_analyze_settings_default(&as);
    if (!search) as.local_trials = 1;
    mf_analysis *a = NULL;
    mf_err e = {0, ""};
    if (mf_analyze(t->model, t->data, t->st->theta, MF_LOSS_EXP, &as, &a, &e) != MF_OK)
        fprintf(stderr, "analyze: %s\n", e.msg);
    return a;
}

/* docs/theory.md s.4 case C with the asymmetric init: the flow leaves the symmetric
 * KKT point and reaches the global optimum, certified by the closed form
 * (enumeration for depth-3 diagonal nets). Convergence needs w_1 >> 24.5
 * (w_2's limit), i.e. a very deep loss, which the log domain makes cheap. */
TEST(C_asymmetric_reaches_global) {
    double init[6] = {0.5, 0.49, 0.5, 0.49, 0.5, 0.49};
    trained t;
    CHECK_EQ_INT(train_to(&t, "builtin:C", "diag:depth=3", init, 0, 0, MF_OPT_FLOW, -1e300), MF_OK);
    CHECK_EQ_INT(t.res.outcome, MF_OUT_LOSS_TARGET);
    CHECK_NEAR(t.res.final.normalized_margin, pow(3.0, -1.5), 1e-5);
    mf_analysis *a = analyze(&t, 0);
    CHECK(a != NULL, "analysis failed");
    if (a) {
        CHECK_NEAR(a->gamma_star, pow(3.0, -1.5), 1e-12);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_GLOBAL);
        CHECK_NEAR(a->ratio, 1.0, 1e-4);
    }
    mf_analysis_free(a);
    trained_free(&t);
}

/* docs/theory.md s.4 case B trained from its init: the analysis certifies that the
 * limit is not a local optimum, by the second-order test along
 * d = e_u2 + e_v2 (d'Hd = -2; the unit eigenvector has eigenvalue -1). */
TEST(B_trained_not_local) {
    double init[4] = {1, 1, 1, -1};
    trained t;
    CHECK_EQ_INT(train_to(&t, "builtin:B", "diag:depth=2", init, 0, 0, MF_OPT_SCALED, -10000), MF_OK);
    mf_analysis *a = analyze(&t, 0);
    CHECK(a != NULL, "analysis failed");
    if (a) {
        CHECK_EQ_INT(a->verdict, MF_VERDICT_NOT_LOCAL);
        CHECK(a->eps < 1e-6, "eps %g", a->eps);
        CHECK_NEAR(a->min_eig, -1.0, 1e-6);
        CHECK_NEAR(a->gamma_star, 1.0, 1e-12);
        CHECK_NEAR(a->ratio, 0.5, 1e-6);
    }
    mf_analysis_free(a);
    trained_free(&t);
}

/* [LLWA21] / docs/theory.md s.4: two-layer leaky ReLU (alpha = 0.5, width 20,
 * sigma = 1e-6) on sym4, by gradient flow. The margin rises slowly towards
 * gamma* = (1 + alpha) gamma_svm / 4 = 0.41926: assert the trend (the
 * ratio grows with the horizon and stays below 1), a KKT residual that
 * shrinks, and the value reported. (Fixed-alpha scaled GD and lyu-li do not
 * show the trend: at log10 Loss -3000 their ratio has fallen back to 0.9986
 * and 0.988 with eps 0.32, discretization error once the loss weights are
 * sharp; the adaptive flow keeps it.) */
TEST(sym4_trend_towards_gamma_star) {
    static const double targets[3] = {-30, -300, -3000};
    double ratio[3] = {0}, eps[3] = {0};
    for (int k = 0; k < 3; k++) {
        trained t;
        CHECK_EQ_INT(train_to(&t, "builtin:sym4", "relu2:width=20,alpha=0.5", NULL, 1e-6, 1,
                              MF_OPT_FLOW, targets[k]),
                     MF_OK);
        mf_analysis *a = analyze(&t, 0);
        CHECK(a != NULL, "analysis failed at log10 Loss %g", targets[k]);
        if (a) {
            CHECK_NEAR(a->gamma_star, 1.5 * sqrt(5.0) / 2 / 4, 1e-9);
            ratio[k] = a->ratio;
            eps[k] = a->eps;
            printf("sym4 at log10 Loss %g: gamma/gamma* = %.9f, eps = %.3g, verdict %s\n",
                   targets[k], a->ratio, a->eps, mf_verdict_name(a->verdict));
        }
        mf_analysis_free(a);
        trained_free(&t);
    }
    CHECK(ratio[0] < ratio[1] && ratio[1] < ratio[2] && ratio[2] <= 1 + 1e-12,
          "ratios %.9f %.9f %.9f must rise towards 1", ratio[0], ratio[1], ratio[2]);
    CHECK(ratio[2] > 0.99999, "ratio %.9f at log10 Loss -3000", ratio[2]);
    CHECK(eps[0] > eps[1] && eps[1] > eps[2] && eps[2] < 0.005, "eps %g -> %g -> %g", eps[0], eps[1],
          eps[2]);
}

/* [VSS22]: a two-layer ReLU net whose limit has no pre-activation at 0 is
 * a local optimum. A trained (not exactly converged) run must be judged
 * local-certified with the SLSQP searches on: gains that only reflect the
 * run's remaining distance from its limit (~1e-5 here) are measured against
 * the KKT point polished from theta~ and do not count as certificates. */
TEST(smooth_relu2_local_with_search) {
    trained t;
    CHECK_EQ_INT(train_to(&t, "gauss:n=16,d=2,margin=0.2,seed=2", "relu2:width=2,alpha=0", NULL, 0.5,
                          1, MF_OPT_FLOW, -10000),
                 MF_OK);
    mf_analysis *a = analyze(&t, 1);
    CHECK(a != NULL, "analysis failed");
    if (a) {
        CHECK_EQ_INT(a->n_kinks, 0);
        CHECK(a->eps < 1e-4, "eps %g", a->eps);
        CHECK(a->min_eig > 0.5, "min eigenvalue %g", a->min_eig);
        CHECK(a->local != NULL, "the search must have run");
        CHECK(!isnan(a->gamma_polished) && a->gamma_polished >= a->gamma * (1 - 1e-12),
              "polished %g vs gamma %g", a->gamma_polished, a->gamma);
        CHECK_EQ_INT(a->verdict, MF_VERDICT_LOCAL_CERTIFIED);
        printf("smooth relu2: eps %.3g delta %.3g gain %.3g polished/gamma - 1 = %.3g, %s\n", a->eps,
               a->delta, a->local ? a->local->best_gain : NAN, a->gamma_polished / a->gamma - 1,
               mf_verdict_name(a->verdict));
    }
    mf_analysis_free(a);
    trained_free(&t);
}

/* Kinks are identified on the scale of the active set (zero_tol 1e-3): a
 * relu2 flow run leaves 11 (sample, unit) pre-activations converging to 0 at
 * relative sizes 1e-8..5e-4. With zero_tol 1e-6 (the old default) the set
 * of freed Clarke coefficients changed from horizon to horizon and eps went
 * 0.15 -> 0.20 -> 0.135; on the active-set scale it falls at every horizon
 * (the ll20-kkt claim's relu2 run). */
TEST(relu2_kkt_eps_falls_with_horizon) {
    static const double targets[3] = {-1000, -3000, -10000};
    double eps[3] = {0};
    for (int k = 0; k < 3; k++) {
        trained t;
        CHECK_EQ_INT(train_to(&t, "gauss:n=40,d=5,margin=0.1,seed=1", "relu2:width=8,alpha=0.2", NULL,
                              0.5, 1, MF_OPT_FLOW, targets[k]),
                     MF_OK);
        mf_analysis *a = analyze(&t, 0);
        CHECK(a != NULL, "analysis failed");
        if (a) {
            eps[k] = a->eps;
            printf("relu2 gauss at log10 Loss %g: eps %.4g, kinks %d\n", targets[k], a->eps, a->n_kinks);
        }
        mf_analysis_free(a);
        trained_free(&t);
    }
    CHECK(eps[0] > eps[1] && eps[1] > eps[2] && eps[2] < 0.05, "eps %g -> %g -> %g", eps[0], eps[1],
          eps[2]);
}

/* ------------------------------------------------- issue 11: accuracy */

/* One known-answer problem with one initialization (explicit values, or
 * gauss with scale and seed). */
typedef struct {
    const char *name, *data, *model;
    const double *init;
    double scale;
    uint64_t seed;
} acase;

#define ACC_MAXN 16
/* The state of a reference run where its log10 Loss crosses a target:
 * the last logged row above and the first at or below, with the per-sample
 * normalized margins gamma_n = q_n / ||theta||^L of each. */
typedef struct {
    const mf_model *m;
    const mf_data *d;
    mf_work *w;
    double target, out[ACC_MAXN];
    double l[2], g[2], gn[2][ACC_MAXN];
    int have[2];
} bracket;

static void sample_margins(const mf_model *m, const mf_data *d, mf_work *w, const double *theta,
                           double *out, double *gn) {
    mf_model_forward(m, w, theta, d->x, d->n, out);
    double nl = pow(mf_param_norm(m, theta), m->degree);
    for (int n = 0; n < d->n; n++) gn[n] = d->y[n] * out[n] / nl;
}

static int bracket_snap(void *user, const mf_metrics *mt, const double *theta) {
    bracket *b = user;
    if (b->have[1]) return 0;
    int k = mt->log10_loss <= b->target;
    b->l[k] = mt->log10_loss;
    b->g[k] = mt->normalized_margin;
    sample_margins(b->m, b->d, b->w, theta, b->out, b->gn[k]);
    b->have[k] = 1;
    return 0;
}

/* Train c with flow at tolerance tol (0: the default settings, whose step
 * budget is the default 10000) until log10 Loss <= target. With b, every
 * step is logged and b records the rows around the target. Returns the
 * result; theta_out (may be NULL) gets the final parameters. */
static int acc_run(const acase *c, double tol, double target, bracket *b, mf_train_result *res,
                   double *gn) {
    mf_err e = {0, ""};
    mf_data *d = NULL;
    mf_model *m = NULL;
    mf_train_state *st = NULL;
    mf_work *w = NULL;
    int rc = mf_data_from_spec(c->data, NULL, &d, &e);
    if (!rc) rc = mf_model_parse(c->model, d->d, d->num_classes, &m, &e);
    if (!rc) rc = mf_train_state_new(m->n_params, &st, &e);
    if (!rc) rc = mf_work_new(m, d->n, &w, &e);
    if (!rc && c->init) memcpy(st->theta, c->init, sizeof(double) * m->n_params);
    if (!rc && !c->init) {
        mf_rng r;
        mf_rng_seed(&r, c->seed);
        rc = mf_model_init(m, "gauss", c->scale, &r, st->theta, &e);
    }
    mf_train_settings s;
    mf_train_settings_default(&s); /* optimizer flow, tol 1e-6, 10000 steps */
    s.until_log10_loss = target;
    mf_callbacks cb;
    memset(&cb, 0, sizeof cb);
    if (tol > 0) {
        s.tol = tol;
        s.max_steps = 0;
    }
    if (b) {
        b->m = m;
        b->d = d;
        b->w = w;
        b->have[0] = b->have[1] = 0;
        s.log_points = 6000000; /* every step up to 10^6 is a row */
        s.log_horizon = 1000000;
        cb.user = b;
        cb.on_snapshot = bracket_snap;
    }
    if (!rc) rc = mf_train(m, d, &s, st, &cb, res, &e);
    if (!rc && gn) {
        double out[ACC_MAXN];
        sample_margins(m, d, w, st->theta, out, gn);
    }
    if (rc) fprintf(stderr, "%s: %s\n", c->name, e.msg);
    mf_work_free(w);
    mf_train_state_free(st);
    mf_model_free(m);
    mf_data_free(d);
    return rc;
}

/* Linear interpolation of the bracket in log(-log10 Loss) at level l. */
static double interp(const bracket *b, double va, double vb, double l) {
    if (!b->have[0] || !(b->l[0] < 0)) return vb;
    double a = log(-b->l[0]), z = log(-b->l[1]);
    return va + (log(-l) - a) / (z - a) * (vb - va);
}

static const double B_THEORY[4] = {1, 1, 1, -1};
static const double C_SYM[6] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
static const double C_ASYM[6] = {0.5, 0.49, 0.5, 0.49, 0.5, 0.49};
static const double D_THEORY[6] = {1, -1, -1, 1, 1, 1};
static const acase acc_cases[] = {
    {"B theory", "builtin:B", "diag:depth=2", B_THEORY, 0, 0},
    {"B 1e-6 s1", "builtin:B", "diag:depth=2", NULL, 1e-6, 1},
    {"B 1e-3 s2", "builtin:B", "diag:depth=2", NULL, 1e-3, 2},
    {"B 1e-1 s1", "builtin:B", "diag:depth=2", NULL, 1e-1, 1},
    {"C sym", "builtin:C", "diag:depth=3", C_SYM, 0, 0},
    {"C 1e-6 s1", "builtin:C", "diag:depth=3", NULL, 1e-6, 1},
    {"C 1e-1 s2", "builtin:C", "diag:depth=3", NULL, 1e-1, 2},
    {"D theory", "builtin:D", "relu2:width=2", D_THEORY, 0, 0},
    {"D 1e-1 s4", "builtin:D", "relu2:width=2", NULL, 1e-1, 4},
    {"D 1e-1 s5", "builtin:D", "relu2:width=2", NULL, 1e-1, 5},
    {"R1 1e-6 s1", "builtin:R1", "fc-linear:depth=3,width=3", NULL, 1e-6, 1},
    {"R1 1e-3 s2", "builtin:R1", "fc-linear:depth=3,width=3", NULL, 1e-3, 2},
    {"R1 1e-1 s1", "builtin:R1", "fc-linear:depth=3,width=3", NULL, 1e-1, 1},
    {"sym4 1e-6 s1", "builtin:sym4", "relu2:width=20,alpha=0.5", NULL, 1e-6, 1},
    {"sym4 1e-6 s2", "builtin:sym4", "relu2:width=20,alpha=0.5", NULL, 1e-6, 2},
    {"sym4 1e-3 s5", "builtin:sym4", "relu2:width=20,alpha=0.5", NULL, 1e-3, 5},
    {"sym4 1e-3 s3", "builtin:sym4", "relu2:width=20,alpha=0.5", NULL, 1e-3, 3},
    {"sym4 1e-1 s1", "builtin:sym4", "relu2:width=20,alpha=0.5", NULL, 1e-1, 1},
    {"sym4 1e-1 s2", "builtin:sym4", "relu2:width=20,alpha=0.5", NULL, 1e-1, 2},
    {"nonsym 1e-6 s1", "experiments/data/llwa21-nonsym.svm", "relu2:width=20,alpha=0.1", NULL, 1e-6, 1},
    {"nonsym 1e-6 s2", "experiments/data/llwa21-nonsym.svm", "relu2:width=20,alpha=0.1", NULL, 1e-6, 2},
    {"nonsym 1e-6 s3", "experiments/data/llwa21-nonsym.svm", "relu2:width=20,alpha=0.1", NULL, 1e-6, 3},
    {"nonsym 1e-1 s1", "experiments/data/llwa21-nonsym.svm", "relu2:width=20,alpha=0.1", NULL, 1e-1, 1},
    {"sym4 mlp 0.3 s1", "builtin:sym4", "mlp:widths=8/8,alpha=0.5", NULL, 0.3, 1},
    {"sym4 mlp 0.3 s2", "builtin:sym4", "mlp:widths=8/8,alpha=0.5", NULL, 0.3, 2},
};

/* Issue 11's acceptance: at default settings (flow, tol 1e-6, the default
 * step budget) every case reaches each target, its normalized margin is
 * within 1e-6 relative of a reference run at 1e-4 x the tolerance taken at
 * the same loss, and its smoothed margin never decreased by more than 1e-12
 * relative once Loss < ell(0). At -1e5 the per-sample normalized margins
 * (relu2 and mlp cases) agree with the reference to 1e-6, and sym4 is
 * within 1e-6 of the limit (1 + alpha) gamma_svm / 4 = 0.41926274578. */
TEST(flow_default_accuracy) {
    static const double targets[3] = {-1e3, -1e4, -1e5};
    const double gstar = 1.5 * sqrt(5.0) / 2 / 4;
    double worst = 0, worst_n = 0, worst_sd = 0, worst_lim = 0;
    long long max_steps = 0;
    for (size_t c = 0; c < sizeof acc_cases / sizeof acc_cases[0]; c++) {
        const acase *ac = &acc_cases[c];
        int per_sample = strstr(ac->model, "relu2") || strstr(ac->model, "mlp");
        for (int k = 0; k < 3; k++) {
            mf_train_result def, ref;
            double gn[ACC_MAXN], rn[ACC_MAXN];
            CHECK_EQ_INT(acc_run(ac, 0, targets[k], NULL, &def, gn), MF_OK);
            CHECK(def.outcome == MF_OUT_LOSS_TARGET, "%s at %g: outcome %s after %lld steps",
                  ac->name, targets[k], mf_outcome_name(def.outcome), def.steps);
            if (def.outcome != MF_OUT_LOSS_TARGET) continue;
            if (def.steps > max_steps) max_steps = def.steps;
            bracket b;
            memset(&b, 0, sizeof b);
            b.target = def.final.log10_loss;
            CHECK_EQ_INT(acc_run(ac, 1e-10, b.target, &b, &ref, NULL), MF_OK);
            CHECK(b.have[1], "%s: the reference never reached %g", ac->name, b.target);
            if (!b.have[1]) continue;
            double gr = interp(&b, b.g[0], b.g[1], b.target);
            double rel = fabs(def.final.normalized_margin - gr) / fabs(gr);
            CHECK(rel <= 1e-6, "%s at log10 Loss %g: margin %.15g, reference %.15g (rel %.2g)",
                  ac->name, def.final.log10_loss, def.final.normalized_margin, gr, rel);
            CHECK(def.final.smoothed_decrease <= 1e-12, "%s: smoothed margin decreased by %.3g",
                  ac->name, def.final.smoothed_decrease);
            if (rel > worst) worst = rel;
            if (def.final.smoothed_decrease > worst_sd) worst_sd = def.final.smoothed_decrease;
            if (k == 2 && per_sample) {
                const mf_data *dd = NULL;
                mf_data *dl = NULL;
                mf_data_from_spec(ac->data, NULL, &dl, NULL);
                dd = dl;
                double dn = 0;
                for (int n = 0; dd && n < dd->n; n++) {
                    rn[n] = interp(&b, b.gn[0][n], b.gn[1][n], b.target);
                    dn = fmax(dn, fabs(gn[n] - rn[n]));
                }
                mf_data_free(dl);
                CHECK(dn <= 1e-6, "%s at -1e5: per-sample normalized margins differ by %.3g",
                      ac->name, dn);
                if (dn > worst_n) worst_n = dn;
            }
            if (k == 2 && strstr(ac->data, "sym4") && strstr(ac->model, "relu2")) {
                double lim = fabs(def.final.normalized_margin / gstar - 1);
                CHECK(lim <= 1e-6, "%s: %.12f is %.3g from the limit", ac->name,
                      def.final.normalized_margin, lim);
                if (lim > worst_lim) worst_lim = lim;
            }
        }
    }
    printf("flow at default settings, %zu cases x 3 horizons: worst margin error %.2g relative, "
           "per-sample %.2g, smoothed-margin decrease %.2g, sym4 %.2g from the limit, at most "
           "%lld steps\n",
           sizeof acc_cases / sizeof acc_cases[0], worst, worst_n, worst_sd, worst_lim, max_steps);
}

/* C from docs/theory.md's asymmetric init (0.5 vs 0.49) leaves the symmetric KKT
 * point, a saddle of the flow: errors of the unstable direction grow, and
 * the one-sample flow has no loss weights to control (explicit steps
 * only), so the margin error is proportional to tol and about 3x it:
 * 3.3e-6 at the default 1e-6 (the former integrator's value: the same
 * steps) and 3.3e-7 at 1e-7 at log10 Loss -1e4, against a run at 1e-4 x. */
TEST(C_asym_saddle_error_proportional_to_tol) {
    acase c = {"C asym", "builtin:C", "diag:depth=3", C_ASYM, 0, 0};
    double tols[2] = {0, 1e-7}, bound[2] = {5e-6, 5e-7};
    for (int k = 0; k < 2; k++) {
        mf_train_result def, ref;
        CHECK_EQ_INT(acc_run(&c, tols[k], -1e4, NULL, &def, NULL), MF_OK);
        bracket b;
        memset(&b, 0, sizeof b);
        b.target = def.final.log10_loss;
        CHECK_EQ_INT(acc_run(&c, (tols[k] > 0 ? tols[k] : 1e-6) * 1e-4, b.target, &b, &ref, NULL),
                     MF_OK);
        double gr = interp(&b, b.g[0], b.g[1], b.target);
        double rel = fabs(def.final.normalized_margin - gr) / gr;
        CHECK(rel <= bound[k] && rel > bound[k] / 100, "tol %g: rel error %.3g", tols[k], rel);
        printf("C asym at log10 Loss %g, tol %g: margin error %.2g relative\n", b.target,
               tols[k] > 0 ? tols[k] : 1e-6, rel);
    }
}

int main(void) {
    RUN(C_asymmetric_reaches_global);
    RUN(B_trained_not_local);
    RUN(sym4_trend_towards_gamma_star);
    RUN(smooth_relu2_local_with_search);
    RUN(relu2_kkt_eps_falls_with_horizon);
    RUN(flow_default_accuracy);
    RUN(C_asym_saddle_error_proportional_to_tol);
    return TEST_REPORT();
}

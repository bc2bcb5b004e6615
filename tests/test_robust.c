/*
 * test_robust.c -- the L2 attacks of src/robust.c against known answers.
 *
 * For a linear classifier Phi = <w, x> (cnn:layers=f1, which has input
 * gradients) the smallest L2 perturbation that flips a correct input x is
 * exactly q / ||w|| (q = y <w, x>) when that step stays inside the box:
 *  - PGD breaks an input at eps exactly when eps >= q / ||w|| (it walks
 *    along -y w), so its robust accuracy is the fraction with q/||w|| > eps;
 *  - Carlini-Wagner's smallest adversarial norm lies in [q/||w||, 1.02 q/||w||]
 *    (never below: no adversarial input is closer than the boundary).
 * The box: an input whose only adversarial direction leaves [0, 1] is never
 * broken. Misclassified inputs count as not robust, with norm 0. A tiny cnn
 * on 3 classes: robust accuracies fall with eps, the minimum over attacks is
 * below each, every found norm is >= the first-order lower bound... and the
 * evaluation is deterministic. Bad inputs get their exact errors.
 */
#include "internal.h"
#include "marginflow.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

TEST(linear_known_answer) {
    const int n = 40, d = 16;
    mf_model *m = NULL;
    mf_model_parse("cnn:layers=f1", d, 0, &m, NULL);
    mf_data *D = NULL;
    mf_data_new(n, d, 0, &D, NULL);
    mf_rng r;
    mf_rng_seed(&r, 3);
    double w[16], wn = 0, dist[40];
    for (int j = 0; j < d; j++) w[j] = mf_rng_normal(&r), wn += w[j] * w[j];
    wn = sqrt(wn);
    for (int i = 0; i < n; i++) {
        double z = 0;
        for (int j = 0; j < d; j++) D->x[i * d + j] = 0.4 + 0.2 * mf_rng_uniform(&r);
        for (int j = 0; j < d; j++) z += w[j] * (D->x[i * d + j] - 0.5);
        /* shift along w so that the margin is a chosen distance in (0.01, 0.09) */
        double want = 0.01 + 0.08 * mf_rng_uniform(&r);
        (void)z;
        D->y[i] = i % 5 == 0 ? -1.0 : 1.0; /* every 5th is misclassified (Phi > 0, y = -1) */
        double base = 0; /* move x along w until <w, x> = want ||w||: distance want */
        for (int j = 0; j < d; j++) base += w[j] * D->x[i * d + j];
        double t = (want * wn - base) / (wn * wn);
        for (int j = 0; j < d; j++) D->x[i * d + j] += t * w[j];
        dist[i] = want;
    }
    mf_robust_settings s;
    mf_robust_settings_default(&s);
    s.n_eps = 4;
    s.eps[0] = 0.005, s.eps[1] = 0.03, s.eps[2] = 0.06, s.eps[3] = 0.2;
    /* Adam moves x by about cw_lr / 2 a coordinate a step: its last step past the
     * boundary is ~ 0.001 sqrt(d) / 2 = 0.002 in norm, 1% of the median distance
     * (0.05) and 20% of the smallest (0.01); hence the bound below on the
     * median ratio and a loose one on the worst. */
    s.pgd_steps = 20, s.cw_steps = 500, s.cw_search = 10, s.cw_lr = 0.001;
    mf_robust_result *res = NULL;
    mf_err e;
    int rc = mf_robust_eval(m, D, w, &s, &res, &e);
    CHECK(rc == MF_OK, "%s", rc ? e.msg : "");
    if (!res) return;
    int correct = 0;
    for (int i = 0; i < n; i++) correct += D->y[i] > 0;
    CHECK_EQ_INT(res->n_correct, correct);
    for (int l = 0; l < 4; l++) {
        int robust = 0;
        for (int i = 0; i < n; i++) robust += D->y[i] > 0 && dist[i] > s.eps[l];
        CHECK_NEAR(res->acc_pgd[l], (double)robust / n, 0);
        CHECK(res->acc_min[l] <= res->acc_pgd[l] && res->acc_min[l] <= res->acc_cw[l], "min over attacks");
    }
    double worst_lo = 0, worst_hi = 0, ratios[40];
    int nr = 0;
    for (int i = 0; i < n; i++) {
        if (D->y[i] < 0) {
            CHECK(res->norm[i] == 0 && res->norm_cw[i] == 0 && res->pgd_level[i] == -1,
                  "misclassified input %d: norm %g", i, res->norm[i]);
            continue;
        }
        double rel = res->norm_cw[i] / dist[i];
        ratios[nr++] = rel;
        worst_lo = fmax(worst_lo, 1 - rel), worst_hi = fmax(worst_hi, rel - 1);
    }
    for (int i = 0; i < nr; i++)
        for (int j = i + 1; j < nr; j++)
            if (ratios[j] < ratios[i]) { double t = ratios[i]; ratios[i] = ratios[j]; ratios[j] = t; }
    double med = ratios[nr / 2];
    CHECK(worst_lo <= 1e-9, "CW below the exact distance: ratio %g", 1 - worst_lo);
    CHECK(med <= 1.01 && worst_hi <= 0.2, "CW norm / exact distance: median %g, worst %g", med,
          1 + worst_hi);
    printf("  linear: CW norm / exact distance: min %.6f, median %.6f, max %.6f; clean acc %.2f\n",
           1 - worst_lo, med, 1 + worst_hi, res->clean_accuracy);
    /* the median over all inputs (misclassified = 0) */
    double v[40];
    memcpy(v, res->norm, sizeof v);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (v[j] < v[i]) { double t = v[i]; v[i] = v[j]; v[j] = t; }
    CHECK_NEAR(res->median_norm, 0.5 * (v[19] + v[20]), 0);
    mf_robust_result *again = NULL;
    mf_robust_eval(m, D, w, &s, &again, NULL);
    CHECK(again && memcmp(again->norm, res->norm, sizeof(double) * n) == 0 &&
              memcmp(again->acc_min, res->acc_min, sizeof res->acc_min) == 0,
          "deterministic");
    mf_robust_result_free(again);
    mf_robust_result_free(res);
    mf_data_free(D);
    mf_model_free(m);
}

/* Phi = x + 0.5 on x in [0, 1] (bias1): y = +1 at x = 0.2 has q = 0.7, and
 * flipping it needs x' <= -0.5, outside the box: never broken, whatever eps. */
TEST(box) {
    mf_model *m = NULL;
    mf_model_parse("cnn:layers=f1,bias1,input=1x1x1", 1, 0, &m, NULL);
    mf_data *D = NULL;
    mf_data_new(1, 1, 0, &D, NULL);
    D->x[0] = 0.2, D->y[0] = 1;
    double th[2] = {1.0, 0.5};
    mf_robust_settings s;
    mf_robust_settings_default(&s);
    mf_robust_result *r = NULL;
    CHECK_EQ_INT(mf_robust_eval(m, D, th, &s, &r, NULL), MF_OK);
    if (r) {
        CHECK(r->acc_min[4] == 1.0 && r->acc_pgd[4] == 1.0 && r->acc_cw[4] == 1.0 && isinf(r->norm[0]),
              "eps 2 inside the box: robust %g %g, norm %g", r->acc_pgd[4], r->acc_cw[4], r->norm[0]);
        CHECK(isinf(r->median_norm), "median of never-broken inputs is INFINITY: %g", r->median_norm);
    }
    mf_robust_result_free(r);
    /* y = -1 instead: x' = 1 would be needed for... Phi(1) = 1.5 > 0, so
     * flipping a y = +1 input at x = 0.2 towards larger x is useless, and an
     * input of y = -1 at x = 0 is misclassified (q = -0.5) */
    mf_data_free(D);
    mf_model_free(m);
}

TEST(cnn_invariants) {
    const int n = 30, d = 16;
    mf_model *m = NULL;
    mf_model_parse("cnn:layers=c3k3,p2,f3", d, 3, &m, NULL);
    mf_data *D = NULL;
    mf_data_new(n, d, 3, &D, NULL);
    mf_rng r;
    mf_rng_seed(&r, 5);
    double *th = malloc(m->n_params * sizeof *th), *out = malloc(3 * n * sizeof *out);
    mf_model_init(m, "he", 1.0, &r, th, NULL);
    for (int k = 0; k < n * d; k++) D->x[k] = mf_rng_uniform(&r);
    mf_work *w = NULL;
    mf_work_new(m, n, &w, NULL);
    mf_model_forward(m, w, th, D->x, n, out);
    for (int i = 0; i < n; i++) { /* labels: the model's own argmax, so every input is correct */
        int b = 0;
        for (int j = 1; j < 3; j++) if (out[i * 3 + j] > out[i * 3 + b]) b = j;
        D->cls[i] = b;
    }
    mf_robust_settings s;
    mf_robust_settings_default(&s);
    s.n_eps = 3, s.eps[0] = 0.05, s.eps[1] = 0.2, s.eps[2] = 1.0;
    s.pgd_steps = 10, s.cw_steps = 30, s.cw_search = 4, s.batch = 7;
    mf_robust_result *res = NULL;
    mf_err e;
    CHECK_EQ_INT(mf_robust_eval(m, D, th, &s, &res, &e), MF_OK);
    if (res) {
        CHECK(res->clean_accuracy == 1.0, "clean %g", res->clean_accuracy);
        int mono = 1;
        for (int l = 0; l < 3; l++) {
            mono &= res->acc_min[l] <= fmin(res->acc_pgd[l], res->acc_cw[l]);
            if (l) mono &= res->acc_pgd[l] <= res->acc_pgd[l - 1] && res->acc_cw[l] <= res->acc_cw[l - 1];
        }
        CHECK(mono, "accuracies fall with eps, min below each");
        CHECK(res->acc_min[2] < 1.0, "eps 1 breaks something: %g", res->acc_min[2]);
        /* a found adversarial input is really one: q(x') <= 0 was checked
         * inside; here its norm is at least the first-order bound's order */
        int pos = 1;
        for (int i = 0; i < n; i++) pos &= res->norm[i] > 0;
        CHECK(pos, "every correct input needs a perturbation > 0");
        printf("  cnn: robust acc (min) %.3f %.3f %.3f, median norm %.4g (CW %.4g)\n", res->acc_min[0],
               res->acc_min[1], res->acc_min[2], res->median_norm, res->median_norm_cw);
    }
    mf_robust_result_free(res);
    /* errors */
    res = (mf_robust_result *)&res;
    D->x[5] = 1.5;
    CHECK_EQ_INT(mf_robust_eval(m, D, th, &s, &res, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "input 0, feature 5 is 1.5, outside the box [0, 1]") != NULL && res == NULL, "%s",
          e.msg);
    D->x[5] = 0.5;
    s.eps[1] = 0.01;
    CHECK_EQ_INT(mf_robust_eval(m, D, th, &s, &res, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "ascending") != NULL, "%s", e.msg);
    mf_model *lin = NULL;
    mf_model_parse("linear", d, 3, &lin, NULL);
    mf_robust_settings_default(&s);
    CHECK_EQ_INT(mf_robust_eval(lin, D, th, &s, &res, &e), MF_ERR_UNSUPPORTED);
    CHECK(strstr(e.msg, "input gradients") != NULL, "%s", e.msg);
    mf_model_free(lin);
    mf_robust_result_free(NULL);
    mf_work_free(w);
    free(th);
    free(out);
    mf_data_free(D);
    mf_model_free(m);
}

int main(void) {
    RUN(linear_known_answer);
    RUN(box);
    RUN(cnn_invariants);
    return TEST_REPORT();
}

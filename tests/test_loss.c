/*
 * test_loss.c -- the log-domain losses against direct formulas where doubles
 * can hold them, and against asymptotics where they cannot.
 */
#include "marginflow.h"
#include "test.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Binary data with the given labels (x unused by the loss). */
static mf_data *binary(int n, const double *y) {
    mf_data *d = NULL;
    if (mf_data_new(n, 1, 0, &d, NULL) != MF_OK) return NULL;
    memcpy(d->y, y, sizeof(double) * n);
    return d;
}

TEST(exp_matches_direct) {
    double y[3] = {1, -1, 1}, out[3] = {0.3, -2.0, -0.7}, g[3], w[3], ll;
    mf_data *d = binary(3, y);
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_EXP, d, NULL, 3, out, 1, &ll, g, w), MF_OK);
    double L = exp(-0.3) + exp(-2.0) + exp(0.7);
    CHECK_NEAR(ll, log(L), 1e-14);
    for (int i = 0; i < 3; i++) {
        double q = y[i] * out[i];
        CHECK_NEAR(w[i], exp(-q) / L, 1e-15);
        CHECK_NEAR(g[i], -exp(-q) * y[i] / L, 1e-15);
    }
    mf_data_free(d);
}

TEST(logistic_matches_direct) {
    double y[4] = {1, -1, 1, -1}, out[4] = {0.3, 2.0, -1.5, -30.0}, g[4], w[4], ll;
    mf_data *d = binary(4, y);
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_LOGISTIC, d, NULL, 4, out, 1, &ll, g, w), MF_OK);
    double L = 0;
    for (int i = 0; i < 4; i++) L += log1p(exp(-y[i] * out[i]));
    CHECK_NEAR(ll, log(L), 1e-14);
    for (int i = 0; i < 4; i++) {
        double q = y[i] * out[i];
        double dl = 1.0 / (1.0 + exp(q)); /* -ell'(q) */
        CHECK_NEAR(w[i], dl / L, 1e-15);
        CHECK_NEAR(g[i], -dl * y[i] / L, 1e-15);
    }
    mf_data_free(d);
}

/* Margins of 1e4 and 2e4: Loss = e^{-1e4} (1 + e^{-1e4}) underflows; the log
 * domain must give -1e4 exactly and weights (1, 0). */
TEST(far_below_underflow) {
    double y[2] = {1, 1}, out[2] = {1e4, 2e4}, g[2], w[2], ll;
    mf_data *d = binary(2, y);
    mf_loss_kind kinds[2] = {MF_LOSS_EXP, MF_LOSS_LOGISTIC};
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(mf_loss_eval(kinds[k], d, NULL, 2, out, 1, &ll, g, w), MF_OK);
        CHECK_NEAR(ll, -1e4, 1e-9);
        CHECK_NEAR(w[0], 1.0, 1e-15);
        CHECK_NEAR(w[1], 0.0, 1e-300);
        CHECK(isfinite(g[0]) && isfinite(g[1]), "g = %g %g", g[0], g[1]);
    }
    /* Equal margins of 5e5: log Loss = -5e5 + log 2, weights 1/2. */
    out[1] = out[0] = 5e5;
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_LOGISTIC, d, NULL, 2, out, 1, &ll, g, w), MF_OK);
    CHECK_NEAR(ll, -5e5 + log(2.0), 1e-9);
    /* log Loss ~ -5e5 carries an absolute rounding of ~1e-10 (ulp of 5e5), so
     * the weights are exact only to that relative level. */
    CHECK_NEAR(w[0], 0.5, 1e-10);
    /* Logistic near q = 30: log(log1p(e^-30)) = -30 - e^-30/2 + ... */
    out[0] = out[1] = 30;
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_LOGISTIC, d, NULL, 2, out, 1, &ll, NULL, NULL), MF_OK);
    CHECK_NEAR(ll, log(2 * log1p(exp(-30.0))), 1e-14);
    /* Very negative margins: logistic Loss ~ |q|, no overflow. */
    out[0] = out[1] = -1e6;
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_LOGISTIC, d, NULL, 2, out, 1, &ll, g, w), MF_OK);
    CHECK_NEAR(ll, log(2e6), 1e-12);
    CHECK_NEAR(w[0], 0.5 / 1e6, 1e-18);
    mf_data_free(d);
}

TEST(nonfinite_output_is_an_error) {
    double y[2] = {1, 1}, out[2] = {1, NAN}, ll = 0;
    mf_data *d = binary(2, y);
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_EXP, d, NULL, 2, out, 1, &ll, NULL, NULL), MF_ERR_NUMERIC);
    CHECK(isnan(ll), "ll = %g", ll);
    out[1] = INFINITY;
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_EXP, d, NULL, 2, out, 1, &ll, NULL, NULL), MF_ERR_NUMERIC);
    mf_data_free(d);
}

/* Cross-entropy on 3 classes against the direct formula, and its gradient
 * against central differences of Loss. */
TEST(cross_entropy_and_gradient) {
    mf_data *d = NULL;
    CHECK_EQ_INT(mf_data_new(2, 1, 3, &d, NULL), MF_OK);
    if (!d) return;
    d->cls[0] = 2;
    d->cls[1] = 0;
    double z[6] = {0.1, -0.4, 0.9, 1.2, 0.3, -2.0}, g[6], ll;
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_CE, d, NULL, 2, z, 3, &ll, g, NULL), MF_OK);
    double L = 0;
    for (int i = 0; i < 2; i++) {
        double s = 0;
        for (int j = 0; j < 3; j++) s += exp(z[3 * i + j]);
        L += log(s) - z[3 * i + d->cls[i]];
    }
    CHECK_NEAR(ll, log(L), 1e-14);
    for (int k = 0; k < 6; k++) {
        double h = 1e-6, zp[6], zm[6], lp, lm;
        memcpy(zp, z, sizeof z);
        memcpy(zm, z, sizeof z);
        zp[k] += h;
        zm[k] -= h;
        mf_loss_eval(MF_LOSS_CE, d, NULL, 2, zp, 3, &lp, NULL, NULL);
        mf_loss_eval(MF_LOSS_CE, d, NULL, 2, zm, 3, &lm, NULL, NULL);
        double fd = (exp(lp) - exp(lm)) / (2 * h) / L;
        CHECK_NEAR(g[k], fd, 1e-8);
    }
    /* exp on multi-class: Loss = sum_n sum_{j != y} e^{-(z_y - z_j)} */
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_EXP, d, NULL, 2, z, 3, &ll, g, NULL), MF_OK);
    double E = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            if (j != d->cls[i]) E += exp(z[3 * i + j] - z[3 * i + d->cls[i]]);
    CHECK_NEAR(ll, log(E), 1e-14);
    /* true margins: sample 0 (y=2): 0.9 - 0.1; sample 1 (y=0): 1.2 - 0.3 */
    double q[2];
    CHECK_NEAR(mf_margins(d, z, 3, q), 0.8, 1e-15);
    CHECK_NEAR(q[1], 0.9, 1e-15);
    mf_data_free(d);
}

/* Batch rows map to samples through idx. */
TEST(batch_index) {
    double y[3] = {1, -1, 1}, out[2] = {0.5, 0.25}, ll, ll2;
    int idx[2] = {2, 1};
    mf_data *d = binary(3, y);
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_EXP, d, idx, 2, out, 1, &ll, NULL, NULL), MF_OK);
    CHECK_NEAR(ll, log(exp(-0.5) + exp(0.25)), 1e-15);
    double out3[3] = {7, 0.25, 0.5};
    mf_data *d2 = binary(3, y);
    d2->y[0] = 1;
    CHECK_EQ_INT(mf_loss_eval(MF_LOSS_EXP, d2, NULL, 3, out3, 1, &ll2, NULL, NULL), MF_OK);
    CHECK(ll2 != ll, "the index must select samples");
    mf_data_free(d);
    mf_data_free(d2);
}

TEST(smoothed_margin) {
    /* exp: -log Loss / ||theta||^L */
    CHECK_NEAR(mf_smoothed_margin(MF_LOSS_EXP, -1e4, 10.0, 2), 100.0, 1e-12);
    /* logistic with a representable loss: -log(expm1(Loss)) / norm^L */
    double L = 0.01;
    CHECK_NEAR(mf_smoothed_margin(MF_LOSS_LOGISTIC, log(L), 2.0, 1), -log(expm1(L)) / 2, 1e-14);
    /* logistic far below underflow: log(expm1(Loss)) = log Loss */
    CHECK_NEAR(mf_smoothed_margin(MF_LOSS_LOGISTIC, -5e4, 1.0, 3), 5e4, 1e-9);
    /* huge loss: log(expm1(L)) ~ L */
    CHECK_NEAR(mf_smoothed_margin(MF_LOSS_LOGISTIC, log(1000.0), 1.0, 1), -1000.0, 1e-9);
    CHECK_NEAR(mf_loss_log_ell0(MF_LOSS_LOGISTIC), log(log(2.0)), 1e-15);
    /* Sandwich for exp loss: gamma - log N / norm^L <= gamma~ <= gamma. */
    double y[3] = {1, 1, 1}, out[3] = {2.0, 3.0, 5.0}, ll;
    mf_data *d = binary(3, y);
    mf_loss_eval(MF_LOSS_EXP, d, NULL, 3, out, 1, &ll, NULL, NULL);
    double gs = mf_smoothed_margin(MF_LOSS_EXP, ll, 1.5, 2), g = 2.0 / 2.25;
    CHECK(gs <= g && gs >= g - log(3.0) / 2.25, "gamma~ %g, gamma %g", gs, g);
    mf_data_free(d);
}

TEST(names) {
    mf_loss_kind k;
    CHECK_EQ_INT(mf_loss_from_name("logistic", &k), MF_OK);
    CHECK_EQ_INT(k, MF_LOSS_LOGISTIC);
    CHECK_EQ_INT(mf_loss_from_name("hinge", &k), MF_ERR_INVALID);
    mf_optimizer_kind o;
    CHECK_EQ_INT(mf_optimizer_from_name("lyu-li", &o), MF_OK);
    CHECK_EQ_INT(o, MF_OPT_LYU_LI);
    CHECK_EQ_INT(mf_optimizer_from_name("adam", &o), MF_ERR_INVALID);
}

int main(void) {
    RUN(exp_matches_direct);
    RUN(logistic_matches_direct);
    RUN(far_below_underflow);
    RUN(nonfinite_output_is_an_error);
    RUN(cross_entropy_and_gradient);
    RUN(batch_index);
    RUN(smoothed_margin);
    RUN(names);
    return TEST_REPORT();
}

/*
 * test_epoch.c -- the epoch driver (src/epoch.c): mini-batch SGD by epochs
 * with constant lr and with [LL20]'s loss-based epoch schedule.
 *
 * What is measured:
 *  - the schedule: alpha *= 2^{1/5} per accepted epoch, every logged loss
 *    below the previous one; a rejected epoch restores the epoch-start state
 *    bit for bit (the run equals one started from that state with alpha /
 *    2^{1/10} and one more rejection); the batch cap rejects; alpha below
 *    alpha_min stops the run with theta untouched;
 *  - a run goes on far below Loss = 10^-308 with finite margins;
 *  - resume from a state saved at an epoch boundary is bit-exact;
 *  - the archive policy (chosen epochs, every 10^-5k crossing, the end);
 *  - the test error against a direct count; flow time and step counts;
 *  - the permutation helper; settings validation and argument errors;
 *  - no allocation inside the epoch loop (a counting allocator).
 */
#include "internal.h"
#include "marginflow.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* n samples of d = 16 (4 x 4 images) in 3 classes, labelled by a fixed
 * linear teacher (argmax of V x, V [3][16]): separable by linear and cnn. */
static mf_data *teacher_data(int n, uint64_t seed) {
    mf_data *D = NULL;
    mf_data_new(n, 16, 3, &D, NULL);
    mf_rng r;
    mf_rng_seed(&r, seed);
    double V[48];
    mf_rng tr;
    mf_rng_seed(&tr, 99);
    for (int k = 0; k < 48; k++) V[k] = mf_rng_normal(&tr);
    for (int i = 0; i < n; i++) {
        double best = -INFINITY;
        for (int k = 0; k < 16; k++) D->x[i * 16 + k] = mf_rng_uniform(&r);
        for (int c = 0; c < 3; c++) {
            double s = 0;
            for (int k = 0; k < 16; k++) s += V[c * 16 + k] * (D->x[i * 16 + k] - 0.5);
            if (s > best) best = s, D->cls[i] = c;
        }
    }
    return D;
}

/* Collected rows and archives. */
typedef struct rec {
    int nrows, narch;
    mf_metrics rows[4096];
    long long arch_epoch[256];
    double arch_loss[256];
    double *arch_theta;  /* theta of the last archive */
    size_t P;
} rec;

static int on_metrics(void *u, const mf_metrics *m) {
    rec *r = u;
    if (r->nrows < 4096) r->rows[r->nrows++] = *m;
    return 0;
}

static int on_archive(void *u, const mf_train_state *s, const mf_metrics *m) {
    rec *r = u;
    if (r->narch < 256) {
        r->arch_epoch[r->narch] = m->epoch;
        r->arch_loss[r->narch++] = m->log10_loss;
    }
    if (r->arch_theta) memcpy(r->arch_theta, s->theta, r->P * sizeof(double));
    return s->step == m->step ? 0 : 1; /* the state and its row belong together */
}

/* Train; returns the result (rows and archives in *r when given). */
static mf_train_result train(const mf_model *m, const mf_data *D, const mf_train_settings *s,
                             mf_train_state *st, rec *r, int *rc_out) {
    mf_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.user = r;
    if (r) cb.on_metrics = on_metrics, cb.on_archive = on_archive;
    mf_train_result res;
    mf_err e;
    int rc = mf_train(m, D, s, st, r ? &cb : NULL, &res, &e);
    if (rc) fprintf(stderr, "  mf_train: %s\n", e.msg);
    if (rc_out) *rc_out = rc;
    return res;
}

static mf_train_state *fresh_state(const mf_model *m, uint64_t seed) {
    mf_train_state *st = NULL;
    mf_train_state_new(m->n_params, &st, NULL);
    mf_rng r;
    mf_rng_seed(&r, seed);
    mf_model_init(m, "he", 1.0, &r, st->theta, NULL);
    return st;
}

static void lyu_li_settings(mf_train_settings *s, long long epochs) {
    mf_train_settings_default(s);
    s->loss = MF_LOSS_CE;
    s->optimizer = MF_OPT_SGD_LYU_LI;
    s->batch = 10;
    s->max_steps = 0;
    s->max_epochs = epochs;
    s->archive_decades = 0;
}

static int same_bits(const double *a, const double *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

TEST(schedule_and_monotone_loss) {
    mf_data *D = teacher_data(60, 1);
    mf_model *m = NULL;
    mf_model_parse("cnn:layers=c2k3,p2,f3", 16, 3, &m, NULL);
    mf_train_settings s;
    lyu_li_settings(&s, 12);
    mf_train_state *st = fresh_state(m, 3);
    static rec r;
    memset(&r, 0, sizeof r);
    int rc;
    mf_train_result res = train(m, D, &s, st, &r, &rc);
    CHECK_EQ_INT(rc, MF_OK);
    CHECK_EQ_INT(res.outcome, MF_OUT_STEP_BUDGET);
    CHECK_EQ_INT(r.nrows, 13); /* epoch 0 and the 12 accepted epochs */
    CHECK_EQ_INT(st->step, 12 * 6);
    int bad_alpha = 0, bad_loss = 0;
    for (int k = 1; k < r.nrows; k++) {
        const mf_metrics *a = &r.rows[k - 1], *b = &r.rows[k];
        /* alpha: x 2^{1/5} per accepted epoch, / 2^{1/10} per rejection between */
        double want = a->lr * pow(2.0, 0.2) / pow(pow(2.0, 0.1), (double)(b->rejected - a->rejected));
        if (fabs(b->lr / want - 1) > 1e-12) bad_alpha++;
        if (!(b->log10_loss < a->log10_loss)) bad_loss++;
        CHECK_EQ_INT(b->epoch, a->epoch + 1);
    }
    CHECK(bad_alpha == 0 && bad_loss == 0, "alpha off in %d rows, loss not decreasing in %d", bad_alpha,
          bad_loss);
    CHECK_NEAR(r.rows[0].lr, 0.1, 0);
    CHECK_NEAR(r.rows[0].log10_mean_loss, r.rows[0].log10_loss - log10(60.0), 1e-12);
    printf("  12 epochs: log10 mean loss %.4g -> %.4g, %lld rejected, alpha %.4g\n",
           r.rows[0].log10_mean_loss, r.rows[12].log10_mean_loss, st->rejected, st->lr);
    mf_train_state_free(st);
    mf_model_free(m);
    mf_data_free(D);
}

/* A rejected epoch leaves no trace: from alpha_0 = 1e8 (the first attempts
 * are rejected), the run equals a run started from the same theta with the
 * alpha and rejection count after those rejections. */
TEST(rollback_is_exact) {
    mf_data *D = teacher_data(40, 2);
    mf_model *m = NULL;
    mf_model_parse("cnn:layers=c2k3,p2,f3", 16, 3, &m, NULL);
    mf_train_settings s;
    lyu_li_settings(&s, 1); /* one accepted epoch: every rejection comes before it */
    s.lr = 1e8;
    mf_train_state *a = fresh_state(m, 4), *b = fresh_state(m, 4);
    train(m, D, &s, a, NULL, NULL);
    CHECK(a->rejected > 0, "a huge alpha is rejected: %lld rejections", a->rejected);
    /* b: the same rejections taken by hand */
    b->lr = s.lr;
    for (long long k = 0; k < a->rejected; k++) b->lr /= s.lr_down;
    /* all rejections happened before the first accepted epoch here */
    b->rejected = a->rejected;
    train(m, D, &s, b, NULL, NULL);
    CHECK(same_bits(a->theta, b->theta, m->n_params), "rolled-back run differs from the clean one");
    CHECK(a->time_log == b->time_log && a->lr == b->lr && a->step == b->step,
          "time %.17g vs %.17g, alpha %.17g vs %.17g", a->time_log, b->time_log, a->lr, b->lr);
    mf_train_state_free(a);
    mf_train_state_free(b);
    /* the batch cap: with loss_cap barely above 1 some batch is always above
     * the mean; every attempt is rejected until alpha < alpha_min */
    mf_train_state *c = fresh_state(m, 5), *c0 = fresh_state(m, 5);
    lyu_li_settings(&s, 3);
    s.loss_cap = 1.0 + 1e-12;
    s.lr = 1e-6; /* steps too small to bring every batch under the cap */
    s.alpha_min = 1e-8;
    mf_train_result res = train(m, D, &s, c, NULL, NULL);
    CHECK_EQ_INT(res.outcome, MF_OUT_STALLED);
    CHECK(c->lr < 1e-8 && c->rejected == (long long)ceil(log(1e-6 / 1e-8) / log(pow(2.0, 0.1)) - 1e-9),
          "alpha %g after %lld rejections", c->lr, c->rejected);
    CHECK(same_bits(c->theta, c0->theta, m->n_params) && c->step == 0,
          "every epoch rejected: theta must be the initial one");
    mf_train_state_free(c);
    mf_train_state_free(c0);
    mf_model_free(m);
    mf_data_free(D);
}

/* Far below the double range: a linear model on separable data, started at
 * its separating direction scaled so that Loss ~ 10^-347 (q_min = 800), goes
 * on with loss-based epochs: every row finite, the loss falling, the margins
 * those of the direction. */
TEST(below_double_range) {
    mf_data *D = teacher_data(50, 3);
    mf_model *m = NULL;
    mf_model_parse("linear", 16, 3, &m, NULL);
    mf_train_settings s;
    lyu_li_settings(&s, 300); /* first: separate the data */
    mf_train_state *st = fresh_state(m, 6);
    mf_train_result res = train(m, D, &s, st, NULL, NULL);
    CHECK(res.final.train_error == 0 && res.final.q_min > 0, "separated: error %g, q_min %g",
          res.final.train_error, res.final.q_min);
    for (size_t k = 0; k < m->n_params; k++) st->theta[k] *= 800.0 / res.final.q_min;
    st->step = 0, st->lr = 0, st->rejected = 0;
    lyu_li_settings(&s, 20);
    static rec r;
    memset(&r, 0, sizeof r);
    res = train(m, D, &s, st, &r, NULL);
    CHECK_EQ_INT(res.outcome, MF_OUT_STEP_BUDGET);
    int bad = 0, up = 0;
    for (int k = 0; k < r.nrows; k++) {
        const mf_metrics *x = &r.rows[k];
        if (!isfinite(x->log10_loss) || !isfinite(x->normalized_margin) || !isfinite(x->smoothed_margin) ||
            !isfinite(x->layer_margin) || !isfinite(x->lr) || !isfinite(x->time_log) ||
            !isfinite(x->log10_mean_loss))
            bad++;
        if (k && !(x->log10_loss < r.rows[k - 1].log10_loss)) up++;
    }
    const mf_metrics *f = &r.rows[r.nrows - 1];
    CHECK(bad == 0 && up == 0, "%d rows with a non-finite metric, %d without a decrease", bad, up);
    CHECK(r.rows[0].log10_loss < -340 && f->train_error == 0 && f->normalized_margin > 0 &&
              f->smoothed_margin <= f->normalized_margin && f->smoothed_margin > 0.9 * f->normalized_margin,
          "log10 loss %g -> %g, error %g, gamma %g, smoothed %g", r.rows[0].log10_loss, f->log10_loss,
          f->train_error, f->normalized_margin, f->smoothed_margin);
    printf("  linear from log10 Loss %.1f to %.1f in 20 epochs (%lld rejected), gamma %.6g\n",
           r.rows[0].log10_loss, f->log10_loss, st->rejected, f->normalized_margin);
    mf_train_state_free(st);
    mf_model_free(m);
    mf_data_free(D);
}

/* 3 + 3 epochs from a saved state equal 6 epochs, bit for bit; the rows of
 * the second part equal the last rows of the uninterrupted run. */
TEST(resume_bit_exact) {
    mf_data *D = teacher_data(35, 4); /* 35 / 10: a short last batch */
    mf_model *m = NULL;
    mf_model_parse("cnn:layers=c2k3,p2,f3,bias1", 16, 3, &m, NULL);
    for (int opt = 0; opt < 2; opt++) {
        mf_train_settings s;
        lyu_li_settings(&s, 6);
        if (opt) s.optimizer = MF_OPT_SGD, s.lr = 0.05;
        mf_train_state *a = fresh_state(m, 7), *b = fresh_state(m, 7);
        static rec ra, rb;
        memset(&ra, 0, sizeof ra);
        memset(&rb, 0, sizeof rb);
        train(m, D, &s, a, &ra, NULL);
        s.max_epochs = 3;
        train(m, D, &s, b, NULL, NULL);
        CHECK_EQ_INT(b->step, 3 * 4);
        s.max_epochs = 6;
        train(m, D, &s, b, &rb, NULL);
        CHECK(same_bits(a->theta, b->theta, m->n_params), "%s: resumed theta differs",
              opt ? "sgd" : "sgd-lyu-li");
        CHECK(a->time_log == b->time_log && a->lr == b->lr && a->rejected == b->rejected &&
                  a->log_loss == b->log_loss,
              "state fields differ");
        CHECK_EQ_INT(rb.nrows, 4); /* epoch 3 again, then 4, 5, 6 */
        int same = 1;
        for (int k = 0; k < rb.nrows && k + 3 < ra.nrows; k++) {
            const mf_metrics *x = &ra.rows[k + 3], *y = &rb.rows[k];
            same &= x->log10_loss == y->log10_loss && x->normalized_margin == y->normalized_margin &&
                    x->lr == y->lr && x->epoch == y->epoch && x->time_log == y->time_log;
        }
        CHECK(same, "%s: resumed rows differ", opt ? "sgd" : "sgd-lyu-li");
        if (opt) { /* constant lr: time advances by lr / N per step, 4 steps an epoch */
            CHECK_NEAR(exp(a->time_log), 6 * 4 * 0.05 / 35, 1e-12);
            CHECK_EQ_INT(a->rejected, 0);
        }
        mf_train_state_free(a);
        mf_train_state_free(b);
    }
    mf_model_free(m);
    mf_data_free(D);
}

/* Archives: the chosen epochs, the first row at or below each -5k decade,
 * and the final epoch, each once, with the state of that row. */
TEST(archive_policy) {
    mf_data *D = teacher_data(50, 3);
    mf_model *m = NULL;
    mf_model_parse("linear", 16, 3, &m, NULL);
    mf_train_settings s;
    lyu_li_settings(&s, 40);
    s.archive_decades = 0.05; /* the default 5 is the same rule with coarser levels */
    s.n_archive_epochs = 2;
    s.archive_epochs[0] = 0;
    s.archive_epochs[1] = 7;
    mf_train_state *st = fresh_state(m, 6);
    static rec r;
    memset(&r, 0, sizeof r);
    int rc;
    train(m, D, &s, st, &r, &rc);
    CHECK_EQ_INT(rc, MF_OK);
    /* expected from the rows */
    long long want[256];
    int nw = 0;
    double level = -0.05 * (floor(-r.rows[0].log10_loss / 0.05) + 1);
    for (int k = 0; k < r.nrows; k++) {
        const mf_metrics *x = &r.rows[k];
        int a = x->epoch == 0 || x->epoch == 7 || k == r.nrows - 1;
        if (k > 0 && x->log10_loss <= level) {
            a = 1;
            level = -0.05 * (floor(-x->log10_loss / 0.05) + 1);
        }
        if (a) want[nw++] = x->epoch;
    }
    int ok = nw == r.narch;
    for (int i = 0; ok && i < nw; i++) ok = want[i] == r.arch_epoch[i];
    CHECK(ok, "archives: %d (want %d), first %lld, last %lld", r.narch, nw, r.narch ? r.arch_epoch[0] : -1,
          r.narch ? r.arch_epoch[r.narch - 1] : -1);
    CHECK(nw >= 5, "the run crosses several decades: %d archives", nw);
    printf("  40 epochs to log10 Loss %.1f: %d archives\n", r.rows[r.nrows - 1].log10_loss, r.narch);
    mf_train_state_free(st);
    mf_model_free(m);
    mf_data_free(D);
}

/* The test error is the fraction of test samples with margin <= 0 at the
 * row's parameters; a test set of another shape is refused. */
TEST(test_set) {
    mf_data *D = teacher_data(30, 5), *T = teacher_data(25, 6), *T2 = NULL;
    mf_model *m = NULL;
    mf_model_parse("linear", 16, 3, &m, NULL);
    mf_train_settings s;
    lyu_li_settings(&s, 4);
    s.test = T;
    mf_train_state *st = fresh_state(m, 8);
    static rec r;
    memset(&r, 0, sizeof r);
    r.P = m->n_params;
    r.arch_theta = malloc(r.P * sizeof(double));
    train(m, D, &s, st, &r, NULL);
    /* the final archive holds the final theta: count by hand */
    mf_work *w = NULL;
    mf_work_new(m, 25, &w, NULL);
    double out[75];
    mf_model_forward(m, w, st->theta, T->x, 25, out);
    int wrong = 0;
    for (int i = 0; i < 25; i++) wrong += !(mf__margin(T, out, 3, i) > 0);
    CHECK_NEAR(r.rows[r.nrows - 1].test_error, wrong / 25.0, 0);
    CHECK(same_bits(r.arch_theta, st->theta, m->n_params), "the final archive is the final state");
    mf_work_free(w);
    free(r.arch_theta);
    mf_data_new(5, 9, 3, &T2, NULL);
    s.test = T2;
    mf_err e;
    mf_train_result res;
    CHECK_EQ_INT(mf_train(m, D, &s, st, NULL, &res, &e), MF_ERR_DIM);
    CHECK(strstr(e.msg, "test set has dimension 9") != NULL, "%s", e.msg);
    mf_data_free(T2);
    mf_train_state_free(st);
    mf_model_free(m);
    mf_data_free(D);
    mf_data_free(T);
}

TEST(permutation) {
    int p[50], q[50], u[50], seen[50] = {0};
    mf_epoch_permutation(3, 5, 0, 50, p);
    mf_epoch_permutation(3, 5, 0, 50, q);
    mf_epoch_permutation(3, 5, 1, 50, u);
    int perm = 1;
    for (int i = 0; i < 50; i++) perm &= p[i] >= 0 && p[i] < 50 && !seen[p[i]]++;
    CHECK(perm, "not a permutation");
    CHECK(memcmp(p, q, sizeof p) == 0, "not deterministic");
    CHECK(memcmp(p, u, sizeof p) != 0, "a retry gets another order");
}

TEST(validation) {
    mf_train_settings s;
    lyu_li_settings(&s, 3);
    CHECK(mf_train_settings_validate(&s) == NULL, "defaults valid");
    s.alpha_min = 0;
    CHECK(strstr(mf_train_settings_validate(&s) ? mf_train_settings_validate(&s) : "", "alpha_min"),
          "alpha_min 0");
    lyu_li_settings(&s, 3);
    s.loss_cap = 1;
    CHECK(strstr(mf_train_settings_validate(&s) ? mf_train_settings_validate(&s) : "", "loss_cap"),
          "loss_cap 1");
    lyu_li_settings(&s, 3);
    s.n_archive_epochs = 2, s.archive_epochs[0] = 5, s.archive_epochs[1] = 5;
    CHECK(strstr(mf_train_settings_validate(&s) ? mf_train_settings_validate(&s) : "", "ascending"),
          "archive epochs");
    lyu_li_settings(&s, 0);
    s.until_time = 10;
    const char *why = mf_train_settings_validate(&s);
    CHECK(why && strstr(why, "stopping criterion") && strstr(why, "until_time"), "%s", why ? why : "");
    lyu_li_settings(&s, 3);
    s.archive_decades = -1;
    CHECK(mf_train_settings_validate(&s) != NULL, "archive_decades -1");
    CHECK_EQ_INT(mf_optimizer_from_name("sgd-lyu-li", &s.optimizer), MF_OK);
    CHECK(s.optimizer == MF_OPT_SGD_LYU_LI && !strcmp(mf_optimizer_name(s.optimizer), "sgd-lyu-li"),
          "name round trip");
    /* a state between epoch boundaries */
    mf_data *D = teacher_data(30, 5);
    mf_model *m = NULL;
    mf_model_parse("linear", 16, 3, &m, NULL);
    lyu_li_settings(&s, 3);
    mf_train_state *st = fresh_state(m, 1);
    st->step = 2;
    mf_err e;
    mf_train_result res;
    CHECK_EQ_INT(mf_train(m, D, &s, st, NULL, &res, &e), MF_ERR_INVALID);
    CHECK(strstr(e.msg, "not at an epoch boundary (3 steps an epoch)") != NULL, "%s", e.msg);
    mf_train_state_free(st);
    mf_model_free(m);
    mf_data_free(D);
}

/* The CSV row: 17 fields, the epoch columns and accuracies. */
TEST(csv_row) {
    mf_metrics mt;
    memset(&mt, 0, sizeof mt);
    mt.step = 40, mt.epoch = 4, mt.log10_loss = -350.5, mt.log10_mean_loss = -352.5;
    mt.train_error = 0, mt.test_error = 0.25, mt.normalized_margin = 1e-3, mt.layer_margin = 2e-3;
    mt.smoothed_margin = NAN, mt.norm = 3, mt.q_min = 5, mt.lr = 0.5, mt.rejected = 2;
    mt.epoch_seconds = 1.5, mt.wall_seconds = 6, mt.time_log = 0; /* t = 1 */
    char row[MF_METRICS_ROW_LEN];
    mf_epoch_csv_row(&mt, row, sizeof row);
    const char *lead = "40,4,-350.5,-352.5,1,0.75,0.001,0.002,,3,5,0.5,2,1.5,6,1,0";
    CHECK(strcmp(row, lead) == 0, "row %s, want %s", row, lead);
    int commas = 0, hc = 0;
    for (char *c = row; *c; c++) commas += *c == ',';
    for (const char *c = mf_epoch_csv_header(); *c; c++) hc += *c == ',';
    CHECK(commas == 16 && hc == 16, "%d / %d commas", commas, hc);
}

/* No allocation inside the epoch loop: 2 and 8 epochs cost the same number. */
static long g_allocs;
static void *count_malloc(size_t n) { g_allocs++; return malloc(n); }
static void *count_realloc(void *p, size_t n) { g_allocs++; return realloc(p, n); }

TEST(no_allocation_per_epoch) {
    mf_data *D = teacher_data(30, 5);
    mf_model *m = NULL;
    mf_model_parse("cnn:layers=c2k3,p2,f3", 16, 3, &m, NULL);
    long counts[2];
    for (int k = 0; k < 2; k++) {
        mf_train_settings s;
        lyu_li_settings(&s, k ? 8 : 2);
        mf_train_state *st = fresh_state(m, 2);
        g_allocs = 0;
        mf_set_allocator(count_malloc, count_realloc, free);
        train(m, D, &s, st, NULL, NULL);
        mf_set_allocator(NULL, NULL, NULL);
        counts[k] = g_allocs;
        mf_train_state_free(st);
    }
    CHECK(counts[0] == counts[1], "allocations: %ld for 2 epochs, %ld for 8", counts[0], counts[1]);
    mf_model_free(m);
    mf_data_free(D);
}

int main(void) {
    RUN(schedule_and_monotone_loss);
    RUN(rollback_is_exact);
    RUN(below_double_range);
    RUN(resume_bit_exact);
    RUN(archive_policy);
    RUN(test_set);
    RUN(permutation);
    RUN(validation);
    RUN(csv_row);
    RUN(no_allocation_per_epoch);
    return TEST_REPORT();
}

/*
 * reproduce.c -- `marginflow reproduce`: every claim of the three papers as a
 * runnable check.
 *
 * Each experiments/<claim>.json (format: experiments/README.md; read and
 * validated whole by cli/experiment.c before anything is trained) names a claim
 * of [LL20], [VSS22] or [LLWA21] (THEORY.md), the training runs that test it,
 * the quantities checked with their expected values and tolerances, and the
 * figures to draw. For every claim this command
 *   1. expands the runs (a "seeds" list and a "vary" list multiply them),
 *   2. trains each through mf_train and writes a normal run directory
 *      DIR/<claim>/<run>/ (config.json, metrics.csv, params.txt,
 *      summary.json -- the same files `marginflow train` writes, summary.json
 *      by the shared cli_write_summary -- plus snapshots.csv, the parameters
 *      at every logged step, for runs with "snapshots": true),
 *   3. evaluates the checks, prints `PASS|FAIL|ERROR name: measured vs
 *      expected`, writes DIR/<claim>/result.json and draws the figures
 *      (cli/figures.c),
 * and finally writes DIR/report.md / report.html and prints `N passed,
 * N failed`. --jobs N runs claims in N forked processes; every claim is
 * deterministic given its seeds, so the results do not depend on N.
 *
 * Snapshots: runs with "snapshots" keep theta at every logged row through the
 * library's on_snapshot callback (snapshots.csv). A claim that the
 * implementation cannot meet is reported as FAIL with its numbers: nothing
 * here is tuned to the outcome.
 */
#define _XOPEN_SOURCE 700
#include "reproduce.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


/* ------------------------------------------------------------ utilities */

static cJSON *read_json(const char *path) {
    char *t = cli_read_text(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

/* Append printf text to a fixed buffer (truncating). */
static void cat(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void cat(char *buf, size_t cap, const char *fmt, ...) {
    size_t l = strlen(buf);
    if (l + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, cap - l, fmt, ap);
    va_end(ap);
}

static const cJSON *jget(const cJSON *o, const char *k) {
    return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}
static const char *jstr(const cJSON *o, const char *k, const char *def) {
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : def;
}
static double jnum(const cJSON *o, const char *k, double def) {
    const cJSON *v = jget(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* Least squares y = a + b x; returns b (NAN for fewer than 2 distinct x). */
static double fit_line(const double *x, const double *y, int n, double *icpt) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) sx += x[i], sy += y[i];
    if (n < 2) return NAN;
    double mx = sx / n, my = sy / n;
    for (int i = 0; i < n; i++) sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my);
    if (!(sxx > 0)) return NAN;
    double b = sxy / sxx;
    if (icpt) *icpt = my - b * mx;
    return b;
}

/* ------------------------------------------------------------ training */

typedef struct run_cb {
    rp_run *r;
    FILE *metrics;
    int failed;
} run_cb;

static int on_metrics(void *user, const mf_metrics *m) {
    run_cb *c = user;
    rp_run *r = c->r;
    if (r->nrows == r->caprows) {
        int nc = r->caprows ? 2 * r->caprows : 256;
        mf_metrics *n2 = realloc(r->rows, sizeof *n2 * (size_t)nc);
        if (!n2) return c->failed = 1;
        r->rows = n2;
        if (r->snapshots) {
            double *s2 = realloc(r->snaps, sizeof *s2 * (size_t)nc * r->model->n_params);
            if (!s2) return c->failed = 1;
            r->snaps = s2;
        }
        r->caprows = nc;
    }
    if (r->snapshots) /* filled by on_snapshot; NAN if it never comes */
        for (size_t j = 0; j < r->model->n_params; j++)
            r->snaps[(size_t)r->nrows * r->model->n_params + j] = NAN;
    r->rows[r->nrows++] = *m;
    char row[1024];
    mf_metrics_csv_row(m, row, sizeof row);
    fprintf(c->metrics, "%s\n", row);
    return 0;
}

/* The parameters of the row on_metrics has just appended (the library calls
 * this right after on_metrics with the same row). */
static int on_snapshot(void *user, const mf_metrics *m, const double *theta) {
    run_cb *c = user;
    rp_run *r = c->r;
    if (!r->snapshots || r->nrows == 0 || r->rows[r->nrows - 1].step != m->step) return 0;
    memcpy(r->snaps + (size_t)(r->nrows - 1) * r->model->n_params, theta,
           r->model->n_params * sizeof(double));
    return 0;
}

static void on_log(void *user, int level, const char *msg) {
    (void)user, (void)level, (void)msg; /* the run's outcome carries what matters */
}

static int write_config(const char *dir, const rp_run *r, const char *claim) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    cli_json_str(root, "format", "marginflow-config");
    cli_json_int(root, "version", 1);
    cli_json_str(root, "library_version", MF_VERSION);
    cli_json_str(root, "made_by", "marginflow reproduce");
    cli_json_str(root, "claim", claim);
    cJSON *dj = cJSON_AddObjectToObject(root, "data");
    cli_json_str(dj, "spec", r->data_spec);
    cli_json_str(dj, "path", r->data_spec);
    cli_json_str(dj, "format", NULL);
    cli_json_str(dj, "desc", r->data->desc);
    cli_json_int(dj, "n", r->data->n);
    cli_json_int(dj, "d", r->data->d);
    cli_json_int(dj, "num_classes", r->data->num_classes);
    cJSON *mj = cJSON_AddObjectToObject(root, "model");
    cli_json_str(mj, "spec", r->model->spec);
    cli_json_int(mj, "n_params", (long long)r->model->n_params);
    cli_json_int(mj, "degree", r->model->degree);
    cJSON *ij = cJSON_AddObjectToObject(root, "init");
    if (r->init_params) {
        cli_json_str(ij, "kind", "params");
        cJSON *a = cJSON_AddArrayToObject(ij, "params");
        for (int i = 0; i < r->n_init; i++) {
            char b[40];
            mf_format_double(b, sizeof b, r->init_params[i]);
            cJSON_AddItemToArray(a, cJSON_CreateRaw(b));
        }
    } else {
        cli_json_str(ij, "kind", r->init_kind);
        cli_json_num(ij, "scale", r->init_scale);
    }
    cli_json_int(ij, "seed", (long long)r->seed);
    cJSON_AddItemToObject(root, "settings", cli_settings_json(&r->s, 1));
    char *p = cli_join(dir, "config.json");
    mf_err e = {0, ""};
    int rc = p ? cli_json_write(p, root, &e) : -1;
    free(p);
    cJSON_Delete(root);
    return rc ? -1 : 0;
}

/* Train run r into dir; on failure r->err says why. */
static void train_run(rp_run *r, const char *dir, const char *claim) {
    mf_err e = {0, ""};
    mf_train_state *st = NULL;
    run_cb c = {r, NULL, 0};
    if (mf_data_from_spec(r->data_spec, NULL, &r->data, &e) ||
        mf_model_parse(r->model_spec, r->data->d, r->data->num_classes, &r->model, &e)) {
        cli_fmt(r->err, sizeof r->err, "%s", e.msg);
        return;
    }
    const mf_model *m = r->model;
    if (mf_train_state_new(m->n_params, &st, &e)) goto fail;
    if (r->init_params) {
        if ((size_t)r->n_init != m->n_params) {
            cli_fmt(r->err, sizeof r->err, "init.params has %d values, %s needs %zu", r->n_init,
                     m->spec, m->n_params);
            goto out;
        }
        memcpy(st->theta, r->init_params, m->n_params * sizeof(double));
    } else {
        mf_rng rng;
        mf_rng_seed(&rng, r->seed);
        if (mf_model_init(m, r->init_kind, r->init_scale, &rng, st->theta, &e)) goto fail;
    }
    if (cli_mkdirs(dir) != 0) {
        cli_fmt(r->err, sizeof r->err, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    if (write_config(dir, r, claim)) {
        cli_fmt(r->err, sizeof r->err, "cannot write %s/config.json", dir);
        goto out;
    }
    char *mp = cli_join(dir, "metrics.csv");
    c.metrics = mp ? fopen(mp, "wb") : NULL;
    free(mp);
    if (!c.metrics) {
        cli_fmt(r->err, sizeof r->err, "cannot write %s/metrics.csv", dir);
        goto out;
    }
    fprintf(c.metrics, "%s\n", mf_metrics_csv_header());
    mf_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.user = &c;
    cb.on_metrics = on_metrics;
    cb.log = on_log;
    if (r->snapshots) cb.on_snapshot = on_snapshot;
    int rc = mf_train(m, r->data, &r->s, st, &cb, &r->res, &e);
    if (fclose(c.metrics) != 0) rc = rc ? rc : MF_ERR_IO;
    c.metrics = NULL;
    if (c.failed) {
        cli_fmt(r->err, sizeof r->err, "out of memory keeping the metrics");
        goto out;
    }
    if (rc) goto fail;
    r->theta = malloc(m->n_params * sizeof(double));
    if (!r->theta) goto out;
    memcpy(r->theta, st->theta, m->n_params * sizeof(double));
    char *pp = cli_join(dir, "params.txt");
    if (!pp || mf_params_write(pp, m, st->theta, &e)) {
        free(pp);
        goto fail;
    }
    free(pp);
    if (cli_write_summary(dir, &r->s, r->data, m, &r->res)) {
        cli_fmt(r->err, sizeof r->err, "cannot write %s/summary.json", dir);
        goto out;
    }
    if (r->snapshots) {
        char *sp = cli_join(dir, "snapshots.csv");
        FILE *f = sp ? fopen(sp, "wb") : NULL;
        free(sp);
        if (f) {
            fprintf(f, "# marginflow snapshots v1: theta at every logged step, order of "
                       "marginflow layout; model=%s\nstep,log10_time",
                    m->spec);
            for (size_t j = 0; j < m->n_params; j++) fprintf(f, ",p%zu", j);
            fputc('\n', f);
            for (int i = 0; i < r->nrows; i++) {
                char b[40];
                fprintf(f, "%lld,", r->rows[i].step);
                if (isfinite(r->rows[i].time_log)) fprintf(f, "%.17g", r->rows[i].time_log / LN10);
                for (size_t j = 0; j < m->n_params; j++) {
                    mf_format_double(b, sizeof b, r->snaps[(size_t)i * m->n_params + j]);
                    fprintf(f, ",%s", b);
                }
                fputc('\n', f);
            }
            fclose(f);
        }
    }
    r->done = 1;
    goto out;
fail:
    cli_fmt(r->err, sizeof r->err, "%s", e.msg);
out:
    if (c.metrics) fclose(c.metrics);
    mf_train_state_free(st);
}

/* ------------------------------------------------------------ checks */

typedef struct check_out {
    int pass;        /* 1 pass, 0 fail, -1 error */
    char measured[512];
    char expected[256];
} check_out;

/* Runs a check applies to: "run": base name (NULL = all). */
static int selected(const rp_run *r, const char *sel) {
    return r->done && (!sel || !strcmp(sel, r->base));
}

/* kappa = -ell'(0): 1 for exp, 1/2 for logistic / ce. */
static double kappa_of(mf_loss_kind l) {
    return l == MF_LOSS_EXP ? 1.0 : 0.5;
}

/* mu = (1/N) sum_n y_n x_n ([LLWA21]); d entries. */
static void data_mu(const mf_data *d, double *mu) {
    for (int j = 0; j < d->d; j++) mu[j] = 0;
    for (int n = 0; n < d->n; n++)
        for (int j = 0; j < d->d; j++) mu[j] += d->y[n] * d->x[(size_t)n * d->d + j] / d->n;
}

void rp_unit_cosines(const mf_model *m, const double *theta, const double *ref, double *cos) {
    mf_units u;
    const mf_layer *W = &m->layers[mf_model_units(m, &u) ? u.w_layer : 0];
    double rn = 0;
    for (int j = 0; j < m->d; j++) rn += ref[j] * ref[j];
    rn = sqrt(rn);
    for (int k = 0; k < W->rows; k++) {
        const double *w = theta + W->offset + (size_t)k * W->cols;
        double dot = 0, wn = 0;
        for (int j = 0; j < m->d; j++) dot += w[j] * ref[j], wn += w[j] * w[j];
        cos[k] = wn > 0 && rn > 0 ? dot / (sqrt(wn) * rn) : 0;
    }
}

/* The per-check evaluators. Each fills o; c collects figure data. */

static void ck_final(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *col = jstr(ck, "column", "normalized_margin"), *sel = jstr(ck, "run", NULL);
    const char *op = jstr(ck, "op", "near");
    double ex = jnum(ck, "expect", NAN), tol = jnum(ck, "tol", 0);
    double lo = INFINITY, hi = -INFINITY;
    int cnt = 0, ok = 1;
    for (int i = 0; i < n; i++) {
        if (!selected(&runs[i], sel)) continue;
        double v = rp_col(&runs[i].res.final, col);
        cnt++;
        lo = fmin(lo, v), hi = fmax(hi, v);
        if (!strcmp(op, "le")) ok &= v <= ex + tol;
        else if (!strcmp(op, "ge")) ok &= v >= ex - tol;
        else ok &= fabs(v - ex) <= tol;
    }
    if (cnt == 0) {
        o->pass = -1;
        cli_fmt(o->measured, sizeof o->measured, "no finished run");
    } else {
        o->pass = ok;
        if (cnt == 1) cli_fmt(o->measured, sizeof o->measured, "%s %.9g", col, lo);
        else cli_fmt(o->measured, sizeof o->measured, "%s %.9g..%.9g (%d runs)", col, lo, hi, cnt);
    }
    cli_fmt(o->expected, sizeof o->expected, "%s%.9g%s%.3g", !strcmp(op, "le") ? "<= " :
             !strcmp(op, "ge") ? ">= " : "", ex, !strcmp(op, "near") ? " +- " : " tol ", tol);
}

/* Smoothed margin non-decreasing at every logged step once log Loss < log ell(0). */
static void ck_monotone(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *col = jstr(ck, "column", "smoothed_margin"), *sel = jstr(ck, "run", NULL);
    double tol = jnum(ck, "tol", 0);
    double worst = 0;
    long long worst_step = -1, pairs = 0;
    int cnt = 0;
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        cnt++;
        double l0 = mf_loss_log_ell0(r->s.loss) / LN10;
        for (int k = 1; k < r->nrows; k++) {
            if (!(r->rows[k - 1].log10_loss < l0)) continue;
            double a = rp_col(&r->rows[k - 1], col), b = rp_col(&r->rows[k], col);
            double dec = (a - b) / fmax(fabs(a), 1e-300);
            pairs++;
            if (dec > worst) worst = dec, worst_step = r->rows[k].step;
        }
    }
    o->pass = cnt ? worst <= tol && pairs > 0 : -1;
    cli_fmt(o->measured, sizeof o->measured,
             "largest relative decrease of %s %.3g over %lld logged pairs after Loss < ell(0)%s", col,
             worst, pairs, worst_step >= 0 ? "" : " (none)");
    if (worst_step >= 0) cat(o->measured, sizeof o->measured, " (at step %lld)", worst_step);
    cli_fmt(o->expected, sizeof o->expected, "<= %.3g", tol);
}

/* Strictly decreasing column at every logged step (G). */
static void ck_decreasing(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *col = jstr(ck, "column", "normalized_margin"), *sel = jstr(ck, "run", NULL);
    int cnt = 0, bad = 0, pairs = 0;
    double first = NAN, last = NAN;
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel) || r->nrows < 2) continue;
        cnt++;
        first = rp_col(&r->rows[0], col), last = rp_col(&r->rows[r->nrows - 1], col);
        for (int k = 1; k < r->nrows; k++, pairs++)
            if (!(rp_col(&r->rows[k], col) < rp_col(&r->rows[k - 1], col))) bad++;
    }
    double lim = jnum(ck, "limit", NAN), ltol = jnum(ck, "limit_tol", INFINITY);
    int near = isnan(lim) || fabs(last - lim) <= ltol;
    o->pass = cnt ? bad == 0 && near : -1;
    cli_fmt(o->measured, sizeof o->measured, "%s %.6g -> %.9g, %d of %d logged pairs not decreasing",
             col, first, last, bad, pairs);
    cli_fmt(o->expected, sizeof o->expected, "strictly decreasing");
    if (!isnan(lim)) cat(o->expected, sizeof o->expected, " towards %.6g (+- %.3g)", lim, ltol);
}

/* Convergence: the changes of col over the three equal thirds of log(log10 t)
 * shrink (d3 < d1), and |normalized - smoothed| at the end <= gap_tol. */
static void ck_converges(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *col = jstr(ck, "column", "normalized_margin"), *sel = jstr(ck, "run", NULL);
    double gtol = jnum(ck, "gap_tol", INFINITY);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        int k0 = 0;
        while (k0 < r->nrows && !(r->rows[k0].time_log > LN10 * 1.0)) k0++; /* t > 10 */
        if (r->nrows - k0 < 4) {
            ok = 0;
            cat(o->measured, sizeof o->measured, "%s: too few rows with t > 10; ", r->name);
            continue;
        }
        cnt++;
        double x0 = log(r->rows[k0].time_log), x1 = log(r->rows[r->nrows - 1].time_log);
        double val[4];
        for (int q = 0; q < 4; q++) {
            double xq = x0 + (x1 - x0) * q / 3.0;
            int k = k0;
            while (k + 1 < r->nrows && log(r->rows[k + 1].time_log) <= xq + 1e-12) k++;
            val[q] = rp_col(&r->rows[k], col);
        }
        double d1 = fabs(val[1] - val[0]), d3 = fabs(val[3] - val[2]);
        const mf_metrics *f = &r->res.final;
        double gap = fabs(f->normalized_margin - f->smoothed_margin);
        ok &= d3 < d1 && gap <= gtol;
        cat(o->measured, sizeof o->measured,
            "%s %.9g; changes over thirds of log log t %.3g, %.3g, %.3g; |gamma - gamma~| %.3g; ",
            col, val[3], d1, fabs(val[2] - val[1]), d3, gap);
    }
    size_t l = strlen(o->measured);
    if (l >= 2) o->measured[l - 2] = '\0';
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "last change < first change, gap <= %.3g", gtol);
}

/* Rates [LL20] Thm: slope of (ln Loss + ln t) vs ln ln t -> -(2 - 2/L), and of
 * ln ||theta|| vs ln ln t -> 1/L, fitted over the rows with log10 t >= from. */
static void ck_rate(const cJSON *ck, rp_run *runs, int n, int norm, check_out *o, rp_claim *c) {
    const char *sel = jstr(ck, "run", NULL);
    double from = jnum(ck, "from_log10_time", 2), tol = jnum(ck, "tol", 0.1);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    o->expected[0] = '\0';
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        int L = r->model->degree;
        double ex = norm ? 1.0 / L : -(2.0 - 2.0 / L);
        double *x = malloc(sizeof(double) * (size_t)(r->nrows + 1));
        double *y = malloc(sizeof(double) * (size_t)(r->nrows + 1));
        int m = 0;
        for (int k = 0; x && y && k < r->nrows; k++) {
            const mf_metrics *mt = &r->rows[k];
            if (!(mt->time_log / LN10 >= from) || !(mt->time_log > 1)) continue;
            x[m] = log(mt->time_log);
            y[m] = norm ? log(mt->norm) : mt->log10_loss * LN10 + mt->time_log;
            m++;
        }
        double b = fit_line(x, y, m, NULL);
        free(x);
        free(y);
        cnt++;
        ok &= fabs(b - ex) <= tol;
        cat(o->measured, sizeof o->measured, "%sslope %.4f (%d rows, L=%d)", cnt > 1 ? "; " : "",
            b, m, L);
        if (cnt == 1)
            cli_fmt(o->expected, sizeof o->expected, "%s = %.4f +- %.3g",
                     norm ? "1/L" : "-(2-2/L)", ex, tol);
        c->degree = L;
    }
    o->pass = cnt ? ok : -1;
}

/* The analysis verdict ([VSS22]) of the final parameters of the runs.
 * "layer": l analyzes the per-layer problem P_l (other layers frozen);
 * "layer": "all" does so for every layer of every run. "local_trials": 0
 * leaves out the SLSQP re-solves, so the verdict rests on the certificates
 * (KKT residual, closed-form optimum, second-order and directional tests). */
static void ck_verdict(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *sel = jstr(ck, "run", NULL);
    const cJSON *ex = jget(ck, "expect");
    int all_layers = cJSON_IsString(jget(ck, "layer")) && !strcmp(jstr(ck, "layer", ""), "all");
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    cli_fmt(o->expected, sizeof o->expected, "verdict ");
    if (cJSON_IsString(ex)) {
        cat(o->expected, sizeof o->expected, "%s", ex->valuestring);
    } else {
        const cJSON *e1;
        int k = 0;
        cJSON_ArrayForEach(e1, ex) cat(o->expected, sizeof o->expected, "%s%s", k++ ? "|" : "",
                                        cJSON_IsString(e1) ? e1->valuestring : "?");
    }
    if (all_layers) cat(o->expected, sizeof o->expected, " for every layer");
    mf_analyze_settings as;
    mf_analyze_settings_default(&as);
    as.local_trials = (int)jnum(ck, "local_trials", as.local_trials);
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        int l0 = all_layers ? 0 : (int)jnum(ck, "layer", -1);
        int l1 = all_layers ? r->model->n_layers - 1 : l0;
        for (int l = l0; l <= l1; l++) {
            mf_analysis *a = NULL;
            mf_err e = {0, ""};
            as.layer = l;
            if (mf_analyze(r->model, r->data, r->theta, r->s.loss, &as, &a, &e)) {
                o->pass = -1;
                cli_fmt(o->measured, sizeof o->measured, "%s: analysis failed: %s", r->name, e.msg);
                return;
            }
            const char *v = mf_verdict_name(a->verdict);
            int hit = 0;
            if (cJSON_IsString(ex)) hit = !strcmp(ex->valuestring, v);
            const cJSON *e1;
            if (cJSON_IsArray(ex))
                cJSON_ArrayForEach(e1, ex) if (cJSON_IsString(e1) && !strcmp(e1->valuestring, v)) hit = 1;
            ok &= hit;
            cnt++;
            if (cnt > 6) {
                mf_analysis_free(a);
                continue;
            }
            if (l >= 0) {
                cat(o->measured, sizeof o->measured, "%s%s layer %d (%s): verdict %s (P_l %.9g vs optimum %.9g)",
                    cnt > 1 ? "; " : "", r->base, l, r->model->layers[l].name, v, a->layer_value,
                    a->layer_opt);
            } else {
                cat(o->measured, sizeof o->measured, "%sverdict %s (gamma %.6g, eps %.2g, delta %.2g, kinks %d",
                    cnt > 1 ? "; " : "", v, a->gamma, a->eps, a->delta, a->n_kinks);
                if (a->has_global) cat(o->measured, sizeof o->measured, ", gamma* %.6g", a->gamma_star);
                if (a->second_order_done)
                    cat(o->measured, sizeof o->measured, ", min eigenvalue on the critical subspace %.3g",
                        a->min_eig);
                if (a->local)
                    cat(o->measured, sizeof o->measured, ", local search gain %.2g", a->local->best_gain);
                cat(o->measured, sizeof o->measured, ")");
            }
            mf_analysis_free(a);
        }
    }
    if (cnt > 6) cat(o->measured, sizeof o->measured, "; ... (%d analyses)", cnt);
    o->pass = cnt ? ok : -1;
}

/* (eps, delta)-KKT of the final parameters by the analysis' NNLS certificate
 * (THEORY.md s.3), with Lyu & Li's loss-gradient certificate reported too. */
static void ck_kkt(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *sel = jstr(ck, "run", NULL);
    double etol = jnum(ck, "eps_tol", 1e-2), dtol = jnum(ck, "delta_tol", 1e-2);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    mf_analyze_settings as;
    mf_analyze_settings_default(&as);
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        mf_analysis *a = NULL;
        mf_err e = {0, ""};
        if (mf_analyze(r->model, r->data, r->theta, r->s.loss, &as, &a, &e)) {
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured, "%s: analysis failed: %s", r->name, e.msg);
            return;
        }
        ok &= a->eps <= etol && a->delta <= dtol;
        cnt++;
        cat(o->measured, sizeof o->measured, "%seps %.3g, delta %.3g (Lyu-Li certificate eps %.3g), verdict %s",
            cnt > 1 ? "; " : "", a->eps, a->delta, a->ll_eps, mf_verdict_name(a->verdict));
        mf_analysis_free(a);
    }
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "eps <= %.3g, delta <= %.3g", etol, dtol);
}

/* Fraction of runs per vary value whose final normalized margin is below
 * `below` (a suboptimal limit); passes if the groups in "groups" (all when
 * absent) have a fraction > gt (default 0). */
static void ck_fraction(const cJSON *ck, rp_run *runs, int n, check_out *o, rp_claim *c) {
    double below = jnum(ck, "below", NAN), gt = jnum(ck, "gt", 0);
    const cJSON *groups = jget(ck, "groups");
    const char *label = jstr(ck, "label", "value");
    c->n_groups = 0;
    cli_fmt(c->sweep_kind, sizeof c->sweep_kind, "fraction");
    int ok = 1, any = 0;
    o->measured[0] = '\0';
    for (int i = 0; i < n; i++) {
        double v = runs[i].vary;
        int g;
        for (g = 0; g < c->n_groups; g++)
            if (c->group_x[g] == v) break;
        if (g == c->n_groups && g < 64) c->group_x[c->n_groups++] = v, c->group_y[g] = 0, c->group_y2[g] = 0;
        if (g >= 64 || !runs[i].done) continue;
        if (runs[i].res.final.train_error > 0) { /* never separated the data: not a limit */
            c->n_dead++;
            continue;
        }
        c->group_y2[g] += 1;
        if (runs[i].res.final.normalized_margin < below) c->group_y[g] += 1;
    }
    for (int g = 0; g < c->n_groups; g++) {
        double f = c->group_y2[g] > 0 ? c->group_y[g] / c->group_y2[g] : NAN;
        cat(o->measured, sizeof o->measured, "%s%s %g: %g/%g", g ? ", " : "", label, c->group_x[g],
            c->group_y[g], c->group_y2[g]);
        int want = !cJSON_IsArray(groups) && !cJSON_IsTrue(jget(ck, "pooled"));
        const cJSON *gv;
        cJSON_ArrayForEach(gv, groups) if (gv->valuedouble == c->group_x[g]) want = 1;
        if (want) ok &= f > gt, any = 1;
        c->group_y[g] = f; /* figure: the fraction */
    }
    if (cJSON_IsTrue(jget(ck, "pooled"))) { /* one fraction over every group */
        double bad = 0, tot = 0;
        for (int g = 0; g < c->n_groups; g++)
            if (c->group_y2[g] > 0) bad += c->group_y[g] * c->group_y2[g], tot += c->group_y2[g];
        ok = tot > 0 && bad / tot > gt;
        any = 1;
        cat(o->measured, sizeof o->measured, "; pooled %g/%g", bad, tot);
    }
    if (c->n_dead)
        cat(o->measured, sizeof o->measured, " (%d runs left out: data not separated)", c->n_dead);
    o->pass = any ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "fraction of separating runs with margin < %.6g above %g",
        below, gt);
    if (cJSON_IsTrue(jget(ck, "pooled"))) cat(o->expected, sizeof o->expected, " (pooled)");
    if (cJSON_IsArray(groups)) {
        cat(o->expected, sizeof o->expected, " for %s", label);
        const cJSON *gv;
        cJSON_ArrayForEach(gv, groups) cat(o->expected, sizeof o->expected, " %g", gv->valuedouble);
    }
}

/* [LLWA21] alignment: the first logged time at which every hidden unit's
 * |cos(w_k, mu)| >= thr; passes if it is <= t_max. */
static void ck_align(const cJSON *ck, rp_run *runs, int n, check_out *o, rp_claim *c) {
    const char *sel = jstr(ck, "run", NULL);
    double thr = jnum(ck, "threshold", 0.9999), tmax = jnum(ck, "t_max", INFINITY);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    c->align_thr = thr;
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        mf_units u;
        if (!r->snapshots || !mf_model_units(r->model, &u) || u.b_layer >= 0) {
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured, "run %s: align needs snapshots of a relu2 model",
                     r->name);
            return;
        }
        double mu[64], cs[64];
        data_mu(r->data, mu);
        int M = u.n_units;
        double t_hit = NAN, best = 0;
        for (int k = 0; k < r->nrows && M <= 64; k++) {
            rp_unit_cosines(r->model, r->snaps + (size_t)k * r->model->n_params, mu, cs);
            double mn = 1;
            for (int j = 0; j < M; j++) mn = fmin(mn, fabs(cs[j]));
            double t = exp(r->rows[k].time_log);
            if (t <= tmax) best = fmax(best, mn);
            if (mn >= thr && isnan(t_hit)) t_hit = t;
        }
        cnt++;
        ok &= t_hit <= tmax;
        cat(o->measured, sizeof o->measured, "%smin_k |cos(w_k, mu)| >= %.6g first at t = %.4g (best "
            "%.7f by t_max)", cnt > 1 ? "; " : "", thr, t_hit, best);
    }
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "t <= %.4g", tmax);
}

/* [LLWA21] escape time of the small-init phase: t_esc = time at which
 * ||theta|| reaches `level` (ln ||theta|| interpolated linearly in t between
 * logged rows). Over the vary values sigma: slope of t_esc vs ln(1/sigma)
 * against 1/lambda with lambda = kappa (1 + alpha) N ||mu|| / 2 (the paper's
 * lambda_0 times N, since marginflow's Loss is a sum and t is its flow time;
 * derivation in experiments/README.md). */
static void ck_escape(const cJSON *ck, rp_run *runs, int n, check_out *o, rp_claim *c) {
    double level = jnum(ck, "level", 1e-2), rtol = jnum(ck, "rel_tol", 0.05);
    double xs[64], ys[64];
    int m = 0;
    double lam = NAN;
    cli_fmt(c->sweep_kind, sizeof c->sweep_kind, "escape");
    for (int i = 0; i < n && m < 64; i++) {
        rp_run *r = &runs[i];
        if (!r->done || !r->has_vary) continue;
        double mu[64], mn = 0;
        data_mu(r->data, mu);
        for (int j = 0; j < r->data->d; j++) mn += mu[j] * mu[j];
        lam = kappa_of(r->s.loss) * (1 + r->model->alpha) * r->data->n * sqrt(mn) / 2;
        for (int k = 1; k < r->nrows; k++) {
            if (r->rows[k].norm >= level && r->rows[k - 1].norm < level) {
                double t0 = exp(r->rows[k - 1].time_log), t1 = exp(r->rows[k].time_log);
                double l0 = log(r->rows[k - 1].norm), l1 = log(r->rows[k].norm);
                xs[m] = log(1 / r->vary);
                ys[m] = t0 + (t1 - t0) * (log(level) - l0) / (l1 - l0);
                m++;
                break;
            }
        }
    }
    double icpt = 0, b = fit_line(xs, ys, m, &icpt);
    c->n_groups = m;
    for (int i = 0; i < m; i++) c->group_x[i] = xs[i], c->group_y[i] = ys[i];
    c->fit_slope = b, c->fit_icpt = icpt, c->pred_slope = 1 / lam;
    o->pass = m >= 3 ? fabs(b * lam - 1) <= rtol : -1;
    cli_fmt(o->measured, sizeof o->measured, "slope of t_esc vs ln(1/sigma) %.5f (%d scales)", b, m);
    cli_fmt(o->expected, sizeof o->expected, "1/lambda = %.5f +- %.0f%%", 1 / lam, 100 * rtol);
}

/* Trend towards a target: |target - value| shrinks from the middle logged
 * row (by log10 t) to the end and the value never exceeds target + tol. */
static void ck_trend(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *col = jstr(ck, "column", "normalized_margin"), *sel = jstr(ck, "run", NULL);
    double tg = jnum(ck, "target", NAN), tol = jnum(ck, "tol", 1e-6);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel) || r->nrows < 3) continue;
        double xe = r->rows[r->nrows - 1].time_log, xs = xe;
        for (int k = 0; k < r->nrows; k++)
            if (isfinite(r->rows[k].time_log)) {
                xs = r->rows[k].time_log;
                break;
            }
        double xm = (xs + xe) / 2;
        int km = 0;
        while (km + 1 < r->nrows && !(r->rows[km + 1].time_log > xm)) km++;
        double vm = rp_col(&r->rows[km], col), ve = rp_col(&r->rows[r->nrows - 1], col);
        double mx = -INFINITY;
        for (int k = 0; k < r->nrows; k++) mx = fmax(mx, rp_col(&r->rows[k], col));
        ok &= fabs(tg - ve) < fabs(tg - vm) && mx <= tg + tol;
        cnt++;
        cat(o->measured, sizeof o->measured, "%s%s %.6g (mid) -> %.9g (end), gap %.3g", cnt > 1 ? "; " : "",
            col, vm, ve, tg - ve);
    }
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "gap to %.6g shrinking, never above it", tg);
}

/* [VSS22]: every run whose limit has all weights nonzero (min |theta_i| /
 * ||theta|| > nz_tol) reaches gamma* (within tol); at least one such run. */
static void ck_nonzero_global(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    double gs = jnum(ck, "gamma_star", NAN), tol = jnum(ck, "tol", 1e-4), nz = jnum(ck, "nz_tol", 1e-3);
    int nonzero = 0, global = 0, zero_glob = 0, zero = 0;
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!r->done) continue;
        double nrm = mf_param_norm(r->model, r->theta), mn = INFINITY;
        for (size_t j = 0; j < r->model->n_params; j++) mn = fmin(mn, fabs(r->theta[j]) / nrm);
        int g = fabs(r->res.final.normalized_margin - gs) <= tol;
        if (mn > nz) nonzero++, global += g;
        else zero++, zero_glob += g;
    }
    o->pass = nonzero ? global == nonzero : -1;
    cli_fmt(o->measured, sizeof o->measured,
             "%d/%d limits with all weights nonzero reach gamma*; (%d/%d with a zero weight)", global,
             nonzero, zero_glob, zero);
    cli_fmt(o->expected, sizeof o->expected, "all, gamma* = %.6g +- %.2g", gs, tol);
}

/* gamma_svm and w_svm (unit, d entries) of binary data by mf_svm_solve;
 * returns gamma_svm or NAN. */
static double svm_of(const mf_data *d, double *wsvm) {
    mf_svm_result *sv = NULL;
    mf_err e = {0, ""};
    double g = NAN;
    if (mf_svm_solve(d, MF_SVM_L2, NULL, &sv, &e) == 0 && sv->status == MF_SVM_SOLVED) {
        double nw = 0;
        for (int j = 0; j < d->d; j++) nw += sv->w[j] * sv->w[j];
        for (int j = 0; j < d->d && wsvm; j++) wsvm[j] = sv->w[j] / sqrt(nw);
        g = sv->gamma;
    }
    mf_svm_result_free(sv);
    return g;
}

/* Least squares v = argmin ||X v - f|| (X [n][d], d <= 64) by the normal
 * equations and Gaussian elimination with partial pivoting; returns the
 * relative residual ||X v - f|| / ||f|| (NAN if X^T X is singular). */
static double linear_fit(const double *x, const double *f, int n, int d, double *v) {
    double G[64][65];
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < d; j++) G[i][j] = 0;
        G[i][d] = 0;
        for (int k = 0; k < n; k++) {
            for (int j = 0; j < d; j++) G[i][j] += x[(size_t)k * d + i] * x[(size_t)k * d + j];
            G[i][d] += x[(size_t)k * d + i] * f[k];
        }
    }
    for (int c = 0; c < d; c++) {
        int p = c;
        for (int i = c + 1; i < d; i++)
            if (fabs(G[i][c]) > fabs(G[p][c])) p = i;
        if (!(fabs(G[p][c]) > 1e-300)) return NAN;
        for (int j = 0; j <= d; j++) {
            double t = G[c][j];
            G[c][j] = G[p][j], G[p][j] = t;
        }
        for (int i = 0; i < d; i++) {
            if (i == c) continue;
            double m = G[i][c] / G[c][c];
            for (int j = c; j <= d; j++) G[i][j] -= m * G[c][j];
        }
    }
    for (int i = 0; i < d; i++) v[i] = G[i][d] / G[i][i];
    double rr = 0, ff = 0;
    for (int k = 0; k < n; k++) {
        double z = -f[k];
        for (int j = 0; j < d; j++) z += x[(size_t)k * d + j] * v[j];
        rr += z * z, ff += f[k] * f[k];
    }
    return ff > 0 ? sqrt(rr / ff) : NAN;
}

/* [LLWA21] "the network computes an (almost) linear function / is a linear
 * classifier": the outputs Phi(x_n) = y_n q_n of the final parameters are
 * fitted by <v, x_n> (least squares over the data); measured: the relative
 * residual and cos(v, w_svm). For relu2 also how close the hidden units are
 * to one line: min_k |cos(w_k, w_top)| over the units carrying at least 1e-3
 * of the largest |a_k| ||w_k|| (w_top: the unit carrying the most); when
 * every unit is on the line +-v, sign Phi(x) = sign <v, x> wherever both
 * output signs are present: a linear classifier. Passes when the residual
 * <= tol (when given), cos >= cos_min (when given) and the collinearity >=
 * collinear_min (when given). */
static void ck_linear(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *sel = jstr(ck, "run", NULL);
    double tol = jnum(ck, "tol", INFINITY), cmin = jnum(ck, "cos_min", NAN);
    double colmin = jnum(ck, "collinear_min", NAN);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        const mf_data *d = r->data;
        if (d->num_classes != 0 || d->d > 64) {
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured, "linear needs binary data with d <= 64");
            return;
        }
        double *q = malloc(sizeof(double) * (size_t)d->n);
        double v[64], ws[64];
        mf_err e = {0, ""};
        if (!q || mf_margin_jacobian(r->model, d, r->theta, q, NULL, &e)) {
            free(q);
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured, "%s: %s", r->name, q ? e.msg : "out of memory");
            return;
        }
        for (int k = 0; k < d->n; k++) q[k] *= d->y[k]; /* Phi(x_n) */
        double res = linear_fit(d->x, q, d->n, d->d, v);
        free(q);
        double gs = svm_of(d, ws), dot = 0, nv = 0;
        for (int j = 0; j < d->d; j++) dot += v[j] * ws[j], nv += v[j] * v[j];
        double cs = isnan(gs) || !(nv > 0) ? NAN : dot / sqrt(nv);
        double col = NAN;
        mf_units u;
        if (mf_model_units(r->model, &u) && u.b_layer < 0 && !u.in_bias) {
            const mf_layer *W = &r->model->layers[u.w_layer];
            int top = 0;
            double mass[512], mx = 0;
            for (int k = 0; k < W->rows && k < 512; k++) {
                const double *w = r->theta + W->offset + (size_t)k * W->cols;
                double nw = 0;
                for (int j = 0; j < W->cols; j++) nw += w[j] * w[j];
                mass[k] = fabs(mf_units_outer(r->model, &u, r->theta, k)) * sqrt(nw);
                if (mass[k] > mx) mx = mass[k], top = k;
            }
            col = 1;
            for (int k = 0; k < W->rows && k < 512; k++) {
                if (!(mass[k] >= 1e-3 * mx)) continue;
                const double *w = r->theta + W->offset + (size_t)k * W->cols;
                const double *t = r->theta + W->offset + (size_t)top * W->cols;
                double dt = 0, n1 = 0, n2 = 0;
                for (int j = 0; j < W->cols; j++) dt += w[j] * t[j], n1 += w[j] * w[j], n2 += t[j] * t[j];
                col = fmin(col, fabs(dt) / sqrt(n1 * n2));
            }
        }
        ok &= (isinf(tol) || res <= tol) && (isnan(cmin) || cs >= cmin) &&
              (isnan(colmin) || col >= colmin);
        cnt++;
        if (cnt <= 3) {
            cat(o->measured, sizeof o->measured, "%srelative residual of the best linear fit %.3g, "
                "cos(v, w_svm) %.6f", cnt > 1 ? "; " : "", res, cs);
            if (!isnan(col))
                cat(o->measured, sizeof o->measured, ", units on one line: min |cos(w_k, w_top)| %.6f", col);
        }
    }
    if (cnt > 3) cat(o->measured, sizeof o->measured, "; ... (%d runs)", cnt);
    o->pass = cnt ? ok : -1;
    o->expected[0] = '\0';
    if (!isinf(tol)) cat(o->expected, sizeof o->expected, "residual <= %.3g", tol);
    if (!isnan(cmin)) cat(o->expected, sizeof o->expected, "%scos >= %.6g", o->expected[0] ? ", " : "", cmin);
    if (!isnan(colmin))
        cat(o->expected, sizeof o->expected, "%smin |cos(w_k, w_top)| >= %.6g", o->expected[0] ? ", " : "",
            colmin);
}

/* [LLWA21] the trained limit against the best margin achievable by the same
 * architecture: mf_maxmargin (SLSQP multi-start, `starts` from `seed`; a
 * search, so "best" is a lower bound on gamma*). Measured: the final
 * normalized margin, the best found, their ratio, gamma_svm and
 * (1 + alpha) gamma_svm / 4. Passes when ratio <= max_ratio for every run. */
static void ck_below_best(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *sel = jstr(ck, "run", NULL);
    double mr = jnum(ck, "max_ratio", 1);
    int starts = (int)jnum(ck, "starts", 20), cnt = 0, ok = 1;
    uint64_t seed = (uint64_t)jnum(ck, "seed", 1);
    o->measured[0] = '\0';
    double best = NAN;
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        if (isnan(best) || i == 0 || strcmp(runs[i - 1].model_spec, r->model_spec) ||
            strcmp(runs[i - 1].data_spec, r->data_spec)) {
            mf_maxmargin_result *mm = NULL;
            mf_err e = {0, ""};
            if (mf_maxmargin(r->model, r->data, starts, seed, 1e-6, &mm, &e)) {
                o->pass = -1;
                cli_fmt(o->measured, sizeof o->measured, "%s: maxmargin failed: %s", r->name, e.msg);
                return;
            }
            best = mm->best_gamma;
            mf_maxmargin_result_free(mm);
        }
        double g = r->res.final.normalized_margin, ratio = g / best;
        double gs = r->data->num_classes == 0 ? svm_of(r->data, NULL) : NAN;
        ok &= ratio <= mr;
        cnt++;
        if (cnt <= 3)
            cat(o->measured, sizeof o->measured, "%strained %.6g, best found %.6g (%d starts), ratio %.4f; "
                "gamma_svm %.6g, (1+alpha) gamma_svm / 4 = %.6g", cnt > 1 ? "; " : "", g, best, starts,
                ratio, gs, (1 + r->model->alpha) * gs / 4);
    }
    if (cnt > 3) cat(o->measured, sizeof o->measured, "; ... (%d runs)", cnt);
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "trained / best <= %.4g", mr);
}

int rp_kkt_at(const rp_run *r, int k, double *eps, double *delta, double *lleps) {
    mf_analyze_settings as;
    mf_analyze_settings_default(&as);
    as.local_trials = 0;
    mf_analysis *a = NULL;
    mf_err e = {0, ""};
    const double *th = r->snaps + (size_t)k * r->model->n_params;
    if (!(r->rows[k].q_min > 0) || isnan(th[0]) ||
        mf_analyze(r->model, r->data, th, r->s.loss, &as, &a, &e))
        return -1;
    *eps = a->eps, *delta = a->delta;
    if (lleps) *lleps = a->ll_eps;
    mf_analysis_free(a);
    return 0;
}

/* [LL20] "(eps, delta) -> 0": the NNLS eps of the snapshots at a sequence of
 * horizons (first logged rows with log10 Loss <= h for h in "horizons")
 * strictly decreases. Needs snapshots. */
static void ck_kkt_horizons(const cJSON *ck, rp_run *runs, int n, check_out *o) {
    const char *sel = jstr(ck, "run", NULL);
    const cJSON *hs = jget(ck, "horizons"), *h;
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        if (!r->snapshots || !cJSON_IsArray(hs)) {
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured, "run %s: kkt_horizons needs snapshots and \"horizons\"",
                r->name);
            return;
        }
        cat(o->measured, sizeof o->measured, "%s%s eps", cnt ? "; " : "", r->base);
        double prev = INFINITY;
        int m = 0;
        cJSON_ArrayForEach(h, hs) {
            int k = 0;
            while (k < r->nrows && !(r->rows[k].log10_loss <= h->valuedouble)) k++;
            double ep, de;
            if (k == r->nrows || rp_kkt_at(r, k, &ep, &de, NULL)) {
                cat(o->measured, sizeof o->measured, " %g: n/a", h->valuedouble);
                ok = 0;
                continue;
            }
            cat(o->measured, sizeof o->measured, "%s %.3g (log10 Loss %.3g)", m ? "," : "", ep,
                r->rows[k].log10_loss);
            ok &= ep < prev;
            prev = ep;
            m++;
        }
        cnt++;
    }
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "eps strictly decreasing over the horizons");
}

/* ------------------------------------------------------------ one claim */

/* Run claim `name` from its file; write DIR/<name>/result.json. Returns 0.
 * The file is read and validated whole (cli/experiment.c) before the first
 * run is trained; a refused file is an ERROR with the parser's sentence. */
static int run_claim(const char *expdir, const char *name, const char *outdir, int quick) {
    char path[1200], cdir[1200], why[MF_ERR_LEN] = "";
    cli_fmt(path, sizeof path, "%s/%s.json", expdir, name);
    cli_fmt(cdir, sizeof cdir, "%s/%s", outdir, name);
    rp_experiment x;
    int parsed = rp_experiment_read(path, quick, &x, why, sizeof why) == 0;
    cJSON *res = cJSON_CreateObject();
    rp_run *runs = x.runs;
    int nruns = x.nruns, status = -1;
    rp_claim cl;
    memset(&cl, 0, sizeof cl);
    cli_fmt(cl.name, sizeof cl.name, "%s", name);
    cli_fmt(cl.dir, sizeof cl.dir, "%s", cdir);
    cl.gamma_star = x.gamma_star;
    cJSON *checks_out = cJSON_CreateArray();
    char measured[2048] = "", expected[1024] = "";
    if (cli_mkdirs(cdir) != 0) {
        char w2[MF_ERR_LEN];
        cli_fmt(w2, sizeof w2, "cannot create %s: %s", cdir, strerror(errno));
        if (parsed) cli_fmt(why, sizeof why, "%s", w2);
        parsed = 0;
    }
    if (parsed) {
        for (int i = 0; i < nruns; i++) {
            char rdir[1400];
            cli_fmt(rdir, sizeof rdir, "%s/%s", cdir, runs[i].name);
            train_run(&runs[i], rdir, name);
            if (!runs[i].done) {
                cli_fmt(why, sizeof why, "run %s: %s", runs[i].name, runs[i].err);
                break;
            }
        }
    }
    cl.runs = runs;
    cl.nruns = nruns;
    if (!why[0]) {
        status = 1;
        for (int ci = 0; ci < x.nchecks; ci++) {
            const cJSON *ck = x.checks[ci].spec;
            const char *q = x.checks[ci].quantity;
            check_out o;
            memset(&o, 0, sizeof o);
            if (!strcmp(q, "final")) ck_final(ck, runs, nruns, &o);
            else if (!strcmp(q, "monotone")) ck_monotone(ck, runs, nruns, &o);
            else if (!strcmp(q, "decreasing")) ck_decreasing(ck, runs, nruns, &o);
            else if (!strcmp(q, "converges")) ck_converges(ck, runs, nruns, &o);
            else if (!strcmp(q, "rate_loss")) ck_rate(ck, runs, nruns, 0, &o, &cl);
            else if (!strcmp(q, "rate_norm")) ck_rate(ck, runs, nruns, 1, &o, &cl);
            else if (!strcmp(q, "verdict")) ck_verdict(ck, runs, nruns, &o);
            else if (!strcmp(q, "kkt")) ck_kkt(ck, runs, nruns, &o);
            else if (!strcmp(q, "fraction")) ck_fraction(ck, runs, nruns, &o, &cl);
            else if (!strcmp(q, "align")) ck_align(ck, runs, nruns, &o, &cl);
            else if (!strcmp(q, "escape_slope")) ck_escape(ck, runs, nruns, &o, &cl);
            else if (!strcmp(q, "trend")) ck_trend(ck, runs, nruns, &o);
            else if (!strcmp(q, "nonzero_global")) ck_nonzero_global(ck, runs, nruns, &o);
            else if (!strcmp(q, "linear")) ck_linear(ck, runs, nruns, &o);
            else if (!strcmp(q, "below_best")) ck_below_best(ck, runs, nruns, &o);
            else if (!strcmp(q, "kkt_horizons")) ck_kkt_horizons(ck, runs, nruns, &o);
            else { /* rp_check_quantities and this list disagree */
                o.pass = -1;
                cli_fmt(o.measured, sizeof o.measured, "quantity '%s' has no evaluator", q);
            }
            if (o.pass < 0) status = -1;
            else if (o.pass == 0 && status > 0) status = 0;
            cat(measured, sizeof measured, "%s%s", measured[0] ? "; " : "", o.measured);
            cat(expected, sizeof expected, "%s%s", expected[0] ? "; " : "", o.expected);
            cJSON *co = cJSON_CreateObject();
            cli_json_str(co, "quantity", q);
            cli_json_str(co, "status", o.pass > 0 ? "PASS" : o.pass == 0 ? "FAIL" : "ERROR");
            cli_json_str(co, "measured", o.measured);
            cli_json_str(co, "expected", o.expected);
            cJSON_AddItemToArray(checks_out, co);
        }
    }
    /* figure data for cosines: mu and the reference direction */
    if (nruns > 0 && runs[0].done && runs[0].data->num_classes == 0 && runs[0].data->d <= 64) {
        data_mu(runs[0].data, cl.mu);
        cl.has_mu = 1;
        if (x.n_wref == runs[0].data->d) {
            for (int j = 0; j < runs[0].data->d; j++) cl.wref[j] = x.wref[j];
            cl.has_wref = 1;
        }
        if (!cl.degree) cl.degree = runs[0].model->degree;
    }
    cJSON *figs = cJSON_CreateArray();
    for (int fi = 0; fi < x.nfigures && status != -1; fi++) {
        if (rp_figure(&cl, x.figures[fi]) == 0) {
            char b[64];
            cli_fmt(b, sizeof b, "fig-%s", x.figures[fi]);
            cJSON_AddItemToArray(figs, cJSON_CreateString(b));
        }
    }
    cli_json_str(res, "format", "marginflow-claim-result");
    cli_json_int(res, "version", 1);
    cli_json_str(res, "name", name);
    cli_json_str(res, "status", status > 0 ? "PASS" : status == 0 ? "FAIL" : "ERROR");
    cli_json_str(res, "measured", why[0] ? why : measured);
    cli_json_str(res, "expected", expected);
    cJSON_AddBoolToObject(res, "quick", quick != 0);
    cli_json_str(res, "title", x.title);
    cli_json_str(res, "paper", x.paper);
    cli_json_str(res, "reference", x.reference);
    cli_json_str(res, "statement", x.statement);
    cJSON_AddItemToObject(res, "checks", checks_out);
    cJSON_AddItemToObject(res, "figures", figs);
    cJSON *rl = cJSON_AddArrayToObject(res, "runs");
    for (int i = 0; i < nruns; i++) {
        rp_run *r = &runs[i];
        cJSON *o = cJSON_CreateObject();
        cli_json_str(o, "name", r->name);
        cli_json_str(o, "data", r->data_spec);
        cli_json_str(o, "model", r->model_spec);
        cli_json_str(o, "init", r->init_desc);
        cli_json_str(o, "loss", mf_loss_name(r->s.loss));
        cli_json_str(o, "optimizer", mf_optimizer_name(r->s.optimizer));
        cli_json_num(o, "lr", r->s.lr);
        cli_json_int(o, "steps_budget", r->s.max_steps);
        cli_json_num(o, "until_log10_loss", r->s.until_log10_loss);
        if (r->done) {
            cli_json_str(o, "outcome", mf_outcome_name(r->res.outcome));
            cli_json_int(o, "steps", r->res.steps);
            cli_json_num(o, "wall_seconds", r->res.wall_seconds);
            cli_json_num(o, "log10_time", r->res.final.time_log / LN10);
            cli_json_num(o, "log10_loss", r->res.final.log10_loss);
            cli_json_num(o, "normalized_margin", r->res.final.normalized_margin);
            cli_json_num(o, "smoothed_margin", r->res.final.smoothed_margin);
        } else {
            cli_json_str(o, "error", r->err);
        }
        cJSON_AddItemToArray(rl, o);
    }
    char rp[1400];
    cli_fmt(rp, sizeof rp, "%s/result.json", cdir);
    mf_err e = {0, ""};
    if (cli_json_write(rp, res, &e)) cli_error("%s", e.msg);
    cJSON_Delete(res);
    rp_experiment_free(&x);
    return 0;
}

/* ------------------------------------------------------------ command */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted claim names (file stems) of DIR/<name>.json; NULL-free array of *n. */
static char **list_claims(const char *dir, int *n) {
    DIR *d = opendir(dir);
    char **names = NULL;
    int k = 0, cap = 0;
    if (!d) return NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") || de->d_name[0] == '.') continue;
        if (k == cap) {
            char **n2 = realloc(names, sizeof *n2 * (size_t)(cap = cap ? 2 * cap : 32));
            if (!n2) break;
            names = n2;
        }
        names[k] = malloc(l - 4);
        if (!names[k]) break;
        memcpy(names[k], de->d_name, l - 5);
        names[k][l - 5] = '\0';
        k++;
    }
    closedir(d);
    if (names) qsort(names, (size_t)k, sizeof *names, cmp_str);
    *n = k;
    return names;
}

/* Print the claim's line from its result.json; returns 1 pass, 0 fail/error. */
static int print_result(const char *outdir, const char *name) {
    char p[1400];
    cli_fmt(p, sizeof p, "%s/%s/result.json", outdir, name);
    cJSON *r = read_json(p);
    if (!r) {
        printf("ERROR %s: no result (the claim's process failed)\n", name);
        fflush(stdout);
        return 0;
    }
    const char *st = jstr(r, "status", "ERROR");
    printf("%s %s: %s vs %s\n", st, name, jstr(r, "measured", "?"), jstr(r, "expected", "?"));
    fflush(stdout);
    int ok = !strcmp(st, "PASS");
    cJSON_Delete(r);
    return ok;
}

static void reproduce_help(void) {
    printf("usage: marginflow reproduce [CLAIM ...] [--quick] [--out DIR] [--jobs N]\n"
           "                            [--experiments DIR] [--list]\n"
           "\n"
           "Run the claims of [LL20], [VSS22] and [LLWA21] (THEORY.md) as checks. Each claim is\n"
           "a file experiments/<claim>.json (format: experiments/README.md): its runs, the\n"
           "quantities checked with expected values and tolerances, and its figures. Prints\n"
           "'PASS|FAIL|ERROR claim: measured vs expected' per claim, then 'N passed, N failed'.\n"
           "\n"
           "  CLAIM ...           claims to run (default: every file in the experiments folder)\n"
           "  --quick             the claims' quick variants (smaller budgets, fewer seeds)\n"
           "  --out DIR           output folder (default runs/reproduce): DIR/<claim>/<run>/ are\n"
           "                      run directories (config.json, metrics.csv, params.txt,\n"
           "                      summary.json, snapshots.csv), DIR/<claim>/result.json and\n"
           "                      fig-*.gp/.png/.svg, DIR/report.md and DIR/report.html\n"
           "  --jobs N            run N claims at once in separate processes (default 1);\n"
           "                      results do not depend on N\n"
           "  --experiments DIR   folder of claim files (default experiments)\n"
           "  --list              list the claims and exit\n"
           "  -h, --help          this help\n"
           "\n"
           "Figures need gnuplot (scripts/install-deps); without it the .gp scripts are kept.\n"
           "\n"
           "exit codes: 0 every claim passed, 1 a claim failed or could not run,\n"
           "            2 bad usage or an unknown claim\n");
}

int cli_reproduce(int argc, char **argv) {
    const char *outdir = "runs/reproduce", *expdir = "experiments";
    int quick = 0, list = 0;
    long long jobs = 1;
    char **want = calloc((size_t)argc + 1, sizeof *want);
    int nwant = 0;
    if (!want) return CLI_EXIT_ERROR;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = 0;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            reproduce_help();
            free(want);
            return CLI_EXIT_OK;
        }
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--list")) list = 1;
        else if ((r = cli_opt(argc, argv, &i, "--out", &v)) == 1) outdir = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--experiments", &v)) == 1) expdir = v;
        else if (r == 0 && (r = cli_opt(argc, argv, &i, "--jobs", &v)) == 1) {
            if (cli_parse_ll("--jobs", v, 1, 256, &jobs)) r = -1;
        }
        if (r < 0) {
            free(want);
            return CLI_EXIT_USAGE;
        }
        if (r == 1 || !strcmp(argv[i], "--quick") || !strcmp(argv[i], "--list")) continue;
        if (argv[i][0] == '-') {
            cli_error("reproduce: unknown option '%s'; see marginflow reproduce --help", argv[i]);
            free(want);
            return CLI_EXIT_USAGE;
        }
        want[nwant++] = argv[i];
    }
    int nall = 0;
    char **all = list_claims(expdir, &nall);
    if (!all || nall == 0) {
        cli_error("reproduce: no claim files (*.json) in %s", expdir);
        free(want);
        free(all);
        return CLI_EXIT_USAGE;
    }
    int code = CLI_EXIT_OK;
    char **names = want;
    if (nwant == 0) {
        names = all;
        nwant = nall;
    } else {
        for (int i = 0; i < nwant; i++) {
            size_t l = strlen(want[i]);
            if (l > 5 && !strcmp(want[i] + l - 5, ".json")) want[i][l - 5] = '\0';
            int found = 0;
            for (int k = 0; k < nall; k++) found |= !strcmp(all[k], want[i]);
            if (!found) {
                cli_error("reproduce: unknown claim '%s'; see marginflow reproduce --list", want[i]);
                code = CLI_EXIT_USAGE;
            }
        }
    }
    if (code == CLI_EXIT_OK && list) {
        for (int i = 0; i < nwant; i++) {
            char p[1200];
            cli_fmt(p, sizeof p, "%s/%s.json", expdir, names[i]);
            cJSON *r = read_json(p);
            printf("%-34s %s [%s]\n", names[i], jstr(r, "title", "(unreadable)"), jstr(r, "paper", ""));
            cJSON_Delete(r);
        }
    } else if (code == CLI_EXIT_OK) {
        if (cli_mkdirs(outdir) != 0) {
            cli_error("cannot create %s: %s", outdir, strerror(errno));
            code = CLI_EXIT_ERROR;
        }
        int passed = 0, failed = 0;
        if (code == CLI_EXIT_OK && jobs <= 1) {
            for (int i = 0; i < nwant; i++) {
                char p[1400];
                cli_fmt(p, sizeof p, "%s/%s/result.json", outdir, names[i]);
                remove(p);
                run_claim(expdir, names[i], outdir, quick);
                if (print_result(outdir, names[i])) passed++;
                else failed++;
            }
        } else if (code == CLI_EXIT_OK) {
            /* at most `jobs` children; lines printed in claim order */
            pid_t *pid = calloc((size_t)nwant, sizeof *pid);
            int *fin = calloc((size_t)nwant, sizeof *fin);
            int started = 0, running = 0, printed = 0;
            fflush(stdout);
            while (pid && fin && printed < nwant) {
                while (started < nwant && running < jobs) {
                    char p[1400];
                    cli_fmt(p, sizeof p, "%s/%s/result.json", outdir, names[started]);
                    remove(p);
                    pid_t c = fork();
                    if (c == 0) {
                        run_claim(expdir, names[started], outdir, quick);
                        fflush(NULL);
                        _exit(0);
                    }
                    if (c < 0) {
                        fin[started] = 1; /* print_result reports the missing result */
                    } else {
                        pid[started] = c;
                        running++;
                    }
                    started++;
                }
                while (printed < nwant && fin[printed]) {
                    if (print_result(outdir, names[printed])) passed++;
                    else failed++;
                    printed++;
                }
                if (printed == nwant) break;
                int stv;
                pid_t w = wait(&stv);
                if (w < 0) break;
                for (int i = 0; i < started; i++)
                    if (pid[i] == w) fin[i] = 1, running--;
            }
            free(pid);
            free(fin);
        }
        if (code == CLI_EXIT_OK) {
            rp_report(outdir, names, nwant, quick);
            printf("%d passed, %d failed\n", passed, failed);
            if (failed) code = CLI_EXIT_ERROR;
        }
    }
    for (int i = 0; i < nall; i++) free(all[i]);
    free(all);
    free(want);
    return code;
}

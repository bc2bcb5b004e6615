/*
 * checks.c -- the check quantities of `marginflow reproduce` (interface:
 * checks.h; what each measures and when it passes: experiments/README.md).
 *
 * One table, rp_quantities[], lists every quantity with the keys it reads,
 * the keys it needs and its evaluator; rp_check_parse (called by the
 * experiment parser before anything trains) and rp_check_eval (called by
 * the claim runner) both go through it. Adding a quantity = an evaluator
 * here, its row in the table, its line in experiments/README.md.
 *
 * The evaluators read a check's keys with cli_jstr_or / cli_jnum_or: the
 * parser has already checked types, finiteness and integer ranges, so the
 * defaults written there are the defaults of the file format.
 */
#define _XOPEN_SOURCE 700
#include "checks.h"

#include "robust.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ analyses */

/* One remembered analysis: inputs (run, row, layer, trials) and the
 * analysis, or the reason it failed. */
typedef struct memo_entry {
    const rp_run *run;
    int row, layer, trials;
    mf_analysis *a;
    char err[MF_ERR_LEN];
} memo_entry;

struct rp_memo {
    memo_entry *e;
    int n, cap;
};

rp_memo *rp_memo_new(void) {
    return calloc(1, sizeof(rp_memo));
}

void rp_memo_free(rp_memo *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++) mf_analysis_free(m->e[i].a);
    free(m->e);
    free(m);
}

const mf_analysis *rp_analysis(const rp_claim *c, const rp_run *r, int row, int layer,
                               int local_trials, char *err, size_t cap) {
    rp_memo *m = c->memo;
    for (int i = 0; m && i < m->n; i++) {
        const memo_entry *x = &m->e[i];
        if (x->run == r && x->row == row && x->layer == layer && x->trials == local_trials) {
            if (!x->a) cli_fmt(err, cap, "%s", x->err);
            return x->a;
        }
    }
    if (!m) {
        cli_fmt(err, cap, "out of memory");
        return NULL;
    }
    if (m->n == m->cap) {
        int nc = m->cap ? 2 * m->cap : 16;
        memo_entry *e2 = realloc(m->e, sizeof *e2 * (size_t)nc);
        if (!e2) {
            cli_fmt(err, cap, "out of memory");
            return NULL;
        }
        m->e = e2;
        m->cap = nc;
    }
    mf_analyze_settings as;
    mf_analyze_settings_default(&as);
    as.layer = layer;
    as.local_trials = local_trials;
    const double *th = row < 0 ? r->theta : r->snaps + (size_t)row * r->model->n_params;
    memo_entry *x = &m->e[m->n++];
    mf_err e = {0, ""};
    x->run = r, x->row = row, x->layer = layer, x->trials = local_trials;
    x->a = NULL;
    if (mf_analyze(r->model, r->data, th, r->s.loss, &as, &x->a, &e)) x->a = NULL;
    cli_fmt(x->err, sizeof x->err, "%s", e.msg);
    if (!x->a) cli_fmt(err, cap, "%s", x->err);
    return x->a;
}

/* ---------------------------------------------------------- evaluators */

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

/* Runs a check applies to: "run": base name (NULL = all). */
static int selected(const rp_run *r, const char *sel) {
    return r->done && (!sel || !strcmp(sel, r->base));
}

/* kappa = -ell'(0): 1 for exp, 1/2 for logistic / ce. */
static double kappa_of(mf_loss_kind l) {
    return l == MF_LOSS_EXP ? 1.0 : 0.5;
}

void rp_data_mu(const mf_data *d, double *mu) {
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

/* The per-check evaluators. Each fills o; c collects figure data; every
 * measured value is written through cli_g / cli_f, so an absent one reads
 * "absent", never "nan". */

static void ck_final(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *col = cli_jstr_or(ck, "column", "normalized_margin"), *sel = cli_jstr_or(ck, "run", NULL);
    const char *op = cli_jstr_or(ck, "op", "near");
    double ex = cli_jnum_or(ck, "expect", NAN), tol = cli_jnum_or(ck, "tol", 0);
    double lo = INFINITY, hi = -INFINITY;
    int cnt = 0, ok = 1, present = 0;
    for (int i = 0; i < n; i++) {
        if (!selected(&runs[i], sel)) continue;
        double v = rp_col(&runs[i].res.final, col);
        cnt++;
        present += isfinite(v) != 0;
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
        if (!present) lo = hi = NAN; /* fmin / fmax skip NaN: say "absent" */
        if (cnt == 1) cli_fmt(o->measured, sizeof o->measured, "%s %s", col, cli_g(lo, 9));
        else cli_fmt(o->measured, sizeof o->measured, "%s %s..%s (%d runs)%s", col, cli_g(lo, 9),
                     cli_g(hi, 9), cnt, present < cnt ? ", some absent" : "");
    }
    cli_fmt(o->expected, sizeof o->expected, "%s%.9g%s%.3g", !strcmp(op, "le") ? "<= " :
             !strcmp(op, "ge") ? ">= " : "", ex, !strcmp(op, "near") ? " +- " : " tol ", tol);
}

/* Smoothed margin non-decreasing at every logged step once log Loss < log ell(0). */
static void ck_monotone(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *col = cli_jstr_or(ck, "column", "smoothed_margin"), *sel = cli_jstr_or(ck, "run", NULL);
    double tol = cli_jnum_or(ck, "tol", 0);
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
    if (worst_step >= 0) cli_cat(o->measured, sizeof o->measured, " (at step %lld)", worst_step);
    cli_fmt(o->expected, sizeof o->expected, "<= %.3g", tol);
}

/* Strictly decreasing column at every logged step (G). */
static void ck_decreasing(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *col = cli_jstr_or(ck, "column", "normalized_margin"), *sel = cli_jstr_or(ck, "run", NULL);
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
    double lim = cli_jnum_or(ck, "limit", NAN), ltol = cli_jnum_or(ck, "limit_tol", INFINITY);
    int near = isnan(lim) || fabs(last - lim) <= ltol;
    o->pass = cnt ? bad == 0 && near : -1;
    cli_fmt(o->measured, sizeof o->measured, "%s %s -> %s, %d of %d logged pairs not decreasing",
             col, cli_g(first, 6), cli_g(last, 9), bad, pairs);
    cli_fmt(o->expected, sizeof o->expected, "strictly decreasing");
    if (!isnan(lim)) cli_cat(o->expected, sizeof o->expected, " towards %.6g (+- %.3g)", lim, ltol);
}

/* Convergence: the changes of col over the three equal thirds of log(log10 t)
 * shrink (d3 < d1), and |normalized - smoothed| at the end <= gap_tol. */
static void ck_converges(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *col = cli_jstr_or(ck, "column", "normalized_margin"), *sel = cli_jstr_or(ck, "run", NULL);
    double gtol = cli_jnum_or(ck, "gap_tol", INFINITY);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        int k0 = 0;
        while (k0 < r->nrows && !(r->rows[k0].time_log > LN10 * 1.0)) k0++; /* t > 10 */
        if (r->nrows - k0 < 4) {
            ok = 0;
            cli_cat(o->measured, sizeof o->measured, "%s: too few rows with t > 10; ", r->name);
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
        cli_cat(o->measured, sizeof o->measured,
            "%s %s; changes over thirds of log log t %s, %s, %s; |gamma - gamma~| %s; ",
            col, cli_g(val[3], 9), cli_g(d1, 3), cli_g(fabs(val[2] - val[1]), 3), cli_g(d3, 3),
            cli_g(gap, 3));
    }
    size_t l = strlen(o->measured);
    if (l >= 2) o->measured[l - 2] = '\0';
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "last change < first change, gap <= %.3g", gtol);
}

/* Rates [LL20] Thm: slope of (ln Loss + ln t) vs ln ln t -> -(2 - 2/L), and of
 * ln ||theta|| vs ln ln t -> 1/L, fitted over the rows with log10 t >= from. */
static void ck_rate(const cJSON *ck, rp_claim *c, int norm, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double from = cli_jnum_or(ck, "from_log10_time", 2), tol = cli_jnum_or(ck, "tol", 0.1);
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
        cli_cat(o->measured, sizeof o->measured, "%sslope %s (%d rows, L=%d)", cnt > 1 ? "; " : "",
            cli_f(b, 4), m, L);
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
static void ck_verdict(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *sel = cli_jstr_or(ck, "run", NULL);
    const cJSON *ex = cli_jget(ck, "expect");
    int all_layers = cJSON_IsString(cli_jget(ck, "layer")) && !strcmp(cli_jstr_or(ck, "layer", ""), "all");
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    cli_fmt(o->expected, sizeof o->expected, "verdict ");
    if (cJSON_IsString(ex)) {
        cli_cat(o->expected, sizeof o->expected, "%s", ex->valuestring);
    } else {
        const cJSON *e1;
        int k = 0;
        cJSON_ArrayForEach(e1, ex) cli_cat(o->expected, sizeof o->expected, "%s%s", k++ ? "|" : "",
                                        cJSON_IsString(e1) ? e1->valuestring : "?");
    }
    if (all_layers) cli_cat(o->expected, sizeof o->expected, " for every layer");
    mf_analyze_settings as;
    mf_analyze_settings_default(&as);
    int trials = (int)cli_jnum_or(ck, "local_trials", as.local_trials);
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        int l0 = all_layers ? 0 : (int)cli_jnum_or(ck, "layer", -1);
        int l1 = all_layers ? r->model->n_layers - 1 : l0;
        for (int l = l0; l <= l1; l++) {
            char err[MF_ERR_LEN];
            const mf_analysis *a = rp_analysis(c, r, -1, l, trials, err, sizeof err);
            if (!a) {
                o->pass = -1;
                cli_fmt(o->measured, sizeof o->measured, "%s: analysis failed: %s", r->name, err);
                return;
            }
            const char *v = mf_verdict_name(a->verdict);
            int hit = 0;
            mf_verdict want;
            /* by value, so a former name ("local-evidence") still matches */
            if (cJSON_IsString(ex)) hit = !mf_verdict_from_name(ex->valuestring, &want) && want == a->verdict;
            const cJSON *e1;
            if (cJSON_IsArray(ex))
                cJSON_ArrayForEach(e1, ex) if (cJSON_IsString(e1) && !mf_verdict_from_name(e1->valuestring, &want) &&
                                               want == a->verdict) hit = 1;
            ok &= hit;
            cnt++;
            if (cnt > 6) continue;
            if (l >= 0) {
                cli_cat(o->measured, sizeof o->measured, "%s%s layer %d (%s): verdict %s (P_l %s vs optimum %s)",
                    cnt > 1 ? "; " : "", r->base, l, r->model->layers[l].name, v,
                    cli_g(a->layer_value, 9), cli_g(a->layer_opt, 9));
            } else {
                cli_cat(o->measured, sizeof o->measured, "%sverdict %s (gamma %s, eps %s, delta %s, kinks %d",
                    cnt > 1 ? "; " : "", v, cli_g(a->gamma, 6), cli_g(a->eps, 2), cli_g(a->delta, 2),
                    a->n_kinks);
                if (a->has_global)
                    cli_cat(o->measured, sizeof o->measured, ", gamma* %s", cli_g(a->gamma_star, 6));
                if (a->second_order_done && isfinite(a->min_eig))
                    cli_cat(o->measured, sizeof o->measured,
                        ", min eigenvalue on the critical subspace %s +- %s", cli_g(a->min_eig, 3),
                        cli_g(a->min_eig_err, 2));
                else if (a->second_order_done)
                    cli_cat(o->measured, sizeof o->measured, ", min eigenvalue absent: %s", a->min_eig_absent);
                if (a->local && isfinite(a->local->best_gain))
                    cli_cat(o->measured, sizeof o->measured, ", local search gain %s",
                            cli_g(a->local->best_gain, 2));
                if (a->witness.found)
                    cli_cat(o->measured, sizeof o->measured, ", witness %s at distance %s: gain %s > noise %s",
                        a->witness.kind, cli_g(a->witness.distance, 2), cli_g(a->witness.gain_ref, 3),
                        cli_g(a->witness.noise, 2));
                cli_cat(o->measured, sizeof o->measured, ")");
            }
        }
    }
    if (cnt > 6) cli_cat(o->measured, sizeof o->measured, "; ... (%d analyses)", cnt);
    o->pass = cnt ? ok : -1;
}

/* (eps, delta)-KKT of the final parameters by the analysis' NNLS certificate
 * (docs/theory.md s.3), with Lyu & Li's loss-gradient certificate reported too. */
static void ck_kkt(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double etol = cli_jnum_or(ck, "eps_tol", 1e-2), dtol = cli_jnum_or(ck, "delta_tol", 1e-2);
    int cnt = 0, ok = 1;
    o->measured[0] = '\0';
    mf_analyze_settings as;
    mf_analyze_settings_default(&as);
    for (int i = 0; i < n; i++) {
        rp_run *r = &runs[i];
        if (!selected(r, sel)) continue;
        char err[MF_ERR_LEN];
        const mf_analysis *a = rp_analysis(c, r, -1, -1, as.local_trials, err, sizeof err);
        if (!a) {
            o->pass = -1;
            cli_fmt(o->measured, sizeof o->measured, "%s: analysis failed: %s", r->name, err);
            return;
        }
        ok &= a->eps <= etol && a->delta <= dtol;
        cnt++;
        cli_cat(o->measured, sizeof o->measured, "%seps %s, delta %s (Lyu-Li certificate eps %s), verdict %s",
            cnt > 1 ? "; " : "", cli_g(a->eps, 3), cli_g(a->delta, 3), cli_g(a->ll_eps, 3),
            mf_verdict_name(a->verdict));
    }
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "eps <= %.3g, delta <= %.3g", etol, dtol);
}

/* Fraction of runs per vary value whose final normalized margin is below
 * `below` (a suboptimal limit); passes if the groups in "groups" (all when
 * absent) have a fraction > gt (default 0). */
static void ck_fraction(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    double below = cli_jnum_or(ck, "below", NAN), gt = cli_jnum_or(ck, "gt", 0);
    const cJSON *groups = cli_jget(ck, "groups");
    const char *label = cli_jstr_or(ck, "label", "value");
    c->n_groups = 0;
    c->frac_below = below;
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
        cli_cat(o->measured, sizeof o->measured, "%s%s %g: %g/%g", g ? ", " : "", label, c->group_x[g],
            c->group_y[g], c->group_y2[g]);
        int want = !cJSON_IsArray(groups) && !cJSON_IsTrue(cli_jget(ck, "pooled"));
        const cJSON *gv;
        cJSON_ArrayForEach(gv, groups) if (gv->valuedouble == c->group_x[g]) want = 1;
        if (want) ok &= f > gt, any = 1;
        c->group_y[g] = f; /* figure: the fraction */
    }
    if (cJSON_IsTrue(cli_jget(ck, "pooled"))) { /* one fraction over every group */
        double bad = 0, tot = 0;
        for (int g = 0; g < c->n_groups; g++)
            if (c->group_y2[g] > 0) bad += c->group_y[g] * c->group_y2[g], tot += c->group_y2[g];
        ok = tot > 0 && bad / tot > gt;
        any = 1;
        cli_cat(o->measured, sizeof o->measured, "; pooled %g/%g", bad, tot);
    }
    if (c->n_dead)
        cli_cat(o->measured, sizeof o->measured, " (%d runs left out: data not separated)", c->n_dead);
    o->pass = any ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "fraction of separating runs with margin < %.6g above %g",
        below, gt);
    if (cJSON_IsTrue(cli_jget(ck, "pooled"))) cli_cat(o->expected, sizeof o->expected, " (pooled)");
    if (cJSON_IsArray(groups)) {
        cli_cat(o->expected, sizeof o->expected, " for %s", label);
        const cJSON *gv;
        cJSON_ArrayForEach(gv, groups) cli_cat(o->expected, sizeof o->expected, " %g", gv->valuedouble);
    }
}

/* [LLWA21] alignment: the first logged time at which every hidden unit's
 * |cos(w_k, mu)| >= thr; passes if it is <= t_max. */
static void ck_align(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double thr = cli_jnum_or(ck, "threshold", 0.9999), tmax = cli_jnum_or(ck, "t_max", INFINITY);
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
        rp_data_mu(r->data, mu);
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
        cli_cat(o->measured, sizeof o->measured, "%smin_k |cos(w_k, mu)| >= %.6g first at t = %s (best "
            "%s by t_max)", cnt > 1 ? "; " : "", thr, isnan(t_hit) ? "never" : cli_g(t_hit, 4),
            cli_f(best, 7));
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
static void ck_escape(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    double level = cli_jnum_or(ck, "level", 1e-2), rtol = cli_jnum_or(ck, "rel_tol", 0.05);
    double xs[64] = {0}, ys[64] = {0};
    int m = 0;
    double lam = NAN;
    cli_fmt(c->sweep_kind, sizeof c->sweep_kind, "escape");
    for (int i = 0; i < n && m < 64; i++) {
        rp_run *r = &runs[i];
        if (!r->done || !r->has_vary) continue;
        double mu[64], mn = 0;
        rp_data_mu(r->data, mu);
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
static void ck_trend(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *col = cli_jstr_or(ck, "column", "normalized_margin"), *sel = cli_jstr_or(ck, "run", NULL);
    double tg = cli_jnum_or(ck, "target", NAN), tol = cli_jnum_or(ck, "tol", 1e-6);
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
        cli_cat(o->measured, sizeof o->measured, "%s%s %s (mid) -> %s (end), gap %s", cnt > 1 ? "; " : "",
            col, cli_g(vm, 6), cli_g(ve, 9), cli_g(tg - ve, 3));
    }
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "gap to %.6g shrinking, never above it", tg);
}

/* [VSS22]: every run whose limit has all weights nonzero (min |theta_i| /
 * ||theta|| > nz_tol) reaches gamma* (within tol); at least one such run. */
static void ck_nonzero_global(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    double gs = cli_jnum_or(ck, "gamma_star", NAN), tol = cli_jnum_or(ck, "tol", 1e-4), nz = cli_jnum_or(ck, "nz_tol", 1e-3);
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

double rp_svm_unit(const mf_data *d, double *wsvm) {
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
static void ck_linear(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double tol = cli_jnum_or(ck, "tol", INFINITY), cmin = cli_jnum_or(ck, "cos_min", NAN);
    double colmin = cli_jnum_or(ck, "collinear_min", NAN);
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
        double gs = rp_svm_unit(d, ws), dot = 0, nv = 0;
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
            cli_cat(o->measured, sizeof o->measured, "%srelative residual of the best linear fit %s, "
                "cos(v, w_svm) %s", cnt > 1 ? "; " : "", cli_g(res, 3), cli_f(cs, 6));
            if (!isnan(col))
                cli_cat(o->measured, sizeof o->measured, ", units on one line: min |cos(w_k, w_top)| %s",
                        cli_f(col, 6));
        }
    }
    if (cnt > 3) cli_cat(o->measured, sizeof o->measured, "; ... (%d runs)", cnt);
    o->pass = cnt ? ok : -1;
    o->expected[0] = '\0';
    if (!isinf(tol)) cli_cat(o->expected, sizeof o->expected, "residual <= %.3g", tol);
    if (!isnan(cmin)) cli_cat(o->expected, sizeof o->expected, "%scos >= %.6g", o->expected[0] ? ", " : "", cmin);
    if (!isnan(colmin))
        cli_cat(o->expected, sizeof o->expected, "%smin |cos(w_k, w_top)| >= %.6g", o->expected[0] ? ", " : "",
            colmin);
}

/* [LLWA21] the trained limit against the best margin achievable by the same
 * architecture: mf_maxmargin (SLSQP multi-start, `starts` from `seed`; a
 * search, so "best" is a lower bound on gamma*). Measured: the final
 * normalized margin, the best found, their ratio, gamma_svm and
 * (1 + alpha) gamma_svm / 4. Passes when ratio <= max_ratio for every run. */
static void ck_below_best(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *sel = cli_jstr_or(ck, "run", NULL);
    double mr = cli_jnum_or(ck, "max_ratio", 1);
    int starts = (int)cli_jnum_or(ck, "starts", 20), cnt = 0, ok = 1;
    uint64_t seed = (uint64_t)cli_jnum_or(ck, "seed", 1);
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
        double gs = r->data->num_classes == 0 ? rp_svm_unit(r->data, NULL) : NAN;
        ok &= ratio <= mr;
        cnt++;
        if (cnt <= 3)
            cli_cat(o->measured, sizeof o->measured, "%strained %s, best found %s (%d starts), ratio %s; "
                "gamma_svm %s, (1+alpha) gamma_svm / 4 = %s", cnt > 1 ? "; " : "", cli_g(g, 6),
                cli_g(best, 6), starts, cli_f(ratio, 4), cli_g(gs, 6),
                cli_g((1 + r->model->alpha) * gs / 4, 6));
    }
    if (cnt > 3) cli_cat(o->measured, sizeof o->measured, "; ... (%d runs)", cnt);
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "trained / best <= %.4g", mr);
}

int rp_kkt_at(const rp_claim *c, const rp_run *r, int k, double *eps, double *delta,
              double *lleps) {
    char err[MF_ERR_LEN];
    const double *th = r->snaps + (size_t)k * r->model->n_params;
    if (!(r->rows[k].q_min > 0) || isnan(th[0])) return -1;
    const mf_analysis *a = rp_analysis(c, r, k, -1, 0, err, sizeof err);
    if (!a) return -1;
    *eps = a->eps, *delta = a->delta;
    if (lleps) *lleps = isfinite(a->ll_beta) ? sqrt(fmax(0, 2 * (1 - a->ll_beta))) : NAN;
    return 0;
}

/* [LL20] "(eps, delta) -> 0": the NNLS eps of the snapshots at a sequence of
 * horizons (first logged rows with log10 Loss <= h for h in "horizons")
 * strictly decreases; with "max_ratio" r also eps(last horizon) <= r
 * eps(first horizon) (a decay, not just a drift). Needs snapshots. */
static void ck_kkt_horizons(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    rp_run *runs = c->runs;
    int n = c->nruns;
    const char *sel = cli_jstr_or(ck, "run", NULL);
    const cJSON *hs = cli_jget(ck, "horizons"), *h;
    const double max_ratio = cli_jnum_or(ck, "max_ratio", NAN);
    double first = NAN;
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
        cli_cat(o->measured, sizeof o->measured, "%s%s eps", cnt ? "; " : "", r->base);
        double prev = INFINITY;
        int m = 0;
        cJSON_ArrayForEach(h, hs) {
            int k = 0;
            while (k < r->nrows && !(r->rows[k].log10_loss <= h->valuedouble)) k++;
            double ep, de;
            if (k == r->nrows || rp_kkt_at(c, r, k, &ep, &de, NULL)) {
                cli_cat(o->measured, sizeof o->measured, " %g: n/a", h->valuedouble);
                ok = 0;
                continue;
            }
            cli_cat(o->measured, sizeof o->measured, "%s %s (log10 Loss %s)", m ? "," : "", cli_g(ep, 3),
                cli_g(r->rows[k].log10_loss, 3));
            ok &= ep < prev;
            prev = ep;
            if (m == 0) first = ep;
            m++;
        }
        if (m > 0 && isfinite(max_ratio)) {
            cli_cat(o->measured, sizeof o->measured, " (last / first %s)", cli_g(prev / first, 3));
            ok &= prev <= max_ratio * first;
        }
        cnt++;
    }
    o->pass = cnt ? ok : -1;
    cli_fmt(o->expected, sizeof o->expected, "eps strictly decreasing over the horizons");
    if (isfinite(max_ratio))
        cli_cat(o->expected, sizeof o->expected, ", last <= %.3g x first", max_ratio);
}


/* One run's final column against another's: run `run` op run `other`
 * (gt, ge, lt, le), e.g. [LL20] Fig. 1: the loss-based run ends with a
 * larger normalized margin than the constant-lr run. */
static void ck_compare(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    const char *col = cli_jstr_or(ck, "column", "layer_margin"), *a = cli_jstr_or(ck, "run", NULL);
    const char *b = cli_jstr_or(ck, "other", NULL), *op = cli_jstr_or(ck, "op", "gt");
    const rp_run *ra = NULL, *rb = NULL;
    for (int i = 0; i < c->nruns; i++) {
        if (!ra && selected(&c->runs[i], a)) ra = &c->runs[i];
        if (!rb && selected(&c->runs[i], b)) rb = &c->runs[i];
    }
    cli_fmt(o->expected, sizeof o->expected, "%s of %s %s that of %s", col, a, op, b);
    if (!ra || !rb) {
        o->pass = -1;
        cli_fmt(o->measured, sizeof o->measured, "run %s or %s did not finish", a, b);
        return;
    }
    double x = rp_col(&ra->res.final, col), y = rp_col(&rb->res.final, col);
    o->pass = !strcmp(op, "gt") ? x > y : !strcmp(op, "ge") ? x >= y : !strcmp(op, "lt") ? x < y : x <= y;
    cli_fmt(o->measured, sizeof o->measured, "%s %s %.6g (epoch %lld) vs %s %.6g (epoch %lld)", col, a, x,
            ra->res.final.epoch, b, y, rb->res.final.epoch);
}

/* [LL20] sec. 5: L2 robustness grows with training. The run's archived
 * states (first and last of the chosen ones) on the first n inputs of its
 * test set (mf_robust_eval: PGD-L2 and Carlini-Wagner L2): robust accuracy
 * under both attacks at the largest eps. Passes when the last is >= the
 * first - tol and the first is above 0 there (at 0 the comparison could not
 * fail). Draws the claim's robustness figures (fig-robust-eps,
 * fig-robust-epoch) as `marginflow robust` does. */
static void ck_robust(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    const char *sel = cli_jstr_or(ck, "run", NULL), *which = cli_jstr_or(ck, "checkpoints", "first,last");
    mf_robust_settings s;
    mf_robust_settings_default(&s);
    const cJSON *ev = cli_jget(ck, "eps"), *e1;
    if (cJSON_IsArray(ev)) {
        s.n_eps = 0;
        cJSON_ArrayForEach(e1, ev) if (s.n_eps < MF_ROBUST_MAX_EPS) s.eps[s.n_eps++] = e1->valuedouble;
    }
    s.pgd_steps = (int)cli_jnum_or(ck, "pgd_steps", s.pgd_steps);
    s.pgd_restarts = (int)cli_jnum_or(ck, "restarts", s.pgd_restarts);
    s.cw_steps = (int)cli_jnum_or(ck, "cw_steps", s.cw_steps);
    s.cw_search = (int)cli_jnum_or(ck, "cw_search", s.cw_search);
    s.cw_lr = cli_jnum_or(ck, "cw_lr", s.cw_lr);
    s.seed = (uint64_t)cli_jnum_or(ck, "seed", 1);
    int n = (int)cli_jnum_or(ck, "n", 0);
    double tol = cli_jnum_or(ck, "tol", 0);
    const rp_run *r = NULL;
    for (int i = 0; i < c->nruns && !r; i++)
        if (selected(&c->runs[i], sel)) r = &c->runs[i];
    const int L = s.n_eps - 1;
    cli_fmt(o->expected, sizeof o->expected, "robust accuracy at eps %g: last state >= first%s", s.eps[L],
            tol > 0 ? " - tol" : "");
    const char *bad = mf_robust_settings_validate(&s);
    if (!r || bad) {
        o->pass = -1;
        cli_fmt(o->measured, sizeof o->measured, "%s", bad ? bad : "no finished run");
        return;
    }
    char rd[1400], why[MF_ERR_LEN] = "";
    cli_fmt(rd, sizeof rd, "%s/%s", c->dir, r->name);
    robust_table t;
    if (robust_run(rd, which, &s, n, NULL, 0, &t, why, sizeof why)) {
        o->pass = -1;
        cli_fmt(o->measured, sizeof o->measured, "%s", why);
        return;
    }
    const robust_point *a = &t.p[0], *b = &t.p[t.n - 1];
    /* a comparison at a radius where the first state is already at 0 cannot
     * fail: it is not evidence, so the check fails and says to pick a
     * smaller radius */
    const int informative = a->r->acc_min[L] > 0;
    o->pass = t.n >= 2 && informative && b->r->acc_min[L] >= a->r->acc_min[L] - tol;
    cli_fmt(o->measured, sizeof o->measured,
            "%s on %d test inputs at eps %g: epoch %lld (log10 loss %.4g) %.4f (PGD %.4f, CW %.4f), "
            "epoch %lld (log10 loss %.4g) %.4f (PGD %.4f, CW %.4f); median norm %.4g -> %.4g",
            r->name, t.n_test, s.eps[L], a->epoch, a->log10_loss, a->r->acc_min[L], a->r->acc_pgd[L],
            a->r->acc_cw[L], b->epoch, b->log10_loss, b->r->acc_min[L], b->r->acc_pgd[L], b->r->acc_cw[L],
            a->r->median_norm, b->r->median_norm);
    if (t.n < 2) cli_cat(o->measured, sizeof o->measured, " (only one state archived)");
    if (!informative)
        cli_cat(o->measured, sizeof o->measured,
                " (the first state is at 0 at eps %g: uninformative, choose a smaller largest eps)",
                s.eps[L]);
    if (robust_write(c->dir, "fig-robust", &t, why, sizeof why)) cli_cat(o->measured, sizeof o->measured, "; %s", why);
    robust_table_free(&t);
}

static void ck_rate_loss(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    ck_rate(ck, c, 0, o);
}

static void ck_rate_norm(const cJSON *ck, rp_claim *c, rp_check_out *o) {
    ck_rate(ck, c, 1, o);
}

/* --------------------------------------------------------------- table */

/* The keys each evaluator reads (besides "quantity" and "comment"). */
static const char *const k_final[] = {"column", "run", "op", "expect", "tol", NULL};
static const char *const k_monotone[] = {"column", "run", "tol", NULL};
static const char *const k_decreasing[] = {"column", "run", "limit", "limit_tol", NULL};
static const char *const k_converges[] = {"column", "run", "gap_tol", NULL};
static const char *const k_rate[] = {"run", "from_log10_time", "tol", NULL};
static const char *const k_verdict[] = {"run", "expect", "layer", "local_trials", NULL};
static const char *const k_kkt[] = {"run", "eps_tol", "delta_tol", NULL};
static const char *const k_fraction[] = {"below", "gt", "groups", "label", "pooled", NULL};
static const char *const k_align[] = {"run", "threshold", "t_max", NULL};
static const char *const k_escape[] = {"level", "rel_tol", NULL};
static const char *const k_trend[] = {"column", "run", "target", "tol", NULL};
static const char *const k_nonzero[] = {"gamma_star", "tol", "nz_tol", NULL};
static const char *const k_linear[] = {"run", "tol", "cos_min", "collinear_min", NULL};
static const char *const k_below[] = {"run", "max_ratio", "starts", "seed", NULL};
static const char *const k_horizons[] = {"run", "horizons", "max_ratio", NULL};
static const char *const k_global[] = {"run", "expect", "tol", NULL};
static const char *const k_layer0[] = {"run", "expect", "tol", "zero_tol", "gain_min", NULL};
static const char *const k_odd_even[] = {"run", "cos_min", "ratio_max", NULL};
static const char *const k_sign[] = {"run", NULL};
static const char *const k_invariant[] = {"run", "tol", "slope", "slope_tol", NULL};
static const char *const k_compare[] = {"column", "run", "other", "op", NULL};
static const char *const k_robust[] = {"run", "eps", "n", "checkpoints", "pgd_steps", "restarts", "cw_steps", "cw_search", "cw_lr", "seed", "tol", NULL};

static const char *const r_none[] = {NULL};
static const char *const r_expect[] = {"expect", NULL};
static const char *const r_below[] = {"below", NULL};
static const char *const r_target[] = {"target", NULL};
static const char *const r_gamma[] = {"gamma_star", NULL};
static const char *const r_horizons[] = {"horizons", NULL};
static const char *const r_compare[] = {"run", "other", NULL};
static const char *const r_run[] = {"run", NULL};

const rp_quantity rp_quantities[] = {
    {"final", k_final, r_expect, ck_final},
    {"monotone", k_monotone, r_none, ck_monotone},
    {"decreasing", k_decreasing, r_none, ck_decreasing},
    {"converges", k_converges, r_none, ck_converges},
    {"rate_loss", k_rate, r_none, ck_rate_loss},
    {"rate_norm", k_rate, r_none, ck_rate_norm},
    {"verdict", k_verdict, r_expect, ck_verdict},
    {"kkt", k_kkt, r_none, ck_kkt},
    {"fraction", k_fraction, r_below, ck_fraction},
    {"align", k_align, r_none, ck_align},
    {"escape_slope", k_escape, r_none, ck_escape},
    {"trend", k_trend, r_target, ck_trend},
    {"nonzero_global", k_nonzero, r_gamma, ck_nonzero_global},
    {"linear", k_linear, r_none, ck_linear},
    {"below_best", k_below, r_none, ck_below_best},
    {"kkt_horizons", k_horizons, r_horizons, ck_kkt_horizons},
    {"global_relu2", k_global, r_expect, rp_ck_global_relu2},
    {"layer0_relu2", k_layer0, r_expect, rp_ck_layer0_relu2},
    {"odd_even", k_odd_even, r_none, rp_ck_odd_even},
    {"sign_init", k_sign, r_none, rp_ck_sign_init},
    {"invariant", k_invariant, r_none, rp_ck_invariant},
    {"compare", k_compare, r_compare, ck_compare},
    {"robust", k_robust, r_run, ck_robust},
    {NULL, NULL, NULL, NULL}};

const rp_quantity *rp_quantity_find(const char *name) {
    for (const rp_quantity *q = rp_quantities; q->name; q++)
        if (!strcmp(q->name, name)) return q;
    return NULL;
}

void rp_check_eval(const rp_check *ck, rp_claim *c, rp_check_out *o) {
    memset(o, 0, sizeof *o);
    ck->def->eval(ck->spec, c, o);
}

/* ------------------------------------------------------------- parsing */

/* The type of every check key, in the order they are validated. */
enum { K_NUM, K_INT, K_STR, K_BOOL, K_NUMARR, K_EXPECT, K_LAYER };
static const struct check_key {
    const char *name;
    int type;
    double lo, hi; /* K_INT: range; K_STR: (0, max length); K_NUMARR: (0, max count) */
} check_key_types[] = {
    {"column", K_STR, 0, 64},           {"run", K_STR, 0, 64},
    {"op", K_STR, 0, 8},                {"label", K_STR, 0, 64},
    {"pooled", K_BOOL, 0, 0},           {"expect", K_EXPECT, 0, 0},
    {"layer", K_LAYER, -1, 4096},       {"local_trials", K_INT, 0, 100000},
    {"starts", K_INT, 1, 100000},       {"seed", K_INT, 0, RP_MAX_SEED},
    {"groups", K_NUMARR, 0, RP_MAX_RUNS}, {"horizons", K_NUMARR, 0, 1000},
    {"tol", K_NUM, 0, 0},               {"gap_tol", K_NUM, 0, 0},
    {"from_log10_time", K_NUM, 0, 0},   {"eps_tol", K_NUM, 0, 0},
    {"delta_tol", K_NUM, 0, 0},         {"below", K_NUM, 0, 0},
    {"gt", K_NUM, 0, 0},                {"threshold", K_NUM, 0, 0},
    {"t_max", K_NUM, 0, 0},             {"level", K_NUM, 0, 0},
    {"rel_tol", K_NUM, 0, 0},           {"target", K_NUM, 0, 0},
    {"gamma_star", K_NUM, 0, 0},        {"nz_tol", K_NUM, 0, 0},
    {"cos_min", K_NUM, 0, 0},           {"collinear_min", K_NUM, 0, 0},
    {"max_ratio", K_NUM, 0, 0},         {"limit", K_NUM, 0, 0},
    {"limit_tol", K_NUM, 0, 0},         {"zero_tol", K_NUM, 0, 0},
    {"gain_min", K_NUM, 0, 0},          {"ratio_max", K_NUM, 0, 0},
    {"slope", K_NUM, 0, 0},             {"slope_tol", K_NUM, 0, 0},
    {"comment", K_STR, 0, 100000},
    {"other", K_STR, 0, 64},            {"eps", K_NUMARR, 0, MF_ROBUST_MAX_EPS},
    {"n", K_INT, 0, 1000000000},        {"checkpoints", K_STR, 0, 1000},
    {"pgd_steps", K_INT, 0, 100000},    {"restarts", K_INT, 0, 1000},
    {"cw_steps", K_INT, 0, 100000},     {"cw_search", K_INT, 0, 100},
    {"cw_lr", K_NUM, 0, 0},
    {NULL, 0, 0, 0}};

static int in_list(const char *const *list, const char *s) {
    for (; *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
}

/* "a, b, c" of a NULL-terminated list into buf (truncating). */
static const char *join(char *buf, size_t cap, const char *first, const char *const *list,
                        const char *last) {
    cli_fmt(buf, cap, "%s", first ? first : "");
    for (; *list; list++) cli_cat(buf, cap, "%s%s", buf[0] ? ", " : "", *list);
    if (last) cli_cat(buf, cap, "%s%s", buf[0] ? ", " : "", last);
    return buf;
}

/* Every key of ck is "quantity", "comment" or one of q's keys, once. */
static int check_allowed(cli_jr *r, const cJSON *ck, const char *path, const rp_quantity *q) {
    const cJSON *kv;
    char f[200], list[512];
    int n = 0;
    cJSON_ArrayForEach(kv, ck) {
        const char *k = kv->string ? kv->string : "?";
        cli_jfield(f, sizeof f, path, k, 0);
        int known = !strcmp(k, "quantity");
        for (int i = 0; check_key_types[i].name && !known; i++)
            known = !strcmp(check_key_types[i].name, k);
        if (!known)
            return cli_jbad(r, f, "unknown key (known here: %s)",
                            join(list, sizeof list, "quantity", q->keys, "comment"));
        if (strcmp(k, "quantity") && strcmp(k, "comment") && !in_list(q->keys, k))
            return cli_jbad(r, f, "key '%s' is not used by quantity '%s' (allowed: %s)", k,
                            q->name, join(list, sizeof list, NULL, q->keys, "comment"));
        const cJSON *kw = ck->child;
        for (int i = 0; i < n; i++, kw = kw->next)
            if (kw->string && !strcmp(kw->string, k)) return cli_jbad(r, f, "appears twice");
        n++;
    }
    return 0;
}

/* The verdict expectation: a name or a non-empty list of names, each a
 * verdict mf_verdict_from_name knows (also a former name); with `names`
 * (NULL-terminated: the facts of another quantity) each must be one of
 * them instead. */
static int check_verdict_expect(cli_jr *r, const cJSON *ex, const char *f, const char *const *names) {
    static const char *verdicts = "global, local-certified, inconclusive (formerly local-evidence), "
                                  "not-local, not-kkt, non-homogeneous";
    const cJSON *e1;
    int ne = 0;
    char list[256];
    cJSON_ArrayForEach(e1, ex) {
        if (!cJSON_IsString(e1)) return cli_jbad(r, f, "must be a verdict name or a list of names");
        if (names && !in_list(names, e1->valuestring))
            return cli_jbad(r, f, "'%s' is not one of %s", e1->valuestring,
                            join(list, sizeof list, NULL, names, NULL));
        if (!names && mf_verdict_from_name(e1->valuestring, NULL))
            return cli_jbad(r, f, "'%s' is not a verdict (verdicts: %s)", e1->valuestring, verdicts);
        ne++;
    }
    if (!cJSON_IsString(ex) && !(cJSON_IsArray(ex) && ne > 0))
        return cli_jbad(r, f, "must be a verdict name or a list of names");
    if (names && cJSON_IsString(ex) && !in_list(names, ex->valuestring))
        return cli_jbad(r, f, "'%s' is not one of %s", ex->valuestring, join(list, sizeof list, NULL, names, NULL));
    if (!names && cJSON_IsString(ex) && mf_verdict_from_name(ex->valuestring, NULL))
        return cli_jbad(r, f, "'%s' is not a verdict (verdicts: %s)", ex->valuestring, verdicts);
    return 0;
}

static const char *const global_names[] = {"global", "not-global", NULL};
static const char *const layer0_names[] = {"local-certified", "not-local", "not-global", "inconclusive", NULL};

/* Validate the value of key t (present in ck) for quantity q. */
static int check_value(cli_jr *r, const cJSON *ck, const char *path, const struct check_key *t,
                       const rp_quantity *q, const rp_run *runs, int nruns) {
    char f[200];
    const char *s = NULL;
    double x;
    int n;
    const cJSON *v = cli_jget(ck, t->name);
    cli_jfield(f, sizeof f, path, t->name, 0);
    switch (t->type) {
    case K_NUM: return cli_jnum(r, ck, path, t->name, 0, &x) < 0 ? -1 : 0;
    case K_INT: return cli_jint(r, ck, path, t->name, 0, t->lo, t->hi, &x) < 0 ? -1 : 0;
    case K_BOOL: return cli_jbool(r, ck, path, t->name, NULL) < 0 ? -1 : 0;
    case K_NUMARR: return cli_jnumarr(r, ck, path, t->name, (int)t->hi, NULL, &n) < 0 ? -1 : 0;
    case K_EXPECT:
        if (!strcmp(q->name, "verdict")) return check_verdict_expect(r, v, f, NULL);
        if (!strcmp(q->name, "global_relu2")) {
            if (!cJSON_IsString(v)) return cli_jbad(r, f, "must be \"global\" or \"not-global\"");
            return check_verdict_expect(r, v, f, global_names);
        }
        if (!strcmp(q->name, "layer0_relu2")) return check_verdict_expect(r, v, f, layer0_names);
        return cli_jnum(r, ck, path, t->name, 0, &x) < 0 ? -1 : 0;
    case K_LAYER:
        if (!cJSON_IsString(v)) return cli_jint(r, ck, path, t->name, 0, t->lo, t->hi, &x) < 0 ? -1 : 0;
        return strcmp(v->valuestring, "all") ? cli_jbad(r, f, "must be a layer index or \"all\"") : 0;
    }
    if (cli_jstr(r, ck, path, t->name, 0, (size_t)t->hi, &s) < 0) return -1;
    if (!strcmp(t->name, "column") && isnan(rp_col(&(mf_metrics){0}, s)))
        return cli_jbad(r, f, "unknown column '%s'", s);
    if (!strcmp(t->name, "op") && !strcmp(q->name, "compare") && strcmp(s, "gt") && strcmp(s, "ge") &&
        strcmp(s, "lt") && strcmp(s, "le"))
        return cli_jbad(r, f, "'%s' is not gt, ge, lt or le", s);
    if (!strcmp(t->name, "op") && strcmp(q->name, "compare") && strcmp(s, "near") && strcmp(s, "le") &&
        strcmp(s, "ge"))
        return cli_jbad(r, f, "'%s' is not near, le or ge", s);
    if (!strcmp(t->name, "run") || !strcmp(t->name, "other")) {
        int found = 0;
        for (int i = 0; i < nruns && !found; i++) found = !strcmp(runs[i].base, s);
        if (!found) return cli_jbad(r, f, "no run is named '%s'", s);
    }
    return 0;
}

int rp_check_parse(cli_jr *r, const cJSON *ck, const char *path, const rp_run *runs, int nruns,
                   rp_check *out) {
    char f[200], list[512];
    const char *qn = NULL;
    if (!cJSON_IsObject(ck)) return cli_jbad(r, path, "must be an object");
    if (cli_jstr(r, ck, path, "quantity", 0, 64, &qn) < 0) return -1;
    if (!qn) return cli_jbad(r, path, "\"quantity\" is required");
    const rp_quantity *q = rp_quantity_find(qn);
    if (!q) {
        list[0] = '\0';
        for (const rp_quantity *k = rp_quantities; k->name; k++)
            cli_cat(list, sizeof list, "%s%s", list[0] ? ", " : "", k->name);
        return cli_jbad(r, cli_jfield(f, sizeof f, path, "quantity", 0),
                        "unknown quantity '%s' (known: %s)", qn, list);
    }
    if (check_allowed(r, ck, path, q)) return -1;
    for (const struct check_key *t = check_key_types; t->name; t++)
        if (cli_jget(ck, t->name) && check_value(r, ck, path, t, q, runs, nruns)) return -1;
    for (const char *const *k = q->required; *k; k++)
        if (!cli_jget(ck, *k))
            return cli_jbad(r, cli_jfield(f, sizeof f, path, *k, 0), "is required for %s", q->name);
    out->spec = ck;
    out->quantity = q->name;
    out->def = q;
    out->column = cli_jstr_or(ck, "column", NULL);
    return 0;
}

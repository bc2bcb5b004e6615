/*
 * robust.c -- L2 robustness of a trained classifier: PGD-L2 and Carlini &
 * Wagner's L2 attack, robust accuracy per radius and the median minimal
 * perturbation ([LL20] sec. 5 measures how the robustness of their CNNs
 * grows with training). Contract at mf_robust_eval (marginflow.h).
 *
 * Both attacks need d Phi / d x, which the model interface gives through
 * mf_model_backward_input; every pass runs on batches of settings.batch
 * inputs (gathered into flat [B][d] arrays), so a GPU backend behind the
 * model interface would serve the attacks as it serves training.
 */
#include "model/model_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void mf_robust_settings_default(mf_robust_settings *s) {
    static const double eps[] = {0.1, 0.3, 0.5, 1.0, 2.0};
    memset(s, 0, sizeof *s);
    s->n_eps = 5;
    memcpy(s->eps, eps, sizeof eps);
    s->pgd_steps = 50;
    s->pgd_restarts = 2;
    s->pgd_step = 2.5;
    s->cw_steps = 100;
    s->cw_search = 8;
    s->cw_c0 = 1.0;
    s->cw_lr = 0.01;
    s->lo = 0.0;
    s->hi = 1.0;
    s->batch = 100;
    s->seed = 1;
}

const char *mf_robust_settings_validate(const mf_robust_settings *s) {
    if (s->n_eps < 1 || s->n_eps > MF_ROBUST_MAX_EPS) return "n_eps: must be in [1, 32]";
    for (int i = 0; i < s->n_eps; i++)
        if (!(s->eps[i] > 0) || !isfinite(s->eps[i]) || (i && !(s->eps[i] > s->eps[i - 1])))
            return "eps: radii must be finite, > 0 and ascending";
    if (s->pgd_steps < 0 || s->pgd_steps > 100000) return "pgd_steps: must be in [0, 100000]";
    if (s->pgd_restarts < 0 || s->pgd_restarts > 1000) return "pgd_restarts: must be in [0, 1000]";
    if (!(s->pgd_step > 0) || !isfinite(s->pgd_step)) return "pgd_step: must be a finite number > 0";
    if (s->cw_steps < 0 || s->cw_steps > 100000) return "cw_steps: must be in [0, 100000]";
    if (s->cw_search < 0 || s->cw_search > 100) return "cw_search: must be in [0, 100]";
    if (!(s->cw_c0 > 0) || !isfinite(s->cw_c0)) return "cw_c0: must be a finite number > 0";
    if (!(s->cw_lr > 0) || !isfinite(s->cw_lr)) return "cw_lr: must be a finite number > 0";
    if (!(s->hi > s->lo) || !isfinite(s->lo) || !isfinite(s->hi)) return "lo, hi: need lo < hi, finite";
    if (s->batch < 1) return "batch: must be >= 1";
    return NULL;
}

void mf_robust_result_free(mf_robust_result *r) {
    if (!r) return;
    mf__free(r->norm);
    mf__free(r->norm_cw);
    mf__free(r->pgd_level);
    mf__free(r);
}

/* ------------------------------------------------------------- helpers */

typedef struct attack {
    const mf_model *m;
    const mf_data *D;
    const double *theta;
    const mf_robust_settings *s;
    mf_work *w;
    int B, d, C;
    int *idx;                  /* [B] sample of each batch row */
    double *x0, *xa;           /* [B][d] clean and attacked inputs */
    double *v, *mo, *ve;       /* [B][d] delta (PGD) or w (CW), Adam moments */
    double *g;                 /* [B][d] input gradients */
    double *out, *dout;        /* [B][C] */
    double *q;                 /* [B] margins */
} attack;

/* Margin of batch row k (outputs z [C]) for sample i; *js the strongest
 * other class (multi-class). */
static double margin_row(const mf_data *D, const double *z, int C, int i, int *js) {
    if (D->num_classes == 0) return D->y[i] * z[0];
    int y = D->cls[i], best = -1;
    double mx = -INFINITY;
    for (int j = 0; j < C; j++)
        if (j != y && (best < 0 || z[j] > mx)) mx = z[j], best = j;
    *js = best;
    return z[y] - mx;
}

/* q[k] at a->xa for the nb rows; with grad = 1 also a->dout = d q / d z. */
static void margins(attack *a, int nb, int grad) {
    mf_model_forward(a->m, a->w, a->theta, a->xa, nb, a->out);
    for (int k = 0; k < nb; k++) {
        int js = -1;
        const double *z = a->out + (size_t)k * a->C;
        a->q[k] = margin_row(a->D, z, a->C, a->idx[k], &js);
        if (!grad) continue;
        double *dq = a->dout + (size_t)k * a->C;
        memset(dq, 0, sizeof(double) * a->C);
        if (a->D->num_classes == 0) dq[0] = a->D->y[a->idx[k]];
        else dq[a->D->cls[a->idx[k]]] = 1.0, dq[js] = -1.0;
    }
}

static double norm_row(const double *v, int d) { return mf__norm2(v, (size_t)d); }

/* delta = clip(x0 + delta) - x0 into the box. */
static void clip_row(const attack *a, const double *x0, double *delta) {
    for (int j = 0; j < a->d; j++) {
        double t = x0[j] + delta[j];
        t = t < a->s->lo ? a->s->lo : t > a->s->hi ? a->s->hi : t;
        delta[j] = t - x0[j];
    }
}

/* ----------------------------------------------------------------- PGD */

/*
 * PGD at radius eps from start r on the rows [0, nb) (their samples in
 * a->idx, clean inputs in a->x0); hit[k] set for rows it broke.
 */
static void pgd(attack *a, int nb, double eps, int r, int level, unsigned char *hit) {
    const int d = a->d, T = a->s->pgd_steps;
    const double step = a->s->pgd_step * eps / (T > 0 ? T : 1);
    for (int k = 0; k < nb; k++) {
        double *dl = a->v + (size_t)k * d;
        memset(dl, 0, sizeof(double) * d);
        if (r == 0) continue;
        mf_rng rng; /* uniform in the ball: a Gaussian direction, radius eps U^{1/d} */
        mf_rng_seed(&rng, a->s->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)a->idx[k] * 0xbf58476d1ce4e5b9ULL +
                              (uint64_t)level * 1000003u + (uint64_t)r);
        for (int j = 0; j < d; j++) dl[j] = mf_rng_normal(&rng);
        double nr = norm_row(dl, d), rad = eps * pow(mf_rng_uniform(&rng), 1.0 / d);
        for (int j = 0; j < d && nr > 0; j++) dl[j] *= rad / nr;
        clip_row(a, a->x0 + (size_t)k * d, dl);
    }
    for (int t = 0;; t++) {
        for (int k = 0; k < nb; k++)
            for (int j = 0; j < d; j++)
                a->xa[(size_t)k * d + j] = a->x0[(size_t)k * d + j] + a->v[(size_t)k * d + j];
        mf_model_forward(a->m, a->w, a->theta, a->xa, nb, a->out);
        int live = 0;
        for (int k = 0; k < nb; k++) {
            int js;
            double *z = a->out + (size_t)k * a->C, *gz = a->dout + (size_t)k * a->C;
            if (!hit[k] && !(margin_row(a->D, z, a->C, a->idx[k], &js) > 0)) hit[k] = 1;
            double ll;
            memset(gz, 0, sizeof(double) * a->C);
            /* the cross-entropy of this input alone: (d ell / d z) / ell, exact direction */
            if (!hit[k] && mf_loss_eval(MF_LOSS_CE, a->D, a->idx + k, 1, z, a->C, &ll, gz, NULL) == MF_OK)
                live++;
            else
                memset(gz, 0, sizeof(double) * a->C);
        }
        if (t == T || !live) return;
        mf_model_backward_input(a->m, a->w, a->theta, a->xa, nb, a->dout, a->g);
        for (int k = 0; k < nb; k++) {
            if (hit[k]) continue;
            double *dl = a->v + (size_t)k * d, *g = a->g + (size_t)k * d, gn = norm_row(g, d);
            if (!(gn > 0) || !isfinite(gn)) continue;
            for (int j = 0; j < d; j++) dl[j] += step * g[j] / gn;
            double dn = norm_row(dl, d);
            if (dn > eps)
                for (int j = 0; j < d; j++) dl[j] *= eps / dn;
            clip_row(a, a->x0 + (size_t)k * d, dl);
        }
    }
}

/* ------------------------------------------------------------------ CW */

/* Carlini-Wagner L2 on rows [0, nb): best[k] = the smallest ||x' - x0||
 * with q(x') <= 0 found (INFINITY when none). */
static void cw(attack *a, int nb, double *best) {
    const int d = a->d;
    const double lo = a->s->lo, span = a->s->hi - a->s->lo, b1 = 0.9, b2 = 0.999;
    double g0[1024], c[1024], clo[1024], chi[1024]; /* nb <= 1024 (batch cap in eval) */
    /* g0 = ||grad_x q|| at the clean inputs */
    memcpy(a->xa, a->x0, sizeof(double) * (size_t)nb * d);
    margins(a, nb, 1);
    mf_model_backward_input(a->m, a->w, a->theta, a->xa, nb, a->dout, a->g);
    for (int k = 0; k < nb; k++) {
        double gn = norm_row(a->g + (size_t)k * d, d);
        g0[k] = gn > 0 && isfinite(gn) ? gn : 1.0;
        c[k] = a->s->cw_c0, clo[k] = 0, chi[k] = INFINITY, best[k] = INFINITY;
    }
    for (int round = 0; round < a->s->cw_search; round++) {
        unsigned char succ[1024] = {0};
        for (size_t t = 0; t < (size_t)nb * d; t++) { /* w from the clean input */
            double u = 2.0 * (a->x0[t] - lo) / span - 1.0;
            u = u > 1 - 1e-6 ? 1 - 1e-6 : u < -1 + 1e-6 ? -1 + 1e-6 : u;
            a->v[t] = atanh(u);
            a->mo[t] = a->ve[t] = 0;
        }
        for (int t = 0;; t++) {
            for (size_t i = 0; i < (size_t)nb * d; i++) a->xa[i] = lo + span * (tanh(a->v[i]) + 1) / 2;
            margins(a, nb, 1);
            for (int k = 0; k < nb; k++) {
                double dist = 0;
                for (int j = 0; j < d; j++) {
                    double e = a->xa[(size_t)k * d + j] - a->x0[(size_t)k * d + j];
                    dist += e * e;
                }
                dist = sqrt(dist);
                if (!(a->q[k] > 0)) {
                    succ[k] = 1;
                    if (dist < best[k]) best[k] = dist;
                    memset(a->dout + (size_t)k * a->C, 0, sizeof(double) * a->C); /* hinge off */
                } else {
                    for (int j = 0; j < a->C; j++) a->dout[(size_t)k * a->C + j] *= c[k] / g0[k];
                }
            }
            if (t == a->s->cw_steps) break;
            mf_model_backward_input(a->m, a->w, a->theta, a->xa, nb, a->dout, a->g);
            const double bc1 = 1 - pow(b1, t + 1), bc2 = 1 - pow(b2, t + 1);
            for (size_t i = 0; i < (size_t)nb * d; i++) {
                double th = tanh(a->v[i]);
                double gx = 2.0 * (a->xa[i] - a->x0[i]) + a->g[i]; /* d/dx' of the objective */
                double gw = gx * span / 2 * (1 - th * th);
                a->mo[i] = b1 * a->mo[i] + (1 - b1) * gw;
                a->ve[i] = b2 * a->ve[i] + (1 - b2) * gw * gw;
                a->v[i] -= a->s->cw_lr * (a->mo[i] / bc1) / (sqrt(a->ve[i] / bc2) + 1e-8);
            }
        }
        for (int k = 0; k < nb; k++) { /* the binary search on c */
            if (succ[k]) chi[k] = fmin(chi[k], c[k]);
            else clo[k] = fmax(clo[k], c[k]);
            c[k] = isfinite(chi[k]) ? (clo[k] + chi[k]) / 2 : c[k] * 10;
        }
    }
}

/* ------------------------------------------------------------- driver */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b ? 1 : 0;
}

/* Median of v[n] (sorted copy in tmp); INFINITY entries sort last. */
static double median(const double *v, int n, double *tmp) {
    memcpy(tmp, v, sizeof(double) * (size_t)n);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

static void attack_free(attack *a) {
    mf_work_free(a->w);
    mf__free(a->idx);
    mf__free(a->x0);
    mf__free(a->xa);
    mf__free(a->v);
    mf__free(a->mo);
    mf__free(a->ve);
    mf__free(a->g);
    mf__free(a->out);
    mf__free(a->dout);
    mf__free(a->q);
}

/* Gather the samples list[0..nb) into the batch rows. */
static void gather(attack *a, const int *list, int nb) {
    for (int k = 0; k < nb; k++) {
        a->idx[k] = list[k];
        memcpy(a->x0 + (size_t)k * a->d, a->D->x + (size_t)list[k] * a->d, sizeof(double) * a->d);
    }
}

/* Contract in marginflow.h. */
int mf_robust_eval(const mf_model *m, const mf_data *data, const double *theta,
                   const mf_robust_settings *s, mf_robust_result **out, mf_err *e) {
    if (out) *out = NULL;
    if (!m || !data || !theta || !s || !out)
        return mf__err(e, MF_ERR_INVALID, "mf_robust_eval: arguments must not be NULL");
    const char *why = mf_robust_settings_validate(s);
    if (why) return mf__err(e, MF_ERR_INVALID, "invalid robustness settings: %s", why);
    if (data->n < 1) return mf__err(e, MF_ERR_INVALID, "the data set is empty");
    const mf__model_ops *ops = mf__model_ops_of(m);
    if (!ops || !ops->backward_input)
        return mf__err(e, MF_ERR_UNSUPPORTED,
                       "the L2 attacks need input gradients, which model %s does not have (cnn has)",
                       m->spec);
    if (data->d != m->d || (data->num_classes ? data->num_classes : 1) != m->n_out)
        return mf__err(e, MF_ERR_DIM, "data (d = %d, %d classes) does not fit the model %s", data->d,
                       data->num_classes ? data->num_classes : 2, m->spec);
    for (size_t t = 0; t < (size_t)data->n * data->d; t++)
        if (!(data->x[t] >= s->lo && data->x[t] <= s->hi))
            return mf__err(e, MF_ERR_INVALID,
                           "input %zu, feature %zu is %g, outside the box [%g, %g] of the attacks",
                           t / data->d, t % data->d, data->x[t], s->lo, s->hi);
    attack a;
    memset(&a, 0, sizeof a);
    a.m = m, a.D = data, a.theta = theta, a.s = s;
    a.B = s->batch < data->n ? s->batch : data->n;
    if (a.B > 1024) a.B = 1024;
    a.d = data->d, a.C = m->n_out;
    int rc = mf_work_new(m, a.B, &a.w, e);
    if (rc) return rc;
    const size_t bd = (size_t)a.B * a.d, bc = (size_t)a.B * a.C;
    a.idx = mf__malloc(sizeof(int) * a.B);
    a.x0 = mf__malloc(sizeof(double) * bd), a.xa = mf__malloc(sizeof(double) * bd);
    a.v = mf__malloc(sizeof(double) * bd), a.mo = mf__malloc(sizeof(double) * bd);
    a.ve = mf__malloc(sizeof(double) * bd), a.g = mf__malloc(sizeof(double) * bd);
    a.out = mf__malloc(sizeof(double) * bc), a.dout = mf__malloc(sizeof(double) * bc);
    a.q = mf__malloc(sizeof(double) * a.B);
    mf_robust_result *r = mf__calloc(1, sizeof *r);
    int *list = mf__malloc(sizeof(int) * data->n);
    double *tmp = mf__malloc(sizeof(double) * data->n);
    if (r) {
        r->norm = mf__malloc(sizeof(double) * data->n);
        r->norm_cw = mf__malloc(sizeof(double) * data->n);
        r->pgd_level = mf__malloc(sizeof(int) * data->n);
    }
    if (!a.idx || !a.x0 || !a.xa || !a.v || !a.mo || !a.ve || !a.g || !a.out || !a.dout || !a.q || !r ||
        !r->norm || !r->norm_cw || !r->pgd_level || !list || !tmp) {
        rc = mf__err(e, MF_ERR_NOMEM, "out of memory for the attacks (batch %d, d = %d)", a.B, a.d);
        goto done;
    }
    r->n = data->n, r->n_eps = s->n_eps;
    memcpy(r->eps, s->eps, sizeof(double) * s->n_eps);
    /* clean margins */
    int nc = 0;
    for (int i = 0; i < data->n; i += a.B) {
        int nb = data->n - i < a.B ? data->n - i : a.B;
        for (int k = 0; k < nb; k++) list[k] = i + k;
        gather(&a, list, nb);
        memcpy(a.xa, a.x0, sizeof(double) * (size_t)nb * a.d);
        margins(&a, nb, 0);
        for (int k = 0; k < nb; k++) {
            if (!isfinite(a.q[k])) {
                rc = mf__err(e, MF_ERR_NUMERIC, "non-finite network output at input %d", i + k);
                goto done;
            }
            int ok = a.q[k] > 0;
            r->pgd_level[i + k] = ok ? s->n_eps : -1;
            r->norm[i + k] = r->norm_cw[i + k] = ok ? INFINITY : 0.0;
            nc += ok;
        }
    }
    r->n_correct = nc;
    r->clean_accuracy = (double)nc / data->n;
    /* PGD: radius by radius, on the inputs not broken yet */
    for (int l = 0; l < s->n_eps; l++)
        for (int st = 0; st < s->pgd_restarts; st++) {
            int cnt = 0;
            for (int i = 0; i < data->n; i++)
                if (r->pgd_level[i] == s->n_eps) list[cnt++] = i;
            for (int b = 0; b < cnt; b += a.B) {
                int nb = cnt - b < a.B ? cnt - b : a.B;
                unsigned char hit[1024] = {0};
                gather(&a, list + b, nb);
                pgd(&a, nb, s->eps[l], st, l, hit);
                for (int k = 0; k < nb; k++)
                    if (hit[k]) r->pgd_level[list[b + k]] = l;
            }
        }
    /* Carlini-Wagner on every correct input */
    {
        int cnt = 0;
        for (int i = 0; i < data->n; i++)
            if (r->pgd_level[i] >= 0) list[cnt++] = i;
        for (int b = 0; b < cnt && s->cw_search > 0; b += a.B) {
            int nb = cnt - b < a.B ? cnt - b : a.B;
            double best[1024];
            gather(&a, list + b, nb);
            cw(&a, nb, best);
            for (int k = 0; k < nb; k++) r->norm_cw[list[b + k]] = best[k];
        }
    }
    for (int l = 0; l < s->n_eps; l++) {
        int p = 0, c = 0, both = 0;
        for (int i = 0; i < data->n; i++) {
            if (r->pgd_level[i] < 0) continue;
            int sp = r->pgd_level[i] > l, sc = !(r->norm_cw[i] <= s->eps[l]);
            p += sp, c += sc, both += sp && sc;
        }
        r->acc_pgd[l] = (double)p / data->n;
        r->acc_cw[l] = (double)c / data->n;
        r->acc_min[l] = (double)both / data->n;
    }
    for (int i = 0; i < data->n; i++) {
        if (r->pgd_level[i] < 0) continue;
        double pg = r->pgd_level[i] < s->n_eps ? s->eps[r->pgd_level[i]] : INFINITY;
        r->norm[i] = fmin(pg, r->norm_cw[i]);
    }
    r->median_norm = median(r->norm, data->n, tmp);
    r->median_norm_cw = median(r->norm_cw, data->n, tmp);
    rc = MF_OK;
done:
    attack_free(&a);
    mf__free(list);
    mf__free(tmp);
    if (rc) mf_robust_result_free(r);
    else *out = r;
    return rc;
}

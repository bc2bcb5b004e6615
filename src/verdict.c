/*
 * verdict.c -- the verdict of an analysis and the sentence that says what is
 * certified and what is only evidence, as a pure function of the evidence
 * (mf__evidence, filled by analyze.c). The rules, in order:
 *   not homogeneous                    -> non-homogeneous (docs/theory.md s.3: (P) does not apply)
 *   q_min <= 0 or ||theta|| not finite -> not-kkt (no feasible rescaling)
 *   per-layer problem P_l              -> global / not-local (a convex QP, exact)
 *   eps > kkt_tol                      -> not-kkt
 *   |gamma / gamma* - 1| <= global_tol -> global (closed form)
 *   a second-order, directional or search certificate -> not-local
 *   H positive definite on the critical subspace at a smooth point -> local-certified
 *   otherwise                          -> local-evidence (searched, not proved)
 * The search gains that decide "not-local" were judged in analyze.c against
 * what the KKT defect explains; this file only reads the flags.
 */
#include "analysis_internal.h"

#include <math.h>
#include <stdio.h>

/* The gains quoted in the text are at eps = 1e-3 (MF__GAIN_QUOTED). */
#define QUOTED "1e-3"

/* Rules that need no KKT evidence; 1 when one decided. */
static int verdict_margins(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap) {
    if (!ev->homogeneous) {
        *v = MF_VERDICT_NON_HOMOGENEOUS;
        snprintf(reason, cap,
                 "%s is not homogeneous (Phi(c theta) != c^L Phi(theta)): problem (P) and its KKT "
                 "theory [LL20] do not apply; reported: gamma = q_min / ||theta||^%d = %.10g only",
                 ev->spec, ev->degree, ev->gamma);
        return 1;
    }
    if (!(ev->gamma > 0) || !(ev->norm > 0) || !isfinite(ev->norm)) {
        *v = MF_VERDICT_NOT_KKT;
        snprintf(reason, cap,
                 "not separating: q_min = %.6g <= 0 (||theta|| = %.6g), so theta has no feasible "
                 "rescaling for (P)",
                 ev->q_min, ev->norm);
        return 1;
    }
    return 0;
}

/* The per-layer problem P_l (a convex QP solved exactly). */
static void verdict_layer(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap) {
    double rel = ev->layer_value / ev->layer_opt - 1.0;
    if (fabs(rel) <= ev->global_tol) {
        *v = MF_VERDICT_GLOBAL;
        snprintf(reason, cap,
                 "per-layer problem P_%d (%s, other layers frozen) is a convex QP solved exactly "
                 "(hard-margin SVM in the layer features): 1/2||W~||^2 = %.10g vs optimum %.10g "
                 "(relative %.2g <= %.2g): layer %d is optimal for P_%d.",
                 ev->layer, ev->layer_name, ev->layer_value, ev->layer_opt, rel, ev->global_tol,
                 ev->layer, ev->layer);
    } else {
        *v = MF_VERDICT_NOT_LOCAL;
        snprintf(reason, cap,
                 "per-layer problem P_%d (%s, other layers frozen) is a convex QP solved exactly: "
                 "1/2||W~||^2 = %.10g exceeds the optimum %.10g by %.3g (relative); in a convex "
                 "problem the better point certifies that layer %d is not even locally optimal.",
                 ev->layer, ev->layer_name, ev->layer_value, ev->layer_opt, rel, ev->layer);
    }
    mf__say(reason, cap, " (Whole network: eps = %.3g, %s.)", ev->eps,
            ev->eps <= ev->kkt_tol ? "KKT" : "not KKT");
    mf__say(reason, cap, "%s", ev->note);
}

/* Rules on the KKT residual and the global reference; 1 when one decided. */
static int verdict_kkt(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap) {
    if (!(ev->eps <= ev->kkt_tol)) {
        *v = MF_VERDICT_NOT_KKT;
        snprintf(reason, cap,
                 "not a KKT direction yet: eps = %.3g > kkt_tol = %.3g (q_min = %.6g, ||theta|| = %.6g, "
                 "gamma = %.6g",
                 ev->eps, ev->kkt_tol, ev->q_min, ev->norm, ev->gamma);
        if (ev->has_global) mf__say(reason, cap, ", %.6g of gamma*", ev->ratio);
        mf__say(reason, cap, ").%s", ev->note);
        return 1;
    }
    if (ev->has_global && fabs(ev->ratio - 1.0) <= ev->global_tol) {
        *v = MF_VERDICT_GLOBAL;
        snprintf(reason, cap,
                 "KKT (eps = %.3g) and gamma = %.10g equals the closed-form optimum gamma* = %.10g "
                 "(%s) to %.2g (tolerance %.2g): certified global.",
                 ev->eps, ev->gamma, ev->gamma_star, ev->global_source, fabs(ev->ratio - 1.0),
                 ev->global_tol);
        mf__say(reason, cap, "%s", ev->note);
        return 1;
    }
    return 0;
}

/* After the local tests: certificates first, then the sufficient condition,
 * else evidence. */
static void verdict_local(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap) {
    const mf__local_evidence *L = &ev->loc;
    reason[0] = '\0';
    if (L->so_not_local) {
        *v = MF_VERDICT_NOT_LOCAL;
        mf__say(reason, cap, "KKT (eps = %.3g) but %s; margin gain along it %.3g at eps = " QUOTED ".",
                ev->eps, L->so_note, ev->so_gain);
    } else if (L->dir_not_local) {
        *v = MF_VERDICT_NOT_LOCAL;
        mf__say(reason, cap,
                "KKT (eps = %.3g) at a non-smooth point (%d kinks); directional certificate: d keeps "
                "q_n'(theta; d) >= 0 on the active set with <theta~, d> = %.6g < 0 (margin gain %.3g "
                "at eps = " QUOTED ").",
                ev->eps, ev->n_kinks, ev->dir_best_inner, ev->dir_gain);
    } else if (L->search_not_local) {
        *v = MF_VERDICT_NOT_LOCAL;
        mf__say(reason, cap,
                "KKT (eps = %.3g) but the local re-solve found a point with normalized margin %.3g "
                "higher (relative, beyond the 2 L eps r the KKT residual allows; certificate: the "
                "point is in the result).",
                ev->eps, ev->local_best_gain);
    } else if (L->so_certified && ev->n_kinks == 0) {
        *v = MF_VERDICT_LOCAL_CERTIFIED;
        mf__say(reason, cap, "KKT (eps = %.3g) at a smooth point and %s: strict local optimum of (P).",
                ev->eps, L->so_note);
        if (ev->has_local)
            mf__say(reason, cap, " (SLSQP re-solves at radii 1e-1..1e-4, %d starts each: best gain %.2g.)",
                    ev->local_trials, ev->local_best_gain);
    } else {
        *v = MF_VERDICT_LOCAL_EVIDENCE;
        mf__say(reason, cap, "KKT (eps = %.3g); no improvement found", ev->eps);
        if (ev->has_local)
            mf__say(reason, cap, " by SLSQP re-solves at radii 1e-1..1e-4 with %d starts each (best gain %.2g%s)",
                    ev->local_trials, ev->local_best_gain,
                    L->search_explained ? ", explained by the run's distance from its limit" : "");
        if (ev->has_directional)
            mf__say(reason, cap, ", directional test over %d patterns found no descent direction",
                    ev->dir_n_patterns);
        if (L->so_note[0]) mf__say(reason, cap, "; %s", L->so_note);
        mf__say(reason, cap, ": evidence, not proof.");
    }
    if (ev->has_global) mf__say(reason, cap, " gamma / gamma* = %.6g (%s).", ev->ratio, ev->global_source);
    mf__say(reason, cap, "%s", ev->note);
}

/* Contract in analysis_internal.h; the rules in the file comment. */
int mf__verdict(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap) {
    if (verdict_margins(ev, v, reason, cap)) return 1;
    if (!ev->kkt_done) return 0;
    if (ev->layer >= 0) {
        verdict_layer(ev, v, reason, cap);
        return 1;
    }
    if (verdict_kkt(ev, v, reason, cap)) return 1;
    if (!ev->local_done) return 0;
    verdict_local(ev, v, reason, cap);
    return 1;
}

/*
 * verdict.c -- the verdict of an analysis and the sentence that says what is
 * certified and what is only evidence, as a pure function of the evidence
 * (mf__evidence, filled by analyze.c). The rule a reviewer can check (README
 * "Verdicts"), in order:
 *   not homogeneous                      -> non-homogeneous ((P) does not apply)
 *   q_min <= 0 or ||theta|| not finite   -> not-kkt (no feasible rescaling)
 *   per-layer problem P_l (a convex QP solved exactly): optimum to
 *     global_tol -> global; a witness (the QP's solution) -> not-local;
 *     otherwise inconclusive
 *   eps > kkt_tol: over the exact Clarke sets -> not-kkt; if some kinks
 *     were left at sigma'(0) = alpha, eps is only an upper bound -> inconclusive
 *   an EXACT reference gamma* with |gamma / gamma* - 1| <= global_tol -> global;
 *     so is gamma >= gamma_upper (1 - global_tol) for a certified upper
 *     bound gamma_upper of gamma* (a bracket: gamma <= gamma* <= upper)
 *   H positive definite on the critical cone by more than its estimated
 *     numerical error, at a smooth point whose nearest kink (kink_distance)
 *     is farther than the exact KKT point can be, 2 eps / mu relative (mu
 *     the smallest eigenvalue, 1 for a trivial subspace; a first-order
 *     perturbation bound), -> local-certified (a search witness at a
 *     finite distance is then another basin, reported beside); with a kink
 *     that near, the limit may be a non-smooth point the test says nothing
 *     about (a dead unit shrinking relative to the rest): inconclusive
 *   a WITNESS (mf_witness: a better feasible point within the stated radius,
 *     beyond the noise bound, re-evaluated from scratch) -> not-local
 *   otherwise -> inconclusive, with the evidence: negative curvature or a
 *     descent direction that produced no witness, what the searches found,
 *     a semidefinite Hessian, a bracket of gamma*.
 * The local verdicts say beside them whether theta is certified NOT global:
 * gamma* / gamma > 1 + global_tol for an exact gamma*, or gamma below the
 * certified lower bound gamma_lower (1 - global_tol) of a bracket, whose
 * network (a reference solver's, mf_analysis.global_theta) is the witness:
 * "local-certified ... not global" is the "local, not global" statement.
 * A negative second-order eigenvalue or a directional descent direction is
 * never a certificate by itself: at a trained point (eps > 0) both can come
 * from the distance to the limit, so only the witness they lead to counts.
 */
#include "analysis_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* The witness, in words. */
static void say_witness(const mf_witness *w, char *reason, size_t cap) {
    mf__say(reason, cap,
            "witness (%s): a point at relative distance %.3g of theta~ (stated radius %.3g) with "
            "q_min = %.17g >= 1 by a fresh evaluation and normalized margin %.10g, above the "
            "reference %.10g by %.3g (relative), beyond the noise bound %.2g (rounding bound %.2g); "
            "||theta'|| / ||theta~|| = %.12g. The point is in analysis.json (witness.theta)",
            w->kind, w->distance, w->radius, w->q_min, w->gamma, w->reference, w->gain_ref,
            w->noise, w->rounding, w->norm_ratio);
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
    } else if (ev->witness && ev->witness->found) {
        *v = MF_VERDICT_NOT_LOCAL;
        snprintf(reason, cap,
                 "per-layer problem P_%d (%s, other layers frozen) is a convex QP solved exactly: "
                 "1/2||W~||^2 = %.10g exceeds the optimum %.10g by %.3g (relative); in a convex "
                 "problem every point of the segment to the optimum is better, so layer %d is not "
                 "even locally optimal. ",
                 ev->layer, ev->layer_name, ev->layer_value, ev->layer_opt, rel, ev->layer);
        say_witness(ev->witness, reason, cap);
        mf__say(reason, cap, ".");
    } else {
        *v = MF_VERDICT_INCONCLUSIVE;
        snprintf(reason, cap,
                 "per-layer problem P_%d (%s, other layers frozen): 1/2||W~||^2 = %.10g vs optimum "
                 "%.10g (relative %.3g), beyond global_tol %.2g, but the QP's point gave no witness "
                 "beyond the noise bound: inconclusive.",
                 ev->layer, ev->layer_name, ev->layer_value, ev->layer_opt, rel, ev->global_tol);
    }
    mf__say(reason, cap, " (Whole network: eps = %.3g, %s.)", ev->eps,
            ev->eps <= ev->kkt_tol ? "KKT" : "not KKT");
    mf__say(reason, cap, "%s", ev->note);
}

/* Rules on the KKT residual and the global reference; 1 when one decided. */
static int verdict_kkt(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap) {
    if (!(ev->eps <= ev->kkt_tol)) {
        *v = ev->kkt_exact ? MF_VERDICT_NOT_KKT : MF_VERDICT_INCONCLUSIVE;
        if (ev->kkt_exact)
            snprintf(reason, cap, "not a KKT direction yet: eps = %.3g > kkt_tol = %.3g", ev->eps,
                     ev->kkt_tol);
        else
            snprintf(reason, cap,
                     "eps = %.3g > kkt_tol = %.3g, but some kinks were left at sigma'(0) = alpha "
                     "(too many for the exact Clarke sets), so eps is only an upper bound of the "
                     "exact residual: inconclusive",
                     ev->eps, ev->kkt_tol);
        mf__say(reason, cap, " (q_min = %.6g, ||theta|| = %.6g, gamma = %.6g", ev->q_min, ev->norm,
                ev->gamma);
        if (ev->has_global) mf__say(reason, cap, ", %.6g of gamma*", ev->ratio);
        mf__say(reason, cap, ").%s", ev->note);
        return 1;
    }
    if (ev->has_global && fabs(ev->ratio - 1.0) <= ev->global_tol) {
        *v = MF_VERDICT_GLOBAL;
        snprintf(reason, cap,
                 "KKT (eps = %.3g) and gamma = %.10g equals the exact optimum gamma* = %.10g (%s) "
                 "to %.2g (tolerance %.2g): certified global.",
                 ev->eps, ev->gamma, ev->gamma_star, ev->global_source, fabs(ev->ratio - 1.0),
                 ev->global_tol);
        mf__say(reason, cap, "%s", ev->note);
        return 1;
    }
    if (!ev->has_global && isfinite(ev->gamma_upper) && isfinite(ev->gamma_lower) &&
        ev->gamma >= ev->gamma_upper * (1.0 - ev->global_tol)) {
        *v = MF_VERDICT_GLOBAL;
        snprintf(reason, cap,
                 "KKT (eps = %.3g) and gamma = %.10g reaches the certified upper bound %.10g of "
                 "gamma* (bracket [%.10g, %.10g]%s%s) to within %.2g: gamma <= gamma* <= upper, so "
                 "|gamma / gamma* - 1| <= %.2g: certified global.",
                 ev->eps, ev->gamma, ev->gamma_upper, ev->gamma_lower, ev->gamma_upper,
                 ev->global_source && ev->global_source[0] ? ", " : "",
                 ev->global_source ? ev->global_source : "", ev->global_tol, ev->global_tol);
        mf__say(reason, cap, "%s", ev->note);
        return 1;
    }
    return 0;
}

/* Beside a local verdict: what the global reference says, and "not
 * global" where it is certified (file comment). */
static void say_global(const mf__evidence *ev, char *reason, size_t cap) {
    const double lo = ev->gamma_lower, up = ev->gamma_upper, tol = ev->global_tol;
    if (ev->has_global && ev->ratio < 1.0 - tol) {
        mf__say(reason, cap, " Not global: gamma / gamma* = %.6g (%s", ev->ratio, ev->global_source);
        if (ev->global_spec) /* a reference solver's network attains gamma* */
            mf__say(reason, cap, "; attained by the network %s in analysis.json global.theta",
                    ev->global_spec);
        mf__say(reason, cap, ").");
    } else if (ev->has_global) {
        mf__say(reason, cap, " gamma / gamma* = %.6g (%s).", ev->ratio, ev->global_source);
    } else if (isfinite(lo) && isfinite(up) && ev->gamma < lo * (1.0 - tol)) {
        mf__say(reason, cap,
                " Not global: gamma* >= %.10g > gamma = %.10g (the certified lower bound of the "
                "bracket [%.10g, %.10g]%s%s",
                lo, ev->gamma, lo, up, ev->global_source && ev->global_source[0] ? ", " : "",
                ev->global_source ? ev->global_source : "");
        if (ev->global_spec)
            mf__say(reason, cap, "; attained by the network %s in analysis.json global.theta",
                    ev->global_spec);
        mf__say(reason, cap, ").");
    } else if (isfinite(lo) && isfinite(up)) {
        mf__say(reason, cap, " gamma* lies in [%.10g, %.10g] (not exact).", lo, up);
    }
}

/* What was found without a certificate, for an inconclusive verdict. */
static void say_evidence(const mf__evidence *ev, char *reason, size_t cap) {
    const mf__local_evidence *L = &ev->loc;
    if (ev->second_order_done || L->so_note[0]) mf__say(reason, cap, "; second order: %s", L->so_note);
    else if (ev->min_eig_absent && ev->min_eig_absent[0])
        mf__say(reason, cap, "; second order not available (%s)", ev->min_eig_absent);
    if (ev->has_directional)
        mf__say(reason, cap, "; directional test over %d sign patterns%s: %s", ev->dir_n_patterns,
                ev->dir_searched ? "" : " (not exhaustive)",
                L->dir_found ? "a descent direction (evidence only)" : "no descent direction");
    if (ev->has_local)
        mf__say(reason, cap, "; local re-solves (%s, radii 1e-1..1e-4, %d starts each%s)", ev->local_method,
                ev->local_trials, L->polished ? ", against the polished KKT point" : "");
    if (L->cand_kind)
        mf__say(reason, cap,
                "; best candidate (%s): relative gain %.3g vs the noise bound %.2g: no witness",
                L->cand_kind, L->cand_gain, L->cand_noise);
    else if (L->so_negative || L->dir_found || ev->has_local)
        mf__say(reason, cap, "; no candidate point was feasible");
}

/* After the local tests: the sufficient condition, then a witness, else
 * the evidence. A strict local minimum certified by the second-order
 * sufficient condition can still have better points at a finite distance
 * (another basin): a search witness then does not make it not-local, it is
 * reported beside (a curve or line witness cannot occur with H positive
 * definite on the cone, and kinked points are never local-certified). */
static void verdict_local(const mf__evidence *ev, mf_verdict *v, char *reason, size_t cap) {
    const mf__local_evidence *L = &ev->loc;
    reason[0] = '\0';
    const double mu = isfinite(ev->min_eig) && ev->min_eig > 0 ? fmin(ev->min_eig, 1.0) : 1.0;
    const double reach = 2.0 * ev->eps / mu; /* how far the exact KKT point may be (relative) */
    const int kink_near = ev->kink_distance <= reach;
    if (L->so_certified && ev->n_kinks == 0 && !kink_near) {
        *v = MF_VERDICT_LOCAL_CERTIFIED;
        mf__say(reason, cap,
                "KKT (eps = %.3g) at a smooth point and %s: second-order sufficient condition, "
                "strict local optimum of (P).",
                ev->eps, L->so_note);
        if (ev->witness && ev->witness->found)
            mf__say(reason, cap,
                    " A better feasible point lies at relative distance %.3g (gain %.3g): another "
                    "basin, theta~ is not optimal within that radius.",
                    ev->witness->distance, ev->witness->gain_ref);
        else if (ev->has_local && L->cand_kind)
            mf__say(reason, cap, " (Local re-solves, %s, %d starts per radius: best relative gain %.2g.)",
                    ev->local_method, ev->local_trials, L->cand_gain);
    } else if (ev->witness && ev->witness->found) {
        *v = MF_VERDICT_NOT_LOCAL;
        mf__say(reason, cap, "KKT (eps = %.3g) and a ", ev->eps);
        say_witness(ev->witness, reason, cap);
        if (L->so_negative) mf__say(reason, cap, "; it lies on the curve of %s", L->so_note);
        mf__say(reason, cap, ": not a local optimum within that radius.");
    } else {
        *v = MF_VERDICT_INCONCLUSIVE;
        mf__say(reason, cap, "KKT (eps = %.3g)%s", ev->eps,
                ev->n_kinks ? "" : " at a smooth point");
        if (ev->n_kinks) mf__say(reason, cap, " at a non-smooth point (%d kinks)", ev->n_kinks);
        say_evidence(ev, reason, cap);
        if (L->so_certified && ev->n_kinks == 0 && kink_near)
            mf__say(reason, cap,
                    "; but a pre-activation of an active sample is %.3g (relative) from its kink, "
                    "within the %.3g that eps allows between theta~ and the exact KKT point (2 eps "
                    "/ mu): the limit may be non-smooth, so the sufficient condition is not a "
                    "certificate",
                    ev->kink_distance, reach);
        mf__say(reason, cap, ". Nothing certified either way: inconclusive.");
    }
    say_global(ev, reason, cap);
    mf__say(reason, cap, "%s", ev->note);
}

/* Contract in analysis_internal.h. */
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

/*
 * internal.h -- helpers shared by the library's source files. Not public:
 * names here are mf__ (two underscores) so they never clash with the API.
 */
#ifndef MF_INTERNAL_H
#define MF_INTERNAL_H

#include "marginflow.h"
#include <stdarg.h>
#include <stddef.h>

/* Allocation through the hook set by mf_set_allocator. mf__calloc zeroes and
 * checks n * size for overflow. mf__free(NULL) is a no-op. */
void *mf__malloc(size_t size);
void *mf__calloc(size_t n, size_t size);
void *mf__realloc(void *p, size_t size);
void mf__free(void *p);
char *mf__strdup(const char *s);

/* Fill e (may be NULL) with code and a printf-style message; returns code. */
int mf__err(mf_err *e, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* log(e^a + e^b), exact for a or b = -INFINITY. */
double mf__lse2(double a, double b);

/* True margin of sample i from outputs out[n][n_out] (loss.c). */
double mf__margin(const mf_data *data, const double *out, int n_out, int i);

/* ||x||_2, finite whenever the result is (scaled second pass when needed). */
double mf__norm2(const double *x, size_t n);

/* CRC-32 (zlib's) of a buffer. */
uint32_t mf__crc32(const void *buf, size_t len);

/* strtod in the C locale, whatever the process locale. *end as strtod. */
double mf__strtod_c(const char *s, char **end);

/* Tests only: relu2 kinds use backward table groups of `chunks` chunks
 * (0: the dense products; set it before the forward pass); returns the
 * previous setting (models.c). */
int mf__work_table_chunks(mf_work *w, int chunks);

/* ------------------------------------------------ training internals */

/* One evaluation of the training loss on the full data at some theta. */
typedef struct mf__evalset {
    double *out;   /* [n][n_out] outputs */
    double *gout;  /* [n][n_out] dLoss/dout / Loss */
    double *grad;  /* [P] G = grad Loss / Loss */
    double log_loss;
    long long n_grad, n_fwd; /* mf__evaluate calls into this set with / without G (the sum
                                over a swapped pair is the run's count) */
} mf__evalset;

/* Evaluate log Loss, dLoss/dout / Loss and (with_grad) G at theta on the
 * full data into es, with the workspace w (max_batch >= data->n). Returns 1
 * if everything is finite, 0 otherwise (train.c). */
int mf__evaluate(const mf_model *m, mf_work *w, const mf_data *data, mf_loss_kind loss,
                 const double *theta, mf__evalset *es, int with_grad);
/* Exchange the buffers and values of two evaluations. */
void mf__evalset_swap(mf__evalset *a, mf__evalset *b);
/* 1 if every v[i] is finite. */
int mf__all_finite(const double *v, size_t n);

/* The gradient-flow integrator (flow.c, contract in its file comment). */
typedef struct mf__flow mf__flow;
int mf__flow_new(const mf_model *m, const mf_data *data, mf_loss_kind loss, mf__flow **out,
                 mf_err *e);
void mf__flow_free(mf__flow *f);
/* Work done so far outside mf__evaluate: forward passes on the full data
 * (at embedded solutions) and batch-1 backward passes (per-term gradients). */
void mf__flow_counts(const mf__flow *f, long long *forward, long long *terms);
/* One accepted step from st->theta, whose evaluation (with G) is in cur:
 * on MF_OUT_RUNNING theta, cur, st->log_loss, st->time_log, st->step,
 * st->lr (the next step size) and st->flow_mode are updated and cand is
 * scratch; rejected attempts count in st->rejected. MF_OUT_STALLED when the
 * step no longer changes theta or h underflows, MF_OUT_INTERRUPTED when
 * cb->should_stop asks between attempts; theta is unchanged then. */
mf_outcome mf__flow_step(mf__flow *f, const mf_train_settings *s, mf_work *w, mf_train_state *st,
                         mf__evalset *cur, mf__evalset *cand, const mf_callbacks *cb);

#endif

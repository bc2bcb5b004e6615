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

/* Seconds on the monotonic clock (CLOCK_MONOTONIC): differences are wall
 * time, unaffected by changes of the system clock (util.c). */
double mf__now(void);

/* True margin of sample i from outputs out[n][n_out] (loss.c). */
double mf__margin(const mf_data *data, const double *out, int n_out, int i);

/* ||x||_2, finite whenever the result is (scaled second pass when needed). */
double mf__norm2(const double *x, size_t n);

/* <a, b> = sum_i a[i] b[i], i = 0..n-1 in order (one plain loop, so the
 * rounding is the same wherever it is used). */
double mf__dot(const double *a, const double *b, size_t n);

/* Append a printf-style sentence to the NUL-terminated text in buf [cap]
 * (truncating; nothing when buf is full). */
void mf__say(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* 1 if binary data D is symmetric: for every n there is m with x_m = -x_n
 * and y_m = -y_n, to MF__SYM_TOL per coordinate (src/global_ref.c). */
int mf__data_symmetric(const mf_data *D);

/* Non-negative least squares, minimize ||A z - b|| s.t. z >= 0, A [m][n]
 * column-major, b [m], z [n] out (src/nnls.c, Lawson & Hanson 1974, ch. 23;
 * the stopping rules, tol and max_iter are described there). MF_OK,
 * MF_ERR_NOMEM or MF_ERR_NUMERIC; *iters (may be NULL) = columns entered. */
int mf__nnls(int m, int n, const double *A, const double *b, double tol, int max_iter, double *z,
             int *iters, mf_err *e);

/* ||x||_2 as f * 2^e with f in [0.5, 1) (0 and e = 0 when x = 0), for
 * norms beyond DBL_MAX or below DBL_MIN: entries are scaled by the power of
 * two of the largest (exact), then the sum of squares is taken. */
double mf__norm2_scaled(const double *x, size_t n, int *e);

/* a / (f * 2^e) for finite f > 0 (any magnitude) and integer e, without
 * overflow or underflow on the way: a and f are split into mantissa and
 * exponent (frexp), the mantissas divided, the exponents subtracted
 * exactly. Returns 0 when a = 0, and NAN (absent) when the quotient is not
 * finite or below the smallest normal double (it would carry less than full
 * precision) or a is not finite. Relative error: that of one division. */
double mf__div_scaled(double a, double f, long e);

/* The smoothed margin of mf_smoothed_margin with ||theta|| = f * 2^e given
 * as mantissa and exponent (loss.c), so that norms beyond DBL_MAX work. */
double mf__smoothed_margin_scaled(mf_loss_kind loss, double log_loss, double f, long e,
                                  int degree);

/* CRC-32 (zlib's) of a buffer; mf__crc32_more continues a running CRC
 * (start from 0): mf__crc32_more(mf__crc32(a), b) = CRC of a then b. */
uint32_t mf__crc32(const void *buf, size_t len);
uint32_t mf__crc32_more(uint32_t crc, const void *buf, size_t len);

/* A printable rendering of s[0..len) for an error message, in dst[cap]
 * (always NUL-terminated, cap >= 8): printable ASCII and well-formed UTF-8
 * characters from U+00A0 up are copied, every other byte (control
 * characters, DEL, C1 controls, malformed UTF-8) becomes "\xNN", so no raw
 * control byte reaches a terminal. At most max source bytes are rendered
 * (cut at a character boundary), then "..." marks the cut; the rendering is
 * also cut with "..." where dst is full. Returns dst. */
char *mf__quote(char *dst, size_t cap, const char *s, size_t len, size_t max);
/* Room mf__quote needs for max source bytes: 4 output bytes each, "...", NUL. */
#define MF__QUOTE_CAP(max) (4 * (size_t)(max) + 4)

/* Tests only: the data-file reader's limits (data.c), in bytes: the whole
 * file and one line; 0 restores the default (MF_DATA_MAX_FILE_BYTES,
 * MF_DATA_MAX_LINE_BYTES). Not thread-safe. */
void mf__data_set_limits(uint64_t file_bytes, size_t line_bytes);

/* The image data specs of mf_data_from_spec (src/idx.c): fashion-mnist[:train|:test],
 * idx:IMAGES,LABELS, cifar10:DIR[:test]. Returns 1 with *rc the result (and *out
 * on MF_OK) when spec is one of them, 0 when it is not. */
int mf__image_spec(const char *spec, mf_data **out, mf_err *e, int *rc);

/* Epoch runs (src/epoch.c): the defaults of their settings fields, their
 * validation (NULL or a sentence naming the field), and the driver mf_train
 * hands them to (contract at mf_train_is_epoch_run). */
void mf__epoch_settings_default(mf_train_settings *s);
const char *mf__epoch_settings_validate(const mf_train_settings *s);
int mf__train_epochs(const mf_model *m, const mf_data *data, const mf_train_settings *s,
                     mf_train_state *st, const mf_callbacks *cb, mf_train_result *result,
                     mf_err *e);

/* strtod in the C locale, whatever the process locale. *end as strtod. */
double mf__strtod_c(const char *s, char **end);

/* Tests only: relu2 kinds use backward table groups of `chunks` chunks
 * (0: the dense products; set it before the forward pass); returns the
 * previous setting, 0 for other models (src/model/relu2.c). */
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
 * scratch; rejected attempts count in st->rejected. Between attempts the
 * retry loop stops by mf__retry_stop (t0: the start of mf_train):
 * MF_OUT_STALLED (*reason set) when the step no longer changes theta, h
 * underflows or 100000 attempts in a row were rejected, MF_OUT_WALL_BUDGET,
 * MF_OUT_INTERRUPTED; theta is unchanged then. */
mf_outcome mf__flow_step(mf__flow *f, const mf_train_settings *s, mf_work *w, mf_train_state *st,
                         mf__evalset *cur, mf__evalset *cand, const mf_callbacks *cb, double t0,
                         const char **reason);

/* Why a run stalls (static text for mf_train_result.reason). */
extern const char *const mf__stall_no_change; /* the step no longer changes theta */
extern const char *const mf__stall_lr;        /* the step size underflowed */
/* The stop rules after a rejected attempt of a step's retry loop (src/train.c). */
mf_outcome mf__retry_stop(const mf_train_settings *s, const mf_callbacks *cb, double t0,
                          double lr_before, double lr, long long *tries, const char **reason);

#endif

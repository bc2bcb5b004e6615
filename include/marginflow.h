/*
 * marginflow.h -- the whole public API of libmarginflow.
 *
 * marginflow trains small homogeneous networks by gradient descent / gradient
 * flow on exponential, logistic or cross-entropy loss for extremely long
 * horizons, and measures the quantities of the margin-maximization theory:
 * normalized margin, smoothed margin, per-layer margin, loss and norm rates.
 * The mathematics is in docs/theory.md; the papers it cites are the
 * specification:
 *   [LL20]  Lyu & Li, Gradient Descent Maximizes the Margin of Homogeneous
 *           Neural Networks, ICLR 2020 (arXiv:1906.05890).
 *   [VSS22] Vardi, Shamir & Srebro, On Margin Maximization in Linear and ReLU
 *           Networks, NeurIPS 2022 (arXiv:2110.02732).
 *   [LLWA21] Lyu, Li, Wang & Arora, Gradient Descent on Two-layer Nets: Margin
 *           Maximization and Simplicity Bias, NeurIPS 2021 (arXiv:2110.13905).
 *
 * Conventions
 *  - Every public name is mf_ / MF_. Internal helpers live in src/internal.h.
 *  - Functions that can fail return an int error code (mf_error, MF_OK = 0)
 *    and, when given a non-NULL mf_err *, fill it with a sentence saying what
 *    went wrong (file, line, column, what was expected). Error codes are
 *    separate from run outcomes (mf_outcome).
 *  - The library never prints and never exits. Diagnostics go through the
 *    caller-set log callback in mf_callbacks.
 *  - Every allocation goes through one hook (mf_set_allocator) so tests can
 *    fail the k-th allocation. Every mf_x_free(NULL) is a no-op.
 *  - Losses are kept in the log domain: a "log_loss" is the natural log of
 *    the SUM over samples of ell(q_n). Nothing exp()s a large argument.
 *  - Arrays are flat, row-major, double precision; shapes are in comments.
 */
#ifndef MARGINFLOW_H
#define MARGINFLOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MF_API marks every public function: the shared library (make shared,
 * compiled with -fvisibility=hidden) exports exactly these, and
 * tests/cli/abi.sh checks that the two lists agree. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define MF_API __attribute__((visibility("default")))
#else
#define MF_API
#endif

#define MF_VERSION "0.1.0"
#define MF_MAX_LAYERS 16
#define MF_SPEC_LEN 256
#define MF_ERR_LEN 512
#define MF_MARGIN_HIST 40

/* ------------------------------------------------------------------------ */
/* Errors, allocation, logging                                              */
/* ------------------------------------------------------------------------ */

typedef enum mf_error {
    MF_OK = 0,
    MF_ERR_NOMEM,       /* an allocation failed */
    MF_ERR_IO,          /* a file could not be opened, read, written, renamed */
    MF_ERR_PARSE,       /* a file or string is not in the expected format */
    MF_ERR_INVALID,     /* an argument or setting is out of its allowed range */
    MF_ERR_DIM,         /* dimensions do not match (data vs model, checkpoint vs model) */
    MF_ERR_CORRUPT,     /* a binary file fails its magic, version or checksum */
    MF_ERR_FOREIGN,     /* a checkpoint belongs to another model/data/config */
    MF_ERR_UNSUPPORTED, /* a valid request this build or model does not support */
    MF_ERR_NONSEPARABLE,/* data not linearly separable through the origin */
    MF_ERR_NUMERIC,     /* a numerical routine failed (non-finite input, no convergence) */
    MF_ERR_CALLBACK     /* a user callback returned failure */
} mf_error;

/* Detailed error: code plus a human sentence (a longer one is cut, ending
 * in "..."). */
typedef struct mf_err {
    int code;
    char msg[MF_ERR_LEN];
} mf_err;

/* Short static description of an error code ("out of memory", ...). */
MF_API const char *mf_strerror(int code);

/* ------------------------------------------------------------------------ */
/* Version and ABI                                                          */
/* ------------------------------------------------------------------------ */

/* MF_ABI_VERSION counts the revisions of this header's binary interface: it
 * goes up whenever a public struct's layout, an enum's values or a
 * function's signature change (the shared library's soname,
 * libmarginflow.so.0, stays at 0 while marginflow is 0.x). A binding checks
 * mf_abi_version() and the mf_sizeof of every struct it mirrors against the
 * header it was written for. 2: issue 12's analysis, svm, maxmargin and
 * local-search result fields. 3: issue 11's discretization indicators
 * (mf_metrics), until_margin_gap, the flow state in mf_train_state, the
 * work counts in mf_train_result, MF_OUT_MARGIN_GAP; issue 14's image
 * data, cnn model, epoch runs and robustness (mf_model, mf_metrics,
 * mf_train_settings, mf_callbacks; mf_cnn_layer, mf_robust_settings,
 * mf_robust_result). */
#define MF_ABI_VERSION 3

/* The library that is running: MF_VERSION and MF_ABI_VERSION as it was
 * built (a program compiled against another header may see other macros). */
MF_API const char *mf_version(void);
MF_API int mf_abi_version(void);

/* sizeof the public struct named type ("mf_train_settings", every
 * `typedef struct mf_X {...} mf_X` below); 0 for any other name (also
 * NULL and the opaque mf_work). */
MF_API size_t mf_sizeof(const char *type);

/* Replace the allocator used by the whole library (NULL for any argument
 * restores the libc default for all three). Not thread-safe: call before use. */
MF_API void mf_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                             void (*free_fn)(void *));

/* Log levels for the log callback. */
enum { MF_LOG_ERROR = 0, MF_LOG_WARN = 1, MF_LOG_INFO = 2, MF_LOG_DEBUG = 3 };

/* ------------------------------------------------------------------------ */
/* Random numbers (xoshiro256**, seeded by splitmix64): deterministic across   */
/* platforms, state is plain data so checkpoints can store it.               */
/* ------------------------------------------------------------------------ */

typedef struct mf_rng {
    uint64_t s[4];
} mf_rng;

MF_API void mf_rng_seed(mf_rng *r, uint64_t seed);
MF_API uint64_t mf_rng_next(mf_rng *r);
MF_API double mf_rng_uniform(mf_rng *r);  /* in [0, 1), 53 bits */
MF_API double mf_rng_normal(mf_rng *r);   /* standard normal (Box-Muller, no caching) */

/* ------------------------------------------------------------------------ */
/* Data                                                                     */
/* ------------------------------------------------------------------------ */

/* A labelled data set, dense.
 *  x: [n][d] row-major features.
 *  Binary data (num_classes == 0): y[n] in {-1, +1}, cls == NULL.
 *  Multi-class data (num_classes = C >= 2): cls[n] in 0..C-1, and y == NULL.
 *  (Files whose labels are all -1/+1 are binary; labels that are all
 *  non-negative integers are class indices.) */
typedef struct mf_data {
    int n, d;
    int num_classes;   /* 0 = binary with y = +-1; C >= 2 = multi-class */
    double *x;         /* [n][d] */
    double *y;         /* [n] or NULL */
    int *cls;          /* [n] or NULL */
    char desc[MF_SPEC_LEN]; /* for display, e.g. "builtin:B" or "file:foo.svm (libsvm)";
                               a path is escaped as in messages and a long one cut
                               with "..." */
} mf_data;

/* Allocate an empty data set of n samples, d features (zeroed). If
 * num_classes == 0, y is allocated; otherwise cls. Every data set is dense
 * with n * d <= 2^28 entries (2 GiB of doubles); larger sizes are refused
 * with MF_ERR_INVALID (mf_data_new, gauss/symmetric specs) or MF_ERR_PARSE
 * (data files, at the largest feature index). */
MF_API int mf_data_new(int n, int d, int num_classes, mf_data **out, mf_err *e);
MF_API void mf_data_free(mf_data *data);

/* Limits of the data-file reader (docs/limits.md). A data set holds at most
 * MF_DATA_MAX_ENTRIES = n * d entries; a data file is at most
 * MF_DATA_MAX_FILE_BYTES bytes (16 GiB: 64 bytes for each entry of the
 * largest set) and one of its lines at most MF_DATA_MAX_LINE_BYTES (64 MiB).
 * Each is checked while reading, so that an endless input (/dev/zero, a FIFO,
 * a pipe) is refused once it passes a limit, and a regular file larger than
 * the file limit is refused from its size before anything is read. The
 * reader's memory is bounded by those limits: one line, and per sample or
 * entry kept a fixed number of bytes. */
#define MF_DATA_MAX_ENTRIES ((size_t)1 << 28)
#define MF_DATA_MAX_FILE_BYTES ((uint64_t)1 << 34)
#define MF_DATA_MAX_LINE_BYTES ((size_t)1 << 26)

/* Load a data file. format: "libsvm" (liblinear/libsvm text, 1-based sparse
 * indices), "csv" (label in the first column), or NULL to choose by extension
 * (.csv -> csv, anything else -> libsvm). Errors name file, line and column:
 * unreadable/empty file, ragged rows, non-numeric fields, NaN/Inf features,
 * bad labels, duplicate or unsorted indices, a NUL byte or a control
 * character (anything below 0x20 but tab, CR, VT and FF, and DEL; named by
 * its code, never copied into the message), a file, line or data set beyond
 * the limits above. For libsvm, d = largest index seen, unless min_d > that
 * (pass 0 otherwise). */
MF_API int mf_data_load(const char *path, const char *format, int min_d, mf_data **out, mf_err *e);

/* Build a data set from a spec string:
 *   builtin:B | builtin:C | builtin:D | builtin:G | builtin:R1 | builtin:sym4
 *       the known-answer sets of docs/theory.md section 4;
 *   gauss:n=200,d=20,margin=0.1,seed=3
 *       linearly separable through the origin with a planted margin;
 *   symmetric:n=..,d=..,margin=..,seed=..   gauss plus the mirror (-x, -y) of
 *       every point (2n points);
 *   fashion-mnist | fashion-mnist:train | fashion-mnist:test
 *       Debian's dataset-fashion-mnist (MF_FASHION_MNIST_DIR), through
 *       mf_data_load_idx: 60000 / 10000 images of 28 x 28, 10 classes;
 *   idx:IMAGES,LABELS   any IDX pair (the original MNIST files, ...);
 *   cifar10:DIR | cifar10:DIR:test   the CIFAR-10 binary batches in DIR
 *       (mf_data_load_cifar10);
 *   anything else is a file path, loaded with mf_data_load(spec, format, 0).
 * format may be NULL. */
MF_API int mf_data_from_spec(const char *spec, const char *format, mf_data **out, mf_err *e);

/* Where Debian's dataset-fashion-mnist installs its IDX files. */
#define MF_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Load an IDX pair (LeCun et al.'s MNIST format, also Fashion-MNIST's):
 * images: big-endian magic 0x00000803 (unsigned bytes, 3 dimensions), then
 * n, rows, cols and n*rows*cols pixel bytes; labels: magic 0x00000801, n,
 * then n label bytes. Either file may be gzip-compressed (zlib's gzread reads
 * plain and gzip files alike). x[i][r*cols + c] = pixel / 255, in [0, 1];
 * cls[i] = label, num_classes = (largest label) + 1, at least 2. Errors name
 * the file and what is wrong, and are MF_ERR_IO (cannot open), MF_ERR_CORRUPT
 * (a damaged gzip stream), MF_ERR_PARSE (wrong magic, zero or too large
 * dimensions, a truncated file, bytes after the data, fewer than 2 classes),
 * MF_ERR_DIM (image count != label count) or MF_ERR_NOMEM. The file is read
 * in chunks: a header that promises more than the file holds costs no more
 * memory than the file. */
MF_API int mf_data_load_idx(const char *images, const char *labels, mf_data **out, mf_err *e);

/* Load the CIFAR-10 binary version (Krizhevsky 2009): records of 3073
 * bytes, a label byte 0..9 then 1024 red, 1024 green and 1024 blue pixels
 * (rows of 32). test = 0: DIR/data_batch_1.bin .. data_batch_5.bin in that
 * order; test = 1: DIR/test_batch.bin. x[i] is the record's 3072 pixels / 255
 * in that (channel, row, column) order; num_classes = 10. A file whose size
 * is not a whole number of records, a label above 9, or a missing file is an
 * error naming the file (MF_ERR_PARSE, MF_ERR_IO). */
MF_API int mf_data_load_cifar10(const char *dir, int test, mf_data **out, mf_err *e);

/* A subset of a multi-class data set (num_classes >= 2):
 *  classes != NULL: only the samples of classes[0] and classes[1]
 *      (distinct, in 0..C-1), as BINARY data: y = +1 for classes[0], -1 for
 *      classes[1];
 *  limit > 0 and below the count that remains: `limit` samples, class-
 *      balanced (the classes' quotas differ by at most one, a class with too
 *      few samples gives its share to the others), each class's samples
 *      chosen by a Fisher-Yates shuffle seeded with seed; kept in their
 *      original order. limit = 0: all.
 * The result is deterministic given (src, classes, limit, seed). desc says
 * what was taken. Errors: MF_ERR_INVALID (binary src, bad classes, limit < 0,
 * nothing left), MF_ERR_NOMEM. */
MF_API int mf_data_select(const mf_data *src, const int *classes, int limit, uint64_t seed,
                          mf_data **out, mf_err *e);

/* Fingerprint of a data set's contents: the CRC-32 (zlib) of
 *   "MFDATA1" and a NUL byte, n, d, num_classes (each a little-endian
 *   64-bit integer), x[n][d] as little-endian IEEE-754 bit patterns, then
 *   y[n] the same way (binary) or cls[n] as little-endian 32-bit integers.
 * Bit patterns, so -0 and +0 differ and a value that prints the same but is
 * not the same double is seen; desc is not part of it (a moved file with the
 * same contents has the same hash). 0 for NULL. Store it with a run and
 * compare it when the run's data is loaded again: a changed file with the
 * same n and d gets another hash (up to the 2^-32 chance of a CRC collision;
 * CRC-32 catches every change of up to 32 consecutive bits). */
MF_API uint32_t mf_data_hash(const mf_data *data);

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum mf_model_kind {
    MF_MODEL_LINEAR = 0,   /* Phi = W x, W [n_out][d]; L = 1 */
    MF_MODEL_FC_LINEAR,    /* Phi = W_K ... W_2 W_1 x, W_1 [M][d], W_l [M][M], W_K [n_out][M]; L = K */
    MF_MODEL_DIAG,         /* Phi = <w_1 o ... o w_K, x>, w_l [d]; L = K; binary only */
    MF_MODEL_RELU2,        /* Phi = sum_k a_k sigma(<w_k, x~>), W [M][d~], a [M]; L = 2
                              (L = 1 with fix_outer); x~ = (x, 1) with bias; binary only */
    MF_MODEL_MLP,          /* Phi = W_{K+1} sigma(W_K ... sigma(W_1 x)); L = K + 1 */
    MF_MODEL_SKIP_LINEAR,  /* Phi = (1 + w2) <w1, x>, w1 [d], w2 scalar; NOT homogeneous
                              (construction G); nominal L = 2 */
    MF_MODEL_RELU2_OUTBIAS,/* Phi = sum_k a_k sigma(<w_k, x>) + b; NOT homogeneous; nominal L = 2 */
    MF_MODEL_CNN           /* convolutional net of mf_cnn_layer's (conv, max-pool, fc), ReLU
                              after every weight layer but the last; L = number of weight
                              layers; homogeneous without biases or with a first-layer bias */
} mf_model_kind;

/* One layer of a CNN (MF_MODEL_CNN), in the spec grammar's tokens:
 *   'c' "cNkK": convolution with N output channels and a K x K kernel,
 *       stride 1, SAME zero padding ((K-1)/2 before, K/2 after), then ReLU;
 *   'p' "pP":   max-pool over P x P windows with stride P (floor: a last
 *       partial window is dropped); on a tie the first maximal entry in
 *       row-major window order is the one the backward pass uses;
 *   'f' "fN":   fully connected with N outputs (after a conv or pool the
 *       input is flattened channel by channel, row by row, as PyTorch's
 *       view(n, -1) of an NCHW tensor), then ReLU unless it is the last
 *       layer, which is the output (N = n_out). */
typedef struct mf_cnn_layer {
    char kind;  /* 'c', 'p' or 'f' */
    int size;   /* c: output channels; f: outputs; p: window = stride */
    int k;      /* c: kernel size; 0 otherwise */
} mf_cnn_layer;

/* Most layers (tokens) of a CNN spec; at most MF_MAX_LAYERS of them carry weights. */
#define MF_MAX_CNN_LAYERS 48

/* A named view into the flat parameter vector theta: entries
 * theta[offset .. offset + rows*cols), row-major [rows][cols]. */
typedef struct mf_layer {
    char name[16];     /* "W1", "a", "w2", "b", ... */
    size_t offset;
    int rows, cols;
} mf_layer;

/* A model: architecture and parameter layout; the parameters themselves are a
 * separate flat double array theta[n_params]. sigma(z) = z for z > 0 and
 * alpha * z otherwise; its derivative used at z == 0 exactly is alpha (0 for
 * ReLU): this choice lies in the Clarke interval [alpha, 1] and is used
 * consistently by forward/backward and the analysis code. */
typedef struct mf_model {
    mf_model_kind kind;
    char spec[MF_SPEC_LEN]; /* canonical spec string, e.g. "relu2:width=100,alpha=0" */
    int d;                  /* input dimension of the data */
    int n_out;              /* 1 for binary data, C for multi-class */
    int degree;             /* L: homogeneity order (nominal for non-homogeneous models) */
    int homogeneous;        /* 1 if Phi(c theta) = c^L Phi(theta) for c > 0 */
    int depth;              /* K for fc-linear/diag; number of hidden layers for mlp */
    int width;              /* M for fc-linear / relu2 / relu2-outbias */
    int widths[MF_MAX_LAYERS]; /* mlp hidden widths */
    double alpha;           /* leaky slope (0 = ReLU) */
    int bias;               /* relu2: hidden bias as an extra constant input coordinate */
    int fix_outer;          /* relu2: outer weights fixed (a_k = +1 for even k, -1 for odd) */
    /* cnn: input images x[i] = [C][H][W] (in_shape = C, H, W; C*H*W = d), the
     * layers (a preset expanded into them), cnn_preset (the parser's: 1 mnist,
     * 2 small, 3 vgg16 while parsing; always 0 in a parsed model) and the
     * biases (0 none, 1 first weight layer only, 2 every weight layer). A bias
     * is stored as one more column of its layer's group, after the weights:
     * W [out][fan_in + 1]. */
    int in_shape[3];
    int n_cnn;
    mf_cnn_layer cnn[MF_MAX_CNN_LAYERS];
    int cnn_preset;
    int cnn_bias;
    size_t n_params;
    int n_layers;           /* number of parameter groups ("layers" for norms) */
    mf_layer layers[MF_MAX_LAYERS];
} mf_model;

/* Parse a model spec for data of dimension d with num_classes as in mf_data
 * (0 = binary, n_out = 1; C >= 2: n_out = C, only for linear, fc-linear, mlp).
 * Specs:
 *   linear
 *   fc-linear:depth=K,width=M          (defaults K=2, M=d)
 *   diag:depth=K                       (default K=2)
 *   relu2:width=M,alpha=A[,bias][,fix-outer]   (defaults M=10, A=0)
 *   mlp:widths=M1,M2,...,alpha=A       (widths separated by '/' or ',' ; default A=0)
 *   skip-linear
 *   relu2-outbias:width=M,alpha=A
 *   cnn:PRESET | cnn:layers=T1,T2,...[,input=CxHxW][,bias1|,bias]
 *       PRESET: mnist = layers=c32k5,p2,c64k3,p2,f1024,f<n_out> (the MNIST
 *       Adversarial Examples Challenge net of [LL20]); small =
 *       c8k5,p2,c16k3,p2,f64,f<n_out>; vgg16 = 13 3x3 convs (64,64 | 128,128 |
 *       256 x3 | 512 x3 | 512 x3, each group followed by p2) and f<n_out>
 *       ([LL20]'s CIFAR-10 net, L = 14). Tokens as in mf_cnn_layer; the last
 *       token must be f<n_out>. input defaults to 1 x s x s when d = s^2, else
 *       3 x s x s when d = 3 s^2. bias1: a bias in the first weight layer
 *       (still homogeneous); bias: in every weight layer (not homogeneous).
 *       The canonical spec is the layers= form with input=.
 * Errors: MF_ERR_PARSE with the offending token, MF_ERR_UNSUPPORTED for
 * multi-class on a binary-only model. */
MF_API int mf_model_parse(const char *spec, int d, int num_classes, mf_model **out, mf_err *e);
MF_API void mf_model_free(mf_model *m);

/* Opaque workspace holding activations for batches of up to max_batch
 * samples. Allocated once; forward/backward never allocate. */
typedef struct mf_work mf_work;
MF_API int mf_work_new(const mf_model *m, int max_batch, mf_work **out, mf_err *e);
MF_API void mf_work_free(mf_work *w);

/* Forward pass on a batch.
 *   x: [n][d]   out: [n][n_out]   (0 <= n <= max_batch of w)
 * Keeps the activations in w for a following mf_model_backward on the same
 * theta and x. Checks its arguments before touching memory and returns
 * MF_OK, MF_ERR_INVALID (m, w or, for n > 0, theta, x or out NULL; n < 0
 * or n > the max_batch w was made for) or MF_ERR_DIM (w was made for
 * another model: another spec or parameter layout); on error nothing is
 * written. n = 0 does nothing. */
MF_API int mf_model_forward(const mf_model *m, mf_work *w, const double *theta,
                            const double *x, int n, double *out);

/* Backward pass after mf_model_forward(m, w, theta, x, n, ...):
 *   dout: [n][n_out]   grad: [n_params]
 * Sets grad = sum_i J_i^T dout_i, J_i = d out_i / d theta. Parameters that
 * are not trained (fix-outer) get gradient 0 (they are not in theta).
 * Returns MF_OK or, with nothing written, the errors of mf_model_forward
 * (dout and grad NULL are MF_ERR_INVALID too); n = 0 sets grad = 0. */
MF_API int mf_model_backward(const mf_model *m, mf_work *w, const double *theta,
                             const double *x, int n, const double *dout, double *grad);

/* Gradient with respect to the inputs after mf_model_forward(m, w, theta, x,
 * n, ...): gx [n][d] = J_x,i^T dout_i, J_x,i = d out_i / d x_i (for the L2
 * attacks of mf_robust_eval). The workspace's activations stay those of the
 * forward pass. MF_OK, or MF_ERR_UNSUPPORTED for a model without it (only
 * cnn has one). */
MF_API int mf_model_backward_input(const mf_model *m, mf_work *w, const double *theta,
                                   const double *x, int n, const double *dout, double *gx);

/* Initialization. kind: "gauss" (every entry i.i.d. N(0, scale^2)),
 * "balanced" (relu2 / relu2-outbias only: w_k ~ N(0, scale^2 I),
 * a_k = s_k ||w_k|| with s_k a random sign; b = 0), "he" (He et al. 2015:
 * every weight of group l i.i.d. N(0, scale^2 2 / fan_in_l), biases 0;
 * fan_in = the group's columns without a bias column; scale = 1 is He's). */
MF_API int mf_model_init(const mf_model *m, const char *kind, double scale, mf_rng *rng,
                         double *theta, mf_err *e);

/* The hidden units of a two-layer net Phi(x) = sum_k a_k sigma(<w_k, x~>) (+ b)
 * (relu2 and relu2-outbias), read from the layer views of theta:
 *   w_k     row k of m->layers[w_layer], [n_units][cols]; with in_bias its
 *           last column (index d) is the hidden bias, x~ = (x, 1), else x~ = x;
 *   a_k     entry k of m->layers[a_layer] ([1][n_units]); a_layer = -1 when the
 *           outer weights are fixed (fix-outer): a_k = mf_units_fixed_outer(k);
 *           mf_units_outer gives a_k in both cases;
 *   b       the output bias m->layers[b_layer] ([1][1]); -1 when there is none. */
typedef struct mf_units {
    int n_units;    /* M */
    int w_layer;
    int in_bias;
    int a_layer;
    int b_layer;
} mf_units;

/* 1 and *u filled for a two-layer net; 0 otherwise (then *u = {0, -1, 0, -1, -1}). */
MF_API int mf_model_units(const mf_model *m, mf_units *u);
/* The fixed outer weights of fix-outer: +1 for even k, -1 for odd k. */
MF_API double mf_units_fixed_outer(int k);
/* a_k at theta (u from mf_model_units on m). */
MF_API double mf_units_outer(const mf_model *m, const mf_units *u, const double *theta, int k);

/* Euclidean norm of layer l of theta, and of all of theta. */
MF_API double mf_layer_norm(const mf_model *m, const double *theta, int l);
MF_API double mf_param_norm(const mf_model *m, const double *theta);

/* Human-readable parameter order into buf ("index name[row][col]" lines);
 * returns the number of characters that would have been written (snprintf). */
MF_API size_t mf_model_layout(const mf_model *m, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Losses, margins, metrics (log domain)                                    */
/* ------------------------------------------------------------------------ */

typedef enum mf_loss_kind {
    MF_LOSS_EXP = 0,    /* ell(q) = e^{-q} */
    MF_LOSS_LOGISTIC,   /* ell(q) = log(1 + e^{-q}) */
    MF_LOSS_CE          /* cross-entropy; for binary data identical to logistic */
} mf_loss_kind;

/* Margins from network outputs.
 *  out: [n][n_out]. Binary: q_n = y_n out_n. Multi-class:
 *  q_n = out_{n,y} - max_{j != y} out_{n,j}. Writes q[n] (may be NULL) and
 *  returns q_min. */
MF_API double mf_margins(const mf_data *data, const double *out, int n_out, double *q);

/* Loss in the log domain and its normalized gradient with respect to outputs.
 * Exact problem: given outputs z = out, with the smooth per-sample margin
 *   binary:       s_n = y_n z_n
 *   multi-class:  s_n = -log sum_{j != y_n} e^{-(z_{n,y} - z_{n,j})}
 * (exp on multi-class is Lyu & Li's sum_j e^{-(z_y - z_j)}; logistic and CE on
 * multi-class are both the cross-entropy log(1 + sum_{j!=y} e^{z_j - z_y})),
 * compute
 *   *log_loss = log sum_n ell(s_n)   (natural log, exact at any level)
 *   gout[n][n_out] = (d Loss / d z) / Loss     (may be NULL)
 *   wts[n] = -ell'(s_n) / Loss                 (softmax weights; may be NULL)
 * [LL20] section 2 / docs/theory.md section 2. No exp() of a positive argument
 * larger than log(DBL_MAX) is ever taken. Returns MF_ERR_NUMERIC if an
 * output is non-finite (then *log_loss = NAN). idx (may be NULL): the batch
 * rows out[i] correspond to data sample idx[i]; n = batch size. */
MF_API int mf_loss_eval(mf_loss_kind loss, const mf_data *data, const int *idx, int n,
                        const double *out, int n_out, double *log_loss, double *gout,
                        double *wts);

/* log ell(0): log 1 = 0 for exp, log log 2 for logistic/CE. */
MF_API double mf_loss_log_ell0(mf_loss_kind loss);

/* Smoothed normalized margin from the log loss, [LL20] Def./docs/theory.md s.1:
 *   exp:       -log_loss / ||theta||^L
 *   logistic:  -log(expm1(Loss)) / ||theta||^L, computed stably from log_loss.
 * ||theta||^L may overflow or underflow: the quotient is then taken with the
 * norm split into mantissa and exponent. A result that is not a normal
 * double (beyond DBL_MAX, or nonzero below DBL_MIN) is absent: NAN. norm = 0
 * gives 0; a NaN, infinite or negative norm gives NAN. */
MF_API double mf_smoothed_margin(mf_loss_kind loss, double log_loss, double norm, int degree);

/* Everything a metrics row holds. */
typedef struct mf_metrics {
    long long step;
    double time_log;        /* natural log of the flow time t (-INFINITY when t = 0) */
    double log10_loss;
    double norm;            /* ||theta|| */
    double q_min;
    double normalized_margin;   /* q_min / ||theta||^L */
    double smoothed_margin;
    double layer_margin;        /* q_min / prod_l ||W_l|| */
    /* (these three are exact whatever the size of ||theta||^L; NAN, i.e.
     * absent, when the quotient itself is not a normal double) */
    double lr;                  /* current step size (alpha for scaled/lyu-li, dtau for flow) */
    double train_error;         /* fraction of samples with q_n <= 0 */
    double balancedness;        /* max_k |a_k^2 - ||w_k||^2| (two-layer), max_l |
                                   ||W_{l+1}||^2 - ||W_l||^2 | (deeper), 0 for linear */
    /* Discretization indicators, filled by mf_train (mf_metrics_eval sets
     * beta and margin_change to NAN, the two maxima to 0). The exact
     * gradient flow has smoothed_decrease = 0 ([LL20] Thm 4.1: once Loss <
     * ell(0) the smoothed margin never decreases), loss_increase = 0 and
     * beta -> 1; a discrete method's departures from that are its
     * discretization error made visible. */
    double beta;                /* [LL20] cos(theta, -grad Loss) at this state; NAN where
                                   theta or grad Loss is 0 (or sgd rows without a gradient) */
    double smoothed_decrease;   /* largest relative decrease of the smoothed margin over one
                                   accepted step with Loss < ell(0) at both ends, so far in
                                   the run (sgd: between full-data evaluations); 0 if none */
    double loss_increase;       /* largest log10(Loss_new / Loss_old) over one accepted step
                                   so far (same pairs as above, any loss level); 0 if none */
    double margin_change;       /* |gamma(t) - gamma(t^(1/10))| / gamma(t): relative change of
                                   the normalized margin over the last decade of log t
                                   (defined once log t >= 10 and the data is separated);
                                   NAN until defined */
    /* Epoch runs only (mf_train_is_epoch_run; mf_metrics_eval sets epoch = -1,
     * test_error and the times NAN, rejected 0): */
    long long epoch;            /* accepted epochs so far */
    long long rejected;         /* rejected (rolled-back) epochs so far */
    double log10_mean_loss;     /* log10 (Loss / N), the paper's training loss */
    double test_error;          /* fraction of test samples with q_n <= 0; NAN without a test set */
    double epoch_seconds;       /* wall time of the last epoch (its retries and evaluation included) */
    double wall_seconds;        /* wall time since this mf_train call started */
} mf_metrics;

/* Compute every metric except step/time_log/lr at theta. out (may be NULL:
 * then the forward pass is done here in w, which must hold data->n samples
 * of this model, else MF_ERR_INVALID / MF_ERR_DIM) are the outputs on the
 * full data set. */
MF_API int mf_metrics_eval(const mf_model *m, mf_work *w, const mf_data *data, mf_loss_kind loss,
                           const double *theta, const double *out, mf_metrics *mt, mf_err *e);

/* ------------------------------------------------------------------------ */
/* Training                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum mf_optimizer_kind {
    MF_OPT_GD = 0,   /* theta -= lr * grad Loss */
    MF_OPT_SCALED,   /* theta -= lr * grad Loss / Loss  ([LL20] loss-based rate) */
    MF_OPT_LYU_LI,   /* scaled step with [LL20] App. schedule: accept -> lr *= r_u, reject -> roll back, lr /= r_d */
    MF_OPT_FLOW,     /* gradient flow to a stated accuracy (src/flow.c): adaptive explicit /
                        Rosenbrock-W 3(2) pairs in rescaled time, error control on theta and
                        on the loss weights */
    MF_OPT_SGD,      /* mini-batch SGD on the batch MEAN loss (PyTorch convention); by epochs
                        (constant lr, src/epoch.c) when max_epochs > 0 */
    MF_OPT_SGD_LYU_LI /* mini-batch SGD by epochs with [LL20]'s loss-based epoch schedule
                        (src/epoch.c): eta = alpha / (mean loss at the epoch start),
                        accept -> alpha *= lr_up, reject -> restore, alpha /= lr_down */
} mf_optimizer_kind;

typedef enum mf_outcome {
    MF_OUT_RUNNING = 0,
    MF_OUT_LOSS_TARGET,   /* log10 Loss <= until_log10_loss */
    MF_OUT_STEP_BUDGET,   /* max_steps reached */
    MF_OUT_TIME_TARGET,   /* flow time >= until_time */
    MF_OUT_WALL_BUDGET,   /* wall_seconds elapsed */
    MF_OUT_NONFINITE,     /* non-finite loss or gradient; theta is the last good state */
    MF_OUT_STALLED,       /* no step can be taken: it no longer changes theta, the step
                             size underflowed, or (lyu-li, flow) 100000 attempts in a row
                             were rejected; mf_train_result.reason says which */
    MF_OUT_INTERRUPTED,   /* should_stop callback asked to stop */
    MF_OUT_MARGIN_GAP     /* margin_change <= until_margin_gap */
} mf_outcome;

MF_API const char *mf_outcome_name(mf_outcome o);   /* "loss-target", "step-budget", ... */
MF_API const char *mf_optimizer_name(mf_optimizer_kind k); /* "gd", "scaled", ... */
MF_API const char *mf_loss_name(mf_loss_kind k);          /* "exp", "logistic", "ce" */
/* MF_OK or MF_ERR_INVALID: */
MF_API int mf_optimizer_from_name(const char *s, mf_optimizer_kind *k);
MF_API int mf_loss_from_name(const char *s, mf_loss_kind *k);

/* Most chosen archive epochs of an epoch run. */
#define MF_MAX_ARCHIVE_EPOCHS 32

/* Training settings. Unset real-valued criteria are NAN. */
typedef struct mf_train_settings {
    mf_loss_kind loss;          /* default exp */
    mf_optimizer_kind optimizer;/* default flow: the object of the theorems, to the accuracy tol;
                                   gd/scaled/lyu-li/sgd are the papers' discrete algorithms */
    double lr;                  /* default 0.1: step (gd/sgd), alpha (scaled), alpha_0 (lyu-li), initial dtau (flow) */
    double tol;                 /* flow: every accepted step's local error estimate is at most
                                   tol (1 + ||theta||) in theta and, in stiff steps, at most tol
                                   in the l1 distance of the loss weights w_n = -ell'(q_n) / Loss
                                   (the margin differences q_n - q_min of the samples that carry
                                   weight, in absolute units; rounding floor 32 eps (1 + |q_min|));
                                   explicit steps are only taken where they damp the weights'
                                   errors (src/flow.c); default 1e-6, in (0, 1) */
    double lr_up, lr_down;      /* lyu-li: 2^{1/5}, 2^{1/10} */
    double max_rel_step;        /* lyu-li: a step longer than max_rel_step * ||theta|| is
                                   rolled back like a loss increase (our safeguard against
                                   norm blow-up on homogeneous nets); default 0.1, 0 = off */
    int batch;                  /* sgd: default 32 */
    long long max_steps;        /* default 10000; 0 = unlimited */
    double until_log10_loss;    /* NAN = off; values in (0, 1) are refused (log10 of the loss:
                                   10^-300 is -300, not 1e-300) */
    double until_margin_gap;    /* NAN = off; stop when margin_change (mf_metrics) <= X, 0 < X < 1 */
    double until_time;          /* NAN = off */
    double wall_seconds;        /* NAN = off */
    int log_points;             /* default 200 */
    long long log_horizon;      /* steps the log schedule is spread over; 0 = max_steps
                                   (10^6 when max_steps = 0). Keep it fixed when resuming
                                   with other stopping criteria, so rows stay identical. */
    long long checkpoint_every; /* 0 = off (default) */
    uint64_t seed;              /* sgd batch order; default 1 */
    /* Epoch runs (optimizer sgd-lyu-li, or sgd with max_epochs > 0; src/epoch.c): */
    long long max_epochs;       /* stop after this many accepted epochs; 0 = no epoch limit
                                   (default) */
    double alpha_min;           /* sgd-lyu-li: stop (stalled) once alpha < alpha_min; 1e-50 */
    double loss_cap;            /* sgd-lyu-li: a batch mean loss above loss_cap times the epoch's
                                   reference mean loss rejects the epoch; default 600 */
    double archive_decades;     /* archive (on_archive) when log10 Loss first falls to or below
                                   -archive_decades * k, k = 1, 2, ...; default 5 ([LL20]'s
                                   policy: every 10^-5k); 0 = off */
    int n_archive_epochs;       /* also archive at these accepted epochs, */
    long long archive_epochs[MF_MAX_ARCHIVE_EPOCHS]; /* ascending, >= 0 */
    const mf_data *test;        /* optional test set (not owned; NULL = none): its error per epoch */
} mf_train_settings;

MF_API void mf_train_settings_default(mf_train_settings *s);
/* NULL if valid, else a static sentence naming the bad field and its range. */
MF_API const char *mf_train_settings_validate(const mf_train_settings *s);

/* The complete state of a run; what a checkpoint holds. */
typedef struct mf_train_state {
    long long step;      /* accepted steps so far (rejected attempts are not steps) */
    long long rejected;  /* rolled-back steps (lyu-li, flow) */
    double time_log;     /* log t, t = flow time (sum of lr/Loss for scaled, lr for gd) */
    double lr;           /* current step size */
    double log_loss;     /* at theta (full data) */
    mf_rng rng;
    size_t n_params;
    double *theta;       /* [n_params], owned by the state */
    int flow_mode;       /* flow: kind of the next step: 0 explicit, 1 stiff, 2 explicit until
                            the next stiffness probe (src/flow.c) */
    double flow_lambda;  /* flow: the last estimate of lambda_max of the stiff part (0: none) */
    long long flow_stiff_steps; /* flow: accepted steps taken by the stiff (Rosenbrock-W) method */
    /* discretization indicators so far (mf_metrics) and the steps that set them */
    double smoothed_decrease, loss_increase;
    long long smoothed_decrease_step, loss_increase_step;
    /* normalized margin gamma against log t (margin_change, until_margin_gap):
     * one sample at the first accepted step with log t >= 10^(k/16) for each
     * k >= 0, the last MF_MARGIN_HIST of them, oldest first from hist_start */
    int hist_n, hist_start;
    long long hist_next_k;
    double hist_logt[MF_MARGIN_HIST], hist_gamma[MF_MARGIN_HIST];
} mf_train_state;

/* A fresh state: step 0, t = 0 (time_log = -INFINITY), lr = 0 (meaning:
 * mf_train starts from settings.lr), theta zeroed, rng seeded with 1. */
MF_API int mf_train_state_new(size_t n_params, mf_train_state **out, mf_err *e);
MF_API void mf_train_state_free(mf_train_state *s);

/* Largest step (and rejected) count a state may hold: 2^62, so that a run
 * can count on without overflow (at 10^9 steps a second, 146 years). */
#define MF_MAX_STEPS ((long long)1 << 62)

/* NULL if every field of s is in its range, else a static sentence naming
 * the first bad field ("lr: must be ..."):
 *   step, rejected   integers in [0, MF_MAX_STEPS]
 *   time_log         -INFINITY (t = 0) or finite
 *   lr               0 (not started: mf_train takes settings.lr) or finite > 0
 *   log_loss         finite, or NaN (not evaluated yet: a fresh state)
 *   rng              not the all-zero state (xoshiro256** would stay at 0)
 *   theta            n_params finite values.
 * These are what a run can produce; mf_checkpoint_read refuses anything
 * else. */
MF_API const char *mf_train_state_validate(const mf_train_state *s);

/* Whether metrics are logged at step s (log-spaced schedule of the settings:
 * step 0 and round(10^(i/k)), k = log_points / log10(H) per decade, where
 * H = log_horizon, or max_steps when that is 0, or 10^6 when both are 0). */
MF_API int mf_is_log_step(const mf_train_settings *s, long long step);

typedef struct mf_callbacks {
    void *user;
    void (*log)(void *user, int level, const char *msg);
    /* Called at every logged step and at the final step. Non-zero return: stop with MF_ERR_CALLBACK. */
    int (*on_metrics)(void *user, const mf_metrics *m);
    /* Called right after on_metrics with the parameters of that row
     * (theta[n_params], read-only, valid during the call), e.g. for
     * per-neuron directions over time. Non-zero return: MF_ERR_CALLBACK. */
    int (*on_snapshot)(void *user, const mf_metrics *m, const double *theta);
    /* Called about every progress_seconds of wall time (default 0.5 s). */
    void (*on_progress)(void *user, const mf_metrics *m, double steps_per_second);
    double progress_seconds;
    /* Called every settings.checkpoint_every steps. Non-zero: MF_ERR_CALLBACK. */
    int (*on_checkpoint)(void *user, const mf_train_state *s);
    /* Polled every step; non-zero: stop with MF_OUT_INTERRUPTED. */
    int (*should_stop)(void *user);
    /* Epoch runs: called with the state and its metrics row at the epochs the
     * archive policy picks (settings.archive_decades, archive_epochs) and at
     * the final epoch, for later evaluation (mf_robust_eval). Non-zero:
     * MF_ERR_CALLBACK. (Epoch runs call on_checkpoint after every
     * settings.checkpoint_every accepted epochs, on_progress once per epoch.) */
    int (*on_archive)(void *user, const mf_train_state *s, const mf_metrics *m);
} mf_callbacks;

typedef struct mf_train_result {
    mf_outcome outcome;
    mf_metrics final;          /* metrics at the final state */
    long long steps, rejected;
    long long smoothed_decrease_step, loss_increase_step; /* steps that set the two maxima
                                                              of final (-1 if none) */
    long long stiff_steps;     /* flow: accepted steps taken by its stiff method */
    /* work of this call: forward + backward passes on the full data (the
     * right-hand side of the flow; rejected attempts included), forward
     * passes alone, and (flow, stiff steps) batch-1 backward passes for the
     * per-term margin gradients */
    long long gradient_evals, forward_evals, term_gradients;
    double wall_seconds;
    double steps_per_second;   /* steps of the step loop per second (setup excluded) */
    const char *reason;        /* MF_OUT_STALLED: why, one static phrase; else NULL */
} mf_train_result;

/* Train. state holds theta (initial parameters, or a resumed state) and is
 * updated in place to the final state. The run continues from state->step,
 * so a state loaded from a checkpoint gives bit-identical metrics to an
 * uninterrupted run (same build, same threads). cb may be NULL.
 * Returns an error code (MF_OK also when the run ended by a non-finite
 * outcome: that is an outcome, in result->outcome). */
MF_API int mf_train(const mf_model *m, const mf_data *data, const mf_train_settings *s,
                    mf_train_state *state, const mf_callbacks *cb, mf_train_result *result,
                    mf_err *e);

/* Epoch runs (src/epoch.c). mf_train runs them when mf_train_is_epoch_run:
 *  - epoch e visits the N samples in batches of settings.batch (the last
 *    one smaller) in the order mf_epoch_permutation(seed, e, rejected);
 *  - a step is theta -= eta grad (1/|B|) sum_{n in B} ell(q_n):
 *    sgd: eta = lr; sgd-lyu-li: eta = alpha / Lbar, Lbar = Loss(theta_e) / N
 *    the mean training loss at the epoch's start ([LL20] App. K, L), in
 *    the log domain: the step is alpha exp(log Lbar_B - log Lbar) G_B with
 *    G_B = grad Loss_B / Loss_B exact at any loss level;
 *  - sgd-lyu-li: after the epoch the full training loss decides: it
 *    decreased and everything stayed finite -> accepted, alpha *= lr_up;
 *    else (also at once when a batch mean loss exceeds loss_cap * Lbar, or
 *    anything is non-finite) the epoch-start state is restored exactly and
 *    the epoch retried with alpha /= lr_down (rejected + 1); alpha <
 *    alpha_min stops the run (stalled);
 *  - metrics (on_metrics, on_snapshot) at the start and after every
 *    accepted epoch; state->step counts the SGD steps of accepted epochs,
 *    state->lr is alpha (lyu-li) or lr, state->rejected the rejected epochs;
 *    the flow time advances by eta / N a step (mean-loss steps);
 *  - max_steps (SGD steps), max_epochs, until_log10_loss, wall_seconds and
 *    should_stop end the run at an epoch boundary; until_time is ignored.
 * A state saved at an epoch boundary resumes bit for bit. */
MF_API int mf_train_is_epoch_run(const mf_train_settings *s);

/* The visiting order of epoch `epoch` after `rejected` rejections: perm [n]
 * a permutation of 0..n-1, by a Fisher-Yates shuffle driven by xoshiro256**
 * seeded with seed * 0x9E3779B97F4A7C15 + epoch * 0xD1B54A32D192ED03 +
 * rejected (mod 2^64). */
MF_API void mf_epoch_permutation(uint64_t seed, long long epoch, long long rejected, int n, int *perm);

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */

/* Checkpoint: binary, magic "MFCKPT\r\n", version, CRC-32 (zlib) over the
 * payload, written atomically (temp file, fsync, rename). fingerprint ties it
 * to a configuration (e.g. CRC of the run's config.json); a checkpoint whose
 * fingerprint or n_params differs is refused with MF_ERR_FOREIGN. Version 2
 * (written now) holds the whole mf_train_state; version 1 files (before the
 * indicators and the flow integrator's mode existed) are still read: the
 * indicators and the margin history start empty there and flow restarts in
 * its explicit mode, so such a resume continues correctly but is not bit
 * for bit the run an uninterrupted version-1 program would have made. */
MF_API int mf_checkpoint_write(const char *path, const mf_train_state *s, uint32_t fingerprint,
                               mf_err *e);
/* Reads into a new state. expect_fingerprint / expect_n_params checked.
 * At most the size of a checkpoint of expect_n_params parameters is read (a
 * longer file or stream is refused: MF_ERR_FOREIGN when its header names
 * another parameter count, MF_ERR_CORRUPT otherwise). After the checksum,
 * every field is checked as mf_train_state_validate does; a field out of its
 * range is MF_ERR_CORRUPT naming the field and its value (a file with a valid
 * checksum but impossible content is forged or written by other software). */
MF_API int mf_checkpoint_read(const char *path, uint32_t expect_fingerprint, size_t expect_n_params,
                              mf_train_state **out, mf_err *e);

/* Write a whole buffer to path atomically (temp file in the same folder,
 * fsync, rename). */
MF_API int mf_write_file_atomic(const char *path, const void *buf, size_t len, mf_err *e);

/* Parameters as text: first line "# marginflow params v1 n=<n_params> model=<spec>",
 * then one value per line, %.17g, C locale. Reading accepts that format or a
 * plain list of numbers separated by whitespace/commas ('#' comments).
 * A first line that starts "# marginflow params" is a header and is checked:
 * version v1, n=<count> and model=<spec> (else MF_ERR_PARSE naming what is
 * wrong); n must equal n_params (else MF_ERR_FOREIGN: the file belongs to
 * another model). mf_params_read_for also checks the model: the header's spec,
 * parsed for m's input dimension and outputs, must give m's canonical spec
 * (else MF_ERR_FOREIGN naming both). Files without a header are read as plain
 * lists by both. A params file is at most MF_PARAMS_MAX_BYTES(n_params)
 * bytes (1 MiB for comments plus 64 bytes a value), checked while reading;
 * a NUL byte or a control character is an error naming its line and column. */
#define MF_PARAMS_MAX_BYTES(n) \
    ((size_t)(n) < (((size_t)-1 >> 7) - ((size_t)1 << 14)) ? ((size_t)1 << 20) + 64 * (size_t)(n) \
                                                            : (size_t)-1)
MF_API int mf_params_write(const char *path, const mf_model *m, const double *theta, mf_err *e);
MF_API int mf_params_read(const char *path, size_t n_params, double *theta, mf_err *e);
MF_API int mf_params_read_for(const char *path, const mf_model *m, double *theta, mf_err *e);
/* Parse "v1,v2,..." (exactly n values) into theta. */
MF_API int mf_params_parse(const char *list, size_t n_params, double *theta, mf_err *e);

/* Format a value as %.17g in the C locale regardless of the process locale. */
MF_API void mf_format_double(char *buf, size_t cap, double v);
/* s as every library message shows a path, spec or token: printable ASCII
 * and printable UTF-8 copied, every other byte (control characters, DEL,
 * malformed UTF-8) written as "\xNN", cut with "..." after max bytes of s.
 * dst[cap] is always NUL-terminated; MF_QUOTE_CAP(max) bytes always hold
 * the whole rendering. Returns dst. For callers (the CLI) that quote what a
 * user typed the same way. */
#define MF_QUOTE_CAP(max) (4 * (size_t)(max) + 4)
MF_API char *mf_quote(char *dst, size_t cap, const char *s, size_t max);
/* Format t = exp(time_log) exactly as a decimal, also beyond double range
 * ("3.1415926535897931e+10000"); "0" when time_log = -INFINITY. The exponent
 * can have up to 308 digits: a buffer of MF_LOG_VALUE_LEN always suffices. */
#define MF_LOG_VALUE_LEN 360
MF_API void mf_format_log_value(char *buf, size_t cap, double time_log);

/* CSV header line of metrics rows (no newline) and one row (no newline).
 * Columns: step,time,log10_time,log10_loss,norm,q_min,normalized_margin,
 * smoothed_margin,layer_margin,lr,train_error,balancedness,beta,
 * smoothed_decrease,loss_increase,margin_change (the fields of mf_metrics).
 * log10_time is empty at t = 0. A quantity that is absent (NAN in
 * mf_metrics: undefined, like beta and margin_change early on, or not
 * representable as a double) or infinite is written as an empty field: CSV
 * readers (gnuplot, pandas) take it as missing, never as a number. (The
 * CLI's JSON files write such values as null.) */
#define MF_METRICS_ROW_LEN 1024 /* always enough for one row (and its NUL) */
MF_API const char *mf_metrics_csv_header(void);
/* The metrics.csv of an epoch run: one row per accepted epoch, columns
 * step,epoch,log10_loss,log10_mean_loss,train_acc,test_acc,normalized_margin,
 * layer_margin,smoothed_margin,norm,q_min,lr,rejected,epoch_seconds,
 * wall_seconds,time,log10_time (train_acc = 1 - train_error; lr = alpha for
 * sgd-lyu-li; absent values empty, as above). */
MF_API const char *mf_epoch_csv_header(void);
MF_API void mf_epoch_csv_row(const mf_metrics *m, char *buf, size_t cap);
MF_API void mf_metrics_csv_row(const mf_metrics *m, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Max-margin references (svm.c)                                            */
/* ------------------------------------------------------------------------ */

/*
 * Exact max-margin references for linear predictors through the
 * origin: the l2 hard-margin SVM (the global optimum of (P) for linear and
 * fully-connected linear nets) and the l1-margin LP (the global optimum for
 * depth-2 diagonal nets). docs/theory.md section 3; [LL20], [VSS22].
 *
 * Notation: z_n = y_n x_n in R^d (n = 1..N), Z = [N][d] with rows z_n,
 * q_n(w) = <w, z_n> the margin of sample n.
 */
typedef enum mf_svm_norm {
    MF_SVM_L2 = 0, /* minimize 1/2 ||w||_2^2  s.t. q_n(w) >= 1   (hard-margin SVM, no bias) */
    MF_SVM_L1      /* minimize ||beta||_1      s.t. q_n(beta) >= 1 (l1-margin LP) */
} mf_svm_norm;

/* Outcome of a solve that returned MF_OK. */
typedef enum mf_svm_status {
    MF_SVM_SOLVED = 0,   /* w is optimal; the residuals say to what accuracy */
    MF_SVM_NONSEPARABLE  /* no w with q_n(w) > 0 for all n: see certificate */
} mf_svm_status;

/* Settings; fill with mf_svm_settings_default, then change fields. */
typedef struct mf_svm_settings {
    double sep_tol;      /* data whose min-norm hull point p (below) has
                            ||p|| <= sep_tol * max_n ||x_n|| are reported
                            NONSEPARABLE; default 1e-12, range [0, 1) */
    double support_tol;  /* n is a support vector iff alpha_n > support_tol *
                            max_m alpha_m; default 1e-12, range [0, 1) */
    double active_tol;   /* n is active iff |q_n(w) - 1| <= active_tol;
                            default 1e-9, range [0, 1) */
    int max_iter;        /* NNLS outer iterations, 0 = 3 N + 100 (default) */
    int polish;          /* 1 (default): re-solve the equality system on the
                            identified support set and keep it if its KKT
                            residual is smaller */
} mf_svm_settings;

MF_API void mf_svm_settings_default(mf_svm_settings *s);
/* NULL if valid, else a static sentence naming the bad field and its range. */
MF_API const char *mf_svm_settings_validate(const mf_svm_settings *s);

/* Result of mf_svm_solve; a plain struct (OSQP "info" style). All arrays are
 * owned by the result and freed by mf_svm_result_free.
 *
 * SOLVED, l2:  w [d] the SVM weights, gamma = 1/||w||_2 = gamma_svm;
 *              alpha [n] the dual variables (alpha >= 0, w = sum alpha_n z_n).
 * SOLVED, l1:  w [d] = beta, gamma = 1/||beta||_1 = gamma_l1 (the l1-normalized
 *              margin max_{||b||_1 = 1} min_n q_n(b)), gamma_diag2 =
 *              gamma_l1 / 2 = 1/(2 ||beta||_1), the global optimum of the
 *              normalized margin of a depth-2 diagonal net <u o v, x>
 *              (docs/theory.md s.3); alpha [n] the LP row duals (multipliers of
 *              q_n >= 1; alpha >= 0, ||Z^T alpha||_inf <= 1).
 * NONSEPARABLE: w = alpha = NULL, gamma = gamma_diag2 = 0; certificate [n]
 *              with c_n >= 0, sum c_n = 1 and certificate_norm =
 *              ||sum c_n z_n||_2 ~ 0 (see mf_svm_solve).
 * support [n_support]: indices n with alpha_n > support_tol * max alpha
 *              (SOLVED) or c_n > 0
 *              (NONSEPARABLE), ascending.
 * Multi-class data (classes = C >= 2; Crammer-Singer form through the
 * origin, see mf_svm_solve): w [C][d] = W (row c the weights of class c),
 * gamma = 1 / ||W||_F (l2) or 1 / ||W||_1 entrywise (l1), gamma_diag2 = 0;
 * alpha [n][C] the multipliers of <w_{y_n} - w_j, x_n> >= 1 (0 at j = y_n);
 * certificate [n][C] likewise; support the samples with a positive
 * multiplier; q_min and n_active of the multi-class margins
 * min_{j != y} <w_y - w_j, x>. */
typedef struct mf_svm_result {
    int status;             /* mf_svm_status */
    int norm;               /* mf_svm_norm */
    int d, n;
    int classes;            /* 0: binary; C >= 2: multi-class, see below */
    double gamma;           /* see above */
    double gamma_diag2;     /* l1 only (0 for l2) */
    double gamma_lower, gamma_upper; /* bracket of the optimal margin (gamma_svm
                                        or gamma_l1) from weak duality, see
                                        mf_svm_solve; 0 when NONSEPARABLE */
    double *w;              /* [d] or NULL */
    double *alpha;          /* [n] or NULL */
    int n_support;
    int *support;           /* [n_support] or NULL */
    int n_active;           /* samples with |q_n(w) - 1| <= active_tol */
    double q_min;           /* min_n q_n(w) (1 at the exact optimum) */
    /* Residuals, all relative (dimensionless); see mf_svm_solve. */
    double primal_residual; /* max(0, 1 - q_min) */
    double dual_residual;   /* l2: ||w - Z^T alpha|| / ||w|| (stationarity);
                               l1: max(0, ||Z^T alpha||_inf - 1) (dual feasibility) */
    double complementarity; /* max_n alpha_n |q_n - 1| / sum_n alpha_n; l1 also
                               max_j |beta_j| |1 - sign(beta_j) (Z^T alpha)_j| / ||beta||_1 */
    double gap;             /* relative duality gap |primal - dual| / primal:
                               l2: P = ||w||^2/2, D = sum alpha - ||Z^T alpha||^2/2;
                               l1: P = ||beta||_1, D = sum alpha */
    double kkt_residual;    /* max of the four above */
    double lp_kkt_primal, lp_kkt_dual; /* l1: GLPK's glp_check_kkt relative
                                          errors (GLP_KKT_PE, GLP_KKT_DE) */
    int iterations;         /* NNLS outer iterations (+ simplex iterations for l1) */
    int polished;           /* 1 if the support-set re-solve was kept */
    double *certificate;    /* [n] or NULL */
    double certificate_norm;
} mf_svm_result;

/* Solve the max-margin problem of the given norm for binary data.
 *
 * Exact problems (z_n = y_n x_n, no bias term):
 *   l2 (Boser, Guyon & Vapnik 1992; Vapnik 1995), primal and dual
 *     (P2)  minimize 1/2 ||w||^2  s.t. <w, z_n> >= 1, n = 1..N
 *     (D2)  maximize sum_n alpha_n - 1/2 ||Z^T alpha||^2  s.t. alpha >= 0
 *   l1  (P1)  minimize ||beta||_1  s.t. <beta, z_n> >= 1
 *       (D1)  maximize sum_n a_n  s.t. ||Z^T a||_inf <= 1, a >= 0.
 *
 * Separability. Both problems are feasible iff the minimum-norm point
 * p = argmin { ||u|| : u in conv{z_1..z_N} } is nonzero (then w = p/||p||^2
 * solves (P2) and gamma_svm = ||p||). p is found exactly (finite active-set
 * method) as least-distance programming (LDP) through NNLS (Lawson & Hanson,
 * Solving Least Squares Problems, 1974, ch. 23, algorithms NNLS and LDP):
 *   minimize || [Z^T; 1^T] u - (0, 1) ||  s.t. u >= 0,
 * whose solution is u = t c with c the simplex weights of p (the library's one
 * NNLS, src/nnls.c; its least-squares subproblems use LAPACK dgelsd, SVD, on
 * the passive set). When polish is set
 * the equality system <w, z_n> = 1 on the support set is re-solved by LAPACK
 * (min-norm w by LQ, then alpha by QR) and kept if its KKT residual is lower.
 *
 * What is certified (up to the floating-point error of evaluating the
 * reported quantities, which the residuals measure):
 *  - SOLVED (l2): w is primal feasible after scaling by 1/q_min, so
 *    gamma_svm >= gamma_lower = q_min / ||w||; by weak duality any feasible
 *    w' has 1/2||w'||^2 >= D2(alpha), so gamma_svm <= gamma_upper =
 *    1 / sqrt(2 D2(alpha)). gamma = 1/||w|| lies in between.
 *  - SOLVED (l1): likewise gamma_l1 >= q_min / ||beta||_1 and, with
 *    a = alpha / max(1, ||Z^T alpha||_inf) dual feasible, ||beta*||_1 >= sum a,
 *    so gamma_l1 <= 1 / sum a.
 *  - NONSEPARABLE: c >= 0, sum c = 1, ||Z^T c|| = certificate_norm.
 *    For every v with ||v||_2 <= 1 (so also every ||v||_1 <= 1),
 *    min_n <v, z_n> <= sum c_n <v, z_n> <= ||Z^T c||: no direction through
 *    the origin classifies the data with normalized margin above ||Z^T c||;
 *    with ||Z^T c|| = 0 (Gordan's alternative) no w has q_n(w) > 0 for all
 *    n. The l1 problem uses the same test and certificate (it is infeasible
 *    exactly when (P2) is).
 *  - l1 method: GLPK's simplex (glp_simplex, dual simplex first, messages
 *    and terminal output off during the call) on (P1) with beta = p - m,
 *    p, m >= 0; the residuals are recomputed here from beta and the row
 *    duals, and GLPK's own glp_check_kkt errors are reported beside them.
 *
 * Scale: the problems are homogeneous in x, and the data are solved at the
 * power-of-two scale where max |x| lies in [0.5, 1), then the results are
 * scaled back exactly: data multiplied by c > 0 give gamma (and its bracket)
 * times c, w over c, alpha over c^2 (l2) or c (l1), the same support and
 * certificate weights, certificate_norm times c, over the whole double range
 * (bit for bit when c is a power of two). An entry of w or alpha, or gamma,
 * that is not a normal double at the caller's scale is NAN (absent).
 *
 * Multi-class data (num_classes = C >= 2): the hard-margin multi-class SVM
 * through the origin (Crammer & Singer 2001 without slack),
 *   minimize 1/2 ||W||_F^2  s.t.  <w_{y_n} - w_j, x_n> >= 1  (j != y_n),
 * (l1: minimize sum |W_cj|), solved as the binary problem on the lifted
 * samples (e_{y_n} - e_j) (x) x_n in R^{C d}, so its certificates are the
 * binary ones; gamma = 1/||W||_F is the global optimum of (P) for a linear
 * multi-class model. At most 2^26 lifted entries (MF_ERR_UNSUPPORTED beyond).
 *
 * data: binary (num_classes == 0, y in {-1, +1}) or multi-class, n >= 1,
 * d >= 1, finite x. settings may be NULL (defaults). On MF_OK *out is a new
 * result (free with mf_svm_result_free) whose status says SOLVED or
 * NONSEPARABLE: a non-separable data set is an answer, not an error.
 * Errors: MF_ERR_INVALID (NULL data/out, bad settings, empty data, labels not
 * +-1, non-finite x), MF_ERR_UNSUPPORTED (lifted problem too large), MF_ERR_NOMEM,
 * MF_ERR_NUMERIC (NNLS or LAPACK or GLPK failed, or no convergence within
 * max_iter). *out is NULL on error. */
MF_API int mf_svm_solve(const mf_data *data, mf_svm_norm norm, const mf_svm_settings *settings,
                        mf_svm_result **out, mf_err *e);

MF_API void mf_svm_result_free(mf_svm_result *r);

/* "solved", "nonseparable"; "l2", "l1". mf_svm_norm_from_name: MF_OK or
 * MF_ERR_INVALID. */
MF_API const char *mf_svm_status_name(int status);
MF_API const char *mf_svm_norm_name(int norm);
MF_API int mf_svm_norm_from_name(const char *s, mf_svm_norm *norm);

/* ------------------------------------------------------------------------ */
/* L2 robustness (robust.c)                                                 */
/* ------------------------------------------------------------------------ */

/* Most radii of one evaluation. */
#define MF_ROBUST_MAX_EPS 32

/* Settings of mf_robust_eval; fill with mf_robust_settings_default. */
typedef struct mf_robust_settings {
    int n_eps;
    double eps[MF_ROBUST_MAX_EPS]; /* L2 radii, ascending, > 0; default 0.1, 0.3, 0.5, 1, 2 */
    int pgd_steps;          /* PGD steps per start, default 50 */
    int pgd_restarts;       /* PGD starts per radius: the clean point, then random points of the
                               ball; default 2 */
    double pgd_step;        /* PGD step length as a multiple of eps / pgd_steps; default 2.5
                               (Madry et al.'s choice) */
    int cw_steps;           /* Carlini-Wagner: Adam iterations per constant, default 100 */
    int cw_search;          /* Carlini-Wagner: binary-search rounds on the constant, default 8 */
    double cw_c0;           /* first constant, in units of 1 / ||grad_x q(x)|| (see mf_robust_eval);
                               default 1 */
    double cw_lr;           /* Adam step on the tanh variable, default 0.01 */
    double lo, hi;          /* the input box every perturbed input is clipped to; default [0, 1] */
    int batch;              /* samples per forward/backward pass, default 100 */
    uint64_t seed;          /* PGD random starts (sample i uses seed and i); default 1 */
} mf_robust_settings;

MF_API void mf_robust_settings_default(mf_robust_settings *s);
/* NULL if valid, else a static sentence naming the bad field and its range. */
MF_API const char *mf_robust_settings_validate(const mf_robust_settings *s);

/* What mf_robust_eval found. An input counts as correct when its margin
 * q > 0 (q = y Phi or Phi_y - max_{j != y} Phi_j; a tie is an error), and as
 * broken at eps by an attack when the attack found x' in the box with
 * ||x' - x||_2 <= eps and q(x') <= 0. Robust accuracy at eps: the fraction
 * of the n inputs that are correct and not broken at eps. */
typedef struct mf_robust_result {
    int n, n_eps;
    double eps[MF_ROBUST_MAX_EPS];
    int n_correct;
    double clean_accuracy;
    double acc_pgd[MF_ROBUST_MAX_EPS];  /* under PGD-L2 */
    double acc_cw[MF_ROBUST_MAX_EPS];   /* under Carlini-Wagner L2 */
    double acc_min[MF_ROBUST_MAX_EPS];  /* under both: the minimum over the attacks, per input */
    double median_norm;     /* median over the n inputs of the smallest perturbation found by
                               either attack (0 for an input that is not correct; INFINITY when
                               more than half are never broken) */
    double median_norm_cw;  /* the same for Carlini-Wagner alone */
    double *norm;           /* [n] the smallest perturbation norm found per input (PGD: the
                               smallest eps it broke), 0 if not correct, INFINITY if none */
    double *norm_cw;        /* [n] Carlini-Wagner's, INFINITY if it found none */
    int *pgd_level;         /* [n] index of the smallest eps PGD broke, n_eps if none, -1 if not
                               correct */
} mf_robust_result;

/*
 * L2 robustness of the classifier theta on data (inputs in [lo, hi]):
 *  - PGD-L2 (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018): for
 *    each radius (ascending; an input broken at a radius counts as broken at
 *    every larger one and is not attacked again) and start (the clean point,
 *    then uniform random points of the ball), pgd_steps steps
 *        delta <- P_box(P_ball(delta + step g / ||g||)),
 *    g = grad_x of the cross-entropy at x + delta, in the log domain, so its
 *    direction is exact at any loss level (mf_loss_eval per input), step =
 *    pgd_step eps / pgd_steps; success at the first iterate with q <= 0.
 *  - Carlini & Wagner's L2 attack (IEEE S&P 2017, f6 with kappa = 0): x' =
 *    lo + (hi - lo)(tanh w + 1)/2, minimize ||x' - x||^2 + (c / g0) max(q(x'), 0)
 *    by Adam (lr cw_lr, beta 0.9 / 0.999) for cw_steps from w(x), keeping the
 *    smallest ||x' - x|| with q(x') <= 0; a binary search on c over cw_search
 *    rounds (start cw_c0; no success: c *= 10 until one, then bisect). g0 =
 *    ||grad_x q(x)|| at the clean input (1 when 0) makes q / g0 the first-order
 *    distance to the decision boundary, so c needs no rescaling when the
 *    network's outputs are 10^100 (a model trained far): our normalization,
 *    the same attack with c scaled per input.
 * Both are searches: a robust accuracy is an upper bound on the true robust
 * accuracy (attacks find adversarial inputs, they never prove there are
 * none), and the minimum over the attacks is the tighter bound.
 * Needs mf_model_backward_input (cnn). Errors: MF_ERR_INVALID (bad settings,
 * inputs outside the box, empty data), MF_ERR_UNSUPPORTED (no input
 * gradient), MF_ERR_DIM, MF_ERR_NOMEM, MF_ERR_NUMERIC (non-finite outputs at
 * the clean inputs). *out is NULL on error.
 */
MF_API int mf_robust_eval(const mf_model *m, const mf_data *data, const double *theta,
                          const mf_robust_settings *s, mf_robust_result **out, mf_err *e);
MF_API void mf_robust_result_free(mf_robust_result *r);

/* ------------------------------------------------------------------------ */
/* Analysis: KKT, local optimality, verdicts (analyze.c, local.c)           */
/* ------------------------------------------------------------------------ */

/*
 * Analysis: KKT certificates and optimality
 * verdicts for problem (P) of docs/theory.md section 3,
 *     (P)  minimize 1/2 ||theta||^2  subject to  q_n(theta) >= 1 for all n.
 *
 * Split of work: section A is src/margin.c; section B (search-based and
 * LP-based local tests) src/local.c; section C is orchestrated by
 * src/analyze.c over kkt.c (KKT by NNLS, Lyu-Li's certificate),
 * global_ref.c (closed-form optima, per-layer problem), second_order.c and
 * verdict.c (the verdict from the evidence).
 */
/* ---------------------------------------------------------------- A: basics */

/* Margins and their gradients at theta: q[n] = margin of sample n (the true
 * margin: y Phi, or Phi_y - max_{j!=y} Phi_j with the argmax j taken as the
 * competing class), J[n][n_params] = grad_theta q_n, with the library's
 * convention sigma'(0) = alpha at ReLU kinks. q or J may be NULL. */
MF_API int mf_margin_jacobian(const mf_model *m, const mf_data *data, const double *theta,
                              double *q, double *J, mf_err *e);

/* Number of hidden units whose pre-activations exist (relu2, relu2-outbias:
 * width; mlp: sum of widths; 0 for models without ReLU), and the
 * pre-activations pre[n][H] at theta (unit order: layer by layer, unit by
 * unit). */
MF_API int mf_model_n_hidden(const mf_model *m);
MF_API int mf_model_preactivations(const mf_model *m, const double *theta, const mf_data *data,
                                   double *pre, mf_err *e);

/* ------------------------------------------------- B: local tests (local.c) */

/* Margin gains are reported at MF_N_GAINS steps eps = 1e-1, 1e-2, 1e-3, 1e-4
 * (a first-order direction gives a gain linear in eps for small eps). */
#define MF_N_GAINS 4
/* Most radii one local search takes. */
#define MF_LOCAL_MAX_RADII 8

/* Directional first-order test at a non-smooth point ([VSS22]; docs/theory.md s.3):
 * search for d with q_n'(theta; d) >= 0 for every active n (q_n <= 1 + act_tol)
 * and <theta, d> < 0, by one LP (GLPK) per sign pattern of the directional
 * derivatives of the pre-activations that are within zero_tol of 0 (at most
 * max_patterns patterns; more -> searched = 0). ||d||_inf <= 1.
 * Supported for relu2 / relu2-outbias-free two-layer nets (relu2 with or
 * without bias/fix-outer) and for models without kinks (one LP). */
typedef struct mf_directional_result {
    int searched;          /* 1 if the test ran over every pattern */
    int n_zero;            /* number of (sample, unit) pre-activations at 0 */
    int n_patterns;        /* LPs solved */
    int found;             /* 1: a feasible descent direction exists (evidence:
                              only a witness along it decides, mf_analyze) */
    double best_inner;     /* min <theta, d> found (< 0: descent to first order) */
    double *d;             /* [n_params] the direction (when found), owned */
    double gain[MF_N_GAINS]; /* gamma(theta + eps d) / gamma(theta) - 1 for eps = 1e-1..1e-4 */
} mf_directional_result;

MF_API int mf_directional_test(const mf_model *m, const mf_data *data, const double *theta,
                               double act_tol, double zero_tol, int max_patterns,
                               mf_directional_result **out, mf_err *e);
MF_API void mf_directional_result_free(mf_directional_result *r);

/* Local constrained re-solves of (P) near theta ([VSS22]; docs/theory.md s.3 "any
 * architecture"): theta~ = theta / q_min^{1/L}; for each radius r in radii[]
 * (relative to ||theta~||), `trials` starts theta~ + r ||theta~|| xi (xi
 * uniform on the unit sphere, seeded by seed), each solved for
 *     minimize 1/2 ||x||^2  s.t.  q_n(x) >= 1,  ||x - theta~|| <= r ||theta~||
 * (the ball keeps the search local: a point it returns lies within the
 * radius), by NLopt SLSQP for small nets and by an augmented Lagrangian with
 * NLopt's L-BFGS beyond MF_SLSQP_MAX_PARAMS parameters (src/auglag.c). Each
 * result is rescaled to q_min = 1 and kept only when it is still inside the
 * ball. best_gamma[r] is the best normalized margin at radius r (NAN when
 * every trial failed), best_theta the best point overall with its relative
 * distance best_dist and the radius index best_radius (-1: none). A better
 * point is a candidate witness (mf_analyze re-evaluates it); finding none is
 * evidence only. */
#define MF_SLSQP_MAX_PARAMS 64
typedef struct mf_local_result {
    int n_radii;
    double radii[MF_LOCAL_MAX_RADII];
    int trials;
    uint64_t seed;
    double gamma0;               /* gamma(theta) */
    double best_gamma[MF_LOCAL_MAX_RADII]; /* best normalized margin found at each radius */
    double best_gain;            /* max over radii of best_gamma / gamma0 - 1 */
    double *best_theta;          /* [n_params], owned */
    double best_dist;            /* ||best_theta - theta~|| / ||theta~|| (0 when none) */
    int best_radius;             /* index into radii of best_theta, -1 when none */
    int evaluations;
    int failures;                /* trials whose re-solve reached no feasible point in the ball */
    char method[32];             /* "SLSQP" or "augmented Lagrangian (L-BFGS)" */
} mf_local_result;

MF_API int mf_local_search(const mf_model *m, const mf_data *data, const double *theta,
                           const double *radii, int n_radii, int trials, uint64_t seed,
                           mf_local_result **out, mf_err *e);
MF_API void mf_local_result_free(mf_local_result *r);

/* Multi-start search for the best normalized margin (`marginflow maxmargin`,
 * src/maxmargin.c). A SEARCH, not a certificate. Each start:
 *  1. mf_model_init(m, "gauss", init_scale, rng seeded by seed + i);
 *  2. made feasible before it is optimized: rescaled to q_min = 1 when it
 *     already separates the data, else a short training run (mf_train with
 *     the default settings and exp loss, at most flow_steps steps, until
 *     Loss < ell(0), which implies q_n > 0 for every n), then rescaled;
 *  3. solved for (P) by SLSQP (NLopt; its dense workspace grows as P^2,
 *     used up to MF_SLSQP_MAX_PARAMS parameters) or by an augmented
 *     Lagrangian with NLopt's L-BFGS inner solver (memory O(P + N n_out),
 *     one batched forward and backward pass per evaluation; src/auglag.c),
 *     then rescaled to q_min = 1 (checked to 1e-9).
 * The memory the chosen method needs is estimated up front (workspace,
 * buffers, the method's own work arrays) and a request beyond max_bytes is
 * refused with MF_ERR_UNSUPPORTED naming the estimate. values[] are the
 * distinct values found (within rel_tol) with their counts, descending. */
typedef enum mf_maxmargin_method {
    MF_MM_AUTO = 0, /* SLSQP up to MF_SLSQP_MAX_PARAMS parameters, else augmented Lagrangian */
    MF_MM_SLSQP,
    MF_MM_AUGLAG
} mf_maxmargin_method;

/* What on_start receives after each start. */
typedef struct mf_maxmargin_progress {
    int start, starts;      /* this start (0-based) of how many */
    double gamma;           /* its normalized margin, NAN when it failed */
    double best;            /* best so far, NAN when none */
    int failures;
    double seconds;         /* wall time since the search began */
    const char *why;        /* for a failed start: why (static text), else NULL */
} mf_maxmargin_progress;

typedef struct mf_maxmargin_settings {
    int starts;             /* default 20, >= 1 */
    uint64_t seed;          /* seed of the first start, default 1 */
    double rel_tol;         /* values within rel_tol are one value, default 1e-6 */
    double init_scale;      /* gauss init scale, default 1 */
    long long flow_steps;   /* feasibility run budget per start, default 20000, >= 1 */
    mf_maxmargin_method method; /* default MF_MM_AUTO */
    double max_bytes;       /* memory limit of the search, default 4 GiB, > 0 */
    void *user;
    void (*on_start)(void *user, const mf_maxmargin_progress *p); /* may be NULL */
    int (*should_stop)(void *user); /* polled often; non-zero: stop, keep the best so far */
} mf_maxmargin_settings;

MF_API void mf_maxmargin_settings_default(mf_maxmargin_settings *s);
/* NULL if valid, else a static sentence naming the bad field and its range. */
MF_API const char *mf_maxmargin_settings_validate(const mf_maxmargin_settings *s);

typedef struct mf_maxmargin_result {
    int starts;
    uint64_t seed;
    double best_gamma;      /* NAN when no start succeeded */
    double *best_theta;     /* [n_params], owned */
    int n_values;
    double *values;         /* [n_values] */
    int *counts;            /* [n_values] */
    int failures;           /* starts that reached no feasible point */
    int starts_done;        /* starts finished (< starts when interrupted) */
    int interrupted;        /* should_stop asked to stop */
    int feasibility_runs;   /* starts that needed the short training run */
    char method[32];        /* the method used */
    double bytes;           /* the memory estimate the search was admitted with */
} mf_maxmargin_result;

/* The memory (bytes) the search with settings s would need and the method
 * it would use (method_out may be NULL); MF_OK, or an error for bad
 * arguments. Does not check the limit. */
MF_API int mf_maxmargin_plan(const mf_model *m, const mf_data *data, const mf_maxmargin_settings *s,
                      double *bytes, mf_maxmargin_method *method_out, mf_err *e);
/* The search with settings s (NULL: defaults). */
MF_API int mf_maxmargin_run(const mf_model *m, const mf_data *data, const mf_maxmargin_settings *s,
                     mf_maxmargin_result **out, mf_err *e);
/* The defaults with starts, seed and rel_tol given (the original interface). */
MF_API int mf_maxmargin(const mf_model *m, const mf_data *data, int starts, uint64_t seed, double rel_tol,
                 mf_maxmargin_result **out, mf_err *e);
MF_API void mf_maxmargin_result_free(mf_maxmargin_result *r);

/* ------------------------------------------------------ C: the whole analysis */

/*
 * The verdict rule (src/verdict.c; README "Verdicts"): every verdict but
 * "inconclusive" rests on evidence the analysis re-checks by direct
 * evaluation before it reports it:
 *   global           gamma equals an EXACT reference gamma* (closed form or a
 *                    certified solve) to global_tol;
 *   local-certified  H positive definite on the critical cone by a margin
 *                    larger than its estimated numerical error (it wins over
 *                    a search witness, which is then another basin);
 *   not-local        a WITNESS (mf_witness): a point within the stated radius
 *                    of theta~ with q_min >= 1 and a normalized margin larger
 *                    than the reference's by more than the stated noise bound,
 *                    re-evaluated from scratch;
 *   inconclusive     KKT, but nothing above holds: the reason lists the
 *                    evidence (negative curvature without a witness, searches
 *                    that found nothing, a KKT residual that is only an upper
 *                    bound, ...);
 *   not-kkt          the exact KKT residual exceeds kkt_tol, or q_min <= 0;
 *   non-homogeneous  problem (P) does not apply.
 */
typedef enum mf_verdict {
    MF_VERDICT_GLOBAL = 0,      /* certified: gamma = gamma* within tolerance (exact reference) */
    MF_VERDICT_LOCAL_CERTIFIED, /* second-order sufficient condition holds beyond its error */
    MF_VERDICT_INCONCLUSIVE,    /* KKT; nothing certified either way (the reason says what was found) */
    MF_VERDICT_NOT_LOCAL,       /* a re-evaluated witness: a better feasible point nearby */
    MF_VERDICT_NOT_KKT,         /* eps above tolerance (or not separating) */
    MF_VERDICT_NON_HOMOGENEOUS  /* (P) theory does not apply */
} mf_verdict;
/* The former name of MF_VERDICT_INCONCLUSIVE (verdict "local-evidence"):
 * the same value; mf_verdict_from_name still reads "local-evidence". */
#define MF_VERDICT_LOCAL_EVIDENCE MF_VERDICT_INCONCLUSIVE

MF_API const char *mf_verdict_name(mf_verdict v); /* "global", "local-certified", "inconclusive", ... */
/* The verdict called s: MF_OK, or MF_ERR_INVALID for an unknown name.
 * "local-evidence" (the former name) reads as MF_VERDICT_INCONCLUSIVE. */
MF_API int mf_verdict_from_name(const char *s, mf_verdict *v);

/* A witness that theta~ is not optimal for (P) within the stated radius
 * (not a local optimum, unless the second-order sufficient condition says
 * the point is a strict local minimum with another basin nearby): a point
 * theta with
 * q_min(theta) >= 1 (by a fresh batched forward pass), within relative
 * distance `radius` of theta~, whose normalized margin exceeds the
 * reference by more than the noise bound:
 *   gain_ref = gamma / reference - 1 > noise,
 *   noise    = max(1e-9, 100 rounding, defect),
 * where rounding bounds the relative rounding error of the two gamma
 * evaluations (first order in the unit roundoff, from a forward pass with
 * |theta| and |x|) and defect is 0 when the reference is the polished KKT
 * point near theta~ (mf_analysis.gamma_polished), else the change of gamma
 * the point's distance from its limit allows (2 L (eps + delta / sum
 * lambda) times the distance moved). ||theta|| < ||theta~|| follows: at
 * q_min >= 1, ||theta||^L <= 1 / gamma < 1 / gamma(theta~). */
typedef struct mf_witness {
    int found;              /* 1: theta below is a witness */
    char kind[32];          /* "second-order curve", "directional", "local search", "per-layer QP" */
    double *theta;          /* [n_params], owned; NULL when not found */
    double radius;          /* the stated radius, relative to ||theta~|| */
    double distance;        /* ||theta - theta~|| / ||theta~|| */
    double q_min, norm, gamma; /* of theta, re-evaluated from scratch */
    double gamma0;          /* gamma(theta~), same evaluation */
    double reference;       /* the normalized margin it is compared with (>= gamma0) */
    double gain;            /* gamma / gamma0 - 1 */
    double gain_ref;        /* gamma / reference - 1 */
    double noise;           /* the bound gain_ref exceeds */
    double rounding;        /* relative rounding error bound of the gamma evaluations */
    double norm_ratio;      /* ||theta|| / ||theta~|| (q_min(theta) >= 1 = q_min(theta~)) */
} mf_witness;

typedef struct mf_analyze_settings {
    double kkt_tol;       /* relative eps tolerance for "is KKT", default 1e-3 */
    double act_tol;       /* active set: q_n <= 1 + act_tol, default 1e-3 */
    double zero_tol;      /* pre-activation treated as 0 (a kink) if |z| <= zero_tol * scale,
                             default 1e-3: the resolution of a finite run, as act_tol */
    double global_tol;    /* |gamma / gamma* - 1| <= global_tol is "global", default 1e-4 */
    double hess_h;        /* step for Hessians by differences of exact gradients, default 1e-5 */
    int local_trials;     /* SLSQP starts per radius, default 8 */
    uint64_t seed;        /* default 1 */
    int max_patterns;     /* directional test, default 4096 */
    int layer;            /* -1 = whole network (default); l >= 0: per-layer problem P_l */
    int always_local;     /* 1: run the local tests (second order, directional, searches) and
                             report their evidence also when the global reference already
                             decided the verdict; default 0 */
} mf_analyze_settings;

MF_API void mf_analyze_settings_default(mf_analyze_settings *s);
MF_API const char *mf_analyze_settings_validate(const mf_analyze_settings *s);

typedef struct mf_analysis {
    int n, n_params, degree, homogeneous;
    double q_min, norm, gamma;      /* at the given theta */
    double layer_margin;
    double *theta_tilde;            /* [n_params] theta / q_min^{1/L} */
    /* KKT by NNLS (Clarke coefficients free at kinks) */
    double *lambda;                 /* [n] */
    int n_active;
    int *active;                    /* [n] 1 if q_n <= 1 + act_tol */
    double eps, delta;              /* eps relative to ||theta~|| */
    double euler_lhs, euler_rhs;    /* ||theta~||^2 and L sum lambda */
    int n_kinks;                    /* pre-activations treated as zero */
    double kink_distance;           /* min over the active samples' pre-activations z (not
                                       at a kink) of |z| / ||h_in|| / ||theta~||: how far,
                                       relative, the unit's own weights are from making z = 0
                                       (exact for two-layer nets; deeper, a perturbation of
                                       earlier layers may need less); NAN: no hidden units */
    /* Lyu & Li's certificate from the loss gradient at theta */
    double ll_beta, ll_eps, ll_delta;
    /* global reference */
    int has_global;
    double gamma_star;              /* NAN if unknown */
    char global_source[128];        /* e.g. "hard-margin SVM: gamma_svm * k^{-k/2}"; with only
                                       a bracket (gamma_lower), the bracket's method */
    double ratio;                   /* gamma / gamma_star */
    int kkt_exact;                  /* 1: every kink's exact Clarke set entered the NNLS;
                                       0: some kinks used sigma'(0) = alpha (budget), so eps
                                       is only an upper bound of the exact residual */
    /* second order (smooth points) */
    int second_order_done;
    char hessian_method[64];        /* "Hessian-vector products by central differences ..." */
    double min_eig;                 /* smallest eigenvalue of H on the critical subspace;
                                       NAN (absent) with the reason in min_eig_absent */
    double min_eig_err;             /* its estimated numerical error (NAN when absent) */
    int so_dim;                     /* dimension of the critical subspace (-1: not computed) */
    char min_eig_absent[160];       /* why min_eig is absent, "" when present */
    double *dir;                    /* [n_params] its eigenvector (unit), owned */
    double gain[MF_N_GAINS];        /* normalized-margin gains along the second-order curve
                                       theta~ + t d + t^2/2 c (c the correction that keeps
                                       the active margins to second order), rescaled to
                                       q_min = 1, at t = r ||theta~||, r = 1e-1..1e-4;
                                       NAN (absent) with the reason in gain_absent */
    char gain_absent[160];          /* why gain[] is absent, "" when present */
    /* non-smooth and search-based tests */
    mf_directional_result *directional; /* NULL if not run */
    mf_local_result *local;             /* NULL if not run */
    double gamma_polished;              /* normalized margin of the KKT point SLSQP reaches
                                           from theta~ itself (the reference for search
                                           gains); NAN if not run or infeasible */
    /* per-layer problem P_l (settings.layer >= 0) */
    int layer;
    double layer_opt;               /* optimal value of the convex per-layer problem, NAN if n/a */
    double layer_value;             /* value at theta~ */
    mf_witness witness;             /* the certificate of a not-local verdict (found = 0 otherwise) */
    double gamma_lower, gamma_upper;/* a certified bracket of gamma* (a reference solver's,
                                       or multi-class fc-linear), NAN otherwise; gamma >=
                                       gamma_upper (1 - global_tol) is "global", gamma <
                                       gamma_lower (1 - global_tol) is certified not global */
    double *global_theta;           /* a reference solver's network attaining gamma_lower
                                       (re-evaluated by the solver), model global_spec of
                                       global_n_params parameters (its own width), owned;
                                       NULL when the reference gives none */
    size_t global_n_params;
    char global_spec[MF_SPEC_LEN];
    mf_verdict verdict;
    char verdict_reason[1024];      /* what is proved / what is evidence */
    mf_analyze_settings settings;   /* the settings (tolerances) it was judged with */
} mf_analysis;

MF_API int mf_analyze(const mf_model *m, const mf_data *data, const double *theta,
                      mf_loss_kind loss, const mf_analyze_settings *s, mf_analysis **out,
                      mf_err *e);
MF_API void mf_analysis_free(mf_analysis *a);

/* ------------------------------------------------------------------------ */
/* Global optimum of bias-free two-layer (leaky) ReLU nets (global_relu2.c)  */
/* ------------------------------------------------------------------------ */

/*
 * The certified global max-margin value gamma* of Phi(x) = sum_k a_k
 * sigma(<w_k, x>), sigma(z) = max(z, alpha z), alpha in [0, 1), no bias,
 * over ALL widths (problem (P) of docs/theory.md, L = 2). By balancing each
 * neuron, OPT(P) = min sum_k |a_k| ||w_k|| = 1 / (2 gamma*), and that is the
 * convex program of Pilanci & Ergen (ICML 2020) over the activation
 * patterns D_i = diag(1[X u >= 0]) of the data:
 *   min sum_i ||v_i|| + ||w_i||  s.t.  y o sum_i Dt_i X (v_i - w_i) >= 1,
 *       (2 D_i - I) X v_i >= 0,  (2 D_i - I) X w_i >= 0,
 *   Dt_i = alpha I + (1 - alpha) D_i,
 * whose dual is  max sum_n lambda_n  s.t.  lambda >= 0 and
 *   rho(lambda) = max_{||u|| <= 1} |sum_n lambda_n y_n sigma(<x_n, u>)| <= 1.
 * The derivation and the exactness bound (an optimal net of width <= n
 * exists) are in docs/theory.md.
 *
 * What is certified (every number re-evaluated here, not taken from a
 * solver):
 *  - gamma_lower = q_min(theta) / ||theta||^2 of the returned network theta,
 *    its margins computed by mf_model_forward: a certified LOWER bound on
 *    gamma* whatever the patterns (any network's normalized margin is one).
 *  - gamma_upper = rho(lambda) / (2 sum_n lambda_n) for the returned
 *    lambda >= 0 (weak duality): an UPPER bound on gamma* when rho was
 *    evaluated over every direction u, i.e. exactly for d <= 2 (an angular
 *    sweep over the arcs of the arrangement, on which the sum is linear) and,
 *    for d >= 3, when every cell of the arrangement was enumerated (rho is
 *    bounded cell by cell by ||s g_i + A_i^T mu_i|| with mu_i >= 0,
 *    A_i = (2 D_i - I) X, which holds for every mu_i >= 0). With sampled
 *    patterns and d >= 3 the upper bound covers only the sampled cells and
 *    is evidence, not proof: upper_certified = 0 says so.
 */
typedef struct mf_global_settings {
    int sample;          /* 0 (default): enumerate every cell of the arrangement of the
                            hyperplanes {u : <x_n, u> = 0}; K > 0: the patterns of K random
                            Gaussian directions u instead (lower bound certified only) */
    int max_patterns;    /* at most this many patterns (cells); enumeration beyond it is
                            refused with MF_ERR_UNSUPPORTED; default 4096, range [2, 10^6] */
    uint64_t seed;       /* sampling seed, default 1 */
    double tol;          /* IPOPT's convergence tolerance (option tol), default 1e-12,
                            range (0, 1e-2] */
    int max_iter;        /* IPOPT iterations, default 3000, range [1, 10^6] */
    double max_seconds;  /* IPOPT CPU-time limit (max_cpu_time), default 600, > 0 */
} mf_global_settings;

MF_API void mf_global_settings_default(mf_global_settings *s);
/* NULL if valid, else a static sentence naming the bad field and its range. */
MF_API const char *mf_global_settings_validate(const mf_global_settings *s);

typedef struct mf_global_result {
    int n, d;
    double alpha;
    /* patterns */
    int enumerated;        /* 1: every cell of the arrangement; 0: sampled */
    int n_samples;         /* directions drawn (sampled), 0 when enumerated */
    int n_patterns;        /* distinct activation patterns used by the program */
    int n_lines;           /* distinct hyperplanes (parallel x_n merged) */
    /* the bracket gamma_lower <= gamma* <= gamma_upper */
    double gamma;          /* = gamma_lower: the normalized margin of theta */
    double gamma_lower;    /* certified: q_min / ||theta||^2 by mf_model_forward */
    double gamma_upper;    /* rho(lambda) / (2 sum lambda); a bound iff upper_certified */
    int upper_certified;   /* 1: gamma_upper is proved (see above); 0: evidence only */
    double gap;            /* (gamma_upper - gamma_lower) / gamma_upper (rounding can
                              make it a few ulps negative) */
    /* the primal network: relu2:width=width,alpha=alpha, q_min = 1, balanced */
    char spec[MF_SPEC_LEN];/* "relu2:width=M,alpha=A" (mf_model_parse it for theta) */
    int width;             /* number of neurons (nonzero blocks) */
    size_t n_params;       /* width * (d + 1) */
    double *theta;         /* [n_params]: W [width][d] then a [width], owned */
    double q_min;          /* min_n q_n(theta) by mf_model_forward (1 up to rounding) */
    double path_norm;      /* sum_k |a_k| ||w_k|| = ||theta||^2 / 2 */
    /* the dual certificate */
    double *lambda;        /* [n] >= 0, scaled so that rho(lambda) = 1 */
    double rho;            /* rho of the solver's lambda before that scaling */
    double rho_cells;      /* the cell-by-cell bound max_i ||s g_i + A_i^T mu_i|| of the
                              same lambda over the program's patterns (>= rho up to
                              rounding; the bound used for d >= 3) */
    int n_support;         /* samples with lambda_n > 1e-9 max lambda */
    /* solver */
    char solver[128];      /* e.g. "IPOPT 3.11 (MUMPS) on the dual QCQP + GLPK simplex" */
    int solver_status;     /* IPOPT's ApplicationReturnStatus (0 = solved) */
    int iterations;        /* IPOPT iterations */
    double solver_objective; /* IPOPT's reported dual objective (not used for any bound) */
    double lp_objective;   /* GLPK's value of the re-weighting LP, sum_j c_j in the units
                              of x (0 when GLPK did not solve it) */
    double seconds_patterns, seconds_solve, seconds_certify;
} mf_global_result;

/*
 * Solve the max-margin problem of the bias-free two-layer (leaky) ReLU model
 * m (kind relu2, no bias, no fix-outer, 0 <= alpha < 1; m->width is ignored:
 * the answer holds for every width >= result->width) on binary data, and
 * certify the value as described above.
 *
 * Method: (1) the activation patterns: d = 2 an angular sweep (2L cells for
 * L distinct lines), d = 1 or d >= 3 incremental enumeration of the cells of
 * the central arrangement, one GLPK LP per (cell, new hyperplane) whose
 * interior point is then checked by direct evaluation, or sampling
 * (settings.sample); (2) the program is feasible iff the lifted points
 * (Dt_i x_n)_i are linearly separable through the origin, decided exactly by
 * mf_svm_solve (else the data are not separable by any such net);
 * (3) IPOPT solves the dual of the convex program as a smooth convex QCQP
 *   max sum lambda  s.t.  h_b = s_b X^T Dt_i (y o lambda) + A_i^T mu_b,
 *       ||h_b||^2 <= 1,  lambda, mu_b >= 0   (b = (i, s_b), s_b = +-1),
 * whose constraint multipliers are the primal neurons; (4) a GLPK simplex
 * LP re-weights those neuron directions (a vertex: at most n neurons);
 * (5) the certificate is evaluated as described above.
 *
 * settings may be NULL (defaults). On MF_OK *out is a new result (free with
 * mf_global_result_free). Errors (*out NULL): MF_ERR_INVALID (NULL
 * arguments, bad settings, labels not +-1, non-finite x, data and model
 * dimensions differ, alpha outside [0, 1): alpha = 1 is a linear model, use
 * mf_svm_solve), MF_ERR_UNSUPPORTED (not relu2, bias, fix-outer, multi-class
 * data, more than max_patterns cells to enumerate), MF_ERR_NONSEPARABLE (no
 * such network has q_n > 0 for all n: a sample at x = 0, or a Gordan
 * certificate for the lifted points), MF_ERR_NUMERIC (IPOPT or GLPK
 * failed, or the evaluated certificate is not finite), MF_ERR_NOMEM.
 */
MF_API int mf_global_relu2(const mf_model *m, const mf_data *data,
                           const mf_global_settings *settings, mf_global_result **out,
                           mf_err *e);
MF_API void mf_global_result_free(mf_global_result *r);

#ifdef __cplusplus
}
#endif
#endif /* MARGINFLOW_H */

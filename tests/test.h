/*
 * test.h -- the tiny test helper every tests/test_*.c includes.
 *
 * Each check prints the measured and expected values when it fails, and the
 * program ends with "<file>: N passed, N failed" and exit status 1 on any
 * failure. tests/run-tests adds the counts of all programs.
 *
 *   TEST(name) { CHECK(x > 0, "x = %g", x); CHECK_NEAR(got, want, tol); }
 *   int main(void) { RUN(name); return TEST_REPORT(); }
 */
#ifndef MF_TEST_H
#define MF_TEST_H

#include <math.h>
#include <stdio.h>

static int t_pass, t_fail;
static const char *t_current = "";

#define TEST(name) static void name(void)
#define RUN(name)                                                                          \
    do {                                                                                   \
        t_current = #name;                                                                 \
        name();                                                                            \
    } while (0)

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            t_pass++;                                                                      \
        } else {                                                                           \
            t_fail++;                                                                      \
            fprintf(stderr, "FAIL %s (%s:%d): %s: ", t_current, __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

/* |got - want| <= tol, with both printed on failure; NaN always fails. */
#define CHECK_NEAR(got, want, tol)                                                         \
    do {                                                                                   \
        double g_ = (got), w_ = (want), t_ = (tol);                                        \
        CHECK(fabs(g_ - w_) <= t_, "got %.17g, want %.17g (tol %g, off by %g)", g_, w_, t_,  \
              fabs(g_ - w_));                                                              \
    } while (0)

#define CHECK_EQ_INT(got, want)                                                            \
    do {                                                                                   \
        long long g_ = (long long)(got), w_ = (long long)(want);                           \
        CHECK(g_ == w_, "got %lld, want %lld", g_, w_);                                    \
    } while (0)

#define TEST_REPORT()                                                                      \
    (printf("%s: %d passed, %d failed\n", __FILE__, t_pass, t_fail), t_fail ? 1 : 0)

#endif

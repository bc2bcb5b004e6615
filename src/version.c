/*
 * version.c -- what a program or a binding asks of the library it loaded:
 * its version, its ABI revision and the sizes of the public structs.
 *
 * A binding that mirrors the structs of marginflow.h (python/marginflow
 * does, with ctypes) compares each mirror's size with mf_sizeof at load
 * time, so a library built from another header is refused with a sentence
 * instead of being read at the wrong offsets. The table below lists every
 * public struct (tests/cli/abi.sh checks that it lists every struct the
 * header defines, and tests/test_abi.c that each size is sizeof its type).
 */
#include "internal.h"

#include <string.h>

const char *mf_version(void) { return MF_VERSION; }

int mf_abi_version(void) { return MF_ABI_VERSION; }

#define T(type) {#type, sizeof(type)}
static const struct {
    const char *name;
    size_t size;
} sizes[] = {
    T(mf_err),          T(mf_rng),             T(mf_data),
    T(mf_layer),        T(mf_model),           T(mf_units),
    T(mf_metrics),      T(mf_train_settings),  T(mf_train_state),
    T(mf_callbacks),    T(mf_train_result),    T(mf_svm_settings),
    T(mf_svm_result),   T(mf_directional_result), T(mf_local_result),
    T(mf_maxmargin_result), T(mf_analyze_settings), T(mf_analysis),
    T(mf_global_settings), T(mf_global_result),
    T(mf_maxmargin_progress), T(mf_maxmargin_settings), T(mf_witness),
    T(mf_cnn_layer),        T(mf_robust_settings), T(mf_robust_result),
};
#undef T

size_t mf_sizeof(const char *type) {
    for (size_t i = 0; type && i < sizeof sizes / sizeof sizes[0]; i++)
        if (!strcmp(sizes[i].name, type)) return sizes[i].size;
    return 0;
}

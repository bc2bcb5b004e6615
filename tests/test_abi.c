/*
 * test_abi.c -- the library's answers about itself (src/version.c): the
 * running version and ABI revision are the header's, mf_sizeof gives
 * sizeof of every public struct and 0 for anything else. (That every struct
 * of the header is in the table, and that the shared library exports
 * exactly the header's functions, is checked by tests/cli/abi.sh.)
 */
#include "marginflow.h"
#include "test.h"

#include <string.h>

TEST(version) {
    CHECK(strcmp(mf_version(), MF_VERSION) == 0, "mf_version() = %s, header %s", mf_version(),
          MF_VERSION);
    CHECK_EQ_INT(mf_abi_version(), MF_ABI_VERSION);
}

TEST(sizes) {
#define S(type) CHECK(mf_sizeof(#type) == sizeof(type), "%s: %zu, sizeof %zu", #type, mf_sizeof(#type), \
                      sizeof(type))
    S(mf_err);
    S(mf_rng);
    S(mf_data);
    S(mf_layer);
    S(mf_model);
    S(mf_units);
    S(mf_metrics);
    S(mf_train_settings);
    S(mf_train_state);
    S(mf_callbacks);
    S(mf_train_result);
    S(mf_svm_settings);
    S(mf_svm_result);
    S(mf_directional_result);
    S(mf_local_result);
    S(mf_maxmargin_result);
    S(mf_analyze_settings);
    S(mf_analysis);
    S(mf_global_settings);
    S(mf_global_result);
    S(mf_cnn_layer);
    S(mf_robust_settings);
    S(mf_robust_result);
    S(mf_maxmargin_progress);
    S(mf_maxmargin_settings);
    S(mf_witness);
#undef S
    CHECK(mf_sizeof("mf_work") == 0, "the opaque workspace has no size: %zu", mf_sizeof("mf_work"));
    CHECK(mf_sizeof("mf_modelx") == 0 && mf_sizeof("mf_mode") == 0 && mf_sizeof("") == 0,
          "names that are not structs");
    CHECK(mf_sizeof(NULL) == 0, "NULL");
}

int main(void) {
    RUN(version);
    RUN(sizes);
    return TEST_REPORT();
}

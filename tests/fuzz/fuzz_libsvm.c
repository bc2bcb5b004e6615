/*
 * fuzz_libsvm.c -- libFuzzer harness for the libsvm reader (mf_data_load with
 * format "libsvm"). The input bytes are the file; fuzz_data_file (fuzz.h)
 * states what must hold.
 */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("libsvm");
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    fuzz_data_file("libsvm", data, size);
    return 0;
}

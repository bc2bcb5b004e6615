/*
 * fuzz_csv.c -- libFuzzer harness for the csv reader (mf_data_load with
 * format "csv"). The input bytes are the file; fuzz_data_file (fuzz.h)
 * states what must hold.
 */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup("csv");
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    fuzz_data_file("csv", data, size);
    return 0;
}

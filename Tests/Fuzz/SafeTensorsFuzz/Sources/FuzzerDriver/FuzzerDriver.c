// Calls libFuzzer's LLVMFuzzerRunDriver with C's calling convention on Swift's behalf.
#include "FuzzerDriver.h"

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

int fuzz_run_driver(int *argc, char ***argv, fuzz_callback callback) {
    return LLVMFuzzerRunDriver(argc, argv, callback);
}

// The libFuzzer entry point for programs that keep their own `main` (LLVM 12 and later), for Swift.
#ifndef FUZZER_DRIVER_H
#define FUZZER_DRIVER_H

#include <stddef.h>
#include <stdint.h>

typedef int (*fuzz_callback)(const uint8_t *data, size_t size);

/* Runs libFuzzer with the program's arguments and the callback; returns its exit status. */
int fuzz_run_driver(int *argc, char ***argv, fuzz_callback callback);

#endif

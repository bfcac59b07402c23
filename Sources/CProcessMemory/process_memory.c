/*
 * process_memory.c: see process_memory.h.
 */
#include "process_memory.h"

#if defined(__GLIBC__)
#include <malloc.h>

int process_memory_keep_freed(void) {
    /* Setting either turns off glibc's dynamic adjustment of both. 32 MB is the largest mmap
     * threshold glibc accepts on 64-bit targets; larger blocks still map and unmap. */
    const int mapped = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    const int trimmed = mallopt(M_TRIM_THRESHOLD, 1 << 30); /* trim only past 1 GB of free top */
    return mapped && trimmed;
}
#else
int process_memory_keep_freed(void) { return 0; }
#endif

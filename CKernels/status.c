/*
 * status.c: status strings, the version, workspace allocation and the dropout hash: the small
 * pieces of the public API that every kernel shares.
 */
#include <stdlib.h>

#include "internal.h"

const char *attn_status_string(attn_status status) {
    switch (status) {
    case ATTN_OK: return "ok";
    case ATTN_ERR_NULL_POINTER: return "a required pointer is null";
    case ATTN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ATTN_ERR_INVALID_STRIDE: return "invalid stride";
    case ATTN_ERR_OVERFLOW: return "size overflow";
    case ATTN_ERR_OUT_OF_MEMORY: return "out of memory";
    case ATTN_ERR_UNSUPPORTED: return "unsupported on this CPU or build";
    }
    return "unknown status";
}

const char *attn_version(void) { return ATTN_VERSION_STRING; }

void *attn_alloc(int64_t bytes) {
    /* Round up to the alignment, as aligned_alloc requires; refuse what size_t cannot hold. */
    int64_t rounded;
    if (bytes <= 0 || !attn_add_ok(bytes, 63, &rounded)) return NULL;
    rounded &= ~(int64_t)63;
    if ((uint64_t)rounded > (uint64_t)SIZE_MAX) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)rounded) != 0) return NULL;
    return p;
}

void attn_free(void *p) { free(p); }

uint32_t attn_dropout_bits(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

uint32_t attn_dropout_threshold(float p) {
    if (!(p > 0.0f)) return 0;
    if (!(p < 1.0f)) return UINT32_MAX;
    return (uint32_t)((double)p * 4294967296.0);
}

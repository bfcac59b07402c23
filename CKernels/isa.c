/*
 * isa.c: choosing the instruction set once, at run time. The best path the CPU supports is used
 * unless ATTN_ISA names a supported lower one; attn_set_isa overrides both (tests, benchmarks).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef ATTN_HAVE_X86_PATHS
#include <cpuid.h>

/* F16C (CPUID leaf 1, ECX bit 29): the x86 kernels convert f16 with it. Every AVX2 CPU has it, but
 * a hypervisor may hide it, and __builtin_cpu_supports has no name for it in older compilers. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static const attn_kernels *table_for(attn_isa isa) {
    switch (isa) {
    case ATTN_ISA_SCALAR:
#if !defined(__aarch64__)
        return &attn_kernels_scalar;
#else
        return NULL;
#endif
    case ATTN_ISA_NEON:
#if defined(__aarch64__)
        return &attn_kernels_scalar; /* the portable path, compiled with NEON on arm64 */
#else
        return NULL;
#endif
#ifdef ATTN_HAVE_X86_PATHS
    case ATTN_ISA_AVX2:
        __builtin_cpu_init();
        return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c()) ? &attn_kernels_avx2
                                                                                                  : NULL;
    case ATTN_ISA_AVX512:
        __builtin_cpu_init();
#if defined(ATTN_EMULATE_AVX512) /* test builds only: see kernels_avx512.c */
        return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c()) ? &attn_kernels_avx512
                                                                                                  : NULL;
#else
        return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && cpu_has_f16c())
                   ? &attn_kernels_avx512 : NULL;
#endif
#else
    case ATTN_ISA_AVX2:
    case ATTN_ISA_AVX512:
        return NULL;
#endif
    }
    return NULL;
}

static const attn_kernels *detect(void) {
    const char *forced = getenv("ATTN_ISA");
    if (forced) {
        for (int isa = ATTN_ISA_SCALAR; isa <= ATTN_ISA_AVX512; isa++) {
            const attn_kernels *t = table_for((attn_isa)isa);
            if (t && strcmp(forced, attn_isa_name((attn_isa)isa)) == 0) return t;
        }
    }
    for (int isa = ATTN_ISA_AVX512; isa >= ATTN_ISA_SCALAR; isa--) {
        const attn_kernels *t = table_for((attn_isa)isa);
        if (t) return t;
    }
    return &attn_kernels_scalar;
}

/* Set by the first caller; concurrent first callers all compute and store the same pointer. */
static const attn_kernels *current;

const attn_kernels *attn_kernels_current(void) {
    const attn_kernels *t = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (!t) {
        t = detect();
        __atomic_store_n(&current, t, __ATOMIC_RELEASE);
    }
    return t;
}

attn_isa attn_get_isa(void) {
    const attn_kernels *t = attn_kernels_current();
#if defined(__aarch64__)
    if (t->isa == ATTN_ISA_SCALAR) return ATTN_ISA_NEON;
#endif
    return t->isa;
}

int attn_isa_supported(attn_isa isa) { return table_for(isa) != NULL; }

attn_status attn_set_isa(attn_isa isa) {
    if ((int)isa < ATTN_ISA_SCALAR || (int)isa > ATTN_ISA_AVX512) return ATTN_ERR_INVALID_ARGUMENT;
    const attn_kernels *t = table_for(isa);
    if (!t) return ATTN_ERR_UNSUPPORTED;
    __atomic_store_n(&current, t, __ATOMIC_RELEASE);
    return ATTN_OK;
}

const char *attn_isa_name(attn_isa isa) {
    switch (isa) {
    case ATTN_ISA_SCALAR: return "scalar";
    case ATTN_ISA_NEON: return "neon";
    case ATTN_ISA_AVX2: return "avx2";
    case ATTN_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

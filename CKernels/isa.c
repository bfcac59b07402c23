/*
 * isa.c: choosing the instruction set once, at run time. The best path the CPU supports is used
 * unless ATTN_ISA names a supported lower one; attn_set_isa overrides both (tests, benchmarks).
 * Likewise how bf16 products are formed (attn_bf16_dot): VDPBF16PS when the CPU has AVX512_BF16,
 * unless ATTN_BF16_DOT or attn_set_bf16_dot says otherwise.
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

#if defined(ATTN_HAVE_BF16_DOT)
/* AVX512_BF16: CPUID leaf 7 subleaf 1, EAX bit 5 (subleaf 1 exists when subleaf 0's EAX, the
 * largest subleaf, is at least 1), on top of the AVX-512 path's own checks, which include the OS
 * saving the zmm and mask registers (__builtin_cpu_supports reads XGETBV). */
static int cpu_has_avx512_bf16(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || a < 1) return 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}
#endif
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

/* ---- bf16 products ---- */

int attn_bf16_dot_supported(attn_bf16_dot mode) {
    switch (mode) {
    case ATTN_BF16_DOT_OFF:
    case ATTN_BF16_DOT_EMULATED:
        return 1;
    case ATTN_BF16_DOT_NATIVE:
#if defined(ATTN_HAVE_BF16_DOT)
        return table_for(ATTN_ISA_AVX512) != NULL && cpu_has_avx512_bf16();
#else
        return 0;
#endif
    }
    return 0;
}

/* Stored as mode + 1, so 0 means not chosen yet. */
static int bf16_dot_mode;

attn_bf16_dot attn_bf16_dot_current(void) {
    int m = __atomic_load_n(&bf16_dot_mode, __ATOMIC_ACQUIRE);
    if (!m) {
        attn_bf16_dot chosen = attn_bf16_dot_supported(ATTN_BF16_DOT_NATIVE) ? ATTN_BF16_DOT_NATIVE : ATTN_BF16_DOT_OFF;
        const char *forced = getenv("ATTN_BF16_DOT");
        for (int mode = ATTN_BF16_DOT_OFF; forced && mode <= ATTN_BF16_DOT_EMULATED; mode++)
            if (attn_bf16_dot_supported((attn_bf16_dot)mode) && strcmp(forced, attn_bf16_dot_name((attn_bf16_dot)mode)) == 0)
                chosen = (attn_bf16_dot)mode;
        m = (int)chosen + 1;
        __atomic_store_n(&bf16_dot_mode, m, __ATOMIC_RELEASE);
    }
    return (attn_bf16_dot)(m - 1);
}

attn_bf16_dot attn_get_bf16_dot(void) { return attn_bf16_dot_current(); }

attn_status attn_set_bf16_dot(attn_bf16_dot mode) {
    if ((int)mode < ATTN_BF16_DOT_OFF || (int)mode > ATTN_BF16_DOT_EMULATED) return ATTN_ERR_INVALID_ARGUMENT;
    if (!attn_bf16_dot_supported(mode)) return ATTN_ERR_UNSUPPORTED;
    __atomic_store_n(&bf16_dot_mode, (int)mode + 1, __ATOMIC_RELEASE);
    return ATTN_OK;
}

const char *attn_bf16_dot_name(attn_bf16_dot mode) {
    switch (mode) {
    case ATTN_BF16_DOT_OFF: return "off";
    case ATTN_BF16_DOT_NATIVE: return "native";
    case ATTN_BF16_DOT_EMULATED: return "emulated";
    }
    return "unknown";
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

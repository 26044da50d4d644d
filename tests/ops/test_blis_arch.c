/* BLIS kernel choice: on an AVX-512 CPU that Debian's BLIS 0.9 does not recognise, nabla asks
 * for its Skylake-X kernels instead of the generic reference ones (about 5x slower). */
#include "common.h"

#include <blis.h>
#include <stdlib.h>

Test(blis_arch, avx512_cpus_get_optimized_kernels) {
    const bool user_choice = getenv("BLIS_ARCH_TYPE") != NULL;
    nb_ctx *c = nb_ctx_new();
    nb_tensor *a = nb_ones(c, NB_F32, NB_SHAPE(64, 64));
    nb_tensor *p = nb_matmul(c, a, a);
    cr_assert_not_null(p);
    cr_assert_eq(nb_get(p, 0), 64.0);
    arch_t id = bli_arch_query_id();
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    if (!user_choice && avx512)
        cr_assert_neq(id, BLIS_ARCH_GENERIC, "BLIS runs its reference kernels (%s) on an AVX-512 CPU", bli_arch_string(id));
    nb_ctx_free(c);
}

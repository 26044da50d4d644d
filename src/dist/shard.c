/* Sharding a data set across ranks: one global permutation per epoch, each global batch cut
 * into world contiguous pieces. Pure functions of their arguments (no MPI). */
#include "nabla/dist.h"

void nb_dist_permutation(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm) {
    if (!perm || n <= 0) return;
    nb_rng rng = nb_rng_stream(seed, (uint64_t)epoch);
    nb_rng_permutation(&rng, n, perm);
}

int64_t nb_dist_steps(int64_t n, int world, int64_t B, bool drop_last) {
    if (n <= 0 || world < 1 || B < 1) return 0;
    if (B > INT64_MAX / world) return drop_last ? 0 : 1; /* a global batch past any n: one partial batch */
    const int64_t g = (int64_t)world * B;
    return n / g + (!drop_last && n % g); /* n + g - 1 may overflow */
}

int64_t nb_dist_shard(const int64_t *perm, int64_t n, int64_t step, int rank, int world, int64_t B, int64_t *idx,
                      int64_t *global) {
    if (global) *global = 0;
    if (!perm || !idx) return nb_set_error(NB_ERR_NULL, "dist_shard: perm or idx is NULL"), -1;
    if (n < 0 || step < 0 || B < 1 || world < 1 || rank < 0 || rank >= world)
        return nb_set_error(NB_ERR_VALUE, "dist_shard: bad arguments n=%lld step=%lld rank=%d world=%d B=%lld", (long long)n,
                            (long long)step, rank, world, (long long)B),
               -1;
    const int64_t g = B > INT64_MAX / world ? INT64_MAX : (int64_t)world * B; /* saturated: > n - start either way */
    if (n == 0 || (step > 0 && g > (n - 1) / step)) return 0;                 /* step * g >= n, or would overflow */
    const int64_t start = step * g;
    const int64_t m = n - start < g ? n - start : g;
    const int64_t q = m / world, r = m % world;
    const int64_t lo = start + rank * q + (rank < r ? rank : r), cnt = q + (rank < r);
    for (int64_t i = 0; i < cnt; i++) idx[i] = perm[lo + i];
    if (global) *global = m;
    return cnt;
}

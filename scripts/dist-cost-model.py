#!/usr/bin/env python3
# The cost model of docs/distributed.md ("A plan for many nodes"): ring allreduce time and
# scaling efficiency at 8, 64, 512 ranks from the single-rank rates in BENCHMARKS.md.
models = [  # name, bytes of fp32 gradients, compute s/step/rank, ranks per node sharing a NIC
 ("MLP", 235146*4, 256/70851, 32),
 ("fashion_cnn", 421738*4, 64/1230, 32),
 ("100M", 100e6*4, 8*512*6*100e6/(32*100e9), 1),
]
nets = {"10 GbE": (30e-6, 1.1e9), "100G IB": (3e-6, 11e9)}
shm = (1e-6, 5e9)
def ring(N, M, a, b): return 0 if N <= 1 else 2*(N-1)*a + 2*(N-1)/N*M/b
def hier(N, M, n, net):
    if n == 1: return ring(N, M, *net)
    if N <= n: return ring(N, M, *shm)
    return 2*(n-1)*shm[0] + 2*(n-1)/n*M/shm[1] + ring(N//n, M, *net)
E = lambda tc, c: tc/(tc+c)
print("| model | link | ranks | flat ring | E | hierarchical | E | + bf16 | E |")
print("|---|---|---|---|---|---|---|---|---|")
for name, M, tc, n in models:
    for net, (a, b) in nets.items():
        for N in (8, 64, 512):
            f = ring(N, M, a, b); h = hier(N, M, n, (a, b)); h16 = hier(N, M/2, n, (a, b))
            print("| %s | %s | %d | %.1f ms | %.2f | %.1f ms | %.2f | %.1f ms | %.2f |" % (name, net, N, f*1e3, E(tc,f), h*1e3, E(tc,h), h16*1e3, E(tc,h16)))

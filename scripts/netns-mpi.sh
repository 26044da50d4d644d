#!/bin/sh
# Two "hosts" on one machine: network namespaces nb_a and nb_b joined by a veth pair
# (10.77.0.1 <-> 10.77.0.2), Open MPI between them over TCP only (no shared memory, no ssh:
# the rsh agent is `ip netns exec`), running an MPI test program with one rank per host
# (NETNS_RANKS_PER_HOST=K: K per host, ranks alternating between the hosts).
#
#   sudo scripts/netns-mpi.sh build/mpi_zero [args...]
#   (MPIRUN=/path/to/mpirun to choose the launcher; the program's output follows)
#
# Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2 with veth, mpirun (Open MPI).
# Where any of that is missing, or MPI cannot launch across the namespaces, it prints
# "netns-mpi: SKIP: <reason>" and exits 0. Namespaces are removed on every exit path.
set -u
prog=${1:?usage: netns-mpi.sh PROGRAM [ARGS...]}
shift
A=nb_a$$ B=nb_b$$ VA=nbva$$ VB=nbvb$$
IPA=10.77.0.1 IPB=10.77.0.2
tmp=$(mktemp -d) || exit 1

skip() { echo "netns-mpi: SKIP: $*"; exit 0; }
cleanup() {
    ip netns del "$A" 2>/dev/null
    ip netns del "$B" 2>/dev/null  # deleting a namespace also deletes its end of the veth pair
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces (run with sudo)"
command -v ip >/dev/null || skip "iproute2 (ip) not installed"
MPIRUN=${MPIRUN:-mpirun}
command -v "$MPIRUN" >/dev/null || skip "$MPIRUN not found"
[ -x "$prog" ] || { echo "netns-mpi: $prog is not an executable"; exit 1; }
prog=$(cd "$(dirname "$prog")" && pwd)/$(basename "$prog")

ip netns add "$A" 2>"$tmp/err" || skip "cannot create a network namespace: $(cat "$tmp/err")"
ip netns add "$B" 2>"$tmp/err" || skip "cannot create a second network namespace: $(cat "$tmp/err")"
ip link add "$VA" type veth peer name "$VB" 2>"$tmp/err" || skip "cannot create a veth pair: $(cat "$tmp/err")"
ip link set "$VA" netns "$A" && ip link set "$VB" netns "$B" || skip "cannot move the veth ends into the namespaces"
ip -n "$A" addr add $IPA/24 dev "$VA" && ip -n "$B" addr add $IPB/24 dev "$VB" || skip "cannot address the veth pair"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "$VA" up && ip -n "$B" link set "$VB" up || skip "cannot bring the veth pair up"
ip -n "$A" link show "$VA" | grep -q LOWER_UP || skip "the veth pair has no carrier"

# The rsh agent: Open MPI runs `agent HOST orted ...` to start its daemon on HOST; here HOST is
# the address of a namespace and "logging in" is entering it (with its own hostname, so the two
# daemons do not look like one node).
cat >"$tmp/agent" <<AGENT
#!/bin/sh
host=\$1; shift
case \$host in
  $IPA) ns=$A name=host-a ;;
  $IPB) ns=$B name=host-b ;;
  *) echo "netns-mpi agent: unknown host \$host" >&2; exit 1 ;;
esac
# like ssh, the rest is one command line for the remote shell
exec ip netns exec \$ns unshare --uts sh -c 'hostname "\$0"; eval "\$1"' \$name "\$*"
AGENT
chmod +x "$tmp/agent"
K=${NETNS_RANKS_PER_HOST:-1}
printf '%s slots=%d\n%s slots=%d\n' $IPA "$K" $IPB "$K" >"$tmp/hosts"

# the veth pair's subnet (each namespace sees its own end under its own name)
IF=10.77.0.0/24
ip netns exec "$A" unshare --uts sh -c 'hostname host-a; exec "$@"' sh \
    "$MPIRUN" --allow-run-as-root --hostfile "$tmp/hosts" -np $((2 * K)) --map-by node \
    --mca plm_rsh_agent "$tmp/agent" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl tcp,self --mca btl_tcp_if_include "$IF" --mca oob_tcp_if_include "$IF" \
    --mca pml ob1 \
    -x OMP_NUM_THREADS=1 -x BLIS_NUM_THREADS=1 \
    "$prog" "$@" >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
if [ $rc -ne 0 ] && grep -qiE "ORTE was unable to reliably start|daemon.*(failed|did not report)|unable to launch|could not be found|No network interfaces" "$tmp/out"; then
    skip "Open MPI could not launch across the namespaces (see above)"
fi
exit $rc

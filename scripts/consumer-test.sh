#!/usr/bin/env bash
# Use nabla the way another project would (issue 12), one summary line per check:
#   a non-native Release build installed into a temporary prefix; the consumer in tests/consumer
#   built with find_package (CMAKE_PREFIX_PATH), with pkg-config (PKG_CONFIG_PATH) and with the
#   README's cc line, each from outside the repo; nabla as an add_subdirectory subproject (no
#   tests, no Criterion, no -march=native); the .deb built by CPack, installed with apt-get, and
#   the consumer built against that system install. Each consumer checks a gradient and exits
#   non-zero if it is wrong. The package is removed again at the end unless NABLA_KEEP_DEB=1 or
#   it was installed before. Needs root (or sudo) for apt-get.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
src=$PWD
scripts/deps.sh
jobs=${NABLA_JOBS:-$(nproc)}
work=$(mktemp -d)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
deb_was_installed=0
dpkg-query -W -f='${Status}' nabla 2>/dev/null | grep -q "ok installed" && deb_was_installed=1 || true
deb_installed_here=0
cleanup() {
  if [ "$deb_installed_here" = 1 ] && [ "${NABLA_KEEP_DEB:-0}" != 1 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 purge -y -qq nabla nabla-dist >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

check="setup"
log="$work/log"
results=()
trap 'echo "consumer-test: FAIL  $check" >&2' ERR
begin() { check=$1; : >"$log"; }
ok() { echo "consumer-test: ok    $check${1:+ ($1)}"; results+=("ok    $check"); }
# run quietly; show the output only when the command fails
q() { "$@" >>"$log" 2>&1 || { local rc=$?; cat "$log" >&2; return $rc; }; }
consumer_out=""
run_consumer() {  # run a consumer binary in a scratch directory; its output line is the proof
  consumer_out=$(cd "$work" && "$@") || { echo "$consumer_out" >&2; return 1; }
  echo "$consumer_out" | grep -q ": ok$"
}
no_native() { ! grep -rq --include=flags.make -e "-march=native" "$1"; }

# ---- a non-native Release build installed into a temporary prefix ------------------------------
begin "install into a temporary prefix (Release, NABLA_NATIVE=OFF; cmake --install --prefix, not the configured one)"
prefix="$work/prefix"
lib_opts=(-DCMAKE_BUILD_TYPE=Release -DNABLA_NATIVE=OFF -DNABLA_TESTS=OFF -DNABLA_EXAMPLES=OFF -DNABLA_BENCH=OFF)
# configured for another prefix and installed with --prefix: the CMake package and the .pc files
# must find the install where it is (the .pc files pointed at the configured prefix)
q cmake -S . -B "$work/build" "${lib_opts[@]}" -DCMAKE_INSTALL_PREFIX="$work/configured-prefix-not-used"
q cmake --build "$work/build" -j"$jobs"
q cmake --install "$work/build" --prefix "$prefix"
no_native "$work/build"
for f in include/nabla/nabla.h include/nabla/dist.h lib/libnabla.a lib/libnabla.so lib/cmake/nabla/nablaConfig.cmake \
         lib/cmake/nabla/nablaConfigVersion.cmake lib/cmake/nabla/FindBLIS.cmake lib/pkgconfig/nabla.pc; do
  [ -e "$prefix/$f" ] || { echo "missing $prefix/$f" >&2; false; }
done
ok

begin "shared library exports only the nb_* API"
so=$(readlink -f "$prefix/lib/libnabla.so")
soname=$(readelf -d "$so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
exported=$(nm -D --defined-only "$so" | awk '{print $3}')
internal=$(echo "$exported" | grep -v '^nb_[^_]' | grep -vxE 'nb__site_(push|pop|op)' || true)
[ -z "$internal" ] || { echo "exported beyond the API: $internal" >&2; false; }
ok "$soname, $(echo "$exported" | wc -l) symbols, no nb__ internals"

# ---- three ways to build the consumer against the prefix --------------------------------------
# the MPI part (nabla::dist, nabla-dist.pc) is built where MPI is found, as scripts/deps.sh ensures
have_dist=0; [ -e "$prefix/lib/libnabla_dist.so" ] && have_dist=1

begin "find_package(nabla) with CMAKE_PREFIX_PATH (shared, static, dist)"
q cmake -S tests/consumer -B "$work/fp" -DCMAKE_PREFIX_PATH="$prefix"
q cmake --build "$work/fp" -j"$jobs"
run_consumer "$work/fp/consumer"
run_consumer "$work/fp/consumer_static"
dist="no MPI: nabla::dist not built"
if [ $have_dist = 1 ]; then run_consumer "$work/fp/consumer_dist"; dist=$consumer_out; fi
run_consumer "$work/fp/consumer"
ok "$consumer_out; $dist"

begin "pkg-config nabla with PKG_CONFIG_PATH (shared, --static, nabla-dist)"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
mkdir "$work/pc"
libs_static=$(pkg-config --static --libs nabla)
q cc -o "$work/pc/consumer" tests/consumer/main.c $(pkg-config --cflags --libs nabla) -Wl,-rpath,"$prefix/lib" -lm
q cc -o "$work/pc/consumer_static" tests/consumer/main.c $(pkg-config --cflags nabla) \
     ${libs_static/-lnabla/$prefix/lib/libnabla.a} -lm
[ $have_dist = 0 ] || q cc -o "$work/pc/consumer_dist" tests/consumer/dist.c \
     $(pkg-config --cflags --libs nabla-dist) -Wl,-rpath,"$prefix/lib"
unset PKG_CONFIG_PATH
run_consumer "$work/pc/consumer"
run_consumer "$work/pc/consumer_static"
[ $have_dist = 0 ] || run_consumer "$work/pc/consumer_dist"
ok

begin "README's cc line, from outside the repo"
line=$(grep -m1 -E '^cc prog\.c -I"\$PREFIX/include"' README.md)
mkdir "$work/manual" && cp tests/consumer/main.c "$work/manual/prog.c"
(cd "$work/manual" && PREFIX=$prefix && q eval "$line")
run_consumer "$work/manual/a.out"
ok "$line"

# ---- nabla as a subproject --------------------------------------------------------------------
begin "add_subdirectory(nabla): no tests, no Criterion, no -march=native"
q cmake -S tests/consumer -B "$work/sub" -DNABLA_SOURCE_DIR="$src" -DCMAKE_BUILD_TYPE=Release
if grep -q "CRITERION" "$work/sub/CMakeCache.txt"; then echo "the subproject looked for Criterion" >&2; false; fi
[ ! -e "$work/sub/nabla/CTestTestfile.cmake" ]
q cmake --build "$work/sub" -j"$jobs"
no_native "$work/sub"
if ls "$work/sub/nabla" | grep -E '^(test_|fashion_|bench_)'; then echo "the subproject built tests/examples" >&2; false; fi
run_consumer "$work/sub/consumer"
run_consumer "$work/sub/consumer_static"
[ $have_dist = 0 ] || run_consumer "$work/sub/consumer_dist"
ok

# ---- the Debian package, installed, and the consumer against the system install --------------
begin "cpack -G DEB (prefix /usr, NABLA_NATIVE=OFF) and apt-get install"
q cmake -S . -B "$work/deb" "${lib_opts[@]}" -DCMAKE_INSTALL_PREFIX=/usr
q cmake --build "$work/deb" -j"$jobs"
no_native "$work/deb"
(cd "$work/deb" && q cpack -G DEB)
deb=$(ls "$work"/deb/nabla_*.deb)
debs=("$deb"); [ $have_dist = 0 ] || debs+=("$(ls "$work"/deb/nabla-dist_*.deb)")
deb_installed_here=$((1 - deb_was_installed))
DEBIAN_FRONTEND=noninteractive q $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${debs[@]}"
ok "$(basename "$deb"): Depends: $(dpkg-deb -f "$deb" Depends)"

begin "find_package(nabla), pkg-config and the README's cc -lnabla against the system install"
q cmake -S tests/consumer -B "$work/sys"
grep -q "nabla_DIR:PATH=/usr/lib/" "$work/sys/CMakeCache.txt"
q cmake --build "$work/sys" -j"$jobs"
run_consumer "$work/sys/consumer"
run_consumer "$work/sys/consumer_static"
[ $have_dist = 0 ] || run_consumer "$work/sys/consumer_dist"
q cc -o "$work/sys/consumer_pc" tests/consumer/main.c $(pkg-config --cflags --libs nabla) -lm
run_consumer "$work/sys/consumer_pc"
line=$(grep -m1 -E '^cc prog\.c -lnabla' README.md)
(cd "$work/manual" && rm -f a.out && q eval "$line")
run_consumer "$work/manual/a.out"
ok

check=""
echo "consumer-test: all ${#results[@]} checks passed"

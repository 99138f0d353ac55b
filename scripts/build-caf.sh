#!/usr/bin/env bash
# Builds CAF 0.17.6 from Debian's source package into PREFIX.
#
#   scripts/build-caf.sh tsan    [PREFIX]  # ThreadSanitizer (default PREFIX .deps/caf-tsan)
#   scripts/build-caf.sh release [PREFIX]  # optimised, logging off (.deps/caf-release)
#
# tsan: Debian's libcaf is not instrumented, so without this TSan cannot see
# the ordering CAF's mailboxes provide and reports false races on every
# message hand-off; scripts/test.sh uses it for SANITIZE=thread.
# release: the same source with CAF_LOG_LEVEL QUIET and -O3, to measure what
# Debian's build costs (docs/benchmarks.md, "CAF built from source"); use it
# with CAF=.deps/caf-release scripts/build.sh. Never the default: it costs
# ~10 minutes of set-up on 2 cores. Reruns are instant.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLAVOR="${1:-tsan}"
case "$FLAVOR" in
  tsan)
    FLAGS="-fsanitize=thread -fno-omit-frame-pointer"; LDFLAGS=-fsanitize=thread
    BUILD_TYPE=RelWithDebInfo ;;
  release)
    FLAGS="-O3"; LDFLAGS=""; BUILD_TYPE=Release ;;
  *) echo "build-caf: unknown flavor '$FLAVOR': use tsan or release" >&2; exit 2 ;;
esac
PREFIX="${2:-$ROOT/.deps/caf-$FLAVOR}"
if [ -f "$PREFIX/lib/libcaf_core.so" ]; then
  echo "build-caf: $PREFIX already built"
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
APT=(-o "Dir::Etc::sourcelist=$WORK/src.sources" -o "Dir::Etc::sourceparts=-"
     -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache")
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial"
apt-get "${APT[@]}" update -qq
(cd "$WORK" && apt-get "${APT[@]}" source --download-only actor-framework) || true
ORIG="$(ls "$WORK"/actor-framework_0.17.6*.orig.tar.gz 2>/dev/null | head -1)"
[ -n "$ORIG" ] || { echo "build-caf: could not fetch the actor-framework source package" >&2; exit 1; }
tar xzf "$ORIG" -C "$WORK"
SRC_DIR="$WORK/actor-framework-0.17.6"
# The one fix Debian's packaging applies that g++ 12 needs.
sed -i 's|#include <cstddef>|#include <cstddef>\n#include <limits>|' \
  "$SRC_DIR/libcaf_io/caf/io/network/receive_buffer.hpp"
cmake -S "$SRC_DIR" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
  -DCMAKE_CXX_FLAGS="$FLAGS" -DCAF_LOG_LEVEL=QUIET \
  -DCMAKE_SHARED_LINKER_FLAGS="$LDFLAGS" -DCMAKE_EXE_LINKER_FLAGS="$LDFLAGS" \
  -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_OPENCL=yes \
  -DCAF_NO_OPENSSL=yes -DCAF_NO_PYTHON=yes -DCAF_NO_TOOLS=yes -DCAF_NO_SUMMARY=yes \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" > "$WORK/configure.log"
cmake --build "$WORK/build" -j "$(nproc)"
cmake --install "$WORK/build" > /dev/null
echo "build-caf: $FLAVOR build installed into $PREFIX"

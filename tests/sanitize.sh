#!/usr/bin/env bash
# Memory and undefined-behaviour check of the C++ core: builds the core library (no CUDA) with
# AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, installs it into the build
# folder, builds the C++ tests (tests/cpp, which also compiles examples/cpp) against that
# installed package with the same sanitizers, and runs them with ctest. The first sanitizer
# report aborts its test, and ctest stops at the first failing test: the script exits non-zero
# on any report or failure, and 0 only when everything ran clean.
#
#   tests/sanitize.sh [BUILD_DIR]      (default: build/sanitize; JOBS=n sets build parallelism)
#
# Needs CMake, a C++17 compiler with the sanitizers (GCC or Clang), GoogleTest and Python with
# scipy-openblas32 (the same requirements as a source build). Takes a while: the whole core is
# compiled again, at -O1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(mkdir -p "${1:-$root/build/sanitize}" && cd "${1:-$root/build/sanitize}" && pwd)
jobs=${JOBS:-$(nproc)}
# float-cast-overflow is not part of GCC's "undefined" group; float-to-int casts must saturate
# explicitly, so it is checked too.
sanitizers="address,undefined,float-cast-overflow"
cxx_flags="-O1 -g -fno-omit-frame-pointer -fsanitize=$sanitizers -fno-sanitize-recover=all"
link_flags="-fsanitize=$sanitizers"
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi

echo "== sanitize: core library -> $build/install"
cmake -S "$root" -B "$build/core" "${generator[@]}" -DCMAKE_BUILD_TYPE=Sanitize \
  -DCMAKE_CXX_FLAGS_SANITIZE="$cxx_flags" -DCMAKE_SHARED_LINKER_FLAGS="$link_flags" \
  -DSEISOKU_CUDA=OFF -DCMAKE_INSTALL_PREFIX="$build/install" > "$build/core-configure.log" ||
  { cat "$build/core-configure.log"; exit 1; }
cmake --build "$build/core" -j "$jobs"
cmake --install "$build/core" > /dev/null

# Reports halt the process at the first error (UBSan's too, with -fno-sanitize-recover).
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

echo "== sanitize: tests/cpp against the installed package"
cmake -S "$root/tests/cpp" -B "$build/tests" "${generator[@]}" -DCMAKE_BUILD_TYPE=Sanitize \
  -DCMAKE_CXX_FLAGS_SANITIZE="$cxx_flags" -DCMAKE_EXE_LINKER_FLAGS="$link_flags" \
  -DCMAKE_PREFIX_PATH="$build/install" > "$build/tests-configure.log" ||
  { cat "$build/tests-configure.log"; exit 1; }
cmake --build "$build/tests" -j "$jobs"

echo "== sanitize: ctest"
ctest --test-dir "$build/tests" --output-on-failure --stop-on-failure --timeout 1800
echo "== sanitize: clean (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer)"

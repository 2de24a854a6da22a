# Cross-compiles for AArch64 Linux with Debian's g++-aarch64-linux-gnu (scripts/test-arm.sh uses it with
# -DPOCKETLM_KERNELS_ONLY=ON and runs the result under qemu-aarch64 -L /usr/aarch64-linux-gnu).
#   cmake -S . -B build-arm -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DPOCKETLM_KERNELS_ONLY=ON
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# The cross toolchain's sysroot, and / for Debian's multiarch arm64 packages (libpcre2-dev:arm64 installs into
# /usr/lib/aarch64-linux-gnu, found through CMAKE_LIBRARY_ARCHITECTURE; scripts/install-deps.sh).
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Lets CMake (and ctest) run target binaries through qemu.
find_program(POCKETLM_QEMU_AARCH64 qemu-aarch64)
if(POCKETLM_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${POCKETLM_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu)
endif()

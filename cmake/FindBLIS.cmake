# FindBLIS: BLIS with OpenMP threading, as Debian's libblis-openmp-dev installs it (no pkg-config
# file, no CMake config): headers and library in blis-openmp/ subdirectories, searched before the
# default paths so the OpenMP build wins over a serial or pthread one. Defines BLIS::BLIS,
# BLIS_INCLUDE_DIR and BLIS_LIBRARY. Installed beside nablaConfig.cmake, which needs the library
# for nabla::nabla_static.
find_path(BLIS_INCLUDE_DIR blis.h PATHS /usr/include/x86_64-linux-gnu/blis-openmp /usr/include/blis NO_DEFAULT_PATH)
find_path(BLIS_INCLUDE_DIR blis.h PATH_SUFFIXES blis)
find_library(BLIS_LIBRARY blis PATHS /usr/lib/x86_64-linux-gnu/blis-openmp NO_DEFAULT_PATH)
find_library(BLIS_LIBRARY blis)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(BLIS REQUIRED_VARS BLIS_LIBRARY BLIS_INCLUDE_DIR
  REASON_FAILURE_MESSAGE "on Debian: apt-get install libblis-openmp-dev")

if(BLIS_FOUND AND NOT TARGET BLIS::BLIS)
  add_library(BLIS::BLIS UNKNOWN IMPORTED)
  set_target_properties(BLIS::BLIS PROPERTIES IMPORTED_LOCATION "${BLIS_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${BLIS_INCLUDE_DIR}")
endif()
mark_as_advanced(BLIS_INCLUDE_DIR BLIS_LIBRARY)

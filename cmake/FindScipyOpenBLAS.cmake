# Locates OpenBLAS as shipped by the PyPI package scipy-openblas32 and defines the imported
# target seisoku_openblas plus SEISOKU_OPENBLAS_LIBDIR. Its symbols carry the scipy_ prefix
# (scipy_cblas_sgemm), declared by the package's own cblas.h.
if(NOT SEISOKU_OPENBLAS_ROOT)
  find_package(Python COMPONENTS Interpreter REQUIRED)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import os, scipy_openblas32 as s; print(os.path.dirname(s.get_lib_dir()))"
    OUTPUT_VARIABLE _sei_ob_root OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _sei_ob_rc ERROR_QUIET)
  if(NOT _sei_ob_rc EQUAL 0)
    message(FATAL_ERROR
      "seisoku needs OpenBLAS from the PyPI package scipy-openblas32: run "
      "'${Python_EXECUTABLE} -m pip install scipy-openblas32' or set SEISOKU_OPENBLAS_ROOT")
  endif()
  set(SEISOKU_OPENBLAS_ROOT "${_sei_ob_root}")
endif()
find_path(SEISOKU_OPENBLAS_INCLUDE cblas.h PATHS "${SEISOKU_OPENBLAS_ROOT}/include" NO_DEFAULT_PATH)
find_library(SEISOKU_OPENBLAS_LIBRARY scipy_openblas PATHS "${SEISOKU_OPENBLAS_ROOT}/lib" NO_DEFAULT_PATH)
if(NOT SEISOKU_OPENBLAS_INCLUDE OR NOT SEISOKU_OPENBLAS_LIBRARY)
  message(FATAL_ERROR "scipy-openblas32 not usable under '${SEISOKU_OPENBLAS_ROOT}' (cblas.h or libscipy_openblas missing)")
endif()
get_filename_component(SEISOKU_OPENBLAS_LIBDIR "${SEISOKU_OPENBLAS_LIBRARY}" DIRECTORY)
add_library(seisoku_openblas SHARED IMPORTED)
set_target_properties(seisoku_openblas PROPERTIES
  IMPORTED_LOCATION "${SEISOKU_OPENBLAS_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${SEISOKU_OPENBLAS_INCLUDE}")
message(STATUS "seisoku: OpenBLAS ${SEISOKU_OPENBLAS_LIBRARY}")

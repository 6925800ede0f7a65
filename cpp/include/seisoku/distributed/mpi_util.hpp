#pragma once
// What the MPI headers of seisoku::distributed share: MPI error codes as exceptions and the MPI
// datatype of a seisoku dtype. Included only by programs that link MPI (find_package(MPI) and
// MPI::MPI_CXX); the seisoku library itself never depends on MPI.
#include <mpi.h>

#include <stdexcept>
#include <string>

#include "seisoku/dtype.hpp"

namespace seisoku::distributed {

// Throws std::runtime_error "[op] MPI_Xxx failed: <MPI's message>" unless rc is MPI_SUCCESS. (On a
// communicator with the default MPI_ERRORS_ARE_FATAL handler MPI aborts before returning an error.)
inline void mpi_check(int rc, const char* op, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw std::runtime_error(std::string("[") + op + "] " + call + " failed: " + std::string(text, length));
}

// MPI_FLOAT or MPI_DOUBLE; throws std::invalid_argument for other dtypes.
inline MPI_Datatype mpi_datatype(DType dtype, const char* op) {
  if (dtype == DType::float32) return MPI_FLOAT;
  if (dtype == DType::float64) return MPI_DOUBLE;
  throw std::invalid_argument(std::string("[") + op + "] tensors must be float32 or float64, got " + dtype_name(dtype));
}

// Rank and size of a communicator.
inline int mpi_rank(MPI_Comm comm) {
  int r = 0;
  mpi_check(MPI_Comm_rank(comm, &r), "seisoku::distributed", "MPI_Comm_rank");
  return r;
}
inline int mpi_size(MPI_Comm comm) {
  int n = 0;
  mpi_check(MPI_Comm_size(comm, &n), "seisoku::distributed", "MPI_Comm_size");
  return n;
}

}  // namespace seisoku::distributed

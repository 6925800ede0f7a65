#pragma once
// seisoku::distributed for C++ programs that link MPI (find_package(MPI), MPI::MPI_CXX): bucketed
// gradient allreduce and parameter broadcast (data_parallel.hpp), pipeline stages over
// point-to-point messages (pipeline.hpp). The schedules and bucket plans alone need no MPI
// (pipeline_schedule.hpp, bucket_plan.hpp). Not part of seisoku/seisoku.hpp: the seisoku library
// itself never depends on MPI.
#include "seisoku/distributed/bucket_plan.hpp"
#include "seisoku/distributed/data_parallel.hpp"
#include "seisoku/distributed/mpi_util.hpp"
#include "seisoku/distributed/pipeline.hpp"
#include "seisoku/distributed/pipeline_schedule.hpp"

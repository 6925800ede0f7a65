// Binding of the pipeline schedule (seisoku/distributed/pipeline_schedule.hpp): the same
// per-stage operation lists for the C++ runner and the Python pipeline. No MPI involved.
#include <pybind11/stl.h>

#include "nn_util.hpp"
#include "seisoku/distributed/pipeline_schedule.hpp"

namespace seisoku::python {

void bind_pipeline_schedule(py::module_& m) {
  using py::arg;
  m.def(
      "pipeline_schedule",
      [](py::handle kind, py::handle stages, py::handle microbatches) {
        const char* op = "pipeline_schedule";
        const std::string k = str_arg(kind, op, "kind", "'gpipe' or '1f1b'");
        const std::int64_t p = int_arg(stages, op, "stages", 1, distributed::kPipelineMaxStages);
        const std::int64_t n = int_arg(microbatches, op, "microbatches", 1, distributed::kPipelineMaxMicrobatches);
        const auto schedule = distributed::pipeline_schedule(distributed::pipeline_kind_from_name(k), p, n);
        py::list result;
        for (const auto& stage : schedule) {
          py::list ops;
          for (const auto& o : stage)
            ops.append(py::make_tuple(o.phase == distributed::PipelinePhase::forward ? "forward" : "backward",
                                      o.microbatch));
          result.append(std::move(ops));
        }
        return result;
      },
      arg("kind"), arg("stages"), arg("microbatches"),
      "Each pipeline stage's operations for one training step, in order: a list (one per stage, from 0) of\n"
      "lists of (phase, microbatch) tuples, phase 'forward' or 'backward'. kind: 'gpipe' (all forwards,\n"
      "then all backwards) or '1f1b' (warm-up forwards, then one forward one backward; stage s keeps at most\n"
      "stages - s micro-batches in flight). stages >= 1, microbatches >= 1.");
}

}  // namespace seisoku::python

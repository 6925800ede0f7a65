#pragma once
// Pipeline schedules: the ordered operations each stage of a model split into `stages` pipeline
// stages runs for one training step over `microbatches` micro-batches. A pure function (no MPI,
// no state), so that C++ (seisoku/distributed/pipeline.hpp), Python (seisoku._core.pipeline_schedule)
// and the tests read the very same schedule.
//
// forward(s, j) needs forward(s - 1, j) (the activation of stage s - 1), backward(s, j) needs
// backward(s + 1, j) (the gradient of stage s + 1) and forward(s, j). Stages count from 0.
//
// gpipe (Huang et al. 2019, "GPipe"): every stage runs the forwards of micro-batches 0 .. m-1, then
//   their backwards in the same order. Stage s keeps all m micro-batches in flight. With forward
//   and backward of one time unit each, a step takes 2 (m + p - 1) units and every stage idles
//   2 (p - 1) of them (the bubble).
// 1f1b (Narayanan et al. 2021, "PipeDream-Flush"): stage s runs min(p - s - 1, m) warm-up
//   forwards, then alternates one forward and one backward, then drains the remaining backwards.
//   Same bubble as gpipe, but stage s keeps at most min(p - s, m) micro-batches in flight (a
//   micro-batch is in flight on a stage between its forward and its backward there).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace seisoku::distributed {

enum class PipelineKind : std::uint8_t { gpipe, one_f_one_b };
enum class PipelinePhase : std::uint8_t { forward, backward };

// One operation of a stage: the forward or backward of micro-batch `microbatch`.
struct PipelineOp {
  PipelinePhase phase;
  std::int64_t microbatch;
  bool operator==(const PipelineOp& o) const { return phase == o.phase && microbatch == o.microbatch; }
  bool operator!=(const PipelineOp& o) const { return !(*this == o); }
};
using StageSchedule = std::vector<PipelineOp>;

// Limits of a schedule's size (so a mistyped argument is an error, not a huge allocation).
inline constexpr std::int64_t kPipelineMaxStages = std::int64_t{1} << 16;
inline constexpr std::int64_t kPipelineMaxMicrobatches = std::int64_t{1} << 20;
inline constexpr std::int64_t kPipelineMaxOps = std::int64_t{1} << 26;  // 2 * stages * microbatches

// "gpipe" or "1f1b".
inline const char* pipeline_kind_name(PipelineKind kind) {
  return kind == PipelineKind::gpipe ? "gpipe" : "1f1b";
}

// Parses "gpipe" or "1f1b"; throws std::invalid_argument naming the argument otherwise.
inline PipelineKind pipeline_kind_from_name(const std::string& name) {
  if (name == "gpipe") return PipelineKind::gpipe;
  if (name == "1f1b") return PipelineKind::one_f_one_b;
  throw std::invalid_argument("[pipeline_schedule] argument 'kind' must be 'gpipe' or '1f1b', got '" + name + "'");
}

namespace detail {
inline void check_pipeline_size(std::int64_t stages, std::int64_t microbatches) {
  if (stages < 1 || stages > kPipelineMaxStages)
    throw std::invalid_argument("[pipeline_schedule] argument 'stages' must be an int in [1, " +
                                std::to_string(kPipelineMaxStages) + "], got " + std::to_string(stages));
  if (microbatches < 1 || microbatches > kPipelineMaxMicrobatches)
    throw std::invalid_argument("[pipeline_schedule] argument 'microbatches' must be an int in [1, " +
                                std::to_string(kPipelineMaxMicrobatches) + "], got " + std::to_string(microbatches));
  if (2 * stages * microbatches > kPipelineMaxOps)
    throw std::invalid_argument("[pipeline_schedule] 2 * stages * microbatches must be at most " +
                                std::to_string(kPipelineMaxOps) + ", got stages " + std::to_string(stages) +
                                " and microbatches " + std::to_string(microbatches));
}
}  // namespace detail

// The operations of stage `stage` (0 <= stage < stages), in the order the stage runs them.
inline StageSchedule pipeline_stage_schedule(PipelineKind kind, std::int64_t stages, std::int64_t microbatches,
                                             std::int64_t stage) {
  detail::check_pipeline_size(stages, microbatches);
  if (stage < 0 || stage >= stages)
    throw std::invalid_argument("[pipeline_schedule] argument 'stage' must be an int in [0, " +
                                std::to_string(stages - 1) + "], got " + std::to_string(stage));
  StageSchedule ops;
  ops.reserve(static_cast<std::size_t>(2 * microbatches));
  const auto forward = [&](std::int64_t j) { ops.push_back({PipelinePhase::forward, j}); };
  const auto backward = [&](std::int64_t j) { ops.push_back({PipelinePhase::backward, j}); };
  if (kind == PipelineKind::gpipe) {
    for (std::int64_t j = 0; j < microbatches; ++j) forward(j);
    for (std::int64_t j = 0; j < microbatches; ++j) backward(j);
    return ops;
  }
  const std::int64_t warmup = std::min(stages - stage - 1, microbatches);
  for (std::int64_t j = 0; j < warmup; ++j) forward(j);
  for (std::int64_t i = 0; i < microbatches - warmup; ++i) {
    forward(warmup + i);
    backward(i);
  }
  for (std::int64_t j = microbatches - warmup; j < microbatches; ++j) backward(j);
  return ops;
}

// Every stage's operations: result[s] is pipeline_stage_schedule(kind, stages, microbatches, s).
inline std::vector<StageSchedule> pipeline_schedule(PipelineKind kind, std::int64_t stages, std::int64_t microbatches) {
  detail::check_pipeline_size(stages, microbatches);
  std::vector<StageSchedule> all;
  all.reserve(static_cast<std::size_t>(stages));
  for (std::int64_t s = 0; s < stages; ++s) all.push_back(pipeline_stage_schedule(kind, stages, microbatches, s));
  return all;
}

}  // namespace seisoku::distributed

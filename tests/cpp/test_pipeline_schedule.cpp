// Pipeline schedules (seisoku/distributed/pipeline_schedule.hpp) checked by running them in a
// simulator: every stage takes its next operation as soon as its inputs exist, each operation
// lasting one time unit. The simulator finds deadlocks (an operation whose input never comes),
// counts each stage's idle units (the bubble), and the in-flight micro-batches per stage.
#include <gtest/gtest.h>
#include <seisoku/distributed/pipeline_schedule.hpp>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace dist = seisoku::distributed;
using dist::PipelineKind;
using dist::PipelinePhase;

struct Simulation {
  bool completed = false;
  std::int64_t makespan = 0;
  std::vector<std::int64_t> idle;  // per stage, within the makespan
};

Simulation simulate(const std::vector<dist::StageSchedule>& schedule, std::int64_t microbatches) {
  const auto p = static_cast<std::int64_t>(schedule.size());
  // done[phase][s][j]: the time unit at whose end the operation finished (-1: not yet).
  std::vector<std::vector<std::vector<std::int64_t>>> done(
      2, std::vector<std::vector<std::int64_t>>(p, std::vector<std::int64_t>(microbatches, -1)));
  std::vector<std::size_t> next(p, 0);
  Simulation sim;
  sim.idle.assign(p, 0);
  for (std::int64_t t = 0;; ++t) {
    bool remaining = false, progress = false;
    std::vector<std::pair<std::int64_t, dist::PipelineOp>> ran;
    for (std::int64_t s = 0; s < p; ++s) {
      if (next[s] == schedule[s].size()) {
        continue;
      }
      remaining = true;
      const dist::PipelineOp op = schedule[s][next[s]];
      const auto ready = [&](int phase, std::int64_t stage) {
        return done[phase][stage][op.microbatch] >= 0 && done[phase][stage][op.microbatch] < t;
      };
      bool can = true;
      if (op.phase == PipelinePhase::forward) {
        can = s == 0 || ready(0, s - 1);
      } else {
        can = ready(0, s) && (s == p - 1 || ready(1, s + 1));
      }
      if (can) {
        ran.emplace_back(s, op);
        progress = true;
      } else {
        ++sim.idle[s];
      }
    }
    if (!remaining) {
      sim.completed = true;
      sim.makespan = t;
      break;
    }
    if (!progress && t > 4 * p * microbatches + 8) break;  // nothing can ever run again: deadlock
    for (const auto& [s, op] : ran) {
      done[op.phase == PipelinePhase::forward ? 0 : 1][s][op.microbatch] = t;
      ++next[s];
    }
  }
  // Units a stage waited after its own last operation are idle too.
  for (std::int64_t s = 0; s < p && sim.completed; ++s) {
    const std::int64_t last = done[1][s][schedule[s].back().microbatch];
    sim.idle[s] += sim.makespan - 1 - last;
  }
  return sim;
}

std::int64_t max_in_flight(const dist::StageSchedule& ops) {
  std::int64_t in_flight = 0, most = 0;
  for (const auto& op : ops) {
    in_flight += op.phase == PipelinePhase::forward ? 1 : -1;
    most = std::max(most, in_flight);
  }
  return most;
}

// Every micro-batch's forward and backward exactly once, the forward first.
void expect_complete(const dist::StageSchedule& ops, std::int64_t microbatches, const std::string& where) {
  ASSERT_EQ(static_cast<std::int64_t>(ops.size()), 2 * microbatches) << where;
  std::vector<int> seen_f(microbatches, 0), seen_b(microbatches, 0);
  for (const auto& op : ops) {
    ASSERT_GE(op.microbatch, 0) << where;
    ASSERT_LT(op.microbatch, microbatches) << where;
    if (op.phase == PipelinePhase::forward) {
      ++seen_f[op.microbatch];
    } else {
      EXPECT_EQ(seen_f[op.microbatch], 1) << where << ": backward of " << op.microbatch << " before its forward";
      ++seen_b[op.microbatch];
    }
  }
  for (std::int64_t j = 0; j < microbatches; ++j) {
    EXPECT_EQ(seen_f[j], 1) << where << " micro-batch " << j;
    EXPECT_EQ(seen_b[j], 1) << where << " micro-batch " << j;
  }
}

TEST(PipelineSchedule, EveryScheduleRunsWithoutDeadlockAndHasTheGpipeBubble) {
  for (const PipelineKind kind : {PipelineKind::gpipe, PipelineKind::one_f_one_b}) {
    for (std::int64_t p = 1; p <= 6; ++p) {
      for (std::int64_t m = 1; m <= 10; ++m) {
        const std::string where =
            std::string(dist::pipeline_kind_name(kind)) + " p=" + std::to_string(p) + " m=" + std::to_string(m);
        const auto schedule = dist::pipeline_schedule(kind, p, m);
        ASSERT_EQ(static_cast<std::int64_t>(schedule.size()), p) << where;
        for (std::int64_t s = 0; s < p; ++s) {
          expect_complete(schedule[s], m, where + " stage " + std::to_string(s));
          EXPECT_EQ(schedule[s], dist::pipeline_stage_schedule(kind, p, m, s)) << where;
        }
        const Simulation sim = simulate(schedule, m);
        ASSERT_TRUE(sim.completed) << where << ": deadlock";
        // Unit-time forward and backward: 2 (m + p - 1) units, 2 (p - 1) of them idle per stage.
        EXPECT_EQ(sim.makespan, 2 * (m + p - 1)) << where;
        for (std::int64_t s = 0; s < p; ++s) EXPECT_EQ(sim.idle[s], 2 * (p - 1)) << where << " stage " << s;
      }
    }
  }
}

TEST(PipelineSchedule, OneFOneBKeepsAtMostStagesMinusSInFlight) {
  for (std::int64_t p = 1; p <= 8; ++p) {
    for (std::int64_t m = 1; m <= 12; ++m) {
      for (std::int64_t s = 0; s < p; ++s) {
        const std::string where = "p=" + std::to_string(p) + " m=" + std::to_string(m) + " s=" + std::to_string(s);
        EXPECT_EQ(max_in_flight(dist::pipeline_stage_schedule(PipelineKind::one_f_one_b, p, m, s)), std::min(p - s, m))
            << where;
        EXPECT_EQ(max_in_flight(dist::pipeline_stage_schedule(PipelineKind::gpipe, p, m, s)), m) << where;
      }
    }
  }
}

TEST(PipelineSchedule, OneFOneBOrderOnFourStages) {
  // Stage 1 of 4 with 6 micro-batches: 2 warm-up forwards, 4 pairs, 2 trailing backwards.
  const auto ops = dist::pipeline_stage_schedule(PipelineKind::one_f_one_b, 4, 6, 1);
  std::string text;
  for (const auto& op : ops)
    text += (op.phase == PipelinePhase::forward ? "F" : "B") + std::to_string(op.microbatch) + " ";
  EXPECT_EQ(text, "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5 ");
}

TEST(PipelineSchedule, SchedulerDetectsADeadlock) {
  // The oracle itself: a stage whose backward comes before the forward it needs never finishes.
  std::vector<dist::StageSchedule> bad = {
      {{PipelinePhase::forward, 0}, {PipelinePhase::backward, 0}},
      {{PipelinePhase::backward, 0}, {PipelinePhase::forward, 0}}};
  EXPECT_FALSE(simulate(bad, 1).completed);
}

TEST(PipelineSchedule, BadArgumentsThrow) {
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message([] { dist::pipeline_schedule(PipelineKind::gpipe, 0, 4); }).find("argument 'stages'"),
            std::string::npos);
  EXPECT_NE(message([] { dist::pipeline_schedule(PipelineKind::gpipe, 2, 0); }).find("argument 'microbatches'"),
            std::string::npos);
  EXPECT_NE(message([] { dist::pipeline_stage_schedule(PipelineKind::gpipe, 2, 2, 2); }).find("argument 'stage'"),
            std::string::npos);
  EXPECT_NE(message([] { dist::pipeline_kind_from_name("zb"); }).find("'gpipe' or '1f1b', got 'zb'"),
            std::string::npos);
  EXPECT_NE(message([] { dist::pipeline_schedule(PipelineKind::one_f_one_b, 1 << 16, 1 << 20); }).find("at most"),
            std::string::npos);
  EXPECT_EQ(dist::pipeline_kind_from_name("1f1b"), PipelineKind::one_f_one_b);
  EXPECT_STREQ(dist::pipeline_kind_name(PipelineKind::gpipe), "gpipe");
}

}  // namespace

#pragma once
// Pipeline model parallelism over MPI point-to-point: rank s of a communicator of p ranks holds
// stage s of a model cut into p consecutive parts, and PipelineStage::step runs that stage's
// operations of one training step (pipeline_schedule.hpp: gpipe or 1f1b over m micro-batches).
//
// forward(j): stage 0 takes micro-batch j of the inputs, stage s > 0 receives the activation of
// stage s - 1; the stage's output goes to stage s + 1, or, on the last stage, into the loss, whose
// gradient (scaled by the micro-batch's share of the step's samples) waits for backward(j).
// backward(j): the stage receives the output gradient from stage s + 1 (or takes the loss gradient),
// runs backward, and sends the input gradient to stage s - 1. Parameter gradients add up over the
// micro-batches (parameter.hpp's rule), so after step() they are those of the mean loss over the
// whole batch; call zero_grad() before and the optimizer after, as for one process.
//
// A module keeps the state of one forward, so between forward(j) and backward(j) a stage keeps only
// micro-batch j's input and, when the module's state is another micro-batch's, runs forward(j) again
// right before backward(j) (re-materialization, as GPipe does; Huang et al. 2019). The generators of
// the stage's stochastic layers (dropout, DropConnect, noise), passed to the constructor, are wound
// back for that forward, so that it draws the masks of the first one. The 1f1b schedule keeps at
// most p - s inputs in flight on stage s; on the last stage it never recomputes.
//
// Messages: a shape header (MPI_INT64_T) then the data, tags 4 j (+1) for activations and 4 j + 2
// (+3) for gradients; sends are non-blocking (waited for at the end of the step), so the schedules
// cannot deadlock on buffered sends. CPU tensors, float32 or float64; the stage's module in training
// mode; one thread at a time. Arguments are checked before the first message, but a check that fails
// on one rank leaves the others waiting for it: on an exception call MPI_Abort (as
// examples/cpp/distributed_mlp.cpp does). Included only by programs that link MPI.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "seisoku/distributed/mpi_util.hpp"
#include "seisoku/distributed/pipeline_schedule.hpp"
#include "seisoku/nn/loss.hpp"
#include "seisoku/nn/module.hpp"
#include "seisoku/random.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::distributed {

class PipelineStage {
 public:
  // This rank's stage (its rank in comm) of a pipeline over all ranks of comm (duplicated, so that
  // its messages never mix with the caller's). Collective over comm.
  PipelineStage(std::shared_ptr<nn::Module> module, MPI_Comm comm,
                std::vector<std::shared_ptr<Generator>> generators = {})
      : module_(std::move(module)), generators_(std::move(generators)) {
    if (!module_) throw std::invalid_argument("[PipelineStage] argument 'module' must be a module, got none");
    for (std::size_t i = 0; i < generators_.size(); ++i)
      if (!generators_[i])
        throw std::invalid_argument("[PipelineStage] argument 'generators[" + std::to_string(i) +
                                    "]' must be a generator, got none");
    mpi_check(MPI_Comm_dup(comm, &comm_), kOp, "MPI_Comm_dup");
    stage_ = mpi_rank(comm_);
    stages_ = mpi_size(comm_);
    void* ub = nullptr;
    int flag = 0;
    mpi_check(MPI_Comm_get_attr(comm_, MPI_TAG_UB, &ub, &flag), kOp, "MPI_Comm_get_attr");
    tag_ub_ = flag ? *static_cast<int*>(ub) : 32767;
  }
  PipelineStage(const PipelineStage&) = delete;
  PipelineStage& operator=(const PipelineStage&) = delete;
  ~PipelineStage() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    wait_sends();
    MPI_Comm_free(&comm_);
  }

  int stage() const { return static_cast<int>(stage_); }
  int stages() const { return static_cast<int>(stages_); }
  bool first() const { return stage_ == 0; }
  bool last() const { return stage_ == stages_ - 1; }

  // One training step of `microbatches` micro-batches under schedule `kind`. inputs: the
  // micro-batches' inputs on stage 0 (ignored elsewhere); targets and loss: on the last stage
  // (ignored elsewhere). Returns, on the last stage, the mean loss over the step's samples (each
  // micro-batch's mean loss weighted by its size); NaN on the other stages. Collective over the
  // pipeline's ranks, which all pass the same kind and microbatches.
  double step(PipelineKind kind, std::int64_t microbatches, const std::vector<Tensor>& inputs,
              const std::vector<Tensor>& targets = {}, nn::Loss* loss = nullptr) {
    const StageSchedule ops = pipeline_stage_schedule(kind, stages_, microbatches, stage_);
    if (4 * microbatches - 1 > tag_ub_)
      throw std::invalid_argument("[PipelineStage] argument 'microbatches' must be at most " +
                                  std::to_string((tag_ub_ + 1) / 4) + " (MPI_TAG_UB), got " +
                                  std::to_string(microbatches));
    if (first()) check_list(inputs, microbatches, "inputs");
    double samples = 0.0;
    if (last()) {
      if (loss == nullptr)
        throw std::invalid_argument("[PipelineStage] argument 'loss' must be a loss on the last stage, got none");
      check_list(targets, microbatches, "targets");
      for (const Tensor& t : targets) samples += static_cast<double>(t.size(0));
      if (samples <= 0) throw std::invalid_argument("[PipelineStage] argument 'targets' must hold at least one sample");
    }
    saved_.clear();
    loss_grads_.clear();
    state_ = -1;
    max_in_flight_ = 0;
    recomputed_ = 0;
    double total = 0.0;
    for (const PipelineOp& op : ops) {
      const std::int64_t j = op.microbatch;
      if (op.phase == PipelinePhase::forward) {
        Saved s;
        s.input = first() ? inputs[static_cast<std::size_t>(j)] : receive(stage_ - 1, 4 * j);
        for (const auto& g : generators_) s.offsets.push_back(g->offset());
        const Tensor y = module_->forward(s.input);
        state_ = j;
        if (last()) {
          const Tensor& target = targets[static_cast<std::size_t>(j)];
          const Tensor value = loss->forward(y, target);
          const double share = static_cast<double>(target.size(0)) / samples;
          total += share * scalar(value);
          loss_grads_[j] = scaled(loss->backward(), share);
        } else {
          send(y, stage_ + 1, 4 * j);
        }
        saved_[j] = std::move(s);
        max_in_flight_ = std::max<std::int64_t>(max_in_flight_, static_cast<std::int64_t>(saved_.size()));
      } else {
        const auto it = saved_.find(j);
        if (it == saved_.end()) throw std::logic_error("[PipelineStage] backward before forward of a micro-batch");
        Tensor grad;
        if (last()) {
          grad = loss_grads_[j];
          loss_grads_.erase(j);
        } else {
          grad = receive(stage_ + 1, 4 * j + 2);
        }
        if (state_ != j) rematerialize(it->second);
        const Tensor gx = module_->backward(grad, !first());
        state_ = -1;
        saved_.erase(it);
        if (!first()) send(gx, stage_ - 1, 4 * j + 2);
      }
    }
    wait_sends();
    return last() ? total : std::numeric_limits<double>::quiet_NaN();
  }

  // Of the last step: the most micro-batches in flight on this stage, and the forwards run again.
  std::int64_t max_in_flight() const { return max_in_flight_; }
  std::int64_t recomputed() const { return recomputed_; }

 private:
  static constexpr const char* kOp = "PipelineStage";
  static constexpr int kMaxDims = 8;

  struct Saved {
    Tensor input;
    std::vector<std::uint64_t> offsets;  // of the generators before the first forward
  };
  struct Pending {
    std::vector<std::int64_t> header;
    Tensor data;
    MPI_Request requests[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  };

  void check_list(const std::vector<Tensor>& list, std::int64_t microbatches, const char* name) const {
    if (static_cast<std::int64_t>(list.size()) != microbatches)
      throw std::invalid_argument(std::string("[PipelineStage] argument '") + name + "' must hold " +
                                  std::to_string(microbatches) + " tensors (one per micro-batch), got " +
                                  std::to_string(list.size()));
    for (std::size_t i = 0; i < list.size(); ++i)
      if (!list[i].defined() || list[i].device() != Device::cpu || list[i].dim() < 1)
        throw std::invalid_argument(std::string("[PipelineStage] argument '") + name + "[" + std::to_string(i) +
                                    "]' must be a CPU tensor with a batch axis, got " +
                                    (list[i].defined() ? list[i].describe() : std::string("none")));
  }

  void rematerialize(const Saved& s) {
    std::vector<std::uint64_t> now;
    for (const auto& g : generators_) now.push_back(g->offset());
    for (std::size_t i = 0; i < generators_.size(); ++i) generators_[i]->set_offset(s.offsets[i]);
    module_->forward(s.input);
    for (std::size_t i = 0; i < generators_.size(); ++i) generators_[i]->set_offset(now[i]);
    ++recomputed_;
  }

  static double scalar(const Tensor& t) {
    return t.dtype() == DType::float64 ? *t.data_as<double>() : static_cast<double>(*t.data_as<float>());
  }

  static Tensor scaled(const Tensor& t, double factor) {
    Tensor out = Tensor::empty(t.shape(), t.dtype());
    if (t.dtype() == DType::float64) {
      for (std::int64_t k = 0; k < t.numel(); ++k) out.data_as<double>()[k] = t.data_as<double>()[k] * factor;
    } else {
      const auto f = static_cast<float>(factor);
      for (std::int64_t k = 0; k < t.numel(); ++k) out.data_as<float>()[k] = t.data_as<float>()[k] * f;
    }
    return out;
  }

  void send(const Tensor& t, std::int64_t to, std::int64_t tag) {
    if (t.device() != Device::cpu || t.dim() > kMaxDims || t.numel() > INT_MAX)
      throw std::invalid_argument("[PipelineStage] a stage's output must be a CPU tensor of at most 8 dimensions and "
                                  "INT_MAX elements, got " + t.describe());
    auto p = std::make_unique<Pending>();
    p->header.assign(kMaxDims + 2, 0);
    p->header[0] = static_cast<std::int64_t>(t.dtype());
    p->header[1] = t.dim();
    for (std::int64_t d = 0; d < t.dim(); ++d) p->header[2 + d] = t.size(d);
    p->data = t;  // held until the send completes, so the module does not reuse the memory
    mpi_check(MPI_Isend(p->header.data(), kMaxDims + 2, MPI_INT64_T, static_cast<int>(to), static_cast<int>(tag),
                        comm_, &p->requests[0]),
              kOp, "MPI_Isend");
    mpi_check(MPI_Isend(t.data(), static_cast<int>(t.numel()), mpi_datatype(t.dtype(), kOp), static_cast<int>(to),
                        static_cast<int>(tag + 1), comm_, &p->requests[1]),
              kOp, "MPI_Isend");
    sends_.push_back(std::move(p));
  }

  Tensor receive(std::int64_t from, std::int64_t tag) {
    std::vector<std::int64_t> header(kMaxDims + 2);
    mpi_check(MPI_Recv(header.data(), kMaxDims + 2, MPI_INT64_T, static_cast<int>(from), static_cast<int>(tag), comm_,
                       MPI_STATUS_IGNORE),
              kOp, "MPI_Recv");
    const auto dtype = static_cast<DType>(header[0]);
    const Shape shape(header.begin() + 2, header.begin() + 2 + header[1]);
    Tensor t = Tensor::empty(shape, dtype);
    mpi_check(MPI_Recv(t.data(), static_cast<int>(t.numel()), mpi_datatype(dtype, kOp), static_cast<int>(from),
                       static_cast<int>(tag + 1), comm_, MPI_STATUS_IGNORE),
              kOp, "MPI_Recv");
    return t;
  }

  void wait_sends() {
    for (auto& p : sends_) MPI_Waitall(2, p->requests, MPI_STATUSES_IGNORE);
    sends_.clear();
  }

  std::shared_ptr<nn::Module> module_;
  std::vector<std::shared_ptr<Generator>> generators_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::int64_t stage_ = 0, stages_ = 1;
  int tag_ub_ = 32767;
  std::map<std::int64_t, Saved> saved_;
  std::map<std::int64_t, Tensor> loss_grads_;
  std::vector<std::unique_ptr<Pending>> sends_;
  std::int64_t state_ = -1;
  std::int64_t max_in_flight_ = 0, recomputed_ = 0;
};

}  // namespace seisoku::distributed

#pragma once
// Synchronous data parallelism over MPI for C++ training loops: every rank holds the whole model,
// trains on its own shard of the global batch, and the gradients are averaged across ranks before
// each optimizer step, so that every rank takes the same step as one process on the global batch.
//
// GradientReducer packs the gradients into buckets (bucket_plan.hpp: reverse parameter order, at
// most bucket_bytes each) and starts one MPI_Iallreduce per bucket as soon as the gradients of all
// its parameters are final, while backward goes on through earlier layers; finish() waits for the
// reductions and writes the mean back into each parameter's gradient. Buckets start strictly in
// plan order on every rank (MPI requires the same order of collectives on all ranks).
//
//   namespace dist = seisoku::distributed;
//   dist::broadcast_parameters(model, MPI_COMM_WORLD);          // same start on every rank
//   dist::GradientReducer reducer(model, MPI_COMM_WORLD);       // 25 MiB buckets
//   model.zero_grad();
//   loss.forward(model.forward(x_shard), y_shard);
//   dist::backward_and_allreduce(model, loss.backward(), reducer);  // layer by layer, overlapped
//   optimizer.step();
//
// The mean is over ranks (each rank's loss a mean over equally many samples), or, after
// begin(local_samples), over the global samples: each rank's gradient weighted by its share of
// them (for shards of unequal sizes). CPU tensors, float32 and float64; one thread at a time.
// Included only by programs that link MPI. Errors throw (std::invalid_argument for arguments,
// std::runtime_error for a failed MPI call); as the other ranks may then wait in a collective,
// call MPI_Abort on an exception.
#include <mpi.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "seisoku/distributed/bucket_plan.hpp"
#include "seisoku/distributed/mpi_util.hpp"
#include "seisoku/nn/containers.hpp"
#include "seisoku/nn/module.hpp"
#include "seisoku/nn/parameter.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::distributed {

// Overwrites every parameter's value with the one of rank `root` (one MPI_Bcast per parameter).
// Collective: every rank of comm calls it with the same parameters in the same order.
inline void broadcast_parameters(const std::vector<nn::ParameterPtr>& params, MPI_Comm comm, int root = 0) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& v = params[i]->value();
    if (v.device() != Device::cpu)
      throw std::invalid_argument("[broadcast_parameters] argument 'params[" + std::to_string(i) +
                                  "]' must be on the CPU, got " + v.describe());
    if (v.numel() > INT_MAX)
      throw std::invalid_argument("[broadcast_parameters] argument 'params[" + std::to_string(i) +
                                  "]' must have at most INT_MAX elements, got " + v.describe());
    mpi_check(MPI_Bcast(v.data(), static_cast<int>(v.numel()), mpi_datatype(v.dtype(), "broadcast_parameters"), root,
                        comm),
              "broadcast_parameters", "MPI_Bcast");
  }
}
inline void broadcast_parameters(const nn::Module& model, MPI_Comm comm, int root = 0) {
  broadcast_parameters(model.parameters(), comm, root);
}

class GradientReducer {
 public:
  // Reduces the gradients of `params` (registration order) over the ranks of comm (duplicated, so
  // that its collectives never mix with the caller's). Collective over comm.
  GradientReducer(std::vector<nn::ParameterPtr> params, MPI_Comm comm, std::size_t bucket_bytes = kDefaultBucketBytes)
      : params_(std::move(params)), buckets_(plan_buckets(params_, bucket_bytes)) {
    bucket_of_.resize(params_.size());
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      if (buckets_[b].numel > INT_MAX)
        throw std::invalid_argument("[GradientReducer] a bucket must hold at most INT_MAX elements, got " +
                                    std::to_string(buckets_[b].numel));
      buffers_.push_back(Tensor::empty({buckets_[b].numel}, buckets_[b].dtype));
      for (const BucketSlot& s : buckets_[b].slots) bucket_of_[s.parameter] = b;
    }
    for (std::size_t i = 0; i < params_.size(); ++i) index_[params_[i].get()] = i;
    mpi_check(MPI_Comm_dup(comm, &comm_), kOp, "MPI_Comm_dup");
    size_ = mpi_size(comm_);
    requests_.assign(buckets_.size(), MPI_REQUEST_NULL);
    reset();
  }
  GradientReducer(const nn::Module& model, MPI_Comm comm, std::size_t bucket_bytes = kDefaultBucketBytes)
      : GradientReducer(model.parameters(), comm, bucket_bytes) {}
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;
  // Waits for reductions still running (their buffers are ours) and frees the communicator; destroy
  // the reducer before MPI_Finalize.
  ~GradientReducer() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    MPI_Comm_free(&comm_);
  }

  // Makes this step's mean the one over global samples: this rank's gradients (means over its
  // local_samples) are weighted by local_samples / (sum over ranks). Collective (one MPI_Allreduce
  // of the counts); call it before the step's first mark_ready. Without it the mean is over ranks.
  void begin(std::int64_t local_samples) {
    if (local_samples < 0)
      throw std::invalid_argument("[GradientReducer] argument 'local_samples' must be >= 0, got " +
                                  std::to_string(local_samples));
    if (marked_ != 0)
      throw std::logic_error("[GradientReducer] begin() must come before the step's first mark_ready()");
    long long local = local_samples, total = 0;
    mpi_check(MPI_Allreduce(&local, &total, 1, MPI_LONG_LONG, MPI_SUM, comm_), kOp, "MPI_Allreduce");
    if (total <= 0)
      throw std::invalid_argument("[GradientReducer] the global sample count must be > 0, got " +
                                  std::to_string(total));
    prescale_ = static_cast<double>(local);
    divisor_ = static_cast<double>(total);
  }

  // The gradient of `parameter` is final for this step: when that completes its bucket (and every
  // earlier bucket is started), the bucket's allreduce starts. Marking twice does nothing.
  void mark_ready(const nn::Parameter& parameter) {
    const auto it = index_.find(&parameter);
    if (it == index_.end())
      throw std::invalid_argument(
          "[GradientReducer] argument 'parameter' must be one of the reducer's parameters, got '" + parameter.name +
          "'");
    mark(it->second);
    launch_ready();
    progress();
  }
  // Marks every parameter of `module` the reducer holds.
  void mark_ready(const nn::Module& module) {
    for (const nn::ParameterPtr& p : module.parameters()) {
      const auto it = index_.find(p.get());
      if (it != index_.end()) mark(it->second);
    }
    launch_ready();
    progress();
  }
  bool holds(const nn::Parameter& parameter) const { return index_.count(&parameter) != 0; }

  // Marks what is not yet marked, waits for every bucket, and writes sum / divisor into each
  // parameter's gradient. Collective; ends the step (the next one averages over ranks again).
  void finish() {
    for (std::size_t i = 0; i < params_.size(); ++i) mark(i);
    launch_ready();
    mpi_check(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE), kOp,
              "MPI_Waitall");
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      if (buckets_[b].dtype == DType::float32) {
        scatter<float>(b);
      } else {
        scatter<double>(b);
      }
    }
    launched_early_ = early_;
    reset();
  }

  const std::vector<Bucket>& buckets() const { return buckets_; }
  const std::vector<nn::ParameterPtr>& parameters() const { return params_; }
  int world_size() const { return size_; }
  MPI_Comm comm() const { return comm_; }
  // How many buckets of the last step started their allreduce while some gradient was not yet ready
  // (the reductions that overlapped with backward).
  std::size_t buckets_started_early() const { return launched_early_; }

 private:
  static constexpr const char* kOp = "GradientReducer";

  void reset() {
    ready_.assign(params_.size(), 0);
    pending_.clear();
    for (const Bucket& b : buckets_) pending_.push_back(b.slots.size());
    next_ = 0;
    marked_ = 0;
    early_ = 0;
    prescale_ = 1.0;
    divisor_ = static_cast<double>(size_);
  }

  void mark(std::size_t i) {
    if (ready_[i]) return;
    ready_[i] = 1;
    ++marked_;
    --pending_[bucket_of_[i]];
  }

  void launch_ready() {
    while (next_ < buckets_.size() && pending_[next_] == 0) {
      const Bucket& b = buckets_[next_];
      if (b.dtype == DType::float32) {
        gather<float>(next_);
      } else {
        gather<double>(next_);
      }
      mpi_check(MPI_Iallreduce(MPI_IN_PLACE, buffers_[next_].data(), static_cast<int>(b.numel),
                               mpi_datatype(b.dtype, kOp), MPI_SUM, comm_, &requests_[next_]),
                kOp, "MPI_Iallreduce");
      if (marked_ < params_.size()) ++early_;
      ++next_;
    }
  }

  // Lets MPI move the started reductions on (MPI progresses non-blocking collectives inside calls).
  void progress() {
    if (next_ == 0) return;
    int flag = 0;
    mpi_check(MPI_Testall(static_cast<int>(next_), requests_.data(), &flag, MPI_STATUSES_IGNORE), kOp, "MPI_Testall");
  }

  template <class T>
  void gather(std::size_t b) {
    T* out = buffers_[b].data_as<T>();
    const T scale = static_cast<T>(prescale_);
    for (const BucketSlot& s : buckets_[b].slots) {
      const T* g = params_[s.parameter]->grad().data_as<T>();  // a gradient marked zero reads as zeros
      T* dst = out + s.offset;
      if (prescale_ == 1.0) {
        std::memcpy(dst, g, static_cast<std::size_t>(s.numel) * sizeof(T));
      } else {
        for (std::int64_t k = 0; k < s.numel; ++k) dst[k] = g[k] * scale;
      }
    }
  }

  template <class T>
  void scatter(std::size_t b) {
    const T* in = buffers_[b].data_as<T>();
    const T inv = static_cast<T>(1.0 / divisor_);
    for (const BucketSlot& s : buckets_[b].slots) {
      T* g = params_[s.parameter]->grad().data_as<T>();
      const T* src = in + s.offset;
      for (std::int64_t k = 0; k < s.numel; ++k) g[k] = src[k] * inv;
    }
  }

  std::vector<nn::ParameterPtr> params_;
  std::vector<Bucket> buckets_;
  std::vector<Tensor> buffers_;
  std::vector<std::size_t> bucket_of_;  // per parameter
  std::unordered_map<const nn::Parameter*, std::size_t> index_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int size_ = 1;
  std::vector<MPI_Request> requests_;
  std::vector<std::uint8_t> ready_;
  std::vector<std::size_t> pending_;  // per bucket: parameters not yet ready
  std::size_t next_ = 0;               // the next bucket to start
  std::size_t marked_ = 0;
  std::size_t early_ = 0, launched_early_ = 0;
  double prescale_ = 1.0, divisor_ = 1.0;
};

// Sequential::backward layer by layer, marking each parameter ready after the last layer that uses
// it (a parameter shared by several layers waits for all of them), so that the buckets' allreduces
// run while the earlier layers compute; then reducer.finish(). Returns the input gradient (undefined
// unless need_input_grad).
inline Tensor backward_and_allreduce(nn::Sequential& model, const Tensor& grad, GradientReducer& reducer,
                                     bool need_input_grad = false) {
  const auto& layers = model.layers();
  std::vector<std::vector<const nn::Parameter*>> uses(layers.size());
  std::unordered_map<const nn::Parameter*, int> remaining;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    for (const nn::ParameterPtr& p : layers[i]->parameters()) {
      if (!reducer.holds(*p)) continue;
      uses[i].push_back(p.get());
      ++remaining[p.get()];
    }
  }
  Tensor g = grad;
  for (std::size_t i = layers.size(); i-- > 0;) {
    g = layers[i]->backward(g, need_input_grad || i > 0);
    for (const nn::Parameter* p : uses[i])
      if (--remaining[p] == 0) reducer.mark_ready(*p);
  }
  reducer.finish();
  return g;
}

}  // namespace seisoku::distributed

#pragma once
// Gradient buckets: how a model's parameters are grouped for bucketed allreduce (no MPI here; the
// reducer of seisoku/distributed/data_parallel.hpp follows this plan).
//
// Parameters are taken in reverse registration order, the order in which a backward pass through a
// Sequential finishes their gradients, and packed into buckets of at most `bucket_bytes` bytes of
// one dtype: a bucket closes when the next parameter would overflow it or has another dtype. A
// parameter larger than bucket_bytes gets a bucket of its own. Bucket 0 therefore holds the
// gradients that are ready first, and its allreduce can start while backward continues.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "seisoku/nn/parameter.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::distributed {

// 25 MiB, the default bucket cap of PyTorch's DistributedDataParallel (bucket_cap_mb=25).
inline constexpr std::size_t kDefaultBucketBytes = std::size_t{25} << 20;

// One parameter's place in a bucket: params[parameter] occupies elements [offset, offset + numel).
struct BucketSlot {
  std::size_t parameter;
  std::int64_t offset;
  std::int64_t numel;
};

struct Bucket {
  DType dtype = DType::float32;
  std::int64_t numel = 0;
  std::vector<BucketSlot> slots;  // in the order the parameters were packed (reverse registration)
  std::size_t nbytes() const { return static_cast<std::size_t>(numel) * itemsize(dtype); }
};

// The buckets of `params` (registration order, e.g. Module::parameters()). Throws
// std::invalid_argument ("[plan_buckets] ...") for bucket_bytes 0, a null or repeated parameter,
// a parameter off the CPU or of a dtype other than float32 and float64.
inline std::vector<Bucket> plan_buckets(const std::vector<nn::ParameterPtr>& params,
                                        std::size_t bucket_bytes = kDefaultBucketBytes) {
  if (bucket_bytes == 0) throw std::invalid_argument("[plan_buckets] argument 'bucket_bytes' must be > 0, got 0");
  std::unordered_set<const nn::Parameter*> seen;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const nn::Parameter* p = params[i].get();
    const std::string which = "params[" + std::to_string(i) + "]";
    if (p == nullptr)
      throw std::invalid_argument("[plan_buckets] argument '" + which + "' must be a parameter, got null");
    if (!seen.insert(p).second)
      throw std::invalid_argument("[plan_buckets] argument '" + which + "' must appear once, got a repeat of '" +
                                  p->name + "'");
    const Tensor& v = p->value();
    if (v.device() != Device::cpu)
      throw std::invalid_argument("[plan_buckets] argument '" + which + "' must be on the CPU, got " + v.describe());
    if (v.dtype() != DType::float32 && v.dtype() != DType::float64)
      throw std::invalid_argument("[plan_buckets] argument '" + which + "' must be float32 or float64, got " +
                                  v.describe());
  }
  std::vector<Bucket> buckets;
  std::size_t bytes = 0;
  for (std::size_t k = params.size(); k-- > 0;) {
    const Tensor& v = params[k]->value();
    const std::size_t n = v.nbytes();
    if (buckets.empty() || buckets.back().dtype != v.dtype() ||
        (!buckets.back().slots.empty() && bytes + n > bucket_bytes)) {
      buckets.emplace_back();
      buckets.back().dtype = v.dtype();
      bytes = 0;
    }
    Bucket& b = buckets.back();
    b.slots.push_back({k, b.numel, v.numel()});
    b.numel += v.numel();
    bytes += n;
  }
  return buckets;
}

}  // namespace seisoku::distributed

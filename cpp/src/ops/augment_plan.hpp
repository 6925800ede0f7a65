#pragma once
// The augmentation planner (augment_plan.cpp): groups a pipeline's steps into stages and draws
// every sample's random parameters on the host. The front-ends of augment.cpp validate the
// steps and tensors first, then plan and dispatch.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/augment.hpp"

namespace seisoku::plan {

struct Dims {
  std::int64_t n, h, w, c;
};

Dims dims_of(const Shape& s, ImageLayout layout);
Shape shape_of(const Dims& d, ImageLayout layout);

// A fill value as the kernels store it: rounded and saturated for uint8.
float stored_fill(double fill, DType dtype);

// Groups the steps (each already checked) into stages and routes the buffers; (*members)[i]
// lists the steps of stage i. Throws std::invalid_argument for a crop larger than the image
// its step receives.
std::vector<StagePlan> make_stages(const std::vector<AugmentStep>& steps, const Dims& d, ImageLayout layout,
                                   DType dtype, std::vector<std::vector<std::size_t>>* members);

// Draws sample `offset`'s parameters for every stage into out[0 .. stages.size()), its fill
// rectangles appended to rects; label: the sample's label, or null, which the steps' label_maps
// update as they are applied.
void plan_sample(const std::vector<AugmentStep>& steps, const std::vector<StagePlan>& stages,
                 const std::vector<std::vector<std::size_t>>& members, std::uint64_t seed, std::uint64_t offset,
                 std::int64_t* label, SampleStage* out, std::vector<std::int32_t>* rects);

}  // namespace seisoku::plan

// seisoku::distributed over MPI, run by ctest as `mpiexec -n 2 seisoku_distributed_tests` (it
// passes on any number of ranks; the pipeline test makes one stage per rank). The oracle of every
// reduced gradient is a plain backward of the whole model on each rank followed by one
// MPI_Allreduce of all its gradients; the oracle of the pipeline is one process accumulating the
// micro-batches' gradients.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include <seisoku/distributed/distributed.hpp>
#include <seisoku/seisoku.hpp>

namespace {

namespace dist = seisoku::distributed;
namespace nn = seisoku::nn;
using seisoku::DType;
using seisoku::Tensor;

int rank() { return dist::mpi_rank(MPI_COMM_WORLD); }
int size() { return dist::mpi_size(MPI_COMM_WORLD); }

Tensor inputs(std::int64_t n, std::int64_t features, std::uint64_t seed) {
  Tensor x = Tensor::empty({n, features}, DType::float32);
  seisoku::normal(x, seed, 0);
  return x;
}

Tensor labels(std::int64_t n, std::int64_t classes, std::int64_t shift) {
  Tensor y = Tensor::empty({n}, DType::int64);
  for (std::int64_t i = 0; i < n; ++i) y.data_as<std::int64_t>()[i] = (i * 7 + shift) % classes;
  return y;
}

std::vector<float> flat_grads(const std::vector<nn::ParameterPtr>& params) {
  std::vector<float> out;
  for (const auto& p : params) {
    const Tensor& g = p->grad();
    out.insert(out.end(), g.data_as<float>(), g.data_as<float>() + g.numel());
  }
  return out;
}

// Sum over ranks of each rank's gradients times `weight`, divided by `divisor`.
std::vector<float> reduced(std::vector<float> grads, double weight, double divisor) {
  for (float& g : grads) g = static_cast<float>(g * weight);
  std::vector<float> sum(grads.size());
  MPI_Allreduce(grads.data(), sum.data(), static_cast<int>(grads.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  for (float& g : sum) g = static_cast<float>(g / divisor);
  return sum;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double most = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) most = std::max(most, std::fabs(static_cast<double>(a[i]) - b[i]));
  return most;
}

// Three layers, the last one using the first one's weight (parameter sharing).
struct SharedModel {
  std::shared_ptr<nn::Linear> a, b, c;
  nn::Sequential model;
  SharedModel()
      : a(std::make_shared<nn::Linear>(6, 6, relu(), gen())),
        b(std::make_shared<nn::Linear>(6, 6, relu(), gen())),
        c(std::make_shared<nn::Linear>(6, 6, nn::LinearOptions{}, gen(), a->weight())),
        model({a, b, c}) {}
  static nn::LinearOptions relu() {
    nn::LinearOptions o;
    o.activation = seisoku::Activation::relu;
    return o;
  }
  static std::shared_ptr<seisoku::Generator> gen() {
    static auto g = std::make_shared<seisoku::Generator>(5);
    return g;
  }
};

TEST(DistributedMpi, SharedParameterWaitsForItsLastUse) {
  SharedModel m;
  nn::CrossEntropyLoss loss;
  const Tensor x = inputs(10, 6, 100 + rank()), y = labels(10, 6, rank());
  // The shared weight packed first (bucket 0 of 1-byte buckets): a reducer marking it after its
  // first use in backward (layer c) would send it without layer a's share.
  std::vector<nn::ParameterPtr> order = {m.a->bias(), m.b->weight(), m.b->bias(), m.c->bias(), m.a->weight()};
  m.model.zero_grad();
  loss.forward(m.model.forward(x), y);
  m.model.backward(loss.backward(), false);
  const std::vector<float> want = reduced(flat_grads(order), 1.0, size());

  dist::GradientReducer reducer(order, MPI_COMM_WORLD, 1);
  ASSERT_EQ(reducer.buckets().size(), order.size());
  m.model.zero_grad();
  loss.forward(m.model.forward(x), y);
  dist::backward_and_allreduce(m.model, loss.backward(), reducer);
  EXPECT_LE(max_diff(flat_grads(order), want), 1e-6);
}

TEST(DistributedMpi, MeanOverGlobalSamplesWeightsUnequalShards) {
  SharedModel m;
  nn::CrossEntropyLoss loss;
  const std::int64_t n = 3 + 9 * rank();
  long long local = n, total = 0;
  MPI_Allreduce(&local, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  const Tensor x = inputs(n, 6, 200 + rank()), y = labels(n, 6, rank());
  const auto params = m.model.parameters();
  m.model.zero_grad();
  loss.forward(m.model.forward(x), y);
  m.model.backward(loss.backward(), false);
  const std::vector<float> want = reduced(flat_grads(params), static_cast<double>(n), static_cast<double>(total));

  dist::GradientReducer reducer(m.model, MPI_COMM_WORLD, 64);
  m.model.zero_grad();
  reducer.begin(n);
  loss.forward(m.model.forward(x), y);
  dist::backward_and_allreduce(m.model, loss.backward(), reducer);
  EXPECT_LE(max_diff(flat_grads(params), want), 1e-6);
  // The next step averages over ranks again.
  m.model.zero_grad();
  loss.forward(m.model.forward(x), y);
  m.model.backward(loss.backward(), false);
  const std::vector<float> plain = reduced(flat_grads(params), 1.0, size());
  m.model.zero_grad();
  loss.forward(m.model.forward(x), y);
  dist::backward_and_allreduce(m.model, loss.backward(), reducer);
  EXPECT_LE(max_diff(flat_grads(params), plain), 1e-6);
}

TEST(DistributedMpi, BroadcastFromTheLastRank) {
  const int root = size() - 1;
  auto p = std::make_shared<nn::Parameter>(Tensor::empty({5}, DType::float64));
  for (int k = 0; k < 5; ++k) p->value().data_as<double>()[k] = 10.0 * rank() + k;
  dist::broadcast_parameters({p}, MPI_COMM_WORLD, root);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(p->value().data_as<double>()[k], 10.0 * root + k);
}

TEST(DistributedMpi, ReducerArgumentErrors) {
  SharedModel m;
  dist::GradientReducer reducer(m.model, MPI_COMM_WORLD);
  nn::Parameter stranger(Tensor::zeros({2}, DType::float32), "stranger");
  EXPECT_THROW(reducer.mark_ready(stranger), std::invalid_argument);
  EXPECT_THROW(reducer.begin(-1), std::invalid_argument);
  reducer.mark_ready(*m.b->bias());
  EXPECT_THROW(reducer.begin(4), std::logic_error);
  reducer.finish();  // collective: every rank ends the step it began
  auto integer = std::make_shared<nn::Parameter>(Tensor::zeros({2}, DType::int64));
  EXPECT_THROW(dist::GradientReducer({integer}, MPI_COMM_WORLD), std::invalid_argument);
}

// Stage r of one stage per rank (a hidden Linear each, the last one with the output layer): the
// pipeline's gradients for micro-batches of unequal sizes equal one process accumulating each
// micro-batch's gradient times its share of the samples, and the stage keeps at most as many
// micro-batches in flight as its schedule says.
TEST(DistributedMpi, PipelineWeightsUnequalMicroBatches) {
  const int p = size();
  const auto build = [p] {
    auto g = std::make_shared<seisoku::Generator>(9);
    nn::LinearOptions relu;
    relu.activation = seisoku::Activation::relu;
    std::vector<std::shared_ptr<nn::Sequential>> stages;
    for (int s = 0; s < p; ++s) {
      stages.push_back(std::make_shared<nn::Sequential>());
      stages.back()->append(std::make_shared<nn::Linear>(s == 0 ? 5 : 12, 12, relu, g));
    }
    stages.back()->append(std::make_shared<nn::Linear>(12, 3, nn::LinearOptions{}, g));
    return stages;
  };
  const auto mine = build(), ref = build();
  const std::vector<std::int64_t> sizes = {5, 11, 16, 2, 7};
  const auto m = static_cast<std::int64_t>(sizes.size());
  const double total = 41.0;
  std::vector<Tensor> xs, ys;
  for (std::size_t j = 0; j < sizes.size(); ++j) {
    xs.push_back(inputs(sizes[j], 5, 300 + j));
    ys.push_back(labels(sizes[j], 3, static_cast<std::int64_t>(j)));
  }
  nn::Sequential whole;
  for (const auto& stage : ref) whole.append(stage);
  for (const dist::PipelineKind kind : {dist::PipelineKind::gpipe, dist::PipelineKind::one_f_one_b}) {
    dist::PipelineStage stage(mine[rank()], MPI_COMM_WORLD);
    nn::CrossEntropyLoss loss;
    mine[rank()]->zero_grad();
    const double value = stage.step(kind, m, xs, ys, &loss);
    const std::int64_t in_flight = kind == dist::PipelineKind::gpipe ? m : std::min<std::int64_t>(p - rank(), m);
    EXPECT_EQ(stage.max_in_flight(), in_flight) << dist::pipeline_kind_name(kind);

    nn::CrossEntropyLoss ref_loss;
    whole.zero_grad();
    double ref_value = 0.0;
    for (std::size_t j = 0; j < sizes.size(); ++j) {
      const double share = static_cast<double>(sizes[j]) / total;
      ref_value += share * *ref_loss.forward(whole.forward(xs[j]), ys[j]).data_as<float>();
      const Tensor g = ref_loss.backward();
      Tensor scaled = Tensor::empty(g.shape(), DType::float32);
      for (std::int64_t k = 0; k < g.numel(); ++k)
        scaled.data_as<float>()[k] = g.data_as<float>()[k] * static_cast<float>(share);
      whole.backward(scaled, false);
    }
    EXPECT_EQ(max_diff(flat_grads(mine[rank()]->parameters()), flat_grads(ref[rank()]->parameters())), 0.0)
        << dist::pipeline_kind_name(kind);
    if (rank() == p - 1) {
      EXPECT_NEAR(value, ref_value, 1e-6);
    } else {
      EXPECT_TRUE(std::isnan(value));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}

// Trains a regularized MLP and a small CNN (dropout, DropConnect, label smoothing, L2, max-norm)
// for 200 steps with the C++ API and writes the final parameters, so that the Python test
// (tests/python/test_cpp.py) can check that the same training from Python gives the same bits.
//
//   seisoku_same_bits OUT_DIR   -> OUT_DIR/mlp.bin, OUT_DIR/cnn.bin: every parameter's float32
//                                  values in named_parameters() order
// Data: x ~ U[0, 1) from Generator(1234), labels floor(10 u) with u ~ U[0, 1) (float64) from
// Generator(4321); step t trains on rows [32 t mod 256, + 32). Models and masks draw from
// Generator(42); SGD lr 0.05, momentum 0.9, l2 1e-4, max-norm 3.
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <seisoku/seisoku.hpp>

namespace nn = seisoku::nn;
using seisoku::Activation;
using seisoku::DType;
using seisoku::Tensor;

namespace {

constexpr std::int64_t kSamples = 256, kBatch = 32, kSteps = 200;

Tensor rows(const Tensor& t, std::int64_t first, std::int64_t count) {
  seisoku::Shape shape = t.shape();
  const std::int64_t row = t.numel() / shape[0];
  shape[0] = count;
  const std::size_t offset = static_cast<std::size_t>(first * row) * seisoku::itemsize(t.dtype());
  return Tensor::view(static_cast<char*>(t.data()) + offset, shape, t.dtype(), t.device(), 0, t.storage());
}

void train(nn::Module& model, const Tensor& x, const Tensor& y, const std::string& path) {
  nn::CrossEntropyLoss loss(0.1);
  seisoku::OptimHyper hyper;
  hyper.lr = 0.05;
  hyper.momentum = 0.9;
  hyper.l2 = 1e-4;
  hyper.max_norm = 3.0;
  nn::Optimizer opt(model, hyper);
  model.train();
  for (std::int64_t t = 0; t < kSteps; ++t) {
    const std::int64_t first = (t * kBatch) % kSamples;
    model.zero_grad();
    loss.forward(model.forward(rows(x, first, kBatch)), rows(y, first, kBatch));
    model.backward(loss.backward(), /*need_input_grad=*/false);
    opt.step();
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  for (const auto& [name, p] : model.named_parameters()) {
    const Tensor& v = p->value();
    std::fwrite(v.data(), 1, v.nbytes(), f);
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  Tensor x = Tensor::empty({kSamples, 64}, DType::float32);
  seisoku::Generator data(1234), labels(4321);
  seisoku::uniform(x, data.seed(), data.next_offset());
  Tensor u = Tensor::empty({kSamples}, DType::float64);
  seisoku::uniform(u, labels.seed(), labels.next_offset());
  Tensor y = Tensor::empty({kSamples}, DType::int64);
  for (std::int64_t i = 0; i < kSamples; ++i)
    y.data_as<std::int64_t>()[i] = static_cast<std::int64_t>(u.data_as<double>()[i] * 10.0);

  {
    auto gen = std::make_shared<seisoku::Generator>(42);
    nn::LinearOptions hidden;
    hidden.activation = Activation::relu;
    hidden.dropout = 0.2;
    nn::DropConnectOptions dc;
    dc.p = 0.3;
    dc.activation = Activation::relu;
    nn::Sequential mlp({std::make_shared<nn::Linear>(64, 48, hidden, gen), std::make_shared<nn::DropConnect>(48, 32, dc, gen),
                        std::make_shared<nn::Linear>(32, 10, nn::LinearOptions{}, gen)});
    train(mlp, x, y, out + "/mlp.bin");
  }
  {
    auto gen = std::make_shared<seisoku::Generator>(42);
    nn::DropConnectOptions dc;
    dc.p = 0.2;
    dc.activation = Activation::relu;
    nn::Sequential cnn({std::make_shared<nn::Conv2d>(1, 4, nn::Window{3, 3, 1, 1, 1, 1}, nn::Conv2dOptions{}, gen),
                        std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(nn::Window{2, 2, 2, 2, 0, 0}),
                        std::make_shared<nn::Dropout>(0.25, nn::DropoutMode::inverted, gen),
                        std::make_shared<nn::Flatten>(), std::make_shared<nn::DropConnect>(64, 16, dc, gen),
                        std::make_shared<nn::Linear>(16, 10, nn::LinearOptions{}, gen)});
    train(cnn, x.reshape({kSamples, 1, 8, 8}), y, out + "/cnn.bin");
  }
  std::printf("OK\n");
  return 0;
}

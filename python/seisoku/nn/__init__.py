"""Neural-network layers, models, losses and regularizers over NumPy (CPU) and CuPy (GPU) arrays.

Every class here is a C++ class of seisoku::nn bound with pybind11 (seisoku._core.nn): one
implementation for Python and C++. A Sequential of built-in layers runs forward and backward in one
native call with the GIL released; Python subclasses of Module (forward and backward over NumPy or
CuPy arrays) run inside it like any other layer. Parameters are Parameter objects holding a value
and a gradient; Parameter's docstring states the gradient rule both languages share.
"""

from .. import _core
from . import functional, init
from .models import mlp
from .module import Loss, Module, MultiHead, Parameter, Sequential

_nn = _core.nn
Activation = _nn.Activation
ActivityRegularization = _nn.ActivityRegularization
AutoEncoder = _nn.AutoEncoder
AvgPool2d = _nn.AvgPool2d
BCEWithLogitsLoss = _nn.BCEWithLogitsLoss
Conv2d = _nn.Conv2d
CrossEntropyLoss = _nn.CrossEntropyLoss
DistillationKLLoss = _nn.DistillationKLLoss
DropConnect = _nn.DropConnect
Dropout = _nn.Dropout
FakeQuantize = _nn.FakeQuantize
Flatten = _nn.Flatten
GaussianNoise = _nn.GaussianNoise
Identity = _nn.Identity
LeakyReLU = _nn.LeakyReLU
Linear = _nn.Linear
MSELoss = _nn.MSELoss
MaxPool2d = _nn.MaxPool2d
QATLinear = _nn.QATLinear
QuantizedConv2d = _nn.QuantizedConv2d
QuantizedLinear = _nn.QuantizedLinear
ReLU = _nn.ReLU
Sigmoid = _nn.Sigmoid
Softmax = _nn.Softmax
SparseLinear = _nn.SparseLinear
Tanh = _nn.Tanh
Tie = _nn.Tie
TiedLinear = _nn.TiedLinear

__all__ = [
    "Activation",
    "ActivityRegularization",
    "AutoEncoder",
    "AvgPool2d",
    "BCEWithLogitsLoss",
    "Conv2d",
    "CrossEntropyLoss",
    "DistillationKLLoss",
    "DropConnect",
    "Dropout",
    "FakeQuantize",
    "Flatten",
    "GaussianNoise",
    "Identity",
    "LeakyReLU",
    "Linear",
    "Loss",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "MultiHead",
    "Parameter",
    "QATLinear",
    "QuantizedConv2d",
    "QuantizedLinear",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "SparseLinear",
    "Tanh",
    "Tie",
    "TiedLinear",
    "functional",
    "init",
    "mlp",
]

"""Neural-network layers, losses and regularizers over NumPy (CPU) and CuPy (GPU) arrays.

Every layer has forward and backward running native (C++/CUDA) ops; parameters are
Parameter objects holding a value and a gradient.
"""

from . import functional, init
from .layers import (
    ActivityRegularization,
    AvgPool2d,
    Conv2d,
    DropConnect,
    Dropout,
    Flatten,
    GaussianNoise,
    Identity,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    Tie,
    TiedLinear,
)
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, DistillationKLLoss, Loss, MSELoss
from .models import AutoEncoder, mlp
from .module import Module, MultiHead, Parameter, Sequential

__all__ = [
    "ActivityRegularization",
    "AutoEncoder",
    "AvgPool2d",
    "BCEWithLogitsLoss",
    "Conv2d",
    "CrossEntropyLoss",
    "DistillationKLLoss",
    "DropConnect",
    "Dropout",
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
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Tie",
    "TiedLinear",
    "functional",
    "init",
    "mlp",
]

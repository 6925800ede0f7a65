"""Model-parallel pipeline training: a Sequential split into stages on consecutive MPI ranks.

Stage ``s`` (rank ``s`` of the communicator) holds layers ``split[s-1]:split[s]`` of the model.
A batch is cut into ``micro_batches`` micro-batches (``numpy.array_split`` sizes); stage ``s``
receives each micro-batch's activations from stage ``s-1`` and sends its outputs to ``s+1``
(``Isend``/``Irecv`` on the arrays themselves, no pickling); the last stage computes the loss and
the gradients travel back the same way. Parameter gradients accumulate over the micro-batches
(each micro-batch's loss gradient is weighted by its share of the batch), then every stage steps
its own optimizer on its own parameters: the result is the full-batch gradient step of one
process, to rounding (float64: 1e-12).

Two schedules, both ending each step with a flush (all backward passes done before the step):

* ``"gpipe"`` (Huang et al. 2019, GPipe): all forward passes, then all backward passes;
* ``"1f1b"`` (Narayanan et al. 2019, PipeDream; the flush variant of Megatron-LM 2021): stage
  ``s`` runs ``p - s - 1`` forward passes, then alternates one forward and one backward, then
  drains; it keeps at most ``p - s`` micro-batches of activations instead of ``m``.

With equal stage times both leave each stage idle for the bubble fraction
``(p - 1) / (m + p - 1)`` of a step; :func:`idle_fractions` measures the idle time per stage.
Every layer keeps the memory of its last forward pass, so a stage holds one copy of its layers
per micro-batch in flight (the copies share the Parameter objects, hence the gradients).
Split points are given, or ``"balanced"``: rank 0 times every layer's forward and backward on a
micro-batch (:func:`profile_layers`) and :func:`balanced_split` minimizes the slowest stage.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from .. import _core
from . import _p2p

Array = Any
SCHEDULES = ("gpipe", "1f1b")
_SETUP_TAG = 32000


def bubble_fraction(stages: int, micro_batches: int) -> float:
    """The GPipe bubble (p - 1) / (m + p - 1): the idle share of a step at equal stage times."""
    return (stages - 1) / (micro_batches + stages - 1)


def balanced_split(costs: Sequence[float], stages: int) -> list[int]:
    """Split points (``stages - 1`` layer indices where a new stage starts) that cut consecutive
    layers with the given costs (seconds, any unit) into `stages` non-empty groups minimizing the
    largest group sum (exact, by dynamic programming; ties go to the earliest cut)."""
    c = [float(v) for v in costs]
    n = len(c)
    if not 1 <= stages <= n:
        raise ValueError(
            f"[pipeline] argument 'stages' must be between 1 and the layer count {n}, got {stages}"
        )
    prefix = np.concatenate([[0.0], np.cumsum(c)])
    inf = float("inf")
    # best[k][i]: the smallest largest-group cost of the first i layers in k groups
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0.0
    for k in range(1, stages + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                v = max(best[k - 1][j], prefix[i] - prefix[j])
                if v < best[k][i] - 1e-15 * abs(best[k][i] if best[k][i] < inf else 0.0):
                    best[k][i], cut[k][i] = v, j
    points, i = [], n
    for k in range(stages, 1, -1):
        i = cut[k][i]
        points.append(i)
    return points[::-1]


def _replica(layer: Any, index: int) -> Any:
    """A copy of `layer` sharing its Parameter objects but with its own forward memory."""
    if isinstance(layer, _core.nn.Sequential):
        return _core.nn.Sequential(*[_replica(m, index) for m in layer.layers])
    if layer._children():
        raise ValueError(
            f"[pipeline] layer {index} ({type(layer).__name__}) has sub-modules; a pipeline stage "
            "takes layers without children and Sequentials of them"
        )
    return copy.copy(layer)


def profile_layers(model: Any, x: Array, repeats: int = 3) -> list[float]:
    """Seconds of forward plus backward of each layer of a Sequential on input `x` (best of
    `repeats`), measured in evaluation mode on copies (the model's random generators, caches and
    gradients are left as they were)."""
    layers = model.layers
    copies = [_replica(m, i) for i, m in enumerate(layers)]
    training = model.training
    for m in copies:
        m.eval()
    best = [float("inf")] * len(copies)
    try:
        for _ in range(max(1, int(repeats))):
            h, outs, times = x, [], []
            for m in copies:
                t0 = time.perf_counter()
                h = m.forward(h)
                times.append(time.perf_counter() - t0)
                outs.append(h)
            g = np.ones_like(outs[-1])
            for i in range(len(copies) - 1, -1, -1):
                t0 = time.perf_counter()
                g = copies[i].backward(g, need_input_grad=i > 0)
                times[i] += time.perf_counter() - t0
                if g is not None:
                    g = np.ones_like(g)
            best = [min(a, b) for a, b in zip(best, times)]
    finally:
        for p in model.parameters():
            p.zero_grad()
        if training:
            model.train()
    return best


def _check_split(split: Sequence[int], layers: int, stages: int) -> list[int]:
    points = [int(s) for s in split]
    ok = len(points) == stages - 1 and all(a < b for a, b in zip([0, *points], [*points, layers]))
    if not ok:
        raise ValueError(
            f"[pipeline] argument 'split' must be {stages - 1} increasing layer indices in "
            f"1..{layers - 1} (one per stage boundary, every stage non-empty), got {list(split)}"
        )
    return points


class Pipeline:
    """Train a Sequential split into pipeline stages, one per rank of `comm`.

    Every rank builds the same model (same seed) and creates the Pipeline; rank ``s`` keeps
    stage ``s``. Call :meth:`train_step` on every rank with the same batch: the first stage reads
    ``x``, the last stage reads ``y`` (other ranks may pass None for what they do not read).

    Args:
        model: a Sequential of layers (nested Sequentials allowed).
        loss: the loss object (e.g. CrossEntropyLoss()), used on the last stage.
        optimizer: a function from a list of Parameters to an optimizer (e.g.
            ``lambda ps: SGD(ps, lr=0.1)``); each stage steps its own. None: no step (gradients
            are left in the parameters).
        split: ``stages - 1`` layer indices where stages begin, or "balanced" (default): split by
            the measured forward+backward time per layer on the first micro-batch.
        micro_batches: micro-batches per step (default 4; a batch smaller than that uses one per
            sample).
        schedule: "1f1b" (default) or "gpipe".
        comm: an mpi4py communicator of at least 2 ranks (default MPI.COMM_WORLD).
        timeout: seconds any wait for another rank may take before TimeoutError
            (default None: $SEISOKU_MPI_TIMEOUT, else 300).
    """

    def __init__(
        self,
        model: Any,
        loss: Any,
        optimizer: Callable[[list[Any]], Any] | None = None,
        *,
        split: Sequence[int] | str = "balanced",
        micro_batches: int = 4,
        schedule: str = "1f1b",
        comm: Any = None,
        timeout: float | None = None,
    ) -> None:
        self.comm = _p2p.world(comm, "pipeline")
        self.rank, self.stages = self.comm.Get_rank(), self.comm.Get_size()
        if not isinstance(model, _core.nn.Sequential):
            raise ValueError(
                f"[pipeline] argument 'model' must be a Sequential, got {type(model).__name__}"
            )
        if len(model.layers) < self.stages:
            raise ValueError(
                f"[pipeline] a model of {len(model.layers)} layers cannot fill {self.stages} "
                "stages (one rank per stage; launch fewer ranks)"
            )
        if schedule not in SCHEDULES:
            raise ValueError(
                f"[pipeline] argument 'schedule' must be one of {SCHEDULES}, got {schedule!r}"
            )
        if (
            isinstance(micro_batches, bool)
            or not isinstance(micro_batches, (int, np.integer))
            or micro_batches < 1
        ):
            raise ValueError(
                "[pipeline] argument 'micro_batches' must be an integer >= 1, "
                f"got {micro_batches!r}"
            )
        if isinstance(split, str) and split != "balanced":
            raise ValueError(
                f"[pipeline] argument 'split' must be 'balanced' or indices, got {split!r}"
            )
        self.model, self.loss, self.schedule = model, loss, schedule
        self.micro_batches = int(micro_batches)
        self.timeout = _p2p.check_timeout(timeout, "pipeline")
        self.comm = _p2p.private(self.comm, self.timeout, "pipeline")
        self._split_arg = split
        self._make_optimizer = optimizer
        self.optimizer: Any = None
        self.split: list[int] | None = None
        if not isinstance(split, str):
            self._place(_check_split(split, len(model.layers), self.stages))
        self.sample_shape: tuple[int, ...] | None = None  # per-sample input shape of this stage
        self.out_shape: tuple[int, ...] | None = None
        self.last_timing: dict[str, float] = {}

    # -- set-up --------------------------------------------------------------------------
    def _place(self, points: list[int]) -> None:
        bounds = [0, *points, len(self.model.layers)]
        owner: dict[int, tuple[int, Any]] = {}  # holds the Parameters, so ids stay unique
        for stage, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            for i in range(a, b):
                for p in self.model.layers[i].parameters():
                    first = owner.setdefault(id(p), (stage, p))[0]
                    if first != stage:
                        raise ValueError(
                            f"[pipeline] a parameter ({p.name or 'unnamed'}, shape {p.shape}) "
                            f"is shared by stages {first} and {stage} (split {points}); "
                            "shared parameters must stay within one stage"
                        )
        self.split = points
        self.first, self.stop = bounds[self.rank], bounds[self.rank + 1]
        self.layers = self.model.layers[self.first : self.stop]
        self.stage_params = list({id(p): p for m in self.layers for p in m.parameters()}.values())
        if self._make_optimizer is not None and self.stage_params:
            self.optimizer = self._make_optimizer(self.stage_params)
        self._replicas: list[Any] = [_core.nn.Sequential(*self.layers)]

    def _slots(self) -> int:
        if self.schedule == "gpipe":
            return self.micro_batches
        return min(self.micro_batches, self.stages - self.rank)

    def setup(self, x: Array | None) -> None:
        """Choose the split (when "balanced") and check that every stage takes the previous
        stage's output; collective, called by the first train_step. On a mismatch every rank
        raises the same ValueError naming the stage, the shape and the layer's complaint."""
        if self.split is None:
            costs = None
            if self.rank == 0:
                xm = np.array_split(np.asarray(x), self.micro_batches)[0]
                costs = profile_layers(self.model, xm)
            costs = _p2p.allgather_object(
                self.comm, costs, _SETUP_TAG + 2, self.timeout, "pipeline"
            )[0]
            self.costs = costs
            self._place(balanced_split(costs, self.stages))
        self._replicas = [
            _core.nn.Sequential(
                *(
                    self.layers
                    if k == 0
                    else [_replica(m, self.first + i) for i, m in enumerate(self.layers)]
                )
            )
            for k in range(self._slots())
        ]
        what = f"[pipeline] stage {self.rank}"
        error, info = None, None
        if self.rank == 0:
            info = (tuple(np.asarray(x).shape[1:]), np.asarray(x).dtype.str)
        else:
            info = _p2p.recv_object(
                self.comm,
                self.rank - 1,
                _SETUP_TAG,
                self.timeout,
                f"{what} waited for the output shape of stage {self.rank - 1}",
            )
        out = info
        if isinstance(info, str):
            error = info
        else:
            shape, dtype = info
            self.sample_shape, self.dtype = shape, np.dtype(dtype)
            try:
                out = self._dry_run(shape, self.dtype)
            except Exception as e:
                source = f"the output of stage {self.rank - 1}" if self.rank > 0 else "the input"
                error = (
                    f"{what} (layers {self.first}..{self.stop - 1}, rank {self.rank}) cannot take "
                    f"{source}: per-sample shape {shape}, {self.dtype.name}: {e}"
                )
                out = error
        if self.rank + 1 < self.stages:
            self.comm.send(out, dest=self.rank + 1, tag=_SETUP_TAG)
        if not isinstance(out, str):
            self.out_shape, self.out_dtype = out[0], np.dtype(out[1])
        everyone = _p2p.allgather_object(self.comm, error, _SETUP_TAG + 3, self.timeout, "pipeline")
        errors = [e for e in everyone if e is not None]
        if errors:
            raise ValueError(errors[0])

    def _dry_run(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[tuple[int, ...], str]:
        probe = _core.nn.Sequential(
            *[_replica(m, self.first + i) for i, m in enumerate(self.layers)]
        )
        probe.eval()
        out = probe.forward(np.zeros((1, *shape), dtype=dtype))
        return tuple(out.shape[1:]), out.dtype.str

    # -- one step ------------------------------------------------------------------------
    def _ops(self, m: int) -> list[tuple[str, int]]:
        # The schedule the C++ pipeline runner uses too (seisoku/distributed/pipeline_schedule.hpp).
        return _core.pipeline_schedule(self.schedule, self.stages, m)[self.rank]

    def train_step(self, x: Array | None, y: Array | None) -> dict[str, float] | None:
        """One pipelined step over a batch: forward and backward of every micro-batch, then each
        stage's optimizer step. Returns, on the last stage, the batch's mean loss, its count of
        correct predictions (classification) and its size; None on the other ranks."""
        s, last = self.rank, self.rank == self.stages - 1
        for name, value, needed in (("x", x, s == 0), ("y", y, last)):
            if needed and (value is None or len(value) == 0):
                got = "None" if value is None else "an empty array"
                raise ValueError(
                    f"[pipeline] argument '{name}' must be a non-empty batch on stage {s}, "
                    f"got {got}"
                )
        if self.sample_shape is None:
            self.setup(x)
        if s == 0:
            xs = np.array_split(np.asarray(x), min(self.micro_batches, len(x)))
        if last:
            ys = np.array_split(y, min(self.micro_batches, len(y)))
            n = len(y)
        m = len(xs) if s == 0 else (len(ys) if last else None)
        m = self._count_micro_batches(m)
        for p in self.stage_params:
            p.zero_grad()
        slots = len(self._replicas)
        sends: list[Any] = []
        grad_reqs: dict[int, tuple[Any, np.ndarray]] = {}
        loss_grads: dict[int, np.ndarray] = {}
        loss_sum = correct = 0.0
        busy = 0.0
        start, cpu0 = time.perf_counter(), time.process_time()
        for op, j in self._ops(m):
            net = self._replicas[j % slots]
            if op == "forward":
                if s == 0:
                    inp = xs[j]
                else:
                    inp = _p2p.recv_array(
                        self.comm,
                        s - 1,
                        2 * j,
                        self.sample_shape,
                        self.dtype,
                        self.timeout,
                        f"[pipeline] stage {s} waited for the activations of micro-batch {j} "
                        f"from stage {s - 1}",
                    )
                t0 = time.perf_counter()
                out = net.forward(inp)
                if last:
                    value = float(self.loss(out, ys[j]))
                    loss_grads[j] = self.loss.backward() * (len(ys[j]) / n)
                    loss_sum += value * len(ys[j])
                    if out.ndim == 2 and out.shape[1] > 1 and ys[j].ndim == 1:
                        correct += float(np.sum(np.argmax(out, axis=1) == ys[j]))
                    busy += time.perf_counter() - t0
                else:
                    busy += time.perf_counter() - t0
                    out = np.ascontiguousarray(out)
                    sends.append((self.comm.Isend(out, dest=s + 1, tag=2 * j), out))
                    g = np.empty_like(out)
                    grad_reqs[j] = (self.comm.Irecv(g, source=s + 1, tag=2 * j + 1), g)
            else:
                if last:
                    g = loss_grads.pop(j)
                else:
                    req, g = grad_reqs.pop(j)
                    _p2p.wait_all(
                        [req],
                        self.timeout,
                        f"[pipeline] stage {s} waited for the gradient of micro-batch {j} "
                        f"from stage {s + 1}",
                    )
                t0 = time.perf_counter()
                gin = net.backward(g, need_input_grad=s > 0)
                busy += time.perf_counter() - t0
                if s > 0:
                    gin = np.ascontiguousarray(gin)
                    sends.append((self.comm.Isend(gin, dest=s - 1, tag=2 * j + 1), gin))
        _p2p.wait_all(
            [r for r, _ in sends],
            self.timeout,
            f"[pipeline] stage {s} waited for its sends to be received",
        )
        end = time.perf_counter()
        self.last_timing = {
            "busy": busy,
            "wall": end - start,
            "cpu": time.process_time() - cpu0,
            "start": start,
            "end": end,
        }
        if self.optimizer is not None:
            self.optimizer.step()
        if last:
            return {"loss": loss_sum / n, "correct": correct, "count": float(n)}
        return None

    def _count_micro_batches(self, m: int | None) -> int:
        """Middle stages learn the micro-batch count from stage 0 (a small point-to-point int)."""
        buf = np.zeros(1, dtype=np.int64)
        if self.rank == 0:
            buf[0] = m
        else:
            req = self.comm.Irecv(buf, source=self.rank - 1, tag=_SETUP_TAG + 1)
            _p2p.wait_all(
                [req],
                self.timeout,
                f"[pipeline] stage {self.rank} waited for stage {self.rank - 1} to start a step",
            )
        if self.rank + 1 < self.stages:
            self.comm.Send(buf, dest=self.rank + 1, tag=_SETUP_TAG + 1)
        if m is not None and m != int(buf[0]):
            raise ValueError(
                f"[pipeline] stage {self.rank} got a batch of {m} micro-batches while stage 0 "
                f"has {int(buf[0])}: every rank must pass the same batch"
            )
        return int(buf[0])

    # -- results -------------------------------------------------------------------------
    def gather_state(self, root: int = 0) -> dict[str, np.ndarray] | None:
        """The whole model's parameters (name -> array) on `root`, None elsewhere; collective.
        `root`'s model object is loaded with them too."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        mine = {names[id(p)]: np.array(p.value, copy=True) for p in self.stage_params}
        if self.comm.Get_rank() != root:
            req = self.comm.isend(mine, dest=root, tag=_SETUP_TAG + 4)
            _p2p.wait_all([req], self.timeout, f"[pipeline] stage {self.rank} sent its state")
            return None
        parts = [
            mine
            if r == root
            else _p2p.recv_object(
                self.comm,
                r,
                _SETUP_TAG + 4,
                self.timeout,
                f"[pipeline] rank {root} waited for the parameters of stage {r}",
            )
            for r in range(self.stages)
        ]
        state = {k: v for part in parts for k, v in part.items()}
        self.model.load_state_dict(state)
        return state


def idle_fractions(
    pipe: Pipeline, x: Array | None, y: Array | None, steps: int = 3
) -> dict[str, Any]:
    """Measure how much of a pipelined step each stage sits idle; collective.

    Runs `steps` steps, each after a barrier; per step, the makespan is the longest stage's wall
    time from the barrier to its last send received, a stage's busy time is the sum of its forward,
    loss and backward computations, and its idle fraction is 1 - busy / makespan (communication
    counts as idle). Returns the per-stage fractions (median over the steps), their mean, the
    GPipe bubble (p - 1) / (m + p - 1), the stage busy times, the CPU time of each stage's process
    over the step (polling included; far below the busy time when the machine is oversubscribed)
    and the makespan (seconds), on every rank.
    """
    fractions, busy_times, cpu_times, makespans = [], [], [], []
    for _ in range(max(1, int(steps))):
        _p2p.barrier(pipe.comm, pipe.timeout, "pipeline")
        pipe.train_step(x, y)
        t = pipe.last_timing
        makespan = pipe.comm.allreduce(t["wall"], op=_p2p.mpi("pipeline").MAX)
        busy = pipe.comm.allgather(t["busy"])
        fractions.append([1.0 - b / makespan for b in busy])
        busy_times.append(busy)
        cpu_times.append(pipe.comm.allgather(t["cpu"]))
        makespans.append(makespan)
    per_stage = [float(v) for v in np.median(np.array(fractions), axis=0)]
    busy_median = np.median(np.array(busy_times), axis=0)
    m = pipe.micro_batches
    return {
        "idle": per_stage,
        "mean_idle": float(np.mean(per_stage)),
        # the busiest stage sets the pace: its idle is the schedule's bubble, the others' extra
        # idle is the imbalance of the split
        "bottleneck_idle": per_stage[int(np.argmax(busy_median))],
        "bubble": bubble_fraction(pipe.stages, m),
        "busy_seconds": [float(v) for v in busy_median],
        "cpu_seconds": [float(v) for v in np.median(np.array(cpu_times), axis=0)],
        "makespan_seconds": float(np.median(makespans)),
        "stages": pipe.stages,
        "micro_batches": m,
        "schedule": pipe.schedule,
        "split": list(pipe.split or []),
    }

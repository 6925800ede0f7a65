"""Device (CuPy) gradient transports of DataParallel: 'mpi' (CUDA-aware MPI), 'staged'
(pinned host buffers) and 'nccl' (cupy.cuda.nccl), and how 'auto' chooses.

Without a GPU the transports run on FakeDevice: NumPy arrays stand for device memory, and
every device operation the transports use (stream synchronization, pinned allocation,
copies to and from the host, events, NCCL collectives, done by MPI here) is recorded, so
the tests check under a real `mpiexec -n N` that the sums equal the plain NumPy path's bit
for bit and that the copies happen per bucket, in bucket order, overlapping backward. The
CuPy tests at the end need CuPy and a GPU (they skip otherwise): 2 ranks on CuPy
parameters train what one process trains.

This file is also the program those launches run: `mpiexec -n N python
test_distributed_device.py CASE ARGS...`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi_launch import launch, main, requires_mpi
from mpi_launch import run as mpirun

import seisoku as sei
from seisoku import nn
from seisoku.distributed import _device

SCRIPT = str(Path(__file__).resolve())


# -- a device made of NumPy -----------------------------------------------------------------
class FakeEvent:
    def __init__(self) -> None:
        self.queries = 0
        self.complete = False


class FakeNccl:
    """NCCL collectives done by blocking MPI on COMM_WORLD (what the transport sees is the
    same: a collective on the communication stream)."""

    def __init__(self, device: FakeDevice, uid: bytes) -> None:
        from mpi4py import MPI

        self.device, self.uid = device, uid
        self.comm = MPI.COMM_WORLD.Dup()
        self.sum = MPI.SUM
        self.in_place = MPI.IN_PLACE

    def all_reduce(self, buf, stream) -> None:
        self.device.log.append(("nccl_all_reduce", buf))
        self.comm.Allreduce(self.in_place, buf, self.sum)

    def all_gather(self, buf, out, stream) -> None:
        self.device.log.append(("nccl_all_gather", buf))
        self.comm.Allgather(buf, out)

    def abort(self) -> None:
        self.comm.Abort(1)


class FakeDevice:
    """The device interface of seisoku.distributed._device on NumPy, recording each call.

    A copy's completion event reports done after `delay` queries (then the transport has
    to wait for it); delay=None: never before the transport waits for it."""

    name = "fake"

    def __init__(self, delay: int | None = 0, nccl: bool = True) -> None:
        self.delay, self.nccl = delay, nccl
        self.log: list[tuple] = []
        self.pinned: list[np.ndarray] = []

    def synchronize(self) -> None:
        self.log.append(("synchronize",))

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def empty_pinned(self, n, dtype):
        a = np.full(n, np.nan, dtype=dtype)
        self.pinned.append(a)
        return a

    def stream(self):
        return "copy stream"

    def follow(self, stream) -> None:
        self.log.append(("follow",))

    def record(self, stream) -> FakeEvent:
        return FakeEvent()

    def done(self, event: FakeEvent) -> bool:
        event.queries += 1
        return event.complete or (self.delay is not None and event.queries > self.delay)

    def wait(self, event: FakeEvent) -> None:
        self.log.append(("wait",))
        event.complete = True

    def _is_pinned(self, host) -> bool:
        return any(np.shares_memory(host, p) for p in self.pinned)

    def to_host(self, host, dev, stream) -> None:
        if not self._is_pinned(host) or self.log[-1] != ("follow",):
            raise AssertionError("to_host: not pinned, or the copy stream did not follow")
        host[...] = dev
        self.log.append(("to_host", dev))

    def to_device(self, dev, host) -> None:
        if not self._is_pinned(host):
            raise AssertionError("to_device from memory that is not pinned")
        dev[...] = host
        self.log.append(("to_device", dev))

    def get(self, a):
        self.log.append(("get",))
        return np.array(a, copy=True)

    def put(self, a, host) -> None:
        self.log.append(("put",))
        a[...] = host.reshape(a.shape)

    def has_nccl(self) -> bool:
        return self.nccl

    def nccl_unique_id(self) -> bytes:
        return os.urandom(16)

    def nccl_comm(self, size: int, uid: bytes, rank: int) -> FakeNccl:
        self.log.append(("nccl_comm", size, rank, uid.hex()))
        return FakeNccl(self, uid)


def install_fake(fake: FakeDevice) -> None:
    """Make every array look like memory of `fake` to the transports (in a launched
    program; the in-process tests use the fake_device fixture)."""
    _device.device_of = lambda a: fake


class FakeComm:
    """The two calls select() makes on a communicator (no MPI started)."""

    def __init__(self, size: int, others_aware: bool = True) -> None:
        self.size, self.others = size, others_aware

    def Get_size(self) -> int:  # noqa: N802 (mpi4py's name)
        return self.size

    def allgather(self, value: bool) -> list[bool]:
        return [value] + [self.others] * (self.size - 1)


# -- the programs mpiexec runs --------------------------------------------------------------
SIDE, CLASSES = 36, 4


def data(n: int = 140) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (n, SIDE))
    y = (x @ rng.normal(0, 1, (SIDE, CLASSES))).argmax(axis=1).astype(np.int64)
    return x, y


def model(dtype: str = "float64") -> nn.Module:
    sei.manual_seed(3)
    return nn.Sequential(
        nn.Linear(SIDE, 24, activation="relu", dropout=0.3, dtype=dtype),
        nn.Dropout(0.2),
        nn.Linear(24, 16, activation="tanh", dtype=dtype),
        nn.Linear(16, CLASSES, dtype=dtype),
    )


def case_train(out: str, transport: str, reduction: str, delay: str) -> None:
    """Train 20 steps (global batch 30) with DataParallel on `transport` ('host': NumPy
    buckets, the plain path; else FakeDevice memory); rank 0 saves the parameters and a
    summary of the device calls."""
    from seisoku.distributed import DataParallel

    fake = None
    if transport != "host":
        fake = FakeDevice(None if delay == "never" else int(delay))
        install_fake(fake)
    sei.set_num_threads(1)
    x, y = data()
    net = model()
    opt = sei.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, l2=1e-3)
    dp = DataParallel(
        net,
        bucket_mb=0.002,
        reduction=reduction,
        optimizer=opt,
        transport="auto" if transport == "host" else transport,
    )
    trainer = sei.train.Trainer(net, nn.CrossEntropyLoss(0.1), opt, progress=False, parallel=dp)
    trainer.fit(x, y, epochs=10, batch_size=30, seed=4, max_steps=20)
    if dp.rank != 0:
        return
    state = {f"p_{k}": v for k, v in net.state_dict().items()}
    calls: dict[str, int] = {}
    for entry in fake.log if fake else []:
        calls[entry[0]] = calls.get(entry[0], 0) + 1
    info = {"transport": dp.transport, "calls": calls, "buckets": len(dp.buckets)}
    state["info"] = np.array(json.dumps(info))
    np.savez(out, **state)


class Probe(nn.Module):
    """The identity, logging when its backward runs and how many reductions are in flight."""

    def __init__(self, name: str, fake: FakeDevice) -> None:
        super().__init__()
        self.name, self.fake, self.dp = name, fake, None

    def forward(self, x):
        return x

    def backward(self, grad, need_input_grad=True):
        self.fake.log.append((self.name, len(self.dp._device.requests)))
        return grad


def case_order(transport: str, reduction: str, delay: str) -> None:
    """One backward pass over a network with one bucket per parameter: the copies (or NCCL
    calls) per bucket in bucket order, each right after the layer that completes its bucket,
    the reductions in flight while earlier layers run backward, the results copied back in
    bucket order; the gradients are the sum over ranks of each rank's own."""
    from mpi4py import MPI

    from seisoku.distributed import DataParallel

    fake = FakeDevice(None if delay == "never" else int(delay))
    install_fake(fake)
    comm = MPI.COMM_WORLD
    sei.manual_seed(0)
    p1, p3 = Probe("probe1", fake), Probe("probe3", fake)
    net = nn.Sequential(nn.Linear(6, 5), p1, nn.Linear(5, 4), p3, nn.Linear(4, 3))
    dp = DataParallel(net, bucket_mb=1e-6, reduction=reduction, transport=transport)
    p1.dp = p3.dp = dp
    if dp.transport != transport or len(dp.buckets) != 6:
        raise AssertionError((dp.transport, len(dp.buckets)))
    x = np.random.default_rng(comm.Get_rank()).standard_normal((8, 6)).astype(np.float32)
    # each rank's own gradients, from the same model without DataParallel
    net.zero_grad()
    out = net.forward(x)
    net.backward(np.ones_like(out) * (comm.Get_rank() + 1), need_input_grad=False)
    mine = [np.array(p.grad, copy=True) for b in dp.buckets for p in b.params]
    fake.log.clear()
    dp.begin_batch(0, 8, 8)  # factor 1: the reduced gradient is the plain sum
    net.zero_grad()
    out = net.forward(x)
    dp.backward(np.ones_like(out) * (comm.Get_rank() + 1))
    names = []
    for entry in fake.log:
        if len(entry) > 1 and isinstance(entry[1], np.ndarray):
            k = next(i for i, b in enumerate(dp.buckets) if entry[1] is b.buffer)
            names.append(f"{entry[0]}{k}")
        elif entry[0].startswith("probe"):
            names.append(f"{entry[0]}:{entry[1]}")
        else:
            names.append(entry[0])
    total = [np.empty_like(g) for g in mine]
    for g, t in zip(mine, total):
        comm.Allreduce(g, t, MPI.SUM)
    got = [np.array(p.grad) for b in dp.buckets for p in b.params]
    for g, t in zip(got, total):
        np.testing.assert_array_equal(g, t)
    print(json.dumps({"rank": comm.Get_rank(), "log": names}), flush=True)


def case_api() -> None:
    """The transport argument through DataParallel under mpiexec (1 or 2 ranks)."""
    from seisoku.distributed import DataParallel, rank

    net = nn.Sequential(nn.Linear(3, 4))
    dp = DataParallel(net)
    if dp.transport != "host" or dp._device.active:
        raise AssertionError(dp.transport)
    for transport, match in [
        ("gloo", "argument 'transport' must be one of 'auto', 'mpi', 'staged', 'nccl'"),
        ("staged", "argument 'transport' 'staged' moves device"),
        ("mpi", "argument 'transport' 'mpi' moves device"),
        ("nccl", "argument 'transport' 'nccl'"),
    ]:
        with pytest.raises(ValueError, match=match):
            DataParallel(net, transport=transport)
    fake = FakeDevice()
    install_fake(fake)
    dp = DataParallel(nn.Sequential(nn.Linear(3, 4)), transport="auto")
    want = "mpi" if _device.cuda_aware_mpi() else "staged"
    if dp.transport != want:
        raise AssertionError((dp.transport, want))
    print(f"ok {rank()} {dp.transport} aware={_device.cuda_aware_mpi()}", flush=True)


def case_broadcast(transport: str) -> None:
    """Rank 0's parameter values reach every rank through the device transport."""
    from mpi4py import MPI

    from seisoku.distributed import DataParallel

    fake = FakeDevice()
    install_fake(fake)
    r = MPI.COMM_WORLD.Get_rank()
    sei.manual_seed(10 + r)  # every rank starts elsewhere
    net = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 2))
    DataParallel(net, transport=transport)
    values = np.concatenate([np.ravel(p.value) for p in net.parameters()])
    every = MPI.COMM_WORLD.allgather(values)
    sei.manual_seed(10)
    want = np.concatenate([np.ravel(p.value) for p in model_like().parameters()])
    for v in every:
        np.testing.assert_array_equal(v, want)
    calls = [e[0] for e in fake.log]
    print(json.dumps({"rank": r, "calls": calls}), flush=True)


def model_like() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 2))


# -- tests: selection (no MPI) --------------------------------------------------------------
class Param:
    def __init__(self, value) -> None:
        self.value = value


@pytest.fixture
def fake_device(monkeypatch):
    fake = FakeDevice()
    monkeypatch.setattr(_device, "device_of", lambda a: fake)
    return fake


def test_unknown_transport_names_the_argument():
    for bad in ("gloo", "", None, 3):
        with pytest.raises(ValueError, match=r"argument 'transport' must be one of .*got"):
            _device.select(bad, [Param(np.zeros(2))], FakeComm(2))


@pytest.mark.parametrize("transport", ["mpi", "staged"])
def test_device_transport_for_numpy_parameters_is_refused(transport):
    with pytest.raises(ValueError, match=f"'transport' '{transport}' moves device .* NumPy"):
        _device.select(transport, [Param(np.zeros(2))], FakeComm(2))
    assert _device.select("auto", [Param(np.zeros(2))], FakeComm(2)) == ("host", None)


def test_nccl_without_cupy_names_the_argument():
    if not _device._cupy_nccl_missing():
        pytest.skip("CuPy with NCCL is installed here")
    with pytest.raises(ValueError, match="argument 'transport' 'nccl' needs CuPy with NCCL"):
        _device.select("nccl", [Param(np.zeros(2))], FakeComm(2))


def test_nccl_on_a_device_without_nccl(fake_device):
    fake_device.nccl = False
    with pytest.raises(ValueError, match="argument 'transport' 'nccl' needs CuPy with NCCL"):
        _device.select("nccl", [Param(np.zeros(2))], FakeComm(2))
    fake_device.nccl = True
    assert _device.select("nccl", [Param(np.zeros(2))], FakeComm(2)) == ("nccl", fake_device)


def test_parameters_on_host_and_device_are_refused(fake_device, monkeypatch):
    host = Param(np.zeros(2))
    monkeypatch.setattr(_device, "device_of", lambda a: None if a is host.value else fake_device)
    with pytest.raises(ValueError, match="argument 'module' must have all its parameters"):
        _device.select("auto", [Param(np.zeros(3)), host], FakeComm(2))


@pytest.mark.parametrize(
    ("env", "others", "want"),
    [("1", True, "mpi"), ("0", True, "staged"), ("yes", False, "staged"), ("off", False, "staged")],
)
def test_auto_is_cuda_aware_mpi_only_when_every_rank_is(
    fake_device, monkeypatch, env, others, want
):
    monkeypatch.setenv(_device.ENV_CUDA_AWARE, env)
    params = [Param(np.zeros(2))]
    assert _device.select("auto", params, FakeComm(3, others)) == (want, fake_device)
    for explicit in ("mpi", "staged", "nccl"):  # an explicit choice is kept
        assert _device.select(explicit, params, FakeComm(3, others))[0] == explicit


def test_bad_cuda_aware_override(monkeypatch):
    monkeypatch.setenv(_device.ENV_CUDA_AWARE, "maybe")
    with pytest.raises(ValueError, match="SEISOKU_CUDA_AWARE_MPI must be 1 or 0, got 'maybe'"):
        _device.cuda_aware_mpi()


# -- tests under mpiexec --------------------------------------------------------------------
def train(folder: Path, ranks: int, transport: str, reduction: str, delay: str = "0") -> dict:
    out = folder / f"{transport}-{reduction}-{delay}-{ranks}.npz"
    if not out.exists():  # the NumPy runs serve several tests
        mpirun(ranks, SCRIPT, "train", str(out), transport, reduction, delay, timeout=240)
    with np.load(out) as f:
        got = {k: f[k] for k in f.files}
    got["info"] = json.loads(str(got["info"]))
    return got


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


def records(text: str) -> list[dict]:
    """The JSON objects the ranks printed (mpiexec may join the ranks' lines)."""
    decoder, found, i = json.JSONDecoder(), [], text.find("{")
    while i != -1:
        obj, end = decoder.raw_decode(text, i)
        found.append(obj)
        i = text.find("{", end)
    return found


def assert_same_bits(got: dict, want: dict) -> None:
    keys = sorted(k for k in want if k.startswith("p_"))
    assert keys and keys == sorted(k for k in got if k.startswith("p_"))
    for k in keys:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@requires_mpi
@pytest.mark.parametrize(
    ("ranks", "transport", "reduction", "delay"),
    [
        (2, "staged", "allreduce", "0"),
        (2, "staged", "allreduce", "never"),
        (3, "staged", "ordered", "1"),
        (2, "mpi", "allreduce", "0"),
        (2, "nccl", "ordered", "0"),
    ],
)
def test_device_transport_trains_the_numpy_path_bits(runs, ranks, transport, reduction, delay):
    """20 steps of training (dropout, momentum, unequal shards at 3 ranks) on FakeDevice
    memory give the parameters of the plain NumPy path bit for bit."""
    want = train(runs, ranks, "host", reduction)
    got = train(runs, ranks, transport, reduction, delay)
    assert_same_bits(got, want)
    calls, steps, buckets = got["info"]["calls"], 20, got["info"]["buckets"]
    assert got["info"]["transport"] == transport and buckets > 3
    if transport == "staged":  # one copy each way per bucket and step
        assert calls["to_host"] == calls["to_device"] == calls["follow"] == buckets * steps
        if delay in ("0", "never"):
            assert calls.get("wait", 0) == (buckets * steps if delay == "never" else 0)
    if transport == "mpi":  # before each bucket's MPI call, and once before the broadcast
        assert calls["synchronize"] == buckets * steps + 1 and "to_host" not in calls
    if transport == "nccl":
        assert calls["nccl_all_gather"] == buckets * steps and calls["nccl_comm"] == 1


@requires_mpi
@pytest.mark.parametrize(
    ("transport", "reduction", "delay"),
    [
        ("staged", "allreduce", "0"),
        ("staged", "ordered", "never"),
        ("mpi", "ordered", "0"),
        ("nccl", "allreduce", "0"),
    ],
)
def test_copies_per_bucket_in_order_overlapping_backward(transport, reduction, delay):
    out = mpirun(2, SCRIPT, "order", transport, reduction, delay, timeout=120)
    logs = records(out)
    assert sorted(entry["rank"] for entry in logs) == [0, 1], out
    for entry in logs:
        log = entry["log"]
        if transport == "staged":
            copies = ["follow", "to_host0", "follow", "to_host1"]
            after = ["follow", "to_host2", "follow", "to_host3"]
            last = ["follow", "to_host4", "follow", "to_host5"]
            back = [f"to_device{k}" for k in range(6)]
            inflight = "2" if delay == "0" else "0"  # copies not done yet: nothing started
            waits = ["wait"] * 6 if delay == "never" else []
            want = [
                *copies,
                f"probe3:{inflight}",
                *after,
                f"probe1:{2 * int(inflight)}",
                *last,
                *waits,
                *back,
            ]
        elif transport == "mpi":
            s = "synchronize"
            want = [s, s, "probe3:2", s, s, "probe1:4", s, s]
        else:
            call = "nccl_all_reduce"
            want = [
                f if f == "follow" else f"{call}{k}" for k in range(6) for f in ("follow", "call")
            ]
            want = [*want[:4], "probe3:0", *want[4:8], "probe1:0", *want[8:]]
        assert log == want, log


@requires_mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_transport_argument_under_mpiexec(ranks):
    out = mpirun(ranks, SCRIPT, "api", timeout=120)
    found = sorted(re.findall(r"ok (\d+) (\w+) aware=(True|False)", out))  # lines may be joined
    assert [r for r, _, _ in found] == [str(r) for r in range(ranks)], out
    assert len({(t, a) for _, t, a in found}) == 1, out  # every rank chose alike
    assert all((t, a) in (("mpi", "True"), ("staged", "False")) for _, t, a in found), out


@requires_mpi
@pytest.mark.parametrize("transport", ["staged", "mpi", "nccl"])
def test_parameters_broadcast_from_rank_zero(transport):
    out = mpirun(2, SCRIPT, "broadcast", transport, timeout=120)
    logs = {e["rank"]: e["calls"] for e in records(out)}
    assert sorted(logs) == [0, 1], out
    if transport == "mpi":
        assert logs[0][0] == "synchronize" and "get" not in logs[0]
    else:  # through the host: a copy of each of the 4 parameters; ranks != 0 write back
        assert logs[0].count("get") == 4 and "put" not in logs[0]
        assert logs[1].count("get") == 4 and logs[1].count("put") == 4


# -- tests on a real GPU (CuPy) -------------------------------------------------------------
def cupy_gpus() -> int:
    cupy = pytest.importorskip("cupy")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        count = 0
    if count < 1 or not sei.cuda.is_available():
        pytest.skip("needs a CUDA device, CuPy and seisoku built with CUDA")
    return count


def case_cupy(out: str, transport: str) -> None:
    """10 steps of plain SGD on CuPy parameters, global batch 30 (no dropout): with
    DataParallel under mpiexec, or alone (transport 'single') on the whole batch."""
    import cupy

    from seisoku.distributed import DataParallel

    single = transport == "single"
    rank = 0
    if not single:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
        cupy.cuda.Device(rank % cupy.cuda.runtime.getDeviceCount()).use()
    x, y = data(120)
    sei.manual_seed(3)
    layers = [nn.Linear(SIDE, 24, activation="relu", dtype="float64")]
    layers.append(nn.Linear(24, CLASSES, dtype="float64"))
    net = nn.Sequential(*layers).to("cuda")
    opt = sei.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    dp = None if single else DataParallel(net, bucket_mb=0.001, transport=transport)
    xs, ys = cupy.asarray(x), cupy.asarray(y)
    for step in range(10):
        rows = slice(step * 12 % 120, step * 12 % 120 + 30)
        xb, yb = xs[rows], ys[rows]
        n = xb.shape[0]
        start, end = (0, n) if dp is None else sei.distributed.shard_bounds(n, rank, dp.size)
        if dp is not None:
            dp.begin_batch(start, end, n)
        net.zero_grad()
        o = net.forward(xb[start:end])
        loss(o, yb[start:end])
        if dp is None:
            net.backward(loss.backward(), need_input_grad=False)
        else:
            dp.backward(loss.backward())
        opt.step()
    if rank == 0:
        np.savez(out, **{k: np.asarray(v) for k, v in net.state_dict().items()})


@requires_mpi
@pytest.mark.parametrize("transport", ["staged", "mpi", "nccl", "auto"])
def test_cupy_two_ranks_train_the_one_process_parameters(tmp_path, transport):
    gpus = cupy_gpus()
    if transport == "mpi" and os.environ.get(_device.ENV_CUDA_AWARE) != "1":
        pytest.skip("set SEISOKU_CUDA_AWARE_MPI=1 where MPI is CUDA-aware")
    if transport == "nccl" and (gpus < 2 or _device._cupy_nccl_missing()):
        pytest.skip("NCCL needs CuPy with NCCL and one GPU per rank (2)")
    code, _, err, _ = launch(
        [sys.executable, SCRIPT, "cupy", str(tmp_path / "1.npz"), "single"], 240
    )
    assert code == 0, err
    mpirun(2, SCRIPT, "cupy", str(tmp_path / "2.npz"), transport, timeout=240)
    with np.load(tmp_path / "1.npz") as a, np.load(tmp_path / "2.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-10, err_msg=k)


if __name__ == "__main__":
    main(globals())

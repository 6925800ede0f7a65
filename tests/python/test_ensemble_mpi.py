"""Bagging with backend='mpi': two ranks under mpiexec share the members out and each ends
with the same members as one process training them in turn. Skips without mpi4py or
mpiexec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import seisoku
from seisoku.ensemble import Bagging

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, seisoku
    from mpi4py import MPI
    from seisoku import nn, optim
    from seisoku.ensemble import Bagging

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.standard_normal((60, 2)) + 2 * np.stack([np.cos(y * 2.1), np.sin(y * 2.1)], 1)
    x = x.astype(np.float32)

    def build(seed):
        m = nn.mlp([2, 8, 3], dropout=0.1, generator=seisoku.Generator(seed))
        return m, nn.CrossEntropyLoss(), optim.SGD(m.parameters(), lr=0.1, momentum=0.9)

    a = Bagging(build, 3, epochs=3, backend="mpi", progress=False).fit(x, y)
    b = Bagging(build, 3, epochs=3, progress=False).fit(x, y)
    same = all(
        np.array_equal(p.value, q.value)
        for ma, mb in zip(a.members_, b.members_)
        for p, q in zip(ma.parameters(), mb.parameters())
    )
    same = same and a.oob_score_ == b.oob_score_
    rank = MPI.COMM_WORLD.Get_rank()
    with open(f"{sys.argv[1]}/rank{rank}.txt", "w") as f:  # ranks' stdout can interleave
        f.write(f"rank {rank} of {MPI.COMM_WORLD.Get_size()}: same={same}")
    """
)


def test_mpi_ranks_share_the_members_and_all_end_with_every_member(tmp_path) -> None:
    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec is not on PATH")
    script = tmp_path / "bagging_mpi.py"
    script.write_text(SCRIPT)
    site = os.path.dirname(os.path.dirname(os.path.abspath(seisoku.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([site, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert lines == ["rank 0 of 2: same=True", "rank 1 of 2: same=True"]


def test_mpi_backend_without_mpi4py_names_the_argument(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    bag = Bagging(lambda s: None, 2, backend="mpi", progress=False)
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"\[Bagging\] argument 'backend' is 'mpi'.*mpi4py"):
        bag.fit(x, y)

"""seisoku._core.pipeline_schedule: the per-stage operation lists of GPipe and 1F1B, run in a
unit-time simulator (each stage starts its next operation as soon as its inputs exist)."""

from __future__ import annotations

import pytest

from seisoku import _core


def _simulate(schedule: list[list[tuple[str, int]]]) -> tuple[int, list[int]] | None:
    """(makespan, idle units per stage), or None on a deadlock."""
    p = len(schedule)
    done: dict[tuple[str, int, int], int] = {}  # (phase, stage, microbatch) -> finishing unit
    nxt = [0] * p
    idle = [0] * p
    t = 0
    while any(nxt[s] < len(schedule[s]) for s in range(p)):
        ran = []
        for s in range(p):
            if nxt[s] == len(schedule[s]):
                idle[s] += 1
                continue
            phase, j = schedule[s][nxt[s]]
            if phase == "forward":
                needs = [] if s == 0 else [("forward", s - 1, j)]
            else:
                needs = [("forward", s, j)] + ([] if s == p - 1 else [("backward", s + 1, j)])
            if all(done.get(n, t) < t for n in needs):
                ran.append((s, phase, j))
            else:
                idle[s] += 1
        if not ran:
            return None
        for s, phase, j in ran:
            done[(phase, s, j)] = t
            nxt[s] += 1
        t += 1
    return t, idle


@pytest.mark.parametrize("kind", ["gpipe", "1f1b"])
@pytest.mark.parametrize("stages", [1, 2, 3, 5])
@pytest.mark.parametrize("microbatches", [1, 2, 4, 7])
def test_schedule_runs_with_the_gpipe_bubble(kind: str, stages: int, microbatches: int) -> None:
    schedule = _core.pipeline_schedule(kind, stages, microbatches)
    assert len(schedule) == stages
    for ops in schedule:
        assert sorted(ops) == sorted(
            [(phase, j) for phase in ("forward", "backward") for j in range(microbatches)]
        )
        for j in range(microbatches):
            assert ops.index(("forward", j)) < ops.index(("backward", j))
    result = _simulate(schedule)
    assert result is not None, "deadlock"
    makespan, idle = result
    assert makespan == 2 * (microbatches + stages - 1)
    assert idle == [2 * (stages - 1)] * stages


@pytest.mark.parametrize("stages", [1, 2, 4, 6])
@pytest.mark.parametrize("microbatches", [1, 3, 8])
def test_in_flight_micro_batches(stages: int, microbatches: int) -> None:
    def most_in_flight(ops: list[tuple[str, int]]) -> int:
        count = most = 0
        for phase, _ in ops:
            count += 1 if phase == "forward" else -1
            most = max(most, count)
        return most

    one_f = _core.pipeline_schedule("1f1b", stages, microbatches)
    gpipe = _core.pipeline_schedule("gpipe", stages, microbatches)
    assert [most_in_flight(ops) for ops in one_f] == [
        min(stages - s, microbatches) for s in range(stages)
    ]
    assert [most_in_flight(ops) for ops in gpipe] == [microbatches] * stages


def test_one_f_one_b_order() -> None:
    ops = _core.pipeline_schedule("1f1b", 4, 6)[1]
    text = " ".join(("F" if phase == "forward" else "B") + str(j) for phase, j in ops)
    assert text == "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5"


def test_simulator_finds_a_deadlock() -> None:
    assert _simulate([[("forward", 0), ("backward", 0)], [("backward", 0), ("forward", 0)]]) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pipedream", 2, 2), r"\[pipeline_schedule\] argument 'kind' must be 'gpipe' or '1f1b'"),
        ((1, 2, 2), r"argument 'kind' must be 'gpipe' or '1f1b', got 1"),
        (("gpipe", 0, 2), r"argument 'stages' must be an int in \[1, 65536\], got 0"),
        (("gpipe", 2, 0), r"argument 'microbatches' must be an int in \[1, 1048576\], got 0"),
        (("gpipe", 2.0, 2), r"argument 'stages' must be an int"),
        (("1f1b", True, 2), r"argument 'stages' must be an int"),
        (("1f1b", 65536, 1048576), r"2 \* stages \* microbatches must be at most"),
    ],
)
def test_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _core.pipeline_schedule(*args)

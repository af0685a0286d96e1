"""fsconf.service.collector: what ``fsconf serve`` does to the garbage collector.

Each test runs in its own interpreter: the collector is process-wide, and the
test process's own must stay as pytest set it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from fsconf.service import collector


def run_python(code: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_tune_freezes_start_up_and_raises_the_young_threshold() -> None:
    result = run_python(
        """
        import gc, json
        import fsconf.service.app  # start-up's imports: what serve has alive
        from fsconf.service import collector
        before = gc.get_threshold()
        setup = collector.tune()
        print(json.dumps({"before": before, "after": gc.get_threshold(),
                          "frozen": gc.get_freeze_count(), "reported": setup.frozen_objects,
                          "thresholds": setup.thresholds, "enabled": gc.isenabled()}))
        """
    )
    assert result["before"] == [700, 10, 10]
    assert result["after"] == [collector.YOUNG_THRESHOLD, 10, 10] == result["thresholds"]
    # SQLAlchemy, lxml, gevent, the API: tens of thousands of start-up objects.
    assert isinstance(result["frozen"], int) and result["frozen"] > 20_000
    assert result["reported"] == result["frozen"]
    assert result["enabled"] is True


def test_cyclic_garbage_made_after_tune_is_still_collected() -> None:
    """The collector stays on: cycles made later go at the next young collection."""
    result = run_python(
        """
        import gc, json, weakref
        from fsconf.service import collector
        collector.tune(young_threshold=100)

        class Node:
            pass

        refs = []
        for _ in range(2000):
            a, b = Node(), Node()
            a.other, b.other = b, a          # a cycle: refcounting alone never frees it
            refs.append(weakref.ref(a))
            del a, b
        # No explicit collect: only the automatic young collections ran.
        print(json.dumps({"alive": sum(r() is not None for r in refs)}))
        """
    )
    # At most the pairs made since the last young collection (threshold 100).
    assert isinstance(result["alive"], int) and result["alive"] <= 100


def test_cyclic_garbage_from_before_tune_is_collected_not_frozen() -> None:
    result = run_python(
        """
        import gc, json, weakref
        from fsconf.service import collector

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        collector.tune()
        print(json.dumps({"alive": ref() is not None}))
        """
    )
    assert result["alive"] is False


@pytest.mark.parametrize("bad", [0, -5])
def test_a_threshold_below_one_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="young_threshold must be positive"):
        collector.tune(young_threshold=bad)


def test_a_burst_backlog_is_not_walked_by_a_young_collection() -> None:
    """A 10 000-event burst keeps ~100 000 tracked objects alive until it is
    committed (its frames, steps and rows): no young collection may start
    while they live, and once they are freed the count starts over."""
    result = run_python(
        """
        import gc, json
        from fsconf.service import collector
        collector.tune()
        runs = []
        gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info))

        class Step:
            __slots__ = ("event", "row")

        def burst():
            backlog = []
            for number in range(10_000):
                step = Step()
                step.event, step.row = [number], {"n": [number]}
                backlog.append([step, (step, number), [step.row]] + [[number]] * 6)
            return len(backlog)

        sizes = [burst() for _ in range(5)]  # five bursts, each freed after it
        print(json.dumps({"collections": len(runs), "sizes": sizes}))
        """
    )
    assert result == {"collections": 0, "sizes": [10_000] * 5}

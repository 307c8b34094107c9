"""The job graph (tooldiff.jobs): dependencies respected, results back by value, each job's output
in its log, the first failure named with its log, and a graph that could never start refused."""

import os
from pathlib import Path

import pytest

from tooldiff.errors import UserError
from tooldiff.jobs import Job, check_graph, run_jobs


def _write(path: str, text: str) -> int:
    """Appends `text` to `path` and prints it; returns this process's id."""
    with open(path, "a") as f:
        f.write(text + "\n")
    print(f"wrote {text}")
    return os.getpid()


def _fail(message: str) -> None:
    raise ValueError(message)


def _graph(tmp_path: Path) -> list[Job]:
    trace = str(tmp_path / "trace.txt")
    return [Job("c", _write, (trace, "c"), after=("a", "b"), log=tmp_path / "logs" / "c.txt"),
            Job("a", _write, (trace, "a"), log=tmp_path / "logs" / "a.txt"),
            Job("b", _write, (trace, "b"), after=("a",), log=tmp_path / "logs" / "b.txt")]


@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_run_after_what_they_wait_for_and_return_their_values(tmp_path, workers):
    done = run_jobs(_graph(tmp_path), workers)
    assert (tmp_path / "trace.txt").read_text().split() == ["a", "b", "c"]
    pids = {done[name].value for name in "abc"}
    assert (pids == {os.getpid()}) == (workers == 1)  # two workers: the jobs ran in other processes
    assert all(d.wall_s >= 0 and d.cpu_s >= 0 for d in done.values())
    if workers == 2:
        assert (tmp_path / "logs" / "b.txt").read_text() == "wrote b\n"


def test_a_failed_job_is_named_with_its_log(tmp_path):
    jobs = [Job("ok", _write, (str(tmp_path / "t.txt"), "ok")),
            Job("broken", _fail, ("the reason",), log=tmp_path / "broken.txt"),
            Job("later", _write, (str(tmp_path / "t.txt"), "later"), after=("broken",))]
    with pytest.raises(RuntimeError, match=r"job broken failed: ValueError: the reason; see .*broken.txt"):
        run_jobs(jobs, 2)
    trace = tmp_path / "t.txt"
    assert not trace.exists() or "later" not in trace.read_text()  # what waited for the failure never ran


def test_a_graph_that_cannot_start_is_refused():
    cycle = [Job("x", _fail, ("",), after=("y",)), Job("y", _fail, ("",), after=("x",))]
    with pytest.raises(UserError, match=r"wait for each other in a cycle: \['x', 'y'\]"):
        check_graph(cycle)
    behind_a_start = [Job("start", _fail, ("",)), *(Job(j.name, j.fn, j.args, after=(*j.after, "start")) for j in cycle)]
    with pytest.raises(UserError, match=r"in a cycle: \['x', 'y'\]"):  # a job that can start leads into it
        check_graph(behind_a_start)
    with pytest.raises(UserError, match="waits for jobs that do not exist"):
        check_graph([Job("x", _fail, ("",), after=("nowhere",))])
    with pytest.raises(UserError, match="job names repeat"):
        check_graph([Job("x", _fail, ("",)), Job("x", _fail, ("",))])


def test_the_job_with_the_longest_chain_behind_it_starts_first(tmp_path):
    """`short` comes first in the list, but `head` has two jobs waiting behind it one after
    another: it starts first, then `middle` (one behind it); ties go in list order."""
    trace = str(tmp_path / "trace.txt")
    jobs = [Job("short", _write, (trace, "short")), Job("head", _write, (trace, "head")),
            Job("middle", _write, (trace, "middle"), after=("head",)),
            Job("tail", _write, (trace, "tail"), after=("middle",))]
    run_jobs(jobs, 1)
    assert (tmp_path / "trace.txt").read_text().split() == ["head", "middle", "short", "tail"]


def test_a_costly_job_starts_before_a_longer_chain_of_cheap_ones(tmp_path):
    """The start order follows the expected seconds (Job.cost) of a job and its chain, not the
    number of jobs: `long` (cost 10) before `head` -> `tail` (cost 1 each)."""
    trace = str(tmp_path / "trace.txt")
    jobs = [Job("head", _write, (trace, "head")), Job("tail", _write, (trace, "tail"), after=("head",)),
            Job("long", _write, (trace, "long"), cost=10.0)]
    run_jobs(jobs, 1)
    assert (tmp_path / "trace.txt").read_text().split() == ["long", "head", "tail"]

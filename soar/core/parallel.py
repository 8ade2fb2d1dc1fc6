"""Workers for independent tasks: student trainings of an outer step, the main job's (arm, seed) pairs.

One seam, `Workers`: with `workers: 1` every task runs in this process, in order; with more, each worker
is a separate process (spawned, one torch thread each on a CPU) or a Ray task. A worker builds its
context once from a picklable config (`init(config)`), then runs tasks against it. Results come back
tagged with their task's index: whatever order they finish in, the caller sorts or files them by index,
so a run's results do not depend on the number of workers (tested)."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

BACKENDS = ("local", "ray")


class WorkerDied(RuntimeError):
    """A worker process ended without a result (killed, or out of memory); the run folder stays resumable."""


@dataclass
class ParallelConfig:
    """How independent student trainings run: one process, local worker processes, or a Ray cluster."""

    workers: int = 1
    """tasks at once (1 = in this process, in order); on a CPU give each worker one core"""
    backend: str = "local"
    """local (processes on this machine) | ray (tasks on a Ray cluster; needs the `ray` extra)"""
    address: str = ""
    """ray: the cluster to join ('auto' = the one `ray start --head` started here; '' = a private one)"""
    gpus_per_worker: float = 0.0
    """ray: GPUs each task asks for (0 on a CPU; e.g. 0.25 puts four LoRA students on one GPU)"""
    threads_per_worker: int = 1
    """torch threads inside each worker process"""
    worker_gpus: tuple[int, ...] = ()
    """local: the GPU indices the worker processes take in turn (each sees one, as CUDA_VISIBLE_DEVICES);
    () = every worker sees what this process sees. E.g. [1, 2, 3] leaves GPU 0 to the teacher."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"parallel.workers must be at least 1, got {self.workers}")
        if self.backend not in BACKENDS:
            raise ValueError(f"parallel.backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"parallel.gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.threads_per_worker < 1:
            raise ValueError(f"parallel.threads_per_worker must be at least 1, got {self.threads_per_worker}")


Init = Callable[[Any], Any]
"""picklable config -> the worker's context (models, problems, ...), built once per worker"""
Task = Callable[[Any, Any], Any]
"""(context, task argument) -> result; a module-level function, so that it can be sent to a worker"""

_CONTEXT: dict[tuple, Any] = {}  # per worker process: the last (init, config) -> its context


def _context(init: Init, config: Any) -> Any:
    # Our own config, pickled only to recognise it (a reused worker may serve another run).
    key = (init.__module__, init.__qualname__, hashlib.sha256(pickle.dumps(config)).hexdigest())
    if key not in _CONTEXT:
        _CONTEXT.clear()
        _CONTEXT[key] = init(config)
    return _CONTEXT[key]


def _worker_start(threads: int, gpus: tuple[int, ...] = (), counter=None) -> None:
    if gpus and counter is not None:  # before torch touches CUDA in this process
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus[index % len(gpus)])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(threads)


def _run_in_worker(init: Init, config: Any, task: Task, arg: Any) -> Any:
    return task(_context(init, config), arg)


class Workers:
    """Runs `task(context, arg)` for many args; `context = init(config)` is built once per worker.

    A context manager: local worker processes start on the first `run` and stay up until the block ends.
    `local_context`: the context to use when everything runs in this process (saves building it twice)."""

    def __init__(self, cfg: ParallelConfig, init: Init, config: Any, local_context: Any = None):
        self.cfg, self.init, self.config, self.local_context = cfg, init, config, local_context
        self._pool: ProcessPoolExecutor | None = None
        self._ray_started = False

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._ray_started:  # a private cluster of this block; a joined one (address) stays up
            import ray

            ray.shutdown()
            self._ray_started = False

    def run(self, task: Task, args: list[Any]) -> Iterator[tuple[int, Any]]:
        """(index into args, result) for each arg, as results arrive (in order with one worker)."""
        if not args:
            return
        if self.cfg.workers == 1:
            ctx = self.local_context if self.local_context is not None else self.init(self.config)
            for i, arg in enumerate(args):
                yield i, task(ctx, arg)
        elif self.cfg.backend == "ray":
            yield from self._ray(task, args)
        else:
            yield from self._local(task, args)

    def _local(self, task: Task, args: list[Any]) -> Iterator[tuple[int, Any]]:
        if self._pool is None:
            ctx = get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.cfg.workers,
                mp_context=ctx,
                initializer=_worker_start,
                initargs=(self.cfg.threads_per_worker, tuple(self.cfg.worker_gpus), ctx.Value("i", 0)),
            )
        pending = {self._pool.submit(_run_in_worker, self.init, self.config, task, a): i for i, a in enumerate(args)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    i = pending.pop(f)
                    yield i, f.result()
        except BrokenProcessPool as e:
            self._pool = None
            raise WorkerDied(
                "a worker process died (killed, or out of memory?); what was saved is kept: resume the run"
            ) from e
        finally:
            for f in pending:
                f.cancel()

    def _ray(self, task: Task, args: list[Any]) -> Iterator[tuple[int, Any]]:
        try:
            import ray
        except ImportError as e:
            raise RuntimeError("parallel.backend=ray needs Ray: pip install 'soar[ray]'") from e
        if not ray.is_initialized():
            if self.cfg.address:
                ray.init(address=self.cfg.address, log_to_driver=False)
            else:
                cpus = self.cfg.workers * self.cfg.threads_per_worker
                ray.init(num_cpus=cpus, log_to_driver=False, include_dashboard=False)
                self._ray_started = True
        remote = ray.remote(num_cpus=self.cfg.threads_per_worker, num_gpus=self.cfg.gpus_per_worker, max_retries=1)(
            _ray_task
        )
        config_ref = ray.put(self.config)
        pending = {
            remote.remote(self.init, config_ref, task, a, self.cfg.threads_per_worker): i for i, a in enumerate(args)
        }
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                yield i, ray.get(ref)


def _ray_task(init: Init, config: Any, task: Task, arg: Any, threads: int) -> Any:
    """One task on a Ray worker (a failed task is retried once by Ray, with the same argument and seed)."""
    _worker_start(threads)
    return _run_in_worker(init, config, task, arg)


def in_order(results: Iterator[tuple[int, Any]], n: int) -> list[Any]:
    """All results of `Workers.run`, in the order of their args."""
    out: list[Any] = [None] * n
    for i, r in results:
        out[i] = r
    return out

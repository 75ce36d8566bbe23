"""For every pytest run of the repository (`make unit`, `make notebooks`): each pytest-xdist worker gets its own
share of the CPU cores.

Two workers that each let XLA use every core compete for them: on 2 cores, logreg beside gaussian_vi under nbval
took over 20 minutes against 4.3 alone (2026-12-06), since each process's XLA thread pool is sized for both cores.
A worker pinned to its share (`os.sched_setaffinity`, inherited by the Jupyter kernels nbval starts and by
anything else it spawns) sizes its thread pools to that share instead: logreg and ensembles_regression, each
pinned to one core and run side by side under nbval, took 249 s and 180 s, against 213 s and about 150 s alone on
both cores, one after the other. The pinning happens when this file is imported, before any test module imports
JAX, and only in xdist workers (`PYTEST_XDIST_WORKER`); a plain `pytest` run keeps every core."""
import os


def core_share(worker: str, num_workers: int, cores: list) -> list:
    """The cores of xdist worker `worker` ("gw<k>") among `num_workers`: `cores` (sorted) cut into `num_workers`
    contiguous shares as equal as can be, the k-th share; all of `cores` when there are more workers than cores
    (the operating system then shares them) or the name is not gw<k>."""
    if not worker.startswith("gw") or not worker[2:].isdigit() or not 0 < num_workers <= len(cores):
        return list(cores)
    k = int(worker[2:]) % num_workers
    return list(cores[k * len(cores) // num_workers:(k + 1) * len(cores) // num_workers])


def _pin_this_worker() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    share = core_share(worker, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), cores)
    if share != cores:
        os.sched_setaffinity(0, share)


_pin_this_worker()

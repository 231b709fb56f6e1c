"""Data-parallel training over MPI (the ``[mpi]`` extra: mpi4py and an MPI implementation).

Run the same script on every rank (``mpiexec -n 4 python train.py``, ``srun python train.py``)
and pass ``distributed=True`` to ``fit``: every rank holds the whole model; each global batch
(``batch_size`` is global) comes from one shuffle and is split into contiguous shares, one per
rank; the gradients are summed by one Allreduce per step over one contiguous buffer (the
parameters' ``.grad`` arrays are views into it, so nothing is packed or unpacked), each rank's
share weighted so that the result is the gradient one process computes for the global batch.
Validation, early stopping, schedules and the NaN check see the same numbers on every rank;
only rank 0 prints and writes files.

Errors: a step, the validation and the end of each epoch finish with every rank agreeing on
whether any of them failed (a flag inside the same reduction); if one did, every rank raises
the first failing rank's exception, which that rank alone prints. An exception that escapes
where the ranks cannot agree ends the whole job with ``MPI.Abort`` rather than leave the
others waiting forever.

Without a launch by mpiexec/srun (or with one rank) everything here is a no-op and mpi4py is
never imported; ``import lstm_native`` never imports it either.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
import traceback
import weakref

import numpy as np

__all__ = ["rank", "size", "is_launched", "broadcast_parameters", "allreduce_gradients", "together",
           "OtherRankError", "report_once", "reported_elsewhere"]

# Set by the launchers: MPICH/Intel MPI (PMI), Open MPI, MVAPICH, and srun for each job step.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")
_LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")


class OtherRankError(RuntimeError):
    """Another rank failed with an exception that could not be sent here as it was."""


def is_launched() -> bool:
    """Whether this process is one of several MPI ranks: a launcher's variables say so, or the
    program imported mpi4py itself (for launchers we do not know)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value) > 1
    return "mpi4py.MPI" in sys.modules and _comm().Get_size() > 1


def _comm():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("distributed training needs mpi4py and an MPI: pip install 'lstm_native[mpi]' "
                          "(or mpi4py built against the cluster's MPI)") from None
    return MPI.COMM_WORLD


def _mpi():
    from mpi4py import MPI
    return MPI


def size() -> int:
    """The number of ranks (1 when not launched by mpiexec/srun)."""
    return _comm().Get_size() if is_launched() else 1


def rank() -> int:
    """This process's rank, 0 .. size() - 1 (0 when not launched by mpiexec/srun)."""
    return _comm().Get_rank() if is_launched() else 0


def broadcast_parameters(model, root: int = 0) -> None:
    """Copies rank `root`'s parameter values into every rank's model (a no-op with one rank)."""
    if size() == 1:
        return
    comm = _comm()
    for p in model.parameters():
        comm.Bcast(p.data, root=root)


def allreduce_gradients(model, average: bool = True) -> None:
    """Sums every parameter's ``.grad`` over the ranks (and divides by size() when `average`),
    in one Allreduce over one flat buffer; for hand-written loops (a no-op with one rank).
    With shares of unequal size, scale each rank's loss gradient by its share of the global
    batch and pass average=False: the sum is then the gradient of the global batch."""
    n = size()
    if n == 1:
        return
    buffer = _FlatGradients.of(model)
    buffer.adopt()
    _comm().Allreduce(_mpi().IN_PLACE, buffer.grads)
    if average:
        buffer.grads *= buffer.grads.dtype.type(1.0 / n)


@contextlib.contextmanager
def together():
    """A block that every rank leaves the same way: when the block raises on any rank, every
    rank raises the first failing rank's exception (printed by that rank only). Costs one small
    Allreduce; a plain block with one rank."""
    if size() == 1:
        yield
        return
    failure = None
    try:
        yield
    except Exception as exc:
        if _tagged(exc, "agreed"):          # every rank raised it already
            raise
        failure = exc
    flag = np.array([failure is not None], np.float64)
    _comm().Allreduce(_mpi().IN_PLACE, flag)
    if flag[0]:
        _raise_together(_comm(), failure)


# -- errors every rank agrees on ------------------------------------------------------------
def _tag(exc, **flags):
    for name, value in flags.items():
        try:
            setattr(exc, "_lstm_native_" + name, value)
        except AttributeError:
            pass


def _tagged(exc, name) -> bool:
    """Whether exc, or an exception it was raised from (or while handling), carries the tag."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if getattr(exc, "_lstm_native_" + name, False):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def reported_elsewhere(exc) -> bool:
    """True for an exception another rank prints (so this rank stays silent about it)."""
    return _tagged(exc, "quiet")


def report_once(message: str, exc) -> None:
    """Prints message (about exc) to stderr unless another rank prints this error. Under
    mpiexec, an error the ranks did not agree on (raised on this rank alone) then ends the
    whole job with MPI Abort, since the other ranks would otherwise wait for this one forever."""
    if reported_elsewhere(exc):
        return
    print(message, file=sys.stderr, flush=True)
    if is_launched() and not _tagged(exc, "agreed"):
        sys.stdout.flush()
        _comm().Abort(2)
        os._exit(2)


def _portable(exc):
    """exc pickled, or an OtherRankError carrying its text when it does not survive pickling."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:
        return pickle.dumps(OtherRankError(f"{type(exc).__name__}: {exc}"))


def _raise_together(comm, failure):
    """Every rank learned that some rank failed: raises the first failing rank's exception on
    all of them, marked as agreed, and as printed by that rank only."""
    _raise_first(comm, failure, comm.allgather(None if failure is None else _portable(failure)))


def _raise_first(comm, failure, everyone):
    """everyone: each rank's pickled exception or None."""
    first = next(r for r, payload in enumerate(everyone) if payload is not None)
    me = comm.Get_rank()
    exc = failure if me == first else pickle.loads(everyone[first])
    if me == first and hasattr(exc, "add_note"):
        exc.add_note(f"(raised on rank {first} of {comm.Get_size()}; every rank stopped)")
    _install_quiet_hook()
    _tag(exc, agreed=True, quiet=me != first)
    raise exc


_hook_installed = False


def _install_quiet_hook():
    """Uncaught exceptions that another rank prints leave this rank silently (exit status 1)."""
    global _hook_installed
    if _hook_installed:
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        if not reported_elsewhere(value):
            previous(kind, value, tb)

    sys.excepthook, _hook_installed = hook, True


# -- the flat gradient buffer ---------------------------------------------------------------
class _FlatGradients:
    """A model's gradients as views into one contiguous buffer, allocated once per model,
    followed by TAIL slots that the training step reduces in the same Allreduce (loss sums,
    counts, flags)."""

    TAIL = 16
    _by_model = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, model):
        buffer = cls._by_model.get(model)
        params = model.parameters()
        if buffer is None or len(buffer.params) != len(params) or \
                any(a is not b for a, b in zip(buffer.params, params)):
            buffer = cls._by_model[model] = cls(params)
        return buffer

    def __init__(self, params):
        dtypes = {p.grad.dtype for p in params}
        if len(dtypes) != 1:
            raise TypeError(f"distributed training needs one parameter dtype, got {sorted(map(str, dtypes))}")
        align = 16                                     # each view starts on a 64-byte boundary (float32)
        offsets, n = [], 0
        for p in params:
            offsets.append(n)
            n += -(-p.grad.size // align) * align
        self.params = list(params)
        self.flat = np.zeros(n + self.TAIL, dtypes.pop())
        self.grads, self.tail = self.flat[:n], self.flat[n:]
        self.views = [self.flat[o:o + p.grad.size].reshape(p.grad.shape) for o, p in zip(offsets, params)]
        self.adopt()

    def adopt(self) -> None:
        """Makes every parameter's .grad the view into the buffer (keeping its values), in case
        something put a new array there."""
        for p, view in zip(self.params, self.views):
            if p.grad is not view:
                view[...] = p.grad
                p.grad = view


# -- the share of each rank in a loss's mean -------------------------------------------------
def loss_weight(loss_fn, out, target, mask, loss_kwargs) -> float:
    """The denominator of the mean that loss_fn takes over this batch (the number of values
    it averages, or the sum of class weights), so that sum_r weight_r * loss_r / sum_r weight_r
    is the mean over the global batch. A loss we do not know is taken to average over every
    value of its output (or every valid one under a mask)."""
    from . import losses
    out = np.asarray(out)
    per_position = int(np.prod(out.shape[np.ndim(mask):])) if mask is not None else 1
    if loss_fn is losses.cross_entropy:
        labels = np.asarray(target).reshape(-1).astype(np.int64)
        valid = labels != loss_kwargs.get("ignore_index", -100)
        if mask is not None:
            valid &= np.broadcast_to(np.asarray(mask, bool), np.shape(target)).reshape(-1)
        weight = loss_kwargs.get("weight")
        if weight is None:
            return float(valid.sum())
        return float(np.asarray(weight, np.float64)[np.where(valid, labels, 0)][valid].sum())
    if mask is None:
        return float(out.size)
    return float(np.asarray(mask, bool).sum()) * per_position


# -- data parallelism inside fit --------------------------------------------------------------
class DataParallel:
    """What ``fit(..., distributed=True)`` consults: this rank's rows of each batch, the
    gradient Allreduce, the reductions of validation and of the epoch's decisions."""

    def __init__(self, run):
        self.comm, self.MPI = _comm(), _mpi()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.run = run
        self.buffer = _FlatGradients.of(run.model)
        self.interrupted = False      # Ctrl-C as agreed by all ranks at the last reduction
        _install_quiet_hook()
        _share_cores()

    # setup
    def start(self, **settings) -> None:
        """Checks that every rank runs the same fit (the same number of samples, batch size...:
        each rank takes its own rows of the same data), then puts rank 0's parameters,
        optimizer state and seed on every rank."""
        run = self.run
        settings["parameters"] = [p.array.shape for p in run.model.parameters()]
        settings["epoch"] = run.epoch
        everyone = self.comm.allgather(settings)
        for r, theirs in enumerate(everyone):
            for key, value in theirs.items():
                if value != everyone[0][key]:
                    exc = ValueError(f"distributed fit needs the same data, model and settings on every rank "
                                     f"(each rank takes its own rows of every batch): {key} is {everyone[0][key]} "
                                     f"on rank 0 but {value} on rank {r}")
                    _tag(exc, agreed=True, quiet=self.rank != 0)
                    raise exc
        broadcast_parameters(run.model)
        for buffers in getattr(run.optimizer, "state", {}).values():
            for b in buffers:
                self.comm.Bcast(b, root=0)
        run.seed, run.optimizer.steps = self.comm.bcast((run.seed, run.optimizer.steps), root=0)
        if self.rank > 0:
            _own_random_streams(run.model, self.rank)

    def callbacks_here(self, callbacks):
        """Callbacks that write files or print (``rank_zero_only = True``) run on rank 0 only."""
        return [cb for cb in callbacks if self.rank == 0 or not getattr(cb, "rank_zero_only", False)]

    # each step
    def share(self, idx):
        """This rank's contiguous share of a global batch's indices (empty when the batch has
        fewer rows than there are ranks)."""
        n = len(idx)
        return idx[self.rank * n // self.size:(self.rank + 1) * n // self.size]

    def step(self, xb, yb, lb):
        """This rank's forward and backward, then the one Allreduce: gradients and (in the
        buffer's tail) the loss sums and failure/Ctrl-C flags. Returns the global batch's loss;
        the gradients are then the global batch's, the same on every rank. (Metrics are summed
        per rank and combined once an epoch: sum_metrics.)"""
        run, buffer = self.run, self.buffer
        value, weight, failure = 0.0, 0.0, None
        try:
            if len(xb):
                value, weight = run.forward_backward(xb, yb, lb, self._weight_of)
            else:
                run.model.zero_grad()
        except Exception as exc:
            failure = exc
        buffer.adopt()
        tail = buffer.tail
        tail[:] = 0
        tail[:4] = (value * weight, weight, failure is not None, run.interrupt is not None and run.interrupt.requested)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer.flat)
        if tail[2]:
            _raise_together(self.comm, failure)
        self.interrupted = bool(tail[3])
        total = float(tail[1])
        if total > 0:
            buffer.grads *= buffer.grads.dtype.type(1.0 / total)
        return float(tail[0]) / total if total > 0 else 0.0

    def sum_metrics(self, metrics) -> None:
        """Adds up every rank's metric sums (total, count), so that the epoch's values are the
        exact means over the global batches, the same on every rank."""
        names = list(metrics.totals)
        sums = np.array([v for name in names for v in metrics.totals[name]], np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, sums)
        for i, name in enumerate(names):
            metrics.totals[name] = [float(sums[2 * i]), int(sums[2 * i + 1])]

    def _weight_of(self, out, yb, mask):
        run = self.run
        return loss_weight(run.loss_fn, out, yb, mask, run.loss_kwargs)

    # each epoch
    def mean_over_ranks(self, mean, n, batch_size) -> dict:
        """mean(rows) -> {name: mean over those rows} on this rank's block of the whole batches
        that one process would take; returns the means over all n rows, the same on every rank
        (or raises the same error on every rank)."""
        batches = -(-n // batch_size)
        lo, hi = self.rank * batches // self.size, (self.rank + 1) * batches // self.size
        rows = slice(lo * batch_size, min(hi * batch_size, n))
        count, logs, failure = max(0, rows.stop - rows.start), {}, None
        try:
            if count:
                logs = mean(rows)
        except Exception as exc:
            failure = exc
        everyone = self.comm.allgather((count, logs, None if failure is None else _portable(failure)))
        if any(f is not None for _, _, f in everyone):
            _raise_first(self.comm, failure, [f for _, _, f in everyone])
        everyone = [(c, l) for c, l, _ in everyone if c]
        total = sum(c for c, _ in everyone)
        return {k: sum(c * l[k] for c, l in everyone) / total for k in everyone[0][1]}

    @contextlib.contextmanager
    def together(self):
        """A block every rank leaves the same way: raising the same error if any rank failed,
        stopping if any rank's callbacks asked to stop, and agreeing on Ctrl-C."""
        run = self.run
        failure = None
        try:
            yield
        except Exception as exc:
            if _tagged(exc, "agreed"):      # every rank raised it already
                raise
            failure = exc
        flags = np.array([failure is not None, bool(getattr(run.model, "stop_training", False)),
                          run.interrupt is not None and run.interrupt.requested], np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, flags)
        if flags[0]:
            _raise_together(self.comm, failure)
        run.model.stop_training, self.interrupted = bool(flags[1]), self.interrupted or bool(flags[2])

    @contextlib.contextmanager
    def guard(self):
        """Around the whole fit: an exception the ranks have not agreed on (raised where the
        others could not know, e.g. a callback failing on one rank, or a second Ctrl-C) would
        leave the others waiting in their next reduction forever, so it ends the whole job."""
        try:
            yield
        except BaseException as exc:
            if not _tagged(exc, "agreed"):
                print(f"lstm_native.distributed: rank {self.rank} of {self.size} failed alone; "
                      "aborting every rank", file=sys.stderr)
                traceback.print_exc()
                sys.stdout.flush()
                sys.stderr.flush()
                # Abort tears down the launcher's output forwarding: on a loaded machine the
                # traceback, already in the pipe, was lost (CI saw no output at all). Give the
                # launcher a moment to pass it on; the other ranks wait in a reduction anyway.
                time.sleep(1.0)
                self.comm.Abort(1)
                os._exit(1)                   # (Abort may return before the launcher ends us)
            raise


def _share_cores() -> None:
    """Without OMP_NUM_THREADS, each rank's kernels take the machine's cores / the ranks on it,
    so that ranks sharing a machine do not oversubscribe it."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    for name in _LOCAL_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            from ._backend import core
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            if core.get_num_threads() >= cores:          # still the default: nobody chose a count
                core.set_num_threads(max(1, cores // int(value)))
            return


def _own_random_streams(model, rank) -> None:
    """Gives every random generator of the model's modules (dropout masks) a stream of this
    rank's own, so that ranks do not draw the same masks for their different rows."""
    for _, module in model.named_modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, np.random.Generator):
                object.__setattr__(module, name, np.random.default_rng([int(value.integers(2**63)), rank]))


"""Which processes run this job: one when run plainly, several under ``accelerate launch`` or ``torchrun``.

Data-parallel work (``ser-hf predict`` shards, the probe's feature cache) splits its items by
:class:`Processes`; a plain run touches no distributed state, so single-process work behaves as it
always did.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ser_hf.errors import SERError

# Environment variables through which torchrun/accelerate launch (WORLD_SIZE) or MPI announce several processes.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


@dataclass
class Processes:
    """This process's place in the job: rank, number of processes, device, and a barrier."""

    rank: int = 0
    world: int = 1
    device: Any = None
    barrier: Callable[[], None] = lambda: None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence) -> list:
        """This process's items: every ``world``-th one from ``rank`` (so similar items spread evenly)."""
        return list(items[self.rank::self.world])

    def missing_share(self, targets: Sequence) -> tuple[list[int], list[int]]:
        """Indices of the ``targets`` (paths) not yet written, and this process's share of them.

        Every process must split the same list, so nobody may write a target before all have looked:
        a process that lists the cache after a faster one started filling it would split a shorter
        list, and some clips would fall between the shares. The barrier after the listing prevents it.
        """
        todo = [i for i, target in enumerate(targets) if not target.exists()]
        if self.world > 1:
            self.barrier()
        return todo, self.share(todo)


def available_cores() -> int:
    """The cores this process may run on (its affinity, where the system tells it; else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def launched_processes() -> Processes:
    """The processes ``accelerate launch``/``torchrun`` started (one :class:`Processes` when run plainly)."""
    from accelerate.utils import get_int_from_env

    launched = get_int_from_env(list(WORLD_SIZE_VARIABLES), 1)
    if launched <= 1:
        return Processes()
    import torch
    from accelerate import PartialState

    # Without cpu=True a launch with no visible GPU leaves every process believing it is alone (all would
    # write the same files); with it, accelerate joins them over gloo.
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != launched:
        raise SERError(f"{launched} processes were launched but accelerate joined {state.num_processes} (was "
                       f"PartialState created earlier in this process with other settings?); every process would "
                       f"work alone. Start the command with accelerate launch or torchrun directly; for several CPU "
                       f"processes of ser-hf train/cv pass --use_cpu true.")
    return Processes(state.process_index, state.num_processes, state.device, state.wait_for_everyone)


def exit_with_parent(parent: int) -> None:
    """Have the kernel end this worker process when its parent (pid ``parent``) dies, on Linux; elsewhere nothing.

    A pool worker forked by a process that is killed (``kill -9``, the OOM killer) otherwise waits on its task queue
    for good, holding what it inherited (open files, an output folder's lock). PyTorch's DataLoader workers watch
    their parent for the same reason."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request: nothing would ever signal this worker
        os._exit(1)


#: ``prctl`` option: the signal this process gets when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1

"""Splitting missing cache files between launched processes (no distributed launch needed: threads stand in)."""

import threading
import time

from ser_hf.processes import Processes


def test_a_process_that_lists_late_still_splits_the_same_missing_files(tmp_path):
    # Rank 1 looks at the cache after rank 0 could already have written its share; without the barrier
    # in missing_share rank 1 would split a shorter list and some files would belong to nobody.
    targets = [tmp_path / f"{i}.npy" for i in range(10)]
    meeting = threading.Barrier(2, timeout=10)
    shares: dict[int, list[int]] = {}

    def work(rank: int) -> None:
        if rank == 1:
            time.sleep(0.3)
        processes = Processes(rank=rank, world=2, barrier=meeting.wait)
        todo, mine = processes.missing_share(targets)
        assert todo == list(range(10))
        for index in mine:
            targets[index].write_bytes(b"x")
        shares[rank] = mine

    threads = [threading.Thread(target=work, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(shares[0] + shares[1]) == list(range(10))
    assert all(target.exists() for target in targets)


def test_one_process_takes_every_missing_file_without_waiting(tmp_path):
    targets = [tmp_path / f"{i}.npy" for i in range(3)]
    targets[1].write_bytes(b"x")
    assert Processes().missing_share(targets) == ([0, 2], [0, 2])

"""The lake's writer lock: re-entrant on the thread that holds it, exclusive across threads."""

from __future__ import annotations

import threading

import pytest

from distillery.lake import Lake, LakeError


def test_writer_lock_reenters_on_its_thread_and_other_threads_of_the_process_wait(tmp_path, capfd):
    lake = Lake(tmp_path / "lake")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lake.writer_lock(timeout_s=5):
            with lake.writer_lock(timeout_s=0.5):  # re-entry on the same thread: no wait, no error
                held.set()
                release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        # Another thread of this process does not share the holder's re-entry: it waits, then gives up.
        with pytest.raises(LakeError, match="still locked"):
            with lake.writer_lock(timeout_s=0.5):
                pytest.fail("a second thread entered the lake's writer lock while another thread held it")
        assert "waiting for it to finish" in capfd.readouterr().err
    finally:
        release.set()
        holder.join(timeout=10)
    with lake.writer_lock(timeout_s=5):  # the holder let go: this thread takes it
        pass

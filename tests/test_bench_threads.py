"""``benchmarks.run.thread_split``: a process's main-thread CPU and its threads' context
switches, read from /proc, as the benchmark splits the node's CPU per call."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from benchmarks.run import process_cpu_s, thread_split

# The child burns 0.3 s of CPU on its main thread and 0.3 s on a second thread that also
# waits 50 times for the main thread's turn (a voluntary context switch each), and is
# read while both live.
_CHILD = textwrap.dedent("""
    import queue, sys, threading, time

    def burn(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    burn(0.3)
    done = threading.Event()
    read = threading.Event()

    ping, pong = queue.SimpleQueue(), queue.SimpleQueue()

    def other():
        for _ in range(50):
            ping.get()  # blocks until the main thread puts: the thread sleeps each time
            pong.put(None)
        burn(0.3)
        done.set()
        read.wait()

    threading.Thread(target=other).start()
    for _ in range(50):
        ping.put(None)
        pong.get()
    done.wait()
    print("ready", flush=True)
    sys.stdin.readline()
    read.set()
""")


def test_the_main_thread_and_the_others_are_told_apart() -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        loop, switches = thread_split(child.pid)
        total = process_cpu_s(child.pid)
    finally:
        child.communicate("\n", timeout=30)
    assert child.returncode == 0
    # clock ticks (10 ms): the main thread's 0.3 s and the interpreter's start, not the
    # other thread's 0.3 s; the process's total has both
    assert 0.29 <= loop < 0.6
    assert total - loop >= 0.29
    assert switches >= 50


def test_a_process_that_is_gone_counts_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    assert thread_split(child.pid) == (0.0, 0)

"""Progress of a study: one tqdm bar per sweep, over chunks and over steps inside the jitted scan.

Host-side only; it never changes a bit of a result:

* chunk level: ``sweep.run``'s ``on_chunk`` (and the chunk store, for chunks restored from a
  checkpoint, which do not count towards the speed, so the ETA is that of the work left);
* step level: while a bar is active, ``jaxeval.train.loop`` traces an *unordered*
  ``jax.debug.callback`` into its scan that reports the step every ``step_interval(total)``
  steps. Unordered, because ordered effects fail under multi-device ``shard_map``; every device
  then reports the same step, so the bar keeps the largest one seen (duplicates and out-of-order
  calls are harmless). A host callback is only traced in while a bar is active: a program with a
  host callback is not written to JAX's persistent compilation cache, so quiet runs (``--quiet``,
  not a TTY, library calls) compile exactly the programs they always did. The callback is a
  side effect next to the arithmetic (the bits with and without it are tested equal).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
from typing import IO, Iterator

STEP_UPDATES = 100  # step-level updates per chunk, at most


def step_interval(total_steps: int) -> int:
    """Report every ``k`` steps: at most ``STEP_UPDATES`` host callbacks per run of ``total_steps``."""
    return max(1, -(-int(total_steps) // STEP_UPDATES))


class SweepBar:
    """The bar of one sweep: ``n_chunks`` chunks, the running chunk's share from its steps."""

    def __init__(self, desc: str, n_chunks: int, *, stream: IO | None, enabled: bool):
        self.desc, self.n_chunks, self.enabled = desc, int(n_chunks), enabled
        self.done = 0  # finished chunks (computed or restored)
        self.restored = 0  # of which restored from checkpoints
        self.step = 0  # largest step reported for the running chunk(s)
        self.total_steps = 0
        self._timing = False  # whether the speed is measured yet (from the first step report)
        self._lock = threading.Lock()
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            width = shutil.get_terminal_size((100, 20)).columns or 100  # a pty may report 0 columns
            self._bar = tqdm(total=self.n_chunks, desc=desc, unit="chunk", file=stream, smoothing=0,
                             ncols=min(width, 120), leave=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {unit} [{elapsed}<{remaining}]")
            self._refresh()

    @property
    def position(self) -> float:
        """Chunks done plus the running chunk's fraction of steps (what the bar shows)."""
        frac = self.step / self.total_steps if self.total_steps else 0.0
        return min(self.done + frac, self.n_chunks)

    def on_step(self, step, total: int) -> None:
        with self._lock:
            self.total_steps = int(total)
            if not self._timing and self._bar is not None:
                # the first step report: compilation is over; the speed (ETA) counts from here
                self._timing = True
                self._bar.initial = self.position
                self._bar.start_t = self._bar._time()
            self.step = max(self.step, int(step))
            self._refresh()

    def on_restored(self, index: int) -> None:
        """Chunk ``index`` came from a checkpoint: counted as done, not as speed (ETA)."""
        with self._lock:
            self.restored += 1
            if self._bar is not None and not self._timing:  # restored before any computing: not speed
                self._bar.initial = self.position + 1
                self._bar.start_t = self._bar._time()

    def on_chunk(self, index: int, n_chunks: int) -> None:
        """``sweep.run``'s ``on_chunk``: chunk ``index`` of ``n_chunks`` finished."""
        with self._lock:
            self.done += 1
            self.step = 0
            self._refresh()

    def _refresh(self) -> None:
        if self._bar is None:
            return
        self._bar.n = self.position
        post = f"chunk {min(self.done + 1, self.n_chunks)}/{self.n_chunks}"
        if self.total_steps and self.done < self.n_chunks:
            post += f", step {self.step}/{self.total_steps}"
        if self.restored:
            post += f", {self.restored} restored"
        self._bar.unit = post  # shown by bar_format's {unit} (tqdm's {postfix} adds a ", ")
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.close()


class Progress:
    """Progress display of one study run; a no-op when ``quiet``, when ``stream`` is not a TTY, or
    on processes other than 0 under ``jax.distributed``.

    ``force=True`` shows the bars on any stream (tests). ``steps=False`` keeps chunk-level
    progress only (no host callback in the compiled programs).
    """

    def __init__(self, *, quiet: bool = False, stream: IO | None = None, force: bool = False, steps: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = not quiet and (force or bool(isatty())) and _is_process_zero()
        self.steps = steps
        self.bars: list[SweepBar] = []

    @contextlib.contextmanager
    def sweep(self, desc: str, n_chunks: int) -> Iterator[SweepBar]:
        """A bar for one sweep; while it is open, scans traced by the sweep report their steps."""
        global _ACTIVE
        bar = SweepBar(desc, n_chunks, stream=self.stream, enabled=self.enabled)
        self.bars.append(bar)
        previous = _ACTIVE
        _ACTIVE = bar if (self.enabled and self.steps) else None
        try:
            yield bar
        finally:
            _ACTIVE = previous
            bar.close()


_ACTIVE: SweepBar | None = None


def _is_process_zero() -> bool:
    """Bars on process 0 only under jax.distributed (every process runs the same study)."""
    import jax

    return jax.process_index() == 0


def steps_active() -> bool:
    """Whether a bar wants step reports (read at trace time by ``jaxeval.train.loop``)."""
    return _ACTIVE is not None


def report_step(step, *, total: int) -> None:
    """Host side of the step callback: ``step`` steps of ``total`` done in the running chunk."""
    bar = _ACTIVE
    if bar is not None:
        bar.on_step(step, total)


def trace_step_callback(step, total: int) -> None:
    """Inside a traced scan: reports ``step`` (1-based, unbatched int) every ``step_interval(total)``
    steps through an unordered ``jax.debug.callback``; traces nothing when no bar is active."""
    if not steps_active():
        return
    import functools

    import jax

    every = step_interval(total)
    callback = functools.partial(report_step, total=int(total))
    if every == 1:
        jax.debug.callback(callback, step, ordered=False)
    else:
        jax.lax.cond((step % every == 0) | (step == total),
                     lambda s: jax.debug.callback(callback, s, ordered=False), lambda s: None, step)

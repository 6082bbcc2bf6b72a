"""The batch's downloads, beside its scheduler.

Why threads here, and only here: a video streams for seconds (tens of MB
from a storage host that gives each connection a bounded speed), and while
the scheduler's one thread streamed it, no render was polled and no export
sent. requests offers no non-blocking reads to interleave chunks in one
thread, so a small bounded pool of workers runs the downloads, each on its
own connection (N parallel connections get about N times one connection's
speed). Everything else stays in the scheduler's thread: the service's API,
the journal, the caller's ``on_progress``. A worker only fills a file and
reports its bytes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set, Tuple, Union

from .deadlines import cut_now
from .download import SavedVideo
from .errors import AIStudiosError, DownloadError

if TYPE_CHECKING:
    import concurrent.futures

    from .client import Client

#: The most downloads that run at once (fewer when the batch's concurrency is lower).
MAX_DOWNLOADS = 32


class _Cancelled(BaseException):
    """Raised inside a worker's download when the batch stops: its temporary file goes."""


class Downloads:
    """Downloads running beside the scheduler: started, waited for, stopped."""

    def __init__(self, client: Client, workers: int):
        self.client = client
        self.workers = max(1, workers)
        self.running: Dict[concurrent.futures.Future[SavedVideo], Any] = {}
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._cancel = threading.Event()
        self._threads: Set[int] = set()  # the workers busy with a download

    def start(self, task: Any, url: str, folder: Path, name: str) -> None:
        """Download ``url`` for ``task``; its ``received`` and ``total`` follow the bytes."""
        import concurrent.futures  # only when a batch downloads

        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="aistudios-download")

        def progress(received: int, total: Optional[int]) -> None:
            if self._cancel.is_set():
                raise _Cancelled
            task.received, task.total = received, total

        def work() -> SavedVideo:
            self._threads.add(threading.get_ident())
            try:
                return self.client.save_video(url, folder, name, progress=progress)
            finally:
                self._threads.discard(threading.get_ident())

        future = self._pool.submit(work)
        self.running[future] = task

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a download to end; True when one did."""
        import concurrent.futures

        done, _ = concurrent.futures.wait(
            list(self.running), timeout=seconds, return_when=concurrent.futures.FIRST_COMPLETED
        )
        return bool(done)

    def finished(self) -> List[Tuple[Any, Union[SavedVideo, DownloadError]]]:
        """The downloads that ended, with their video or their error."""
        ended: List[Tuple[Any, Union[SavedVideo, DownloadError]]] = []
        for future in [f for f in self.running if f.done()]:
            task = self.running.pop(future)
            error = future.exception()
            if error is None:
                ended.append((task, future.result()))
            elif isinstance(error, AIStudiosError):
                ended.append((task, error if isinstance(error, DownloadError) else DownloadError(str(error))))
            else:
                raise error
        return ended

    def stop(self) -> None:
        """Cancel what still runs (its temporary files are removed) and wait for the workers."""
        self._cancel.set()
        for thread in list(self._threads):
            cut_now(thread)  # a read waiting on a slow host ends now, not at its timeout
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.running.clear()

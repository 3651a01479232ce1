"""Every error AMP raises on purpose, in one tree.

    AmpError
    ├── InputError                 the user's input cannot be used as given
    │   ├── ImageReadError         missing, unreadable, empty, corrupt or not an image
    │   ├── ImageTooLargeError     more pixels than the configured limit (decompression bomb)
    │   ├── UnsafePathError        a path that would leave its allowed root
    │   └── OptionError            an option value that makes no sense (scale, denoise, device...)
    ├── ModelError                 a model cannot be found, fetched, verified or understood
    │   ├── ModelNotFoundError     not in any lookup location; says how to get it
    │   ├── ModelDownloadError     the network failed; says how to place the file by hand
    │   ├── ModelChecksumError     the bytes are not the official ones
    │   └── UnsupportedModelError  a state dict of an architecture AMP does not know
    ├── DeviceError                the compute device cannot do what was asked
    │   └── DeviceOutOfMemoryError
    ├── IndexStoreError            the face index cannot be opened, written or searched as asked
    │                              (locked by another writer, damaged, wrong model or dimension)
    ├── ImmichError                the Immich server cannot be reached or refuses a request
    │   ├── ImmichUnavailableError connection failed, timed out, or 429/5xx after every retry
    │   ├── ImmichAuthError        401 (no or wrong API key) or 403 (a named permission missing)
    │   ├── ImmichNotFoundError    404: the asset, face or person does not exist (any more)
    │   └── ImmichResponseError    an answer that is not what Immich's API promises
    └── TaskError                  a processing task cannot be handled as asked
        ├── TaskNotFoundError      no task has that id (HTTP 404)
        ├── TaskLeaseLostError     a worker reports on a task it no longer holds (cancelled,
        │                          re-queued after its lease expired): discard the work
        ├── TaskCursorError        a page cursor this queue did not hand out (HTTP 400)
        └── TaskStoreError         the queue's database cannot be opened (newer schema, damage)

Callers catch `AmpError` at the edges (CLI, service) and show the message; anything
else is a bug and keeps its traceback. Messages say what failed and what to do next.
"""

from __future__ import annotations

from pathlib import Path


class AmpError(Exception):
    """Base of every error AMP raises deliberately."""


class InputError(AmpError):
    """The user's input cannot be used as given."""


class ImageReadError(InputError):
    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


class ImageTooLargeError(InputError):
    def __init__(self, path: Path | str, pixels: int, limit: int) -> None:
        self.path = Path(path)
        self.pixels = pixels
        self.limit = limit
        super().__init__(
            f"{self.path} has {pixels:,} pixels, over the limit of {limit:,} "
            "(a guard against decompression bombs); "
            "raise it with --max-pixels if the file is trusted"
        )


class UnsafePathError(InputError):
    def __init__(self, path: Path | str, root: Path | str, reason: str) -> None:
        self.path = str(path)
        self.root = Path(root)
        super().__init__(f"path {self.path!r} is not allowed under {self.root}: {reason}")


class OptionError(InputError):
    """An option value that cannot work, e.g. a denoise strength outside [0, 1]."""


class ModelError(AmpError):
    """A model cannot be found, fetched, verified or understood."""


class ModelNotFoundError(ModelError):
    pass


class ModelDownloadError(ModelError):
    pass


class ModelChecksumError(ModelError):
    def __init__(self, path: Path | str, expected: str, actual: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{self.path} has sha256 {actual}, expected {expected}: "
            "the file is corrupt or not the official release; delete it and fetch it again"
        )


class UnsupportedModelError(ModelError):
    pass


class DeviceError(AmpError):
    """The compute device cannot do what was asked."""


class DeviceOutOfMemoryError(DeviceError):
    pass


class IndexStoreError(AmpError):
    """The face index cannot be opened, written or searched as asked."""

    def __init__(self, root: Path | str, reason: str) -> None:
        self.root = Path(root)
        self.reason = reason
        super().__init__(f"face index {self.root}: {reason}")


class ImmichError(AmpError):
    """The Immich server cannot be reached or refuses a request. Never carries the API key."""

    def __init__(
        self, message: str, *, method: str = "", path: str = "", status: int | None = None
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        super().__init__(message)


class ImmichUnavailableError(ImmichError):
    pass


class ImmichAuthError(ImmichError):
    pass


class ImmichNotFoundError(ImmichError):
    pass


class ImmichResponseError(ImmichError):
    pass


class TaskError(AmpError):
    """A processing task cannot be handled as asked."""


class TaskNotFoundError(TaskError):
    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"no task {task_id!r}: check the id, or list the tasks")


class TaskLeaseLostError(TaskError):
    """The worker does not hold the task's lease (any more): it must discard its work."""

    def __init__(self, task_id: str, worker_id: str, reason: str) -> None:
        self.task_id = task_id
        self.worker_id = worker_id
        self.reason = reason
        super().__init__(
            f"worker {worker_id} no longer holds task {task_id}: {reason}; "
            "discard this attempt's output"
        )


class TaskCursorError(TaskError):
    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        super().__init__(
            f"page cursor {cursor!r} is not one this queue handed out; "
            "start again from the first page"
        )


class TaskStoreError(TaskError):
    """The queue's database cannot be opened or used."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"task queue {self.path}: {reason}")

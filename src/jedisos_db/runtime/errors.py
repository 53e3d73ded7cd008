"""Every error the package raises on purpose, and the rule of which one means what.

Each error belongs to one of three families, named by what has to change before the call can succeed:

1. **The environment** (:class:`SetupError`): configuration, installed software, reachable servers.
   The call is fine; the place it runs in is not. :class:`ConfigError` (a setting, option or
   constructor parameter missing or malformed, naming it), :class:`MissingExtensionError`,
   :class:`DockerUnavailableError`, :class:`DatabaseUnavailableError`, :class:`AuthenticationError` (the
   server refused the credentials: not retryable), :class:`HindsightUnavailableError`
   (and its kinds: :class:`HindsightBusyError`, the server at capacity, and :class:`OperationTimeoutError`,
   an async operation still running when the caller stopped waiting), :class:`BackpressureError` (the
   database takes events slower than they come: the event writer's queue stayed full past the wait
   allowed), :class:`SecretDecryptionError`
   (the configured keys cannot read a stored token).
2. **The caller's argument** (:class:`InvalidInputError`): a value breaks a documented rule, found
   before any SQL is sent. It names ``field`` and ``rule`` (and ``index``, the row of a batch); the
   same call fails whatever the data, so retrying never helps.
3. **The server's state** (:class:`StateError`): the call is well formed, but the data or the server
   it meets does not allow it: :class:`NotFoundError`, the conflicts (:class:`ConflictError`:
   :class:`DuplicateError`, :class:`MissingReferenceError`, :class:`InvalidTransitionError`),
   :class:`MigrationError`, :class:`LockTimeoutError` (another run held a lock past the wait allowed),
   :class:`CallTimeoutError` (a call handed to another thread's event loop outlasted its wait and was cancelled),
   :class:`LocalServerError` (a process this package runs failed or is not
   running, e.g. :class:`HindsightServerError`, or :class:`BackupError` from pg_dump/pg_restore),
   and Hindsight's answers :class:`HindsightRequestError`
   (:class:`BankNotFoundError`, :class:`DocumentNotFoundError`) and :class:`HindsightContractError`.

A conflict names the field whose value collides with stored data, so it is also an
:class:`InvalidInputError` (callers catching those keep catching it); its cause is the state.

``retryable`` says whether the same call, unchanged, may succeed later without anyone fixing
anything (a server coming back). Where the package retries itself (the Hindsight client), the error
is raised after those bounded retries ran out.

No builtin exception (``ValueError``, ``KeyError``, ``RuntimeError`` ...) is raised on purpose
(``tests/runtime/test_errors.py`` scans the source). :class:`InvalidInputError` is also a ``ValueError`` and
:class:`NotFoundError` a ``LookupError``, so code written against the builtins keeps working.
Every error renders as one readable line; the CLI prints exactly that line.
"""

from __future__ import annotations

from typing import ClassVar

BODY_EXCERPT_CHARS = 300
"""How much of an HTTP body a Hindsight error keeps: the server's reason, not a whole page."""


class JedisosDBError(Exception):
    """Base class for every error this package raises on purpose."""

    retryable: ClassVar[bool] = False
    """True when the same call may succeed later with nothing changed (a server coming back)."""


# --- 1. the environment ------------------------------------------------------------------------


class SetupError(JedisosDBError):
    """The environment is wrong: configuration, installed software, or a server that does not answer."""


class ConfigError(SetupError):
    """A setting is missing or malformed. ``field`` names the variable or option."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class DatabaseUnavailableError(SetupError):
    """The server could not be reached or started."""

    retryable = True


class AuthenticationError(SetupError):
    """The server refused the credentials: a wrong password, an unknown role, no ``pg_hba.conf`` entry for
    them. ``user`` names the role (None when the URL names none); the password never appears. Retrying
    the same call cannot help until someone fixes the credentials."""

    def __init__(self, message: str, *, user: str | None) -> None:
        self.user = user
        super().__init__(message)


class BackpressureError(SetupError):
    """The event writer holds as many unwritten events as it may (``max_pending``) and none were written
    within the wait allowed: the database is slower than the producers, or down. Nothing was enqueued."""

    retryable = True


class MissingExtensionError(SetupError):
    """A required extension is neither installed nor installable by the current role."""


class DockerUnavailableError(SetupError):
    """No Docker engine answers; the Docker source cannot be used."""


class SecretDecryptionError(SetupError):
    """A token none of the configured keys can decrypt (wrong key, or corrupted data)."""


# --- 2. the caller's argument ------------------------------------------------------------------


class InvalidInputError(JedisosDBError, ValueError):
    """A value the package refuses. Names the field, the rule and, in a batch, the row index."""

    def __init__(self, field: str, rule: str, *, index: int | None = None) -> None:
        self.field = field
        self.rule = rule
        self.index = index
        where = f"row {index}: " if index is not None else ""
        super().__init__(f"{where}{field}: {rule}")

    def at(self, index: int) -> InvalidInputError:
        """The same error located at row ``index`` of a batch."""
        return type(self)(self.field, self.rule, index=index)


# --- 3. the server's state ---------------------------------------------------------------------


class StateError(JedisosDBError):
    """The call is well formed, but the data or the server it meets does not allow it."""


class NotFoundError(StateError, LookupError):
    """What an operation addresses (a row, a report entry) does not exist."""


class ConflictError(InvalidInputError, StateError):
    """A value collides with stored data; names the field like any :class:`InvalidInputError`."""


class DuplicateError(ConflictError):
    """A value that must be unique already exists."""


class MissingReferenceError(ConflictError):
    """A foreign key points at a row that does not exist."""


class InvalidTransitionError(ConflictError):
    """A state change the state machine does not allow from the row's current state."""


class MigrationError(StateError):
    """Alembic could not bring the schema to the requested revision."""


class LockTimeoutError(StateError):
    """A lock another session holds (e.g. a concurrent ``jedisos-db up``) was not granted within the timeout."""


class CallTimeoutError(StateError):
    """A coroutine handed to an event loop in another thread (the load harness's ``LoopThread``) did not
    finish within the caller's timeout; it has been cancelled."""


class LocalServerError(StateError):
    """A server or process this package runs itself failed, or was used while not running.

    The message carries its exit code or log tail.
    """


class BackupError(LocalServerError):
    """A backup or restore could not be made (a client tool failed, is too old, or the target is taken);
    nothing half-written is left behind."""


# --- Hindsight (re-exported by jedisos_db.runtime.hindsight) --------------------------------------


class HindsightError(JedisosDBError):
    """Base class for everything that goes wrong talking to, or running, Hindsight."""


class HindsightUnavailableError(HindsightError, SetupError):
    """The server could not be reached (connection refused, timeout) or kept failing with 5xx.

    Raised only after the client's bounded retries ran out; ``attempts`` says how many were
    made, ``status``/``body`` are the last 5xx answer when there was one.
    """

    retryable = True

    def __init__(self, method: str, path: str, reason: str, *, attempts: int, status: int | None = None,
                 body: str = "") -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        self.status = status
        self.body = body[:BODY_EXCERPT_CHARS]
        detail = f"HTTP {status}: {self.body or '(empty body)'}" if status is not None else reason
        super().__init__(f"Hindsight {method} {path} failed after {attempts} attempt(s): {detail}")


class HindsightRequestError(HindsightError, StateError):
    """Hindsight refused a request (4xx).

    ``status`` is the HTTP status and ``body`` an excerpt of what the server said, so a
    failure names both the request and the server's reason without dumping a whole page.
    """

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body[:BODY_EXCERPT_CHARS]
        super().__init__(f"Hindsight {method} {path} -> HTTP {status}: {self.body or '(empty body)'}")


class BankNotFoundError(HindsightRequestError):
    """The bank does not exist (HTTP 404): recall, entities, list and delete on an unknown bank."""

    def __init__(self, method: str, path: str, status: int, body: str, bank_id: str | None = None) -> None:
        super().__init__(method, path, status, body)
        self.bank_id = bank_id


class HindsightContractError(HindsightError, StateError):
    """Hindsight answered 2xx with a body the client cannot read: the server's API drifted."""


class HindsightServerError(HindsightError, LocalServerError):
    """The local Hindsight server or its migrations failed; the message carries the log tail."""


class HindsightBusyError(HindsightUnavailableError):
    """Hindsight said it is at capacity (HTTP 429 or 503) and the client stopped retrying.

    ``retry_after`` is the wait the server asked for, in seconds (``Retry-After``, either form),
    or None when it sent none. Raised after the bounded retries ran out, at once when the wait
    asked for exceeds the client's cap, and at once for a retain that is not safe to repeat.
    """

    def __init__(self, method: str, path: str, *, attempts: int, status: int, body: str,
                 retry_after: float | None) -> None:
        super().__init__(method, path, "at capacity", attempts=attempts, status=status, body=body)
        self.retry_after = retry_after


class DocumentNotFoundError(HindsightRequestError):
    """The document does not exist in the bank (HTTP 404 on a document route)."""

    def __init__(self, method: str, path: str, status: int, body: str, *, bank_id: str, document_id: str) -> None:
        super().__init__(method, path, status, body)
        self.bank_id = bank_id
        self.document_id = document_id


class OperationTimeoutError(HindsightUnavailableError):
    """An async operation was still pending or processing when the caller's wait ran out.

    ``state`` is the operation's last state (``pending`` or ``processing``); ``attempts`` the polls made.
    """

    def __init__(self, method: str, path: str, *, attempts: int, operation_id: str, state: str,
                 waited: float) -> None:
        super().__init__(method, path, f"operation {operation_id} still {state!r} after {waited:.1f} s",
                         attempts=attempts)
        self.operation_id = operation_id
        self.state = state
        self.waited = waited

"""Typed errors of the Hindsight glue: the HTTP client's and the local server's."""

from __future__ import annotations

from jedisos_db.runtime.errors import JedisosDBError

BODY_EXCERPT_CHARS = 300


class HindsightError(JedisosDBError):
    """Base class for everything that goes wrong talking to, or running, Hindsight."""


class HindsightUnavailableError(HindsightError):
    """The server could not be reached (connection refused, timeout) or kept failing with 5xx.

    Raised only after the client's bounded retries ran out; ``attempts`` says how many were
    made, ``status``/``body`` are the last 5xx answer when there was one.
    """

    def __init__(self, method: str, path: str, reason: str, *, attempts: int, status: int | None = None,
                 body: str = "") -> None:
        self.method = method
        self.path = path
        self.attempts = attempts
        self.status = status
        self.body = body[:BODY_EXCERPT_CHARS]
        detail = f"HTTP {status}: {self.body or '(empty body)'}" if status is not None else reason
        super().__init__(f"Hindsight {method} {path} failed after {attempts} attempt(s): {detail}")


class HindsightRequestError(HindsightError):
    """Hindsight refused a request (4xx), or kept answering 5xx after the retries ran out.

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


class HindsightContractError(HindsightError):
    """Hindsight answered 2xx with a body the client cannot read: the server's API drifted."""


class HindsightServerError(HindsightError):
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

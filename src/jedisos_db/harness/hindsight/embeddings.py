"""A small deterministic embedding server speaking the TEI protocol, for running Hindsight offline.

Hindsight has no mock embeddings provider; its ``tei`` provider only needs ``GET /info`` and
``POST /embed {"inputs": [...]}`` -> ``[[float, ...], ...]`` (hindsight_api.engine.embeddings
.RemoteTEIEmbeddings). This serves exactly that on loopback, from a thread, with no model:
each text becomes a hashed bag of words and character trigrams, L2-normalised, so texts that
share words land near each other and recall behaves like recall. Same text, same vector, on
every machine (blake2b, not Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from jedisos_db.runtime.errors import LocalServerError

DIMENSION = 384
"""Hindsight's default ``memory_units.embedding vector(384)``; a different size would make it resize the column."""

MODEL_ID = "jedisos-db/hashed-bow-384"
_WORD = re.compile(r"\w+", re.UNICODE)


def _bucket(feature: str, dimension: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return value % dimension, (1.0 if value >> 63 else -1.0)


# Function words carry no topic; leaving them out keeps "Where does Alice work?" near the fact about
# Alice's work instead of near every other question.
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has",
    "have", "he", "her", "his", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our",
    "she", "so", "that", "the", "their", "them", "they", "this", "to", "was", "we", "were", "what", "when",
    "where", "which", "who", "whom", "why", "will", "with", "you", "your",
})
_SUFFIXES = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    """A crude English stem (works/worked/working -> work), enough to make inflections meet."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def embed(text: str, dimension: int = DIMENSION) -> list[float]:
    """The unit vector of ``text``: content words and their stems weigh 1, character trigrams 0.3."""
    vector = [0.0] * dimension
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS:
            continue
        for feature, weight in (("w:" + word, 1.0), ("s:" + _stem(word), 1.0)):
            index, sign = _bucket(feature, dimension)
            vector[index] += sign * weight
        padded = f"#{word}#"
        for i in range(len(padded) - 2):
            index, sign = _bucket("t:" + padded[i : i + 3], dimension)
            vector[index] += 0.3 * sign
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        # pgvector's cosine distance of a zero vector is NaN; give empty text a fixed direction.
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


class _Handler(BaseHTTPRequestHandler):
    server: _EmbeddingHTTPServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/info":
            self._reply(200, {"model_id": MODEL_ID, "model_dtype": "float32", "max_input_length": 8192,
                              "max_client_batch_size": 1024})
        elif self.path.rstrip("/") == "/health":
            self._reply(200, {})
        else:
            self._reply(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/embed":
            self._reply(404, {"error": f"no route {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            inputs = body["inputs"]
        except (ValueError, KeyError, TypeError):
            self._reply(422, {"error": 'expected JSON {"inputs": [str, ...]}'})
            return
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            self._reply(422, {"error": "inputs must be a string or a list of strings"})
            return
        hold = self.server.hold
        if hold is not None:
            hold.keep(texts)
        self.server.requests += 1
        self._reply(200, [embed(t, self.server.dimension) for t in texts])

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: Hindsight embeds on every retain and recall."""


class EmbeddingHold:
    """Keeps every ``/embed`` answer back until :meth:`release`: while it holds, the Hindsight request
    that asked (a recall embedding its query) stays in flight, which is how a test fills the server's
    admission lane without racing a clock. Each wait is bounded by ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.held: list[str] = []
        self._changed = threading.Condition()
        self._released = threading.Event()

    def keep(self, texts: list[str]) -> None:
        """Called by the handler thread: note the texts, then wait for the release (or the timeout)."""
        with self._changed:
            self.held.extend(texts)
            self._changed.notify_all()
        self._released.wait(self.timeout)

    def wait_for(self, arrived: Callable[[list[str]], bool]) -> bool:
        """Block until ``arrived(held texts)`` is true; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: arrived(self.held), self.timeout)

    def release(self) -> None:
        self._released.set()


class _EmbeddingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    dimension = DIMENSION
    requests = 0
    hold: EmbeddingHold | None = None


class EmbeddingServer:
    """The TEI-compatible endpoint on ``127.0.0.1`` and a free port, served from a daemon thread.

    Use as a context manager, or ``start()``/``stop()``. ``url`` is what goes into
    ``HINDSIGHT_API_EMBEDDINGS_TEI_URL``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, dimension: int = DIMENSION) -> None:
        self._address = (host, port)
        self._dimension = dimension
        self._httpd: _EmbeddingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise LocalServerError("EmbeddingServer is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> int:
        """How many ``/embed`` calls were answered (the e2e tests check Hindsight really used it)."""
        return self._httpd.requests if self._httpd else 0

    @contextmanager
    def hold(self, timeout: float = 60.0) -> Iterator[EmbeddingHold]:
        """Keep ``/embed`` answers back until the block ends or :meth:`EmbeddingHold.release` (tests only)."""
        if self._httpd is None:
            raise LocalServerError("EmbeddingServer is not running; call start() first")
        hold = EmbeddingHold(timeout)
        self._httpd.hold = hold
        try:
            yield hold
        finally:
            self._httpd.hold = None
            hold.release()

    def start(self) -> str:
        if self._httpd is None:
            httpd = _EmbeddingHTTPServer(self._address, _Handler)
            httpd.dimension = self._dimension
            self._httpd = httpd
            self._thread = threading.Thread(target=httpd.serve_forever, name="tei-embeddings", daemon=True)
            self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmbeddingServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

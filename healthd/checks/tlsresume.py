"""TLS session resumption towards the reals: the newest SSLSession per real and TLS policy, of bounded age.

Why: a full handshake costs an HTTPS check about 2 ms of CPU (certificate chain, key
exchange, signature check), a resumed one a fraction of that (bench/tls_results.md), so
resuming is what lets one core check thousands of HTTPS reals every second.

The rules, in one place:
- One session per (address, port, TlsPolicy): the policy carries the SNI/name and the
  verification settings, so a session is only ever offered to the real and under the
  settings it was verified with. The SSLContext it came from is kept beside it: a session
  can only be offered through that context, and a context rebuilt because a tls* file
  changed starts with full handshakes.
- Offered on the next connection (`offer`); after each connection whose handshake
  completed without a TLS error, replaced by that connection's newest session (`settle`).
  TLS 1.3 tickets arrive after the handshake, in the first records read: the session is
  taken when the exchange ends, after the response was read, so it is the one carrying a
  ticket. A failed or unfinished handshake (verification refused, reset, timeout, any TLS
  error) drops it: the next check starts afresh.
- A resumed handshake does not show the certificate again (the server sends none; Python's
  ssl reports the certificate of the session's full handshake). So a session is used for
  at most MAX_AGE seconds after the full handshake that verified it (resumptions do not
  extend this), and never past that certificate's notAfter: then the next check does a full
  handshake and verifies the certificate the real shows now. Servers that tie resumption
  to their certificate see a change on the very next check anyway: nginx (a new certificate
  changes its session context, so old tickets and cached sessions are refused, even with a
  kept ssl_session_ticket_key), and any server whose ticket keys are new after a restart.
- A real that refuses resumption is checked with full handshakes, as without this module:
  its session is offered, refused, and the new one stored.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Hashable

from healthd.checks import sslsession

MAX_AGE = 60.0  # seconds a verified certificate is trusted without being shown again
_SWEEP_EVERY = 60.0  # seconds between sweeps of sessions nobody used (reals gone after a reload)


class _Entry:
    __slots__ = ("context", "due", "session")

    def __init__(self, context: ssl.SSLContext, session: object, due: float) -> None:
        self.context = context
        self.session = session
        self.due = due  # monotonic time from which a full handshake is required


class TlsSessions:
    """The session to offer each real, for every TLS check of one daemon (not thread-safe: one event loop)."""

    def __init__(self, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._next_sweep = clock() + _SWEEP_EVERY
        self.full = 0  # full handshakes completed, and resumed ones (counted for tests and benches)
        self.resumed = 0

    def __len__(self) -> int:
        return len(self._entries)

    def offer(self, key: Hashable, context: ssl.SSLContext) -> object | None:
        """The session to resume with `context` (for sslsession.offer), or None for a full handshake."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.context is not context or self._clock() >= entry.due:
            del self._entries[key]
            return None
        return entry.session

    def settle(self, key: Hashable, context: ssl.SSLContext, tls: ssl.SSLObject | None) -> None:
        """After a connection: `tls` when its handshake completed without a TLS error, else None (drop)."""
        if tls is None:
            self._entries.pop(key, None)
            return
        session = sslsession.take(tls)
        now = self._clock()
        if tls.session_reused:
            self.resumed += 1
            entry = self._entries.get(key)
            if entry is not None and entry.context is context and session is not None:
                entry.session = session  # the newest ticket; the age still counts from the full handshake
            return  # no entry: it was swept or dropped meanwhile; the next check verifies afresh
        self.full += 1
        if session is None:
            self._entries.pop(key, None)
            return
        self._entries[key] = _Entry(context, session, now + self._trust_for(tls))
        if now >= self._next_sweep:
            self._sweep(now)

    def drop(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def _trust_for(self, tls: ssl.SSLObject) -> float:
        """Seconds to resume before verifying again: MAX_AGE, or less if the certificate expires sooner."""
        if tls.context.verify_mode == ssl.CERT_NONE:
            return self.max_age  # nothing was verified (tlsverify=none): expiry does not matter
        try:
            not_after = tls.getpeercert().get("notAfter")  # type: ignore[union-attr]
            left = ssl.cert_time_to_seconds(not_after) - time.time() if not_after else self.max_age
        except (ValueError, AttributeError):
            return self.max_age
        return max(0.0, min(self.max_age, left))

    def _sweep(self, now: float) -> None:
        """Forget sessions past their age: their real was not checked since (gone, or checked rarely)."""
        self._next_sweep = now + _SWEEP_EVERY
        for key in [k for k, e in self._entries.items() if now >= e.due]:
            del self._entries[key]

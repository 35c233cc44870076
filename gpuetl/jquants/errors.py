"""Typed J-Quants errors, one class per thing a user can do something about.

The API answers every failure with `{"message": "..."}` (API-NOTES §3.4); the status code alone does not
say what went wrong (403 means a bad key, a dataset outside the plan, or a wrong path). `from_response`
reads both and returns the class that tells the user what to do. Only `RateLimitError`, `ServerError` and
`TransportError` are worth retrying; a plan gate or a date outside the subscription window is not.
"""

from __future__ import annotations

import datetime as dt
import re

from gpuetl.jquants.spec import HISTORY_YEARS, PLANS, DatasetSpec

_WINDOW = re.compile(r"covers the following dates:\s*(\d{4}-\d{2}-\d{2})?\s*~\s*(\d{4}-\d{2}-\d{2})?")


class JQuantsError(Exception):
    """Base of every client error; carries the HTTP status (0 when none) and the server's `message`."""

    retryable = False

    def __init__(self, message: str, *, status: int = 0, server_message: str = "", url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message
        self.url = url


class MissingCredentialsError(JQuantsError):
    """No API key (V2) or mail/password (V1) in the environment or `.env`."""


class AuthError(JQuantsError):
    """The key or token was refused (401/403 "invalid or expired", V1 login failures)."""


class PlanError(JQuantsError):
    """The dataset is not part of the subscription (403 "not available on your subscription")."""


class WindowError(JQuantsError):
    """A date outside the plan's history window (400 "Your subscription covers the following dates")."""

    def __init__(self, message: str, *, window: tuple[dt.date | None, dt.date | None], status: int = 400,
                 server_message: str = "", url: str = "") -> None:
        super().__init__(message, status=status, server_message=server_message, url=url)
        self.window = window


class BadRequestError(JQuantsError):
    """Any other 4xx: a parameter combination the endpoint refuses, an unknown path."""


class TooLargeError(BadRequestError):
    """413: the answer would be too large; the caller must narrow the query (split a from/to range)."""


class RateLimitError(JQuantsError):
    """429: over the plan's requests per minute (the API sends no Retry-After)."""

    retryable = True


class ServerError(JQuantsError):
    """5xx: the server failed; retried with backoff."""

    retryable = True


class TransportError(JQuantsError):
    """No usable answer: timeout, dropped connection, truncated or undecodable body; retried."""

    retryable = True


def parse_window(message: str) -> tuple[dt.date | None, dt.date | None] | None:
    """The (first, last) dates of "Your subscription covers the following dates: A ~ B" (B may be empty)."""
    m = _WINDOW.search(message)
    if m is None:
        return None
    first, last = (dt.date.fromisoformat(g) if g else None for g in m.groups())
    return first, last


def from_response(
    status: int, server_message: str, *, url: str = "", dataset: DatasetSpec | None = None, plan: str = ""
) -> JQuantsError:
    """The typed error for a non-2xx answer, with a message that says what to do next."""
    what = f"{dataset.name} ({dataset.path})" if dataset else url
    said = f' (server said: "{server_message}")' if server_message else ""
    low = server_message.lower()

    def make(cls: type[JQuantsError], text: str) -> JQuantsError:
        return cls(text, status=status, server_message=server_message, url=url)

    if status == 429:
        return make(RateLimitError, f"{what}: rate limited (429){said}")
    if status >= 500:
        return make(ServerError, f"{what}: server error {status}{said}")
    if status == 413:
        return make(TooLargeError, f"{what}: response too large (413){said}")
    if status in (401, 403):
        if "subscription" in low:
            return make(PlanError, _plan_message(what, dataset, plan, server_message))
        if "does not exist" in low:
            return make(BadRequestError, f"{what}: no such endpoint{said}")
        return make(AuthError, f"{what}: the API refused the credentials ({status}){said}; check "
                               "JQUANTS_API_KEY (or JQUANTS_API_MAIL_ADDRESS / JQUANTS_API_PASSWORD for v1)")
    if status == 400:
        window = parse_window(server_message)
        if window is not None:
            return WindowError(_window_message(what, plan, window), window=window, status=status,
                               server_message=server_message, url=url)
    return make(BadRequestError, f"{what}: request refused ({status}){said}")


def plans_with(dataset: DatasetSpec) -> str:
    return ", ".join(dataset.plans) if dataset.plans else "none"


def _plan_message(what: str, dataset: DatasetSpec | None, plan: str, server_message: str) -> str:
    if "no active subscription" in server_message.lower():
        return f"{what}: this API key has no active J-Quants subscription"
    needs = f"; it needs one of: {plans_with(dataset)}" if dataset else ""
    if dataset and plan in dataset.plans:  # the configured plan should have it: the setting is wrong
        return (f"{what} is not available on your subscription, although the configured plan ({plan}) "
                f"includes it; set jquants.plan / --plan to your actual plan{needs}")
    yours = f" ({plan})" if plan else ""
    return f"{what} is not available on your plan{yours}{needs}"


def _window_message(what: str, plan: str, window: tuple[dt.date | None, dt.date | None]) -> str:
    first, last = (d.isoformat() if d else "" for d in window)
    yours = f"your {plan} plan" if plan else "your plan"
    higher = list(PLANS[PLANS.index(plan) + 1:]) if plan in PLANS else []
    hint = (f"; for more history: {', '.join(f'{p} ({HISTORY_YEARS[p]} years)' for p in higher)}"
            if higher else "")
    start_hint = f" (e.g. --start {first})" if first else ""
    return (f"{what}: {yours} covers {first} ~ {last}; ask for dates inside that window{start_hint}{hint}")

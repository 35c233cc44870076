"""Secrets come only from the environment, or a `.env` file in the working directory.

A tiny `.env` reader (KEY=VALUE lines, optional `export`, quotes, `#` comments) instead of a dependency.
Real environment variables win over the file, and the file never mutates `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from gpuetl.jquants.errors import MissingCredentialsError

API_KEY = "JQUANTS_API_KEY"
MAIL = "JQUANTS_API_MAIL_ADDRESS"
PASSWORD = "JQUANTS_API_PASSWORD"


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What the client authenticates with: an API key (V2) or a mail address and password (V1)."""

    api_key: str | None = None
    mail: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    def __repr__(self) -> str:  # never print a secret
        key = "***" if self.api_key else None
        return f"Credentials(api_key={key!r}, mail={self.mail!r})"


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE pairs of a .env text; later keys win; malformed lines are skipped."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            continue
        value = value.strip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            end = value.find(quote, 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def read_dotenv(path: str | Path = ".env") -> dict[str, str]:
    """The pairs of `path`, or {} when there is no such file."""
    try:
        return parse_dotenv(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def lookup(name: str, environ: Mapping[str, str] | None = None, dotenv: str | Path = ".env") -> str | None:
    """`name` from the environment, else from the .env file; empty values count as absent."""
    env = os.environ if environ is None else environ
    value = env.get(name) or read_dotenv(dotenv).get(name)
    return value or None


def credentials(
    api_version: Literal["v2", "v1"], environ: Mapping[str, str] | None = None, dotenv: str | Path = ".env"
) -> Credentials:
    """The credentials `api_version` needs, or a MissingCredentialsError naming the variables to set."""
    if api_version == "v2":
        key = lookup(API_KEY, environ, dotenv)
        if key:
            return Credentials(api_key=key)
        raise MissingCredentialsError(
            f"no J-Quants API key: set {API_KEY} in the environment or in ./.env (issue one at "
            "https://jpx-jquants.com/dashboard/api-keys), or run with --demo to fetch from the built-in "
            "fake server")
    mail, password = lookup(MAIL, environ, dotenv), lookup(PASSWORD, environ, dotenv)
    if mail and password:
        return Credentials(mail=mail, password=password)
    missing = " and ".join(n for n, v in ((MAIL, mail), (PASSWORD, password)) if not v)
    raise MissingCredentialsError(
        f"J-Quants V1 needs {missing}: set them in the environment or in ./.env, use --api-version v2 "
        f"with {API_KEY}, or run with --demo to fetch from the built-in fake server")

"""Every AWS call a request makes ends before its Lambda invocation does, with time left to answer.

A handler runs inside `invocation(context)`; its deadline is the invocation's end less `ANSWER_RESERVE`,
the time the handler keeps to answer (the 503 page, for instance) whatever its calls did.

botocore sets timeouts and retries per client, not per call. So each call goes through a client whose
timeouts fit what is left: its attempts share the time left (never more than the service's usual timeouts),
rounded down to half seconds, and the client for each such budget is built once and kept. Warm invocations
start with the same time left, so they reuse the same client. A retry is started only if its back-off and
its whole attempt still fit before the deadline; otherwise the last error is the call's answer.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from marketplace_saas.settings import MARKETPLACE_REGION

# Building the answer and flushing the metrics takes milliseconds; a second keeps clear of the timeout.
ANSWER_RESERVE_SECONDS = 1.0
STEP_SECONDS = 0.5  # budgets are whole half seconds: a handful of distinct clients, ever
# The largest back-off botocore's standard mode waits before retry n (1 s for throttling, doubling).
_MAX_BACKOFF_SECONDS = 20.0


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float
    attempts: int
    region: str | None = None

    @property
    def per_attempt(self) -> float:
        return self.connect + self.read


# Used whole when there is time for them. A buyer's browser waits for ResolveCustomer and GetEntitlements;
# DynamoDB and EventBridge answer in milliseconds, and botocore's own 60-second defaults would outlast any
# of these functions.
SERVICES: dict[str, Timeouts] = {
    "meteringmarketplace": Timeouts(3, 8, 3, MARKETPLACE_REGION),
    "marketplace-entitlement": Timeouts(3, 8, 3, MARKETPLACE_REGION),
    "dynamodb": Timeouts(1, 3, 3),
    "events": Timeouts(1, 3, 3),
}


class OutOfTime(BotoCoreError):
    """Too little of the invocation is left to make the call at all."""

    fmt = "too little of the invocation is left for a {service} call"


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class Deadline:
    at: float  # on `clock`
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def of(cls, context: LambdaContextLike, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + context.get_remaining_time_in_millis() / 1000 - ANSWER_RESERVE_SECONDS, clock)

    def seconds_left(self) -> float:
        return self.at - self.clock()


_current: ContextVar[Deadline | None] = ContextVar("deadline", default=None)


@contextmanager
def invocation(context: LambdaContextLike) -> Iterator[Deadline]:
    """The calls made inside share this invocation's deadline (outside one, the services' usual timeouts)."""
    deadline = Deadline.of(context)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def current() -> Deadline | None:
    return _current.get()


def budget(service: str) -> Timeouts:
    """The timeouts a call to `service` starting now gets."""
    usual = SERVICES[service]
    deadline = current()
    if deadline is None:
        return usual
    left = deadline.seconds_left()
    share = min(usual.per_attempt, left / usual.attempts)
    per_attempt = math.floor(share / STEP_SECONDS) * STEP_SECONDS
    if per_attempt < STEP_SECONDS:
        if left < STEP_SECONDS:
            raise OutOfTime(service=service)
        per_attempt = STEP_SECONDS  # one short attempt still fits
    if per_attempt >= usual.per_attempt:
        return usual
    ratio = per_attempt / usual.per_attempt
    return Timeouts(usual.connect * ratio, usual.read * ratio, usual.attempts, usual.region)


def _config(timeouts: Timeouts) -> Config:
    return Config(
        region_name=timeouts.region,
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        retries={"mode": "standard", "total_max_attempts": timeouts.attempts},
    )


def _stop_retrying_past_deadline(client: Any, timeouts: Timeouts) -> None:
    def needs_retry(attempts: int, **_: Any) -> bool | None:
        deadline = current()
        if deadline is None:
            return None  # botocore's standard retries decide
        backoff = min(2.0 ** (attempts - 1), _MAX_BACKOFF_SECONDS)
        if deadline.seconds_left() < backoff + timeouts.per_attempt:
            return False  # answered first, so botocore's own handler cannot ask for a retry
        return None

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"needs-retry.{service}", needs_retry)


class Clients:
    """boto3 clients (and DynamoDB tables) whose timeouts fit the current invocation, kept once built.

    None is built at import, so none is in a SnapStart snapshot: each execution environment resumed from one
    builds its own, at its first request. That is also when the `random` module, whose state botocore's
    retries draw their jitter from, is reseeded from the operating system: otherwise every environment
    resumed from one snapshot would draw the same "random" back-offs and retry in step.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # local mode's gateway serves requests on threads
        self._built: dict[tuple[str, Timeouts], Any] = {}

    def client(self, service: str) -> Any:
        """A client for one call: take it for each call (the budget shrinks as the invocation goes on)."""
        return self._get(service, budget(service))

    def table(self, name: str) -> Any:
        timeouts = budget("dynamodb")
        key = (f"table:{name}", timeouts)
        if key not in self._built:
            table = self._get("dynamodb", timeouts, resource=True).Table(name)
            with self._lock:
                self._built.setdefault(key, table)
        return self._built[key]

    def _get(self, service: str, timeouts: Timeouts, *, resource: bool = False) -> Any:
        key = (f"{service}+resource" if resource else service, timeouts)
        with self._lock:
            if key not in self._built:
                if not self._built:
                    random.seed()  # the first client of this execution environment (see the class)
                if resource:
                    built = boto3.resource(service, config=_config(timeouts))  # type: ignore[call-overload]
                    _stop_retrying_past_deadline(built.meta.client, timeouts)
                else:
                    built = boto3.client(service, config=_config(timeouts))  # type: ignore[call-overload]
                    _stop_retrying_past_deadline(built, timeouts)
                self._built[key] = built
            return self._built[key]


class BudgetedClient:
    """Looks like a boto3 client; each call goes through the client that fits the time left."""

    def __init__(self, clients: Clients, service: str) -> None:
        self._clients = clients
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients.client(self._service), name)


class BudgetedTable:
    """Looks like a boto3 DynamoDB Table; each call goes through the resource that fits the time left."""

    def __init__(self, clients: Clients, name: str) -> None:
        self._clients = clients
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._clients.table(self.name), attribute)

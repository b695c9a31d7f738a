"""One generic service app: gRPC server + health + reflection + metrics endpoint + graceful stop.

Each service builds its core (the encoder, the index engine, the search pipeline), says how to
register its servicer, and gets back a `ServiceApp` that is SERVING once started. Its
`__main__` is `run_service(...)`: settings from flags, environment and file, then run until
SIGINT/SIGTERM.
"""

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, runtime_checkable

import grpc

from imsearch.core.auth import Role
from imsearch.core.metrics import ServiceMetrics
from imsearch.core.runner import run_until_signal
from imsearch.core.server import RunningServer, create_server
from imsearch.core.service_settings import ServiceSettings
from imsearch.core.settings import settings_from_command_line


class Closeable(Protocol):
    def close(self) -> None: ...


@runtime_checkable
class HealthAware(Protocol):
    def health_problem(self) -> str | None:
        """None when the core and what it depends on work; else what is wrong, in a phrase."""
        ...


HEALTH_INTERVAL_S = 2.0


class HealthMonitor:
    """Keeps the gRPC health status true to the core's dependencies: NOT_SERVING (and a log
    line) while `health_problem()` names one, SERVING again once it is gone."""

    def __init__(self, name: str, core: HealthAware, server: RunningServer, interval_s: float) -> None:
        self._name, self._core, self._server = name, core, server
        self._stop = threading.Event()
        self.problem: str | None = None
        self.check()  # the first status is a checked one: no SERVING while a dependency is down
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name=f"{name}-health", daemon=True
        )
        self._thread.start()

    def check(self) -> None:
        try:
            problem = self._core.health_problem()
        except Exception as exc:  # a failing check is itself a problem
            problem = f"health check failed: {exc}"
        if problem != self.problem:
            if problem:
                log.warning("%s NOT_SERVING: %s", self._name, problem)
            else:
                log.info("%s SERVING again", self._name)
        self.problem = problem
        self._server.set_serving(problem is None)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


log = logging.getLogger(__name__)
C = TypeVar("C", bound=Closeable)
S = TypeVar("S", bound=ServiceSettings)


@dataclass
class ServiceApp(Generic[C]):
    """A started service. `core` is what its servicer serves; stopping closes it after the server."""

    name: str
    server: RunningServer
    core: C
    metrics: ServiceMetrics
    metrics_port: int | None  # None: no /metrics endpoint
    health: HealthMonitor | None = None
    http_url: str | None = None  # the HTTP front, where the service has one
    # Run first on stop (a front that calls this server goes before it).
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    stopped: bool = False

    @property
    def address(self) -> str:
        return self.server.address

    def stop(self, grace: float | None = 2.0) -> None:
        """Stops the service; a second call does nothing."""
        if self.stopped:
            return
        self.stopped = True
        for stop in self.on_stop:
            stop()
        if self.health is not None:
            self.health.stop()
        self.server.stop(grace)  # NOT_SERVING first, then in-flight calls get `grace` seconds
        self.core.close()


def start_service(
    name: str,
    core: C,
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    settings: ServiceSettings,
    metrics: ServiceMetrics,
    method_roles: Mapping[str, Role] | None = None,
    loopback_port: bool = False,
    extra_admin_token: str | None = None,
) -> ServiceApp[C]:
    """Serves `core` on `settings.listen` (port 0: a free one) within its limits, and /metrics
    on `metrics_host`:`metrics_port` (0: a free port, -1: none); marks the service SERVING.
    `method_roles` says which role each method needs (others: admin). `loopback_port` and
    `extra_admin_token` are for a front in the same process (ServiceSettings.server_security,
    create_server). If anything fails, `core` is closed."""
    metrics_port, metrics_host = settings.metrics_port, settings.metrics_host
    try:
        security = settings.server_security(method_roles or {}, extra_admin_token)
        server = create_server(
            register,
            service_names,
            settings.listen,
            metrics,
            settings.server_limits(),
            security,
            loopback_port,
        )
    except BaseException:
        core.close()
        raise
    try:
        bound_metrics_port = metrics.serve_http(metrics_port, metrics_host) if metrics_port >= 0 else None
    except BaseException:
        server.stop(0)
        core.close()
        raise
    monitor = None
    if isinstance(core, HealthAware):
        monitor = HealthMonitor(name, core, server, settings.health_interval_s)  # sets the status
    else:
        server.set_serving(True)
    return ServiceApp(name, server, core, metrics, bound_metrics_port, monitor)


def run_service(
    name: str, settings_cls: type[S], start: Callable[[S], ServiceApp[C]], argv: Sequence[str]
) -> None:
    """`python -m services.<name>`: reads settings (section `[name]` of the TOML file), starts the
    service and serves until SIGINT or SIGTERM."""
    app = start(settings_from_command_line(settings_cls, name, argv))
    run_until_signal(f"{name} listening on {app.address}", app.stop)

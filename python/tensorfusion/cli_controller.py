"""`tensor-fusion controller`: the operator process (the chart's controller Deployment).

Its flags are read as Go's `flag` package reads upstream's (`controller.flags`), not by
argparse: the subcommand hands every argument after it over as it is."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from tensorfusion.controller.control_plane import Controller
from tensorfusion.controller.flags import USAGE, HelpRequested, parse_flags
from tensorfusion.errors import ConfigError, TensorFusionError
from tensorfusion.operator.leader_loops import leader_loops
from tensorfusion.server.metrics_listener import metrics_app
from tensorfusion.server.runner import serve, start_in_thread
from tensorfusion.webhook.admission_review import WEBHOOK_PATH
from tensorfusion.webhook.serving_certs import DEFAULT_CERT_DIR

log = logging.getLogger("tensorfusion.controller")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# No flag starts with this, so argparse takes every argument (one dash or two) as a value.
_NO_PREFIX = "\x00"


def _say(message: str) -> None:
    print(f"tensor-fusion controller: {message}", file=sys.stderr, flush=True)


def _controller(args: argparse.Namespace) -> int:
    try:
        flags = parse_flags(args.flags)
    except HelpRequested:
        print(USAGE, end="")
        return EXIT_OK
    except ConfigError as exc:
        _say(str(exc))
        return EXIT_USAGE
    for flag in flags.not_implemented:
        _say(f"warning: {flag} is not implemented yet; ignored")
    controller = Controller(flags, loops=leader_loops(flags))
    try:
        cert = controller.webhook_cert()  # refused before anything starts
        controller.start()  # inside the try: a signal while it starts still stops it
        app = controller.api_app()
        with contextlib.ExitStack() as listeners:
            probes = listeners.enter_context(
                start_in_thread(controller.probes_app(), *flags.health_probe_bind_address)
            )
            _say(f"health probes on {probes.url}/healthz and {probes.url}/readyz")
            if cert is None:
                _say(
                    f"warning: no pod webhook: {DEFAULT_CERT_DIR} does not exist "
                    "(see -webhook-cert-dir)"
                )
            else:
                webhook = listeners.enter_context(
                    start_in_thread(
                        controller.webhook_app(), "0.0.0.0", flags.webhook_port, tls=cert
                    )
                )
                _say(f"pod webhook on {webhook.url}{WEBHOOK_PATH}")
            if flags.metrics_bind_address is not None:
                metrics = listeners.enter_context(
                    start_in_thread(
                        metrics_app(app.state.metrics_registry), *flags.metrics_bind_address
                    )
                )
                _say(f"Prometheus metrics on {metrics.url}/metrics")
            serve(
                app,
                *flags.api_bind_address,
                on_started=lambda url: _say(
                    f"management API on {url} (holder {controller.holder})"
                ),
            )
    except ConfigError as exc:
        _say(str(exc))
        return EXIT_USAGE
    except TensorFusionError as exc:
        _say(str(exc))
        return EXIT_FAILED
    finally:
        _say("stopping")
        controller.stop()
    return EXIT_OK


def add_controller_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    controller = commands.add_parser(
        "controller",
        help="run the operator in a Kubernetes cluster (`controller -help` for its flags)",
        add_help=False,
        prefix_chars=_NO_PREFIX,
    )
    controller.add_argument("flags", nargs=argparse.REMAINDER)
    controller.set_defaults(run=_controller)

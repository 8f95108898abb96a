"""The webhook's serving certificate: `tls.crt` and `tls.key` in one directory, as
controller-runtime reads them (the chart mounts the webhook Secret there)."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tensorfusion.errors import ConfigError

DEFAULT_CERT_DIR: Final = Path(tempfile.gettempdir()) / "k8s-webhook-server" / "serving-certs"
CERT_FILE: Final = "tls.crt"
KEY_FILE: Final = "tls.key"


@dataclass(frozen=True)
class ServingCert:
    cert_file: Path
    key_file: Path


def serving_cert(directory: Path, setting: str) -> ServingCert:
    """The pair in `directory`, loaded once here so that a missing, unreadable or mismatched
    one is a ConfigError naming `setting` before anything listens."""
    cert = ServingCert(directory / CERT_FILE, directory / KEY_FILE)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            cert.cert_file, cert.key_file
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            setting, f"needs {CERT_FILE} and {KEY_FILE} in {directory}: {exc}"
        ) from exc
    return cert

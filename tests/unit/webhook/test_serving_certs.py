"""The webhook's serving certificate, read from a directory as controller-runtime reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from tensorfusion.errors import ConfigError
from tensorfusion.webhook.serving_certs import CERT_FILE, KEY_FILE, serving_cert

FLAG = "--webhook-cert-dir"


def write_cert(directory: Path, ca: trustme.CA) -> None:
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(directory / CERT_FILE))
    issued.private_key_pem.write_to_path(str(directory / KEY_FILE))


def test_a_pair_in_the_directory_is_taken(tmp_path: Path) -> None:
    write_cert(tmp_path, trustme.CA())
    cert = serving_cert(tmp_path, FLAG)
    assert (cert.cert_file, cert.key_file) == (tmp_path / CERT_FILE, tmp_path / KEY_FILE)


def test_a_missing_directory_is_refused_naming_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        serving_cert(tmp_path / "absent", FLAG)
    assert caught.value.field == FLAG
    assert CERT_FILE in caught.value.message


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    write_cert(tmp_path, trustme.CA())
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(tmp_path / KEY_FILE))
    with pytest.raises(ConfigError, match=FLAG):
        serving_cert(tmp_path, FLAG)

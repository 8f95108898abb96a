"""Alert rules from the dynamic config file (`-dynamic-config`), re-read when it changes.

A change is noticed by modification time and size and confirmed by a content hash, so a
touched but identical file costs one read. A new version that does not parse or validate
is logged and ignored: the rules in force stay until a good version arrives.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from tensorfusion.alert.evaluator import RuleTemplates
from tensorfusion.api.dynamic_config import DynamicConfig
from tensorfusion.api.model_file import parse_model
from tensorfusion.errors import ConfigError

log = logging.getLogger(__name__)


def parse_dynamic_config(text: str, source: str) -> DynamicConfig:
    """Validate a dynamic config document, templates included; errors name the field."""
    config = parse_model(DynamicConfig, text, source, "metricsTTL, metricsFormat, alertRules")
    for rule in config.alert_rules:
        RuleTemplates.of(rule)
    return config


class RuleSource:
    """The current dynamic config of `path`; `poll()` picks up a valid new version."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._digest = b""
        text = self._read()
        if text is None:
            raise ConfigError(str(self.path), "cannot read the dynamic config file")
        self.config = parse_dynamic_config(text, str(self.path))
        self._digest = hashlib.sha256(text.encode()).digest()

    def poll(self) -> bool:
        """Re-read the file if it changed; True when a new valid config is now in force."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            log.warning(
                "dynamic config %s unreadable, keeping the current rules: %s", self.path, exc
            )
            return False
        if (stat.st_mtime_ns, stat.st_size) == self._stamp:
            return False
        text = self._read()
        if text is None:
            return False
        digest = hashlib.sha256(text.encode()).digest()
        if digest == self._digest:
            return False
        self._digest = digest  # a bad version is reported once, not on every poll
        try:
            self.config = parse_dynamic_config(text, str(self.path))
        except ConfigError as exc:
            log.error("dynamic config rejected, keeping the current rules: %s", exc)
            return False
        log.info("dynamic config reloaded: %d alert rules", len(self.config.alert_rules))
        return True

    def _read(self) -> str | None:
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read dynamic config %s: %s", self.path, exc)
            return None
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        return text

"""Leader election through the cluster store's lease: only the leader schedules, evaluates
alerts and writes allocation metrics. Embedded mode runs one replica, through the same code."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tensorfusion.store.interface import ClusterStore

log = logging.getLogger(__name__)

LEASE_NAME = "tensor-fusion-controller"


class LeaderElection:
    """Holds `is_leader` true while this holder has the lease. The lease lasts `duration_s`
    and is renewed every `renew_every_s`, so a leader that stops renewing (hung, killed) is
    replaced within `duration_s`."""

    def __init__(
        self,
        store: ClusterStore,
        holder: str,
        *,
        name: str = LEASE_NAME,
        duration_s: float = 15.0,
        renew_every_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < renew_every_s < duration_s:
            raise ValueError("renew_every_s must be positive and shorter than duration_s")
        self.store = store
        self.holder = holder
        self.name = name
        self.duration_s = duration_s
        self.renew_every_s = renew_every_s
        self.clock = clock
        self.is_leader = threading.Event()
        self.lost = threading.Event()
        """Set when leadership ends (lost or released); cleared when it is gained again."""
        self.lost.set()

    def step(self) -> bool:
        """Acquire or renew once; returns whether this holder leads now."""
        now = self.clock()
        try:
            if self.is_leader.is_set():
                leading = self.store.renew_lease(self.name, self.holder, self.duration_s, now)
            else:
                leading = self.store.acquire_lease(self.name, self.holder, self.duration_s, now)
        except Exception as exc:  # a store hiccup must not kill the election thread
            log.warning("lease %s: %s", self.name, exc)
            leading = False
        self._set(leading)
        return leading

    def run(self, stop: threading.Event) -> None:
        """Step until `stop`; a follower retries at the renew interval too."""
        while not stop.is_set():
            self.step()
            stop.wait(self.renew_every_s)

    def release(self) -> None:
        """Give the lease up (on shutdown), so that another holder leads without waiting for
        it to expire; leadership ends even if the store cannot be reached."""
        if not self.is_leader.is_set():
            return
        try:
            self.store.release_lease(self.name, self.holder)
            log.info("%s released the lease %s", self.holder, self.name)
        finally:
            self._step_down()

    def _set(self, leading: bool) -> None:
        if leading and not self.is_leader.is_set():
            log.info("%s leads (lease %s)", self.holder, self.name)
            self.lost.clear()
            self.is_leader.set()
        elif not leading and self.is_leader.is_set():
            # Taken by another holder, expired while this one could not renew, or the store
            # failed: not a shutdown, which goes through `release`.
            log.warning("%s lost the lease %s", self.holder, self.name)
            self._step_down()

    def _step_down(self) -> None:
        self.is_leader.clear()
        self.lost.set()

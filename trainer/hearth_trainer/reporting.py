"""Progress reporting: a JSON-lines file, and the FineTuningJob's status in Kubernetes.

Every reporter swallows its own failures (logs them): losing a progress update must
never cost a training run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "hearth.dev", "v1alpha1", "finetuningjobs"
ENV_NAMESPACE, ENV_NAME = "HEARTH_JOB_NAMESPACE", "HEARTH_JOB_NAME"


class Reporter(Protocol):
    def report(self, progress: dict[str, Any], final: bool = False) -> None:
        """``progress`` uses JobProgress field names (percent, epoch, step, totalSteps,
        trainLoss, evalLoss, inputTokens). ``final`` updates must not be throttled."""


class FileReporter:
    """Appends one JSON object per update to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def report(self, progress: dict[str, Any], final: bool = False) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"time": time.time(), **progress}) + "\n")
        except OSError as exc:
            log.warning("progress file %s not written: %s", self.path, exc)


class KubernetesReporter:
    """Merge-patches ``status.jobProgress`` of the FineTuningJob through the status
    subresource. At most one patch per ``min_interval_s`` (the API server is shared),
    except the first and final updates, which always go out.

    ``clock`` is a monotonic clock in seconds; tests inject their own. Its zero is
    arbitrary (``time.monotonic`` starts near the machine's boot), so "no report yet"
    is ``None``, never a zero timestamp.
    """

    def __init__(
        self,
        namespace: str,
        name: str,
        api: Any = None,
        min_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.min_interval_s = min_interval_s
        self._api = api
        self._clock = clock
        self._last: float | None = None
        self._failures = 0

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]  # or $KUBECONFIG
            self._api = client.CustomObjectsApi()
        return self._api

    def report(self, progress: dict[str, Any], final: bool = False) -> None:
        now = self._clock()
        throttled = self._last is not None and now - self._last < self.min_interval_s
        if throttled and not final:
            return
        self._last = now
        body = {"status": {"jobProgress": progress}}
        try:
            self._client().patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                body,
                _content_type="application/merge-patch+json",
            )
            self._failures = 0
        except Exception as exc:  # any failure: log, keep training
            self._failures += 1
            # Log the first failures and then every 20th, so a dead API does not flood logs.
            if self._failures <= 3 or self._failures % 20 == 0:
                log.warning(
                    "could not patch FineTuningJob %s/%s status (%d failures): %s",
                    self.namespace,
                    self.name,
                    self._failures,
                    exc,
                )


class MultiReporter:
    def __init__(self, reporters: Sequence[Reporter]) -> None:
        self.reporters = list(reporters)

    def report(self, progress: dict[str, Any], final: bool = False) -> None:
        for r in self.reporters:
            try:
                r.report(progress, final)
            except Exception as exc:  # a custom reporter misbehaving must not stop training
                log.warning("reporter %s failed: %s", type(r).__name__, exc)


def default_reporters(progress_file: Path | None) -> MultiReporter:
    """File reporter when a path is given; Kubernetes reporter when the job env is set."""
    reporters: list[Reporter] = []
    if progress_file is not None:
        reporters.append(FileReporter(progress_file))
    ns, name = os.environ.get(ENV_NAMESPACE), os.environ.get(ENV_NAME)
    if ns and name:
        reporters.append(KubernetesReporter(ns, name))
    return MultiReporter(reporters)

"""Container probes (httpGet, tcpSocket, exec) with the kubelet's timing rules.

A :class:`ProbeState` counts consecutive successes and failures and turns them
into a verdict exactly as the kubelet does: `initialDelaySeconds` before the first
check, one check every `periodSeconds`, `failureThreshold` consecutive failures to
fail and `successThreshold` consecutive successes to succeed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp


@dataclasses.dataclass
class ProbeSpec:
    raw: dict[str, Any]
    # Tests may cap the probe period (and initial delay) to wait less for long-period probes;
    # thresholds are kept, so the verdicts are the same, only sooner.
    period_cap: float | None = None

    def _capped(self, value: float) -> float:
        return min(value, self.period_cap) if self.period_cap is not None else value

    @property
    def initial_delay(self) -> float:
        return self._capped(float(self.raw.get("initialDelaySeconds", 0)))

    @property
    def period(self) -> float:
        return self._capped(float(self.raw.get("periodSeconds", 10)))

    @property
    def timeout(self) -> float:
        return float(self.raw.get("timeoutSeconds", 1))

    @property
    def failure_threshold(self) -> int:
        return int(self.raw.get("failureThreshold", 3))

    @property
    def success_threshold(self) -> int:
        return int(self.raw.get("successThreshold", 1))


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """A probe port is a number or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for item in container.get("ports") or []:
        if item.get("name") == port:
            return int(item["containerPort"])
    raise ValueError(f"unknown named port {port!r}")


async def check(
    spec: ProbeSpec,
    container: dict[str, Any],
    pod_ip: str,
    session: aiohttp.ClientSession,
    env: dict[str, str],
) -> bool:
    """One probe attempt; any error counts as a failure (as for the kubelet)."""
    raw = spec.raw
    try:
        if "httpGet" in raw:
            http = raw["httpGet"]
            host = http.get("host") or pod_ip
            port = resolve_port(http.get("port"), container)
            scheme = str(http.get("scheme", "HTTP")).lower()
            path = http.get("path", "/")
            headers = {h["name"]: h["value"] for h in http.get("httpHeaders") or []}
            timeout = aiohttp.ClientTimeout(total=spec.timeout)
            async with session.get(
                f"{scheme}://{host}:{port}{path}", headers=headers, timeout=timeout, ssl=False
            ) as response:
                return 200 <= response.status < 400
        if "tcpSocket" in raw:
            tcp = raw["tcpSocket"]
            host = tcp.get("host") or pod_ip
            port = resolve_port(tcp.get("port"), container)
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), spec.timeout)
            writer.close()
            await writer.wait_closed()
            return True
        if "exec" in raw:
            proc = await asyncio.create_subprocess_exec(
                *raw["exec"]["command"],
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                return await asyncio.wait_for(proc.wait(), spec.timeout) == 0
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False
    except (OSError, TimeoutError, aiohttp.ClientError, ValueError):
        return False
    return False


class ProbeState:
    """The verdict of one probe over time: None (undecided), True or False."""

    def __init__(self, spec: ProbeSpec) -> None:
        self.spec = spec
        self.successes = 0
        self.failures = 0
        self.verdict: bool | None = None

    def record(self, ok: bool) -> bool | None:
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.spec.success_threshold:
                self.verdict = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.spec.failure_threshold:
                self.verdict = False
        return self.verdict

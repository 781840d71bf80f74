"""KEDA's and the HPA's arithmetic over a rendered ScaledObject, for the tests that
check the chart's scaling against a real Redis and a real web tier (there is no
Kubernetes here). As documented by both projects:

- KEDA polls each trigger every `pollingInterval`. A trigger is active when its
  value is above its activation threshold (`activationListLength`,
  `activationTargetValue`). With `minReplicaCount` 0, KEDA takes the workload from
  0 to 1 when any trigger is active (and the HPA on from there, applied here in the
  same poll), and back to 0 once none has been active for `cooldownPeriod`.
- Above zero the HPA decides. Each trigger is an `AverageValue` metric, so it asks
  for ceil(value / target) replicas; the HPA takes the largest, leaves the count
  alone within its 10 % tolerance, clamps it to [max(min, 1), max], scales up at
  once, and scales down only to the highest recommendation of the last
  `stabilizationWindowSeconds`, by at most the `Pods` policy's count per period.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import requests

HPA_TOLERANCE = 0.1
HPA_DEFAULT_STABILIZATION = 300


@dataclass(frozen=True)
class Trigger:
    kind: str
    target: float
    activation: float
    metadata: dict

    @classmethod
    def from_spec(cls, trigger: dict) -> Trigger:
        meta = trigger["metadata"]
        # A list's length, on one Redis or on the primary the sentinels name: the same
        # arithmetic either way (the reader holds a client of the primary).
        if trigger["type"] in ("redis", "redis-sentinel"):
            return cls("redis", float(meta["listLength"]),
                       float(meta.get("activationListLength", 0)), meta)
        if trigger["type"] == "metrics-api":
            return cls("metrics-api", float(meta["targetValue"]),
                       float(meta.get("activationTargetValue", 0)), meta)
        raise ValueError(f"no arithmetic for trigger type {trigger['type']}")


def trigger_reader(client: redis.Redis, service_urls: dict[str, str]) -> Callable[[Trigger], float]:
    """Reads a trigger's value as KEDA would: LLEN of a redis trigger's list; the
    number at `valueLocation` of a metrics-api trigger's JSON, fetched from the URL
    the chart names mapped to where that service listens here (`service_urls`:
    rendered base URL -> local base URL)."""

    def read(trigger: Trigger) -> float:
        if trigger.kind == "redis":
            return float(client.llen(trigger.metadata["listName"]))
        url = trigger.metadata["url"]
        for rendered, local in service_urls.items():
            url = url.replace(rendered, local)
        value = requests.get(url, timeout=5).json()
        for part in trigger.metadata["valueLocation"].split("."):
            value = value[part]
        return float(value)

    return read


@dataclass
class ScaledObject:
    """The spec's numbers, and what KEDA and the HPA make of trigger values over time."""

    spec: dict
    triggers: list[Trigger] = field(init=False)
    _history: deque = field(init=False, default_factory=deque)
    _last_active: float | None = field(init=False, default=None)
    _last_scale_down: float = field(init=False, default=-math.inf)

    def __post_init__(self):
        self.triggers = [Trigger.from_spec(t) for t in self.spec["triggers"]]

    @property
    def min_replicas(self) -> int:
        return int(self.spec.get("minReplicaCount", 0))

    @property
    def max_replicas(self) -> int:
        return int(self.spec["maxReplicaCount"])

    @property
    def polling_interval(self) -> float:
        return float(self.spec.get("pollingInterval", 30))

    @property
    def cooldown(self) -> float:
        return float(self.spec.get("cooldownPeriod", 300))

    def _scale_down(self) -> dict:
        behavior = (self.spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
                    .get("behavior", {}).get("scaleDown", {}))
        return behavior

    def hpa_wants(self, values: list[float], current: int) -> int:
        """The HPA's raw recommendation for these values (no stabilization)."""
        floor = max(self.min_replicas, 1)
        wants = []
        for trigger, value in zip(self.triggers, values, strict=True):
            ratio = value / (trigger.target * max(current, 1))
            if current > 0 and abs(ratio - 1) <= HPA_TOLERANCE:
                wants.append(current)
            else:
                wants.append(math.ceil(value / trigger.target))
        return min(self.max_replicas, max(floor, *wants))

    def active(self, values: list[float]) -> bool:
        return any(value > trigger.activation
                   for trigger, value in zip(self.triggers, values, strict=True))

    def decide(self, values: list[float], current: int, now: float) -> int:
        """Replicas after one poll at `now` with these trigger values."""
        if self.active(values):
            self._last_active = now
        if self.min_replicas == 0:
            idle_for = math.inf if self._last_active is None else now - self._last_active
            if current == 0:
                # KEDA takes it to 1; the HPA, now in charge, acts on the same values
                # (its own sync loop, compressed here as every interval is).
                return self.hpa_wants(values, 1) if self.active(values) else 0
            if not self.active(values) and idle_for >= self.cooldown:
                self._history.clear()
                return 0
        wants = self.hpa_wants(values, current)
        window = float(self._scale_down().get("stabilizationWindowSeconds",
                                              HPA_DEFAULT_STABILIZATION))
        self._history.append((now, wants))
        while self._history and self._history[0][0] < now - window:
            self._history.popleft()
        if wants >= current:
            return wants
        stable = max(w for _, w in self._history)  # the highest of the window
        if stable >= current:
            return current
        for policy in self._scale_down().get("policies", []):
            if policy["type"] == "Pods":
                if now - self._last_scale_down < float(policy["periodSeconds"]):
                    return current
                stable = max(stable, current - int(policy["value"]))
        self._last_scale_down = now
        return stable


def replicas_for_values(spec: dict, values: list[float]) -> int:
    """What a steady load of these trigger values settles at (from rest)."""
    scaled = ScaledObject(json.loads(json.dumps(spec)))
    if scaled.min_replicas == 0 and not scaled.active(values):
        return 0
    return scaled.hpa_wants(values, 0)

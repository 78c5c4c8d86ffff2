# A typed configuration with dataclasses and typing, as builders coming from other Python projects write.
from dataclasses import dataclass, field
from typing import Dict, List


@dataclass(frozen=True)
class Weights:
    centre: float = 1.0
    speed: float = 1.0
    progress: float = 2.0


@dataclass
class Tracker:
    weights: Weights = field(default_factory=Weights)
    progress_seen: List[float] = field(default_factory=list)
    counters: Dict[str, int] = field(default_factory=lambda: {"off": 0, "on": 0})

    def score(self, params: dict) -> float:
        if params["steps"] <= 2:
            self.progress_seen.clear()
        self.progress_seen.append(params["progress"])
        self.counters["on" if params["all_wheels_on_track"] else "off"] += 1
        centre = 1 - min(params["distance_from_center"] / (params["track_width"] / 2), 1)
        speed = params["speed"] / 4.0
        gained = self.progress_seen[-1] - self.progress_seen[0] if len(self.progress_seen) > 1 else 0.0
        w = self.weights
        return w.centre * centre + w.speed * speed + w.progress * max(gained, 0.0) / 100


TRACKER = Tracker()


def reward_function(params: dict) -> float:
    if not params["all_wheels_on_track"]:
        return 1e-3
    return float(TRACKER.score(params))

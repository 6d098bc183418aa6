"""Grid expansion: a search space's ``configs:`` and product ``grid:`` become its list of configurations.

A grid is counted from the lengths of its lists before anything is expanded, so a file describing
millions of configurations is refused at once, with its size. Combinations that do not fit the tasks
are skipped with a note; explicit configurations that do not fit are errors.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from sweeper.noise.kinds import KINDS
from sweeper.noise.spec import (
    DECAYS,
    DEFAULT_GAMMA,
    RELATIVE_RULE,
    SCHEDULES,
    NoiseConfig,
    NoiseSpec,
    default_kind,
    make_config,
    out_of_range,
    probability_kinds,
    relative_fits,
    unfit_site,
)
from sweeper.space.reading import _at, _length, _s, _show, _Values
from sweeper.tasks.spec import TaskSpec

_NOISE_KEYS = ("placement", "kind", "std", "schedule", "gamma", "std_min", "relative")
_STD_MIN_RULE = "the size a decay ends at applies only with schedules linear and cosine"
#: One noise site before it becomes a NoiseSpec: (placement, kind, std, schedule, gamma, std_min, relative).
_Site = tuple[str, str, float, str, float, float, bool]


class _GridReader(_Values):
    """Reads ``search.configs`` and ``search.grid`` into configurations."""

    def grid_size(self, raw: dict, limit: int) -> None:
        """Refuse a grid of more than ``limit`` configurations, counted from its lists' lengths alone.

        The count is of combinations before any is skipped or dropped as a duplicate (the most the
        grid can hold), so that a grid of millions is refused without being expanded or validated.
        """
        parts, total = [], 1  # the baseline
        if isinstance(raw.get("configs"), list):
            total += len(raw["configs"])
            parts.append(f"search.configs: {len(raw['configs']):,} listed")
        blocks = raw.get("grid")
        blocks = list(enumerate(blocks)) if isinstance(blocks, list) else [(None, blocks)]
        for i, block in blocks:
            if not isinstance(block, dict):
                continue  # grid() says what is wrong with it
            size = {key: _length(block.get(key)) for key in ("placement", "kind", "std")}
            schedules = block.get("schedule", "constant")
            schedules = schedules if isinstance(schedules, list) else [schedules]
            gammas, std_mins = _length(block.get("gamma")), _length(block.get("std_min"))
            annealed = sum(s == "annealed" or (isinstance(s, list) and "annealed" in s) for s in schedules)
            decays = sum(s in DECAYS or (isinstance(s, list) and bool(set(s) & set(DECAYS))) for s in schedules)
            size["schedule"] = len(schedules) + annealed * (gammas - 1) + decays * (std_mins - 1)
            size["relative"] = _length(block.get("relative"))
            count = math.prod(size.values())
            total += count
            axes = " x ".join(f"{n:,} {key}s" for key, n in size.items() if n != 1) or "1 combination"
            extra = [
                key for key, more in (("gamma", annealed and gammas > 1), ("std_min", decays and std_mins > 1)) if more
            ]
            if extra:
                axes = axes.replace("schedules", f"schedule and {' and '.join(extra)} choices")
            parts.append(f"{'search.grid' if i is None else _at('search.grid', i)}: {axes}")
        if total > limit:
            self.fail(
                "search",
                f"{total:,} configurations ({'; '.join(parts)}; and the baseline) are more than "
                f"allowed; allowed: at most {limit:,} configurations (search.max_configurations; raise it "
                "to run a larger sweep)",
            )

    def grid(self, raw: dict, tasks: dict[str, TaskSpec]) -> tuple[tuple[NoiseConfig, ...], tuple[str, ...]]:
        """The configurations of ``configs:`` then of ``grid:``; the baseline first, duplicates dropped."""
        explicit, from_grid, skipped = [], [], Counter()
        if "configs" in raw:
            if not isinstance(raw["configs"], list) or not raw["configs"]:
                got = _show(raw["configs"])
                self.fail("search.configs", f"expected a non-empty list of configurations; got {got}")
            explicit = [self.config(v, _at("search.configs", i), tasks) for i, v in enumerate(raw["configs"])]
        if "grid" in raw:
            if raw["grid"] == []:
                self.fail("search.grid", "an empty list; give a product grid (a mapping) or a list of them")
            if isinstance(raw["grid"], list):
                blocks = [(block, _at("search.grid", i)) for i, block in enumerate(raw["grid"])]
            else:
                blocks = [(raw["grid"], "search.grid")]
            for block, path in blocks:
                combinations = list(self.product(block, path, tasks))
                reasons = [reason for _, reason in combinations if reason]
                if len(reasons) == len(combinations):
                    self.fail(path, f"every combination is skipped, e.g. {reasons[0]}")
                skipped.update(reasons)
                from_grid += [config for config, reason in combinations if not reason]

        candidates = [(), *explicit, *from_grid]
        configs = tuple(dict.fromkeys(candidates))
        notes = [f"skipped {n} combination{_s(n)}: {reason}" for reason, n in skipped.items()]
        zero = from_grid.count(())
        if zero:
            notes.append(f"dropped {zero} combination{_s(zero)} with std 0: the baseline")
        duplicates = len(candidates) - len(configs) - (candidates.count(()) - 1)
        if duplicates:
            notes.append(f"dropped {duplicates} duplicate configuration{_s(duplicates)}")
        return configs, tuple(notes)

    def config(self, value: Any, path: str, tasks: dict[str, TaskSpec]) -> NoiseConfig:
        """One explicit configuration; anything that does not fit the tasks is an error."""
        raw = self.mapping(value, path, _NOISE_KEYS, required=("placement",))
        placements = self.placement(raw["placement"], _at(path, "placement"), allow_baseline=True)
        if not placements:
            for key in raw:
                if key != "placement":
                    self.fail(_at(path, key), "placement 'none' (the baseline) takes no other keys")
            return ()
        if raw.get("std") is None:
            probability = " and ".join(probability_kinds())
            self.fail(_at(path, "std"), f"required key missing; give the noise size (for {probability} a probability)")
        n = len(placements)
        if raw.get("kind") is None:
            kinds = tuple(default_kind(p, tasks) for p in placements)
        else:
            kinds = self.per_site(raw["kind"], _at(path, "kind"), n, lambda v, p: self.choice(v, p, KINDS))
        stds = self.per_site(raw["std"], _at(path, "std"), n, self.std)
        schedules = self.per_site(
            raw.get("schedule", "constant"),
            _at(path, "schedule"),
            n,
            lambda v, p: self.choice(v, p, SCHEDULES),
        )
        if "gamma" in raw and "annealed" not in schedules:
            self.fail(_at(path, "gamma"), "the annealing exponent applies only with schedule annealed")
        gammas = self.per_site(raw.get("gamma", DEFAULT_GAMMA), _at(path, "gamma"), n, self.gamma)
        if "std_min" in raw and not set(schedules) & set(DECAYS):
            self.fail(_at(path, "std_min"), _STD_MIN_RULE)
        std_mins = self.per_site(raw.get("std_min", 0.0), _at(path, "std_min"), n, self.std_min)
        relatives = self.per_site(raw.get("relative", False), _at(path, "relative"), n, self.flag)
        sites = list(zip(placements, kinds, stds, schedules, gammas, std_mins, relatives))
        reason = _unfit(sites, tasks)
        if reason:
            self.fail(path, reason)
        return _config(sites)

    def per_site(self, value: Any, path: str, n: int, item: Callable[[Any, str], Any]) -> tuple:
        """A scalar for every site, or a list with one value per site."""
        if isinstance(value, list):
            if len(value) != n:
                self.fail(path, f"{len(value)} values for {n} placement{_s(n)}; give one, or one per site")
            return tuple(item(v, p) for v, p in self.items(value, path))
        return (item(value, path),) * n

    def product(self, value: Any, path: str, tasks: dict[str, TaskSpec]):
        """Yield (configuration, None) or (None, why it is skipped) for each combination of a product grid."""
        raw = self.mapping(value, path, _NOISE_KEYS, required=("placement", "std"))
        placement_items = self.items(raw["placement"], _at(path, "placement"))
        placements = [self.placement(v, p, allow_baseline=False) for v, p in placement_items]
        sizes = {len(p) for p in placements}

        def axis(key: str, default: Any, item: Callable[[Any, str], Any]) -> list:
            """One grid axis: each value a scalar or, for combined placements, a list per site."""
            values = []
            for v, p in self.items(raw.get(key, default), _at(path, key)):
                if isinstance(v, list):
                    if len(v) not in sizes:
                        self.fail(p, f"{len(v)} values, but no placement of this grid has {len(v)} sites")
                    values.append(tuple(item(x, q) for x, q in self.items(v, p)))
                else:
                    values.append(item(v, p))
            return values

        kinds = axis("kind", None, lambda v, p: v if v is None else self.choice(v, p, KINDS))
        stds = axis("std", None, self.std)
        schedules = axis("schedule", "constant", lambda v, p: self.choice(v, p, SCHEDULES))
        if "gamma" in raw and not any("annealed" in (s if isinstance(s, tuple) else (s,)) for s in schedules):
            self.fail(_at(path, "gamma"), "the annealing exponent applies only with schedule annealed")
        gamma_items = self.items(raw.get("gamma", DEFAULT_GAMMA), _at(path, "gamma"))
        gammas = [self.gamma(v, p) for v, p in gamma_items]
        decaying = any(set(s if isinstance(s, tuple) else (s,)) & set(DECAYS) for s in schedules)
        if "std_min" in raw and not decaying:
            self.fail(_at(path, "std_min"), _STD_MIN_RULE)
        std_mins = [self.std_min(v, p) for v, p in self.items(raw.get("std_min", 0.0), _at(path, "std_min"))]
        relatives = axis("relative", False, self.flag)

        for places, kind, std, schedule, relative in itertools.product(placements, kinds, stds, schedules, relatives):
            n = len(places)
            mismatch = [
                (key, v)
                for key, v in (("kind", kind), ("std", std), ("schedule", schedule), ("relative", relative))
                if isinstance(v, tuple) and len(v) != n
            ]
            if mismatch:
                key, v = mismatch[0]
                label = "+".join(places)
                yield None, f"{key} {list(v)} has {len(v)} values for placement {label!r} of {n} site{_s(n)}"
                continue
            if kind is None:
                kind = tuple(default_kind(p, tasks) for p in places)
            site_kinds, site_stds, site_schedules, site_relatives = (
                v if isinstance(v, tuple) else (v,) * n for v in (kind, std, schedule, relative)
            )
            for gamma in gammas if "annealed" in site_schedules else [DEFAULT_GAMMA]:
                for std_min in std_mins if set(site_schedules) & set(DECAYS) else [0.0]:
                    sites = list(
                        zip(places, site_kinds, site_stds, site_schedules, (gamma,) * n, (std_min,) * n, site_relatives)
                    )
                    reason = _unfit(sites, tasks)
                    yield (None, reason) if reason else (_config(sites), None)


def _unfit(sites: list[_Site], tasks: dict[str, TaskSpec]) -> str | None:
    """Why a configuration's sites cannot be used on every task, or None."""
    for placement, kind, std, schedule, _, std_min, relative in sites:
        reason = unfit_site(placement, kind, tasks)
        if reason:
            return reason
        reason = out_of_range(kind, std)
        if reason:
            return reason
        if relative and not relative_fits(placement, kind):
            return f"relative {kind} noise on placement {placement!r}: {RELATIVE_RULE}"
        if schedule in DECAYS and 0 < std < std_min:
            return f"std_min {std_min:g} with std {std:g}: a {schedule} decay ends at or below where it starts"
    return None


def _config(sites: list[_Site]) -> NoiseConfig:
    """The canonical configuration: zero-size sites dropped, gamma kept only where annealed, std_min only
    where a schedule decays."""
    return make_config(
        NoiseSpec(
            p, k, float(s), sch, g if sch == "annealed" else DEFAULT_GAMMA, float(m) if sch in DECAYS else 0.0, bool(r)
        )
        for p, k, s, sch, g, m, r in sites
        if s > 0
    )

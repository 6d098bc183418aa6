"""A noise kind is one record (``sweeper.noise.kinds``): for every kind in the registry the search space,
``NoiseSpec``, the pack, the reference layers and the Optuna adapter take it from its record alone, and
refuse its out-of-range sizes in the record's own words."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from sweeper.driver._optuna import suggest
from sweeper.errors import SpaceError
from sweeper.noise.kinds import KINDS, NOISE_KINDS, Draw, NoiseKind
from sweeper.noise.layers import LabelFlip, noise_layer
from sweeper.noise.pack import PackNoise
from sweeper.noise.spec import PLACEMENTS, RELATIVE_PLACEMENTS, NoiseSpec, config_label, relative_fits
from sweeper.noise.streams import GeneratorStreams
from sweeper.space import parse_space

RECORDS = list(NOISE_KINDS.values())
SOURCE = "search_spaces/x.yaml"


def where(kind: NoiseKind) -> tuple[str, str]:
    """A placement the kind fits, and a data set whose problem it fits there."""
    placement = next(p for p in PLACEMENTS if kind.fits_some_task(p))
    return placement, "circles" if kind.fits(placement, True) else "diabetes"


def in_range(kind: NoiseKind) -> float:
    return 0.1 if kind.high > 0.2 else kind.high / 2


def too_large(kind: NoiseKind) -> float:
    return kind.high if not kind.high_allowed else kind.high + 0.5


def bounded(kind: NoiseKind) -> bool:
    return not math.isinf(kind.high)


def configs_file(kind: NoiseKind, std: float) -> str:
    placement, dataset = where(kind)
    return (
        f"name: t\ntask: {{dataset: {dataset}}}\nsearch:\n"
        f"  configs: [{{placement: {placement}, kind: {kind.name}, std: {std}}}]\n"
    )


def space_file(kind: NoiseKind, high: float, kinds: list[NoiseKind] | None = None) -> str:
    placement, dataset = where(kind)
    names = ", ".join(k.name for k in kinds or [kind])
    return (
        f"name: t\ntask: {{dataset: {dataset}, epochs: 2}}\nsearch:\n  sampler: random\n  n_trials: 3\n"
        f"  space: {{placement: [{placement}], kind: [{names}], std: {{uniform: [0.01, {high}]}}}}\n"
    )


@pytest.mark.parametrize("kind", RECORDS, ids=KINDS)
def test_the_space_takes_every_kind_at_a_size_in_its_range(kind):
    configs, notes = parse_space(configs_file(kind, in_range(kind)), SOURCE).grid_configs()

    placement, _ = where(kind)
    assert configs == [(), (NoiseSpec(placement, kind.name, in_range(kind)),)] and notes == []


@pytest.mark.parametrize("kind", [k for k in RECORDS if bounded(k)], ids=lambda k: k.name)
def test_the_space_and_the_spec_refuse_a_size_out_of_range_in_the_records_words(kind):
    std = too_large(kind)
    with pytest.raises(SpaceError) as info:
        parse_space(configs_file(kind, std), SOURCE)
    assert str(info.value) == f"{SOURCE}: search.configs[0]: kind {kind.name!r} with std {std:g}: {kind.size_rule}"

    with pytest.raises(SpaceError) as info:
        parse_space(space_file(kind, std), SOURCE)
    assert str(info.value) == (
        f"{SOURCE}: search.space.std: reaches {std:g}, but for kind {kind.name!r} {kind.size_rule}; "
        f"narrow std or sample {kind.name} in a sweep of its own"
    )

    with pytest.raises(ValueError) as info:
        NoiseSpec(where(kind)[0], kind.name, std)
    assert str(info.value) == f"kind {kind.name!r} with std {std:g}: {kind.size_rule}"


def test_the_size_rules_say_what_a_size_is_and_its_range():
    assert [(k.name, k.size_rule) for k in RECORDS if bounded(k)] == [
        ("flip", "std is a flip probability that must be in [0, 1]"),
        ("dropout", "std is the dropout rate, a probability that must be in [0, 1)"),
    ]
    assert all(k.allows(1e6) for k in RECORDS if not bounded(k))
    assert config_label((NoiseSpec("pre_activation", "dropout", 0.3),)) == "pre_activation dropout p=0.3"
    assert config_label((NoiseSpec("pre_activation", "uniform", 0.3),)) == "pre_activation uniform σ=0.3"


@pytest.mark.parametrize("kind", RECORDS, ids=KINDS)
def test_the_pack_draws_every_kind_as_the_reference_layer_does(kind):
    """With ``generator`` streams the pack draws what the reference loop's layer draws, number for number."""
    placement, dataset = where(kind)
    spec = NoiseSpec(placement, kind.name, in_range(kind))
    pack = PackNoise([(spec,)], GeneratorStreams([7]))
    generator = torch.Generator().manual_seed(7)
    if kind.draw is Draw.FLIP:
        y = torch.randint(0, 2, (1, 512), generator=torch.Generator().manual_seed(1))
        noisy = pack.noisy_targets(y, 2)
        layer = LabelFlip(spec.std, 2, generator=generator, kind=kind.name)
        assert torch.equal(noisy[0], layer(y[0]))
        assert not torch.equal(noisy, y)
        return
    x = torch.randn(1, 64, 8, generator=torch.Generator().manual_seed(1))
    noisy = pack.perturb(placement, x)
    assert torch.equal(noisy[0], noise_layer(spec, generator)(x[0]))
    assert not torch.equal(noisy, x)


@pytest.mark.parametrize("kind", RECORDS, ids=KINDS)
def test_the_optuna_adapter_suggests_every_kind(kind):
    """Sampled among every kind that fits the same site, each kind is suggested and makes a valid site."""
    placement, dataset = where(kind)
    rivals = [k for k in RECORDS if k.fits(placement, dataset == "circles")]
    spec = parse_space(space_file(kind, in_range(kind), kinds=rivals), SOURCE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction=spec.direction)

    suggested = []
    for _ in range(10 * len(rivals)):
        trial = study.ask()
        (site,) = suggest(spec, trial)
        study.tell(trial, 0.0)
        suggested.append(site)
        if len(rivals) > 1:
            assert trial.params[f"{placement}.kind"] == site.kind

    mine = [site for site in suggested if site.kind == kind.name]
    assert mine and all(site.placement == placement and 0.01 <= site.std <= in_range(kind) for site in mine)


@pytest.mark.parametrize("kind", RECORDS, ids=KINDS)
def test_relative_applies_where_the_record_says(kind):
    expected = list(RELATIVE_PLACEMENTS) if kind.relative else []
    assert [p for p in PLACEMENTS if relative_fits(p, kind.name)] == expected
    if kind.relative:
        assert kind.draw.additive  # the pack scales an additive draw by the feature's spread


def test_a_record_that_contradicts_itself_is_refused():
    with pytest.raises(ValueError, match="relative noise scales an additive draw only"):
        NoiseKind("salt", "a standard deviation", Draw.MUL_NORMAL, kernel="salt", relative=True)
    with pytest.raises(ValueError, match="a probability is at most 1"):
        NoiseKind("salt", "a probability", Draw.DROP, kernel="salt", probability=True)

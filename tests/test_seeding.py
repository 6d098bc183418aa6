"""One canonical text of a configuration: what the store keeps, and what the noise seeds are keyed by."""

from __future__ import annotations

import hashlib
import json

from sweeper.noise.spec import NoiseSpec, make_config
from sweeper.records import stored_config
from sweeper.seeding import config_json, config_key

CONFIG = make_config(
    [NoiseSpec("input", std=0.05), NoiseSpec("pre_activation", "multiplicative", 0.2, "annealed", 0.55)]
)


def test_config_key_is_the_key_every_stored_noise_seed_was_drawn_with():
    # As sweeper 0.1.0 computed it: sha256 of the sorted JSON with json's default separators.
    text = json.dumps([s.as_dict() for s in CONFIG], sort_keys=True)
    assert config_key(CONFIG) == int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") == 3112426479
    assert config_key(()) == 2714587983


def test_the_stored_text_is_compact_sorted_and_reads_back_as_the_configuration():
    text = config_json(CONFIG)

    assert text == (
        '[{"kind":"gaussian","placement":"input","schedule":"constant","std":0.05},'
        '{"gamma":0.55,"kind":"multiplicative","placement":"pre_activation","schedule":"annealed","std":0.2}]'
    )
    assert stored_config(json.loads(text)) == CONFIG
    assert config_json(make_config(list(reversed(CONFIG)))) == text  # equal configurations, equal text

"""Resuming a sweep under a changed search space is refused, saying what changed and how to go on."""

from __future__ import annotations

import pytest

REFUSED = (
    "error: sweep 'tiny' already exists in {url} with a different search space; "
    "pick another --name or delete it (sweeper delete tiny); it differs in "
)
#: name -> (replacements in tiny's YAML, extra flags, what the line says differs)
CHANGES = {
    "values": (
        [("epochs: 20", "epochs: 30"), ("std: 0.1}", "std: 0.2}")],
        [],
        "task.epochs 20 -> 30, search.configs[1].std 0.1 -> 0.2",
    ),
    "added_key": ([("epochs: 20", "epochs: 20\n  batch_size: 10")], [], "task.batch_size (not set) -> 10"),
    "removed_key": ([("metric: accuracy\n", "")], [], "metric 'accuracy' -> (not set)"),
    "short_list": ([("hidden: [8]", "hidden: [8, 8]")], [], "task.hidden [8] -> [8, 8]"),
    "removed_config": (
        [("    - {placement: pre_activation, std: 0.1}\n", "")],
        [],
        "search.configs[1] {'placement': 'pre_activation', 'std'... -> (not set)",
    ),
    "long_value": (
        [("name: tiny", "name: tiny\ndescription: " + "a long text " * 10)],
        [],
        "description (not set) -> 'a long text a long text a long text ...",
    ),
    "comment_only": (
        [("seed: 3", "seed: 3  # as in the paper")],
        [],
        "line 2 'seed: 3' -> 'seed: 3  # as in the paper'",
    ),
    "fewer_repeats": ([], ["--repeats", "1"], "repeats 2 -> 1"),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_resuming_a_changed_space_names_what_differs(
    sweeper_cli, tiny_space, tiny_sqlite_copy, tmp_path, db_snapshot, name
):
    replacements, flags, differs = CHANGES[name]
    text = tiny_space.read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    space = tmp_path / "changed.yaml"
    space.write_text(text)
    url = f"sqlite:///{tiny_sqlite_copy}"
    before = db_snapshot(url)

    result = sweeper_cli("run", space, "--db", url, *flags)

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == REFUSED.format(url=url) + differs + "\n"
    assert db_snapshot(url) == before


def test_added_configurations_and_repeats_extend_the_sweep_instead(sweeper_cli, tiny_space, tiny_sqlite_copy, tmp_path):
    added = "    - {placement: pre_activation, std: 0.1}\n    - {placement: weights, std: 0.01}\n"
    space = tmp_path / "grown.yaml"
    space.write_text(tiny_space.read_text().replace("    - {placement: pre_activation, std: 0.1}\n", added))

    result = sweeper_cli("run", space, "--db", f"sqlite:///{tiny_sqlite_copy}", "--repeats", "3")

    assert result.exit_code == 0, result.stderr
    # 3 configurations x 2 repeats were stored: the 4th configuration's 3 runs and a 3rd repeat of the others
    assert "6 runs trained" in result.stderr and "12 runs stored in all" in result.stderr


def test_many_changes_are_counted_after_the_first_four(sweeper_cli, tiny_space, tiny_sqlite_copy, tmp_path):
    text = tiny_space.read_text()
    for old, new in [
        ("seed: 3", "seed: 4"),
        ("n_train: 30", "n_train: 40"),
        ("hidden: [8]", "hidden: [16]"),
        ("epochs: 20", "epochs: 30"),
        ("std: 0.05", "std: 0.5"),
        ("std: 0.1}", "std: 0.2}"),
    ]:
        text = text.replace(old, new)
    space = tmp_path / "changed.yaml"
    space.write_text(text)
    url = f"sqlite:///{tiny_sqlite_copy}"

    result = sweeper_cli("run", space, "--db", url)

    assert result.exit_code == 2
    assert result.stderr == REFUSED.format(url=url) + (
        "seed 3 -> 4, task.n_train 30 -> 40, task.hidden [8] -> [16], task.epochs 20 -> 30 and 2 more\n"
    )


def test_the_advice_works_delete_then_run_the_changed_space(sweeper_cli, tiny_space, tiny_sqlite_copy, tmp_path):
    space = tmp_path / "changed.yaml"
    space.write_text(tiny_space.read_text().replace("epochs: 20", "epochs: 10"))
    url = f"sqlite:///{tiny_sqlite_copy}"
    assert sweeper_cli("run", space, "--db", url).exit_code == 2

    assert sweeper_cli("delete", "tiny", "--db", url, "--yes").exit_code == 0
    result = sweeper_cli("run", space, "--db", url)

    assert result.exit_code == 0, result.stderr
    assert "6 runs trained" in result.stderr

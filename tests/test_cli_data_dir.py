"""``--data-dir`` works before or after a subcommand, in nested groups, as ``--data-dir=X``;
after ``--`` it is left where it is."""

from __future__ import annotations

import json

import pytest

from aiwallet.cli import lift_global_options, main


def cli(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "args",
    [
        ["--data-dir", "{d}", "status", "--json"],
        ["status", "--data-dir", "{d}", "--json"],
        ["status", "--json", "--data-dir", "{d}"],
        ["status", "--json", "--data-dir={d}"],
    ],
)
def test_data_dir_before_or_after_the_subcommand(capsys, tmp_path, args):
    where = tmp_path / "elsewhere"
    code, out, err = cli(capsys, *[a.format(d=where) for a in args])
    assert code == 0, err
    assert json.loads(out)["data_dir"] == str(where)
    assert (where / "aiwallet.db").exists() or any(where.iterdir())


def test_data_dir_after_a_nested_subcommand(capsys, tmp_path):
    where = tmp_path / "nested"
    code, out, err = cli(capsys, "providers", "list", "--json", "--data-dir", str(where))
    assert code == 0, err
    assert json.loads(out) == []
    assert where.is_dir()
    code, out, _ = cli(capsys, "status", "--json")  # the default dir is still another one
    assert json.loads(out)["data_dir"] != str(where)


def test_lifting_leaves_other_arguments_in_order_and_stops_at_a_double_dash():
    assert lift_global_options(["apps", "create", "x", "--data-dir", "D", "--budget", "2"]) == [
        "--data-dir", "D", "apps", "create", "x", "--budget", "2",
    ]  # fmt: skip
    assert lift_global_options(["a", "--", "--data-dir", "D"]) == ["a", "--", "--data-dir", "D"]
    assert lift_global_options(["status", "--data-dir"]) == ["status", "--data-dir"]

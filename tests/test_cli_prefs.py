"""``aiwallet prefs`` and ``aiwallet apps ask-over``: typed values in, clear refusals out."""

import json

from aiwallet.cli import main


def cli(capsys, data_dir, *args):
    try:
        main(["--data-dir", str(data_dir), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_prefs_show_and_set(capsys, tmp_path):
    d = tmp_path / "wallet"
    code, out, err = cli(capsys, d, "prefs", "show", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["min_clamped_output_tokens"] == 16 and shown["ask_over_usd"] is None
    assert cli(capsys, d, "prefs", "set", "min_clamped_output_tokens", "256")[0] == 0
    assert cli(capsys, d, "prefs", "set", "ask_over_usd", "$1.25")[0] == 0
    shown = json.loads(cli(capsys, d, "prefs", "show", "--json")[1])
    assert shown["min_clamped_output_tokens"] == 256 and shown["ask_over_usd"] == "1.250000000"
    # refused, naming the setting; nothing is stored
    code, _, err = cli(capsys, d, "prefs", "set", "min_clamped_output_tokens", "0")
    assert code == 1 and "Smallest answer worth clamping to" in err
    code, _, err = cli(capsys, d, "prefs", "set", "ask_over_usd", "0")
    assert code == 1 and "above $0" in err
    code, _, err = cli(capsys, d, "prefs", "set", "ask_over_usd", "lots")
    assert code == 1 and "not an amount of dollars" in err
    code, _, err = cli(capsys, d, "prefs", "set", "no_such_thing", "1")
    assert code == 1 and "ask_over_usd" in err  # the known ones are listed
    shown = json.loads(cli(capsys, d, "prefs", "show", "--json")[1])
    assert shown["min_clamped_output_tokens"] == 256 and shown["ask_over_usd"] == "1.250000000"


def test_apps_ask_over(capsys, tmp_path):
    d = tmp_path / "wallet"
    assert cli(capsys, d, "apps", "add", "agent", "--budget", "5/day")[0] == 0
    code, out, err = cli(capsys, d, "apps", "ask-over", "agent", "0.50")
    assert code == 0, err
    assert "worst case is over $0.50" in out
    code, out, err = cli(capsys, d, "apps", "ask-over", "agent", "off")
    assert code == 0 and "the wallet's applies" in out
    code, _, err = cli(capsys, d, "apps", "ask-over", "agent", "0")
    assert code == 1 and "above $0" in err
    code, _, err = cli(capsys, d, "apps", "ask-over", "nobody", "1")
    assert code == 1 and "nobody" in err

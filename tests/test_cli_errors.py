"""Every mistake on the command line: one line on stderr that says what to do, exit code 2, no traceback."""

import pytest

from infini_attention.cli.main import main

TRAIN = ["train", "--task", "copy", "--seq-len", "48", "--min-len", "40", "--steps", "1", "--no-progress"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (TRAIN + ["--model", "foo=1"], "--model foo: no such model field"),
        (TRAIN + ["--model", "segmnt_len=8"], "did you mean segment_len"),
        (TRAIN + ["--model", "segment_len=abc"], "segment_len"),
        (TRAIN + ["--batch-size", "0"], "--batch-size must be"),
        (TRAIN + ["--save-every", "0"], "--save-every must be"),
        (TRAIN + ["--lr", "nan"], "--lr must be a finite number"),
        (TRAIN + ["--steps", "-5"], "--steps must be"),
        (TRAIN + ["--eval-lengths", "2K"], "--eval-lengths takes token counts"),
        (TRAIN + ["--min-len", "100"], "--min-len 100 is longer than --seq-len 48"),
        (["eval", "passkey", "--checkpoint", "nowhere"], "not found"),
        (["eval", "passkey", "--checkpoint", "nowhere", "--keys", "0"], "--keys must be >= 1"),
        (["eval", "passkey", "--checkpoint", "nowhere", "--depths", "1.5"], "--depths must lie in"),
    ],
)
def test_one_line_and_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(argv + (["--out", str(tmp_path / "run")] if argv[0] == "train" else []))
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_eval_checks_its_output_before_any_work(tmp_path, capsys):
    (tmp_path / "res.json").write_text("{}")
    args = ["eval", "passkey", "--checkpoint", "nowhere", "--out", str(tmp_path / "res")]
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = ["eval", "passkey", "--checkpoint", "nowhere", "--out", str(blocker / "sub" / "res")]
    assert main(args) == 2 and "cannot write to" in capsys.readouterr().err


def test_a_missing_optional_package_names_its_extra(monkeypatch, capsys):
    import infini_attention.cli.convert as convert_cli

    def missing(args):
        raise ModuleNotFoundError("No module named 'transformers'", name="transformers")

    monkeypatch.setattr(convert_cli, "run", missing)
    assert main(["convert", "--gguf", "default", "--out", "x"]) == 2
    assert "pip install -e '.[hf]'" in capsys.readouterr().err

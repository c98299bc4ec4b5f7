"""`lungkd` exits with the same status for the same outcome whatever the command, and `lungkd --help` says which:
0 done, 1 some files failed, 2 a usage or input error, 130 interrupted, 141 standard output closed early."""
import os
import signal
import subprocess
import sys
import time

import pytest

from lungkd.core.cli import (EXIT_CLOSED_PIPE, EXIT_FILES_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main)
from lungkd.core.models.inventory import shipped_models_folder
from lungkd.core.pool import spawn_pool

LUNGKD = [sys.executable, "-m", "lungkd.core.cli"]


def test_the_help_lists_every_exit_status_with_its_meaning(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == EXIT_OK
    epilog = capsys.readouterr().out.split("exit status:")[1]
    for code, meaning in ((0, "done"), (1, "some files failed"), (2, "a usage or input error"),
                          (130, "interrupted (Ctrl-C)"), (141, "standard output was closed early")):
        assert f"\n  {code:<4} {meaning}" in epilog


def test_done_is_0(capsys):
    assert main(["recipes"]) == EXIT_OK == 0


def test_some_files_failed_is_1_and_the_others_are_analysed(capsys, synthetic_dir, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    good = sorted(synthetic_dir.glob("*.wav"))[0]
    assert main(["predict", str(shipped_models_folder() / "demo-cnn6"), str(good), str(broken)]) == \
        EXIT_FILES_FAILED == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{good.stem}: ") and "broken.wav" in err


@pytest.mark.parametrize("args", [["predict"], ["run", "--no-such-option", "demo-cpu"], ["no-such-command"]])
def test_a_usage_error_is_2(args, capsys):
    with pytest.raises(SystemExit) as refused:
        main(args)
    assert refused.value.code == EXIT_USAGE == 2
    assert "usage: lungkd" in capsys.readouterr().err


def test_an_input_error_is_2_with_its_fix_and_no_traceback(capsys, tmp_path):
    assert main(["run", str(tmp_path / "missing.toml")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "missing.toml: recipe file not found. Fix:" in err and "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_is_130_in_any_command(tmp_path):
    out = tmp_path / "generated"
    # Ctrl-C reaches the whole foreground process group; SIGINT is not ignored, as in a terminal
    process = subprocess.Popen([*LUNGKD, "data", "synth", "--recordings", "5000", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline:  # the command is at work
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED == 130
    assert "lungkd: interrupted." in err and "Traceback" not in err


def test_a_closed_pipe_is_141_and_quiet():
    process = subprocess.Popen([*LUNGKD, "recipes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # `| head` that has read what it wanted, before lungkd wrote anything
    assert process.wait(timeout=120) == EXIT_CLOSED_PIPE == 141
    assert process.stderr.read() == b""


def _interrupt_blocked() -> bool:
    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_pool_workers_leave_ctrl_c_to_the_process_that_started_them():
    """Ctrl-C reaches the whole process group: a pool worker that answered it would print a traceback."""
    with spawn_pool(1) as pool:
        assert pool.submit(_interrupt_blocked).result(timeout=120) is True
    assert not _interrupt_blocked()

"""`retention-monitor cohorts` without a worker: arguments, exit codes, the shading of a cell.
(Against a real worker: tests/test_streams/test_worker/test_cohorts_kafka.py.)"""

from __future__ import annotations

import pytest
from fixtures import free_port

from retention_monitor.cli import main
from retention_monitor.cohorts_cli import HIGH, LOW, shade, shade_rgb


@pytest.mark.parametrize(("args", "needle"), [
    (["cohorts", "--from", "2025-01", "--by", "day"], "argument --by: invalid choice: 'day'"),
    (["cohorts", "--from", "2025-01", "--kind", "money"], "argument --kind: invalid choice: 'money'"),
    (["cohorts"], "the following arguments are required: --from"),
])
def test_bad_arguments_name_the_value_with_exit_2(args: list[str], needle: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


def test_unreachable_worker_is_one_line_with_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["cohorts", "--from", "2025-01", "--url", f"http://127.0.0.1:{port}"]) == 3
    err = capsys.readouterr().err
    assert f"no worker answers at http://127.0.0.1:{port}" in err
    assert len(err.strip().splitlines()) == 1


def test_shades_run_from_white_to_green_and_clamp() -> None:
    assert shade_rgb(0.0) == shade_rgb(-0.4) == shade_rgb(None) == LOW
    assert shade_rgb(1.0) == shade_rgb(3.0) == HIGH
    assert LOW[0] > shade_rgb(0.5)[0] > HIGH[0]  # less red, ever greener
    assert shade(None) == ""
    assert shade(0.9).startswith("white on rgb(")  # dark cells get light ink
    assert shade(0.2).startswith("black on rgb(")

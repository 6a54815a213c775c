"""``python -m simam.bench processes``: the three pipelines timed on real CIFAR-10 with a tiny run
each, its table and JSON record (printed again by ``report``), and the options it refuses."""

import json

import pytest

from simam.bench.processes import PIPELINES, main, parse_args, report


@pytest.mark.cifar10
def test_times_every_pipeline_against_one_process(tmp_path, capsys):
    out = tmp_path / "processes.json"
    options = ["--iterations", "4", "--rounds", "1", "--batch-size", "16", "--cores", "2"]
    assert main([*options, "--config", "subset=64", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    record = json.loads(out.read_text())
    rows = {row["pipeline"]: row for row in record["rows"]}
    assert list(rows) == list(PIPELINES)
    assert (rows["one process"]["processes"], rows["one process"]["threads"]) == (1, 2)
    assert (rows["data-parallel"]["processes"], rows["data-parallel"]["threads"]) == (2, 1)
    assert rows["one process"]["ratio"] == 1.0
    assert all(row["images_per_second"] > 0 for row in rows.values())
    for pipeline, row in rows.items():
        assert f"| {pipeline} | {row['processes']} x {row['threads']} |" in table
    assert table.strip() == report(record)  # the record prints as the run printed it


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cores", "1"], "--cores at least 2"),
        (["--cores", "3"], "must divide among 3 ranks"),
        (["--config", "colour=red"], "expected FIELD=VALUE"),
    ],
)
def test_refuses_options_it_cannot_time(options, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(options)
    assert message in capsys.readouterr().err

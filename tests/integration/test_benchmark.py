"""The generation benchmark command, run as users run it."""

import os

import pytest

from nets import CONF, needs_fast
from espnet_wavenet.generation.cpu import loader


@needs_fast
def test_benchmark_profile_accounts_for_the_step(capsys):
    # --profile builds the kernel with its cycle counters; each thread's timed
    # parts fit within the whole call (A's layer work is what is left of it).
    import json

    from espnet_wavenet.bin import benchmark

    benchmark.main(["--config", str(CONF), "--kinds", "fast", "fast_int8", "--profile",
                    "--seconds", "0.2"])
    report = json.loads(capsys.readouterr().out)
    profiles = report["configs"][0]["profile"]
    assert [p["precision"] for p in profiles] == ["float32", "int8"]
    for p in profiles:
        c = p["cycles_per_sample"]
        assert c["a_layers"] > 0 and c["a_head"] > 0 and c["a_draw"] > 0 and c["b_older"] > 0
        # thread A's layer work in parts: newest taps, gates, residual/skip products
        assert min(c["a_conv"], c["a_gate"], c["a_rs"]) > 0
        assert c["a_conv"] + c["a_gate"] + c["a_rs"] < c["a_layers"]
        assert c["b_wait"] + c["b_older"] + c["b_skips"] <= c["total"]
        assert p["us_per_sample"] > 0


@needs_fast
def test_benchmark_streams_each_fast_kind(capsys):
    # --streaming_frames: the utterance through StreamingVocoder against offline
    # generation of the same audio, and pushes early and late in it.
    import json

    from espnet_wavenet.bin import benchmark

    benchmark.main(["--config", str(CONF), "--kinds", "fast", "fast_int8", "reference",
                    "--batch_sizes", "1", "--seconds", "0.3", "--repeats", "1",
                    "--reference_seconds", "0.01", "--streaming_frames", "2"])
    report = json.loads(capsys.readouterr().out)
    rows = report["configs"][0]["streaming"]
    assert [r["precision"] for r in rows] == ["float32", "int8"]
    for r in rows:
        assert r["pushes"] == -(-round(r["audio_s"] * 22050 / 256) // 2) > 10
        assert r["streaming_wall_s"] > 0 and r["offline_wall_s"] > 0
        assert r["ms_per_push_first_tenth"] > 0 and r["ms_per_push_last_tenth"] > 0


@needs_fast
def test_benchmark_times_the_kinds_in_rounds(capsys, monkeypatch):
    # Each round times every kind once, in turn (the machine's drift then
    # affects the kinds alike, the reference's ratio included).
    import json

    from espnet_wavenet.bin import benchmark
    from espnet_wavenet.evaluation import generation_speed

    order = []
    time_once = generation_speed.time_once
    monkeypatch.setattr(generation_speed, "time_once",
                        lambda run, cuda: order.append(run) or time_once(run, cuda))
    benchmark.main(["--config", str(CONF), "--kinds", "fast", "fast_int8", "reference",
                    "--batch_sizes", "1", "--seconds", "0.05", "--repeats", "3",
                    "--reference_seconds", "0.005"])
    fast, int8, ref = order[:3]
    assert len({id(fast), id(int8), id(ref)}) == 3
    assert order == [fast, int8, ref] * 3
    rows = json.loads(capsys.readouterr().out)["configs"][0]["results"]
    assert [(r["kind"], r["runs"]) for r in rows] == [("fast", 3), ("fast_int8", 3),
                                                      ("reference", 3)]


@needs_fast
def test_benchmark_times_several_isa_levels_in_the_same_rounds(capsys, monkeypatch):
    import json

    from espnet_wavenet.bin import benchmark
    from espnet_wavenet.evaluation import generation_speed

    levels = loader.cpu_levels()[-2:]  # x86-64: the baseline and the level above it
    if len(levels) < 2:
        pytest.skip("this CPU runs one kernel level only")
    order = []
    time_once = generation_speed.time_once
    monkeypatch.setattr(generation_speed, "time_once",
                        lambda run, cuda: order.append(run) or time_once(run, cuda))
    monkeypatch.setenv("ESPNET_WAVENET_KERNEL", levels[0])  # main sets it; undone after
    benchmark.main(["--config", str(CONF), "--kinds", "fast_int8", "reference",
                    "--batch_sizes", "1", "--seconds", "0.05", "--repeats", "2",
                    "--reference_seconds", "0.005", "--isa", *levels])
    assert len(set(map(id, order[:3]))) == 3 and order == order[:3] * 2
    rows = json.loads(capsys.readouterr().out)["configs"][0]["results"]
    assert [(r["kind"], r.get("kernel")) for r in rows] == [
        ("fast_int8", levels[0]), ("fast_int8", levels[1]), ("reference", None)]
    # both levels compared with the one reference of the same rounds
    assert all(r["speedup_vs_reference"] > 0 for r in rows[:2])
    with pytest.raises(SystemExit):
        benchmark.main(["--config", str(CONF), "--isa", levels[0], "no_such_level"])
    assert "--isa='no_such_level': expected one of" in capsys.readouterr().err


@needs_fast
def test_benchmark_names_the_cpu_and_forces_a_lower_isa_level(tmp_path):
    import json
    import subprocess
    import sys

    levels = loader.cpu_levels()
    lowest = levels[-1]  # every x86-64 CPU runs the baseline
    proc = subprocess.run(
        [sys.executable, "-m", "espnet_wavenet.bin.benchmark", "--config", str(CONF),
         "--kinds", "fast", "--batch_sizes", "1", "--seconds", "0.05", "--repeats", "1",
         "--isa", lowest, "--split", "on"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["kernel"] == lowest and report["cpu_levels"] == levels
    assert report["cpu"] and report["l2_cache_kb_per_core"] > 0
    # the read ceilings from L2, L3 and memory, one figure each
    bandwidth = report["read_gb_per_s"]
    assert [k.split("_")[0] for k in bandwidth] == ["L2", "L3", "memory"]
    assert min(bandwidth.values()) > 0
    row = report["configs"][0]["results"][0]
    assert row["weight_bytes_per_sample"] == row["weight_bytes_per_step"] > 0  # batch 1
    assert row["weight_gb_per_s"] > 0
    # forced on, one stream on two or more threads ran as the two-thread pipeline
    assert row["pipeline"] is (report["threads"] >= 2)

    # the profile's counting build is of the level asked for, not -march=native
    proc = subprocess.run(
        [sys.executable, "-m", "espnet_wavenet.bin.benchmark", "--config", str(CONF),
         "--kinds", "fast_int8", "--seconds", "0.05", "--isa", lowest, "--profile"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300,
        env={**os.environ, "ESPNET_WAVENET_CACHE": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (profile,) = json.loads(proc.stdout)["configs"][0]["profile"]
    assert profile["kernel"] == lowest
    assert profile["int8_path"] == "scalar"  # the baseline's loop; -march=native: a vector one


def test_benchmark_quality_needs_real_speech(tmp_path, capsys):
    # The installed package has no egs/: the speech to score is named, not guessed.
    from espnet_wavenet.bin import benchmark

    (tmp_path / "config.yaml").write_text("{}\n")
    with pytest.raises(SystemExit):
        benchmark.main(["--quality_model", str(tmp_path)])
    assert "--quality_model needs --quality_wavs" in capsys.readouterr().err

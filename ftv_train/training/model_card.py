"""Model card (README.md) for an exported FTV model, and publishing the export to the Hugging Face Hub.

The card is written from what the training run knows (dataset report, steps, batch, precision, metrics), so a
published model always says what it was trained on and how far; the intended-use, limitation and ethics sections
carry the paper's own ethical notes, because a face-to-voice model replicates identity cues and invites misuse.
What every ftv card shares (front matter, the paper, the sentence on what the folder holds, tables) comes from
`ftv_model.model_card`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ftv_model.model_card import (
    FTV_CODE_LICENCE,
    PAPER_AUTHORS,
    PAPER_TITLE,
    TITLE,
    WHAT_IT_DOES,
    files_sentence,
    folder_holds,
    front_matter,
    table,
)

logger = logging.getLogger(__name__)


def _data_section(report: dict[str, Any] | None, data_path: str | None) -> str:
    if not report:
        where = f" (`{data_path}`)" if data_path else ""
        return (
            f"Trained on a dataset prepared with `train/prepare_data.py`{where}; no `report.json` was found, so its "
            "composition is not recorded here."
        )
    tool = "train/make_offline_corpus.py" if report.get("offline") else "train/prepare_data.py"
    lines = [f"Source: **{report.get('source', 'unknown')}**, prepared with `{tool}`."]
    splits = report.get("splits") or {}
    if splits:
        lines += ["", "| split | utterances | speakers | hours |", "|---|---|---|---|"]
        for name, stats in splits.items():
            hours = stats.get("hours")
            hours_text = f"{hours:.2f}" if isinstance(hours, (int, float)) else "?"
            lines.append(f"| {name} | {stats.get('utterances', '?')} | {stats.get('speakers', '?')} | {hours_text} |")
    for attribute in ("gender", "race"):
        distribution = (report.get(attribute) or {}).get("by_utterance")
        if distribution:
            parts = []
            for label, stats in distribution.items():
                percent = stats.get("percent") if isinstance(stats, dict) else None
                parts.append(f"{label} {percent:.1f}%" if isinstance(percent, (int, float)) else f"{label}")
            lines += ["", f"Pseudo-labelled {attribute} (by utterance): " + ", ".join(parts) + "."]
    offline = report.get("offline")
    if offline:
        lines += ["", _offline_section(offline)]
    else:
        lines += [
            "",
            "Gender and race labels are pseudo-labels from a face-attribute classifier (DeepFace), not self-reported; "
            "they are used only as auxiliary training targets.",
        ]
    return "\n".join(lines)


def _offline_section(offline: dict[str, Any]) -> str:
    """What the offline corpus (train/make_offline_corpus.py) is: real faces, synthetic voices."""
    identities = ", ".join(f"{name} {count}" for name, count in (offline.get("identities") or {}).items())
    voices = ", ".join(f"`{name}` ({count})" for name, count in sorted((offline.get("base_voices") or {}).items()))
    f0 = offline.get("target_f0_median_hz") or {}
    licences = "\n".join(f"- {name}: {text}" for name, text in (offline.get("licences") or {}).items())
    return (
        "**Synthetic voices on real faces.** This is the offline corpus of `train/make_offline_corpus.py`: real face "
        f"photos ({identities} identities) with the labels their datasets publish (London Set self-reported, FairFace "
        "and UTKFace annotations), each identity given one synthetic speaker. The speakers are offline TTS voices "
        f"({voices} identities each) changed in pitch, vocal-tract length (WORLD spectral warping) and speaking rate: "
        "gender sets the pitch and vocal-tract ranges, age shifts them, and "
        + (
            "the identity part (base voice, point in each range) is a fixed function of the face's dlib descriptor "
            "(`ftv_train.corpus.voice_mapping`: its leading principal directions within each gender, through the "
            "normal "
            "CDF): a rule the corpus chose so that each person gets their own voice, not something learnt from "
            "real people"
            if offline.get("voice_rule")
            else "an identity-specific random offset adds what a face cannot predict"
        )
        + f" (median target F0: male {f0.get('male', '?')} Hz, female {f0.get('female', '?')} Hz). Nobody's real "
        f"voice is in it.\n\nFace licences:\n{licences}"
    )


def _descriptor_note(name: str | None) -> str:
    """What a model that fuses a pretrained face descriptor needs, and whose weights those are."""
    if not name:
        return ""
    from ftv_model.face_descriptor import LICENCE

    return (
        f"\nThe face embedding also reads a pretrained face descriptor (`{name}`): {LICENCE}. Its weights are not in "
        "this checkpoint: the processor loads them from the installed package (`pip install face-recognition-models "
        "dlib-bin`) and says so when it is missing.\n"
    )


def _restricted_licence(report: dict[str, Any] | None) -> str | None:
    """The licence note when training data allowed non-commercial use only (it carries over to the weights)."""
    licences = ((report or {}).get("offline") or {}).get("licences") or {}
    restricted = sorted(name for name, text in licences.items() if "non-commercial" in text.lower())
    if not restricted:
        return None
    return (
        f"The weights were trained on faces from {', '.join(restricted)}, whose licence allows non-commercial "
        "research only; treat this checkpoint the same way (rebuild the corpus with `--sources london,fairface` "
        "and retrain for other uses)."
    )


def _loss_formula(weights: dict[str, float] | None, adversarial: bool = True) -> str:
    w = {
        "mel_loss_weight": 45.0,
        "kl_loss_weight": 1.0,
        "duration_loss_weight": 1.0,
        "attribute_loss_weight": 1.0,
        "audio_attribute_loss_weight": 0.3,
        "adversarial_loss_weight": 1.0,
        "feature_matching_loss_weight": 1.0,
        **(weights or {}),
    }
    return (
        f"{w['mel_loss_weight']:g} x mel + {w['kl_loss_weight']:g} x KL + {w['duration_loss_weight']:g} x duration + "
        f"{w['attribute_loss_weight']:g} x (face attribute + {w['audio_attribute_loss_weight']:g} x audio attribute)"
        + (
            f" + {w['adversarial_loss_weight']:g} x adversarial + {w['feature_matching_loss_weight']:g} x feature "
            "matching"
            if adversarial
            else " (no discriminator: adversarial training switched off)"
        )
    )


def build_model_card(info: dict[str, Any], holds: str = "training") -> str:
    """README.md text. `info` keys (all optional): repo_id, steps, max_steps, epochs, global_batch_size,
    batch_size, num_processes, gradient_accumulation_steps, mixed_precision, device, learning_rate, hours,
    metrics (name -> value), dataset_report, data_path, ablations (name -> value), init, loss_weights, config.
    `holds` says what the folder holds ("training": with `discriminator/`; "inference": an inference-only export),
    for the card's sentence on its files."""
    files = files_sentence(holds)
    metrics = dict(info.get("metrics") or {})
    metrics_step = metrics.pop("step", None)
    ablations = info.get("ablations") or {}
    training_rows = [
        ("optimizer steps", f"{info.get('steps', '?')} of {info.get('max_steps', '?')}"),
        ("completed epochs", info.get("epochs", "?")),
        ("global batch", info.get("global_batch_size", "?")),
        (
            "batch per process x processes x accumulation",
            f"{info.get('batch_size', '?')} x {info.get('num_processes', '?')} x "
            f"{info.get('gradient_accumulation_steps', '?')}",
        ),
        ("learning rate (generator / discriminator)", info.get("learning_rate", "?")),
        ("mixed precision", info.get("mixed_precision", "?")),
        ("hardware", info.get("device", "?")),
        ("training time (h)", info.get("hours", "?")),
        ("warm start", info.get("init") or "none (trained from scratch)"),
    ]
    if info.get("face_pretraining"):
        training_rows.append(("face branch pretrained (stage 1)", info["face_pretraining"]))
    frozen = info.get("frozen") or {}
    if frozen.get("prefixes"):
        kept = f", except names containing {', '.join(frozen['except'])}" if frozen.get("except") else ""
        training_rows.append(("frozen", ", ".join(frozen["prefixes"]) + kept))
    training_rows += [(f"ablation: {name}", value) for name, value in ablations.items()]
    metric_text = (
        table(sorted(metrics.items()))
        + f"\n\nMeasured at step {metrics_step if metrics_step is not None else '?'} on fixed samples: the training "
        "losses (lower is better) on held-out utterances of the training identities (`validation`); "
        "`val/face_*_accuracy_training_identities` is the face attribute head against the pseudo-labels on faces of "
        "people it trained on (optimistic, not a measure of how it reads a new face); `val/heldout_face_*_accuracy` "
        "is the same on identities no training stage saw (`validation_unseen`). For a new face, use the held-out "
        "figure, and `train/evaluate.py` on `test_unseen` for the final one."
        if metrics
        else "No validation metrics were recorded for this export."
    )
    report = info.get("dataset_report")
    restricted = _restricted_licence(report)
    licence, licence_name = ("other", "non-commercial-research") if restricted else (FTV_CODE_LICENCE.lower(), None)
    offline = bool((report or {}).get("offline"))
    data_limitation = (
        "- It has never heard a real person's voice paired with their face: every voice it learned is one of a few "
        "offline TTS voices reshaped in pitch, vocal-tract length and rate by a documented rule (gender and age plus "
        "a random offset). What it infers from a face is that rule, not how people who look like this really sound, "
        "and its voices sound synthetic."
        if offline
        else "- The training data (TED/TEDx talks for LRS3) is English, adult and unevenly distributed across "
        "demographic groups;\n  expect lower quality and less fitting voices for under-represented groups, children, "
        "and non-frontal or\n  low-quality photos."
    )
    licence_note = f"\n\n**Licence of these weights:** {restricted}" if restricted else ""
    label_limitation = (
        "- Attribute supervision uses the face datasets' published gender and race labels, which reduce gender to two "
        "classes and race to a few categories."
        if offline
        else "- Attribute supervision uses automatically predicted gender and race labels, which carry the biases and "
        "errors of\n  the labeller and reduce gender to two classes."
    )
    return f"""{front_matter(licence, licence_name)}

# {TITLE}

This model {WHAT_IT_DOES}. It implements *{PAPER_TITLE}*
({PAPER_AUTHORS}): a VITS text-to-speech backbone conditioned on a face embedding from a NesT face encoder with
facial granularity aggregation, trained with bilateral (face and audio) gender/race attribute losses and
multi-view face augmentation. {files}

## Usage

```python
from PIL import Image
from ftv_model import FTVModel, FTVProcessor

model = FTVModel.from_pretrained("{info.get("repo_id") or "PATH_OR_REPO"}").eval()
processor = FTVProcessor.from_pretrained("{info.get("repo_id") or "PATH_OR_REPO"}")
inputs = processor(text="Hello, nice to meet you.", images=Image.open("face.jpg"))
audio = model(**inputs, seed=0).waveform[0]  # at model.config.sampling_rate
```

The processor finds the largest face in a photo and crops it as the demo does; pass `do_crop_face=False` for
images that already are crops made by `ftv_model.face_detection.crop_face` (square, 25% margin).
{_descriptor_note(info.get("face_descriptor"))}
## Training data

{_data_section(info.get("dataset_report"), info.get("data_path"))}{licence_note}

## Training procedure

GAN training as VITS: generator and multi-period/scale discriminator with separate AdamW optimizers
(betas 0.8/0.99, eps 1e-9), exponential learning-rate decay, generator loss =
{_loss_formula(info.get("loss_weights"), info.get("adversarial", True))}.

{table(training_rows)}

## Metrics

{metric_text}

## Intended use

- Research on face-voice association and face-conditioned speech synthesis.
- Assistive communication: giving a personalised voice to people who cannot speak or have lost their voice,
  with their consent.

Out of scope: producing speech that is presented as a real person's voice, impersonating anyone, getting past
voice-based authentication, or any use without the consent of the person whose face is used.

## Limitations

- The voice is a guess from appearance: it reflects correlations in the training data (mostly gender, and age and
  accent only weakly), not the person's real voice. Two people who look alike get similar voices.
{data_limitation}
{label_limitation}
- Synthesized speech may contain mispronunciations (phonemes come from espeak-ng) and artefacts.

## Ethical considerations

From the paper: face-to-voice synthesis replicates personal identity cues, and so can be misused for unauthorized
voice cloning, biometric spoofing and identity impersonation, with risks to privacy, consent and digital security
(fraud, misinformation, defamation). Deploy it responsibly, only with the informed consent of the people whose faces
are used, and mark generated audio as synthetic; the authors recommend safeguards such as imperceptible watermarking
of synthesized speech. The model is trained with demographic attributes (gender, race) because they relate to
perceived voice characteristics; these are sensitive variables, derived here from publicly available data and used
only to improve face-voice alignment. The authors advocate continued dialogue between machine-learning researchers,
ethicists and affected communities on the responsible development of such systems.

## Citation

```
Jeon, Kim, Lee, Kim, Lee. {PAPER_TITLE}.
```
"""


def write_model_card(directory: str | Path, info: dict[str, Any], holds: str = "training") -> Path:
    """Write README.md (the card) and training_info.json (the same facts, machine-readable) into `directory`;
    `holds`: what the folder holds (see `build_model_card`)."""
    directory = Path(directory)
    path = directory / "README.md"
    path.write_text(build_model_card(info, holds), encoding="utf-8")
    serializable = {key: value for key, value in info.items() if key != "dataset_report"}
    (directory / "training_info.json").write_text(json.dumps(serializable, indent=2, default=str), encoding="utf-8")
    return path


def push_to_hub(
    directory: str | Path,
    repo_id: str,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Upload an export folder (model, processor, README.md, and discriminator/ unless it is an inference-only
    export) to a Hub model repo; returns its URL.

    The card's usage snippet is rewritten with the repo id first. The token comes from `token`, `HF_TOKEN` or
    `huggingface-cli login`.
    """
    from huggingface_hub import HfApi

    directory = Path(directory)
    info_path = directory / "training_info.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        info["repo_id"] = repo_id
        report_path = Path(info.get("data_path") or "") / "report.json"
        if info.get("data_path") and report_path.is_file():
            info["dataset_report"] = json.loads(report_path.read_text())
        write_model_card(directory, info, holds=folder_holds(directory))
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(directory),
        repo_id=repo_id,
        repo_type="model",
        commit_message=commit_message or f"Upload FTV model ({directory.name})",
    )
    url = getattr(commit, "repo_url", None) or f"{api.endpoint}/{repo_id}"
    logger.info("Pushed %s to %s", directory, url)
    return str(url)

"""ftv demo (a Gradio app, also a Hugging Face Space): speak typed text in a voice inferred from a face photo.

    python app.py                          # model from $FTV_MODEL, else checkpoints/ftv-offline
    python app.py --model org/ftv          # a Hub id, or a local checkpoint directory
    python app.py --allow-untrained        # no checkpoint: random weights (noise), for trying the pipeline

Serves on http://127.0.0.1:7860 (--host/--port, or $GRADIO_SERVER_NAME/$GRADIO_SERVER_PORT as Spaces set them).
The model is loaded once at start; requests queue (`--concurrency` at a time). It runs offline: no analytics, no
web fonts, nothing downloaded when the model is local. The button streams: each sentence plays as soon as it is
spoken. A voice exports as a Piper voice (`ftv_model.piper_export`). All the work is in `ftv_model`, shared with the
CLI; this file is only the user interface.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no analytics, no version ping
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# A long-running demo's memory must stay flat (benchmarks/bench_app_memory.py). oneDNN keeps a compiled kernel per
# input shape and every sentence has its own length: cap its cache (read when torch starts, so before any import).
# The bf16 decoder (--bf16) pads to 32-frame buckets, which bounds its shapes, but needs ~24 kernels per bucket: at
# 64 they were evicted between requests and rebuilt every time (model time 371 ms, as float32's 372; 268 ms at
# 256, benchmarks/bench_app.py), so it gets room for a few buckets.
_bf16_env = os.environ.get("FTV_BF16", "").strip().lower() in {"1", "true", "yes", "on"}  # as synthesis.env_flag
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256" if _bf16_env or "--bf16" in sys.argv[1:] else "64")

import argparse  # noqa: E402
import atexit  # noqa: E402
import base64  # noqa: E402
import contextlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor, wait  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from ftv_model import FTVConfig  # noqa: E402
from ftv_model.loading import (  # noqa: E402
    GET_MODEL_HELP,
    NO_MODEL_HELP,
    add_bfloat16_argument,
    add_model_arguments,
    synthesizer_options,
)
from ftv_model.piper_export import export_piper_voice  # noqa: E402
from ftv_model.serving import release_freed_memory  # noqa: E402
from ftv_model.synthesis import (  # noqa: E402
    MAX_PHOTOS,
    MAX_TEXT_CHARS,
    ModelUnavailableError,
    SynthesisResult,
    Synthesizer,
    save_face_crops,
    wav_bytes,
)
from ftv_model.voice_directions import MAX_STEPS  # noqa: E402
from ftv_model.voice_profile import VoiceProfile  # noqa: E402

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples" / "faces"
OUTPUT_MAX_AGE_S = 3600  # written WAVs are removed after an hour (gradio keeps its own copy for the session)

EXAMPLES = [
    ("london_003.jpg", "Good morning. I would like a cup of tea with milk, please."),
    ("london_005.jpg", "Thank you for coming today. It means a lot to me."),
    ("london_025.jpg", "Could you open the window? It is getting warm in here."),
    ("london_037.jpg", "I will be home a little late tonight, so please start dinner without me."),
]

NOTICE = """\
**Consent and misuse.** Only use a photo of **your own face**, or of someone who has given you permission.
Do not use this to impersonate anyone, to deceive, or to make people believe a real person said something.
The audio is **synthetic speech**: it is a voice *guessed* from a face, not a recording and not the person's real
voice. Every file is marked as synthetic: its name starts with `ftv-synthetic-` and its WAV metadata says so.
Photos and audio are kept on this server only while you use them (deleted within about two hours).
"""

CREDITS = """\
Example faces: Face Research Lab London Set (DeBruine & Jones, 2017,
[doi:10.6084/m9.figshare.5047666](https://doi.org/10.6084/m9.figshare.5047666)), licensed
[CC BY 4.0](https://creativecommons.org/licenses/by/4.0/); the people photographed consented to publication.
The predicted attributes are the model's guesses from the face, which shape the voice. They are not facts about
the person and can be wrong. Where they are marked calibrated, the probabilities were fitted on faces of people the
model never trained on, so a reading at 80% is right about 8 times in 10 on such faces.
"""


def character_count(text: str) -> str:
    """The line under the text box: characters used of `MAX_TEXT_CHARS`, and whether that is too many."""
    over = len(text) > MAX_TEXT_CHARS
    return f"{len(text):,} / {MAX_TEXT_CHARS:,} characters" + (" — too long: shorten it to speak it" if over else "")


def reading_label(name: str, config: object) -> str:
    """The face reading's title: says whether its probabilities are calibrated (`face_attribute_temperatures`)."""
    calibrated = name in (getattr(config, "face_attribute_temperatures", None) or {})
    # one line: a longer label wraps and covers the value under it
    return f"Predicted {name} ({'calibrated' if calibrated else 'uncalibrated'})"


CSS = """
.ftv-banner { border: 2px solid #b45309; background: #fffbeb; color: #451a03; border-radius: 8px; padding: 10px 14px; }
.ftv-banner * { color: #451a03 !important; }
"""

# The advanced settings' sliders: config attribute -> (minimum, maximum, step, label, info); the seed follows them.
SETTING_SLIDERS = {
    "speaking_rate": (0.5, 2.0, 0.05, "Speaking rate", "above 1 speaks faster"),
    "noise_scale": (0.0, 1.5, 0.01, "Noise scale", "variation in the voice (expressiveness)"),
    "noise_scale_duration": (0.0, 1.5, 0.01, "Duration noise scale", "variation in rhythm"),
}
SEED_INFO = "same seed and inputs give the same audio"

# System fonts only: the default theme's fonts are served by gradio itself, but system fonts need no request at all.
THEME = gr.themes.Default(
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)


def with_friendly_upload_errors(image: gr.Image) -> gr.Image:
    """Make upload failures of `image` (not an image, corrupt, absurdly large) reach the user as a clear gr.Error.

    gradio opens uploads with PIL before our function runs and reports a failure there as a generic "Error". The
    instance's preprocess is wrapped rather than gr.Image subclassed: gradio writes a .pyi stub next to the source
    file of every Component subclass, which would litter the repo (and fail on a read-only Space).
    """
    preprocess = image.preprocess

    def checked_preprocess(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception as error:
            name = getattr(payload, "orig_name", None) or "The upload"
            raise user_error(
                f"{name} could not be opened as an image ({type(error).__name__}): upload a JPEG or PNG photo of a "
                "face.",
                "Not an image",
            ) from error

    image.preprocess = checked_preprocess  # type: ignore[method-assign]
    return image


# --------------------------------------------------------------------------------------------------------------------
# Request handling


def _remove_old_outputs(directory: Path, max_age_s: float = OUTPUT_MAX_AGE_S) -> None:
    cutoff = time.time() - max_age_s
    for path in [*directory.glob("ftv-synthetic-*"), *directory.glob("ftv-voice-*")]:  # + crops, Piper exports
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass  # another request removed it first


def _extra_paths(extra: Any) -> list[str]:
    if not extra:
        return []
    items = extra if isinstance(extra, (list, tuple)) else [extra]
    return [str(getattr(item, "name", item)) for item in items if item]


def user_error(message: str, title: str) -> gr.Error:
    """An error toast for the user. Gradio's toast heads every error "Error" whatever its title, so the title leads
    the message too; `CLOSE_TOASTS_JS` clears it once a later request succeeds."""
    return gr.Error(f"{title}: {message}", title=title, print_exception=False)


# After a successful synthesis, error toasts from earlier attempts are stale: close them.
CLOSE_TOASTS_JS = "() => { document.querySelectorAll('[data-testid=\"toast-close\"]').forEach((b) => b.click()); }"

# The live player: the button streams each sentence to it (`speak`) as soon as it is spoken, and it plays them
# in turn. gr.Audio(streaming=True) would need an ffmpeg executable (it re-encodes to AAC) and its HLS player began
# 0.6-1 s after the first chunk; this plays the WAV at once. No download here: the whole text's WAV is below.
LIVE_HTML = "<p>Listen now: each sentence plays when it is ready</p><audio controls controlslist=nodownload></audio>"
LIVE_CSS = "p { margin: 0 0 4px; font-weight: 600; } audio { width: 100%; }"
LIVE_JS = """
const audio = element.querySelector('audio');
let queue = [], run = null, busy = false;
const next = () => {
  const chunk = queue.shift();
  busy = Boolean(chunk);
  if (!chunk) return;
  audio.src = chunk.audio;
  audio.play().catch((error) => {  // a browser that allows no sound without a click on the player itself
    if (error.name === 'NotAllowedError') element.querySelector('p').textContent = 'Press play to listen';
  });
};
audio.addEventListener('ended', next);
watch('value', () => {
  if (!props.value) return;
  const chunk = JSON.parse(props.value);
  if (chunk.run !== run) [run, queue, busy] = [chunk.run, [], false];  // a new click: start over
  queue.push(chunk);
  if (!busy) next();
});
"""
PIPER_NOTE = (
    "Makes the voice above a [Piper](https://github.com/rhasspy/piper) voice for any Piper runtime, with nothing of "
    "ftv installed: `.onnx` and `.onnx.json` (keep them side by side) and a model card. It takes about 10 seconds."
)


@contextlib.contextmanager
def messages_for_users(title: str) -> Iterator[None]:
    """The service's ValueErrors (FaceDetectionError, TextFrontendError, SynthesisError, PiperExportError, ...) carry
    messages meant for users: show them as an error toast headed `title`."""
    try:
        yield
    except ValueError as error:
        raise user_error(str(error), title) from error


def load_voice_settings(voice_file: Any) -> tuple[Any, Any, Any, Any]:
    """An uploaded voice profile sets the advanced settings to the ones it was saved with (still adjustable)."""
    if not voice_file:
        return gr.update(), gr.update(), gr.update(), gr.update()
    with messages_for_users("Cannot read the voice profile"):
        settings = VoiceProfile.load(_extra_paths(voice_file)[0]).settings
    return tuple(
        settings[name] if settings.get(name) is not None else gr.update()
        for name in ("speaking_rate", "noise_scale", "noise_scale_duration", "seed")
    )


Outputs = tuple[str, list[Any], dict[str, float], dict[str, float], str, str]  # audio, crops, gender, race, ...


def make_handlers(
    synthesizer: Synthesizer | None, problem: str | None, output_dir: Path, directions: Sequence[str] = ()
):
    """The Synthesize button's functions, closed over the service that was loaded once at start: `speak` (the
    button: each sentence to the live player as soon as it is spoken, then the outputs) and `synthesize` (the API:
    the same outputs, at once). `directions` names the voice-adjustment sliders whose values come after the seed."""

    def request(
        photo: str | None,
        extra_photos: Any,
        voice_file: Any,
        text: str,
        consent: bool,
        speaking_rate: float,
        noise_scale: float,
        noise_scale_duration: float,
        seed: float | None,
        *amounts: float,
    ) -> tuple[list[Any], dict[str, Any], list[str]]:
        """Check the form (the inputs of both functions): the photos, the synthesizer's other arguments, notes."""
        if synthesizer is None:
            raise user_error(problem or "No model is loaded.", "No model")
        if not consent:
            raise user_error(
                "Please confirm first that this is your face or that you have permission to use it.", "Consent needed"
            )
        photos = ([photo] if photo else []) + _extra_paths(extra_photos)
        voice_path = (_extra_paths(voice_file) or [None])[0]
        if not photos and voice_path is None:
            raise user_error("Add a photo of a face (upload, webcam or paste), or a saved voice profile.", "No photo")
        notes = []
        if voice_path is not None and photos:
            notes.append("The voice profile was used; the photo was not (remove the profile to use the photo).")
            photos = []
        adjustments = dict(zip(directions, (float(a or 0.0) for a in amounts)))
        options = dict(text=text, voice=voice_path, adjustments=adjustments, seed=None if seed is None else int(seed))
        options.update(speaking_rate=speaking_rate, noise_scale=noise_scale, noise_scale_duration=noise_scale_duration)
        return photos, options, notes

    def outputs(result: SynthesisResult, notes: list[str], start: float) -> Outputs:
        """Save the audio and the voice profile; what the page shows of them."""
        _remove_old_outputs(output_dir)
        path = synthesizer.save(result, output_dir)
        profile_name = path.with_suffix(".json").name.replace("ftv-synthetic-", "ftv-voice-")
        profile_path = result.voice.save(output_dir / profile_name)
        result.notes[:0] = notes
        for note in result.notes:
            gr.Warning(note)
        total = time.perf_counter() - start
        timing_names = {"detect": "face detection", "process": "processing", "model": "model", "encode": "encoding"}
        timing = " · ".join(f"{timing_names.get(k, k)} {v * 1000:.0f} ms" for k, v in result.timings.items())
        source = f"{len(result.face_crops)} photo(s)" if result.face_crops else "a saved voice profile"
        lines = [
            f"**{result.duration:.1f} s** of synthetic speech, {len(result.sentences)} sentence(s), "
            f"seed {result.seed}, {source}. Saved as `{path.name}`.",
            *(f"- {note}" for note in result.notes),
            f"Timing: {timing} · total {total * 1000:.0f} ms",
        ]
        if synthesizer.untrained:
            lines.insert(0, "**Untrained model: this audio is noise, not a voice.**")
        readings = [result.attributes.get(attribute, {}) for attribute in ("gender", "race")]
        crops = [str(crop) for crop in save_face_crops(result.face_crops, path)]
        return str(path), crops, *readings, "\n\n".join(lines), str(profile_path)

    def synthesize(*form: Any) -> Outputs:
        start = time.perf_counter()
        photos, options, notes = request(*form)
        with messages_for_users("Cannot synthesize"):
            return outputs(synthesizer.synthesize(photos, **options), notes, start)

    def speak(*form: Any) -> Iterator[tuple[Any, ...]]:
        start = time.perf_counter()
        photos, options, notes = request(*form)
        run = secrets.token_hex(4)  # the player starts over for each click
        with messages_for_users("Cannot synthesize"):
            for index, item in enumerate(synthesizer.stream(photos, **options)):
                if isinstance(item, SynthesisResult):  # the last item: the same result as synthesize's
                    yield gr.update(), *outputs(item, notes, start)
                else:  # a sentence for the live player (LIVE_JS): its synthetic-marked WAV as a data: URL
                    wav = base64.b64encode(wav_bytes(item, synthesizer.sampling_rate)).decode("ascii")
                    chunk = {"run": run, "index": index, "audio": f"data:audio/wav;base64,{wav}"}
                    yield json.dumps(chunk), *(gr.update(),) * 6

    # The API names their inputs after the form's fields (gradio reads them from the signature).
    synthesize.__signature__ = speak.__signature__ = inspect.signature(request)  # type: ignore[attr-defined]
    return synthesize, speak


def make_piper_exporter(synthesizer: Synthesizer | None, problem: str | None, output_dir: Path):
    """The Piper export button's function: the voice profile just made (or any), as a Piper voice in three files."""
    expected_s = [10.0]  # the bundled checkpoint on 2 CPU cores; then, the last export's time

    def export_piper(voice_profile: Any, progress: gr.Progress = gr.Progress()) -> list[str]:  # noqa: B008
        if synthesizer is None:
            raise user_error(problem or "No model is loaded.", "No model")
        path = (_extra_paths(voice_profile) or [None])[0]
        if path is None:
            raise user_error("Synthesize first: the export makes a Piper voice of the voice you made.", "No voice yet")
        stem = Path(path).stem if Path(path).stem.startswith("ftv-voice-") else f"ftv-voice-{secrets.token_hex(3)}"
        start = time.perf_counter()
        with messages_for_users("Cannot export"), ThreadPoolExecutor(1) as pool:
            model, tokenizer = synthesizer.model, synthesizer.processor.tokenizer
            job = pool.submit(export_piper_voice, model, tokenizer, VoiceProfile.load(path), output_dir / stem)
            while wait([job], timeout=0.5).not_done:  # the exporter reports nothing: progress against the estimate
                elapsed = time.perf_counter() - start
                progress(min(0.95, elapsed / expected_s[0]), desc=f"Exporting: about {expected_s[0]:.0f} s")
            paths = job.result()
        expected_s[0] = time.perf_counter() - start
        return [str(p) for p in paths]

    return export_piper


# --------------------------------------------------------------------------------------------------------------------
# Interface


def banner_text(synthesizer: Synthesizer | None, problem: str | None) -> str | None:
    """What the top banner says when the demo cannot speak properly (None when all is well)."""
    if synthesizer is None:
        problem = problem or "No model is loaded."
        how = "" if NO_MODEL_HELP in problem else f"\n\nHow to get one: {NO_MODEL_HELP}"
        return f"### No model loaded: this demo cannot speak yet\n\n{problem}{how}"
    if synthesizer.untrained:
        return (
            "### Untrained model: the audio is noise\n\n"
            f"This demo runs {synthesizer.description}, because untrained weights were explicitly allowed "
            f"(`--allow-untrained`). It shows the pipeline, not a voice. To get a real voice: {GET_MODEL_HELP}"
        )
    return None


def build_demo(
    synthesizer: Synthesizer | None, problem: str | None = None, output_dir: Path | None = None
) -> gr.Blocks:
    """The Blocks UI around an already loaded `Synthesizer` (None: show why and refuse requests)."""
    if output_dir is None:
        output_dir = Path(tempfile.mkdtemp(prefix="ftv-app-"))
        atexit.register(shutil.rmtree, output_dir, ignore_errors=True)
    config = synthesizer.config if synthesizer is not None else FTVConfig()
    banner = banner_text(synthesizer, problem)

    with gr.Blocks(title="ftv: face-to-voice", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# ftv: face-to-voice speech synthesis\n"
            "Type text and give a photo of a face: ftv speaks the text in a voice inferred from the face. It is meant "
            "for people who lost their voice and have no recordings of it."
        )
        if banner:
            gr.Markdown(banner, elem_classes=["ftv-banner"], elem_id="ftv-banner")
        gr.Markdown(NOTICE, elem_id="ftv-notice")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                photo = with_friendly_upload_errors(
                    gr.Image(
                        label="Face photo",
                        sources=["upload", "webcam", "clipboard"],
                        type="filepath",
                        image_mode=None,
                        height=320,
                        elem_id="ftv-photo",
                    )
                )
                extra_photos = gr.File(
                    label=f"More photos of the same person (optional, up to {MAX_PHOTOS - 1}; voices are averaged)",
                    file_count="multiple",
                    file_types=["image"],
                    height=120,
                    elem_id="ftv-extra",
                )
                voice_file = gr.File(
                    label="Or a saved voice profile (optional; speaks in that voice instead of the photo's)",
                    file_types=[".json"],
                    height=80,
                    elem_id="ftv-voice-in",
                )
                # No max_length: the browser would cut pasted text silently; the count shows the limit and a text
                # over it is refused with a message (check_text), never spoken cut off.
                text = gr.Textbox(
                    label="Text to speak",
                    placeholder="Type what you want to say.",
                    lines=3,
                    info=f"Up to {MAX_TEXT_CHARS:,} characters (about a minute of speech); long text is spoken "
                    "sentence by sentence.",
                    elem_id="ftv-text",
                )
                count = gr.Markdown(character_count(""), elem_id="ftv-count")
                consent = gr.Checkbox(
                    label="This is my face, or I have the person's permission to use it.",
                    value=False,
                    elem_id="ftv-consent",
                )
                with gr.Accordion("Advanced settings", open=False):
                    speaking_rate, noise_scale, noise_scale_duration = (
                        gr.Slider(low, high, value=getattr(config, name), step=step, label=label, info=info)
                        for name, (low, high, step, label, info) in SETTING_SLIDERS.items()
                    )
                    seed = gr.Number(0, precision=0, minimum=0, maximum=2**31 - 2, label="Seed", info=SEED_INFO)
                directions = list(config.voice_directions)
                sliders = []
                if directions:
                    with gr.Accordion("Adjust the voice", open=False, elem_id="ftv-adjust"):
                        for name in directions:
                            direction = config.voice_directions[name]
                            sliders.append(
                                gr.Slider(
                                    -MAX_STEPS,
                                    MAX_STEPS,
                                    value=0.0,
                                    step=0.25,
                                    label=f"{name.title()}: {direction.get('low', 'less')} <-> "
                                    f"{direction.get('high', 'more')}",
                                    info="steps; 1 is an ordinary difference between two people; saved in the profile",
                                    elem_id=f"ftv-adjust-{name}",
                                )
                            )
                button = gr.Button(
                    "Synthesize", variant="primary", elem_id="ftv-synthesize", interactive=synthesizer is not None
                )
            with gr.Column(scale=1):
                live = gr.HTML(html_template=LIVE_HTML, css_template=LIVE_CSS, js_on_load=LIVE_JS, elem_id="ftv-live")
                audio = gr.Audio(
                    label="Synthetic speech (the whole text)",
                    type="filepath",
                    format="wav",
                    interactive=False,
                    buttons=["download"],
                    elem_id="ftv-audio",
                )
                voice_out = gr.File(
                    label="This voice as a profile (download it to speak in this voice again, no photo needed)",
                    interactive=False,
                    height=80,
                    elem_id="ftv-voice-out",
                )
                with gr.Accordion("Use this voice in Piper", open=False, elem_id="ftv-piper"):
                    gr.Markdown(PIPER_NOTE)
                    export_button = gr.Button(
                        "Export as a Piper voice", elem_id="ftv-export-piper", interactive=synthesizer is not None
                    )
                    piper_files = gr.File(
                        label="Piper voice files", file_count="multiple", interactive=False, elem_id="ftv-piper-files"
                    )
                details = gr.Markdown(label="Details", elem_id="ftv-details")
                # The caption sits above the gallery: as the gallery's own label it covered the crop's top edge.
                gr.Markdown("**Face crop(s) the model used**", elem_id="ftv-crops-caption")
                with gr.Row():
                    crops = gr.Gallery(
                        label="Face crop(s) the model used",
                        show_label=False,
                        columns=4,
                        fit_columns=False,
                        object_fit="contain",
                        height=150,
                        allow_preview=False,
                        elem_id="ftv-crops",
                    )
                with gr.Row():
                    gender = gr.Label(label=reading_label("gender", config), num_top_classes=2, elem_id="ftv-gender")
                    race = gr.Label(label=reading_label("race", config), num_top_classes=6, elem_id="ftv-race")
        gr.Examples(
            examples=[[str(EXAMPLES_DIR / name), sentence] for name, sentence in EXAMPLES],
            inputs=[photo, text],
            label="Examples (Face Research Lab London Set, CC BY 4.0)",
            cache_examples=False,
        )
        gr.Markdown(CREDITS, elem_id="ftv-credits")

        text.change(
            character_count, inputs=text, outputs=count, queue=False, show_progress="hidden", trigger_mode="always_last"
        )
        settings = [speaking_rate, noise_scale, noise_scale_duration, seed]
        form = [photo, extra_photos, voice_file, text, consent, *settings, *sliders]
        results = [audio, crops, gender, race, details, voice_out]
        synthesize, speak = make_handlers(synthesizer, problem, output_dir, directions)
        export_piper = make_piper_exporter(synthesizer, problem, output_dir)
        # One model, one request at a time: the button, the API and the export share the queue's concurrency limit.
        button.click(
            speak, form, [live, *results], api_name="speak", show_progress_on=results, concurrency_id="model"
        ).success(None, js=CLOSE_TOASTS_JS, queue=False)
        gr.on([], synthesize, form, results, api_name="synthesize", concurrency_id="model")  # the API; no button
        export_button.click(export_piper, voice_out, piper_files, api_name="export_piper", concurrency_id="model")
        voice_file.upload(load_voice_settings, voice_file, settings, queue=False, api_name="load_voice_settings")
    return demo


# --------------------------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="ftv demo: speak text in a voice inferred from a face photo.")
    add_model_arguments(parser)
    add_bfloat16_argument(parser)
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (default 127.0.0.1; 0.0.0.0 to serve your network)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests processed at once; others wait in the queue (default 1: the model uses all cores)",
    )
    parser.add_argument(
        "--detector", default="auto", choices=("auto", "s3fd", "dlib", "haar"), help="face detector backend"
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    return parser.parse_args(argv)


def load_synthesizer(args: argparse.Namespace) -> tuple[Synthesizer | None, str | None]:
    """Load the model once; when that is impossible, return why (the app then starts and shows it)."""
    try:
        synthesizer = Synthesizer(args.model, **synthesizer_options(args))
    except ModelUnavailableError as error:
        return None, str(error)
    return synthesizer, None


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    release_freed_memory()  # before the model's buffers are allocated
    synthesizer, problem = load_synthesizer(args)
    if synthesizer is None:
        print(f"ftv: {problem}", file=sys.stderr, flush=True)
    else:
        print(f"ftv: serving {synthesizer.description}", flush=True)
    demo = build_demo(synthesizer, problem)
    demo.queue(default_concurrency_limit=max(1, args.concurrency), max_size=64)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        theme=THEME,
        css=CSS,
        allowed_paths=[str(EXAMPLES_DIR)],
        max_file_size="25mb",
        ssr_mode=False,
        footer_links=["api"],
    )


if __name__ == "__main__":
    main()

"""Accuracy and speed of the ``ocr`` analyzer: tuned rapidocr vs its defaults vs Tesseract.

Run from the repository root::

    python bench/acc_ocr.py            # full sets, a few minutes on 2 cores
    python bench/acc_ocr.py --quick    # 15 rendered lines, fewer photos

Seeded sets, all generated here (nothing is downloaded):

1. **rendered lines** -- one line of English (words, digits, punctuation) per
   image, rendered with Pillow in the TrueType fonts found on the machine
   (DejaVu, Liberation), 14..40 px, varied ink and paper colours, rotated by up
   to +-5 degrees; 50 lines (15 with ``--quick``).
2. **photographs** -- scikit-image's ``data.page()`` (a photographed book page,
   transcribed by hand below) and scikit-image photos with text overlaid: 1..3
   phrases each in varied colour, size and position, some on a semi-transparent
   box, some with a shadow, some slightly rotated, the photo upscaled to a
   realistic size and JPEG-compressed.
3. **small text on photos** -- 1..2 phrases at 12..22 px on 1200..1600 px photos:
   what the detector's coarse look (``det_coarse_side``) may miss; for
   information (no goal).
4. ``data.text()`` -- handwritten formulas photographed at an angle; reported
   for information only (its transcription is a best effort and neither engine
   is made for handwriting).

CER is the Levenshtein distance between the recognised text and the truth,
both with whitespace runs (newlines included) collapsed to one space, divided
by the truth's length, summed over a set (so it is a per-character rate).
Seconds are per image, wall time of ``analyze`` (model loading excluded: each
engine reads one warm-up image first).

``run(quick)`` returns table rows ``{"analyzer", "metric", "value", "goal", "ok"}``.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/acc_ocr.py` puts bench/ first
    sys.path.insert(0, str(REPO_ROOT))

SEED = 20240611

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Invoice #4821 is due on 2024-03-15.",
    "Total: $1,299.00 (VAT included)",
    "Please call +1 (555) 010-7788 before noon.",
    "Meeting moved to Room 12B, third floor.",
    "Open Monday to Friday, 9:00 - 17:30",
    "Keep out of reach of children.",
    "Contact: support@example.com",
    "Version 3.14.2 released on 12 May 2023",
    "Batch No. A7-0093 / Exp. 11/2026",
    "All trains to Central Station are delayed.",
    "Store in a cool, dry place below 25 C.",
    "Press the red button twice to reset.",
    "Chapter 7: Rivers, Lakes and Wetlands",
    "Hello, World! How are you today?",
    "Serial number: XK-2291-QP-07",
    "Emergency exit only; alarm will sound.",
    "Fresh bread baked daily since 1952",
    "Order 36 items and save 15 percent.",
    "Latitude 48.8583, longitude 2.2945",
    "Do not bend, fold or staple this form.",
    "Wi-Fi password: GreenTea_2024",
    "She sells sea shells by the sea shore.",
    "Page 42 of 118",
    "Parking for customers only, max 2 hours.",
    "Mix 200 g flour with 3 eggs and milk.",
    "Flight LH 452 boards at gate 23.",
    "Quality is not an act, it is a habit.",
    "Room temperature: 21.5 C, humidity 40%",
    "Tickets: adults 12, children 6, under 3 free",
]

PHRASES = [
    "SUMMER SALE",
    "50% OFF",
    "Grand Opening",
    "Welcome Home",
    "Main Street",
    "Coffee & Cake",
    "No Parking",
    "Exit",
    "Happy Birthday",
    "Est. 1987",
    "Open 24 Hours",
    "Mission Control",
    "Free Wi-Fi",
    "Live Music Tonight",
    "Bus Stop 14",
    "Fresh Fish",
    "Hotel Europa",
    "Platform 9",
    "Best Pizza in Town",
    "Caution: Wet Floor",
]

#: ``data.page()``, read off the image (the cut-off line at its bottom edge is left out).
PAGE_TRUTH = (
    "Region-based segmentation\n"
    "Let us first determine markers of the coins and the\n"
    "background. These markers are pixels that we can label\n"
    "unambiguously as either object or background. Here,\n"
    "the markers are found at the two extreme parts of the\n"
    "histogram of grey values:\n"
    ">>> markers = np.zeros_like(coins)"
)

#: ``data.text()``: handwritten Laplace-transform formulas, read as well as can be.
HANDWRITTEN_TRUTH = "(s) = -\n(t - x) e 2s\nf(s) = -1 t n\ns"

FONT_NAMES = [
    "DejaVuSans.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif-Italic.ttf",
    "LiberationSans-Regular.ttf",
    "LiberationSerif-Regular.ttf",
    "LiberationMono-Regular.ttf",
    "LiberationSans-Bold.ttf",
    "LiberationSansNarrow-Regular.ttf",
    "LiberationSerif-Italic.ttf",
]
FONT_DIRS = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]

#: Photos without text of their own at these sizes (the astronaut's name tag is legible
#: once upscaled, and the coins are inscribed).
PHOTOS = [
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "brick",
    "moon",
]


@dataclass
class Sample:
    name: str
    rgb: np.ndarray
    truth: str


# -- text metrics ---------------------------------------------------------------------------


def normalise(text: str) -> str:
    """NFKC, whitespace runs (newlines too) to one space, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(pairs: Sequence[tuple[str, str]]) -> float:
    """Character error rate over (hypothesis, truth) pairs: total edits / total truth chars."""
    edits = sum(edit_distance(normalise(h), normalise(t)) for h, t in pairs)
    chars = sum(len(normalise(t)) for _, t in pairs)
    return edits / max(chars, 1)


# -- data sets -----------------------------------------------------------------------------


def find_fonts() -> list[Path]:
    """The TrueType fonts of FONT_NAMES that exist here, in that order."""
    found: dict[str, Path] = {}
    for root in FONT_DIRS:
        if root.is_dir():
            for path in root.rglob("*.ttf"):
                found.setdefault(path.name, path)
    return [found[name] for name in FONT_NAMES if name in found]


def _paper_and_ink(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A light paper and a dark ink colour (contrast well above what print has)."""
    paper = tuple(rng.randint(200, 255) for _ in range(3))
    ink = tuple(rng.randint(0, 90) for _ in range(3))
    return paper, ink  # type: ignore[return-value]


def render_line(
    text: str,
    font: ImageFont.FreeTypeFont,
    ink: tuple[int, int, int],
    paper: tuple[int, int, int],
    angle: float = 0.0,
    pad: int = 12,
) -> np.ndarray:
    """One line of text on a plain background, rotated ``angle`` degrees (CCW)."""
    left, top, right, bottom = font.getbbox(text)
    width, height = right - left + 2 * pad, bottom - top + 2 * pad
    image = Image.new("RGB", (width, height), paper)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, font=font, fill=ink)
    if angle:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=paper)
    return np.asarray(image)


def rendered_lines(count: int, seed: int = SEED) -> list[Sample]:
    rng = random.Random(seed)
    fonts = find_fonts()
    if not fonts:
        raise RuntimeError("no TrueType font found: apt-get install fonts-dejavu-core")
    samples = []
    for index in range(count):
        text = SENTENCES[index % len(SENTENCES)]
        font_path = fonts[index % len(fonts)]
        size = rng.randint(14, 40)
        font = ImageFont.truetype(str(font_path), size)
        paper, ink = _paper_and_ink(rng)
        angle = rng.uniform(-5.0, 5.0)
        rgb = render_line(text, font, ink, paper, angle, pad=rng.randint(6, 30))
        samples.append(Sample(f"line{index:02d}-{font_path.stem}-{size}px", rgb, text))
    return samples


def render_paragraph(
    lines: Sequence[str],
    font: ImageFont.FreeTypeFont,
    ink: tuple[int, int, int],
    paper: tuple[int, int, int],
    spacing: float = 1.4,
    angle: float = 0.0,
    pad: int = 24,
) -> np.ndarray:
    """Left-aligned lines ``spacing`` x the font size apart, rotated ``angle`` degrees."""
    step = round(font.size * spacing)
    width = max(font.getbbox(line)[2] for line in lines) + 2 * pad
    height = step * (len(lines) - 1) + font.size + 2 * pad
    image = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((pad, pad + row * step), line, font=font, fill=ink)
    if angle:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=paper)
    return np.asarray(image)


def rotated_paragraphs(count: int, seed: int = SEED) -> list[Sample]:
    """2..4 line paragraphs rotated by -30..30 degrees, a third light on dark."""
    rng = random.Random(seed + 2)
    fonts = find_fonts()
    samples = []
    for index in range(count):
        lines = rng.sample(SENTENCES, rng.randint(2, 4))
        font = ImageFont.truetype(str(fonts[(index * 5) % len(fonts)]), rng.randint(16, 36))
        paper, ink = _paper_and_ink(rng)
        if index % 3 == 2:
            paper, ink = ink, paper
        angle = rng.uniform(-30.0, 30.0)
        rgb = render_paragraph(lines, font, ink, paper, rng.uniform(1.2, 1.7), angle)
        tag = "inverted-" if index % 3 == 2 else ""
        samples.append(Sample(f"para{index:02d}-{tag}{angle:+.0f}deg", rgb, "\n".join(lines)))
    return samples


def document_pages(count: int, seed: int = SEED) -> list[Sample]:
    """Letter-sized pages at 100 dpi (850 x 1100 px): a title over one column of
    12 px..16 px text, every other page in two columns (read a column at a time)."""
    rng = random.Random(seed + 3)
    fonts = [f for f in find_fonts() if "Mono" not in f.name] or find_fonts()
    samples = []
    for index in range(count):
        font_path = fonts[index % len(fonts)]
        size = rng.randint(14, 18)
        font = ImageFont.truetype(str(font_path), size)
        title_font = ImageFont.truetype(str(font_path), size * 2)
        page = Image.new("RGB", (850, 1100), (255, 255, 255))
        draw = ImageDraw.Draw(page)
        title = rng.choice(PHRASES)
        draw.text((60, 50), title, font=title_font, fill=(0, 0, 0))
        columns = 2 if index % 2 else 1
        column_width = (850 - 120 - 40 * (columns - 1)) // columns
        truth = [title]
        step = round(size * 1.45)
        words = " ".join(rng.choice(SENTENCES) for _ in range(80)).split()
        for column in range(columns):
            x = 60 + column * (column_width + 40)
            y = 50 + size * 2 * 2
            while y + step < 1040 and words:
                line = words.pop(0)
                while words and font.getlength(line + " " + words[0]) <= column_width:
                    line += " " + words.pop(0)
                draw.text((x, y), line, font=font, fill=(0, 0, 0))
                truth.append(line)
                y += step
        samples.append(
            Sample(
                f"page{index}-{columns}col-{font_path.stem}-{size}px",
                np.asarray(page),
                "\n".join(truth),
            )
        )
    return samples


def _photo(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _text_layer(
    text: str,
    font: ImageFont.FreeTypeFont,
    fill: tuple[int, int, int],
    box: tuple[int, int, int, int] | None,
    shadow: bool,
    angle: float,
) -> Image.Image:
    """An RGBA tile with the text (and its optional box and shadow), rotated."""
    left, top, right, bottom = font.getbbox(text)
    pad = max(6, font.size // 3)
    width, height = right - left + 2 * pad, bottom - top + 2 * pad
    tile = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    if box is not None:
        draw.rectangle((0, 0, width - 1, height - 1), fill=box)
    if shadow:
        shade = Image.new("RGBA", tile.size, (0, 0, 0, 0))
        offset = max(1, font.size // 15)
        ImageDraw.Draw(shade).text(
            (pad - left + offset, pad - top + offset), text, font=font, fill=(0, 0, 0, 170)
        )
        tile = Image.alpha_composite(tile, shade.filter(ImageFilter.GaussianBlur(1)))
        draw = ImageDraw.Draw(tile)
    draw.text((pad - left, pad - top), text, font=font, fill=(*fill, 255))
    if angle:
        tile = tile.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return tile


def _overlaid_photo(
    rng: random.Random,
    name: str,
    target: int,
    phrases: list[str],
    tile_for: Callable[[str], Image.Image],
    quality: Callable[[], int],
) -> tuple[np.ndarray, str]:
    """Photo ``name`` scaled to ``target`` px with one phrase per horizontal band (reading
    order), JPEG-encoded at ``quality()``; the phrases that fit are the ground truth."""
    base = Image.fromarray(_photo(name))
    scale = target / max(base.size)
    base = base.resize(
        (round(base.width * scale), round(base.height * scale)), Image.Resampling.LANCZOS
    ).convert("RGBA")
    band = base.height // len(phrases)
    truth = []
    for row, phrase in enumerate(phrases):
        tile = tile_for(phrase)
        if tile.width >= base.width or tile.height >= band:
            continue
        x = rng.randint(0, base.width - tile.width)
        y = row * band + rng.randint(0, band - tile.height)
        base.alpha_composite(tile, (x, y))
        truth.append(phrase)
    buffer = io.BytesIO()
    base.convert("RGB").save(buffer, "JPEG", quality=quality())
    return np.asarray(Image.open(buffer).convert("RGB")), "\n".join(truth)


def photo_overlays(count: int, seed: int = SEED) -> list[Sample]:
    """Photos with 1..3 phrases each, placed in separate horizontal bands (reading order)."""
    rng = random.Random(seed + 1)
    fonts = find_fonts()
    colours = [(255, 255, 255), (15, 15, 15), (255, 221, 0), (220, 30, 30), (40, 90, 230)]
    samples = []
    for index in range(count):
        name = PHOTOS[index % len(PHOTOS)]
        target = rng.choice([800, 1200, 1600])

        def tile_for(phrase: str, target: int = target) -> Image.Image:
            font = ImageFont.truetype(str(rng.choice(fonts)), rng.randint(22, 72) * target // 1200)
            fill = rng.choice(colours)
            boxed = rng.random() < 0.4
            box = None
            if boxed:
                dark = sum(fill) > 380
                box = (0, 0, 0, rng.randint(100, 170)) if dark else (255, 255, 255, 150)
            return _text_layer(
                phrase, font, fill, box, shadow=rng.random() < 0.3, angle=rng.uniform(-8, 8)
            )

        phrases = rng.sample(PHRASES, rng.randint(1, 3))
        rgb, truth = _overlaid_photo(
            rng, name, target, phrases, tile_for, lambda: rng.randint(75, 92)
        )
        samples.append(Sample(f"photo{index:02d}-{name}-{target}px", rgb, truth))
    return samples


def small_text_photos(count: int, seed: int = SEED) -> list[Sample]:
    """~1..1.7 MP photos with 1..2 small phrases (fonts 12..22 px: captions, signs far
    away), the case a coarse look for text could miss; the photo's own text may be
    read too and counts against the engine (the same for every option compared)."""
    rng = random.Random(seed + 4)
    fonts = find_fonts()
    colours = [(255, 255, 255), (15, 15, 15), (255, 221, 0)]
    samples = []
    for index in range(count):
        name = PHOTOS[index % len(PHOTOS)]
        target = rng.choice([1200, 1400, 1600])

        def tile_for(phrase: str) -> Image.Image:
            font = ImageFont.truetype(str(rng.choice(fonts)), rng.randint(12, 22))
            fill = rng.choice(colours)
            box = (0, 0, 0, 140) if sum(fill) > 380 else (255, 255, 255, 150)
            return _text_layer(
                phrase, font, fill, box if rng.random() < 0.5 else None, False, rng.uniform(-3, 3)
            )

        phrases = rng.sample(PHRASES, rng.randint(1, 2))
        rgb, truth = _overlaid_photo(rng, name, target, phrases, tile_for, lambda: 90)
        samples.append(Sample(f"small{index:02d}-{name}-{target}px", rgb, truth))
    return samples


def skimage_page() -> Sample:
    from skimage import data

    page = data.page()
    return Sample("skimage-page", np.ascontiguousarray(np.stack([page] * 3, -1)), PAGE_TRUTH)


def skimage_text() -> Sample:
    from skimage import data

    text = data.text()
    return Sample("skimage-text", np.ascontiguousarray(np.stack([text] * 3, -1)), HANDWRITTEN_TRUTH)


# -- engines -------------------------------------------------------------------------------

Reader = Callable[[np.ndarray], str]


def tuned_reader() -> Reader:
    from opensight.analyzers.ocr import DEFAULTS, read_text

    return lambda rgb: str(read_text(rgb, DEFAULTS, "rapidocr")["text"])


def defaults_reader() -> Reader:
    """``RapidOCR()`` exactly as installed (its config.yaml), lines in its own order."""
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()

    def read(rgb: np.ndarray) -> str:
        result, _ = engine(np.ascontiguousarray(rgb[..., ::-1]))  # it expects BGR arrays
        return "\n".join(str(item[1]) for item in result or [])

    return read


def tesseract_reader() -> Reader | None:
    """Tesseract through the analyzer (psm 3, eng); installs it with apt when missing."""
    from opensight.analyzers.ocr import OcrOptions, read_text, tesseract_binary

    if tesseract_binary() is None and shutil.which("apt-get") and os.geteuid() == 0:
        print("tesseract is missing: apt-get install -y tesseract-ocr ...", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "tesseract-ocr"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    if tesseract_binary() is None:
        return None
    opts = OcrOptions(engine="tesseract")
    return lambda rgb: str(read_text(rgb, opts, "tesseract")["text"])


@dataclass
class Score:
    cer: float
    seconds: float
    """Wall time per image."""
    cpu: float
    """CPU time per image, this process and its children (Tesseract) together."""
    texts: list[str]


def _cpu_now() -> float:
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def score_all(readers: dict[str, Reader], samples: Sequence[Sample]) -> dict[str, Score]:
    """Run every reader on every sample, alternating the order per sample (shared
    machines drift; alternating spreads the drift over all readers)."""
    names = list(readers)
    wall = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    texts: dict[str, list[str]] = {name: [] for name in names}
    for index, sample in enumerate(samples):
        for name in names if index % 2 == 0 else names[::-1]:
            started, cpu_started = time.perf_counter(), _cpu_now()
            text = readers[name](sample.rgb)
            wall[name] += time.perf_counter() - started
            cpu[name] += _cpu_now() - cpu_started
            texts[name].append(text)
    count = max(len(samples), 1)
    return {
        name: Score(
            cer([(t, s.truth) for t, s in zip(texts[name], samples, strict=True)]),
            wall[name] / count,
            cpu[name] / count,
            texts[name],
        )
        for name in names
    }


# -- the table -----------------------------------------------------------------------------

TUNED, STOCK, TESSERACT = "rapidocr-tuned", "rapidocr-defaults", "tesseract"


def _row(metric: str, value: float | str, goal: str = "", ok: bool | None = None) -> dict[str, Any]:
    if isinstance(value, float):
        value = round(value, 4)
    return {"analyzer": "ocr", "metric": metric, "value": value, "goal": goal, "ok": ok}


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Score the engines on the seeded sets; one row per (set, engine, measure) plus goals."""
    readers: dict[str, Reader] = {TUNED: tuned_reader(), STOCK: defaults_reader()}
    tesseract = tesseract_reader()
    if tesseract is not None:
        readers[TESSERACT] = tesseract
    warm = rendered_lines(1, seed=SEED + 100)[0].rgb
    for reader in readers.values():  # model loading is not what we time
        reader(warm)

    sets = {
        "rendered lines": rendered_lines(15 if quick else 50),
        "rotated paragraphs": rotated_paragraphs(8 if quick else 24),
        "document pages": document_pages(1 if quick else 4),
        "photo overlays": photo_overlays(7 if quick else 14),
        "small text on photos": small_text_photos(6 if quick else 12),
        "skimage page": [skimage_page()],
        "skimage text (handwriting)": [skimage_text()],
    }
    rows: list[dict[str, Any]] = [
        _row("fonts", ", ".join(p.stem for p in find_fonts())),
        _row("engines", ", ".join(readers) + ("" if tesseract else " (tesseract: not installed)")),
    ]
    scores: dict[str, dict[str, Score]] = {}
    for set_name, samples in sets.items():
        scores[set_name] = score_all(readers, samples)
        for engine, score in scores[set_name].items():
            rows.append(_row(f"{set_name} ({len(samples)}): CER, {engine}", score.cer))
            rows.append(_row(f"{set_name}: s/image, {engine}", score.seconds))
            rows.append(_row(f"{set_name}: CPU s/image, {engine}", score.cpu))

    # photographs = the overlays and the page, pooled per character
    photo_sets = ("photo overlays", "skimage page")
    photo_cer = {}
    for engine in readers:
        pairs = [
            (text, sample.truth)
            for set_name in photo_sets
            for text, sample in zip(scores[set_name][engine].texts, sets[set_name], strict=True)
        ]
        photo_cer[engine] = cer(pairs)
        rows.append(_row(f"photographs (overlays + page): CER, {engine}", photo_cer[engine]))

    lines = scores["rendered lines"]
    tuned_cer = lines[TUNED].cer
    rows.append(
        _row("goal: rendered lines CER, rapidocr-tuned", tuned_cer, "<= 0.02", tuned_cer <= 0.02)
    )
    rows.append(
        _row(
            "goal: rendered lines s/image, tuned vs defaults",
            f"{lines[TUNED].seconds:.3f} vs {lines[STOCK].seconds:.3f}",
            "tuned faster",
            lines[TUNED].seconds < lines[STOCK].seconds,
        )
    )
    if TESSERACT in readers:
        for set_name in ("rendered lines", "document pages"):
            t, s = scores[set_name][TUNED].cer, scores[set_name][TESSERACT].cer
            rows.append(
                _row(
                    f"goal: {set_name} CER, tuned vs tesseract",
                    f"{t:.4f} vs {s:.4f}",
                    "<= tesseract",
                    t <= s,
                )
            )
        t, s = photo_cer[TUNED], photo_cer[TESSERACT]
        rows.append(
            _row(
                "goal: photographs CER, tuned vs tesseract",
                f"{t:.4f} vs {s:.4f}",
                "<= tesseract",
                t <= s,
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sets (about a minute)")
    args = parser.parse_args(argv)
    rows = run(quick=args.quick)
    width = max(len(str(r["metric"])) for r in rows)
    print(f"{'metric':<{width}}  {'value':>20}  {'goal':<14} ok")
    for r in rows:
        ok = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        value = r["value"]
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        if len(shown) > 20:
            print(f"{r['metric']:<{width}}  {'':>20}  {r['goal']:<14} {ok}\n    {shown}")
        else:
            print(f"{r['metric']:<{width}}  {shown:>20}  {r['goal']:<14} {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

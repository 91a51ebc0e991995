"""Procedural synthetic flowers: one style table row per class, one renderer for all.

A flower is drawn in polar coordinates around its centre: each petal ring is a profile
function r_max(angle within petal) repeated `petals` times, filled with a radial colour
gradient and optional veins or spots; then a centre disc (plain, seeded like a sunflower,
or with stamens). Three classes are not radial and have their own layout (a lavender
spike, a hydrangea cluster of florets, a tulip cup seen from the side). Every image varies
pose, scale, position, number of blooms, background and noise; palettes overlap between
classes (pink, white, yellow and purple flowers each appear in several classes), so the
mean colour alone does not tell the class: shape does.

Everything is a pure function of (class slug, seed): `render_flower(slug, seed)` returns
the same pixels every time.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
from PIL import Image, ImageFilter

RGB = tuple[int, int, int]

# Shared palettes: deliberately reused across classes.
WHITE: RGB = (245, 244, 238)
CREAM: RGB = (250, 240, 205)
YELLOW: RGB = (250, 210, 40)
GOLD: RGB = (240, 170, 20)
ORANGE: RGB = (245, 130, 30)
RED: RGB = (205, 25, 40)
CRIMSON: RGB = (150, 10, 40)
PINK: RGB = (245, 150, 185)
PALE_PINK: RGB = (250, 205, 220)
MAGENTA: RGB = (210, 40, 140)
PURPLE: RGB = (130, 60, 170)
VIOLET: RGB = (95, 70, 200)
BLUE: RGB = (80, 110, 215)
BROWN: RGB = (90, 55, 25)
DARK: RGB = (45, 25, 20)
GREEN: RGB = (70, 140, 50)


@dataclasses.dataclass(frozen=True)
class Ring:
    """One ring of identical petals."""

    shape: str  # key of PETAL_PROFILES
    scale: float = 1.0  # ring radius relative to the flower radius
    width: float = 1.0  # petal angular width (1 = petals touch)
    shade: float = 0.0  # darken (-) or lighten (+) this ring's colour
    offset: float = 0.0  # rotation in petal periods


@dataclasses.dataclass(frozen=True)
class FlowerStyle:
    layout: str  # radial | spike | cluster | cup
    petals: tuple[int, int]  # inclusive range of petals per ring
    rings: tuple[Ring, ...]
    palettes: tuple[RGB, ...]
    center: RGB | None
    center_size: float  # centre radius relative to the flower radius
    center_kind: str = "plain"  # plain | seeds | stamens | eye | star
    tip_gradient: float = 0.0  # colour change from base to tip (+ lighter tip)
    veins: int = 0  # vein lines per petal
    spots: bool = False
    blooms: tuple[int, int] = (1, 1)
    radius: tuple[float, float] = (0.28, 0.42)  # flower radius relative to the image size
    extras: tuple[str, ...] = ()  # scene parts: branch (blooms along a dark twig), calyx, leaves


R = Ring
STYLES: dict[str, FlowerStyle] = {
    "daisy": FlowerStyle(
        "radial", (16, 22), (R("ray", width=0.75),), (WHITE, CREAM, PALE_PINK), YELLOW, 0.24, "seeds", tip_gradient=0.05
    ),
    "dandelion": FlowerStyle(
        "radial",
        (40, 56),
        (R("ray", width=0.7), R("ray", 0.78, 0.7, -0.08, 0.5), R("ray", 0.55, 0.7, -0.15, 0.25)),
        (YELLOW, GOLD),
        GOLD,
        0.12,
    ),
    "rose": FlowerStyle(
        "radial",
        (5, 6),
        (
            R("round"),
            R("round", 0.8, 1.0, -0.1, 0.5),
            R("round", 0.6, 1.0, -0.2, 0.2),
            R("round", 0.42, 1.0, -0.3, 0.7),
            R("round", 0.26, 1.0, -0.4, 0.4),
        ),
        (RED, CRIMSON, PINK, YELLOW, WHITE),
        None,
        0.0,
        tip_gradient=-0.15,
    ),
    "sunflower": FlowerStyle(
        "radial",
        (20, 28),
        (R("pointed", width=0.9), R("pointed", 0.92, 0.9, -0.1, 0.5)),
        (YELLOW, GOLD),
        BROWN,
        0.45,
        "seeds",
    ),
    "tulip": FlowerStyle("cup", (3, 3), (R("pointed"),), (RED, YELLOW, PINK, PURPLE, WHITE, ORANGE), None, 0.0),
    "lotus": FlowerStyle(
        "radial",
        (8, 10),
        (R("pointed", width=0.85), R("pointed", 0.75, 0.85, -0.05, 0.5)),
        (PINK, PALE_PINK, WHITE),
        YELLOW,
        0.2,
        "seeds",
        tip_gradient=-0.25,
    ),
    "lily": FlowerStyle(
        "radial",
        (6, 6),
        (R("pointed", width=0.8), R("pointed", 0.9, 0.55, -0.05, 0.5)),
        (WHITE, PINK, ORANGE, YELLOW),
        None,
        0.0,
        "stamens",
        veins=1,
        spots=True,
    ),
    "orchid": FlowerStyle(
        "radial", (5, 5), (R("orchid", width=1.0),), (MAGENTA, WHITE, PURPLE, PALE_PINK), YELLOW, 0.18, "eye", veins=3
    ),
    "peony": FlowerStyle(
        "radial",
        (7, 9),
        (
            R("ruffled"),
            R("ruffled", 0.85, 1.0, -0.06, 0.5),
            R("ruffled", 0.7, 1.0, -0.12, 0.25),
            R("ruffled", 0.55, 1.0, -0.18, 0.75),
            R("ruffled", 0.4, 1.0, -0.24, 0.1),
        ),
        (PINK, PALE_PINK, MAGENTA, WHITE, RED),
        GOLD,
        0.12,
        "seeds",
        tip_gradient=0.15,
        radius=(0.34, 0.46),
        extras=("leaves",),
    ),
    "chrysanthemum": FlowerStyle(
        "radial",
        (28, 36),
        (
            R("ray", width=0.8),
            R("ray", 0.8, 0.8, -0.08, 0.5),
            R("ray", 0.6, 0.8, -0.16, 0.25),
            R("ray", 0.4, 0.8, -0.24, 0.75),
        ),
        (YELLOW, WHITE, ORANGE, PURPLE, MAGENTA),
        None,
        0.0,
    ),
    "carnation": FlowerStyle(
        "radial",
        (9, 12),
        (R("serrated"), R("serrated", 0.78, 1.0, -0.1, 0.5), R("serrated", 0.55, 1.0, -0.2, 0.25)),
        (PINK, RED, WHITE, MAGENTA),
        None,
        0.0,
        tip_gradient=0.45,
        radius=(0.2, 0.28),
        extras=("calyx",),
    ),
    "hibiscus": FlowerStyle("radial", (5, 5), (R("broad"),), (RED, PINK, ORANGE, YELLOW), CRIMSON, 0.3, "eye", veins=5),
    "iris": FlowerStyle(
        "radial",
        (3, 3),
        (R("fall"), R("pointed", 0.7, 0.5, 0.1, 0.5)),
        (VIOLET, PURPLE, BLUE, WHITE),
        YELLOW,
        0.08,
        "star",
        veins=4,
    ),
    "lavender": FlowerStyle("spike", (14, 22), (R("round"),), (PURPLE, VIOLET), None, 0.0, blooms=(3, 7)),
    "magnolia": FlowerStyle(
        "radial",
        (6, 9),
        (R("spoon", width=0.9), R("spoon", 0.8, 0.8, -0.05, 0.5)),
        (WHITE, PALE_PINK, PINK, CREAM),
        CREAM,
        0.1,
        tip_gradient=0.3,
        radius=(0.22, 0.32),
        extras=("branch",),
    ),
    "morning_glory": FlowerStyle(
        "radial", (5, 5), (R("funnel"),), (BLUE, VIOLET, PURPLE, MAGENTA), WHITE, 0.3, "star", veins=1
    ),
    "plum_blossom": FlowerStyle(
        "radial",
        (5, 5),
        (R("round", width=0.95),),
        (WHITE, PINK, RED, PALE_PINK),
        GOLD,
        0.28,
        "stamens",
        blooms=(2, 5),
        radius=(0.12, 0.2),
        extras=("branch",),
    ),
    "cherry_blossom": FlowerStyle(
        "radial",
        (5, 5),
        (R("notched", width=0.95),),
        (PALE_PINK, PINK, WHITE),
        MAGENTA,
        0.12,
        "plain",
        tip_gradient=0.2,
        blooms=(2, 5),
        radius=(0.12, 0.2),
    ),
    "hydrangea": FlowerStyle(
        "cluster",
        (4, 4),
        (R("round"),),
        (BLUE, VIOLET, PINK, PURPLE, WHITE),
        None,
        0.0,
        blooms=(45, 70),
        extras=("leaves",),
    ),
    "azalea": FlowerStyle(
        "radial",
        (5, 5),
        (R("broad", width=0.95),),
        (MAGENTA, PINK, WHITE, RED, ORANGE),
        None,
        0.0,
        "stamens",
        spots=True,
        blooms=(2, 4),
        radius=(0.18, 0.26),
        extras=("leaves",),
    ),
}


def _profile(shape: str, u: np.ndarray, theta_n: np.ndarray) -> np.ndarray:
    """Petal edge radius (0..1) at petal coordinate u in [-0.5, 0.5]."""
    a = np.abs(u)
    if shape == "round":
        return np.sqrt(np.clip(1 - (2 * a) ** 2, 0, 1)) * 0.35 + 0.65
    if shape == "ray":
        return np.where(a < 0.32, 1.0 - 0.6 * (a / 0.32) ** 6, 0.0)
    if shape == "pointed":
        return np.clip(1 - 2 * a, 0, 1) ** 0.6
    if shape == "notched":
        return np.sqrt(np.clip(1 - (2 * a) ** 2, 0, 1)) ** 0.4 * (1 - 0.22 * np.exp(-((u / 0.07) ** 2)))
    if shape == "ruffled":
        return (0.8 + 0.2 * np.cos(np.pi * u)) * (1 + 0.06 * np.sin(theta_n * 7))
    if shape == "serrated":
        return (0.82 + 0.18 * np.cos(np.pi * u)) * (1 - 0.22 * np.abs(np.sin(theta_n * 5)))
    if shape == "broad":
        return 0.75 + 0.25 * np.cos(np.pi * u) ** 0.5
    if shape == "spoon":
        return np.clip(np.cos(np.pi * u), 0, 1) ** 0.25
    if shape == "funnel":
        return 0.9 + 0.1 * np.cos(2 * np.pi * u)
    if shape == "fall":  # iris falls: wide, drooping
        return np.clip(np.cos(np.pi * u), 0, 1) ** 0.35
    if shape == "orchid":  # alternating narrow sepals and wide petals is done by width; lip drawn apart
        return np.clip(np.cos(np.pi * u), 0, 1) ** 0.45
    raise ValueError(f"unknown petal shape {shape!r}")


def _rng(slug: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{slug}:{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _jitter(color: RGB, rng: np.random.Generator, amount: float = 18) -> np.ndarray:
    return np.clip(np.asarray(color, np.float32) + rng.normal(0, amount, 3), 0, 255)


def _shade(color: np.ndarray, amount: float) -> np.ndarray:
    if amount >= 0:
        return color + (255 - color) * amount
    return color * (1 + amount)


def _paint(canvas: np.ndarray, alpha: np.ndarray, color) -> None:
    """Blends `color` (an RGB vector or a per-pixel field) into `canvas` with `alpha`."""
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(alpha.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    color = np.asarray(color, np.float32)
    if color.ndim == 3:
        color = color[box]
    sub = canvas[box]
    sub += alpha[box][..., None] * (color - sub)


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    kind = rng.integers(4)
    top = np.array([(60, 120, 50), (120, 170, 220), (160, 140, 110), (40, 60, 40)][kind], np.float32) + rng.normal(
        0, 20, 3
    )
    bottom = top * rng.uniform(0.5, 1.1) + rng.normal(0, 20, 3)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    canvas = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).copy()
    # Blurry leaves and bokeh blobs.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(rng.integers(3, 9)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
        d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        leaf = np.array(GREEN, np.float32) * rng.uniform(0.4, 1.2) + rng.normal(0, 15, 3)
        _paint(canvas, np.clip(1.5 - d, 0, 1) * rng.uniform(0.3, 0.8), leaf)
    return np.clip(canvas, 0, 255)


def _radial_bloom(canvas, yy, xx, cy, cx, radius, style: FlowerStyle, rng) -> None:
    n = int(rng.integers(style.petals[0], style.petals[1] + 1))
    base = _jitter(style.palettes[rng.integers(len(style.palettes))], rng)
    phi = rng.uniform(0, 2 * np.pi)
    squash = rng.uniform(0.75, 1.0)  # pose: the flower is seen a little from the side
    tilt = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    ry = dy * np.cos(tilt) - dx * np.sin(tilt)
    rx = (dy * np.sin(tilt) + dx * np.cos(tilt)) / squash
    dist = np.sqrt(ry * ry + rx * rx)
    theta = np.arctan2(ry, rx)
    for ring in style.rings:
        r_ring = radius * ring.scale
        theta_n = (theta - phi) * n / (2 * np.pi) + ring.offset
        u = (theta_n - np.floor(theta_n)) - 0.5
        u_w = u / max(ring.width, 1e-3)
        edge = np.where(np.abs(u_w) <= 0.5, _profile(ring.shape, np.clip(u_w, -0.5, 0.5), theta), 0.0)
        if ring.shape == "orchid":  # two wide petals, three narrow sepals
            petal_index = np.floor(theta_n).astype(np.int64) % n
            edge = edge * np.where(petal_index % 2 == 0, 0.75, 1.0)
        r = dist / r_ring
        alpha = np.clip((edge - r) * r_ring / 1.2 + 0.5, 0, 1)
        color = _shade(base, ring.shade)
        t = np.clip(r, 0, 1)[..., None]
        tip = _shade(color, style.tip_gradient) if style.tip_gradient else color
        field = color * (1 - t) + tip * t
        if style.veins:
            vein = np.cos(u * 2 * np.pi * style.veins / max(ring.width, 1e-3)) > 0.93
            field = np.where(vein[..., None], _shade(field, -0.25), field)
        if style.spots:
            spots = (np.sin(dist * 0.9) * np.sin(theta * 23) > 0.75) & (r < 0.55) & (r > 0.2)
            field = np.where(spots[..., None], _shade(field, -0.55), field)
        _paint(canvas, alpha, field)
    if ring.shape == "orchid":  # the lip, a darker pouch below the column
        lip_r = radius * 0.35
        ly, lx = cy + radius * 0.3 * np.cos(tilt), cx + radius * 0.3 * np.sin(tilt)
        d = np.sqrt((yy - ly) ** 2 + (xx - lx) ** 2) / lip_r
        _paint(canvas, np.clip((1 - d) * lip_r / 1.2 + 0.5, 0, 1), _shade(base, -0.35))
    if style.center is not None:
        cr = radius * style.center_size
        d = dist / cr
        alpha = np.clip((1 - d) * cr / 1.2 + 0.5, 0, 1)
        c = _jitter(style.center, rng, 10)
        if style.center_kind == "seeds":
            golden = np.sin(dist * 1.3) * np.sin(theta * 34)
            field = np.where((golden > 0.2)[..., None], _shade(c, -0.3), c)
        elif style.center_kind == "eye":
            field = c * np.clip(d, 0.4, 1)[..., None] + _shade(c, -0.5) * (1 - np.clip(d, 0.4, 1))[..., None]
        elif style.center_kind == "star":
            star = 0.6 + 0.4 * np.cos(theta * n)
            alpha = np.clip((star - d) * cr / 1.2 + 0.5, 0, 1)
            field = c
        else:
            field = c
        _paint(canvas, alpha, field)
    if style.center_kind == "stamens":
        for _ in range(int(rng.integers(8, 16))):
            ang = rng.uniform(0, 2 * np.pi)
            length = radius * rng.uniform(0.35, 0.7)
            sy, sx = cy + np.sin(ang) * length * squash, cx + np.cos(ang) * length
            d = np.sqrt((yy - sy) ** 2 + (xx - sx) ** 2)
            _paint(canvas, np.clip(radius * 0.05 - d, 0, 1), np.array(GOLD, np.float32))
            # filament: distance from the segment centre->tip
            t = np.clip(((yy - cy) * (sy - cy) + (xx - cx) * (sx - cx)) / (length**2 + 1e-6), 0, 1)
            seg = np.sqrt((yy - cy - t * (sy - cy)) ** 2 + (xx - cx - t * (sx - cx)) ** 2)
            _paint(canvas, np.clip(1.2 - seg, 0, 1) * 0.8, _shade(base, -0.3))


def _spike(canvas, yy, xx, cy, cx, radius, style: FlowerStyle, rng) -> None:
    """Lavender: a stem with small florets packed along its upper part."""
    h = yy[-1, 0] + 1
    base = _jitter(style.palettes[rng.integers(len(style.palettes))], rng)
    lean = rng.uniform(-0.3, 0.3)
    top, bottom = cy - radius * 1.6, min(h, cy + radius * 2.0)
    t = np.clip((yy - top) / (bottom - top + 1e-6), 0, 1)
    stem_x = cx + lean * (yy - cy)
    stem = np.clip(1.5 - np.abs(xx - stem_x), 0, 1) * (yy > top) * (yy < bottom)
    _paint(canvas, stem, np.array(GREEN, np.float32) * 0.8)
    n = int(rng.integers(style.petals[0], style.petals[1] + 1))
    for k in range(n):
        f = k / n
        py = top + f * radius * 1.8
        px = cx + lean * (py - cy) + rng.normal(0, radius * 0.08)
        fr = radius * (0.09 + 0.07 * f)
        d = ((yy - py) / (fr * 1.3)) ** 2 + ((xx - px) / fr) ** 2
        _paint(canvas, np.clip((1 - d) * fr / 2 + 0.5, 0, 1), _shade(base, rng.uniform(-0.25, 0.15)))
    del t


def _cluster(canvas, yy, xx, cy, cx, radius, style: FlowerStyle, rng) -> None:
    """Hydrangea: a dome of small four-petal florets."""
    base = _jitter(style.palettes[rng.integers(len(style.palettes))], rng)
    florets = int(rng.integers(style.blooms[0], style.blooms[1] + 1))
    small = dataclasses.replace(
        STYLES["plum_blossom"],
        rings=(Ring("round", width=0.9),),
        petals=(4, 4),
        center=None,
        center_kind="plain",
        palettes=(tuple(int(v) for v in base),),
    )
    for _ in range(florets):
        a, rr = rng.uniform(0, 2 * np.pi), radius * np.sqrt(rng.uniform(0, 1)) * 0.85
        fy, fx = cy + np.sin(a) * rr, cx + np.cos(a) * rr
        _radial_bloom(canvas, yy, xx, fy, fx, radius * rng.uniform(0.13, 0.19), small, rng)


def _cup(canvas, yy, xx, cy, cx, radius, style: FlowerStyle, rng) -> None:
    """Tulip seen from the side: a cup with three pointed tips on a stem with a leaf."""
    base = _jitter(style.palettes[rng.integers(len(style.palettes))], rng)
    h = yy[-1, 0] + 1
    stem = np.clip(2.5 - np.abs(xx - cx), 0, 1) * (yy > cy) * (yy < h)
    _paint(canvas, stem, np.array(GREEN, np.float32) * 0.7)
    leaf_d = ((yy - (cy + radius * 1.6)) / (radius * 0.9)) ** 2 + ((xx - (cx + radius * 0.35)) / (radius * 0.18)) ** 2
    _paint(canvas, np.clip(1 - leaf_d, 0, 1), np.array(GREEN, np.float32))
    w = radius * rng.uniform(0.55, 0.7)
    y_rel = (yy - cy) / radius  # -1 top .. +0.6 bottom
    x_rel = (xx - cx) / w
    body = (x_rel**2 + (np.clip(y_rel, 0, None) / 0.7) ** 2 < 1) & (y_rel > -0.9)
    tips = -0.55 - 0.35 * np.abs(np.cos(x_rel * np.pi * 1.5))  # three points along the rim
    cup = body & (y_rel > tips)
    field = base[None, None, :] * (1 - 0.25 * np.abs(x_rel))[..., None]
    _paint(canvas, cup.astype(np.float32), field)
    # petal seams
    seam = cup & (np.abs(np.abs(x_rel) - 0.35) < 0.03)
    _paint(canvas, seam.astype(np.float32), _shade(base, -0.3))


def _segment_distance(yy, xx, y0, x0, y1, x1):
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / (dy * dy + dx * dx + 1e-6), 0, 1)
    return np.sqrt((yy - y0 - t * dy) ** 2 + (xx - x0 - t * dx) ** 2)


def _branch(canvas, yy, xx, rng) -> tuple[float, float, float, float]:
    """A dark twig across the picture (plum blossom, magnolia); returns its end points."""
    h, w = canvas.shape[:2]
    y0, y1 = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * h
    x0, x1 = rng.uniform(-0.1, 0.1) * w, rng.uniform(0.9, 1.1) * w
    if rng.uniform() < 0.5:
        x0, x1 = x1, x0
    width = min(h, w) * rng.uniform(0.02, 0.035)
    d = _segment_distance(yy, xx, y0, x0, y1, x1)
    _paint(canvas, np.clip(width - d, 0, 1), _jitter((70, 45, 35), rng, 10))
    return y0, x0, y1, x1


def _leaves(canvas, yy, xx, rng) -> None:
    """A few sharp green leaves behind the flowers (hydrangea, azalea, peony)."""
    h, w = canvas.shape[:2]
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        length, ang = min(h, w) * rng.uniform(0.15, 0.3), rng.uniform(0, np.pi)
        u = ((yy - cy) * np.sin(ang) + (xx - cx) * np.cos(ang)) / length
        v = (-(yy - cy) * np.cos(ang) + (xx - cx) * np.sin(ang)) / (length * 0.35)
        inside = (u * u + v * v) < 1
        _paint(canvas, inside.astype(np.float32), _jitter((40, 110, 40), rng, 12))


def _calyx(canvas, yy, xx, cy, cx, radius) -> None:
    """Carnation: a long green tube under the bloom, and its stem."""
    tube = (np.abs(xx - cx) < radius * 0.22 * (1 - (yy - cy) / (radius * 2.2))) & (yy > cy) & (yy < cy + radius * 1.4)
    _paint(canvas, tube.astype(np.float32), np.array((80, 130, 70), np.float32))
    stem = (np.abs(xx - cx) < max(1.0, radius * 0.05)) & (yy > cy)
    _paint(canvas, stem.astype(np.float32), np.array(GREEN, np.float32) * 0.8)


_LAYOUTS = {"radial": _radial_bloom, "spike": _spike, "cluster": _cluster, "cup": _cup}


def render_flower(slug: str, seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    """Renders one synthetic flower photo of class `slug`, deterministic in `seed`.

    Args:
      slug: a class slug from `crawler.classes.CLASS_NAMES`.
      seed: any integer; the same (slug, seed) always gives the same image.
      size: (height, width); by default drawn from 120-400 px.
    Returns:
      An RGB PIL image.
    """
    style = STYLES[slug]
    rng = _rng(slug, seed)
    if size is None:
        size = (int(rng.integers(120, 401)), int(rng.integers(120, 401)))
    h, w = size
    canvas = _background(size, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    m = min(h, w)
    draw = _LAYOUTS[style.layout]
    blooms = 1 if style.layout == "cluster" else int(rng.integers(style.blooms[0], style.blooms[1] + 1))
    along = _branch(canvas, yy, xx, rng) if "branch" in style.extras else None
    if "leaves" in style.extras:
        _leaves(canvas, yy, xx, rng)
    for b in range(blooms):
        radius = m * rng.uniform(*style.radius)
        if style.layout == "cluster":
            radius = m * rng.uniform(0.3, 0.42)
        cy = h / 2 + rng.uniform(-0.25, 0.25) * (h - 2 * radius if h > 2 * radius else h * 0.2)
        cx = w / 2 + rng.uniform(-0.25, 0.25) * (w - 2 * radius if w > 2 * radius else w * 0.2)
        if blooms > 1:
            cy, cx = rng.uniform(radius * 0.6, h - radius * 0.6), rng.uniform(radius * 0.6, w - radius * 0.6)
        if along is not None:  # blooms sit on the twig
            t = (b + rng.uniform(0.2, 0.8)) / blooms
            cy, cx = along[0] + t * (along[2] - along[0]), along[1] + t * (along[3] - along[1])
        if "calyx" in style.extras:
            _calyx(canvas, yy, xx, cy, cx, radius)
        # Work only on the bloom's bounding box (stems reach the bottom edge).
        reach = 2.2 * radius
        y0, x0 = max(0, int(cy - reach)), max(0, int(cx - reach))
        y1 = h if style.layout in ("spike", "cup") else min(h, int(cy + reach) + 1)
        x1 = min(w, int(cx + reach) + 1)
        box = (slice(y0, y1), slice(x0, x1))
        draw(canvas[box], yy[box], xx[box], cy, cx, radius, style, rng)
    canvas += rng.normal(0, rng.uniform(2, 9), canvas.shape).astype(np.float32)
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    if rng.uniform() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return img

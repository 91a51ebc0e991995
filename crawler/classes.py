"""The project's class list: the one place that names the 20 flower classes.

Every other module (the local flower site, the crawler's sources, the demo) reads the
classes from here. `slug` is the folder and label name used on disk and in TFRecords;
`english`/`chinese`/`latin` feed the search sources, each of which picks what suits it
(Baidu the Chinese name, Commons the Latin category, Bing and the local site the English
queries).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class FlowerClass:
    slug: str
    english: str
    chinese: str
    latin: str
    commons_category: str
    queries: tuple[str, ...]


def _c(english: str, chinese: str, latin: str, commons: str, *extra_queries: str) -> FlowerClass:
    slug = english.replace(" ", "_")
    queries = (f"{english} flower", english, chinese, latin, *extra_queries)
    return FlowerClass(slug, english, chinese, latin, commons, queries)


FLOWER_CLASSES: tuple[FlowerClass, ...] = (
    _c("daisy", "雏菊", "Bellis perennis", "Bellis perennis", "common daisy"),
    _c("dandelion", "蒲公英", "Taraxacum officinale", "Taraxacum officinale", "dandelion blossom"),
    _c("rose", "玫瑰", "Rosa", "Rosa", "garden rose"),
    _c("sunflower", "向日葵", "Helianthus annuus", "Helianthus annuus", "sunflower field"),
    _c("tulip", "郁金香", "Tulipa", "Tulipa", "tulip bloom"),
    _c("lotus", "荷花", "Nelumbo nucifera", "Nelumbo nucifera", "sacred lotus"),
    _c("lily", "百合", "Lilium", "Lilium", "lily flower bloom"),
    _c("orchid", "兰花", "Orchidaceae", "Orchidaceae", "phalaenopsis orchid"),
    _c("peony", "牡丹", "Paeonia", "Paeonia", "tree peony"),
    _c("chrysanthemum", "菊花", "Chrysanthemum", "Chrysanthemum", "mum flower"),
    _c("carnation", "康乃馨", "Dianthus caryophyllus", "Dianthus caryophyllus", "carnation bloom"),
    _c("hibiscus", "扶桑花", "Hibiscus", "Hibiscus", "hibiscus rosa-sinensis"),
    _c("iris", "鸢尾花", "Iris", "Iris (plant)", "bearded iris"),
    _c("lavender", "薰衣草", "Lavandula", "Lavandula", "lavender field"),
    _c("magnolia", "玉兰", "Magnolia", "Magnolia", "magnolia blossom"),
    _c("morning glory", "牵牛花", "Ipomoea", "Ipomoea", "morning glory vine"),
    _c("plum blossom", "梅花", "Prunus mume", "Prunus mume", "chinese plum blossom"),
    _c("cherry blossom", "樱花", "Prunus serrulata", "Prunus serrulata", "sakura"),
    _c("hydrangea", "绣球花", "Hydrangea", "Hydrangea", "hydrangea macrophylla"),
    _c("azalea", "杜鹃花", "Rhododendron", "Rhododendron", "azalea bush"),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.slug for c in FLOWER_CLASSES)
_BY_SLUG = {c.slug: c for c in FLOWER_CLASSES}


def get_class(slug: str) -> FlowerClass:
    """Returns the class named `slug` ('morning_glory' or 'morning glory')."""
    key = slug.strip().replace(" ", "_")
    if key not in _BY_SLUG:
        raise ValueError(f"Unknown class {slug!r}; known classes: {', '.join(CLASS_NAMES)}")
    return _BY_SLUG[key]


def parse_classes(spec: str) -> tuple[FlowerClass, ...]:
    """Parses a `--classes` value: 'all' or a comma list of slugs/English names."""
    if spec.strip().lower() == "all":
        return FLOWER_CLASSES
    names = [s for s in (p.strip() for p in spec.split(",")) if s]
    if not names:
        raise ValueError("--classes is empty; give 'all' or a comma list of class names")
    return tuple(get_class(n) for n in names)

"""Serves the local flower site until interrupted.

    python -m crawler.flowersite --port=8000 --per_class=80 [--prerender] [--latency_ms=20]

With --prerender every image is rendered (on all cores) before the site starts, so serving
costs no rendering: what benchmarks of the crawler need.
"""

import contextlib
import signal
import threading

from absl import app, flags, logging

import cli
from crawler.flowersite.site import FlowerSite

_PORT = flags.DEFINE_integer("port", 0, "TCP port on 127.0.0.1 (0: a free port).")
_PER_CLASS = flags.DEFINE_integer("per_class", 80, "Images per class the site holds.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic flowers: same seed, same images.")
_PAGE_SIZE = flags.DEFINE_integer("page_size", 20, "Results per search page.", lower_bound=1)
_LATENCY = flags.DEFINE_float(
    "latency_ms",
    0.0,
    "Wait this long before each response's first byte, like a server across a real network (loopback has no latency).",
    lower_bound=0.0,
)
_PRERENDER = flags.DEFINE_bool("prerender", False, "Render every image before serving (otherwise on first request).")


def main(argv):
    del argv
    site = FlowerSite(
        per_class=_PER_CLASS.value,
        seed=_SEED.value,
        port=_PORT.value,
        page_size=_PAGE_SIZE.value,
        latency_ms=_LATENCY.value,
    )
    if _PRERENDER.value:
        logging.info("prerendered %d images", site.prerender())
    site.start()
    print(f"Flower site at {site.url}  (search: {site.search_template()}); Ctrl-C to stop", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    site.stop()
    logging.info("served %d requests", len(site.requests))


def run():
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()

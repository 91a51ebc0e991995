import random

from crawler.dedup import DedupIndex


def test_index_finds_exact_and_near_duplicates_past_its_growth_points():
    index = DedupIndex(max_distance=4)
    rng = random.Random(0)
    hashes = [f"{rng.getrandbits(64):016x}" for _ in range(300)]  # random 64-bit hashes: ~32 bits apart
    for i, h in enumerate(hashes):
        index.add(f"sha{i}", h, f"rose/{i}", "rose", f"http://x/{i}")
    assert len(index) == 300
    exact = index.find("sha123", "0" * 16)
    assert (exact.kind, exact.key, exact.distance) == ("duplicate", "rose/123", 0)
    for i in (0, 63, 64, 65, 200, 299):  # around the buffer's doublings
        near = index.find("new", f"{int(hashes[i], 16) ^ 0b1011:016x}")
        assert (near.kind, near.key, near.distance) == ("near_duplicate", f"rose/{i}", 3)
    assert index.find("new", f"{int(hashes[5], 16) ^ 0b11111:016x}") is None  # 5 bits: over the threshold

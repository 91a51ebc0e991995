"""Builds TFDS-loadable TFRecord shards from an image dataset with Apache Beam.

    python -m pipelines.build_tfrecords --input_dir=workspace/raw --output_dir=workspace/tfrecords \\
        --dataset_name=flowers --image_size=96

    python -m pipelines.build_tfrecords --tfds_name=mnist --tfds_data_dir=~/tensorflow_datasets \\
        --output_dir=workspace/tfrecords --dataset_name=mnist224 --image_size=224

Input: the crawler's folder, an image folder (--input_dir), or a TFDS dataset that is already
prepared on disk (--tfds_name; never downloaded; its splits, label names and channel count are
kept unless --splits, --class_names or --grayscale say otherwise).

Output: <output_dir>/<dataset_name>/<version>/ with {dataset}-{split}.tfrecord-XXXXX-of-YYYYY
shards, TFDS metadata (dataset_info.json, features.json), stats.json, class_histogram.png and
dead_letter.jsonl (inputs rejected, with the reason). Load it with
`tfds.builder_from_directory(<that folder>)`. `--layout=model_garden` writes TF Model Garden's
keys instead (see pipelines/schema.py); `--compression=gzip` (model_garden only) writes GZIP
TFRecords and no TFDS metadata, since TFDS cannot read them. Check any output with
`python -m pipelines.inspect_dataset <that folder>`.

Flags this program does not know are Beam pipeline options and pass through, e.g.
`--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp` or
`--runner=PortableRunner --job_endpoint=host:8099` (Flink, Spark: see README.md). The
default runner is the local DirectRunner in multi-processing mode on all cores (named
explicitly, and kept from trying the Prism runner first, which it would download from GitHub).

--input_dir, --output_dir and --class_names=@file may be local paths or buckets (gs://, s3://;
--tfds_data_dir: local or gs://, read by TensorFlow). A bucket that does not exist, refuses
access or does not answer stops the job before any work, exit 2; nothing is published.

Which reader reads the input is the registry's choice (pipelines/readers/): a folder with a
crawler's manifest.jsonl is a crawl, any other folder an image folder, --tfds_name a TFDS dataset.
It prints one line per step (inputs listed, read tasks, job started and finished, merged,
published), a warning naming the rejected inputs' reasons, and the summary on stdout; libraries'
INFO lines and TensorFlow's C++ banners only with -v 1. stats.json gets the train split's
per-channel mean and std (channel_stats).
"""

from __future__ import annotations

import re
import sys
import time

from absl import app, flags, logging

import cli
from pipelines import console, dedup, exit_gc, image_ops, readers, schema, splits
from pipelines.options import JobOptions
from storage import StorageError, fs

_INPUT_DIR = flags.DEFINE_string(
    "input_dir",
    None,
    "Crawler output folder (with manifest.jsonl) or an image "
    "folder root/<label>/*.jpg (or root/<split>/<label>/*.jpg); local, gs:// or s3://.",
)
_TFDS_NAME = flags.DEFINE_string(
    "tfds_name",
    None,
    "Instead of --input_dir: a TFDS dataset already prepared in "
    "--tfds_data_dir (mnist, cifar10, tf_flowers, name:version, ...); never downloaded.",
)
_TFDS_DATA_DIR = flags.DEFINE_string(
    "tfds_data_dir", None, "TFDS data dir holding --tfds_name (TFDS's default ~/tensorflow_datasets if unset)."
)
_CLASS_NAMES = flags.DEFINE_string(
    "class_names",
    None,
    "The input's labels must be exactly these (a,b,c or @file with one name a line); their order is the label order.",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", "workspace/tfrecords", "Where <dataset_name>/<version>/ goes (local, gs:// or s3://)."
)
_DATASET_NAME = flags.DEFINE_string("dataset_name", "flowers", "Dataset name (file name prefix).")
_VERSION = flags.DEFINE_string("version", "1.0.0", "Dataset version, X.Y.Z.")
_SPLITS = flags.DEFINE_string("splits", "train:0.8,validation:0.1,test:0.1", "Split fractions (stratified by class).")
_KEEP_SPLITS = flags.DEFINE_bool("keep_input_splits", False, "Use the input folder's own train/validation/test.")
_SPLIT_SALT = flags.DEFINE_string("split_salt", "flowerpipe", "Salt of the split hash.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Output images are image_size x image_size.", lower_bound=8)
_RESIZE = flags.DEFINE_enum(
    "resize",
    "pad",
    list(image_ops.RESIZE_POLICIES),
    "Resize policy: pad (keep aspect, pad), crop (keep aspect, centre crop), stretch, keep (no resize).",
)
_GRAYSCALE = flags.DEFINE_bool(
    "grayscale",
    False,
    "Store 1-channel images (MNIST-style); unset, a TFDS input keeps its own channel count and other inputs get 3.",
)
_AUGMENT_COPIES = flags.DEFINE_integer("augment_copies", 0, "Extra augmented copies per train image.", lower_bound=0)
_FLIP = flags.DEFINE_bool("augment_flip", True, "Augmentation: random horizontal flip.")
_SHIFT = flags.DEFINE_float(
    "augment_shift", 0.125, "Augmentation: max width/height shift fraction (black fill).", lower_bound=0, upper_bound=1
)
_ROTATION = flags.DEFINE_float(
    "augment_rotation", 0.0, "Augmentation: max rotation degrees (off by default).", lower_bound=0, upper_bound=180
)
_ZOOM = flags.DEFINE_float("augment_zoom", 0.0, "Augmentation: max zoom-in fraction.", lower_bound=0, upper_bound=0.99)
_BRIGHTNESS = flags.DEFINE_float(
    "augment_brightness", 0.0, "Augmentation: max brightness change.", lower_bound=0, upper_bound=1
)
_CONTRAST = flags.DEFINE_float(
    "augment_contrast", 0.0, "Augmentation: max contrast change.", lower_bound=0, upper_bound=1
)
_SATURATION = flags.DEFINE_float(
    "augment_saturation", 0.0, "Augmentation: max saturation change.", lower_bound=0, upper_bound=1
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the augmentation.")
_ENCODING = flags.DEFINE_enum("encoding", "jpeg", ["jpeg", "png"], "Image encoding in the TFRecords.")
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality.", lower_bound=1, upper_bound=100)
_SHARD_SIZE_MB = flags.DEFINE_float(
    "shard_size_mb", 128.0, "Target shard size; shard count follows from it.", lower_bound=0.001
)
_NUM_SHARDS = flags.DEFINE_integer(
    "num_shards", 0, "Fixed shards per split (0: from --shard_size_mb).", lower_bound=0, upper_bound=99999
)
_MIN_SIDE = flags.DEFINE_integer("min_side", 16, "Dead-letter images whose shorter side is below this.", lower_bound=1)
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", 40_000_000, "Dead-letter images with more pixels.", lower_bound=1)
_MAX_BAD = flags.DEFINE_float(
    "max_bad_fraction",
    0.2,
    "Fail (publish nothing) if more inputs than this are bad (dropped duplicates do not count).",
    lower_bound=0,
    upper_bound=1,
)
_DEDUP = flags.DEFINE_enum(
    "dedup",
    "group",
    list(dedup.MODES),
    "Exact and near-duplicate inputs (sha256, perceptual "
    "hash): group (keep all, each group in one split), drop (keep the first key of each group, "
    "dead-letter the other copies), off (no fingerprints; splits by key).",
)
_DEDUP_DISTANCE = flags.DEFINE_integer(
    "dedup_distance",
    6,
    "Perceptual-hash Hamming distance (of 64 bits) at or "
    "below which two images are near duplicates; 0: exact pictures only.",
    lower_bound=0,
    upper_bound=64,
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing <dataset_name>/<version>/.")
_LAYOUT = flags.DEFINE_enum(
    "layout",
    "tfds",
    list(schema.LAYOUTS),
    "Example layout: tfds (image, label, key, ...; "
    "TFDS-loadable) or model_garden (image/encoded, image/class/label 0-based, ...).",
)
_COMPRESSION = flags.DEFINE_enum(
    "compression",
    "none",
    ["none", "gzip"],
    "TFRecord compression; gzip only with --layout=model_garden (TFDS cannot read compressed TFRecords).",
)

DEFAULT_RUNNER_ARGS = [
    "--runner=DirectRunner",
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=0",
    "--default_sdk_harness_log_level=CRITICAL",  # a worker's failure is reported by the driver
    # The DirectRunner first tries the Prism runner on any pipeline it deems fit, a binary it downloads
    # (offline it fails and falls back); it does not with this option, which changes nothing else
    # here: the job sets no triggers. Then it runs the FnApiRunner, as it does after Prism failed.
    "--allow_unsafe_triggers",
]


def pipeline_args(extra: list[str]) -> list[str]:
    """Pass-through Beam options; the local multi-process DirectRunner unless a runner is named."""
    if any(a.startswith("--runner") for a in extra):
        return extra
    named = {a.split("=")[0] for a in extra}
    defaults = [a for a in DEFAULT_RUNNER_ARGS if a.split("=")[0] not in named]
    if "--direct_running_mode=in_memory" in extra:  # one worker: Beam warns about a worker count for it
        defaults = [a for a in defaults if not a.startswith("--direct_num_workers")]
    if console.verbose():  # -v 1: the workers' warnings too
        defaults = [a.replace("=CRITICAL", "=WARNING") for a in defaults]
    return defaults + extra


def reader_options() -> readers.ReaderOptions:
    return readers.ReaderOptions(
        input_dir=_INPUT_DIR.value or "", tfds_name=_TFDS_NAME.value or "", tfds_data_dir=_TFDS_DATA_DIR.value or ""
    )


def options_from_flags(inp: readers.Input | None = None) -> JobOptions:
    """The job's options; an input with splits of its own (TFDS) keeps them unless --splits is given, and its
    channel count unless --grayscale is."""
    keep = _KEEP_SPLITS.value or (inp is not None and inp.own_splits and not _SPLITS.present)
    own_channels = inp.channels if inp is not None else None
    channels = own_channels if own_channels and not _GRAYSCALE.present else (1 if _GRAYSCALE.value else 3)
    return JobOptions(
        output_dir=_OUTPUT_DIR.value,
        dataset_name=_DATASET_NAME.value,
        version=_VERSION.value,
        splits=_SPLITS.value,
        keep_input_splits=keep,
        split_salt=_SPLIT_SALT.value,
        image_size=_IMAGE_SIZE.value,
        resize=_RESIZE.value,
        channels=channels,
        augment_copies=_AUGMENT_COPIES.value,
        augment=image_ops.AugmentParams(
            flip=_FLIP.value,
            shift=_SHIFT.value,
            rotation=_ROTATION.value,
            zoom=_ZOOM.value,
            brightness=_BRIGHTNESS.value,
            contrast=_CONTRAST.value,
            saturation=_SATURATION.value,
        ),
        seed=_SEED.value,
        encoding=_ENCODING.value,
        jpeg_quality=_JPEG_QUALITY.value,
        shard_size_mb=_SHARD_SIZE_MB.value,
        num_shards=_NUM_SHARDS.value,
        min_side=_MIN_SIDE.value,
        max_pixels=_MAX_PIXELS.value,
        max_bad_fraction=_MAX_BAD.value,
        dedup=_DEDUP.value,
        dedup_distance=_DEDUP_DISTANCE.value,
        overwrite=_OVERWRITE.value,
        layout=_LAYOUT.value,
        compression="" if _COMPRESSION.value == "none" else _COMPRESSION.value,
    )


def check_flags() -> None:
    """Flags that contradict each other, before anything is read (the readers check their own)."""
    readers.candidates(reader_options())  # one input flag, and no option of another reader
    if _KEEP_SPLITS.value and _SPLITS.present:
        raise ValueError(f"--keep_input_splits and --splits={_SPLITS.value} contradict each other: give one")
    if _NUM_SHARDS.value and _SHARD_SIZE_MB.present:
        raise ValueError("--num_shards and --shard_size_mb contradict each other: give one")
    if _RESIZE.value == "keep" and _IMAGE_SIZE.present:
        raise ValueError(f"--resize=keep keeps every image's size: --image_size={_IMAGE_SIZE.value} would be ignored")
    if _COMPRESSION.value != "none" and _LAYOUT.value == "tfds":
        raise ValueError(
            f"--compression={_COMPRESSION.value} needs --layout=model_garden: TFDS "
            "(tfds.builder_from_directory) cannot read compressed TFRecords"
        )
    if _LAYOUT.value == "model_garden" and _ENCODING.value != "jpeg":
        logging.warning(
            "--layout=model_garden with --encoding=%s: Model Garden's classification parser decodes "
            "JPEG only unless decode_jpeg_only=False",
            _ENCODING.value,
        )


def class_names_from_flag(value: str | None) -> list[str] | None:
    """--class_names: 'a,b,c' or '@file' (one name a line, # comments); None if unset."""
    if not value:
        return None
    if value.startswith("@"):
        path = value[1:]
        if not fs.exists(path):
            raise ValueError(f"--class_names={value}: no such file")
        names = [line.split("#", 1)[0].strip() for line in fs.read_text(path).splitlines()]
    else:
        names = [n.strip() for n in value.split(",")]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"--class_names={value!r} names no class")
    schema.check_class_names(names, "--class_names: name")
    return names


def check_options(opts: JobOptions) -> None:
    """Contradictory or impossible flags: one-line errors before any work."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", opts.version):
        raise ValueError(f"--version={opts.version!r} must look like 1.0.0")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", opts.dataset_name):
        raise ValueError(f"--dataset_name={opts.dataset_name!r}: use lower case letters, digits and _")
    if not opts.keep_input_splits:
        splits.parse_splits(opts.splits)
    if fs.isdir(opts.final_dir) and not opts.overwrite:
        raise ValueError(f"{opts.final_dir} already exists: pass --overwrite to replace it, or another --version")


def check_paths(extra: list[str]) -> None:
    """The job's path flags: a scheme this job can use, and a store that answers (output: takes a write).
    A reader's own paths (--tfds_data_dir) are its `check`'s."""
    fs.configure(pipeline_args(extra))  # --s3_endpoint_url and friends reach the driver's reads and writes too
    if _INPUT_DIR.value:
        fs.preflight(_INPUT_DIR.value, "--input_dir")
    if _CLASS_NAMES.value and _CLASS_NAMES.value.startswith("@"):
        fs.preflight(fs.dirname(_CLASS_NAMES.value[1:]), "--class_names")
    fs.preflight(_OUTPUT_DIR.value, "--output_dir", write=True)


def read_input(class_names: list[str] | None) -> readers.Input:
    """What the registered reader that takes the input read, checked as every input is (readers.load);
    `class_names` (--class_names) must be its labels, and set their order."""
    options = reader_options()
    return readers.load(readers.pick(options), options, class_names, need_splits=_KEEP_SPLITS.value)


def main(argv):
    console.quiet_libraries()
    extra = argv[1:]
    try:
        check_flags()
        check_paths(extra)
        class_names = class_names_from_flag(_CLASS_NAMES.value)
        check_options(options_from_flags())
        t = time.time()
        with console.held_stderr():  # TFDS's reader starts TensorFlow: its C++ banners
            inp = read_input(class_names)
        opts = options_from_flags(inp)
    except (ValueError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.info(
        "inputs: %d listed from %s: %d classes, %d rejected by the reader, in %.1fs",
        len(inp.records),
        inp.description,
        len(inp.class_names),
        len(inp.rejected),
        time.time() - t,
    )
    from pipelines import build  # Beam: not for --help or a flag error

    try:
        with console.held_stderr():
            stats = build.run_build(inp, opts, pipeline_args(extra))
    except build.BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except StorageError as e:  # the store failed during the job, or the version is locked: nothing was published
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a worker failed (disk full, ...): one line; the tracebacks in a file
        logging.debug("the job failed", exc_info=True)
        print(f"error: {job_failure(e, opts.final_dir)}", file=sys.stderr)
        return 1
    report(stats, opts)
    return 0


def report(stats: dict, opts: JobOptions) -> None:
    """The closing lines: a warning naming the rejected inputs' reasons, then the summary (stdout)."""
    if stats["rejected"]:
        logging.warning(
            "%d of %d inputs rejected (see %s): %s",
            stats["rejected"],
            stats["inputs"],
            fs.join(opts.final_dir, "dead_letter.jsonl"),
            ", ".join(f"{reason} {n}" for reason, n in stats["rejected_per_reason"].items()),
        )
    dups = stats["duplicates"]
    found = (
        ""
        if dups["mode"] == "off"
        else (
            f", {dups['groups']} duplicate group(s) of {dups['inputs_in_groups']} inputs "
            f"({dups['cross_class_groups']} across classes; "
            + (
                f"{dups['dropped']} copies dropped)"
                if dups["mode"] == "drop"
                else f"{dups['groups_across_splits']} across splits)"
            )
        )
    )
    print(
        f"tfrecords: {stats['examples_per_split']} examples, {stats['rejected']} rejected{found} -> "
        f"{opts.final_dir} ({stats['wall_time_seconds']:.1f}s)",
        flush=True,
    )


_ERRNO = re.compile(r"\[Errno (\d+)\] ([^\n\[:]+)(?:: '([^'\n]*)')?")
_STEP = re.compile(r"\[while running '([^']+)'\]")


def job_failure(exc: BaseException, final_dir: str) -> str:
    """One line for a job that failed on a worker: the OS error (disk full, permission) and the step
    it hit, from the runner's wrapped exception text; nothing was published."""
    text = "\n".join(str(e) for e in _chain(exc))
    errors, steps = _ERRNO.findall(text), _STEP.findall(text)
    where = f" in step {steps[-1]}" if steps else ""
    if errors:
        number, message, path = errors[-1]
        cause = {
            "28": "no space left on the device",
            "27": "file too large (a file size limit)",
            "122": "disk quota exceeded",
        }.get(number, message.strip())
        return (
            f"{path or final_dir}: {cause} (errno {number}){where}; nothing was published "
            "(free space and run the same command again)"
        )
    last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), type(exc).__name__)
    return (
        f"the Beam job failed{where}: {_STEP.sub('', last).strip()[:500]}; nothing was published "
        "(-v 1 shows the workers' tracebacks)"
    )


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _parse(argv):
    return cli.parse_flags(argv, known_only=True)  # the rest are Beam pipeline options


def run():
    exit_gc.skip_final_gc()
    app.run(main, flags_parser=_parse)


if __name__ == "__main__":
    run()

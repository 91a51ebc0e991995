"""Installable project: crawler, Beam TFRecord pipeline and distributed trainer."""

from setuptools import find_packages, setup

# Tested together on Python 3.11 (see README.md).
INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "apache-beam[tfrecord]>=2.77,<2.78",
    "tensorflow-datasets>=4.9.10,<4.10",
    "requests>=2.31,<3",
    "urllib3>=2,<3",  # the crawler's connection pools (retries are its own loop: crawler/net.py)
    "beautifulsoup4>=4.12,<5",
    "absl-py>=2.1,<3",
    "pillow>=10.4,<13",
    "numpy>=1.26,<3",
    "tqdm>=4.66,<5",
    "tensorboard>=2.21,<2.22",  # tf.summary writers (TensorFlow 2.21 no longer pulls it in)
    "matplotlib>=3.8,<4",
    "protego>=0.3,<1",  # robots.txt parser (Scrapy's), with Crawl-delay
    "imagehash>=4.3,<5",  # perceptual hashes for near-duplicate removal
    "pyyaml>=6,<7",  # --config_file for the trainer
    "google-crc32c>=1.5,<2",  # compiled CRC32C: Beam's TFRecord writer is slow on crcmod's fallback
]

EXTRAS = {
    # gs:// for the crawler, the Beam job and the trainer's own files (TensorFlow has gs:// built in).
    "gcp": ["apache-beam[gcp]>=2.77,<2.78"],
    # s3:// for the crawler and the Beam job (TensorFlow 2.21 has no s3://: the trainer refuses it).
    "aws": ["apache-beam[aws]>=2.77,<2.78"],
}
EXTRAS_REQUIRE = {
    **EXTRAS,
    "dev": [
        "pytest>=8,<10",
        "pytest-timeout>=2.3,<3",
        "pytest-xdist>=3.6,<4",  # `make test` runs two workers (-n 2 --dist loadfile)
        "ruff>=0.8,<1",  # `make test` lints and checks formatting first (ruff.toml)
        *EXTRAS["gcp"],
        *EXTRAS["aws"],
        # Object stores on 127.0.0.1 for the tests (tests/objectstore.py).
        "gcp-storage-emulator>=2026.7,<2027",
        "moto[server]>=5.1,<6",
        "cryptography>=42",  # the TLS certificate TensorFlow's GCS client is shown
    ],
}

setup(
    name="flowerpipe",
    version="0.1.0",
    description="Crawler -> Apache Beam TFRecords -> distributed Keras training for image classification",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=[
            "crawler",
            "crawler.*",
            "pipelines",
            "pipelines.*",
            "trainer",
            "trainer.*",
            "storage",
            "storage.*",
            "cli",
            "imaging",
        ]
    ),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "flower-site=crawler.flowersite.__main__:run",
            "flower-crawl=crawler.crawl:run",
            "flower-build-tfrecords=pipelines.build_tfrecords:run",
            "flower-inspect=pipelines.inspect_dataset:run",
            "flower-train=trainer.train:run_cli",
            "flower-predict=trainer.predict:run",
            "flower-models=trainer.models.__main__:run",
        ]
    },
)

"""brq_att_alt: BEST-RQ Conformer encoders with linear-complexity token mixers."""

from setuptools import find_packages, setup

setup(
    name="brq_att_alt",
    version="0.1.0",
    description="SpeechBrain recipes for BEST-RQ encoders with MHSA substitutes "
    "(HyperMixing, Fastformer, SummaryMixing, bidirectional Mamba, PoM)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["brq_att_alt", "brq_att_alt.*"]),
    install_requires=[
        "torch>=2.1",
        "torchaudio>=2.1",
        "speechbrain>=1.1,<1.2",
        "hyperpyyaml>=1.2",
        "pyyaml",
        "sentencepiece",
        "soundfile",
        "numpy",
        "tqdm",
    ],
    extras_require={
        "dev": ["pytest>=7", "espeakng-loader>=0.2", "matplotlib"],
        "lm": ["kenlm", "pygtrie"],
        "cuda": ["mamba-ssm>=2.2", "causal-conv1d>=1.4"],
        "corpus": ["espeakng-loader>=0.2"],
        "plots": ["matplotlib"],
    },
    entry_points={"console_scripts": ["brq-transcribe=brq_att_alt.transcribe:main"]},
)

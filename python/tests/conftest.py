"""Shared fixtures: the bundled demo (data/demo.h5ad) and the CLI binary built beside it."""

import os
import pathlib
import subprocess

import anndata as ad
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo.h5ad"
CLI = pathlib.Path(os.environ.get("SCDREAMER_CLI", ROOT / "target" / "release" / "scdreamer"))

# Few epochs keep the suite short; the equalities tested hold at any length.
QUICK = dict(max_epochs=2, n_threads=2, device="cpu", progress=False)


@pytest.fixture
def demo():
    return ad.read_h5ad(DEMO)


@pytest.fixture(scope="session")
def cli():
    if not CLI.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CLI} is missing: build it with cargo build --release")
        pytest.skip(f"{CLI} is missing (cargo build --release)")
    return CLI


def run_cli(cli, *args):
    r = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r

"""Replay every fuzz seed through its harness, without atheris: each must pass cleanly.

`fuzz/` is not a package, so each harness is imported from its path. Random bytes go through the
harnesses too, so a harness that cannot parse its own input format fails here, not in a long run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from madbase.protocol.http import Dispatch, Response
from madbase.protocol.identity import verify_api_key

if TYPE_CHECKING:
    import types

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
# Every fuzz/fuzz_<name>.py harness, with its seeds in fuzz/corpus/<name>/.
HARNESSES = tuple(sorted(p.stem.removeprefix("fuzz_") for p in FUZZ.glob("fuzz_*.py")))


def _load(name: str) -> types.ModuleType:
    path = FUZZ / f"fuzz_{name}.py"
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODULES = {name: _load(name) for name in HARNESSES}
SEEDS = sorted((name, seed) for name in HARNESSES for seed in (FUZZ / "corpus" / name).iterdir())


@pytest.mark.parametrize("name", HARNESSES)
def test_fuzz_corpus_has_seeds(name: str) -> None:
    assert any(seed_name == name for seed_name, _ in SEEDS)


@pytest.mark.parametrize("name", HARNESSES)
def test_fuzz_harness_accepts_random_bytes(name: str) -> None:
    @given(st.binary(max_size=300))
    def run(data: bytes) -> None:
        MODULES[name].test_one_input(data)

    run()


@pytest.mark.parametrize(
    ("name", "seed"), SEEDS, ids=[f"{name}/{seed.name}" for name, seed in SEEDS]
)
def test_fuzz_corpus_seed_passes_harness(name: str, seed: Path) -> None:
    MODULES[name].test_one_input(seed.read_bytes())


@pytest.mark.parametrize("seed", ["anon", "service_role"])
def test_fuzz_corpus_key_seeds_are_valid_keys(seed: str) -> None:
    # The fuzzer mutates valid keys best; seeds must stay valid at the harness's clock.
    harness = MODULES["api_key"]
    token = (FUZZ / "corpus" / "api_key" / seed).read_text()
    assert verify_api_key(token, harness.SECRET, now=harness.NOW).role == seed


@pytest.mark.parametrize(
    ("seed", "status"),
    [("preflight", 200), ("auth_versioned_missing_key", 401), ("unknown_path", 404)],
)
def test_fuzz_corpus_gateway_seeds_reach_each_answer(seed: str, status: int) -> None:
    harness = MODULES["gateway"]
    request = harness.request_from_bytes((FUZZ / "corpus" / "gateway" / seed).read_bytes())
    result = harness.gate(request)
    assert isinstance(result, Response)
    assert result.status == status


def test_fuzz_corpus_gateway_seed_with_key_is_dispatched() -> None:
    harness = MODULES["gateway"]
    request = harness.request_from_bytes(
        (FUZZ / "corpus" / "gateway" / "rest_get_header_key").read_bytes()
    )
    assert request.header("x-client-info") == "supabase-js/2.119.0"
    result = harness.gate(request)
    assert isinstance(result, Dispatch)
    assert result.role == "anon"

"""Our ONNX Runtime C API declarations (third_party/onnxruntime/ort_abi.h), checked two ways:
statically against the slot table beside it (third_party/onnxruntime/ort_api_slots.tsv, every OrtApi
slot as ONNX Runtime documents it), and by behaviour through tests/native/cpp/ort_slots.c, a C
program that calls every declared slot of the real library and checks each outcome."""
from __future__ import annotations

import csv
import re

import pytest

import juno_bridge as jb
from helpers.native_build import (CPP_TESTS, ORT_DECLARATIONS, build, require_tool, run_program,
                                  write_slots_model, write_types_model)

SLOT_TABLE = ORT_DECLARATIONS / "ort_api_slots.tsv"
HEADER = ORT_DECLARATIONS / "ort_abi.h"


def declared_slots_in_header() -> list[tuple[int, str, int]]:
    """(slot, name, added_in) for each X(...) line of JB_ORT_API_SLOTS, read from the header text."""
    text = HEADER.read_text()
    block = text[text.index("#define JB_ORT_API_SLOTS(X)"):]
    block = block[:block.index("\n\n")]
    rows = re.findall(r"X\((\d+),\s*(\d+),\s*[^,]+,\s*(\w+),\s*\(", block)
    assert rows, "no X(...) rows found in JB_ORT_API_SLOTS"
    return [(int(slot), name, int(since)) for slot, since, name in rows]


def reference_slots() -> dict[str, tuple[int, int]]:
    assert SLOT_TABLE.is_file(), f"the slot table {SLOT_TABLE} is part of the repository"
    with SLOT_TABLE.open(newline="") as f:
        return {row["name"]: (int(row["slot"]), int(row["added_in_api_version"]))
                for row in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def ort_slots(tmp_path_factory):
    require_tool("cc")
    exe = tmp_path_factory.mktemp("ort_slots") / "ort_slots"
    build(["cc", "-std=c11", "-O2", "-g0", "-Wall", "-Wextra", f"-I{ORT_DECLARATIONS}",
           CPP_TESTS / "ort_slots.c", "-o", exe, "-ldl", "-pthread"])
    return exe


@pytest.fixture(scope="module")
def slots_model(tmp_path_factory):
    """The model tests/native/cpp/ort_slots.c expects (its constants describe the same names and values)."""
    return write_slots_model(tmp_path_factory.mktemp("slots_model") / "slots.onnx")


@pytest.fixture(scope="module")
def types_model(tmp_path_factory):
    """The model of non-tensor types ort_slots.c spells through the type-info slots."""
    return write_types_model(tmp_path_factory.mktemp("types_model") / "types.onnx")


def test_declared_slots_match_the_reference_table():
    reference = reference_slots()
    for slot, name, since in declared_slots_in_header():
        assert name in reference, f"{name} is declared but not in {SLOT_TABLE.name}"
        assert (slot, since) == reference[name], (
            f"{name}: declared at slot {slot} (API {since}), the reference says slot {reference[name][0]} "
            f"(API {reference[name][1]})")


def test_declared_slots_are_unique_ascending_and_within_the_declared_version():
    rows = declared_slots_in_header()
    slots = [slot for slot, _, _ in rows]
    assert slots == sorted(set(slots)), "JB_ORT_API_SLOTS must list each slot once, in ascending order"
    version = int(re.search(r"#define JB_ORT_API_VERSION_DECLARED (\d+)", HEADER.read_text()).group(1))
    minimum = int(re.search(r"#define JB_ORT_API_VERSION_MINIMUM (\d+)", HEADER.read_text()).group(1))
    assert minimum <= version
    late = [(name, since) for _, name, since in rows if since > minimum]
    assert not late, f"slots added after the minimum API version {minimum} would be missing there: {late}"


def test_compiled_slot_list_is_what_the_header_text_says(ort_slots):
    """The X-macro expands to the rows a reader sees (guards against a macro or parse slip)."""
    result = run_program([ort_slots, "--list"])
    assert result.returncode == 0, result.stderr
    compiled = [(int(s), n, int(v)) for s, n, v in (line.split("\t") for line in result.stdout.splitlines())]
    assert compiled == declared_slots_in_header()


def test_every_declared_slot_behaves_as_documented(ort_slots, slots_model, types_model):
    info = jb.onnxruntime_info()
    result = run_program([ort_slots, info["path"], slots_model, info["version"], types_model])
    lines = result.stdout.splitlines()
    failures = [line for line in lines if line.startswith("FAIL")]
    assert result.returncode == 0 and not failures, (
        f"exit {result.returncode}\n" + "\n".join(failures or lines[-20:]) + "\n" + result.stderr[-2000:])
    summary = re.fullmatch(r"(\d+) passed, 0 failed", lines[-1])
    assert summary, lines[-1]
    # Every declared slot shows up in a check line beyond its presence check.
    exercised = {line.split()[1] for line in lines if line.startswith("PASS") and "is present in API" not in line}
    missing = {name for _, name, _ in declared_slots_in_header()} - exercised
    assert not missing, f"slots never exercised: {sorted(missing)}"


def test_every_declared_slot_behaves_as_documented_on_an_older_release(ort_slots, slots_model, types_model,
                                                                        old_onnxruntime):
    """The same checks against ONNX Runtime 1.20.1 (API 20), loaded by the program itself."""
    result = run_program([ort_slots, old_onnxruntime, slots_model, "1.20.1", types_model])
    lines = result.stdout.splitlines()
    failures = [line for line in lines if line.startswith("FAIL")]
    assert result.returncode == 0 and not failures, (
        f"exit {result.returncode}\n" + "\n".join(failures or lines[-20:]) + "\n" + result.stderr[-2000:])
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1]), lines[-1]
    assert any("output 0 is of type seq(map(int64,tensor(float)))" in line for line in lines)


def test_every_declared_slot_behaves_as_documented_on_the_gpu_build(ort_slots, slots_model, types_model,
                                                                    gpu_onnxruntime):
    """The same checks against onnxruntime-gpu 1.31.1, whose CUDA provider is listed: the GPU branch runs
    (making, updating and appending CUDA options), with CUDA loading only where a GPU and its libraries are."""
    result = run_program([ort_slots, gpu_onnxruntime, slots_model, "1.31.1", types_model])
    lines = result.stdout.splitlines()
    failures = [line for line in lines if line.startswith("FAIL")]
    assert result.returncode == 0 and not failures, (
        f"exit {result.returncode}\n" + "\n".join(failures or lines[-20:]) + "\n" + result.stderr[-2000:])
    assert any("CreateCUDAProviderOptions on a GPU build -> OK" in line for line in lines)
    assert any("UpdateCUDAProviderOptions(enable_cuda_graph=1) on a GPU build" in line for line in lines)

"""scripts/tune_tiles.py's ``contiguous`` step on the committed table and made-up
bench reports: each shape takes the fastest contiguous variant exactly where it
beat the shape's tiles by the margin."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from wsd_compile.kernels import DEFAULT_KERNELS, load_tile_table
from wsd_compile.kernels.matmul import WebGPUMatmul

from .conftest import load_script

tune_tiles = load_script("tune_tiles")


def _report(path: Path, unet: dict[str, float], vae: dict[str, float]) -> Path:
    def kernels(times: dict[str, float]) -> list[dict[str, Any]]:
        return [{"name": n, "calls": 1, "ms": ms, "share": 0.1} for n, ms in times.items()]

    path.write_text(json.dumps([{"kernels": kernels(unet), "vae_kernels": kernels(vae)}]))
    return path


def test_the_fastest_variant_where_faster_by_the_margin_only(tmp_path: Path) -> None:
    table = load_tile_table()
    tabled = sorted(table)[:4]
    untabled = (1, 7, 9, 11)
    assert untabled not in table
    shapes = {
        "table_kernel": tabled[0],  # 10% faster as it is, read contiguously; in the VAE too
        "table_vae_kernel": tabled[0],
        "wide_kernel": tabled[1],  # fastest with 8x8 registers, contiguous
        "slow_kernel": tabled[2],
        "even_kernel": tabled[3],  # 1% faster: within the margin
        "new_kernel": untabled,
        "unseen_kernel": (1, 3, 5, 7),  # in no report: left out
    }
    (tmp_path / "shapes.json").write_text(json.dumps(shapes))
    names = ["table_kernel", "wide_kernel", "slow_kernel", "even_kernel", "new_kernel"]

    def report(name: str, *ms: float) -> Path:
        return _report(
            tmp_path / f"{name}.json",
            dict(zip(names, ms, strict=True)),
            {"table_vae_kernel": ms[0]},
        )

    current = report("current", 1.0, 1.0, 1.0, 1.0, 2.0)
    variants = {
        "table": report("table", 0.9, 0.95, 1.2, 0.99, 1.0),
        "t16-r8x8-k16-cb16-c": report("wide", 1.1, 0.8, 1.3, 1.5, 1.5),
    }
    out = tmp_path / "tuned.json"
    tune_tiles.contiguous(tmp_path / "shapes.json", current, variants, "m", out, 0.02)

    tuned = load_tile_table(out)
    assert set(tuned) == set(table) | {untabled}
    assert tuned[tabled[0]] == replace(table[tabled[0]], contiguous=True)
    assert tuned[tabled[1]] == replace(tune_tiles.VARIANTS["t16-r8x8-k16"], contiguous=True)
    assert tuned[tabled[2]] == table[tabled[2]] and tuned[tabled[3]] == table[tabled[3]]
    rule = WebGPUMatmul(DEFAULT_KERNELS.tiles or tuned[untabled], table=table)
    assert tuned[untabled] == replace(rule._tiles_for(list(untabled)), contiguous=True)
    written = json.loads(out.read_text())
    entries = {tuple(e["shape"]): e for e in written["entries"]}
    assert entries[tabled[0]]["contiguous_ms"] == {
        "current": 2.0,
        "table": 1.8,
        "t16-r8x8-k16-cb16-c": 2.2,
    }
    assert entries[tabled[1]]["contiguous_variant"] == "t16-r8x8-k16-cb16-c"
    assert "measured on m" in written["contiguous"][-1]

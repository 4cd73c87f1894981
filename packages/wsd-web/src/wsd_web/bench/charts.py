"""The SVG charts of a report: every stage per result, and each WebGPU build's top kernels."""

from __future__ import annotations

import math
import re
from typing import Any

from .results import (
    KIND_NAMES,
    STAGES,
    WEBGPU_COLORS,
    format_ms,
    median,
    present_series,
    run_label,
    stage_label,
    top_kernels,
    webgpu_runs,
)

__all__ = ["chart_svg", "kernels_svg"]

_FONT = "Helvetica, Arial, sans-serif"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    text = _XML_INVALID.sub("", text)
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        text = text.replace(raw, entity)
    return text


def _f(value: float) -> str:
    return f"{value:.1f}"


def _text(
    x: float, y: float, text: str, *, size: int = 12, anchor: str = "start", **attrs: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_xml(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{_xml(text)}</text>"
    )


def _line(x1: float, y1: float, x2: float, y2: float, color: str) -> str:
    return f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{color}"/>'


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="{_FONT}" role="img">'
    )
    background = f'<rect width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>'
    return "\n".join([head, f"<title>{_xml(title)}</title>", background, *body, "</svg>"]) + "\n"


def _tick(exponent: int) -> str:
    return f"{10**exponent:,}" if exponent >= 0 else f"{10.0**exponent:.{-exponent}f}"


def chart_svg(doc: dict[str, Any]) -> str:
    """A horizontal grouped bar chart (log scale) of every stage's median per result."""
    present = present_series(doc)
    groups = [
        (stage, stage_label(stage, label, doc["steps"]))
        for stage, label in STAGES
        if any(median(r, stage) is not None for *_, r in present)
    ]
    values = [v for stage, _ in groups for *_, r in present if (v := median(r, stage)) is not None]
    positive = [v for v in values if v > 0] or [1.0]
    lo = math.floor(math.log10(min(positive)) + 1e-9)
    hi = max(math.ceil(math.log10(max(positive)) - 1e-9), lo + 1)

    width, left, right = 960.0, 170.0, 100.0
    bar, gap, group_gap = 16.0, 3.0, 20.0
    plot_w = width - left - right
    # The legend, in rows that fit the width: (x, row, label, colour).
    legend: list[tuple[float, int, str, str]] = []
    legend_x, row = left, 0
    for _, label, color, _ in present:
        needed = 17 + 7 * len(label) + 20
        if legend_x > left and legend_x + needed - 20 > width - 10:
            legend_x, row = left, row + 1
        legend.append((legend_x, row, label, color))
        legend_x += needed
    top = 104.0 + 18 * row
    group_h = len(present) * bar + (len(present) - 1) * gap
    bottom = top + len(groups) * group_h + (len(groups) - 1) * group_gap + 12
    height = bottom + 48

    def x(value: float) -> float:
        return left + (math.log10(value) - lo) / (hi - lo) * plot_w

    kind = KIND_NAMES.get(doc["kind"], doc["kind"])
    title = (
        f"{kind}, {doc['width']}x{doc['height']}, {doc['steps']} steps, batch {doc['batch']}: "
        "median time per stage (lower is better)"
    )
    torch = doc.get("pytorch_fp32") or doc.get("pytorch_fp16")
    subtitle = f"WebGPU (Node + Dawn): {doc['adapter']}"
    if torch is not None and torch.get("device"):
        subtitle += f"  |  PyTorch CUDA: {torch['device']}"
    body = [
        _text(left, 28, title, size=16, font_weight="bold"),
        _text(left, 50, subtitle, size=12, fill="#444444"),
    ]
    for legend_x, row, label, color in legend:
        legend_y = 66 + 18 * row
        body.append(
            f'<rect x="{_f(legend_x)}" y="{legend_y}" width="12" height="12" fill="{color}"/>'
        )
        body.append(_text(legend_x + 17, legend_y + 10, label, size=12))
    for e in range(lo, hi):
        for m in range(2, 10):
            body.append(_line(x(m * 10.0**e), top - 6, x(m * 10.0**e), bottom, "#f0f0f0"))
    for e in range(lo, hi + 1):
        body.append(_line(x(10.0**e), top - 6, x(10.0**e), bottom, "#c8c8c8"))
        body.append(_text(x(10.0**e), bottom + 16, _tick(e), size=11, anchor="middle"))
    body.append(
        _text(
            left + plot_w / 2, bottom + 38, "median time (ms, log scale)", size=12, anchor="middle"
        )
    )
    y = top
    for stage, label in groups:
        body.append(_text(left - 10, y + group_h / 2 + 4, label, size=12, anchor="end"))
        for key, series_label, color, result in present:
            value = median(result, stage)
            if value is not None and value > 0:
                end, shown = x(value), f"{format_ms(value)} ms"
                body.append(
                    f'<rect x="{_f(left)}" y="{_f(y)}" width="{_f(max(end - left, 1.0))}" '
                    f'height="{_f(bar)}" fill="{color}" data-series="{key}" data-stage="{stage}">'
                    f"<title>{_xml(f'{series_label}, {label}: {shown}')}</title></rect>"
                )
                body.append(_text(max(end, left + 1) + 4, y + bar - 4, shown, size=11))
            y += bar + gap
        y += group_gap - gap
    body.append(_line(left, top - 6, left, bottom, "#444444"))
    return _svg(width, height, title, body)


def _nice_step(span: float) -> float:
    raw = span / 5
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


#: The kernel chart's bar height and the gap between bars.
_KERNEL_BAR, _KERNEL_GAP = 16.0, 6.0


def _short(name: str) -> str:
    return name if len(name) <= 48 else name[:47] + "…"


def _kernels_title(
    doc: dict[str, Any],
    runs: list[dict[str, Any]],
    panels: list[tuple[int, dict[str, Any], list[dict[str, Any]]]],
) -> str:
    kind = KIND_NAMES.get(doc["kind"], doc["kind"])
    if len(runs) > 1:
        return (
            f"{kind}, {doc['width']}x{doc['height']}: top WebGPU kernels per build, "
            "GPU time per UNet step"
        )
    top = panels[0][2]
    total = len(runs[0]["webgpu"]["kernels"])
    return (
        f"{kind}, {doc['width']}x{doc['height']}: top {len(top)} of {total} WebGPU kernels, "
        "GPU time per UNet step"
    )


def _kernel_bar(
    kernel: dict[str, Any], ky: float, end: float, left: float, color: str, attrs: str
) -> list[str]:
    """One kernel's row: its name, its bar and its label."""
    bar = _KERNEL_BAR
    calls = f"{kernel['calls']:g} call" + ("" if kernel["calls"] == 1 else "s")
    label = f"{format_ms(kernel['ms'])} ms, {100 * kernel['share']:.1f}%, {calls}"
    return [
        _text(
            left - 8,
            ky + bar - 4,
            _short(kernel["name"]),
            size=11,
            anchor="end",
            font_family="monospace",
        ),
        f'<rect x="{_f(left)}" y="{_f(ky)}" width="{_f(max(end - left, 1.0))}" '
        f'height="{_f(bar)}" fill="{color}" data-kernel="{_xml(kernel["name"])}"{attrs}>'
        f"<title>{_xml(kernel['name'])}</title></rect>",
        _text(max(end, left + 1) + 4, ky + bar - 4, label, size=11),
    ]


def _kernel_panel(
    doc: dict[str, Any],
    i: int,
    run: dict[str, Any],
    top: list[dict[str, Any]],
    *,
    y: float,
    left: float,
    plot_w: float,
    several: bool,
) -> tuple[list[str], float]:
    """One WebGPU build's panel of kernel bars from ``y`` down: its SVG and its bottom."""
    bar, gap = _KERNEL_BAR, _KERNEL_GAP
    color = WEBGPU_COLORS[i % len(WEBGPU_COLORS)][0]
    extra = {"data_run": str(i)} if several else {}
    body = []
    if several:
        total = len(run["webgpu"]["kernels"])
        heading = (
            f"{run_label(doc, run)} ({run['kernel_path']} kernels): "
            f"top {len(top)} of {total} kernels"
        )
        body.append(_text(24, y, heading, size=13, font_weight="bold"))
        y += 22
    first = y
    bottom = first + len(top) * (bar + gap) + 6
    step = _nice_step(max(max(k["ms"] for k in top), 1e-3))
    ticks = math.ceil(max(k["ms"] for k in top) / step - 1e-9) or 1
    decimals = max(0, -math.floor(math.log10(step)))

    def x(value: float) -> float:
        return left + value / (ticks * step) * plot_w

    for t in range(ticks + 1):
        tx = x(t * step)
        body.append(_line(tx, first - 6, tx, bottom, "#dddddd"))
        body.append(_text(tx, bottom + 16, f"{t * step:.{decimals}f}", size=11, anchor="middle"))
    body.append(_text(left + plot_w / 2, bottom + 38, "ms per UNet step", size=12, anchor="middle"))
    attrs = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in extra.items())
    for n, kernel in enumerate(top):
        body += _kernel_bar(kernel, first + n * (bar + gap), x(kernel["ms"]), left, color, attrs)
    body.append(_line(left, first - 6, left, bottom, "#444444"))
    return body, bottom


def kernels_svg(doc: dict[str, Any]) -> str | None:
    """Bars of the top kernels' GPU time per UNet step, a panel per WebGPU build that
    measured them; None when none did."""
    runs = webgpu_runs(doc)
    several = len(runs) > 1
    panels = [(i, run, top) for i, run in enumerate(runs) if (top := top_kernels(run["webgpu"]))]
    if not panels:
        return None
    left = 24 + 6.7 * max(len(_short(k["name"])) for _, _, top in panels for k in top)
    plot_w, right = 520.0, 150.0
    width = left + plot_w + right
    title = _kernels_title(doc, runs, panels)
    body = [
        _text(24, 28, title, size=16, font_weight="bold"),
        _text(
            24,
            50,
            f"Adapter: {doc['adapter']} (timestamp queries, robustness on)",
            size=12,
            fill="#444444",
        ),
    ]
    y = 84.0
    bottom = y
    for i, run, top in panels:
        panel, bottom = _kernel_panel(
            doc, i, run, top, y=y, left=left, plot_w=plot_w, several=several
        )
        body += panel
        y = bottom + 48 + 36
    return _svg(width, bottom + 48, title, body)

"""The SVG charts of a report: every stage per result, and the top kernels."""

from __future__ import annotations

import math
import re
from typing import Any

from .results import (
    KIND_NAMES,
    SERIES,
    STAGES,
    format_ms,
    median,
    present_series,
    stage_label,
    top_kernels,
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

    width, left, right, top = 960.0, 170.0, 100.0, 104.0
    bar, gap, group_gap = 16.0, 3.0, 20.0
    plot_w = width - left - right
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
    legend_x = left
    for _, label, color, _ in present:
        body.append(f'<rect x="{_f(legend_x)}" y="66" width="12" height="12" fill="{color}"/>')
        body.append(_text(legend_x + 17, 76, label, size=12))
        legend_x += 17 + 7 * len(label) + 20
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


def kernels_svg(doc: dict[str, Any]) -> str | None:
    """Bars of the top kernels' GPU time per UNet step; None when none were measured."""
    top = top_kernels(doc)
    if not top:
        return None
    names = [k["name"] if len(k["name"]) <= 48 else k["name"][:47] + "…" for k in top]
    left = 24 + 6.7 * max(len(n) for n in names)
    plot_w, right, first = 520.0, 150.0, 84.0
    width = left + plot_w + right
    bar, gap = 16.0, 6.0
    bottom = first + len(top) * (bar + gap) + 6
    height = bottom + 48
    step = _nice_step(max(max(k["ms"] for k in top), 1e-3))
    ticks = math.ceil(max(k["ms"] for k in top) / step - 1e-9) or 1
    decimals = max(0, -math.floor(math.log10(step)))

    def x(value: float) -> float:
        return left + value / (ticks * step) * plot_w

    kind = KIND_NAMES.get(doc["kind"], doc["kind"])
    total = len(doc["webgpu"]["kernels"])
    title = (
        f"{kind}, {doc['width']}x{doc['height']}: top {len(top)} of {total} WebGPU kernels, "
        "GPU time per UNet step"
    )
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
    for i in range(ticks + 1):
        tx = x(i * step)
        body.append(_line(tx, first - 6, tx, bottom, "#dddddd"))
        body.append(_text(tx, bottom + 16, f"{i * step:.{decimals}f}", size=11, anchor="middle"))
    body.append(_text(left + plot_w / 2, bottom + 38, "ms per UNet step", size=12, anchor="middle"))
    for i, (kernel, name) in enumerate(zip(top, names, strict=True)):
        y = first + i * (bar + gap)
        body.append(
            _text(left - 8, y + bar - 4, name, size=11, anchor="end", font_family="monospace")
        )
        end = x(kernel["ms"])
        calls = f"{kernel['calls']:g} call" + ("" if kernel["calls"] == 1 else "s")
        body.append(
            f'<rect x="{_f(left)}" y="{_f(y)}" width="{_f(max(end - left, 1.0))}" '
            f'height="{_f(bar)}" fill="{SERIES[0][2]}" data-kernel="{_xml(kernel["name"])}">'
            f"<title>{_xml(kernel['name'])}</title></rect>"
        )
        label = f"{format_ms(kernel['ms'])} ms, {100 * kernel['share']:.1f}%, {calls}"
        body.append(_text(max(end, left + 1) + 4, y + bar - 4, label, size=11))
    body.append(_line(left, first - 6, left, bottom, "#444444"))
    return _svg(width, height, title, body)

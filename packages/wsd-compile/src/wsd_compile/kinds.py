"""What ``wsd-compile`` builds for each model kind: one record per kind.

The capture layer's record (``wsd_capture.KINDS``) says what a kind *is*
(pipeline class, folders, graphs, loader, presets). This one says what the
compiled library adds for it: which families of glue functions
(``wsd_compile.glue.GLUE_FAMILIES``) join its graphs, and which tasks its
build offers, each with the captured graphs its browser pipeline calls. The
manifest's ``tasks`` lists, per task, those graphs plus every glue function,
and the page checks them before it loads anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import WsdCompileError
from .glue import INPAINT_UNET_INPUT

#: The arithmetic a build can have: weights and model math in fp32, or in fp16
#: (inputs, outputs and the glue stay float32).
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class KindBuild:
    """The compiled library of one model kind.

    ``glue``: the glue families its pipeline needs, in the order they are emitted.
    ``tasks``: each task the build offers (``text-to-image``, ``image-to-image``,
    ``inpainting``) with the captured graphs it calls.
    """

    glue: tuple[str, ...]
    tasks: Mapping[str, tuple[str, ...]]


#: Every kind wsd compiles, by name (the names of ``wsd_capture.KINDS``).
BUILDS: Mapping[str, KindBuild] = {
    "sd15": KindBuild(
        glue=("guidance", "scheduler", "image", "inpaint"),
        tasks={
            "text-to-image": ("text_encoder", "unet", "vae_decode"),
            "image-to-image": ("text_encoder", "unet", "vae_encode", "vae_decode"),
            "inpainting": ("text_encoder", "unet", "vae_encode", "vae_decode"),
        },
    ),
    "sdxl": KindBuild(
        glue=("guidance", "scheduler", "image", "xl_text", "inpaint"),
        tasks={
            "text-to-image": ("text_encoder", "text_encoder_2", "unet", "vae_decode"),
            "image-to-image": (
                "text_encoder",
                "text_encoder_2",
                "unet",
                "vae_encode",
                "vae_decode",
            ),
            "inpainting": (
                "text_encoder",
                "text_encoder_2",
                "unet",
                "vae_encode",
                "vae_decode",
            ),
        },
    ),
}


def kind_build(kind: str) -> KindBuild:
    """The record of ``kind``; :class:`WsdCompileError` naming the kinds there are."""
    build = BUILDS.get(kind)
    if build is None:
        raise WsdCompileError(
            f"unknown pipeline kind {kind!r}; expected one of {', '.join(BUILDS)}"
        )
    return build


#: The only task of an inpainting checkpoint's build (its UNet takes a mask).
INPAINTING = "inpainting"

#: Captured graphs that are another graph at a tile's shape (the page runs the
#: VAE in overlapping tiles with them), by the graph they stand in for: a task
#: that calls the graph may call its tile graph too.
TILE_GRAPHS: Mapping[str, str] = {
    "vae_decode_tile": "vae_decode",
    "vae_encode_tile": "vae_encode",
}


def task_functions(kind: str, functions: Mapping[str, object]) -> dict[str, list[str]]:
    """Each task of ``kind`` with the library functions its pipeline calls: its graphs,
    the tile graphs of those (where the library has them) and every glue function
    (``functions`` are the library's, by name). A build of an inpainting checkpoint
    (it has ``inpaint_unet_input``) offers inpainting alone."""
    build = kind_build(kind)
    graphs = {g for task_graphs in build.tasks.values() for g in task_graphs}
    glue = [name for name in functions if name not in graphs and name not in TILE_GRAPHS]
    tasks = list(build.tasks.items())
    if INPAINT_UNET_INPUT in functions:
        tasks = [(task, g) for task, g in tasks if task == INPAINTING]
    tiles = {
        task: [t for t, whole in TILE_GRAPHS.items() if whole in task_graphs and t in functions]
        for task, task_graphs in tasks
    }
    return {task: sorted([*task_graphs, *tiles[task], *glue]) for task, task_graphs in tasks}

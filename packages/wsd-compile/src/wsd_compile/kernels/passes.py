"""The Relax pipeline wsd compiles every model function with, as one list of passes.

It is TVM's generic GPU pipeline (``tvm.relax.backend.gpu_generic``) with
wsd's kernels put in: the group-norm rewrite, fp32 accumulation of fp16
matmuls and convolutions and the fusion of quantized weights'
dequantization into them before legalization, the implicit-GEMM legalization
of convolutions, and wsd's matmul schedules ahead of dlight's rules.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax
from tvm.s_tir import dlight as dl

from .accumulate import accumulate_fp32, legalize_matmul
from .attention import fuse_attention_pass
from .combine_products import combine_products_pass
from .conv2d import legalize_map
from .dequantize import fuse_dequantize_pass
from .few_channels import FewChannelsConv
from .few_rows import FewRowsMatmul
from .group_norm import group_norm_pass
from .half_activations import half_activations_pass, split_upcasts_pass
from .im2col import Im2colSchedule
from .matmul import TiledMatmul, WebGPUMatmul
from .narrow_casts import narrow_before_reshape_pass
from .options import DEFAULT_KERNELS, KernelOptions
from .row_slices import sink_row_slices
from .subgroup_matrix import subgroup_matrix_pass


def webgpu_pipeline(
    target: tvm.target.Target, kernels: KernelOptions = DEFAULT_KERNELS
) -> tvm.transform.Pass:
    """TVM's generic GPU Relax pipeline with wsd's kernels for ``target``."""
    from tvm.relax.backend.gpu_generic import pipeline as generic

    passes = [
        # Phase 1. Library dispatch (sampling, sort and scan), as TVM's generic pipeline.
        *generic.library_dispatch_passes(target),
        # Phase 2. Graph rewrites on Relax operators, before they are lowered.
        half_activations_pass(kernels.half_activations),
        *([group_norm_pass(kernels.group_norm_stats_kernels)] if kernels.group_norm else []),
        *([_attention_pass(kernels)] if kernels.fused_attention else []),
        *(
            [combine_products_pass(kernels.subgroup_combine_from)]
            if kernels.subgroup_matrix and kernels.subgroup_combine_from
            else []
        ),
        *([accumulate_fp32] if kernels.fp32_accumulate else []),
        # Quantized weights: unpacked in the kernels that read them (a no-op without).
        fuse_dequantize(kernels),
        *(
            # The chunks of an attention pad K and V alike: one pad each.
            [
                subgroup_matrix_pass(
                    kernels.subgroup_split_k_workgroups,
                    kernels.subgroup_im2col_max_bytes,
                    kernels.subgroup_large_blocks_from,
                    kernels.subgroup_tiles,
                ),
                # Ranges of rows slice x, not its normalisation and SiLU.
                sink_row_slices(),
                relax.transform.EliminateCommonSubexpr(),
                # The whole values the slices no longer read.
                relax.transform.DeadCodeElimination(),
            ]
            if kernels.subgroup_matrix
            else []
        ),
        # Each kernel reading an activation stored in fp16 casts it itself.
        split_upcasts_pass(kernels.half_activations),
        # A layer norm before a product writes fp16 itself, not fp32 for a cast kernel.
        *([narrow_before_reshape_pass()] if kernels.narrow_before_reshape else []),
        relax.transform.DeadCodeElimination(),
        # No value bound to another name: fusion stops at such a binding (a
        # cast after an attention's last product would be a kernel of its own).
        relax.transform.CanonicalizeBindings(),
        # Phase 3. Lowering to TIR: convolutions as implicit GEMM, the rest as TVM does.
        relax.transform.LegalizeOps(_legalize_map(kernels)),
        # Phase 4. Fusion: element-wise producers and epilogues into their kernels.
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        # Phase 5. GPU schedules: each kernel gets the first rule that applies.
        dl.ApplyDefaultSchedule(*_schedule_rules(kernels)),
        # Phase 6. Lowering to the VM and memory planning, as TVM's generic pipeline.
        *generic.dataflow_lower_passes(target),
        *generic.finalize_passes(target),
    ]

    @tvm.transform.module_pass(opt_level=0, name="wsd.WebGPUPipeline")  # type: ignore[untyped-decorator]
    def pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with target:
            result: tvm.IRModule = tvm.transform.Sequential(passes)(mod)
        return result

    return pipeline


def _attention_pass(kernels: KernelOptions) -> tvm.transform.Pass:
    """Large attention fused (or, with ``attention_chunk_bytes``, as products in
    chunks of queries); on the subgroup-matrix path every attention as products
    on tensor cores, the large ones in chunks of queries."""
    min_bytes, flash = kernels.fused_attention_min_bytes, None
    if kernels.subgroup_matrix:
        chunk = kernels.subgroup_attention_chunk_bytes
        if chunk:
            min_bytes, flash = 0, kernels.subgroup_flash_attention
    else:
        chunk = kernels.attention_chunk_bytes
    return fuse_attention_pass(min_bytes=min_bytes, chunk_bytes=chunk, flash=flash)


def fuse_dequantize(kernels: KernelOptions) -> Any:
    """The dequantization fusion pass with ``kernels``' convolution settings."""
    return fuse_dequantize_pass(
        implicit_gemm=kernels.implicit_gemm,
        channel_block=kernels.channel_block,
        split_k_tiles=kernels.split_k_tiles,
    )


def _legalize_map(kernels: KernelOptions) -> dict[str, Any] | None:
    """wsd's legalizations: implicit-GEMM convolutions, and matmuls whose fp16
    operands are converted as they are staged when they sum in fp32."""
    found: dict[str, Any] = {}
    if kernels.implicit_gemm:
        found.update(
            legalize_map(kernels.channel_block, kernels.split_k_tiles, kernels.few_channels)
        )
    if kernels.fp32_accumulate:
        found["relax.matmul"] = legalize_matmul
    return found or None


class _GEMV(dl.gpu.GEMV):  # type: ignore[misc]
    """dlight's GEMV rule, passing (None) on what its normalisation asserts it
    cannot take instead of failing the build: a reduction over a whole group
    that reads per-group statistics (the group norm's sums of squares about
    the mean, :mod:`.group_norm`) then goes to the reduction rules after it."""

    def apply(self, func: Any, target: tvm.target.Target, tunable: bool) -> Any:
        try:
            return super().apply(func, target, tunable)
        except AssertionError:
            return None


def _schedule_rules(kernels: KernelOptions) -> list[Any]:
    """dlight rules in the order they are tried: the im2col matrices' schedule,
    that of convolutions of a few output channels,
    wsd's matmul schedules (when ``kernels`` has tiles), then dlight's own."""
    rules: list[Any] = [Im2colSchedule(), FewChannelsConv()]
    if kernels.few_rows:
        rules.append(FewRowsMatmul(kernels.few_rows))
    if kernels.tiles is not None:
        if kernels.own_matmul:
            rules.append(
                WebGPUMatmul(
                    kernels.tiles,
                    table=dict(kernels.table),
                    adaptive=kernels.adaptive,
                    contiguous=kernels.matmul_contiguous,
                )
            )
        rules.append(TiledMatmul(kernels.tiles))
    return [
        *rules,
        dl.gpu.Matmul(),
        _GEMV(),
        dl.gpu.Reduction(),
        dl.gpu.GeneralReduction(),
        dl.gpu.Fallback(),
    ]

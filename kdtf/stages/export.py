"""The export stage: the compressed student as an int8 (or ``--ptq MODE``) TFLite file,
checked in the flatbuffer for what the compression steps promised, evaluated on LiteRT
and timed."""

import dataclasses
import os

from kdtf import export
from kdtf.export.profile import profile_export as export_profile
from kdtf.report import per_image, stage_record
from kdtf.stages.compression import CompressStage
from kdtf.stages.context import ModelRecord, RunContext
from kdtf.stages.runner import Stage

__all__ = ["ExportStage", "ExportRecord", "post_training_quantized"]


def post_training_quantized(ctx, model):
    """``--ptq MODE`` (with ``--no-qat``): the float export quantized by
    litert-quantizer, optionally with the most sensitive ops kept in float until the
    accuracy on the validation split is within ``--ptq-max-drop`` of float; plus the
    per-op error. Returns ``(flatbuffer, ptq, layer_errors)``."""
    config, data = ctx.config, ctx.data
    float_file = export.to_tflite(model, "float32")
    calibration = data.sample("train", 256, seed=None)[0]
    x_val, y_val = data.sample("val", 2000, seed=0)
    ptq = {"mode": config.ptq, "tool": "litert-quantizer", "kept_float": []}
    if config.ptq_mixed:
        result = export.mixed_precision(float_file, x_val, y_val, config.ptq_max_drop, mode=config.ptq,
                                        representative_data=calibration)
        flatbuffer = result.model
        ptq.update(kept_float=result.kept, float_accuracy=result.float_accuracy, accuracy=result.accuracy, reached=result.reached)
        ctx.log(f"stage export: mixed precision kept {len(result.kept)} op(s) in float ({result.accuracy:.4f} on val, "
                f"float {result.float_accuracy:.4f})")
    else:
        flatbuffer = export.post_training_quantize(float_file, config.ptq, calibration)
    return flatbuffer, ptq, export.layer_errors(float_file, flatbuffer, x_val[:256])


@dataclasses.dataclass
class ExportRecord(ModelRecord):
    """The ``.tflite`` row (accuracy on LiteRT; top-1 agreement and output SNR against the
    Keras model it was converted from, named in ``converted_from``; ops), what was
    verified in the flatbuffer, with ``--ptq`` the quantizer's settings and per-op
    errors, and the latency check against the float32 export."""

    verified: dict
    ptq: dict = None
    layer_errors: list = None
    latency_profile: dict = None  # float32 against this file: XNNPACK coverage, per-op time (kdtf.export.profile)

    def report_sections(self):
        sections = {**super().report_sections(), "verified_in_tflite": self.verified}
        sections.update({key: value for key, value in (("ptq", self.ptq), ("layer_errors", self.layer_errors),
                                                       ("latency_profile", self.latency_profile)) if value is not None})
        return sections


@dataclasses.dataclass
class ExportStage(Stage):
    """Exports the product of ``compressed`` (:func:`kdtf.export.export_for_android`)
    and verifies the file with the results of ``compressed``."""

    ctx: RunContext
    compressed: CompressStage
    name = "export"
    timing = "export_s"
    record_type = ExportRecord

    def __post_init__(self):
        self.mode = self.ctx.config.ptq or "int8"
        self.path = os.path.join(self.ctx.out, f"student_{self.mode}.tflite")
        self.ptq = self.layer_errors = None

    def describe(self):
        how = (f"post-training {self.mode} quantization with litert-quantizer" if self.ctx.config.ptq
               else "full-integer int8 export (int8 input and output)")
        return f"{how}, evaluated on LiteRT"

    def train(self, callbacks):
        ctx, compressed = self.ctx, self.compressed
        flatbuffer = None
        if ctx.config.ptq:
            flatbuffer, self.ptq, self.layer_errors = post_training_quantized(ctx, compressed.product)
        sources = [compressed.teacher.name, compressed.student.name] + [result.step for result in compressed.results()]
        return export.export_for_android(
            compressed.product, self.path, splits=ctx.data, mode=f"litert-quantizer {self.mode}" if ctx.config.ptq else self.mode,
            flatbuffer=flatbuffer, source_stages=sources,
        )

    def save(self, card):
        return [self.path]

    def measure(self, card, paths):
        ctx, mode = self.ctx, self.mode
        # int4 weights are not read by the flatbuffer checks: what the steps promised is checked on int8 files
        results = self.compressed.results()
        verified = results.verify(self.path) if mode != "int4w" else {"skipped": "int4 weights"}
        ctx.log(f"stage tflite-{mode}: verified in the flatbuffer: {verified}")
        result, runs = card["metrics_on_litert"], ctx.config.latency_runs
        timing = export.latency(self.path, num_threads=1, runs=runs) if runs else None
        row = stage_record(f"tflite-{mode}", result["accuracy"], "litert", results.params,
                           self.path, card["weight_sparsity"], timing, "litert, 1 thread, batch 1")
        # against the Keras model the file was converted from: the compressed student (QAT-trained), not student.keras
        row.update(agreement_with_keras=result["agreement"], snr_db_against_keras=result.get("snr_db"),
                   converted_from=self.compressed.record.row["file"], ops=card["ops"])
        ctx.log(f"stage tflite-{mode}: LiteRT test accuracy {result['accuracy']:.4f} (agreement with Keras "
                f"{result['agreement']:.4f}), {per_image(timing)}")
        # the distilled float student against this file, in turns, at 1 and 2 threads
        calibration = ctx.data.sample("train", 64, seed=0)[0] if runs and ctx.data is not None else None
        profile = export_profile(self.compressed.student.product, self.path, runs=runs, name=mode,
                                 representative_data=calibration) if runs else None
        return ExportRecord(row=row, verified=verified, ptq=self.ptq, layer_errors=self.layer_errors, latency_profile=profile)

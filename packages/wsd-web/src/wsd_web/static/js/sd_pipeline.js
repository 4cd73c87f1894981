// The browser pipeline's public face: what the page, the Node tools and the
// tests import. The pipelines themselves live in pipelines/: the registry by
// kind and task (registry.js), the generation split as diffusers splits it
// (stable_diffusion.js, stable_diffusion_xl.js) and the schedulers' GPU
// tensor operations (scheduling.js).

export { IMAGE_TO_IMAGE, INPAINTING, PIPELINES, TEXT_TO_IMAGE, createPipeline, pipelineClass } from "./pipelines/registry.js";
export { availableSchedulers, defaultSchedulerName, gpuTensorOps } from "./pipelines/scheduling.js";
export { CancelledError, SD15Pipeline } from "./pipelines/stable_diffusion.js";
export { SDXLPipeline, xlTimeIds } from "./pipelines/stable_diffusion_xl.js";

/** @typedef {import("./pipelines/stable_diffusion.js").GenerateOptions} GenerateOptions */
/** @typedef {import("./pipelines/stable_diffusion.js").GenerateHooks} GenerateHooks */
/** @typedef {import("./pipelines/stable_diffusion.js").Generation} Generation */
/** @typedef {import("./pipelines/stable_diffusion.js").Image} Image */
/** @typedef {import("./pipelines/stable_diffusion.js").Timings} Timings */
/** @typedef {import("./pipelines/registry.js").PipelineClass} PipelineClass */

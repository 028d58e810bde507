// @foliar/diffusion training API (the package index re-exports this barrel)
export * from './methods/index.js';
export { priorPreservationLoss, denoisingForward, type PriorLossOptions, type PriorLoss } from './loss.js';
export { runTrainLoop, latestCheckpoint, writeLossCurve, type TrainLoopOptions, type TrainLoopHooks, type TrainLoopResult } from '@foliar/nn';
export { denoisingLoss, prepareImages, disposeImages, TextConditioner, hostRandint, epochIndex, type PreparedImage, type DenoisingLossOptions, type DenoisingTrainOptions } from './denoising.js';
export { trainDreamBooth, ensureClassImages, existingClassImages, DRIFT_PROBES, type DreamBoothConfig, type TrainResult } from './dreambooth.js';
export { trainTextToImage, type TextToImageConfig } from './text-to-image.js';
export { loadTrainingCheckpoint, type TrainingCheckpointOptions } from './checkpoint.js';
export { validateGrid, type ValidationOptions } from './validation.js';
export { trainVAE, vaeLoss, initPosteriorLogvar, perceptualDistance, type VAETrainConfig, type VAELossOptions, type PerceptualTerm } from './vae.js';
export { listImageFiles, parseCsv, readCaptionedFolder, readCaptionedCsv, readClassImagesFromCsv, readClassImageRefsFromCsv, readImageCsv, readImageRefsCsv, type CaptionedImage, type CaptionCsvOptions } from './datasets.js';
export { checkTrainingImages, imageFileProblem, type ImageRef, type ImageGroup } from './image-check.js';
export { loadImageSquare, imagesToTensor, type RgbLike } from './images.js';
export type { RgbImage } from '@foliar/data';

/**
 * Knowledge distillation: train a small tfjs MLP student from any ONNX classifier teacher (Hinton
 * loss, optional augmented transfer set) and export it to ONNX; plus the hard-label baseline.
 */
export * from './distill.ts';
export * from './loss.ts';
export { augmentImages, resolveImageShape } from './augment.ts';
export type { AugmentOptions } from './augment.ts';
export { buildStudent, useWasmBackend, validateStudentSpec, STUDENT_ACTIVATIONS } from './student.ts';
export type { StudentActivation, StudentSpec } from './student.ts';
export { computeTeacherLogits, floatParameters } from './teacher.ts';
export type { TeacherOptions, TeacherOutputs } from './teacher.ts';
export { trainStudent } from './train.ts';
export type { EpochStats, TrainConfig, TrainingData } from './train.ts';

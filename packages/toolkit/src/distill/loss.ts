import * as tf from '@tensorflow/tfjs';

/**
 * Knowledge-distillation loss (Hinton, Vinyals & Dean 2015):
 *
 *   L = α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(y, softmax(s))
 *
 * averaged over the batch. The T² factor keeps the soft term's gradients on the same scale as the
 * hard term's whatever the temperature (soft-target gradients shrink as 1/T²). With `teacherLogits`
 * null (or α = 0) it is plain cross-entropy on the labels: the "student alone" baseline.
 *
 * @example
 * const loss = distillationLoss(studentLogits, teacherLogits, labels, { temperature: 4, alpha: 0.7 });
 */
export function distillationLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D | null,
  labels: tf.Tensor1D,
  opts: { temperature: number; alpha: number },
): tf.Scalar {
  return tf.tidy(() => {
    const classes = studentLogits.shape[1];
    const logP = tf.logSoftmax(studentLogits);
    const hard = tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, classes), logP), 1)));
    if (!teacherLogits || opts.alpha === 0) return hard as tf.Scalar;
    const T = opts.temperature;
    const logPt = tf.logSoftmax(tf.div(teacherLogits, T));
    const logPs = tf.logSoftmax(tf.div(studentLogits, T));
    // KL(pt ‖ ps) = Σ pt (log pt − log ps); the teacher term is constant but keeps the value a true KL
    // (zero when the student matches), which makes the logged loss readable.
    const kl = tf.mean(tf.sum(tf.mul(tf.exp(logPt), tf.sub(logPt, logPs)), 1));
    const soft = tf.mul(kl, T * T);
    return tf.add(tf.mul(soft, opts.alpha), tf.mul(hard, 1 - opts.alpha)) as tf.Scalar;
  });
}

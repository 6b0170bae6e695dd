/**
 * Test/bench-only helpers for the Silero VAD models: deterministic speech-like audio and a
 * frame-by-frame runner that carries the recurrent state the way @ricky0123/vad-web does.
 * Runtime code does not import this file.
 */
import { OutpostError } from '@outpost/protocol';
import { mulberry32 } from '../bench/index.ts';
import { loadModel, ort, runSession } from '../runtime/index.ts';

export const VAD_SAMPLE_RATE = 16000;

/** One stretch of the synthetic signal. */
export interface AudioSegment {
  kind: 'silence' | 'voiced' | 'unvoiced';
  seconds: number;
}

/** Silence, vowels, fricatives and pauses, ~9 s in all: enough to drive the VAD both ways. */
export const DEFAULT_SEGMENTS: AudioSegment[] = [
  { kind: 'silence', seconds: 1.0 },
  { kind: 'voiced', seconds: 1.5 },
  { kind: 'unvoiced', seconds: 0.3 },
  { kind: 'voiced', seconds: 1.2 },
  { kind: 'silence', seconds: 1.5 },
  { kind: 'voiced', seconds: 2.0 },
  { kind: 'unvoiced', seconds: 0.4 },
  { kind: 'silence', seconds: 1.0 },
];

/** Vowel formants (Hz): /a/, /i/, /u/, /e/, /o/. */
const FORMANTS: [number, number, number][] = [
  [730, 1090, 2440],
  [270, 2290, 3010],
  [300, 870, 2240],
  [530, 1840, 2480],
  [570, 840, 2410],
];

/** Gain of a harmonic at `f` Hz under three resonances (a crude vocal-tract envelope). */
function formantGain(f: number, formants: [number, number, number]): number {
  let g = 0;
  formants.forEach((fc, k) => {
    const bw = 80 + 40 * k;
    g += 1 / (1 + ((f - fc) / bw) ** 2) / (k + 1);
  });
  return g;
}

/**
 * Deterministic speech-like audio at 16 kHz in [-1, 1]: seeded background noise everywhere;
 * voiced stretches are harmonic series on a gliding pitch (100–220 Hz, vibrato) shaped by
 * vowel formants that change every syllable, with a 4–5 Hz syllabic amplitude envelope;
 * unvoiced stretches are band-limited noise bursts (fricatives).
 *
 * @example
 * const audio = synthSpeech(7); // ~8.9 s
 */
export function synthSpeech(seed: number, segments: AudioSegment[] = DEFAULT_SEGMENTS): Float32Array {
  const rand = mulberry32(seed);
  const total = Math.round(segments.reduce((a, s) => a + s.seconds, 0) * VAD_SAMPLE_RATE);
  const out = new Float32Array(total);
  let pos = 0;
  let lowpass = 0;
  for (const seg of segments) {
    const n = Math.round(seg.seconds * VAD_SAMPLE_RATE);
    const f0Base = 100 + rand() * 120;
    const syllableRate = 4 + rand();
    let phase = 0;
    for (let i = 0; i < n; i++) {
      const t = i / VAD_SAMPLE_RATE;
      const noise = (rand() * 2 - 1) * 0.003;
      let v = 0;
      if (seg.kind === 'voiced') {
        const syllable = Math.floor(t * syllableRate);
        const formants = FORMANTS[syllable % FORMANTS.length] as [number, number, number];
        const f0 =
          f0Base * (1 + 0.08 * Math.sin(2 * Math.PI * 0.7 * t) + 0.01 * Math.sin(2 * Math.PI * 5.5 * t));
        phase += (2 * Math.PI * f0) / VAD_SAMPLE_RATE;
        for (let h = 1; h * f0 < 4000; h++)
          v += (formantGain(h * f0, formants) * Math.sin(h * phase)) / h ** 0.5;
        const env = Math.sin(Math.PI * ((t * syllableRate) % 1)) ** 2;
        const fade = Math.min(1, t / 0.05, (seg.seconds - t) / 0.05);
        v *= 0.25 * env * fade;
      } else if (seg.kind === 'unvoiced') {
        // High-passed noise: difference of white noise and its one-pole low-pass.
        const w = rand() * 2 - 1;
        lowpass += 0.3 * (w - lowpass);
        v = 0.15 * (w - lowpass) * Math.min(1, t / 0.03, (seg.seconds - t) / 0.03);
      }
      out[pos + i] = Math.max(-1, Math.min(1, v + noise));
    }
    pos += n;
  }
  return out;
}

/** How a Silero model is fed: frame size, context samples and which state inputs it has. */
export interface VadLayout {
  kind: 'legacy' | 'v5';
  frameSamples: number;
  contextSamples: number;
}

/**
 * Tells legacy (h/c, 1536-sample frames) from v5/v6 (`state`, 512 samples + 64 of context) by the inputs.
 *
 * @example
 * vadLayout(['input', 'state', 'sr']) // { kind: 'v5', frameSamples: 512, contextSamples: 64 }
 */
export function vadLayout(inputNames: string[]): VadLayout {
  if (inputNames.includes('h') && inputNames.includes('c')) {
    return { kind: 'legacy', frameSamples: 1536, contextSamples: 0 };
  }
  if (inputNames.includes('state')) return { kind: 'v5', frameSamples: 512, contextSamples: 64 };
  throw new OutpostError('ONNX_UNSUPPORTED', `not a Silero VAD model (inputs ${inputNames.join(', ')})`);
}

/**
 * Runs a Silero VAD model over `audio` frame by frame, carrying h/c (legacy) or `state` and the
 * 64-sample context (v5/v6) exactly as @ricky0123/vad-web does; returns one speech probability per frame.
 *
 * @example
 * const probs = await streamVad(readFileSync('silero_vad_v5.onnx'), synthSpeech(1));
 */
export async function streamVad(model: Uint8Array, audio: Float32Array): Promise<Float32Array> {
  const m = await loadModel(model);
  try {
    const layout = vadLayout(m.inputs.map((i) => i.name));
    const frames = Math.floor(audio.length / layout.frameSamples);
    const probs = new Float32Array(frames);
    const sr = new ort.Tensor('int64', new BigInt64Array([BigInt(VAD_SAMPLE_RATE)]), []);
    let h: ort.Tensor = new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]);
    let c: ort.Tensor = new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]);
    let state: ort.Tensor = new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]);
    let context = new Float32Array(layout.contextSamples);
    for (let f = 0; f < frames; f++) {
      const frame = audio.subarray(f * layout.frameSamples, (f + 1) * layout.frameSamples);
      const input = new Float32Array(layout.contextSamples + layout.frameSamples);
      input.set(context, 0);
      input.set(frame, layout.contextSamples);
      context = frame.slice(frame.length - layout.contextSamples);
      const x = new ort.Tensor('float32', input, [1, input.length]);
      const feeds: Record<string, ort.Tensor> =
        layout.kind === 'legacy' ? { input: x, sr, h, c } : { input: x, sr, state };
      const out = await runSession(m.session, feeds);
      const p = out.output?.data as Float32Array | undefined;
      if (!p) throw new OutpostError('INFERENCE_FAILED', 'Silero model returned no output');
      probs[f] = p[0] ?? NaN;
      if (layout.kind === 'legacy') {
        h = out.hn as ort.Tensor;
        c = out.cn as ort.Tensor;
      } else {
        state = out.stateN as ort.Tensor;
      }
    }
    return probs;
  } finally {
    await m.release();
  }
}

/**
 * The segment kind under the centre of each frame of `frameSamples`, to score a VAD against the
 * synthetic ground truth.
 *
 * @example
 * const kinds = frameKinds(DEFAULT_SEGMENTS, 512); // ['silence', 'silence', ..., 'voiced', ...]
 */
export function frameKinds(segments: AudioSegment[], frameSamples: number): AudioSegment['kind'][] {
  const bounds: [number, AudioSegment['kind']][] = [];
  let end = 0;
  for (const s of segments) {
    end += Math.round(s.seconds * VAD_SAMPLE_RATE);
    bounds.push([end, s.kind]);
  }
  const frames = Math.floor(end / frameSamples);
  return Array.from({ length: frames }, (_, f) => {
    const centre = f * frameSamples + frameSamples / 2;
    return (bounds.find(([e]) => centre < e) ?? bounds[bounds.length - 1])?.[1] ?? 'silence';
  });
}

const V6_ENCODER = [0, 2, 3].flatMap((k) =>
  ['then', 'else'].map((b) => `If_0_${b}_branch__Inline_0__/encoder/${k}/reparam_conv/Conv`),
);

/**
 * `quantizeDynamic` settings, by model file, that keep each Silero model within 0.05 of fp32 on every
 * frame. Found with `bench/vad-dynamic.ts` (per-node sensitivity: quantize one node at a time, then
 * exclude the worst) on audio seeds 7–9 and checked on held-out seeds 10–14:
 * - legacy (v4): default uint8 per-tensor weights, but three convs per sample-rate branch stay float: the
 *   STFT conv on raw audio (Conv_73 / Conv_547) and the two convs reading the concatenation of the
 *   linear magnitude and the normalised log-spectrum (Conv_137, Conv_139 / Conv_611, Conv_613). Their
 *   inputs span orders of magnitude, which one per-tensor uint8 activation scale cannot hold. Excluding
 *   fewer is fragile (errors partly cancel: the STFT conv alone is 0.08, all but it 0.16). Max |Δp|
 *   0.017 (held out 0.017), at the cost of size (0.95× instead of 0.72×: the STFT basis is a quarter of
 *   the model and the LSTMs, most of the rest, have no dynamic int8 form).
 * - v5: per-channel weights, nothing excluded (0.017; held out 0.021). The re-parameterised encoder
 *   convs fold batch norm into their weights, so channel ranges differ widely and per-tensor weights
 *   flatten the small channels (defaults: 0.10).
 * - v6: same weights layout, far more sensitive (defaults: 0.67, encoder.3 alone 0.67): per-channel
 *   plus encoder convs 0, 2 and 3 in float (0.025; held out 0.038; 0.83× size). With only 2 and 3
 *   excluded it is 0.026 on seeds 7–9 but 0.045 held out, too close to the limit.
 */
export const SILERO_DYNAMIC_RECIPES: Readonly<
  Record<string, { perChannel?: boolean; nodesToExclude?: string[] }>
> = {
  'silero_vad_legacy.onnx': {
    nodesToExclude: ['Conv_73', 'Conv_137', 'Conv_139', 'Conv_547', 'Conv_611', 'Conv_613'],
  },
  'silero_vad_v5.onnx': { perChannel: true },
  'silero_vad_v6.onnx': { perChannel: true, nodesToExclude: V6_ENCODER },
};

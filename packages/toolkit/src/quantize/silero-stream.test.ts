import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { sileroModels } from '../testing/fixtures.ts';
import {
  DEFAULT_SEGMENTS,
  SILERO_DYNAMIC_RECIPES,
  frameKinds,
  streamVad,
  synthSpeech,
  vadLayout,
} from '../testing/vad.ts';
import { decodeModel, encodeModel } from '../onnx/index.ts';
import { modelInputs } from '../quantize-static/index.ts';
import { quantizeDynamic } from './index.ts';

/**
 * Silero VAD through quantizeDynamic, frame by frame with the recurrent state carried (h/c for the
 * legacy model, `state` + 64 samples of context for v5/v6), on deterministic speech-like audio: the
 * int8 speech probability must stay within 0.05 of fp32 on every frame.
 */
describe('quantizeDynamic keeps Silero VAD streaming within 0.05 of fp32', () => {
  const audio = synthSpeech(7);
  for (const path of sileroModels()) {
    const name = path.split('/').pop() ?? path;
    test(name, async () => {
      const bytes = readFileSync(path);
      const model = decodeModel(bytes);
      const layout = vadLayout(modelInputs(model).map((i) => i.name));
      const recipe = SILERO_DYNAMIC_RECIPES[name];
      assert.ok(recipe, `no recipe for ${name}`);
      const { model: q, report } = quantizeDynamic(model, recipe);
      assert.ok(report.quantized.length >= 6, `${report.quantized.length} quantized`);
      // Legacy keeps most of its weights in float (the STFT basis stays float, LSTMs have no dynamic
      // int8 form), v5/v6 quantize all their convs.
      assert.ok(report.sizeAfter < (layout.kind === 'legacy' ? 0.97 : 0.9) * report.sizeBefore);
      for (const n of recipe.nodesToExclude ?? []) {
        assert.equal(report.skipped.find((s) => s.node === n)?.reason, 'excluded by nodesToExclude', n);
      }
      const fp = await streamVad(bytes, audio);
      const int8 = await streamVad(encodeModel(q), audio);
      assert.equal(fp.length, Math.floor(audio.length / layout.frameSamples));
      let worst = 0;
      for (let i = 0; i < fp.length; i++) worst = Math.max(worst, Math.abs(fp[i]! - int8[i]!));
      assert.ok(worst <= 0.05, `max |p_int8 − p_fp32| = ${worst}`);
      // The audio is a fair test: fp32 hears the voiced stretches as speech and the silences as not.
      const kinds = frameKinds(DEFAULT_SEGMENTS, layout.frameSamples);
      const mean = (k: string) => {
        const idx = kinds.flatMap((kind, i) => (kind === k && i > 2 ? [i] : []));
        return idx.reduce((a, i) => a + fp[i]!, 0) / idx.length;
      };
      assert.ok(
        mean('voiced') > 0.7 && mean('silence') < 0.3,
        `voiced ${mean('voiced')}, silence ${mean('silence')}`,
      );
    });
  }
});

import { Command, InvalidArgumentError, Option } from 'commander';
import { ERROR_REGISTRY, ERROR_CODES, OutpostError } from '@outpost/protocol';
import { reportError, table } from './output/index.ts';
import { benchCommand, inspectCommand, quantizeCommand } from './commands/model-tools.ts';
import { fp16Command, quantizeStaticCommand } from './commands/quantize-modes.ts';
import { pruneCommand } from './commands/prune.ts';
import { distillCommand } from './commands/distill.ts';
import { optimizeCommand } from './commands/optimize.ts';
import { reportCommand } from './commands/report.ts';
import { deployCommand, keysGenerateCommand, publishCommand } from './commands/fleet.ts';
import { agentCommand, serverCommand } from './commands/daemons.ts';
import { DEMO_MODEL, runDemo } from './demo/index.ts';

/** The `outpost` CLI: one verb per user task. */

const int = (min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InvalidArgumentError(`must be an integer in [${min}, ${max}]`);
  return n;
};
const collect = (v: string, prev: string[]) => [...prev, v];

interface QuantizeCliOptions {
  output: string;
  mode: 'dynamic' | 'static' | 'fp16';
  weightType?: 'uint8' | 'int8';
  activationType?: 'uint8' | 'int8';
  perChannel?: boolean;
  calib?: string;
  calibCount: number;
  method: 'minmax' | 'percentile' | 'entropy';
  keepIoTypes: boolean;
  json?: boolean;
}

const program = new Command()
  .name('outpost')
  .description('Take a trained model to a fleet of edge devices and keep it healthy there.')
  .version('0.1.0')
  // Program options only before the verb, so `publish --version 1.0.0` is the model's version, not ours.
  .enablePositionalOptions()
  .showHelpAfterError();

let jsonOutput = false;
/** Wraps an action so every failure prints `error CODE: message` (or JSON) and sets a stable exit code. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void) {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    jsonOutput = Boolean(cmd.opts().json);
    try {
      await fn(...args);
    } catch (err) {
      process.exitCode = reportError(err, jsonOutput);
    }
  };
}

const serverOpt = () =>
  new Option('--server <url>', 'control-plane URL').env('OUTPOST_SERVER').default('http://127.0.0.1:8080');
const tokenOpts = (c: Command) =>
  c
    .addOption(serverOpt())
    .option('--token-file <path>', 'file holding the admin token (default: $OUTPOST_TOKEN)')
    .addOption(
      new Option('--token <token>', 'admin token (prefer --token-file or OUTPOST_TOKEN)').hideHelp(),
    );

program
  .command('inspect')
  .description('show an ONNX model: opsets, operators, parameters, inputs/outputs')
  .argument('<model>', 'path to an .onnx file')
  .option('--json', 'machine-readable output')
  .action(action(inspectCommand));

program
  .command('bench')
  .description('latency p50/p95/p99, throughput and peak RSS with onnxruntime-node (in a fresh process)')
  .argument('<model>', 'path to an .onnx file')
  .option('--iterations <n>', 'timed runs', int(1, 1_000_000), 200)
  .option('--warmup <n>', 'untimed runs first', int(0, 100_000), 20)
  .option('--threads <n>', 'intra-op threads', int(1, 256), 1)
  .option('--batch <n>', 'value for symbolic batch dimensions', int(1, 65536), 1)
  .option('--json', 'machine-readable output')
  .action(action(benchCommand));

program
  .command('quantize')
  .description('int8 (dynamic or static QDQ) or fp16 conversion; lists every op left in float and why')
  .argument('<model>', 'input .onnx')
  .requiredOption('-o, --output <path>', 'output .onnx (written atomically)')
  .addOption(
    new Option('--mode <m>', 'dynamic int8, static int8 (QDQ, needs --calib) or fp16')
      .choices(['dynamic', 'static', 'fp16'])
      .default('dynamic'),
  )
  .addOption(
    new Option('--weight-type <t>', 'weight integer type (dynamic default uint8)').choices(['uint8', 'int8']),
  )
  .addOption(
    new Option('--activation-type <t>', 'static: activation integer type').choices(['uint8', 'int8']),
  )
  .option('--per-channel', 'one scale per output channel')
  .option('--calib <path>', 'static: calibration inputs (.npy, or MNIST-style .u8 images)')
  .option('--calib-count <n>', 'static: calibration samples to use', int(1, 1_000_000), 200)
  .addOption(
    new Option('--method <m>', 'static: calibration method')
      .choices(['minmax', 'percentile', 'entropy'])
      .default('minmax'),
  )
  .option('--no-keep-io-types', 'fp16: make graph inputs/outputs float16 too')
  .option('--json', 'machine-readable output')
  .action(
    action(async (model: string, o: QuantizeCliOptions) => {
      if (o.mode === 'fp16')
        return fp16Command(model, { output: o.output, keepIoTypes: o.keepIoTypes, json: o.json });
      if (o.mode === 'static') {
        if (!o.calib) throw new OutpostError('VALIDATION_FAILED', '--mode static needs --calib <data>');
        return quantizeStaticCommand(model, {
          output: o.output,
          calib: o.calib,
          calibCount: o.calibCount,
          method: o.method,
          perChannel: o.perChannel,
          activationType: o.activationType,
          weightType: o.weightType,
          json: o.json,
        });
      }
      return quantizeCommand(model, {
        output: o.output,
        weightType: o.weightType ?? 'uint8',
        perChannel: o.perChannel,
        json: o.json,
      });
    }),
  );

program
  .command('prune')
  .description(
    'magnitude pruning to a sparsity, or structured removal of conv filters (optionally fine-tuned)',
  )
  .argument('<model>', 'input .onnx')
  .requiredOption('-o, --output <path>', 'output .onnx (written atomically)')
  .addOption(new Option('--mode <m>', 'what to prune').choices(['magnitude', 'filters']).default('magnitude'))
  .option('--sparsity <s>', 'magnitude: fraction of weights to zero (0-1)', '0.5')
  .option('--ratio <r>', "filters: fraction of each conv's filters to remove (0-1)", '0.5')
  .addOption(
    new Option('--scope <s>', 'magnitude: threshold scope')
      .choices(['global', 'per-layer'])
      .default('global'),
  )
  .addOption(new Option('--criterion <c>', 'filters: filter norm').choices(['l1', 'l2']).default('l1'))
  .option('--finetune', 'filters: fine-tune afterwards (needs --train and --train-labels)')
  .option('--train <path>', 'MNIST-format training images (.u8)')
  .option('--train-labels <path>', 'one label byte per training image')
  .option('--epochs <n>', 'fine-tuning epochs', '3')
  .addOption(
    new Option('--finetune-mode <m>', 'fine-tune every layer or the head')
      .choices(['full', 'head'])
      .default('full'),
  )
  .option('--json', 'machine-readable output')
  .action(action(pruneCommand));

program
  .command('distill')
  .description("train a small dense student on an ONNX teacher's softened outputs; export it to ONNX")
  .argument('<teacher>', 'teacher .onnx (any classifier onnxruntime runs)')
  .requiredOption('-o, --output <path>', 'student .onnx (written atomically)')
  .requiredOption('--train <path>', 'MNIST-format training images (.u8)')
  .requiredOption('--train-labels <path>', 'one label byte per training image')
  .option('--hidden <sizes>', 'hidden layer sizes, e.g. 32 or 64,32', '32')
  .option('--activation <a>', 'hidden activation', 'relu')
  .option('--crop <px>', 'pixels cropped from each image border before the first layer', '0')
  .option('--pool <k>', 'average-pooling factor applied to the (cropped) image', '1')
  .option('--dropout <p>', 'dropout after each hidden layer (removed in the exported ONNX)', '0')
  .option('--batch-norm', 'batch normalization after each hidden layer (folded into Dense on export)')
  .option('--temperature <t>', 'softmax temperature of the soft targets', '4')
  .option('--alpha <a>', 'weight of the soft loss (0-1)', '0.7')
  .option('--epochs <n>', 'epochs', '20')
  .option('--batch-size <n>', 'batch size', '64')
  .option('--learning-rate <lr>', 'initial learning rate', '0.002')
  .option('--augment <n>', 'augmented copies per digit in the transfer set', '0')
  .option('--seed <n>', 'seed for weights, augmentation and batch order', '1')
  .option('--compare-alone', 'also train the same student on labels alone (the baseline)')
  .option('--eval-images <path>', 'held-out images for accuracy figures')
  .option('--eval-labels <path>', 'held-out labels')
  .option('--json', 'machine-readable output')
  .action(action(distillCommand));

program
  .command('optimize')
  .description(
    'build candidate variants, measure each on a hardware profile, pick the best within the accuracy budget',
  )
  .argument('<model>', 'fp32 .onnx')
  .requiredOption('--calib <spec>', 'calibration data, e.g. mnist-u8:train-x.u8:train-y.u8:200')
  .requiredOption('--eval <spec>', 'labelled evaluation data, e.g. mnist-u8:eval-x.u8:eval-y.u8')
  .option('--target <profile>', 'built-in profile name or a JSON profile file', 'cpu-x86-1t')
  .option('--max-accuracy-drop <points>', 'accuracy budget in percentage points', parseFloat, 0.5)
  .addOption(
    new Option('--objective <o>', 'what to minimise')
      .choices(['latency', 'size', 'energy'])
      .default('latency'),
  )
  .option('--candidates <ids>', 'comma-separated candidate ids (fp32 is always included)')
  .option('--iterations <n>', 'timed runs per candidate', int(10, 1_000_000), 300)
  .option('--no-memory', 'skip the per-candidate peak-memory child process')
  .option('--out <dir>', 'output directory: chosen model, report.json, report.html', '.outpost/optimize')
  .option('--json', 'machine-readable output')
  .action(action(optimizeCommand));

program
  .command('report')
  .description('print an optimization report.json, or render it as a self-contained HTML page')
  .argument('<report>', 'report.json written by outpost optimize')
  .option('--html <path>', 'write the HTML page here')
  .option('--json', 'print the JSON')
  .action(action(reportCommand));

const keys = program.command('keys').description('manage publisher signing keys');
keys
  .command('generate')
  .description('create an Ed25519 key pair: <name>.key (0600) and <name>.pub')
  .option('--out <dir>', 'directory', '.outpost/keys')
  .option('--name <name>', 'file name stem', 'publisher')
  .option('--force', 'replace an existing key')
  .action(action(keysGenerateCommand));

tokenOpts(
  program
    .command('publish')
    .description('sign a model with your key and upload it to the control plane')
    .argument('<model>', 'path to an .onnx file')
    .requiredOption('--name <name>', 'model name')
    .requiredOption('--version <semver>', 'model version, e.g. 1.0.0')
    .requiredOption('--key <path>', 'publisher private key (.key)')
    .option('--target <profile>', 'hardware profile (repeatable)', collect, [])
    .addOption(
      new Option('--method <m>', 'how the artifact was optimized')
        .choices(['none', 'dynamic-int8', 'static-int8', 'fp16', 'pruned', 'distilled'])
        .default('none'),
    )
    .option('--metric <name=value>', 'evaluation figure to record (repeatable)', collect, [])
    .option(
      '--report <report.json>',
      'provenance from `outpost optimize`: optimization settings and measured figures',
    )
    .option('--json', 'machine-readable output'),
).action(action(publishCommand));

tokenOpts(
  program
    .command('deploy')
    .description('deploy a published model version to devices')
    .requiredOption('--model <name>', 'model name')
    .requiredOption('--version <semver>', 'model version')
    .requiredOption('--devices <ids>', 'comma-separated device ids', (v) => v.split(',').filter(Boolean))
    .option('--wait', 'wait until every device reports success or failure')
    .option('--timeout <s>', 'with --wait: give up after this many seconds', int(1, 86400), 300)
    .option('--json', 'machine-readable output'),
).action(action(deployCommand));

program
  .command('server')
  .description('run the control plane: REST API, MQTT broker, SQLite store')
  .option('--data-dir <dir>', 'state directory', '.outpost/server')
  .option('--host <host>', 'bind address', '127.0.0.1')
  .option('--port <n>', 'HTTP port', int(0, 65535), 8080)
  .option('--mqtt-port <n>', 'MQTT port', int(0, 65535), 1883)
  .option('--trust-key <path>', 'trusted publisher public key (repeatable)', collect, [])
  .action(action(serverCommand));

program
  .command('agent')
  .description('run the device agent: enrol, receive deployments, serve inference locally')
  .addOption(serverOpt())
  .option('--data-dir <dir>', 'state directory', '.outpost/agent')
  .option('--bootstrap-token <t>', 'enrolment token (default: $OUTPOST_BOOTSTRAP_TOKEN); only needed once')
  .option('--device-id <id>', 'requested device id')
  .option('--profile <name>', 'hardware profile', 'cpu')
  .requiredOption('--trust-key <path>', 'publisher public key the agent trusts (repeatable)', collect, [])
  .option('--api-host <host>', 'local API bind address', '127.0.0.1')
  .option('--api-port <n>', 'local API port (0 = any)', int(0, 65535), 8081)
  .option('--telemetry-interval-ms <n>', 'telemetry period', int(100, 3_600_000), 10_000)
  .option('--threads <n>', 'onnxruntime intra-op threads', int(1, 256), 1)
  .action(action(agentCommand));

program
  .command('demo')
  .description(
    'the whole loop on this machine: quantize, sign, publish, enrol agents, deploy, infer, observe',
  )
  .option('--devices <n>', 'agent processes to start', int(1, 32), 3)
  .option('--samples <n>', 'MNIST digits per device', int(1, 10_000), 200)
  .option('--model <path>', 'fp32 ONNX classifier with a [N,1,28,28] input', DEMO_MODEL)
  .option('--data-dir <dir>', 'working directory (default: a new temp dir)')
  .option('--keep-running', 'keep server and agents up until Ctrl-C (default when stdout is a terminal)')
  .option('--no-keep-running', 'exit after the report')
  .action(
    action(
      async (opts: {
        devices: number;
        samples: number;
        model: string;
        dataDir?: string;
        keepRunning?: boolean;
      }) => {
        await runDemo({
          ...opts,
          keepRunning: opts.keepRunning ?? (Boolean(process.stdout.isTTY) && !process.env.CI),
        });
      },
    ),
  );

program
  .command('errors')
  .description('list the stable error codes')
  .action(() => {
    process.stdout.write(
      `${table(
        ERROR_CODES.map((c) => [
          c,
          ERROR_REGISTRY[c].status,
          ERROR_REGISTRY[c].retryable ? 'yes' : 'no',
          ERROR_REGISTRY[c].description,
        ]),
        ['code', 'http', 'retryable', 'meaning'],
      )}\n`,
    );
  });

await program.parseAsync(process.argv);

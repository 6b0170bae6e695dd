import { Command, InvalidArgumentError, Option } from 'commander';
import { ERROR_REGISTRY, ERROR_CODES } from '@outpost/protocol';
import { reportError, table } from './output/index.ts';
import { benchCommand, inspectCommand, quantizeCommand } from './commands/model-tools.ts';
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
  .description('dynamic int8 quantization of MatMul/Gemm/Conv weights')
  .argument('<model>', 'input .onnx')
  .requiredOption('-o, --output <path>', 'output .onnx (written atomically)')
  .addOption(
    new Option('--weight-type <t>', 'weight integer type').choices(['uint8', 'int8']).default('uint8'),
  )
  .option('--per-channel', 'one scale per output channel')
  .option('--json', 'machine-readable output')
  .action(action(quantizeCommand));

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

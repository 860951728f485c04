// test_mcp.mjs - `trainscope mcp` against the official MCP client SDK
// (@modelcontextprotocol/sdk, installed in tests/mcp by scripts/install-deps).
//
// usage: node test_mcp.mjs TRAINSCOPE LIBTRAINSCOPE_SO
//
// Everything is real: a `trainscope collect` process writes the store,
// trainers are the Python client (tests/mcp/publish.py over the
// libtrainscope the build produced), and the MCP server is the built
// binary, spawned by the SDK's StdioClientTransport. The answers are
// checked against what the store holds, read with `trainscope export` and
// `trainscope report --json`. Under ASan the Python publishers get the ASan
// runtime preloaded from TS_PY_LD_PRELOAD (tests/meson.build sets it).
import { spawn, execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

const SDK = './mcp/node_modules/@modelcontextprotocol/sdk/dist/esm';
let Client, StdioClientTransport, GetPromptResultSchema;
try {
  ({ Client } = await import(`${SDK}/client/index.js`));
  ({ StdioClientTransport } = await import(`${SDK}/client/stdio.js`));
  ({ GetPromptResultSchema } = await import(`${SDK}/types.js`));
} catch (e) {
  console.log(`FAIL: the MCP client SDK is not installed in tests/mcp (run scripts/install-deps, or npm ci there): ${e.message}`);
  process.exit(1);
}

const [TS, LIB] = process.argv.slice(2).map((p) => path.resolve(p));
const HERE = path.dirname(fileURLToPath(import.meta.url));
const TMP = mkdtempSync(path.join(tmpdir(), 'ts-mcp-'));
const STORE = path.join(TMP, 'runs.db');
const INGEST = `ipc://${TMP}/ingest`;
const failures = [];

function check(cond, what) {
  if (what.length > 600) what = what.slice(0, 600) + '...';
  console.log(`${cond ? 'ok' : 'FAIL'}: ${what}`);
  if (!cond) failures.push(what);
  return cond;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(cmd, args, env = process.env) {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function pythonEnv() {
  const env = { ...process.env, TRAINSCOPE_LIB: LIB };
  if (process.env.TS_PY_LD_PRELOAD) {
    env.LD_PRELOAD = process.env.TS_PY_LD_PRELOAD;
    env.ASAN_OPTIONS = 'detect_leaks=0:halt_on_error=1:abort_on_error=1';
  }
  return env;
}

// A trainer: tests/mcp/publish.py ENDPOINT RUN STEPS [options].
function publisher(runName, steps, opts = []) {
  const p = spawn('/usr/bin/python3', [path.join(HERE, 'mcp', 'publish.py'), INGEST, runName, String(steps), ...opts],
    { env: pythonEnv(), stdio: ['ignore', 'inherit', 'inherit'] });
  return new Promise((resolve) => p.on('exit', (code) => resolve(code)));
}

async function startCollector(apiEp, extra = [], env = process.env) {
  const proc = spawn(TS, ['collect', '--store', STORE, '--ingest', INGEST, '--api', apiEp,
    '--live', `ipc://${TMP}/live`, '--quiet', ...extra], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  for (let i = 0; i < 100; i++) {
    if ((await run(TS, ['query', apiEp, '{"op":"info"}', '--timeout-ms', '500'], env)).code === 0) break;
    await sleep(100);
  }
  return { proc, exited, api: apiEp };
}

async function connect(args, env = process.env) {
  const client = new Client({ name: 'trainscope-test', version: '1.0.0' });
  const transport = new StdioClientTransport({ command: TS, args: ['mcp', ...args], env: { ...env },
    stderr: 'pipe' });
  // The server's diagnostics (stdout carries frames only), kept to look for
  // sanitizer reports when it has exited.
  client.stderrText = '';
  transport.stderr.on('data', (d) => { client.stderrText += d; });
  client.label = args.join(' ');
  await client.connect(transport);
  return client;
}

// Close as a client does: end stdin, and the server exits by itself.
async function disconnect(client) {
  await client.close();
  await sleep(100);
  check(!/Sanitizer|runtime error:/.test(client.stderrText),
    `mcp ${client.label}: exits without a sanitizer report${client.stderrText.includes('Sanitizer') ? '\n' + client.stderrText : ''}`);
}

// A tool call: { err: bool, text, json (parsed when not an error) }.
async function call(client, name, args = {}, options = undefined) {
  const r = await client.callTool({ name, arguments: args }, undefined, options);
  const text = r.content?.[0]?.text ?? '';
  return { err: r.isError === true, text, json: r.isError ? null : JSON.parse(text) };
}

// Export as [{step, value}] parsed exactly as the server's JSON is parsed.
async function exported(runName, metric) {
  const r = await run(TS, ['export', STORE, runName, '--metric', metric, '--format', 'csv']);
  return r.stdout.trim().split('\n').slice(1).map((l) => {
    const f = l.split(',');
    return { step: Number(f[3]), value: Number(f[5]) };
  });
}

async function rejects(p) {
  try {
    await p;
    return null;
  } catch (e) {
    return e;
  }
}

// ---- the raw protocol: malformed input, versions, exit ----------------------

async function rawSession(lines) {
  const p = spawn(TS, ['mcp', STORE], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  for (const l of lines) p.stdin.write(l + '\n');
  p.stdin.end();
  const code = await new Promise((resolve) => p.on('exit', (c) => resolve(c)));
  check(!/Sanitizer|runtime error:/.test(err), `raw: no sanitizer report${err.includes('Sanitizer') ? '\n' + err : ''}`);
  return { code, replies: out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

async function testRawProtocol() {
  const init = (id, v) => JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize',
    params: { protocolVersion: v, capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
  const { code, replies } = await rawSession([
    'this is not json {',
    '{"jsonrpc":"2.0","id":2,"method":"ping"}',
    init(3, '2024-11-05'), init(4, '2025-03-26'), init(5, '2025-06-18'), init(6, '2025-11-25'), init(7, '1999-01-01'),
    '{"jsonrpc":"2.0","method":"notifications/initialized"}',
    '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}',
    '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"arguments":{}}}',
    '{"jsonrpc":"2.0","id":10,"method":"resources/list"}',
    '[{"jsonrpc":"2.0","id":11,"method":"ping"}]',
    '{"jsonrpc":"2.0","id":12,"method":"initialize","params":{}}',
    '{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"get_series","arguments":{"run":"base","from":"x"}}}',
    '{"jsonrpc":"2.0","id":14,"method":"ping"}',
  ]);
  check(code === 0, `raw: the server exits 0 at the end of stdin (exit ${code})`);
  const byId = new Map(replies.filter((r) => r.id !== null).map((r) => [r.id, r]));
  check(replies[0].id === null && replies[0].error?.code === -32700,
    `raw: a line that is not JSON gets -32700 with id null (${JSON.stringify(replies[0])})`);
  check(isDeepStrictEqual(byId.get(2)?.result, {}), 'raw: the ping after the malformed line is answered');
  for (const [id, v] of [[3, '2024-11-05'], [4, '2025-03-26'], [5, '2025-06-18'], [6, '2025-11-25']])
    check(byId.get(id)?.result?.protocolVersion === v, `raw: initialize with ${v} is answered with ${v}`);
  check(byId.get(7)?.result?.protocolVersion === '2025-11-25',
    'raw: an unknown protocol version is answered with the newest supported');
  check(byId.get(3)?.result?.capabilities?.tools !== undefined && byId.get(3)?.result?.serverInfo?.name === 'trainscope',
    'raw: initialize names the server and the tools capability');
  check(byId.get(8)?.error?.code === -32602 && /no_such_tool/.test(byId.get(8)?.error?.message),
    'raw: an unknown tool is -32602 naming it');
  check(byId.get(9)?.error?.code === -32602, 'raw: tools/call without a name is -32602');
  check(byId.get(10)?.error?.code === -32601, 'raw: an unknown method is -32601');
  check(replies.some((r) => r.id === null && r.error?.code === -32600), 'raw: a batch array is -32600');
  check(byId.get(12)?.error?.code === -32602, 'raw: initialize without protocolVersion is -32602');
  check(byId.get(13)?.result?.isError === true && /'from' must be an integer/.test(byId.get(13)?.result?.content[0].text),
    'raw: a tool argument of the wrong type is a tool error naming it');
  check(isDeepStrictEqual(byId.get(14)?.result, {}), 'raw: the last request is still answered');
  check(replies.length === 14, `raw: one reply per request, none for the notification (${replies.length})`);

  const bad = await run(TS, ['mcp', path.join(TMP, 'missing.db')]);
  check(bad.code === 1 && bad.stdout === '' && /missing\.db/.test(bad.stderr),
    `a missing store: exit 1, a sentence on stderr naming it, nothing on stdout (${bad.stderr.trim()})`);
}

// ---- a store, read-only -------------------------------------------------------

async function testStore(client) {
  const tools = (await client.listTools()).tools;
  const names = tools.map((t) => t.name).sort();
  check(isDeepStrictEqual(names, ['compare_runs', 'describe_run', 'get_series', 'list_runs', 'report', 'wait_for']),
    `read-only: tools/list has the six read tools and no annotate (${names})`);
  check(tools.every((t) => t.inputSchema?.type === 'object' && t.description.length > 40),
    'every tool has an object inputSchema and a description');
  check(isDeepStrictEqual(tools.find((t) => t.name === 'compare_runs').inputSchema.required, ['run', 'against']),
    'compare_runs requires run and against');

  let r = await call(client, 'list_runs');
  check(isDeepStrictEqual(r.json.runs.map((x) => x.run), ['exp/other', 'base']), 'list_runs: newest first');
  check(r.json.runs[1].points === 3000 && r.json.runs[1].status === 'finished' && r.json.runs[1].metrics === 3,
    'list_runs: status, points and metrics of base');
  r = await call(client, 'list_runs', { project: 'exp' });
  check(isDeepStrictEqual(r.json.runs.map((x) => x.run), ['exp/other']), 'list_runs: project filter');
  r = await call(client, 'list_runs', { name: 'bas' });
  check(isDeepStrictEqual(r.json.runs.map((x) => x.run), ['base']), 'list_runs: name substring filter');
  r = await call(client, 'list_runs', { status: 'running' });
  check(r.json.runs.length === 0 && r.json.matching === 0, 'list_runs: status filter');

  r = await call(client, 'describe_run', { run: 'base' });
  const d = r.json;
  check(d.config?.lr === 0.001 && d.config?.batch === 64, 'describe_run: the config');
  const loss = d.metrics.find((m) => m.metric === 'train/loss');
  check(loss?.count === 1000 && isDeepStrictEqual(loss.steps, [0, 999]) && loss.max === Math.max(...(await exported('base', 'train/loss')).map((p) => p.value)),
    'describe_run: train/loss count, steps and max (the spike) as the store has them');
  check(d.status === 'finished' && isDeepStrictEqual(d.ranks, [0]) && isDeepStrictEqual(d.steps, [0, 999]) &&
    d.drops.samples === 0 && Array.isArray(d.resume_events), 'describe_run: status, ranks, step span, drops, resumes');
  check(d.findings.some((f) => f.kind === 'spike' && f.steps[0] === 300),
    'describe_run: the collector\'s stored spike finding at step 300');

  const truth = await exported('base', 'train/loss');
  r = await call(client, 'get_series', { run: 'base', metrics: ['train/loss'], max_points: 2000 });
  const raw = r.json.series[0];
  check(raw.reduction.startsWith('none') && raw.points_in_range === 1000 &&
    isDeepStrictEqual(raw.points, truth.map((p) => [p.step, p.value])),
    'get_series: 1000 points under max_points come raw, equal to the export bit for bit');
  r = await call(client, 'get_series', { run: 'base', metrics: ['train/loss'], max_points: 100 });
  const bk = r.json.series[0];
  const want = [];
  for (const p of truth) {
    const i = Math.floor(p.step * 100 / 1000);
    const b = want[i] ??= [p.step, p.step, 0, p.value, p.value, p.value, p.value];
    b[1] = p.step; b[2]++; b[3] = Math.min(b[3], p.value); b[4] = Math.max(b[4], p.value); b[6] = p.value;
  }
  check(bk.reduction.startsWith('m4') && isDeepStrictEqual(bk.buckets, want),
    'get_series: 100 M4 buckets equal to reducing the exported points, the reduction stated');
  check(bk.buckets[30][4] === truth[300].value, 'get_series: the spike at step 300 survives the reduction');
  r = await call(client, 'get_series', { run: 'base', metrics: ['train/*', 'lr'], from: 250, to: 260 });
  check(r.json.series.length === 2 && r.json.series.every((s) => s.points.length === 11) &&
    isDeepStrictEqual(r.json.steps, [250, 260]), 'get_series: globs, several metrics, a step range');

  const cli = JSON.parse((await run(TS, ['report', STORE, 'base', '--json'])).stdout);
  r = await call(client, 'report', { run: 'base' });
  check(isDeepStrictEqual(r.json, cli) && r.json.findings.some((f) => f.kind === 'spike' && f.step_first === 300),
    'report: the JSON of `trainscope report --json`, with the spike at 300');
  const cliCmp = JSON.parse((await run(TS, ['report', STORE, 'base', '--json', '--against', 'exp/other'])).stdout);
  r = await call(client, 'compare_runs', { run: 'base', against: 'exp/other' });
  check(isDeepStrictEqual(r.json, cliCmp) && r.json.comparison?.against?.name === 'exp/other' &&
    r.json.comparison.metrics.some((m) => m.name === 'train/loss' && m.common_steps === 1000),
    'compare_runs: the report with --against, train/loss paired over 1000 common steps');

  // Tool errors: a result with isError and a sentence.
  r = await call(client, 'describe_run', { run: 'nope' });
  check(r.err && /unknown run 'nope'/.test(r.text), `unknown run is a tool error (${r.text})`);
  r = await call(client, 'get_series', { run: 'base', from: 10, to: 5 });
  check(r.err && /bad range: from \(10\) is after to \(5\)/.test(r.text), `bad range is a tool error (${r.text})`);
  r = await call(client, 'get_series', { run: 'base', metrics: ['val/*'] });
  check(r.err && /no metric matches 'val\/\*'.*train\/loss/.test(r.text), `an unmatched metric lists the metrics (${r.text})`);
  r = await call(client, 'get_series', { run: 'base', max_points: 5000 });
  check(r.err && /3 series of up to 5000 points/.test(r.text), `an answer too large for a context is refused, saying what to narrow (${r.text})`);
  r = await call(client, 'compare_runs', { run: 'base', against: 'nope' });
  check(r.err && /unknown run 'nope'/.test(r.text), 'compare_runs against an unknown run is a tool error');
  r = await call(client, 'describe_run', {});
  check(r.err && /missing argument 'run'/.test(r.text), 'a missing argument is a tool error');
  r = await call(client, 'wait_for', { run: 'base' });
  check(r.err && /step/.test(r.text), 'wait_for without step or new_finding is a tool error');
  r = await call(client, 'annotate', { run: 'base', step: 1, text: 'x' });
  check(r.err && /--allow-write/.test(r.text), `read-only: annotate is refused, naming --allow-write (${r.text})`);
  let e = await rejects(client.callTool({ name: 'no_such_tool', arguments: {} }));
  check(e?.code === -32602, `an unknown tool is a JSON-RPC error -32602 (${e?.code})`);
  e = await rejects(client.request({ method: 'prompts/get', params: { name: 'x' } }, GetPromptResultSchema));
  check(e?.code === -32601, `an unknown method is -32601 (${e?.code})`);
  r = await call(client, 'wait_for', { run: 'base', step: 5000, timeout_s: 30 });
  check(r.json.reached === 'run_ended' && r.json.waited_s < 5 && r.json.step_last === 999,
    'wait_for on a finished run returns at once: run_ended at step 999');
}

// ---- a live run ------------------------------------------------------------------

async function testLive(client) {
  // 900 steps at 10 ms: about 9 s, a NaN at step 600 (3 s after step 300,
  // so the second wait begins before it).
  const done = publisher('live', 900, ['--sleep-ms', '10', '--nan', '600']);
  let before = null;
  for (let i = 0; i < 200 && !before; i++) {
    const r = await call(client, 'describe_run', { run: 'live' });
    if (!r.err && r.json.steps) before = r.json;
    else await sleep(50);
  }
  check(before && before.status === 'running' && before.steps[1] < 300,
    `the live run is running and below step 300 before the wait (at ${before?.steps?.[1]})`);
  const order = [];
  const waiting = call(client, 'wait_for', { run: 'live', step: 300, timeout_s: 60 }).then((r) => { order.push('wait'); return r; });
  await sleep(200);
  await client.ping();
  order.push('ping');
  let r = await waiting;
  check(r.json.reached === 'step' && r.json.step_last >= 300 && r.json.step_last < 600 && r.json.status === 'running' &&
    r.json.waited_s > 0.3, `wait_for: returns when the live run reaches step 300 (${r.text})`);
  check(isDeepStrictEqual(order, ['ping', 'wait']), 'a ping is answered while wait_for blocks');

  r = await call(client, 'wait_for', { run: 'live', new_finding: true, timeout_s: 60 });
  check(r.json.reached === 'new_finding' && r.json.new_findings.some((f) => f.kind === 'nan' && f.steps[0] === 600),
    `wait_for: returns with the NaN finding at step 600 as the detectors store it (${r.text})`);

  const ctl = new AbortController();
  setTimeout(() => ctl.abort(), 300);
  const t0 = Date.now();
  const e = await rejects(call(client, 'wait_for', { run: 'live', step: 1e12, timeout_s: 60 }, { signal: ctl.signal }));
  check(e && Date.now() - t0 < 5000, 'wait_for: a cancelled wait ends at once');
  r = await call(client, 'wait_for', { run: 'live', step: 1e12, timeout_s: 0.5 });
  check(r.json.reached === 'timeout' && r.json.waited_s >= 0.5 && r.json.waited_s < 3,
    `wait_for: timeout_s 0.5 on a running run times out (${r.text})`);
  r = await call(client, 'list_runs', { name: 'live' });
  check(r.json.runs.length === 1, 'the server answers normally after a cancelled wait');
  check((await done) === 0, 'the live publisher finished');
  r = await call(client, 'wait_for', { run: 'live', step: 1e12, timeout_s: 30 });
  check(r.json.reached === 'run_ended' && r.json.step_last === 899, `wait_for: run_ended once the run finishes (${r.text})`);
}

// ---- a collector's API, and writes ---------------------------------------------

async function testRemote(storeClient, api) {
  const client = await connect([api, '--allow-write']);
  const names = (await client.listTools()).tools.map((t) => t.name);
  check(names.includes('annotate') && names.length === 7, 'tcp:// --allow-write: annotate is listed');
  for (const [tool, args] of [['get_series', { run: 'base', max_points: 50 }], ['get_series', { run: 'live', metrics: ['train/loss'] }],
    ['report', { run: 'base' }], ['compare_runs', { run: 'base', against: 'exp/other', tolerance: 0.2 }]]) {
    const a = await call(client, tool, args), b = await call(storeClient, tool, args);
    check(!a.err && a.text === b.text, `tcp://: ${tool} ${JSON.stringify(args)} answers as on the store file`);
  }
  // Wall times come over the API as JSON doubles: compare what is exact.
  const runsOf = async (c) => (await call(c, 'list_runs')).json.runs.map((x) => [x.run, x.status, x.points, x.metrics, x.dropped]);
  check(isDeepStrictEqual(await runsOf(client), await runsOf(storeClient)), 'tcp://: list_runs lists the same runs');
  const da = (await call(client, 'describe_run', { run: 'base' })).json, db = (await call(storeClient, 'describe_run', { run: 'base' })).json;
  check(isDeepStrictEqual(da.config, db.config) && isDeepStrictEqual(da.metrics, db.metrics) && isDeepStrictEqual(da.findings, db.findings),
    'tcp://: describe_run has the same config, metrics and findings');
  let r = await call(client, 'describe_run', { run: 'nope' });
  check(r.err && /unknown run 'nope'/.test(r.text), 'tcp://: unknown run is a tool error');

  // wait_for over the API, on a run that is being written.
  const done = publisher('live2', 400, ['--sleep-ms', '10']);
  let seen = false;
  for (let i = 0; i < 200 && !seen; i++) {
    seen = !(await call(client, 'describe_run', { run: 'live2' })).err;
    if (!seen) await sleep(50);
  }
  r = await call(client, 'wait_for', { run: 'live2', step: 250, timeout_s: 60 });
  check(r.json.reached === 'step' && r.json.step_last >= 250 && r.json.step_last < 399 && r.json.status === 'running',
    `tcp://: wait_for returns when the live run reaches step 250 (${r.text})`);
  check((await done) === 0, 'the second live publisher finished');
  r = await call(client, 'wait_for', { run: 'live2', step: 1e12, timeout_s: 30 });
  check(r.json.reached === 'run_ended' && r.json.step_last === 399, `tcp://: wait_for sees the run end (${r.text})`);

  // annotate through the collector's single writer, seen in the file.
  r = await call(client, 'annotate', { run: 'base', step: 123, text: 'suspected data problem: shard 7 repeats', kind: 'note' });
  check(!r.err && r.json.written === true, `tcp://: annotate writes through the collector (${r.text})`);
  r = await call(storeClient, 'describe_run', { run: 'base' });
  check(r.json.events.some((e) => e.kind === 'note' && e.step === 123 && e.text === 'suspected data problem: shard 7 repeats'),
    'the note is in the store file, read by another server');
  r = await call(client, 'annotate', { run: 'nope', step: 1, text: 'x' });
  check(r.err && /unknown run/.test(r.text), 'tcp://: annotate on an unknown run is a tool error');

  // The op itself checks what it is given.
  const q = await run(TS, ['query', api, '{"op":"annotate","run":"base","text":"x"}']);
  check(q.code === 1 && /annotate needs \\"step\\"/.test(q.stdout), `api: annotate without a step is refused (${q.stdout.trim()})`);
  // Half a key set-up is refused before anything is sent.
  const k = await run(TS, ['mcp', api], { ...process.env, TRAINSCOPE_SERVER_KEY: 'x'.repeat(40) });
  check(k.code === 1 && k.stdout === '' && /TRAINSCOPE_CLIENT_KEY/.test(k.stderr),
    `tcp:// with a server key but no client key: exit 1 naming the variable (${k.stderr.trim()})`);

  // The store itself cannot be written while the collector holds it.
  const writer = await connect([STORE, '--allow-write']);
  r = await call(writer, 'annotate', { run: 'base', step: 5, text: 'direct' });
  check(r.err && /collector is writing/.test(r.text) && /API endpoint/.test(r.text),
    `STORE --allow-write while a collector runs: annotate says to use its API endpoint (${r.text})`);
  await disconnect(client);
  return writer;
}

// ---- a collector with CURVE keys ----------------------------------------------

async function testCurve() {
  const key = async (name) => {
    check((await run(TS, ['keygen', '--out', path.join(TMP, name)])).code === 0, `keygen ${name}`);
    return [path.join(TMP, `${name}.key`), path.join(TMP, `${name}.pub`)];
  };
  const [serverKey, serverPub] = await key('collector');
  const [aliceKey, alicePub] = await key('alice');
  const [malloryKey] = await key('mallory');
  mkdirSync(path.join(TMP, 'allowed'));
  copyFileSync(alicePub, path.join(TMP, 'allowed', 'alice.pub'));
  const keyEnv = (k) => ({ ...process.env, TRAINSCOPE_SERVER_KEY: serverPub, TRAINSCOPE_CLIENT_KEY: k });
  const api = `tcp://127.0.0.1:${await freePort()}`;
  const col = await startCollector(api, ['--curve-secret', serverKey, '--allow', path.join(TMP, 'allowed')],
    keyEnv(aliceKey));
  const alice = await connect([api, '--allow-write'], keyEnv(aliceKey));
  let r = await call(alice, 'list_runs', { name: 'base' });
  check(!r.err && r.json.runs.length === 1, 'CURVE: with an allowed key from the environment, list_runs answers');
  r = await call(alice, 'annotate', { run: 'base', step: 77, text: 'through CURVE' });
  check(!r.err && r.json.written, 'CURVE: annotate through the keyed collector');
  await disconnect(alice);
  const mallory = await run(TS, ['mcp', api], keyEnv(malloryKey));
  check(mallory.code === 1 && /no reply from the collector.*does it allow this client's key/.test(mallory.stderr),
    `CURVE: a key the collector does not allow: exit 1, saying so (${mallory.stderr.trim()})`);
  col.proc.kill('SIGTERM');
  check((await col.exited) === 0, 'the keyed collector exits 0 on SIGTERM');
}

// ---- a collector whose store file this machine cannot read ---------------------

// Over tcp:// report and compare_runs need nothing but the query API: here the
// collector's store directory is renamed while it runs (it keeps its open
// files), so the path its `info` names does not exist for the MCP server, as
// on another machine. The answers still equal `trainscope report --json` on
// the file (found under its new name).
async function testStoreElsewhere() {
  const dir = path.join(TMP, 'far'), moved = path.join(TMP, 'far-moved');
  mkdirSync(dir);
  copyFileSync(STORE, path.join(dir, 'runs.db'));
  const api = `tcp://127.0.0.1:${await freePort()}`;
  const proc = spawn(TS, ['collect', '--store', path.join(dir, 'runs.db'), '--ingest', `ipc://${TMP}/far-ingest`,
    '--api', api, '--quiet'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig)));
  for (let i = 0; i < 100; i++) {
    if ((await run(TS, ['query', api, '{"op":"info"}', '--timeout-ms', '500'])).code === 0) break;
    await sleep(100);
  }
  renameSync(dir, moved);
  const info = JSON.parse((await run(TS, ['query', api, '{"op":"info"}'])).stdout);
  check(info.store === path.join(dir, 'runs.db') && !existsSync(info.store),
    `elsewhere: the store the collector names (${info.store}) does not exist here`);
  const client = await connect([api]);
  const file = path.join(moved, 'runs.db');
  for (const [tool, args, cliArgs] of [['report', { run: 'base' }, ['base']],
    ['compare_runs', { run: 'exp/other', against: 'base' }, ['exp/other', '--against', 'base']]]) {
    const r = await call(client, tool, args);
    const cli = JSON.parse((await run(TS, ['report', file, ...cliArgs, '--json'])).stdout);
    check(!r.err && isDeepStrictEqual(r.json, cli),
      `elsewhere: ${tool} ${JSON.stringify(args)} over tcp:// equals \`trainscope report --json\` (${r.err ? r.text : 'ok'})`);
  }
  const r = await call(client, 'report', { run: 'nope' });
  check(r.err && /unknown run 'nope'/.test(r.text), `elsewhere: report of an unknown run is a tool error (${r.text})`);
  const again = await call(client, 'report', { run: 'base' });
  check(!again.err && again.json.run.name === 'base', 'elsewhere: ... and the next report still answers');
  await disconnect(client);
  proc.kill('SIGTERM');
  check((await exited) === 0, 'elsewhere: the collector exits 0 on SIGTERM');
}

async function main() {
  const api = `tcp://127.0.0.1:${await freePort()}`;
  const col = await startCollector(api);
  check((await publisher('base', 1000, ['--spike', '300', '--config', '{"lr": 0.001, "batch": 64}'])) === 0,
    'published base');
  check((await publisher('other', 1000, ['--project', 'exp', '--scale', '1.1'])) === 0, 'published exp/other');

  const client = await connect([STORE]);
  await testRawProtocol();
  await testStore(client);
  await testLive(client);
  const writer = await testRemote(client, api);

  // With the collector gone, the store is written directly.
  col.proc.kill('SIGTERM');
  check((await col.exited) === 0, 'the collector exits 0 on SIGTERM');
  let r = await call(writer, 'annotate', { run: 'exp/other', step: 9, text: 'written without a collector', kind: 'review' });
  check(!r.err && r.json.written, `STORE --allow-write without a collector: annotate writes the file (${r.text})`);
  r = await call(client, 'describe_run', { run: 'exp/other' });
  check(r.json.events.some((e) => e.kind === 'review' && e.step === 9), 'the direct note is in the store');
  const gone = await run(TS, ['mcp', api]);
  check(gone.code === 1 && /no reply from the collector/.test(gone.stderr),
    `tcp:// with no collector there: exit 1, saying so (${gone.stderr.trim()})`);
  await disconnect(writer);
  await testCurve();
  r = await call(client, 'describe_run', { run: 'base' });
  check(r.json.events.some((e) => e.step === 77 && e.text === 'through CURVE'), 'the CURVE note is in the store');
  await disconnect(client);
  await testStoreElsewhere();

  rmSync(TMP, { recursive: true, force: true });
  if (failures.length) {
    console.log(`${failures.length} check(s) failed`);
    process.exit(1);
  }
  console.log('all checks passed');
}

main().catch((e) => {
  console.log(`FAIL: ${e.stack}`);
  process.exit(1);
});

// graphile-worker beside Convos' job engine: one measurement per run, driven by the engine
// scenario of `cargo xtask bench` (bench/src/scenarios/engine.rs), on a database of its own.
//
//   node engine.mjs throughput --database-url URL --modules DIR --log FILE \
//        --mode batched|default --concurrency 16 --pool 20 --jobs 20000
//   node engine.mjs latency    --database-url URL --modules DIR --log FILE \
//        --mode batched|default --concurrency 16 --pool 20 --samples 300
//
// Standard output carries only this script's answers, one JSON object a line: `{"event":
// "started"}` when the timed window opens (throughput), then `{"event": "result", ...}`.
// graphile-worker's own log lines (one per job, as it ships) go to the --log file; warnings
// and errors also go to standard error, which the bench shows if this run fails.

import { createRequire } from "node:module";
import { openSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { positionals, values: opts } = parseArgs({
  allowPositionals: true,
  options: {
    "database-url": { type: "string" },
    modules: { type: "string" },
    log: { type: "string" },
    mode: { type: "string", default: "batched" },
    concurrency: { type: "string", default: "16" },
    pool: { type: "string", default: "20" },
    jobs: { type: "string", default: "20000" },
    samples: { type: "string", default: "300" },
    "deadline-secs": { type: "string", default: "600" },
  },
});

/** A whole number option, or a clear failure. */
function count(name) {
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--${name} must be a positive whole number, not ${opts[name]}`);
  }
  return n;
}

/** One answer line for the bench. */
function answer(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a failure naming what was still missing after the deadline. */
function withDeadline(promise, what) {
  const secs = count("deadline-secs");
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()} after ${secs} s`)), secs * 1000);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** graphile-worker from the node_modules folder the bench installed (not next to this file). */
async function loadGraphile(modules) {
  const require = createRequire(join(dirname(modules), "package.json"));
  return import(pathToFileURL(require.resolve("graphile-worker")).href);
}

/**
 * A log function factory writing the lines graphile-worker's console logger would print (debug
 * excluded, as there) to `path`, synchronously like console output to a file; warnings and
 * errors go to standard error as well.
 */
function fileLog(path) {
  const fd = openSync(path, "a");
  return (scope) => (level, message) => {
    if (level === "debug") return;
    const who = scope.workerId ? `worker(${scope.workerId})` : (scope.label ?? "core");
    const line = `${new Date().toISOString()} [${who}] ${level.toUpperCase()}: ${message}\n`;
    writeSync(fd, line);
    if (level === "error" || level === "warning") process.stderr.write(line);
  };
}

/** The worker preset of `mode`: as shipped, or batched as graphile-worker's performance page sets it. */
function preset(graphile) {
  const mode = opts.mode;
  if (mode !== "batched" && mode !== "default") {
    throw new Error(`--mode must be batched or default, not ${mode}`);
  }
  const worker = {
    connectionString: opts["database-url"],
    concurrentJobs: count("concurrency"),
    maxPoolSize: count("pool"),
    logger: new graphile.Logger(fileLog(opts.log)),
  };
  if (mode === "batched") {
    // A local queue of 500 locked jobs and immediate batched completion.
    worker.localQueue = { size: 500 };
    worker.completeJobBatchDelay = 0;
    worker.failJobBatchDelay = 0;
  }
  return { worker };
}

/** A runner with one no-op task, `noop`, calling `ran(payload)` first thing. */
async function start(graphile, workerPreset, ran) {
  const runner = await graphile.run({
    noHandleSignals: true,
    preset: workerPreset,
    taskList: {
      noop: async (payload) => {
        ran(payload);
      },
    },
  });
  // Let it settle into waiting for work, as an idle worker would be.
  await sleep(1000);
  return runner;
}

/** Jobs not yet completed (completion may be batched after the task returned). */
async function waiting(utils) {
  return utils.withPgClient(async (client) => {
    const { rows } = await client.query("select count(*)::int as n from graphile_worker.jobs");
    return rows[0].n;
  });
}

/**
 * N no-op jobs committed in one `addJobs` call in front of an idle runner: from the commit to
 * the last completion committed.
 */
async function throughput(graphile, workerPreset, utils) {
  const jobs = count("jobs");
  let ran = 0;
  let firstRan;
  let allRan;
  const everyJobRan = new Promise((resolve) => {
    allRan = resolve;
  });
  const runner = await start(graphile, workerPreset, () => {
    firstRan ??= performance.now();
    ran += 1;
    if (ran === jobs) allRan();
  });
  const specs = Array.from({ length: jobs }, (_, i) => ({ identifier: "noop", payload: { i } }));
  await utils.addJobs(specs);
  // The commit is the last thing addJobs waits for; should a task still have started before
  // this line ran, the window opens there instead.
  const started = Math.min(performance.now(), firstRan ?? Infinity);
  answer({ event: "started" });
  await withDeadline(everyJobRan, () => `only ${ran} of ${jobs} jobs ran`);
  let left = await waiting(utils);
  const settle = Date.now() + 60_000;
  while (left > 0) {
    if (Date.now() > settle) throw new Error(`${left} jobs ran but were not completed`);
    await sleep(2);
    left = await waiting(utils);
  }
  const secs = (performance.now() - started) / 1000;
  answer({ event: "result", jobs, ran, secs, peak_kib: process.resourceUsage().maxRSS });
  await runner.stop();
}

/**
 * Single jobs added one at a time 10-30 ms apart to an idle runner: the time from just before
 * each `addJob` call to the start of its task, on this process's monotonic clock.
 */
async function latency(graphile, workerPreset) {
  const samples = count("samples");
  const ms = [];
  let allRan;
  const everyJobRan = new Promise((resolve) => {
    allRan = resolve;
  });
  const runner = await start(graphile, workerPreset, (payload) => {
    ms.push(performance.now() - payload.t);
    if (ms.length === samples) allRan();
  });
  for (let i = 0; i < samples; i += 1) {
    await runner.addJob("noop", { t: performance.now() });
    await sleep(10 + Math.random() * 20);
  }
  await withDeadline(everyJobRan, () => `only ${ms.length} of ${samples} jobs started`);
  answer({ event: "result", samples: ms });
  await runner.stop();
}

async function main() {
  const [what] = positionals;
  for (const required of ["database-url", "modules", "log"]) {
    if (!opts[required]) throw new Error(`--${required} is required`);
  }
  const graphile = await loadGraphile(opts.modules);
  const workerPreset = preset(graphile);
  await graphile.runMigrations({ preset: workerPreset });
  const utils = await graphile.makeWorkerUtils({ preset: workerPreset });
  try {
    if (what === "throughput") {
      await throughput(graphile, workerPreset, utils);
    } else if (what === "latency") {
      await latency(graphile, workerPreset);
    } else {
      throw new Error(`say throughput or latency, not ${what}`);
    }
  } finally {
    await utils.release();
  }
}

try {
  await main();
  process.exit(0);
} catch (e) {
  process.stderr.write(`engine.mjs: ${e?.stack ?? e}\n`);
  process.exit(1);
}

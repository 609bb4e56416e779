'use strict'
/**
 * Preloaded into every test process (package.json, tap's `node-arg`). Tap measures coverage in
 * a test process's main thread only, but kernels run on worker threads: without this, the code
 * they run (src/kernels/worker.ts above all) would go uncounted.
 *
 * V8 writes a worker thread's coverage when the thread ends if NODE_V8_COVERAGE is in the
 * process's environment as the thread starts (an `env` option given to the Worker does not
 * count), with the source maps of the TypeScript it compiled. The variable is set as the first
 * worker thread is created, so that threads started earlier (the loader's) and the main thread
 * are left alone. When the test process exits, the entries for src/ (and dist/src/, which maps
 * back to src/) are kept in tap's coverage directory, where its report merges them with the
 * rest; everything else V8 wrote there (other modules, child processes) is dropped.
 */
const fs = require('node:fs')
const { syncBuiltinESMExports } = require('node:module')
const path = require('node:path')
const { fileURLToPath } = require('node:url')
const threads = require('node:worker_threads')

const root = process.env._TAPJS_PROCESSINFO_CWD_
if (threads.isMainThread && process.env._TAPJS_PROCESSINFO_COVERAGE_ === '1' && root !== undefined && process.env.NODE_V8_COVERAGE === undefined) {
  const scratch = path.join(root, '.tap', 'worker-coverage', String(process.pid))
  const { Worker } = threads
  threads.Worker = class CoveredWorker extends Worker {
    constructor (...args) {
      process.env.NODE_V8_COVERAGE ??= scratch
      super(...args)
    }
  }
  syncBuiltinESMExports()

  const kept = [path.join(root, 'src') + path.sep, path.join(root, 'dist', 'src') + path.sep]
  const counts = url => url.startsWith('file:') && kept.some(dir => fileURLToPath(url).startsWith(dir))
  process.on('exit', () => {
    let files = []
    try { files = fs.readdirSync(scratch) } catch { return }
    const out = path.join(root, '.tap', 'coverage')
    for (const name of files) {
      try {
        const cov = JSON.parse(fs.readFileSync(path.join(scratch, name), 'utf8'))
        const result = cov.result.filter(script => counts(script.url))
        if (result.length === 0) continue
        const maps = {}
        for (const script of result) {
          const map = cov['source-map-cache']?.[script.url]
          if (map !== undefined) maps[script.url] = map
        }
        fs.mkdirSync(out, { recursive: true })
        fs.writeFileSync(path.join(out, `worker-${name}`), JSON.stringify({ result, 'source-map-cache': maps }))
      } catch { /* a file that a killed thread left half written: nothing to count */ }
    }
    fs.rmSync(scratch, { recursive: true, force: true })
  })
}

'use strict'
/**
 * A cluster whose primary is the built src/cluster.js and whose workers each ask the primary
 * for the cluster's metrics and exit at once: every answer finds its worker gone, and every
 * worker dies young. Used by test/cluster.test.ts; the primary logs one JSON line per event.
 */
const cluster = require('node:cluster')
const path = require('node:path')
const { runPrimary } = require(path.join(__dirname, '..', '..', 'dist', 'src', 'cluster.js'))

if (cluster.isPrimary) {
  const log = (msg, extra) => console.log(JSON.stringify({ msg, ...extra }))
  runPrimary(2, 1000, log, { baseMs: 50, maxMs: 400, stableMs: 60000 })
} else {
  process.send({ type: 'losshub:metrics', id: 0 }, () => process.exit(3))
}

import { createHash } from 'node:crypto'
import { sizeOf } from '../tensor/tensor'
import { argTensor, gradOutput, kernelKey, optionFeeds, perRowDims } from './kernel'
import { type PreparedCall } from './prepare'
import { concatRows, type KernelTensors, owned, sliceRows } from './tensors'

/**
 * How a call may join a batch: the group it batches with, its rows (batch-dim size) and its
 * elements, the larger of its batch arguments' and its working size (what BATCH_MAX_ELEMENTS bounds).
 */
export interface BatchPlan { group: string, rows: number, elements: number }

/**
 * Whether `call` can be concatenated with others along axis 0, and with which: calls of the
 * same batched kernel whose shared arguments, non-per-row options and trailing dims are equal.
 * Undefined when it must run alone: the loss does not batch, or this call's shapes cannot
 * keep rows apart (see `keepsRowsApart`).
 */
export function batchPlan (call: PreparedCall): BatchPlan | undefined {
  const batchArgs = call.def.batch
  if (batchArgs === undefined) return undefined
  const rows = keepsRowsApart(call, batchArgs)
  if (rows === undefined) return undefined
  const present = batchArgs.filter(n => call.args[n] !== undefined)
  // the group is a plain string (a hash of it all cost ~4 µs a request); only the bytes of shared
  // tensors, which may be large, are hashed
  let group = `${kernelKey(call, true)}|${JSON.stringify(sharedOptions(call))}|`
  // numeric values every member shares (a composite's weights and its terms' options, which its
  // own options do not list), each exactly
  if (call.def.perRowOptions === undefined) for (const [name, p] of Object.entries(call.numeric)) group += `${name}=${Object.is(p.value, -0) ? '-0' : String(p.value)};`
  for (const [name, a] of Object.entries(call.args)) {
    if (present.includes(name)) group += `${name}:${a.shape.slice(1).join(',')};`
    else {
      const bytes = createHash('sha1').update(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength)).digest('base64')
      group += `${name}:${a.dtype ?? '-'}:${a.shape.join(',')}:${bytes};`
    }
  }
  const argElements = present.reduce((n, name) => n + sizeOf(call.args[name].shape), 0)
  // the working size, not just the arguments: a broadcast or an intermediate may be far larger
  const elements = Math.max(argElements, call.cost?.elements ?? 0)
  return { group, rows, elements }
}

/**
 * The call's rows when concatenating its batch arguments with other calls' along axis 0 keeps
 * every request's rows to itself, else undefined. Safe by construction, not by luck:
 * - the first batch argument defines the rows: rank >= 1 and at least one row (0 rows run alone);
 * - every batch argument has those rows on axis 0 and the first one's rank, unless the loss
 *   lines it up itself (`rowAligned`): a lower rank would broadcast it along the batch's rows;
 * - every other argument is shared by the batch and must not reach axis 0: a lower rank than
 *   the rows' argument, or 1 there;
 * - the unreduced loss has the rows on axis 0, so reductions split them per request;
 * - gradients are only asked of batch arguments (a shared argument's would sum over requests).
 */
function keepsRowsApart (call: PreparedCall, batchArgs: readonly string[]): number | undefined {
  const { def, args } = call
  const rows = rowsOf(call)
  if (rows === 0) return undefined
  const rank = args[batchArgs[0]].shape.length
  for (const [name, a] of Object.entries(args)) {
    if (batchArgs.includes(name)) {
      if (a.shape.length === 0 || a.shape[0] !== rows) return undefined
      if (a.shape.length !== rank && def.rowAligned?.includes(name) !== true) return undefined
    } else if (a.shape.length > rank || (a.shape.length === rank && a.shape[0] !== 1)) return undefined
  }
  if (call.unreducedShape.length === 0 || call.unreducedShape[0] !== rows) return undefined
  for (const decl of def.args) {
    if (decl.grad === true && call.grad && args[decl.name] !== undefined && !batchArgs.includes(decl.name)) return undefined
  }
  return rows
}

/**
 * A request's rows: axis 0 of its loss's first batch argument, where batches concatenate it
 * (0 when that argument is 0-d or absent, or the loss does not batch).
 */
export function rowsOf (call: PreparedCall): number {
  const lead = call.def.batch?.[0]
  const shape = lead === undefined ? undefined : call.args[lead]?.shape
  return shape === undefined || shape.length === 0 ? 0 : shape[0]
}

/** The option values every member of a batch must share: all but per-row numeric ones. */
function sharedOptions (call: PreparedCall): unknown[] {
  const perRow = call.def.perRowOptions !== undefined
  return Object.keys(call.def.options).filter(k => !(perRow && k in call.numeric)).map(k => [k, call.opts[k] ?? null])
}

/**
 * The inputs of a batched kernel: batch arguments and seeds concatenated, the rest from the
 * first call. Every array is the feeds' own (shared arguments are copied, not lent): when the
 * batch fails, or its worker dies with its inputs, each member still has its arguments to run alone.
 */
export function batchFeeds (calls: readonly PreparedCall[]): KernelTensors {
  const first = calls[0]
  const batchArgs = new Set(first.def.batch)
  const feeds: KernelTensors = { ...buildFeedsOfShared(first, batchArgs, first.def.perRowOptions === undefined) }
  for (const name of Object.keys(first.args)) {
    // each member's rows are copied into the batch's array: their conversion needs no memory of the request's
    if (batchArgs.has(name)) feeds[name] = concatRows(calls.map(c => argTensor(c.args[name], c.dtype)))
  }
  if (first.def.perRowOptions !== undefined) Object.assign(feeds, perRowOptionFeeds(calls))
  const ids = new BigInt64Array(calls.reduce((n, c) => n + rowsOf(c), 0))
  let row = 0
  calls.forEach((c, r) => {
    const n = rowsOf(c)
    ids.fill(BigInt(r), row, row + n)
    row += n
  })
  feeds.segment_ids = { type: 'int64', dims: [ids.length], data: ids }
  feeds.segment_count = { type: 'int64', dims: [1], data: BigInt64Array.of(BigInt(calls.length)) }
  if (first.grad) {
    // reduced: one seed per request; none: the seeds' rows concatenated
    feeds.grad_output = first.opts.reduction === 'none'
      ? concatRows(calls.map(gradOutput))
      : { type: first.dtype, dims: [calls.length], data: concatRows(calls.map(c => ({ ...gradOutput(c), dims: [1] }))).data }
  }
  return feeds
}

/** Each numeric option as one value per row: every row carries its own request's value. */
function perRowOptionFeeds (calls: readonly PreparedCall[]): KernelTensors {
  const first = calls[0]
  const rows = calls.reduce((n, c) => n + rowsOf(c), 0)
  const dims = [rows, ...perRowDims(first).slice(1).map(() => 1)]
  const feeds: KernelTensors = {}
  for (const [name, p] of Object.entries(first.numeric)) {
    const data = p.kind === 'int64' ? new BigInt64Array(rows) : first.dtype === 'float32' ? new Float32Array(rows) : new Float64Array(rows)
    let row = 0
    for (const c of calls) {
      const v = c.numeric[name].value
      if (data instanceof BigInt64Array) data.fill(BigInt(v), row, row + rowsOf(c))
      else data.fill(v, row, row + rowsOf(c))
      row += rowsOf(c)
    }
    feeds[name] = { type: p.kind === 'int64' ? 'int64' : first.dtype, dims, data }
  }
  return feeds
}

function buildFeedsOfShared (call: PreparedCall, batchArgs: ReadonlySet<string>, withOptions: boolean): KernelTensors {
  const feeds: KernelTensors = withOptions ? optionFeeds(call) : {}
  for (const [name, a] of Object.entries(call.args)) if (!batchArgs.has(name)) feeds[name] = owned(argTensor(a, call.dtype, call.memory))
  return feeds
}

/** Each call's share of a batched result, shaped as its solo result would be: views over the batch's arrays (see `sliceRows`). */
export function splitOutputs (calls: readonly PreparedCall[], out: KernelTensors): KernelTensors[] {
  let row = 0
  return calls.map((c, r) => {
    const n = rowsOf(c)
    const mine: KernelTensors = {}
    for (const [name, t] of Object.entries(out)) {
      const perRequest = (name === 'loss' && c.opts.reduction !== 'none') || c.def.requestOutputs?.includes(name) === true
      if (perRequest) mine[name] = { ...sliceRows(t, r, r + 1), dims: [] }
      else mine[name] = sliceRows(t, row, row + n)
    }
    row += n
    return mine
  })
}

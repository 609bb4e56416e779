import { fail } from '../errors'
import { type Arg, type LossDef, type Options } from '../losses/loss'
import { nominalSize } from '../losses/shapes'
import { type HostTensor, fmtShape } from '../tensor/tensor'
import { type Cost } from './prepare'

/** The default of MAX_ELEMENTS: 2^22 elements, 16 MiB in float32 and 32 MiB in float64 per tensor (README). */
export const DEFAULT_MAX_ELEMENTS = 2 ** 22

/**
 * The default of MAX_STEPS: 100,000 sequential steps (ctc's frames), some 3 to 4 s of kernel
 * at 30 to 40 µs a frame (README). A kernel cannot be stopped once it runs (worker-pool.ts), so
 * what a request may cost in time is bounded here, before it runs.
 */
export const DEFAULT_MAX_STEPS = 100_000

/** What one request may cost: elements of any one tensor (MAX_ELEMENTS), sequential steps (MAX_STEPS). */
export interface Limits { maxElements: number, maxSteps: number }

export const DEFAULT_LIMITS: Limits = { maxElements: DEFAULT_MAX_ELEMENTS, maxSteps: DEFAULT_MAX_STEPS }

/** Elements a shape costs to work with (declared beside the losses' workspaces, which count in it). */
export { nominalSize }

/**
 * Refuses, before the loss looks at them, arguments so large that no graph over them fits:
 * every argument's nominal size (and the upstream gradient's) against `maxElements`.
 */
export function admitArgs (tensors: Record<string, HostTensor>, maxElements: number): void {
  for (const [name, t] of Object.entries(tensors)) over(`${name} ${fmtShape(t.shape)}`, nominalSize(t.shape), maxElements)
}

/**
 * The cost of a checked call: its largest tensor among the arguments, the returned loss, the
 * gradients (shaped like their arguments) and the loss's own intermediates (`def.workspace`:
 * broadcasts, one-hots, lattices), refused with TOO_LARGE over `maxElements`, as are more
 * sequential steps (`def.steps`) than `maxSteps`.
 */
export function admitCall (def: LossDef, args: Record<string, Arg>, opts: Options<Record<string, never>>, lossShape: readonly number[], limits: Limits): Cost {
  const { maxElements, maxSteps } = limits
  const terms: Array<[string, number]> = Object.entries(args).map(([name, a]) => [`${name} ${fmtShape(a.shape)}`, nominalSize(a.shape)])
  terms.push([`the loss ${fmtShape(lossShape)}`, nominalSize(lossShape)])
  for (const [what, n] of Object.entries(def.workspace?.(args, opts) ?? {})) terms.push([what, n])
  let elements = 0
  for (const [what, n] of terms) {
    over(what, n, maxElements)
    elements = Math.max(elements, n)
  }
  let bytes = 0
  for (const a of Object.values(args)) bytes += a.data.byteLength
  const steps = def.steps?.(args, opts) ?? 1
  if (steps > maxSteps) {
    // the steps follow the first argument (ctc's frames: log_probs [T,N,C])
    const [first, a] = Object.entries(args)[0]
    fail('TOO_LARGE', `${first} ${fmtShape(a.shape)}: needs ${steps} sequential steps, more than the ${maxSteps} one request may take (MAX_STEPS); split the request`)
  }
  return { elements, steps, bytes }
}

function over (what: string, elements: number, maxElements: number): void {
  if (elements > maxElements) {
    fail('TOO_LARGE', `${what}: needs ${elements} elements, more than the ${maxElements} one request may use (MAX_ELEMENTS); split the request`)
  }
}

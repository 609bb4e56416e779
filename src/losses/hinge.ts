import { defineLoss, STANDARD_REDUCTIONS, type Arg, type ArgDecl } from './loss'
import { type Value } from '../onnx/graph'
import { clampMin, equal, mul, sub, where } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastWorkspace } from './shapes'
import { expectHingeTargets } from './checks'

/** The tensor arguments of hinge, squared_hinge and perceptron. */
export const HINGE_ARGS: ArgDecl[] = [
  { name: 'input', kind: 'float', grad: true, doc: 'Scores, any shape.' },
  { name: 'target', kind: 'float', doc: 'Targets in {-1, 1}, or all in {0, 1}; broadcastable with input.' }
]

/**
 * Keras `hinge`, elementwise: max(0, 1 - t x), t in {-1, 1}; all-{0, 1} targets count as 2t - 1.
 * max is clamp_min, whose gradient passes at the kink (as TF's maximum does).
 */
export default defineLoss({
  name: 'hinge',
  summary: 'Hinge loss of scores against targets in {-1, 1} (or {0, 1}).',
  reference: 'keras.losses.hinge, elementwise max(0, 1 - t*x)',
  category: 'classification',
  notes: [
    'Targets are -1 and 1; targets all in {0, 1} are read as Keras reads them, as 2t - 1. Targets mixing -1 and 0, or any other value, are refused (400 `DOMAIN_ERROR`).',
    'At the kink (t·x = 1) the gradient passes, as TF\'s maximum gives it.'
  ],
  args: HINGE_ARGS,
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[0.3, -0.8], [1.5, 0.2]], target: [[1, -1], [1, 1]], grad: true },
  workspace: broadcastWorkspace(['input', 'target']),
  check: checkHingeArgs,
  forward: (_g, x, o) => reduce(clampMin(sub(1, mul(hingeTargets(x.target), x.input)), 0), o.reduction)
})

/** Shapes and targets of the hinge family: every target in {-1, 1}, or every one in {0, 1}. */
export function checkHingeArgs (a: Record<string, Arg>): number[] {
  const shape = broadcastArgs(a, ['input', 'target'])
  expectHingeTargets('target', a.target)
  return shape
}

/**
 * Targets in {-1, 1}: once checked, a 0 can only come from all-{0, 1} targets, whose 2t - 1 maps
 * 0 to -1 and keeps 1, so the mapping is elementwise (and stays per request in a batch).
 */
export function hingeTargets (target: Value): Value { return where(equal(target, 0), -1, target) }
